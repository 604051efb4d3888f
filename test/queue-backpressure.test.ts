import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import through2 from 'through2'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { range, sleep, trackBuses, writeAll, writeCorked } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()
const oneShard = () => openBus(redis.servers)

test('bounded queue: a producer stalls at maxLength, then everything arrives exactly once, in order', async () => {
  // A stalled producer looks again every pollInterval: 50 ms, so the quiet window below sees it retry.
  const bus = await openBus(redis.servers, { pollInterval: 50 })
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 100 })
  const w = q.createWriteStream()
  let acked = 0
  let refused = 0
  // A producer that ignores backpressure altogether: 5,000 writes at once.
  for (const i of range(0, 5000)) {
    if (!w.write(i, (err) => { if (!err) acked++ })) refused++
  }
  assert.ok(refused > 0, 'write() returned false once the buffer filled')

  assert.ok(await eventually(async () => await q.count() === 100))
  // Nothing may happen now, and there is no event for nothing: the producer retries (every 50 ms)
  // for a while and the bound must hold.
  await sleep(300)
  assert.equal(await q.count(), 100, 'the bound holds')
  assert.ok(w.writableLength > 0, 'the rest waits in the producer')
  assert.ok(acked <= 100, `a write callback means Redis accepted the message: ${acked} callbacks, 100 in Redis`)
  assert.equal(w.writableFinished, false)

  // Sample the length all along the drain: it never goes over the bound.
  let highest = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      highest = Math.max(highest, await q.count())
      await sleep(5) // the sampling pace
    }
  })()
  const got = await collect<number>(q.createReadStream({ max: 5000, highWaterMark: 50 }))
  sampling = false
  await sampler
  assert.equal(got.length, 5000)
  assert.deepEqual(got, range(0, 5000))
  assert.ok(highest <= 100, `queue length reached ${highest}`)
  w.end()
  await once(w, 'finish')
  assert.equal(acked, 5000)
  assert.equal(await q.count(), 0)
  const stats = await q.stats()
  assert.equal(stats.pushed, 5000)
  assert.equal(stats.consumed, 5000)
  await bus.close()
})

test('bounded queue: a well-behaved producer waits for drain and a slow consumer gets everything', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 50 })
  const producing = pipeline(Readable.from(range(0, 3000)), q.createWriteStream({ highWaterMark: 16, endMarker: true }))
  const got: number[] = []
  for await (const m of q.createReadStream({ untilEnd: true, highWaterMark: 10 })) {
    got.push(m as number)
    if (got.length % 500 === 0) {
      assert.ok(await q.count() <= 50)
      await sleep(20) // a slow consumer is the point
    }
  }
  await producing
  assert.deepEqual(got, range(0, 3000))
  await bus.close()
})

test('bounded queue: push() resolves only once there is room, with the next id', async () => {
  // The held push looks again every 50 ms, so the quiet window below sees it retry.
  const bus = await openBus(redis.servers, { pollInterval: 50 })
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 10 })
  for (const i of range(0, 10)) await q.push(i)
  let id: number | null = 0
  const pending = q.push(10).then((n) => { id = n })
  // Nothing may happen for a while (no event for that): the push keeps finding the queue full.
  await sleep(300)
  assert.equal(id, 0, 'push() is held while the queue is full')
  assert.equal(await q.count(), 10)
  assert.deepEqual(await collect(q.createReadStream({ max: 1 })), [0])
  await pending
  assert.equal(id, 11)
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), range(1, 11))
  await bus.close()
})

test('bus.close() does not hang on a producer blocked by a full bounded queue', async () => {
  const bus = await oneShard()
  const name = uniqueName()
  const q = bus.queue(name, { objectMode: true, maxLength: 5 })
  const w = q.createWriteStream()
  w.on('error', () => {})
  for (const i of range(0, 10)) w.write(i)
  assert.ok(await eventually(async () => await q.count() === 5))
  // A bound on close(), as a timer cleared when close() is done: it must not outlive the test.
  let bound: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    bus.close().then(() => 'closed'),
    new Promise<string>((resolve) => { bound = setTimeout(() => resolve('still closing after 10 s'), 10_000) })
  ])
  clearTimeout(bound)
  const other = await oneShard()
  const left = other.queue(name, { objectMode: true })
  if (outcome !== 'closed') {
    // Make room so the stuck close() can finish and the test process can exit.
    await collect(left.createReadStream({ max: 5 }))
    await bus.close()
  }
  assert.equal(outcome, 'closed')
  assert.deepEqual(await collect(left.createReadStream({ untilEmpty: true })), range(0, 5))
  await other.close()
})

