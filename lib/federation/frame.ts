/**
 * The federation wire format: one WebSocket binary message is one frame,
 *
 *   byte 0      frame type (FrameType)
 *   bytes 1..4  stream id, unsigned 32-bit big-endian (0: the connection itself)
 *   bytes 5..   payload, its layout fixed by the type
 *
 * Every frame is checked before anything acts on it ({@link decodeFrame}): a frame that is truncated,
 * of an unknown type, on the wrong stream, or whose payload does not parse exactly is a protocol error,
 * and the connection that sent it is closed with the reason.
 */
import { Buffer } from 'buffer'

export enum FrameType {
  /** server → client, stream 0: a fresh 32-byte nonce to prove the secret against. */
  CHALLENGE = 1,
  /** client → server, stream 0: client nonce (32) + HMAC (32) + JSON hello. */
  AUTH = 2,
  /** server → client, stream 0: the server's own HMAC (32) + JSON welcome. */
  WELCOME = 3,
  /** client → server: opens a stream, JSON { op, name, options }. */
  OPEN = 4,
  /** server → client: the stream is open, JSON details. */
  OPENED = 5,
  /** either way: messages ({@link encodeBatch}). */
  DATA = 6,
  /** either way: the receiver consumed bytes and messages, the sender may send that much more. */
  CREDIT = 7,
  /** server → client: the write batch with this number is stored. */
  ACK = 8,
  /** either way: no more DATA in this direction (a half-close). */
  END = 9,
  /** either way: the stream failed or was destroyed, JSON { code, message }; it is gone. */
  RESET = 10,
  /** client → server: a one-off call, JSON { op, name, args } + a batch of payloads. */
  CALL = 11,
  /** server → client: the answer to a call, JSON { result } or { error } + a batch of payloads. */
  REPLY = 12,
  /** either way, stream 0: keep-alive; answered with PONG. */
  PING = 13,
  PONG = 14,
  /** server → client: something happened to a stream (a channel's peer came or went), JSON. */
  EVENT = 15
}

export const HEADER_SIZE = 5
export const NONCE_SIZE = 32
export const MAC_SIZE = 32
/** Bytes a message costs in a batch besides its payload: id (8) + length (4). */
export const MESSAGE_OVERHEAD = 12
const BATCH_HEADER = 12

/** Frame types that belong to the connection (stream 0) and those that belong to a stream. */
const CONNECTION_TYPES = new Set([FrameType.CHALLENGE, FrameType.AUTH, FrameType.WELCOME, FrameType.PING, FrameType.PONG])

export interface Frame {
  type: FrameType
  stream: number
  payload: Buffer
}

/** A frame that breaks the protocol; `reason` goes into the WebSocket close frame. */
export class ProtocolError extends Error {
  constructor (readonly reason: string) {
    super(reason)
    this.name = 'ProtocolError'
  }
}

export function encodeFrame (type: FrameType, stream: number, payload?: Uint8Array | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload
  const out = Buffer.allocUnsafe(HEADER_SIZE + (body?.length ?? 0))
  out[0] = type
  out.writeUInt32BE(stream, 1)
  if (body) out.set(body, HEADER_SIZE)
  return out
}

/** A JSON frame. */
export function jsonFrame (type: FrameType, stream: number, value: unknown): Buffer {
  return encodeFrame(type, stream, JSON.stringify(value))
}

/**
 * Parses and checks one frame. Throws {@link ProtocolError} for anything but a well-formed frame of a
 * known type on the right kind of stream.
 */
