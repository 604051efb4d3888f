import { EventEmitter } from 'node:events'
import createDebug from 'debug'
import type { Redis, Cluster } from 'ioredis'
import { defineScripts } from '../scripts/index.js'
import { RedisCommandError, RedisVersionError, ShardDataLossError, ShardUnavailableError } from '../errors.js'
import { shardMarkerKey } from '../keys.js'

const debug = createDebug('busmq:shard')

/** The connection dropped after the command was sent and before its reply: it may or may not have run. */
function aborted (err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || /Command aborted due to connection close/i.test(err.message))
}

/** ioredis refused to queue a command while disconnected (enableOfflineQueue: false): it was not sent. */
function notSent (err: unknown): boolean {
  return err instanceof Error && /enableOfflineQueue|Connection is closed|Stream isn't writeable/i.test(err.message) &&
    !/MaxRetriesPerRequest/.test(err.message)
}

type Client = Redis | Cluster
type WakeHandler = (message: string) => void

/**
 * One shard: a Redis endpoint, a Sentinel-managed primary, or a whole Redis Cluster. It owns two
 * connections, created from one factory: `client` for commands (auto-pipelined, scripts defined on it)
 * and, lazily, `subscriber` for wake-up channels.
 *
 * Events: `online` when the command connection is ready (again), `offline` when it is lost, `error`,
 * `dataloss` when it came back without its data.
 */
export class Shard extends EventEmitter {
  readonly id: string
  readonly client: Client
  online = false
  private readonly factory: () => Client
  private subscriber?: Client
  private subscriberReady?: Promise<Client>
  private readonly handlers = new Map<string, Set<WakeHandler>>()
  private readonly bufferHandlers = new Map<string, Set<(message: Buffer) => void>>()
  private closing?: Promise<void>
  private versionChecked?: Promise<void>

  /** Value of this shard's marker key when last seen (see checkMarker). */
  private marker?: string
  private readonly prefix?: string
  /** Last connection error, to explain a connect timeout. */
  lastError?: Error

  private nextReady?: Promise<void>
  /** Grows each time the command connection closes: a WAIT only covers writes of the same connection. */
  connectionGeneration = 0
  /** ms after which a command fails with ERR_BUSMQ_SHARD_UNAVAILABLE (0: never). */
  readonly commandTimeout: number

  constructor (id: string, factory: () => Client, prefix?: string, commandTimeout = 0) {
    super()
    this.id = id
    this.prefix = prefix
    this.commandTimeout = commandTimeout
    this.factory = factory
    this.client = factory()
    defineScripts(this.client)
    this.client.on('ready', () => {
      if (this.online) return
      this.online = true
      debug('%s online', id)
      this.emit('online')
      if (this.marker !== undefined) {
        this.checkMarker().catch((err) => debug('%s marker check failed: %s', id, err.message))
      }
    })
    this.client.on('close', () => {
      this.connectionGeneration++
      if (!this.online) return
      this.online = false
      debug('%s offline', id)
      this.emit('offline')
    })
    this.client.on('error', (err: Error) => {
      this.lastError = err
      this.emit('error', err)
    })
  }

  /** Resolves when the command connection is ready and the server is Redis >= 6.2. */
  async connect (): Promise<void> {
    if (this.client.status === 'wait') {
      this.client.connect().catch(() => { /* reported through 'error' and retried by ioredis */ })
    }
    if (this.client.status !== 'ready') {
      await new Promise<void>((resolve) => this.client.once('ready', () => resolve()))
    }
    this.versionChecked ??= this.checkVersion()
    await this.versionChecked
  }

  private async checkVersion (): Promise<void> {
    // HELLO (not INFO, which ACLs usually deny as @dangerous) tells the server version.
    let version: string | undefined
    try {
      const hello = await this.client.call('HELLO') as unknown[]
      const i = hello.indexOf('version')
      if (i >= 0) version = String(hello[i + 1])
    } catch {
      const info = await this.client.info('server').catch(() => '')
      version = /redis_version:([\d.]+)/.exec(info)?.[1]
    }
    const m = /^(\d+)\.(\d+)/.exec(version ?? '')
    if (m && (Number(m[1]) < 6 || (Number(m[1]) === 6 && Number(m[2]) < 2))) {
      this.versionChecked = undefined
      throw new RedisVersionError(`shard ${this.id} runs Redis ${m[1]}.${m[2]}; BusMQ needs Redis >= 6.2`)
    }
    await this.checkMarker()
  }

