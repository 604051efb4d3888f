import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { Client, Shard } from '../router/shard.js'
import { QueueKeys, ATTACHMENT_FIELD_PREFIX, META_FIELD_PREFIX } from '../keys.js'
import { checkInt } from '../names.js'
import { EncodeError, InvalidOptionError, MessageTooLargeError } from '../errors.js'
import { deleteQueue } from '../scripts/index.js'
import { checkCodec, encodeMessage, jsonCodec, type Codec } from './codec.js'
import { OVERFLOW_VALUES, DEFAULT_OVERFLOW, type Overflow, type QueueOptions, type ReadStreamOptions, type WriteStreamOptions } from './queue-options.js'
import { QueueWriteStream } from './queue-write-stream.js'
import { QueueReadStream, type IdentifiedMessage } from './queue-read-stream.js'
import { ReliableReadStream } from './reliable-read-stream.js'
import { AckStream } from './ack-stream.js'
import { Producer, type ProducerIdentity } from './producer.js'
import { Wakeups } from './wakeups.js'
import type { DeadLetterRecord } from './reliable-message.js'
import type { MessageInput } from './message.js'
import type { AttachRole } from './attachments.js'
import type { QueueCounters } from '../metrics/bus-metrics.js'

const debug = createDebug('busmq:queue')

/** The fields of hash `key` matching `pattern` (HSCAN: the info hash also holds other records). */
async function scanFields (c: Client, key: string, pattern: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  let cursor = '0'
  do {
    const [next, flat] = await c.hscan(key, cursor, 'MATCH', pattern, 'COUNT', 200)
    cursor = next
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i], flat[i + 1])
  } while (cursor !== '0')
  return out
}

/** What `queue.stats()` reports. */
export interface QueueStats {
  name: string
  shard: string
  /** Messages waiting in the queue. */
  length: number
  /** Messages ever pushed (also the id of the newest one). */
  pushed: number
  /** Messages taken by consume-once and reliable readers (put-backs are subtracted). */
  consumed: number
  /** Messages delivered to reliable readers and not yet acknowledged. */
  inFlight: number
  /** Clients attached (open streams count as attachments). */
  clients: number
  /** ms until the queue expires if nobody touches it; -2 when it does not exist. */
  ttl: number
}

/**
 * @internal Where a queue lives when it is not a plain named queue: a dead-letter queue (beside its
 * queue), a service's request queues, reply queues (lib/service/).
 */
export interface QueuePlacement {
  /** Its keys, instead of `<prefix>:q:{name}:…`. */
  keys: QueueKeys
  /** Resolves its shard, instead of the router locating it by name and keys. */
  shard?: () => Promise<Shard>
}

/**
 * A handle on one queue. Cheap to create; it reaches Redis only when used. Streams made from it keep the
 * queue attached while they are open. `T` is the type of its messages as readers see them: a Buffer in
 * byte mode, the decoded value in objectMode (see lib/queue/message.ts; types only).
 */
export class Queue<T = any> {
  readonly name: string
  /** @internal */
  readonly bus: Bus
  /** @internal */
  readonly keys: QueueKeys
  /** Idle TTL in ms. */
  readonly ttl: number
  readonly maxLength: number
  /** What a push that does not fit under `maxLength` does. */
  readonly overflow: Overflow
  readonly retain: number
  readonly objectMode: boolean
  readonly codec: Codec
  private shardP?: Promise<Shard>
  private wakeupsOf?: Wakeups
  /** Attachments of this handle (its own and its streams'). */
  private attachments = 0
  private oneOff?: Producer
  private untrack?: () => void
  /** Where the shard comes from when it is not located by name (a dead-letter queue: from its queue's). */
  private readonly placedShard?: () => Promise<Shard>

