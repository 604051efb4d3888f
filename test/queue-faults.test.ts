// Faults around give-backs, attachments and wake-ups: lost replies, failed give-backs, a shard gone while
// closing, mixed TTLs, and races between attach and detach. Each reproduces a defect found in review.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Bus } from '../lib/index.js'
import { startRedis, useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { range, sleep, trackBuses, writeAll } from './helpers/queue.js'
import { startProxy } from './helpers/proxy.js'
import { push as pushScript } from '../lib/scripts/index.js'
import { encodeNewElements } from '../lib/queue/element.js'

const redis = useRedis(1)
const openBus = trackBuses()

test('a give-back whose reply is lost is stored once: the next reader gets each message once', async (t) => {
  const proxy = await startProxy(redis.servers[0].port)
  t.after(() => proxy.close())
  const name = uniqueName()
  const bus = await openBus([proxy], { pollInterval: 60_000 })
  const q = bus.queue(name, { objectMode: true })
  await writeAll(q.createWriteStream(), range(1, 5))
  const reader = q.createReadStream({ highWaterMark: 4 })
  reader.read(0)
  assert.ok(await eventually(() => reader.readableLength === 4))
  assert.equal(reader.read(), 1)
  // Wait until the reader sleeps on its wake-up (subscribed): from then on it sends nothing, so the next
  // request about the queue is the give-back. It runs in Redis; its reply never comes, the connection drops.
  assert.ok(await eventually(async () => (await redis.servers[0].cli('PUBSUB', 'NUMSUB', q.keys.wake)).endsWith('\n1')))
  proxy.dropReplyTo(`{${name}}:m`)
  reader.destroy()
  await reader.settled()
  assert.ok(proxy.fired, 'the give-back went through the proxy')
  const other = await openBus(redis.servers)
  assert.deepEqual(await collect(other.queue(name, { objectMode: true }).createReadStream({ untilEmpty: true })), [2, 3, 4])
})

test('a give-back that Redis refuses (OOM) does not crash the process: the stream closes, the bus reports it', async () => {
  const server = await startRedis()
  try {
    const bus = new Bus({ redis: server.url })
    const errors: Error[] = []
    bus.on('error', (err) => errors.push(err))
    const q = bus.queue(uniqueName(), { objectMode: true })
    await writeAll(q.createWriteStream(), range(0, 10))
    const reader = q.createReadStream({ highWaterMark: 10 })
    reader.read(0)
    assert.ok(await eventually(() => reader.readableLength === 10))
    await server.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
    await server.cli('CONFIG', 'SET', 'maxmemory', '1')
    reader.destroy()
    await once(reader, 'close')
    assert.ok(errors.some((e) => /OOM/.test(e.message)), `the bus reported ${errors.map((e) => e.message).join('; ')}`)
    await server.cli('CONFIG', 'SET', 'maxmemory', '0')
    await bus.close()
  } finally {
    await server.dispose()
  }
})

test('bus.close() while the shard is down resolves, and no error escapes', async () => {
  const server = await startRedis()
  try {
    const bus = new Bus({ redis: server.url, commandTimeout: 1000 })
    const q = bus.queue(uniqueName(), { objectMode: true })
    await writeAll(q.createWriteStream(), range(0, 10))
    const reader = q.createReadStream({ highWaterMark: 10 })
    reader.on('data', () => {})
    reader.pause()
    assert.ok(await eventually(() => reader.readableLength === 10))
    await server.kill()
    await bus.close()
    assert.ok(reader.closed)
  } finally {
    await server.dispose()
  }
})

test('one-off pushes and stream writes in flight and made while the shard is away for a second are each stored once, in order', async (t) => {
  const proxy = await startProxy(redis.servers[0].port)
  t.after(() => proxy.close())
  const name = uniqueName()
  const bus = new Bus({ redis: proxy.url, commandTimeout: 20_000 })
  t.after(() => bus.close())
  const q = bus.queue(name, { objectMode: true })
  await q.push(-1)
  const streamed = bus.queue(`${name}-stream`, { objectMode: true })
  const ws = streamed.createWriteStream()
  const written = new Promise((resolve, reject) => {
    ws.on('finish', resolve)
    ws.on('error', reject)
  })
  const calls: Array<Promise<number | null>> = []
  let next = 0
  let outage: Promise<void> | undefined
  // A few pushes and writes every 5 ms, never awaited one by one; 100 ms in, every connection is cut and
  // new ones are refused for a second (several reconnection attempts and re-checks), then let through.
  const started = Date.now()
  while (Date.now() - started < 2000) {
    for (let j = 0; j < 3; j++) {
      ws.write(next)
      calls.push(q.push(next++))
    }
    if (outage === undefined && Date.now() - started > 100) {
      proxy.refuseNewConnections(true)
      proxy.cutAll()
      outage = sleep(1000).then(() => proxy.refuseNewConnections(false))
    }
    await sleep(5)
  }
  ws.end()
  await outage
  const ids = await Promise.all(calls)
  await written
  const reader = await openBus(redis.servers)
  const got = await collect<number>(reader.queue(name, { objectMode: true }).createReadStream({ untilEmpty: true }))
  assert.equal(got.length, next + 1, `${next + 1} pushes resolved, ${got.length} stored`)
  assert.deepEqual(got, [-1, ...range(0, next)])
  assert.deepEqual(ids, range(2, next + 2))
  const gotStreamed = await collect<number>(reader.queue(`${name}-stream`, { objectMode: true }).createReadStream({ untilEmpty: true }))
  assert.deepEqual(gotStreamed, range(0, next), `${next} written, ${gotStreamed.length} stored`)
})

test('the push script stores a batch that arrives after a later one of its producer, once, and still answers duplicates', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  const shard = await q.shard()
  const push = async (batch: number, low: number, value: string): Promise<[number, number, string]> =>
    await pushScript(shard, q.keys, {
      ttl: 60_000,
      maxLength: 0,
      retain: 0,
      waitForRoom: false,
      producer: 'p-test',
      batch,
      low,
      incarnation: '',
      elements: encodeNewElements([Buffer.from(JSON.stringify(value))])
    })
  // Batches 1 to 3 are in flight together (the oldest unanswered is 1); 3 and 2 reach Redis first.
  assert.deepEqual((await push(3, 1, 'c')).slice(0, 2), [1, 1])
  assert.deepEqual((await push(2, 1, 'b')).slice(0, 2), [1, 2])
  assert.deepEqual((await push(1, 1, 'a')).slice(0, 2), [1, 3])
  // Each sent again: answered from the record, stored once.
  assert.deepEqual((await push(2, 1, 'b')).slice(0, 2), [1, 2])
  assert.deepEqual((await push(1, 1, 'a')).slice(0, 2), [1, 3])
  assert.deepEqual((await push(3, 1, 'c')).slice(0, 2), [1, 1])
  // 1 to 3 answered: batch 4 is the oldest unanswered; the record keeps only what it needs.
  assert.deepEqual((await push(4, 4, 'd')).slice(0, 2), [1, 4])
  assert.equal(await shard.client.hget(q.keys.info, 'pp-test'), '4:1:4')
  // A batch done long ago, sent again, stores nothing.
  assert.deepEqual((await push(2, 2, 'b')).slice(0, 2), [1, 4])
  // Many in flight: at most 64 batches are kept; the ones before go below the floor.
  for (let b = 5; b <= 80; b++) await push(b, 5, `m${b}`)
  const record = await shard.client.hget(q.keys.info, 'pp-test')
  assert.match(record ?? '', /^17;17:1:\d+,/)
  assert.equal(record!.split(',').length, 64)
  const got = await collect<string>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got, ['c', 'b', 'a', 'd', ...range(5, 81).map((b) => `m${b}`)])
})

