// busmq/classic bus (BusMQ 3.1's API) on the direct layout: online / offline / error, a second connect(),
// disconnect(), options (redis as a string, 3.1's auth URLs, driver, logger, logLevel, federate),
// bus.connection(), bus.promisify(), and the same event sequence as BusMQ 3.1 itself for a queue.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import Bus from '../lib/classic/index.js'
import { startRedis, useRedis } from './helpers/redis-server.js'
import { nextEvent, uniqueName } from './helpers/bus.js'
import { call, classicBus, record, track } from './helpers/classic.js'

const redis = useRedis(1)

test('connect() emits online; disconnect() emits offline; isOnline() follows', async () => {
  const bus = track(Bus.create({ redis: redis.servers[0].url }))
  const seen = record(bus, ['online', 'offline'])
  assert.equal(bus.isOnline(), false)
  bus.connect()
  await nextEvent(bus, 'online')
  assert.equal(bus.isOnline(), true)
  bus.disconnect()
  await nextEvent(bus, 'offline')
  assert.equal(bus.isOnline(), false)
  assert.deepEqual(seen, [['online'], ['offline']])
})

test('a second connect() emits error "already connected"; after disconnect() connect() works again', async () => {
  const bus = await classicBus(redis.servers)
  const error = nextEvent(bus, 'error')
  bus.connect()
  const [err] = await error
  assert.equal(err.code, 'ERR_BUSMQ_CLASSIC_USAGE')
  assert.equal(err.message, 'already connected')
  bus.disconnect()
  await nextEvent(bus, 'offline')
  const online = nextEvent(bus, 'online')
  bus.connect()
  await online
  const q = bus.queue(uniqueName('q'))
  q.attach()
  assert.equal(await call((cb) => q.push('after reconnecting', cb)), 1)
})

test('Redis going away: offline and error events; back: online again, and queues work', async () => {
  const server = await startRedis()
  try {
    const bus = await classicBus([server])
    const seen = record(bus, ['online', 'offline'])
    const errors: Error[] = []
    bus.on('error', (err) => errors.push(err))
    const offline = nextEvent(bus, 'offline')
    const errored = nextEvent(bus, 'error')
    await server.kill()
    await offline
    assert.equal(bus.isOnline(), false)
    // A reconnection attempt while it is away fails: 'error' (before it comes back, whenever that is).
    await errored
    const online = nextEvent(bus, 'online')
    await server.restart()
    await online
    assert.deepEqual(seen, [['offline'], ['online']])
    assert.ok(errors.length > 0, 'no error event while Redis was away')
    const q = bus.queue(uniqueName('q'))
    q.attach()
    assert.equal(await call((cb) => q.push('back', cb)), 1)
    bus.disconnect()
    await bus.closing
  } finally {
    await server.dispose()
  }
})

test('options: redis as one URL string, BusMQ 3.1\'s redis://pass@host auth, driver accepted and ignored', async () => {
  const server = await startRedis({ args: ['--requirepass', 'secret'] })
  try {
    const url = `redis://secret@127.0.0.1:${server.port}`
    const bus = await classicBus([{ url }], { driver: 'node-redis' })
    const q = bus.queue(uniqueName('q'))
    q.attach()
    assert.equal(await call((cb) => q.push('authenticated', cb)), 1)
    bus.disconnect()
    await bus.closing
  } finally {
    await server.dispose()
  }
})

test('options: bus.federate() over an open websocket throws ERR_BUSMQ_CLASSIC_UNSUPPORTED; a bad layout ERR_BUSMQ_INVALID_OPTION', () => {
  const bus = Bus.create({ redis: 'redis://127.0.0.1:1', federate: { urls: ['http://127.0.0.1:1'] } })
  assert.throws(() => bus.federate(bus.queue('q'), {}), { code: 'ERR_BUSMQ_CLASSIC_UNSUPPORTED' })
  assert.throws(() => Bus.create({ redis: 'redis://127.0.0.1:1', layout: 'ring' as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
})

test('logger and logLevel: lines go to the logger\'s methods at or above the level; withLog() and debug(true) change them', async () => {
  const lines: string[] = []
  const logger = {
    info: (m: string) => lines.push(`info ${m}`),
    warning: (m: string) => lines.push(`warning ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
    log: (m: string) => lines.push(`log ${m}`)
  }
  const quiet = await classicBus(redis.servers, { logger })
  assert.deepEqual(lines, [], 'an online shard is info: below the default level (error)')
  quiet.disconnect()
  await quiet.closing
  const chatty = await classicBus(redis.servers, { logger, logLevel: 'info' })
  assert.ok(lines.some((l) => /^info busmq: shard .* is online/.test(l)), lines.join('\n'))
  const other: string[] = []
  chatty.withLog({ log: (m: string) => other.push(m) }).debug(true)
  chatty.disconnect()
  await chatty.closing
  assert.ok(other.some((l) => /closed/.test(l)), other.join('\n'))
})

test('bus.connection(key, cb) hands the Redis client of the key\'s shard; bus.promisify(object, methods)', async () => {
  const bus = await classicBus(redis.servers)
  const client = await new Promise<any>((resolve) => bus.connection('some-key', resolve))
  assert.equal(await client.ping(), 'PONG')
  const first = bus.connection()
  assert.equal(await (first as any).ping(), 'PONG')
  const q = bus.promisify(bus.queue(uniqueName('q')), ['count'])
  assert.equal(await (q.count as unknown as () => Promise<number>)(), 0)
})

test('the same script emits the same events, with the same ids, on busmq/classic as on BusMQ 3.1 itself', async () => {
  // The script runs in a child process against BusMQ 3.1 (the devDependency busmq-original), then here.
  const script = fileURLToPath(new URL('../../test/fixtures/classic-script.cjs', import.meta.url))
  const name = uniqueName('q')
  const { stdout } = await promisify(execFile)(process.execPath, [script, 'busmq-original', redis.servers[0].url, `${name}-31`], { timeout: 30_000 })
  const original = JSON.parse(stdout)
  const ours = await new Promise<unknown>((resolve, reject) => {
    const { run } = createRequire(import.meta.url)(script) as { run: (bus: unknown, name: string, done: (events: unknown) => void) => void }
    const bus = track(Bus.create({ redis: redis.servers[0].url }))
    bus.on('error', reject)
    run(bus, name, resolve)
  })
  assert.deepEqual(ours, original)
})