  /** @internal Use `bus.queue(name, options)`. */
  constructor (bus: Bus, name: string, options: QueueOptions = {}, placement?: QueuePlacement) {
    this.bus = bus
    this.name = name
    this.placedShard = placement?.shard
    this.keys = placement?.keys ?? QueueKeys.forQueue(bus.settings.prefix, name)
    this.ttl = checkInt(options.ttl ?? bus.settings.ttl, 'ttl', 10)
    this.maxLength = checkInt(options.maxLength ?? 0, 'maxLength', 0)
    const overflow = options.overflow === undefined ? DEFAULT_OVERFLOW : options.overflow
    if (!OVERFLOW_VALUES.includes(overflow)) {
      throw new InvalidOptionError(`overflow must be 'wait', 'drop' or 'error', got ${JSON.stringify(overflow)}`)
    }
    this.overflow = overflow
    this.retain = checkInt(options.retain ?? 0, 'retain', 0)
    if (options.objectMode !== undefined && typeof options.objectMode !== 'boolean') {
      throw new InvalidOptionError('objectMode must be a boolean')
    }
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
  }

  /** @internal The shard holding this queue (resolved once per handle; see "Sharding" in the README). */
  shard (): Promise<Shard> {
    this.shardP ??= (this.placedShard ? this.placedShard() : this.locate()).then((s) => {
      debug('queue %s on shard %s', this.name, s.id)
      return s
    }, (err) => {
      this.shardP = undefined
      throw err
    })
    return this.shardP
  }

  /**
   * @internal The shard, once every give-back of this bus's readers to the queue has landed: what this
   * process observes of the queue (count, stats, a new reader) includes what its readers gave back.
   */
  async observe (): Promise<Shard> {
    const shard = await this.shard()
    await this.bus.settled(this.keys.base)
    return shard
  }

  private async locate (): Promise<Shard> {
    await this.bus.connect()
    return await this.bus.router.locate(this.name, this.keys.existence())
  }

  /** @internal The queue's shard and wake-ups (a producer of a bounded queue waits on them). */
  async open (): Promise<{ shard: Shard, wakeups: Wakeups }> {
    const shard = await this.shard()
    this.untrack ??= this.bus.track(this)
    this.wakeupsOf ??= new Wakeups(shard.subscriptions, this.keys.wake, this.bus.settings.pollInterval)
    return { shard, wakeups: this.wakeupsOf }
  }

  /** @internal Wakes every producer and reader of this handle that waits (closing). */
  wakeAll (): void {
    this.wakeupsOf?.wakeAll()
  }

  /** @internal Encodes one message with this queue's (or the given) mode and codec, checking its size. */
  encode (value: unknown, objectMode = this.objectMode, codec = this.codec): Buffer {
    if (value === null && objectMode) {
      throw new EncodeError('null cannot be a message: a Readable ends at null (wrap it, for example { value: null })')
    }
    const buf = encodeMessage(value, objectMode, codec)
    const max = this.bus.settings.maxMessageSize
    if (buf.length > max) {
      throw new MessageTooLargeError(`message of ${buf.length} bytes is over maxMessageSize (${max} bytes)`)
    }
    return buf
  }

  /**
   * @internal A producer of its own (each write stream has one). `bind`: bound to the queue its first push
   * reaches, failing with `ERR_BUSMQ_QUEUE_DELETED` once that is deleted (streams); one-off pushes are not.
   * `identity`: shared by the one-off pushes of a bus to the queue.
   */
  producer (options: { retryReplication?: boolean, bind?: boolean, identity?: ProducerIdentity } = {}): Producer {
    const { replicas, replicasTimeout } = this.bus.settings
    return new Producer(this, { replicas, replicasTimeout, closed: () => this.bus.closed }, options)
  }

  /**
   * Pushes one message; resolves with its id once Redis has accepted it. With `maxLength`: waits for room
   * (`overflow: 'wait'`), resolves with `null` when it did not fit (`'drop'`), or rejects with
   * `ERR_BUSMQ_QUEUE_FULL` (`'error'`).
   */
  async push (message: MessageInput<T>): Promise<number | null> {
    const payload = this.encode(message)
    this.oneOff ??= this.producer({ identity: this.bus.oneOffIdentity(this.keys.base) })
    const { firstId, stored } = await this.oneOff.push([payload])
    return stored === 0 ? null : firstId
  }

