import { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'
import createDebug from 'debug'
import { Redis, Cluster, type RedisOptions } from 'ioredis'
import { DEFAULT_BUS_OPTIONS, defaultRedis, type BusOptions, type HostPort } from './bus-options.js'
import { Shard, type Client } from './router/shard.js'
import { Router } from './router/router.js'
import { defineScripts } from './scripts/index.js'
import { validateName, validatePrefix, checkInt, checkDelay } from './names.js'
import { BusClosedError, ConnectTimeoutError, InvalidOptionError } from './errors.js'
import { Queue } from './queue/queue.js'
import { Attachments, HEARTBEAT_RATE } from './queue/attachments.js'
import { newProducerIdentity, type ProducerIdentity } from './queue/producer.js'
import type { QueueOptions } from './queue/queue-options.js'
import { Channel } from './channel/channel.js'
import type { ChannelOptions } from './channel/channel-options.js'
import { PubSub } from './pubsub/pubsub.js'
import { PersistedObject } from './object/persisted-object.js'
import type { ObjectOptions } from './object/object-options.js'
import type { CodecOptions } from './queue/codec.js'
import type { ReliableMessage } from './queue/reliable-message.js'
import { BusLog, checkLogger } from './logger.js'
import { Service } from './service/service.js'
import type { ServiceOptions } from './service/service-options.js'
import { registryKey } from './keys.js'
import { BusMetrics, DEFAULT_METRICS_QUEUES, type MetricsSnapshot, type MetricsSource } from './metrics/bus-metrics.js'
import { prometheusHandler } from './metrics/prometheus.js'
import { instrumentMeter } from './metrics/otel.js'
import { Dashboard, type DashboardHandler } from './dashboard/dashboard.js'
import type { DashboardOptions } from './dashboard/dashboard-options.js'
import type { DashboardSection } from './dashboard/section.js'
import { RemoteBus } from './federation/remote-bus.js'
import { nodeSockets } from './federation/node-sockets.js'
import { FederationServer, type Federation } from './federation/federation-server.js'
import type { FederateOptions } from './federation/federation-options.js'

const debug = createDebug('busmq:bus')

/** Resolved bus settings that queues and streams read. */
export interface BusSettings {
  prefix: string
  ttl: number
  maxMessageSize: number
  pollInterval: number
  commandTimeout: number
  replicas: number
  replicasTimeout: number
  id: string
}

/** What the bus tells about one of its shards. */
export interface ShardInfo {
  /** Stable id: `host:port/db` for a URL, `sentinel:<name>`, or `cluster`. */
  readonly id: string
  /** Whether its command connection is up now. */
  readonly online: boolean
}

function hostPort (h: HostPort): { host: string, port: number } {
  if (typeof h !== 'string') return h
  const i = h.lastIndexOf(':')
  if (i < 0) return { host: h, port: 6379 }
  return { host: h.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(h.slice(i + 1)) }
}

/** Stable shard id of a Redis URL (`host:port/db`), independent of credentials and of list order. */
export function shardIdOf (url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new InvalidOptionError(`not a Redis URL: ${JSON.stringify(url)}`)
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new InvalidOptionError(`Redis URL must start with redis:// or rediss://, got ${JSON.stringify(url)}`)
  }
  const db = u.pathname.replace(/^\//, '') || '0'
  return `${u.hostname}:${u.port || '6379'}/${db}`
}

/**
 * The entry point: a set of shards, a router that maps each queue, channel and pub/sub name to one of
 * them, and factories for queues, channels and pub/sub topics.
 *
 * Events: `online` (shardId) when a shard's connection is ready, `offline` (shardId) when one is lost,
 * `error` (err) for connection errors (reconnection is automatic), `dataloss` (shardId, err); with
 * `federation`: `reconnecting` (url), `reconnected` (url), `unauthorized` (url, err), `close` (err).
 */
export class Bus extends EventEmitter {
  /** Resolved settings (prefix, ttl, maxMessageSize, pollInterval, id, …). */
  readonly settings: BusSettings
  /** @internal Where every name lives. */
  readonly router = new Router()
  /** @internal What an operator should know goes here (the `logger` option and `busmq:log`). */
  readonly log: BusLog
  /** @internal This bus's counters (streams look up their queue's record once) and other metric sources. */
  readonly metricsRegistry: BusMetrics
  /** Refreshes of attached queues per second per shard at most (the `heartbeatRate` option). */
  private readonly heartbeatRate: number
  /** Dashboard sections added by later subsystems (services, objects). */
  private readonly extraSections: DashboardSection[] = []
  private readonly options: BusOptions
  private readonly layout: 'direct' | 'cluster' | 'sentinel'
  private connecting?: Promise<void>
  private closing?: Promise<void>
  private shutDown = false
  /** Streams and handles to close with the bus. */
  private readonly resources = new Set<{ close: () => Promise<void> }>()
  private readonly attachmentsByShard = new Map<Shard, Attachments>()
  /** One-off pushes' producer identity, by queue (see Producer). */
  private readonly oneOffIdentities = new Map<string, ProducerIdentity>()
  /** Give-backs of this bus's readers still on their way, by queue. */
  private readonly settling = new Map<string, Set<Promise<void>>>()
  /**
   * @internal Federation: with `federation` and no Redis layout, every handle is a remote one (lib/federation/);
   * with both, `queue.find()` also asks the federation servers.
   */
  readonly remote?: RemoteBus
  /** @internal True when the bus has no Redis: everything goes through `remote`. */
  readonly federationOnly: boolean

  constructor (options: BusOptions = {}) {
    super()
    this.options = options
    this.log = new BusLog(checkLogger(options.logger))
    const layouts = [options.redis, options.cluster, options.sentinel].filter((x) => x !== undefined).length
    if (layouts > 1) throw new InvalidOptionError('give only one of the options redis, cluster and sentinel')
    this.federationOnly = options.federation !== undefined && layouts === 0
    this.settings = {
      prefix: validatePrefix(options.prefix ?? DEFAULT_BUS_OPTIONS.prefix),
      ttl: checkInt(options.ttl ?? DEFAULT_BUS_OPTIONS.ttl, 'ttl', 10),
      maxMessageSize: checkInt(options.maxMessageSize ?? DEFAULT_BUS_OPTIONS.maxMessageSize, 'maxMessageSize', 1, 512 * 1024 * 1024 - 64),
      pollInterval: checkDelay(options.pollInterval ?? DEFAULT_BUS_OPTIONS.pollInterval, 'pollInterval', 1),
      commandTimeout: checkDelay(options.commandTimeout ?? DEFAULT_BUS_OPTIONS.commandTimeout, 'commandTimeout', 1),
      replicas: checkInt(options.replicas ?? 0, 'replicas', 0),
      replicasTimeout: checkDelay(options.replicasTimeout ?? DEFAULT_BUS_OPTIONS.replicasTimeout, 'replicasTimeout', 1),
      id: options.id ?? randomUUID()
    }
    if (typeof this.settings.id !== 'string' || this.settings.id.length === 0 || this.settings.id.length > 200) {
      throw new InvalidOptionError('id must be a non-empty string of at most 200 characters')
    }
    checkDelay(options.connectTimeout ?? DEFAULT_BUS_OPTIONS.connectTimeout, 'connectTimeout', 1)
    this.heartbeatRate = checkInt(options.heartbeatRate ?? HEARTBEAT_RATE, 'heartbeatRate', 1)
    this.metricsRegistry = new BusMetrics(() => this.router.all(),
      checkInt(options.metricsQueues ?? DEFAULT_METRICS_QUEUES, 'metricsQueues', 1))
    if (options.meter !== undefined) {
      if (typeof options.meter?.addBatchObservableCallback !== 'function') {
        throw new InvalidOptionError('meter must be an OpenTelemetry Meter (metrics.getMeter(name) of @opentelemetry/api)')
      }
      instrumentMeter(options.meter, this.metricsRegistry)
    }
    if (options.federation !== undefined) {
      this.remote = new RemoteBus(options.federation, this.settings.id, this.settings.maxMessageSize, () => this.assertOpen(),
        (event, ...args) => this.emit(event, ...args),
        nodeSockets(options.federation?.socketOptions))
    }
    const base = this.redisOptions()
    if (this.federationOnly) {
      this.layout = 'direct'
    } else if (options.cluster) {
      this.layout = 'cluster'
      if (!Array.isArray(options.cluster) || options.cluster.length === 0) {
        throw new InvalidOptionError('cluster must be a non-empty list of seed nodes')
      }
      const seeds = options.cluster.map(hostPort)
      this.addShard('cluster', () => new Cluster(seeds, {
        lazyConnect: true,
        enableAutoPipelining: true,
        enableOfflineQueue: false,
        ...options.clusterOptions,
        redisOptions: { ...options.redisOptions, ...options.clusterOptions?.redisOptions }
      }))
    } else if (options.sentinel) {
      this.layout = 'sentinel'
      const { sentinels, names, sentinelPassword, sentinelUsername } = options.sentinel
      if (!Array.isArray(sentinels) || sentinels.length === 0 || !Array.isArray(names) || names.length === 0) {
        throw new InvalidOptionError('sentinel needs a non-empty sentinels list and a non-empty names list')
      }
      for (const name of names) {
        this.addShard(`sentinel:${name}`, () => new Redis({
          ...base, sentinels: sentinels.map(hostPort), name, sentinelPassword, sentinelUsername
        }))
      }
    } else {
      this.layout = 'direct'
      const urls = options.redis === undefined ? defaultRedis() : options.redis
      if (!Array.isArray(urls) && typeof urls !== 'string') throw new InvalidOptionError('redis must be a URL or a list of URLs')
      const list = typeof urls === 'string' ? [urls] : urls
      if (list.length === 0) throw new InvalidOptionError('redis must be a non-empty list of URLs')
      this.addShardUrls(list)
    }
  }

  private redisOptions (): RedisOptions {
    return {
      lazyConnect: true,
      // Not ioredis's auto-pipelining: each command is written as it is made, and the shard corks the
      // socket for the rest of the turn of the event loop, so the commands of a turn still leave in one
      // write (see Shard.corkTurn), without a pipeline object per batch, and a connection drop never
      // splits a pipeline (ioredis aborts the unanswered rest of a pipeline it saw begin to answer, but
      // sends every other unanswered command again first: a push's retry would come after later ones).
      enableAutoPipelining: false,
      // Commands fail at once while a shard is away; Shard.run() re-sends them when it is back, until
      // commandTimeout, so a command never runs after its caller was told it failed.
      enableOfflineQueue: false,
      // After a failover a connection may still point at the demoted primary: reconnect (Sentinel finds
      // the new one) and resend the command.
      reconnectOnError: (err: Error) => {
        if (!err.message.startsWith('READONLY')) return false
        this.log.warn(`a shard answered READONLY (a replica: a failover is under way); reconnecting to the primary (${err.message})`)
        return 2
      },
      ...this.options.redisOptions
    }
  }

  /**
   * Adds direct shards (Redis URLs) to a running bus. Existing queues stay where their data is (see
   * "Sharding" in the README); new queue names spread over the longer list.
   */
  addShards (urls: readonly string[]): void {
    if (this.layout !== 'direct') throw new InvalidOptionError('addShards works in the direct layout (redis URLs) only')
    if (!Array.isArray(urls) || urls.length === 0) throw new InvalidOptionError('redis must be a non-empty list of URLs')
    this.addShardUrls(urls)
  }

  private addShardUrls (urls: readonly string[]): void {
    const fresh: Shard[] = []
    for (const url of urls) {
      const id = shardIdOf(url)
      if (this.router.has(id) || fresh.some((s) => s.id === id)) continue
      fresh.push(this.makeShard(id, () => new Redis(url, this.redisOptions())))
    }
    for (const shard of this.router.add(fresh)) {
      if (this.connecting) shard.connect().catch(() => {})
    }
  }

  private addShard (id: string, create: () => Client): void {
    this.router.add([this.makeShard(id, create)])
  }

  private makeShard (id: string, create: () => Client): Shard {
    const shard = new Shard(id, { create, prepare: defineScripts }, {
      prefix: this.settings.prefix, commandTimeout: this.settings.commandTimeout
    })
    let seenOnline = false
    let address: string | undefined
    /** The first connection error after the shard was last seen online is worth a warning; repeats are not. */
    let errorReported = false
    shard.on('online', () => {
      const now = shard.address
      if (!seenOnline) this.log.info(`shard ${id} is online${now ? ` (${now})` : ''}`)
      else if (now && address && now !== address) this.log.warn(`shard ${id} is back online at ${now}, no longer ${address}: a failover`)
      else this.log.info(`shard ${id} is back online (reconnected)`)
      seenOnline = true
      address = now ?? address
      errorReported = false
      this.emit('online', shard.id)
    })
    shard.on('offline', () => {
      if (shard.closed) this.log.info(`shard ${id} closed`)
      else this.log.warn(`shard ${id} went offline (connection lost); reconnecting, commands wait up to commandTimeout`)
      this.emit('offline', shard.id)
    })
    shard.on('dataloss', (err: Error) => {
      this.log.error(err.message)
      if (this.listenerCount('error') > 0) this.emit('error', err)
      this.emit('dataloss', shard.id, err)
    })
    shard.on('error', (err: Error) => {
      if (!errorReported && !shard.closed) {
        errorReported = true
        this.log.warn(`shard ${id}: ${err.message} (retrying)`)
      }
      // An 'error' event without a listener would crash the process; connection errors are
      // retried by ioredis, so they are only worth reporting to those who listen.
      if (this.listenerCount('error') > 0) this.emit('error', err)
      else debug('shard %s error: %s', shard.id, err.message)
    })
    return shard
  }

  /** Ids of the shards, in the order given. */
  get shardIds (): string[] {
    return this.router.ids
  }

  /** The shard that owns `name` by rendezvous hashing (where a new queue of that name goes). */
  ownerOf (name: string): ShardInfo {
    return this.router.owner(name)
  }

  /** @internal A shard by id (the CLI scans shards). */
  shardById (id: string): Shard | undefined {
    return this.router.get(id)
  }

  /** @internal The attachments of this bus to queues of `shard`, with their batched heartbeat. */
  attachments (shard: Shard): Attachments {
    if (this.shutDown) throw new BusClosedError()
    let a = this.attachmentsByShard.get(shard)
    if (!a) {
      a = new Attachments(shard, this.settings.id, {
        perQueueCalls: this.layout === 'cluster', registry: registryKey(this.settings.prefix), rate: this.heartbeatRate
      })
      this.attachmentsByShard.set(shard, a)
    }
    return a
  }

  /**
   * Resolves once every shard answers; rejects with `ERR_BUSMQ_CONNECT_TIMEOUT` after `connectTimeout`
   * ms, `ERR_BUSMQ_REDIS_VERSION` for a server older than 6.2, or `ERR_BUSMQ_REDIS` when Redis refuses
   * the bus (for example an ACL that denies its prefix). Safe to call more than once; a failed connect
   * is tried again by the next call. Queues and streams call it themselves.
   */
  connect (): Promise<void> {
    // Streams opened before close() may still connect while it closes them; after it, nothing may.
    if (this.shutDown) return Promise.reject(new BusClosedError())
    if (this.federationOnly) {
      this.connecting ??= this.remote!.client.connect().catch((err) => {
        this.connecting = undefined
        throw err
      })
      return this.connecting
    }
    this.connecting ??= (async () => {
      const timeout = this.options.connectTimeout ?? DEFAULT_BUS_OPTIONS.connectTimeout
      let timer: NodeJS.Timeout | undefined
      const shards = this.router.all()
      const pending = new Set(shards.map((s) => s.id))
      const all = Promise.all(shards.map(async (s) => {
        await s.connect()
        pending.delete(s.id)
      }))
      const expired = new Promise<never>((resolve, reject) => {
        timer = setTimeout(() => {
          const last = [...pending].map((id) => this.router.get(id)?.lastError).find((e) => e !== undefined)
          reject(new ConnectTimeoutError(`could not reach shard(s) ${[...pending].join(', ')} within ${timeout} ms` +
            (last ? ` (last error: ${last.message})` : ''), { cause: last }))
        }, timeout)
      })
      try {
        await Promise.race([all, expired])
      } catch (err) {
        this.connecting = undefined
        all.catch(() => {})
        throw err
      } finally {
        clearTimeout(timer)
      }
      debug('connected to %d shard(s)', this.router.size)
    })()
    return this.connecting
  }

  /** True when every shard's connection is up. */
  get online (): boolean {
    return this.router.all().every((s) => s.online)
  }

  /** @internal Throws if the bus is closed. */
  assertOpen (): void {
    if (this.closing) throw new BusClosedError()
  }

  /** True once `close()` was called. */
  get closed (): boolean {
    return this.closing !== undefined
  }

  /**
   * A handle on queue `name`. Throws `ERR_BUSMQ_INVALID_NAME` for a bad name. `T` is the type of its
   * messages: in objectMode what you say (`bus.queue<Order>('orders', { objectMode: true })`, default
   * `any`), in byte mode `Buffer` (producers take any bytes). Types only: nothing checks payloads.
   */
  queue<T = any> (name: string, options: QueueOptions & { objectMode: true }): Queue<T>
  queue (name: string, options?: QueueOptions & { objectMode?: false }): Queue<Buffer>
  queue<T = any> (name: string, options?: QueueOptions): Queue<T>
  queue (name: string, options: QueueOptions = {}): Queue {
    this.assertOpen()
    if (this.federationOnly) return this.remote!.queue(name, options) as unknown as Queue
    return new Queue(this, validateName(name, 'queue name'), options)
  }

  /**
   * A channel (a Duplex stream) between two peers; see `ChannelOptions`. `T` as for `queue()`; with
   * `ack: 'manual'` its readable side yields `ReliableMessage<T>`.
   */
  channel<T = any> (name: string, options: ChannelOptions & { ack: 'manual', objectMode: true }): Channel<T, ReliableMessage<T>>
  channel (name: string, options: ChannelOptions & { ack: 'manual', objectMode?: false }): Channel<Buffer, ReliableMessage<Buffer>>
  channel<T = any> (name: string, options: ChannelOptions & { objectMode: true }): Channel<T>
  channel (name: string, options?: ChannelOptions & { objectMode?: false }): Channel<Buffer>
  channel<T = any> (name: string, options?: ChannelOptions): Channel<T>
  channel (name: string, options: ChannelOptions = {}): Channel {
    this.assertOpen()
    if (this.federationOnly) return this.remote!.channel(name, options) as unknown as Channel
    return new Channel(this, validateName(name, 'channel name'), options)
  }

  /** A plain (not stored) publish/subscribe topic. `T` as for `queue()`. */
  pubsub<T = any> (name: string, options: CodecOptions & { objectMode: true }): PubSub<T>
  pubsub (name: string, options?: CodecOptions & { objectMode?: false }): PubSub<Buffer>
  pubsub<T = any> (name: string, options?: CodecOptions): PubSub<T>
  pubsub (name: string, options: CodecOptions = {}): PubSub {
    this.assertOpen()
    if (this.federationOnly) return this.remote!.pubsub(name, options) as unknown as PubSub
    return new PubSub(this, validateName(name, 'pubsub name'), options)
  }

  /**
   * A handle on the persisted object `name` (see `PersistedObject`): cheap, it reaches Redis only when
   * used. `T` types its fields (types only). Throws `ERR_BUSMQ_INVALID_NAME` for a bad name.
   */
  object<T extends Record<string, any> = Record<string, any>> (name: string, options: ObjectOptions = {}): PersistedObject<T> {
    this.assertOpen()
    if (this.federationOnly) return this.remote!.object(name, options) as unknown as PersistedObject<T>
    return new PersistedObject<T>(this, validateName(name, 'object name'), options)
  }

  /**
   * A handle on service `name`: request/response over the bus (see `Service`). Cheap, like `queue()`.
   * `Req` and `Res` are the types of requests and replies in objectMode; in byte mode both are Buffers
   * (requests take any bytes). Throws `ERR_BUSMQ_INVALID_NAME` for a bad name.
   */
  service<Req = any, Res = any> (name: string, options: ServiceOptions & { objectMode: true }): Service<Req, Res>
  service (name: string, options?: ServiceOptions & { objectMode?: false }): Service<Buffer, Buffer>
  service<Req = any, Res = any> (name: string, options?: ServiceOptions): Service<Req, Res>
  service (name: string, options: ServiceOptions = {}): Service {
    this.assertOpen()
    if (this.federationOnly) return this.remote!.service(name, options) as unknown as Service
    return new Service(this, validateName(name, 'service name'), options)
  }

  /**
   * A snapshot of this bus's metrics: per queue it used (up to `metricsQueues`) what its streams counted
   * (pushed, popped, acked, redelivered, dead-lettered; latency histograms) and, read from Redis now, its
   * depth, in-flight and dead-letter counts; per shard whether it is up, its reconnections and the commands
   * that failed for want of an answer. See "Metrics" in the README.
   */
  async metrics (): Promise<MetricsSnapshot> {
    return await this.metricsRegistry.snapshot()
  }

  /**
   * A plain Node http handler answering with `bus.metrics()` in the Prometheus text format (written by
   * prom-client): mount it at `/metrics` on any server or framework.
   */
  metricsHandler (): (req: IncomingMessage, res: ServerResponse) => void {
    return prometheusHandler(this.metricsRegistry)
  }

  /**
   * The live web dashboard as a plain Node http handler (Express, Fastify, Koa or `http.createServer`),
   * mounted on `options.server` under `options.path` when given. Read-only unless `adminToken` is set and
   * sent. `bus.close()` closes it. See "Dashboard" in the README.
   */
  dashboard (options: DashboardOptions = {}): DashboardHandler {
    this.assertOpen()
    const d = new Dashboard(this, options, this.extraSections)
    const untrack = this.track({ close: async () => await d.close() })
    const handler = ((req, res, next) => d.handle(req, res, next)) as DashboardHandler
    Object.defineProperty(handler, 'path', { value: d.path })
    handler.close = async () => {
      untrack()
      await d.close()
    }
    return handler
  }

  /**
   * Serves federation on `options.server` under `options.path`: clients (`new Bus({ federation })`,
   * browsers) use this bus's queues, channels, pub/sub, services and objects over WebSockets. See
   * "Federation" in the README. `bus.close()` closes it.
   */
  federate (options: FederateOptions): Federation {
    this.assertOpen()
    if (this.federationOnly) throw new InvalidOptionError('a bus with only federation cannot serve federation')
    const server = new FederationServer(this, options)
    const untrack = this.track({ close: async () => await server.close() })
    return {
      path: server.path,
      get connections () { return server.connections },
      close: async () => {
        untrack()
        await server.close()
      }
    }
  }

  /** @internal A later subsystem (services, objects) adds its table to the dashboard and its metrics to /metrics. */
  addDashboardSection (section: DashboardSection, metrics?: MetricsSource): void {
    this.extraSections.push(section)
    if (metrics) this.metricsRegistry.addSource(metrics)
  }

  /** @internal Registers something to close with the bus; returns the function that forgets it. */
  track (r: { close: () => Promise<void> }): () => void {
    this.resources.add(r)
    return () => this.resources.delete(r)
  }

  /**
   * @internal A failure nobody awaits (a give-back or detach that failed while a stream closed): emitted
   * as 'error' when the application listens, logged (debug) otherwise.
   */
  report (err: Error, context: string): void {
    debug('%s: %s', context, err.message)
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  /** @internal The producer identity of this bus's one-off pushes to the queue `base`. */
  oneOffIdentity (base: string): ProducerIdentity {
    let identity = this.oneOffIdentities.get(base)
    if (!identity) {
      identity = newProducerIdentity()
      this.oneOffIdentities.set(base, identity)
      // Bounded: a bus that pushes to ever new queues forgets the oldest (pushing there again later
      // just starts a new record).
      if (this.oneOffIdentities.size > 10_000) this.oneOffIdentities.delete(this.oneOffIdentities.keys().next().value!)
    }
    return identity
  }

  /** @internal A reader's give-back to the queue `base` is on its way (see settled()). */
  settle (base: string, done: Promise<void>): void {
    let set = this.settling.get(base)
    if (!set) {
      set = new Set()
      this.settling.set(base, set)
    }
    set.add(done)
    const forget = (): void => {
      set!.delete(done)
      if (set!.size === 0 && this.settling.get(base) === set) this.settling.delete(base)
    }
    done.then(forget, forget)
  }

  /** @internal Resolves once every give-back to the queue `base` started before this call has landed. */
  async settled (base: string): Promise<void> {
    const set = this.settling.get(base)
    if (set) await Promise.allSettled([...set])
  }

  /**
   * Closes every stream the bus opened (unread messages go back to their queues), detaches queues and
   * closes every connection, emitting `offline` for each shard. Idempotent; the process can exit
   * afterwards.
   */
  close (): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.resources].map((r) => r.close()))
      this.remote?.client.close(new BusClosedError())
      this.shutDown = true
      for (const a of this.attachmentsByShard.values()) a.close()
      await Promise.allSettled(this.router.all().map((s) => s.close()))
      debug('closed')
    })()
    return this.closing
  }
}
