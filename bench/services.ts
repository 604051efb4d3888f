/**
 * Services: requests/s with many requests in flight, and request → reply latency at a fixed rate. One
 * server (echo) and one requester, each on its own bus (its own connections), in the job's process. Every
 * reply must come back exactly once, carrying its request's sequence number intact.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { CheckError, Checker, CpuMeter, assertChecked, now, objectPayload, objectSeq, percentile, rate, redisCpuSeconds, withTimeout } from './common.js'
import type { JobContext } from './job.js'

/** What a contender's services offer the bench. */
export interface ServiceAdapter {
  /** Starts an echo server of service `name` (it answers each request with its payload). */
  serve: (name: string) => Promise<void>
  /** Sends one request; `done` gets the reply, or the error. */
  request: (name: string, payload: unknown, done: (err: Error | null, reply?: unknown) => void) => void
  close: () => Promise<void>
}

/** Payload size, bytes of JSON. */
const SIZE = 32

/** Sends n requests with at most `window` in flight; resolves when every reply is in (checked). */
async function burst (adapter: ServiceAdapter, name: string, n: number, window: number, check: Checker): Promise<void> {
  let sent = 0
  let done = 0
  let failure: Error | undefined
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      while (sent < n && sent - done < window) {
        adapter.request(name, objectPayload(sent++, SIZE), (err, reply) => {
          done++
          if (err) failure ??= err
          else check.accept(objectSeq(reply, SIZE))
          if (failure) return reject(failure)
          if (done === n) resolve()
          else next()
        })
      }
    }
    next()
  })
}

export async function runRequestRate (ctx: JobContext, adapter: ServiceAdapter, n: number): Promise<void> {
  const { config, result } = ctx
  result.n = n
  result.rounds = config.rounds
  result.requests = []
  result.nodeUs = []
  result.redisUs = []
  const cpu = new CpuMeter(ctx.admin)
  const name = `bench-${result.id}`
  try {
    await adapter.serve(name)
    const warm = Math.max(1, Math.floor(n / 10))
    const warmCheck = new Checker(warm, false)
    await withTimeout(60_000 + warm * 3, 'warm-up', () => burst(adapter, name, warm, config.svcInFlight, warmCheck))
    assertChecked(warmCheck, 'warm-up')
    for (let round = 0; round < config.rounds; round++) {
      const check = new Checker(n, false)
      await cpu.start()
      const t = now()
      await withTimeout(60_000 + n * 3, 'requests', () => burst(adapter, name, n, config.svcInFlight, check))
      result.requests.push(rate(n, t))
      const c = await cpu.stop(n)
      result.nodeUs.push(c.nodeUs)
      result.redisUs.push(c.redisUs)
      assertChecked(check, `round ${round + 1}`)
      ctx.rss.sample()
    }
  } finally {
    await adapter.close()
  }
}

/** Paced requests at `target`/s for `latencySeconds` (after a warm-up): request → reply latency. */
export async function runRequestLatency (ctx: JobContext, adapter: ServiceAdapter, target: number): Promise<void> {
  const { config, result } = ctx
  const seconds = config.latencySeconds
  const warm = Math.max(0.2, seconds / 10)
  const total = warm + seconds
  const capacity = Math.ceil(target * total) + 16
  const check = new Checker(capacity, false)
  const samples = new Float64Array(capacity)
  let recorded = 0
  let failure: Error | undefined
  const name = `latency-svc-${target}`
  try {
    await adapter.serve(name)
    const start = now()
    const measureFrom = start + warm * 1000
    let cpu0 = process.cpuUsage()
    let redis0 = 0
    let sent = 0
    let sentBeforeMeasure = -1
    for (;;) {
      const elapsed = now() - start
      if (elapsed >= total * 1000) break
      if (sentBeforeMeasure < 0 && elapsed >= warm * 1000) {
        sentBeforeMeasure = sent
        cpu0 = process.cpuUsage()
        redis0 = await redisCpuSeconds(ctx.admin)
      }
      const due = Math.min(capacity, Math.floor(elapsed * target / 1000) + 1)
      while (sent < due) {
        const ts = now()
        adapter.request(name, objectPayload(sent++, SIZE), (err, reply) => {
          const t = now()
          if (err) {
            failure ??= err
            return
          }
          check.accept(objectSeq(reply, SIZE))
          if (ts >= measureFrom && recorded < capacity) samples[recorded++] = t - ts
        })
      }
      await delay(1)
    }
    const measured = sent - Math.max(0, sentBeforeMeasure)
    const cpu = process.cpuUsage(cpu0)
    result.nodeBusy = [(cpu.user + cpu.system) / 1e6 / seconds * 100]
    result.redisBusy = [(await redisCpuSeconds(ctx.admin) - redis0) / seconds * 100]
    const deadline = Date.now() + 15_000
    while (check.count < sent && check.problem === undefined && failure === undefined && Date.now() < deadline) await delay(5)
    if (failure) throw failure
    if (check.problem !== undefined) throw new CheckError(check.problem)
    if (check.count !== sent) throw new CheckError(`received ${check.count} of ${sent} replies within 15 s of the last request`)
    const sorted = samples.slice(0, recorded).sort()
    result.n = sent
    result.rounds = 1
    result.latency = {
      target,
      achieved: measured / seconds,
      samples: recorded,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: sorted[sorted.length - 1]
    }
  } finally {
    await adapter.close()
  }
}
