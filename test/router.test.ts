import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pick, rank } from '../lib/router/rendezvous.js'

const names = Array.from({ length: 10_000 }, (_, i) => `queue-${i}-${(i * 7919) % 10007}`)
const four = ['10.0.0.1:6379/0', '10.0.0.2:6379/0', '10.0.0.3:6379/0', '10.0.0.4:6379/0']

test('rendezvous hashing spreads 10,000 names over 4 shards within ±10% of an even share', () => {
  const counts = new Map(four.map((id) => [id, 0]))
  for (const n of names) counts.set(pick(four, n), counts.get(pick(four, n))! + 1)
  const even = names.length / four.length
  for (const [id, c] of counts) {
    assert.ok(Math.abs(c - even) <= even * 0.1, `shard ${id} got ${c}, expected ${even} ± 10%`)
  }
})

test('adding a 5th shard moves about a fifth of the names, all to the new shard', () => {
  const five = [...four, '10.0.0.5:6379/0']
  let moved = 0
  for (const n of names) {
    const before = pick(four, n)
    const after = pick(five, n)
    if (before !== after) {
      moved++
      assert.equal(after, five[4], `${n} moved between old shards: ${before} -> ${after}`)
    }
  }
  const fifth = names.length / 5
  assert.ok(Math.abs(moved - fifth) <= fifth * 0.1, `moved ${moved}, expected about ${fifth}`)
})

test('the owner does not depend on the order shards are listed in', () => {
  const shuffled = [four[2], four[0], four[3], four[1]]
  for (const n of names.slice(0, 1000)) assert.equal(pick(shuffled, n), pick(four, n))
})

test('rank() lists the owner first and the previous owner second after a shard is added', () => {
  const five = [...four, '10.0.0.5:6379/0']
  for (const n of names.slice(0, 1000)) {
    const r = rank(five, n)
    assert.equal(r[0], pick(five, n))
    assert.equal(r.filter((id) => id !== five[4])[0], pick(four, n))
  }
})
