// busmq/classic queues (BusMQ 3.1's API) on the direct layout: attach/detach orderings, push and consume
// with their ids, expiry in seconds, maxsize, consume max / without removing / reliable with last and ack,
// the inspection calls, promisify, and interoperation with native streams on the same queue name.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useRedis } from './helpers/redis-server.js'
import { eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { call, classicBus, messages, record } from './helpers/classic.js'
import { trackBuses } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

test('attach emits attaching, then attached(false) for a new queue and attached(true) for an existing one', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('q')
  const q1 = bus.queue(name)
  const seen1 = record(q1, ['attaching', 'attached'])
  q1.attach()
  await nextEvent(q1, 'attached')
  assert.deepEqual(seen1, [['attaching'], ['attached', false]])
  assert.equal(q1.isAttached(), true)
  const q2 = bus.queue(name)
  const seen2 = record(q2, ['attaching', 'attached'])
  q2.attach()
  await nextEvent(q2, 'attached')
  assert.deepEqual(seen2, [['attaching'], ['attached', true]])
})

test('attaching twice emits error "cannot attach to queue: already attached"', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  await nextEvent(q, 'attached')
  const error = nextEvent(q, 'error')
  q.attach()
  const [err] = await error
  assert.equal(err.code, 'ERR_BUSMQ_CLASSIC_USAGE')
  assert.equal(err.message, 'cannot attach to queue: already attached')
})

test('push before attached waits for it; push calls back with ids 1, 2, 3; objects arrive as JSON strings', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  const ids: Array<number | null> = []
  const pushed = new Promise<void>((resolve) => {
    q.push({ hello: 'world' }, (err, id) => { assert.equal(err, null); ids.push(id!) })
    q.push('my name is foo', (err, id) => { assert.equal(err, null); ids.push(id!) })
    q.push(42, (err, id) => { assert.equal(err, null); ids.push(id!); resolve() })
  })
  q.attach()
  await pushed
  assert.deepEqual(ids, [1, 2, 3])
  assert.equal(q.pushed(), 3)
  const got = messages(q, 3)
  q.consume()
  assert.deepEqual(await got, [['{"hello":"world"}', 1], ['my name is foo', 2], ['42', 3]])
  assert.equal(q.consumed(), 3)
})

test('consume() called before attached starts when attaching completes, as in 3.1: attaching, consuming(true), attached(true), message(message, id)', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('q')
  const producer = bus.queue(name)
  producer.attach()
  await nextEvent(producer, 'attached')
  await call((cb) => producer.push('a', cb))
  const q = bus.queue(name)
  const seen = record(q, ['attaching', 'attached', 'consuming', 'message'])
  q.consume()
  q.attach()
  await nextEvent(q, 'message')
  assert.deepEqual(seen, [['attaching'], ['consuming', true], ['attached', true], ['message', 'a', 1]])
  assert.equal(q.isConsuming(), true)
  assert.equal(await call((cb) => q.isConsuming(cb)), true)
})

test('detach emits detaching, consuming(false), detached; stop() emits consuming(false) only', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  q.consume()
  await nextEvent(q, 'consuming')
  const seen = record(q, ['detaching', 'detached', 'consuming'])
  q.stop()
  assert.deepEqual(seen, [['consuming', false]])
  q.consume()
  seen.length = 0
  q.detach()
  await nextEvent(q, 'detached')
  assert.deepEqual(seen, [['detaching'], ['consuming', false], ['detached']])
  assert.equal(q.isAttached(), false)
})

test('messages pushed while consuming arrive in order, each once, with their ids', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  q.consume()
  const got = messages(q, 20)
  for (let i = 0; i < 20; i++) q.push(`m${i}`)
  assert.deepEqual(await got, Array.from({ length: 20 }, (_, i) => [`m${i}`, i + 1]))
})

