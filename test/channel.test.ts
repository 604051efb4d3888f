// Channels in one process: two buses on one redis-server stand for two peers.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { Bus, Channel, Codec } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { eventually, nextEvent, openBus, uniqueName } from './helpers/bus.js'
import { range } from './helpers/queue.js'

const redis = useRedis(1)

/** Two buses (two peers) on the test server, closed after the test. */
async function twoBuses (t: TestContext): Promise<[Bus, Bus]> {
  const a = await openBus(redis.servers)
  const b = await openBus(redis.servers)
  t.after(() => Promise.all([a.close(), b.close()]))
  return [a, b]
}

/** Everything the channel's readable emits until 'end' (rejects on 'error'); the writable side stays open. */
function readAll<T = Buffer> (ch: Channel): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = []
    ch.on('data', (x: T) => out.push(x))
    ch.once('end', () => resolve(out))
    ch.once('error', reject)
  })
}

/** Writes one chunk; resolves once Redis accepted it (the write callback). */
function write (ch: Channel, chunk: unknown): Promise<void> {
  return new Promise((resolve, reject) => ch.write(chunk, (err) => err ? reject(err) : resolve()))
}

/** Writes every item (waiting for 'drain' when asked), then ends and waits for 'finish'. */
async function writeAll (ch: Channel, items: Iterable<unknown>, end = true): Promise<void> {
  for (const item of items) {
    if (!ch.write(item)) await once(ch, 'drain')
  }
  if (!end) return
  ch.end()
  if (!ch.writableFinished) await once(ch, 'finish')
}

/** Resolves when the channel has closed. */
function closed (ch: Channel): Promise<void> {
  return ch.closed ? Promise.resolve() : new Promise((resolve) => ch.once('close', () => resolve()))
}

/** Deterministic PRNG (mulberry32). */
function prng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomBuffer (rand: () => number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size)
  for (let i = 0; i < size; i++) buf[i] = Math.floor(rand() * 256)
  return buf
}

const sha256 = (bufs: Buffer[]): string => {
  const h = createHash('sha256')
  for (const b of bufs) h.update(b)
  return h.digest('hex')
}

function assertSameChunks (got: Buffer[], sent: Buffer[], what: string): void {
  assert.equal(got.length, sent.length, `${what}: one chunk per message written`)
  for (let i = 0; i < sent.length; i++) {
    assert.ok(Buffer.isBuffer(got[i]), `${what}: chunk ${i} is a Buffer`)
    assert.equal(got[i].length, sent[i].length, `${what}: chunk ${i} has ${sent[i].length} bytes`)
    assert.ok(got[i].equals(sent[i]), `${what}: chunk ${i} is byte-exact`)
  }
  assert.equal(sha256(got), sha256(sent))
}

for (const first of ['plain', 'listen'] as const) {
  test(`either peer may start first: the ${first} peer writes before the other exists`, { timeout: 30_000 }, async (t) => {
    const [a, b] = await twoBuses(t)
    const name = uniqueName('ch')
    const early = b.channel(name, { listen: first === 'listen' })
    const earlyGot = readAll(early)
    await once(early, 'connect')
    await write(early, 'one')
    await write(early, Buffer.from([0, 1, 2, 255]))
    assert.equal(early.remoteConnected, false)
    // The messages wait in the other peer's queue: a plain peer writes to `<name>:remote`, a listener
    // to `<name>:local`.
    assert.equal(await b.queue(`${name}:${first === 'listen' ? 'local' : 'remote'}`).count(), 2)

    const seen = nextEvent(early, 'remote:connect')
    const late = a.channel(name, { listen: first !== 'listen' })
    const lateGot = readAll(late)
    await seen
    assert.equal(early.remoteConnected, true)
    early.end()
    assert.deepEqual(await lateGot, [Buffer.from('one'), Buffer.from([0, 1, 2, 255])])
    // The late peer answers; the early one reads it, and both close with no error.
    await writeAll(late, ['late reply'])
    assert.deepEqual((await earlyGot).map(String), ['late reply'])
    await Promise.all([closed(early), closed(late)])
    assert.equal(early.errored, null)
    assert.equal(late.errored, null)
  })
}

