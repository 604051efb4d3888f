/**
 * A stored element is an 8-byte header followed by the payload: byte 0 is the kind (0 data, 1 end
 * marker), bytes 1-7 the message id, big-endian (ids are below 2^53).
 */
export const HEADER_SIZE = 8
export const KIND_DATA = 0
export const KIND_END = 1

export interface Element {
  kind: number
  id: number
  payload: Buffer
  /** The element as stored, for putting it back. */
  raw: Buffer
}

export function parseElement (raw: Buffer): Element {
  return {
    kind: raw[0],
    id: raw[1] * 2 ** 48 + raw.readUIntBE(2, 6),
    payload: raw.subarray(HEADER_SIZE),
    raw
  }
}
