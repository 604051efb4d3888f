/**
 * Services: requests/s with many requests in flight, and request → reply latency at a fixed rate. One
 * server (echo) and one requester, each on its own bus (its own connections), in the job's process. Every
 * reply must come back exactly once, carrying its request's sequence number intact.
 */
import { Checker, CpuMeter, assertChecked, now, objectPayload, objectSeq, rate, withTimeout } from './common.js'
import type { JobContext } from './job.js'
import type { LatencyAdapter } from './contenders/busmq.js'

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

/**
 * Request → reply latency through the queues' latency run (bench/latency.ts): each "message" is a request,
 * received when its reply comes back; the sequence number travels in the payload, the timestamp stays here.
 */
export function serviceLatencyAdapter (adapter: ServiceAdapter): LatencyAdapter {
  let onReply: (seq: number | string, ts: number) => void = () => {}
  let failure: Error | undefined
  return {
    async consume (name, onMessage) {
      onReply = onMessage
      await adapter.serve(name)
    },
    send (name, seq, ts) {
      if (failure) throw failure
      adapter.request(name, objectPayload(seq, SIZE), (err, reply) => {
        if (err) failure ??= err
        else onReply(objectSeq(reply, SIZE), ts)
      })
    },
    close: () => adapter.close()
  }
}
