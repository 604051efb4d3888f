/**
 * This project, through its public API only (dist/lib/index.js): write streams into read streams, many
 * queues at once, reliable reads acked through an ack stream, a channel, and paced push → receive latency.
 */
import { once } from 'node:events'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Bus } from '../../lib/index.js'
import {
  Checker, CheckError, CpuMeter, assertChecked, bytePayload, byteSeq, now, objectPayload, objectSeq, rate, redisCpuSeconds, withTimeout
} from '../common.js'
import type { JobContext, QueueAdapter } from '../job.js'

export type DataMode = 'bytes' | 'object'

interface Writer {
  write: (chunk: any) => boolean
  end: () => unknown
  on: (event: string, fn: (...args: any[]) => void) => unknown
  once: (event: string, fn: (...args: any[]) => void) => unknown
}

/** Writes every message, honouring backpressure; resolves on 'finish' (every write accepted by Redis). */
export async function writeAll (w: Writer, n: number, make: (seq: number) => unknown): Promise<void> {
  const failed = new Promise<never>((resolve, reject) => w.on('error', reject))
  const finished = new Promise<void>((resolve) => w.once('finish', () => resolve()))
  const run = async (): Promise<void> => {
    for (let i = 0; i < n; i++) {
      if (!w.write(make(i))) await new Promise<void>((resolve) => w.once('drain', () => resolve()))
    }
    w.end()
    await finished
  }
  await Promise.race([run(), failed])
}

/** Feeds every chunk of a readable to `onData` and resolves at its end. */
export function readAll (r: NodeJS.EventEmitter, onData: (chunk: any) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    r.on('data', onData)
    r.once('end', () => resolve())
    r.once('error', reject)
  })
}

export function makers (mode: DataMode, size: number): { make: (seq: number) => unknown, seqOf: (m: any) => number | string } {
  return mode === 'bytes'
    ? { make: (seq) => bytePayload(seq, size), seqOf: (m) => byteSeq(m, size) }
    : { make: (seq) => objectPayload(seq, size), seqOf: (m) => objectSeq(m, size) }
}

async function openBus (url: string, options: Record<string, unknown> = {}): Promise<Bus> {
  const bus = new Bus({ redis: [url], ...options })
  bus.on('error', () => {})
  await bus.connect()
  return bus
}

/** One queue: a write stream, then (or at the same time) a read stream. */
export async function streamAdapter (url: string, mode: DataMode, size: number, open: () => Promise<Bus> = async () => await openBus(url)): Promise<QueueAdapter> {
  // Producer and consumer on separate buses (separate connections), as in separate processes.
  const producer = await open()
  const consumer = await open()
  const objectMode = mode === 'object'
  const { make, seqOf } = makers(mode, size)

  const pushAll = async (name: string, n: number): Promise<void> => {
    await writeAll(producer.queue(name, { objectMode }).createWriteStream(), n, make)
  }
  const drainAll = async (name: string, n: number, check: Checker): Promise<void> => {
    const r = consumer.queue(name, { objectMode }).createReadStream({ max: n })
    await readAll(r, (m) => check.accept(seqOf(m)))
  }
  return {
    pushAll,
    drainAll,
    async concurrent (name, n, check) {
      await Promise.all([drainAll(name, n, check), pushAll(name, n)])
    },
    async close () {
      await Promise.all([producer.close(), consumer.close()])
    }
  }
}

/** Reliable mode: push N, then pipeline(reliable reader, check, ack stream); drained = delivered and acked. */
export async function reliable (ctx: JobContext, size: number): Promise<void> {
  const { config, result } = ctx
  const n = config.nReliable
  result.n = n
  result.rounds = config.rounds
  result.push = []
  result.drain = []
  result.nodeUs = []
  result.redisUs = []
  const producer = await openBus(ctx.url)
  const consumer = await openBus(ctx.url)
  const { make, seqOf } = makers('bytes', size)
  const meter = new CpuMeter(ctx.admin)
  try {
    for (let round = 0; round < config.rounds; round++) {
      const name = `reliable-${round}`
      await meter.start()
      let t = now()
      await writeAll(producer.queue(name).createWriteStream(), n, make)
      result.push.push(rate(n, t))
      const check = new Checker(n, true)
      const q = consumer.queue(name)
      const verify = new Transform({
        objectMode: true,
        transform (msg, _enc, cb) {
          check.accept(seqOf(msg.data))
          cb(null, msg)
        }
      })
      const acks = q.createAckStream()
      t = now()
      await withTimeout(120_000, 'reliable drain', () => pipeline(q.createReadStream({ mode: 'reliable', max: n }), verify, acks))
      result.drain.push(rate(n, t))
      const c = await meter.stop(n)
      result.nodeUs.push(c.nodeUs)
      result.redisUs.push(c.redisUs)
      assertChecked(check, 'reliable')
      if (acks.acked !== n) throw new CheckError(`acked ${acks.acked} of ${n} (stale ${acks.stale})`)
      const stats = await q.stats()
      if (stats.length !== 0 || stats.inFlight !== 0) {
        throw new CheckError(`after acking everything the queue holds ${stats.length} waiting and ${stats.inFlight} in flight`)
      }
      ctx.rss.sample()
    }
  } finally {
    await Promise.all([producer.close(), consumer.close()])
  }
}

