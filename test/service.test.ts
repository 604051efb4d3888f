// Services: request/response over the bus, against two real redis-servers (a direct layout with 2 shards),
// in one process. Processes that crash, 3 × 4 processes and a 100 MB streamed reply are in
// service-processes.test.ts; the Cluster layout in ha-cluster.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { Readable, Writable } from 'node:stream'
import {
  type ServiceRequest, RemoteError, RequestTimeoutError, ServiceClosedError, InvalidNameError,
  InvalidOptionError, EncodeError
} from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { collect, eventually, uniqueName } from './helpers/bus.js'
import { keysContaining, range, sleep, trackBuses } from './helpers/queue.js'

const redis = useRedis(2)
const openBus = trackBuses()

/** Keys on either shard whose name contains `part`. */
async function keysOnShards (part: string): Promise<string[]> {
  return (await Promise.all(redis.servers.map((s) => keysContaining(s, part)))).flat()
}

/** Rejects with `what` if `p` has not settled within `ms` (a hang is a failure, not a stuck test). */
async function within<T> (ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}

test('request/reply: 500 requests in flight, each answered by its own reply; the handler sees id, data, deadline, signal', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('svc')
  const seen: Array<ServiceRequest<{ n: number }, number>> = []
  const server = b.service<{ n: number }, number>(name, { objectMode: true }).serve((req) => {
    seen.push(req)
    return req.data.n * req.data.n
  })
  const svc = a.service<{ n: number }, number>(name, { objectMode: true })
  const before = Date.now()
  const replies = await Promise.all(range(0, 500).map((n) => svc.request({ n }, { timeout: 60_000 })))
  assert.deepEqual(replies, range(0, 500).map((n) => n * n))
  assert.equal(seen.length, 500)
  assert.equal(new Set(seen.map((r) => r.id)).size, 500, 'every request has its own id')
  for (const req of seen) {
    assert.equal(req.signal.aborted, false)
    assert.equal(req.replyWanted, true)
    assert.equal(req.streamed, false)
    assert.equal(req.deliveries, 1)
    // On this machine's clock (the shard's is converted), about the timeout after the call.
    assert.ok(req.deadline > before + 50_000 && req.deadline < Date.now() + 70_000, `deadline ${req.deadline - before} ms after the call`)
  }
  await server.close()
})

test('byte mode: Buffers go both ways byte for byte; a reply of undefined resolves undefined, null stays null', async () => {
  const bus = await openBus(redis.servers)
  const bytes = bus.service(uniqueName('bytes'))
  const server = bytes.serve((req) => Buffer.concat([req.data, Buffer.from([0, 255])]))
  const payload = Buffer.from([0, 1, 2, 250, 13, 10, 0])
  assert.deepEqual(await bytes.request(payload), Buffer.concat([payload, Buffer.from([0, 255])]))
  assert.deepEqual(await bytes.request(''), Buffer.from([0, 255]))
  const objects = bus.service(uniqueName('void'), { objectMode: true })
  const server2 = objects.serve((req) => req.data === 'undefined' ? undefined : null)
  assert.equal(await objects.request('undefined'), undefined)
  assert.equal(await objects.request('null'), null)
  await Promise.all([server.close(), server2.close()])
})

test('a handler that throws: the requester gets ERR_BUSMQ_REMOTE with the remote name, message and code, and a stack only if the server opts in', async () => {
  const bus = await openBus(redis.servers)
  const fail = (): never => {
    const err = new RangeError('out of thumbnails') as RangeError & { code: string }
    err.code = 'E_THUMBS'
    throw err
  }
  const quiet = bus.service(uniqueName('fail'), { objectMode: true })
  const s1 = quiet.serve(fail)
  const err = await quiet.request(1).then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof RemoteError)
  assert.equal(err.code, 'ERR_BUSMQ_REMOTE')
  assert.equal(err.remoteCode, 'E_THUMBS')
  assert.equal(err.remoteName, 'RangeError')
  assert.equal(err.remoteMessage, 'out of thumbnails')
  assert.equal(err.remoteStack, undefined)
  const open = bus.service(uniqueName('fail'), { objectMode: true })
  const s2 = open.serve(async () => { await sleep(1); fail() }, { exposeStack: true })
  const err2 = await open.request(1).then(() => undefined, (e: unknown) => e)
  assert.ok(err2 instanceof RemoteError)
  assert.match(err2.remoteStack ?? '', /RangeError: out of thumbnails\n\s+at fail/)
  // A reply the codec cannot encode fails the request the same way, with the encoder's code.
  const s3 = bus.service(uniqueName('bigint'), { objectMode: true })
  const s3s = s3.serve(() => 10n)
  await assert.rejects(s3.request(1), (e: RemoteError) => e.code === 'ERR_BUSMQ_REMOTE' && e.remoteCode === 'ERR_BUSMQ_ENCODE')
  await Promise.all([s1.close(), s2.close(), s3s.close()])
})

