// A queue's other calls over federation: stats, ttlLeft, getMeta/setMeta, flush, delete, attach/detach
// on a federation-only bus do what they do on the serving bus (and the reverse); an object kept alive
// through federation stays; `allow` maps each call to an op and a refusal creates nothing in Redis;
// deadLetter() and history() over federation, carried by a flag (never by the name).
import { test, after } from 'node:test'
import { once } from 'node:events'
import { createServer, connect, type Socket, type AddressInfo } from 'node:net'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName, eventually } from './helpers/bus.js'
import { keysContaining } from './helpers/queue.js'
import { fedServer, fedClient } from './helpers/federation.js'

const redis = useRedis(1)

test('stats, ttlLeft, metadata both ways, flush and delete through federation match the serving bus', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fqc')
  const remote = client.queue(name, { objectMode: true })
  const local = server.bus.queue(name, { objectMode: true })
  for (const m of ['a', 'b', 'c']) await remote.push(m)
  assert.deepEqual(await local.createReadStream({ max: 1 }).toArray(), ['a'])
  const rs = await remote.stats()
  const ls = await local.stats()
  assert.deepEqual({ ...rs, ttl: 0 }, { ...ls, ttl: 0 })
  assert.deepEqual([rs.name, rs.length, rs.pushed, rs.consumed], [name, 2, 3, 1])
  const left = await remote.ttlLeft()
  assert.ok(left > 0 && left <= local.ttl, `ttlLeft ${left}`)

  await remote.setMeta({ owner: 'fed', n: 2 })
  assert.deepEqual(await local.getMeta(), { owner: 'fed', n: '2' })
  await local.setMeta({ from: 'local' })
  assert.equal(await remote.getMeta('from'), 'local')
  assert.equal(await remote.getMeta('missing'), null)
  assert.deepEqual(await remote.getMeta(), { owner: 'fed', n: '2', from: 'local' })

  await remote.flush()
  assert.equal(await local.count(), 0)
  assert.equal((await local.stats()).pushed, 3, 'flush keeps the counters')
  assert.equal(await remote.delete(), true)
  assert.equal(await local.exists(), false)
  assert.equal(await remote.delete(), false)
  assert.equal(await remote.ttlLeft(), -2)
  // An error keeps its code across the wire (a ttl the serving bus refuses).
  await assert.rejects(client.queue(name, { ttl: 5 }).setMeta({ a: 1 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  // Bad arguments are a protocol violation: the connection closes (and reconnects), nothing is written.
  const raw = (client as unknown as { remote: { client: { call: (...a: unknown[]) => Promise<unknown> } } }).remote.client
  await assert.rejects(raw.call('setMeta', name, { fields: 'x' }, [], { retry: false }))
  await assert.rejects(raw.call('getMeta', name, { field: 5 }, [], { retry: false }))
  assert.equal(await remote.count(), 0, 'the client reconnected')
  assert.deepEqual(await keysContaining(redis.servers[0], name), [])
})

/** A TCP proxy to `port` on a free port; `kill()` closes it and every connection through it for good. */
async function proxy (port: number): Promise<{ port: number, kill: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1')
    for (const s of [inbound, outbound]) {
      sockets.add(s)
      s.on('error', () => {})
      s.once('close', () => { sockets.delete(s); inbound.destroy(); outbound.destroy() })
    }
    inbound.pipe(outbound).pipe(inbound)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const kill = async (): Promise<void> => {
    const closed = new Promise((resolve) => server.close(resolve))
    for (const s of sockets) s.destroy()
    await closed
  }
  after(kill)
  return { port: (server.address() as AddressInfo).port, kill }
}

test('attach and keepAlive through federation keep a short-ttl queue and object alive across a reconnection; detach, release, or the client gone for good let them expire', async () => {
  const server = await fedServer(redis.servers, { resumeTimeout: 1000 })
  const via = await proxy(server.port)
  const client = await fedClient([server.url.replace(`:${server.port}/`, `:${via.port}/`)])
  const name = uniqueName('fqa')
  const remote = client.queue(name)
  const other = client.queue(name)
  assert.equal(await remote.attach({ ttl: 1500 }), false, 'this attach created the queue')
  assert.equal(await other.attach({ ttl: 1500 }), true, 'a second attach found it')
  await remote.push(Buffer.from('kept'))
  const obj = client.object(name, { ttl: 1500 })
  await obj.set({ v: 1 }).save()
  obj.keepAlive()
  // The connection drops: the attachments resume on the new one (or are made again).
  const reconnected = once(client, 'reconnected')
  assert.ok(server.dropSockets() > 0)
  await reconnected
  // Time is the point: three TTLs of nobody touching either (the heartbeat refreshes every 500 ms).
  await delay(4500)
  const local = server.bus.queue(name)
  assert.equal(await local.count(), 1, 'the attached queue did not expire')
  assert.ok((await local.stats()).clients >= 1)
  assert.equal(await server.bus.object(name).exists(), true, 'the kept object did not expire')
  await remote.detach()
  obj.release()
  await eventually(async () => !(await server.bus.object(name).exists()), 15_000)
  // The other handle's attachment keeps the queue until its client is gone for longer than resumeTimeout.
  assert.equal(await local.exists(), true)
  await via.kill()
  await eventually(async () => !(await local.exists()), 15_000)
})

test('allow: stats/ttlLeft/getMeta are inspect, setMeta write, flush/delete admin, attach read or write; refusals create no key', async () => {
  const seen: string[] = []
  const server = await fedServer(redis.servers, {
    allow: (op, name) => {
      seen.push(op)
      return name.startsWith('public.')
    }
  })
  const client = await fedClient([server.url])
  const secret = uniqueName('private')
  const q = client.queue(secret)
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['stats', async () => await q.stats()],
    ['ttlLeft', async () => await q.ttlLeft()],
    ['getMeta', async () => await q.getMeta()],
    ['getMeta(field)', async () => await q.getMeta('f')],
    ['setMeta', async () => await q.setMeta({ f: 'x' })],
    ['flush', async () => await q.flush()],
    ['delete', async () => await q.delete()],
    ['attach', async () => await q.attach()]
  ]
  for (const [what, fn] of calls) await assert.rejects(fn(), { code: 'ERR_BUSMQ_FORBIDDEN' }, what)
  assert.deepEqual(seen, ['inspect', 'inspect', 'inspect', 'inspect', 'write', 'admin', 'admin', 'read', 'write'])
  const obj = client.object(secret)
  obj.keepAlive()
  obj.release()
  assert.equal(await q.count().catch((err: { code: string }) => err.code), 'ERR_BUSMQ_FORBIDDEN')
  assert.deepEqual(await keysContaining(redis.servers[0], secret), [])
})

test('deadLetter() through federation: what a remote reliable reader nacks arrives once, in order, at the remote dead-letter reader; history, count, stats, meta, streams, attach, flush and delete match the serving bus', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fdl')
  const remote = client.queue(name, { objectMode: true })
  const local = server.bus.queue(name, { objectMode: true })
  for (let i = 1; i <= 6; i++) await remote.push({ i })
  // maxDeliveries 1: a nack is final. Odd ones are nacked (the last with deadLetter: true), even ones acked.
  for await (const m of remote.createReadStream({ mode: 'reliable', maxDeliveries: 1, max: 6 })) {
    if (m.data.i % 2 === 0) assert.equal(await m.ack(), true)
    else await m.nack(m.data.i === 5 ? { deadLetter: true } : {})
  }
  const dlq = remote.deadLetter()
  const localDlq = local.deadLetter()
  assert.equal(dlq.name, `${name}:dead-letter`)
  assert.equal(dlq.name, localDlq.name)
  assert.equal(await dlq.count(), 3)
  assert.equal(await dlq.count(), await localDlq.count())
  assert.deepEqual({ ...await dlq.stats(), ttl: 0 }, { ...await localDlq.stats(), ttl: 0 })
  assert.equal(await remote.count(), 0, 'the queue itself is empty')
  assert.equal(await dlq.exists(), true)
  assert.equal(await dlq.find(), server.url)
  assert.ok(await dlq.ttlLeft() > 0)

  // Replay shows the ids; each one's history over federation is the serving bus's.
  const dead = await dlq.createReadStream({ mode: 'replay', withIds: true, max: 3 }).toArray() as Array<{ id: number, data: { i: number } }>
  assert.deepEqual(dead.map((d) => d.data.i), [1, 3, 5])
  for (const { id } of dead) {
    const h = await dlq.history(id)
    assert.ok(h !== null)
    assert.deepEqual(h, await localDlq.history(id))
    assert.equal(h.deliveries.length, 1)
  }
  assert.equal(await dlq.history(999), null)
  assert.equal(await remote.history(dead[0].id), null, 'the queue itself has no dead-letter records (as natively)')

  await dlq.setMeta({ triage: 'pending' })
  assert.deepEqual(await localDlq.getMeta(), { triage: 'pending' })
  assert.equal(await dlq.getMeta('triage'), 'pending')
  assert.deepEqual(await remote.getMeta(), {}, 'the queue itself has no such field')

  // Consume-once: exactly those, in order, once.
  assert.deepEqual(await dlq.createReadStream({ untilEmpty: true }).toArray(), [{ i: 1 }, { i: 3 }, { i: 5 }])
  assert.deepEqual(await dlq.createReadStream({ untilEmpty: true }).toArray(), [])
  assert.equal(await localDlq.count(), 0)

  // Writes (push and a write stream) and a reliable reader on the dead-letter queue.
  assert.equal(typeof await dlq.push({ i: 7 }), 'number')
  const w = dlq.createWriteStream()
  w.end({ i: 8 })
  await once(w, 'finish')
  assert.equal(await localDlq.count(), 2)
  for await (const m of dlq.createReadStream({ mode: 'reliable', max: 1 })) assert.equal(await m.ack(), true)
  assert.deepEqual(await localDlq.createReadStream({ untilEmpty: true }).toArray(), [{ i: 8 }])

  assert.equal(await dlq.attach(), true)
  assert.equal((await localDlq.stats()).clients, 1)
  await dlq.detach()
  assert.equal((await localDlq.stats()).clients, 0)

  await localDlq.push({ i: 9 })
  await dlq.flush()
  assert.equal(await localDlq.count(), 0)
  assert.equal(await dlq.delete(), true)
  assert.equal(await localDlq.exists(), false)
  assert.equal(await local.exists(), true, 'deleting the dead-letter queue leaves its queue')
  assert.throws(() => dlq.deadLetter(), { code: 'ERR_BUSMQ_INVALID_OPTION' })
})

