// Option checks at the public boundary: a bad option throws a coded error before anything connects. No
// Redis: the buses point at a port nobody listens on, and every test checks that nothing connected.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Bus, DEFAULT_BUS_OPTIONS, shardIdOf, type BusOptions } from '../../lib/index.js'
import { defaultRedis } from '../../lib/bus-options.js'

const NOWHERE = 'redis://127.0.0.1:1'

/** Shards of watched buses that started connecting (none may). */
const connected: string[] = []

/** A bus whose connections report it if they ever start connecting, closed after the test. */
function watched (t: TestContext, options: BusOptions): Bus {
  const bus = new Bus(options)
  t.after(() => bus.close())
  for (const shard of bus.router.all()) {
    shard.client.on('connecting', () => connected.push(shard.id))
    shard.client.on('connect', () => connected.push(shard.id))
  }
  return bus
}

/** Nothing connected: no connection of a watched bus started connecting, and they are unopened or closed. */
function assertUntouched (bus: Bus): void {
  assert.deepEqual(connected, [])
  for (const shard of bus.router.all()) assert.ok(['wait', 'end'].includes(shard.client.status), `shard ${shard.id} is ${shard.client.status}`)
}

const invalid = { code: 'ERR_BUSMQ_INVALID_OPTION', name: 'InvalidOptionError' }

test('new Bus() refuses bad options with ERR_BUSMQ_INVALID_OPTION', () => {
  const bad: Array<[string, BusOptions]> = [
    ['two layouts', { redis: NOWHERE, cluster: [{ host: '127.0.0.1', port: 1 }] }],
    ['redis and sentinel', { redis: NOWHERE, sentinel: { sentinels: ['127.0.0.1:1'], names: ['m'] } }],
    ['not a URL', { redis: 'localhost' }],
    ['http URL', { redis: 'http://127.0.0.1:1' }],
    ['empty list', { redis: [] }],
    ['a number', { redis: 42 as any }],
    ['empty cluster', { cluster: [] }],
    ['sentinel without names', { sentinel: { sentinels: ['127.0.0.1:1'], names: [] } }],
    ['sentinel without sentinels', { sentinel: { sentinels: [], names: ['m'] } }],
    ['ttl < 10', { redis: NOWHERE, ttl: 9 }],
    ['fractional ttl', { redis: NOWHERE, ttl: 1000.5 }],
    ['maxMessageSize 0', { redis: NOWHERE, maxMessageSize: 0 }],
    ['maxMessageSize over 512 MiB', { redis: NOWHERE, maxMessageSize: 512 * 1024 * 1024 }],
    ['pollInterval 0', { redis: NOWHERE, pollInterval: 0 }],
    ['commandTimeout 0', { redis: NOWHERE, commandTimeout: 0 }],
    ['connectTimeout 0', { redis: NOWHERE, connectTimeout: 0 }],
    ['negative replicas', { redis: NOWHERE, replicas: -1 }],
    ['replicasTimeout 0', { redis: NOWHERE, replicasTimeout: 0 }],
    ['empty id', { redis: NOWHERE, id: '' }],
    ['long id', { redis: NOWHERE, id: 'x'.repeat(201) }],
    ['numeric id', { redis: NOWHERE, id: 7 as any }],
    ['bad prefix', { redis: NOWHERE, prefix: 'a b' }]
  ]
  for (const [what, options] of bad) assert.throws(() => new Bus(options), invalid, what)
})

test('good options are taken as given, defaults fill the rest; nothing connects', async (t) => {
  const bus = watched(t, { redis: [NOWHERE, 'redis://127.0.0.1:2/3'], ttl: 10, pollInterval: 5, id: 'me', prefix: 'app' })
  assert.deepEqual(bus.shardIds, ['127.0.0.1:1/0', '127.0.0.1:2/3'])
  assert.equal(bus.settings.ttl, 10)
  assert.equal(bus.settings.pollInterval, 5)
  assert.equal(bus.settings.id, 'me')
  assert.equal(bus.settings.prefix, 'app')
  assert.equal(bus.settings.maxMessageSize, DEFAULT_BUS_OPTIONS.maxMessageSize)
  assert.equal(bus.settings.commandTimeout, DEFAULT_BUS_OPTIONS.commandTimeout)
  assert.equal(bus.online, false)
  assertUntouched(bus)
  await bus.close()
})

test('shard ids and the default shards do not depend on credentials or list order', () => {
  assert.equal(shardIdOf('redis://user:secret@example.com:6380/2'), 'example.com:6380/2')
  assert.equal(shardIdOf('rediss://example.com'), 'example.com:6379/0')
  assert.throws(() => shardIdOf('example.com:6379'), invalid)
  assert.deepEqual(defaultRedis({ BUSMQ_REDIS: ' redis://a:1 , redis://b:2,' }), ['redis://a:1', 'redis://b:2'])
  assert.deepEqual(defaultRedis({ BUSMQ_REDIS: '' }), [...DEFAULT_BUS_OPTIONS.redis])
  assert.deepEqual(defaultRedis({}), [...DEFAULT_BUS_OPTIONS.redis])
})