test('no server: the request times out with ERR_BUSMQ_REQUEST_TIMEOUT, and a server started later never runs it', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName('late-server')
  const svc = bus.service(name, { objectMode: true })
  await assert.rejects(svc.request({ n: 1 }, { timeout: 300 }), (e: Error) => e instanceof RequestTimeoutError && e.code === 'ERR_BUSMQ_REQUEST_TIMEOUT')
  assert.equal((await svc.stats()).waiting, 1, 'the request waited in the queue')
  const ran: unknown[] = []
  const server = svc.serve((req) => { ran.push(req.data) })
  assert.ok(await eventually(() => server.expired === 1), 'the server took the request and dropped it')
  assert.equal((await svc.stats()).waiting, 0)
  assert.deepEqual(ran, [])
  await server.close()
})

test('requests made before any server runs wait for one, until their deadline', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service(uniqueName('early'), { objectMode: true })
  const replies = Promise.all(range(0, 20).map((n) => svc.request(n, { timeout: 60_000 })))
  assert.ok(await eventually(async () => (await svc.stats()).waiting === 20))
  const server = svc.serve((req) => (req.data as number) + 1)
  assert.deepEqual(await replies, range(1, 21))
  await server.close()
})

test('a slow handler: the requester times out, the handler sees its signal abort, the late reply is dropped and counted, and no key of the request is left', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('slow')
  let aborted: unknown
  let ids: string[] = []
  let handlerDone!: () => void
  const done = new Promise<void>((resolve) => { handlerDone = resolve })
  const server = b.service(name, { objectMode: true }).serve(async (req) => {
    ids.push(req.id)
    await once(req.signal, 'abort')
    aborted = req.signal.reason
    // Replies anyway, after the deadline: a late reply.
    setImmediate(handlerDone)
    return 'late'
  })
  const svc = a.service(name, { objectMode: true })
  await assert.rejects(svc.request('x', { timeout: 500 }), RequestTimeoutError)
  await done
  assert.ok(aborted instanceof RequestTimeoutError, 'the signal aborts with the timeout as its reason')
  assert.ok(await eventually(() => svc.droppedReplies === 1), 'the late reply reached the requester and was dropped')
  // Replies travel on the bus's reply queue: the request itself has no key.
  assert.deepEqual(await keysOnShards(ids[0]), [])
  ids = []
  await server.close()
})

test('a late streamed reply leaves no key behind once its TTL has passed', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('slow-stream')
  const ttl = 500
  let id = ''
  const server = b.service(name, { objectMode: true, ttl }).serve(async function * (req) {
    id = req.id
    await once(req.signal, 'abort')
    yield 'too late'
    yield 'and again'
  })
  const svc = a.service(name, { objectMode: true, ttl })
  await assert.rejects(collect(svc.requestStream('x', { timeout: 400 })), RequestTimeoutError)
  assert.notEqual(id, '')
  assert.ok(await eventually(async () => (await keysOnShards(id)).length === 0, 10_000),
    `keys of the streamed reply are left: ${(await keysOnShards(id)).join(', ')}`)
  assert.ok(await eventually(() => server.running === 0, 10_000), 'the server stopped writing it')
  await server.close()
})

test('send(): the handler runs, nobody waits; the handler\'s errors and replies go nowhere', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service(uniqueName('send'), { objectMode: true })
  const got: unknown[] = []
  const server = svc.serve((req) => {
    got.push([req.data, req.replyWanted])
    if (req.data === 2) throw new Error('nobody hears this')
    return 'nobody reads this'
  })
  await svc.send(1)
  await svc.send(2)
  assert.ok(await eventually(() => got.length === 2 && server.running === 0))
  assert.deepEqual(got, [[1, false], [2, false]])
  assert.equal(svc.droppedReplies, 0)
  await server.close()
})

