import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { Shard } from '../router/shard.js'
import { QueueKeys } from '../keys.js'
import { checkInt } from '../names.js'
import { BusClosedError, EncodeError, MessageTooLargeError, ReplicationError } from '../errors.js'
import { batches, sleep } from '../util.js'
import { checkCodec, encodeMessage, jsonCodec, type Codec } from './codec.js'
import { KIND_DATA, encodeElements } from './element.js'
import type { QueueOptions, ReadStreamOptions, WriteStreamOptions } from './queue-options.js'
import { QueueWriteStream } from './queue-write-stream.js'
import { QueueReadStream, type IdentifiedMessage } from './queue-read-stream.js'
import { ReliableReadStream } from './reliable-read-stream.js'
import { AckStream } from './ack-stream.js'
import type { DeadLetterRecord } from './reliable-message.js'
import type { MessageInput } from './message.js'

const debug = createDebug('busmq:queue')

/** Largest script call a producer sends: messages and bytes per round trip. */
const MAX_BATCH_COUNT = 1000
const MAX_BATCH_BYTES = 4 * 1024 * 1024

type WakeKind = 'm' | 'r'

let handles = 0
/**
 * Random id of this process's producers, followed by a handle number: short, because it is stored (as a
 * field of each queue's info hash) for every queue pushed to. 60 bits: the chance that two of a thousand
 * processes share one is about 1 in 2 billion.
 */
const processId = randomBytes(8).toString('base64url').slice(0, 10) + '.'

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
 * A handle on one queue. Cheap to create; it reaches Redis only when used. Streams made from it keep the
 * queue attached while they are open. `T` is the type of its messages as readers see them: a Buffer in
 * byte mode, the decoded value in objectMode (see lib/queue/message.ts; types only).
 */
export class Queue<T = any> extends EventEmitter {
  readonly name: string
  readonly bus: Bus
  readonly keys: QueueKeys
  /** Idle TTL in ms. */
  readonly ttl: number
  readonly maxLength: number
  readonly retain: number
  readonly objectMode: boolean
  readonly codec: Codec
  private shardP?: Promise<Shard>
  private shardResolved?: Shard
  private subscribed?: Promise<void>
  private readonly gen: Record<WakeKind, number> = { m: 0, r: 0 }
  private readonly waiters = new Set<{ kind: WakeKind, wake: () => void }>()
  private attachments = 0
  /** Identity of this handle's pushes in the queue's info hash (field p<id>), and its last batch number. */
  private readonly producerId: string
  private batchNo = 0
  private heartbeat?: NodeJS.Timeout
  private untrack?: () => void
  private readonly onWake = (message: string): void => {
    if (message === 'm' || message === 'reconnect') this.bump('m')
    if (message === 'r' || message === 'reconnect') this.bump('r')
  }

  /** A dead-letter queue's queue: they share a hash slot, so they always live on one shard. */
  private readonly parent?: Queue

  constructor (bus: Bus, name: string, options: QueueOptions = {}, parent?: Queue) {
    super()
    this.bus = bus
    this.name = name
    this.parent = parent
    this.producerId = `${processId}${(++handles).toString(36)}`
    this.keys = parent ? parent.keys.deadLetter() : QueueKeys.forQueue(bus.settings.prefix, name)
    this.ttl = checkInt(options.ttl ?? bus.settings.ttl, 'ttl', 10)
    this.maxLength = checkInt(options.maxLength ?? 0, 'maxLength', 0)
    this.retain = checkInt(options.retain ?? 0, 'retain', 0)
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
  }

  /** The shard holding this queue (resolved once per handle; see "Sharding" in the README). */
  shard (): Promise<Shard> {
    this.shardP ??= (this.parent ? this.parent.shard() : this.bus.locate(this.name, this.keys)).then((s) => {
      this.shardResolved = s
      debug('queue %s on shard %s', this.name, s.id)
      return s
    }, (err) => {
      this.shardP = undefined
      throw err
    })
    return this.shardP
  }

  /** @internal Resolves the shard and subscribes to wake-ups (once). */
  async open (): Promise<Shard> {
    const shard = await this.shard()
    this.untrack ??= this.bus.track(this)
    this.subscribed ??= shard.subscribe(this.keys.wake, this.onWake).catch((err) => {
      this.subscribed = undefined
      throw err
    })
    await this.subscribed
    return shard
  }

  private bump (kind: WakeKind): void {
    this.gen[kind]++
    for (const w of this.waiters) if (w.kind === kind) w.wake()
  }

  /** @internal Wakes everything waiting on this handle (closing). */
  wakeAll (): void {
    for (const w of this.waiters) w.wake()
  }