test('ttl is in seconds: a queue nobody is attached to expires ttl seconds after its last use', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach({ ttl: 1 })
  await nextEvent(q, 'attached')
  assert.equal(await call((cb) => q.ttl(cb)), 1)
  await call((cb) => q.push('will expire', cb))
  q.detach()
  await nextEvent(q, 'detached')
  assert.equal(await call((cb) => q.exists(cb)), true)
  // Time passing is the point here: the queue must be gone within about a second.
  await eventually(async () => (await call((cb) => q.exists(cb))) === false, 5000, 'the queue to expire')
  assert.equal(await call((cb) => q.count(cb)), 0)
})

test('a queue that exists keeps its ttl: a later attach with another ttl reads the queue\'s', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('q')
  const first = bus.queue(name)
  first.attach({ ttl: 7 })
  await nextEvent(first, 'attached')
  const second = bus.queue(name)
  second.attach({ ttl: 100 })
  await nextEvent(second, 'attached')
  assert.equal(await call((cb) => second.ttl(cb)), 7)
})

test('attach({ ttl: 0 }) takes the default ttl of 30 seconds, as 3.1 does', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  const errors = record(q, ['error'])
  q.attach({ ttl: 0 })
  await nextEvent(q, 'attached')
  assert.equal(await call((cb) => q.ttl(cb)), 30)
  assert.deepEqual(errors, [])
})

test('maxsize: a push to a full queue is dropped and calls back with id null', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach({ maxsize: 2 })
  const ids = [
    await call((cb) => q.push('1', cb)),
    await call((cb) => q.push('2', cb)),
    await call((cb) => q.push('3', cb))
  ]
  assert.deepEqual(ids, [1, 2, null])
  assert.equal(await call((cb) => q.count(cb)), 2)
})

test('consume({ max }) takes max messages, then emits consuming(false); the rest stay in the queue', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  for (const m of ['a', 'b', 'c', 'd']) await call((cb) => q.push(m, cb))
  const seen = record(q, ['consuming', 'message'])
  q.consume({ max: 2 })
  await eventually(() => seen.length === 4)
  assert.deepEqual(seen, [['consuming', true], ['message', 'a', 1], ['message', 'b', 2], ['consuming', false]])
  assert.equal(await call((cb) => q.count(cb)), 2)
})

test('consume({ remove: false, index }) reads without removing, from a position; two readers each see everything', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('q')
  const q = bus.queue(name)
  q.attach()
  for (const m of ['a', 'b', 'c', 'd']) await call((cb) => q.push(m, cb))
  const all = messages(q, 4)
  q.consume({ remove: false, index: 0 })
  assert.deepEqual(await all, [['a', 1], ['b', 2], ['c', 3], ['d', 4]])
  const other = bus.queue(name)
  other.attach()
  const fromTwo = messages(other, 2)
  other.consume({ remove: false, index: 2 })
  assert.deepEqual(await fromTwo, [['c', 3], ['d', 4]])
  assert.equal(await call((cb) => q.count(cb)), 4)
  // Followed live, as 3.1 does.
  const live = messages(other, 1)
  await call((cb) => q.push('e', cb))
  assert.deepEqual(await live, [['e', 5]])
})

test('reliable: unacked messages are delivered again on the next consume; ack(id) acks it and every id before it', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  for (const m of ['a', 'b', 'c', 'd']) await call((cb) => q.push(m, cb))
  const first = messages(q, 4)
  q.consume({ reliable: true })
  assert.deepEqual(await first, [['a', 1], ['b', 2], ['c', 3], ['d', 4]])
  await call((cb) => q.ack(2, cb))
  q.stop()
  const again = messages(q, 2)
  q.consume({ reliable: true })
  assert.deepEqual(await again, [['c', 3], ['d', 4]])
  await call((cb) => q.ack(4, cb))
  q.stop()
  // Nothing left to deliver again.
  assert.equal(await call((cb) => q.count(cb)), 0)
  assert.equal((await q.bus.native.queue(q.name).stats()).inFlight, 0)
})

