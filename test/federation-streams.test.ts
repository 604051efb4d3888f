// Streamed service replies and reliable channels over federation, and reliable acks sent in batches:
// a bus with Redis serves federation; federation-only buses (no Redis) request streams, serve them,
// and hold reliable channels, with credit flow control and resumption like the other streams.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName, eventually, collect } from './helpers/bus.js'
import { fedServer, fedClient } from './helpers/federation.js'
import type { Bus } from '../lib/index.js'

const redis = useRedis(1)

/** Reads `stream` to its end or error: the chunks before, and the error's code (undefined: it ended). */
async function readAll<T> (stream: AsyncIterable<T>): Promise<{ chunks: T[], code?: string, err?: any }> {
  const chunks: T[] = []
  try {
    for await (const c of stream) chunks.push(c)
  } catch (err) {
    return { chunks, code: (err as { code?: string }).code, err }
  }
  return { chunks }
}

/** Reads `n` chunks, then nothing for a while, then the rest; how far `made()` got during the pause. */
async function pausedRead<T> (stream: AsyncIterable<T>, n: number, made: () => number): Promise<{ chunks: T[], madeDuringPause: number }> {
  const chunks: T[] = []
  let madeDuringPause = -1
  for await (const c of stream) {
    chunks.push(c)
    if (chunks.length === n) {
      // Long enough for an unbounded producer to make every chunk on loopback.
      await sleep(700)
      madeDuringPause = made()
    }
  }
  return { chunks, madeDuringPause }
}

test('requestStream over federation: ordered chunks then end; a failing handler is ERR_BUSMQ_REMOTE after its chunks; no server is ERR_BUSMQ_REQUEST_TIMEOUT', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const svc = uniqueName('fedrs')
  let stopped = 0
  server.bus.service<{ n: number, failAt?: number }, { i: number }>(svc, { objectMode: true }).serve(async function * (req) {
    if (req.data.n < 0) {
      // Endless: runs until its requester goes away.
      try {
        for (let i = 0; ; i++) yield { i }
      } finally {
        stopped++
      }
    }
    for (let i = 0; i < req.data.n; i++) {
      if (i === req.data.failAt) throw Object.assign(new Error('broken'), { code: 'E_BROKEN' })
      yield { i }
    }
  })
  const remote = client.service<{ n: number, failAt?: number }, { i: number }>(svc, { objectMode: true })
  const ok = await readAll(remote.requestStream({ n: 500 }, { timeout: 10_000 }))
  assert.equal(ok.code, undefined)
  assert.deepEqual(ok.chunks, Array.from({ length: 500 }, (_, i) => ({ i })))

  const failed = await readAll(remote.requestStream({ n: 10, failAt: 3 }, { timeout: 10_000 }))
  assert.deepEqual(failed.chunks, [{ i: 0 }, { i: 1 }, { i: 2 }])
  assert.equal(failed.code, 'ERR_BUSMQ_REMOTE')
  assert.equal(failed.err.remoteCode, 'E_BROKEN')
  assert.equal(failed.err.remoteMessage, 'broken')

  // A requester that leaves (destroys its stream) stops the server's handler.
  const endless: Array<{ i: number }> = []
  for await (const c of remote.requestStream({ n: -1 }, { timeout: 10_000 })) {
    endless.push(c)
    if (endless.length === 20) break
  }
  assert.deepEqual(endless, Array.from({ length: 20 }, (_, i) => ({ i })))
  await eventually(() => stopped === 1)

  assert.throws(() => remote.requestStream({ n: 1 }, { highWaterMark: 0 }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  const nobody = await readAll(client.service(uniqueName('fedrs-none')).requestStream(Buffer.from('x'), { timeout: 300 }))
  assert.deepEqual([nobody.chunks.length, nobody.code], [0, 'ERR_BUSMQ_REQUEST_TIMEOUT'])
})

test('requestStream over federation: a big reply to a reader that pauses holds the native server back, and arrives whole', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const svc = uniqueName('fedrsbig')
  const N = 2000
  let made = 0
  server.bus.service(svc).serve(async function * () {
    for (let i = 0; i < N; i++) {
      made++
      yield Buffer.alloc(8192, i % 251)
    }
  })
  const { chunks, madeDuringPause } = await pausedRead(client.service(svc).requestStream(Buffer.from('go'), { timeout: 10_000, highWaterMark: 16 }), 50, () => made)
  // Ahead of the reader: its buffer and credit (16 + 32), Redis (32), the server's reader and writer.
  assert.ok(madeDuringPause < 300, `the server made ${madeDuringPause} of ${N} chunks while the reader had read 50`)
  assert.equal(chunks.length, N)
  chunks.forEach((c, i) => { if (c.length !== 8192 || c[0] !== i % 251) assert.fail(`chunk ${i} is wrong`) })
})