  /** A Writable producer: each chunk is one message. */
  createWriteStream (options: WriteStreamOptions = {}): QueueWriteStream<T> {
    this.bus.assertOpen()
    return new QueueWriteStream<T>(this, options)
  }

  /**
   * A Readable consumer (consume-once, replay or reliable; see `ReadStreamOptions.mode`). Its chunks are
   * messages (`T`), `{ id, data }` with `withIds`, reliable envelopes in reliable mode.
   */
  createReadStream (options: ReadStreamOptions & { mode: 'reliable' }): ReliableReadStream<T>
  createReadStream (options: ReadStreamOptions & { withIds: true }): QueueReadStream<IdentifiedMessage<T>>
  createReadStream (options?: ReadStreamOptions): QueueReadStream<T>
  createReadStream (options: ReadStreamOptions = {}): QueueReadStream | ReliableReadStream {
    this.bus.assertOpen()
    if (options.mode === 'reliable') return new ReliableReadStream(this, options)
    return new QueueReadStream(this, options)
  }

  /**
   * A Writable that acknowledges the reliable messages written to it: the end of
   * `pipeline(reader, transform, queue.createAckStream())`, so only what went all the way through is acked.
   */
  createAckStream (): AckStream {
    return new AckStream()
  }

  /** Why message `id` of this dead-letter queue got there, and its delivery history. */
  async history (id: number): Promise<DeadLetterRecord | null> {
    const json = await (await this.observe()).run((c) => c.hget(this.keys.history, String(id)))
    return json === null ? null : JSON.parse(json)
  }

  /** The queue's dead-letter queue: an ordinary queue in the same hash slot. */
  deadLetter (): Queue<T> {
    // It shares its queue's hash slot, so it always lives on its queue's shard.
    return new Queue(this.bus, `${this.name}:dead-letter`, { ttl: this.ttl, objectMode: this.objectMode, codec: this.codec },
      { keys: this.keys.deadLetter(), shard: () => this.shard() })
  }

  /**
   * Attaches this client to the queue: while attached, the queue and its keys do not expire. Streams
   * attach by themselves. `ttl` replaces the idle TTL for this handle. Resolves with true when the queue
   * existed before (false: this attach created it).
   */
  async attach (options: { ttl?: number } = {}): Promise<boolean> {
    return await this.attachAs(undefined, options)
  }

  /** @internal attach() by a reader or writer stream, so Redis can say how many of each are attached. */
  async attachAs (role: AttachRole, options: { ttl?: number } = {}): Promise<boolean> {
    if (options.ttl !== undefined) (this as { ttl: number }).ttl = checkInt(options.ttl, 'ttl', 10)
    // Counted at once: a detach() made before this attach resolves undoes it.
    this.attachments++
    try {
      const shard = await this.shard()
      this.untrack ??= this.bus.track(this)
      return await this.bus.attachments(shard).attach(this.keys, this.ttl, role)
    } catch (err) {
      this.attachments--
      throw err
    }
  }

  /** Drops one attachment; when none is left, the queue expires `ttl` ms later unless used again. */
  async detach (): Promise<void> {
    await this.detachDone()
  }

  /**
   * @internal `detach()` for a stream that is done: `forget` names info-hash fields (the idempotency
   * records of its producer or of its give-backs) that nothing will need again; `role`: what attached
   * (attachAs).
   */
  async detachDone (forget?: string[], role?: AttachRole): Promise<void> {
    if (this.attachments === 0) return
    this.attachments--
    const shard = await this.shard()
    await this.bus.attachments(shard).detach(this.keys, this.ttl, forget, role)
  }

  /** @internal This queue's metrics record; a stream looks it up once, when it is made. */
  counters (): QueueCounters {
    return this.bus.metricsRegistry.queue(this)
  }

  /** Messages waiting in the queue. */
  async count (): Promise<number> {
    return await (await this.observe()).run((c) => c.llen(this.keys.messages))
  }

  /** True when any key of the queue exists (it was used and has not expired). */
  async exists (): Promise<boolean> {
    return (await (await this.observe()).run((c) => c.exists(...this.keys.existence()))) > 0
  }

