// What a reader hands on is never given back, and what it gives back is never handed on: destroy() from
// inside the Readable's own flow, in pipelines and channels, and when the given-back messages are visible.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { range, trackBuses, writeAll } from './helpers/queue.js'
import type { QueueReadStream } from '../lib/index.js'

const redis = useRedis(1)
const openBus = trackBuses()

/** Resolves once the reader's buffer holds `n` messages (it filled it without anyone reading). */
async function filled (reader: QueueReadStream, n: number): Promise<void> {
  assert.ok(await eventually(() => reader.readableLength >= n), `the reader buffered ${n} messages`)
}

test('destroy() from a data handler while the Readable drains its full buffer: nothing delivered twice', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 200))
  const reader = q.createReadStream({ highWaterMark: 32 })
  reader.pause()
  reader.read(0)
  await filled(reader, 32)
  const got: number[] = []
  reader.on('data', (m: number) => {
    got.push(m)
    if (got.length === 5) reader.destroy()
  })
  reader.resume()
  await once(reader, 'close')
  const rest = await collect<number>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, range(0, 5), 'the handler saw the messages up to its destroy(), none after')
  assert.deepEqual(rest, range(5, 200), 'everything else is back in the queue, in order, once')
})

test('a sink that destroys its source inside pipeline(): each message reaches the sink or the queue, not both', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 200))
  const reader = q.createReadStream({ highWaterMark: 32 })
  reader.pause()
  reader.read(0)
  await filled(reader, 32)
  const got: number[] = []
  const sink = new Writable({
    objectMode: true,
    highWaterMark: 1,
    write (m: number, _enc, cb) {
      got.push(m)
      if (got.length === 5) reader.destroy(new Error('enough'))
      cb()
    }
  })
  await assert.rejects(pipeline(reader, sink), /enough/)
  if (!reader.closed) await once(reader, 'close')
  const rest = await collect<number>(q.createReadStream({ untilEmpty: true }))
  assert.equal(got.length + rest.length, 200, `sink ${got.length} + queue ${rest.length}`)
  assert.deepEqual([...got, ...rest], range(0, 200), 'each message once, in order')
})

for (const at of [1, 16, 17, 40, 333]) {
  test(`a flowing reader destroyed at message ${at}, with a fetch sent ahead of its consumer: nothing lost, nothing twice, order kept`, async () => {
    const bus = await openBus(redis.servers)
    const q = bus.queue(uniqueName(), { objectMode: true })
    await writeAll(q.createWriteStream(), range(0, 2000))
    // Flowing from the start: each full batch of 16 sends the next fetch before it is handed on.
    const reader = q.createReadStream({ highWaterMark: 16 })
    const got: number[] = []
    reader.on('data', (m: number) => {
      got.push(m)
      if (got.length === at) reader.destroy()
    })
    await once(reader, 'close')
    const rest = await collect<number>(q.createReadStream({ untilEmpty: true }))
    assert.deepEqual(got, range(0, at), 'the handler saw the messages up to its destroy(), none after')
    assert.deepEqual(rest, range(at, 2000), 'everything else is back in the queue, in order, once')
  })
}

test('a flowing reader paused after a fetch ahead holds at most 2 × highWaterMark, all in its buffer; destroyed, it gives all back in order', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 2000))
  const reader = q.createReadStream({ highWaterMark: 16 })
  const got: number[] = []
  reader.on('data', (m: number) => {
    got.push(m)
    if (got.length === 50) reader.pause()
  })
  // Whatever the reader took and did not hand on is in its buffer, the rest in Redis.
  assert.ok(await eventually(async () => got.length === 50 && reader.readableLength > 0 &&
    await q.count() + reader.readableLength === 2000 - 50), `buffered ${reader.readableLength}, in Redis ${await q.count()}`)
  assert.ok(reader.readableLength <= 32, `${reader.readableLength} buffered`)
  reader.destroy()
  await once(reader, 'close')
  const rest = await collect<number>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, range(0, 50))
  assert.deepEqual(rest, range(50, 2000))
})

test('read() by hand after destroy() returns nothing: the buffered messages went back', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  const reader = q.createReadStream({ highWaterMark: 20 })
  reader.read(0)
  await filled(reader, 20)
  assert.equal(reader.read(), 0)
  reader.destroy()
  assert.equal(reader.read(), null)
  await once(reader, 'close')
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(1, 100))
})