test('a producer waiting for room whose subscriber never connects falls back to polling, and bus.close() resolves', async (t) => {
  const proxy = await startProxy(redis.servers[0].port)
  t.after(() => proxy.close())
  const name = uniqueName()
  const bus = new Bus({ redis: proxy.url, pollInterval: 200, commandTimeout: 3000 })
  await bus.connect()
  // The command connection is made; the subscriber connection, made on the first wait, gets nowhere.
  proxy.blackholeNewConnections(true)
  const q = bus.queue(name, { objectMode: true, maxLength: 2 })
  const w = q.createWriteStream()
  w.on('error', () => {})
  for (const i of range(0, 4)) w.write(i)
  const consumer = await openBus(redis.servers)
  const got = await collect(consumer.queue(name, { objectMode: true }).createReadStream({ max: 4 }))
  assert.deepEqual(got, range(0, 4), 'the producer pushed the rest after the consumer made room (by polling)')
  await bus.close()
})

test('an attached dead-letter queue keeps its history past the TTL', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true, ttl: 600 })
  await q.push('poison')
  const reader = q.createReadStream({ mode: 'reliable', maxDeliveries: 1 })
  const [msg] = await once(reader, 'data')
  await msg.nack({ deadLetter: true })
  reader.destroy()
  await reader.settled()
  const dlq = q.deadLetter()
  await dlq.attach()
  const [record] = await Promise.all([dlq.history(1)])
  assert.equal(record?.reason, 'nack')
  // Three TTLs later, attached all along: the record is still there.
  await new Promise((resolve) => setTimeout(resolve, 1800))
  assert.equal((await dlq.history(1))?.reason, 'nack')
  await dlq.detach()
})