test('a federated bus streams replies: native and federated requestStream get them in order; a failing stream and a one-value request are ERR_BUSMQ_REMOTE; a pausing reader holds the handler back', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const requester = await fedClient([server.url])
  const svc = uniqueName('fedserve-stream')
  let made = 0
  let stopped = 0
  const served = client.service<{ n: number, size?: number, failAt?: number }, any>(svc, { objectMode: true }).serve((req) => {
    if (!req.streamed) return (async function * () { yield 'one value was asked for' })()
    if (req.data.n < 0) {
      // Endless: runs until its requester goes away.
      return (async function * () {
        try {
          for (let i = 0; ; i++) yield { i }
        } finally {
          stopped++
        }
      })()
    }
    return (async function * () {
      for (let i = 0; i < req.data.n; i++) {
        if (i === req.data.failAt) throw Object.assign(new Error('stream broke'), { code: 'E_STREAM' })
        made++
        yield req.data.size === undefined ? { i } : { i, pad: 'x'.repeat(req.data.size) }
      }
    })()
  })
  await once(served, 'ready')
  const native = server.bus.service<{ n: number, size?: number, failAt?: number }, any>(svc, { objectMode: true })
  const expected = Array.from({ length: 300 }, (_, i) => ({ i }))
  const [a, b] = await Promise.all([
    readAll(native.requestStream({ n: 300 }, { timeout: 10_000 })),
    readAll(requester.service(svc, { objectMode: true }).requestStream({ n: 300 }, { timeout: 10_000 }))
  ])
  assert.deepEqual([a.code, b.code], [undefined, undefined])
  assert.deepEqual(a.chunks, expected)
  assert.deepEqual(b.chunks, expected)

  const failed = await readAll(native.requestStream({ n: 10, failAt: 4 }, { timeout: 10_000 }))
  assert.deepEqual(failed.chunks, [{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }])
  assert.equal(failed.code, 'ERR_BUSMQ_REMOTE')
  assert.equal(failed.err.remoteCode, 'E_STREAM')
  await assert.rejects(native.request({ n: 1 }, { timeout: 10_000 }), (err: any) => err.code === 'ERR_BUSMQ_REMOTE' && err.remoteCode === 'ERR_BUSMQ_INVALID_OPTION')
  // A requester that leaves stops the federated handler's stream.
  let read = 0
  for await (const c of native.requestStream({ n: -1 }, { timeout: 10_000 })) {
    assert.equal(c.i, read++)
    if (read === 20) break
  }
  await eventually(() => stopped === 1)

  // 64 KiB chunks: the federated handler's window (4 MiB) and the reply's queue bound what it runs ahead.
  made = 0
  const N = 400
  const { chunks, madeDuringPause } = await pausedRead(native.requestStream({ n: N, size: 65_536 }, { timeout: 10_000 }), 20, () => made)
  assert.ok(madeDuringPause < 260, `the federated handler made ${madeDuringPause} of ${N} chunks while the reader had read 20`)
  assert.deepEqual(chunks.map((c) => c.i), Array.from({ length: N }, (_, i) => i))
  await served.close()
})