test('byte mode: random binary in both directions arrives byte-exact, one Buffer per message written', { timeout: 60_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const rand = prng(20240611)
  const allBytes = Buffer.from(range(0, 256))
  const make = (n: number): Buffer[] => [
    allBytes,
    Buffer.from('\r\n$-1\r\n*2\r\n'),
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
    randomBuffer(rand, 1),
    randomBuffer(rand, 65_536),
    randomBuffer(rand, 1024 * 1024),
    ...range(0, n).map(() => randomBuffer(rand, 1 + Math.floor(rand() * 100_000)))
  ]
  const fromA = make(150)
  const fromB = make(120)
  const A = a.channel(name)
  const B = b.channel(name, { listen: true })
  const gotByB = readAll(B)
  const gotByA = readAll(A)
  await Promise.all([writeAll(A, fromA), writeAll(B, fromB)])
  assertSameChunks(await gotByB, fromA, 'A to B')
  assertSameChunks(await gotByA, fromB, 'B to A')
  await Promise.all([closed(A), closed(B)])
})

test('byte mode: strings are sent as their UTF-8 bytes', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name)
  const B = b.channel(name, { listen: true })
  const got = readAll(B)
  const back = readAll(A)
  A.write('héllo wörld ✓ 🚀')
  A.write('aGk=', 'base64')
  await writeAll(A, [new Uint8Array([7, 8, 9])])
  assert.deepEqual(await got, [Buffer.from('héllo wörld ✓ 🚀'), Buffer.from('hi'), Buffer.from([7, 8, 9])])
  B.end()
  assert.deepEqual(await back, [])
  await Promise.all([closed(A), closed(B)])
})

test('objectMode: JSON values round-trip in both directions, in order', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const values: unknown[] = [
    0, -1.5, 1e300, Number.MAX_SAFE_INTEGER, 'text', 'ünïcødé ✓ 🚀 \u0000 \r\n', true, false, '', [], {},
    [null], { v: null }, { a: 1, b: [1, 2, { c: 'x', d: [[], {}] }], e: { f: { g: { h: true } } } },
    'x'.repeat(200_000), ...range(0, 500).map((i) => ({ i, s: `msg-${i}` }))
  ]
  const A = a.channel(name, { objectMode: true })
  const B = b.channel(name, { listen: true, objectMode: true })
  const gotByB = readAll<unknown>(B)
  const gotByA = readAll<unknown>(A)
  await Promise.all([writeAll(A, values), writeAll(B, [...values].reverse())])
  assert.deepEqual(await gotByB, values)
  assert.deepEqual(await gotByA, [...values].reverse())
  await Promise.all([closed(A), closed(B)])
})

test('objectMode with a custom codec on both peers', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  // Dates survive this codec (JSON would turn them into strings).
  const codec: Codec = {
    encode: (v: { at: Date, n: number }) => `${v.at.getTime()},${v.n}`,
    decode: (buf: Buffer) => {
      const [at, n] = String(buf).split(',').map(Number)
      return { at: new Date(at), n }
    }
  }
  const A = a.channel(name, { objectMode: true, codec })
  const B = b.channel(name, { listen: true, objectMode: true, codec })
  const got = readAll<{ at: Date, n: number }>(B)
  const back = readAll(A)
  const sent = range(0, 20).map((n) => ({ at: new Date(1_700_000_000_000 + n), n }))
  await writeAll(A, sent)
  assert.deepEqual(await got, sent)
  assert.ok((await got)[0].at instanceof Date)
  B.end()
  assert.deepEqual(await back, [])
  await Promise.all([closed(A), closed(B)])
})

for (const ender of ['plain', 'listen'] as const) {
  test(`half-close: the ${ender} peer ends, the other reads to 'end', then answers and ends`, { timeout: 30_000 }, async (t) => {
    const [a, b] = await twoBuses(t)
    const name = uniqueName('ch')
    const first = a.channel(name, { listen: ender === 'listen' })
    const second = b.channel(name, { listen: ender !== 'listen' })
    const secondGot = readAll(second)
    const firstGot = readAll(first)
    let firstEnded = false
    first.once('end', () => { firstEnded = true })
    const firstSeen: string[] = []
    first.on('data', (c) => firstSeen.push(String(c)))

    await writeAll(first, ['q1', 'q2', 'q3'])
    assert.deepEqual((await secondGot).map(String), ['q1', 'q2', 'q3'])
    // Half-open, as with TCP: the ender's readable is still open and the other side can still write.
    assert.equal(first.writableFinished, true)
    assert.equal(first.destroyed, false)
    assert.equal(second.destroyed, false)
    assert.equal(second.writable, true)
    assert.equal(firstEnded, false, 'the ender must not see end before the other peer ends')

    // The ender's readable still delivers what the other peer writes after the end: it did not end.
    await write(second, 'r1')
    await write(second, 'r2')
    await eventually(() => firstSeen.length === 2 || firstEnded, 10_000, 'r1 and r2 at the ender')
    assert.equal(firstEnded, false, 'the ender must not see end before the other peer ends')
    second.end()
    assert.deepEqual((await firstGot).map(String), ['r1', 'r2'])
    await Promise.all([closed(first), closed(second)])
    assert.equal(first.errored, null)
    assert.equal(second.errored, null)
  })
}

