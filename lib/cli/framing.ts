import { transform } from 'through2'
import type { Transform } from 'readable-stream'
import { jsonCodec, type Codec } from '../queue/codec.js'
import { BusMQError } from '../errors.js'

/** How stdin is cut into messages and how messages are written to stdout. */
export type Framing = 'bytes' | 'lines' | 'json'

/** A JSON value in a box, so that `null` can travel through objectMode streams (where it means "end"). */
export interface Boxed { v: unknown }

/**
 * JSON, like the library's codec, but every value is boxed on the stream side: a queue may hold the
 * message `null`, which an objectMode stream cannot carry. The stored bytes are exactly what `jsonCodec`
 * stores for the bare value, so other readers and writers of the queue see plain JSON.
 */
export const boxedJsonCodec: Codec = {
  encode: (box: Boxed) => jsonCodec.encode(box.v),
  decode: (payload: Buffer): Boxed => ({ v: jsonCodec.decode(payload) })
}

const NEWLINE = 0x0a

/** A framer: the transform between stdin and the queue, plus a way to make it ignore further input. */
export interface Framer {
  stream: Transform
  /** Makes the framer drop any further input (the command stops reading stdin). */
  stop: () => void
  /** A bad JSON line, if one stopped the framer. */
  failure?: Error
}

/**
 * Cuts stdin into messages: `bytes` passes chunks through as they come (each one message), `lines`
 * emits each line without its newline (a last line without one too), `json` parses each line into a
 * boxed value (blank lines are skipped). Lines are found in bytes, never decoded, so any encoding
 * round-trips. `count` is called with each message and its size; `onBadJson` when a line is not JSON
 * (the framer then stops, so the messages before it still go out and nothing after it does).
 */
export function createFramer (framing: Framing, count: (bytes: number) => void, onBadJson: (err: Error) => void): Framer {
  let stopped = false
  let lineNo = 0
  let parts: Buffer[] = []
  const framer: Framer = { stream: undefined as unknown as Transform, stop: () => { stopped = true } }

  function emit (t: Transform, line: Buffer): void {
    lineNo++
    if (framing === 'lines') {
      count(line.length)
      t.push(line)
      return
    }
    const text = line.toString('utf8')
    if (text.trim() === '') return
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      stopped = true
      framer.failure = new BusMQError(`stdin line ${lineNo} is not JSON: ${(err as Error).message}`, 'ERR_BUSMQ_CLI_BAD_JSON')
      onBadJson(framer.failure)
      return
    }
    count(line.length)
    t.push({ v: value } satisfies Boxed)
  }

  if (framing === 'bytes') {
    framer.stream = transform({ readableObjectMode: true }, function (this: Transform, chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
      if (!stopped && chunk.length > 0) {
        count(chunk.length)
        this.push(chunk)
      }
      cb()
    })
    return framer
  }

  framer.stream = transform({ readableObjectMode: true, readableHighWaterMark: 1024 }, function (this: Transform, chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
    let start = 0
    let i = chunk.indexOf(NEWLINE)
    while (i >= 0 && !stopped) {
      if (parts.length > 0) {
        parts.push(chunk.subarray(start, i))
        emit(this, Buffer.concat(parts))
        parts = []
      } else {
        emit(this, chunk.subarray(start, i))
      }
      start = i + 1
      i = chunk.indexOf(NEWLINE, start)
    }
    if (!stopped && start < chunk.length) parts.push(chunk.subarray(start))
    cb()
  }, function (this: Transform, cb: (err?: Error | null) => void) {
    if (!stopped && parts.length > 0) emit(this, Buffer.concat(parts))
    parts = []
    cb()
  })
  return framer
}

/** The bytes written to stdout for one message. */
export function formatMessage (framing: Framing, data: unknown): Buffer {
  if (framing === 'json') return Buffer.from(`${JSON.stringify((data as Boxed).v)}\n`, 'utf8')
  const buf = data as Buffer
  if (framing === 'bytes') return buf
  const out = Buffer.allocUnsafe(buf.length + 1)
  buf.copy(out)
  out[buf.length] = NEWLINE
  return out
}
