// Federation: a bus with Redis serves federation over a WebSocket; a second bus configured with only
// `federation` (no Redis at all) uses queues, channels, pub/sub, services and objects through it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { Readable, Transform } from 'node:stream'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName, eventually } from './helpers/bus.js'
import { fedServer, fedClient } from './helpers/federation.js'

const redis = useRedis(1)

test('queue: 100,000 messages written through federation are read through federation exactly once, in order', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { poolSize: 2 })
  const name = uniqueName('fedq')
  const N = 100_000
  const q = client.queue(name, { objectMode: true })
  const reader = q.createReadStream({ max: N })
  const got: number[] = []
  const reading = (async () => { for await (const m of reader) got.push(m as number) })()
  const writer = q.createWriteStream()
  await pipeline(Readable.from((function * () { for (let i = 0; i < N; i++) yield i })()), writer)
  await reading
  assert.equal(got.length, N)
  for (let i = 0; i < N; i++) if (got[i] !== i) assert.fail(`message ${i} is ${got[i]}`)
  assert.equal(await server.bus.queue(name).count(), 0)
})

test('channel: a federated peer and a native peer echo, and a half-close reaches each side as end', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fedch')
  // The native peer echoes what it reads, then ends its side when the federated one has ended.
  const native = server.bus.channel(name, { listen: true })
  // (Not for await: leaving that loop destroys the channel, which its peer would see as an abort.)
  let n = 0
  native.on('data', (chunk) => {
    native.write(chunk)
    n++
  })
  const echoed = once(native, 'end').then(() => {
    native.end()
    return n
  })
  const remote = client.channel(name)
  const remoteConnected = once(remote, 'remote:connect')
  const got: string[] = []
  remote.on('data', (c: Buffer) => got.push(c.toString()))
  const ended = once(remote, 'end')
  const sent = Array.from({ length: 500 }, (_, i) => `m${i}`)
  for (const s of sent) remote.write(s)
  remote.end()
  assert.equal(await echoed, 500, 'the native side saw the federated end after every message')
  await ended
  assert.deepEqual(got, sent)
  await remoteConnected
})

test('pub/sub: a federated subscriber receives what a native and a federated publisher publish', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const topic = uniqueName('fedtopic')
  const sub = client.pubsub(topic, { objectMode: true }).createReadStream()
  await once(sub, 'ready')
  await eventually(async () => (await server.bus.pubsub(topic, { objectMode: true }).publish({ probe: true })) > 0)
  const got: unknown[] = []
  sub.on('data', (m) => { if (!(m as { probe?: boolean }).probe) got.push(m) })
  await server.bus.pubsub(topic, { objectMode: true }).publish({ from: 'native' })
  assert.equal(await client.pubsub(topic, { objectMode: true }).publish({ from: 'federated' }), 1)
  const w = client.pubsub(topic, { objectMode: true }).createWriteStream()
  w.end({ from: 'stream' })
  await once(w, 'finish')
  await eventually(() => got.length === 3)
  assert.deepEqual(got, [{ from: 'native' }, { from: 'federated' }, { from: 'stream' }])
  sub.destroy()
})

test('find(): local on the serving bus, the server URL on a federated bus, null when nobody has the queue', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fedfind')
  assert.equal(await client.queue(name).find(), null)
  assert.equal(await server.bus.queue(name).find(), null)
  await client.queue(name).push(Buffer.from('x'))
  assert.equal(await client.queue(name).find(), server.url)
  assert.equal(await server.bus.queue(name).find(), 'local')
  assert.equal(await client.queue(name).count(), 1)
})

test('services and objects: a federated request is answered by a native server; an object saved through federation is seen natively and back', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const svc = uniqueName('fedsvc')
  server.bus.service<{ n: number }, number>(svc, { objectMode: true }).serve((req) => req.data.n * 2)
  const replies = await Promise.all([1, 2, 3].map((n) => client.service<{ n: number }, number>(svc, { objectMode: true }).request({ n }, { timeout: 10_000 })))
  assert.deepEqual(replies, [2, 4, 6])
  server.bus.service(`${svc}-fails`, { objectMode: true }).serve(() => { throw new Error('nope') })
  await assert.rejects(client.service(`${svc}-fails`, { objectMode: true }).request({}, { timeout: 10_000 }), { code: 'ERR_BUSMQ_REMOTE' })

  const name = uniqueName('fedobj')
  const obj = client.object<{ a: number, b: string }>(name)
  assert.equal(await obj.load(), null)
  const changes = obj.createChangeStream()
  await once(changes, 'ready')
  const v1 = await obj.set({ a: 1, b: 'x' }).save()
  assert.deepEqual(await server.bus.object(name).load(), { a: 1, b: 'x' })
  const native = server.bus.object(name)
  await native.load()
  await native.set({ a: 2 }).save()
  assert.deepEqual(await obj.load(), { a: 2, b: 'x' })
  await assert.rejects(obj.set({ b: 'y' }).save({ ifVersion: v1 }), { code: 'ERR_BUSMQ_CONFLICT' })
  const seen: unknown[] = []
  for await (const c of changes) {
    seen.push(c.fields)
    if (seen.length === 2) break
  }
  assert.deepEqual(seen, [{ a: 1, b: 'x' }, { a: 2 }])
})