test('a federated server stream: requests answered with reply(), replyStream() (then fail() after its chunks) and fail(); leaving the loop stops serving', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const svc = uniqueName('fedserverstream')
  const requests = client.service<{ n: number, op: string }, any>(svc, { objectMode: true }).createServerStream({ concurrency: 4 })
  await once(requests, 'ready')
  const serving = (async () => {
    for await (const req of requests) {
      if (req.data.op === 'stop') {
        await req.reply('stopping')
        break
      }
      if (req.data.op === 'fail') await req.fail(Object.assign(new Error('refused'), { code: 'E_REFUSED' }))
      else if (!req.streamed) await req.reply(req.data.n * 2)
      else {
        const w = req.replyStream()
        for (let i = 0; i < req.data.n; i++) w.write({ i })
        if (req.data.op === 'stream-fail') await req.fail(new Error('half-way'))
        else w.end()
      }
    }
  })()
  const native = server.bus.service<{ n: number, op: string }, any>(svc, { objectMode: true })
  assert.deepEqual(await Promise.all([1, 2, 3].map((n) => native.request({ n, op: 'double' }, { timeout: 10_000 }))), [2, 4, 6])
  await assert.rejects(native.request({ n: 0, op: 'fail' }, { timeout: 10_000 }), (err: any) => err.code === 'ERR_BUSMQ_REMOTE' && err.remoteCode === 'E_REFUSED')
  const streamed = await readAll(native.requestStream({ n: 5, op: 'stream' }, { timeout: 10_000 }))
  assert.deepEqual([streamed.chunks, streamed.code], [[0, 1, 2, 3, 4].map((i) => ({ i })), undefined])
  const broken = await readAll(native.requestStream({ n: 2, op: 'stream-fail' }, { timeout: 10_000 }))
  assert.deepEqual([broken.chunks, broken.code, broken.err.remoteMessage], [[{ i: 0 }, { i: 1 }], 'ERR_BUSMQ_REMOTE', 'half-way'])
  assert.equal(await native.request({ n: 0, op: 'stop' }, { timeout: 10_000 }), 'stopping')
  await serving
  await eventually(() => requests.closed)
  await assert.rejects(native.request({ n: 1, op: 'double' }, { timeout: 500 }), { code: 'ERR_BUSMQ_REQUEST_TIMEOUT' })
})

/**
 * A handler that records what it saw: answers with reply() (then returns a value, ignored), tries
 * replyStream() on a one-value request, and waits for its signal (deadline, requester gone, closing).
 */
function probe (seen: Map<string, unknown>): (req: any) => Promise<unknown> {
  return async (req) => {
    const { op } = req.data as { op: string }
    if (op === 'reply') {
      await req.reply('by reply()')
      return 'returned after reply()'
    }
    if (op === 'one') {
      try {
        req.replyStream()
        seen.set('one', 'no throw')
      } catch (err) {
        seen.set('one', (err as { code?: string }).code)
      }
      return 'one value'
    }
    if (op === 'send') {
      // Nobody reads it: a sink.
      req.replyStream().end('dropped')
      seen.set('send', req.replyWanted)
      return
    }
    if (op === 'leave') req.replyStream().write('first')
    seen.set(`${op}:started`, true)
    const reason = await new Promise<any>((resolve) => req.signal.addEventListener('abort', () => resolve(req.signal.reason), { once: true }))
    seen.set(op, op === 'leave' ? 'aborted' : reason.code)
    return op === 'leave' ? undefined : 'too late'
  }
}

test('a federated handler\'s request, as a native one\'s: reply() answers it, replyStream() throws for a one-value request, its signal aborts at the deadline, when the requester leaves and on close()', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const outcomes: Record<string, unknown[]> = {}
  for (const where of ['native', 'federated']) {
    const svc = uniqueName(`fedprobe-${where}`)
    const seen = new Map<string, unknown>()
    const bus = where === 'native' ? server.bus : client
    const served: any = bus.service(svc, { objectMode: true }).serve(probe(seen) as any)
    if (where === 'federated') await once(served, 'ready')
    const native = server.bus.service<{ op: string }, any>(svc, { objectMode: true })
    const replied = await native.request({ op: 'reply' }, { timeout: 10_000 })
    const one = await native.request({ op: 'one' }, { timeout: 10_000 })
    await native.send({ op: 'send' })
    await eventually(() => seen.has('send'))
    // The requester gives up at its deadline: the handler's signal aborts.
    const timedOut = await native.request({ op: 'deadline' }, { timeout: 300 }).catch((err) => err.code)
    await eventually(() => seen.has('deadline'))
    // The requester of a streamed reply leaves after its first chunk.
    const leaving = native.requestStream({ op: 'leave' }, { timeout: 10_000 })
    assert.deepEqual(await once(leaving, 'data'), ['first'])
    leaving.destroy()
    await eventually(() => seen.has('leave'))
    // The server closes while the handler runs: its requester gets ERR_BUSMQ_SERVICE_CLOSED.
    const closing = native.request({ op: 'close' }, { timeout: 10_000 }).catch((err) => err.code)
    await eventually(() => seen.has('close:started'))
    await served.close()
    await eventually(() => seen.has('close'))
    outcomes[where] = [replied, one, seen.get('one'), seen.get('send'), timedOut, seen.get('deadline'), seen.get('leave'), seen.get('close'), await closing]
  }
  assert.deepEqual(outcomes.native, ['by reply()', 'one value', 'ERR_BUSMQ_INVALID_OPTION', false, 'ERR_BUSMQ_REQUEST_TIMEOUT',
    'ERR_BUSMQ_REQUEST_TIMEOUT', 'aborted', 'ERR_BUSMQ_SERVICE_CLOSED', 'ERR_BUSMQ_SERVICE_CLOSED'])
  assert.deepEqual(outcomes.federated, outcomes.native)
})

