import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { shardIdOf, type Codec } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { keysContaining, range, readerWaiting, sleep, take, trackBuses, writeAll } from './helpers/queue.js'

const redis = useRedis(3)
const openBus = trackBuses()

/** A bus on the first server only, so every queue of it is there. */
const oneShard = () => openBus([redis.servers[0]])

test('byte mode: random binary Buffers, empty Buffers and strings round-trip exactly', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName())
  const sizes = [0, 1, 2, 7, 8, 9, 255, 1000, 4096, 65_536, 0, 3, 100_000]
  const buffers = sizes.map((n) => randomBytes(n))
  // Bytes that mean something to RESP or to C strings must pass untouched.
  buffers.push(Buffer.from('\r\n$-1\r\n*2\r\n'), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(0))
  const w = q.createWriteStream()
  await writeAll(w, [...buffers, 'héllo wörld ✓', '', new Uint8Array([1, 2, 3])])
  await q.push(Buffer.alloc(0))
  await q.push('pushed')
  // A view into a larger buffer: only the view's bytes are the message.
  await q.push(new Uint8Array([0, 1, 2, 3, 4]).subarray(1, 3))
  await q.push(Buffer.from('0123456789').subarray(7))
  const expected = [...buffers, Buffer.from('héllo wörld ✓'), Buffer.alloc(0), Buffer.from([1, 2, 3]),
    Buffer.alloc(0), Buffer.from('pushed'), Buffer.from([1, 2]), Buffer.from('789')]
  assert.equal(await q.count(), expected.length)

  const got = await collect<Buffer>(q.createReadStream({ untilEmpty: true }))
  assert.equal(got.length, expected.length)
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Buffer.isBuffer(got[i]), `message ${i} is a Buffer`)
    assert.equal(got[i].length, expected[i].length, `message ${i} has ${expected[i].length} bytes`)
    assert.ok(got[i].equals(expected[i]), `message ${i} is byte-exact`)
  }
  assert.equal(await q.count(), 0)
  await bus.close()
})

test('byte mode: a string written with an encoding is stored as the bytes it encodes', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName())
  const w = q.createWriteStream()
  w.write('aGk=', 'base64')
  w.write('00ff10', 'hex')
  w.end()
  await once(w, 'finish')
  const got = await collect<Buffer>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, [Buffer.from('hi'), Buffer.from([0x00, 0xff, 0x10])])
  await bus.close()
})

test('objectMode: nested objects, arrays, numbers and unicode round-trip', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const values: unknown[] = [
    { a: 1, b: [1, 2, { c: 'x', d: [[], {}] }], e: { f: { g: { h: true, i: false, j: null } } } },
    [1, 'two', 3.5, -0.25, 1e300, Number.MAX_SAFE_INTEGER],
    'plain string',
    '',
    0,
    false,
    { emoji: '😀👍🏽', cjk: '漢字', rtl: 'שלום', nul: 'a\u0000b', escapes: '"\\\n\t' },
    // JSON.stringify escapes lone surrogates, so even these survive.
    ['\ud800', 'a\udc00b'],
    { '😀': ['é', 'ß'], 'key with spaces': 1 }
  ]
  const w = q.createWriteStream()
  await writeAll(w, values)
  assert.equal(await q.push({ pushed: true }), values.length + 1)
  const got = await collect(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, [...values, { pushed: true }])
  await bus.close()
})

