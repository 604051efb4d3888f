// Persisted objects (bus.object) in one process: load, set, save, versions, ifVersion, encoding, hostile
// payloads written straight to Redis, change streams (resync), keepAlive / release and expiry.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { ObjectChange } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { eventually, uniqueName } from './helpers/bus.js'
import { keysContaining, sleep, trackBuses } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

/** A logger that records what the bus says, by level. */
function recordingLogger (): { lines: Array<[string, string]>, debug: (m: string) => void, info: (m: string) => void, warn: (m: string) => void, error: (m: string) => void } {
  const lines: Array<[string, string]> = []
  return {
    lines,
    debug: (m) => lines.push(['debug', m]),
    info: (m) => lines.push(['info', m]),
    warn: (m) => lines.push(['warn', m]),
    error: (m) => lines.push(['error', m])
  }
}

/** The next `n` changes of a change stream (it stays open). */
async function nextChanges (stream: AsyncIterable<ObjectChange> & NodeJS.EventEmitter, n: number): Promise<ObjectChange[]> {
  const out: ObjectChange[] = []
  return await new Promise((resolve, reject) => {
    const onData = (c: ObjectChange): void => {
      out.push(c)
      if (out.length === n) {
        stream.off('data', onData)
        stream.off('error', reject)
        resolve(out)
      }
    }
    stream.on('data', onData)
    stream.once('error', reject)
  })
}

test('load() of an object that does not exist is null; save() creates it at version 1; load() reads it back', async () => {
  const bus = await openBus(redis.servers)
  const doc = bus.object(uniqueName('doc'))
  assert.equal(await doc.load(), null)
  assert.equal(doc.version, 0)
  assert.equal(await doc.exists(), false)
  doc.set({ user: 'ann', step: 2, tags: ['a', 'b'], nested: { deep: true } })
  assert.deepEqual(doc.pending.sort(), ['nested', 'step', 'tags', 'user'])
  assert.equal(await doc.save(), 1)
  assert.deepEqual(doc.pending, [])
  const other = bus.object(doc.name)
  assert.deepEqual(await other.load(), { user: 'ann', step: 2, tags: ['a', 'b'], nested: { deep: true } })
  assert.equal(other.version, 1)
  assert.equal(await other.exists(), true)
  // Nothing pending: save() writes nothing and keeps the version.
  assert.equal(await doc.save(), 1)
  assert.equal((await other.load(), other.version), 1)
})

test('save() writes only the changed fields: two handles changing different fields keep both', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName('doc')
  const a = bus.object(name)
  const b = bus.object(name)
  a.set({ x: 1, y: 1 })
  await a.save()
  b.set({ y: 2 })
  await b.save()
  a.set({ x: 10 })
  assert.equal(await a.save(), 3)
  assert.deepEqual(await b.load(), { x: 10, y: 2 })
})

test('unset() and set({ field: undefined }) delete fields; an object with no fields left still exists', async () => {
  const bus = await openBus(redis.servers)
  const doc = bus.object(uniqueName('doc'))
  doc.set({ a: 1, b: 2, c: 3 })
  await doc.save()
  doc.unset('a').set({ b: undefined })
  assert.equal(await doc.save(), 2)
  assert.deepEqual(await doc.load(), { c: 3 })
  doc.unset('c')
  await doc.save()
  assert.deepEqual(await doc.load(), {})
  assert.equal(doc.version, 3)
  // Deleting fields of an object that does not exist creates nothing.
  const ghost = bus.object(uniqueName('ghost'))
  ghost.unset('x')
  assert.equal(await ghost.save(), 0)
  assert.equal(await ghost.exists(), false)
})

test('save({ ifVersion }): ERR_BUSMQ_CONFLICT when someone saved since, nothing written, the changes stay pending', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName('doc')
  const a = bus.object(name)
  const b = bus.object(name)
  a.set({ n: 1 })
  assert.equal(await a.save({ ifVersion: 0 }), 1, 'ifVersion 0: create only if it does not exist')
  await b.load()
  b.set({ n: 2 })
  assert.equal(await b.save({ ifVersion: 1 }), 2)
  a.set({ n: 3, other: true })
  await assert.rejects(a.save({ ifVersion: 1 }), (err: any) => {
    assert.equal(err.code, 'ERR_BUSMQ_CONFLICT')
    assert.equal(err.name, 'ConflictError')
    assert.equal(err.version, 2)
    return true
  })
  assert.deepEqual(a.pending.sort(), ['n', 'other'])
  assert.deepEqual(await b.load(), { n: 2 })
  assert.equal(b.version, 2)
  // Reload, then retry on the version seen.
  await a.load()
  assert.equal(await a.save({ ifVersion: a.version }), 3)
  assert.deepEqual(await b.load(), { n: 3, other: true })
  const c = bus.object(name)
  c.set({ n: 4 })
  await assert.rejects(c.save({ ifVersion: 0 }), { code: 'ERR_BUSMQ_CONFLICT' })
  c.discard()
  assert.deepEqual(c.pending, [])
})

