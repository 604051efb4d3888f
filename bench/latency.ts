/**
 * Push → receive latency at a fixed rate: a paced producer (one push per message, timestamped in the
 * payload) and one reader in the same process (one clock). A warm-up of a tenth of the run (at least
 * 0.2 s) is not recorded. Every message must arrive exactly once (in order where promised).
 */
import { setTimeout as delay } from 'node:timers/promises'
import { CheckError, Checker, now, percentile, redisCpuSeconds } from './common.js'
import type { JobContext } from './job.js'
import type { LatencyAdapter } from './contenders/busmq.js'

export async function runLatency (ctx: JobContext, adapter: LatencyAdapter, target: number, ordered: boolean): Promise<void> {
  const { config, result } = ctx
  const seconds = config.latencySeconds
  const warm = Math.max(0.2, seconds / 10)
  const total = warm + seconds
  const capacity = Math.ceil(target * total) + 16
  const check = new Checker(capacity, ordered)
  const samples = new Float64Array(capacity)
  let recorded = 0
  let measureFrom = Infinity
  const name = `latency-${target}`
  try {
    await adapter.consume(name, (seq, ts) => {
      const t = now()
      check.accept(seq)
      if (ts >= measureFrom && recorded < capacity) samples[recorded++] = t - ts
    })
    const start = now()
    measureFrom = start + warm * 1000
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
      while (sent < due) adapter.send(name, sent++, now())
      await delay(1)
    }
    const measured = sent - Math.max(0, sentBeforeMeasure)
    const cpu = process.cpuUsage(cpu0)
    result.nodeBusy = [(cpu.user + cpu.system) / 1e6 / seconds * 100]
    result.redisBusy = [(await redisCpuSeconds(ctx.admin) - redis0) / seconds * 100]
    const deadline = Date.now() + 15_000
    while (check.count < sent && check.problem === undefined && Date.now() < deadline) await delay(5)
    if (check.problem !== undefined) throw new CheckError(check.problem)
    if (check.count !== sent) throw new CheckError(`received ${check.count} of ${sent} messages within 15 s of the last push`)
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