test('services over federation: send() reaches a native server once; createTransform keeps request order with 8 in flight', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const svc = uniqueName('fedsend')
  const got: number[] = []
  server.bus.service<{ n: number }, undefined>(svc, { objectMode: true }).serve((req) => { got.push(req.data.n) })
  const remote = client.service<{ n: number }, undefined>(svc, { objectMode: true })
  for (let n = 0; n < 20; n++) await remote.send({ n })
  assert.ok(await eventually(async () => got.length === 20, 10_000), `${got.length} of 20 sent requests handled`)
  assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 20 }, (_, n) => n))

  const doubler = uniqueName('fedtransform')
  server.bus.service<number, number>(doubler, { objectMode: true }).serve(async (req) => {
    // Replies come back out of order; the transform must put them back in request order.
    await new Promise((resolve) => setTimeout(resolve, (7 * req.data) % 13))
    return req.data * 2
  })
  const out: number[] = []
  await pipeline(
    Readable.from(Array.from({ length: 100 }, (_, i) => i)),
    client.service<number, number>(doubler, { objectMode: true }).createTransform({ concurrency: 8, timeout: 10_000 }),
    new Transform({ objectMode: true, transform (chunk: number, _e, cb) { out.push(chunk); cb() } })
  )
  assert.deepEqual(out, Array.from({ length: 100 }, (_, i) => i * 2))
})

test('a federated bus serves a service: native and federated requesters get its replies; a throw is ERR_BUSMQ_REMOTE; close() stops it', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const requester = await fedClient([server.url])
  const svc = uniqueName('fedserve')
  const served = client.service<{ n: number }, number>(svc, { objectMode: true }).serve(async (req) => {
    if (req.data.n < 0) throw new Error('negative')
    return req.data.n + 1
  })
  await once(served, 'ready')
  const native = server.bus.service<{ n: number }, number>(svc, { objectMode: true })
  assert.deepEqual(await Promise.all([1, 2, 3].map((n) => native.request({ n }, { timeout: 10_000 }))), [2, 3, 4])
  const remote = requester.service<{ n: number }, number>(svc, { objectMode: true })
  assert.deepEqual(await Promise.all(Array.from({ length: 100 }, (_, n) => remote.request({ n }, { timeout: 10_000 }))),
    Array.from({ length: 100 }, (_, n) => n + 1))
  await assert.rejects(native.request({ n: -1 }, { timeout: 10_000 }), (err: any) => err.code === 'ERR_BUSMQ_REMOTE' && /negative/.test(err.message))
  await served.close()
  await assert.rejects(native.request({ n: 1 }, { timeout: 500 }), { code: 'ERR_BUSMQ_REQUEST_TIMEOUT' })
})

test('reliable readers over federation: acked through an ack stream; what a destroyed reader held is delivered again', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fedrel')
  const native = server.bus.queue(name, { objectMode: true })
  for (let i = 0; i < 50; i++) await native.push({ i })
  const q = client.queue(name, { objectMode: true })
  const seen: number[] = []
  await pipeline(q.createReadStream({ mode: 'reliable', max: 30 }), new Transform({
    objectMode: true,
    transform (msg, _enc, cb) {
      seen.push(msg.data.i)
      assert.equal(msg.redelivered, false)
      cb(null, msg)
    }
  }), q.createAckStream())
  assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => i))
  // A reader that takes the rest, acks none, and is destroyed: they go back, delivered again.
  const holder = q.createReadStream({ mode: 'reliable', lease: 60_000 })
  const held: number[] = []
  await new Promise<void>((resolve) => holder.on('data', (m) => { held.push(m.data.i); if (held.length === 20) resolve() }))
  holder.destroy()
  const again: Array<{ i: number, deliveries: number }> = []
  for await (const m of q.createReadStream({ mode: 'reliable', max: 20 })) {
    again.push({ i: m.data.i, deliveries: m.deliveries })
    assert.equal(await m.ack(), true)
  }
  assert.deepEqual(again.map((m) => m.i).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => 30 + i))
  assert.ok(again.every((m) => m.deliveries === 2), 'each was delivered a second time')
  const stats = await native.stats()
  assert.deepEqual([stats.length, stats.inFlight], [0, 0])
})

test('closing a federation-only bus closes its open streams (no error for those nobody listens to) and refuses new ones', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fedclose')
  const reader = client.queue(name).createReadStream()
  const sub = client.pubsub(name).createReadStream()
  const iterated = (async () => { for await (const _ of client.queue(`${name}-2`).createReadStream()) assert.fail('nothing was pushed') })()
  await Promise.all([once(reader, 'ready'), once(sub, 'ready')])
  await client.close()
  await assert.rejects(iterated, { code: 'ERR_BUSMQ_CLOSED' })
  await eventually(() => reader.destroyed && sub.destroyed)
  assert.throws(() => client.queue(name), { code: 'ERR_BUSMQ_CLOSED' })
  await eventually(async () => (await server.bus.queue(name).stats()).clients === 0)
})
