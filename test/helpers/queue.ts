// Small stream helpers shared by the queue tests.
import { once } from 'node:events'
import { afterEach } from 'node:test'
import { Bus, type BusOptions } from '../../lib/index.js'
import type { RedisServer } from './redis-server.js'

/** [from, from + 1, …, to - 1] */
export function range (from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i)
}

/** Resolves after `ms`. */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Reads `n` chunks through the async iterator, then leaves the loop, which destroys the stream (a
 * consume-once reader then gives back what it had buffered). Resolves once the stream has closed.
 * Rejects if the stream fails before `n` chunks arrived (or ends early: then it returns fewer).
 */
export async function take<T = unknown> (readable: AsyncIterable<T> & NodeJS.EventEmitter & { closed: boolean }, n: number): Promise<T[]> {
  const out: T[] = []
  if (n > 0) {
    for await (const x of readable) {
      out.push(x)
      if (out.length === n) break
    }
  }
  // Leaving the loop destroys the stream with an AbortError; only its 'close' matters here.
  if (!readable.closed) await new Promise((resolve) => readable.once('close', resolve))
  return out
}

/** What writeAll needs of a Writable (node's or readable-stream's). */
export interface Sink extends NodeJS.EventEmitter {
  write: (chunk: any) => boolean
  end: () => unknown
}

/** Writes every item, waiting for 'drain' when write() says so, then ends and waits for 'finish'. */
export async function writeAll (w: Sink, items: Iterable<unknown>): Promise<void> {
  for (const item of items) {
    if (!w.write(item)) await once(w, 'drain')
  }
  w.end()
  await once(w, 'finish')
}

/** Every key on `server` whose name contains `part` (SCAN, not KEYS). */
export async function keysContaining (server: RedisServer, part: string): Promise<string[]> {
  const out = await server.cli('--scan', '--pattern', '*')
  return out.split('\n').filter((k) => k.length > 0 && k.includes(part))
}

/**
 * Like openBus() (servers, or anything with a Redis `url`), but every bus it opened is closed after
 * each test, so a test that fails half-way leaves no connection behind to keep the process alive.
 */
export function trackBuses (): (servers: Array<{ url: string }>, options?: BusOptions) => Promise<Bus> {
  const open = new Set<Bus>()
  afterEach(async () => {
    const all = [...open]
    open.clear()
    await Promise.all(all.map((b) => b.close()))
  })
  return async (servers, options) => {
    const bus = new Bus({ redis: servers.map((s) => s.url), ...options })
    open.add(bus)
    await bus.connect()
    return bus
  }
}