test('a channel destroyed from its data handler while draining a full buffer: a later peer gets only the rest', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('ch')
  const sender = a.channel(name)
  // The first reader's destroy() tells the sender (ERR_BUSMQ_PEER_DESTROYED); that is not what this tests.
  sender.on('error', () => {})
  for (const i of range(0, 200)) sender.write(`${i}`)
  await new Promise<void>((resolve, reject) => sender.write('last', (err) => err ? reject(err) : resolve()))
  const first = b.channel(name, { listen: true, highWaterMark: 32 })
  first.pause()
  first.read(0)
  assert.ok(await eventually(() => first.readableLength >= 32), 'the channel buffered a full batch')
  const got: string[] = []
  first.on('data', (m: Buffer) => {
    got.push(m.toString())
    if (got.length === 5) first.destroy()
  })
  first.resume()
  await once(first, 'close')
  assert.deepEqual(got, range(0, 5).map(String))
  const second = b.channel(name, { listen: true })
  const later: string[] = []
  for await (const m of second) {
    later.push((m as Buffer).toString())
    if (later.length === 196) break
  }
  assert.deepEqual(later, [...range(5, 200).map(String), 'last'], 'the second peer starts right after what the first handed on')
  sender.destroy()
})

test('after a for-await break, the given-back messages are visible to the next call on the same bus', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  for await (const m of q.createReadStream({ highWaterMark: 50 })) {
    if (m === 2) break
  }
  // No wait for 'close': count() and a new reader see the queue with the give-back applied.
  assert.equal(await q.count(), 97)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(3, 100))
})

test('after take(), an untilEmpty reader on another handle of the same bus sees the given-back messages', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  const reader = q.createReadStream({ highWaterMark: 50 })
  const firstTwo: number[] = []
  for await (const m of reader) {
    firstTwo.push(m as number)
    if (firstTwo.length === 2) break
  }
  assert.deepEqual(firstTwo, [0, 1])
  assert.deepEqual(await collect(bus.queue(name, { objectMode: true }).createReadStream({ untilEmpty: true })), range(2, 100))
})

test('reader.settled() resolves once what the reader gave back is in the queue', async () => {
  const bus = await openBus(redis.servers)
  const other = await openBus(redis.servers)
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  const reader = q.createReadStream({ highWaterMark: 50 })
  const iterator = reader[Symbol.asyncIterator]()
  assert.deepEqual(await iterator.next(), { done: false, value: 0 })
  // Like a for-await break: the iterator's return() destroys the reader, which gives back the rest.
  await iterator.return!()
  await reader.settled()
  assert.ok(reader.closed)
  // Another process (bus) sees it too once settled() resolved.
  assert.equal(await other.queue(name).count(), 99)
})

test('bus.close() during a for-await loop ends it with ERR_BUSMQ_CLOSED, and nothing is lost', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true })
  await writeAll(q.createWriteStream(), range(0, 100))
  const got: unknown[] = []
  await assert.rejects((async () => {
    for await (const m of q.createReadStream({ highWaterMark: 10 })) {
      got.push(m)
      if (got.length === 3) void bus.close()
    }
  })(), { code: 'ERR_BUSMQ_CLOSED' })
  await bus.close()
  const after = await openBus(redis.servers)
  const rest = await collect(after.queue(name, { objectMode: true }).createReadStream({ untilEmpty: true }))
  assert.deepEqual([...got, ...rest], range(0, 100))
})

test('bus.close() while a channel is being set up closes it quietly (no uncaught error)', async () => {
  for (const delay of [0, 1, 2]) {
    const bus = await openBus(redis.servers)
    const ch = bus.channel(uniqueName('ch'))
    for (let i = 0; i < delay; i++) await new Promise((resolve) => setImmediate(resolve))
    await bus.close()
    if (!ch.closed) await once(ch, 'close')
    assert.ok(ch.destroyed)
  }
})

test('bus.close() right after opening a reader, a writer and a pub/sub reader closes them quietly', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName())
  const streams = [q.createReadStream(), q.createWriteStream(), bus.pubsub(uniqueName()).createReadStream(),
    q.createReadStream({ mode: 'reliable' })]
  await bus.close()
  for (const s of streams) {
    if (!s.closed) await once(s, 'close')
    assert.ok(s.destroyed)
  }
})
