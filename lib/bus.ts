import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import createDebug from 'debug'
import { Redis, Cluster, type RedisOptions } from 'ioredis'
import { DEFAULT_BUS_OPTIONS, defaultRedis, type BusOptions, type HostPort } from './bus-options.js'
import { Shard } from './router/shard.js'
import { rank, pick } from './router/rendezvous.js'
import { validateName, validatePrefix, checkInt } from './names.js'
import { QueueKeys } from './keys.js'
import { BusClosedError, ConnectTimeoutError, InvalidOptionError } from './errors.js'
import { Queue } from './queue/queue.js'
import type { QueueOptions } from './queue/queue-options.js'
import { Channel } from './channel/channel.js'
import type { ChannelOptions } from './channel/channel-options.js'
import { PubSub } from './pubsub/pubsub.js'
import type { CodecOptions } from './queue/codec.js'

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
 * `error` (err) for connection errors (reconnection is automatic).
 */
export class Bus extends EventEmitter {
  /** Resolved settings (prefix, ttl, maxMessageSize, pollInterval, id). */
  readonly settings: BusSettings
  private readonly shards = new Map<string, Shard>()
  private readonly options: BusOptions
  private connecting?: Promise<void>
  private closing?: Promise<void>
  private shutDown = false
  /** Streams and handles to close with the bus. */
  private readonly resources = new Set<{ close: () => Promise<void> }>()
  private readonly growthListeners = new Set<() => void>()

  constructor (options: BusOptions = {}) {
    super()
    this.options = options
    const layouts = [options.redis, options.cluster, options.sentinel].filter((x) => x !== undefined).length
    if (layouts > 1) throw new InvalidOptionError('give only one of the options redis, cluster and sentinel')
    this.settings = {
      prefix: validatePrefix(options.prefix ?? DEFAULT_BUS_OPTIONS.prefix),
      ttl: checkInt(options.ttl ?? DEFAULT_BUS_OPTIONS.ttl, 'ttl', 10),
      maxMessageSize: checkInt(options.maxMessageSize ?? DEFAULT_BUS_OPTIONS.maxMessageSize, 'maxMessageSize', 1, 512 * 1024 * 1024 - 64),
      pollInterval: checkInt(options.pollInterval ?? DEFAULT_BUS_OPTIONS.pollInterval, 'pollInterval', 1),
      commandTimeout: checkInt(options.commandTimeout ?? DEFAULT_BUS_OPTIONS.commandTimeout, 'commandTimeout', 1),
      replicas: checkInt(options.replicas ?? 0, 'replicas', 0),
      replicasTimeout: checkInt(options.replicasTimeout ?? DEFAULT_BUS_OPTIONS.replicasTimeout, 'replicasTimeout', 1),
      id: options.id ?? randomUUID()
    }
    checkInt(options.connectTimeout ?? DEFAULT_BUS_OPTIONS.connectTimeout, 'connectTimeout', 1)
    const base = this.redisOptions()
    if (options.cluster) {
      if (!Array.isArray(options.cluster) || options.cluster.length === 0) {
        throw new InvalidOptionError('cluster must be a non-empty list of seed nodes')
      }
      const seeds = options.cluster.map(hostPort)
      this.addShard(new Shard('cluster', () => new Cluster(seeds, {
        lazyConnect: true,
        enableAutoPipelining: true,
        enableOfflineQueue: false,
        ...options.clusterOptions,
        redisOptions: { ...options.redisOptions, ...options.clusterOptions?.redisOptions }
      }), this.settings.prefix, this.settings.commandTimeout))
    } else if (options.sentinel) {
      const { sentinels, names, sentinelPassword, sentinelUsername } = options.sentinel
      if (!Array.isArray(sentinels) || sentinels.length === 0 || !Array.isArray(names) || names.length === 0) {
        throw new InvalidOptionError('sentinel needs a non-empty sentinels list and a non-empty names list')
      }
      for (const name of names) {
        this.addShard(new Shard(`sentinel:${name}`, () => new Redis({
          ...base, sentinels: sentinels.map(hostPort), name, sentinelPassword, sentinelUsername
        }), this.settings.prefix, this.settings.commandTimeout))
      }
    } else {
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
      enableAutoPipelining: true,
      // Commands fail at once while a shard is away; Shard.run() re-sends them when it is back, until
      // commandTimeout, so a command never runs after its caller was told it failed.
      enableOfflineQueue: false,
      // After a failover a connection may still point at the demoted primary: reconnect (Sentinel finds
      // the new one) and resend the command.
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY') ? 2 : false,
      ...this.options.redisOptions
    }
  }

  /**
   * Adds direct shards (Redis URLs) to a running bus. Existing queues stay where their data is (see
   * "Sharding" in the README); new queue names spread over the longer list.
   */
  addShards (urls: readonly string[]): void {
    if (!Array.isArray(urls) || urls.length === 0) throw new InvalidOptionError('redis must be a non-empty list of URLs')
    this.addShardUrls(urls)
    for (const fn of this.growthListeners) fn()
  }

  /** @internal Calls `fn` whenever shards are added; returns the function that stops it. */
  onShardsAdded (fn: () => void): () => void {
    this.growthListeners.add(fn)
    return () => this.growthListeners.delete(fn)
  }

  private addShardUrls (urls: readonly string[]): void {
    for (const url of urls) {
      const id = shardIdOf(url)
      if (this.shards.has(id)) continue
      const shard = new Shard(id, () => new Redis(url, this.redisOptions()), this.settings.prefix, this.settings.commandTimeout)
      this.addShard(shard)
      if (this.connecting) shard.connect().catch(() => {})
    }
  }

