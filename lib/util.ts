import { BusClosedError } from './errors.js'

/** True for an error Redis itself replied with (as opposed to a connection problem worth retrying). */
export function isReplyError (err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'ERR_BUSMQ_REDIS'
}

/**
 * setTimeout's longest delay, 2^31 − 1 ms (about 24.8 days). Node fires a longer one after 1 ms (with a
 * TimeoutOverflowWarning), which would turn a long poll or lease into a busy loop.
 */
export const MAX_DELAY = 2_147_483_647

/** A timer's delay: `ms`, at least 0 and at most {@link MAX_DELAY} (a timer armed for a far deadline looks again then). */
export function timerDelay (ms: number): number {
  return Math.min(MAX_DELAY, Math.max(0, ms))
}

/** Resolves after `ms`, or at once when `signal` aborts; the timer never keeps the process alive. */
export function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, timerDelay(ms))
    timer.unref()
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Resolves when a Writable whose `write()` returned false may be written again ('drain'), or will never
 * be ('close'): a writer waiting for room must not wait forever on a stream that was destroyed.
 */
export function drained (w: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      w.off('drain', done)
      w.off('close', done)
      resolve()
    }
    w.on('drain', done)
    w.on('close', done)
  })
}

/** Splits `items` into consecutive batches of at most `maxCount` items and about `maxBytes` bytes. */
export function batches (items: Buffer[], maxCount: number, maxBytes: number): Buffer[][] {
  if (items.length <= maxCount) {
    let total = 0
    for (const b of items) total += b.length
    if (total <= maxBytes) return [items]
  }
  const out: Buffer[][] = []
  let cur: Buffer[] = []
  let bytes = 0
  for (const b of items) {
    if (cur.length > 0 && (cur.length >= maxCount || bytes + b.length > maxBytes)) {
      out.push(cur)
      cur = []
      bytes = 0
    }
    cur.push(b)
    bytes += b.length
  }
  if (cur.length > 0) out.push(cur)
  return out
}

/** What destroyAndWait needs of a stream. */
interface Closable {
  closed: boolean
  destroy: () => unknown
  once: (event: 'close', listener: () => void) => unknown
}

/** Destroys a stream and resolves once it has closed (its _destroy gave back what it held). */
export async function destroyAndWait (stream: Closable): Promise<void> {
  if (stream.closed) return
  await new Promise<void>((resolve) => {
    stream.once('close', () => resolve())
    stream.destroy()
  })
}

/** What closeByBus needs of a stream. */
interface BusClosable extends Closable {
  destroyed: boolean
  destroy: (err?: Error) => unknown
  listenerCount: (event: 'error') => number
}

/**
 * How `bus.close()` closes a readable side (reader, channel, subscriber): a consumer that listens for
 * errors (a `for await` loop, a pipeline) sees `ERR_BUSMQ_CLOSED`; one that does not is not crashed by an
 * unhandled 'error' event, and the stream closes quietly. Resolves once it has closed (what it took and
 * did not hand on is back in its queue by then).
 */
export async function closeByBus (stream: BusClosable): Promise<void> {
  if (stream.closed) return
  await new Promise<void>((resolve) => {
    stream.once('close', () => resolve())
    if (stream.destroyed) return
    stream.destroy(stream.listenerCount('error') > 0 ? new BusClosedError('the bus was closed') : undefined)
  })
}
