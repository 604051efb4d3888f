// Issue 7: Redis drops the bus's connections again and again (CLIENT KILL TYPE normal / pubsub, every
// 100-300 ms) during a 100k-message run. Reliable mode loses nothing; no stream ends or fails on its
// own; every write callback is called exactly once. Consume-once (at-most-once) may lose in-flight pops,
// but never delivers a stored message twice (a push re-sent after a kill may store it twice: todo test).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pipeline, Transform } from 'node:stream'
import type { Queue, QueueWriteStream, ReliableMessage, IdentifiedMessage } from '../lib/index.js'
import fs from 'node:fs'
import { Redis } from 'ioredis'
import { useRedis, ping, redisCommand, startRedis, type RedisServer } from './helpers/redis-server.js'
import { eventually, openBus, uniqueName } from './helpers/bus.js'
import { sleep } from './helpers/queue.js'

const redis = useRedis(1)

/**
 * Bytes `server` has received from the client at local port `clientPort` and not read yet (Linux:
 * /proc/net/tcp, the receive queue of the server's end of that connection).
 */
function unreadAt (serverPort: number, clientPort: number): number {
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0')
  const table = fs.readFileSync('/proc/net/tcp', 'utf8')
  for (const line of table.split('\n').slice(1)) {
    const [, local, remote, state, queues] = line.trim().split(/\s+/)
    // 01: ESTABLISHED. Both ends are 127.0.0.1, so the ports tell the connection.
    if (state === '01' && local?.endsWith(`:${hex(serverPort)}`) && remote?.endsWith(`:${hex(clientPort)}`)) {
      return parseInt(queues.split(':')[1], 16)
    }
  }
  return 0
}
const N = 100_000
/** Pauses between two kills, in ms: a fixed cycle over 100-300 ms, so runs are comparable. */
const PAUSES = [100, 250, 150, 300, 200]
/** The producer rests this long after every 100 writes, so the run lasts long enough for ~20+ kills. */
const PACE = 4

interface Killer {
  stop: () => Promise<void>
  /** Kills issued and connections they closed, by type. */
  stats: Record<'normal' | 'pubsub', { kills: number, closed: number }>
}

/**
 * Kills every normal connection (but its own: SKIPME yes) at each tick, and every pubsub connection
 * every other tick. The admin connection is a fresh one per command (redisCommand), never the bus's.
 */
function startKiller (server: RedisServer): Killer {
  const stats = { normal: { kills: 0, closed: 0 }, pubsub: { kills: 0, closed: 0 } }
  let running = true
  const loop = (async () => {
    for (let tick = 0; running; tick++) {
      await sleep(PAUSES[tick % PAUSES.length]) // the kill cycle
      if (!running) break
      const types: Array<'normal' | 'pubsub'> = tick % 2 === 0 ? ['normal', 'pubsub'] : ['normal']
      for (const type of types) {
        const closed = await redisCommand(server.port, ['CLIENT', 'KILL', 'TYPE', type, 'SKIPME', 'yes'])
        stats[type].kills++
        stats[type].closed += Number(closed)
      }
    }
  })()
  return {
    stats,
    stop: async () => {
      running = false
      await loop
    }
  }
}

/** Records every event of a stream that would mean it ended or failed on its own. */
function watchEvents (name: string, stream: NodeJS.EventEmitter, into: string[], events = ['error', 'end', 'close']): void {
  for (const ev of events) stream.on(ev, (e?: Error) => into.push(`${name} ${ev}${e instanceof Error ? `: ${e.message}` : ''}`))
}

/**
 * Writes 0..N-1 through `producer`, honouring backpressure, counting each write's callback; ends it
 * and resolves once 'finish' (or an error) came.
 */
async function produce (producer: QueueWriteStream, callbacks: Uint8Array, callbackErrors: Error[]): Promise<void> {
  const onCallback = (i: number) => (err?: Error | null): void => {
    callbacks[i]++
    if (err) callbackErrors.push(err)
  }
  for (let i = 0; i < N; i++) {
    if (i % 100 === 99) await sleep(PACE) // the pace that makes the run last through many kills
    if (!producer.write(i, onCallback(i))) {
      await new Promise<void>((resolve) => {
        const done = (): void => { producer.off('drain', done); producer.off('close', done); resolve() }
        producer.on('drain', done)
        producer.on('close', done)
      })
      if (producer.destroyed) return
    }
  }
  await new Promise<void>((resolve) => {
    producer.on('close', () => resolve())
    producer.end(() => resolve())
  })
}

