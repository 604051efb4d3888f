import createDebug from 'debug'
import type { Queue } from './queue.js'
import { QueueReader } from './queue-read-stream.js'
import { parseElement, type Element } from './element.js'
import { READER, type ReliableMessage } from './reliable-message.js'
import { DEFAULT_LEASE, DEFAULT_MAX_DELIVERIES, type ReadStreamOptions } from './queue-options.js'
import { checkInt, checkDelay } from '../names.js'
import type { DecodeError } from '../errors.js'
import { ack, renew, requeue, reserve, type RequeueMode } from '../scripts/index.js'

const debug = createDebug('busmq:reliable')

let readers = 0

/**
 * At-least-once reader. Each message is leased to this reader (renewed while it lives) and emitted as a
 * {@link ReliableMessage}; until acked it stays in flight. If the process dies, the leases lapse and the
 * messages are delivered again, to any reader, ahead of newer ones. At most `prefetch` messages are held
 * at once (buffered or handed on, not yet acked). `T` is the type of `message.data`.
 */
export class ReliableReadStream<T = any> extends QueueReader<ReliableMessage<T>> {
  readonly mode = 'reliable'
  /** This reader's identity in leases and delivery histories. */
  readonly consumerId: string
  readonly lease: number
  readonly maxDeliveries: number
  readonly prefetch: number
  /** Messages with ids up to this are acknowledged and skipped (a checkpoint to resume after). */
  readonly after: number
  /** Ids held (delivered, not acked), in delivery order, with when they arrived (performance.now()). */
  private readonly held = new Map<number, number>()
  private readonly pendingDeliveries = new Map<number, number>()
  private renewTimer?: NodeJS.Timeout
  private ackBatch: Array<{ id: number, resolve: (ok: boolean) => void, reject: (err: Error) => void }> = []
  /** Held ids whose ack is on its way to Redis: they no longer count against `prefetch` (see {@link capacity}). */
  private readonly acking = new Set<number>()
  /** Ids of the envelopes pushed, newest last, to know which are still in the Readable's buffer. */
  private recent: number[] = []
  private lingering = false
  private untrackLinger?: () => void

  constructor (queue: Queue, options: ReadStreamOptions = {}) {
    const lease = checkDelay(options.lease ?? DEFAULT_LEASE, 'lease', 100)
    const maxDeliveries = checkInt(options.maxDeliveries ?? DEFAULT_MAX_DELIVERIES, 'maxDeliveries', 1)
    const prefetch = options.prefetch === undefined ? undefined : checkInt(options.prefetch, 'prefetch', 1)
    const after = checkInt(options.after ?? 0, 'after', 0)
    super(queue, options)
    this.after = after
    this.consumerId = `${queue.bus.settings.id}/${++readers}`
    this.lease = lease
    this.maxDeliveries = maxDeliveries
    this.prefetch = prefetch ?? this.batch
  }

  /** Messages held by this reader: delivered, and no ack sent for them yet. */
  get inFlight (): number {
    return this.held.size - this.acking.size
  }

  override _construct (callback: (err?: Error | null) => void): void {
    super._construct((err) => {
      if (!err) {
        this.renewTimer = setInterval(() => { this.renew() }, Math.max(50, Math.floor(this.lease / 3)))
        this.renewTimer.unref()
      }
      callback(err)
    })
  }

  private renew (): void {
    if (this.held.size === 0 || !this.shard) return
    renew(this.shard, this.queue.keys, { consumer: this.consumerId, lease: this.lease, ids: [...this.held.keys()] })
      .then((lost) => {
        for (const id of lost) this.forget(Number(id))
        if (lost.length > 0) debug('%s lost %d lease(s) on %s', this.consumerId, lost.length, this.queue.name)
      }, (err: Error) => debug('lease renewal on %s failed: %s', this.queue.name, err.message))
  }

  private forget (id: number): void {
    if (!this.held.delete(id)) return
    this.capacityChanged()
    if (this.held.size === 0 && this.lingering) this.stopLingering()
  }

  protected override get bare (): boolean {
    return false
  }