test('reliable with last: messages up to last are discarded, the rest delivered', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  for (const m of ['a', 'b', 'c', 'd']) await call((cb) => q.push(m, cb))
  const got = messages(q, 1)
  q.consume({ reliable: true, last: 3 })
  assert.deepEqual(await got, [['d', 4]])
  await call((cb) => q.ack(4, cb))
  q.detach()
  await nextEvent(q, 'detached')
  assert.equal(await call((cb) => q.count(cb)), 0)
})

test('reliable with max: the messages delivered can still be acked after consumption stopped', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  for (const m of ['a', 'b', 'c']) await call((cb) => q.push(m, cb))
  const seen = record(q, ['consuming', 'message'])
  q.consume({ reliable: true, max: 2 })
  await eventually(() => seen.length === 4)
  assert.deepEqual(seen, [['consuming', true], ['message', 'a', 1], ['message', 'b', 2], ['consuming', false]])
  await call((cb) => q.ack(2, cb))
  const rest = messages(q, 1)
  q.consume({ reliable: true })
  assert.deepEqual(await rest, [['c', 3]])
})

test('count, flush, exists, find, metadata, pushed, consumed', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  assert.equal(await call((cb) => q.exists(cb)), false)
  assert.equal(await call((cb) => q.find(cb)), null)
  assert.equal(await call((cb) => q.ttl(cb)), null)
  q.attach({ maxsize: 10 })
  await nextEvent(q, 'attached')
  assert.equal(await call((cb) => q.exists(cb)), true)
  assert.equal(await call((cb) => q.find(cb)), 'local')
  for (const m of ['a', 'b', 'c']) await call((cb) => q.push(m, cb))
  assert.equal(await call((cb) => q.count(cb)), 3)
  assert.deepEqual(await call((cb) => q.metadata(cb)), { ttl: '30', maxsize: '10', discover: 'false', source: 'local' })
  await call((cb) => q.metadata('owner', 'ann', cb))
  await call((cb) => q.metadata({ shift: 'night' }, cb))
  assert.equal(await call((cb) => q.metadata('owner', cb)), 'ann')
  assert.equal(await call((cb) => q.metadata('shift', cb)), 'night')
  await call((cb) => q.flush(cb))
  assert.equal(await call((cb) => q.count(cb)), 0)
  assert.equal(await call((cb) => q.pushed(cb)), 3)
  assert.equal(await call((cb) => q.consumed(cb)), 0)
})

test('callbacks without a result get err only: metadata set (3.1: "no further arguments"), flush, non-reliable ack', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  q.attach()
  await nextEvent(q, 'attached')
  const args = async (fn: (cb: (...a: unknown[]) => void) => void): Promise<unknown[]> =>
    await new Promise((resolve) => fn((...a) => resolve(a)))
  assert.deepEqual(await args((cb) => q.metadata('owner', 'ann', cb)), [null])
  assert.deepEqual(await args((cb) => q.metadata({ shift: 'night' }, cb)), [null])
  assert.deepEqual(await args((cb) => q.flush(cb)), [null])
  assert.deepEqual(await args((cb) => q.ack(1, cb)), [null])
  assert.deepEqual(await args((cb) => q.metadata('owner', cb)), [null, 'ann'])
})

test('close() detaches and deletes the queue: closed; close() while not attached emits error', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q'))
  const error = nextEvent(q, 'error')
  q.close()
  assert.equal((await error)[0].message, 'error closing queue: not attached')
  q.attach()
  await nextEvent(q, 'attached')
  await call((cb) => q.push('x', cb))
  const seen = record(q, ['detaching', 'detached', 'closed'])
  q.close()
  await nextEvent(q, 'closed')
  assert.deepEqual(seen, [['detaching'], ['detached'], ['closed']])
  assert.equal(await call((cb) => q.exists(cb)), false)
})

