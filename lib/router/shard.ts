import { EventEmitter } from 'node:events'
import createDebug from 'debug'
import type { Redis, Cluster } from 'ioredis'
import { defineScripts } from '../scripts/index.js'
import { RedisVersionError } from '../errors.js'

const debug = createDebug('busmq:shard')

type Client = Redis | Cluster
type WakeHandler = (message: string) => void

/**
 * One shard: a Redis endpoint, a Sentinel-managed primary, or a whole Redis Cluster. It owns two
 * connections, created from one factory: `client` for commands (auto-pipelined, scripts defined on it)
 * and, lazily, `subscriber` for wake-up channels.
 *
 * Events: `online` when the command connection is ready (again), `offline` when it is lost, `error`.
 */
export class Shard extends EventEmitter {
  readonly id: string
  readonly client: Client
  online = false
  private readonly factory: () => Client
  private subscriber?: Client
  private subscriberReady?: Promise<Client>
  private readonly handlers = new Map<string, Set<WakeHandler>>()
  private closing?: Promise<void>
  private versionChecked?: Promise<void>

  constructor (id: string, factory: () => Client) {
    super()
    this.id = id
    this.factory = factory
    this.client = factory()
    defineScripts(this.client)
    this.client.on('ready', () => {
      if (this.online) return
      this.online = true
      debug('%s online', id)
      this.emit('online')
    })
    this.client.on('close', () => {
      if (!this.online) return
      this.online = false
      debug('%s offline', id)
      this.emit('offline')
    })
    this.client.on('error', (err: Error) => this.emit('error', err))
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
    const info = await this.client.info('server')
    const m = /redis_version:(\d+)\.(\d+)/.exec(info)
    if (m && (Number(m[1]) < 6 || (Number(m[1]) === 6 && Number(m[2]) < 2))) {
      this.versionChecked = undefined
      throw new RedisVersionError(`shard ${this.id} runs Redis ${m[1]}.${m[2]}; BusMQ needs Redis >= 6.2`)
    }
  }

  /** Calls a script registered by `defineScripts` (for example `busmq_pop`). */
  script (name: string, args: Array<string | Buffer | number>): Promise<any> {
    return (this.client as any)[name](...args)
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

  /** Binary-safe subscription for pub/sub payloads. */
  async subscribeBuffer (channel: string, handler: (message: Buffer) => void): Promise<() => Promise<void>> {
    const sub = await this.getSubscriber()
    const listener = (ch: Buffer, message: Buffer): void => { if (ch.toString() === channel) handler(message) }
    sub.on('messageBuffer', listener)
    const wake: WakeHandler = () => {}
    await this.subscribe(channel, wake)
    return async () => {
      sub.off('messageBuffer', listener)
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
