import { randomBytes } from 'node:crypto'
import { Readable } from 'readable-stream'
import createDebug from 'debug'
import type { Queue } from './queue.js'
import type { Shard } from '../router/shard.js'
import type { Wakeups } from './wakeups.js'
import { checkCodec, decodeMessage, type Codec } from './codec.js'
import { KIND_ABORT, KIND_END, encodeElementWithId, parseBatch, type Element } from './element.js'
import { DEFAULT_READ_HIGH_WATER_MARK, type ReadStreamOptions } from './queue-options.js'
import { checkInt } from '../names.js'
import { DecodeError, InvalidOptionError, PeerDestroyedError, QueueDeletedError } from '../errors.js'
import { closeByBus, isReplyError, sleep } from '../util.js'
import { QueueBinding } from './queue-binding.js'
import { pop, range, unpop } from '../scripts/index.js'
import type { QueueCounters } from '../metrics/bus-metrics.js'

const debug = createDebug('busmq:reader')

let readerCount = 0
/** A short id for a reader's give-back records: random per process, then a counter. */
const processTag = randomBytes(6).toString('base64url')
function nextReaderId (): string {
  return `${processTag}.${(++readerCount).toString(36)}`
}

type Callback = (err?: Error | null) => void

/** What a reader emits with `withIds: true`. */
export interface IdentifiedMessage<T = unknown> {
  id: number
  data: T
}

/**
 * The typed face of a reader whose chunks are `C` (declaration merging: types only): `for await` and
 * `'data'` listeners see `C`, which `bus.queue<T>()` decides (see lib/queue/message.ts). A reader of
 * objects is therefore not a `NodeJS.ReadableStream` (whose chunks are strings and Buffers) to the
 * type checker: `pipeline()`, `pipe()` and `for await` take it, `finished()` does not.
 */
export interface QueueReader<C = any> {
  [Symbol.asyncIterator] (): AsyncIteratorObject<C, any, any>
  on (event: 'data', listener: (chunk: C) => void): this
  on (event: 'close' | 'end' | 'pause' | 'readable' | 'ready' | 'resume', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
  once (event: 'data', listener: (chunk: C) => void): this
  once (event: 'close' | 'end' | 'pause' | 'readable' | 'ready' | 'resume', listener: () => void): this
  once (event: 'error', listener: (err: Error) => void): this
  once (event: string | symbol, listener: (...args: any[]) => void): this
}

/**
 * Shared machinery of queue readers: one fetch loop that takes up to `highWaterMark` messages per round
 * trip, waits for a wake-up when there is nothing, honours `max`, `untilEmpty` and `untilEnd`, and hands
 * back what it took but did not deliver when it stops.
 *
 * What was handed on is counted where it leaves: each `'data'` event (every chunk a Readable hands to a
 * consumer, `read()`, `pipe()` and async iteration included, goes through one). Node's Readable would
 * keep emitting buffered chunks after `destroy()` (from a `'data'` handler, say); a destroyed reader
 * hands on nothing more, so what it gives back is exactly what it took and did not hand on.
 *
 * Emits `'ready'` once attached to its queue. Its first read binds it to the queue it finds (the
 * queue's incarnation); once that queue is deleted, the reader fails with `ERR_BUSMQ_QUEUE_DELETED`.
 */
export abstract class QueueReader<C = any> extends Readable {
  readonly queue: Queue
  protected readonly objectModeData: boolean
  protected readonly codec: Codec
  protected readonly batch: number
  protected readonly max: number
  protected readonly untilEmpty: boolean
  protected readonly untilEnd: boolean
  /** The queue's metrics record (replay readers take nothing from the queue: none). */
  protected readonly counts?: QueueCounters
  protected shard!: Shard
  protected wakeups!: Wakeups
  /** The queue this reader is bound to (its incarnation, from its first read). */
  protected readonly binding = new QueueBinding()
  /** Messages pushed downstream so far (into the Readable's buffer). */
  delivered = 0
  /** Chunks handed on to the consumer (`'data'` events). */
  private handed = 0
  /** Chunks a wrapping stream took from this reader but did not hand further (a channel, or the CLI, says how many). */
  private downstreamUnread = 0
  /** Set once `release()` ran (the reader closed): a later `returnUnread()` gives back on its own. */
  private released = false
  private fetching?: Promise<void>
  private running = false
  private wanted = false
  private readonly abort = new AbortController()
  private attached = false
  private endWakeups?: () => void
  private readonly untrack: () => void
  /** What the owner of this reader wants taken at most, now (see {@link limit}). */
  private demand?: () => number
  private capacityWaiters: Array<() => void> = []
  /** The fetch sent ahead (see {@link fetchAhead}): how many it asks for, and the wake-up generation before it. */
  private ahead?: { fetch: Promise<Element[]>, count: number, since: number }