test('destroy(): the peer reads what was written before, then fails with ERR_BUSMQ_PEER_DESTROYED', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name, { objectMode: true })
  const B = b.channel(name, { listen: true, objectMode: true })
  const events: unknown[] = []
  B.on('data', (x) => events.push(x))
  const failed = new Promise<any>((resolve) => B.once('error', (err) => {
    events.push('error')
    resolve(err)
  }))
  await once(A, 'connect')
  // 2000 messages: more than one fetch of the peer's reader (highWaterMark 256).
  const sent = range(0, 2000)
  await writeAll(A, sent, false)
  await write(A, 'last')
  A.destroy()
  const err = await failed
  assert.equal(err.code, 'ERR_BUSMQ_PEER_DESTROYED')
  assert.deepEqual(events, [...sent, 'last', 'error'])
  await Promise.all([closed(A), closed(B)])
  assert.equal(B.destroyed, true)
  assert.equal(A.errored, null, 'the side that destroyed its channel has no error')
})

// The reader prefetches while the peer's consumer is not reading yet: the abort must not overtake
// what it buffered.
test('destroy(): a peer that starts reading later still gets the data written before the destroy', {
  timeout: 30_000
}, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name)
  const B = b.channel(name, { listen: true })
  let err: any
  B.on('error', (e) => { err = e })
  await Promise.all([once(A, 'connect'), once(B, 'connect')])
  await write(A, 'x1')
  await write(A, 'x2')
  A.destroy()
  await closed(A)
  // B's reader has taken everything from its queue, the abort marker included.
  await eventually(async () => (await b.queue(`${name}:remote`).count()) === 0, 10_000, 'B to take x1, x2 and the abort')
  // Only now does B's user start reading.
  const got: string[] = []
  B.on('data', (c) => got.push(String(c)))
  await closed(B)
  assert.equal(err?.code, 'ERR_BUSMQ_PEER_DESTROYED')
  const left = await b.queue(`${name}:remote`).count()
  assert.deepEqual(got, ['x1', 'x2'], `B's user got ${got.length} of 2; ${left} put back in the queue`)
})

