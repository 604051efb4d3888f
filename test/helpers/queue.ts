// Small stream helpers shared by the queue tests.
import { once } from 'node:events'
import type { Queue } from '../../lib/index.js'
import type { RedisServer } from './redis-server.js'
import { openBus } from './bus.js'
import { waitFor } from './wait.js'

/** [from, from + 1, …, to - 1] */
export function range (from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i)
}

/**
 * Resolves after `ms`. Only for where time passing is the point (a lease or TTL must lapse, nothing may
 * happen for a while, a pace): to wait for something to happen, use eventually()/waitFor() or the event.
 */
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

/**
 * Writes `items` to a new write stream of `queue` corked, so that they reach its producer as one batch,
 * and ends it; resolves at 'finish' (listened for at once, so it is never missed).
 */
export function writeCorked (queue: Queue, items: unknown[]): Promise<unknown> {
  const w = queue.createWriteStream({ highWaterMark: items.length + 1 })
  const finished = once(w, 'finish')
  w.cork()
  for (const item of items) w.write(item)
  w.uncork()
  w.end()
  return finished
}

/** Every key on `server` whose name contains `part` (SCAN, not KEYS). */
export async function keysContaining (server: RedisServer, part: string): Promise<string[]> {
  const out = await server.cli('--scan', '--pattern', '*')
  return out.split('\n').filter((k) => k.length > 0 && k.includes(part))
}

/**
 * Resolves once a reader of `queue` waits for a wake-up: it found the queue empty and subscribed the
 * queue's wake-up channel on `server` (readers subscribe only while they wait).
 */
export async function readerWaiting (server: RedisServer, queue: Queue): Promise<void> {
  const channel = queue.keys.wake
  await waitFor(async () => Number((await server.cli('PUBSUB', 'NUMSUB', channel)).split('\n')[1]) > 0,
    { what: `a reader of ${queue.name} waiting (a subscriber on ${channel})` })
}

/**
 * The tracking opener, under the name the queue tests have used: openBus() itself (every bus it opens is
 * closed after the test that opened it). Kept so that `const openBus = trackBuses()` still works.
 */
export function trackBuses (): typeof openBus {
  return openBus
}