test('reliable mode under repeated CLIENT KILL: nothing lost, no stream ends or fails, one callback per write', { timeout: 150_000 }, async (t) => {
  const server = redis.servers[0]
  const bus = await openBus([server])
  const busErrors: Error[] = []
  bus.on('error', (err: Error) => busErrors.push(err))
  const q: Queue = bus.queue(uniqueName('kill-reliable'), { objectMode: true })
  const events: string[] = []
  const seen = new Uint16Array(N)
  const firstId = new Float64Array(N)
  let storedTwice = 0
  let distinct = 0
  let redelivered = 0
  const producer = q.createWriteStream()
  watchEvents('producer', producer, events, ['error'])
  const reader = q.createReadStream({ mode: 'reliable', lease: 2000 })
  const recorder = new Transform({
    objectMode: true,
    transform (msg: ReliableMessage<number>, _enc, callback) {
      if (seen[msg.data]++ === 0) {
        distinct++
        firstId[msg.data] = msg.id
      } else if (firstId[msg.data] !== msg.id && firstId[msg.data] !== -1) {
        // The same value under another id: the producer's push was stored twice.
        storedTwice++
        firstId[msg.data] = -1
      }
      if (msg.redelivered) redelivered++
      callback(null, msg)
    }
  })
  const acker = q.createAckStream()
  watchEvents('reader', reader, events)
  watchEvents('acker', acker, events, ['error', 'finish'])
  let pipelineResult: string | undefined
  pipeline(reader, recorder, acker, (err) => { pipelineResult = err ? `${(err as any).code ?? ''} ${err.message}` : 'ended' })

  const killer = startKiller(server)
  const started = Date.now()
  const callbacks = new Uint8Array(N)
  const callbackErrors: Error[] = []
  // One-off pushes on another queue alongside: every promise settles, once.
  // A long TTL: on a loaded machine the run can outlast the default 30 s after the last side push.
  const side = bus.queue(uniqueName('kill-side'), { ttl: 600_000 })
  const SIDE = 2000
  const sideSettled = { resolved: 0, rejected: [] as string[] }
  const sidePushes = (async () => {
    for (let i = 0; i < SIDE; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => side.push(String(i + j)).then(
        () => { sideSettled.resolved++ }, (err: Error) => { sideSettled.rejected.push(err.message) })))
      await sleep(2) // a pace
    }
  })()
  try {
    await produce(producer, callbacks, callbackErrors)
    await sidePushes
    const produced = Date.now() - started
    assert.ok(await eventually(() => distinct === N || events.length > 0, 120_000),
      `only ${distinct} of ${N} distinct messages received (events: ${events.join('; ')})`)
    const received = Date.now() - started
    await killer.stop()
    // Orphaned leases (a reserve whose reply died with its connection) lapse and are delivered again;
    // once everything is acked nothing is left in flight or waiting.
    let stats = await q.stats()
    assert.ok(await eventually(async () => {
      stats = await q.stats()
      return stats.length === 0 && stats.inFlight === 0
    }, 30_000), `left behind: ${JSON.stringify(stats)}`)

    t.diagnostic(`reliable: produced in ${produced} ms, all received in ${received} ms; kills: ` +
      `${JSON.stringify(killer.stats)}; redelivered ${redelivered}, messages received more than once ` +
      `${seen.reduce((n, c) => n + (c > 1 ? 1 : 0), 0)} (${storedTwice} of them stored twice by a re-sent push); acked ${acker.acked}, stale acks ${acker.stale}; ` +
      `bus 'error' events ${busErrors.length}`)
    assert.ok(killer.stats.normal.closed >= 5, `the kills closed too few connections to prove anything: ${JSON.stringify(killer.stats)}`)
    assert.ok(killer.stats.pubsub.closed >= 2, `the kills closed too few subscribers to prove anything: ${JSON.stringify(killer.stats)}`)
    // Nothing lost.
    const missing: number[] = []
    for (let i = 0; i < N; i++) if (seen[i] === 0) missing.push(i)
    assert.deepEqual(missing.slice(0, 20), [], `${missing.length} message(s) never delivered`)
    // Every write's callback exactly once, and none failed.
    const wrong: string[] = []
    for (let i = 0; i < N && wrong.length < 20; i++) if (callbacks[i] !== 1) wrong.push(`${i}: ${callbacks[i]}`)
    assert.deepEqual(wrong, [], 'write callbacks not called exactly once')
    assert.deepEqual(callbackErrors.map((e) => e.message), [])
    assert.deepEqual(sideSettled, { resolved: SIDE, rejected: [] })
    const sideStored = await side.count()
    t.diagnostic(`one-off pushes: ${SIDE} resolved, ${sideStored} stored`)
    assert.ok(sideStored >= SIDE)
    // No stream ended or failed on its own.
    assert.deepEqual(events, [])
    assert.equal(pipelineResult, undefined)
  } finally {
    await killer.stop()
    await bus.close()
  }
})

