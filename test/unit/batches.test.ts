// batches() (lib/util.ts): how a producer splits what it has into round trips.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { batches } from '../../lib/util.js'

const bufs = (...sizes: number[]): Buffer[] => sizes.map((n, i) => Buffer.alloc(n, i))
const shape = (out: Buffer[][]): number[][] => out.map((b) => b.map((x) => x.length))

test('what fits in one batch stays one batch (the same array)', () => {
  const items = bufs(1, 2, 3)
  const out = batches(items, 3, 6)
  assert.equal(out.length, 1)
  assert.equal(out[0], items)
  assert.deepEqual(batches([], 10, 10), [[]])
})

test('at most maxCount items per batch, in order', () => {
  const items = bufs(1, 1, 1, 1, 1, 1, 1)
  const out = batches(items, 3, 1000)
  assert.deepEqual(shape(out), [[1, 1, 1], [1, 1, 1], [1]])
  assert.deepEqual(out.flat(), items)
})

test('a batch closes before it would go over maxBytes', () => {
  assert.deepEqual(shape(batches(bufs(4, 4, 4, 4), 100, 10)), [[4, 4], [4, 4]])
  assert.deepEqual(shape(batches(bufs(5, 5, 1, 9, 1), 100, 10)), [[5, 5], [1, 9], [1]])
})

test('an item larger than maxBytes goes alone in its own batch (never dropped, never split)', () => {
  assert.deepEqual(shape(batches(bufs(1, 50, 1), 100, 10)), [[1], [50], [1]])
  assert.deepEqual(shape(batches(bufs(50), 100, 10)), [[50]])
})

test('both limits together; every item exactly once, in order', () => {
  const sizes = Array.from({ length: 500 }, (_, i) => (i * 37) % 23)
  const items = bufs(...sizes)
  const out = batches(items, 16, 100)
  assert.deepEqual(out.flat(), items)
  for (const b of out) {
    assert.ok(b.length >= 1 && b.length <= 16)
    const bytes = b.reduce((n, x) => n + x.length, 0)
    assert.ok(bytes <= 100 || b.length === 1, `a batch of ${bytes} bytes`)
  }
})
