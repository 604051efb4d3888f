// Durations at the edge of what a timer can wait: setTimeout fires a delay above 2^31 − 1 ms after 1 ms,
// which would turn a long poll, lease or TTL into a busy loop. Durations that arm a timer are refused
// above that bound; a long TTL is allowed, and what it schedules waits as long as a timer can.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Bus, type ReliableMessage } from '../lib/index.js'
import { commandCalls, useRedis } from './helpers/redis-server.js'
import { openBus, uniqueName } from './helpers/bus.js'
import { sleep } from './helpers/queue.js'

const redis = useRedis(1)
const MAX_DELAY = 2 ** 31 - 1

/** Collects the TimeoutOverflowWarnings Node emits while `fn` runs. */
async function overflowWarnings (fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = []
  const listener = (w: Error): void => { if (w.name === 'TimeoutOverflowWarning') seen.push(w.message) }
  process.on('warning', listener)
  try {
    await fn()
    // Warnings are emitted on the next tick.
    await sleep(20)
  } finally {
    process.off('warning', listener)
  }
  return seen
}

test('a duration above 2^31 - 1 ms is refused with ERR_BUSMQ_INVALID_OPTION; 2^31 - 1 is accepted', async () => {
  const code = { code: 'ERR_BUSMQ_INVALID_OPTION' }
  for (const option of ['pollInterval', 'commandTimeout', 'connectTimeout', 'replicasTimeout']) {
    assert.throws(() => new Bus({ redis: redis.servers[0].url, [option]: MAX_DELAY + 1 }), code, option)
    assert.throws(() => new Bus({ redis: redis.servers[0].url, [option]: Number.MAX_SAFE_INTEGER }), code, option)
  }
  const bus = await openBus(redis.servers, { pollInterval: MAX_DELAY, commandTimeout: MAX_DELAY })
  try {
    const q = bus.queue(uniqueName('limits'))
    assert.throws(() => q.createReadStream({ mode: 'reliable', lease: MAX_DELAY + 1 }), code)
    assert.throws(() => bus.channel(uniqueName('limits'), { heartbeat: MAX_DELAY + 1 }), code)
    const svc = bus.service(uniqueName('limits'))
    await assert.rejects(async () => await svc.request('x', { timeout: MAX_DELAY + 1 }), code)
    assert.throws(() => bus.service(uniqueName('limits'), { timeout: MAX_DELAY + 1 }), code)
  } finally {
    await bus.close()
  }
})

test('the longest durations and a TTL of 30 years: readers wait quietly, a push still arrives at once, no timer overflows', async () => {
  const server = redis.servers[0]
  const bus = await openBus(redis.servers, { pollInterval: MAX_DELAY, commandTimeout: MAX_DELAY })
  const ttl = 30 * 365 * 24 * 3600 * 1000
  try {
    const warnings = await overflowWarnings(async () => {
      const plain = bus.queue(uniqueName('long-plain'), { ttl })
      const reliable = bus.queue(uniqueName('long-reliable'), { ttl })
      // An attached queue (its refresh is due in ttl / 3), a waiting consume-once reader and a waiting
      // reliable reader with the longest lease.
      await plain.attach()
      const a = plain.createReadStream()
      const r = reliable.createReadStream({ mode: 'reliable', lease: MAX_DELAY })
      const gotA: Buffer[] = []
      const gotR: Array<ReliableMessage<Buffer>> = []
      a.on('data', (m: Buffer) => gotA.push(m))
      r.on('data', (m: ReliableMessage<Buffer>) => gotR.push(m))
      await sleep(300)
      // Idle: a timer that overflowed would fire every millisecond, and each firing calls Redis.
      const before = await commandCalls(server, 'evalsha', 'eval')
      await sleep(1000)
      const idle = await commandCalls(server, 'evalsha', 'eval') - before
      assert.ok(idle <= 5, `${idle} script calls in 1 s while every reader waits`)
      await plain.push(Buffer.from('one'))
      await reliable.push(Buffer.from('two'))
      const deadline = Date.now() + 10_000
      while ((gotA.length < 1 || gotR.length < 1) && Date.now() < deadline) await sleep(10)
      assert.deepEqual(gotA.map(String), ['one'])
      assert.deepEqual(gotR.map((m) => String(m.data)), ['two'])
      assert.equal(await gotR[0].ack(), true)
      const pttl = await server.cli('PTTL', plain.keys.info)
      assert.ok(Number(pttl) > ttl / 2, `the attached queue's keys expire in ${pttl} ms`)
      a.destroy()
      r.destroy()
      await plain.detach()
    })
    assert.deepEqual(warnings, [])
  } finally {
    await bus.close()
  }
})
