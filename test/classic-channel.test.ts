// busmq/classic channels (BusMQ 3.1's API) on the direct layout: both connection orders, remote events,
// end() ending both sides, disconnect() keeping the channel, reliable channels with ack, sendTo, promisify.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useRedis } from './helpers/redis-server.js'
import { nextEvent, uniqueName } from './helpers/bus.js'
import { call, classicBus, messages, record, connectPair } from './helpers/classic.js'
import type { ClassicBus } from '../lib/classic/index.js'

const redis = useRedis(1)

for (const order of ['listener first', 'connector first'] as const) {
  test(`default roles, ${order}: connect, remote:connect, messages both ways`, async () => {
    const busA = await classicBus(redis.servers)
    const busB = await classicBus(redis.servers)
    const name = uniqueName('ch')
    const server = busA.channel(name)
    const client = busB.channel(name)
    const serverSeen = record(server, ['connect', 'remote:connect'])
    const clientSeen = record(client, ['connect', 'remote:connect'])
    const first = order === 'listener first' ? server : client
    const second = order === 'listener first' ? client : server
    const open = (c: typeof server): void => { if (c === server) c.listen(); else c.connect() }
    open(first)
    await nextEvent(first, 'connect')
    const remote = [nextEvent(server, 'remote:connect'), nextEvent(client, 'remote:connect')]
    open(second)
    await Promise.all(remote)
    assert.deepEqual(serverSeen, [['connect'], ['remote:connect']])
    assert.deepEqual(clientSeen, [['connect'], ['remote:connect']])
    assert.equal(server.isAttached(), true)
    const toServer = messages(server, 2)
    const toClient = messages(client, 1)
    client.send('hello server!')
    client.send({ n: 2 })
    server.send('hello client!')
    assert.deepEqual((await toServer).map(([m]) => m), ['hello server!', '{"n":2}'])
    assert.deepEqual((await toClient).map(([m]) => m), ['hello client!'])
  })
}

test('explicit roles: both peers connect(); what one sends before the other arrives waits for it', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('ch')
  const server = bus.channel(name, 'server', 'client')
  server.connect()
  await nextEvent(server, 'connect')
  const ids: Array<number | null> = []
  for (const m of ['one', 'two']) ids.push(await call((cb) => server.send(m, cb)))
  assert.deepEqual(ids, [1, 2])
  const client = bus.channel(name, 'client', 'server')
  const got = messages(client, 2)
  client.connect()
  assert.deepEqual((await got).map(([m]) => m), ['one', 'two'])
})

test('connecting twice emits error "cannot connect: channel is already bound"; send() before connect is ignored', async () => {
  const bus = await classicBus(redis.servers)
  const c = bus.channel(uniqueName('ch'))
  let called = false
  c.send('nowhere', () => { called = true })
  assert.equal(c.isAttached(), false)
  c.connect()
  const error = nextEvent(c, 'error')
  c.connect()
  const [err] = await error
  assert.equal(err.code, 'ERR_BUSMQ_CLASSIC_USAGE')
  assert.equal(err.message, 'cannot connect: channel is already bound')
  assert.equal(called, false)
})

test('end() ends both sides: the ender gets disconnect; the peer gets the messages before it, then disconnect, then end', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('ch')
  const a = bus.channel(name)
  const b = bus.channel(name)
  await connectPair(a, b)
  const aSeen = record(a, ['disconnect', 'end', 'message'])
  const bSeen = record(b, ['disconnect', 'end', 'message'])
  a.send('last words')
  a.end()
  await Promise.all([nextEvent(a, 'disconnect'), nextEvent(b, 'end')])
  assert.deepEqual(aSeen, [['disconnect']])
  assert.deepEqual(bSeen, [['message', 'last words'], ['disconnect'], ['end']])
  assert.equal(a.isAttached(), false)
  assert.equal(b.isAttached(), false)
})

test('disconnect(): the peer sees remote:disconnect and keeps sending; a later peer with the same roles gets it', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('ch')
  const a = bus.channel(name)
  const b = bus.channel(name)
  await connectPair(a, b)
  const gone = nextEvent(b, 'remote:disconnect')
  const seen = record(a, ['disconnect', 'end'])
  a.disconnect()
  await nextEvent(a, 'disconnect')
  await gone
  assert.deepEqual(seen, [['disconnect']])
  await call((cb) => b.send('while you were away', cb))
  const again = bus.channel(name)
  const got = messages(again, 1)
  const back = nextEvent(b, 'remote:connect')
  again.connect()
  assert.deepEqual((await got).map(([m]) => m), ['while you were away'])
  await back
})

/** A listening peer of a new channel on `bus` that has sent 'a', 'b', 'c' (ids 1, 2, 3): the channel's name. */
async function sentThree (bus: ClassicBus): Promise<string> {
  const name = uniqueName('ch')
  const sender = bus.channel(name)
  sender.listen()
  for (const m of ['a', 'b', 'c']) await call((cb) => sender.send(m, cb))
  return name
}

test('reliable channel: messages come with ids; what was not acked comes back to the next peer with the same roles', async () => {
  const bus = await classicBus(redis.servers)
  const name = await sentThree(bus)
  const first = bus.channel(name)
  const got = messages(first, 3)
  first.connect({ reliable: true })
  assert.deepEqual(await got, [['a', 1], ['b', 2], ['c', 3]])
  await call((cb) => first.ack(1, cb))
  first.disconnect()
  await nextEvent(first, 'disconnect')
  const second = bus.channel(name)
  const again = messages(second, 2)
  second.connect({ reliable: true })
  assert.deepEqual(await again, [['b', 2], ['c', 3]])
  await call((cb) => second.ack(3, cb))
})

test('reliable channel with last: messages up to last are discarded (not delivered again), the rest delivered', async () => {
  const bus = await classicBus(redis.servers)
  const name = await sentThree(bus)
  const first = bus.channel(name)
  const got = messages(first, 1)
  first.connect({ reliable: true, last: 2 })
  assert.deepEqual(await got, [['c', 3]])
  first.disconnect()
  await nextEvent(first, 'disconnect')
  // a and b were acked by last; c was not acked: only c comes back.
  const second = bus.channel(name)
  const again = messages(second, 1)
  second.connect({ reliable: true })
  assert.deepEqual(await again, [['c', 3]])
  await call((cb) => second.ack(3, cb))
})

test('connect({ ttl: 0 }) takes the default ttl, as 3.1 does (no error)', async () => {
  const bus = await classicBus(redis.servers)
  const c = bus.channel(uniqueName('ch'))
  const seen = record(c, ['connect', 'error'])
  c.connect({ ttl: 0 })
  await nextEvent(c, 'connect')
  assert.deepEqual(seen, [['connect']])
})

test('sendTo(endpoint) sends to a role without connecting; promisify() makes send, sendTo and ack return promises', async () => {
  const bus = await classicBus(redis.servers)
  const name = uniqueName('ch')
  const outsider = bus.channel(name).promisify()
  const sendTo = outsider.sendTo as unknown as (endpoint: string, message: unknown) => Promise<number>
  assert.equal(await sendTo('local', 'knock knock'), 1)
  const c = bus.channel(name).promisify()
  const got = messages(c, 1)
  c.connect()
  assert.deepEqual((await got).map(([m]) => m), ['knock knock'])
  assert.equal(await (c.send as unknown as (m: unknown) => Promise<number>)('to remote'), 1)
})
