// Federation security and limits: wrong secrets, an authorize refusal (not retried), replayed handshakes, `allow` denials that create nothing
// in Redis, 10,000 malformed frames (each closes its connection with a reason while another client keeps
// working), 1,000 concurrent streams over a pool of 4 sockets, and a stalled remote reader that keeps the
// server's memory bounded while 1 GB is pushed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { WebSocket } from 'ws'
import { Bus } from '../lib/index.js'
import { FrameType, encodeFrame, encodeBatch, decodeFrame } from '../lib/federation/frame.js'
import { clientProof } from '../lib/federation/auth.js'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName, eventually } from './helpers/bus.js'
import { keysContaining } from './helpers/queue.js'
import { fixture } from './helpers/fixture.js'
import { fedServer, fedClient, SECRET } from './helpers/federation.js'

const redis = useRedis(1)

/** A raw WebSocket to `url`; resolves once open, with the frames it receives and its close. */
async function raw (url: string): Promise<{ ws: WebSocket, frames: Buffer[], closed: Promise<{ code: number, reason: string }>, next: () => Promise<Buffer> }> {
  const ws = new WebSocket(url)
  const frames: Buffer[] = []
  const waiters: Array<(b: Buffer) => void> = []
  ws.on('message', (d: Buffer) => {
    const w = waiters.shift()
    if (w) w(d)
    else frames.push(d)
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  ws.on('error', () => {})
  await once(ws, 'open')
  const next = async (): Promise<Buffer> => frames.shift() ?? await new Promise<Buffer>((resolve) => waiters.push(resolve))
  return { ws, frames, closed, next }
}

/** The AUTH frame answering `challenge` with `secret`. */
async function authFrame (challenge: Buffer, secret: string): Promise<Buffer> {
  const nonce = decodeFrame(challenge).payload
  const clientNonce = randomBytes(32)
  const mac = await clientProof(secret, nonce, clientNonce)
  return encodeFrame(FrameType.AUTH, 0, Buffer.concat([clientNonce, mac, Buffer.from('{"id":"raw"}')]))
}

test('a wrong secret: the client emits unauthorized, connect() rejects with ERR_BUSMQ_UNAUTHORIZED, streams fail, nothing is created', async () => {
  const server = await fedServer(redis.servers)
  const bus = new Bus({ federation: { urls: [server.url], secret: 'not-the-secret' } })
  const unauthorized = once(bus, 'unauthorized')
  const closed = once(bus, 'close')
  await assert.rejects(bus.connect(), { code: 'ERR_BUSMQ_UNAUTHORIZED' })
  await unauthorized
  await closed
  const name = uniqueName('unauth')
  assert.throws(() => bus.queue(name).createWriteStream(), { code: 'ERR_BUSMQ_UNAUTHORIZED' })
  await assert.rejects(bus.queue(name).push(Buffer.from('x')), { code: 'ERR_BUSMQ_UNAUTHORIZED' })
  assert.deepEqual(await keysContaining(redis.servers[0], name), [])
  await bus.close()
})

test('an authorize refusal (401) is final: one attempt, then unauthorized and close; connect() rejects', async () => {
  let calls = 0
  const server = await fedServer(redis.servers, { authorize: () => { calls++; return false } })
  const bus = new Bus({ federation: { urls: [server.url], secret: SECRET, reconnectDelay: 1 } })
  const events: string[] = []
  for (const e of ['unauthorized', 'reconnecting', 'close']) bus.on(e, () => events.push(e))
  await assert.rejects(bus.connect(), { code: 'ERR_BUSMQ_UNAUTHORIZED' })
  await eventually(() => events.includes('close'))
  assert.deepEqual(events, ['unauthorized', 'close'])
  assert.equal(calls, 1)
  await bus.close()
})

test('a handshake replayed on another connection is refused; the original one works', async () => {
  const server = await fedServer(redis.servers)
  const a = await raw(server.url)
  const auth = await authFrame(await a.next(), SECRET)
  a.ws.send(auth)
  assert.equal(decodeFrame(await a.next()).type, FrameType.WELCOME)
  // The same answer on a new connection (another nonce): refused.
  const b = await raw(server.url)
  await b.next()
  b.ws.send(auth)
  assert.deepEqual(await b.closed, { code: 4001, reason: 'unauthorized' })
  // And a frame before any AUTH is a protocol error.
  const c = await raw(server.url)
  await c.next()
  c.ws.send(encodeFrame(FrameType.OPEN, 1, '{}'))
  const cc = await c.closed
  assert.equal(cc.code, 4002)
  assert.match(cc.reason, /before AUTH/)
  a.ws.send(encodeFrame(FrameType.PING, 0))
  assert.equal(decodeFrame(await a.next()).type, FrameType.PONG)
  a.ws.close()
})

test('allow: denied operations fail with ERR_BUSMQ_FORBIDDEN and create no key in Redis; allowed ones work', async () => {
  const seen: string[] = []
  const server = await fedServer(redis.servers, {
    allow: (op, name, client) => {
      seen.push(`${op}:${client.id.length > 0 ? 'id' : 'noid'}`)
      return name.startsWith('public.')
    }
  })
  const client = await fedClient([server.url])
  const secret = uniqueName('private')
  const fails = async (what: Promise<unknown>): Promise<void> => { await assert.rejects(what, { code: 'ERR_BUSMQ_FORBIDDEN' }) }
  const streamFails = async (s: NodeJS.EventEmitter): Promise<void> => {
    const [err] = await once(s, 'error')
    assert.equal(err.code, 'ERR_BUSMQ_FORBIDDEN')
  }
  await fails(client.queue(secret).push(Buffer.from('x')))
  await fails(client.queue(secret).count())
  await fails(client.queue(secret).find())
  await fails(client.pubsub(secret).publish(Buffer.from('x')))
  await fails(client.service(secret).request(Buffer.from('x')))
  await fails(client.object(secret).load())
  await fails(client.object(secret).set({ a: 1 }).save())
  const w = client.queue(secret).createWriteStream()
  w.write('x')
  await streamFails(w)
  await streamFails(client.queue(secret).createReadStream())
  await streamFails(client.channel(secret))
  await streamFails(client.pubsub(secret).createReadStream())
  await streamFails(client.object(secret).createChangeStream())
  assert.deepEqual(await keysContaining(redis.servers[0], secret), [])
  const ok = `public.${uniqueName('q')}`
  await client.queue(ok).push(Buffer.from('fine'))
  assert.equal(await client.queue(ok).count(), 1)
  assert.ok(seen.every((s) => s.endsWith(':id')), 'allow sees the client id')
})

/** 10,000 bad frames: kinds that never parse. */
function badFrames (n: number, maxMessageSize: number): Array<{ frame: Buffer, authed: boolean, kind: string }> {
  const out: Array<{ frame: Buffer, authed: boolean, kind: string }> = []
  const valid = encodeFrame(FrameType.DATA, 1, encodeBatch(1, [{ id: 0, payload: Buffer.alloc(100, 1) }]))
  for (let i = 0; i < n; i++) {
    const k = i % 5
    const authed = i % 2 === 0
    if (k === 0) {
      // Random bytes with an unknown type.
      const f = randomBytes(1 + (i % 200))
      f[0] = 16 + (i % 240)
      out.push({ frame: f, authed, kind: 'random' })
    } else if (k === 1) {
      out.push({ frame: randomBytes(i % 5), authed, kind: 'short' })
    } else if (k === 2) {
      out.push({ frame: valid.subarray(0, 6 + (i % (valid.length - 7))), authed, kind: 'truncated' })
    } else if (k === 3) {
      // A frame type on the wrong kind of stream, or a payload of the wrong size.
      const f = i % 2 === 0 ? encodeFrame(FrameType.CREDIT, 7, randomBytes(3)) : encodeFrame(FrameType.PING, 5)
      out.push({ frame: f, authed, kind: 'malformed' })
    } else {
      out.push({ frame: Buffer.alloc(maxMessageSize + 1 + (i % 1000)), authed, kind: 'oversized' })
    }
  }
  return out
}

test('10,000 random, truncated and oversized frames: each closes its own connection with a reason; another client keeps working', async () => {
  const maxMessageSize = 64 * 1024
  const server = await fedServer(redis.servers, { maxMessageSize })
  const client = await fedClient([server.url])
  const name = uniqueName('steady')
  // A steady client: writes and reads all along.
  const got: number[] = []
  const reader = client.queue(name, { objectMode: true }).createReadStream()
  reader.on('data', (m) => got.push(m as number))
  const writer = client.queue(name, { objectMode: true }).createWriteStream()
  let written = 0
  const frames = badFrames(10_000, maxMessageSize)
  const closes = new Map<string, number>()
  for (let i = 0; i < frames.length; i += 50) {
    await Promise.all(frames.slice(i, i + 50).map(async ({ frame, authed, kind }) => {
      const c = await raw(server.url)
      const challenge = await c.next()
      if (authed) {
        c.ws.send(await authFrame(challenge, SECRET))
        assert.equal(decodeFrame(await c.next()).type, FrameType.WELCOME)
      }
      c.ws.send(frame)
      const { code, reason } = await c.closed
      assert.ok(reason.length > 0 || code === 1009, `a ${kind} frame closed its connection with a reason (${code})`)
      assert.ok(code === 4002 || code === 1009, `a ${kind} frame: code ${code} (${reason})`)
      closes.set(kind, (closes.get(kind) ?? 0) + 1)
    }))
    writer.write(written++)
  }
  writer.end()
  await once(writer, 'finish')
  await eventually(() => got.length === written, 20_000)
  assert.deepEqual(got, Array.from({ length: written }, (_, i) => i))
  assert.deepEqual(Object.fromEntries(closes), { random: 2000, short: 2000, truncated: 2000, malformed: 2000, oversized: 2000 })
  reader.destroy()
})

test('1,000 concurrent streams over a pool of 4 sockets: 500 queues, each with a federated writer and reader', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { poolSize: 4 })
  assert.equal(server.fed.connections, 4)
  const base = uniqueName('many')
  const M = 20
  const results = await Promise.all(Array.from({ length: 500 }, async (_, q) => {
    const queue = client.queue(`${base}-${q}`, { objectMode: true })
    const r = queue.createReadStream({ max: M })
    const got: unknown[] = []
    const reading = (async () => { for await (const m of r) got.push(m) })()
    const w = queue.createWriteStream()
    await pipeline(Readable.from(Array.from({ length: M }, (_, i) => ({ q, i }))), w)
    await reading
    return got
  }))
  results.forEach((got, q) => assert.deepEqual(got, Array.from({ length: M }, (_, i) => ({ q, i }))))
})

