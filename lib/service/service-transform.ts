import { Transform } from 'readable-stream'

type Callback = (err?: Error | null, data?: unknown) => void

interface Slot {
  done: boolean
  value?: unknown
}

/**
 * `service.createTransform(options)`: each chunk written is one request, and what comes out are the
 * replies, in the order of the requests (`ordered`, the default) or as they arrive. At most
 * `concurrency` requests are in flight: a write waits (its callback is held) while that many are, so a
 * pipeline's source slows down to the service's pace. A failed request fails the stream with its error.
 * A reply of `null` or `undefined` produces no chunk (a Readable cannot carry them).
 */
export class ServiceTransform extends Transform {
  private readonly request: (chunk: unknown) => Promise<unknown>
  private readonly concurrency: number
  private readonly ordered: boolean
  /** Requests in flight (ordered: and replies waiting for an earlier one), oldest first. */
  private slots: Slot[] = []
  private inFlight = 0
  private waiting?: Callback
  private flushed?: Callback

  /** @internal Use `service.createTransform(options)`. */
  constructor (request: (chunk: unknown) => Promise<unknown>, options: { concurrency: number, ordered: boolean }) {
    super({ objectMode: true, highWaterMark: options.concurrency })
    this.request = request
    this.concurrency = options.concurrency
    this.ordered = options.ordered
  }

  override _transform (chunk: unknown, _encoding: string, callback: Callback): void {
    const slot: Slot = { done: false }
    this.slots.push(slot)
    this.inFlight++
    this.request(chunk).then((value) => {
      slot.done = true
      slot.value = value
      this.inFlight--
      this.emitReplies()
    }, (err: Error) => {
      this.inFlight--
      this.destroy(err)
    })
    if (this.inFlight < this.concurrency) callback()
    else this.waiting = callback
  }

  private emitReplies (): void {
    if (this.destroyed) return
    if (this.ordered) {
      while (this.slots.length > 0 && this.slots[0].done) this.out(this.slots.shift()!)
    } else {
      const done = this.slots.filter((s) => s.done)
      this.slots = this.slots.filter((s) => !s.done)
      for (const s of done) this.out(s)
    }
    if (this.waiting && this.inFlight < this.concurrency) {
      const cb = this.waiting
      this.waiting = undefined
      cb()
    }
    if (this.flushed && this.slots.length === 0) {
      const cb = this.flushed
      this.flushed = undefined
      cb()
    }
  }

  private out (slot: Slot): void {
    if (slot.value !== null && slot.value !== undefined) this.push(slot.value)
  }

  override _flush (callback: Callback): void {
    if (this.slots.length === 0) return callback()
    this.flushed = callback
  }
}
