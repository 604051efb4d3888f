/**
 * Every job of the benchmark: one contender on one workload. The order here is the order of the run.
 */
import { loadConfig, type BenchConfig } from './common.js'
import { runManyQueues, runQueueRounds, type JobContext } from './job.js'
import { runLatency } from './latency.js'
import { idleQueues } from './idle-queues.js'
import { attachedQueues } from './attached-queues.js'
import { rawAdapter } from './contenders/raw.js'
import { busmqLatencyAdapter, channel, reliable, streamAdapter } from './contenders/busmq.js'
import { originalAdapter, originalLatencyAdapter } from './contenders/busmq-original.js'
import { beeAdapter, beeLatencyAdapter, bullAdapter, bullLatencyAdapter, WORKER_CONCURRENCY } from './contenders/job-queues.js'
import { runRequestRate, serviceLatencyAdapter } from './services.js'
import { busmqServiceAdapter, originalServiceAdapter } from './contenders/services.js'
import { withFederation } from './federation.js'

export const RAW = 'raw ioredis'
export const OURS = 'busmq (this)'
export const ORIGINAL = 'BusMQ 3.1'
export const BULL = 'BullMQ 6.7'
export const BEE = 'bee-queue 2.0'

export interface JobSpec {
  id: string
  contender: string
  workload: (c: BenchConfig) => string
  peer?: boolean
  /** Only with --idle, or at the end of a full run. */
  idle?: boolean
  run: (ctx: JobContext) => Promise<void>
}

const KIB = 1024

