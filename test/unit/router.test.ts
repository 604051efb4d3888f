// The routing rule: rendezvous hashing (lib/router/rendezvous.ts) and the Router (owner, locate, growth)
// over fake shards; no Redis.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pick, rank } from '../../lib/router/rendezvous.js'
import { Router } from '../../lib/router/router.js'
import type { Shard } from '../../lib/router/shard.js'

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

/** A shard that holds `keys`, answers EXISTS (or fails), and counts the probes it was sent. */
function fakeShard (id: string, { keys = [] as string[], online = true, fails = false } = {}): Shard & { probes: number } {
  const shard = {
    id,
    online,
    probes: 0,
    async run<T> (fn: (client: unknown) => Promise<T>): Promise<T> {
      shard.probes++
      if (fails) throw new Error(`${id} is down`)
      return await fn({ exists: async (...asked: string[]) => asked.filter((k) => keys.includes(k)).length })
    }
  }
  return shard as unknown as Shard & { probes: number }
}

test('Router.owner() is the rendezvous owner among the shards added, whatever their order', () => {
  const router = new Router()
  router.add(four.map((id) => fakeShard(id)))
  const reversed = new Router()
  reversed.add([...four].reverse().map((id) => fakeShard(id)))
  for (const n of names.slice(0, 200)) {
    assert.equal(router.owner(n).id, pick(four, n))
    assert.equal(reversed.owner(n).id, pick(four, n))
  }
  assert.deepEqual(router.ids, four)
  assert.equal(router.size, 4)
  assert.equal(router.get(four[1])?.id, four[1])
  assert.equal(router.has('10.9.9.9:6379/0'), false)
})

test('Router.add() ignores known ids and tells growth listeners once per growth, not at the first add', () => {
  const router = new Router()
  let grown = 0
  const stop = router.onGrowth(() => { grown++ })
  assert.equal(router.add(four.slice(0, 2).map((id) => fakeShard(id))).length, 2)
  assert.equal(grown, 0, 'the first shards are not a growth')
  assert.equal(router.add([fakeShard(four[0])]).length, 0)
  assert.equal(grown, 0, 'nothing new, no growth')
  assert.equal(router.add(four.slice(1).map((id) => fakeShard(id))).length, 2)
  assert.equal(grown, 1)
  assert.equal(router.size, 4)
  stop()
  router.add([fakeShard('10.0.0.9:6379/0')])
  assert.equal(grown, 1, 'a stopped listener is not called')
})

test('Router.locate(): the highest-ranked shard that holds a key of the name, else the owner', async () => {
  const name = 'orders'
  const ranked = rank(four, name)
  const keys = ['busmq:q:{orders}:m', 'busmq:q:{orders}:i']
  // Nobody holds it: the owner.
  let router = new Router()
  router.add(four.map((id) => fakeShard(id)))
  assert.equal((await router.locate(name, keys)).id, ranked[0])
  // The third-ranked shard holds it (its owner before two shards were added): found there.
  router = new Router()
  router.add(four.map((id) => fakeShard(id, { keys: id === ranked[2] ? [keys[1]] : [] })))
  assert.equal((await router.locate(name, keys)).id, ranked[2])
  // Two hold it: the higher-ranked one wins.
  router = new Router()
  router.add(four.map((id) => fakeShard(id, { keys: id === ranked[1] || id === ranked[3] ? keys : [] })))
  assert.equal((await router.locate(name, keys)).id, ranked[1])
})

test('Router.locate() skips shards that are offline or fail (they hold nothing), and asks nobody with one shard', async () => {
  const name = 'orders'
  const ranked = rank(four, name)
  const keys = ['busmq:q:{orders}:m']
  const router = new Router()
  const shards = four.map((id) => fakeShard(id, {
    keys: id === ranked[0] || id === ranked[1] || id === ranked[2] ? keys : [],
    online: id !== ranked[0],
    fails: id === ranked[1]
  }))
  router.add(shards)
  assert.equal((await router.locate(name, keys)).id, ranked[2])
  assert.equal(shards.find((s) => s.id === ranked[0])!.probes, 0, 'an offline shard is not asked')

  const single = new Router()
  const only = fakeShard(four[0])
  single.add([only])
  assert.equal(await single.locate(name, keys), only)
  assert.equal(only.probes, 0)
})
