// Reliable mode across processes that die: consumers are SIGKILLed (no cleanup runs) and what they held
// must come back, to the others, after their leases lapse.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Bus, Queue, ReliableMessage } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { openBus, uniqueName, collect, eventually } from './helpers/bus.js'
import { range, sleep, writeAll } from './helpers/queue.js'

const redis = useRedis(1)

const LEASE = 1000
const POLL_INTERVAL = 1000 // the bus default, used by every fixture
/** The documented bound for redelivery after a kill, plus slack for a loaded machine. */
const REDELIVERY_BOUND = LEASE + POLL_INTERVAL + 2000

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-reliable-crash-'))
const children = new Set<ChildProcess>()
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  fs.rmSync(tmp, { recursive: true, force: true })
})

/** Deterministic per seed; the seed is printed, and RELIABLE_SEED replays a run. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Fixture {
  child: ChildProcess
  lines: string[]
  exited: Promise<[number | null, NodeJS.Signals | null]>
  /** Resolves with the first line (seen so far or to come) that satisfies `match`, or null after `ms`. */
  waitLine: (match: (line: string) => boolean, ms?: number) => Promise<string | null>
  kill: () => Promise<void>
}

function run (fixture: string, args: Array<string | number>): Fixture {
  const file = fileURLToPath(new URL(`./fixtures/${fixture}.js`, import.meta.url))
  const child = spawn(process.execPath, [file, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  const lines: string[] = []
  const listeners = new Set<() => void>()
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    for (const l of listeners) l()
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  exited.then(() => { children.delete(child) }, () => {})
  const waitLine = (match: (line: string) => boolean, ms = 30_000): Promise<string | null> =>
    new Promise((resolve) => {
      const check = (): void => {
        const found = lines.find(match)
        if (found === undefined) return
        finish(found)
      }
      const finish = (v: string | null): void => {
        clearTimeout(timer)
        listeners.delete(check)
        resolve(v)
      }
      const timer = setTimeout(() => finish(null), ms)
      listeners.add(check)
      exited.then(() => finish(lines.find(match) ?? null), () => {})
      check()
    })
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  }
  return { child, lines, exited, waitLine, kill }
}

function jsonLines<T> (lines: string[], has: string): T[] {
  return lines.filter((l) => l.includes(`"${has}"`)).map((l) => JSON.parse(l) as T)
}

async function fill (q: Queue, n: number): Promise<void> {
  await writeAll(q.createWriteStream({ highWaterMark: 4096 }), range(0, n).map((i) => ({ i })))
}

async function withBus (fn: (bus: Bus) => Promise<void>): Promise<void> {
  const bus = await openBus(redis.servers)
  try {
    await fn(bus)
  } finally {
    await bus.close()
  }
}

test('100,000 messages, the consumer SIGKILLed 10 times: nothing lost, duplicates flagged and bounded', async (t) => {
  await withBus(async (bus) => {
    const n = 100_000
    const prefetch = 100
    const kills = 10
    const seed = Number(process.env.RELIABLE_SEED ?? Date.now() % 1_000_000)
    const random = prng(seed)
    const name = uniqueName('rel-crash')
    const q = bus.queue(name, { objectMode: true })
    const records = path.join(tmp, `${name}.jsonl`)
    const started = Date.now()
    await fill(q, n)
    const heldAtKill: number[] = []
    for (let k = 0; k < kills; k++) {
      // Slowed down (1 ms pause every 10 messages) so that the kills land while there is work left.
      const c = run('reliable-consumer', [redis.servers[0].url, name, records, 'run', prefetch, LEASE, 10])
      const receiving = await c.waitLine((l) => l === 'receiving', 10_000)
      assert.ok(receiving, `consumer ${k + 1} received nothing`)
      await sleep(200 + Math.floor(random() * 1300)) // a random moment to kill it
      await c.kill()
      assert.equal(c.child.signalCode, 'SIGKILL', `consumer ${k + 1} exited by itself: ${c.lines.join(' | ')}`)
      heldAtKill.push((await q.stats()).inFlight)
    }
    const killed = Date.now()
    // Drain: readers that stop when the queue is empty, until nothing is left in flight either (what
    // the last consumers held comes back once their leases lapse).
    let drains = 0
    for (;;) {
      const c = run('reliable-consumer', [redis.servers[0].url, name, records, 'drain', prefetch, LEASE, 0])
      const [code] = await c.exited
      assert.equal(code, 0, `drain consumer failed: ${c.lines.join(' | ')}`)
      drains++
      const stats = await q.stats()
      if (stats.length === 0 && stats.inFlight === 0) break
      assert.ok(Date.now() - killed < 60_000, `not drained: ${JSON.stringify(stats)}`)
      await sleep(200) // between two drain runs
    }
    const drained = Date.now()

    const perI = new Map<number, Array<{ deliveries: number, redelivered: boolean }>>()
    let total = 0
    for (const line of fs.readFileSync(records, 'utf8').split('\n')) {
      if (line === '') continue
      const r = JSON.parse(line) as { i: number, deliveries: number, redelivered: boolean }
      total++
      let list = perI.get(r.i)
      if (!list) perI.set(r.i, list = [])
      list.push(r)
    }
    const lost = range(0, n).filter((i) => !perI.has(i))
    assert.deepEqual(lost.slice(0, 20), [], `${lost.length} message(s) lost`)
    assert.equal(perI.size, n)
    const duplicates = total - n
    let recordedTwice = 0
    for (const [i, list] of perI) {
      assert.equal(list[0].redelivered, list[0].deliveries > 1)
      if (list.length === 1) continue
      recordedTwice++
      for (let j = 1; j < list.length; j++) {
        assert.ok(list[j].deliveries > list[j - 1].deliveries && list[j].redelivered,
          `message ${i} recorded again without a higher delivery count: ${JSON.stringify(list)}`)
      }
    }
    assert.ok(duplicates <= kills * prefetch, `${duplicates} duplicates, more than ${kills} kills × prefetch ${prefetch}`)
    assert.ok(heldAtKill.some((h) => h > 0), 'no kill caught a consumer holding messages: the test proved nothing')
    assert.deepEqual(await collect(q.deadLetter().createReadStream({ untilEmpty: true })), [])
    const stats = await q.stats()
    assert.equal(stats.pushed, n)
    assert.equal(stats.consumed, n)
    t.diagnostic(`seed ${seed}; in flight right after each kill: ${heldAtKill.join(', ')}`)
    t.diagnostic(`${total} records for ${n} messages: ${duplicates} duplicate(s) over ${recordedTwice} message(s) (bound ${kills * prefetch}); ` +
      `${drains} drain run(s); kills done after ${((killed - started) / 1000).toFixed(1)} s, drained after ${((drained - started) / 1000).toFixed(1)} s`)
  })
})

test('a consumer SIGKILLed while holding messages: another process gets exactly those, within lease + pollInterval', async (t) => {
  await withBus(async (bus) => {
    const name = uniqueName('rel-takeover')
    const q = bus.queue(name, { objectMode: true })
    await fill(q, 20)
    const url = redis.servers[0].url
    const holder = run('reliable-holder', [url, name, 'hold', 20, LEASE])
    assert.ok(await holder.waitLine(() => jsonLines(holder.lines, 'id').length === 20))
    const held = jsonLines<{ id: number, deliveries: number }>(holder.lines, 'id')
    assert.deepEqual(held.map((m) => m.deliveries), held.map(() => 1))
    let stats = await q.stats()
    assert.equal(stats.inFlight, 20)
    assert.equal(stats.length, 0)
    const taker = run('reliable-holder', [url, name, 'ack', 20, LEASE])
    assert.ok(await taker.waitLine((l) => l.includes('"ready"')))
    // Longer than a lease: the live holder keeps renewing, so the taker gets nothing.
    await sleep(1.5 * LEASE)
    assert.deepEqual(jsonLines(taker.lines, 'id'), [])
    const killedAt = Date.now()
    await holder.kill()
    assert.ok(await taker.waitLine(() => jsonLines(taker.lines, 'acked').length === 20, 20_000), 'the dead consumer\'s messages never came back')
    const got = jsonLines<{ id: number, deliveries: number, redelivered: boolean, at: number }>(taker.lines, 'id')
    assert.deepEqual(got.map((m) => m.id), held.map((m) => m.id))
    assert.ok(got.every((m) => m.deliveries === 2 && m.redelivered))
    assert.ok(jsonLines<{ ok: boolean }>(taker.lines, 'acked').every((a) => a.ok))
    const first = Math.min(...got.map((m) => m.at)) - killedAt
    const last = Math.max(...got.map((m) => m.at)) - killedAt
    t.diagnostic(`redelivered after the kill in ${first} ms (first) / ${last} ms (last); lease ${LEASE} ms, pollInterval ${POLL_INTERVAL} ms`)
    assert.ok(last <= REDELIVERY_BOUND, `redelivery took ${last} ms, over lease + pollInterval + 2 s`)
    stats = await q.stats()
    assert.equal(stats.inFlight, 0)
    assert.equal(stats.length, 0)
    await taker.kill()
  })
})

test('a consumer killed mid-pipeline: exactly what it had not acked is redelivered', async (t) => {
  await withBus(async (bus) => {
    const name = uniqueName('rel-midpipe')
    const q = bus.queue(name, { objectMode: true })
    const n = 200
    const prefetch = 10
    await fill(q, n)
    const ids = new Map<number, number>() // id -> i
    const log = path.join(tmp, `${name}.log`)
    const c = run('reliable-pipeline', [redis.servers[0].url, name, log, prefetch, LEASE, 10])
    const acked = (): string[] => fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.startsWith('acked ')) : []
    assert.ok(await eventually(() => acked().length >= 40, 30_000), 'the child did not get going')
    const stats = await q.stats()
    assert.ok(stats.inFlight <= prefetch, `in flight ${stats.inFlight} > prefetch ${prefetch}`)
    await c.kill()
    const sets: Record<string, Set<number>> = { got: new Set(), acking: new Set(), acked: new Set(), stale: new Set() }
    for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
      if (line === '') continue
      const [what, id] = line.split(' ')
      sets[what].add(Number(id))
    }
    assert.equal(sets.stale.size, 0)

    // Drain in this process until nothing is queued or in flight.
    const received = new Map<number, { deliveries: number, redelivered: boolean }>()
    const deadline = Date.now() + 30_000
    for (;;) {
      const r = q.createReadStream({ mode: 'reliable', lease: LEASE, untilEmpty: true })
      for await (const m of r as AsyncIterable<ReliableMessage<{ i: number }>>) {
        assert.equal(received.has(m.id), false, `message ${m.id} received twice by the drain`)
        received.set(m.id, { deliveries: m.deliveries, redelivered: m.redelivered })
        ids.set(m.id, m.data.i)
        assert.equal(await m.ack(), true)
      }
      const s = await q.stats()
      if (s.length === 0 && s.inFlight === 0) break
      assert.ok(Date.now() < deadline, `not drained: ${JSON.stringify(s)}`)
      await sleep(100) // between two drain runs (leases lapse meanwhile)
    }
    const all = range(1, n + 1)
    const ackedIds = sets.acked
    const inDoubt = [...sets.acking].filter((id) => !ackedIds.has(id))
    // Nothing acked comes back; everything never acked does; only an ack cut short by the kill may go
    // either way.
    assert.deepEqual([...received.keys()].filter((id) => ackedIds.has(id)), [])
    const expected = all.filter((id) => !sets.acking.has(id))
    assert.deepEqual(expected.filter((id) => !received.has(id)), [])
    assert.deepEqual([...received.keys()].filter((id) => !all.includes(id)), [])
    assert.ok(inDoubt.length <= 1, `acks in doubt: ${inDoubt.join(', ')}`)
    // What the child took is flagged: the child reserved ids 1..K in order (one consumer), so the
    // redelivered ones are exactly the received ids up to some K, the others are first deliveries.
    const redelivered = [...received].filter(([, m]) => m.deliveries > 1).map(([id]) => id).sort((a, b) => a - b)
    const k = redelivered.length > 0 ? redelivered[redelivered.length - 1] : 0
    for (const [id, m] of received) {
      assert.equal(m.redelivered, m.deliveries > 1)
      assert.equal(m.deliveries, id <= k ? 2 : 1, `message ${id}: deliveries ${m.deliveries}, k ${k}`)
    }
    // Everything the child's transform saw and did not ack is among the redelivered.
    for (const id of sets.got) if (!sets.acking.has(id)) assert.ok(id <= k && received.has(id))
    assert.ok(redelivered.length <= prefetch, `${redelivered.length} held by the child, prefetch ${prefetch}`)
    assert.ok(redelivered.length > 0)
    assert.deepEqual([...ids.values()].sort((a, b) => a - b), [...received.keys()].sort((a, b) => a - b).map((id) => id - 1))
    t.diagnostic(`child acked ${ackedIds.size}, ack in doubt ${inDoubt.length}, redelivered ${redelivered.length}, ` +
      `first deliveries ${received.size - redelivered.length}`)
  })
})