  /**
   * Room under `prefetch`. A message whose ack has been sent no longer counts: the ack goes on the same
   * connection ahead of the reserve this room lets the loop send, so Redis applies it first and never
   * sees the reader holding more than `prefetch`; the reserve's round trip overlaps the ack's instead
   * of waiting for its reply.
   */
  protected override capacity (): number {
    return Math.min(this.prefetch - this.held.size + this.acking.size, super.capacity())
  }

  /**
   * While the stream flows, half of `prefetch` (at most `highWaterMark`) per reserve, so that the next
   * one can be on its way while the consumer works through this one (see fetchAhead in
   * queue-read-stream.ts) without the reader ever holding more than `prefetch`; otherwise (read(), an
   * async iterator: nothing is fetched ahead) as much as `prefetch` allows.
   */
  protected override get fetchSize (): number {
    const room = this.readableFlowing === true ? Math.ceil(this.prefetch / 2) : this.prefetch
    return Math.min(this.batch, Math.max(1, room))
  }

  protected override get prefetches (): boolean {
    return true
  }

  protected override async fetch (count: number): Promise<Element[]> {
    for (;;) {
      const reply = await this.bound(async (incarnation) => {
        const r = await reserve(this.shard, this.queue.keys, {
          count,
          ttl: this.queue.ttl,
          consumer: this.consumerId,
          lease: this.lease,
          maxDeliveries: this.maxDeliveries,
          incarnation
        })
        return [typeof r[0] === 'number' ? undefined : r[0].toString(), r]
      })
      this.reportExpired(reply[1] as number, reply[2] as number)
      const out: Element[] = []
      const arrived = performance.now()
      const skipped: number[] = []
      for (let i = 3; i < reply.length; i += 3) {
        const el = parseElement(reply[i] as Buffer, reply[i + 1] as number)
        this.held.set(el.id, arrived)
        if (el.id <= this.after) {
          skipped.push(el.id)
          continue
        }
        this.pendingDeliveries.set(el.id, reply[i + 2] as number)
        out.push(el)
      }
      if (skipped.length === 0) return out
      // Done with before the checkpoint: acknowledged, never delivered.
      await Promise.all(skipped.map((id) => this.ack(id)))
      debug('%s skipped %d message(s) up to id %d on %s', this.consumerId, skipped.length, this.after, this.queue.name)
      // Only skipped messages: look again at once (an empty batch would make the loop wait for a push).
      if (out.length > 0) return out
    }
  }

  /** The reserve call put back (or dead-lettered) messages whose lease had expired: their reader died or stalled. */
  private reportExpired (requeued: number, dead: number): void {
    if (requeued > 0) {
      this.queue.bus.log.warn(`${requeued} message(s) of queue ${this.queue.name} whose lease expired (their reader died or ` +
        'stalled) went back to the queue to be delivered again')
    }
    if (dead > 0) {
      this.queue.bus.log.warn(`${dead} message(s) of queue ${this.queue.name} whose lease expired were moved to its ` +
        'dead-letter queue after maxDeliveries deliveries')
    }
  }

  protected override envelope (el: Element, data: unknown): ReliableMessage {
    const deliveries = this.pendingDeliveries.get(el.id) ?? 1
    this.pendingDeliveries.delete(el.id)
    if (deliveries > 1) this.counts!.redelivered++
    const id = el.id
    const msg: ReliableMessage = {
      id,
      data,
      deliveries,
      redelivered: deliveries > 1,
      ack: () => this.ack(id),
      nack: (options = {}) => this.requeue(options.deadLetter === true ? 'dead' : 'nack', [id], 0).then(() => {})
    }
    Object.defineProperty(msg, READER, { value: this })
    return msg
  }

  protected override remember (el: Element): void {
    this.recent.push(el.id)
    if (this.recent.length > 8 * this.batch) this.recent = this.recent.slice(-4 * this.batch)
  }