test('objectMode: a null message is refused by push(), or reaches readers without ending one early or losing anything', async () => {
  // A Readable cannot carry a bare null (it means end of stream). Either push(null) is refused, or null
  // travels in envelopes (withIds) and a bare reader fails loudly at it, with nothing around it lost.
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await q.push(1)
  let refused: any
  await q.push(null).catch((err) => { refused = err })
  await q.push(3)
  await q.push(4)
  if (refused) {
    assert.equal(refused.code, 'ERR_BUSMQ_ENCODE')
    assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), [1, 3, 4])
    return
  }
  const expected = [{ id: 1, data: 1 }, { id: 2, data: null }, { id: 3, data: 3 }, { id: 4, data: 4 }]
  assert.deepEqual(await collect(q.createReadStream({ mode: 'replay', withIds: true, untilEmpty: true })), expected)

  const bare = q.createReadStream({ untilEmpty: true, highWaterMark: 1 })
  const got: unknown[] = []
  bare.on('data', (m) => got.push(m))
  const outcome = await new Promise<any>((resolve) => {
    bare.once('error', resolve)
    bare.once('end', () => resolve('ended'))
  })
  assert.equal(outcome?.code, 'ERR_BUSMQ_DECODE', `a bare reader met a null message and ${outcome === 'ended' ? 'ended quietly' : outcome}`)
  assert.deepEqual(got, [1])
  const dead = await collect<Buffer>(q.deadLetter().createReadStream({ objectMode: false, untilEmpty: true }))
  assert.deepEqual(dead.map(String), ['null'])
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), [3, 4])

  // A consume-once reader with ids receives it like any other message.
  const q2 = bus.queue(uniqueName(), { objectMode: true })
  for (const v of [1, null, 3, 4]) await q2.push(v)
  assert.deepEqual(await collect(q2.createReadStream({ withIds: true, untilEmpty: true })), expected)
  await bus.close()
})

test('__proto__ in a JSON payload does not pollute Object.prototype', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const raw = q.createWriteStream({ objectMode: false })
  await writeAll(raw, [
    '{"__proto__":{"polluted":"yes"},"a":1}',
    '{"nested":{"__proto__":{"polluted":"deep"}},"constructor":{"prototype":{"polluted":"ctor"}}}',
    '[{"__proto__":{"polluted":"array"}}]'
  ])
  const got = await collect<any>(q.createReadStream({ untilEmpty: true }))
  assert.equal(got.length, 3)
  // The usual ways a decoded message gets merged into other objects.
  const merged = Object.assign({}, got[0], got[1])
  const spread = { ...got[0], ...got[1].nested }
  const deep = JSON.parse(JSON.stringify(got))
  for (const o of [{}, merged, spread, deep, got[0], got[1].nested, got[2][0]]) {
    assert.equal((o as any).polluted, undefined)
  }
  assert.equal(({} as any).polluted, undefined)
  assert.equal((Object.prototype as any).polluted, undefined)
  assert.equal(Object.getPrototypeOf(got[0]), Object.prototype)
  assert.equal(Object.hasOwn(got[0], '__proto__'), false)
  assert.equal(Object.hasOwn(got[1].nested, '__proto__'), false)
  assert.equal(got[0].a, 1)
  await bus.close()
})

test('a custom codec encodes and decodes every message (here: BigInts and Dates)', async () => {
  const codec: Codec = {
    encode: (value) => 'v1:' + JSON.stringify(value, (_k, v) => typeof v === 'bigint' ? { $big: v.toString() } : v),
    decode: (payload) => {
      const s = payload.toString('utf8')
      assert.ok(s.startsWith('v1:'), `payload starts with the codec's tag: ${s}`)
      return JSON.parse(s.slice(3), (_k, v) => v !== null && typeof v === 'object' && typeof v.$big === 'string'
        ? BigInt(v.$big)
        : v)
    }
  }
  const bus = await oneShard()
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true, codec })
  const values = [{ n: 2n ** 70n }, [1n, -5n], { when: new Date(0) }]
  await writeAll(q.createWriteStream(), values)
  await q.push({ last: 3n })

  // In Redis the payloads are what the codec produced.
  const raw = await collect<Buffer>(bus.queue(name).createReadStream({ mode: 'replay', untilEmpty: true }))
  assert.deepEqual(raw.map(String), [
    'v1:{"n":{"$big":"1180591620717411303424"}}', 'v1:[{"$big":"1"},{"$big":"-5"}]',
    'v1:{"when":"1970-01-01T00:00:00.000Z"}', 'v1:{"last":{"$big":"3"}}'
  ])
  const got = await collect(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, [{ n: 2n ** 70n }, [1n, -5n], { when: '1970-01-01T00:00:00.000Z' }, { last: 3n }])

  // A stream can also bring its own codec for a queue that has none.
  const plain = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(plain.createWriteStream({ codec }), [{ big: 7n }])
  assert.deepEqual(await collect(plain.createReadStream({ codec, untilEmpty: true })), [{ big: 7n }])
  await bus.close()
})

