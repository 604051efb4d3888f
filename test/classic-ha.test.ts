// busmq/classic (BusMQ 3.1's API) on the other layouts: `layout: 'sentinels'` (redis names the Sentinels,
// redisOptions.name the master) and `layout: 'cluster'` (redis names seed nodes). A subset of the direct
// tests on each: online, a queue with its ids, a channel both ways, a service request, pub/sub.
import { before, after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSentinelGroup, type SentinelGroup } from './helpers/sentinel.js'
import { startCluster, type RedisCluster } from './helpers/cluster.js'
import { eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { call, messages, track, connectPair } from './helpers/classic.js'
import Bus, { type ClassicBus, type ClassicBusOptions } from '../lib/classic/index.js'

async function online (options: ClassicBusOptions): Promise<ClassicBus> {
  const bus = track(Bus.create(options))
  const up = nextEvent(bus, 'online')
  bus.connect()
  await up
  return bus
}

/** The subset, run on buses made by `open`. */
function subset (open: () => Promise<ClassicBus>): void {
  test('a queue: attached, pushes with ids 1, 2, consumed in order', async () => {
    const bus = await open()
    const q = bus.queue(uniqueName('q'))
    const attached = nextEvent(q, 'attached')
    q.attach()
    assert.deepEqual(await attached, [false])
    assert.equal(await call((cb) => q.push('one', cb)), 1)
    assert.equal(await call((cb) => q.push({ two: 2 }, cb)), 2)
    const got = messages(q, 2)
    q.consume()
    assert.deepEqual(await got, [['one', 1], ['{"two":2}', 2]])
  })

  test('a channel: connect / listen, messages both ways, end()', async () => {
    const [a, b] = await Promise.all([open(), open()])
    const name = uniqueName('ch')
    const client = a.channel(name)
    const server = b.channel(name)
    await connectPair(client, server)
    const toServer = messages(server, 1)
    const toClient = messages(client, 1)
    client.send('ping')
    server.send('pong')
    assert.deepEqual((await toServer).map(([m]) => m), ['ping'])
    assert.deepEqual((await toClient).map(([m]) => m), ['pong'])
    const ended = nextEvent(server, 'end')
    client.end()
    await ended
  })

  test('a service: a request and its reply', async () => {
    const bus = await open()
    const name = uniqueName('svc')
    const server = bus.service(name)
    server.on('request', (request, reply) => reply(null, { echo: request }))
    await new Promise<void>((resolve) => server.serve(resolve))
    const requester = bus.service(name)
    await new Promise<void>((resolve) => requester.connect({ reqTimeout: 10_000 }, resolve))
    const reply = await new Promise((resolve, reject) => requester.request('hi', (err, r) => err ? reject(err) : resolve(r)))
    assert.deepEqual(reply, { echo: 'hi' })
  })

  test('pub/sub: a subscriber gets what is published', async () => {
    const bus = await open()
    const name = uniqueName('ps')
    const s = bus.pubsub(name)
    const got: string[] = []
    s.on('message', (m) => got.push(m))
    const subscribed = nextEvent(s, 'subscribed')
    s.subscribe()
    await subscribed
    await call((cb) => bus.pubsub(name).publish('news', cb))
    await eventually(() => got.length === 1)
    assert.deepEqual(got, ['news'])
  })
}

describe('layout: sentinels', () => {
  let group: SentinelGroup
  before(async () => { group = await startSentinelGroup({ replicas: 1, sentinels: 1, name: 'classic-master' }) })
  after(async () => { await group?.stop() })
  subset(async () => await online({
    layout: 'sentinels',
    redis: group.sentinelAddrs.map((h) => `redis://${h.host}:${h.port}`),
    redisOptions: { name: group.name }
  }))
})

describe('layout: cluster', () => {
  let cluster: RedisCluster
  before(async () => { cluster = await startCluster(3) })
  after(async () => { await cluster?.stop() })
  subset(async () => await online({ layout: 'cluster', redis: cluster.seeds.map((h) => `redis://${h.host}:${h.port}`) }))
})
