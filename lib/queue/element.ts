/**
 * How a message is stored in a queue's list. The common form is one kind byte followed by the payload;
 * the message's id is implicit, its position in the queue's log: the list's head element has id
 * `seq - LLEN + 1`, where `seq` counts every message ever pushed, and ids grow by one along the list. So
 * the push script RPUSHes elements as they come (no script has to copy payloads to stamp ids on them).
 *
 * A message that goes back to the head of the queue (a reader giving back what it did not deliver, a
 * reliable message redelivered) must keep its id, so it is stored in the second form: kind | 0x80,
 * then its id in 7 bytes big-endian, then the payload. Elements after it keep their implicit ids: the
 * head's implicit id moves down by one for each element put back.
 */
export const KIND_DATA = 0
export const KIND_END = 1
/** A channel peer destroyed its side: the reader fails with ERR_BUSMQ_PEER_DESTROYED. */
export const KIND_ABORT = 2
const WITH_ID = 0x80
const ID_HEADER = 8

export interface Element {
  kind: number
  id: number
  payload: Buffer
}

/**
 * New messages (implicit ids) on their way to the push script. Small ones travel packed: each element
 * (kind byte and payload) after its length, 4 bytes big-endian, all in one buffer that the script cuts
 * into list elements (push-2.lua). ioredis then encodes one argument per batch instead of one per message,
 * and that per-argument work was most of a push's Node CPU at 32 B (a write stream of 32 B messages: 0.8
 * instead of 2.0–2.9 µs per message). Larger ones (an average payload over {@link PACK_AVERAGE_BYTES})
 * travel one argument each: beside their bytes the per-argument work is small, and cutting them out of
 * one argument leaves Redis's Lua twice their size in garbage (2 MB after 100,000 pushes of 1 KiB, which
 * made the pops that collected it 8% slower).
 */
export interface NewElements {
  /** How many elements. */
  count: number
  /** The elements packed in one buffer… */
  packed?: Buffer
  /** …or one buffer each (views into one allocation). */
  separate?: Buffer[]
}

/** Largest average payload (bytes) of a batch that travels packed. */
export const PACK_AVERAGE_BYTES = 256
/** Length prefix of a packed element. */
const LENGTH_BYTES = 4

/** Encodes `payloads` as new elements of `kind`, copying them (the payloads may change once this returns). */
export function encodeNewElements (payloads: Buffer[], kind = KIND_DATA): NewElements {
  let bytes = 0
  for (const p of payloads) bytes += p.length
  const pack = bytes <= PACK_AVERAGE_BYTES * payloads.length
  const block = Buffer.allocUnsafe(bytes + payloads.length * (pack ? LENGTH_BYTES + 1 : 1))
  const separate: Buffer[] | undefined = pack ? undefined : new Array(payloads.length)
  let at = 0
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i]
    if (pack) {
      block.writeUInt32BE(1 + p.length, at)
      at += LENGTH_BYTES
    }
    block[at] = kind
    p.copy(block, at + 1)
    if (separate) separate[i] = block.subarray(at, at + 1 + p.length)
    at += 1 + p.length
  }
  return pack ? { count: payloads.length, packed: block } : { count: payloads.length, separate }
}

/** The elements after the first `n` (a bounded queue took only `n`). */
export function dropElements (els: NewElements, n: number): NewElements {
  if (n <= 0) return els
  const count = Math.max(0, els.count - n)
  if (els.separate) return { count, separate: els.separate.slice(n) }
  const packed = els.packed!
  let at = 0
  for (let i = 0; i < n && at < packed.length; i++) at += LENGTH_BYTES + packed.readUInt32BE(at)
  return { count, packed: packed.subarray(at) }
}

/** The stored form of a message going back to the head of its queue: it carries its id. */
export function encodeElementWithId (el: Element): Buffer {
  const out = Buffer.allocUnsafe(ID_HEADER + el.payload.length)
  out[0] = el.kind | WITH_ID
  out[1] = Math.floor(el.id / 2 ** 48)
  out.writeUIntBE(el.id % 2 ** 48, 2, 6)
  el.payload.copy(out, ID_HEADER)
  return out
}

/** Parses a stored element whose implicit id (its position in the log) is `positionId`. */
export function parseElement (raw: Buffer, positionId: number): Element {
  const kind = raw[0]
  if ((kind & WITH_ID) === 0) return { kind, id: positionId, payload: raw.subarray(1) }
  return {
    kind: kind & ~WITH_ID,
    id: raw[1] * 2 ** 48 + raw.readUIntBE(2, 6),
    payload: raw.subarray(ID_HEADER)
  }
}

/** A batch read from a queue, and the incarnation of the queue it came from. */
export interface Batch {
  incarnation: string
  elements: Element[]
}

/**
 * Parses a pop or range reply `[incarnation, positionIdOfFirst, element, element, …]` (`[incarnation]`
 * when there was nothing). Returns undefined for `[0]`: the incarnation the reader is bound to was deleted.
 */
export function parseBatch (reply: Array<Buffer | number>): Batch | undefined {
  if (typeof reply[0] === 'number') return undefined
  const incarnation = reply[0].toString()
  if (reply.length < 3) return { incarnation, elements: [] }
  const first = Number(reply[1])
  const out: Element[] = new Array(reply.length - 2)
  for (let i = 2; i < reply.length; i++) out[i - 2] = parseElement(reply[i] as Buffer, first + i - 2)
  return { incarnation, elements: out }
}