test('deadLetter() through federation is carried by a flag: a queue named "x:dead-letter" is not the dead-letter queue of x', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const x = uniqueName('fdx')
  await server.bus.queue(`${x}:dead-letter`).push(Buffer.from('native'))
  const dlq = client.queue(x).deadLetter()
  const named = client.queue(`${x}:dead-letter`)
  assert.equal(dlq.name, named.name)
  assert.equal(await dlq.exists(), false)
  assert.equal(await dlq.count(), 0)
  assert.equal(await named.count(), 1)
  await server.bus.queue(x).deadLetter().push(Buffer.from('dead'))
  assert.deepEqual((await named.createReadStream({ untilEmpty: true }).toArray()).map(String), ['native'])
  assert.deepEqual((await dlq.createReadStream({ untilEmpty: true }).toArray()).map(String), ['dead'])
  // A flag that is not a boolean is a protocol violation; the client reconnects, nothing is written.
  const raw = (client as unknown as { remote: { client: { call: (...a: unknown[]) => Promise<unknown> } } }).remote.client
  await assert.rejects(raw.call('push', x, { deadLetter: 'yes', producer: 'p1', batch: 1 }, [Buffer.from('no')], { retry: false }))
  assert.equal(await dlq.count(), 0)
  assert.equal(await server.bus.queue(x).count(), 0)
})

