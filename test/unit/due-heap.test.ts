// The heartbeat's due heap: whatever the order of insertions and moves, pops come out earliest first,
// every item once, and an item's place in the heap is always where it is.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DueHeap } from '../../lib/queue/due-heap.js'

interface Item { name: string, due: number, heapIndex: number }
const item = (name: string): Item => ({ name, due: Infinity, heapIndex: -1 })

/** A seeded pseudo-random sequence (a linear congruential generator): the same dues on every run. */
function randoms (seed: number): () => number {
  return () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed }
}

test('pops come out in due order, each item exactly once', () => {
  const heap = new DueHeap<Item>()
  const random = randoms(7)
  const dues: number[] = []
  for (let i = 0; i < 5000; i++) {
    const due = random() % 1000
    dues.push(due)
    heap.set(item(String(i)), due)
  }
  assert.equal(heap.size, 5000)
  const popped: number[] = []
  const names = new Set<string>()
  for (let e = heap.pop(); e !== undefined; e = heap.pop()) {
    assert.equal(e.heapIndex, -1)
    popped.push(e.due)
    names.add(e.name)
  }
  assert.deepEqual(popped, [...dues].sort((a, b) => a - b))
  assert.equal(names.size, 5000)
  assert.equal(heap.pop(), undefined)
})

test('moving and deleting items in place keeps the order; an item is never in the heap twice', () => {
  const heap = new DueHeap<Item>()
  const random = randoms(11)
  const items = Array.from({ length: 2000 }, (_, i) => item(String(i)))
  for (const e of items) heap.set(e, random() % 1000)
  // Reschedule some twice, delete others.
  for (let i = 0; i < 2000; i += 3) heap.set(items[i], random() % 1000)
  for (let i = 0; i < 2000; i += 3) heap.set(items[i], random() % 1000)
  const deleted = new Set<Item>()
  for (let i = 1; i < 2000; i += 7) {
    heap.delete(items[i])
    heap.delete(items[i])
    deleted.add(items[i])
  }
  assert.equal(heap.size, 2000 - deleted.size)
  const expected = items.filter((e) => !deleted.has(e)).map((e) => e.due).sort((a, b) => a - b)
  const popped: number[] = []
  for (let e = heap.pop(); e !== undefined; e = heap.pop()) popped.push(e.due)
  assert.deepEqual(popped, expected)
})

test('peek shows the earliest without taking it; clear empties the heap and frees its items', () => {
  const heap = new DueHeap<Item>()
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item)
  heap.set(c, 30)
  heap.set(a, 10)
  heap.set(b, 20)
  assert.equal(heap.peek(), a)
  assert.equal(heap.pop(), a)
  heap.set(d, 15)
  heap.set(c, 5)
  assert.deepEqual([heap.pop(), heap.pop(), heap.pop(), heap.pop()], [c, d, b, undefined])
  heap.set(a, 1)
  heap.clear()
  assert.equal(heap.size, 0)
  assert.equal(heap.peek(), undefined)
  assert.equal(a.heapIndex, -1)
})