export function decodeFrame (data: Uint8Array): Frame {
  if (data.length < HEADER_SIZE) throw new ProtocolError(`truncated frame (${data.length} bytes)`)
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length)
  const type = buf[0]
  if (FrameType[type] === undefined) throw new ProtocolError(`unknown frame type ${type}`)
  const stream = buf.readUInt32BE(1)
  if (CONNECTION_TYPES.has(type) !== (stream === 0)) {
    throw new ProtocolError(`frame ${FrameType[type]} on ${stream === 0 ? 'the connection' : `stream ${stream}`}`)
  }
  const payload = buf.subarray(HEADER_SIZE)
  switch (type) {
    case FrameType.CHALLENGE:
      if (payload.length !== NONCE_SIZE) throw new ProtocolError('bad CHALLENGE frame')
      break
    case FrameType.AUTH:
    case FrameType.WELCOME:
      if (payload.length < (type === FrameType.AUTH ? NONCE_SIZE + MAC_SIZE : MAC_SIZE)) {
        throw new ProtocolError(`truncated ${FrameType[type]} frame`)
      }
      break
    case FrameType.CREDIT:
      if (payload.length !== 8) throw new ProtocolError('bad CREDIT frame')
      break
    case FrameType.ACK:
      if (payload.length !== 8) throw new ProtocolError('bad ACK frame')
      break
    case FrameType.END:
      if (payload.length !== 0) throw new ProtocolError('bad END frame')
      break
    case FrameType.PING:
    case FrameType.PONG:
      if (payload.length > 8) throw new ProtocolError(`bad ${FrameType[type]} frame`)
      break
    case FrameType.DATA:
      checkBatch(payload)
      break
    case FrameType.CALL:
    case FrameType.REPLY:
      splitCall(payload)
      break
  }
  return { type, stream, payload }
}

/** A JSON payload that must be an object. */
export function parseJson (payload: Uint8Array, what: string): Record<string, any> {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('utf8'),
      (key, v) => key === '__proto__' ? undefined : v)
  } catch {
    throw new ProtocolError(`${what}: not JSON`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ProtocolError(`${what}: not a JSON object`)
  return value as Record<string, any>
}

/** One message of a batch: its id (0 when it has none) and payload. */
export interface WireMessage {
  id: number
  payload: Buffer
}

/** A batch: a tag (the write batch number, or 0) and messages, each `id (f64) | length (u32) | bytes`. */
export function encodeBatch (tag: number, messages: readonly WireMessage[]): Buffer {
  return writeBatch(tag, messages, 0)
}

/** A DATA frame of a batch, made with one copy of the payloads. */
export function dataFrame (stream: number, tag: number, messages: readonly WireMessage[]): Buffer {
  const out = writeBatch(tag, messages, HEADER_SIZE)
  out[0] = FrameType.DATA
  out.writeUInt32BE(stream, 1)
  return out
}

function writeBatch (tag: number, messages: readonly WireMessage[], offset: number): Buffer {
  let size = offset + BATCH_HEADER
  for (const m of messages) size += MESSAGE_OVERHEAD + m.payload.length
  const out = Buffer.allocUnsafe(size)
  out.writeDoubleBE(tag, offset)
  out.writeUInt32BE(messages.length, offset + 8)
  let at = offset + BATCH_HEADER
  for (const m of messages) {
    out.writeDoubleBE(m.id, at)
    out.writeUInt32BE(m.payload.length, at + 8)
    out.set(m.payload, at + MESSAGE_OVERHEAD)
    at += MESSAGE_OVERHEAD + m.payload.length
  }
  return out
}

function checkBatch (payload: Buffer): void {
  if (payload.length < BATCH_HEADER) throw new ProtocolError('truncated DATA frame')
  const tag = payload.readDoubleBE(0)
  if (!Number.isSafeInteger(tag) || tag < 0) throw new ProtocolError('bad DATA frame tag')
  const count = payload.readUInt32BE(8)
  let at = BATCH_HEADER
  for (let i = 0; i < count; i++) {
    if (at + MESSAGE_OVERHEAD > payload.length) throw new ProtocolError('truncated DATA frame')
    const id = payload.readDoubleBE(at)
    if (!Number.isSafeInteger(id) || id < 0) throw new ProtocolError('bad message id in DATA frame')
    at += MESSAGE_OVERHEAD + payload.readUInt32BE(at + 8)
    if (at > payload.length) throw new ProtocolError('truncated DATA frame')
  }
  if (at !== payload.length) throw new ProtocolError('DATA frame longer than its messages')
}

/** The batch of a checked DATA payload. */
export function decodeBatch (payload: Buffer): { tag: number, messages: WireMessage[] } {
  const tag = payload.readDoubleBE(0)
  const count = payload.readUInt32BE(8)
  const messages: WireMessage[] = new Array(count)
  let at = BATCH_HEADER
  for (let i = 0; i < count; i++) {
    const id = payload.readDoubleBE(at)
    const len = payload.readUInt32BE(at + 8)
    messages[i] = { id, payload: payload.subarray(at + MESSAGE_OVERHEAD, at + MESSAGE_OVERHEAD + len) }
    at += MESSAGE_OVERHEAD + len
  }
  return { tag, messages }
}

/** A CALL or REPLY payload: `json length (u32) | JSON | batch`. */
export function encodeCall (value: unknown, payloads: readonly Buffer[] = []): Buffer {
  const json = Buffer.from(JSON.stringify(value))
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(json.length, 0)
  return Buffer.concat([head, json, encodeBatch(0, payloads.map((payload) => ({ id: 0, payload })))])
}

function splitCall (payload: Buffer): { json: Buffer, batch: Buffer } {
  if (payload.length < 4) throw new ProtocolError('truncated CALL/REPLY frame')
  const len = payload.readUInt32BE(0)
  if (4 + len > payload.length) throw new ProtocolError('truncated CALL/REPLY frame')
  const batch = payload.subarray(4 + len)
  checkBatch(batch)
  return { json: payload.subarray(4, 4 + len), batch }
}

export function decodeCall (payload: Buffer, what: string): { value: Record<string, any>, payloads: Buffer[] } {
  const { json, batch } = splitCall(payload)
  return { value: parseJson(json, what), payloads: decodeBatch(batch).messages.map((m) => m.payload) }
}

export function creditPayload (bytes: number, messages: number): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeUInt32BE(Math.min(bytes, 0xffffffff), 0)
  out.writeUInt32BE(Math.min(messages, 0xffffffff), 4)
  return out
}

