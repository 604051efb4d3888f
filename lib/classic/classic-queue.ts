import { EventEmitter } from 'node:events'
import createDebug from 'debug'
import type { Queue } from '../queue/queue.js'
import { MAX_BATCH_BYTES, MAX_BATCH_COUNT, type Producer } from '../queue/producer.js'
import type { QueueReader, IdentifiedMessage } from '../queue/queue-read-stream.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import type { ReliableReadStream } from '../queue/reliable-read-stream.js'
import { ClassicUsageError } from '../errors.js'
import type { ClassicBus } from './classic-bus.js'
import { ackUpTo, isClosedError, promisifyMethods, settle, toPayload, toText, type Callback } from './util.js'

/** Options of `queue.attach(options)` (BusMQ 3.1's). */
export interface ClassicAttachOptions {
  /**
   * Seconds the queue lives on with nobody attached (0 or none: the default, as in 3.1). Ignored when the
   * queue exists (it keeps its own). @default 30
   */
  ttl?: number
  /** Most messages the queue holds; a push to a full queue is dropped and calls back with id `null`. 0: unbounded. @default 0 */
  maxsize?: number
  /**
   * 3.1's federation discovery: stored in the queue's metadata (`discover`). Any queue that exists is
   * found (`queue.find()` of a bus whose `federate.urls` lists this bus's federation server). @default false
   */
  discoverable?: boolean
}

/** Options of `queue.consume(options)` (BusMQ 3.1's). */
export interface ClassicConsumeOptions {
  /** Stop after this many messages (negative: no limit). */
  max?: number
  /** false: read without removing (persistent publish/subscribe), from `index`. @default true */
  remove?: boolean
  /** With `remove: false`: the position in the queue to start from (0: the oldest message). @default 0 */
  index?: number
  /** Each message must be acked (`ack(id)`), else it is delivered again on the next `consume()`. @default false */
  reliable?: boolean
  /** Reliable: the last id acked before; messages up to it are discarded. @default 0 */
  last?: number
}

/** Most unacknowledged messages a reliable classic consumer holds (3.1 has no bound; this is high). */
const RELIABLE_PREFETCH = 100_000
/** 3.1 has no dead-letter queue: a message is never given up on. */
const NEVER_DEAD_LETTER = 1_000_000_000

const debug = createDebug('busmq:classic')

type State = 'detached' | 'attaching' | 'attached' | 'detaching'

/**
 * BusMQ 3.1's queue over a native {@link Queue} (byte mode: messages are strings; objects travel as
 * JSON). Events: `attaching`, `attached` (existed), `detaching`, `detached`, `consuming` (state),
 * `message` (message, id), `closed`, `error` (err).
 */
export class ClassicQueue extends EventEmitter {
  readonly type = 'queue'
  readonly name: string
  readonly bus: ClassicBus
  /** true while consuming (3.1's property). */
  consuming = false
  private handleOf?: Queue<Buffer>
  private state: State = 'detached'
  private reader?: QueueReader
  /** Reliable: a stopped reader whose messages can still be acked until the next consume() or detach(). */
  private lingering?: QueueReader
  private reliable = false
  private readonly held = new Map<number, ReliableMessage<Buffer>>()
  private consumePending = false
  /** Which consume() a reader being opened belongs to. */
  private generation = 0
  private pushedCount = 0
  /** Pushes of this tick, sent together (see push()). */
  private batch: Array<{ payload: Buffer, cb?: Callback<number | null> }> = []
  private batchBytes = 0
  private producer?: Producer
  private consumedCount = 0

  /** @internal Use `bus.queue(name)`. */
  constructor (bus: ClassicBus, name: string) {
    super()
    this.setMaxListeners(0)
    this.bus = bus
    this.name = name
  }

  /** Whether the queue is used through federation (made by `bus.federate()`). */
  private get federated (): boolean {
    return this.bus.native.federationOnly
  }

  /** The native handle: the one attach() made, or a plain one. */
  private get handle (): Queue<Buffer> {
    this.handleOf ??= this.bus.native.queue(this.name)
    return this.handleOf
  }

  /** True while attached; `cb` gets the state (3.1: as its only argument). */
  isAttached (cb?: (attached: boolean) => void): boolean {
    const attached = this.state === 'attached'
    cb?.(attached)
    return attached
  }

