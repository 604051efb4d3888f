import { randomUUID } from 'node:crypto'
import { Bus, type BusOptions } from '../../lib/index.js'
import type { RedisServer } from './redis-server.js'

/** A unique queue or channel name per test. */
export function uniqueName (what = 'test'): string {
  return `${what}-${randomUUID()}`
}

/** A bus over the given test servers, connected, closed by the caller. */
export async function openBus (servers: RedisServer[], options: BusOptions = {}): Promise<Bus> {
  const bus = new Bus({ redis: servers.map((s) => s.url), ...options })
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

/** Polls `check` every 20 ms until it returns true or `ms` pass; returns whether it did. */
export async function eventually (check: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return await check()
}

/** Collects everything a readable emits until it ends. */
export async function collect<T = unknown> (readable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of readable) out.push(x)
  return out
}
