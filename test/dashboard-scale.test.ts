// 100,000 attached (idle) queues: the dashboard lists and filters them from the shard's registry with
// little Redis time (INFO commandstats usec, not wall time), and once they are detached no key of them
// outlives their TTL, nor the registry its horizon (two TTLs).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Bus } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { eventually, uniqueName } from './helpers/bus.js'

const redis = useRedis(1)
const QUEUES = 100_000
// Long enough that attaching 100,000 queues on a loaded machine (the attaches go before any refresh)
// does not outlast it; the test then waits for it (and the registry for two), so it is given 10 minutes.
const TTL = 60_000
const WINDOW = 2000

/**
 * Redis time (µs) spent so far on the commands a dashboard sends to list queues and read their details,
 * per INFO commandstats. The heartbeat scripts of the 100,000 attachments run meanwhile: they are left
 * out (EVALSHA, and the PEXPIRE, HSET, ZADD they call), though their TIME and sweeping ZRANGEBYSCORE
 * calls are counted too.
 */
const DASHBOARD_COMMANDS = new Set(['time', 'zrangebyscore', 'hgetall', 'llen', 'hlen', 'pttl'])
async function redisUsec (): Promise<number> {
  const stats = await redis.servers[0].cli('INFO', 'commandstats')
  let usec = 0
  for (const m of stats.matchAll(/cmdstat_(\w+):calls=\d+,usec=(\d+)/g)) if (DASHBOARD_COMMANDS.has(m[1])) usec += Number(m[2])
  return usec
}

async function scanCount (pattern: string): Promise<number> {
  const out = await redis.servers[0].cli('--scan', '--pattern', pattern)
  return out.split('\n').filter((k) => k.length > 0 && !k.endsWith(':shard-marker')).length
}

test('100,000 attached queues: listed and filtered in well under a second of Redis time; nothing left after the TTL', { timeout: 600_000 }, async (t) => {
  const prefix = uniqueName('scale')
  const bus = new Bus({ redis: redis.servers.map((s) => s.url), prefix, ttl: TTL })
  const server = createServer(bus.dashboard())
  try {
    const queues = Array.from({ length: QUEUES }, (_, i) => bus.queue(`q${i}`))
    const started = Date.now()
    for (let i = 0; i < QUEUES; i += WINDOW) await Promise.all(queues.slice(i, i + WINDOW).map((q) => q.attach()))
    t.diagnostic(`attached ${QUEUES} queues in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const queuesOf = async (query: string): Promise<{ total: number, rows: Array<{ name: string }> }> => {
      const res = await fetch(`${base}/api/state?${query}`)
      assert.equal(res.status, 200)
      const state = await res.json() as { sections: Array<{ id: string, total: number, rows: Array<{ name: string }> }> }
      return state.sections.find((s) => s.id === 'queues')!
    }

    const before = await redisUsec()
    const all = await queuesOf('')
    const listUsec = await redisUsec() - before
    assert.equal(all.total, QUEUES)
    assert.equal(all.rows.length, 100)
    assert.deepEqual(all.rows.slice(0, 3).map((r) => r.name), ['q0', 'q1', 'q10'])

    const beforeFilter = await redisUsec()
    // A fresh dashboard lists again (the first one reuses its list for 5 s at this size).
    const fresh = createServer(bus.dashboard())
    fresh.listen(0, '127.0.0.1')
    await once(fresh, 'listening')
    const freshBase = `http://127.0.0.1:${(fresh.address() as AddressInfo).port}`
    const res = await fetch(`${freshBase}/api/state?filter=q9999`)
    const filtered = (await res.json() as { sections: Array<{ id: string, total: number, rows: Array<{ name: string }> }> })
      .sections.find((s) => s.id === 'queues')!
    const filterUsec = await redisUsec() - beforeFilter
    fresh.close()
    assert.equal(filtered.total, 11)
    assert.deepEqual(filtered.rows.map((r) => r.name), ['q9999', ...Array.from({ length: 10 }, (_, i) => `q9999${i}`)])
    t.diagnostic(`Redis time: listing 100,000 queues (and details of the first 100) ${(listUsec / 1000).toFixed(1)} ms; ` +
      `listing and filtering them ${(filterUsec / 1000).toFixed(1)} ms`)
    assert.ok(listUsec < 1_000_000, `listing took ${listUsec} µs of Redis time`)
    assert.ok(filterUsec < 1_000_000, `filtering took ${filterUsec} µs of Redis time`)
    assert.equal((await queuesOf('filter=q12345')).total, 1)
  } finally {
    server.close()
    await bus.close()
  }
  // Detached: every key of the queues expires within the TTL, and the registry within its horizon of
  // two TTLs (plus Redis's expiry cycle and a loaded machine's slack); only the data-loss marker stays.
  assert.ok(await eventually(async () => await scanCount(`${prefix}:q:*`) === 0, TTL + 20_000), 'queue keys left after the TTL')
  assert.ok(await eventually(async () => await scanCount(`${prefix}:*`) === 0, 2 * TTL + 20_000), 'the registry is left after two TTLs')
})