// Messages already in the channel's own readable buffer (a paused consumer, e.g. a pipeline whose
// destination applies backpressure) are read before the error.
test('destroy(): a paused peer still gets the buffered data written before the destroy', {
  timeout: 30_000
}, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name)
  const B = b.channel(name, { listen: true })
  let err: any
  B.on('error', (e) => { err = e })
  const got: string[] = []
  B.on('data', (c) => got.push(String(c)))
  B.pause()
  await Promise.all([once(A, 'connect'), once(B, 'connect')])
  for (const m of ['m0', 'm1', 'm2', 'm3']) await write(A, m)
  assert.ok(await eventually(() => B.readableLength === 4, 5000), 'the four messages are buffered in B')
  A.destroy()
  await closed(A)
  // B's reader has taken the abort marker behind them from its queue.
  await eventually(async () => (await b.queue(`${name}:remote`).count()) === 0, 10_000, 'B to take the abort')
  B.resume()
  await closed(B)
  assert.equal(err?.code, 'ERR_BUSMQ_PEER_DESTROYED')
  const left = await b.queue(`${name}:remote`).count()
  assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3'], `B's user got ${got.length} of 4; ${left} put back in the queue`)
})

test('remote:connect and remote:disconnect: seen at once, not at the next heartbeat, on a graceful close', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  // A 5 s heartbeat: a lapse would take 15 s to notice, so anything faster is the immediate notice.
  const heartbeat = 5000
  const A = a.channel(name, { heartbeat })
  const connects: string[] = []
  A.on('remote:connect', () => connects.push('connect'))
  A.on('remote:disconnect', () => connects.push('disconnect'))
  await once(A, 'connect')
  assert.equal(A.remoteConnected, false)

  let started = Date.now()
  const aSeesB = nextEvent(A, 'remote:connect')
  const B = b.channel(name, { listen: true, heartbeat })
  const bSeesA = nextEvent(B, 'remote:connect')
  await Promise.all([aSeesB, bSeesA])
  const connectDelay = Date.now() - started
  assert.ok(connectDelay < 2000, `remote:connect took ${connectDelay} ms`)
  assert.equal(A.remoteConnected, true)
  assert.equal(B.remoteConnected, true)

  // B closes gracefully: ends its side, then closes; A reads to 'end' (no error) and sees B leave.
  const aGot = readAll(A)
  const gone = nextEvent(A, 'remote:disconnect')
  started = Date.now()
  B.end()
  await once(B, 'finish')
  B.destroy()
  await gone
  const disconnectDelay = Date.now() - started
  assert.ok(disconnectDelay < 2000, `remote:disconnect took ${disconnectDelay} ms`)
  assert.deepEqual(await aGot, [])
  assert.equal(A.remoteConnected, false)
  t.diagnostic(`remote:connect after ${connectDelay} ms, remote:disconnect after ${disconnectDelay} ms (heartbeat ${heartbeat} ms)`)

  // A peer that comes back is seen again.
  const B2 = b.channel(name, { listen: true, heartbeat })
  await nextEvent(A, 'remote:connect')
  assert.deepEqual(connects, ['connect', 'disconnect', 'connect'])
  const b2Got = readAll(B2)
  A.end()
  assert.deepEqual(await b2Got, [])
  B2.end()
  await Promise.all([closed(A), closed(B), closed(B2)])
})

test('closing the bus closes its channels and the peer sees remote:disconnect at once', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name, { heartbeat: 5000 })
  const B = b.channel(name, { listen: true, heartbeat: 5000 })
  A.on('error', () => {})
  await Promise.all([nextEvent(A, 'remote:connect'), nextEvent(B, 'remote:connect')])
  // The peer's error (its channel was destroyed, not ended) is not what this test is about; the
  // disconnect may be seen before or after it.
  let disconnected = false
  A.on('remote:disconnect', () => { disconnected = true })
  await b.close()
  assert.equal(B.closed, true)
  assert.ok(await eventually(() => disconnected || A.destroyed, 2000), 'A noticed within 2 s (heartbeat 5 s)')
  A.destroy()
  await closed(A)
})

test('custom roles: writes go to `<name>:<remote>` and reads come from `<name>:<local>`', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const client = a.channel(name, { local: 'client', remote: 'server', objectMode: true })
  await write(client, { hello: 'server' })
  assert.equal(await a.queue(`${name}:server`).count(), 1)
  assert.equal(await a.queue(`${name}:remote`).count(), 0)
  const server = b.channel(name, { local: 'server', remote: 'client', objectMode: true })
  // A third peer with other roles on the same name sees none of it.
  const other = b.channel(name, { local: 'observer', remote: 'nobody', objectMode: true })
  const otherGot: unknown[] = []
  other.on('data', (x) => otherGot.push(x))

  const serverGot = readAll<unknown>(server)
  const clientGot = readAll<unknown>(client)
  await writeAll(client, [{ n: 1 }])
  assert.deepEqual(await serverGot, [{ hello: 'server' }, { n: 1 }])
  await writeAll(server, [{ hello: 'client' }])
  assert.deepEqual(await clientGot, [{ hello: 'client' }])
  await Promise.all([closed(client), closed(server)])
  assert.deepEqual(otherGot, [])
  other.end()
  await once(other, 'finish')
  other.destroy()
  await closed(other)
})

test('reliable: true: a round trip in both directions, everything acknowledged', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name, { reliable: true, objectMode: true })
  const B = b.channel(name, { listen: true, reliable: true, objectMode: true })
  const gotByB = readAll<unknown>(B)
  const gotByA = readAll<unknown>(A)
  const sent = range(0, 1000).map((i) => ({ i }))
  await Promise.all([writeAll(A, sent), writeAll(B, [...sent].reverse())])
  assert.deepEqual(await gotByB, sent)
  assert.deepEqual(await gotByA, [...sent].reverse())
  await Promise.all([closed(A), closed(B)])
  for (const role of ['local', 'remote']) {
    const q = a.queue(`${name}:${role}`)
    assert.ok(await eventually(async () => (await q.stats()).inFlight === 0, 5000), `${role}: nothing left in flight`)
    assert.equal(await q.count(), 0)
  }
})

test('reliable: true: messages a closed channel took but did not hand on go to the next one, in order', { timeout: 30_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('ch')
  const A = a.channel(name, { reliable: true, objectMode: true })
  const B = b.channel(name, { listen: true, reliable: true, objectMode: true, highWaterMark: 16 })
  await Promise.all([once(A, 'connect'), once(B, 'connect')])
  const sent = range(0, 10)
  await writeAll(A, sent, false)
  // B reads 3, leaves the rest buffered, and goes away.
  const first: unknown[] = []
  while (first.length < 3) {
    const x = B.read()
    if (x !== null) first.push(x)
    else await once(B, 'readable')
  }
  assert.deepEqual(first, [0, 1, 2])
  // B leaves without destroying the conversation (destroy() alone would fail A with
  // ERR_BUSMQ_PEER_DESTROYED): it ends its side, then closes with the rest unread.
  const aGot = readAll<unknown>(A)
  B.end()
  await once(B, 'finish')
  B.destroy()
  await closed(B)
  assert.deepEqual(await aGot, [])
  const B2 = b.channel(name, { listen: true, reliable: true, objectMode: true })
  const rest = readAll<unknown>(B2)
  A.end()
  assert.deepEqual(await rest, [3, 4, 5, 6, 7, 8, 9])
  B2.end()
  await Promise.all([closed(A), closed(B2)])
})

test('invalid channel names throw ERR_BUSMQ_INVALID_NAME', { timeout: 30_000 }, async (t) => {
  const [a] = await twoBuses(t)
  for (const bad of ['', 'has space', 'a{b}', 'glob*', 'x'.repeat(201), 'ünï', 'line\n', 5, null, undefined]) {
    assert.throws(() => a.channel(bad as string), { code: 'ERR_BUSMQ_INVALID_NAME' }, `name ${JSON.stringify(bad)}`)
  }
  // Names at the limit and every allowed character are fine.
  const ok = a.channel(`ok_-.:@/=${uniqueName()}`)
  ok.end()
  ok.on('error', () => {})
  await once(ok, 'connect')
  ok.destroy()
  await closed(ok)
})

// Options checked inside the Channel constructor. Each case runs in a child process, because the lib
// currently throws from the constructor *after* the Duplex was built, and that half-built stream then
// crashes the process on the next tick (see the report).
const badOptionCases: Record<string, string> = {
  'role-chars': 'ERR_BUSMQ_INVALID_NAME',
  'same-roles': 'ERR_BUSMQ_INVALID_NAME',
  'name-and-role-too-long': 'ERR_BUSMQ_INVALID_NAME',
  heartbeat: 'ERR_BUSMQ_INVALID_OPTION'
}
const badOptionRuns = new Map<string, Promise<{ code: number | null, stdout: string, stderr: string }>>()
function runBadOption (which: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  let run = badOptionRuns.get(which)
  if (run === undefined) {
    run = (async () => {
      const script = fileURLToPath(new URL('./fixtures/channel-bad-options.js', import.meta.url))
      const child = spawn(process.execPath, [script, redis.servers[0].url, which], { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d) => { stdout += d })
      child.stderr.on('data', (d) => { stderr += d })
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const [code] = await once(child, 'exit')
      clearTimeout(timer)
      return { code, stdout, stderr }
    })()
    badOptionRuns.set(which, run)
  }
  return run
}

test('invalid roles, a too long name with its role, and a bad heartbeat are refused with a stable code', { timeout: 60_000 }, async () => {
  for (const [which, code] of Object.entries(badOptionCases)) {
    const { stdout } = await runBadOption(which)
    assert.equal(stdout.split('\n')[0], `threw ${code}`, which)
  }
})

test('a channel refused by its constructor leaves the process running', {
  timeout: 60_000
}, async () => {
  for (const which of Object.keys(badOptionCases)) {
    const { code, stdout, stderr } = await runBadOption(which)
    assert.equal(code, 0, `${which}: exit code ${code}; stderr: ${stderr.split('\n').slice(0, 6).join(' | ')}`)
    assert.match(stdout, /^alive$/m, which)
  }
})