test('a remote reader that stops reading: the server\'s RSS stays bounded while a federated producer pushes 1 GB', async (t) => {
  const server = fixture(t, 'federation-server.js', [redis.servers[0].url, SECRET])
  const { port } = await server.line((l) => typeof l.port === 'number')
  const url = `ws://127.0.0.1:${port}/bus`
  const reader = await fedClient([url])
  const writer = await fedClient([url])
  const name = uniqueName('stalled')
  // Created, and never read from: it fills its own buffer and its credit, then holds still.
  const r = reader.queue(name).createReadStream()
  await once(r, 'ready')
  const rssNow = (): number => server.lines.filter((l) => typeof l.rss === 'number').at(-1).rss
  await server.line((l) => typeof l.rss === 'number')
  const baseline = rssNow()
  const CHUNK = 4096
  const TOTAL = Number(process.env.FED_TOTAL ?? 1024 * 1024 * 1024)
  const chunk = randomBytes(CHUNK)
  let peak = baseline
  const sampler = setInterval(() => { peak = Math.max(peak, rssNow()) }, 100)
  try {
    await pipeline(Readable.from((function * () { for (let sent = 0; sent < TOTAL; sent += CHUNK) yield chunk })(), { objectMode: true }),
      writer.queue(name).createWriteStream())
  } finally {
    clearInterval(sampler)
  }
  const stored = await writer.queue(name).count()
  assert.ok(stored > TOTAL / CHUNK - 20_000, `the producer's 1 GB went through (${stored} messages wait in Redis)`)
  // Its highWaterMark (256) and the credit window it gives the server (4 MiB: 1024 such messages).
  assert.ok(r.readableLength <= 1280, `the stalled reader holds ${r.readableLength} messages`)
  const growth = peak - baseline
  t.diagnostic(`server RSS: ${Math.round(baseline / 1e6)} MB before, peak ${Math.round(peak / 1e6)} MB while 1 GB went by`)
  assert.ok(growth < 200 * 1024 * 1024, `the server's RSS grew by ${Math.round(growth / 1e6)} MB`)
  r.destroy()
})
