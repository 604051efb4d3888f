// Redis Cluster layout: 3 masters (startCluster(3)). Queues, replay, reliable mode, channels, pub/sub and
// services work with names spread over slots on every master, and nothing fails: any error a bus or a
// stream reports (a CROSSSLOT above all: every key a script or transaction touches must share the queue's
// hash tag) fails the test.
//
// The last tests are regressions for bugs found here: the attach script once took its number of keys at
// call time, so ioredis routed it by the slot of that number; and a keyless PUBLISH went to a random master,
// reordering one publisher's messages.
import { test, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { Bus, type Channel, type IdentifiedMessage, type ReliableMessage } from '../lib/index.js'
import { startCluster, type RedisCluster } from './helpers/cluster.js'
import { redisCommand } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { range } from './helpers/queue.js'

let cluster: RedisCluster
/** Slot ranges of each master, from CLUSTER SLOTS. */
let slotOwners: Array<{ from: number, to: number, port: number }>

before(async () => {
  cluster = await startCluster(3)
  const reply = await redisCommand(cluster.nodes[0].port, ['CLUSTER', 'SLOTS'])
  slotOwners = (reply as any[]).map((r) => ({ from: Number(r[0]), to: Number(r[1]), port: Number(r[2][1]) }))
  assert.equal(new Set(slotOwners.map((o) => o.port)).size, 3, 'every master serves slots')
})

after(async () => {
  await cluster?.stop()
})

/** Port of the master serving `key`. */
async function nodeOf (key: string): Promise<number> {
  const slot = Number(await redisCommand(cluster.nodes[0].port, ['CLUSTER', 'KEYSLOT', key]))
  return slotOwners.find((o) => slot >= o.from && slot <= o.to)!.port
}

/** Port of the master holding queue `name` (all its keys share the hash tag {name}). */
function queueNode (name: string): Promise<number> {
  return nodeOf(`busmq:q:{${name}}:m`)
}

/** `n` fresh queue names spread evenly over the 3 masters (as even as n allows). */
async function namesOnEveryMaster (n: number, what: string): Promise<string[]> {
  const ports = [...new Set(slotOwners.map((o) => o.port))]
  const quota = new Map(ports.map((p, i) => [p, Math.floor(n / 3) + (i < n % 3 ? 1 : 0)]))
  const names: string[] = []
  while (names.length < n) {
    const name = uniqueName(what)
    const port = await queueNode(name)
    if (quota.get(port)! > 0) {
      quota.set(port, quota.get(port)! - 1)
      names.push(name)
    }
  }
  return names
}

/**
 * Buses on the cluster, closed after the test; every error any of them reports is collected, and the test
 * fails if there is one.
 */
function clusterBuses (t: TestContext, n: number): { buses: Bus[], errors: Error[] } {
  const errors: Error[] = []
  const buses = range(0, n).map(() => {
    const bus = new Bus({ cluster: cluster.seeds })
    bus.on('error', (err: Error) => errors.push(err))
    return bus
  })
  t.after(() => Promise.all(buses.map((b) => b.close())))
  return { buses, errors }
}

function assertNoErrors (errors: Error[]): void {
  const crossslot = errors.filter((e) => /CROSSSLOT|same slot/i.test(`${e.message} ${(e.cause as Error | undefined)?.message ?? ''}`))
  assert.deepEqual(crossslot.map((e) => e.message), [], 'CROSSSLOT errors')
  assert.deepEqual(errors.map((e) => `${e.name}: ${e.message}`), [], 'errors reported')
}

/** Records a stream's errors into `errors`. */
function watch<T extends NodeJS.EventEmitter> (stream: T, errors: Error[]): T {
  stream.on('error', (err: Error) => errors.push(err))
  return stream
}

test('consume-once on 20 queues spread over the 3 masters: each message exactly once, each reader in order', async (t) => {
  const { buses: [producers, consumers], errors } = clusterBuses(t, 2)
  const names = await namesOnEveryMaster(20, 'cl-queue')
  const N = 300

  // One handle per queue and bus, attached one at a time (see the note at the top).
  const producerQueues = names.map((name) => producers.queue(name, { objectMode: true }))
  const consumerQueues = names.map((name) => consumers.queue(name, { objectMode: true }))
  for (const q of [...producerQueues, ...consumerQueues]) await q.attach()

  // Phase 1: two competing readers per queue (on another bus) while a producer writes.
  const got = names.map(() => [[], []] as number[][])
  const readers = consumerQueues.flatMap((cq, q) => [0, 1].map((k) => {
    const r = watch(cq.createReadStream({ highWaterMark: 16 }), errors)
    r.on('data', ({ i }: { i: number }) => got[q][k].push(i))
    return r
  }))
  await Promise.all(producerQueues.map(async (pq) => {
    const w = watch(pq.createWriteStream(), errors)
    for (const i of range(0, N)) if (!w.write({ i })) await once(w, 'drain')
    w.end()
    await once(w, 'finish')
  }))
  const total = (): number => got.reduce((n, [a, b]) => n + a.length + b.length, 0)
  assert.ok(await eventually(() => total() === names.length * N, 30_000), `received ${total()} of ${names.length * N}`)
  await Promise.all(readers.map((r) => new Promise((resolve) => { r.once('close', resolve); r.destroy() })))
  for (const [q, [a, b]] of got.entries()) {
    assert.deepEqual([...a, ...b].sort((x, y) => x - y), range(0, N), `queue ${q}: every message exactly once`)
    assert.deepEqual(a, [...a].sort((x, y) => x - y), `queue ${q}, reader 1 in order`)
    assert.deepEqual(b, [...b].sort((x, y) => x - y), `queue ${q}, reader 2 in order`)
  }
  const split = got.map(([a, b]) => `${a.length}/${b.length}`).join(' ')
  t.diagnostic(`competing readers split the messages: ${split}`)

  // Phase 2: 100 more per queue, stored on the master serving the queue's slot, then one reader drains
  // each queue in order.
  await Promise.all(producerQueues.map(async (pq) => {
    const w = watch(pq.createWriteStream(), errors)
    for (const i of range(N, N + 100)) w.write({ i })
    w.end()
    await once(w, 'finish')
  }))
  const perMaster = new Map<number, number>()
  for (const name of names) {
    const port = await queueNode(name)
    perMaster.set(port, (perMaster.get(port) ?? 0) + 1)
    assert.equal(await redisCommand(port, ['LLEN', `busmq:q:{${name}}:m`]), 100, `${name} is stored on :${port}`)
  }
  t.diagnostic(`queues per master: ${[...perMaster].map(([p, n]) => `:${p} ${n}`).join(', ')}`)
  assert.equal(perMaster.size, 3)
  await Promise.all(consumerQueues.map(async (cq) => {
    const all = await collect<{ i: number }>(watch(cq.createReadStream({ untilEmpty: true }), errors))
    assert.deepEqual(all.map((m) => m.i), range(N, N + 100))
  }))
  assertNoErrors(errors)
})

test('replay on every master: retained window, offsets, and tail -f of new messages', async (t) => {
  const { buses: [bus, other], errors } = clusterBuses(t, 2)
  for (const name of await namesOnEveryMaster(3, 'cl-replay')) {
    const q = bus.queue(name, { objectMode: true, retain: 50 })
    const w = watch(q.createWriteStream(), errors)
    for (const i of range(0, 100)) w.write({ i })
    w.end()
    await once(w, 'finish')

    const log = other.queue(name, { objectMode: true })
    const window = await collect<IdentifiedMessage<{ i: number }>>(watch(log.createReadStream({ mode: 'replay', withIds: true, untilEmpty: true }), errors))
    assert.deepEqual(window.map((m) => m.data.i), range(50, 100), 'the newest 50 are retained')
    const ids = window.map((m) => m.id)
    assert.deepEqual(ids, range(ids[0], ids[0] + 50), 'ids are consecutive')
    const fromMiddle = await collect<IdentifiedMessage<{ i: number }>>(watch(log.createReadStream({ mode: 'replay', from: ids[25], withIds: true, untilEmpty: true }), errors))
    assert.deepEqual(fromMiddle.map((m) => m.data.i), range(75, 100))

    // Two tailing readers each see the retained window and then every new message.
    const tails = [0, 1].map(() => {
      const seen: number[] = []
      const r = watch(log.createReadStream({ mode: 'replay' }), errors)
      r.on('data', ({ i }: { i: number }) => seen.push(i))
      return { r, seen }
    })
    await eventually(() => tails.every((x) => x.seen.length === 50))
    for (const i of range(100, 110)) await q.push({ i })
    assert.ok(await eventually(() => tails.every((x) => x.seen.length === 60)), 'the tailing readers saw the new messages')
    for (const { r, seen } of tails) {
      assert.deepEqual(seen, range(50, 110))
      r.destroy()
    }
    assert.equal(await q.count(), 50, 'replay removes nothing; retain keeps 50')
  }
  assertNoErrors(errors)
})

test('reliable mode on every master: ack, nack (redelivery), dead letters by nack and by maxDeliveries', async (t) => {
  const { buses: [bus], errors } = clusterBuses(t, 1)
  for (const name of await namesOnEveryMaster(3, 'cl-reliable')) {
    const q = bus.queue(name, { objectMode: true })
    const ids = []
    for (const i of range(0, 6)) ids.push(await q.push({ i }))
    const r = watch(q.createReadStream({ mode: 'reliable', lease: 60_000, prefetch: 1, maxDeliveries: 2, max: 8 }), errors)
    const seen: Array<[number, number, boolean]> = []
    for await (const m of r as AsyncIterable<ReliableMessage<{ i: number }>>) {
      seen.push([m.data.i, m.deliveries, m.redelivered])
      const { i } = m.data
      if (i === 1 && m.deliveries === 1) await m.nack()
      else if (i === 2) await m.nack({ deadLetter: true })
      else if (i === 3) await m.nack()
      else assert.equal(await m.ack(), true)
    }
    assert.deepEqual(seen, [[0, 1, false], [1, 1, false], [1, 2, true], [2, 1, false], [3, 1, false], [3, 2, true], [4, 1, false], [5, 1, false]])
    const dlq = q.deadLetter()
    const dead = await collect<IdentifiedMessage<{ i: number }>>(watch(dlq.createReadStream({ mode: 'replay', withIds: true, untilEmpty: true }), errors))
    assert.deepEqual(dead.map((m) => m.data.i), [2, 3])
    const reasons = await Promise.all(dead.map(async (m) => {
      const h = await dlq.history(m.id)
      return [h?.id, h?.reason, h?.deliveries.length]
    }))
    assert.deepEqual(reasons, [[ids[2], 'nack', 1], [ids[3], 'max-deliveries', 2]])
    const stats = await q.stats()
    assert.equal(stats.length, 0)
    assert.equal(stats.inFlight, 0)
  }
  assertNoErrors(errors)
})

/** Everything a channel's readable emits until 'end'. */
function readAll (ch: Channel): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    ch.on('data', (b: Buffer) => out.push(b))
    ch.once('end', () => resolve(out))
    ch.once('error', reject)
  })
}

