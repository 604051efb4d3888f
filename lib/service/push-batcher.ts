import type { Producer } from '../queue/producer.js'

/** Called once the payload is stored (no error) or could not be. */
export type Stored = (err?: Error) => void

/**
 * Requests (and replies) go to their queue like a Writable's writes: the first one at once, and those
 * made while a push is on its way together in the next push, when it returns. An idle requester pays no
 * batching delay, and a busy one one script call per batch, not per request.
 */
export class PushBatcher {
  private readonly producer: Producer
  private payloads: Buffer[] = []
  private waiters: Stored[] = []
  private sending = false

  constructor (producer: Producer) {
    this.producer = producer
  }

  /** Calls `stored` once Redis has stored the payload, or with the error that stopped it. */
  add (payload: Buffer, stored: Stored): void {
    this.payloads.push(payload)
    this.waiters.push(stored)
    if (!this.sending) this.flush()
  }

  /** Resolves once Redis has stored the payload. */
  store (payload: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.add(payload, (err) => err ? reject(err) : resolve()))
  }

  private flush (): void {
    const payloads = this.payloads
    const waiters = this.waiters
    this.payloads = []
    this.waiters = []
    this.sending = true
    this.producer.push(payloads).then(() => {
      for (const w of waiters) w()
    }, (err: Error) => {
      for (const w of waiters) w(err)
    }).finally(() => {
      this.sending = false
      if (this.payloads.length > 0) this.flush()
    })
  }
}
