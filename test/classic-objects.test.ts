// busmq/classic pub/sub and persistables (BusMQ 3.1's API) on the direct layout: subscribe / publish /
// unsubscribe events, persistify with save (only changed properties), load (exists, id), persist /
// unpersist and expiry in seconds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useRedis } from './helpers/redis-server.js'
import { eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { call, classicBus, record } from './helpers/classic.js'
import { sleep } from './helpers/queue.js'

const redis = useRedis(1)

test('pubsub: subscribed, then message (a string) per publish while subscribed; unsubscribed; publish calls back with err only', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('ps')
  const s = bus.pubsub(name)
  const seen = record(s, ['subscribed', 'message', 'unsubscribed'])
  const p = bus.pubsub(name)
  // 3.1 (since 1.5.0): the callback receives err only, not how many subscribers got it.
  const args = await new Promise<unknown[]>((resolve) => p.publish('before anyone listens', (...a: unknown[]) => resolve(a)))
  assert.deepEqual(args, [null])
  s.subscribe()
  assert.equal(s.isSubscribed(), true)
  await nextEvent(s, 'subscribed')
  await call((cb) => p.publish('hello world', cb))
  await call((cb) => p.publish({ json: true }, cb))
  await eventually(() => seen.length === 3)
  s.unsubscribe()
  assert.equal(s.isSubscribed(), false)
  await nextEvent(s, 'unsubscribed')
  await call((cb) => p.publish('after unsubscribe', cb))
  assert.deepEqual(seen, [['subscribed'], ['message', 'hello world'], ['message', '{"json":true}'], ['unsubscribed']])
})

test('pubsub: a name with spaces, as in the 3.1 documentation (bus.pubsub(\'my pubsub channel\')), publishes and subscribes', async () => {
  const bus = await classicBus(redis.servers)
  const name = `my pubsub channel ${uniqueName('ps')}`
  const s = bus.pubsub(name)
  const got: string[] = []
  s.on('message', (m) => got.push(m))
  s.subscribe()
  await nextEvent(s, 'subscribed')
  await call((cb) => bus.pubsub(name).publish('hello world', cb))
  await eventually(() => got.length === 1)
  assert.deepEqual(got, ['hello world'])
})

test('pubsub: every subscriber gets every message; promisify() makes publish return a promise', async () => {
  const bus = await classicBus(redis.servers)
  const other = await classicBus(redis.servers)
  const name = uniqueName('ps')
  const a = bus.pubsub(name)
  const b = other.pubsub(name)
  const got: string[] = []
  a.on('message', (m) => got.push(`a:${m}`))
  b.on('message', (m) => got.push(`b:${m}`))
  const subscribed = [nextEvent(a, 'subscribed'), nextEvent(b, 'subscribed')]
  a.subscribe()
  b.subscribe()
  await Promise.all(subscribed)
  const p = bus.pubsub(name).promisify()
  await (p.publish as unknown as (m: unknown) => Promise<void>)('x')
  await eventually(() => got.length === 2)
  assert.deepEqual(got.sort(), ['a:x', 'b:x'])
})

test('persistify: save writes the properties; load reads them with exists and the id; the object keeps its other fields', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('obj')
  const p = bus.persistify(name, { field: 'not persisted' }, ['foo', 'bar', 'zoo'])
  p.foo = 'hello'
  p.bar = 1
  p.zoo = true
  await call((cb) => p.save(cb))
  p.foo = 'world'
  await call((cb) => p.save(cb))
  const p2 = bus.persistify(name, {}, ['foo', 'bar', 'zoo'])
  const [exists, id] = await new Promise<[boolean, string]>((resolve, reject) =>
    p2.load((err, e, i) => err ? reject(err) : resolve([e!, i!])))
  assert.equal(exists, true)
  assert.equal(id, `bus:persisted:${name}`)
  assert.deepEqual([p2.foo, p2.bar, p2.zoo], ['world', 1, true])
  assert.equal(p.field, 'not persisted')
  assert.equal(p.persistId(), id)
  assert.equal(p.id, id)
  const missing = bus.persistify(uniqueName('obj'), {}, ['foo'])
  const found = await new Promise<boolean>((resolve, reject) => missing.load((err, e) => err ? reject(err) : resolve(e!)))
  assert.equal(found, false)
  assert.equal(missing.foo, undefined)
})

test('persistify: save writes only the changed properties, so saves of different properties by two processes keep both', async () => {
  const bus = await classicBus(redis.servers)
  const other = await classicBus(redis.servers)
  const name = uniqueName('obj')
  const a = bus.persistify(name, {}, ['x', 'y'])
  const b = other.persistify(name, {}, ['x', 'y'])
  a.x = 1
  a.y = 1
  await call((cb) => a.save(cb))
  await call((cb) => b.load(cb))
  b.y = 2
  a.x = 3
  await call((cb) => b.save(cb))
  await call((cb) => a.save(cb))
  const c = bus.persistify(name, {}, ['x', 'y'])
  await call((cb) => c.load(cb))
  assert.deepEqual([c.x, c.y], [3, 2])
  // Nothing changed: save() writes nothing and calls back.
  await call((cb) => c.save(cb))
  // load() drops what was changed and not saved.
  c.x = 'unsaved'
  await call((cb) => c.load(cb))
  assert.equal(c.x, 3)
})

test('persistify: persist(ttl) keeps the object alive past its ttl (seconds); after unpersist() it expires', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('obj')
  const p = bus.persistify(name, {}, ['v'])
  p.persist(1)
  p.v = 'kept'
  await call((cb) => p.save(cb))
  const probe = bus.native.object(name)
  // Time passing is the point: 1.5 ttl later the kept object is still there.
  await sleep(1500)
  assert.equal(await probe.exists(), true)
  p.unpersist()
  assert.equal(p.v, undefined)
  await eventually(async () => !(await probe.exists()), 5000, 'the object to expire after unpersist()')
})