async function writeAndEnd (ch: Channel, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) if (!ch.write(c)) await once(ch, 'drain')
  ch.end()
  if (!ch.writableFinished) await once(ch, 'finish')
}

/** A half-close round trip on channel `name` between buses `a` and `b`, byte-exact. */
async function roundTrip (a: Bus, b: Bus, name: string, errors: Error[]): Promise<void> {
  const left = watch(a.channel(name), errors)
  const right = watch(b.channel(name, { listen: true }), errors)
  const request = [Buffer.alloc(0), randomBytes(1), randomBytes(70_000), Buffer.from('ping')]
  const reply = [randomBytes(65_536), Buffer.from('pong')]
  const rightGot = readAll(right)
  const leftGot = readAll(left)
  await writeAndEnd(left, request)
  // The left side has half-closed: the right side reads everything, then 'end', and can still answer.
  assert.deepEqual(await rightGot, request)
  await writeAndEnd(right, reply)
  assert.deepEqual(await leftGot, reply)
  await Promise.all([left, right].map((ch) => ch.closed ? undefined : once(ch, 'close')))
}

/** A fresh channel name whose queues <name>:local and <name>:remote are served by the same master or not. */
async function channelName (sameMaster: boolean): Promise<string> {
  for (;;) {
    const name = uniqueName('cl-chan')
    if ((await queueNode(`${name}:local`) === await queueNode(`${name}:remote`)) === sameMaster) return name
  }
}