test('a client with a shorter TTL never shortens the keys of a queue another client keeps attached', async () => {
  const name = uniqueName()
  const keeper = await openBus(redis.servers, { ttl: 6000 })
  const hasty = await openBus(redis.servers, { ttl: 500 })
  const q = keeper.queue(name, { objectMode: true })
  await q.attach()
  await q.setMeta({ owner: 'keeper' })
  await hasty.queue(name, { objectMode: true }).push('x')
  await new Promise((resolve) => setTimeout(resolve, 1500))
  assert.equal(await q.count(), 1, 'the message outlived the pusher\'s short TTL')
  assert.equal((await q.stats()).clients, 1)
  assert.equal(await q.getMeta('owner'), 'keeper')
  await q.detach()
})

test('detach() while the first attach is on its way: the queue ends up detached and expires', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { ttl: 500 })
  const attaching = q.attach()
  await q.detach()
  await attaching
  assert.ok(await eventually(async () => !(await q.exists()), 5000), 'the queue expired')
})

test('one-off pushes through many handles keep one idempotency record per bus, not one per handle', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName()
  for (let i = 0; i < 50; i++) await bus.queue(name).push(`m${i}`)
  const fields = (await redis.servers[0].cli('HKEYS', bus.queue(name).keys.info)).split('\n').filter((f) => f.startsWith('p'))
  assert.equal(fields.length, 1, `producer records: ${fields.join(', ')}`)
})

test('attach() after bus.close() rejects with ERR_BUSMQ_CLOSED instead of hanging', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName())
  await q.push('x')
  await bus.close()
  await assert.rejects(q.attach(), { code: 'ERR_BUSMQ_CLOSED' })
})

test('connect() retried against a dead port does not pile up listeners', async () => {
  const bus = new Bus({ redis: 'redis://127.0.0.1:1', connectTimeout: 50, redisOptions: { retryStrategy: () => 20 } })
  bus.on('error', () => {})
  const warnings: Error[] = []
  const onWarning = (w: Error): void => { warnings.push(w) }
  process.on('warning', onWarning)
  try {
    for (let i = 0; i < 15; i++) await assert.rejects(bus.connect(), { code: 'ERR_BUSMQ_CONNECT_TIMEOUT' })
  } finally {
    process.off('warning', onWarning)
    await bus.close()
  }
  assert.deepEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), [])
})