  constructor (queue: Queue, options: ReadStreamOptions) {
    // Every option is checked before super(): once the Readable exists it schedules _construct, and
    // a half-built stream must never get that far.
    const hwm = checkInt(options.highWaterMark ?? DEFAULT_READ_HIGH_WATER_MARK, 'highWaterMark', 1, 1_000_000)
    const max = options.max === undefined || options.max === Infinity ? Infinity : checkInt(options.max, 'max', 0)
    for (const flag of ['untilEmpty', 'untilEnd', 'withIds', 'objectMode'] as const) {
      if (options[flag] !== undefined && typeof options[flag] !== 'boolean') {
        throw new InvalidOptionError(`${flag} must be a boolean`)
      }
    }
    const codec = checkCodec(options.codec) ?? queue.codec
    // The Readable always counts messages, so highWaterMark is a number of messages and a byte-mode
    // message arrives as one Buffer chunk, exactly as written.
    // (readable-stream supports autoDestroy; its @types do not list it.)
    super({ objectMode: true, highWaterMark: hwm, autoDestroy: options.owned !== true } as ConstructorParameters<typeof Readable>[0])
    this.queue = queue
    this.objectModeData = options.objectMode ?? queue.objectMode
    this.codec = codec
    this.batch = hwm
    this.max = max
    this.untilEmpty = options.untilEmpty ?? false
    this.untilEnd = options.untilEnd ?? false
    this.counts = options.mode === 'replay' ? undefined : queue.counters()
    this.untrack = queue.bus.track(this)
  }

  _construct (callback: Callback): void {
    this.queue.attachAs('reader').then(async () => {
      this.attached = true
      const { shard, wakeups } = await this.queue.open()
      // Start from what this bus's earlier readers of the queue gave back.
      await this.queue.observe()
      this.shard = shard
      this.wakeups = wakeups
      this.endWakeups = wakeups.use()
      callback()
      if (!this.destroyed) process.nextTick(() => this.emit('ready'))
    }).catch((err: Error) => {
      // Destroyed while being set up (bus.close(), say): that failure no longer matters to anyone.
      callback(this.destroyed ? null : err)
    })
  }

  /** One round trip: up to `count` stored messages. */
  protected abstract fetch (count: number): Promise<Element[]>

  /** Turns a data element into the chunk pushed downstream. */
  protected abstract envelope (el: Element, data: unknown): unknown

  /** Gives back elements taken from the queue and not delivered (consume-once readers). */
  protected abstract giveBack (elements: Element[]): Promise<void>

  /** Called with an element that cannot be decoded; returns the error to destroy the stream with. */
  protected abstract poison (el: Element, err: DecodeError): Promise<Error>

  /**
   * One call of a read script with the reader's binding (see QueueBinding): `read(incarnation)` returns
   * the incarnation the queue has, or undefined when the bound one is gone. Binds the reader to the first
   * it sees, binds again after a data loss, and throws `ERR_BUSMQ_QUEUE_DELETED` when the queue was deleted.
   */
  protected async bound<R> (read: (incarnation: string) => Promise<[string | undefined, R]>): Promise<R> {
    for (;;) {
      const [incarnation, result] = await read(this.binding.incarnation)
      if (incarnation !== undefined) {
        this.binding.bind(incarnation, this.shard)
        return result
      }
      await this.binding.gone(this.shard, `queue ${this.queue.name} was deleted while this reader was reading it`)
    }
  }

