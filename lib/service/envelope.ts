/**
 * The stored form of service requests and replies (payloads of queue messages, lib/queue/element.ts).
 *
 * A request, on the service's request queue:
 *   [0]       format version (1)
 *   [1]       flags: 1 a reply is wanted (`request`, `requestStream`), 2 the reply is streamed
 *   [2..9]    deadline: ms since the epoch on the clock of the service's shard (float64 BE)
 *   [10..17]  sequence number of the request at its requesting bus (float64 BE)
 *   [18..21]  streamed: how many chunks the server may store ahead of the reader (uint32 BE)
 *   [22]      length L of the reply-to id, then the id (ASCII, the name of the requesting bus's reply queue)
 *   then      the payload (the codec's bytes in objectMode, the bytes themselves in byte mode)
 * The correlation id of a request is `<reply-to id>.<sequence number in base 36>`; a streamed reply goes to
 * the queue named after it.
 *
 * A reply, on the requesting bus's reply queue:
 *   [0]       kind: 0 a value, 1 undefined (no value), 2 the handler failed, 3 the server closed first
 *   [1..8]    sequence number of the request (float64 BE)
 *   then      the value's payload; for kind 2, JSON `{ name, message, code?, stack? }`; for 3, a message
 *
 * A streamed reply is a queue of its own: one message per chunk, then an end marker, or an abort marker
 * whose payload is JSON `{ name, message, code?, stack?, closed? }` (closed: the server closed first).
 */
import { RemoteError, ServiceClosedError, type RemoteErrorDetails } from '../errors.js'
import { NAME_PATTERN } from '../names.js'

const VERSION = 1
export const FLAG_REPLY = 1
export const FLAG_STREAM = 2
const HEADER = 23

export const REPLY_VALUE = 0
export const REPLY_VOID = 1
export const REPLY_ERROR = 2
export const REPLY_CLOSED = 3
const REPLY_HEADER = 9

/** Longest reply-to id accepted from a request (ids are UUIDs; anything else is refused). */
const MAX_REPLY_TO = 64

export interface RequestEnvelope {
  flags: number
  deadline: number
  seq: number
  window: number
  replyTo: string
  payload: Buffer
}

/** A payload: bytes, or the codec's string (written as UTF-8 straight into the envelope: no copy). */
export type Payload = Buffer | string

/** Bytes of a payload. */
export function payloadLength (p: Payload): number {
  return typeof p === 'string' ? Buffer.byteLength(p) : p.length
}

function writePayload (out: Buffer, at: number, p: Payload): void {
  if (typeof p === 'string') out.write(p, at, 'utf8')
  else p.copy(out, at)
}

export function encodeRequest (e: Omit<RequestEnvelope, 'payload'> & { payload: Payload }, size = payloadLength(e.payload)): Buffer {
  // Reply-to ids are ASCII (UUIDs): one byte per character.
  const len = e.replyTo.length
  const out = Buffer.allocUnsafe(HEADER + len + size)
  out[0] = VERSION
  out[1] = e.flags
  out.writeDoubleBE(e.deadline, 2)
  out.writeDoubleBE(e.seq, 10)
  out.writeUInt32BE(e.window, 18)
  out[22] = len
  out.write(e.replyTo, HEADER, 'latin1')
  writePayload(out, HEADER + len, e.payload)
  return out
}

/** The last reply-to id decoded, and its bytes: most requests come from a few requesters. */
let lastReplyTo = ''
let lastReplyToBytes = Buffer.alloc(0)

/** Parses a request; throws on anything that is not one (a message pushed to the queue by hand, say). */
export function decodeRequest (raw: Buffer): RequestEnvelope {
  if (raw.length < HEADER || raw[0] !== VERSION) throw new Error('not a service request')
  const len = raw[22]
  if (len === 0 || len > MAX_REPLY_TO || raw.length < HEADER + len) throw new Error('not a service request')
  let replyTo = lastReplyTo
  if (len !== lastReplyToBytes.length || lastReplyToBytes.compare(raw, HEADER, HEADER + len) !== 0) {
    replyTo = raw.toString('latin1', HEADER, HEADER + len)
    // The id names keys (the reply queue, a streamed reply's queue): it must never leave its hash tag.
    if (!NAME_PATTERN.test(replyTo)) throw new Error('a service request with a bad reply-to id')
    lastReplyTo = replyTo
    lastReplyToBytes = Buffer.from(raw.subarray(HEADER, HEADER + len))
  }
  const seq = raw.readDoubleBE(10)
  if (!Number.isSafeInteger(seq) || seq < 0) throw new Error('a service request with a bad sequence number')
  return {
    flags: raw[1],
    deadline: raw.readDoubleBE(2),
    seq,
    window: raw.readUInt32BE(18),
    replyTo,
    payload: raw.subarray(HEADER + len)
  }
}

/** Correlation id of a request: unique across buses (the reply-to id is a UUID). */
export function correlationId (replyTo: string, seq: number): string {
  return `${replyTo}.${seq.toString(36)}`
}

export function encodeReply (kind: number, seq: number, body: Payload = EMPTY, size = payloadLength(body)): Buffer {
  const out = Buffer.allocUnsafe(REPLY_HEADER + size)
  out[0] = kind
  out.writeDoubleBE(seq, 1)
  writePayload(out, REPLY_HEADER, body)
  return out
}

/** The sequence number of the request a reply answers (its kind is `raw[0]`); undefined: not a reply. */
export function replySeq (raw: Buffer): number | undefined {
  if (raw.length < REPLY_HEADER || raw[0] > REPLY_CLOSED) return undefined
  return raw.readDoubleBE(1)
}

/** The payload of a reply. */
export function replyBody (raw: Buffer): Buffer {
  return raw.subarray(REPLY_HEADER)
}

const EMPTY = Buffer.alloc(0)

/** What a requester learns of a handler's error: name, message, code, and the stack if the server sends it. */
export function errorDetails (err: unknown, withStack: boolean): RemoteErrorDetails {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) }
  const code = (err as { code?: unknown }).code
  const details: RemoteErrorDetails = { name: err.name, message: err.message }
  if (typeof code === 'string' || typeof code === 'number') details.code = String(code)
  if (withStack && typeof err.stack === 'string') details.stack = err.stack
  return details
}

/** The body of an error reply, or the payload of a streamed reply's abort marker. */
export function encodeError (err: unknown, withStack: boolean, closed = false): Buffer {
  return Buffer.from(JSON.stringify(closed ? { ...errorDetails(err, false), closed: true } : errorDetails(err, withStack)))
}

/** The requester's error for an error reply body or an abort marker payload. */
export function decodeError (body: Buffer, closed = false): Error {
  let d: Partial<RemoteErrorDetails> & { closed?: boolean } = {}
  try {
    d = JSON.parse(body.toString('utf8'))
  } catch {}
  if (closed || d.closed === true) return new ServiceClosedError(typeof d.message === 'string' ? d.message : undefined)
  return new RemoteError({
    name: typeof d.name === 'string' ? d.name : 'Error',
    message: typeof d.message === 'string' ? d.message : 'unknown error',
    code: typeof d.code === 'string' ? d.code : undefined,
    stack: typeof d.stack === 'string' ? d.stack : undefined
  })
}