  /** @internal Current wake-up generation; read it before a Redis call that may find nothing. */
  generation (kind: WakeKind): number {
    return this.gen[kind]
  }

  /**
   * @internal Waits until a wake-up of `kind` arrives after generation `since`, the poll interval passes
   * (covering a lost wake-up), or `signal` aborts.
   */
  async waitFor (kind: WakeKind, since: number, signal?: AbortSignal): Promise<void> {
    if (this.gen[kind] !== since || signal?.aborted) return
    const ac = new AbortController()
    const w = { kind, wake: () => ac.abort() }
    const onAbort = (): void => ac.abort()
    signal?.addEventListener('abort', onAbort, { once: true })
    this.waiters.add(w)
    try {
      await sleep(this.bus.settings.pollInterval, ac.signal)
    } finally {
      this.waiters.delete(w)
      signal?.removeEventListener('abort', onAbort)
    }
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
   * @internal Appends encoded payloads in order and resolves with the id of the first once Redis has
   * accepted all of them. With `maxLength`, waits for room as often as needed.
   */
  async pushRaw (payloads: Buffer[], kind = KIND_DATA): Promise<number> {
    const shard = this.maxLength > 0 ? await this.open() : await this.shard()
    const parts = batches(payloads, MAX_BATCH_COUNT, MAX_BATCH_BYTES).map((part) => encodeElements(part, kind))
    if (this.maxLength === 0) {
      // Unbounded: every batch is accepted whole, so they can all be in flight at once.
      const seqs = await Promise.all(parts.map((part) => this.append(shard, part)))
      return seqs[0] - parts[0].length + 1
    }
    return await this.pushBounded(shard, parts)
  }

  /** Bounded: a batch may be accepted in part; send in order and wait for room in between. */
  private async pushBounded (shard: Shard, parts: Buffer[][]): Promise<number> {
    let firstId = 0
    for (const part of parts) {
      let rest = part
      for (;;) {
        const since = this.gen.r
        const generation = shard.connectionGeneration
        const [n, seq] = await this.pushScript(shard, this.maxLength, rest)
        if (n > 0) {
          await this.replicate(shard, generation)
          if (firstId === 0) firstId = seq - n + 1
        }
        rest = rest.slice(n)
        if (rest.length === 0) break
        if (this.bus.closed) {
          throw new BusClosedError(`the bus closed while ${rest.length} message(s) waited for room in ${this.name}`)
        }
        await this.waitFor('r', since)
      }
    }
    return firstId
  }

  /** Unbounded push of one batch; resolves with `seq` after it. */
  private async append (shard: Shard, elements: Buffer[]): Promise<number> {
    const generation = shard.connectionGeneration
    const [, seq] = await this.pushScript(shard, 0, elements)
    await this.replicate(shard, generation)
    return seq
  }

  /**
   * One call of the push script (lib/scripts/push-4.lua). Each call carries this handle's producer id
   * and the next batch number, so a call ioredis re-sends after a reconnection is not stored twice.
   * Plain RPUSH in a MULTI would save Redis one copy of each payload, but could not be made idempotent.
   */
  private pushScript (shard: Shard, maxLength: number, elements: Buffer[]): Promise<[number, number]> {
    const k = this.keys
    return shard.script('busmq_push', [k.messages, k.info, k.waiters, k.room,
      this.ttl, maxLength, this.retain, k.wake, this.producerId, ++this.batchNo, ...elements],
    shard.commandTimeout, true)
  }

  /** With the bus option `replicas`, waits until that many replicas have what this connection wrote. */
  private async replicate (shard: Shard, generation: number): Promise<void> {
    const { replicas, replicasTimeout } = this.bus.settings
    if (replicas === 0) return
    const acked = await shard.run((c) => c.wait(replicas, replicasTimeout))
    // WAIT counts replicas that have this connection's writes. If the connection changed since the push
    // (a failover), a re-sent WAIT would count the new primary's replicas, which prove nothing.
    if (shard.connectionGeneration !== generation) {
      throw new ReplicationError(`the connection to ${shard.id} changed during a push to ${this.name}: ` +
        'its replication cannot be confirmed (the message may or may not be stored)')
    }
    if (acked < replicas) {
      throw new ReplicationError(`only ${acked} of ${replicas} replica(s) confirmed a push to ${this.name} ` +
        `within ${replicasTimeout} ms (the primary has it)`)
    }
  }

  /** Pushes one message; resolves with its id once Redis has accepted it. */
  async push (message: MessageInput<T>): Promise<number> {
    return await this.pushRaw([this.encode(message)])
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
    const json = await (await this.shard()).run((c) => c.hget(this.keys.history, String(id)))
    return json === null ? null : JSON.parse(json)
  }

  /** The queue's dead-letter queue: an ordinary queue in the same hash slot. */
  deadLetter (): Queue<T> {
    return new Queue(this.bus, `${this.name}:dead-letter`, { ttl: this.ttl, objectMode: this.objectMode, codec: this.codec },
      this)
  }

  /**
   * Attaches this client to the queue: while attached, the queue and its keys do not expire. Streams
   * attach by themselves. `ttl` replaces the idle TTL for this handle.
   */
  async attach (options: { ttl?: number } = {}): Promise<void> {
    if (options.ttl !== undefined) (this as { ttl: number }).ttl = checkInt(options.ttl, 'ttl', 10)
    await this.open()
    this.attachments++
    if (this.attachments === 1) {
      await this.beat(true)
      this.heartbeat = setInterval(() => {
        this.beat(true).catch((err) => debug('heartbeat of %s failed: %s', this.name, err.message))
      }, Math.max(5, Math.floor(this.ttl / 3)))
      this.heartbeat.unref()
    }
  }

  /** Drops one attachment; when none is left, the queue expires `ttl` ms later unless used again. */
  async detach (): Promise<void> {
    if (this.attachments === 0) return
    this.attachments--
    if (this.attachments > 0) return
    clearInterval(this.heartbeat)
    this.heartbeat = undefined
    await this.beat(false)
    // Nothing of this handle is open any more: drop the wake-up subscription too (a later stream
    // opens it again).
    if (this.attachments === 0) await this.release()
  }

  private async beat (attach: boolean): Promise<number> {
    const shard = await this.shard()
    return await shard.script('busmq_attach', [...this.keys.attachKeys(), this.bus.settings.id, this.ttl, attach ? 1 : 0])
  }

  /** Messages waiting in the queue. */
  async count (): Promise<number> {
    return await (await this.shard()).run((c) => c.llen(this.keys.messages))
  }

  /** True when any key of the queue exists (it was used and has not expired). */
  async exists (): Promise<boolean> {
    const k = this.keys
    return (await (await this.shard()).run((c) => c.exists(k.info, k.messages, k.clients, k.inflight))) > 0
  }

  /** Deletes every waiting and in-flight message; counters and attachments stay. */
  async flush (): Promise<void> {
    const k = this.keys
    await (await this.shard()).run((c) => c.del(k.messages, k.inflight, k.leases, k.deliveries, k.owners))
  }

  /** ms until the queue expires if nobody touches it; -2 when it does not exist. */
  async ttlLeft (): Promise<number> {
    return await (await this.shard()).run((c) => c.pttl(this.keys.info))
  }

  /** Length, counters, attached clients, TTL left and shard. */
  async stats (): Promise<QueueStats> {
    const shard = await this.shard()
    const k = this.keys
    const [length, info, inFlight, clients, ttl] = await shard.run((c) => Promise.all([
      c.llen(k.messages),
      c.hmget(k.info, 'seq', 'consumed'),
      c.hlen(k.inflight),
      c.zcount(k.clients, Date.now(), '+inf'),
      c.pttl(k.info)
    ]))
    return {
      name: this.name,
      shard: shard.id,
      length,
      pushed: Number(info[0] ?? 0),
      consumed: Number(info[1] ?? 0),
      inFlight,
      clients,
      ttl
    }
  }

  /** User metadata: one field, or all of them. */
  async getMeta (): Promise<Record<string, string>>
  async getMeta (field: string): Promise<string | null>
  async getMeta (field?: string): Promise<Record<string, string> | string | null> {
    const shard = await this.shard()
    if (field === undefined) return await shard.run((c) => c.hgetall(this.keys.meta))
    return await shard.run((c) => c.hget(this.keys.meta, field))
  }

  /** Sets metadata fields (strings); they expire with the queue. */
  async setMeta (fields: Record<string, string | number>): Promise<void> {
    await (await this.shard()).run((c) => c.multi().hset(this.keys.meta, fields).pexpire(this.keys.meta, this.ttl).exec())
  }

  private async release (): Promise<void> {
    this.untrack?.()
    this.untrack = undefined
    if (this.subscribed && this.shardResolved) {
      this.subscribed = undefined
      await this.shardResolved.unsubscribe(this.keys.wake, this.onWake)
    }
  }

  /** @internal Closes the handle (`bus.close()`): drops attachments and the wake-up subscription. */
  async close (): Promise<void> {
    this.wakeAll()
    if (this.attachments > 0) {
      this.attachments = 1
      await this.detach().catch(() => {})
    }
    await this.release()
  }
}