test('addShards() refuses an empty list, and any other layout than redis URLs', async (t) => {
  const bus = watched(t, { redis: NOWHERE })
  assert.throws(() => bus.addShards([]), invalid)
  assert.throws(() => bus.addShards(['nope']), invalid)
  const cluster = watched(t, { cluster: [{ host: '127.0.0.1', port: 1 }] })
  assert.throws(() => cluster.addShards([NOWHERE]), invalid)
  assertUntouched(bus)
  await Promise.all([bus.close(), cluster.close()])
})

test('bus.queue(), createReadStream() and createWriteStream() refuse bad options before anything connects', async (t) => {
  const bus = watched(t, { redis: NOWHERE })
  for (const options of [{ ttl: 9 }, { maxLength: -1 }, { retain: 1.5 }, { objectMode: 'yes' as any }, { codec: {} as any }]) {
    assert.throws(() => bus.queue('q', options), invalid, JSON.stringify(options))
  }
  const q = bus.queue('q')
  const badReads: Array<Record<string, unknown>> = [
    { mode: 'bogus' },
    { highWaterMark: 0 },
    { highWaterMark: 1_000_001 },
    { max: -1 },
    { max: 1.5 },
    { untilEmpty: 'yes' },
    { untilEnd: 1 },
    { withIds: 1 },
    { objectMode: 'no' },
    { codec: { encode: () => '' } },
    { mode: 'replay', from: -1 },
    { mode: 'reliable', lease: 99 },
    { mode: 'reliable', maxDeliveries: 0 },
    { mode: 'reliable', prefetch: 0 }
  ]
  for (const options of badReads) assert.throws(() => q.createReadStream(options as any), invalid, JSON.stringify(options))
  assert.throws(() => q.createWriteStream({ codec: 'json' as any }), invalid)
  await assert.rejects(q.attach({ ttl: 1 }), invalid)
  assertUntouched(bus)
  await bus.close()
})

test('push() refuses what cannot be a message before anything connects', async (t) => {
  const bus = watched(t, { redis: NOWHERE, maxMessageSize: 10 })
  const values = bus.queue('values', { objectMode: true })
  await assert.rejects(values.push(undefined), { code: 'ERR_BUSMQ_ENCODE' })
  await assert.rejects(values.push(null), { code: 'ERR_BUSMQ_ENCODE' })
  await assert.rejects(values.push(10n), { code: 'ERR_BUSMQ_ENCODE' })
  await assert.rejects(values.push('x'.repeat(20)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE', name: 'MessageTooLargeError' })
  const bytes = bus.queue('bytes')
  await assert.rejects(bytes.push(42 as any), { code: 'ERR_BUSMQ_ENCODE' })
  await assert.rejects(bytes.push(Buffer.alloc(11)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
  await assert.rejects(bus.pubsub('topic').publish(Buffer.alloc(11)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
  assertUntouched(bus)
  await bus.close()
})

test('bus.channel() refuses bad names and options before anything connects', async (t) => {
  const bus = watched(t, { redis: NOWHERE })
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['ch', { local: 'has space' }, 'ERR_BUSMQ_INVALID_NAME'],
    ['ch', { local: 'peer', remote: 'peer' }, 'ERR_BUSMQ_INVALID_NAME'],
    ['ch', { listen: true, remote: 'remote' }, 'ERR_BUSMQ_INVALID_NAME'],
    // Valid alone (200 characters), too long once ':remote' is added for its queue.
    ['x'.repeat(200), {}, 'ERR_BUSMQ_INVALID_NAME'],
    ['a{b}', {}, 'ERR_BUSMQ_INVALID_NAME'],
    ['ch', { heartbeat: 9 }, 'ERR_BUSMQ_INVALID_OPTION'],
    ['ch', { reliable: 'yes' }, 'ERR_BUSMQ_INVALID_OPTION'],
    ['ch', { highWaterMark: 0 }, 'ERR_BUSMQ_INVALID_OPTION'],
    ['ch', { writableHighWaterMark: -1 }, 'ERR_BUSMQ_INVALID_OPTION'],
    ['ch', { ttl: 5 }, 'ERR_BUSMQ_INVALID_OPTION'],
    ['ch', { codec: { decode: () => 1 } }, 'ERR_BUSMQ_INVALID_OPTION']
  ]
  for (const [name, options, code] of bad) {
    assert.throws(() => bus.channel(name, options as any), { code }, `${name.slice(0, 20)} ${JSON.stringify(options)}`)
  }
  assert.throws(() => bus.pubsub('topic', { codec: null as any }), invalid)
  assert.throws(() => bus.pubsub('a b'), { code: 'ERR_BUSMQ_INVALID_NAME' })
  assertUntouched(bus)
  await bus.close()
})

test('a closed bus refuses new queues, channels, topics and streams with ERR_BUSMQ_CLOSED', async (t) => {
  const bus = watched(t, { redis: NOWHERE })
  const q = bus.queue('q')
  await bus.close()
  const closed = { code: 'ERR_BUSMQ_CLOSED', name: 'BusClosedError' }
  assert.equal(bus.closed, true)
  assert.throws(() => bus.queue('other'), closed)
  assert.throws(() => bus.channel('ch'), closed)
  assert.throws(() => bus.pubsub('topic'), closed)
  assert.throws(() => q.createReadStream(), closed)
  assert.throws(() => q.createWriteStream(), closed)
  await assert.rejects(bus.connect(), closed)
  assertUntouched(bus)
})
