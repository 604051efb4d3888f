// Federation under faults: sockets terminated mid-stream on either side under load, and a federation
// server stopped for 5 s. Streams resume; nothing is lost or stored twice.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import type { Bus } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName, eventually, nextEvent } from './helpers/bus.js'
import { fedServer, fedClient, SECRET, type FedServer } from './helpers/federation.js'
import { fixture } from './helpers/fixture.js'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { WebSocket } from 'ws'
import { FrameType, encodeFrame, decodeFrame } from '../lib/federation/frame.js'
import { clientProof } from '../lib/federation/auth.js'

const redis = useRedis(1)

/**
 * Writes `n` numbered messages through `writer`'s federation and reads them through `reader`'s, calling
 * `fault` each time `faultEvery` more messages were read; returns what the reader got.
 */
async function underLoad (writer: Bus, reader: Bus, name: string, n: number, faultEvery: number, fault: (k: number) => Promise<void> | void): Promise<number[]> {
  const got: number[] = []
  const r = reader.queue(name, { objectMode: true }).createReadStream({ max: n })
  let next = faultEvery
  let faults = 0
  const reading = (async () => {
    for await (const m of r) {
      got.push(m as number)
      if (got.length >= next) {
        next += faultEvery
        await fault(++faults)
      }
    }
  })()
  const w = writer.queue(name, { objectMode: true }).createWriteStream()
  await pipeline(Readable.from((function * () { for (let i = 0; i < n; i++) yield i })()), w)
  await reading
  return got
}

function assertExactlyOnce (got: number[], n: number): void {
  const counts = new Map<number, number>()
  for (const m of got) counts.set(m, (counts.get(m) ?? 0) + 1)
  const dup = [...counts].filter(([, c]) => c > 1).map(([m]) => m)
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !counts.has(i))
  assert.deepEqual({ dup: dup.slice(0, 10), missing: missing.slice(0, 10) }, { dup: [], missing: [] })
  assert.equal(got.length, n)
}

async function stored (server: FedServer, name: string): Promise<number> {
  return await server.bus.queue(name).count()
}

test('server side: the federation sockets are destroyed 5 times mid-stream under load; every message arrives once, in order', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { poolSize: 2, reconnectDelay: 10 })
  const name = uniqueName('fedfault')
  const N = 30_000
  let drops = 0
  const got = await underLoad(client, client, name, N, 5000, () => { drops += server.dropSockets() > 0 ? 1 : 0 })
  assert.ok(drops >= 5, `sockets were dropped ${drops} times`)
  assertExactlyOnce(got, N)
  assert.deepEqual(got, [...got].sort((a, b) => a - b), 'in order')
  assert.equal(await stored(server, name), 0)
})

test('client side: the client terminates its sockets mid-stream under load, writer and reader on separate buses; nothing lost or duplicated', async () => {
  const server = await fedServer(redis.servers)
  const writer = await fedClient([server.url], { reconnectDelay: 10 })
  const reader = await fedClient([server.url], { reconnectDelay: 10, poolSize: 2 })
  const name = uniqueName('fedfault')
  const N = 30_000
  const got = await underLoad(writer, reader, name, N, 4000, (k) => {
    // Alternately the reader's and the writer's sockets, as a network would cut them.
    (k % 2 === 0 ? writer : reader).remote!.client.dropConnections()
  })
  assertExactlyOnce(got, N)
  assert.equal(await stored(server, name), 0)
})

test('the federation server stops for 5 s: the client emits reconnecting then reconnected, and its streams go on with nothing lost or duplicated', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { reconnectDelay: 50, maxReconnectDelay: 500 })
  const events: string[] = []
  client.on('reconnecting', () => events.push('reconnecting'))
  client.on('reconnected', () => events.push('reconnected'))
  const name = uniqueName('fedstop')
  const N = 20_000
  const got = await underLoad(client, client, name, N, 10_000, async () => {
    const reconnecting = nextEvent(client, 'reconnecting')
    await server.stop()
    await reconnecting
    await new Promise((resolve) => setTimeout(resolve, 5000)) // the outage itself
    const reconnected = nextEvent(client, 'reconnected')
    await server.start()
    await reconnected
  })
  assertExactlyOnce(got, N)
  assert.deepEqual(events.slice(0, 2), ['reconnecting', 'reconnected'])
  await eventually(async () => (await stored(server, name)) === 0)
})

test('dead sockets are detected in bounded time: a frozen server (SIGSTOP) by the client\'s pings, a silent client by the server\'s idleTimeout', async (t) => {
  // A federation server in a process of its own, frozen with SIGSTOP: its socket stays open, silent.
  const child = fixture(t, 'federation-server.js', [redis.servers[0].url, SECRET])
  const { port } = await child.line((l) => typeof l.port === 'number')
  const client = await fedClient([`ws://127.0.0.1:${port}/bus`], { pingInterval: 100, reconnectDelay: 50, maxReconnectDelay: 200 })
  const reconnecting = nextEvent(client, 'reconnecting')
  child.child.kill('SIGSTOP')
  try {
    await reconnecting // within 3 pings (300 ms) plus a tick: the test times out otherwise
  } finally {
    child.child.kill('SIGCONT')
  }
  await nextEvent(client, 'reconnected')
  assert.equal(await client.queue(uniqueName('alive')).push(Buffer.from('x')), 1)

  // A client that authenticated, then went silent (it does not even answer pings).
  const server = await fedServer(redis.servers, { idleTimeout: 300 })
  const ws = new WebSocket(server.url, { autoPong: false })
  ws.on('error', () => {})
  const challenge = await new Promise<Buffer>((resolve) => ws.once('message', resolve))
  const nonce = decodeFrame(challenge).payload
  const clientNonce = randomBytes(32)
  ws.send(encodeFrame(FrameType.AUTH, 0, Buffer.concat([clientNonce, await clientProof(SECRET, nonce, clientNonce), Buffer.from('{}')])))
  await new Promise((resolve) => ws.once('message', resolve))
  const [code] = await once(ws, 'close')
  assert.equal(code, 1006, 'the server dropped the silent connection')
  await eventually(() => server.fed.connections === 0)
})

test('a channel resumes after its sockets are cut: a federated peer and a native echo peer, every message once, in order', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { reconnectDelay: 10 })
  const name = uniqueName('fedchfault')
  const native = server.bus.channel(name, { listen: true, objectMode: true })
  native.on('data', (m) => native.write(m))
  native.on('end', () => native.end())
  const remote = client.channel(name, { objectMode: true })
  const got: number[] = []
  const N = 5000
  const ended = new Promise<void>((resolve) => remote.on('end', resolve))
  remote.on('data', (m: number) => {
    got.push(m)
    if (got.length === 1500 || got.length === 3500) drops += server.dropSockets()
  })
  let drops = 0
  for (let i = 0; i < N; i++) if (!remote.write(i)) await once(remote, 'drain')
  remote.end()
  await ended
  assert.ok(drops >= 2, `sockets cut: ${drops}`)
  assertExactlyOnce(got, N)
  assert.deepEqual(got, [...got].sort((a, b) => a - b), 'in order')
})
