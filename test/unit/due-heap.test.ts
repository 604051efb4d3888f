// The heartbeat's due heap: whatever the order of pushes, pops come out earliest first, every node once.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DueHeap } from '../../lib/queue/due-heap.js'

test('pops come out in due order, each pushed node exactly once', () => {
  const heap = new DueHeap<number>()
  let seed = 7
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed }
  const pushed: number[] = []
  for (let i = 0; i < 5000; i++) {
    const due = random() % 1000
    pushed.push(due)
    heap.push(i, due, 0)
  }
  assert.equal(heap.size, 5000)
  const popped: number[] = []
  const items = new Set<number>()
  for (let node = heap.pop(); node !== undefined; node = heap.pop()) {
    popped.push(node.due)
    items.add(node.item)
  }
  assert.deepEqual(popped, [...pushed].sort((a, b) => a - b))
  assert.equal(items.size, 5000)
  assert.equal(heap.pop(), undefined)
})

test('peek shows the earliest without taking it; pushes between pops keep the order', () => {
  const heap = new DueHeap<string>()
  heap.push('c', 30, 1)
  heap.push('a', 10, 1)
  heap.push('b', 20, 2)
  assert.equal(heap.peek()?.item, 'a')
  assert.equal(heap.pop()?.item, 'a')
  heap.push('d', 15, 1)
  assert.deepEqual([heap.pop()?.item, heap.pop()?.item, heap.pop()?.item, heap.pop()], ['d', 'b', 'c', undefined])
  heap.push('e', 1, 1)
  heap.clear()
  assert.equal(heap.size, 0)
  assert.equal(heap.peek(), undefined)
})