test('a message whose consumers keep dying goes to the dead-letter queue after maxDeliveries, with its history', async () => {
  await withBus(async (bus) => {
    const name = uniqueName('rel-crash-poison')
    const q = bus.queue(name, { objectMode: true })
    const poison = await q.push({ i: -1 })
    const url = redis.servers[0].url
    const maxDeliveries = 3
    const consumers: string[] = []
    for (let k = 1; k <= maxDeliveries; k++) {
      const c = run('reliable-holder', [url, name, 'hold', 1, LEASE, maxDeliveries])
      const line = await c.waitLine((l) => l.includes('"id"'), 10_000)
      assert.ok(line, `delivery ${k} never came`)
      const m = JSON.parse(line) as { id: number, deliveries: number }
      assert.equal(m.id, poison)
      assert.equal(m.deliveries, k)
      consumers.push((JSON.parse((await c.waitLine((l) => l.includes('"ready"')))!) as { consumer: string }).consumer)
      await c.kill()
    }
    // The next consumer's reserve finds the lease lapsed after the last delivery: dead-lettered.
    const last = run('reliable-holder', [url, name, 'hold', 1, LEASE, maxDeliveries])
    // The bound runs from the consumer's start (a loaded machine may take seconds to start a process).
    assert.ok(await last.waitLine((l) => l.includes('"ready"'), 30_000), 'the last consumer never started')
    const dl = q.deadLetter()
    assert.ok(await eventually(async () => (await dl.count()) === 1, REDELIVERY_BOUND))
    assert.deepEqual(jsonLines(last.lines, 'id'), [])
    await last.kill()
    const dead = await collect<{ id: number, data: unknown }>(dl.createReadStream({ withIds: true, untilEmpty: true }))
    assert.equal(dead.length, 1)
    assert.deepEqual(dead[0].data, { i: -1 })
    const history = await dl.history(dead[0].id)
    assert.ok(history)
    assert.equal(history.id, poison)
    assert.equal(history.reason, 'max-deliveries')
    assert.deepEqual(history.deliveries.map((d) => d.consumer), consumers)
    const stats = await q.stats()
    assert.equal(stats.inFlight, 0)
    assert.equal(stats.length, 0)
  })
})

test('what a killed consumer held comes back at the head of the queue, in id order, ahead of newer messages', async () => {
  await withBus(async (bus) => {
    const name = uniqueName('rel-crash-order')
    const q = bus.queue(name, { objectMode: true })
    await fill(q, 10)
    const holder = run('reliable-holder', [redis.servers[0].url, name, 'hold', 5, LEASE])
    assert.ok(await holder.waitLine(() => jsonLines(holder.lines, 'id').length === 5))
    await holder.kill()
    let stats = await q.stats()
    assert.equal(stats.inFlight, 5)
    assert.equal(stats.length, 5)
    // Nobody reserves meanwhile: the lapsed leases are found by the next reserve call.
    await sleep(LEASE + 200)
    const got: Array<[number, number]> = []
    for await (const m of q.createReadStream({ mode: 'reliable', lease: LEASE, untilEmpty: true }) as AsyncIterable<ReliableMessage<{ i: number }>>) {
      got.push([m.data.i, m.deliveries])
      assert.equal(await m.ack(), true)
    }
    assert.deepEqual(got, range(0, 10).map((i) => [i, i < 5 ? 2 : 1]))
    stats = await q.stats()
    assert.equal(stats.inFlight, 0)
    assert.equal(stats.length, 0)
  })
})
