import type { Producer } from '../queue/producer.js'

/** Called once the payload is stored (no error) or could not be. */
export type Stored = (err?: Error) => void

/**
 * Requests (and replies) made in one turn of the event loop go to their queue in one push call: many
 * requests in flight cost Redis one script call per batch, not one per request. A batch leaves on the
 * next `setImmediate`, whether or not earlier batches have been answered.
 */
export class PushBatcher {
  private readonly producer: Producer
  private payloads: Buffer[] = []
  private waiters: Stored[] = []
  private scheduled = false

  constructor (producer: Producer) {
    this.producer = producer
  }

  /** Calls `stored` once Redis has stored the payload, or with the error that stopped it. */
  add (payload: Buffer, stored: Stored): void {
    this.payloads.push(payload)
    this.waiters.push(stored)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => this.flush())
    }
  }

  /** Resolves once Redis has stored the payload. */
  store (payload: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.add(payload, (err) => err ? reject(err) : resolve()))
  }

  private flush (): void {
    this.scheduled = false
    const payloads = this.payloads
    const waiters = this.waiters
    this.payloads = []
    this.waiters = []
    this.producer.push(payloads).then(() => {
      for (const w of waiters) w()
    }, (err: Error) => {
      for (const w of waiters) w(err)
    })
  }
}