test('a federated server stream, as a native one: running counts the requests not yet answered, reply() resolves once the reply is stored, replyStream() throws for a one-value request', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const outcomes: Record<string, unknown[]> = {}
  for (const where of ['native', 'federated']) {
    const svc = uniqueName(`fedrunning-${where}`)
    const bus = where === 'native' ? server.bus : client
    const requests: any = bus.service(svc, { objectMode: true }).createServerStream({ concurrency: 4, reliable: true })
    await once(requests, 'ready')
    const native = server.bus.service<number, number>(svc, { objectMode: true })
    const replies = [1, 2, 3].map((n) => native.request(n, { timeout: 10_000, reliable: true }))
    const taken: any[] = []
    requests.on('data', (req: any) => taken.push(req))
    await eventually(() => taken.length === 3)
    const seen: unknown[] = [requests.running]
    let code: string | undefined
    try {
      taken[0].replyStream()
    } catch (err) {
      code = (err as { code?: string }).code
    }
    seen.push(code)
    for (const req of taken) {
      await req.reply(req.data * 10)
      // Stored (and the reliable request acked): nothing of it is left in flight in Redis.
      const stats = await native.requestQueue(true).stats()
      seen.push([requests.running, stats.inFlight])
    }
    seen.push(await Promise.all(replies))
    await requests.close()
    outcomes[where] = seen
  }
  assert.deepEqual(outcomes.native, [3, 'ERR_BUSMQ_INVALID_OPTION', [2, 2], [1, 1], [0, 0], [10, 20, 30]])
  assert.deepEqual(outcomes.federated, outcomes.native)
})

/** A native echo peer on `name` (reliable), ending its side when the other one has ended. */
function nativeEcho (bus: Bus, name: string): void {
  const native = bus.channel(name, { listen: true, objectMode: true, reliable: true })
  native.on('data', (m) => native.write(m))
  native.on('end', () => native.end())
}

async function assertChannelDrained (server: { bus: Bus }, name: string): Promise<void> {
  for (const side of ['local', 'remote']) {
    await eventually(async () => {
      const s = await server.bus.queue(`${name}:${side}`).stats()
      return s.length === 0 && s.inFlight === 0
    })
  }
}

test('reliable channel over federation: echo with a native reliable peer, whichever opens first; everything once, in order, acked', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const N = 1000
  for (const order of ['native first', 'federated first']) {
    const name = uniqueName('fedrelch')
    if (order === 'native first') nativeEcho(server.bus, name)
    const remote = client.channel(name, { objectMode: true, reliable: true })
    assert.equal(remote.reliable, true)
    const got = collect<number>(remote)
    for (let i = 0; i < N; i++) if (!remote.write(i)) await once(remote, 'drain')
    remote.end()
    if (order === 'federated first') nativeEcho(server.bus, name)
    assert.deepEqual(await got, Array.from({ length: N }, (_, i) => i), order)
    await assertChannelDrained(server, name)
  }
})