test('a field that cannot be encoded fails save() with ERR_BUSMQ_ENCODE and nothing is written', async () => {
  const bus = await openBus(redis.servers)
  const doc = bus.object(uniqueName('doc'))
  doc.set({ a: 1 })
  await doc.save()
  doc.set({ a: 2, big: 10n })
  await assert.rejects(doc.save(), { code: 'ERR_BUSMQ_ENCODE' })
  const other = bus.object(doc.name)
  assert.deepEqual(await other.load(), { a: 1 })
  assert.equal(other.version, 1)
  const cyclic: any = {}
  cyclic.self = cyclic
  doc.set({ big: undefined, cyclic })
  await assert.rejects(doc.save(), { code: 'ERR_BUSMQ_ENCODE' })
  assert.equal((await other.load(), other.version), 1)
})

test('a save over maxMessageSize fails with ERR_BUSMQ_MESSAGE_TOO_LARGE; nothing is written', async () => {
  const bus = await openBus(redis.servers, { maxMessageSize: 1000 })
  const doc = bus.object(uniqueName('doc'))
  doc.set({ a: 'x'.repeat(600), b: 'y'.repeat(600) })
  await assert.rejects(doc.save(), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
  assert.equal(await doc.exists(), false)
})

test('field names that reach prototypes are refused by set(), and skipped when found in Redis', async () => {
  const log = recordingLogger()
  const bus = await openBus(redis.servers, { logger: log })
  const doc = bus.object(uniqueName('doc'))
  for (const bad of [JSON.parse('{"__proto__": 1}'), { constructor: 1 }, { prototype: 1 }, { '': 1 }]) {
    assert.throws(() => doc.set(bad), { code: 'ERR_BUSMQ_INVALID_NAME' })
  }
  assert.throws(() => doc.unset('__proto__'), { code: 'ERR_BUSMQ_INVALID_NAME' })
  assert.throws(() => doc.set(null as any), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.deepEqual(doc.pending, [], 'a refused set() records nothing')

  // A hostile writer with direct access to Redis: the hash and the change log hold what BusMQ never writes.
  doc.set({ ok: 1 })
  await doc.save()
  const stream = doc.createChangeStream()
  await once(stream, 'ready')
  const key = doc.keys.hash
  const server = redis.servers[0]
  await server.cli('HSET', key, 'f:__proto__', '{"polluted":true}', 'f:constructor', '"evil"', 'f:prototype', '{"polluted":true}',
    'f:nested', '{"__proto__":{"polluted":true},"a":1}')
  await server.cli('HINCRBY', key, 'v', '1')
  await server.cli('XADD', doc.keys.log, '2-0', 's:__proto__', '{"polluted":true}', 's:constructor', '"evil"', 's:safe', '2')
  await server.cli('PUBLISH', doc.keys.wake, 'm')

  const loaded = await doc.load() as Record<string, any>
  assert.equal(Object.getPrototypeOf(loaded), Object.prototype)
  assert.deepEqual(Object.keys(loaded).sort(), ['nested', 'ok'])
  assert.equal(loaded.constructor, Object, 'constructor is not an own field')
  assert.equal(loaded.nested.a, 1)
  assert.equal(Object.getPrototypeOf(loaded.nested), Object.prototype)
  assert.equal(({} as any).polluted, undefined)
  assert.equal(loaded.polluted, undefined)
  assert.equal(loaded.nested.polluted, undefined)

  const [change] = await nextChanges(stream, 1)
  assert.equal(change.version, 2)
  assert.deepEqual(Object.keys(change.fields), ['safe'])
  assert.equal(({} as any).polluted, undefined)
  stream.destroy()
  assert.ok(log.lines.some(([level, m]) => level === 'warn' && m.includes('"__proto__"')), 'the skipped field is logged')
})

test('a change stream sees every save in order, with the fields set and deleted', async () => {
  const bus = await openBus(redis.servers)
  const doc = bus.object(uniqueName('doc'))
  const stream = doc.createChangeStream()
  await once(stream, 'ready')
  assert.equal(stream.version, 0)
  const seen = nextChanges(stream, 3)
  doc.set({ a: 1, b: 'x' })
  await doc.save()
  doc.unset('a').set({ c: [1, 2] })
  await doc.save()
  const other = bus.object(doc.name)
  other.set({ b: 'y' })
  await other.save()
  assert.deepEqual(await seen, [
    { version: 1, fields: { a: 1, b: 'x' }, deleted: [], resync: false },
    { version: 2, fields: { c: [1, 2] }, deleted: ['a'], resync: false },
    { version: 3, fields: { b: 'y' }, deleted: [], resync: false }
  ])
  stream.destroy()
})

test('a change stream made after load() starts at the loaded version: nothing between is missed', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName('doc')
  const writer = bus.object(name)
  writer.set({ n: 1 })
  await writer.save()
  const doc = bus.object(name)
  await doc.load()
  // Saved after the load, before the stream exists.
  writer.set({ n: 2 })
  await writer.save()
  const stream = doc.createChangeStream()
  writer.set({ n: 3 })
  await writer.save()
  const got = await nextChanges(stream, 2)
  assert.deepEqual(got.map((c) => [c.version, c.fields.n]), [[2, 2], [3, 3]])
  stream.destroy()
})

test('a change stream behind the change log gets one resync with the whole object, then every save again', async () => {
  const bus = await openBus(redis.servers)
  const doc = bus.object(uniqueName('doc'), { changeLog: 5 })
  for (let i = 1; i <= 20; i++) {
    doc.set({ [`f${i % 3}`]: i })
    await doc.save()
  }
  // From version 0: versions 1 to 15 are no longer in the log.
  const stream = doc.createChangeStream({ after: 0 })
  const [resync] = await nextChanges(stream, 1)
  assert.deepEqual(resync, { version: 20, fields: { f0: 18, f1: 19, f2: 20 }, deleted: [], resync: true })
  const next = nextChanges(stream, 2)
  doc.set({ f0: 21 })
  await doc.save()
  doc.unset('f1')
  await doc.save()
  assert.deepEqual(await next, [
    { version: 21, fields: { f0: 21 }, deleted: [], resync: false },
    { version: 22, fields: {}, deleted: ['f1'], resync: false }
  ])
  // From version 17: the log still holds the last 5 saves, 18 to 22, so no resync.
  const late = doc.createChangeStream({ after: 17 })
  assert.deepEqual((await nextChanges(late, 5)).map((c) => [c.version, c.resync]), [[18, false], [19, false], [20, false], [21, false], [22, false]])
  stream.destroy()
  late.destroy()
})

test('delete(): the object and its change log are gone, change streams get an empty resync, the next save starts at 1', async () => {
  const server = redis.servers[0]
  const bus = await openBus(redis.servers)
  const doc = bus.object(uniqueName('doc'))
  doc.set({ a: 1 })
  await doc.save()
  const stream = doc.createChangeStream()
  await once(stream, 'ready')
  const gone = nextChanges(stream, 1)
  assert.equal(await doc.delete(), true)
  assert.deepEqual(await gone, [{ version: 0, fields: {}, deleted: [], resync: true }])
  assert.deepEqual(await keysContaining(server, doc.name), [])
  assert.equal(await doc.load(), null)
  assert.equal(await doc.delete(), false)
  const created = nextChanges(stream, 1)
  doc.set({ b: 2 })
  assert.equal(await doc.save(), 1)
  assert.deepEqual(await created, [{ version: 1, fields: { b: 2 }, deleted: [], resync: false }])
  stream.destroy()
})

test('an object nobody keeps alive expires after its TTL, every key of it; keepAlive() holds it until release()', async () => {
  const server = redis.servers[0]
  const bus = await openBus(redis.servers)
  const ttl = 400
  const loose = bus.object(uniqueName('loose'), { ttl })
  loose.set({ a: 1 })
  await loose.save()
  const kept = bus.object(uniqueName('kept'), { ttl })
  kept.set({ a: 1 })
  await kept.save()
  kept.keepAlive()
  assert.equal((await keysContaining(server, kept.name)).length, 2, 'the hash and the change log')
  assert.ok(await eventually(async () => (await keysContaining(server, loose.name)).length === 0, 10_000), 'the loose object expired')
  // Kept alive: still there after several TTLs, refreshed by the heartbeat.
  await sleep(ttl * 4)
  assert.equal((await keysContaining(server, kept.name)).length, 2)
  assert.deepEqual(await kept.load(), { a: 1 })
  kept.release()
  assert.ok(await eventually(async () => (await keysContaining(server, kept.name)).length === 0, 10_000), 'released: every key expired')
  assert.equal(await kept.load(), null)
})

test('bus.close() stops keeping objects alive; a custom codec encodes each field', async () => {
  const server = redis.servers[0]
  const bus = await openBus(redis.servers)
  const codec = {
    encode: (v: unknown) => Buffer.from(`<${JSON.stringify(v)}>`),
    decode: (b: Buffer) => JSON.parse(b.toString().slice(1, -1))
  }
  const doc = bus.object(uniqueName('codec'), { ttl: 300, codec })
  doc.set({ a: { x: 1 } })
  await doc.save()
  assert.equal(await server.cli('HGET', doc.keys.hash, 'f:a'), '<{"x":1}>')
  assert.deepEqual(await bus.object(doc.name, { codec }).load(), { a: { x: 1 } })
  doc.keepAlive()
  await bus.close()
  assert.ok(await eventually(async () => (await keysContaining(server, doc.name)).length === 0, 10_000))
})

test('bad names and options are refused with stable codes before anything reaches Redis', async () => {
  const bus = await openBus(redis.servers)
  assert.throws(() => bus.object('a b'), { code: 'ERR_BUSMQ_INVALID_NAME' })
  assert.throws(() => bus.object('{x}'), { code: 'ERR_BUSMQ_INVALID_NAME' })
  assert.throws(() => bus.object('x', { ttl: 0 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => bus.object('x', { changeLog: 0 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => bus.object('x', { codec: {} as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  const doc = bus.object(uniqueName('doc'))
  await assert.rejects(doc.save({ ifVersion: -1 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => doc.createChangeStream({ after: 1.5 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.equal(await doc.exists(), false)
})
