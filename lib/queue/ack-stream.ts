import { Writable } from 'readable-stream'
import type { ReliableMessage } from './reliable-message.js'
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

  constructor () {
    super({ objectMode: true, highWaterMark: 1024 })
  }

  override _writev (chunks: Array<{ chunk: ReliableMessage }>, callback: Callback): void {
    for (const { chunk } of chunks) {
      if (chunk === null || typeof chunk !== 'object' || typeof chunk.ack !== 'function') {
        return callback(new InvalidOptionError('an ack stream takes the messages of a reliable reader'))
      }
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
