import type { Queue } from '../queue/queue.js'
import type { Codec } from '../queue/codec.js'
import type { Element } from '../queue/element.js'
import { QueueReadStream } from '../queue/queue-read-stream.js'
import { RequestTimeoutError } from '../errors.js'
import { decodeError } from './envelope.js'

type Callback = (err?: Error | null) => void

export interface ReplyReaderSettings {
  objectMode: boolean
  codec: Codec
  highWaterMark: number
  /** ms until the first chunk, then the longest wait for the next one while the reader wants data. */
  timeout: number
  /** What to call the request in a timeout's message. */
  what: string
  /** Sends the request, once the reply's queue is attached (so the server finds it where this reads). */
  send: () => Promise<void>
}

/**
 * A streamed reply, requester side (`service.requestStream()`): a reader of the request's own reply
 * queue that ends at the server's end marker and fails at its abort marker with the server's error
 * (`ERR_BUSMQ_REMOTE`, or `ERR_BUSMQ_SERVICE_CLOSED`). It sends the request once it is attached to the
 * queue, and fails with `ERR_BUSMQ_REQUEST_TIMEOUT` if no chunk comes within `timeout` of the request,
 * or of the last chunk while it waits for more (a reader that stops reading is never timed out: the
 * server waits for it). Destroyed before the end, it detaches and drops what is left in Redis: the server
 * sees that nobody reads any more and stops.
 */
export class ServiceReplyReader<T = any> extends QueueReadStream<T> {
  private readonly reply: ReplyReaderSettings
  private timer?: NodeJS.Timeout
  private started = false

  /** @internal Made by `service.requestStream()`. */
  constructor (queue: Queue, settings: ReplyReaderSettings) {
    super(queue, { objectMode: settings.objectMode, codec: settings.codec, highWaterMark: settings.highWaterMark, untilEnd: true })
    this.reply = settings
    this.arm(`no reply to ${settings.what} within ${settings.timeout} ms`)
  }

  private arm (message: string): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (!this.destroyed && !this.readableEnded) this.destroy(new RequestTimeoutError(message))
    }, this.reply.timeout)
  }

  override _construct (callback: Callback): void {
    super._construct((err) => {
      if (err) return callback(err)
      this.reply.send().then(() => callback(), (e: Error) => callback(this.destroyed ? null : e))
    })
  }

  override _read (): void {
    // Waiting for the next chunk: the server must send it within the timeout.
    if (this.started && !this.timer) this.arm(`the streamed reply to ${this.reply.what} paused for more than ${this.reply.timeout} ms`)
    super._read()
  }

  override push (chunk: any, encoding?: BufferEncoding): boolean {
    this.started = true
    clearTimeout(this.timer)
    this.timer = undefined
    return super.push(chunk, encoding)
  }

  protected override abortError (el: Element): Error {
    return decodeError(el.payload)
  }

  protected override remember (): void {
    // Nothing is ever given back to the queue (see release()): no need to keep what was read.
  }

  protected override async release (unhanded: number): Promise<void> {
    if (this.readableEnded) return await super.release(unhanded)
    // Cut short: nobody else will read what the server stored ahead.
    await this.shard.run((c) => c.del(this.queue.keys.messages))
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    clearTimeout(this.timer)
    this.timer = undefined
    super._destroy(err, (e) => {
      // The handle was this stream's alone: it no longer closes with the bus.
      this.queue.close().catch(() => {}).finally(() => callback(e))
    })
  }
}
