import { randomUUID } from 'node:crypto'
import createDebug from 'debug'
import type { Bus } from '../bus.js'
import { Queue } from '../queue/queue.js'
import type { QueueReadStream } from '../queue/queue-read-stream.js'
import { replyQueueKeys } from '../keys.js'
import { BusClosedError, RequestTimeoutError } from '../errors.js'
import { REPLY_CLOSED, REPLY_ERROR, REPLY_VOID, decodeError, replyBody, replySeq } from './envelope.js'
import type { ServiceCounters } from '../metrics/service-counters.js'
import { timerDelay } from '../util.js'

const debug = createDebug('busmq:service')

/** A request waiting for its reply. */
export interface PendingReply {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  /** Turns the reply's payload into the value (the service's codec). */
  decode: (payload: Buffer) => unknown
  /** Its service's metrics: replies, failures, timeouts and the round trip are counted there. */
  counts?: ServiceCounters
}

interface Waiting {
  p: PendingReply
  /** When it times out (ms since the epoch), and what to say then. */
  deadline: number
  what: string
  timeout: number
  expiry: Expiry
}

/**
 * The requests of one timeout, in the order they were made, which is (nearly) the order they time out
 * in: one timer for the earliest, instead of one per request.
 */
interface Expiry {
  waiting: Map<number, Waiting>
  timer?: NodeJS.Timeout
}

const routers = new WeakMap<Bus, ReplyRouter>()

/**
 * The replies of one bus: one reply queue per requesting bus (not a key per request), read by one
 * reader that hands each reply to the request with its correlation id (a sequence number of this bus).
 * A reply nobody waits for any more (it came after the request timed out, or a second time after a
 * reliable request was redelivered) is dropped and counted in {@link dropped}.
 *
 * The queue's name is a random UUID, so two buses never share one; it is attached while the bus is
 * open, and expires with the bus's TTL once the bus is gone.
 */
export class ReplyRouter {
  /** Name of the reply queue: the reply-to id in every request of this bus. */
  readonly id = randomUUID()
  /** Replies dropped: late (after their timeout) or duplicate. */
  dropped = 0
  private readonly bus: Bus
  private readonly queue: Queue
  private readonly pending = new Map<number, Waiting>()
  private readonly expiries = new Map<number, Expiry>()
  private seq = 0
  private reader?: QueueReadStream<Buffer>
  private opening?: Promise<void>
  /** The reply queue is attached and read: requests need not wait for {@link ready}. */
  isReady = false
  private untrack?: () => void
  private closed = false

  static of (bus: Bus): ReplyRouter {
    let r = routers.get(bus)
    if (!r) {
      r = new ReplyRouter(bus)
      routers.set(bus, r)
    }
    return r
  }

  private constructor (bus: Bus) {
    this.bus = bus
    this.queue = new Queue(bus, `svc-reply:${this.id}`, {}, { keys: replyQueueKeys(bus.settings.prefix, this.id) })
  }

  /** The next sequence number (correlation ids are unique per bus). */
  next (): number {
    return ++this.seq
  }

  /** Requests waiting for a reply. */
  get waiting (): number {
    return this.pending.size
  }

  /**
   * Resolves once the reply queue is attached and read: a server that locates it (several shards) finds
   * it where this bus reads.
   */
  ready (): Promise<void> {
    this.opening ??= this.open().catch((err) => {
      this.opening = undefined
      throw err
    })
    return this.opening
  }

  private async open (): Promise<void> {
    this.untrack ??= this.bus.track(this)
    await this.queue.attach()
    const reader = this.queue.createReadStream({ highWaterMark: 1000 })
    // This router closes it (rejecting what still waits), not bus.close() on its own.
    reader.adopt()
    this.reader = reader
    reader.on('data', (raw: Buffer) => this.dispatch(raw))
    reader.on('error', (err: Error) => {
      debug('the reply queue %s failed: %s', this.id, err.message)
      this.failAll(err)
    })
    this.isReady = true
    reader.on('close', () => {
      if (this.reader === reader) {
        this.reader = undefined
        this.isReady = false
        // Opened again by the next request (unless the bus closed).
        if (!this.closed) this.opening = undefined
      }
    })
  }