test('channels on every master: a half-close round trip, byte-exact', async (t) => {
  const { buses: [a, b], errors } = clusterBuses(t, 2)
  // Both queues of each channel on one master, and one channel at a time (see the note at the top).
  const masters = new Set<number>()
  while (masters.size < 3) {
    const name = await channelName(true)
    const port = await queueNode(`${name}:local`)
    if (masters.has(port)) continue
    masters.add(port)
    await roundTrip(a, b, name, errors)
  }
  assertNoErrors(errors)
})

/**
 * Publishes 600 messages on a topic (100 one-off publishes, then 500 through a write stream) to two
 * subscribers on another bus; resolves with what each received.
 */
async function publishToTwo (pub: Bus, sub: Bus, name: string, errors: Error[]): Promise<number[][]> {
  const topic = pub.pubsub(name, { objectMode: true })
  const received: number[][] = [[], []]
  const readers = received.map((out) => {
    const r = watch(sub.pubsub(name, { objectMode: true }).createReadStream(), errors)
    r.on('data', (m: { i: number }) => { if (m.i >= 0) out.push(m.i) })
    return r
  })
  // Subscribed once a probe gets through to both readers.
  let probes = 0
  const probing = received.map(() => false)
  readers.forEach((r, k) => r.on('data', (m: { i: number }) => { if (m.i < 0) probing[k] = true }))
  assert.ok(await eventually(async () => {
    await topic.publish({ i: -1 - probes++ })
    return probing.every(Boolean)
  }), 'the subscribers never received a probe')
  for (const i of range(0, 100)) await topic.publish({ i })
  const w = watch(topic.createWriteStream(), errors)
  for (const i of range(100, 600)) w.write({ i })
  w.end()
  await once(w, 'finish')
  await eventually(() => received.every((r) => r.length >= 600))
  // Anything more (a duplicate) would arrive right behind; there is no event for "nothing more".
  await new Promise((resolve) => setTimeout(resolve, 100))
  for (const r of readers) r.destroy()
  return received
}

