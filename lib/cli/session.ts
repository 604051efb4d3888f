import { Bus } from '../bus.js'
import type { BusOptions } from '../bus-options.js'
import type { Queue } from '../queue/queue.js'
import type { CommonOptions } from './args.js'
import { RedisWatch } from './redis-watch.js'

/** The watch of the command's bus (a process runs one command), to explain the error it ends with. */
let watch: RedisWatch | undefined

/**
 * A connected bus for a command. Says on stderr as soon as a shard cannot be reached (and that it
 * retries), fails at once when Redis refuses the credentials, and after `--timeout` ms naming each
 * shard not reached and why (connection refused, host not found, …). See {@link RedisWatch}.
 */
export async function openBus (common: CommonOptions, layout?: Pick<BusOptions, 'cluster' | 'sentinel'>): Promise<Bus> {
  const where = layout?.cluster !== undefined || layout?.sentinel !== undefined ? layout : { redis: common.redis }
  const bus = new Bus({ ...where, prefix: common.prefix, connectTimeout: common.timeout })
  watch = new RedisWatch(bus, common)
  try {
    await watch.connect()
  } catch (err) {
    await bus.close()
    throw err
  }
  return bus
}

/** `err` with what the command's bus knows about its connections added (see RedisWatch.explain). */
export function explainError (err: unknown): unknown {
  return watch !== undefined ? watch.explain(err) : err
}

/**
 * Calls `stop` on the first SIGINT or SIGTERM, so the command can end cleanly (give back unread
 * messages, flush, close the bus). A second signal means "now": exit at once with 130.
 * Returns a function that removes the handlers.
 */
export function onStopSignal (stop: (signal: NodeJS.Signals) => void): () => void {
  let seen = false
  const handler = (signal: NodeJS.Signals): void => {
    if (seen) {
      process.stderr.write(`\nbusmq: second ${signal}, exiting without cleaning up\n`)
      process.exit(130)
    }
    seen = true
    stop(signal)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return () => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS, or after `ms` (a reader
 * that stopped reading must not hold the process forever), or at once if the stream failed.
 */
export function flushed (stream: NodeJS.WritableStream & { writableLength?: number, destroyed?: boolean }, ms = 2000): Promise<void> {
  if (stream.destroyed === true || stream.writableLength === 0) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    timer.unref()
    try {
      stream.write('', () => {
        clearTimeout(timer)
        resolve()
      })
    } catch {
      clearTimeout(timer)
      resolve()
    }
  })
}

/** How the library names a queue's dead-letter queue (`queue.deadLetter().name`). */
export const DEAD_LETTER_SUFFIX = ':dead-letter'

/**
 * The queue a command-line name means: `<queue>:dead-letter` is the dead-letter queue of `<queue>`
 * (whose keys live beside its queue's, not under a queue of that name), anything else the queue itself.
 */
export function queueByName (bus: Bus, name: string): Queue {
  if (name.endsWith(DEAD_LETTER_SUFFIX) && name.length > DEAD_LETTER_SUFFIX.length) {
    return bus.queue(name.slice(0, -DEAD_LETTER_SUFFIX.length)).deadLetter()
  }
  return bus.queue(name)
}
