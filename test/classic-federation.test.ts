// busmq/classic federation (BusMQ 3.1's): a classic bus serves federation (`federate: { server, path,
// secret }`) and another classic bus, on another Redis, federates a queue, a channel, a pubsub and a
// persistable to it (`bus.federate(object, url)`: ready, then the object works through the server);
// reconnection after the server went away; a wrong secret; a secret function (ws's verifyClient).
import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { call, classicBus, messages, record } from './helpers/classic.js'
import Bus, { type ClassicFederation } from '../lib/classic/index.js'

const redis = useRedis(2)
const SECRET = 'classic-fed-secret'

interface Http {
  server: Server
  url: string
  stop: () => Promise<void>
  start: () => Promise<void>
}

const servers: Http[] = []
afterEach(async () => {
  for (const h of servers.splice(0)) await h.stop()
})

/** An http server on a free port (`url`: its http:// URL with `path`, as 3.1 names targets). */
async function http (path = '/fed'): Promise<Http> {
  const server = createServer((req, res) => { res.statusCode = 404; res.end() })
  // Upgraded sockets (federation's WebSockets) are the server's no more: stop() destroys them itself.
  const sockets = new Set<Duplex>()
  server.on('upgrade', (req, socket: Duplex) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  let port = 0
  const h: Http = {
    server,
    url: '',
    start: async () => {
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
      port = (server.address() as AddressInfo).port
      h.url = `http://127.0.0.1:${port}${path}`
    },
    stop: async () => {
      if (!server.listening) return
      server.closeAllConnections()
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  await h.start()
  servers.push(h)
  return h
}

/** A classic bus on the first Redis serving federation on a new http server, and a classic bus on the second. */
async function pair (serve: Record<string, unknown> = {}, federate: Record<string, unknown> = { secret: SECRET }) {
  const h = await http()
  const serving = await classicBus([redis.servers[0]], { federate: { server: h.server, path: '/fed', secret: SECRET, ...serve } })
  const local = await classicBus([redis.servers[1]], { federate })
  return { h, serving, local }
}

async function ready<T> (fed: ClassicFederation): Promise<T> {
  const [obj] = await nextEvent(fed, 'ready')
  return obj as T
}

test('queue: federated pushes reach a native reader of the serving bus; its pushes reach the federated consumer', async () => {
  const { h, serving, local } = await pair()
  const name = uniqueName('cfq')
  const fed = local.federate(local.queue(name), h.url)
  const q = await ready<ReturnType<typeof local.queue>>(fed)
  assert.notEqual(q, undefined)
  q.attach()
  await nextEvent(q, 'attached')
  assert.equal(await call((cb) => q.push('one', cb)), 1)
  assert.equal(await call((cb) => q.push({ two: 2 }, cb)), 2)
  const native = serving.native.queue<Buffer>(name)
  assert.deepEqual((await collect(native.createReadStream({ max: 2 }))).map((b) => b.toString()), ['one', '{"two":2}'])
  // Nothing went to the federating bus's own Redis.
  assert.equal(await local.native.queue(name).exists(), false)
  await native.push(Buffer.from('three'))
  await native.push(Buffer.from('four'))
  const got = messages(q, 2)
  q.consume()
  assert.deepEqual((await got).map(([m]) => m), ['three', 'four'])
  assert.equal(await call((cb) => q.count(cb)), 0)
  const seen = record(fed, ['close'])
  fed.close(true)
  assert.deepEqual(seen, [['close']])
})

test('channel, pubsub and persistable federated to one server share its connection and work with the serving bus', async () => {
  const { h, serving, local } = await pair()
  const name = uniqueName('cfo')
  // Channel: the federated side connects, the serving side listens.
  const fch = local.federate(local.channel(name), h.url)
  const fc = await ready<ReturnType<typeof local.channel>>(fch)
  const sc = serving.channel(name)
  const remote = [nextEvent(fc, 'remote:connect'), nextEvent(sc, 'remote:connect')]
  sc.listen()
  fc.connect()
  await Promise.all(remote)
  const toServing = messages(sc, 1)
  fc.send('ping')
  assert.deepEqual((await toServing).map(([m]) => m), ['ping'])
  const toFed = messages(fc, 1)
  sc.send('pong')
  assert.deepEqual((await toFed).map(([m]) => m), ['pong'])

  // Pubsub: a federated subscriber hears the serving bus; the serving bus hears the federated publisher.
  const fps = local.federate(local.pubsub(name), h.url)
  const fp = await ready<ReturnType<typeof local.pubsub>>(fps)
  const sp = serving.pubsub(name)
  fp.subscribe()
  sp.subscribe()
  await Promise.all([nextEvent(fp, 'subscribed'), nextEvent(sp, 'subscribed')])
  // (The server's subscription may settle just after the federated one is ready: probes until it heard one.)
  const fedSeen = record(fp, ['message'])
  await eventually(async () => {
    await call((cb) => sp.publish('probe', cb))
    return fedSeen.length > 0
  })
  await call((cb) => sp.publish('from serving', cb))
  await eventually(() => fedSeen.some(([, m]) => m !== 'probe'))
  assert.deepEqual(fedSeen.filter(([, m]) => m !== 'probe'), [['message', 'from serving']])
  const servingSeen = record(sp, ['message'])
  await call((cb) => fp.publish({ from: 'federated' }, cb))
  await eventually(() => servingSeen.some(([, m]) => m !== 'probe'))
  assert.deepEqual(servingSeen.filter(([, m]) => m !== 'probe'), [['message', '{"from":"federated"}']])

  // Persistable: saved through the federation, loaded by the serving bus, and back.
  const fpo = local.federate(local.persistify(name, {}, ['a', 'b']), h.url)
  const po = await ready<any>(fpo)
  po.a = 1
  await call((cb) => po.save(cb))
  const so: any = serving.persistify(name, {}, ['a', 'b'])
  assert.equal(await call((cb: any) => so.load((err: Error | null, exists: boolean) => cb(err, exists))), true)
  assert.equal(so.a, 1)
  so.b = 'two'
  await call((cb) => so.save(cb))
  assert.equal(await call((cb: any) => po.load((err: Error | null, exists: boolean) => cb(err, exists))), true)
  assert.deepEqual([po.a, po.b], [1, 'two'])
  // Nothing of it on the federating bus's own Redis.
  assert.equal(await local.native.object(name).load(), null)
})

test('queue: flush, ttl, metadata, consume({ index }) and close work on a federated queue, as on the serving bus', async () => {
  const { h, serving, local } = await pair()
  const name = uniqueName('cfm')
  const q = await ready<ReturnType<typeof local.queue>>(local.federate(local.queue(name), h.url))
  q.attach({ ttl: 20, discoverable: true })
  assert.deepEqual(await nextEvent(q, 'attached'), [false])
  // The federated attach set 3.1's metadata on the serving bus's queue, and attached it there.
  const native = serving.native.queue(name)
  assert.deepEqual(await native.getMeta(), { ttl: '20', maxsize: '0', discover: 'true', source: 'local' })
  assert.equal((await native.stats()).clients, 1)
  assert.equal(await call((cb) => q.ttl(cb)), 20)
  assert.equal(await call((cb) => q.metadata('discover', cb)), 'true')
  await call((cb) => q.metadata('owner', 'fed', cb))
  await call((cb) => q.metadata({ n: 2 }, cb))
  await native.setMeta({ from: 'serving' })
  assert.deepEqual(await call((cb) => q.metadata(cb)), { ttl: '20', maxsize: '0', discover: 'true', source: 'local', owner: 'fed', n: '2', from: 'serving' })

  for (const m of ['m0', 'm1', 'm2', 'm3']) await call((cb) => q.push(m, cb))
  // Without removing, from position 2: a replay of what is there, the messages stay.
  const replayed = messages(q, 2)
  q.consume({ remove: false, index: 2 })
  assert.deepEqual(await replayed, [['m2', 3], ['m3', 4]])
  q.stop()
  assert.equal(await call((cb) => q.count(cb)), 4)
  await call((cb) => q.flush(cb))
  assert.equal(await native.count(), 0)

  q.close()
  await nextEvent(q, 'closed')
  assert.equal(await native.exists(), false, 'close() detached and deleted the queue on the serving bus')
})

test('persist() keeps a federated persistable alive on the serving bus past its ttl; unpersist() lets it expire', async () => {
  const { h, serving, local } = await pair()
  const name = uniqueName('cfp')
  const po = await ready<any>(local.federate(local.persistify(name, {}, ['a']), h.url))
  po.persist(1.5)
  po.a = 1
  await call((cb) => po.save(cb))
  // Time is the point: three ttls without a save (the heartbeat refreshes every 500 ms).
  await new Promise((resolve) => setTimeout(resolve, 4500))
  const so: any = serving.persistify(name, {}, ['a'])
  assert.equal(await call((cb: any) => so.load((err: Error | null, exists: boolean) => cb(err, exists))), true)
  assert.equal(so.a, 1)
  po.unpersist()
  await eventually(async () => !(await serving.native.object(name).exists()), 15_000)
})

test('find(): with federate.urls, local when this bus has the queue, else the URL (as listed) of the server whose bus has it, else null', async () => {
  const { h, serving } = await pair()
  const seeker = await classicBus([redis.servers[1]], { federate: { urls: [h.url], secret: SECRET } })
  const there = uniqueName('cfd')
  const sq = serving.queue(there)
  sq.attach({ discoverable: true })
  await nextEvent(sq, 'attached')
  const here = uniqueName('cfl')
  const lq = seeker.queue(here)
  lq.attach()
  await nextEvent(lq, 'attached')
  assert.equal(await call((cb) => seeker.queue(there).find(cb)), h.url)
  assert.equal(await call((cb) => seeker.queue(here).find(cb)), 'local')
  assert.equal(await call((cb) => seeker.queue(uniqueName('nowhere')).find(cb)), null)
  // The location found is a target for bus.federate().
  const fq = await ready<ReturnType<typeof seeker.queue>>(seeker.federate(seeker.queue(there), h.url))
  fq.attach()
  await nextEvent(fq, 'attached')
  assert.equal(await call((cb) => fq.push('found', cb)), 1)
  assert.equal(await serving.native.queue(there).count(), 1)
})

test('reconnect: the serving http server stops (reconnecting) and starts again (reconnected); the queue works on', async () => {
  const { h, serving, local } = await pair()
  const name = uniqueName('cfr')
  const fed = local.federate(local.queue(name), h.url)
  const seen = record(fed, ['reconnecting', 'reconnected', 'unauthorized', 'close'])
  const q = await ready<ReturnType<typeof local.queue>>(fed)
  q.attach()
  await nextEvent(q, 'attached')
  const reconnecting = nextEvent(fed, 'reconnecting')
  await h.stop()
  await reconnecting
  const reconnected = nextEvent(fed, 'reconnected')
  await h.start()
  await reconnected
  assert.deepEqual(seen, [['reconnecting'], ['reconnected']])
  assert.equal(await call((cb) => q.push('after', cb)), 1)
  assert.equal(await serving.native.queue(name).count(), 1)
})

test('a wrong secret: unauthorized, then close; no ready', async () => {
  const { h, local } = await pair({}, { secret: 'not-the-secret' })
  const fed = local.federate(local.queue(uniqueName('cfu')), h.url)
  const seen = record(fed, ['ready', 'unauthorized', 'close'])
  await nextEvent(fed, 'close')
  assert.deepEqual(seen.map(([e]) => e), ['unauthorized', 'close'])
  assert.equal((seen[0][1] as { code?: string }).code, 'ERR_BUSMQ_UNAUTHORIZED')
})

test('a secret function (ws verifyClient): sync true accepts, a callback(false) refuses with unauthorized', async () => {
  const infos: Array<{ origin: unknown, secure: boolean, url: string | undefined }> = []
  const { h, serving } = await pair({
    secret: (info: { origin: unknown, secure: boolean, req: { url?: string } }) => {
      infos.push({ origin: info.origin, secure: info.secure, url: info.req.url })
      return new URL(info.req.url ?? '/', 'http://x').searchParams.get('token') === 'letmein'
    }
  })
  // A bus whose secret is a function federates without one; the function sees the target URL's query.
  const local = await classicBus([redis.servers[1]], { federate: { secret: () => true } })
  const name = uniqueName('cff')
  const ok = local.federate(local.queue(name), `${h.url}?token=letmein`)
  const q = await ready<ReturnType<typeof local.queue>>(ok)
  q.attach()
  assert.equal(await call((cb) => q.push('in', cb)), 1)
  assert.equal(await serving.native.queue(name).count(), 1)
  assert.deepEqual(infos, [{ origin: undefined, secure: false, url: '/fed?token=letmein' }])
  const refused = local.federate(local.queue(name), `${h.url}?token=wrong`)
  const seen = record(refused, ['ready', 'unauthorized', 'close'])
  await nextEvent(refused, 'close')
  assert.deepEqual(seen.map(([e]) => e), ['unauthorized', 'close'])

  // The callback form.
  const h2 = await http()
  const calls: boolean[] = []
  const other = await classicBus([redis.servers[0]], {
    federate: { server: h2.server, path: '/fed', secret: (_info: unknown, done: (ok: boolean) => void) => { calls.push(true); setImmediate(() => done(false)) } }
  })
  assert.equal(other.isOnline(), true)
  const cbRefused = local.federate(local.queue(name), h2.url)
  const seen2 = record(cbRefused, ['ready', 'unauthorized', 'close'])
  await nextEvent(cbRefused, 'close')
  assert.deepEqual(seen2.map(([e]) => e), ['unauthorized', 'close'])
  await eventually(() => calls.length >= 1)
})

test('options: a bad federate option throws ERR_BUSMQ_INVALID_OPTION; federating a non-object throws; disconnect() ends federations', async () => {
  assert.throws(() => Bus.create({ redis: 'redis://127.0.0.1:1', federate: { secret: 5 as any } }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => Bus.create({ redis: 'redis://127.0.0.1:1', federate: { server: {} as any } }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  const { h, local } = await pair()
  assert.throws(() => local.federate({}, h.url), { code: 'ERR_BUSMQ_CLASSIC_USAGE' })
  assert.throws(() => local.federate(local.queue('q'), {}), { code: 'ERR_BUSMQ_CLASSIC_UNSUPPORTED' })
  const fed = local.federate(local.queue(uniqueName('cfd')), h.url)
  await nextEvent(fed, 'ready')
  const closed = nextEvent(fed, 'close')
  local.disconnect()
  await closed
})

test('a reliable channel federated: the federated side acks up to an id through the server; nothing stays in flight', async () => {
  const { h, serving, local } = await pair()
  const name = uniqueName('cfrel')
  const fc = await ready<ReturnType<typeof local.channel>>(local.federate(local.channel(name), h.url))
  const sc = serving.channel(name)
  const remote = [nextEvent(fc, 'remote:connect'), nextEvent(sc, 'remote:connect')]
  sc.listen({ reliable: true })
  fc.connect({ reliable: true })
  await Promise.all(remote)
  const got = messages(fc, 3)
  for (const m of ['a', 'b', 'c']) await call((cb) => sc.send(m, cb))
  const received = await got
  assert.deepEqual(received.map(([m]) => m), ['a', 'b', 'c'])
  assert.ok(received.every(([, id]) => typeof id === 'number'))
  const native = serving.native.queue(`${name}:local`)
  assert.equal((await native.stats()).inFlight, 3, 'held by the server for the federated side until acked')
  await call((cb) => fc.ack(received[2][1], cb))
  const stats = await native.stats()
  assert.deepEqual([stats.length, stats.inFlight], [0, 0])
})
