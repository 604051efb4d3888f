// The stored form of a message (lib/queue/element.ts): a kind byte and the payload, the id implicit (its
// position in the queue's log), or, for a message put back at the head, kind | 0x80 and the id in 7 bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  KIND_ABORT, KIND_DATA, KIND_END, encodeElementWithId, encodeElements, parseElement, parseBatch
} from '../../lib/queue/element.js'

const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from([0, 0x80, 0xff, 0x0d, 0x0a]), Buffer.alloc(1000, 7)]

test('new messages are a kind byte and the payload; parsed back with the id of their position', () => {
  for (const kind of [KIND_DATA, KIND_END, KIND_ABORT]) {
    const els = encodeElements(payloads, kind)
    assert.equal(els.length, payloads.length)
    els.forEach((el, i) => {
      assert.equal(el.length, 1 + payloads[i].length)
      assert.equal(el[0], kind)
      assert.deepEqual(el.subarray(1), payloads[i])
      const parsed = parseElement(el, 1000 + i)
      assert.deepEqual(parsed, { kind, id: 1000 + i, payload: payloads[i] })
    })
  }
  assert.equal(encodeElements(payloads)[0][0], KIND_DATA, 'KIND_DATA is the default')
})

test('a batch of new messages shares one allocation, and owns its bytes (the payloads can change later)', () => {
  const source = payloads.map((p) => Buffer.from(p))
  const els = encodeElements(source)
  assert.ok(els.every((el) => el.buffer === els[0].buffer))
  for (const p of source) p.fill(1)
  els.forEach((el, i) => assert.deepEqual(el.subarray(1), payloads[i]))
  assert.deepEqual(encodeElements([]), [])
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
  const [a, b] = encodeElements([Buffer.from('a'), Buffer.from('b')])
  const back = encodeElementWithId({ kind: KIND_DATA, id: 3, payload: Buffer.from('x') })
  const batch = parseBatch([Buffer.from('inc1'), 10, back, a, b])
  assert.equal(batch?.incarnation, 'inc1')
  assert.deepEqual(batch?.elements.map((e) => [e.id, String(e.payload)]), [[3, 'x'], [11, 'a'], [12, 'b']])
  assert.deepEqual(parseBatch([Buffer.from('inc1')]), { incarnation: 'inc1', elements: [] })
  assert.equal(parseBatch([0]), undefined, 'the bound incarnation was deleted')
})