export function readCredit (payload: Buffer): { bytes: number, messages: number } {
  return { bytes: payload.readUInt32BE(0), messages: payload.readUInt32BE(4) }
}

export function numberPayload (n: number): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeDoubleBE(n, 0)
  return out
}

/** The size of a message in credit: its payload and its overhead. */
export function cost (payload: Uint8Array): number {
  return payload.length + MESSAGE_OVERHEAD
}

/** A reply from a federated service handler: `request number (f64) | status (u8) | payload`. */
export const REPLY_VALUE = 0
export const REPLY_EMPTY = 1
export const REPLY_ERROR = 2
/** A message of a streamed reply (`service.reply` stream): `kind (u8) | body`, a chunk or (last) REPLY_ERROR. */
export const REPLY_CHUNK = 3
/** Flags of a request handed to a federated handler (`deadline (f64) | flags (u8) | data`): the reply is streamed. */
export const REQUEST_STREAMED = 1
/** Flag of a request: nobody waits for its reply (`service.send()`). */
export const REQUEST_NO_REPLY = 4
/**
 * Flag of a message on the `service.serve` stream that is not a request: request `id` (answered or not)
 * was aborted on the federation server (its `signal` aborted); the data is the reason, JSON `{ name, message, code }`.
 */
export const REQUEST_ABORT = 2

/**
 * An error as a message carries it (a federated handler's failure, a request's abort reason): JSON
 * `{ name, message, code }`; `message` is `fallback` when the error has none.
 */
export function errorPayload (err: unknown, fallback = String(err)): Buffer {
  const e = (err ?? {}) as { name?: unknown, message?: unknown, code?: unknown }
  return Buffer.from(JSON.stringify({
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: typeof e.message === 'string' ? e.message : fallback,
    code: typeof e.code === 'string' ? e.code : undefined
  }))
}

/** The error of an {@link errorPayload} (its `message` is `fallback` when the payload has none). */
export function errorFromPayload (body: Buffer, fallback: string): Error & { code?: string } {
  let e: { name?: unknown, message?: unknown, code?: unknown } = {}
  try {
    e = JSON.parse(body.toString('utf8'))
  } catch {}
  const err: Error & { code?: string } = new Error(typeof e.message === 'string' ? e.message : fallback)
  if (typeof e.name === 'string') err.name = e.name
  if (typeof e.code === 'string') err.code = e.code
  return err
}