test('consume-once under repeated CLIENT KILL: no duplicates, streams survive, one callback per write (losses reported)', { timeout: 150_000 }, async (t) => {
  const server = redis.servers[0]
  const bus = await openBus([server])
  bus.on('error', () => {})
  const q = bus.queue(uniqueName('kill-consume'), { objectMode: true })
  const events: string[] = []
  const ids = new Map<number, number[]>()
  let received = 0
  const producer = q.createWriteStream()
  watchEvents('producer', producer, events, ['error'])
  const reader = q.createReadStream({ withIds: true })
  watchEvents('reader', reader, events)
  reader.on('data', ({ id, data }: IdentifiedMessage<number>) => {
    received++
    const list = ids.get(data)
    if (list) list.push(id); else ids.set(data, [id])
  })

  const killer = startKiller(server)
  const started = Date.now()
  const callbacks = new Uint8Array(N)
  const callbackErrors: Error[] = []
  try {
    await produce(producer, callbacks, callbackErrors)
    const produced = Date.now() - started
    // Lost messages never come: wait until the queue is drained and the reader has been quiet a while.
    let last = -1
    assert.ok(await eventually(async () => {
      if (events.length > 0) return true
      const quiet = received === last
      last = received
      return quiet && (await q.count()) === 0
    }, 120_000), 'the queue was never drained')
    await killer.stop()
    // Nothing may come back to the queue once the kills stop (no event for that): look again later.
    await sleep(500)
    assert.equal(await q.count(), 0)

    const lost = N - ids.size
    let sameId = 0
    let differentIds = 0
    for (const list of ids.values()) {
      if (list.length === 1) continue
      if (new Set(list).size < list.length) sameId++
      else differentIds++
    }
    t.diagnostic(`consume-once: produced in ${produced} ms; kills: ${JSON.stringify(killer.stats)}; ` +
      `received ${received}, distinct ${ids.size}, lost ${lost} (${(100 * lost / N).toFixed(3)}%), ` +
      `duplicated: ${sameId} delivered twice with the same id, ${differentIds} pushed twice (different ids)`)
    assert.ok(killer.stats.normal.closed >= 5, `the kills closed too few connections to prove anything: ${JSON.stringify(killer.stats)}`)
    assert.equal(sameId, 0, 'a stored message was delivered twice')
    // Messages stored twice by a re-sent push (differentIds) are a producer-side bug, pinned down by the
    // todo test below; they are reported above, not asserted here.
    const wrong: string[] = []
    for (let i = 0; i < N && wrong.length < 20; i++) if (callbacks[i] !== 1) wrong.push(`${i}: ${callbacks[i]}`)
    assert.deepEqual(wrong, [], 'write callbacks not called exactly once')
    assert.deepEqual(callbackErrors.map((e) => e.message), [])
    assert.deepEqual(events, [])
  } finally {
    await killer.stop()
    await bus.close()
  }
})

test('a push whose connection is killed after Redis ran it, before the reply, is stored once', {
  timeout: 150_000
}, async (t) => {
  // Deterministic: the server sleeps (DEBUG SLEEP) while the push and then a CLIENT KILL of the bus's
  // connections queue up; when it wakes it runs both in one event-loop pass (the push first, so the
  // message is stored), and the kill drops the connection before the push's reply is written.
  const server = await startRedis({ args: ['--enable-debug-command', 'yes'] })
  const bus = await openBus([server])
  bus.on('error', () => {})
  const admin = new Redis({ host: server.host, port: server.port, lazyConnect: true })
  try {
    await admin.connect()
    const q = bus.queue(uniqueName('resent'))
    assert.equal(await q.count(), 0)
    const busPort = (bus.shardById(bus.shardIds[0])!.client as Redis).stream.localPort!
    const adminPort = admin.stream.localPort!
    // 5 s: time enough, on a loaded machine, to see it asleep and to queue the push and the kill.
    const sleeping = redisCommand(server.port, ['DEBUG', 'SLEEP', '5'], { timeoutMs: 15_000 })
    // Asleep: it no longer answers (awake, it answers a PING at once).
    await eventually(async () => !(await ping(server.port, 500)), 5000, 'the server to sleep')
    const pushed = q.push('once')
    await eventually(() => unreadAt(server.port, busPort) > 0, 3000, 'the push to reach the sleeping server')
    const killed = admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    await eventually(() => unreadAt(server.port, adminPort) > 0, 3000, 'the kill to reach the sleeping server')
    await sleeping
    t.diagnostic(`connections killed: ${String(await killed)}; push resolved with id ${await pushed}`)
    assert.ok(Number(await killed) >= 1, 'the kill closed no connection: the push was not cut off')
    const stored = await q.count()
    t.diagnostic(`copies stored of one push: ${stored}`)
    assert.equal(stored, 1, 'the push was run twice: once before the kill, once re-sent after the reconnection')
  } finally {
    admin.disconnect()
    await bus.close()
    await server.dispose()
  }
})
