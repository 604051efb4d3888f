/**
 * How a message is stored in a queue's list. The common form is one kind byte followed by the payload;
 * the message's id is implicit, its position in the queue's log: the list's head element has id
 * `seq - LLEN + 1`, where `seq` counts every message ever pushed, and ids grow by one along the list. So
 * a producer pushes with plain RPUSH (no script has to copy payloads to stamp ids on them).
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
 * The stored form of new messages (implicit ids). All of them are views into one allocation, so a
 * batch of small messages costs one buffer, not one per message.
 */
export function encodeElements (payloads: Buffer[], kind = KIND_DATA): Buffer[] {
  let total = payloads.length
  for (const p of payloads) total += p.length
  const block = Buffer.allocUnsafe(total)
  const out: Buffer[] = new Array(payloads.length)
  let at = 0
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i]
    block[at] = kind
    p.copy(block, at + 1)
    out[i] = block.subarray(at, at + 1 + p.length)
    at += 1 + p.length
  }
  return out
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
