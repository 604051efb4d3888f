import type { CodecOptions } from '../queue/codec.js'

/** Who acknowledges a reliable channel's messages. */
export type ChannelAck = 'auto' | 'manual'

/** Options of `bus.channel(name, options)`. */
export interface ChannelOptions extends CodecOptions {
  /**
   * This peer's role: it reads the queue `<name>:<local>`.
   * @default 'local' ('remote' with `listen: true`)
   */
  local?: string
  /**
   * The other peer's role: this peer writes to the queue `<name>:<remote>`.
   * @default 'remote' ('local' with `listen: true`)
   */
  remote?: string
  /**
   * Swap the default roles, so two peers can share a channel name without choosing roles: one opens
   * it plainly, the other with `listen: true` (as BusMQ's `channel.listen()`).
   * @default false
   */
  listen?: boolean
  /**
   * Both directions use reliable mode: a message is acknowledged once this side's readable has handed
   * it on, and is delivered again if this process dies before that.
   * @default false
   */
  reliable?: boolean
  /**
   * Reliable mode: who acknowledges. `'auto'`: the channel, once its readable has handed a message on.
   * `'manual'`: your code; chunks are then `{ id, data, deliveries, redelivered, ack(), nack() }` (a
   * `ReliableMessage`) and stay unacknowledged until `ack()`: what was not acknowledged when the channel
   * was detached, destroyed or its process died comes back when the channel is opened again. At most
   * `highWaterMark` messages are held unacknowledged at once.
   * @default 'auto'
   */
  ack?: ChannelAck
  /**
   * Presence heartbeat in ms. A peer that stops beating (killed) is reported by `remote:disconnect`
   * within 4 heartbeats.
   * @default 1000
   */
  heartbeat?: number
  /** Idle TTL of the channel's two queues, in ms. @default the bus's `ttl` */
  ttl?: number
  /** Messages buffered on the readable side (and taken per round trip). @default 256 */
  highWaterMark?: number
  /** Bytes (byte mode) or messages (objectMode) buffered on the writable side. @default 1 MiB / 1024 */
  writableHighWaterMark?: number
}

export const DEFAULT_HEARTBEAT = 1000
