import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { shardIdOf, type Codec, type Queue } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { keysContaining, range, sleep, trackBuses, writeAll } from './helpers/queue.js'

const redis = useRedis(3)
const openBus = trackBuses()
const oneShard = (options = {}) => openBus([redis.servers[0]], options)

/** Resolves with the error a stream fails with. */
async function failure (stream: NodeJS.EventEmitter): Promise<any> {
  const [err] = await once(stream, 'error').catch((e) => [e])
  return err
}

/** Every message left in `q`, in order (consumes them). */
const drain = async (q: Queue): Promise<unknown[]> => await collect(q.createReadStream({ untilEmpty: true }))

test('a value JSON cannot encode fails the write stream with ERR_BUSMQ_ENCODE; the queue keeps the rest', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await q.push('a')
  await q.push('b')
  const circular: any = { name: 'loop' }
  circular.self = circular
  for (const bad of [{ big: 10n }, circular]) {
    const w = q.createWriteStream()
    w.write({ before: 1 })
    w.write(bad)
    w.write({ after: 1 })
    const err = await failure(w)
    assert.equal(err.code, 'ERR_BUSMQ_ENCODE')
    assert.equal(err.name, 'EncodeError')
    assert.ok(err.cause instanceof TypeError, 'the JSON error is kept as the cause')
    assert.ok(w.destroyed)
  }
  // What was written before the bad value went out, in order; nothing after it did.
  assert.deepEqual(await drain(q), ['a', 'b', { before: 1 }, { before: 1 }])
  await bus.close()
})

test('q.push() rejects with ERR_BUSMQ_ENCODE and stores nothing', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await q.push(1)
  const circular: any[] = []
  circular.push(circular)
  const bad: unknown[] = [10n, { deep: { big: 1n } }, circular, undefined, () => 1, Symbol('s')]
  for (const value of bad) {
    await assert.rejects(q.push(value), { code: 'ERR_BUSMQ_ENCODE' }, `push(${String(typeof value)})`)
  }
  // Byte mode takes only bytes and strings (so do its types: <unknown> lets the test try the rest).
  const bytes = bus.queue<unknown>(q.name)
  for (const value of [123, { a: 1 }, null, undefined, true]) {
    await assert.rejects(bytes.push(value), { code: 'ERR_BUSMQ_ENCODE' }, `byte-mode push(${JSON.stringify(value)})`)
  }
  await q.push(2)
  const stats = await q.stats()
  assert.equal(stats.pushed, 2, 'no id was spent on a refused message')
  assert.deepEqual(await drain(q), [1, 2])
  await bus.close()
})

test('a codec that throws or returns a non-buffer gives ERR_BUSMQ_ENCODE / ERR_BUSMQ_DECODE', async () => {
  const bus = await oneShard()
  const name = uniqueName()
  const picky: Codec = {
    encode: (v) => { if (v === 'bad') throw new Error('no bad values'); return JSON.stringify(v) },
    decode: (b) => { if (b.toString() === '"poison"') throw new Error('no poison'); return JSON.parse(b.toString()) }
  }
  const q = bus.queue(name, { objectMode: true, codec: picky })
  await assert.rejects(q.push('bad'), (err: any) => err.code === 'ERR_BUSMQ_ENCODE' && err.cause.message === 'no bad values')
  const numeric = bus.queue(name, { objectMode: true, codec: { encode: () => 42 as any, decode: (b) => b } })
  await assert.rejects(numeric.push('x'), { code: 'ERR_BUSMQ_ENCODE' })
  await q.push('ok1')
  await q.push('poison')
  await q.push('ok2')
  const r = q.createReadStream({ highWaterMark: 1 })
  const got: unknown[] = []
  r.on('data', (m) => got.push(m))
  const err = await failure(r)
  assert.equal(err.code, 'ERR_BUSMQ_DECODE')
  assert.equal(err.cause.message, 'no poison')
  assert.deepEqual(got, ['ok1'])
  assert.deepEqual(await drain(q), ['ok2'])
  await bus.close()
})

