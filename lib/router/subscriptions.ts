import createDebug from 'debug'
import type { Redis, Cluster } from 'ioredis'
import { BusClosedError } from '../errors.js'

const debug = createDebug('busmq:subscriptions')

type Client = Redis | Cluster
/** Called with each message on the channel; with 'reconnect' after the subscriber connection came back. */
export type MessageHandler = (message: string) => void
export type BufferHandler = (message: Buffer) => void

/**
 * The pub/sub side of one shard: one subscriber connection, made lazily from the shard's connection
 * factory, shared by every channel subscribed on the shard (queue wake-ups, channel presence, pub/sub
 * topics). A channel is subscribed while it has at least one handler.
 */
export class SubscriptionHub {
  private readonly factory: () => Client
  private readonly shardId: string
  private subscriber?: Client
  private ready?: Promise<Client>
  private rejectReady?: (err: Error) => void
  /** Channels unsubscribed while the connection was away: ioredis re-subscribes them when it is back. */
  private readonly stale = new Set<string>()
  private readonly handlers = new Map<string, Set<MessageHandler>>()
  private readonly bufferHandlers = new Map<string, Set<BufferHandler>>()
  private closed = false

  constructor (shardId: string, factory: () => Client) {
    this.shardId = shardId
    this.factory = factory
  }

  /** Channels subscribed now (for tests and stats). */
  get channels (): number {
    return this.handlers.size
  }

  /**
   * Subscribes `handler` to `channel` and resolves once the subscription is active, so a message
   * published after this resolves is not missed (unless the connection drops: then every handler is
   * called with 'reconnect' when it is back, so that waiters look again).
   */
  async subscribe (channel: string, handler: MessageHandler): Promise<void> {
    if (this.closed) throw new BusClosedError()
    let set = this.handlers.get(channel)
    const first = set === undefined
    if (!set) {
      set = new Set()
      this.handlers.set(channel, set)
    }
    set.add(handler)
    this.stale.delete(channel)
    try {
      const sub = await this.connection()
      if (first) await sub.subscribe(channel)
    } catch (err) {
      // Not subscribed after all: forget the handler, so that the next subscribe of the channel sends
      // SUBSCRIBE again instead of believing it is in place.
      set.delete(handler)
      if (set.size === 0 && this.handlers.get(channel) === set) this.handlers.delete(channel)
      throw err
    }
  }

  /** Removes `handler`; the channel is unsubscribed once it has none. */
  async unsubscribe (channel: string, handler: MessageHandler): Promise<void> {
    const set = this.handlers.get(channel)
    if (!set || !set.delete(handler)) return
    if (set.size > 0) return
    this.handlers.delete(channel)
    if (this.subscriber && this.subscriber.status === 'ready') {
      await this.subscriber.unsubscribe(channel).catch(() => {})
    } else if (this.subscriber) {
      this.stale.add(channel)
    }
  }

  /** Binary-safe subscription (pub/sub payloads); resolves with the function that ends it. */
  async subscribeBuffer (channel: string, handler: BufferHandler): Promise<() => Promise<void>> {
    let set = this.bufferHandlers.get(channel)
    if (!set) {
      set = new Set()
      this.bufferHandlers.set(channel, set)
    }
    set.add(handler)
    const anchor: MessageHandler = () => {}
    await this.subscribe(channel, anchor)
    return async () => {
      const handlers = this.bufferHandlers.get(channel)
      handlers?.delete(handler)
      if (handlers?.size === 0) this.bufferHandlers.delete(channel)
      await this.unsubscribe(channel, anchor)
    }
  }

  private connection (): Promise<Client> {
    if (this.ready) return this.ready
    this.ready = new Promise<Client>((resolve, reject) => {
      this.rejectReady = reject
      const sub = this.factory()
      this.subscriber = sub
      let wasReady = false
      sub.on('error', (err: Error) => debug('%s subscriber error: %s', this.shardId, err.message))
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
        // ioredis re-subscribed everything it had; what was unsubscribed meanwhile goes again.
        const stale = [...this.stale].filter((c) => !this.handlers.has(c))
        this.stale.clear()
        if (stale.length > 0) sub.unsubscribe(...stale).catch(() => {})
        if (wasReady) {
          // ioredis re-subscribes by itself; what was published while we were away is lost, so tell
          // every handler to look again.
          for (const set of this.handlers.values()) for (const h of set) h('reconnect')
        }
        wasReady = true
        resolve(sub)
      })
      if (sub.status === 'wait') sub.connect().catch(() => {})
    })
    this.ready.catch(() => {})
    return this.ready
  }

  /** The subscriber connection, if one was made (closing). */
  get client (): Client | undefined {
    return this.subscriber
  }

  close (): void {
    this.closed = true
    this.handlers.clear()
    this.bufferHandlers.clear()
    // Whoever still waits for the subscriber connection learns it will not come.
    this.rejectReady?.(new BusClosedError())
  }

  get isClosed (): boolean {
    return this.closed
  }
}