test('requestStream: a handler\'s async generator is a stream of its chunks; a value is a stream of one chunk', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service<number, number>(uniqueName('stream'), { objectMode: true })
  const server = svc.serve(async function * (req) {
    assert.equal(req.streamed, true)
    for (let i = 0; i < req.data; i++) yield i
  })
  assert.deepEqual(await collect(svc.requestStream(100)), range(0, 100))
  assert.deepEqual(await collect(svc.requestStream(0)), [])
  await server.close()
  const one = bus.service(uniqueName('one'), { objectMode: true })
  const server2 = one.serve((req) => ({ echo: req.data }))
  assert.deepEqual(await collect(one.requestStream('x')), [{ echo: 'x' }])
  await server2.close()
})

test('a streamed reply that fails: the requester reads what came before, then gets ERR_BUSMQ_REMOTE; request() to a streaming handler gets ERR_BUSMQ_REMOTE too', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service(uniqueName('stream-fail'), { objectMode: true })
  const server = svc.serve(async function * () {
    yield 'a'
    yield 'b'
    throw Object.assign(new Error('disk full'), { code: 'ENOSPC' })
  })
  const got: unknown[] = []
  const err = await (async () => {
    for await (const chunk of svc.requestStream('x')) got.push(chunk)
  })().then(() => undefined, (e: unknown) => e)
  assert.deepEqual(got, ['a', 'b'])
  assert.ok(err instanceof RemoteError)
  assert.equal(err.remoteCode, 'ENOSPC')
  await assert.rejects(svc.request('x'), (e: RemoteError) => e.code === 'ERR_BUSMQ_REMOTE' && e.remoteCode === 'ERR_BUSMQ_INVALID_OPTION')
  await server.close()
})

test('streamed replies keep backpressure: the handler is never more than the window ahead of a slow reader', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('backpressure')
  const hwm = 4
  let written = 0
  const server = b.service(name).serve((req) => {
    const w = req.replyStream()
    ;(async () => {
      for (let i = 0; i < 200; i++) {
        written++
        if (!w.write(Buffer.alloc(16 * 1024, i % 256))) await once(w, 'drain')
      }
      w.end()
    })().catch(() => {})
    return undefined
  })
  const reader = a.service(name).requestStream('go', { highWaterMark: hwm })
  let read = 0
  let maxAhead = 0
  for await (const chunk of reader) {
    assert.equal((chunk as Buffer)[0], read % 256)
    read++
    maxAhead = Math.max(maxAhead, written - read)
    if (read % 10 === 0) await sleep(20)
  }
  assert.equal(read, 200)
  // The reader's buffer (hwm), Redis (2 × hwm) and the writer's buffer (256 KiB: 16 such chunks) bound
  // what the handler may have written ahead.
  const bound = hwm + 2 * hwm + 16 + 2
  assert.ok(maxAhead <= bound, `the handler ran ${maxAhead} chunks ahead of the reader (bound ${bound})`)
  assert.ok(maxAhead < 200 - 10, 'the handler waited for the reader')
  await server.close()
})

test('destroying a streamed reply early stops the server\'s writer and drops what it stored', async () => {
  const [a, b] = [await openBus(redis.servers, { pollInterval: 100 }), await openBus(redis.servers, { pollInterval: 100 })]
  const name = uniqueName('cancel')
  let id = ''
  let closedEarly = false
  const server = b.service(name, { objectMode: true }).serve((req) => {
    id = req.id
    const w = req.replyStream()
    let i = 0
    const more = (): void => {
      while (i < 1_000_000) {
        if (!w.write(i++)) return
      }
      w.end()
    }
    w.on('drain', more)
    w.on('close', () => { closedEarly = !w.writableFinished })
    more()
  })
  const reader = a.service(name, { objectMode: true }).requestStream('go', { highWaterMark: 8 })
  const first: unknown[] = []
  for await (const chunk of reader) {
    first.push(chunk)
    if (first.length === 20) break
  }
  assert.deepEqual(first, range(0, 20))
  assert.ok(await eventually(() => closedEarly && server.running === 0, 20_000), 'the handler\'s stream closed before its end')
  assert.ok(await eventually(async () => (await keysOnShards(`${id}}:m`)).length === 0), 'the chunks stored ahead are gone')
  await server.close()
})