  override _read (): void {
    // A _read while the loop runs must never be dropped: the Readable would not ask again until we
    // push. So it only raises `wanted`, which the loop checks before it stops.
    this.wanted = true
    if (this.running) return
    this.running = true
    // A failure the loop did not handle (a give-back that failed, say) ends the stream with it, rather
    // than becoming an unhandled rejection and a reader that never ends.
    this.fetching = this.loop().catch((err: Error) => { this.destroy(err) })
  }

  private async loop (): Promise<void> {
    const signal = this.abort.signal
    // `running` drops in the same synchronous step as the last check of `wanted`, so no _read can
    // slip in between and be lost.
    try {
      // A fetch sent ahead is always taken in, wanted or not: what it took is then in the buffer (at most
      // 2 × highWaterMark, as without it), not held where neither the consumer nor Redis can see it.
      while (!this.destroyed && (this.wanted || this.ahead !== undefined)) {
        if (this.delivered >= this.max) {
          this.push(null)
          return
        }
        const capacity = this.capacity()
        if (capacity <= 0) {
          await this.capacityFreed(signal)
          continue
        }
        let since = this.wakeups.generation('m')
        let els: Element[]
        let asked: number
        try {
          const ahead = this.ahead
          this.ahead = undefined
          if (ahead) {
            since = ahead.since
            asked = ahead.count
            els = await ahead.fetch
          } else {
            asked = Math.min(this.fetchSize, this.max - this.delivered, capacity)
            els = await this.fetch(asked)
          }
        } catch (err) {
          if (this.destroyed) return
          if (isReplyError(err) || err instanceof QueueDeletedError) {
            // Redis refused the command (OOM, NOPERM, …), or the queue is gone: retrying would not help.
            this.destroy(err as Error)
            return
          }
          // A connection problem: ioredis reconnects; try again shortly.
          debug('read from %s failed, retrying: %s', this.queue.name, (err as Error).message)
          await sleep(this.queue.bus.settings.pollInterval, signal)
          continue
        }
        if (this.destroyed) {
          await this.giveBackRest(els)
          return
        }
        if (els.length === 0) {
          if (this.untilEmpty) {
            this.push(null)
            return
          }
          await this.wakeups.wait('m', since, signal)
          continue
        }
        if (els.length === asked) this.fetchAhead(els.length, capacity)
        if (!await this.deliver(els)) return
      }
    } finally {
      this.running = false
    }
  }

  /**
   * The next round trip, sent before this batch of `taken` messages is pushed downstream, so that the
   * consumer works through this batch while Redis answers the next (one fetch ahead, never more). Only
   * when the batch came back full (the queue has more), the stream flows (`'data'` listeners, `pipe()`,
   * `pipeline()`: the consumer takes each message as it is pushed) and has taken everything before it
   * (the Readable's buffer is empty), and the reader may prefetch (consume-once, and reliable within its
   * `prefetch`; no owner's demand): what the reader holds stays within its buffer plus one round trip of
   * at most `highWaterMark`, as without it, and what the fetch ahead took always ends up in the buffer,
   * where it is given back on destroy.
   */
  private fetchAhead (taken: number, capacity: number): void {
    if (!this.prefetches || this.demand !== undefined || this.readableFlowing !== true || this.readableLength > 0 || this.destroyed) return
    const count = Math.min(this.fetchSize, this.max - this.delivered - taken, capacity - taken, this.capacity())
    if (count <= 0) return
    const since = this.wakeups.generation('m')
    const fetch = this.fetch(count)
    // Awaited by the loop or by whoever gives it back; a failure is the loop's to handle.
    fetch.catch(() => {})
    this.ahead = { fetch, count, since }
  }

  /** What the fetch ahead took (nothing when there is none, or it failed), waiting for it. */
  private async takeAhead (): Promise<Element[]> {
    const ahead = this.ahead
    if (!ahead) return []
    this.ahead = undefined
    return await ahead.fetch.catch(() => [])
  }

  /** Gives back `rest` and what the fetch ahead took after it, in one call (so they keep their order). */
  private async giveBackRest (rest: Element[]): Promise<void> {
    const ahead = await this.takeAhead()
    await this.giveBack(ahead.length === 0 ? rest : rest.concat(ahead))
  }

