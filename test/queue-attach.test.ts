// Attachments at scale: heartbeats batched per shard, no wake-up subscription unless someone waits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { commandCalls, useRedis, type RedisServer } from './helpers/redis-server.js'
import { collect, eventually, openBus, uniqueName } from './helpers/bus.js'
import { range } from './helpers/queue.js'

const redis = useRedis(1)

async function numsub (server: RedisServer, channel: string): Promise<number> {
  const out = (await server.cli('PUBSUB', 'NUMSUB', channel)).split('\n')
  return Number(out[1])
}

test('2,000 attached queues with a 4 s TTL: kept alive by batched heartbeats, a few calls per round, not one per queue', async (t) => {
  const bus = await openBus(redis.servers)
  const server = redis.servers[0]
  const prefix = uniqueName('many')
  const queues = range(0, 2000).map((i) => bus.queue(`${prefix}-${i}`, { ttl: 4000 }))
  await Promise.all(queues.map((q) => q.attach()))
  await Promise.all(queues.map((q, i) => q.push(`m${i}`)))
  await server.cli('CONFIG', 'RESETSTAT')
  const started = Date.now()
  // Over two TTLs: without heartbeats every key would be gone by now. (The point of this wait is time
  // passing: nothing else could stand in for it.)
  await new Promise((resolve) => setTimeout(resolve, 9000))
  const calls = await commandCalls(server, 'evalsha', 'eval')
  const elapsed = Date.now() - started
  const rounds = elapsed / (4000 / 3)
  t.diagnostic(`${calls} script calls in ${elapsed} ms (${rounds.toFixed(1)} refresh periods) for 2,000 queues`)
  // 2,000 queues in calls of up to 100 is 20 calls per period; one call per queue would be 2,000.
  assert.ok(calls <= Math.ceil(rounds + 2) * 20 * 2, `${calls} calls: the heartbeat is not batched`)
  const counts = await Promise.all(queues.map((q) => q.count()))
  assert.equal(counts.filter((c) => c === 1).length, 2000, 'every attached queue kept its message')
  await Promise.all(queues.map((q) => q.detach()))
  // Detached: they expire a TTL later, every key of them.
  assert.ok(await eventually(async () => (await server.cli('--scan', '--pattern', `busmq:q:{${prefix}-*`)) === '', 20_000),
    'the detached queues expired')
})

test('heartbeatRate bounds the refreshes: more queues than it allows every ttl / 3 are refreshed less often, each holding its keys longer, and still kept alive; a detach gives back the TTL', async (t) => {
  // 300 queues with a 600 ms TTL would be 1,500 refreshes a second at ttl / 3; 600 a second allows a
  // period of 2 × 300 / 600 = 1 s, keys held 3 s.
  const bus = await openBus(redis.servers, { heartbeatRate: 600 })
  const server = redis.servers[0]
  const prefix = uniqueName('rate')
  const queues = range(0, 300).map((i) => bus.queue(`${prefix}-${i}`, { ttl: 600 }))
  await Promise.all(queues.map((q) => q.attach()))
  await Promise.all(queues.map((q, i) => q.push(`m${i}`)))
  // Another process keeps the first queue's dead-letter queue attached, for 20 s.
  const other = await openBus(redis.servers)
  await queues[0].deadLetter().push('dead')
  const dead = other.queue(queues[0].name).deadLetter()
  await dead.attach({ ttl: 20_000 })
  await server.cli('CONFIG', 'RESETSTAT')
  const started = Date.now()
  // Longer than what one refresh holds (3 s), so the queues live on refreshes, not on the first one.
  await new Promise((resolve) => setTimeout(resolve, 4500))
  // Every refresh of a queue sets its attachment field: one HSET each (nothing else runs meanwhile but
  // the other bus's refreshes of the dead-letter queue, every 6.7 s).
  const refreshes = await commandCalls(server, 'hset')
  const elapsed = Date.now() - started
  t.diagnostic(`${refreshes} refreshes in ${elapsed} ms for 300 queues (at ttl / 3: ${Math.round(300 * elapsed / 200)})`)
  assert.ok(refreshes > 0, 'the queues were refreshed')
  // The budget: 600 a second, and one second's worth saved up.
  assert.ok(refreshes <= 600 * (elapsed / 1000 + 1), `${refreshes} refreshes: more than heartbeatRate allows`)
  const counts = await Promise.all(queues.map((q) => q.count()))
  assert.equal(counts.filter((c) => c === 1).length, 300, 'every attached queue kept its message')
  const held = await Promise.all(queues.map((q) => q.ttlLeft()))
  assert.ok(held.every((ms) => ms > 0 && ms <= 3000), `attached queues hold at most 3 s: ${Math.min(...held)}..${Math.max(...held)}`)
  assert.ok(held.some((ms) => ms > 600), 'refreshes spread out hold the keys longer than the TTL')

  // A burst: attaching a second handle to an attached queue refreshes it at once. Over and over, for 2 s
  // (each round 300 refreshes due now), the budget still holds.
  const again = queues.map((q) => bus.queue(q.name, { ttl: 600 }))
  await server.cli('CONFIG', 'RESETSTAT')
  const burstStarted = Date.now()
  let rounds = 0
  while (Date.now() - burstStarted < 2000) {
    await Promise.all(again.map(async (q) => { await q.attach(); await q.detach() }))
    await new Promise((resolve) => setImmediate(resolve))
    rounds++
  }
  // (Give the last round's refreshes time to go out: they count against the budget too.)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const burst = await commandCalls(server, 'hset')
  const burstElapsed = Date.now() - burstStarted
  t.diagnostic(`${rounds} rounds of 300 re-attaches: ${burst} refreshes in ${burstElapsed} ms`)
  assert.ok(rounds > 10, `${rounds} rounds: too few to go over the budget`)
  // (One call's worth more: a call sent just before the count started may be counted.)
  assert.ok(burst <= 600 * (burstElapsed / 1000 + 1) + 100, `${burst} refreshes in a burst: more than heartbeatRate allows`)

  await Promise.all(queues.map((q) => q.detach()))
  // Detached: the TTL from now, not what the last refresh held (-2: gone already, on a slow machine).
  const left = await Promise.all(queues.map((q) => q.ttlLeft()))
  assert.ok(left.every((ms) => ms === -2 || (ms > 0 && ms <= 600)), `detached queues expire a TTL later: ${Math.min(...left)}..${Math.max(...left)}`)
  // …but not the dead-letter queue the other bus is attached to: it holds what that attachment holds.
  assert.ok(await dead.ttlLeft() > 10_000, 'the dead-letter queue attached elsewhere keeps its TTL')
  assert.equal(await dead.count(), 1)
  await dead.detach()
  // (Their own keys: the dead-letter queue kept by the other bus stays until its TTL.)
  assert.ok(await eventually(async () => (await server.cli('--scan', '--pattern', `busmq:q:{${prefix}-*}:?`)) === '', 10_000),
    'the detached queues expired')
})

