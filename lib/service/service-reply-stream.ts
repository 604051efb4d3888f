import { Writable } from 'readable-stream'
import createDebug from 'debug'
import type { Queue } from '../queue/queue.js'
import type { Producer } from '../queue/producer.js'
import type { Codec } from '../queue/codec.js'
import { KIND_ABORT, KIND_DATA, KIND_END } from '../queue/element.js'
import { ATTACHMENT_FIELD_PREFIX } from '../keys.js'
import { ServiceClosedError } from '../errors.js'
import { encodeError } from './envelope.js'

const debug = createDebug('busmq:service')

type Callback = (err?: Error | null) => void

/** The requester of a streamed reply went away (it destroyed its stream, or died): nothing to send it. */
export class RequesterGoneError extends Error {
  override name = 'RequesterGoneError'
}

/** What a streamed reply needs of the request it answers. */
export interface ReplyStreamSettings {
  /** The reply's queue: bounded (`maxLength`), so a requester that reads slowly holds the writer up. */
  queue: Queue
  objectMode: boolean
  codec: Codec
  /** Aborts pushes waiting for room (the server gave up on the request). */
  signal: AbortSignal
  /** Reliable: claims the reply before its first chunk; false when another server already started it. */
  claim?: () => Promise<boolean>
  /** How often it checks that the requester still reads (its attachment to the reply's queue). */
  checkEvery: number
  exposeStack: boolean
  /** The first chunk is about to be written (the reply has started). */
  started: () => void
  /** The reply is over: stored to its end marker (no error), failed, or abandoned. */
  ended: (err: Error | null) => void
}

/**
 * A streamed reply, server side: each chunk written becomes one message of the request's own reply
 * queue (bounded: a slow requester slows this writer down, which `write()` returning false tells),
 * `end()` stores an end marker, `destroy(err)` an abort marker carrying the error.
 *
 * It does not attach to the queue: the requester's attachment is the only one, so when it lapses (the
 * requester died) or goes (it destroyed its stream), this writer sees it on its next check and stops.
 */
export class ServiceReplyStream extends Writable {
  private readonly settings: ReplyStreamSettings
  private readonly producer: Producer
  /** Aborts pushes waiting for room: the request's signal, or this stream's end. */
  private readonly stop = new AbortController()
  private readonly signal: AbortSignal
  private writing = false
  /** The end (or abort) marker is stored: the requester has the whole reply. */
  private ended = false
  private gone = false
  /** Given up without a word (a reliable request given back): what was stored stays for its reader. */
  private abandoned = false
  /** Set by fail(): the marker at the end is an abort marker carrying it. */
  private failure?: Error
  private watch?: NodeJS.Timeout

  /** @internal Made by `request.replyStream()`. */
  constructor (settings: ReplyStreamSettings) {
    super({
      objectMode: settings.objectMode,
      decodeStrings: true,
      highWaterMark: settings.objectMode ? 64 : 256 * 1024
    })
    this.settings = settings
    this.signal = AbortSignal.any([settings.signal, this.stop.signal])
    this.producer = settings.queue.producer()
    this.watch = setInterval(() => { this.check() }, settings.checkEvery)
    this.watch.unref()
  }

  /** Ends the reply when its requester no longer reads it. */
  private check (): void {
    const { queue } = this.settings
    queue.shard().then((shard) => shard.run((c) => Promise.all([c.hgetall(queue.keys.info), c.time()])))
      .then(([info, time]) => {
        const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
        const reading = Object.entries(info).some(([f, v]) => f.startsWith(ATTACHMENT_FIELD_PREFIX) && Number(v) > now)
        if (!reading && !this.destroyed) {
          this.gone = true
          debug('nobody reads the streamed reply %s any more', queue.name)
          this.destroy(new RequesterGoneError(`the requester of ${queue.name} went away`))
        }
      }, (err: Error) => debug('checking the reader of %s failed: %s', queue.name, err.message))
  }

  /**
   * @internal Ends the reply with an error: what was written before goes out first, then the requester
   * fails with it (`ERR_BUSMQ_REMOTE`; `ERR_BUSMQ_SERVICE_CLOSED` for a ServiceClosedError).
   */
  fail (err: Error): void {
    if (this.writableEnded || this.destroyed) return
    this.failure = err
    this.end()
  }

  /**
   * @internal Stops without telling the requester (a reliable request given back for another server,
   * whose streamed reply it starts again, or fails if this one had started it).
   */
  abandon (): void {
    this.abandoned = true
    this.destroy()
  }

  private async begin (): Promise<void> {
    if (this.writing) return
    this.writing = true
    const { claim, started } = this.settings
    if (claim && !await claim()) {
      // A reliable request redelivered after its first server had started the reply: the requester has
      // part of it already, and a second copy would corrupt it.
      throw new ServiceClosedError('the server that had started this streamed reply stopped half-way')
    }
    started()
  }

  override _writev (chunks: Array<{ chunk: any }>, callback: Callback): void {
    let payloads: Buffer[]
    try {
      payloads = chunks.map(({ chunk }) => this.settings.queue.encode(chunk, this.settings.objectMode, this.settings.codec))
    } catch (err) {
      return callback(err as Error)
    }
    this.begin()
      .then(() => this.producer.push(payloads, KIND_DATA, this.signal))
      .then(() => callback(), callback)
  }

  override _final (callback: Callback): void {
    const failure = this.failure
    const marker = failure
      ? this.producer.push([encodeError(failure, this.settings.exposeStack, failure instanceof ServiceClosedError)], KIND_ABORT, this.signal)
      : this.begin().then(() => this.producer.push([Buffer.alloc(0)], KIND_END, this.signal))
    marker.then(() => {
      this.ended = true
      callback()
    }, callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    clearInterval(this.watch)
    this.stop.abort()
    const { queue, exposeStack, ended } = this.settings
    const done = async (): Promise<void> => {
      if (this.ended || this.abandoned) return
      const failure = err ?? new Error('the streamed reply was destroyed before its end')
      if (this.gone || failure instanceof RequesterGoneError) {
        // Nobody will read what was stored ahead.
        await (await queue.shard()).run((c) => c.del(queue.keys.messages))
        return
      }
      // The requester fails with this error once it has read what came before. It may have to wait for
      // room, as long as a requester that stopped reading is still seen as alive: at most a TTL.
      const closed = failure instanceof ServiceClosedError
      await this.producer.push([encodeError(failure, exposeStack, closed)], KIND_ABORT, AbortSignal.timeout(queue.ttl))
    }
    done().catch((e: Error) => debug('ending the streamed reply %s failed: %s', queue.name, e.message))
      .finally(() => {
        ended(this.ended ? null : this.gone ? new RequesterGoneError('the requester went away') : err ?? new Error('destroyed'))
        // The handle is done: it no longer closes with the bus.
        queue.close().catch(() => {})
        callback(err)
      })
  }
}
