// The stored form of a message (lib/queue/element.ts): a kind byte and the payload, the id implicit (its
// position in the queue's log), or, for a message put back at the head, kind | 0x80 and the id in 7 bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  KIND_ABORT, KIND_DATA, KIND_END, PACK_AVERAGE_BYTES, dropElements, encodeElementWithId, encodeNewElements, parseElement,
  parseBatch, type NewElements
} from '../../lib/queue/element.js'

const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from([0, 0x80, 0xff, 0x0d, 0x0a]), Buffer.alloc(1000, 7)]

/** Small payloads (the average at most PACK_AVERAGE_BYTES) and large ones. */
const large = [Buffer.alloc(PACK_AVERAGE_BYTES + 1, 1), Buffer.from('x'), Buffer.alloc(3 * PACK_AVERAGE_BYTES, 3)]

/** The elements of a batch, packed ones read the way push-2.lua reads them: a 4-byte big-endian length, then that many bytes. */
function elements (els: NewElements): Buffer[] {
  if (els.separate) {
    assert.equal(els.packed, undefined)
    assert.equal(els.separate.length, els.count)
    return els.separate
  }
  const packed = els.packed!
  const out: Buffer[] = []
  let at = 0
  while (at < packed.length) {
    const len = packed.readUInt32BE(at)
    out.push(packed.subarray(at + 4, at + 4 + len))
    at += 4 + len
  }
  assert.equal(at, packed.length, 'the packed buffer ends with its last element')
  assert.equal(out.length, els.count)
  return out
}

test('new messages are a kind byte and the payload; parsed back with the id of their position', () => {
  for (const batch of [payloads, large]) {
    for (const kind of [KIND_DATA, KIND_END, KIND_ABORT]) {
      const els = elements(encodeNewElements(batch, kind))
      assert.equal(els.length, batch.length)
      els.forEach((el, i) => {
        assert.equal(el.length, 1 + batch[i].length)
        assert.equal(el[0], kind)
        assert.deepEqual(el.subarray(1), batch[i])
        assert.deepEqual(parseElement(el, 1000 + i), { kind, id: 1000 + i, payload: batch[i] })
      })
    }
    assert.equal(elements(encodeNewElements(batch))[0][0], KIND_DATA, 'KIND_DATA is the default')
  }
})

test('small messages travel packed in one buffer, each after its length (4 bytes, big-endian); large ones one buffer each', () => {
  const small = encodeNewElements(payloads)
  assert.ok(small.packed !== undefined && small.separate === undefined)
  assert.deepEqual([...small.packed.subarray(0, 4 + 1 + 5)], [0, 0, 0, 6, KIND_DATA, ...Buffer.from('hello')])
  const big = encodeNewElements(large)
  assert.ok(big.separate !== undefined && big.packed === undefined)
  assert.ok(big.separate.every((el) => el.buffer === big.separate![0].buffer), 'views into one allocation')
  const none = encodeNewElements([])
  assert.equal(none.count, 0)
  assert.deepEqual(elements(none), [])
})

test('a batch owns its bytes: the payloads can change once it is encoded', () => {
  for (const batch of [payloads, large]) {
    const source = batch.map((p) => Buffer.from(p))
    const els = encodeNewElements(source)
    for (const p of source) p.fill(9)
    elements(els).forEach((el, i) => assert.deepEqual(el.subarray(1), batch[i]))
  }
})

test('dropping the first n of a batch (what a bounded queue took) leaves the rest, in order', () => {
  for (const batch of [payloads, large]) {
    const els = encodeNewElements(batch)
    for (let n = 0; n <= batch.length + 1; n++) {
      const rest = dropElements(els, n)
      assert.equal(rest.count, Math.max(0, batch.length - n))
      assert.deepEqual(elements(rest).map((el) => el.subarray(1)), batch.slice(n), `after dropping ${n}`)
    }
  }
})

test('a message put back carries its id, from 0 up to 2^53, whatever its position', () => {
  const ids = [0, 1, 255, 256, 65_535, 2 ** 32, 2 ** 48 - 1, 2 ** 48, 2 ** 48 + 1, 2 ** 52 + 12345, Number.MAX_SAFE_INTEGER, 2 ** 53]
  for (const id of ids) {
    for (const kind of [KIND_DATA, KIND_END, KIND_ABORT]) {
      const raw = encodeElementWithId({ kind, id, payload: Buffer.from('p') })
      assert.equal(raw.length, 8 + 1)
      assert.equal(raw[0], kind | 0x80)
      assert.deepEqual(parseElement(raw, 7), { kind, id, payload: Buffer.from('p') }, `id ${id}, kind ${kind}`)
    }
  }
  const empty = encodeElementWithId({ kind: KIND_DATA, id: 42, payload: Buffer.alloc(0) })
  assert.deepEqual(parseElement(empty, 1), { kind: KIND_DATA, id: 42, payload: Buffer.alloc(0) })
})

test('the id is 7 bytes big-endian after the kind byte', () => {
  const raw = encodeElementWithId({ kind: KIND_DATA, id: 0x01_0203_0405_0607, payload: Buffer.alloc(0) })
  assert.deepEqual([...raw], [0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07])
})

test('a pop or range reply [incarnation, first id, element, …]: implicit ids count up from the first, put-back ones keep theirs', () => {
  const [a, b] = [Buffer.from('\x00a'), Buffer.from('\x00b')]
  const back = encodeElementWithId({ kind: KIND_DATA, id: 3, payload: Buffer.from('x') })
  const batch = parseBatch([Buffer.from('inc1'), 10, back, a, b])
  assert.equal(batch?.incarnation, 'inc1')
  assert.deepEqual(batch?.elements.map((e) => [e.id, String(e.payload)]), [[3, 'x'], [11, 'a'], [12, 'b']])
  assert.deepEqual(parseBatch([Buffer.from('inc1')]), { incarnation: 'inc1', elements: [] })
  assert.equal(parseBatch([0]), undefined, 'the bound incarnation was deleted')
})