test('allow sees a dead-letter queue as "<name>:dead-letter": refusing it forbids every call and stream on it and creates no key', async () => {
  const seen = new Set<string>()
  const server = await fedServer(redis.servers, {
    allow: (op, name) => {
      seen.add(`${op} ${name}`)
      return !name.endsWith(':dead-letter')
    }
  })
  const client = await fedClient([server.url])
  const name = uniqueName('fda')
  const q = client.queue(name)
  await q.push(Buffer.from('allowed'))
  const dlq = q.deadLetter()
  const attempts: Array<[string, () => Promise<unknown>]> = [
    ['push', async () => await dlq.push(Buffer.from('x'))],
    ['count', async () => await dlq.count()],
    ['history', async () => await dlq.history(1)],
    ['setMeta', async () => await dlq.setMeta({ f: 'x' })],
    ['flush', async () => await dlq.flush()],
    ['delete', async () => await dlq.delete()],
    ['attach', async () => await dlq.attach()],
    ['read', async () => await dlq.createReadStream({ untilEmpty: true }).toArray()],
    ['reliable read', async () => await dlq.createReadStream({ mode: 'reliable', untilEmpty: true }).toArray()],
    ['write', async () => { const w = dlq.createWriteStream(); w.end(Buffer.from('x')); await once(w, 'finish') }]
  ]
  for (const [what, fn] of attempts) await assert.rejects(fn(), { code: 'ERR_BUSMQ_FORBIDDEN' }, what)
  for (const op of ['write', 'inspect', 'admin', 'read']) assert.ok(seen.has(`${op} ${name}:dead-letter`), op)
  assert.equal(await q.count(), 1)
  assert.deepEqual((await keysContaining(redis.servers[0], name)).filter((k) => k.includes(':dl')), [])
})