  /**
   * Attaches: `attaching`, then `attached` (true when the queue existed). A queue that exists keeps its
   * ttl; one this call creates gets `ttl` and its metadata (`ttl`, `maxsize`, `discover`, `source`).
   */
  attach (options: ClassicAttachOptions = {}): void {
    if (this.state === 'attached') {
      this.emit('error', new ClassicUsageError('cannot attach to queue: already attached'))
      return
    }
    this.state = 'attaching'
    process.nextTick(() => this.emit('attaching'))
    const maxsize = Math.max(options.maxsize ?? 0, 0)
    ;(async () => {
      // Federated (bus.federate()), each call goes to the federation server's bus (attach: it attaches there).
      const plain = this.bus.native.queue(this.name)
      const existing = await plain.getMeta('ttl')
      const ttl = existing !== null && Number(existing) > 0 ? Number(existing) : (options.ttl || 30)
      const handle = this.bus.native.queue<Buffer>(this.name, {
        ttl: Math.round(ttl * 1000), maxLength: maxsize, overflow: 'drop'
      })
      this.handleOf = handle
      this.producer = undefined
      const existed = await handle.attach()
      if (!existed || existing === null) {
        await handle.setMeta({ ttl, maxsize, discover: String(options.discoverable ?? false), source: 'local' })
      }
      return existed
    })().then((existed) => {
      if (this.state !== 'attaching') return
      this.state = 'attached'
      this.emit('_attached')
      this.emit('attached', existed)
    }, (err: Error) => {
      if (this.state === 'attaching') this.state = 'detached'
      if (!isClosedError(err)) this.emit('error', err)
    })
  }

  /** Detaches (stopping consumption first): `detaching`, `consuming` (false) if consuming, `detached`. */
  detach (): void {
    void this.detaching()
  }

  private async detaching (): Promise<void> {
    if (this.state === 'detaching' || this.state === 'detached') return
    this.state = 'detaching'
    this.emit('detaching')
    this.stop()
    await this.dropLingering()
    try {
      await this.handle.detach()
    } catch (err) {
      if (!isClosedError(err)) this.emit('error', err)
    }
    this.state = 'detached'
    this.emit('detached')
  }

  /**
   * Pushes a message (an object travels as JSON); `cb(err, id)`, id `null` when a `maxsize` queue was
   * full. Before `attached`, the push waits for it.
   */
  push (message: unknown, cb?: Callback<number | null>): boolean {
    if (this.state !== 'attached') {
      this.once('_attached', () => this.push(message, cb))
      return false
    }
    this.pushedCount++
    if (this.handle.maxLength > 0 || this.federated) {
      // maxsize: each push on its own (one that does not fit is dropped with id null); federated: one call each.
      settle(this.handle.push(toPayload(message)), cb, this)
      return true
    }
    let payload: Buffer
    try {
      payload = this.handle.encode(toPayload(message))
    } catch (err) {
      settle(Promise.reject(err), cb, this)
      return true
    }
    // The pushes of one tick go to Redis in one script call (3.1 made one per message); one call keeps
    // their ids consecutive, so each callback gets its own.
    if (this.batch.length === 0) process.nextTick(() => this.sendBatch())
    this.batch.push({ payload, cb })
    this.batchBytes += payload.length
    if (this.batch.length >= MAX_BATCH_COUNT || this.batchBytes >= MAX_BATCH_BYTES / 2) this.sendBatch()
    return true
  }

  /** Pushes the batch of this tick (see push()). */
  private sendBatch (): void {
    const batch = this.batch
    if (batch.length === 0) return
    this.batch = []
    this.batchBytes = 0
    this.producer ??= this.handle.producer()
    this.producer.push(batch.map((b) => b.payload)).then(({ firstId }) => {
      batch.forEach((b, i) => b.cb?.(null, firstId + i))
    }, (err: Error) => {
      let reported = false
      for (const b of batch) {
        if (b.cb) b.cb(err)
        else if (!reported && !isClosedError(err)) {
          reported = true
          this.emit('error', err)
        }
      }
    })
  }

  /**
   * Starts consuming: `consuming` (true), then `message` (message, id) per message; `consuming` (false)
   * once `max` messages arrived or `stop()`. Before `attached`, it starts once attached.
   */
  consume (options: ClassicConsumeOptions = {}): void {
    if (this.consuming) return
    if (this.state !== 'attached') {
      if (!this.consumePending) {
        this.consumePending = true
        this.once('_attached', () => {
          this.consumePending = false
          this.consume(options)
        })
      }
      return
    }
    const { remove = true, index = 0, reliable = false, last = 0 } = options
    const max = options.max !== undefined && options.max >= 0 ? options.max : undefined
    // A new consume() gives back what the last reliable one delivered and nobody acked: delivered again.
    const released = this.dropLingering()
    const generation = ++this.generation
    this.reliable = remove && reliable
    this.consuming = true
    this.emit('consuming', true)
    if (max === 0) {
      this.stop()
      return
    }
    const h = this.handle
    released.then(async () => {
      if (!remove) {
        // 3.1's index is a position in the queue; the native offset is an id: the oldest id plus it.
        const from = index > 0 ? await h.stats().then((s) => s.pushed - s.length + 1 + index) : 0
        return h.createReadStream({ mode: 'replay', from, withIds: true, max })
      }
      if (this.reliable) {
        return h.createReadStream({ mode: 'reliable', after: last, max, prefetch: RELIABLE_PREFETCH, maxDeliveries: NEVER_DEAD_LETTER })
      }
      return h.createReadStream({ withIds: true, max })
    }).then((reader) => {
      if (this.consuming && this.generation === generation) this.read(reader)
      else reader.destroy()
    }, (err: Error) => { if (this.generation === generation) this.failed(err) })
  }

