// channel.detach() (leave without ending: the conversation carries on with the next channel of the same
// roles) and reliable channels with ack: 'manual' (unacknowledged messages come back on reopen, also after
// the process died).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Bus, Channel, ReliableMessage } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { nextEvent, openBus, uniqueName } from './helpers/bus.js'
import { range } from './helpers/queue.js'
import { fixture } from './helpers/fixture.js'

const redis = useRedis(1)

async function twoBuses (t: TestContext): Promise<[Bus, Bus]> {
  const a = await openBus(redis.servers, { pollInterval: 200 })
  const b = await openBus(redis.servers, { pollInterval: 200 })
  t.after(() => Promise.all([a.close(), b.close()]))
  return [a, b]
}

/** The next `n` chunks the channel's readable emits (it stays open, flowing). */
function nextChunks<T> (ch: Channel<any, T>, n: number): Promise<T[]> {
  const out: T[] = []
  return new Promise((resolve, reject) => {
    const onData = (x: T): void => {
      out.push(x)
      if (out.length === n) {
        ch.off('data', onData)
        ch.pause()
        resolve(out)
      }
    }
    ch.on('data', onData)
    ch.once('error', reject)
  })
}

async function writeEach (ch: Channel, items: unknown[]): Promise<void> {
  for (const item of items) await new Promise<void>((resolve, reject) => ch.write(item, (err) => err ? reject(err) : resolve()))
}

for (const reliable of [false, true]) {
  test(`detach()${reliable ? ' (reliable)' : ''}: the peer sees remote:disconnect, not an end; reopening with the same roles carries on, nothing lost or repeated`, { timeout: 60_000 }, async (t) => {
    const [a, b] = await twoBuses(t)
    const name = uniqueName('detach')
    const A = a.channel(name, { objectMode: true, reliable })
    const B = b.channel(name, { listen: true, objectMode: true, reliable, highWaterMark: 64 })
    const events: string[] = []
    for (const e of ['end', 'error', 'close']) A.on(e, () => events.push(e))
    await Promise.all([once(A, 'ready'), once(B, 'ready'), nextEvent(A, 'remote:connect')])
    await writeEach(A, range(0, 100))
    // B hands on 30 messages and has taken more (up to its highWaterMark) when it detaches.
    const first = await nextChunks(B, 30)
    assert.deepEqual(first, range(0, 30))
    B.write('from B before detaching')
    const gone = nextEvent(A, 'remote:disconnect')
    const fromB = nextChunks(A, 1)
    await B.detach()
    await gone
    assert.deepEqual(await fromB, ['from B before detaching'], 'what B wrote before detaching was pushed')
    assert.equal(A.remoteConnected, false)
    // The conversation goes on while B is away.
    await writeEach(A, range(100, 150))
    const B2 = b.channel(name, { listen: true, objectMode: true, reliable })
    await nextEvent(A, 'remote:connect')
    const rest = await nextChunks(B2, 120)
    assert.deepEqual(rest, range(30, 150))
    assert.deepEqual(events, [], 'A neither ended nor failed')
    B2.end()
    A.end()
    A.resume()
    B2.resume()
    await Promise.all([once(A, 'close'), once(B2, 'close')])
    assert.deepEqual(events, ['end', 'close'])
  })
}