test('attach, detach and attach again in one tick: the queue stays attached and refreshed', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName(), { ttl: 500 })
  assert.equal(await q.exists(), false)
  await Promise.all([q.attach(), q.detach(), q.attach()])
  await q.push('x')
  // Three TTLs: only refreshes keep it.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  assert.equal(await q.count(), 1, 'the queue is still attached')
  await q.detach()
})

test('two handles of one bus attached to one queue: the queue stays attached until both detach', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName()
  const a = bus.queue(name, { ttl: 1500 })
  const b = bus.queue(name, { ttl: 1500 })
  assert.equal(await a.attach(), false, 'the first attach created the queue')
  assert.equal(await b.attach(), true, 'the second found it')
  await a.push('x')
  await a.detach()
  // Time is the point: three TTLs, and b's attachment must keep the queue. (A TTL of 1.5 s leaves the
  // heartbeat, every 500 ms, room for a loaded machine's stalls.)
  await new Promise((resolve) => setTimeout(resolve, 4500))
  assert.equal(await b.count(), 1, 'still attached through b: nothing expired')
  assert.equal((await b.stats()).clients, 1)
  await b.detach()
  assert.ok(await eventually(async () => !(await b.exists()), 15_000), 'expired once both detached')
})

test('attaching and pushing subscribes nothing; a reader that waits subscribes, and unsubscribes when it closes', async () => {
  const bus = await openBus(redis.servers)
  const server = redis.servers[0]
  const q = bus.queue(uniqueName(), { objectMode: true })
  await q.attach()
  await q.push(1)
  assert.equal(await numsub(server, q.keys.wake), 0, 'an attached queue nobody waits on has no subscription')
  const w = q.createWriteStream()
  w.write(2)
  await new Promise((resolve) => w.end(resolve))
  assert.equal(await numsub(server, q.keys.wake), 0, 'a writer of an unbounded queue never waits')
  const reader = q.createReadStream()
  const got: unknown[] = []
  reader.on('data', (m) => got.push(m))
  assert.ok(await eventually(async () => await numsub(server, q.keys.wake) === 1), 'the reader found the queue empty and subscribed')
  await q.push(3)
  assert.ok(await eventually(() => got.length === 3))
  assert.deepEqual(got, [1, 2, 3])
  reader.destroy()
  await reader.settled()
  assert.ok(await eventually(async () => await numsub(server, q.keys.wake) === 0), 'unsubscribed after the reader closed')
  await q.detach()
})

test('a push right after the first wait is not missed (the reader looks again once subscribed)', async () => {
  const bus = await openBus(redis.servers)
  // A long poll interval: only a wake-up (or the look after subscribing) can deliver in time.
  const other = await openBus(redis.servers, { pollInterval: 60_000 })
  for (let round = 0; round < 20; round++) {
    const name = uniqueName()
    const reader = other.queue(name).createReadStream({ max: 1 })
    const pushing = bus.queue(name).push(`m${round}`)
    const got = await collect<Buffer>(reader)
    await pushing
    assert.deepEqual(got.map(String), [`m${round}`])
  }
})

test('a producer waiting for room in a bounded queue subscribes, and unsubscribes when its stream closes', async () => {
  const bus = await openBus(redis.servers)
  const server = redis.servers[0]
  const q = bus.queue(uniqueName(), { objectMode: true, maxLength: 2 })
  const w = q.createWriteStream()
  for (const i of range(0, 5)) w.write(i)
  assert.ok(await eventually(async () => await numsub(server, q.keys.wake) === 1), 'the producer waits for room, subscribed')
  const got = await collect(q.createReadStream({ max: 5 }))
  assert.deepEqual(got, range(0, 5))
  await new Promise((resolve) => w.end(resolve))
  if (!w.closed) await new Promise((resolve) => w.once('close', resolve))
  assert.ok(await eventually(async () => await numsub(server, q.keys.wake) === 0), 'nothing stays subscribed')
})
