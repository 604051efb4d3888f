/**
 * The job queues: BullMQ 6.7 (Queue.addBulk + Worker with concurrency) and bee-queue 2.0 (saveAll +
 * process with concurrency). A message is a job whose data is the 32-character string payload; drained
 * counts jobs completed (BullMQ 'completed', bee-queue 'succeeded'). Neither promises order, so only
 * exactly-once is checked. Jobs are removed on completion, as a throughput-minded user would configure.
 */
import { createRequire } from 'node:module'
import { setTimeout as delay } from 'node:timers/promises'
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq'
import type BeeQueueType from 'bee-queue'
import { stringPayload, stringSeq, type Checker } from '../common.js'
import type { QueueAdapter } from '../job.js'
import type { LatencyAdapter } from './busmq.js'

const require = createRequire(import.meta.url)
const BeeQueue = require('bee-queue') as typeof BeeQueueType

const BULK = 1000
const DEPTH = 4
export const WORKER_CONCURRENCY = 100

function hostPort (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

/** Runs `make(from, to)` for consecutive slices of BULK, DEPTH at a time. */
async function inSlices (n: number, make: (from: number, to: number) => Promise<unknown>): Promise<void> {
  const inflight: Array<Promise<unknown>> = []
  for (let i = 0; i < n; i += BULK) {
    inflight.push(make(i, Math.min(n, i + BULK)))
    if (inflight.length >= DEPTH) await inflight.shift()
  }
  await Promise.all(inflight)
}

async function until (cond: () => boolean): Promise<void> {
  while (!cond()) await delay(2)
}

// --- BullMQ --------------------------------------------------------------------------------------------

export function bullAdapter (url: string, size: number): QueueAdapter {
  const connection = { ...hostPort(url), maxRetriesPerRequest: null }
  const closers: Array<() => Promise<unknown>> = []
  const jobOpts = { removeOnComplete: true, removeOnFail: true }

  const pushAll = async (name: string, n: number): Promise<void> => {
    const q = new BullQueue(name, { connection })
    q.on('error', () => {})
    closers.push(() => q.close())
    await inSlices(n, async (from, to) => {
      const jobs = []
      for (let i = from; i < to; i++) jobs.push({ name: 'm', data: { m: stringPayload(i, size) }, opts: jobOpts })
      await q.addBulk(jobs)
    })
  }

  const drainAll = async (name: string, n: number, check: Checker): Promise<void> => {
    let completed = 0
    let failed: Error | undefined
    const w = new BullWorker(name, async (job) => {
      check.accept(stringSeq(job.data.m, size))
    }, { connection, concurrency: WORKER_CONCURRENCY })
    w.on('error', () => {})
    w.on('completed', () => { completed++ })
    w.on('failed', (_job, err) => { failed = err })
    closers.push(() => w.close())
    await until(() => completed >= n || check.problem !== undefined || failed !== undefined)
    if (failed) throw failed
  }

  return {
    pushAll,
    drainAll,
    async concurrent (name, n, check) {
      await Promise.all([drainAll(name, n, check), pushAll(name, n)])
    },
    async close () {
      await Promise.allSettled(closers.map((c) => c()))
    }
  }
}

export async function bullLatencyAdapter (url: string, size: number): Promise<LatencyAdapter> {
  const connection = { ...hostPort(url), maxRetriesPerRequest: null }
  let q: BullQueue | undefined
  let w: BullWorker | undefined
  let failure: Error | undefined
  return {
    async consume (name, onMessage) {
      w = new BullWorker(name, async (job) => {
        onMessage(stringSeq(job.data.m, size), job.data.t)
      }, { connection, concurrency: WORKER_CONCURRENCY })
      w.on('error', () => {})
      await w.waitUntilReady()
      q = new BullQueue(name, { connection })
      q.on('error', () => {})
      await q.waitUntilReady()
    },
    send (_name, seq, ts) {
      if (failure) throw failure
      q!.add('m', { m: stringPayload(seq, size), t: ts }, { removeOnComplete: true, removeOnFail: true })
        .catch((err: Error) => { failure = err })
    },
    async close () {
      await Promise.allSettled([q?.close(), w?.close()])
    }
  }
}

// --- bee-queue -----------------------------------------------------------------------------------------

const BEE_SETTINGS = { getEvents: false, sendEvents: false, storeJobs: false, removeOnSuccess: true, removeOnFailure: true }

export function beeAdapter (url: string, size: number): QueueAdapter {
  const redis = hostPort(url)
  const closers: Array<() => Promise<unknown>> = []

  const pushAll = async (name: string, n: number): Promise<void> => {
    const q = new BeeQueue(name, { redis, isWorker: false, ...BEE_SETTINGS })
    q.on('error', () => {})
    closers.push(() => q.close())
    await inSlices(n, async (from, to) => {
      const jobs = []
      for (let i = from; i < to; i++) jobs.push(q.createJob({ m: stringPayload(i, size) }))
      const errors = await q.saveAll(jobs)
      if (errors.size > 0) throw [...errors.values()][0]
    })
  }

  const drainAll = async (name: string, n: number, check: Checker): Promise<void> => {
    const q = new BeeQueue(name, { redis, isWorker: true, ...BEE_SETTINGS })
    let done = 0
    let failed: Error | undefined
    q.on('error', () => {})
    q.on('succeeded', () => { done++ })
    q.on('failed', (_job, err) => { failed = err })
    closers.push(() => q.close())
    q.process(WORKER_CONCURRENCY, async (job) => {
      check.accept(stringSeq(job.data.m, size))
    })
    await until(() => done >= n || check.problem !== undefined || failed !== undefined)
    if (failed) throw failed
  }

  return {
    pushAll,
    drainAll,
    async concurrent (name, n, check) {
      await Promise.all([drainAll(name, n, check), pushAll(name, n)])
    },
    async close () {
      await Promise.allSettled(closers.map((c) => c()))
    }
  }
}

export async function beeLatencyAdapter (url: string, size: number): Promise<LatencyAdapter> {
  const redis = hostPort(url)
  let producer: BeeQueueType | undefined
  let worker: BeeQueueType | undefined
  let failure: Error | undefined
  return {
    async consume (name, onMessage) {
      worker = new BeeQueue(name, { redis, isWorker: true, ...BEE_SETTINGS })
      worker.on('error', () => {})
      worker.process(WORKER_CONCURRENCY, async (job) => {
        onMessage(stringSeq(job.data.m, size), job.data.t)
      })
      producer = new BeeQueue(name, { redis, isWorker: false, ...BEE_SETTINGS })
      producer.on('error', () => {})
      await Promise.all([worker.ready(), producer.ready()])
    },
    send (_name, seq, ts) {
      if (failure) throw failure
      producer!.createJob({ m: stringPayload(seq, size), t: ts }).save().catch((err: Error) => { failure = err })
    },
    async close () {
      await Promise.allSettled([producer?.close(), worker?.close()])
    }
  }
}