/** How many messages arrived right after a message published later than them. */
function outOfOrder (is: number[]): number {
  return is.filter((x, k) => k > 0 && x < is[k - 1]).length
}

test('plain pub/sub: every published message reaches each subscriber on another bus, once', async (t) => {
  const { buses: [pub, sub], errors } = clusterBuses(t, 2)
  for (const name of [uniqueName('cl-topic'), uniqueName('cl-topic')]) {
    const received = await publishToTwo(pub, sub, name, errors)
    for (const is of received) assert.deepEqual([...is].sort((x, y) => x - y), range(0, 600), 'every message exactly once')
    t.diagnostic(`${name}: messages out of publish order: ${received.map(outOfOrder).join(' and ')} of 600`)
  }
  assertNoErrors(errors)
})

// ---------------------------------------------------------------------------------------------------------
// Regression tests for bugs found here: a variable key count routed by the wrong slot, and keyless
// PUBLISH sent to random masters.

test('two queues served by different masters can be attached at once (two streams opened in one tick)', async (t) => {
  const { buses: [bus], errors } = clusterBuses(t, 1)
  const [x, y] = await namesOnEveryMaster(2, 'cl-attach')
  assert.notEqual(await queueNode(x), await queueNode(y))
  const queues = [bus.queue(x), bus.queue(y)]
  // Attached once each, one at a time (that works), so that the second round reaches Redis in one tick.
  for (const q of queues) { await q.attach(); await q.detach() }
  const failures: string[] = []
  for (let attempt = 0; attempt < 3; attempt++) {
    const results = await Promise.allSettled(queues.map((q) => q.attach()))
    failures.push(...results.flatMap((r) => r.status === 'rejected' ? [`${r.reason.name} ${r.reason.code}: ${r.reason.message}`] : []))
    await Promise.all(results.map((r, k) => r.status === 'fulfilled' ? queues[k].detach() : undefined))
  }
  assert.deepEqual(failures, [])
  assertNoErrors(errors)
})

