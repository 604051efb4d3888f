// Lifecycle events and the logger option: 'ready' on streams and channels, bus.close() emitting
// 'offline' per shard, and what the bus tells a logger (connection changes, data loss, redeliveries).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Bus, type Logger } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { trackBuses } from './helpers/queue.js'
import { fixture } from './helpers/fixture.js'

const redis = useRedis(3)
const openBus = trackBuses()

/** A logger that records what it is told, by level. */
function recorder (): Logger & { lines: Array<[string, string]>, saw: (level: string, pattern: RegExp) => boolean } {
  const lines: Array<[string, string]> = []
  const at = (level: string) => (message: string) => { lines.push([level, message]) }
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    saw: (level, pattern) => lines.some(([l, m]) => l === level && pattern.test(m))
  }
}

test("queue readers and writers and channels emit 'ready' once, when attached, before any message moves", async () => {
  const bus = await openBus([redis.servers[0]])
  const q = bus.queue(uniqueName('ready'), { objectMode: true })
  const streams = [
    q.createReadStream(),
    q.createReadStream({ mode: 'replay' }),
    q.createReadStream({ mode: 'reliable' }),
    q.createWriteStream(),
    bus.channel(uniqueName('ready'), { objectMode: true })
  ]
  const counts = streams.map(() => 0)
  streams.forEach((s, i) => s.on('ready', () => counts[i]++))
  await Promise.all(streams.map((s) => once(s, 'ready')))
  assert.equal((await q.stats()).clients, 1, 'attached by the time of ready')
  await q.push('x')
  for (const s of streams) s.destroy()
  await Promise.all(streams.map((s) => s.closed ? undefined : once(s, 'close')))
  assert.deepEqual(counts, [1, 1, 1, 1, 1])
})

test("bus.close() emits 'offline' for each shard it closes; bus.online tells whether every shard is up", async () => {
  const bus = new Bus({ redis: redis.servers.map((s) => s.url) })
  assert.equal(bus.online, false, 'not connected yet')
  await bus.connect()
  assert.equal(bus.online, true)
  const offline: string[] = []
  bus.on('offline', (id) => offline.push(id))
  await bus.close()
  assert.deepEqual(offline.sort(), [...bus.shardIds].sort())
  assert.equal(bus.online, false)
})

test('logger: online at connect, offline when a shard is lost, back online after, data loss as an error', { timeout: 60_000 }, async () => {
  const victim = redis.servers[2]
  const log = recorder()
  const bus = await openBus([victim], { logger: log })
  const id = bus.shardIds[0]
  assert.ok(log.saw('info', new RegExp(`^busmq: shard ${id} is online`)), JSON.stringify(log.lines))
  await bus.queue(uniqueName()).push('x')
  const offline = nextEvent(bus, 'offline')
  await victim.kill()
  await offline
  assert.ok(log.saw('warn', new RegExp(`shard ${id} went offline`)), JSON.stringify(log.lines))
  const lost = nextEvent(bus, 'dataloss')
  await victim.restart()
  await lost
  assert.ok(log.saw('info', new RegExp(`shard ${id} is back online`)), JSON.stringify(log.lines))
  // No persistence: the shard came back empty.
  assert.ok(log.saw('error', /came back without its data/), JSON.stringify(log.lines))
  await bus.close()
  assert.ok(log.saw('info', new RegExp(`shard ${id} closed`)))
  assert.ok(!log.saw('warn', /closed/), 'closing is not a warning')
})

test('logger: messages whose reader died go back to the queue with a warning; dead letters too', { timeout: 60_000 }, async (t) => {
  const log = recorder()
  const bus = await openBus([redis.servers[0]], { logger: log })
  const q = bus.queue(uniqueName('redeliver'), { objectMode: true })
  for (let i = 0; i < 5; i++) await q.push({ i })
  const holder = fixture(t, 'reliable-holder.js', [redis.servers[0].url, q.name, 'hold', '5', '300', '1'])
  await holder.line((l) => l.data?.i === 4)
  holder.child.kill('SIGKILL')
  await holder.exited
  // maxDeliveries 1: the holder's delivery was the last allowed, so the lapsed messages are dead letters.
  // A waiting reader looks again every pollInterval, and puts back what lapsed when it does.
  const reader = q.createReadStream({ mode: 'reliable', maxDeliveries: 1 })
  reader.resume()
  assert.ok(await eventually(() => log.saw('warn', /5 message\(s\) of queue .* whose lease expired were moved to its dead-letter queue/)), JSON.stringify(log.lines))
  assert.equal(await q.deadLetter().count(), 5)
  reader.destroy()
  await once(reader, 'close')

  for (let i = 0; i < 3; i++) await q.push({ i })
  const again = fixture(t, 'reliable-holder.js', [redis.servers[0].url, q.name, 'hold', '3', '300'])
  await again.line((l) => l.data?.i === 2)
  again.child.kill('SIGKILL')
  await again.exited
  const second = q.createReadStream({ mode: 'reliable', max: 3 })
  const back = []
  for await (const m of second) {
    back.push(m.deliveries)
    await m.ack()
  }
  assert.deepEqual(back, [2, 2, 2])
  assert.ok(log.saw('warn', /3 message\(s\) of queue .* whose lease expired .* went back to the queue/), JSON.stringify(log.lines))
})

test('logger: validated; a logger that throws does not break the bus', async () => {
  assert.throws(() => new Bus({ logger: {} as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => new Bus({ logger: { info () {}, warn () {}, error () {} } as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  const angry = { debug () { throw new Error('no') }, info () { throw new Error('no') }, warn () { throw new Error('no') }, error () { throw new Error('no') } }
  const bus = await openBus([redis.servers[0]], { logger: angry })
  const q = bus.queue(uniqueName())
  await q.push('still works')
  assert.equal(await q.count(), 1)
})