test("ack: 'manual': chunks are { id, data, ack() }; what was not acked when the channel detached comes back on reopen", { timeout: 60_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('manual')
  const A = a.channel(name, { objectMode: true, reliable: true })
  const B = b.channel<{ i: number }>(name, { listen: true, objectMode: true, reliable: true, ack: 'manual' })
  assert.equal(B.ack, 'manual')
  await writeEach(A, range(0, 10).map((i) => ({ i })))
  const got = await nextChunks<ReliableMessage<{ i: number }>>(B, 10)
  assert.deepEqual(got.map((m) => m.data.i), range(0, 10))
  assert.deepEqual(got.map((m) => typeof m.id), Array(10).fill('number'))
  assert.deepEqual(await Promise.all(got.filter((m) => m.data.i % 2 === 0).map((m) => m.ack())), [true, true, true, true, true])
  await B.detach()
  const B2 = b.channel<{ i: number }>(name, { listen: true, objectMode: true, reliable: true, ack: 'manual' })
  const again = await nextChunks<ReliableMessage<{ i: number }>>(B2, 5)
  assert.deepEqual(again.map((m) => m.data.i), [1, 3, 5, 7, 9])
  assert.deepEqual(again.map((m) => m.redelivered), [true, true, true, true, true])
  await Promise.all(again.map((m) => m.ack()))
  const inbound = a.queue(`${name}:remote`)
  assert.deepEqual([await inbound.count(), (await inbound.stats()).inFlight], [0, 0])
  await B2.detach()
  await A.detach()
})

test("ack: 'manual': at most highWaterMark messages are held unacknowledged; acking lets more in", { timeout: 60_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('manual-hwm')
  const A = a.channel(name, { objectMode: true })
  const B = b.channel(name, { listen: true, objectMode: true, reliable: true, ack: 'manual', highWaterMark: 4 })
  await writeEach(A, range(0, 12))
  const held = await nextChunks<ReliableMessage<number>>(B, 4)
  assert.deepEqual(held.map((m) => m.data), [0, 1, 2, 3])
  B.resume()
  const inbound = a.queue(`${name}:remote`)
  // Nothing more comes while the 4 are unacknowledged.
  assert.equal((await inbound.stats()).inFlight, 4)
  assert.equal(await inbound.count(), 8)
  // Each message acked as it arrives: the rest come, 4 at most unacknowledged at a time.
  const rest: number[] = []
  const done = new Promise<void>((resolve) => {
    B.on('data', (m: ReliableMessage<number>) => {
      rest.push(m.data)
      m.ack().catch(() => {})
      if (rest.length === 8) resolve()
    })
  })
  await Promise.all(held.map((m) => m.ack()))
  await done
  assert.deepEqual(rest, range(4, 12))
  await Promise.all([A.detach(), B.detach()])
})

test("ack: 'manual' across processes: a peer SIGKILLed with unacknowledged messages gives them to the next channel", { timeout: 120_000 }, async (t) => {
  const [a, b] = await twoBuses(t)
  const name = uniqueName('manual-kill')
  const A = a.channel(name, { objectMode: true })
  await writeEach(A, range(0, 10).map((i) => ({ i })))
  const peer = fixture(t, 'channel-manual-ack.js', [redis.servers[0].url, name, '4'])
  await peer.line((l) => l.got?.i === 9)
  for (const i of range(0, 4)) assert.equal((await peer.line((l) => l.acked === i)).ok, true)
  peer.child.kill('SIGKILL')
  assert.deepEqual(await peer.exited, [null, 'SIGKILL'])
  // The same roles, in this process: the 6 unacknowledged messages come back once their lease lapses.
  const B = b.channel<{ i: number }>(name, { listen: true, objectMode: true, reliable: true, ack: 'manual' })
  const back = await nextChunks<ReliableMessage<{ i: number }>>(B, 6)
  assert.deepEqual(back.map((m) => m.data.i), [4, 5, 6, 7, 8, 9])
  assert.ok(back.every((m) => m.redelivered && m.deliveries === 2))
  await Promise.all(back.map((m) => m.ack()))
  const inbound = a.queue(`${name}:remote`)
  assert.deepEqual([await inbound.count(), (await inbound.stats()).inFlight], [0, 0], 'nothing else was left')
  await Promise.all([A.detach(), B.detach()])
})

test("ack is validated: 'auto' or 'manual', and 'manual' needs reliable: true", async (t) => {
  const [a] = await twoBuses(t)
  assert.throws(() => a.channel('x', { reliable: true, ack: 'later' as any }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => a.channel('x', { ack: 'manual' }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  assert.throws(() => a.channel('x', { reliable: false, ack: 'manual' }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
})