  /**
   * Where the queue is: `'local'` when it exists on this bus's Redis, else the URL of the first federation
   * server (the bus's `federation.urls`) whose bus has it, else null.
   */
  async find (): Promise<string | null> {
    if (await this.exists()) return 'local'
    return this.bus.remote ? await this.bus.remote.client.find(this.name) : null
  }

  /** Deletes every waiting and in-flight message; counters and attachments stay. */
  async flush (): Promise<void> {
    const k = this.keys
    await (await this.observe()).run((c) => c.del(k.messages, k.inflight, k.leases, k.deliveries, k.owners))
  }

  /**
   * Deletes the queue: every key of it and of its dead-letter queue. Streams using it, in every process,
   * end: readers fail with `ERR_BUSMQ_QUEUE_DELETED`, and so do writers at their next push. A later use
   * of the name creates a fresh queue. Resolves with whether the queue existed.
   */
  async delete (): Promise<boolean> {
    const shard = await this.observe()
    const deleted = await deleteQueue(shard, this.keys)
    debug('deleted queue %s (%d key(s))', this.name, deleted)
    return deleted > 0
  }

  /** ms until the queue expires if nobody touches it; -2 when it does not exist. */
  async ttlLeft (): Promise<number> {
    return await (await this.observe()).run((c) => c.pttl(this.keys.info))
  }

  /** Length, counters, attached clients, TTL left and shard. */
  async stats (): Promise<QueueStats> {
    const shard = await this.observe()
    const k = this.keys
    const [length, counters, inFlight, ttl, time, attachments] = await shard.run((c) => Promise.all([
      c.llen(k.messages),
      c.hmget(k.info, 'seq', 'consumed'),
      c.hlen(k.inflight),
      c.pttl(k.info),
      c.time(),
      scanFields(c, k.info, `${ATTACHMENT_FIELD_PREFIX}*`)
    ]))
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
    let clients = 0
    for (const value of attachments.values()) if (Number(value) > now) clients++
    return {
      name: this.name,
      shard: shard.id,
      length,
      pushed: Number(counters[0] ?? 0),
      consumed: Number(counters[1] ?? 0),
      inFlight,
      clients,
      ttl
    }
  }

  /** User metadata: one field, or all of them. */
  async getMeta (): Promise<Record<string, string>>
  async getMeta (field: string): Promise<string | null>
  async getMeta (field?: string): Promise<Record<string, string> | string | null> {
    const shard = await this.observe()
    if (field !== undefined) return await shard.run((c) => c.hget(this.keys.info, META_FIELD_PREFIX + field))
    const fields = await shard.run((c) => scanFields(c, this.keys.info, `${META_FIELD_PREFIX}*`))
    const out: Record<string, string> = {}
    for (const [f, v] of fields) {
      // As own properties, never through a setter: a field named __proto__ stays a plain field.
      Object.defineProperty(out, f.slice(META_FIELD_PREFIX.length), { value: v, enumerable: true, writable: true, configurable: true })
    }
    return out
  }

  /** Sets metadata fields (strings); they expire with the queue. */
  async setMeta (fields: Record<string, string | number>): Promise<void> {
    const entries = Object.entries(fields)
    if (entries.length === 0) return
    const args: Array<string | number> = []
    for (const [f, v] of entries) args.push(META_FIELD_PREFIX + f, v)
    const shard = await this.shard()
    const [, left] = await shard.run((c) => Promise.all([c.hset(this.keys.info, ...args), c.pttl(this.keys.info)]))
    // Never a shorter TTL than the queue has (another client may use a longer one).
    if (left < this.ttl) await shard.run((c) => c.pexpire(this.keys.info, this.ttl))
  }

  /** @internal Closes the handle (`bus.close()`): drops its attachments and wake-up subscription. */
  async close (): Promise<void> {
    this.wakeupsOf?.close()
    this.untrack?.()
    this.untrack = undefined
    const n = this.attachments
    this.attachments = 0
    if (n === 0 || !this.shardP) return
    const shard = await this.shardP.catch(() => undefined)
    if (shard) await Promise.allSettled(Array.from({ length: n }, () => this.bus.attachments(shard).detach(this.keys, this.ttl)))
  }
}
