// Persisted objects across processes: saves of different fields from two processes keep both;
// concurrent save({ ifVersion }) from three processes, many rounds: exactly one wins each round; change
// streams in three processes see every version, in order, with the same fields.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { range, trackBuses } from './helpers/queue.js'
import { fixture } from './helpers/fixture.js'

const redis = useRedis(1)
const openBus = trackBuses()

test('two processes saving different fields of one object: every field of both is kept', { timeout: 120_000 }, async (t) => {
  const url = redis.servers[0].url
  const name = uniqueName('obj-fields')
  const n = 200
  const workers = ['a', 'b'].map((prefix) => fixture(t, 'object-worker.js', [url, name, 'fields', prefix, String(n)]))
  for (const w of workers) {
    const [code] = await w.exited
    assert.equal(code, 0, w.stderr())
    assert.deepEqual(w.lines.at(-1), { done: n })
  }
  const bus = await openBus(redis.servers)
  const doc = bus.object(name)
  const state = await doc.load()
  assert.equal(doc.version, 2 * n, 'one version per save')
  const expected: Record<string, unknown> = {}
  for (const prefix of ['a', 'b']) for (const i of range(0, n)) expected[`${prefix}${i}`] = { i, by: prefix }
  assert.deepEqual(state, expected)
})

test('concurrent save({ ifVersion }) from 3 processes, 60 rounds: exactly one wins each round', { timeout: 180_000 }, async (t) => {
  const url = redis.servers[0].url
  const name = uniqueName('obj-race')
  const rounds = 60
  const workers = range(0, 3).map(() => fixture(t, 'object-worker.js', [url, name, 'race']))
  const wins = [0, 0, 0]
  for (let r = 0; r < rounds; r++) {
    // Every process loads the same version before any of them saves.
    for (const w of workers) w.send({ round: r })
    const loaded = await Promise.all(workers.map((w) => w.line((l) => l.loaded === r)))
    assert.deepEqual(loaded.map((l) => l.version), [r, r, r], `round ${r}: all at version ${r}`)
    for (const w of workers) w.send({ go: r })
    const results = await Promise.all(workers.map((w) => w.line((l) => l.round === r && 'won' in l)))
    const winners = results.map((l, i) => l.won === true ? i : -1).filter((i) => i >= 0)
    assert.equal(winners.length, 1, `round ${r}: exactly one save wins (${JSON.stringify(results)})`)
    wins[winners[0]]++
  }
  for (const w of workers) w.send({ exit: true })
  for (const w of workers) assert.equal((await w.exited)[0], 0, w.stderr())
  t.diagnostic(`wins per process over ${rounds} rounds: ${wins.join(', ')}`)
  const bus = await openBus(redis.servers)
  const doc = bus.object(name)
  const state = await doc.load()
  assert.equal(doc.version, rounds, 'one save per round, no more')
  assert.equal(state?.round, rounds - 1)
})

test('change streams in 3 processes see every version in order, saved by 2 other processes', { timeout: 180_000 }, async (t) => {
  const url = redis.servers[0].url
  const name = uniqueName('obj-follow')
  const perWriter = 150
  const total = 2 * perWriter
  const followers = range(0, 3).map(() => fixture(t, 'object-worker.js', [url, name, 'follow', String(total)]))
  const ready = await Promise.all(followers.map((f) => f.line((l) => 'ready' in l)))
  assert.deepEqual(ready.map((l) => l.ready), [0, 0, 0], 'every follower starts before the first save')
  const writers = ['a', 'b'].map((prefix) => fixture(t, 'object-worker.js', [url, name, 'fields', prefix, String(perWriter)]))
  for (const w of writers) assert.equal((await w.exited)[0], 0, w.stderr())
  const reports = await Promise.all(followers.map((f) => f.line((l) => 'changes' in l, 60_000)))
  const first = reports[0].changes
  assert.deepEqual(first.map((c: any) => c.version), range(1, total + 1), 'every version, in order')
  for (const c of first) {
    assert.equal(c.resync, false)
    assert.equal(Object.keys(c.fields).length, 1, `version ${c.version} set one field`)
  }
  // Each writer's fields arrive in its own order.
  for (const prefix of ['a', 'b']) {
    const mine = first.flatMap((c: any) => Object.keys(c.fields).filter((k) => k.startsWith(prefix)))
    assert.deepEqual(mine, range(0, perWriter).map((i) => `${prefix}${i}`))
  }
  for (let i = 1; i < reports.length; i++) assert.deepEqual(reports[i].changes, first, `follower ${i} saw the same changes`)
  for (const f of followers) assert.equal((await f.exited)[0], 0, f.stderr())
})
