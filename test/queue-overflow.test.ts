// overflow with maxLength: 'drop' (push() resolves null, write streams count `dropped`), 'error'
// (ERR_BUSMQ_QUEUE_FULL, the messages before the one that did not fit stored, none after), and the
// option's validation. 'wait' (the default) is tested in queue-backpressure.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { useRedis } from './helpers/redis-server.js'
import { collect, uniqueName } from './helpers/bus.js'
import { range, trackBuses, writeCorked } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

test("overflow 'drop': a push that does not fit resolves with null and stores nothing; room makes pushes fit again", async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 3, overflow: 'drop' })
  assert.deepEqual([await q.push('a'), await q.push('b'), await q.push('c'), await q.push('d')], [1, 2, 3, null])
  assert.equal(await q.count(), 3)
  assert.deepEqual(await collect(q.createReadStream({ max: 1 })), ['a'])
  assert.equal(await q.push('e'), 4, 'ids count stored messages only')
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), ['b', 'c', 'e'])
})

test("overflow 'drop': a write stream stores what fits, in order, counts the rest in dropped, and never waits", async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 100, overflow: 'drop' })
  const w = q.createWriteStream({ endMarker: true })
  for (const i of range(0, 250)) w.write(i)
  w.end()
  await once(w, 'finish')
  assert.equal(w.dropped, 151, '150 messages and the end marker did not fit')
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(0, 100))
  // The producer of a full queue was never waiting for room, so the reader freeing room wakes nobody.
  const stats = await q.stats()
  assert.equal(stats.pushed, 100)
})

test("overflow 'error': push() rejects with ERR_BUSMQ_QUEUE_FULL and stores nothing", async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 2, overflow: 'error' })
  await q.push(1)
  await q.push(2)
  await assert.rejects(q.push(3), (err: any) => {
    assert.equal(err.code, 'ERR_BUSMQ_QUEUE_FULL')
    assert.equal(err.name, 'QueueFullError')
    return true
  })
  assert.equal(await q.count(), 2)
  assert.deepEqual(await collect(q.createReadStream({ max: 1 })), [1])
  assert.equal(await q.push(4), 3)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), [2, 4])
})

test("overflow 'error': a write stream stores the messages that fit, in order, then fails with ERR_BUSMQ_QUEUE_FULL", async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 50, overflow: 'error' })
  const w = q.createWriteStream()
  const failed = once(w, 'error').then(([err]) => err)
  for (const i of range(0, 80)) w.write(i)
  w.end()
  assert.equal((await failed).code, 'ERR_BUSMQ_QUEUE_FULL')
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(0, 50))
})

test('overflow is validated, and without maxLength it changes nothing', async () => {
  const bus = await openBus(redis.servers)
  for (const bad of ['fail', '', 1, null]) {
    assert.throws(() => bus.queue('x', { overflow: bad as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  }
  const q = bus.queue(uniqueName(), { objectMode: true, overflow: 'error' })
  for (const i of range(0, 20)) await q.push(i)
  assert.equal(await q.count(), 20)
  assert.equal(q.overflow, 'error')
  assert.equal(bus.queue('y').overflow, 'wait')
})

test("overflow 'wait': small messages (sent packed in one argument) and large ones (one argument each) that fit only in part keep their order and ids", async () => {
  const bus = await openBus(redis.servers)
  // 32 B payloads and mixed ones averaging under 256 B (packed), and 1 KiB ones (one argument each): each
  // batch is pushed in parts as the reader frees room.
  const sizes = [[32], [8, 600, 8, 8], [1024]]
  for (const pattern of sizes) {
    const q = bus.queue(uniqueName(), { maxLength: 7 })
    const messages = range(0, 60).map((i) => Buffer.alloc(pattern[i % pattern.length], i))
    // One batch of 60, of which the queue takes 7 at a time.
    const finished = writeCorked(q, messages)
    const reader = q.createReadStream({ withIds: true, max: messages.length, highWaterMark: 3 })
    const got = await collect<{ id: number, data: Buffer }>(reader)
    await finished
    assert.deepEqual(got.map((m) => m.id), range(1, 61), `ids, payloads of ${pattern.join('/')} B`)
    assert.ok(got.every((m, i) => m.data.equals(messages[i])), `payloads of ${pattern.join('/')} B arrive intact, in order`)
  }
})