test('a message over maxMessageSize gives ERR_BUSMQ_MESSAGE_TOO_LARGE and none of it reaches Redis', async () => {
  const bus = await oneShard({ maxMessageSize: 1024 })
  const q = bus.queue(uniqueName())
  await q.push('first')
  await assert.rejects(q.push(Buffer.alloc(1025, 1)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
  await assert.rejects(q.push('x'.repeat(5000)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
  // The limit is inclusive.
  await q.push(Buffer.alloc(1024, 2))

  const w = q.createWriteStream()
  w.write('small')
  w.write(Buffer.alloc(2048, 3))
  w.write('after')
  const err = await failure(w)
  assert.equal(err.code, 'ERR_BUSMQ_MESSAGE_TOO_LARGE')
  assert.equal(err.name, 'MessageTooLargeError')

  // objectMode: the size is that of the encoded message (here 1022 characters + 2 quotes).
  const o = bus.queue(q.name, { objectMode: true })
  await o.push('y'.repeat(1022))
  await assert.rejects(o.push('y'.repeat(1023)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
  const ow = o.createWriteStream()
  ow.write({ big: 'z'.repeat(2000) })
  assert.equal((await failure(ow)).code, 'ERR_BUSMQ_MESSAGE_TOO_LARGE')

  // Pub/sub has the same limit.
  await assert.rejects(bus.pubsub(uniqueName()).publish(Buffer.alloc(1025)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })

  const stats = await q.stats()
  assert.equal(stats.pushed, 4, 'only the four messages that fit got ids')
  assert.equal(stats.length, 4)
  const got = await collect<Buffer>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got.map((b) => b.length), [5, 1024, 5, 1024])
  assert.equal(got[0].toString(), 'first')
  assert.ok(got[1].equals(Buffer.alloc(1024, 2)))
  assert.equal(got[2].toString(), 'small')
  assert.equal(got[3].toString(), `"${'y'.repeat(1022)}"`)
  await bus.close()
})

test('invalid names are refused with ERR_BUSMQ_INVALID_NAME before anything reaches Redis', async () => {
  const server = redis.servers[0]
  // A database of its own, so that DBSIZE counts this test's keys only.
  const bus = await openBus([{ url: `${server.url}/7` }])
  const good = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(good.createWriteStream(), range(0, 10))
  const before = await server.cli('-n', '7', 'DBSIZE')
  const bad = ['', 'a b', 'x{y}', '{tag}', 'a*', 'q\n', 'café', 'a'.repeat(201), 42, null]
  for (const name of bad) {
    assert.throws(() => bus.queue(name as string), { code: 'ERR_BUSMQ_INVALID_NAME' }, `queue ${JSON.stringify(name)}`)
    assert.throws(() => bus.pubsub(name as string), { code: 'ERR_BUSMQ_INVALID_NAME' }, `pubsub ${JSON.stringify(name)}`)
  }
  assert.equal(await server.cli('-n', '7', 'DBSIZE'), before)
  // The longest allowed name works.
  const longest = bus.queue('n'.repeat(200))
  await longest.push('ok')
  assert.deepEqual((await drain(longest)).map(String), ['ok'])
  assert.deepEqual(await drain(good), range(0, 10))
  await bus.close()
})

test('invalid stream options are refused with ERR_BUSMQ_INVALID_OPTION', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName())
  assert.throws(() => q.createReadStream({ mode: 'bogus' as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => q.createReadStream({ highWaterMark: 0 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => q.createReadStream({ max: -1 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => q.createReadStream({ untilEmpty: 'yes' as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => bus.queue(uniqueName(), { maxLength: -1 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => bus.queue(uniqueName(), { codec: {} as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  await bus.close()
})

test('a reader refused for a bad option does not attach its queue (which then expires as usual)', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { ttl: 1000 })
  await q.push('x')
  assert.throws(() => q.createReadStream({ mode: 'bogus' as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => q.createReadStream({ max: 1.5 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => q.createReadStream({ withIds: 1 as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  // Nobody is attached, so the queue expires one TTL after the push, not never.
  assert.ok(await eventually(async () => !(await q.exists()), 5000),
    `the queue is still there, with ${(await q.stats()).clients} client(s) attached`)
  await bus.close()
})

test('an undecodable payload: ERR_BUSMQ_DECODE, moved to the dead-letter queue, its neighbours delivered in order', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 5))
  await writeAll(q.createWriteStream({ objectMode: false }), ['not json{'])
  await writeAll(q.createWriteStream(), range(5, 10))

  // One message per round trip, so the ones before the bad one reach the failing reader.
  const r = q.createReadStream({ highWaterMark: 1 })
  const got: unknown[] = []
  const err = await (async () => {
    try {
      for await (const m of r) got.push(m)
    } catch (e) {
      return e as any
    }
  })()
  assert.equal(err?.code, 'ERR_BUSMQ_DECODE')
  assert.equal(err.name, 'DecodeError')
  assert.equal(err.id, 6)
  assert.equal(String(err.payload), 'not json{')
  assert.deepEqual(got, range(0, 5))

  const dead = await collect<Buffer>(q.deadLetter().createReadStream({ objectMode: false, untilEmpty: true }))
  assert.deepEqual(dead.map(String), ['not json{'])
  assert.equal(await q.count(), 5)
  assert.deepEqual(await drain(q), range(5, 10))
  await bus.close()
})

test('an undecodable payload in the middle of a large batch: nothing around it is lost or reordered', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 250))
  await writeAll(q.createWriteStream({ objectMode: false }), [Buffer.from([0xff, 0xfe, 0x00])])
  await writeAll(q.createWriteStream(), range(250, 500))

  // One round trip takes all 501: what the failing reader did not hand on must go back to the queue.
  const r = q.createReadStream({ highWaterMark: 1000 })
  const before: unknown[] = []
  const err = await (async () => {
    try {
      for await (const m of r) before.push(m)
    } catch (e) {
      return e as any
    }
  })()
  assert.equal(err?.code, 'ERR_BUSMQ_DECODE')
  const after = await drain(q)
  assert.deepEqual([...before, ...after], range(0, 500))
  const dead = await collect<Buffer>(q.deadLetter().createReadStream({ objectMode: false, untilEmpty: true }))
  assert.deepEqual(dead, [Buffer.from([0xff, 0xfe, 0x00])])
  await bus.close()
})

test('an undecodable payload under a flowing reader: the ones before reach its data handler', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 20))
  await writeAll(q.createWriteStream({ objectMode: false }), ['{"unterminated": '])
  await writeAll(q.createWriteStream(), range(20, 40))
  const r = q.createReadStream({ highWaterMark: 100 })
  const got: unknown[] = []
  r.on('data', (m) => got.push(m))
  assert.equal((await failure(r)).code, 'ERR_BUSMQ_DECODE')
  assert.deepEqual([...got, ...await drain(q)], range(0, 40))
  assert.equal(await q.deadLetter().count(), 1)
  await bus.close()
})

test('a replay reader meeting an undecodable payload fails with ERR_BUSMQ_DECODE and leaves it in the queue', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 3))
  await writeAll(q.createWriteStream({ objectMode: false }), ['not json{'])
  await writeAll(q.createWriteStream(), range(3, 6))
  const r = q.createReadStream({ mode: 'replay', highWaterMark: 1 })
  const got: unknown[] = []
  r.on('data', (m) => got.push(m))
  const err = await failure(r)
  assert.equal(err.code, 'ERR_BUSMQ_DECODE')
  assert.equal(err.id, 4)
  assert.deepEqual(got, range(0, 3))
  assert.equal(await q.count(), 7, 'replay removes nothing, not even the bad payload')
  assert.equal(await q.deadLetter().count(), 0)
  // A byte-mode reader still gets every payload.
  const raw = await collect<Buffer>(q.createReadStream({ objectMode: false, untilEmpty: true }))
  assert.deepEqual(raw.map(String), ['0', '1', '2', 'not json{', '3', '4', '5'])
  await bus.close()
})

test('the dead-letter queue lives on its queue\'s shard, whatever its own name hashes to', async () => {
  const bus = await openBus(redis.servers)
  // A name whose dead-letter name would be owned by another shard.
  let name: string
  do name = uniqueName(); while (bus.ownerOf(name).id === bus.ownerOf(`${name}:dead-letter`).id)
  const q = bus.queue(name, { objectMode: true })
  await q.push(1)
  await writeAll(q.createWriteStream({ objectMode: false }), ['not json{'])
  await q.push(2)
  const r = q.createReadStream()
  const got: unknown[] = []
  r.on('data', (m) => got.push(m))
  assert.equal((await failure(r)).code, 'ERR_BUSMQ_DECODE')
  assert.deepEqual([...got, ...await drain(q)], [1, 2])

  const home = (await q.shard()).id
  const server = redis.servers.find((s) => shardIdOf(s.url) === home)!
  assert.equal((await q.deadLetter().shard()).id, home, `queue on ${home}, its dead-letter queue elsewhere`)
  assert.ok((await keysContaining(server, name)).some((k) => k.includes(':dl')),
    'the dead-letter keys are next to the queue\'s keys')
  await bus.close()
})

test('a dead-lettered message stays as long as its queue is attached, on any number of shards', async () => {
  const bus = await openBus(redis.servers)
  let name: string
  do name = uniqueName(); while (bus.ownerOf(name).id === bus.ownerOf(`${name}:dead-letter`).id)
  const q = bus.queue(name, { objectMode: true, ttl: 1000 })
  await q.attach()
  await writeAll(q.createWriteStream({ objectMode: false }), ['not json{'])
  const r = q.createReadStream()
  r.resume()
  assert.equal((await failure(r)).code, 'ERR_BUSMQ_DECODE')
  assert.equal(await q.deadLetter().count(), 1)
  // Well past the TTL: the attached queue's heartbeat must keep its dead-letter queue alive too.
  await sleep(2500)
  assert.equal(await q.exists(), true)
  assert.equal(await q.deadLetter().count(), 1, 'the dead-lettered message expired while its queue was attached')
  await q.detach()
  await bus.close()
})
