/**
 * 100,000 idle queues with one 32-byte message each (q.push on a fresh handle each; handles are
 * dropped, as an application that pushed and moved on would).
 *  1. Memory: with a TTL longer than their creation takes, so that all exist at once: Node heap/RSS
 *     growth, and Redis used_memory per queue against a bare list holding one 32-byte element.
 *  2. Expiry: the same queues again with the short TTL (default 2000 ms); past the TTL after the last
 *     push, every key of them must be gone (SCAN of the prefix; never KEYS).
 *
 * Run with the rest (`npm run bench`) or alone (`npm run bench -- --idle`).
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import { setTimeout as delay } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { Bus } from '../lib/index.js'
import { CheckError, bytePayload, now, redisUsedMemory } from './common.js'
import type { JobContext } from './job.js'

const PREFIX = 'idlebench'
const WINDOW = 2000

/** A full GC if it can be had without a command-line flag. */
function gc (): void {
  v8.setFlagsFromString('--expose-gc')
  const collect = vm.runInNewContext('gc') as (() => void) | undefined
  collect?.()
}

async function settledMemory (admin: Redis): Promise<number> {
  await delay(200)
  return await redisUsedMemory(admin)
}

/** Counts keys matching `pattern` with SCAN. */
export async function scanCount (admin: Redis, pattern: string): Promise<number> {
  let cursor = '0'
  let count = 0
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 5000)
    cursor = next
    count += keys.length
  } while (cursor !== '0')
  return count
}

export async function idleQueues (ctx: JobContext): Promise<void> {
  const { config, admin, result } = ctx
  const queues = config.idleQueues
  const ttl = config.idleTtl
  result.n = queues
  result.rounds = 1
  await admin.flushall()

  // Bare lists first: one RPUSH of one 32-byte element per key, pipelined.
  const bare0 = await settledMemory(admin)
  for (let i = 0; i < queues; i += WINDOW) {
    const p = admin.pipeline()
    for (let j = i; j < Math.min(queues, i + WINDOW); j++) p.rpush(`bare:${j}`, bytePayload(j, 32))
    await p.exec()
  }
  const bareBytes = await settledMemory(admin) - bare0
  await admin.flushall()

  // Phase 1, memory: the queues get a TTL longer than their creation takes, so all of them exist at once.
  const longTtl = 600_000
  const bus = new Bus({ redis: [ctx.url], prefix: PREFIX })
  bus.on('error', () => {})
  const create = async (ttlMs: number): Promise<number> => {
    let peakHeap = 0
    for (let i = 0; i < queues; i += WINDOW) {
      const pushes: Array<Promise<number | null>> = []
      for (let j = i; j < Math.min(queues, i + WINDOW); j++) {
        pushes.push(bus.queue(`idle-${j}`, { ttl: ttlMs }).push(bytePayload(j, 32)))
      }
      const ids = await Promise.all(pushes)
      if (ids.some((id) => id !== 1)) throw new CheckError(`a fresh queue gave its first message id ${ids.find((id) => id !== 1)}, expected 1`)
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
      ctx.rss.sample()
    }
    return peakHeap
  }
  try {
    await bus.connect()
    gc()
    const rss0 = process.memoryUsage.rss()
    const heap0 = process.memoryUsage().heapUsed
    const mem0 = await settledMemory(admin)
    const t = now()
    const peakHeap = await create(longTtl)
    const createSeconds = (now() - t) / 1000
    const queueBytes = await settledMemory(admin) - mem0
    const rssGrowth = ctx.rss.peak - rss0
    gc()
    const heapAfterGc = process.memoryUsage().heapUsed - heap0
    const messages = await scanCount(admin, `${PREFIX}:q:*:m`)
    const keys = await scanCount(admin, `${PREFIX}:q:*`)
    if (messages !== queues) throw new CheckError(`found ${messages} message lists for ${queues} queues`)
    const first = await admin.pttl(`${PREFIX}:q:{idle-0}:m`)
    if (first <= 0) throw new CheckError(`queue idle-0 has no expiry (PTTL ${first})`)
    await admin.flushall()

    // Phase 2, expiry: the same queues with the short TTL; past it, every key of every queue must be gone.
    const mem1 = await settledMemory(admin)
    await create(ttl)
    const created = now()
    await delay(ttl)
    let left = -1
    let goneAfter = 0
    const deadline = created + ttl + 10_000
    for (;;) {
      left = await scanCount(admin, `${PREFIX}:q:*`)
      goneAfter = now() - created
      if (left === 0 || now() > deadline) break
      await delay(100)
    }
    if (left !== 0) throw new CheckError(`${left} queue keys still exist ${Math.round(goneAfter)} ms after the last push (ttl ${ttl} ms)`)
    const otherKeys = await scanCount(admin, `${PREFIX}:*`)
    // Let Redis's active expiry reclaim the memory of keys SCAN already hides.
    let memAfter = 0
    for (let i = 0; i < 50; i++) {
      memAfter = await redisUsedMemory(admin) - mem1
      if (memAfter < queueBytes / 20) break
      await delay(100)
    }
    result.idle = {
      queues,
      createSeconds,
      queueBytes,
      bareBytes,
      ratio: queueBytes / bareBytes,
      keysPerQueue: keys / queues,
      nodeRssGrowthMB: rssGrowth / 1048576,
      nodeHeapGrowthMB: (peakHeap - heap0) / 1048576,
      nodeHeapAfterGcMB: heapAfterGc / 1048576,
      goneAfterMs: goneAfter,
      otherKeys,
      memoryAfterExpiry: memAfter
    }
  } finally {
    await bus.close()
  }
}
