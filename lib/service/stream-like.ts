import { Buffer } from 'buffer'
import type { EventEmitter } from 'events'
import { drained } from '../util.js'

/** @internal A streamed reply (a Readable or an async iterable), not a value. */
export function isStreamLike (x: unknown): x is NodeJS.ReadableStream | AsyncIterable<unknown> {
  if (x === null || typeof x !== 'object') return false
  if (Buffer.isBuffer(x)) return false
  return typeof (x as { pipe?: unknown }).pipe === 'function' ||
    typeof (x as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
}

/** @internal What {@link writeReply} writes to: a streamed reply's Writable (native or federated). */
export interface ReplyWritable extends EventEmitter {
  readonly destroyed: boolean
  readonly writableEnded: boolean
  write: (chunk: any) => boolean
  end: () => unknown
}

/**
 * @internal Writes a handler's stream of chunks into its streamed reply at the requester's pace, then
 * ends the reply; resolves with true. A source that fails fails the request instead (`fail`, after the
 * chunks written before): resolves with false. Leaving the loop early (the reply was cut: its requester
 * went away) destroys the source.
 */
export async function writeReply (source: NodeJS.ReadableStream | AsyncIterable<unknown>, w: ReplyWritable,
  fail: (err: unknown) => Promise<unknown>): Promise<boolean> {
  try {
    for await (const chunk of source as AsyncIterable<unknown>) {
      if (w.destroyed) break
      if (!w.write(chunk)) await drained(w)
    }
  } catch (err) {
    await fail(err)
    return false
  }
  if (!w.destroyed && !w.writableEnded) w.end()
  return true
}