test('createTransform: 16 requests in flight at most, replies in the order of the requests', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('transform')
  let running = 0
  let most = 0
  // The first 16 requests wait until 16 run at once: fewer in flight would hang the test, more would show.
  let allIn!: () => void
  const sixteen = new Promise<void>((resolve) => { allIn = resolve })
  const server = b.service<number, number>(name, { objectMode: true }).serve(async (req) => {
    running++
    most = Math.max(most, running)
    if (running === 16) allIn()
    if (req.data < 16) await sixteen
    // Later requests often finish first.
    await sleep((req.data * 7919) % 13)
    running--
    return req.data * 2
  }, { concurrency: 64 })
  const out: number[] = []
  await pipeline(
    Readable.from(range(0, 400)),
    a.service<number, number>(name, { objectMode: true }).createTransform({ concurrency: 16 }),
    new Writable({ objectMode: true, write (n: number, _e, cb) { out.push(n); cb() } })
  )
  assert.deepEqual(out, range(0, 400).map((n) => n * 2))
  assert.equal(most, 16, 'exactly 16 requests were in flight at the busiest')
  await server.close()
})

test('createTransform({ ordered: false }) gives every reply, as they come; a failed request fails the stream', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service<number, number>(uniqueName('unordered'), { objectMode: true })
  const server = svc.serve(async (req) => {
    await sleep((req.data * 31) % 7)
    if (req.data === 1000) throw new Error('no')
    return req.data
  })
  const out = await collect<number>(Readable.from(range(0, 100)).pipe(svc.createTransform({ ordered: false }) as any))
  assert.deepEqual([...out].sort((x, y) => x - y), range(0, 100))
  await assert.rejects(pipeline(Readable.from([1, 1000, 2]), svc.createTransform(), new Writable({ objectMode: true, write (_c, _e, cb) { cb() } })),
    RemoteError)
  await server.close()
})

