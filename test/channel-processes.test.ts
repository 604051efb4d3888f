// Channels between processes: a TCP tunnel carrying HTTP, an echo peer, a peer that is SIGKILLed; and
// the in-process byte throughput of a channel.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { Bus, Channel } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { fixture } from './helpers/fixture.js'
import { eventually, nextEvent, openBus, uniqueName } from './helpers/bus.js'
import { range } from './helpers/queue.js'
import { body, sha256 } from './fixtures/channel-body.js'

const redis = useRedis(1)

/** GET through node:http on a fresh connection; resolves with the body's length, sha256 and headers. */
function get (port: number, path: string): Promise<{ status: number, length: number, sha: string, headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const hash = createHash('sha256')
      let length = 0
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk)
        length += chunk.length
      })
      res.on('end', () => resolve({ status: res.statusCode!, length, sha: hash.digest('hex'), headers: res.headers }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${path} timed out`)))
  })
}

function readAll<T = Buffer> (ch: Channel): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = []
    ch.on('data', (x: T) => out.push(x))
    ch.once('end', () => resolve(out))
    ch.once('error', reject)
  })
}

function closed (ch: Channel): Promise<void> {
  return ch.closed ? Promise.resolve() : new Promise((resolve) => ch.once('close', () => resolve()))
}

async function oneBus (t: TestContext): Promise<Bus> {
  const bus = await openBus(redis.servers)
  t.after(() => bus.close())
  return bus
}

test('a TCP tunnel through channels between two processes carries HTTP byte-exact (20 MB, then 4 concurrent GETs)', { timeout: 180_000 }, async (t) => {
  const base = uniqueName('tunnel')
  const url = redis.servers[0].url
  const exit = fixture(t, 'channel-tunnel.js', [url, base, 'exit'])
  const entry = fixture(t, 'channel-tunnel.js', [url, base, 'entry'])
  const [, entryReady] = await Promise.all([exit.line((l) => l.ready), entry.line((l) => l.ready)])
  const port: number = entryReady.port

  const size = 20 * 1024 * 1024
  const expected = sha256(body(size, 1))
  let started = Date.now()
  const big = await get(port, `/bytes/${size}/1`)
  const elapsed = Date.now() - started
  assert.equal(big.status, 200)
  assert.equal(big.length, size)
  assert.equal(big.headers['x-sha256'], expected, 'the server sent the body the test expects')
  assert.equal(big.sha, expected, '20 MB arrived byte-exact')
  t.diagnostic(`20 MiB through the tunnel in ${elapsed} ms (${(size / 1e6 / (elapsed / 1000)).toFixed(1)} MB/s, HTTP GET end to end)`)

  const small = 2 * 1024 * 1024
  started = Date.now()
  const results = await Promise.all(range(0, 4).map((i) => get(port, `/bytes/${small + i * 4099}/${100 + i}`)))
  t.diagnostic(`4 concurrent GETs of ~2 MiB in ${Date.now() - started} ms`)
  results.forEach((r, i) => {
    const want = body(small + i * 4099, 100 + i)
    assert.equal(r.status, 200, `GET ${i}`)
    assert.equal(r.length, want.length, `GET ${i} length`)
    assert.equal(r.sha, sha256(want), `GET ${i} is byte-exact`)
  })

  // Every connection was torn down cleanly at both ends: FIN -> end() -> 'end' -> FIN, no abort.
  for (const [what, f] of [['entry', entry], ['exit', exit]] as const) {
    await eventually(() => f.lines.filter((l) => 'closed' in l).length >= 5, 20_000,
      () => `${what}: 5 tunnels closed, got ${f.lines.filter((l) => 'closed' in l).length}`)
    const closes = f.lines.filter((l) => 'closed' in l)
    assert.deepEqual(closes.map((l) => l.error), [null, null, null, null, null], `${what}: tunnels closed without error`)
  }
  assert.equal(new Set(entry.lines.filter((l) => 'closed' in l).map((l) => l.closed)).size, 5, 'one channel per connection')

  for (const f of [entry, exit]) f.child.kill('SIGTERM')
  const codes = await Promise.all([entry.exited, exit.exited])
  assert.deepEqual(codes, [[0, null], [0, null]], 'both tunnel ends shut down cleanly on SIGTERM')
})

test('echo across processes: 10,000 objectMode messages come back in order', { timeout: 120_000 }, async (t) => {
  const bus = await oneBus(t)
  const name = uniqueName('echo')
  const ch = bus.channel(name, { objectMode: true })
  // This side starts writing before the echo process exists; the messages wait in the queue.
  const n = 10_000
  const started = Date.now()
  const got = readAll<{ i: number, s: string }>(ch)
  const echo = fixture(t, 'channel-echo.js', [redis.servers[0].url, name, '1000'])
  for (let i = 0; i < n; i++) {
    if (!ch.write({ i, s: `message ${i}` })) await once(ch, 'drain')
  }
  ch.end()
  const back = await got
  const elapsed = Date.now() - started
  assert.equal(back.length, n)
  for (let i = 0; i < n; i++) {
    if (back[i].i !== i || back[i].s !== `message ${i}`) assert.fail(`message ${i} came back as ${JSON.stringify(back[i])}`)
  }
  await closed(ch)
  assert.equal(ch.errored, null)
  // The echo peer saw the end, ended its side, closed its bus and exited by itself.
  const [code, signal] = await echo.exited
  assert.equal(signal, null)
  assert.equal(code, 0, echo.stderr())
  assert.deepEqual(echo.lines.at(-1), { echoed: n })
  t.diagnostic(`10,000 messages echoed across processes in ${elapsed} ms (incl. process start), ${Math.round(n / (elapsed / 1000))} round trips/s`)
})

test('a SIGKILLed peer is reported by remote:disconnect within 4 heartbeats', { timeout: 120_000 }, async (t) => {
  const bus = await oneBus(t)
  const heartbeat = 500
  const bound = 4 * heartbeat + 2000
  const delays: number[] = []
  for (let round = 0; round < 3; round++) {
    const name = uniqueName('kill')
    const ch = bus.channel(name, { objectMode: true, heartbeat })
    const up = nextEvent(ch, 'remote:connect')
    const peer = fixture(t, 'channel-echo.js', [redis.servers[0].url, name, String(heartbeat)])
    await Promise.all([up, peer.line((l) => l.ready)])
    assert.equal(ch.remoteConnected, true)
    // The peer is alive and echoing.
    const echoed = nextEvent(ch, 'data')
    ch.write({ ping: round })
    assert.deepEqual((await echoed)[0], { ping: round })
    // Kill at different points of the heartbeat cycle (the delay is the point).
    await new Promise((resolve) => setTimeout(resolve, round * heartbeat / 3))
    const down = nextEvent(ch, 'remote:disconnect')
    const killed = Date.now()
    peer.child.kill('SIGKILL')
    await down
    const delay = Date.now() - killed
    delays.push(delay)
    assert.deepEqual(await peer.exited, [null, 'SIGKILL'])
    assert.equal(ch.remoteConnected, false)
    assert.ok(delay <= bound, `remote:disconnect after ${delay} ms, bound ${bound} ms`)
    ch.end()
    ch.destroy()
    await closed(ch)
  }
  t.diagnostic(`SIGKILL -> remote:disconnect: ${delays.join(', ')} ms (heartbeat ${heartbeat} ms, presence expiry ${3 * heartbeat} ms, asserted bound ${bound} ms)`)
})

test('throughput: bytes through one channel in 64 KiB chunks (measured, not asserted)', { timeout: 120_000 }, async (t) => {
  const a = await oneBus(t)
  const b = await openBus(redis.servers)
  t.after(() => b.close())
  const name = uniqueName('mbps')
  const chunk = 64 * 1024
  const total = 128 * 1024 * 1024
  const chunks = range(0, 8).map((i) => body(chunk, 7 + i))
  const A = a.channel(name)
  const B = b.channel(name, { listen: true })
  await Promise.all([once(A, 'connect'), once(B, 'connect')])
  let received = 0
  let messages = 0
  B.on('data', (c: Buffer) => {
    received += c.length
    messages++
  })
  const ended = once(B, 'end')
  const started = process.hrtime.bigint()
  for (let i = 0; i < total / chunk; i++) {
    if (!A.write(chunks[i % chunks.length])) await once(A, 'drain')
  }
  A.end()
  await ended
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  assert.equal(received, total)
  assert.equal(messages, total / chunk)
  B.end()
  A.resume()
  await Promise.all([closed(A), closed(B)])
  const mbps = total / 1e6 / seconds
  t.diagnostic(`channel throughput: ${total / 1024 / 1024} MiB in 64 KiB chunks in ${(seconds * 1000).toFixed(0)} ms = ${mbps.toFixed(1)} MB/s (${(mbps / 1.048576).toFixed(1)} MiB/s), one redis-server, two buses in one process`)
})
