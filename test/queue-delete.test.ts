// queue.delete(): every key of the queue and of its dead-letter queue goes; readers bound to it, in this
// process or another, fail with ERR_BUSMQ_QUEUE_DELETED, and so do writers at their next push; a later
// use of the name creates a fresh queue.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Bus } from '../lib/index.js'
import { startRedis, useRedis } from './helpers/redis-server.js'
import { collect, eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { keysContaining, range, trackBuses } from './helpers/queue.js'
import { fixture } from './helpers/fixture.js'

const redis = useRedis(1)
const openBus = trackBuses()

test('delete() removes every key of the queue, its reliable-mode keys and its dead-letter queue', async () => {
  const server = redis.servers[0]
  const bus = await openBus(redis.servers)
  const name = uniqueName('del')
  const q = bus.queue(name, { objectMode: true })
  for (const i of range(0, 10)) await q.push(i)
  // In flight and dead-lettered messages, so that every kind of key exists.
  const reader = q.createReadStream({ mode: 'reliable', max: 3 })
  const held = await collect(reader)
  await held[0].nack({ deadLetter: true })
  await q.setMeta({ owner: 'test' })
  assert.ok((await keysContaining(server, name)).length >= 6)
  assert.equal(await q.delete(), true)
  assert.deepEqual(await keysContaining(server, name), [])
  assert.equal(await q.exists(), false)
  assert.equal(await q.delete(), false, 'nothing left to delete')
  // Acks of what was in flight find nothing, and bring nothing back.
  assert.deepEqual(await Promise.all(held.slice(1).map((m) => m.ack())), [false, false])
  assert.deepEqual(await keysContaining(server, name), [])
})

test('a reader in another process waiting on the queue ends with ERR_BUSMQ_QUEUE_DELETED at once', { timeout: 60_000 }, async (t) => {
  const bus = await openBus(redis.servers)
  const url = redis.servers[0].url
  for (const mode of ['consume', 'replay', 'reliable']) {
    const q = bus.queue(uniqueName(`del-${mode}`), { objectMode: true })
    const watcher = fixture(t, 'queue-watcher.js', [url, q.name, mode])
    await q.push('first')
    await watcher.line((l) => l.got === 'first')
    assert.equal(await q.delete(), true)
    const ended = await watcher.line((l) => 'error' in l)
    assert.equal(ended.error, 'ERR_BUSMQ_QUEUE_DELETED', `${mode} reader`)
    assert.deepEqual(await watcher.exited, [0, null])
    assert.deepEqual(await keysContaining(redis.servers[0], q.name), [], `${mode}: the reader leaving does not bring the queue back`)
  }
})

test('a writer bound to a deleted queue fails at its next push; a later use creates a fresh queue, ids from 1', async () => {
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName('del-writer'), { objectMode: true })
  const w = q.createWriteStream()
  await new Promise<void>((resolve, reject) => w.write('before', (err) => err ? reject(err) : resolve()))
  await q.delete()
  const failed = once(w, 'error').then(([err]) => err)
  w.write('after')
  assert.equal((await failed).code, 'ERR_BUSMQ_QUEUE_DELETED')
  assert.equal(await q.exists(), false, 'the failed push created nothing')
  // One-off pushes and new streams are not bound: they use (and create) the queue as it is now.
  assert.equal(await q.push('fresh'), 1)
  const w2 = q.createWriteStream()
  w2.end('fresh too')
  await once(w2, 'finish')
  assert.deepEqual(await collect(q.createReadStream({ untilEmpty: true })), ['fresh', 'fresh too'])
})

test('a reader holding messages when its queue is deleted gives nothing back into a fresh queue', async () => {
  const server = redis.servers[0]
  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName('del-giveback'), { objectMode: true })
  for (const i of range(0, 50)) await q.push(i)
  const reader = q.createReadStream({ highWaterMark: 100 })
  const [first] = await once(reader, 'data')
  assert.equal(first, 0)
  reader.pause()
  assert.equal(await q.count(), 0, 'the reader took everything into its buffer')
  await q.delete()
  // Destroyed with 49 messages buffered: they belonged to the deleted queue.
  reader.destroy()
  await once(reader, 'close')
  assert.deepEqual(await keysContaining(server, q.name), [])
  // A bus-wide reader of the same name made after the delete works on the fresh queue.
  const fresh = q.createReadStream({ max: 1 })
  await q.push('new')
  assert.deepEqual(await collect(fresh), ['new'])
})

test('a shard restarted without its data is not a delete: bound readers and writers carry on with a fresh queue', { timeout: 60_000 }, async () => {
  const server = await startRedis({ appendonly: false })
  const bus = new Bus({ redis: server.url, pollInterval: 200 })
  bus.on('error', () => {})
  await bus.connect()
  try {
    const q = bus.queue(uniqueName('lost'), { objectMode: true })
    const w = q.createWriteStream()
    const reader = q.createReadStream()
    const got: unknown[] = []
    const events: string[] = []
    reader.on('data', (m) => got.push(m))
    for (const s of [w, reader]) s.on('error', (err: Error) => events.push(err.message))
    await new Promise<void>((resolve, reject) => w.write('before', (err) => err ? reject(err) : resolve()))
    assert.ok(await eventually(() => got.length === 1))
    const lost = nextEvent(bus, 'dataloss')
    const online = nextEvent(bus, 'online')
    await server.kill()
    await server.restart()
    await Promise.all([online, lost])
    await new Promise<void>((resolve, reject) => w.write('after', (err) => err ? reject(err) : resolve()))
    assert.ok(await eventually(() => got.length === 2, 20_000), `got ${JSON.stringify(got)}`)
    assert.deepEqual(got, ['before', 'after'])
    assert.deepEqual(events, [])
  } finally {
    await bus.close()
    await server.dispose()
  }
})