test('demand-driven: a busy server takes no more than its concurrency; an idle one elsewhere gets the rest', async () => {
  const [a, b, c] = [await openBus(redis.servers), await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('demand')
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const byA: unknown[] = []
  const byB: unknown[] = []
  const serverA = a.service(name, { objectMode: true }).serve(async (req) => {
    byA.push(req.data)
    await gate
    return 'a'
  }, { concurrency: 2 })
  const svc = c.service(name, { objectMode: true })
  const first = [svc.request(0), svc.request(1)]
  assert.ok(await eventually(() => byA.length === 2), 'A took 2')
  const rest = range(2, 30).map((n) => svc.request(n, { timeout: 60_000 }))
  assert.ok(await eventually(async () => (await svc.stats()).waiting === 28), 'A, busy, left the rest in Redis')
  const serverB = b.service(name, { objectMode: true }).serve((req) => { byB.push(req.data); return 'b' }, { concurrency: 4 })
  assert.deepEqual(await Promise.all(rest), range(2, 30).map(() => 'b'))
  assert.deepEqual(byA, [0, 1], 'A took nothing while it was busy')
  release()
  assert.deepEqual(await Promise.all(first), ['a', 'a'])
  await Promise.all([serverA.close(), serverB.close()])
})

test('close({ grace }): running handlers finish within the grace and are answered; requests not taken stay for another server', async () => {
  const [a, b, c] = [await openBus(redis.servers), await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('grace')
  let started = 0
  const server = a.service(name, { objectMode: true }).serve(async (req) => {
    started++
    await sleep(200)
    return `a${req.data as number}`
  }, { concurrency: 2 })
  const svc = c.service(name, { objectMode: true })
  const replies = range(0, 6).map((n) => svc.request(n, { timeout: 60_000 }))
  assert.ok(await eventually(() => started === 2))
  await server.close({ grace: 30_000 })
  assert.equal(started, 2, 'nothing was started after close()')
  assert.equal((await svc.stats()).waiting, 4, 'the 4 requests not taken are in Redis')
  const other = b.service(name, { objectMode: true }).serve((req) => `b${req.data as number}`)
  const got = await Promise.all(replies)
  assert.deepEqual(got.filter((r) => r.startsWith('a')).length, 2)
  assert.deepEqual(got.filter((r) => r.startsWith('b')).length, 4)
  await other.close()
})

test('close() after the grace: handlers still running see their signal abort, their requesters get ERR_BUSMQ_SERVICE_CLOSED', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('grace-over')
  const reasons: unknown[] = []
  const server = a.service(name, { objectMode: true }).serve(async (req) => {
    await once(req.signal, 'abort')
    reasons.push(req.signal.reason)
    return 'too late'
  }, { concurrency: 3 })
  const svc = b.service(name, { objectMode: true })
  const pending = range(0, 3).map((n) => svc.request(n, { timeout: 60_000 }).then(() => 'replied', (e: Error) => e))
  assert.ok(await eventually(() => server.running === 3))
  const streamed = collect(svc.requestStream('s', { timeout: 60_000 })).then(() => 'ended', (e: Error) => e)
  await sleep(100)
  await server.close({ grace: 50 })
  for (const r of await Promise.all(pending)) assert.ok(r instanceof ServiceClosedError && r.code === 'ERR_BUSMQ_SERVICE_CLOSED', String(r))
  assert.equal(reasons.length, 3)
  for (const r of reasons) assert.ok(r instanceof ServiceClosedError)
  // The streamed request was not taken (3 slots were busy): it waits for another server.
  const other = a.service(name, { objectMode: true }).serve(() => 'by another')
  assert.equal(await streamed, 'ended')
  await other.close()
})

test('reliable: a server closed after its grace gives its requests back, another reliable server answers them, once', async () => {
  const [a, b, c] = [await openBus(redis.servers), await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('reliable-close')
  const first = a.service(name, { objectMode: true, reliable: true }).serve(async (req) => {
    await once(req.signal, 'abort')
    return 'from the closed server'
  }, { concurrency: 4 })
  const svc = c.service(name, { objectMode: true, reliable: true })
  const replies = Promise.all(range(0, 4).map((n) => svc.request(n, { timeout: 60_000 })))
  assert.ok(await eventually(() => first.running === 4))
  await first.close({ grace: 0 })
  const deliveries: number[] = []
  const second = b.service(name, { objectMode: true, reliable: true }).serve((req) => {
    deliveries.push(req.deliveries)
    return `answered ${req.data as number}`
  })
  assert.deepEqual(await replies, range(0, 4).map((n) => `answered ${n}`))
  assert.deepEqual(deliveries, [2, 2, 2, 2], 'each delivered again, once')
  // The first server's handlers returned after the abort: their late replies were not sent.
  await sleep(200)
  assert.equal(svc.droppedReplies, 0)
  await second.close()
})

test('reliable requests go to reliable servers only, plain ones to plain servers', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName('modes')
  const plain = bus.service(name, { objectMode: true }).serve(() => 'plain')
  const reliable = bus.service(name, { objectMode: true }).serve(() => 'reliable', { reliable: true })
  const svc = bus.service(name, { objectMode: true })
  assert.deepEqual(await Promise.all(range(0, 10).map(() => svc.request(0))), range(0, 10).map(() => 'plain'))
  assert.deepEqual(await Promise.all(range(0, 10).map(() => svc.request(0, { reliable: true }))), range(0, 10).map(() => 'reliable'))
  const stats = await svc.stats()
  assert.equal(stats.servers, 2)
  assert.equal(stats.reliableServers, 1)
  await Promise.all([plain.close(), reliable.close()])
})

test('the server stream: requests as a Readable, each answered; leaving the loop gives back what was buffered', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('server-stream')
  const svc = b.service<number, number>(name, { objectMode: true })
  const replies = Promise.all(range(0, 10).map((n) => svc.request(n, { timeout: 60_000 })))
  const requests = a.service<number, number>(name, { objectMode: true }).createServerStream({ concurrency: 4 })
  let answered = 0
  for await (const req of requests) {
    await req.reply(req.data * 10)
    if (++answered === 6) break
  }
  // Up to 3 more were taken into its buffer, unhanded: back in the queue now.
  assert.ok(await eventually(async () => (await svc.stats()).waiting === 4), 'the 4 unanswered requests are waiting')
  const rest = svc.createServerStream()
  rest.on('data', (req: ServiceRequest<number, number>) => { req.reply(req.data * 10).catch(() => {}) })
  assert.deepEqual(await replies, range(0, 10).map((n) => n * 10))
  await rest.close()
})

