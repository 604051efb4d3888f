/**
 * A job is one contender on one workload, run in its own child process (so its peak RSS and CPU are its
 * own). Queue-like contenders implement {@link QueueAdapter}; {@link runQueueRounds} runs the rounds of
 * "push N then drain" and "concurrent writer → reader" and the meters around them.
 */
import { Redis } from 'ioredis'
import {
  Checker, CpuMeter, RssMeter, assertChecked, now, rate, withTimeout, type BenchConfig
} from './common.js'

export interface LatencyFigures {
  /** Target rate (msgs/s) and the rate the paced producer achieved. */
  target: number
  achieved: number
  samples: number
  p50: number
  p99: number
  p999: number
  max: number
}

export interface IdleFigures {
  queues: number
  createSeconds: number
  queueBytes: number
  bareBytes: number
  ratio: number
  keysPerQueue: number
  nodeRssGrowthMB: number
  nodeHeapGrowthMB: number
  nodeHeapAfterGcMB: number
  goneAfterMs: number
  /** Keys left under the bus prefix that do not belong to queues. */
  otherKeys: number
  memoryAfterExpiry: number
}

export interface AttachedFigures {
  queues: number
  ttl: number
  attachSeconds: number
  /** push latency (ms) while every queue stays attached. */
  p50: number
  p99: number
  max: number
  samples: number
  /** Share of one core redis-server spent over the measured window (heartbeats + the pushes). */
  redisBusy: number
  /** Heartbeat script calls per second over the window, and queues refreshed per call. */
  heartbeatCalls: number
  queuesPerCall: number
  /** Queues refreshed per second over the window (HSET calls in INFO commandstats, less the pushes), and the window (s). */
  refreshes: number
  windowSeconds: number
  /** The bench process's event-loop delay over the window (ms): p99 and max. */
  loopP99: number
  loopMax: number
  /** The control (full runs): push latency in the same process once every queue is detached (no heartbeat), ms. */
  controlP50?: number
  controlP99?: number
  controlLoopMax?: number
  /** Queues of a sample still holding their message at the end (all, if heartbeats kept up). */
  alive: number
  sampled: number
}

export interface JobResult {
  id: string
  contender: string
  workload: string
  /** Messages per round (bytes per round for channels). */
  n: number
  rounds: number
  push?: number[]
  drain?: number[]
  concurrent?: number[]
  /** Services: requests answered per second, with many in flight. */
  requests?: number[]
  /** Channel throughput, MB/s (10^6 bytes). */
  mbps?: number[]
  /** CPU of the job process and of redis-server over the measured phases, % of one core. */
  nodeBusy?: number[]
  redisBusy?: number[]
  /** Node and Redis CPU per message over push + drain, µs. */
  nodeUs?: number[]
  redisUs?: number[]
  latency?: LatencyFigures
  idle?: IdleFigures
  attached?: AttachedFigures
  /** Peak RSS of the job's process, bytes. */
  rss?: number
  failed?: string
  notes?: string[]
  seconds?: number
}

export interface JobContext {
  config: BenchConfig
  url: string
  port: number
  /** A plain connection for FLUSHALL and INFO. */
  admin: Redis
  rss: RssMeter
  result: JobResult
}

export interface QueueAdapter {
  /** Pushes messages 0..n-1 to queue `name`; resolves when the contender says they are stored. */
  pushAll: (name: string, n: number) => Promise<void>
  /** Consumes n messages from `name`, feeding each to `check`; resolves when `check` has n (or a problem). */
  drainAll: (name: string, n: number, check: Checker) => Promise<void>
  /** A reader and a writer on `name` at the same time; resolves when the reader has all n. */
  concurrent?: (name: string, n: number, check: Checker) => Promise<void>
  /** Many queues at once, a writer and a reader each; without it, `concurrent` runs once per queue. */
  many?: (names: string[], per: number, checks: Checker[]) => Promise<void>
  close: () => Promise<void>
}

/** Generous per-phase timeout: a contender slower than 300 msgs/s is broken, not slow. */
function phaseTimeout (n: number): number {
  return 60_000 + n * 3
}

