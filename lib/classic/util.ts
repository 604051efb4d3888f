import type { EventEmitter } from 'events'
import { validateName } from '../names.js'

/**
 * The name a BusMQ 3.1 name is stored under. 3.1 took any string (its own example is
 * `bus.pubsub('my pubsub channel')`); this BusMQ's names are `[A-Za-z0-9_-.:@/=]`, so every other
 * character is written as `=XX` per byte of its UTF-8 (a space: `=20`), and names within the rules stay
 * as they are, the same queue a native handle opens. Throws `ERR_BUSMQ_INVALID_NAME` for an empty name,
 * or one longer than 200 characters once escaped.
 */
export function classicName (name: string, what: string): string {
  if (typeof name !== 'string') return validateName(name, what)
  const escaped = name.replace(/[^A-Za-z0-9_\-.:@/=]/gu, (ch) =>
    [...Buffer.from(ch, 'utf8')].map((b) => `=${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''))
  return validateName(escaped, what)
}

/** A BusMQ 3.1 callback: an error (or null), then results. */
export type Callback<T = unknown> = (err: Error | null, result?: T) => void

/** BusMQ 3.1 messages are strings: objects travel as JSON, anything else as its string (Buffers as they are). */
export function toPayload (message: unknown): string | Buffer {
  if (Buffer.isBuffer(message)) return message
  if (typeof message === 'object' && message !== null) return JSON.stringify(message)
  return String(message)
}

/** What a classic reader hands its 'message' listeners: the message as a string. */
export function toText (data: unknown): string {
  return Buffer.isBuffer(data) ? data.toString('utf8') : String(data)
}

/** A bus.close() (classic `disconnect()`) ending streams: not an error to report. */
export function isClosedError (err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'ERR_BUSMQ_CLOSED'
}

/**
 * Settles a BusMQ 3.1 call: the callback gets `(null, result)` (only `(null)` when there is no result, as
 * 3.1 calls back with no further arguments) or the error; without a callback an error is emitted as
 * 'error' (as 3.1 does).
 */
export function settle<T> (p: Promise<T>, cb: Callback<T> | undefined, emitter: EventEmitter): void {
  p.then((result) => {
    if (result === undefined) cb?.(null)
    else cb?.(null, result)
  }, (err: Error) => {
    if (cb) cb(err)
    else if (!isClosedError(err)) emitter.emit('error', err)
  })
}

/** BusMQ 3.1's `promisify(object, methods)`: each named method returns a promise instead of calling back. */
export function promisifyMethods<T extends object> (object: T, methods: readonly string[]): T {
  const o = object as Record<string, unknown>
  for (const m of methods) {
    if (typeof o[m] !== 'function') continue
    const fn = (o[m] as (...args: any[]) => unknown).bind(object)
    // util.promisify's behaviour, without node:util (the classic browser build has these methods too).
    o[m] = async (...args: unknown[]) => await new Promise((resolve, reject) => {
      fn(...args, (err: Error | null, result?: unknown) => { if (err) reject(err); else resolve(result) })
    })
  }
  return object
}

/**
 * BusMQ 3.1's reliable `ack(id)`: acks message `id` and every held message before it, dropping them from
 * `held` (id → message); resolves when every ack is answered.
 */
export async function ackUpTo (held: Map<number, { ack: () => Promise<boolean> }>, id: number): Promise<void> {
  const acks: Array<Promise<boolean>> = []
  for (const [n, message] of held) {
    if (n > id) continue
    held.delete(n)
    acks.push(message.ack())
  }
  await Promise.all(acks)
}
