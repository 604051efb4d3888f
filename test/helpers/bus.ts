import { randomUUID } from 'node:crypto'
import { after, afterEach, beforeEach } from 'node:test'
import { Bus, type BusOptions } from '../../lib/index.js'
import './leaks.js'

export { eventually, waitFor } from './wait.js'

/** A unique queue or channel name per test. */
export function uniqueName (what = 'test'): string {
  return `${what}-${randomUUID()}`
}

/**
 * Buses opened by openBus(), per running test (tests of a file run one at a time, the default; a subtest
 * gets its own set on top of its parent's), and those opened outside any test (in a before() hook).
 */
const perTest: Array<Set<Bus>> = []
const outsideTests = new Set<Bus>()

async function closeAll (buses: Set<Bus>): Promise<void> {
  const all = [...buses]
  buses.clear()
  await Promise.allSettled(all.map((b) => b.close()))
}

// Root hooks, registered when this module is first imported (before the file's own hooks): every test
// closes the buses it opened, also when it failed half-way, so no connection outlives it; buses opened in
// a before() hook are closed first thing after the last test (before the servers go).
beforeEach(() => { perTest.push(new Set()) })
afterEach(async () => { await closeAll(perTest.pop() ?? new Set()) })
after(async () => { await closeAll(outsideTests) })

/**
 * A connected bus over the given test servers (anything with a Redis `url`), closed after the test that
 * opened it (or, opened in a before() hook, after the file's last test). Closing it earlier is fine.
 */
export async function openBus (servers: Array<{ url: string }>, options: BusOptions = {}): Promise<Bus> {
  const bus = new Bus({ redis: servers.map((s) => s.url), ...options })
  const owner = perTest.at(-1) ?? outsideTests
  owner.add(bus)
  await bus.connect()
  return bus
}

/**
 * Resolves with the first emission of `event` whose arguments satisfy `match`. Unlike events.once it
 * does not listen for 'error' (a bus reports connection errors there while a shard is down, and those
 * are expected, not a reason to fail).
 */
export async function nextEvent (emitter: NodeJS.EventEmitter, event: string, match: (...args: any[]) => boolean = () => true): Promise<any[]> {
  return await new Promise((resolve) => {
    const listener = (...args: any[]): void => {
      if (!match(...args)) return
      emitter.off(event, listener)
      resolve(args)
    }
    emitter.on(event, listener)
  })
}

/** Collects everything a readable emits until it ends. */
export async function collect<T = unknown> (readable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of readable) out.push(x)
  return out
}
