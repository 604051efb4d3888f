// Issue 7: a shard that comes back without its data (no persistence, restarted empty) must be reported
// ('dataloss' with ERR_BUSMQ_SHARD_DATA_LOST, and 'error' for those who listen), not silently used as if
// nothing happened; a shard that comes back with its data (appendonly) must not be reported.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ShardDataLossError, type Bus, type Queue } from '../lib/index.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { eventually, openBus, uniqueName } from './helpers/bus.js'
import { sleep } from './helpers/queue.js'

const LOST = 'ERR_BUSMQ_SHARD_DATA_LOST'

/** Resolves on the first `event` whose first argument satisfies `match`; an 'error' does not reject it. */
function waitEvent (emitter: NodeJS.EventEmitter, event: string, match: (...args: any[]) => boolean = () => true): Promise<any[]> {
  return new Promise((resolve) => {
    const listener = (...args: any[]): void => {
      if (!match(...args)) return
      emitter.off(event, listener)
      resolve(args)
    }
    emitter.on(event, listener)
  })
}

/**
 * Two round trips on the bus's connection, one after the other. The data-loss check runs as the first
 * command after a reconnection; its reply arrived before the first of these replies, so by the time the
 * second reply arrives (another I/O event) whatever the check does with its answer has been done.
 */
async function checksDone (q: Queue): Promise<void> {
  await q.count()
  await q.count()
}

interface Recorder {
  dataloss: Array<{ shardId: string, err: any, at: number }>
  errors: any[]
  online: number[]
}

function record (bus: Bus, withErrorListener: boolean): Recorder {
  const r: Recorder = { dataloss: [], errors: [], online: [] }
  bus.on('dataloss', (shardId: string, err: any) => r.dataloss.push({ shardId, err, at: Date.now() }))
  bus.on('online', () => r.online.push(Date.now()))
  if (withErrorListener) bus.on('error', (err: any) => r.errors.push(err))
  return r
}

/** SIGKILL and start again on the same port and dir; resolves once the bus has reconnected. */
async function bounce (server: RedisServer, bus: Bus): Promise<void> {
  const offline = waitEvent(bus, 'offline')
  await server.kill()
  await offline
  const online = waitEvent(bus, 'online')
  await server.restart()
  await online
}

test('a shard without persistence restarted empty is reported as data loss', { timeout: 60_000 }, async (t) => {
  const server = await startRedis({ appendonly: false })
  // Two buses: one listens to 'error' (it gets the error there too), one does not (it must not crash).
  const bus = await openBus([server])
  const quiet = await openBus([server])
  const rec = record(bus, true)
  const recQuiet = record(quiet, false)
  try {
    const shardId = bus.shardIds[0]
    const q = bus.queue(uniqueName('lost'), { objectMode: true })
    for (let i = 0; i < 5; i++) await q.push(i)
    const got: number[] = []
    const reader = bus.queue(uniqueName('reader'), { objectMode: true }).createReadStream()
    const readerEvents: string[] = []
    reader.on('data', (m: number) => got.push(m))
    for (const ev of ['end', 'error', 'close']) reader.on(ev, () => readerEvents.push(ev))
    await reader.queue.push(1)
    assert.ok(await eventually(() => got.length === 1))

    await bounce(server, bus)
    assert.ok(await eventually(() => rec.dataloss.length === 1 && recQuiet.dataloss.length === 1, 10_000),
      `no 'dataloss' after the shard came back empty (got ${rec.dataloss.length} and ${recQuiet.dataloss.length})`)
    t.diagnostic(`'dataloss' came ${rec.dataloss[0].at - rec.online[rec.online.length - 1]} ms after 'online'`)
    for (const { shardId: id, err } of [rec.dataloss[0], recQuiet.dataloss[0]]) {
      assert.equal(id, shardId)
      assert.ok(err instanceof ShardDataLossError)
      assert.equal(err.code, LOST)
      assert.match(err.message, new RegExp(shardId.replace(/[.]/g, '\\.')))
    }
    // The same error on 'error', for those who listen there.
    assert.ok(rec.errors.includes(rec.dataloss[0].err), "'error' did not carry the data-loss error")
    // It was a real loss: the messages are gone.
    assert.equal(await q.count(), 0)

    // The bus is usable again: pushes, pops, and the reader that was waiting carries on.
    await q.push(42)
    assert.equal(await q.count(), 1)
    await reader.queue.push(2)
    assert.ok(await eventually(() => got.length === 2, 10_000), 'the reader did not carry on after the data loss')
    assert.deepEqual(readerEvents, [])

    // A second loss is reported again (the marker is set afresh after each one).
    await bounce(server, bus)
    assert.ok(await eventually(() => rec.dataloss.length === 2, 10_000), 'the second loss was not reported')
    assert.equal(rec.dataloss[1].err.code, LOST)
    // Each loss is reported once: nothing more by the time the check's answers have been acted on.
    await checksDone(q)
    assert.equal(rec.dataloss.length, 2)
    assert.equal(rec.errors.filter((e) => e?.code === LOST).length, 2)
  } finally {
    await Promise.all([bus.close(), quiet.close()])
    await server.dispose()
  }
})

test('a shard with appendonly that restarts with its data is not reported as data loss', { timeout: 60_000 }, async (t) => {
  const server = await startRedis({ appendonly: true })
  const bus = await openBus([server])
  const rec = record(bus, true)
  try {
    const q = bus.queue(uniqueName('kept'), { objectMode: true })
    for (let i = 0; i < 5; i++) await q.push(i)

    for (let round = 0; round < 2; round++) {
      await bounce(server, bus)
      // The marker check runs as the first command after 'ready'; round trips after it have its answer.
      assert.equal(await q.count(), 5)
      await checksDone(q)
    }
    // A pause is not a reconnection, and not a loss either.
    server.pause()
    await sleep(500) // the length of the pause
    server.resume()
    assert.equal(await q.count(), 5)
    await checksDone(q)
    assert.deepEqual(rec.dataloss.map((d) => d.err.message), [])
    assert.equal(rec.errors.filter((e) => e?.code === LOST).length, 0)
    assert.equal(rec.online.length, 2)

    // The same bus does notice when the data is wiped behind its back (FLUSHALL, then a reconnection),
    // so the silence above was a real check, not a missing one.
    await server.cli('FLUSHALL')
    const online = waitEvent(bus, 'online')
    await server.cli('CLIENT', 'KILL', 'TYPE', 'normal')
    await online
    assert.ok(await eventually(() => rec.dataloss.length === 1, 10_000), 'a wiped shard was not reported')
    assert.equal(rec.dataloss[0].err.code, LOST)
    t.diagnostic('appendonly restarts: no dataloss; FLUSHALL + reconnect: dataloss reported')
  } finally {
    server.resume()
    await bus.close()
    await server.dispose()
  }
})
