import { Writable } from 'readable-stream'
import { READER, type Releasable, type ReliableMessage } from './reliable-message.js'
import { InvalidOptionError } from '../errors.js'

type Callback = (err?: Error | null) => void

/**
 * The end of a reliable pipeline: acknowledges every message written to it. Acks of one batch go out
 * in one round trip. Messages whose lease had already expired are counted in `stale`, not failed.
 */
export class AckStream extends Writable {
  /** Messages acknowledged. */
  acked = 0
  /** Messages that could not be acked because their lease had expired (they will be redelivered). */
  stale = 0

  /** Readers whose messages came through, to give back what they still hold if the pipeline fails. */
  private readonly readers = new Set<Releasable>()

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
    Promise.all(chunks.map(({ chunk }) => chunk.ack())).then((res) => {
      for (const ok of res) if (ok) this.acked++; else this.stale++
      callback()
    }, callback)
  }

  override _write (chunk: ReliableMessage, _encoding: string, callback: Callback): void {
    this._writev([{ chunk }], callback)
  }
}