test('a channel whose peer ended: destroyed with messages still buffered, it gives them back', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('ch')
  const sender = a.channel(name)
  // The first reader's destroy() tells the sender (ERR_BUSMQ_PEER_DESTROYED); that is not what this tests.
  sender.on('error', () => {})
  for (const i of range(0, 10)) sender.write(`${i}`)
  sender.end()
  const first = b.channel(name, { listen: true })
  const got: string[] = []
  await new Promise<void>((resolve) => {
    first.on('data', (m: Buffer) => {
      got.push(m.toString())
      if (got.length === 7) {
        first.pause()
        resolve()
      }
    })
  })
  // The peer's end marker has been read; three messages sit in this side's buffer.
  assert.ok(await eventually(() => first.readableLength === 3))
  first.destroy()
  await once(first, 'close')
  const second = b.channel(name, { listen: true })
  const rest: string[] = []
  second.on('data', (m: Buffer) => rest.push(m.toString()))
  assert.ok(await eventually(() => rest.length === 3), `the second peer got ${JSON.stringify(rest)}`)
  assert.deepEqual([...got, ...rest], range(0, 10).map(String))
  second.destroy()
})

test('scripts flushed from the server (SCRIPT FLUSH, as after a restart) are loaded again by the next call: nothing fails, nothing is lost', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { objectMode: true })
  const reader = q.createReadStream()
  const got: unknown[] = []
  reader.on('data', (m) => got.push(m))
  await q.push(1)
  assert.ok(await eventually(() => got.length === 1))
  // Every script gone while the reader waits and the heartbeat runs: the next EVALSHA is answered NOSCRIPT.
  await redis.servers[0].cli('SCRIPT', 'FLUSH')
  await q.push(2)
  await writeAll(q.createWriteStream(), [3, 4])
  assert.equal(await q.attach(), true)
  assert.ok(await eventually(() => got.length === 4))
  assert.deepEqual(got, [1, 2, 3, 4])
  await q.detach()
  reader.destroy()
})

test('a server without the scripts: writers on new connections pipelining batches while others load the scripts lose nothing and keep order', async () => {
  await redis.servers[0].cli('SCRIPT', 'FLUSH')
  const name = uniqueName()
  const writers = ['a', 'b', 'c']
  const buses = await Promise.all(writers.map(async () => await openBus(redis.servers)))
  const perWriter = 3000
  const ONE_OFF = 200
  // Small batches, many in flight at once on each connection: the first calls of each connection race
  // the other connections' first calls of the same script.
  await Promise.all(writers.map(async (w, i) => {
    const q = buses[i].queue(name, { objectMode: true })
    await Promise.all([
      writeAll(q.createWriteStream({ highWaterMark: 8 }), range(0, perWriter).map((n) => `${w}${n}`)),
      // One-off pushes not awaited one by one, a turn of the event loop apart: batches of one producer in
      // flight in successive pipelines, the later ones sent before the replies of the earlier ones.
      (async () => {
        const pushes: Array<Promise<unknown>> = []
        for (let n = 0; n < ONE_OFF; n++) {
          pushes.push(q.push(`${w}-one-${n}`))
          await new Promise((resolve) => setImmediate(resolve))
        }
        await Promise.all(pushes)
      })()
    ])
  }))
  const reader = (await openBus(redis.servers)).queue(name, { objectMode: true }).createReadStream({ untilEmpty: true })
  const got = await collect<string>(reader)
  for (const w of writers) {
    assert.deepEqual(got.filter((m) => new RegExp(`^${w}\\d+$`).test(m)), range(0, perWriter).map((n) => `${w}${n}`))
    assert.deepEqual(got.filter((m) => m.startsWith(`${w}-one-`)), range(0, ONE_OFF).map((n) => `${w}-one-${n}`))
  }
  assert.equal(got.length, writers.length * (perWriter + ONE_OFF))
})