test('server stream: fail() answers ERR_BUSMQ_REMOTE; replyStream() streams; a request answered twice keeps the first answer', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service(uniqueName('server-stream-2'), { objectMode: true })
  const requests = svc.createServerStream()
  requests.on('data', (req: ServiceRequest) => {
    if (req.data === 'fail') req.fail(new TypeError('bad')).catch(() => {})
    else if (req.streamed) {
      const w = req.replyStream()
      w.write(1)
      w.end(2)
    } else {
      req.reply('first').then(() => req.reply('second')).catch(() => {})
    }
  })
  await assert.rejects(svc.request('fail'), (e: RemoteError) => e.remoteName === 'TypeError' && e.remoteMessage === 'bad')
  assert.deepEqual(await collect(svc.requestStream('s')), [1, 2])
  assert.equal(await svc.request('twice'), 'first')
  await sleep(100)
  assert.equal(svc.droppedReplies, 0, 'the second answer was never sent')
  await requests.close()
})

test('two shards: services, reply queues and streamed replies land on either shard, and all of it works', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const names = range(0, 8).map(() => uniqueName('spread'))
  const owners = new Set(names.map((n) => a.ownerOf(`svc:${n}`).id))
  assert.equal(owners.size, 2, 'the names spread over both shards')
  const servers = names.map((n) => b.service(n, { objectMode: true }).serve(async function * (req) {
    if (req.streamed) {
      yield n
      yield req.data
    } else {
      return `${n}:${req.data as string}`
    }
  }))
  for (const n of names) {
    const svc = a.service(n, { objectMode: true })
    await assert.rejects(svc.request('x'), RemoteError)
    assert.deepEqual(await collect(svc.requestStream('y')), [n, 'y'])
  }
  const svc = a.service(names[0], { objectMode: true })
  assert.equal((await svc.stats()).shard, a.ownerOf(`svc:${names[0]}`).id)
  await Promise.all(servers.map((s) => s.close()))
})

test('bad input fails at the call with a coded error, before anything is sent', async () => {
  const bus = await openBus(redis.servers)
  assert.throws(() => bus.service('bad name'), InvalidNameError)
  assert.throws(() => bus.service('a{b}'), InvalidNameError)
  assert.throws(() => bus.service('ok', { timeout: 0 }), InvalidOptionError)
  assert.throws(() => bus.service('ok', { reliable: 'yes' as unknown as boolean }), InvalidOptionError)
  const svc = bus.service(uniqueName('bad'), { objectMode: true })
  assert.throws(() => svc.serve('not a function' as unknown as () => void), InvalidOptionError)
  assert.throws(() => svc.serve(() => 1, { concurrency: 0 }), InvalidOptionError)
  assert.throws(() => svc.createServerStream({ lease: 1 }), InvalidOptionError)
  await assert.rejects(svc.request(1, { timeout: -1 }), InvalidOptionError)
  await assert.rejects(svc.request(10n), EncodeError)
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  await assert.rejects(svc.request(cyclic), (e: Error & { code?: string }) => e.code === 'ERR_BUSMQ_ENCODE')
  await assert.rejects(svc.send(10n), EncodeError)
  assert.throws(() => svc.requestStream(10n), EncodeError)
  assert.throws(() => svc.createTransform({ concurrency: 1.5 }), InvalidOptionError)
  const big = bus.service(uniqueName('big'))
  await assert.rejects(big.request(Buffer.alloc(bus.settings.maxMessageSize)), (e: Error & { code?: string }) => e.code === 'ERR_BUSMQ_MESSAGE_TOO_LARGE')
  const stats = await svc.stats()
  assert.equal(stats.waiting, 0, 'nothing was sent')
  assert.equal(stats.ttl, -2, 'not even a key was made')
})