test('a paused reader keeps at most 2 × highWaterMark in memory; the rest stays in Redis', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const total = 100_000
  const hwm = 100
  const reader = q.createReadStream({ highWaterMark: hwm })
  const got: number[] = []
  reader.on('data', (m: number) => {
    got.push(m)
    if (got.length === 1000) reader.pause()
  })
  await writeAll(q.createWriteStream(), range(0, total))

  // Once the buffer is full the reader stops taking messages: what it holds plus what is left in Redis
  // is everything it has not handed on.
  const settled = async (): Promise<boolean> =>
    got.length === 1000 && reader.readableLength >= hwm && await q.count() + reader.readableLength === total - 1000
  assert.ok(await eventually(settled, 20_000),
    `got ${got.length}, buffered ${reader.readableLength}, in Redis ${await q.count()}`)
  // Nothing may move while paused (no event for that): look again a while later.
  await sleep(300)
  assert.ok(await settled(), 'nothing moved while paused')
  assert.ok(reader.readableLength <= 2 * hwm, `${reader.readableLength} messages buffered`)
  assert.equal(got.length, 1000)

  const done = new Promise<void>((resolve) => reader.on('data', () => { if (got.length === total) resolve() }))
  reader.resume()
  await done
  reader.destroy()
  await once(reader, 'close')
  assert.equal(got.length, total)
  for (let i = 0; i < total; i++) if (got[i] !== i) assert.fail(`message ${i} is ${got[i]}`)
  assert.equal(await q.count(), 0)
  await bus.close()
})

test('a reader nobody reads from fills its buffer once and leaves everything else in Redis', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const total = 100_000
  const hwm = 64
  const reader = q.createReadStream({ highWaterMark: hwm })
  // A 'readable' listener starts the reader, but nothing ever calls read().
  reader.on('readable', () => {})
  await writeAll(q.createWriteStream(), range(0, total))
  const settled = async (): Promise<boolean> =>
    reader.readableLength >= hwm && await q.count() + reader.readableLength === total
  assert.ok(await eventually(settled, 20_000), `buffered ${reader.readableLength}, in Redis ${await q.count()}`)
  // Nothing may move (no event for that): look again a while later.
  await sleep(300)
  assert.ok(await settled())
  assert.ok(reader.readableLength <= 2 * hwm, `${reader.readableLength} messages buffered`)

  reader.removeAllListeners('readable')
  const got = await collect<number>(q.createReadStream({ max: total - reader.readableLength, highWaterMark: 1000 }))
  // The idle reader's buffer holds the head of the queue; the second reader gets all the rest, in order.
  const head = reader.readableLength
  assert.equal(got.length, total - head)
  for (let i = 0; i < got.length; i++) if (got[i] !== head + i) assert.fail(`message ${i} is ${got[i]}`)
  const first: number[] = []
  for (let m = reader.read(); m !== null && first.length < head; m = reader.read()) first.push(m)
  assert.deepEqual(first, range(0, head))
  await bus.close()
})

test('tee: one reader piped into two through2 transforms, both see every message in order', async () => {
  const bus = await oneShard()
  const q = bus.queue(uniqueName(), { objectMode: true })
  const n = 10_000
  const producing = writeAll(q.createWriteStream({ endMarker: true }), range(0, n).map((i) => ({ i })))
  const reader = q.createReadStream({ untilEnd: true, highWaterMark: 128 })
  const double = through2.obj((m, _enc, cb) => cb(null, m.i * 2))
  // A slower branch: the tee runs at the pace of the slowest reader.
  const label = through2.obj(async (m: { i: number }) => {
    if (m.i % 1000 === 0) await sleep(10) // the slower branch
    return `#${m.i}`
  })
  reader.pipe(double)
  reader.pipe(label)
  const [doubled, labelled] = await Promise.all([collect(double), collect(label), producing])
  assert.deepEqual(doubled, range(0, n).map((i) => i * 2))
  assert.deepEqual(labelled, range(0, n).map((i) => `#${i}`))
  assert.equal(await q.count(), 0)
  await bus.close()
})

test('queue → through2 → queue with stream.pipeline moves everything, in order, end marker included', async () => {
  const bus = await oneShard()
  const from = bus.queue(uniqueName(), { objectMode: true })
  const to = bus.queue(uniqueName(), { objectMode: true })
  const n = 5000
  await Promise.all([
    writeAll(from.createWriteStream({ endMarker: true }), range(0, n)),
    pipeline(
      from.createReadStream({ untilEnd: true }),
      through2.obj((x, _enc, cb) => cb(null, { x, square: x * x })),
      to.createWriteStream({ endMarker: true })
    )
  ])
  const got = await collect(to.createReadStream({ untilEnd: true }))
  assert.deepEqual(got, range(0, n).map((x) => ({ x, square: x * x })))
  assert.equal(await from.count(), 0)
  assert.equal(await to.count(), 0)
  await bus.close()
})

test('a reader that found the queue empty while a producer of the same handle was subscribing for room is woken by the push, not the poll', { timeout: 30_000 }, async () => {
  // No polling to fall back on: a wake-up missed here leaves the reader waiting past the test's timeout.
  const bus = await openBus(redis.servers, { pollInterval: 600_000 })
  const q = bus.queue(uniqueName(), { maxLength: 7 })
  const messages = range(0, 60).map((i) => Buffer.alloc(32, i))
  // In one tick: the writer's batch (more than fits: it stores 7, then subscribes to wait for room) and a
  // reader whose first look comes before that push and whose wait comes after the writer's subscribe.
  const finished = writeCorked(q, messages)
  const got = await collect<Buffer>(q.createReadStream({ max: messages.length, highWaterMark: 3 }))
  await finished
  assert.equal(got.length, messages.length)
  assert.ok(got.every((m, i) => m.equals(messages[i])), 'every message once, in order')
})
