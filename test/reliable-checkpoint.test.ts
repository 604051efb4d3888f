// A reliable reader may resume after a checkpoint: `after: id` acknowledges and skips the messages with
// ids up to `id` (BusMQ 3.1's `last`).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useRedis } from './helpers/redis-server.js'
import { collect, uniqueName } from './helpers/bus.js'
import { range, trackBuses } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

test('after: id skips and acknowledges messages up to id, redelivered ones included; the rest arrive in order', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName('ckpt'), { objectMode: true })
  for (const i of range(1, 21)) await q.push({ i })
  // A first reader takes 10 and dies before acking (destroy gives them back, as a crash would after the lease).
  const first = q.createReadStream({ mode: 'reliable', max: 10 })
  const taken = await collect(first)
  assert.deepEqual(taken.map((m) => m.id), range(1, 11))
  // The application had finished with 1..7 (its checkpoint) when it died.
  await first.releaseHeld()
  const resumed = await collect(q.createReadStream({ mode: 'reliable', after: 7, untilEmpty: true }))
  assert.deepEqual(resumed.map((m) => m.id), range(8, 21))
  assert.deepEqual(resumed.slice(0, 3).map((m) => m.redelivered), [true, true, true])
  await Promise.all(resumed.map((m) => m.ack()))
  const stats = await q.stats()
  assert.equal(stats.length, 0)
  assert.equal(stats.inFlight, 0, 'the skipped ones were acknowledged, not left in flight')
})

test('after beyond every message skips them all, then delivers what comes next', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName('ckpt'), { objectMode: true })
  for (const i of range(1, 6)) await q.push(i)
  const reader = q.createReadStream({ mode: 'reliable', after: 5, max: 1 })
  const got = collect(reader)
  await q.push(6)
  const [msg] = await got
  assert.equal(msg.id, 6)
  assert.equal(msg.data, 6)
  await msg.ack()
  assert.equal((await q.stats()).inFlight, 0)
})

test('after is validated', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName('ckpt'))
  for (const bad of [-1, 1.5, 'x']) {
    assert.throws(() => q.createReadStream({ mode: 'reliable', after: bad as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  }
})