  private addShard (shard: Shard): void {
    this.shards.set(shard.id, shard)
    shard.on('online', () => this.emit('online', shard.id))
    shard.on('offline', () => this.emit('offline', shard.id))
    shard.on('dataloss', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', err)
      this.emit('dataloss', shard.id, err)
    })
    shard.on('error', (err: Error) => {
      // An 'error' event without a listener would crash the process; connection errors are
      // retried by ioredis, so they are only worth reporting to those who listen.
      if (this.listenerCount('error') > 0) this.emit('error', err)
      else debug('shard %s error: %s', shard.id, err.message)
    })
  }

  /** Ids of the shards, in the order given. */
  get shardIds (): string[] {
    return [...this.shards.keys()]
  }

  /**
   * Resolves once every shard answers; rejects with `ERR_BUSMQ_CONNECT_TIMEOUT` after `connectTimeout`
   * ms, or `ERR_BUSMQ_REDIS_VERSION` for a server older than 6.2. Safe to call more than once; queues
   * and streams call it themselves.
   */
  connect (): Promise<void> {
    // Streams opened before close() may still connect while it closes them; after it, nothing may.
    if (this.shutDown) return Promise.reject(new BusClosedError())
    this.connecting ??= (async () => {
      const timeout = this.options.connectTimeout ?? DEFAULT_BUS_OPTIONS.connectTimeout
      let timer: NodeJS.Timeout | undefined
      const pending = new Set(this.shards.keys())
      const all = Promise.all([...this.shards.values()].map(async (s) => {
        await s.connect()
        pending.delete(s.id)
      }))
      const expired = new Promise<never>((resolve, reject) => {
        timer = setTimeout(() => {
          const last = [...pending].map((id) => this.shards.get(id)?.lastError).find((e) => e !== undefined)
          reject(new ConnectTimeoutError(`could not reach shard(s) ${[...pending].join(', ')} within ${timeout} ms` +
            (last ? ` (last error: ${last.message})` : ''), { cause: last }))
        }, timeout)
      })
      try {
        await Promise.race([all, expired])
      } catch (err) {
        this.connecting = undefined
        throw err
      } finally {
        clearTimeout(timer)
      }
      debug('connected to %d shard(s)', this.shards.size)
    })()
    return this.connecting
  }

  /** Throws if the bus is closed. */
  assertOpen (): void {
    if (this.closing) throw new BusClosedError()
  }

  get closed (): boolean {
    return this.closing !== undefined
  }

  /** The shard that owns `name` by rendezvous hashing, ignoring where data already is. */
  ownerOf (name: string): Shard {
    return this.shards.get(pick(this.shardIds, name))!
  }

  shardById (id: string): Shard | undefined {
    return this.shards.get(id)
  }

  /**
   * Where queue `name` lives: the highest-ranked shard that holds any key of it, or the owner when
   * none does. So a queue whose data is on its previous owner stays reachable there after shards are
   * added, until it is drained and expires. Shards that are down are not waited for (they count as
   * holding nothing), so one lost shard does not hold up queues that live elsewhere.
   */
  async locate (name: string, keys: QueueKeys): Promise<Shard> {
    await this.connect()
    const ids = rank(this.shardIds, name)
    if (ids.length === 1) return this.shards.get(ids[0])!
    const found = await Promise.allSettled(ids.map(async (id) => {
      const shard = this.shards.get(id)!
      if (!shard.online) return 0
      return await shard.run((c) => c.exists(keys.info, keys.messages, keys.clients, keys.inflight))
    }))
    const i = found.findIndex((r) => r.status === 'fulfilled' && r.value > 0)
    return this.shards.get(ids[i < 0 ? 0 : i])!
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
    return new Queue(this, validateName(name, 'queue name'), options)
  }

  /** A channel (a Duplex stream) between two peers; see `ChannelOptions`. `T` as for `queue()`. */
  channel<T = any> (name: string, options: ChannelOptions & { objectMode: true }): Channel<T>
  channel (name: string, options?: ChannelOptions & { objectMode?: false }): Channel<Buffer>
  channel<T = any> (name: string, options?: ChannelOptions): Channel<T>
  channel (name: string, options: ChannelOptions = {}): Channel {
    this.assertOpen()
    return new Channel(this, validateName(name, 'channel name'), options)
  }

  /** A plain (not stored) publish/subscribe topic. `T` as for `queue()`. */
  pubsub<T = any> (name: string, options: CodecOptions & { objectMode: true }): PubSub<T>
  pubsub (name: string, options?: CodecOptions & { objectMode?: false }): PubSub<Buffer>
  pubsub<T = any> (name: string, options?: CodecOptions): PubSub<T>
  pubsub (name: string, options: CodecOptions = {}): PubSub {
    this.assertOpen()
    return new PubSub(this, validateName(name, 'pubsub name'), options)
  }

  /** @internal Registers something to close with the bus. */
  track (r: { close: () => Promise<void> }): () => void {
    this.resources.add(r)
    return () => this.resources.delete(r)
  }

  /**
   * Closes every stream the bus opened (unread messages go back to their queues), detaches queues and
   * closes every connection. Idempotent; the process can exit afterwards.
   */
  close (): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.resources].map((r) => r.close()))
      this.shutDown = true
      await Promise.allSettled([...this.shards.values()].map((s) => s.close()))
      debug('closed')
    })()
    return this.closing
  }
}
