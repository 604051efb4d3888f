import { Writable } from 'readable-stream'
import { READER, type Releasable, type ReliableMessage } from './reliable-message.js'
import { InvalidOptionError } from '../errors.js'

type Callback = (err?: Error | null) => void

/**
 * The end of a reliable pipeline: acknowledges every message written to it. A write is accepted as soon
 * as its ack is under way, so the messages written in the same tick (a reader's whole batch, not the
 * first alone) share one ack round trip; at most `highWaterMark` (1024) acks are outstanding before a
 * write waits for them, and `'finish'` comes once every ack has its answer. A failed ack fails the
 * stream. Messages whose lease had already expired are counted in `stale`, not failed.
 */
export class AckStream extends Writable {
  /** Messages acknowledged. */
  acked = 0
  /** Messages that could not be acked because their lease had expired (they will be redelivered). */
  stale = 0

  /** Readers whose messages came through, to give back what they still hold if the pipeline fails. */
  private readonly readers = new Set<Releasable>()
  /** Acks under way (each write's), and how many messages they cover. */
  private readonly pending = new Set<Promise<void>>()
  private outstanding = 0

  constructor () {
    super({ objectMode: true, highWaterMark: 1024 })
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    if (!err || this.readers.size === 0) return callback(err)
    // The pipeline failed: what is still in flight upstream will never reach this stream to be acked.
    Promise.allSettled([...this.readers].map((r) => r.releaseHeld())).then(() => callback(err))
  }

  override _writev (chunks: Array<{ chunk: ReliableMessage }>, callback: Callback): void {
    for (const { chunk } of chunks) {
      if (chunk === null || typeof chunk !== 'object' || typeof chunk.ack !== 'function') {
        return callback(new InvalidOptionError('an ack stream takes the messages of a reliable reader'))
      }
    }
    for (const { chunk } of chunks) {
      const reader = (chunk as any)[READER] as Releasable | undefined
      if (reader) this.readers.add(reader)
    }
    this.outstanding += chunks.length
    const acks = Promise.all(chunks.map(({ chunk }) => chunk.ack())).then((res) => {
      for (const ok of res) if (ok) this.acked++; else this.stale++
    }).finally(() => {
      this.outstanding -= chunks.length
      this.pending.delete(acks)
    })
    this.pending.add(acks)
    if (this.outstanding <= this.writableHighWaterMark) {
      // Accepted now: the next writes' acks join this round trip. A failure fails the stream.
      acks.catch((err: Error) => this.destroy(err))
      callback()
    } else {
      acks.then(() => callback(), callback)
    }
  }

  override _final (callback: Callback): void {
    // 'finish' once every ack is answered (a failed one has destroyed the stream already).
    Promise.all(this.pending).then(() => callback(), callback)
  }

  override _write (chunk: ReliableMessage, _encoding: string, callback: Callback): void {
    this._writev([{ chunk }], callback)
  }
}