  /** Pushes elements downstream; returns false when the stream ended or failed. */
  private async deliver (els: Element[]): Promise<boolean> {
    for (let i = 0; i < els.length; i++) {
      const el = els[i]
      if (this.destroyed) {
        // Destroyed by a consumer of the previous push: the rest of the batch goes back.
        await this.giveBackRest(els.slice(i))
        return false
      }
      if (el.kind === KIND_END || el.kind === KIND_ABORT) {
        await this.markerSeen(el)
        if (!this.untilEnd) continue
        await this.giveBackRest(els.slice(i + 1))
        if (el.kind === KIND_END) {
          this.push(null)
        } else {
          // Fail only after the consumer has read everything written before the abort.
          this.failAfterBuffer(this.abortError(el))
        }
        return false
      }
      let data: unknown
      try {
        data = decodeMessage(el.payload, this.objectModeData, this.codec)
        if (data === null && this.bare) {
          throw new DecodeError('the payload decodes to null, which cannot travel through a Readable (null ends it); ' +
            'read with withIds or reliable mode to receive it')
        }
      } catch (err) {
        await this.giveBackRest(els.slice(i + 1))
        this.destroy(await this.poison(el, err as DecodeError))
        return false
      }
      this.delivered++
      this.remember(el)
      this.wanted = false
      if (this.push(this.envelope(el, data))) this.wanted = true
      if (this.delivered >= this.max) {
        if (this.destroyed) {
          await this.giveBackRest(els.slice(i + 1))
          return false
        }
        await this.giveBackRest(els.slice(i + 1))
        this.push(null)
        return false
      }
    }
    return true
  }

  /** An error to fail with once the buffer is drained (the peer's abort marker). */
  private pendingError?: Error

  private failAfterBuffer (err: Error): void {
    this.pendingError = err
    if (this.readableLength === 0) this.destroy(err)
  }

  override read (size?: number): any {
    // A destroyed reader hands on nothing more: what is still buffered goes back to the queue.
    if (this.destroyed) return null
    const chunk = super.read(size)
    if (this.pendingError && this.readableLength === 0 && !this.destroyed) {
      const err = this.pendingError
      // After the 'data' of the last chunk has been emitted.
      process.nextTick(() => this.destroy(err))
    }
    return chunk
  }

  override emit (event: string | symbol, ...args: any[]): boolean {
    if (event === 'data') {
      if (this.destroyed) return false
      this.handed++
      if (this.counts) this.counts.popped++
    }
    return super.emit(event, ...args)
  }

  /** @internal A wrapping stream (a channel) owns this reader: it closes it, not `bus.close()`. */
  adopt (): void {
    this.untrack()
  }

  /**
   * @internal For an owner that hands each message to a slot of its own (a service server: its free
   * concurrency): the reader never takes more messages in one round trip than `demand()` says at that
   * moment, and takes none while it says 0, so what the owner cannot start yet stays in Redis for other
   * readers. The owner calls {@link demandChanged} when `demand()` may have grown. Without it, a reader
   * takes up to `highWaterMark` ahead of its consumer.
   */
  limit (demand: () => number): void {
    this.demand = demand
    this.capacityChanged()
  }

  /** @internal The owner's `demand()` (see {@link limit}) may have grown: look again. */
  demandChanged (): void {
    this.capacityChanged()
  }

  /**
   * @internal For a stream that wraps this reader (a channel): the last `count` chunks this reader handed
   * to it were not handed further, and go back to the queue with this reader's own buffer when it closes.
   */
  returnUnread (count: number): void {
    if (!this.released) {
      this.downstreamUnread = count
      return
    }
    // Closed already (it failed, say): give those back now, separately.
    if (count > 0 && this.shard) {
      const late = this.releaseLate(count).catch((e: Error) => {
        this.queue.bus.report(e, `${this.queue.name}: could not give back what a wrapping stream did not hand on`)
      })
      this.queue.bus.settle(this.queue.keys.base, late)
    }
  }

  /** Chunks taken from the queue and not handed on (in the Readable's buffer, or in a wrapper's). */
  protected get unhanded (): number {
    return Math.max(0, this.delivered - this.handed) + this.downstreamUnread
  }

