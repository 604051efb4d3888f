/**
 * BusMQ 3.1, the original (npm alias `busmq-original`, CommonJS), with its defaults (node-redis driver):
 * `q.push(message, cb)` (one Lua call per message) and `q.consume()` with 'message' events (one round
 * trip per message). It promises queue order, so order is checked.
 */
import { createRequire } from 'node:module'
import { setTimeout as delay } from 'node:timers/promises'
import { stringPayload, stringSeq, type Checker } from '../common.js'
import type { QueueAdapter } from '../job.js'
import type { LatencyAdapter } from './busmq.js'

const require = createRequire(import.meta.url)

interface OriginalQueue {
  on: (event: string, fn: (...args: any[]) => void) => void
  once: (event: string, fn: (...args: any[]) => void) => void
  removeAllListeners: (event?: string) => void
  attach: (options?: object) => void
  detach: () => void
  push: (message: string, cb?: (err: Error | null, id?: number) => void) => boolean
  consume: (options?: object) => void
  stop: () => void
}

/** BusMQ 3.1's service object (bench/contenders/services.ts uses it). */
export interface OriginalService {
  on: (event: string, fn: (...args: any[]) => void) => void
  serve: (cb: () => void) => void
  connect: (options: object, cb: () => void) => void
  request: (data: unknown, options: object, cb: (err: unknown, reply: unknown) => void) => void
  disconnect: (grace?: number) => void
}

export interface OriginalBus {
  on: (event: string, fn: (...args: any[]) => void) => void
  once: (event: string, fn: (...args: any[]) => void) => void
  connect: () => void
  disconnect: () => void
  queue: (name: string) => OriginalQueue
  service: (name: string) => OriginalService
}

/** A BusMQ 3.1 bus over one Redis, once it is online. */
export async function openBus (url: string): Promise<OriginalBus> {
  const BusMQ = require('busmq-original') as { create: (options: object) => OriginalBus }
  const bus = BusMQ.create({ redis: [url] })
  bus.on('error', () => {})
  await new Promise<void>((resolve) => {
    bus.once('online', () => resolve())
    bus.connect()
  })
  return bus
}

async function attached (bus: OriginalBus, name: string): Promise<OriginalQueue> {
  const q = bus.queue(name)
  q.on('error', () => {})
  await new Promise<void>((resolve) => {
    q.once('attached', () => resolve())
    q.attach()
  })
  return q
}

async function waitDone (check: Checker): Promise<void> {
  while (!check.done) await delay(2)
}

export async function originalAdapter (url: string, size: number): Promise<QueueAdapter> {
  const producer = await openBus(url)
  const consumer = await openBus(url)
  const open: OriginalQueue[] = []

  const pushAll = async (name: string, n: number): Promise<void> => {
    const q = await attached(producer, name)
    open.push(q)
    await new Promise<void>((resolve, reject) => {
      let acked = 0
      for (let i = 0; i < n; i++) {
        q.push(stringPayload(i, size), (err) => {
          if (err) return reject(err)
          if (++acked === n) resolve()
        })
      }
    })
  }

  const drainAll = async (name: string, n: number, check: Checker): Promise<void> => {
    const q = await attached(consumer, name)
    open.push(q)
    q.on('message', (m: string) => {
      check.accept(stringSeq(m, size))
      if (check.done) q.stop()
    })
    q.consume()
    await waitDone(check)
  }

  return {
    pushAll,
    drainAll,
    async concurrent (name, n, check) {
      const reading = drainAll(name, n, check)
      await delay(20)
      await Promise.all([reading, pushAll(name, n)])
    },
    async close () {
      for (const q of open) { try { q.stop(); q.detach() } catch {} }
      await delay(100)
      producer.disconnect()
      consumer.disconnect()
    }
  }
}

export async function originalLatencyAdapter (url: string, size: number): Promise<LatencyAdapter> {
  const producer = await openBus(url)
  const consumer = await openBus(url)
  const queues = new Map<string, OriginalQueue>()
  let failure: Error | undefined
  return {
    async consume (name, onMessage) {
      const q = await attached(consumer, name)
      q.on('message', (m: string) => onMessage(stringSeq(m, size), Number(m.slice(11, 31))))
      q.consume()
      queues.set(`c:${name}`, q)
      queues.set(name, await attached(producer, name))
    },
    send (name, seq, ts) {
      if (failure) throw failure
      // 10-digit sequence, ':', the timestamp (ms, 20 characters), filler.
      const head = String(seq).padStart(10, '0') + ':' + ts.toFixed(6).padStart(20, '0')
      queues.get(name)!.push(head + 'x'.repeat(size - head.length), (err) => { if (err) failure = err })
    },
    async close () {
      for (const q of queues.values()) { try { q.stop(); q.detach() } catch {} }
      await delay(100)
      producer.disconnect()
      consumer.disconnect()
    }
  }
}