test('push() resolves with ids that start at 1 and increase in push order', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const sequential: Array<number | null> = []
  for (let i = 0; i < 10; i++) sequential.push(await q.push(i))
  assert.deepEqual(sequential, range(1, 11))
  // Pushes not awaited one by one are still one producer's pushes: ids in call order.
  const concurrent = await Promise.all(range(10, 60).map((i) => q.push(i)))
  assert.deepEqual(concurrent, range(11, 61))
  const got = await collect<any>(q.createReadStream({ untilEmpty: true, withIds: true }))
  assert.deepEqual(got, range(0, 60).map((i) => ({ id: i + 1, data: i })))
  await bus.close()
})

test('one-off pushes keep call order, alone or several to a turn of the event loop', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  assert.equal(await q.push(-1), 1)
  // 0 to 3 pushes per turn; turns end in a microtask, a setImmediate or a timer, so some pushes share a
  // write to Redis and some go alone.
  const calls: Array<Promise<number | null>> = []
  let next = 0
  for (let turn = 0; turn < 60; turn++) {
    for (let j = 0; j < turn % 4; j++) calls.push(q.push(next++))
    if (turn % 3 === 0) await new Promise((resolve) => setImmediate(resolve))
    else if (turn % 3 === 1) await Promise.resolve()
    else await sleep(0)
  }
  assert.deepEqual(await Promise.all(calls), range(2, 2 + next))
  const got = await collect<number>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, [-1, ...range(0, next)])
  await bus.close()
})

test('max: n ends the reader after n messages and takes nothing beyond them', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  // A read-ahead of 256 would take everything; max must cap what leaves Redis, not just what is emitted.
  const first = await collect(q.createReadStream({ max: 7, highWaterMark: 256 }))
  assert.deepEqual(first, range(0, 7))
  assert.equal(await q.count(), 93)
  const second = await collect(q.createReadStream({ max: 50, highWaterMark: 16 }))
  assert.deepEqual(second, range(7, 57))
  assert.equal(await q.count(), 43)
  // max: 0 ends at once.
  assert.deepEqual(await collect(q.createReadStream({ max: 0 })), [])
  assert.equal(await q.count(), 43)
  const stats = await q.stats()
  assert.equal(stats.consumed, 57)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(57, 100))
  await bus.close()
})

test('max: a reader that ends before messages arrive waits for them, then takes exactly n', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const reading = collect(q.createReadStream({ max: 5 }))
  await readerWaiting(redis.servers[0], q)
  await writeAll(q.createWriteStream(), range(0, 20))
  assert.deepEqual(await reading, range(0, 5))
  assert.equal(await q.count(), 15)
  await bus.close()
})

test('untilEmpty ends the reader when the queue is found empty', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), [])
  await writeAll(q.createWriteStream(), range(0, 1000))
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true, highWaterMark: 64 })), range(0, 1000))
  assert.equal(await q.count(), 0)
  await bus.close()
})

test('untilEnd ends the reader at the end marker; messages after it stay for the next reader', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream({ endMarker: true }), range(0, 5))
  await writeAll(q.createWriteStream({ endMarker: true }), range(5, 10))
  await writeAll(q.createWriteStream(), range(10, 15))
  assert.equal(await q.count(), 17, '15 messages and 2 end markers')

  // One round trip takes everything; the reader must put back what follows the marker.
  assert.deepEqual(await collect(q.createReadStream({ untilEnd: true, highWaterMark: 256 })), range(0, 5))
  assert.equal(await q.count(), 11)
  assert.deepEqual(await collect(q.createReadStream({ untilEnd: true, highWaterMark: 3 })), range(5, 10))
  assert.equal(await q.count(), 5)
  // A reader without untilEnd skips end markers.
  await writeAll(q.createWriteStream({ endMarker: true }), range(15, 20))
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(10, 20))
  assert.equal(await q.count(), 0)
  await bus.close()
})