/** A channel's throughput, one direction, 64 KiB chunks; checks order, length and bytes of every chunk. */
export async function channel (ctx: JobContext, chunkSize: number, open: () => Promise<Bus> = async () => await openBus(ctx.url)): Promise<void> {
  const { config, result } = ctx
  const chunks = Math.max(1, Math.floor(config.channelBytes / chunkSize))
  const bytes = chunks * chunkSize
  result.n = bytes
  result.rounds = config.rounds
  result.mbps = []
  result.nodeBusy = []
  result.redisBusy = []
  const a = await open()
  const b = await open()
  try {
    for (let round = 0; round < config.rounds; round++) {
      const name = `bench-channel-${round}`
      const sender = a.channel(name)
      const receiver = b.channel(name, { listen: true })
      let got = 0
      let problem: string | undefined
      const redis0 = await redisCpuSeconds(ctx.admin)
      const cpu0 = process.cpuUsage()
      const t = now()
      await withTimeout(60_000, 'channel', () => Promise.all([
        readAll(receiver, (chunk: Buffer) => {
          const seq = byteSeq(chunk, chunkSize)
          if (problem !== undefined) return
          if (typeof seq === 'string') problem = `chunk ${got}: ${seq}`
          else if (seq !== got) problem = `chunk ${seq} arrived as chunk number ${got}`
          got++
        }),
        writeAll(sender, chunks, (seq) => bytePayload(seq, chunkSize))
      ]))
      const seconds = (now() - t) / 1000
      const cpu = process.cpuUsage(cpu0)
      result.mbps.push(bytes / 1e6 / seconds)
      result.nodeBusy.push((cpu.user + cpu.system) / 1e6 / seconds * 100)
      result.redisBusy.push((await redisCpuSeconds(ctx.admin) - redis0) / seconds * 100)
      if (problem !== undefined) throw new CheckError(problem)
      if (got !== chunks) throw new CheckError(`received ${got} of ${chunks} chunks`)
      // Half-close back, as with TCP: both sides end and close.
      sender.resume()
      receiver.end()
      await withTimeout(10_000, 'channel close', () => Promise.all([once(sender, 'close'), once(receiver, 'close')]))
      ctx.rss.sample()
    }
  } finally {
    await Promise.all([a.close(), b.close()])
  }
}

/** What the latency runner needs of a contender. */
export interface LatencyAdapter {
  /** Starts one reader; `onMessage` gets (sequence number or problem, send timestamp in ms). */
  consume: (name: string, onMessage: (seq: number | string, ts: number) => void) => Promise<void>
  send: (name: string, seq: number, ts: number) => void
  close: () => Promise<void>
}

export async function busmqLatencyAdapter (url: string, size: number, via: 'push' | 'write'): Promise<LatencyAdapter> {
  const producer = await openBus(url)
  const consumer = await openBus(url)
  const queues = new Map<string, ReturnType<Bus['queue']>>()
  const writers = new Map<string, ReturnType<ReturnType<Bus['queue']>['createWriteStream']>>()
  let failure: Error | undefined
  return {
    async consume (name, onMessage) {
      const r = consumer.queue(name).createReadStream()
      r.on('data', (m: Buffer) => onMessage(byteSeq(m, size), m.readDoubleBE(8)))
      r.on('error', (err: Error) => { failure = err })
      if (via === 'write') {
        const w = producer.queue(name).createWriteStream()
        w.on('error', (err: Error) => { failure = err })
        writers.set(name, w)
      }
      // The reader attaches and subscribes in the background; the warm-up phase covers its start.
      await new Promise((resolve) => setTimeout(resolve, 50))
    },
    send (name, seq, ts) {
      if (failure) throw failure
      if (via === 'write') {
        writers.get(name)!.write(bytePayload(seq, size, ts))
        return
      }
      let q = queues.get(name)
      if (!q) { q = producer.queue(name); queues.set(name, q) }
      q.push(bytePayload(seq, size, ts)).catch((err: Error) => { failure = err })
    },
    async close () {
      await Promise.all([producer.close(), consumer.close()])
    }
  }
}
