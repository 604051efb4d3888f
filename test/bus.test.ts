import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Bus } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { nextEvent, openBus, uniqueName, collect } from './helpers/bus.js'

const redis = useRedis(3, { appendonly: true })

test('connect() resolves once every shard answers, and close() is idempotent', async () => {
  const bus = new Bus({ redis: redis.servers.map((s) => s.url) })
  const online: string[] = []
  bus.on('online', (id) => online.push(id))
  await bus.connect()
  await bus.connect()
  assert.deepEqual(online.sort(), bus.shardIds.sort())
  await Promise.all([bus.close(), bus.close()])
  await bus.close()
  assert.throws(() => bus.queue('x'), { code: 'ERR_BUSMQ_CLOSED' })
})

test('connect() rejects with ERR_BUSMQ_CONNECT_TIMEOUT when a shard cannot be reached', async () => {
  const bus = new Bus({ redis: [redis.servers[0].url, 'redis://127.0.0.1:1'], connectTimeout: 500 })
  const started = Date.now()
  await assert.rejects(bus.connect(), (err: any) => {
    assert.equal(err.code, 'ERR_BUSMQ_CONNECT_TIMEOUT')
    assert.match(err.message, /127\.0\.0\.1:1\/0/)
    return true
  })
  assert.ok(Date.now() - started < 5000)
  await bus.close()
})

test('killing a shard emits offline, restarting it emits online, and its queues work again', async (t) => {
  const victim = redis.servers[2]
  const bus = await openBus([victim])
  t.after(() => bus.close())
  const id = bus.shardIds[0]
  const q = bus.queue(uniqueName())
  await q.push(Buffer.from('before'))
  const offline = nextEvent(bus, 'offline', (s) => s === id)
  await victim.kill()
  await offline
  const online = nextEvent(bus, 'online', (s) => s === id)
  await victim.restart()
  await online
  // appendonly: the message survived the restart and the bus reconnected on its own.
  await q.push(Buffer.from('after'))
  const got = await collect<Buffer>(q.createReadStream({ untilEmpty: true }))
  assert.deepEqual(got.map(String), ['before', 'after'])
})

test('invalid options are rejected with ERR_BUSMQ_INVALID_OPTION', () => {
  assert.throws(() => new Bus({ redis: 'http://x' }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => new Bus({ redis: [] }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => new Bus({ redis: 'redis://a', cluster: [{ host: 'a', port: 1 }] }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => new Bus({ ttl: -1 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
})

test('close() leaves nothing running: a process that used the bus exits by itself', async () => {
  const script = fileURLToPath(new URL('./fixtures/use-and-close.js', import.meta.url))
  const child = spawn(process.execPath, [script, redis.servers[0].url, uniqueName()], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [code, signal] = await once(child, 'exit')
  clearTimeout(timer)
  assert.equal(signal, null, 'the process had to be killed: something kept it alive after close()')
  assert.equal(code, 0)
  assert.equal(out.trim(), 'received 100')
})

test('growing from 2 shards to 3 keeps every queue reachable, with all its messages in order', async (t) => {
  const two = redis.servers.slice(0, 2)
  const names = Array.from({ length: 60 }, () => uniqueName('grow'))
  const before = await openBus(two)
  t.after(() => before.close())
  for (const name of names) {
    const w = before.queue(name).createWriteStream()
    for (let i = 0; i < 20; i++) w.write(`${name}:${i}`)
    w.end()
    await once(w, 'finish')
  }
  await before.close()

  const after = await openBus(redis.servers)
  t.after(() => after.close())
  const third = after.shardIds.find((id) => !before.shardIds.includes(id))!
  // Some names now belong to the new shard: their data must still be found on the old one.
  const movedOwners = names.filter((n) => after.ownerOf(n).id === third)
  assert.ok(movedOwners.length > 0, 'no name changed owner: the test proves nothing')
  for (const name of names) {
    const got = await collect<Buffer>(after.queue(name).createReadStream({ untilEmpty: true }))
    assert.deepEqual(got.map(String), Array.from({ length: 20 }, (_, i) => `${name}:${i}`))
  }
  // A new queue whose owner is the new shard lands there.
  let fresh: string
  do fresh = uniqueName('fresh'); while (after.ownerOf(fresh).id !== third)
  assert.equal((await after.queue(fresh).shard()).id, third)
  await after.close()
})