test('untilEnd: empty messages are data, never mistaken for the end marker', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName())
  await writeAll(q.createWriteStream({ endMarker: true }), ['', Buffer.alloc(0), 'x', ''])
  await q.push(Buffer.alloc(0))
  const got = await collect<Buffer>(q.createReadStream({ untilEnd: true }))
  assert.deepEqual(got.map(String), ['', '', 'x', ''])
  assert.deepEqual((await collect<Buffer>(q.createReadStream({ untilEmpty: true }))).map((b) => b.length), [0])
  await bus.close()
})

test('untilEnd: a reader started before the producer ends with it', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const reading = collect(q.createReadStream({ untilEnd: true, highWaterMark: 10 }))
  const w = q.createWriteStream({ endMarker: true })
  for (const i of range(0, 100)) {
    if (!w.write(i)) await once(w, 'drain')
    if (i % 25 === 0) await sleep(5) // a pace: the reader sees the messages arrive over time
  }
  w.end()
  assert.deepEqual(await reading, range(0, 100))
  await bus.close()
})

test('destroy() after a for-await break gives the buffered messages back, in order', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 300))
  const reader = q.createReadStream({ highWaterMark: 100 })
  assert.deepEqual(await take(reader, 10), range(0, 10))
  assert.equal(await q.count(), 290, 'everything the reader took and did not deliver is back')
  const rest = await collect(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(rest, range(10, 300))
  assert.equal((await q.stats()).consumed, 300)
  await bus.close()
})

test('destroy() after read() gives the buffered messages back, in order', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 300))
  const reader = q.createReadStream({ highWaterMark: 100 })
  await once(reader, 'readable')
  const got: unknown[] = []
  for (let i = 0; i < 10; i++) got.push(reader.read())
  assert.deepEqual(got, range(0, 10))
  reader.destroy()
  await once(reader, 'close')
  assert.equal(await q.count(), 290)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(10, 300))
  await bus.close()
})

test('destroy() from a data handler gives back the rest of the batch, in order', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 300))
  const reader = q.createReadStream({ highWaterMark: 100 })
  const got: unknown[] = []
  reader.on('data', (m) => {
    got.push(m)
    if (got.length === 10) reader.destroy()
  })
  await once(reader, 'close')
  assert.deepEqual(got, range(0, 10))
  assert.equal(await q.count(), 290, `${290 - await q.count()} messages neither delivered nor given back`)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(10, 300))
  await bus.close()
})

test('destroy() of a reader blocked on an empty queue takes nothing', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const reader = q.createReadStream()
  reader.resume()
  await readerWaiting(redis.servers[0], q)
  reader.destroy()
  await once(reader, 'close')
  await writeAll(q.createWriteStream(), range(0, 10))
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(0, 10))
  await bus.close()
})

test('bus.close() loses nothing: buffered messages go back, pending writes are flushed', async () => {
  const bus = await oneShard()
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  const reader = q.createReadStream({ highWaterMark: 100 })
  await once(reader, 'readable')
  const got: unknown[] = []
  for (let i = 0; i < 10; i++) got.push(reader.read())
  assert.deepEqual(got, range(0, 10))
  // Writes that have not been acknowledged yet when close() is called.
  const w = q.createWriteStream()
  await new Promise((resolve, reject) => w.write(100, (err) => err ? reject(err) : resolve(undefined)))
  for (const i of range(101, 600)) w.write(i)
  await bus.close()
  assert.ok(reader.destroyed)

  const bus2 = await oneShard()
  const q2 = bus2.queue(name, { objectMode: true })
  assert.deepEqual(await collect(q2.createReadStream({ untilEmpty: true })), range(10, 600))
  await bus2.close()
})