export async function runQueueRounds (ctx: JobContext, adapter: QueueAdapter, opts: {
  n: number
  ordered: boolean
  concurrent?: boolean
  /** Rounds (default: the config's). */
  rounds?: number
}): Promise<void> {
  const { config, result } = ctx
  const n = opts.n
  const rounds = opts.rounds ?? config.rounds
  result.n = n
  result.rounds = rounds
  result.push = []
  result.drain = []
  result.nodeUs = []
  result.redisUs = []
  if (opts.concurrent !== false && adapter.concurrent) result.concurrent = []
  const cpu = new CpuMeter(ctx.admin)
  try {
    // An unmeasured warm-up (a tenth of a round) so that round 1 does not measure the JIT.
    const warm = Math.max(1, Math.floor(n / 10))
    const warmCheck = new Checker(warm, opts.ordered)
    await withTimeout(phaseTimeout(warm), 'warm-up push', () => adapter.pushAll(`bench-${result.id}-warm-up`, warm))
    await withTimeout(phaseTimeout(warm), 'warm-up drain', () => adapter.drainAll(`bench-${result.id}-warm-up`, warm, warmCheck))
    assertChecked(warmCheck, 'warm-up')
    for (let round = 0; round < rounds; round++) {
      const name = `bench-${result.id.replace(/[^A-Za-z0-9]/g, '-')}-${round}`
      await cpu.start()
      let t = now()
      await withTimeout(phaseTimeout(n), 'push', () => adapter.pushAll(name, n))
      result.push.push(rate(n, t))
      const check = new Checker(n, opts.ordered)
      t = now()
      await withTimeout(phaseTimeout(n), 'drain', () => adapter.drainAll(name, n, check))
      result.drain.push(rate(n, t))
      const c = await cpu.stop(n)
      result.nodeUs.push(c.nodeUs)
      result.redisUs.push(c.redisUs)
      assertChecked(check, 'push N then drain')
      if (result.concurrent) {
        const check2 = new Checker(n, opts.ordered)
        t = now()
        await withTimeout(phaseTimeout(n), 'concurrent', () => adapter.concurrent!(`${name}-c`, n, check2))
        result.concurrent.push(rate(n, t))
        assertChecked(check2, 'concurrent')
      }
      ctx.rss.sample()
    }
  } finally {
    await adapter.close()
  }
}

/** `queues` queues at once, a writer and a reader each (the adapter's concurrent run); aggregate msgs/s. */
export async function runManyQueues (ctx: JobContext, adapter: QueueAdapter, opts: {
  n: number
  queues: number
  ordered: boolean
  rounds?: number
}): Promise<void> {
  const { config, result } = ctx
  const per = Math.max(1, Math.floor(opts.n / opts.queues))
  const n = per * opts.queues
  const rounds = opts.rounds ?? config.rounds
  result.n = n
  result.rounds = rounds
  result.concurrent = []
  try {
    // An unmeasured warm-up round (a tenth of the messages), as for one queue.
    const warmPer = Math.max(1, Math.floor(per / 10))
    const warmChecks = Array.from({ length: opts.queues }, () => new Checker(warmPer, opts.ordered))
    const warmNames = warmChecks.map((_, i) => `many-warm-up-${i}`)
    await withTimeout(phaseTimeout(warmPer * opts.queues), 'warm-up', () => adapter.many
      ? adapter.many(warmNames, warmPer, warmChecks)
      : Promise.all(warmChecks.map((check, i) => adapter.concurrent!(warmNames[i], warmPer, check))).then(() => {}))
    warmChecks.forEach((c, i) => assertChecked(c, `warm-up queue ${i}`))
    for (let round = 0; round < rounds; round++) {
      const checks = Array.from({ length: opts.queues }, () => new Checker(per, opts.ordered))
      const t = now()
      const names = checks.map((_, i) => `many-${round}-${i}`)
      await withTimeout(phaseTimeout(n), `${opts.queues} queues`, () => adapter.many
        ? adapter.many(names, per, checks)
        : Promise.all(checks.map((check, i) => adapter.concurrent!(names[i], per, check))).then(() => {}))
      result.concurrent.push(rate(n, t))
      checks.forEach((c, i) => assertChecked(c, `queue ${i}`))
      ctx.rss.sample()
    }
  } finally {
    await adapter.close()
  }
}