  /**
   * A shard that restarts without its data (no persistence, or a wiped replica promoted) would silently
   * lose every queue on it. Each shard holds one marker key; after every reconnection the bus checks
   * that the marker it saw is still there and reports `ERR_BUSMQ_SHARD_DATA_LOST` if not. (Cluster
   * layout: the marker lives on one node only, so only that node's loss is detected.)
   */
  private async checkMarker (): Promise<void> {
    if (!this.prefix) return
    const key = shardMarkerKey(this.prefix)
    const fresh = `${Date.now()}-${Math.random().toString(36).slice(2)}`
    const [, current] = await this.client.multi().set(key, fresh, 'NX').get(key).exec() as Array<[Error | null, any]>
    const seen = current[1] as string
    if (this.marker !== undefined && seen !== this.marker) {
      const err = new ShardDataLossError(`shard ${this.id} came back without its data (marker ${this.marker} is gone): ` +
        'messages stored on it were lost')
      debug('%s', err.message)
      this.emit('dataloss', err)
    }
    this.marker = seen
  }

  /**
   * Runs commands on the command connection, turning failures into coded errors: Redis's own refusals
   * into `ERR_BUSMQ_REDIS`, a shard that does not answer (command timeout, connection lost for good)
   * into `ERR_BUSMQ_SHARD_UNAVAILABLE`.
   */
  async run<T> (fn: (client: Client) => Promise<T>, timeout = this.commandTimeout, idempotent = false): Promise<T> {
    const deadline = timeout > 0 ? Date.now() + timeout : Infinity
    for (;;) {
      let timer: NodeJS.Timeout | undefined
      try {
        const call = fn(this.client)
        if (deadline === Infinity) return await call
        // Our own timer, not ioredis's commandTimeout: it starts when the call is made (not when an
        // auto-pipelined batch is finally written), and calls made without one (readers' pops) keep
        // waiting, so a reply that comes late is never thrown away.
        return await Promise.race([call, new Promise<never>((resolve, reject) => {
          timer = setTimeout(() => reject(new ShardUnavailableError(`shard ${this.id} did not answer within ${timeout} ms ` +
            '(the command may still be applied when it is back)')), Math.max(0, deadline - Date.now()))
          timer.unref()
        })])
      } catch (err) {
        // The offline queue is off: a command issued while the shard is away fails at once without
        // being sent, so it is safe to send again once the shard is back (until the deadline). A command
        // never runs after its caller was told it failed.
        // An idempotent command (a push, which the script deduplicates) may also be sent again when
        // the connection dropped before its reply.
        if ((notSent(err) || (idempotent && aborted(err))) && Date.now() < deadline && !this.closing) {
          await this.whenReady(deadline)
          continue
        }
        if (notSent(err)) {
          throw new ShardUnavailableError(`shard ${this.id} is unavailable: nothing was sent within ${timeout} ms`, { cause: err })
        }
        throw this.wrapError(err)
      } finally {
        clearTimeout(timer)
      }
    }
  }