test('bus.close() right after createWriteStream() still flushes the writes it accepted', async () => {
  const bus = await oneShard()
  const name = uniqueName()
  const w = bus.queue(name, { objectMode: true }).createWriteStream()
  let failure: any
  w.on('error', (err) => { failure = err })
  for (const i of range(0, 5)) assert.equal(w.write(i), true)
  await bus.close()
  assert.equal(failure, undefined, `the writer failed: ${failure?.code} ${failure?.message}`)

  const bus2 = await oneShard()
  assert.deepEqual(await collect(bus2.queue(name, { objectMode: true }).createReadStream({ untilEmpty: true })), range(0, 5))
  await bus2.close()
})

test('stats() reports length, pushed, consumed, clients, ttl and shard', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true, ttl: 20_000 })
  const empty = await q.stats()
  assert.equal(empty.length, 0)
  assert.equal(empty.pushed, 0)
  assert.equal(empty.consumed, 0)
  assert.equal(empty.clients, 0)
  assert.equal(empty.ttl, -2)
  assert.equal(await q.exists(), false)
  assert.equal(await q.ttlLeft(), -2)

  await writeAll(q.createWriteStream(), range(0, 10))
  await collect(q.createReadStream({ max: 4 }))
  let s = await q.stats()
  assert.equal(s.length, 6)
  assert.equal(s.pushed, 10)
  assert.equal(s.consumed, 4)
  assert.equal(s.inFlight, 0)
  assert.equal(s.clients, 0)
  assert.equal(s.shard, shardIdOf(redis.servers[0].url))
  assert.ok(s.ttl > 0 && s.ttl <= 20_000, `ttl ${s.ttl}`)
  assert.equal(await q.exists(), true)

  // A reader that takes all 6 and hands on 2: while it is open, 6 are out of the queue and it is a client.
  const reader = q.createReadStream({ highWaterMark: 100 })
  await once(reader, 'readable')
  assert.deepEqual([reader.read(), reader.read()], [4, 5])
  s = await q.stats()
  assert.equal(s.length, 0)
  assert.equal(s.consumed, 10)
  assert.equal(s.clients, 1)
  reader.destroy()
  await once(reader, 'close')
  // Put-backs are subtracted from consumed.
  s = await q.stats()
  assert.equal(s.length, 4)
  assert.equal(s.consumed, 6)
  assert.equal(s.pushed, 10)
  assert.equal(s.clients, 0)

  // Every bus is one client, whatever the number of its streams.
  const other = await oneShard()
  const r1 = q.createReadStream()
  const r2 = other.queue(q.name, { objectMode: true }).createReadStream({ mode: 'replay' })
  r1.pause()
  r2.pause()
  assert.ok(await eventually(async () => (await q.stats()).clients === 2))
  await other.close()
  assert.ok(await eventually(async () => (await q.stats()).clients === 1))

  await q.flush()
  s = await q.stats()
  assert.equal(s.length, 0)
  assert.equal(s.pushed, 10, 'flush() keeps the counters')
  await bus.close()
})

test('getMeta() and setMeta() store string fields with the queue', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName())
  assert.deepEqual(await q.getMeta(), {})
  assert.equal(await q.getMeta('owner'), null)
  await q.setMeta({ owner: 'alice', version: 3 })
  await q.setMeta({ version: 4, note: 'ünïcödé' })
  assert.equal(await q.getMeta('owner'), 'alice')
  assert.equal(await q.getMeta('version'), '4')
  assert.deepEqual(await q.getMeta(), { owner: 'alice', version: '4', note: 'ünïcödé' })
  // Another bus sees the same metadata.
  const other = await oneShard()
  assert.deepEqual(await other.queue(q.name).getMeta(), { owner: 'alice', version: '4', note: 'ünïcödé' })
  await other.close()
  await bus.close()
})

