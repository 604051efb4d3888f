import { Buffer } from 'buffer'

/** @internal A streamed reply (a Readable or an async iterable), not a value. */
export function isStreamLike (x: unknown): x is NodeJS.ReadableStream | AsyncIterable<unknown> {
  if (x === null || typeof x !== 'object') return false
  if (Buffer.isBuffer(x)) return false
  return typeof (x as { pipe?: unknown }).pipe === 'function' ||
    typeof (x as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
}
