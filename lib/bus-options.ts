import type { RedisOptions, ClusterOptions } from 'ioredis'
import type { Logger } from './logger.js'
import type { MeterLike } from './metrics/otel.js'
import type { FederationOptions } from './federation/federation-options.js'

/** A host and port, or a `host:port` string. */
export type HostPort = string | { host: string, port: number }

/** Sentinel layout: one shard per monitored master name. */
export interface SentinelLayout {
  /** Sentinel addresses to ask for the current primaries. */
  sentinels: HostPort[]
  /** Master names monitored by those Sentinels; each is one shard. */
  names: string[]
  /** Password of the Sentinels themselves, if they require one. */
  sentinelPassword?: string
  /** ACL user of the Sentinels, if any. */
  sentinelUsername?: string
}

/** Options of `new Bus(options)`. Give at most one of `redis`, `cluster`, `sentinel`. */
export interface BusOptions {
  /**
   * Direct layout: Redis URLs (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS), one shard each.
   * @default the URLs in `$BUSMQ_REDIS` (comma-separated) when it is set, else ['redis://127.0.0.1:6379']
   */
  redis?: string | string[]
  /** Redis Cluster layout: seed nodes; the whole cluster is one logical shard. */
  cluster?: HostPort[]
  /** Sentinel layout: one shard per monitored master name. */
  sentinel?: SentinelLayout
  /**
   * Federation: WebSocket URLs of federation servers (`bus.federate()` on a bus with Redis) and their
   * secret. Without `redis`, `cluster` or `sentinel`, the bus reaches no Redis at all: every queue,
   * channel, pub/sub topic, service request and object goes through those servers. With one, streams
   * stay local and `queue.find()` also asks the servers. See "Federation" in the README.
   */
  federation?: FederationOptions
  /**
   * Namespace of every key and pub/sub channel the bus uses (1-64 characters of `[A-Za-z0-9_-.:@/=]`).
   * @default 'busmq'
   */
  prefix?: string
  /**
   * How long `bus.connect()` waits for every shard before it rejects with `ERR_BUSMQ_CONNECT_TIMEOUT`, in ms.
   * @default 10000
   */
  connectTimeout?: number
  /**
   * Idle TTL of queues in ms: a queue no client is attached to expires, with all its keys, this long after
   * its last use. Queues can override it.
   * @default 30000
   */
  ttl?: number
  /**
   * Largest message, in bytes after encoding; a larger one is refused before it is sent.
   * @default 16777216 (16 MiB)
   */
  maxMessageSize?: number
  /**
   * An idle reader re-checks its queue this often (ms), in case a wake-up was missed; wake-ups normally
   * arrive by pub/sub within a millisecond of a push.
   * @default 1000
   */
  pollInterval?: number
  /**
   * A command a shard does not answer within this many ms fails with `ERR_BUSMQ_SHARD_UNAVAILABLE`
   * (producers and one-off calls see the error; readers retry until the shard is back).
   * @default 15000
   */
  commandTimeout?: number
  /**
   * Make every push wait until this many replicas have it (Redis WAIT) before its callback or promise
   * resolves; fewer within `replicasTimeout` fails it with `ERR_BUSMQ_REPLICATION` (the primary has it).
   * Direct and Sentinel layouts only.
   * @default 0
   */
  replicas?: number
  /** ms a push waits for `replicas`. @default 1000 */
  replicasTimeout?: number
  /**
   * Options merged into every Redis connection (password, username, tls, retryStrategy, …).
   * @default {}
   */
  redisOptions?: RedisOptions
  /** Options for the Cluster client in the cluster layout. @default {} */
  clusterOptions?: ClusterOptions
  /** Identifies this client in queue attachments and channel presence. @default a random id */
  id?: string
  /**
   * Where the bus reports connection changes (a shard offline, back online, a failover), data loss,
   * redeliveries and dead letters: any object with `debug`, `info`, `warn` and `error` methods (`console`,
   * pino, winston). Each call gets one string. The `debug` namespaces (`DEBUG=busmq:*`) log regardless.
   * @default none
   */
  logger?: Logger
  /**
   * An OpenTelemetry meter (`metrics.getMeter('busmq')` of `@opentelemetry/api`): the bus reports its
   * metrics through it too (observable counters and gauges, latency histograms). See "Metrics".
   */
  meter?: MeterLike
  /**
   * Queues whose counters `bus.metrics()` keeps (the least recently opened are dropped beyond it, so a
   * process that touches many queues keeps bounded memory); services likewise, as many.
   * @default 1000
   */
  metricsQueues?: number
  /**
   * Refreshes of attached queues (and objects kept alive) per second this bus sends one shard at most, so
   * that heartbeats take a bounded share of Redis. Up to `heartbeatRate × ttl / 6000` attached queues (ttl in ms) on a
   * shard (10,000 with a 3 s TTL, 100,000 with the default TTL) are refreshed every `ttl / 3`; beyond
   * that, every `2 × attached / heartbeatRate` s, each refresh holding the keys three such periods (see
   * "Lifecycle and inspection").
   * @default 20000
   */
  heartbeatRate?: number
}

export const DEFAULT_BUS_OPTIONS = {
  redis: ['redis://127.0.0.1:6379'],
  prefix: 'busmq',
  connectTimeout: 10_000,
  ttl: 30_000,
  maxMessageSize: 16 * 1024 * 1024,
  pollInterval: 1000,
  commandTimeout: 15_000,
  replicasTimeout: 1000
} as const

/**
 * The shards of a bus given no layout: the URLs in `$BUSMQ_REDIS` (comma-separated, as for the `busmq`
 * command) when it is set and not empty, else `DEFAULT_BUS_OPTIONS.redis`.
 */
export function defaultRedis (env: NodeJS.ProcessEnv = process.env): string[] {
  const urls = (env.BUSMQ_REDIS ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  return urls.length > 0 ? urls : [...DEFAULT_BUS_OPTIONS.redis]
}