test('attach() keeps a queue alive past its TTL; after the last detach every key expires', async () => {
  const server = redis.servers[0]
  const bus = await oneShard()
  const name = uniqueName()
  const q = bus.queue(name, { ttl: 1000, objectMode: true })
  await q.attach()
  // A consume-once reader of an undecodable payload leaves a dead-letter queue: it must expire too.
  await writeAll(q.createWriteStream({ objectMode: false }), ['not json{'])
  await assert.rejects(collect(q.createReadStream()), { code: 'ERR_BUSMQ_DECODE' })
  assert.equal(await q.deadLetter().count(), 1)
  await writeAll(q.createWriteStream(), range(0, 20))
  await collect(q.createReadStream({ max: 5 }))
  await q.setMeta({ owner: 'me' })
  // A reader holding one message in its buffer.
  const reader = q.createReadStream({ highWaterMark: 1 })
  reader.read(0)
  assert.ok(await eventually(() => reader.readableLength === 1))

  // Time passing is the point: 2.5 TTLs, and nothing of the attached queue may expire.
  await sleep(2500)
  assert.ok((await keysContaining(server, name)).length > 0)
  assert.equal(await q.count(), 14)
  assert.equal(await q.getMeta('owner'), 'me')
  assert.equal(await q.deadLetter().count(), 1)
  assert.equal((await q.stats()).clients, 1)
  reader.destroy()
  await once(reader, 'close')
  assert.equal(await q.count(), 15, 'the reader gave back what it had buffered')

  await q.detach()
  const ttl = await q.ttlLeft()
  assert.ok(ttl > 0 && ttl <= 1000, `ttl ${ttl}`)
  assert.ok(await eventually(async () => (await keysContaining(server, name)).length === 0, 10_000),
    `keys left: ${(await keysContaining(server, name)).join(', ')}`)
  assert.equal(await q.exists(), false)
  assert.equal(await q.count(), 0)
  assert.deepEqual(await q.getMeta(), {})
  await bus.close()
})

test('a queue used by streams only expires after its last stream closes', async () => {
  const server = redis.servers[0]
  const bus = await oneShard()
  const name = uniqueName()
  const q = bus.queue(name, { ttl: 1000, objectMode: true })
  const w = q.createWriteStream()
  w.write(1)
  const r = q.createReadStream({ mode: 'replay' })
  r.pause()
  // Time passing is the point: well past the TTL (1 s), the queue of open streams must not expire.
  await sleep(2500)
  assert.equal(await q.count(), 1)
  w.end()
  await once(w, 'close')
  await sleep(1500) // again past the TTL, with only the reader left
  assert.equal(await q.count(), 1, 'the replay reader still keeps it attached')
  r.destroy()
  await once(r, 'close')
  assert.ok(await eventually(async () => (await keysContaining(server, name)).length === 0, 10_000))
  await bus.close()
})

test('pubsub: two subscribers each get every published message, in order', async () => {
  const server = redis.servers[0]
  const [a, b, pub] = await Promise.all([oneShard(), oneShard(), oneShard()])
  const name = uniqueName()
  const subA = a.pubsub(name, { objectMode: true }).createReadStream()
  const subB = b.pubsub(name, { objectMode: true }).createReadStream()
  const topic = pub.pubsub(name, { objectMode: true })
  // Pub/sub keeps nothing: publish only once both subscriptions are active on the server.
  assert.ok(await eventually(async () => (await server.cli('PUBSUB', 'NUMSUB', topic.channel)).split('\n')[1] === '2'))
  const gotA = take(subA, 200)
  const gotB = take(subB, 200)
  assert.equal(await topic.publish({ i: 0 }), 2)
  const w = topic.createWriteStream()
  await writeAll(w, range(1, 200).map((i) => ({ i })))
  const expected = range(0, 200).map((i) => ({ i }))
  assert.deepEqual(await gotA, expected)
  assert.deepEqual(await gotB, expected)
  await Promise.all([a.close(), b.close(), pub.close()])
})

