import { Writable } from 'readable-stream'
import createDebug from 'debug'
import type { Queue } from './queue.js'
import type { Producer } from './producer.js'
import { checkCodec, type Codec } from './codec.js'
import { KIND_END } from './element.js'
import type { MessageInput } from './message.js'
import {
  DEFAULT_WRITE_HIGH_WATER_MARK_BYTES, DEFAULT_WRITE_HIGH_WATER_MARK_OBJECTS, type WriteStreamOptions
} from './queue-options.js'

interface Chunk { chunk: any, encoding?: BufferEncoding | string }
type Callback = (err?: Error | null) => void

const debug = createDebug('busmq:writer')

type WriteCallback = (error: Error | null | undefined) => void

/**
 * The typed face of a producer of messages `T` (declaration merging: types only): `write` and `end`
 * take a `T`, or any bytes in byte mode (see lib/queue/message.ts). The `never` signatures accept
 * nothing; they only keep the stream assignable to `NodeJS.WritableStream` (whose chunks are strings
 * and bytes), so `pipeline()` and `pipe()` take it whatever `T` is.
 */
export interface QueueWriteStream<T = any> {
  write (chunk: MessageInput<T>, callback?: WriteCallback): boolean
  write (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: WriteCallback): boolean
  write (chunk: never, encoding?: never, callback?: WriteCallback): boolean
  end (callback?: () => void): this
  end (chunk: MessageInput<T>, callback?: () => void): this
  end (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: () => void): this
  end (chunk: never, encoding?: never, callback?: () => void): this
}

/**
 * Producer side of a queue. Each chunk is one message; every chunk buffered while a round trip is in
 * flight goes out in the next one (`_writev`), and a write's callback fires once Redis has accepted it
 * (or, with `overflow: 'drop'`, dropped it: see `dropped`). Emits `'ready'` once attached to its queue.
 * Its first push binds it to the queue it reaches: once that queue is deleted it fails with
 * `ERR_BUSMQ_QUEUE_DELETED`.
 * With the bus option `replicas`, a batch whose connection changed before its replicas confirmed it (a
 * failover) is sent again to the new primary (stored once) and the stream carries on.
 */
export class QueueWriteStream<T = any> extends Writable {
  readonly queue: Queue
  private readonly producer: Producer
  private readonly objectMode: boolean
  private readonly codec: Codec
  private readonly endMarker: boolean
  /** Messages that did not fit under the queue's `maxLength` and were dropped (`overflow: 'drop'`). */
  dropped = 0
  private attached = false
  private endWakeups?: () => void
  private closingByBus = false
  private readonly untrack: () => void

  constructor (queue: Queue, options: WriteStreamOptions = {}) {
    const objectMode = options.objectMode ?? queue.objectMode
    const codec = checkCodec(options.codec) ?? queue.codec
    super({
      objectMode,
      decodeStrings: true,
      highWaterMark: options.highWaterMark ??
        (objectMode ? DEFAULT_WRITE_HIGH_WATER_MARK_OBJECTS : DEFAULT_WRITE_HIGH_WATER_MARK_BYTES)
    })
    this.queue = queue
    this.objectMode = objectMode
    this.codec = codec
    this.endMarker = options.endMarker ?? false
    this.producer = queue.producer({ retryReplication: true, bind: true })
    this.untrack = queue.bus.track(this)
  }

  _construct (callback: Callback): void {
    this.queue.attachAs('writer').then(async () => {
      this.attached = true
      // A producer of a bounded queue may wait for room: its wake-ups stay subscribed while it is open.
      if (this.queue.maxLength > 0) this.endWakeups = (await this.queue.open()).wakeups.use()
      callback()
      if (!this.destroyed) process.nextTick(() => this.emit('ready'))
    }).catch((err: Error) => {
      // Destroyed while being set up (bus.close(), say): that failure no longer matters to anyone.
      callback(this.destroyed ? null : err)
    })
  }

  override _writev (chunks: Chunk[], callback: Callback): void {
    const payloads: Buffer[] = []
    let failure: Error | undefined
    for (const { chunk } of chunks) {
      try {
        payloads.push(this.queue.encode(chunk, this.objectMode, this.codec))
      } catch (err) {
        // Messages before the bad one still go out, in order; the stream then fails with the error.
        failure = err as Error
        break
      }
    }
    if (payloads.length === 0) return callback(failure)
    this.producer.push(payloads).then(({ stored }) => {
      this.dropped += payloads.length - stored
      callback(failure)
    }, callback)
  }

  override _final (callback: Callback): void {
    // bus.close() is not the producer finishing its input: no end marker then.
    if (!this.endMarker || this.closingByBus) return callback()
    this.producer.push([Buffer.alloc(0)], KIND_END).then(({ stored }) => {
      this.dropped += 1 - stored
      callback()
    }, callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.untrack()
    this.endWakeups?.()
    if (!this.attached) return callback(err)
    this.attached = false
    // This producer is done: its idempotency record in the queue can go. Until the detach lands, this
    // bus's next look at the queue (stats, say) waits for it.
    const detached = this.queue.detachDone([`p${this.producer.id}`], 'writer').catch(() => {})
    this.queue.bus.settle(this.queue.keys.base, detached)
    detached.then(() => callback(err))
  }

  /**
   * @internal Used by `bus.close()`: ends the stream, letting buffered writes finish, without an end
   * marker (the producer did not finish its input). Writes still
   * waiting for room in a full queue fail with `ERR_BUSMQ_CLOSED`; after `bus.close()` nobody listens,
   * so that error is not re-thrown as an uncaught 'error' event.
   */
  async close (): Promise<void> {
    if (this.closed) return
    if (this.listenerCount('error') === 0) this.on('error', (err) => debug('closed with %s', err.message))
    this.closingByBus = true
    await new Promise<void>((resolve) => {
      this.once('close', () => resolve())
      if (!this.writableEnded) this.end()
      // Wake a producer waiting for room, so it sees the bus closing.
      this.queue.wakeAll()
    })
  }
}