  /**
   * Resolves once the reader has closed and everything it took from the queue but did not hand on is
   * back in the queue (see "Nothing lost on destroy()" in the README).
   */
  async settled (): Promise<void> {
    if (this.closed) return
    await new Promise<void>((resolve) => this.once('close', () => resolve()))
  }

  /** Most messages one fetch asks for. */
  protected get fetchSize (): number {
    return this.batch
  }

  /** Whether the reader may fetch ahead of its consumer (see {@link fetchAhead}). */
  protected get prefetches (): boolean {
    return false
  }

  /** Whether chunks are bare messages (not envelopes), so a null message cannot be pushed. */
  protected get bare (): boolean {
    return true
  }

  /**
   * Hook: how many more messages may be taken now: what the owner wants (see {@link limit}); reliable
   * readers also bound what they hold.
   */
  protected capacity (): number {
    return this.demand ? Math.max(0, this.demand()) : Infinity
  }

  /** Resolves when capacity() may have grown ({@link capacityChanged}), or `signal` aborts. */
  private capacityFreed (signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve()
      const done = (): void => {
        signal.removeEventListener('abort', done)
        resolve()
      }
      this.capacityWaiters.push(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** capacity() may have grown: a loop waiting for room looks again. */
  protected capacityChanged (): void {
    const waiters = this.capacityWaiters
    this.capacityWaiters = []
    for (const w of waiters) w()
  }

  /**
   * Hook: the error to fail with when an abort marker is consumed (`untilEnd`): a channel's peer destroyed
   * its side. A service's streamed reply carries the server's error in the marker.
   */
  protected abortError (_el: Element): Error {
    return new PeerDestroyedError(`the peer writing to ${this.queue.name} destroyed its stream`)
  }

  /** Hook: an end marker was taken (reliable readers acknowledge it). */
  protected async markerSeen (_el: Element): Promise<void> {}

  /** Hook: a delivered element is now in the Readable's buffer (consume-once readers keep it to give back). */
  protected remember (_el: Element): void {}

  /** Hook: gives back the newest `unhanded` delivered elements, which never reached the consumer. */
  protected async release (_unhanded: number): Promise<void> {}

  /**
   * Hook: after the reader closed, gives back the `count` elements it handed to a wrapping stream before
   * those its own release gave back (consume-once readers; reliable ones released everything already).
   */
  protected async releaseLate (_count: number): Promise<void> {}

  /** Hook: info-hash fields this reader's records use, dropped when it detaches (it is done). */
  protected forgetOnDetach (): string[] {
    return []
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.abort.abort()
    this.untrack()
    const done = async (): Promise<void> => {
      try {
        // A read in flight on a shard that is down is waited for only so long: closing must not hang.
        await Promise.race([this.fetching, sleep(this.shard?.commandTimeout || 1)])
        // A fetch sent ahead took messages after everything buffered: back first, so that the buffered
        // ones, given back after them, end up ahead of them at the head of the queue.
        if (this.shard) await this.giveBack(await this.takeAhead())
        if (this.shard) await this.release(this.unhanded)
        this.released = true
      } catch (e) {
        // The stream closes whatever happens; what could not be given back is reported to the bus
        // (its 'error' event, when someone listens), not thrown at whoever destroyed the stream.
        this.queue.bus.report(e as Error, `${this.queue.name}: could not give back what this reader took`)
      } finally {
        this.endWakeups?.()
      }
      if (this.attached) {
        this.attached = false
        await this.queue.detachDone(this.forgetOnDetach(), 'reader')
          .catch((e: Error) => this.queue.bus.report(e, `${this.queue.name}: detach failed`))
      }
    }
    const settling = done()
    // Until the give-back lands, this bus's next look at the queue waits for it.
    this.queue.bus.settle(this.queue.keys.base, settling)
    settling.then(() => callback(err))
  }

  /**
   * @internal Used by `bus.close()`. A consumer that listens for errors (a `for await` loop, a pipeline)
   * sees `ERR_BUSMQ_CLOSED`; otherwise the stream closes quietly. Either way, what it took and did not
   * hand on goes back to the queue first.
   */
  async close (): Promise<void> {
    await closeByBus(this)
  }
}

/**
 * Consume-once or replay reader of a queue. Its chunks `C` are the queue's messages, or
 * {@link IdentifiedMessage}s with `withIds`.
 */
export class QueueReadStream<C = any> extends QueueReader<C> {
  readonly mode: 'consume' | 'replay'
  private readonly withIds: boolean
  /** Replay: id of the next message to read. */
  private next: number
  /** Consume-once: stored form of the last pushed elements, to give back what was not handed on. */
  private recent: Element[] = []
  /** How many of the newest `recent` elements release() gave back. */
  private releasedCount = 0
  /** Identity of this reader's give-backs in the queue's info hash (g<id>), and their count. */
  private readonly giverId = nextReaderId()
  private giveBacks = 0

  constructor (queue: Queue, options: ReadStreamOptions = {}) {
    const mode = options.mode ?? 'consume'
    if (mode !== 'consume' && mode !== 'replay') {
      throw new InvalidOptionError(`mode must be 'consume', 'replay' or 'reliable', got ${String(mode)}`)
    }
    const from = mode === 'replay' ? checkInt(options.from ?? 0, 'from', 0) : 0
    super(queue, options)
    this.mode = mode
    this.withIds = options.withIds ?? false
    this.next = from
  }

  /** Replay: the id the next read starts from (an offset to resume from later). */
  get offset (): number {
    return this.next
  }

  protected override async fetch (count: number): Promise<Element[]> {
    const k = this.queue.keys
    const { ttl } = this.queue
    const els = await this.bound(async (incarnation) => {
      const batch = parseBatch(this.mode === 'consume'
        ? await pop(this.shard, k, { count, ttl, incarnation })
        : await range(this.shard, k, { from: this.next, count, ttl, incarnation }))
      return [batch?.incarnation, batch?.elements ?? []]
    })
    if (this.mode === 'consume') return els
    // Ids only grow: skip anything older than the offset (put back at the head by a consume-once reader).
    const fresh = els.filter((el) => el.id >= this.next)
    if (fresh.length > 0) this.next = fresh[fresh.length - 1].id + 1
    return fresh
  }

  protected override envelope (el: Element, data: unknown): unknown {
    return this.withIds ? { id: el.id, data } : data
  }

  protected override get prefetches (): boolean {
    return this.mode === 'consume'
  }

  protected override get bare (): boolean {
    return !this.withIds
  }

  protected override remember (el: Element): void {
    if (this.mode !== 'consume') return
    this.recent.push(el)
    // What was not handed on is at most the Readable's buffer plus a wrapper's: a few batches.
    if (this.recent.length > 8 * this.batch) this.recent = this.recent.slice(-4 * this.batch)
  }

  protected override async giveBack (elements: Element[]): Promise<void> {
    if (this.mode !== 'consume' || elements.length === 0) return
    const len = await unpop(this.shard, this.queue.keys, {
      ttl: this.queue.ttl,
      incarnation: this.binding.incarnation,
      reader: this.giverId,
      number: ++this.giveBacks,
      elements: elements.map(encodeElementWithId)
    })
    if (len < 0) debug('%d message(s) not given back to %s: it was deleted', elements.length, this.queue.name)
    else debug('gave back %d message(s) to %s', elements.length, this.queue.name)
  }

  protected override async release (unhanded: number): Promise<void> {
    this.releasedCount = unhanded
    if (unhanded > 0) await this.giveBack(this.recent.slice(-unhanded))
  }

  protected override async releaseLate (count: number): Promise<void> {
    const end = this.recent.length - this.releasedCount
    await this.giveBack(this.recent.slice(Math.max(0, end - count), end))
  }

  protected override forgetOnDetach (): string[] {
    return this.giveBacks > 0 ? [`g${this.giverId}`] : []
  }

  protected override async poison (el: Element, err: DecodeError): Promise<Error> {
    err.message += ` (message id ${el.id} of queue ${this.queue.name}`
    err.id = el.id
    err.payload = el.payload
    if (this.mode === 'consume') {
      // Taken from the queue already: keep it, for inspection, in the dead-letter queue.
      await this.queue.deadLetter().producer().push([el.payload])
      this.counts!.deadLettered++
      err.message += '; moved to its dead-letter queue)'
      this.queue.bus.log.error(err.message)
    } else {
      err.message += '; it stays in the queue)'
    }
    return err
  }
}