test('reliable channel over federation: sockets cut mid-stream twice, every message once, in order; manual acks, and what was not acked comes back', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { reconnectDelay: 10 })
  const name = uniqueName('fedrelchfault')
  nativeEcho(server.bus, name)
  const remote = client.channel(name, { objectMode: true, reliable: true })
  const got: number[] = []
  const N = 3000
  let drops = 0
  const ended = once(remote, 'end')
  remote.on('data', (m: number) => {
    got.push(m)
    if (got.length === 1000 || got.length === 2000) drops += server.dropSockets()
  })
  for (let i = 0; i < N; i++) if (!remote.write(i)) await once(remote, 'drain')
  remote.end()
  await ended
  assert.ok(drops >= 2, `sockets cut: ${drops}`)
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => i))
  await assertChannelDrained(server, name)

  // Manual acks: 10 arrive, 4 are acked, the channel goes; the other 6 come back to the next one.
  const manual = uniqueName('fedrelchmanual')
  const peer = server.bus.channel(manual, { listen: true, objectMode: true, reliable: true })
  // Leaving the loop destroys the first federated channel: its peer sees the abort, as natively.
  const peerFailed = once(peer, 'error')
  for (let i = 0; i < 10; i++) peer.write({ i })
  const first = client.channel(manual, { objectMode: true, reliable: true, ack: 'manual' })
  const firstGot: any[] = []
  const acked: boolean[] = []
  for await (const m of first) {
    firstGot.push(m)
    if (firstGot.length <= 4) acked.push(await m.ack())
    if (firstGot.length === 10) break
  }
  assert.deepEqual(firstGot.map((m) => [m.data.i, m.deliveries, m.redelivered]), Array.from({ length: 10 }, (_, i) => [i, 1, false]))
  assert.deepEqual(acked, [true, true, true, true])
  await eventually(() => first.closed)
  const second = client.channel(manual, { objectMode: true, reliable: true, ack: 'manual' })
  const again: any[] = []
  for await (const m of second) {
    again.push(m)
    await m.ack()
    if (again.length === 6) break
  }
  assert.deepEqual(again.map((m) => [m.data.i, m.deliveries]).sort((x, y) => x[0] - y[0]), [4, 5, 6, 7, 8, 9].map((i) => [i, 2]))
  assert.equal((await peerFailed)[0].code, 'ERR_BUSMQ_PEER_DESTROYED')
})

test('reliable channel over federation: a client back after resumeTimeout finds its channel left, not aborted; nothing is lost', async () => {
  // The server forgets a dropped stream after 100 ms; the client's first reconnection waits 250-500 ms.
  const server = await fedServer(redis.servers, { resumeTimeout: 100 })
  const client = await fedClient([server.url], { reconnectDelay: 500 })
  const name = uniqueName('fedrelchleft')
  const native = server.bus.channel(name, { listen: true, objectMode: true, reliable: true })
  const peerErrors: Error[] = []
  native.on('error', (err) => peerErrors.push(err))
  native.on('data', (m) => native.write(m))
  native.on('end', () => native.end())
  const remote = client.channel(name, { objectMode: true, reliable: true })
  const got: number[] = []
  const N = 2000
  let drops = 0
  const ended = once(remote, 'end')
  remote.on('data', (m: number) => {
    got.push(m)
    if (got.length === 700) drops += server.dropSockets()
  })
  for (let i = 0; i < N; i++) {
    // The second half is written after the cut: the conversation is still going when the server gives up.
    if (i === N / 2) await eventually(() => drops > 0)
    if (!remote.write(i)) await once(remote, 'drain')
  }
  remote.end()
  await ended
  assert.ok(drops >= 1, `sockets cut: ${drops}`)
  assert.deepEqual(peerErrors, [], 'the native peer saw no abort')
  // Reliable: at least once (what was on the wire when the server gave up may come twice).
  assert.deepEqual([...new Set(got)].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i))
  await assertChannelDrained(server, name)
})

test('batched acks: 3,000 messages acked by a federated reliable reader are all gone, none delivered again; nacks come back', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url])
  const name = uniqueName('fedacks')
  const native = server.bus.queue(name, { objectMode: true })
  const N = 3000
  const w = native.createWriteStream()
  for (let i = 0; i < N; i++) w.write({ i })
  w.end()
  await once(w, 'finish')
  const q = client.queue(name, { objectMode: true })
  // Every 500th is nacked on its first delivery: the same reader gets it again (ahead of newer ones).
  const nacked = Array.from({ length: N / 500 }, (_, k) => k * 500)
  const acks: Array<Promise<boolean>> = []
  const acked: number[] = []
  const redelivered: Array<[number, number]> = []
  for await (const m of q.createReadStream({ mode: 'reliable', max: N + nacked.length })) {
    if (m.redelivered) redelivered.push([m.data.i, m.deliveries])
    if (m.deliveries === 1 && m.data.i % 500 === 0) {
      await m.nack()
      continue
    }
    acked.push(m.data.i)
    acks.push(m.ack())
  }
  assert.deepEqual(await Promise.all(acks), acks.map(() => true))
  assert.deepEqual(acked.sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i))
  assert.deepEqual(redelivered.sort((a, b) => a[0] - b[0]), nacked.map((i) => [i, 2]))
  assert.deepEqual(await collect(q.createReadStream({ mode: 'reliable', untilEmpty: true })), [], 'nothing is delivered again')
  const stats = await native.stats()
  assert.deepEqual([stats.length, stats.inFlight], [0, 0])
})