test('stats(): servers, their concurrency, running and waiting requests', async () => {
  const bus = await openBus(redis.servers)
  const svc = bus.service(uniqueName('stats'), { objectMode: true })
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const s1 = svc.serve(async () => { await gate }, { concurrency: 2 })
  const s2 = svc.serve(async () => { await gate }, { concurrency: 3 })
  const pending = range(0, 7).map(() => svc.request(0, { timeout: 60_000 }))
  assert.ok(await eventually(async () => {
    const s = await svc.stats()
    return s.servers === 2 && s.concurrency === 5 && s.running === 5 && s.waiting === 2
  }), JSON.stringify(await svc.stats()))
  release()
  await Promise.all(pending)
  await Promise.all([s1.close(), s2.close()])
  const after = await svc.stats()
  assert.equal(after.servers, 0, 'closed servers leave the list at once')
})

test('bus.close() while requests wait: they reject with ERR_BUSMQ_CLOSED; a server\'s bus closing answers its running requests ERR_BUSMQ_SERVICE_CLOSED', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('bus-close')
  const server = b.service(name, { objectMode: true }).serve(() => new Promise(() => {}), { concurrency: 1 })
  const svc = a.service(name, { objectMode: true })
  const running = svc.request(1, { timeout: 60_000 }).then(() => 'replied', (e: Error) => e)
  assert.ok(await eventually(() => server.running === 1))
  await b.close()
  const r = await within(20_000, 'the running request', running)
  assert.ok(r instanceof ServiceClosedError, String(r))
  const waiting = svc.request(2, { timeout: 60_000 }).then(() => 'replied', (e: Error) => e)
  await sleep(50)
  await a.close()
  const w = await within(20_000, 'the waiting request', waiting)
  assert.equal((w as Error & { code?: string }).code, 'ERR_BUSMQ_CLOSED')
})

test('a requesting bus that closes leaves nothing in the request queue, which servers keep alive', async () => {
  const [a, b] = [await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('records')
  const server = a.service(name, { objectMode: true }).serve((req) => req.data)
  const svc = b.service(name, { objectMode: true })
  assert.deepEqual(await Promise.all(range(0, 10).map((n) => svc.request(n))), range(0, 10))
  const shard = (await svc.stats()).shard
  const redisOf = redis.servers.find((s) => shard.startsWith(`127.0.0.1:${s.port}/`))!
  const fields = async (): Promise<string[]> => (await redisOf.cli('HKEYS', `busmq:svc:{${name}}:i`)).split('\n')
  assert.ok((await fields()).some((f) => /^p/.test(f)), 'a push leaves its producer\'s record while the bus is open')
  await b.close()
  assert.deepEqual((await fields()).filter((f) => /^p/.test(f)), [], 'the record is gone with the bus')
  await server.close()
})

test('reliable streamed replies: one given back before it started is streamed whole by the next server; one given back half-way fails with ERR_BUSMQ_SERVICE_CLOSED after what it had sent', async () => {
  const [a, b, c] = [await openBus(redis.servers), await openBus(redis.servers), await openBus(redis.servers)]
  const name = uniqueName('reliable-stream')
  const first = a.service(name, { objectMode: true, reliable: true }).serve(async (req) => {
    if (req.data === 'half') {
      const w = req.replyStream()
      w.write('one')
      w.write('two')
    }
    await once(req.signal, 'abort')
  }, { concurrency: 2 })
  const svc = c.service(name, { objectMode: true, reliable: true })
  const whole = collect(svc.requestStream('whole', { timeout: 60_000 }))
  const half: unknown[] = []
  const halfDone = (async () => {
    for await (const chunk of svc.requestStream('half', { timeout: 60_000 })) half.push(chunk)
  })().then(() => 'ended', (e: Error) => e)
  assert.ok(await eventually(() => first.running === 2 && half.length === 2), 'the first server runs both, and started one')
  await first.close({ grace: 0 })
  const second = b.service(name, { objectMode: true, reliable: true }).serve(async function * (req) {
    yield `${req.data as string} 1`
    yield `${req.data as string} 2`
  })
  assert.deepEqual(await whole, ['whole 1', 'whole 2'])
  const end = await halfDone
  assert.deepEqual(half, ['one', 'two'], 'nothing of the second server\'s reply was mixed in')
  assert.ok(end instanceof ServiceClosedError, String(end))
  await second.close()
})