  /** Acks are gathered for one tick and sent in one round trip. */
  ack (id: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.ackBatch.push({ id, resolve, reject })
      if (this.ackBatch.length === 1) setImmediate(() => this.flushAcks())
    })
  }

  private flushAcks (): void {
    const batch = this.ackBatch
    this.ackBatch = []
    // Ids held and not already being acked (an id acked twice counts once).
    const sent: number[] = []
    for (const { id } of batch) {
      if (this.held.has(id) && !this.acking.has(id)) {
        this.acking.add(id)
        sent.push(id)
      }
    }
    const settled = (): void => {
      for (const id of sent) this.acking.delete(id)
    }
    ack(this.shard, this.queue.keys, { consumer: this.consumerId, ids: batch.map((b) => b.id) })
      .then((res) => {
        settled()
        const now = performance.now()
        batch.forEach((b, i) => {
          const arrived = this.held.get(b.id)
          if (res[i] === 1 && arrived !== undefined) {
            this.counts!.acked++
            this.counts!.ackLatency.observe((now - arrived) / 1000)
          }
          this.forget(b.id)
          b.resolve(res[i] === 1)
        })
      }, (err: Error) => {
        // Not acked: they count against prefetch again, held (their leases renewed) until acked again,
        // nacked, or given back when the reader closes.
        settled()
        for (const b of batch) b.reject(err)
      })
    if (sent.length > 0) this.capacityChanged()
  }

  /** Hands messages back (see requeue-9.lua); `undo` = how many of the first ids never reached the app. */
  private async requeue (mode: RequeueMode, ids: number[], undo: number): Promise<void> {
    if (ids.length === 0) return
    const [, dead] = await requeue(this.shard, this.queue.keys, {
      consumer: this.consumerId, ttl: this.queue.ttl, maxDeliveries: this.maxDeliveries, mode, undo, ids
    })
    this.counts!.deadLettered += dead
    for (const id of ids) this.forget(id)
    if (dead > 0 && mode !== 'decode') {
      this.queue.bus.log.warn(`${dead} message(s) of queue ${this.queue.name} moved to its dead-letter queue ` +
        (mode === 'dead' ? '(nack with deadLetter)' : `after ${this.maxDeliveries} deliveries`))
    }
  }

  protected override async giveBack (elements: Element[]): Promise<void> {
    const ids = elements.map((el) => el.id)
    for (const id of ids) this.pendingDeliveries.delete(id)
    await this.requeue('release', ids, ids.length)
  }

  protected override async markerSeen (el: Element): Promise<void> {
    this.pendingDeliveries.delete(el.id)
    await this.ack(el.id)
  }

  protected override async poison (el: Element, err: DecodeError): Promise<Error> {
    await this.requeue('decode', [el.id], 0)
    this.queue.bus.log.error(`message ${el.id} of queue ${this.queue.name} cannot be decoded (${err.message}); moved to its dead-letter queue`)
    err.message += ` (message id ${el.id} of queue ${this.queue.name}; moved to its dead-letter queue)`
    err.id = el.id
    err.payload = el.payload
    return err
  }

  protected override async release (unhanded: number): Promise<void> {
    if (this.readableEnded && unhanded === 0 && this.held.size > 0) {
      // The stream ended normally, but what it handed on is still being processed downstream (the end
      // of a pipeline acks it later): keep those leases alive, and the queue attached, until every
      // message is acked or nacked, or the bus closes.
      this.lingering = true
      await this.queue.attach()
      this.untrackLinger = this.queue.bus.track({ close: () => this.releaseAll() })
      return
    }
    await this.releaseAll(unhanded)
  }

  private stopLingering (): void {
    this.lingering = false
    clearInterval(this.renewTimer)
    this.untrackLinger?.()
    this.queue.detach().catch(() => {})
  }

  /**
   * Gives back, at once, every message this reader holds (delivered, not acked): for a pipeline that
   * failed after the reader had ended. An ack stream destroyed with an error calls it by itself.
   */
  async releaseHeld (): Promise<void> {
    if (this.held.size > 0) await this.releaseAll()
  }

  /** Gives every held message back; the newest `unhanded` of them never reached the application. */
  private async releaseAll (unhanded = 0): Promise<void> {
    const lingering = this.lingering
    this.lingering = false
    clearInterval(this.renewTimer)
    if (this.ackBatch.length > 0) this.flushAcks()
    // Messages still in the Readable's buffer never reached the application: their delivery is undone.
    const unread = unhanded > 0 ? this.recent.slice(-unhanded).filter((id) => this.held.has(id)) : []
    const unreadSet = new Set(unread)
    const handed = [...this.held.keys()].filter((id) => !unreadSet.has(id))
    await this.requeue('release', [...unread, ...handed], unread.length)
    if (lingering) {
      this.untrackLinger?.()
      await this.queue.detach()
    }
  }
}
