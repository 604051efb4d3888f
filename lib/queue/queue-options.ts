import type { CodecOptions } from './codec.js'

/** What a push that does not fit under `maxLength` does. */
export type Overflow = 'wait' | 'drop' | 'error'

/** Options of `bus.queue(name, options)`; its streams inherit them. */
export interface QueueOptions extends CodecOptions {
  /**
   * Idle TTL in ms: when no client is attached, every key of the queue expires this long after its
   * last use.
   * @default the bus's `ttl` (30000)
   */
  ttl?: number
  /**
   * Bound on the number of messages the queue holds; what a message that does not fit does is `overflow`.
   * 0 = unbounded.
   * @default 0
   */
  maxLength?: number
  /**
   * With `maxLength`, what a push that does not fit does. `'wait'`: it waits for room (its write callback
   * and `push()` promise are held, so `write()` returns false once the producer's buffer fills) until
   * consumers make room. `'drop'`: it is dropped; `push()` resolves with `null` and a write stream counts
   * it in `dropped`. `'error'`: `push()` rejects, and a write stream fails, with `ERR_BUSMQ_QUEUE_FULL`
   * (the messages before it are stored, none after it).
   * @default 'wait'
   */
  overflow?: Overflow
  /**
   * Retention for replay: after each push the queue keeps only its newest `retain` messages, dropping
   * older ones even if unread. 0 = keep everything until consumed or expired.
   * @default 0
   */
  retain?: number
}

/** Options of `queue.createWriteStream(options)`. */
export interface WriteStreamOptions extends CodecOptions {
  /**
   * Buffer of the Writable before `write()` returns false: messages in objectMode, bytes otherwise.
   * @default 1024 messages in objectMode, 1 MiB in byte mode
   */
  highWaterMark?: number
  /**
   * Push an end marker when the stream ends; readers created with `untilEnd: true` end when they
   * consume it.
   * @default false
   */
  endMarker?: boolean
}

/** How a reader takes messages. */
export type ReadMode = 'consume' | 'replay' | 'reliable'

/** Options of `queue.createReadStream(options)`. */
export interface ReadStreamOptions extends CodecOptions {
  /**
   * `consume`: each message to exactly one reader, removed when taken (at-most-once).
   * `replay`: read without removing, from offset `from`, then follow new messages.
   * `reliable`: at-least-once, each message an envelope to `ack()`.
   * @default 'consume'
   */
  mode?: ReadMode
  /**
   * Messages buffered in the Readable, and the most taken in one round trip.
   * @default 256
   */
  highWaterMark?: number
  /** End after this many messages. @default Infinity */
  max?: number
  /** End as soon as the queue is found empty. @default false */
  untilEmpty?: boolean
  /** End when an end marker (pushed by a writer with `endMarker: true`) is consumed. @default false */
  untilEnd?: boolean
  /** Replay: first message id to read; 0 = the oldest retained. @default 0 */
  from?: number
  /**
   * Emit `{ id, data }` envelopes instead of bare messages (consume and replay modes; reliable mode always
   * emits envelopes).
   * @default false
   */
  withIds?: boolean
  /** Reliable: lease of a delivered message in ms, renewed while the reader lives. @default 5000 */
  lease?: number
  /** Reliable: deliveries without ack after which a message goes to the dead-letter queue. @default 5 */
  maxDeliveries?: number
  /** Reliable: most messages held (delivered, not yet acked) at once. @default highWaterMark */
  prefetch?: number
  /**
   * Reliable: resume after a checkpoint. Messages with ids up to `after` (the id of the last message
   * your application finished with) are acknowledged and skipped instead of being delivered. 0 = none.
   * @default 0
   */
  after?: number
  /**
   * @internal The reader is owned by a stream that wraps it (a channel, the CLI's pull): it is not
   * destroyed when it ends, so its owner can still say what it did not hand on (`returnUnread`) and then
   * destroy it, which gives that back.
   */
  owned?: boolean
}

export const DEFAULT_READ_HIGH_WATER_MARK = 256
export const DEFAULT_WRITE_HIGH_WATER_MARK_OBJECTS = 1024
export const DEFAULT_WRITE_HIGH_WATER_MARK_BYTES = 1024 * 1024
export const DEFAULT_LEASE = 5000
export const DEFAULT_MAX_DELIVERIES = 5
export const DEFAULT_OVERFLOW: Overflow = 'wait'
export const OVERFLOW_VALUES: readonly Overflow[] = ['wait', 'drop', 'error']
