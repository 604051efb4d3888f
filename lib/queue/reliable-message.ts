/** @internal Key under which an envelope carries its reader, so an ack stream can release it. */
export const READER = Symbol('busmq.reader')

/** @internal What an ack stream needs of a reliable reader. */
export interface Releasable {
  /** Gives back every message the reader still holds. */
  releaseHeld: () => Promise<void>
}

/** What a reliable reader emits: a message to acknowledge once it has been dealt with. */
export interface ReliableMessage<T = unknown> {
  /** The message id (monotonic per queue). */
  readonly id: number
  /** The message: a Buffer in byte mode, the decoded value in objectMode. */
  readonly data: T
  /** How many times it has been delivered, this time included. */
  readonly deliveries: number
  /** True when it was delivered before (deliveries > 1): a consumer died or gave it back. */
  readonly redelivered: boolean
  /**
   * Acknowledges the message: it is removed for good. Resolves true, or false when the lease had already
   * expired and the message went back to the queue (it will be delivered again).
   */
  ack: () => Promise<boolean>
  /**
   * Gives the message back: delivered again at once (ahead of newer messages), or moved to the
   * dead-letter queue when it has been delivered `maxDeliveries` times or `{ deadLetter: true }` is given.
   */
  nack: (options?: { deadLetter?: boolean }) => Promise<void>
}

/** Why and after what a message reached a dead-letter queue (`deadLetterQueue.history(id)`). */
export interface DeadLetterRecord {
  /** Id of the message in the queue it came from. */
  id: number
  /** 'max-deliveries', 'nack' (dead-lettered on demand) or 'decode' (undecodable payload). */
  reason: 'max-deliveries' | 'nack' | 'decode'
  /** Every delivery: the consumer it was leased to and when (ms since the epoch, shard clock). */
  deliveries: Array<{ consumer: string, at: number }>
}