test('a channel whose two queues are served by different masters opens and round-trips', async (t) => {
  const { buses: [a, b], errors } = clusterBuses(t, 2)
  await roundTrip(a, b, await channelName(false), errors)
  assertNoErrors(errors)
})

test('plain pub/sub keeps one publisher\'s order', async (t) => {
  const { buses: [pub, sub], errors } = clusterBuses(t, 2)
  // A few topics: the race does not show every time.
  const counts: number[] = []
  for (let k = 0; k < 5 && Math.max(0, ...counts) === 0; k++) {
    counts.push(...(await publishToTwo(pub, sub, uniqueName('cl-order'), errors)).map(outOfOrder))
  }
  t.diagnostic(`messages out of publish order, per subscriber: ${counts.join(', ')} (of 600 each)`)
  assert.equal(Math.max(0, ...counts), 0, 'messages arrived out of publish order')
})

test('persisted objects and queue.delete() on every master: saves, conflicts, change streams, keep-alive, deletion', async (t) => {
  const { buses: [a, b], errors } = clusterBuses(t, 2)
  const names = await namesOnEveryMaster(3, 'obj')
  for (const name of names) {
    // Objects: both keys share the hash tag {name}; the heartbeat keeps them alive per slot.
    const doc = a.object(name, { ttl: 2000 })
    const changes = b.object(name).createChangeStream()   // left with break: its AbortError is expected
    await once(changes, 'ready')
    doc.set({ n: 1 })
    assert.equal(await doc.save({ ifVersion: 0 }), 1)
    const other = b.object(name)
    other.set({ n: 2 })
    await assert.rejects(other.save({ ifVersion: 0 }), { code: 'ERR_BUSMQ_CONFLICT' })
    doc.keepAlive()
    doc.set({ m: 'x' }).unset('n')
    await doc.save()
    const seen: unknown[] = []
    for await (const c of changes) {
      seen.push([c.version, c.fields, c.deleted])
      if (seen.length === 2) break
    }
    assert.deepEqual(seen, [[1, { n: 1 }, []], [2, { m: 'x' }, ['n']]])
    assert.deepEqual(await other.load(), { m: 'x' })
    doc.release()
    assert.equal(await doc.delete(), true)
    assert.equal(await other.load(), null)

    // Queues: a waiting reader ends when its queue is deleted from the other bus.
    const q = a.queue(name, { objectMode: true })
    const reader = q.createReadStream()
    const failed = once(reader, 'error')
    await q.push('first')
    await once(reader, 'data')
    assert.equal(await b.queue(name).delete(), true)
    assert.equal((await failed)[0].code, 'ERR_BUSMQ_QUEUE_DELETED')
  }
  assertNoErrors(errors)
})

test('services on every master: requests, streamed replies and reliable requests, with no CROSSSLOT', async (t) => {
  const { buses: [servers, requesters], errors } = clusterBuses(t, 2)
  // Service names whose keys ({name}) land on each master; reply and streamed-reply queues land anywhere.
  const names = await namesOnEveryMaster(6, 'cl-svc')
  const running = names.map((name, i) => servers.service<number, number>(name, { objectMode: true, reliable: i % 2 === 1 })
    .serve((req) => req.streamed ? Readable.from(range(0, req.data)) : req.data * 2))
  for (const s of running) s.on('error', (err: Error) => errors.push(err))
  await Promise.all(names.map(async (name, i) => {
    const svc = requesters.service<number, number>(name, { objectMode: true, reliable: i % 2 === 1 })
    assert.deepEqual(await Promise.all(range(0, 50).map((n) => svc.request(n))), range(0, 50).map((n) => n * 2))
    assert.deepEqual(await collect(watch(svc.requestStream(20), errors)), range(0, 20))
    await svc.send(1)
    const stats = await svc.stats()
    assert.equal(stats.servers, 1)
    assert.equal(stats.reliableServers, i % 2)
  }))
  await Promise.all(running.map((s) => s.close()))
  assertNoErrors(errors)
})