  private read (reader: QueueReader): void {
    this.reader = reader
    reader.on('data', (m: IdentifiedMessage<Buffer> | ReliableMessage<Buffer>) => {
      if (this.reader !== reader) return
      this.consumedCount++
      if (this.reliable) this.held.set(m.id, m as ReliableMessage<Buffer>)
      this.emit('message', toText(m.data), m.id)
    })
    reader.on('end', () => { if (this.reader === reader) this.stop() })
    reader.on('error', (err: Error) => { debug('reader of %s failed: %s', this.name, err.message); if (this.reader === reader) this.failed(err) })
  }

  private failed (err: Error): void {
    this.stop()
    if (!isClosedError(err)) this.emit('error', err)
  }

  /** Stops consuming: `consuming` (false). Reliable: what was delivered can still be acked until the next consume(). */
  stop (): void {
    if (!this.consuming) return
    const reader = this.reader
    this.reader = undefined
    this.consuming = false
    if (reader) {
      if (this.reliable) {
        // Keeps its leases (so ack() still works), takes nothing more.
        reader.pause()
        this.lingering = reader
      } else {
        reader.destroy()
      }
    }
    this.emit('consuming', false)
  }

  /** Gives back what a stopped reliable reader delivered and nobody acked (delivered again). */
  private async dropLingering (): Promise<void> {
    const reader = this.lingering as ReliableReadStream | undefined
    this.lingering = undefined
    this.held.clear()
    if (!reader) return
    if (!reader.destroyed) await new Promise((resolve) => { reader.once('close', resolve); reader.destroy() })
    await reader.releaseHeld().catch(() => {})
  }

  /** True while consuming; `cb(err, consuming)`. */
  isConsuming (cb?: Callback<boolean>): boolean {
    cb?.(null, this.consuming)
    return this.consuming
  }

  /** Reliable: acks message `id` and every message before it. Ignored otherwise. */
  ack (id: number, cb?: Callback<void>): void {
    if (!this.reliable) {
      cb?.(null)
      return
    }
    settle(ackUpTo(this.held, id), cb, this)
  }

  /** Detaches and deletes the queue with every message: `closed`. Not attached: `error`. */
  close (): void {
    if (this.state !== 'attached') {
      this.emit('error', new ClassicUsageError('error closing queue: not attached'))
      return
    }
    const handle = this.handle
    this.detaching().then(() => handle.delete()).then(() => this.emit('closed'), (err: Error) => {
      if (!isClosedError(err)) this.emit('error', err)
    })
  }

  /** Deletes every message in the queue; `cb(err)`. */
  flush (cb?: Callback<void>): void {
    settle(this.handle.flush(), cb, this)
  }

  /** `cb(err, exists)`. */
  exists (cb?: Callback<boolean>): void {
    settle(this.handle.exists(), cb, this)
  }

  /**
   * `cb(err, location)`: `'local'` when the queue exists on this bus, else the first URL of
   * `federate.urls` whose server's bus has it (as given there), else `null`.
   */
  find (cb?: Callback<string | null>): void {
    settle(this.handle.find().then((where) => where === null || where === 'local' ? where : this.bus.federationUrl(where)), cb, this)
  }

  /** `cb(err, count)`: messages waiting. */
  count (cb?: Callback<number>): void {
    settle(this.handle.count(), cb, this)
  }

  /** `cb(err, seconds)`: the queue's ttl (null when it does not exist). */
  ttl (cb?: Callback<number | null>): void {
    const h = this.handle
    settle((async () => {
      const meta = await h.getMeta('ttl')
      if (meta !== null) return Number(meta)
      return (await h.exists()) ? h.ttl / 1000 : null
    })(), cb, this)
  }

  /**
   * Queue metadata: `metadata(key, cb)` gets one value, `metadata(cb)` all, `metadata(key, value, cb)`
   * and `metadata({ key: value }, cb)` set.
   */
  metadata (key?: string | Record<string, string | number> | Callback<unknown>, value?: unknown, cb?: Callback<unknown>): void {
    if (typeof key === 'function') {
      cb = key
      key = undefined
      value = undefined
    } else if (typeof value === 'function') {
      cb = value as Callback<unknown>
      value = undefined
    }
    const h = this.handle
    if (typeof key === 'object' && key !== null) settle(h.setMeta(key), cb, this)
    else if (key !== undefined && value !== undefined) settle(h.setMeta({ [key]: String(value) }), cb, this)
    else if (key !== undefined) settle(h.getMeta(key), cb, this)
    else settle(h.getMeta(), cb, this)
  }

  /** Messages this object pushed; also `cb(err, n)`. */
  pushed (cb?: Callback<number>): number {
    cb?.(null, this.pushedCount)
    return this.pushedCount
  }

  /** Messages this object consumed; also `cb(err, n)`. */
  consumed (cb?: Callback<number>): number {
    cb?.(null, this.consumedCount)
    return this.consumedCount
  }

  /** Makes find, ttl, metadata, exists, count, flush, push and ack return promises; returns the queue. */
  promisify (): this {
    return promisifyMethods(this, ['find', 'ttl', 'metadata', 'exists', 'count', 'flush', 'push', 'ack'])
  }
}
