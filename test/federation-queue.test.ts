// A queue's other calls over federation: stats, ttlLeft, getMeta/setMeta, flush, delete, attach/detach
// on a federation-only bus do what they do on the serving bus (and the reverse); an object kept alive
// through federation stays; `allow` maps each call to an op and a refusal creates nothing in Redis.
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