test('pubsub: byte mode carries Buffers exactly, and nothing published before subscribing arrives', async () => {
  const server = redis.servers[0]
  const bus = await oneShard()
  const topic = bus.pubsub(uniqueName())
  assert.equal(await topic.publish(Buffer.from('too early')), 0)
  const sub = topic.createReadStream()
  assert.ok(await eventually(async () => (await server.cli('PUBSUB', 'NUMSUB', topic.channel)).split('\n')[1] === '1'))
  const payloads = [randomBytes(100), Buffer.alloc(0), Buffer.from('\r\n'), randomBytes(70_000)]
  const got = take<Buffer>(sub, payloads.length)
  for (const p of payloads) assert.equal(await topic.publish(p), 1)
  const received = await got
  assert.equal(received.length, payloads.length)
  for (let i = 0; i < payloads.length; i++) assert.ok(received[i].equals(payloads[i]), `payload ${i}`)
  await bus.close()
})

test('pubsub topics spread over the shards, each on the shard ownerOf() names', async () => {
  const bus = await openBus(redis.servers)
  const names = range(0, 30).map(() => uniqueName('topic'))
  const owners = names.map((n) => bus.ownerOf(n).id)
  assert.ok(new Set(owners).size >= 2, `all 30 topics on one shard: ${owners[0]}`)

  const topics = names.map((n) => bus.pubsub(n))
  const subs = topics.map((t) => t.createReadStream())
  // Each topic's channel is subscribed on its owner's server and nowhere else.
  const channelsOn = async (): Promise<string[][]> =>
    await Promise.all(redis.servers.map(async (s) => (await s.cli('PUBSUB', 'CHANNELS', '*')).split('\n')))
  assert.ok(await eventually(async () => {
    const all = (await channelsOn()).flat()
    return topics.every((t) => all.includes(t.channel))
  }))
  const channels = await channelsOn()
  for (let i = 0; i < names.length; i++) {
    const on = redis.servers.filter((_, j) => channels[j].includes(topics[i].channel)).map((s) => shardIdOf(s.url))
    assert.deepEqual(on, [owners[i]], `topic ${names[i]}`)
  }
  const usedServers = redis.servers.filter((_, j) => channels[j].some((c) => names.some((n) => c.includes(n))))
  assert.ok(usedServers.length >= 2)

  // Every subscriber gets its own topic's messages and no other topic's.
  const got = subs.map((s) => take<Buffer>(s, 2))
  for (let i = 0; i < names.length; i++) {
    assert.equal(await topics[i].publish(`${names[i]}:a`), 1)
    assert.equal(await topics[i].publish(`${names[i]}:b`), 1)
  }
  const received = await Promise.all(got)
  for (let i = 0; i < names.length; i++) {
    assert.deepEqual(received[i].map(String), [`${names[i]}:a`, `${names[i]}:b`])
  }
  await bus.close()
})

test('pubsub: many subscribers on one bus raise no MaxListenersExceededWarning', async () => {
  const server = redis.servers[0]
  const warnings: Error[] = []
  const onWarning = (w: Error): void => { if (w.name === 'MaxListenersExceededWarning') warnings.push(w) }
  process.on('warning', onWarning)
  try {
    const bus = await oneShard()
    const topics = range(0, 20).map(() => bus.pubsub(uniqueName('many')))
    const subs = topics.map((t) => t.createReadStream())
    assert.ok(await eventually(async () => {
      const channels = (await server.cli('PUBSUB', 'CHANNELS', '*many-*')).split('\n')
      return topics.every((t) => channels.includes(t.channel))
    }))
    const got = subs.map((sub) => take<Buffer>(sub, 1))
    for (const t of topics) await t.publish(t.name)
    assert.deepEqual((await Promise.all(got)).map((m) => String(m[0])), topics.map((t) => t.name))
    // A MaxListenersExceededWarning is emitted on the next tick after the listener that crossed the line.
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(warnings.map((w) => w.message), [])
    await bus.close()
  } finally {
    process.off('warning', onWarning)
  }
})
