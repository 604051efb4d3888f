// busmq/classic services (BusMQ 3.1's API) on the direct layout: serve/connect events, a reply, several
// (partial) replies, a streamed reply, no reply, a remote error, a timeout, serve with max, graceful
// disconnect of a server and of a requester, promisify.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Readable } from 'node:stream'
import { useRedis } from './helpers/redis-server.js'
import { eventually, nextEvent, uniqueName } from './helpers/bus.js'
import { classicBus, record } from './helpers/classic.js'
import type { ClassicBus, ClassicReply, ClassicService } from '../lib/classic/index.js'

const redis = useRedis(1)

/** A server (its own bus) and a connected requester (another bus) of one service. */
async function pair (handler: (request: any, reply: ClassicReply) => void, serveOptions?: { max?: number }): Promise<{
  server: ClassicService, requester: ClassicService, serverBus: ClassicBus, requesterBus: ClassicBus
}> {
  const [serverBus, requesterBus] = await Promise.all([classicBus(redis.servers), classicBus(redis.servers)])
  const name = uniqueName('svc')
  const server = serverBus.service(name)
  server.on('request', handler)
  await new Promise<void>((resolve) => serveOptions ? server.serve(serveOptions, resolve) : server.serve(resolve))
  const requester = requesterBus.service(name)
  await new Promise<void>((resolve) => requester.connect(resolve))
  return { server, requester, serverBus, requesterBus }
}

/** request() as a promise of [err, reply]. */
async function ask (requester: ClassicService, data: unknown, options: Record<string, unknown> = {}): Promise<[Error | null, any]> {
  return await new Promise((resolve) => requester.request(data, options, (err, reply) => resolve([err, reply])))
}

async function readAll (stream: Readable): Promise<unknown[]> {
  const out: unknown[] = []
  for await (const chunk of stream) out.push(chunk)
  return out
}

test('serve emits serving (and calls back); connect emits connected (and calls back); a request gets its reply', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('svc')
  const server = bus.service(name)
  const seen = record(server, ['serving'])
  server.on('request', (request, reply) => reply(null, { thisis: `a reply to ${request.hello}` }))
  await new Promise<void>((resolve) => server.serve(resolve))
  assert.deepEqual(seen, [['serving']])
  assert.equal(server.isServing(), true)
  const requester = bus.service(name)
  const connected = nextEvent(requester, 'connected')
  await new Promise<void>((resolve) => requester.connect({ reqTimeout: 5000 }, resolve))
  await connected
  assert.equal(requester.isConnected(), true)
  assert.deepEqual(await ask(requester, { hello: 'world' }), [null, { thisis: 'a reply to world' }])
  assert.deepEqual(await ask(requester, 'plain string'), [null, { thisis: 'a reply to undefined' }])
})

test('a service object either serves or requests: the other call emits error', async () => {
  const bus = await classicBus(redis.servers)
  const s = bus.service(uniqueName('svc'))
  s.serve()
  const e1 = nextEvent(s, 'error')
  s.connect()
  assert.equal((await e1)[0].message, 'already serving')
  const r = bus.service(uniqueName('svc'))
  r.connect()
  const e2 = nextEvent(r, 'error')
  r.serve()
  assert.equal((await e2)[0].message, 'already connected')
  assert.equal((await e2)[0].code, 'ERR_BUSMQ_CLASSIC_USAGE')
})

test('a streamed reply: reply.createWriteStream() chunks reach the requester as a Readable (streamReply)', async () => {
  const { requester } = await pair((request, reply) => {
    const st = reply.createWriteStream()
    for (let i = 1; i <= request.count; i++) st.write({ chunk: i })
    st.end()
  })
  const [err, stream] = await ask(requester, { count: 3 }, { streamReply: true, reqTimeout: 5000 })
  assert.equal(err, null)
  assert.deepEqual(await readAll(stream), [{ chunk: 1 }, { chunk: 2 }, { chunk: 3 }])
})

test('several replies: reply(null, value, true) sends a part, the last reply(null, value) ends the streamed reply', async () => {
  const { requester } = await pair((_request, reply) => {
    reply(null, 'first', true)
    reply(null, 'second', true)
    reply(null, 'last')
    reply(null, 'ignored: the reply is over')
  })
  const [err, stream] = await ask(requester, 'go', { streamReply: true, reqTimeout: 5000 })
  assert.equal(err, null)
  assert.deepEqual(await readAll(stream), ['first', 'second', 'last'])
  // A plain request gets the first reply only.
  assert.deepEqual(await ask(requester, 'go', { reqTimeout: 5000 }), [null, 'first'])
})

test('a request without a callback wants no reply: the handler still gets it and calls reply() to finish', async () => {
  const got: unknown[] = []
  const { requester } = await pair((request, reply) => {
    got.push(request)
    reply()
  })
  requester.request({ fire: 'and forget' })
  requester.request('twice')
  await eventually(() => got.length === 2)
  assert.deepEqual(got, [{ fire: 'and forget' }, 'twice'])
})

