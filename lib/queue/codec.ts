import { EncodeError, DecodeError, InvalidOptionError } from '../errors.js'

/** Turns values into bytes and back, for objectMode streams. */
export interface Codec {
  encode: (value: any) => Buffer | string
  decode: (payload: Buffer) => any
}

/** Options shared by everything that moves messages. */
export interface CodecOptions {
  /**
   * Messages are values (JSON by default) instead of bytes.
   * @default false
   */
  objectMode?: boolean
  /** Codec used in objectMode instead of JSON. @default JSON, parsed without `__proto__` keys */
  codec?: Codec
}

/** What makes a payload need the slow, safe parse (a Buffer needle: searching with a string converts it each time). */
const PROTO = Buffer.from('__proto__')
const ESCAPE = Buffer.from('\\u')

function dropProto (key: string, value: unknown): unknown {
  return key === '__proto__' ? undefined : value
}

/**
 * JSON codec. `undefined`, functions, symbols, BigInts and cycles cannot be encoded and throw
 * `ERR_BUSMQ_ENCODE`. Decoding drops every `__proto__` key, so a payload cannot smuggle a prototype into
 * objects that are later merged with `Object.assign` or spread.
 */
export const jsonCodec: Codec = {
  encode (value: unknown): string {
    const s = JSON.stringify(value)
    if (s === undefined) throw new TypeError(`JSON cannot encode a value of type ${typeof value}`)
    return s
  },
  decode (payload: Buffer): unknown {
    // The reviver costs a few times the parse; only payloads that mention __proto__ (or could spell it
    // with escapes) need it.
    return payload.includes(PROTO) || payload.includes(ESCAPE)
      ? JSON.parse(payload.toString('utf8'), dropProto)
      : JSON.parse(payload.toString('utf8'))
  }
}

/** Byte mode: Buffers as they are, strings in UTF-8 (or the encoding they were written with). */
export function toBuffer (chunk: unknown, encoding?: BufferEncoding): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8')
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  throw new EncodeError(`byte-mode messages are Buffers, Uint8Arrays or strings, got ${chunk === null ? 'null' : typeof chunk}`)
}

export function checkCodec (codec: unknown): Codec | undefined {
  if (codec === undefined) return undefined
  const c = codec as Codec
  if (typeof c !== 'object' || c === null || typeof c.encode !== 'function' || typeof c.decode !== 'function') {
    throw new InvalidOptionError('codec must be an object with encode(value) and decode(buffer) functions')
  }
  return c
}

/**
 * Encodes one message to bytes, or to the string the codec made (UTF-8, for a caller that writes it
 * into a buffer of its own: a service envelope), wrapping codec failures in `ERR_BUSMQ_ENCODE`.
 */
export function encodeValue (value: unknown, objectMode: boolean, codec: Codec): Buffer | string {
  if (!objectMode) return toBuffer(value)
  let out: unknown
  try {
    out = codec.encode(value)
  } catch (err) {
    throw new EncodeError(`message could not be encoded: ${(err as Error).message}`, { cause: err })
  }
  if (typeof out === 'string' || Buffer.isBuffer(out)) return out
  if (out instanceof Uint8Array) return Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  throw new EncodeError('codec.encode must return a Buffer or a string')
}

/** Encodes one message to bytes, wrapping codec failures in `ERR_BUSMQ_ENCODE`. */
export function encodeMessage (value: unknown, objectMode: boolean, codec: Codec): Buffer {
  const out = encodeValue(value, objectMode, codec)
  return typeof out === 'string' ? Buffer.from(out, 'utf8') : out
}

/** Decodes one payload, wrapping codec failures in `ERR_BUSMQ_DECODE`. */
export function decodeMessage (payload: Buffer, objectMode: boolean, codec: Codec): unknown {
  if (!objectMode) return payload
  try {
    return codec.decode(payload)
  } catch (err) {
    throw new DecodeError(`message could not be decoded: ${(err as Error).message}`, { cause: err })
  }
}