export const JOBS: JobSpec[] = [
  {
    id: 'raw-32',
    contender: RAW,
    workload: () => '1 queue, 32 B (RPUSH/LPOP 1000)',
    run: (ctx) => runQueueRounds(ctx, rawAdapter(ctx.url, 32), { n: ctx.config.n, ordered: true, rounds: ctx.config.rawRounds })
  },
  {
    id: 'raw-1k',
    contender: RAW,
    workload: () => '1 queue, 1 KiB (RPUSH/LPOP 1000)',
    run: (ctx) => runQueueRounds(ctx, rawAdapter(ctx.url, KIB), { n: ctx.config.nLarge, ordered: true, rounds: ctx.config.rawRounds })
  },
  {
    id: 'raw-many',
    contender: RAW,
    workload: (c) => `${c.queues} queues × writer+reader, 32 B`,
    run: (ctx) => runManyQueues(ctx, rawAdapter(ctx.url, 32), { n: ctx.config.n, queues: ctx.config.queues, ordered: true, rounds: ctx.config.rawRounds })
  },
  {
    id: 'busmq-bytes-32',
    contender: OURS,
    workload: () => '1 queue, 32 B, bytes (streams)',
    run: async (ctx) => runQueueRounds(ctx, await streamAdapter(ctx.url, 'bytes', 32), { n: ctx.config.n, ordered: true })
  },
  {
    id: 'busmq-object-32',
    contender: OURS,
    workload: () => '1 queue, 32 B, objectMode (streams)',
    run: async (ctx) => runQueueRounds(ctx, await streamAdapter(ctx.url, 'object', 32), { n: ctx.config.n, ordered: true })
  },
  {
    id: 'busmq-bytes-1k',
    contender: OURS,
    workload: () => '1 queue, 1 KiB, bytes (streams)',
    run: async (ctx) => runQueueRounds(ctx, await streamAdapter(ctx.url, 'bytes', KIB), { n: ctx.config.nLarge, ordered: true })
  },
  {
    id: 'busmq-object-1k',
    contender: OURS,
    workload: () => '1 queue, 1 KiB, objectMode (streams)',
    run: async (ctx) => runQueueRounds(ctx, await streamAdapter(ctx.url, 'object', KIB), { n: ctx.config.nLarge, ordered: true })
  },
  {
    id: 'busmq-many',
    contender: OURS,
    workload: (c) => `${c.queues} queues × writer+reader, 32 B`,
    run: async (ctx) => runManyQueues(ctx, await streamAdapter(ctx.url, 'bytes', 32),
      { n: ctx.config.n, queues: ctx.config.queues, ordered: true })
  },
  {
    id: 'busmq-reliable',
    contender: OURS,
    workload: () => '1 queue, 32 B, reliable → ack stream',
    run: (ctx) => reliable(ctx, 32)
  },
  {
    id: 'busmq-channel',
    contender: OURS,
    workload: (c) => `channel, 64 KiB chunks, ${Math.round(c.channelBytes / 1048576)} MiB one way`,
    run: (ctx) => channel(ctx, 64 * KIB)
  },
  {
    id: 'busmq-fed-bytes-32',
    contender: OURS,
    workload: () => '1 queue, 32 B, bytes, both peers federated',
    run: (ctx) => withFederation(ctx, async (open) =>
      runQueueRounds(ctx, await streamAdapter(ctx.url, 'bytes', 32, open), { n: ctx.config.n, ordered: true }))
  },
  {
    id: 'busmq-fed-channel',
    contender: OURS,
    workload: (c) => `channel, 64 KiB chunks, ${Math.round(c.channelBytes / 1048576)} MiB one way, both peers federated`,
    run: (ctx) => withFederation(ctx, async (open) => await channel(ctx, 64 * KIB, open))
  },
  {
    id: 'busmq-latency-1k-push',
    contender: OURS,
    workload: (c) => `latency @ 1k msgs/s, ${c.latencySeconds} s, q.push`,
    run: async (ctx) => runLatency(ctx, await busmqLatencyAdapter(ctx.url, 32, 'push'), 1000, true)
  },
  {
    id: 'busmq-latency-1k-write',
    contender: OURS,
    workload: (c) => `latency @ 1k msgs/s, ${c.latencySeconds} s, ws.write`,
    run: async (ctx) => runLatency(ctx, await busmqLatencyAdapter(ctx.url, 32, 'write'), 1000, true)
  },
  {
    id: 'busmq-latency-10k-push',
    contender: OURS,
    workload: (c) => `latency @ 10k msgs/s, ${c.latencySeconds} s, q.push`,
    run: async (ctx) => runLatency(ctx, await busmqLatencyAdapter(ctx.url, 32, 'push'), 10000, true)
  },
  {
    id: 'busmq-latency-10k-write',
    contender: OURS,
    workload: (c) => `latency @ 10k msgs/s, ${c.latencySeconds} s, ws.write`,
    run: async (ctx) => runLatency(ctx, await busmqLatencyAdapter(ctx.url, 32, 'write'), 10000, true)
  },
  {
    id: 'busmq31-32',
    contender: ORIGINAL,
    peer: true,
    workload: () => '1 queue, 32 B (push / consume)',
    run: async (ctx) => runQueueRounds(ctx, await originalAdapter(ctx.url, 32), { n: ctx.config.peerN, ordered: true })
  },
  {
    id: 'busmq31-many',
    contender: ORIGINAL,
    peer: true,
    workload: (c) => `${c.queues} queues × writer+reader, 32 B`,
    run: async (ctx) => runManyQueues(ctx, await originalAdapter(ctx.url, 32),
      { n: ctx.config.peerN, queues: ctx.config.queues, ordered: true })
  },
  {
    id: 'bullmq-32',
    contender: BULL,
    peer: true,
    workload: () => `1 queue, 32 B (addBulk / Worker ×${WORKER_CONCURRENCY})`,
    run: (ctx) => runQueueRounds(ctx, bullAdapter(ctx.url, 32), { n: ctx.config.bullN, ordered: false })
  },
  {
    id: 'bee-32',
    contender: BEE,
    peer: true,
    workload: () => `1 queue, 32 B (saveAll / process ×${WORKER_CONCURRENCY})`,
    run: (ctx) => runQueueRounds(ctx, beeAdapter(ctx.url, 32), { n: ctx.config.peerN, ordered: false })
  },
  {
    id: 'busmq31-latency-1k',
    contender: ORIGINAL,
    peer: true,
    workload: (c) => `latency @ 1k msgs/s, ${c.latencySeconds} s, q.push`,
    run: async (ctx) => runLatency(ctx, await originalLatencyAdapter(ctx.url, 32), 1000, true)
  },
  {
    id: 'bullmq-latency-1k',
    contender: BULL,
    peer: true,
    workload: (c) => `latency @ 1k msgs/s, ${c.latencySeconds} s, queue.add`,
    run: async (ctx) => runLatency(ctx, await bullLatencyAdapter(ctx.url, 32), 1000, false)
  },
  {
    id: 'bee-latency-1k',
    contender: BEE,
    peer: true,
    workload: (c) => `latency @ 1k msgs/s, ${c.latencySeconds} s, job.save`,
    run: async (ctx) => runLatency(ctx, await beeLatencyAdapter(ctx.url, 32), 1000, false)
  },
  {
    id: 'busmq-svc-rps',
    contender: OURS,
    workload: (c) => `services: echo requests, ${c.svcInFlight} in flight (serve concurrency ${c.svcInFlight})`,
    run: async (ctx) => runRequestRate(ctx, await busmqServiceAdapter(ctx.url, ctx.config.svcInFlight), ctx.config.svcN)
  },
  {
    id: 'busmq-svc-latency-1k',
    contender: OURS,
    workload: (c) => `services: request → reply latency @ 1k requests/s, ${c.latencySeconds} s`,
    run: async (ctx) => runLatency(ctx, serviceLatencyAdapter(await busmqServiceAdapter(ctx.url, ctx.config.svcInFlight)), 1000, false)
  },
  {
    id: 'busmq31-svc-rps',
    contender: ORIGINAL,
    peer: true,
    workload: (c) => `services: echo requests, ${c.svcInFlight} in flight`,
    run: async (ctx) => runRequestRate(ctx, await originalServiceAdapter(ctx.url), ctx.config.svcPeerN)
  },
  {
    id: 'busmq31-svc-latency-1k',
    contender: ORIGINAL,
    peer: true,
    workload: (c) => `services: request → reply latency @ 1k requests/s, ${c.latencySeconds} s`,
    run: async (ctx) => runLatency(ctx, serviceLatencyAdapter(await originalServiceAdapter(ctx.url)), 1000, false)
  },
  {
    id: 'busmq-idle',
    contender: OURS,
    idle: true,
    workload: (c) => `${c.idleQueues} idle queues × one 32 B message, ttl ${c.idleTtl} ms`,
    run: (ctx) => idleQueues(ctx)
  },
  {
    id: 'busmq-attached',
    contender: OURS,
    idle: true,
    workload: (c) => `${c.attachedQueues} attached queues, ttl ${c.attachedTtl} ms`,
    run: (ctx) => attachedQueues(ctx)
  }
]

export { loadConfig }