test('reply(err) reaches the requester as err (ERR_BUSMQ_REMOTE with the message the server gave)', async () => {
  const { requester } = await pair((request, reply) => {
    if (request === 'string') reply('bad request')
    else reply(Object.assign(new Error('broken'), { code: 'E_BROKEN' }))
  })
  const [e1] = await ask(requester, 'string', { reqTimeout: 5000 })
  assert.equal((e1 as any).code, 'ERR_BUSMQ_REMOTE')
  assert.equal((e1 as any).remoteMessage, 'bad request')
  const [e2] = await ask(requester, 'error', { reqTimeout: 5000 })
  assert.equal((e2 as any).remoteMessage, 'broken')
  assert.equal((e2 as any).remoteCode, 'E_BROKEN')
})

test('a request nobody answers in reqTimeout ms calls back with a timeout error (ERR_BUSMQ_REQUEST_TIMEOUT)', async () => {
  const { requester } = await pair(() => { /* never replies */ })
  const [err, reply] = await ask(requester, 'hello?', { reqTimeout: 200 })
  assert.equal((err as any).code, 'ERR_BUSMQ_REQUEST_TIMEOUT')
  assert.equal(reply, undefined)
  // A streamed request that never starts: the callback gets the error, no stream.
  const [err2, stream] = await ask(requester, 'hello?', { reqTimeout: 200, streamReply: true })
  assert.equal((err2 as any).code, 'ERR_BUSMQ_REQUEST_TIMEOUT')
  assert.equal(stream, undefined)
})

test('reqTimeout 0 (connect or request) means the default timeout, as in 3.1: the reply arrives', async () => {
  const { requester, requesterBus } = await pair((request, reply) => reply(null, `re: ${request}`))
  assert.deepEqual(await ask(requester, 'one', { reqTimeout: 0 }), [null, 're: one'])
  const other = requesterBus.service(requester.name)
  await new Promise<void>((resolve) => other.connect({ reqTimeout: 0 }, resolve))
  assert.deepEqual(await ask(other, 'two'), [null, 're: two'])
})

test('serve({ max }) handles max requests, then stops serving; the others wait for another server', async () => {
  const handled: unknown[] = []
  const { requester, serverBus, server } = await pair((request, reply) => {
    handled.push(request)
    reply(null, `first server: ${String(request)}`)
  }, { max: 2 })
  const replies = Promise.all([1, 2, 3, 4].map(async (n) => await ask(requester, n, { reqTimeout: 10_000 })))
  await eventually(() => handled.length === 2)
  await eventually(() => !server.isServing())
  const second = serverBus.service(server.name)
  second.on('request', (request, reply) => reply(null, `second server: ${String(request)}`))
  second.serve()
  const answers = (await replies).map(([err, reply]) => { assert.equal(err, null); return reply as string })
  assert.equal(handled.length, 2)
  assert.equal(answers.filter((a) => a.startsWith('first server')).length, 2)
  assert.equal(answers.filter((a) => a.startsWith('second server')).length, 2)
})

test('graceful disconnect: the server takes no new requests, the running one finishes within the grace, then disconnect', async () => {
  let finish: (() => void) | undefined
  const { server, requester } = await pair((request, reply) => {
    finish = () => reply(null, `done ${String(request)}`)
  })
  const running = ask(requester, 'slow', { reqTimeout: 10_000 })
  await eventually(() => finish !== undefined)
  const seen = record(server, ['disconnect'])
  server.disconnect(10_000)
  assert.equal(server.isServing(), false)
  finish!()
  assert.deepEqual(await running, [null, 'done slow'])
  await eventually(() => seen.length === 1)
  assert.deepEqual(seen, [['disconnect']])
})

test('disconnect without grace: a request still running is answered ERR_BUSMQ_SERVICE_CLOSED', async () => {
  let started = false
  const { server, requester } = await pair(() => { started = true })
  const running = ask(requester, 'slow', { reqTimeout: 10_000 })
  await eventually(() => started)
  server.disconnect()
  const [err] = await running
  assert.equal((err as any).code, 'ERR_BUSMQ_SERVICE_CLOSED')
})

test('a requester\'s disconnect(grace) waits for the replies on their way, then emits disconnect; later requests are ignored', async () => {
  let finish: (() => void) | undefined
  const { requester } = await pair((_request, reply) => { finish = () => reply(null, 'late but in grace') })
  const running = ask(requester, 'x', { reqTimeout: 10_000 })
  await eventually(() => finish !== undefined)
  const disconnected = nextEvent(requester, 'disconnect')
  requester.disconnect(10_000)
  let ignored = true
  requester.request('after disconnect', () => { ignored = false })
  finish!()
  assert.deepEqual(await running, [null, 'late but in grace'])
  await disconnected
  assert.equal(requester.isConnected(), false)
  assert.equal(ignored, true)
})

test('promisify(): serve, connect and request return promises', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('svc')
  const server = bus.service(name).promisify()
  server.on('request', (request, reply) => reply(null, request * 2))
  await (server.serve as unknown as () => Promise<void>)()
  const requester = bus.service(name).promisify()
  await (requester.connect as unknown as (o: object) => Promise<void>)({ reqTimeout: 5000 })
  assert.equal(await (requester.request as unknown as (d: unknown) => Promise<number>)(21), 42)
})
