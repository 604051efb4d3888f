import { Readable } from 'readable-stream'
import type { PubSub } from './pubsub.js'
import { decodeMessage } from '../queue/codec.js'
import { BusClosedError } from '../errors.js'
import { closeByBus } from '../util.js'

type Callback = (err?: Error | null) => void

/** The typed face of a subscriber (declaration merging: types only), as for queue readers. */
export interface PubSubReadStream<T = any> {
  [Symbol.asyncIterator] (): AsyncIteratorObject<T, any, any>
  on (event: 'data', listener: (chunk: T) => void): this
  on (event: 'close' | 'end' | 'pause' | 'readable' | 'resume', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
  once (event: 'data', listener: (chunk: T) => void): this
  once (event: 'close' | 'end' | 'pause' | 'readable' | 'resume', listener: () => void): this
  once (event: 'error', listener: (err: Error) => void): this
  once (event: string | symbol, listener: (...args: any[]) => void): this
}

/**
 * Subscriber. Pub/sub cannot be paused at the source, so while the consumer is slower than the
 * publishers messages collect in this stream's buffer (Redis also bounds a slow subscriber with its
 * client-output-buffer-limit).
 *
 * Emits `'subscribed'` once the subscription is active: nothing published after that is missed.
 */
export class PubSubReadStream<T = any> extends Readable {
  private readonly pubsub: PubSub
  /** Subscriptions by shard id: the owner when opened, and each new owner after shards are added. */
  private readonly stops = new Map<string, Promise<() => Promise<void>>>()
  private stopGrowth?: () => void
  private readonly untrack: () => void

  constructor (pubsub: PubSub, highWaterMark: number) {
    super({ objectMode: true, highWaterMark })
    this.pubsub = pubsub
    this.untrack = pubsub.bus.track(this)
  }

  _construct (callback: Callback): void {
    (async () => {
      await this.pubsub.bus.connect()
      // Publishers use the topic's current owner: after shards are added, listen there too.
      this.stopGrowth = this.pubsub.bus.router.onGrowth(() => {
        this.subscribeOwner().catch((err) => this.destroy(err))
      })
      await this.subscribeOwner()
    })().then(() => {
      callback()
      if (!this.destroyed) process.nextTick(() => this.emit('subscribed'))
    }, (err: Error) => {
      // Closed by bus.close() while subscribing: close quietly.
      if (this.destroyed || (err instanceof BusClosedError && this.pubsub.bus.closed)) callback()
      else callback(err)
    })
  }

  private async subscribeOwner (): Promise<void> {
    const shard = this.pubsub.bus.router.owner(this.pubsub.name)
    if (this.stops.has(shard.id) || this.destroyed) return
    const stop = shard.subscriptions.subscribeBuffer(this.pubsub.channel, (message) => this.receive(message))
    this.stops.set(shard.id, stop)
    await stop
  }

  private receive (message: Buffer): void {
    if (this.destroyed) return
    let value: unknown
    try {
      value = decodeMessage(message, this.pubsub.objectMode, this.pubsub.codec)
    } catch (err) {
      this.destroy(err as Error)
      return
    }
    this.push(value)
  }

  override _read (): void {}

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.untrack()
    this.stopGrowth?.()
    const stops = [...this.stops.values()]
    this.stops.clear()
    Promise.allSettled(stops.map(async (stop) => await (await stop)())).then(() => callback(err))
  }

  /**
   * @internal Used by `bus.close()`: a consumer that listens for errors sees `ERR_BUSMQ_CLOSED`,
   * otherwise the stream closes quietly.
   */
  async close (): Promise<void> {
    await closeByBus(this)
  }
}
