import { Readable, Writable } from 'readable-stream'
import type { Bus } from '../bus.js'
import { pubsubChannel } from '../keys.js'
import { checkCodec, decodeMessage, encodeMessage, jsonCodec, type Codec, type CodecOptions } from '../queue/codec.js'
import { BusClosedError, MessageTooLargeError } from '../errors.js'
import { publish } from '../scripts/index.js'
import { closeByBus } from '../util.js'
import type { MessageInput } from '../queue/message.js'

type Callback = (err?: Error | null) => void
type WriteCallback = (error: Error | null | undefined) => void

/**
 * Plain publish/subscribe on one topic: nothing is stored, a subscriber sees what is published while it
 * is subscribed. Topics are sharded by name like queues (rendezvous hashing over the shards). `T` is the
 * type of its messages (see lib/queue/message.ts).
 */
export class PubSub<T = any> {
  readonly name: string
  readonly bus: Bus
  readonly channel: string
  readonly objectMode: boolean
  readonly codec: Codec

  constructor (bus: Bus, name: string, options: CodecOptions = {}) {
    this.bus = bus
    this.name = name
    this.channel = pubsubChannel(bus.settings.prefix, name)
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
  }

  /** @internal Encodes one message, checking its size. */
  encode (value: unknown): Buffer {
    const buf = encodeMessage(value, this.objectMode, this.codec)
    if (buf.length > this.bus.settings.maxMessageSize) {
      throw new MessageTooLargeError(`message of ${buf.length} bytes is over maxMessageSize (${this.bus.settings.maxMessageSize} bytes)`)
    }
    return buf
  }

  /** Publishes one message; resolves with the number of subscribers (connections) that received it. */
  async publish (message: MessageInput<T>): Promise<number> {
    const payload = this.encode(message)
    await this.bus.connect()
    return await publish(this.bus.router.owner(this.name), { channel: this.channel, payload })
  }

  /** A Readable of what is published from now on (never ends by itself). */
  createReadStream (options: { highWaterMark?: number } = {}): PubSubReadStream<T> {
    this.bus.assertOpen()
    return new PubSubReadStream<T>(this, options.highWaterMark ?? 1024)
  }

  /** A Writable publisher: each chunk is one message. */
  createWriteStream (options: { highWaterMark?: number } = {}): PubSubWriteStream<T> {
    this.bus.assertOpen()
    return new PubSubWriteStream<T>(this, options.highWaterMark)
  }
}

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

/** The typed face of a publisher (declaration merging: types only), as for queue producers. */
export interface PubSubWriteStream<T = any> {
  write (chunk: MessageInput<T>, callback?: WriteCallback): boolean
  write (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: WriteCallback): boolean
  write (chunk: never, encoding?: never, callback?: WriteCallback): boolean
  end (callback?: () => void): this
  end (chunk: MessageInput<T>, callback?: () => void): this
  end (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: () => void): this
  end (chunk: never, encoding?: never, callback?: () => void): this
}

/** Publisher: every buffered chunk is published in one pipelined round trip. */
export class PubSubWriteStream<T = any> extends Writable {
  private readonly pubsub: PubSub
  private readonly untrack: () => void

  constructor (pubsub: PubSub, highWaterMark?: number) {
    super({ objectMode: pubsub.objectMode, decodeStrings: true, highWaterMark })
    this.pubsub = pubsub
    this.untrack = pubsub.bus.track(this)
  }

  _construct (callback: Callback): void {
    this.pubsub.bus.connect().then(() => callback(), callback)
  }

  override _writev (chunks: Array<{ chunk: any }>, callback: Callback): void {
    let payloads: Buffer[]
    try {
      payloads = chunks.map(({ chunk }) => this.pubsub.encode(chunk))
    } catch (err) {
      return callback(err as Error)
    }
    const shard = this.pubsub.bus.router.owner(this.pubsub.name)
    Promise.all(payloads.map((payload) => publish(shard, { channel: this.pubsub.channel, payload }))).then(() => callback(), callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.untrack()
    callback(err)
  }

  /** @internal Used by `bus.close()`: ends the publisher after what it buffered. */
  async close (): Promise<void> {
    if (this.destroyed) return
    await new Promise<void>((resolve) => {
      this.once('close', () => resolve())
      if (!this.writableEnded) this.end()
    })
  }
}