  /** Resolves when the command connection is ready, or at the deadline (at most 200 ms later, to re-check). */
  private whenReady (deadline: number): Promise<void> {
    // One 'ready' listener however many commands wait (a failover can hold up hundreds).
    this.nextReady ??= new Promise<void>((resolve) => this.client.once('ready', () => {
      this.nextReady = undefined
      resolve()
    }))
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, Math.min(200, deadline - Date.now())))
      timer.unref()
      this.nextReady!.then(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /**
   * Calls a script registered by `defineScripts` (for example `busmq_pop`), bounded by `commandTimeout`
   * unless `timeout` is 0: a read that takes messages must not time out, or its reply would be lost.
   */
  script (name: string, args: Array<string | Buffer | number>, timeout = this.commandTimeout, idempotent = false): Promise<any> {
    return this.run((c) => (c as any)[name](...args), timeout, idempotent)
  }

  private wrapError (err: unknown): unknown {
    if (!(err instanceof Error) || 'code' in err && typeof (err as any).code === 'string' && (err as any).code.startsWith('ERR_BUSMQ')) return err
    if (err.name === 'ReplyError') return new RedisCommandError(`shard ${this.id}: ${err.message}`, { cause: err })
    if (aborted(err) || /timed out|Connection is closed|MaxRetriesPerRequest|enableOfflineQueue|Reached the max retries/i.test(`${err.name} ${err.message}`)) {
      return new ShardUnavailableError(`shard ${this.id} is unavailable: ${err.message}`, { cause: err })
    }
    return err
  }

  /**
   * Subscribes `handler` to a wake-up channel and resolves once the subscription is active, so a
   * wake-up published after this resolves is not missed (unless the connection drops: then every
   * handler is called with 'reconnect' when it is back, and readers re-check).
   */
  async subscribe (channel: string, handler: WakeHandler): Promise<void> {
    let set = this.handlers.get(channel)
    const first = set === undefined
    if (!set) { set = new Set(); this.handlers.set(channel, set) }
    set.add(handler)
    const sub = await this.getSubscriber()
    if (first) await sub.subscribe(channel)
  }

  async unsubscribe (channel: string, handler: WakeHandler): Promise<void> {
    const set = this.handlers.get(channel)
    if (!set || !set.delete(handler)) return
    if (set.size > 0) return
    this.handlers.delete(channel)
    if (this.subscriber && this.subscriber.status === 'ready') {
      await this.subscriber.unsubscribe(channel).catch(() => {})
    }
  }

  /** Binary-safe subscription for pub/sub payloads; resolves with the function that ends it. */
  async subscribeBuffer (channel: string, handler: (message: Buffer) => void): Promise<() => Promise<void>> {
    let set = this.bufferHandlers.get(channel)
    if (!set) { set = new Set(); this.bufferHandlers.set(channel, set) }
    set.add(handler)
    const wake: WakeHandler = () => {}
    await this.subscribe(channel, wake)
    return async () => {
      const handlers = this.bufferHandlers.get(channel)
      handlers?.delete(handler)
      if (handlers?.size === 0) this.bufferHandlers.delete(channel)
      await this.unsubscribe(channel, wake)
    }
  }

  private getSubscriber (): Promise<Client> {
    this.subscriberReady ??= new Promise<Client>((resolve) => {
      const sub = this.factory()
      this.subscriber = sub
      let wasReady = false
      sub.on('error', (err: Error) => debug('%s subscriber error: %s', this.id, err.message))
      sub.on('message', (channel: string, message: string) => {
        const set = this.handlers.get(channel)
        if (set) for (const h of set) h(message)
      })
      sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
        if (this.bufferHandlers.size === 0) return
        const set = this.bufferHandlers.get(channel.toString())
        if (set) for (const h of set) h(message)
      })
      sub.on('ready', () => {
        if (wasReady) {
          // ioredis re-subscribes by itself; wake-ups published while we were away are lost, so
          // tell every waiter to look again.
          for (const set of this.handlers.values()) for (const h of set) h('reconnect')
        }
        wasReady = true
        resolve(sub)
      })
      if (sub.status === 'wait') sub.connect().catch(() => {})
    })
    return this.subscriberReady
  }

  /** Closes both connections; safe to call more than once. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      const quit = async (c: Client | undefined): Promise<void> => {
        if (!c) return
        // A socket torn down mid-handshake (TLS) may still report an error after ioredis stopped
        // listening; it must not become an uncaught exception.
        const stream = (c as unknown as { stream?: NodeJS.EventEmitter }).stream
        stream?.on?.('error', (err: Error) => debug('%s closing: %s', this.id, err.message))
        if (c.status === 'ready') {
          await Promise.race([c.quit().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
        }
        c.disconnect()
      }
      await Promise.all([quit(this.subscriber), quit(this.client)])
      this.online = false
    })()
    return this.closing
  }
}