  /**
   * Waits for the reply to request `seq`, failing it with ERR_BUSMQ_REQUEST_TIMEOUT at `deadline` (ms
   * since the epoch: `timeout` ms after the request was made).
   */
  expect (seq: number, p: PendingReply, timeout: number, deadline: number, what: string): void {
    let expiry = this.expiries.get(timeout)
    if (!expiry) {
      expiry = { waiting: new Map() }
      this.expiries.set(timeout, expiry)
    }
    const w: Waiting = { p, deadline, what, timeout, expiry }
    this.pending.set(seq, w)
    expiry.waiting.set(seq, w)
    if (!expiry.timer) this.arm(expiry)
  }

  private arm (expiry: Expiry): void {
    const first = expiry.waiting.values().next()
    if (first.done === true) return
    expiry.timer = setTimeout(() => this.expire(expiry), timerDelay(first.value.deadline - Date.now()))
  }

  private expire (expiry: Expiry): void {
    expiry.timer = undefined
    const now = Date.now()
    for (const [seq, w] of expiry.waiting) {
      if (w.deadline > now) break
      this.forget(seq, w)
      if (w.p.counts) w.p.counts.timedOut++
      w.p.reject(new RequestTimeoutError(`no reply to ${w.what} within ${w.timeout} ms`))
    }
    this.arm(expiry)
  }

  private forget (seq: number, w: Waiting): void {
    this.pending.delete(seq)
    w.expiry.waiting.delete(seq)
    // Its timer, if it was the first, finds nothing due and is armed again for the next.
  }

  /** Fails request `seq` now (its push failed). */
  fail (seq: number, err: Error): void {
    const w = this.pending.get(seq)
    if (!w) return
    this.forget(seq, w)
    w.p.reject(err)
  }

  private dispatch (raw: Buffer): void {
    const seq = replySeq(raw)
    const w = seq === undefined ? undefined : this.pending.get(seq)
    if (seq === undefined || !w) {
      this.dropped++
      debug('dropped a reply nobody waits for (late or duplicate) on %s', this.id)
      return
    }
    this.forget(seq, w)
    const { p } = w
    const kind = raw[0]
    const body = replyBody(raw)
    const counts = p.counts
    if (counts) {
      counts.replies++
      // The request was made `timeout` ms before its deadline.
      counts.requestDuration.observe((Date.now() - w.deadline + w.timeout) / 1000)
    }
    if (kind === REPLY_ERROR || kind === REPLY_CLOSED) {
      if (counts) counts.failed++
      p.reject(decodeError(body, kind === REPLY_CLOSED))
      return
    }
    if (kind === REPLY_VOID) {
      p.resolve(undefined)
      return
    }
    let value: unknown
    try {
      value = p.decode(body)
    } catch (err) {
      p.reject(err as Error)
      return
    }
    p.resolve(value)
  }

  private failAll (err: Error): void {
    const all = [...this.pending.values()]
    this.pending.clear()
    for (const expiry of this.expiries.values()) {
      clearTimeout(expiry.timer)
      expiry.timer = undefined
      expiry.waiting.clear()
    }
    for (const w of all) w.p.reject(err)
  }

  /** @internal Used by `bus.close()`: requests still waiting fail with ERR_BUSMQ_CLOSED. */
  async close (): Promise<void> {
    this.closed = true
    this.isReady = false
    this.untrack?.()
    this.failAll(new BusClosedError('the bus was closed before the reply came'))
    const reader = this.reader
    if (reader && !reader.closed) {
      await new Promise<void>((resolve) => {
        reader.once('close', () => resolve())
        reader.destroy()
      })
    }
    await this.queue.detach()
  }
}
