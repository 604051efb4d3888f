import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { IdentifiedMessage, QueueReadStream } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { range, take, trackBuses, writeAll } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()
const oneShard = () => openBus(redis.servers)

type Msg = IdentifiedMessage<number>

/** Collects what a flowing reader emits, as it arrives. */
function follow<T = Msg> (reader: QueueReadStream): T[] {
  const items: T[] = []
  reader.on('data', (x: T) => items.push(x))
  return items
}

/** Waits until `items` has `n` entries (and fails if it gets more). */
async function reach (items: unknown[], n: number): Promise<void> {
  assert.ok(await eventually(() => items.length >= n, 20_000), `got ${items.length} of ${n}`)
  assert.equal(items.length, n)
}

const ids = (items: Msg[]): number[] => items.map((m) => m.id)

test('replay from 0 and from a middle id see exactly their messages, then follow new ones', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))

  const fromStart = q.createReadStream({ mode: 'replay', from: 0, withIds: true })
  const fromMiddle = q.createReadStream({ mode: 'replay', from: 51, withIds: true, highWaterMark: 7 })
  const a = follow(fromStart)
  const b = follow(fromMiddle)
  await reach(a, 100)
  await reach(b, 50)
  assert.deepEqual(a, range(0, 100).map((i) => ({ id: i + 1, data: i })))
  assert.deepEqual(b, range(50, 100).map((i) => ({ id: i + 1, data: i })))
  assert.equal(fromStart.offset, 101)
  assert.equal(fromMiddle.offset, 101)

  // Both have caught up and now wait; new messages reach both.
  await writeAll(q.createWriteStream(), range(100, 150))
  await reach(a, 150)
  await reach(b, 100)
  assert.deepEqual(ids(a), range(1, 151))
  assert.deepEqual(ids(b), range(51, 151))
  assert.deepEqual(b.map((m) => m.data), range(50, 150))
  assert.equal(fromStart.offset, 151)
  assert.equal(await q.count(), 150, 'replay removes nothing')
  await bus.close()
})

test('push() ids are the ids replay readers see and start from', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const pushed: number[] = []
  for (const i of range(0, 20)) pushed.push((await q.push({ i }))!)
  const from = pushed[12]
  const got = await collect<Msg>(q.createReadStream({ mode: 'replay', from, withIds: true, untilEmpty: true }))
  assert.deepEqual(ids(got), pushed.slice(12))
  assert.deepEqual(got.map((m) => m.data), range(12, 20).map((i) => ({ i })))
  await bus.close()
})

test('several replay readers each see everything, in order, and the queue keeps it all', async () => {
  const bus = await oneShard()
  const other = await oneShard()
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true })
  const n = 2000
  // Readers on two buses, some started before the producer and some after it is done.
  const early = [bus, other, other].map((b) => collect<number>(b.queue(name, { objectMode: true })
    .createReadStream({ mode: 'replay', max: n, highWaterMark: 100 })))
  await writeAll(q.createWriteStream(), range(0, n))
  const late = [bus, other].map((b) => collect<number>(b.queue(name, { objectMode: true })
    .createReadStream({ mode: 'replay', max: n })))
  for (const got of await Promise.all([...early, ...late])) assert.deepEqual(got, range(0, n))
  assert.equal(await q.count(), n)
  // ...and a consume-once reader afterwards still gets all of it.
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(0, n))
  await bus.close()
  await other.close()
})

test('a replay reader can resume from its offset; untilEmpty ends it once caught up', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  const first = q.createReadStream({ mode: 'replay', max: 30 })
  assert.deepEqual(await collect(first), range(0, 30))
  assert.equal(first.offset, 31)
  const second = q.createReadStream({ mode: 'replay', from: first.offset, untilEmpty: true, highWaterMark: 16 })
  assert.deepEqual(await collect(second), range(30, 100))
  assert.equal(second.offset, 101)
  // Destroying a replay reader with messages buffered removes nothing and puts nothing back.
  const third = q.createReadStream({ mode: 'replay', highWaterMark: 100 })
  assert.deepEqual(await take(third, 10), range(0, 10))
  assert.equal(await q.count(), 100)
  const stats = await q.stats()
  assert.equal(stats.consumed, 0)
  assert.equal(stats.pushed, 100)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(0, 100))
  await bus.close()
})

test('a replay from an id not pushed yet waits for it', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 10))
  const reader = q.createReadStream({ mode: 'replay', from: 25, withIds: true })
  const got = follow(reader)
  await writeAll(q.createWriteStream(), range(10, 30))
  await reach(got, 6)
  assert.deepEqual(ids(got), range(25, 31))
  reader.destroy()
  await once(reader, 'close')
  await bus.close()
})