test('promisify(): push, count, metadata, ack return promises', async () => {
  const bus = await classicBus(redis.servers)
  const q = bus.queue(uniqueName('q')).promisify()
  q.attach()
  const push = q.push as unknown as (m: unknown) => Promise<number>
  const count = q.count as unknown as () => Promise<number>
  assert.equal(await push('a'), 1)
  assert.equal(await push({ b: 2 }), 2)
  assert.equal(await count(), 2)
  assert.equal(await (q.metadata as unknown as (k: string) => Promise<string>)('ttl'), '30')
  const got = messages(q, 2)
  q.consume({ reliable: true })
  await got
  await (q.ack as unknown as (id: number) => Promise<void>)(2)
})

test('interoperation: a classic producer and a native reader see the same messages, with the same ids', async () => {
  const classic = await classicBus(redis.servers)
  const native = await openBus(redis.servers)
  const name = uniqueName('q')
  const q = classic.queue(name)
  q.attach()
  for (const m of ['one', { two: 2 }, 'three']) await call((cb) => q.push(m, cb))
  const got: Array<[number, string]> = []
  for await (const { id, data } of native.queue(name).createReadStream({ withIds: true, max: 3 })) got.push([id, data.toString()])
  assert.deepEqual(got, [[1, 'one'], [2, '{"two":2}'], [3, 'three']])
})

test('interoperation: a native writer and a classic consumer see the same messages, with the same ids', async () => {
  const classic = await classicBus(redis.servers)
  const native = await openBus(redis.servers)
  const name = uniqueName('q')
  const ids = [await native.queue(name).push('one'), await native.queue(name, { objectMode: true }).push({ two: 2 })]
  const q = classic.queue(name)
  q.attach()
  const got = messages(q, 3)
  q.consume()
  const writer = native.queue(name).createWriteStream()
  writer.end('three')
  assert.deepEqual(await got, [['one', ids[0]], ['{"two":2}', ids[1]], ['three', 3]])
})

test('names as 3.1 took them: a queue named with spaces and other characters works, stored as =XX per byte (a native handle reaches it there)', async () => {
  const classic = await classicBus(redis.servers)
  const native = await openBus(redis.servers)
  const tag = uniqueName('q')
  const q = classic.queue(`my queue ${tag} #1 ü`)
  assert.equal(q.name, `my=20queue=20${tag}=20=231=20=C3=BC`)
  q.attach()
  await call((cb) => q.push('hello', cb))
  assert.deepEqual(await native.queue(q.name).count(), 1)
  const got = messages(q, 1)
  q.consume()
  assert.deepEqual(await got, [['hello', 1]])
  // Names already within the rules are the native ones, unchanged.
  assert.equal(classic.queue('a.b:c/d@e=f_g-h').name, 'a.b:c/d@e=f_g-h')
  assert.throws(() => classic.queue(''), { code: 'ERR_BUSMQ_INVALID_NAME' })
  assert.throws(() => classic.queue(' '.repeat(70)), { code: 'ERR_BUSMQ_INVALID_NAME' })
})

test('many pushes in one tick, with another producer pushing meanwhile: each callback gets the id of its own message', async () => {
  const classic = await classicBus(redis.servers)
  const native = await openBus(redis.servers)
  const name = uniqueName('q')
  const q = classic.queue(name)
  q.attach()
  await nextEvent(q, 'attached')
  const other = native.queue(name)
  const ids = new Map<string, number>()
  const all = Promise.all(Array.from({ length: 2500 }, async (_, i) => {
    ids.set(`c${i}`, (await call<number | null>((cb) => q.push(`c${i}`, cb)))!)
  }))
  await Promise.all([all, ...Array.from({ length: 300 }, async (_, i) => await other.push(`n${i}`))])
  const byId = new Map<number, string>()
  for await (const { id, data } of other.createReadStream({ withIds: true, max: 2800 })) byId.set(id, data.toString())
  assert.equal(ids.size, 2500)
  for (const [message, id] of ids) assert.equal(byId.get(id), message, `the callback of ${message} got id ${id}`)
  const classicIds = [...ids.values()]
  assert.deepEqual(classicIds, [...classicIds].sort((a, b) => a - b), 'ids in push order')
})
