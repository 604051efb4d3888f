/**
 * 100,000 queues attached at once by one bus, with a 3 s TTL: their heartbeats (batched per shard, one
 * call at a time) must keep every queue alive while a push on another queue stays fast.
 *
 * Measures: how long attaching all of them takes; push → acknowledged latency of `q.push` at 200 pushes/s
 * over a window of three TTLs; redis-server CPU over that window; heartbeat calls per second and queues per
 * call (from INFO commandstats); and, at the end, that a sample of the attached queues still holds the
 * message pushed into each (they would have expired without the heartbeats).
 *
 * Run with the rest (`npm run bench`) or alone (`npm run bench -- --idle`).
 */
import { setTimeout as delay } from 'node:timers/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Redis } from 'ioredis'
import { Bus, type Queue } from '../lib/index.js'
import { HEARTBEAT_RATE, refreshHold, refreshPeriod } from '../lib/queue/attachments.js'
import { CheckError, now, redisCpuSeconds } from './common.js'
import type { JobContext } from './job.js'

const PREFIX = 'attachedbench'
const WINDOW = 2000

/**
 * Calls of each command so far (INFO commandstats, those inside scripts included): script calls are
 * EVALSHA and EVAL; HSET is one per refresh of a queue and one per push.
 */
async function commandCalls (admin: Redis): Promise<{ scripts: number, hsets: number }> {
  const stats = await admin.info('commandstats')
  const calls = (name: string): number => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  return { scripts: calls('evalsha') + calls('eval'), hsets: calls('hset') }
}

/**
 * Pushes to `probe` every 5 ms for `seconds`: each push's latency (sorted), the window's length (s), and
 * how long this process's event loop was held meanwhile (heartbeat rounds, garbage collection; ms).
 */
async function probeWindow (probe: Queue, seconds: number): Promise<{ samples: number[], elapsed: number, loopP99: number, loopMax: number }> {
  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  const started = now()
  const samples: number[] = []
  const pending: Array<Promise<void>> = []
  for (let i = 0; now() - started < seconds * 1000; i++) {
    const due = started + i * 5
    const wait = due - now()
    if (wait > 0) await delay(wait)
    const t = now()
    pending.push(probe.push('p').then(() => { samples.push(now() - t) }))
  }
  await Promise.all(pending)
  const elapsed = (now() - started) / 1000
  loop.disable()
  samples.sort((a, b) => a - b)
  return { samples, elapsed, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 }
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

export async function attachedQueues (ctx: JobContext): Promise<void> {
  const { config, admin, result, url } = ctx
  const count = config.attachedQueues
  const ttl = config.attachedTtl
  result.n = count
  result.rounds = 1
  await admin.flushall()
  const bus = new Bus({ redis: url, prefix: PREFIX })
  try {
    await bus.connect()
    const queues = Array.from({ length: count }, (_, i) => bus.queue(`q${i}`, { ttl }))
    const t0 = now()
    for (let i = 0; i < count; i += WINDOW) {
      await Promise.all(queues.slice(i, i + WINDOW).map((q) => q.attach()))
    }
    const attachSeconds = (now() - t0) / 1000
    for (let i = 0; i < count; i += WINDOW) {
      await Promise.all(queues.slice(i, i + WINDOW).map((q) => q.push('x')))
    }

    // Pushes to one more queue, paced, while the heartbeats run: three TTLs (the quick run: one), and, when
    // heartbeatRate spreads the refreshes out, longer than one refresh holds the keys plus a period, so that
    // the queues sampled at the end live on refreshes sent during the window.
    const probe = bus.queue('probe', { ttl })
    const period = refreshPeriod(ttl, count, HEARTBEAT_RATE)
    const horizon = refreshHold(ttl, period)
    const seconds = config.quick ? ttl / 1000 : Math.max(3 * ttl, horizon > ttl ? horizon + period : 0) / 1000
    const calls0 = await commandCalls(admin)
    const cpu0 = await redisCpuSeconds(admin)
    const attached = await probeWindow(probe, seconds)
    const redisBusy = (await redisCpuSeconds(admin) - cpu0) / attached.elapsed
    const calls = await commandCalls(admin)
    const heartbeatCalls = (calls.scripts - calls0.scripts - attached.samples.length) / attached.elapsed
    const refreshes = (calls.hsets - calls0.hsets - attached.samples.length) / attached.elapsed

    const sample = queues.filter((_, i) => i % Math.max(1, Math.floor(count / 1000)) === 0)
    const counts = await Promise.all(sample.map((q) => q.count()))
    const alive = counts.filter((c) => c === 1).length
    const samples = attached.samples
    result.attached = {
      queues: count,
      ttl,
      attachSeconds,
      p50: percentile(samples, 0.5),
      p99: percentile(samples, 0.99),
      max: samples[samples.length - 1],
      samples: samples.length,
      redisBusy,
      heartbeatCalls,
      refreshes,
      windowSeconds: attached.elapsed,
      loopP99: attached.loopP99,
      loopMax: attached.loopMax,
      queuesPerCall: heartbeatCalls > 0 ? refreshes / heartbeatCalls : 0,
      alive,
      sampled: sample.length
    }
    if (alive !== sample.length) {
      throw new CheckError(`${sample.length - alive} of ${sample.length} sampled attached queues lost their message (expired while attached)`)
    }
    await Promise.all(queues.map((q) => q.detach()))
    if (!config.quick) {
      // The control: the same process, the same handles, nothing attached (no heartbeat at all), after a
      // second for the detaches' garbage. What the heartbeat adds to a push is the difference.
      await delay(1000)
      const control = await probeWindow(probe, 3 * ttl / 1000)
      result.attached.controlP50 = percentile(control.samples, 0.5)
      result.attached.controlP99 = percentile(control.samples, 0.99)
      result.attached.controlLoopMax = control.loopMax
    }
  } finally {
    await bus.close()
  }
}