test('retain: 50 keeps only the newest 50; a replay from 0 starts at the oldest retained', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true, retain: 50 })
  await writeAll(q.createWriteStream(), range(0, 200))
  assert.equal(await q.count(), 50)
  const stats = await q.stats()
  assert.equal(stats.pushed, 200)

  const all = await collect<Msg>(q.createReadStream({ mode: 'replay', from: 0, withIds: true, untilEmpty: true }))
  assert.deepEqual(ids(all), range(151, 201))
  assert.deepEqual(all.map((m) => m.data), range(150, 200))
  // An offset that was dropped starts at the oldest retained too; a retained one where it says.
  const dropped = await collect<Msg>(q.createReadStream({ mode: 'replay', from: 10, withIds: true, untilEmpty: true }))
  assert.deepEqual(ids(dropped), range(151, 201))
  const late = await collect<Msg>(q.createReadStream({ mode: 'replay', from: 190, withIds: true, untilEmpty: true }))
  assert.deepEqual(ids(late), range(190, 201))

  await writeAll(q.createWriteStream(), range(200, 230))
  assert.equal(await q.count(), 50)
  const after = await collect<Msg>(q.createReadStream({ mode: 'replay', withIds: true, untilEmpty: true }))
  assert.deepEqual(ids(after), range(181, 231))
  await bus.close()
})

test('retain: a replay reader slower than the producer skips what was dropped, ids still increasing', async (t) => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true, retain: 50 })
  const reader = q.createReadStream({ mode: 'replay', withIds: true, highWaterMark: 5 })
  const got: Msg[] = []
  const reading = (async () => {
    for await (const m of reader) {
      got.push(m as Msg)
      if ((m as Msg).id === 2000) break
      if (got.length % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  await writeAll(q.createWriteStream({ highWaterMark: 64 }), range(0, 2000))
  await reading
  assert.equal(got.at(-1)!.id, 2000)
  t.diagnostic(`the replay reader saw ${got.length} of 2000`)
  for (let i = 1; i < got.length; i++) assert.ok(got[i].id > got[i - 1].id, `id ${got[i].id} after ${got[i - 1].id}`)
  for (const m of got) assert.equal(m.data, m.id - 1)
  assert.equal(await q.count(), 50)
  await bus.close()
})

test('consume-once and replay on one queue: replay sees only what is still there, never twice', async () => {
  // What a replay reader sees of a queue that consume-once readers also read: the messages still in the
  // queue when it reads them, each at most once, ids strictly increasing, even when a consumer puts
  // messages back behind the replay reader's offset.
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  assert.deepEqual(await collect(q.createReadStream({ max: 30 })), range(0, 30))

  const replay = q.createReadStream({ mode: 'replay', withIds: true, highWaterMark: 16 })
  const seen = follow(replay)
  await reach(seen, 70)
  assert.deepEqual(ids(seen), range(31, 101), 'ids 1-30 were consumed before the replay reader came')

  // A consumer takes 41-100 into its buffer, hands on 10 and puts 50 back at the head of the queue.
  const consumer = q.createReadStream({ highWaterMark: 100 })
  assert.deepEqual(await take(consumer, 10), range(30, 40))
  assert.equal(await q.count(), 60)
  await writeAll(q.createWriteStream(), range(100, 110))
  await reach(seen, 80)
  // The put-back messages are behind its offset: only the new ones arrive.
  assert.deepEqual(ids(seen), range(31, 111))

  // A new replay reader sees what is in the queue now.
  const fresh = await collect<Msg>(q.createReadStream({ mode: 'replay', withIds: true, untilEmpty: true }))
  assert.deepEqual(ids(fresh), range(41, 111))
  replay.destroy()
  await once(replay, 'close')
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(40, 110))
  await bus.close()
})

test('consume-once and replay readers running at once: consumer gets all in order, replay a subset in order', async (t) => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const n = 5000
  const replay = q.createReadStream({ mode: 'replay', withIds: true, highWaterMark: 32 })
  const seen = follow(replay)
  const consuming = collect(q.createReadStream({ max: n, highWaterMark: 64 }))
  await writeAll(q.createWriteStream({ highWaterMark: 100 }), range(0, n))
  assert.deepEqual(await consuming, range(0, n))
  replay.destroy()
  await once(replay, 'close')
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].id > seen[i - 1].id, `id ${seen[i].id} after ${seen[i - 1].id}`)
  for (const m of seen) assert.equal(m.data, m.id - 1)
  assert.ok(seen.length <= n)
  t.diagnostic(`the replay reader saw ${seen.length} of ${n}`)
  assert.equal(await q.count(), 0)
  await bus.close()
})
