import { Buffer } from 'buffer'
import createDebug from 'debug'
import { checkCodec, decodeMessage, jsonCodec, type Codec, type CodecOptions } from '../queue/codec.js'
import type { QueueOptions, ReadStreamOptions, WriteStreamOptions } from '../queue/queue-options.js'
import type { QueueStats } from '../queue/queue.js'
import type { ChannelOptions } from '../channel/channel-options.js'
import type { ObjectChange, ObjectOptions, SaveOptions, ChangeStreamOptions } from '../object/object-options.js'
import { DEFAULT_SERVICE_OPTIONS, type RequestOptions, type ServeOptions, type ServiceOptions, type ServiceTransformOptions } from '../service/service-options.js'
import { ServiceTransform } from '../service/service-transform.js'
import { checkInt } from '../names.js'
import { EventEmitter } from 'events'
import { AckStream } from '../queue/ack-stream.js'
import type { Link, LinkOwner } from './link.js'
import { REPLY_EMPTY, REPLY_ERROR, REPLY_VALUE } from './frame.js'
import { FederationError, InvalidOptionError } from '../errors.js'
import type { FederationClient } from './federation-client.js'
import { RemoteChannel, RemoteReadStream, RemoteWriteStream, decoder, encodeFor, type RemoteTarget } from './remote-streams.js'

/** What every remote handle shares: the client, and the bus's size limit. */
export interface RemoteContext {
  readonly client: FederationClient
  readonly maxMessageSize: number
  /** Throws once the bus is closed. */
  assertOpen: () => void
}

const debug = createDebug('busmq:federation')

function unsupported (what: string): never {
  throw new FederationError(`${what} is not available over federation`)
}

/** A queue reached through federation: `bus.queue(name)` on a bus with only `federation`. */
export class RemoteQueue<T = any> implements RemoteTarget {
  readonly name: string
  readonly objectMode: boolean
  readonly codec: Codec
  readonly ttl?: number
  readonly maxLength: number
  readonly overflow: string
  readonly retain: number
  private producer?: { id: string, batch: number }
  /** One stream per attach() not yet detached. */
  private readonly attachments: Link[] = []

  constructor (private readonly ctx: RemoteContext, name: string, private readonly options: QueueOptions = {}) {
    this.name = name
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
    this.ttl = options.ttl
    this.maxLength = options.maxLength ?? 0
    this.overflow = options.overflow ?? 'wait'
    this.retain = options.retain ?? 0
  }

  get client (): FederationClient {
    return this.ctx.client
  }

  get maxMessageSize (): number {
    return this.ctx.maxMessageSize
  }

  private get queueOptions (): Record<string, unknown> {
    return { ttl: this.ttl, maxLength: this.options.maxLength, overflow: this.options.overflow, retain: this.options.retain }
  }

  /** A Writable producer over federation: each chunk is one message; `'finish'` once all are stored. */
  createWriteStream (options: WriteStreamOptions = {}): RemoteWriteStream<T> {
    this.ctx.assertOpen()
    return new RemoteWriteStream<T>(this, 'queue.write', {
      ...this.queueOptions, producer: this.client.producerId(), endMarker: options.endMarker === true
    }, options)
  }

  /** A Readable consumer over federation (consume-once or replay; see `ReadStreamOptions`). */
  createReadStream (options: ReadStreamOptions = {}): RemoteReadStream<T> {
    this.ctx.assertOpen()
    const codec = checkCodec(options.codec) ?? this.codec
    const hwm = options.highWaterMark ?? 256
    if (!Number.isSafeInteger(hwm) || hwm < 1) throw new InvalidOptionError('highWaterMark must be a positive integer')
    if (options.mode === 'reliable') {
      const objectMode = options.objectMode ?? this.objectMode
      const client = this.client
      const name = this.name
      const settle = async (link: Link, id: number, mode: string): Promise<boolean> =>
        (await client.call('reliable.ack', name, { session: link.session, id, mode })).result
      return new RemoteReadStream<T>(this, 'queue.read', {
        mode: 'reliable',
        lease: options.lease,
        maxDeliveries: options.maxDeliveries,
        prefetch: options.prefetch,
        after: options.after,
        max: options.max === Infinity ? undefined : options.max,
        untilEmpty: options.untilEmpty,
        untilEnd: options.untilEnd,
        ttl: this.ttl,
        highWaterMark: hwm
      }, (m, link) => {
        const deliveries = m.payload.readUInt32BE(0)
        return {
          id: m.id,
          data: decodeMessage(m.payload.subarray(4), objectMode, codec),
          deliveries,
          redelivered: deliveries > 1,
          ack: async () => await settle(link, m.id, 'ack'),
          nack: async (o: { deadLetter?: boolean } = {}) => { await settle(link, m.id, o.deadLetter === true ? 'dead' : 'nack') }
        }
      }, hwm)
    }
    return new RemoteReadStream<T>(this, 'queue.read', {
      mode: options.mode,
      from: options.from,
      max: options.max === Infinity ? undefined : options.max,
      untilEmpty: options.untilEmpty,
      untilEnd: options.untilEnd,
      ttl: this.ttl
    }, decoder(options.objectMode ?? this.objectMode, codec, options.withIds === true), hwm, options.mode === 'replay' ? 'replay' : 'consume')
  }

  /** A Writable that acks the reliable messages written to it (as `Queue.createAckStream()`). */
  createAckStream (): AckStream {
    return new AckStream()
  }

  /** Pushes one message; resolves with its id once stored (sent again after a reconnection, stored once). */
  async push (message: T): Promise<number | null> {
    this.ctx.assertOpen()
    const payload = encodeFor(this, message, this.objectMode, this.codec)
    this.producer ??= { id: this.client.producerId(), batch: 0 }
    const batch = ++this.producer.batch
    const { result } = await this.client.call('push', this.name, { ...this.queueOptions, producer: this.producer.id, batch }, [payload])
    return result
  }

  /** Messages waiting in the queue. */
  async count (): Promise<number> {
    return (await this.client.call('count', this.name, {})).result
  }

  /** True when the queue exists on the federation server's bus. */
  async exists (): Promise<boolean> {
    return (await this.client.call('exists', this.name, {})).result
  }

  /** The URL of the first federation server whose bus has the queue, or null. */
  async find (): Promise<string | null> {
    return await this.client.find(this.name)
  }

  /** Length, counters, attached clients, TTL left and shard, as the federation server's bus sees them. */
  async stats (): Promise<QueueStats> {
    return (await this.client.call('stats', this.name, {})).result
  }

  /** ms until the queue expires if nobody touches it; -2 when it does not exist. */
  async ttlLeft (): Promise<number> {
    return (await this.client.call('ttlLeft', this.name, {})).result
  }

  /** User metadata: one field, or all of them. */
  async getMeta (): Promise<Record<string, string>>
  async getMeta (field: string): Promise<string | null>
  async getMeta (field?: string): Promise<Record<string, string> | string | null> {
    if (field !== undefined && typeof field !== 'string') throw new InvalidOptionError('a metadata field is a string')
    return (await this.client.call('getMeta', this.name, field === undefined ? {} : { field })).result
  }

  /** Sets metadata fields (strings); they expire with the queue. */
  async setMeta (fields: Record<string, string | number>): Promise<void> {
    this.ctx.assertOpen()
    if (fields === null || typeof fields !== 'object') throw new InvalidOptionError('setMeta needs an object of fields')
    if (Object.keys(fields).length === 0) return
    await this.client.call('setMeta', this.name, { fields, ttl: this.ttl })
  }

  /** Deletes every waiting and in-flight message; counters and attachments stay. */
  async flush (): Promise<void> {
    await this.client.call('flush', this.name, {})
  }

  /** Deletes the queue on the federation server's bus (see `Queue.delete()`); resolves with whether it existed. */
  async delete (): Promise<boolean> {
    return (await this.client.call('delete', this.name, {}, [], { retry: false })).result
  }

  /**
   * Attaches to the queue: the federation server attaches it on this client's behalf (one stream per
   * attachment) while this client is connected, and through reconnections shorter than its
   * `resumeTimeout`. `detach()` (or `bus.close()`) lets go. Resolves with true when the queue existed.
   */
  async attach (options: { ttl?: number } = {}): Promise<boolean> {
    this.ctx.assertOpen()
    if (options.ttl !== undefined) (this as { ttl?: number }).ttl = checkInt(options.ttl, 'ttl', 10)
    const kept = keepLink(this.client, 'queue.attach', this.name, { ttl: this.ttl })
    this.attachments.push(kept.link)
    try {
      return await kept.existed
    } catch (err) {
      this.attachments.splice(this.attachments.indexOf(kept.link), 1)
      throw err
    }
  }

  /** Drops one attachment; when none is left, the queue expires `ttl` ms later unless used again. */
  async detach (): Promise<void> {
    await this.attachments.pop()?.finish()
  }

  /** Drops every attachment of this handle. */
  async close (): Promise<void> {
    await Promise.allSettled(this.attachments.splice(0).map(async (link) => await link.finish()))
  }
}

/**
 * A stream that keeps `name` alive on the federation server while it is open (`queue.attach`,
 * `object.keep`); `existed`: the server's one message (whether the thing existed). `finish()` lets go.
 */
function keepLink (client: FederationClient, op: string, name: string, options: Record<string, unknown>): { link: Link, existed: Promise<boolean> } {
  let settle!: { resolve: (existed: boolean) => void, reject: (err: Error) => void }
  const existed = new Promise<boolean>((resolve, reject) => { settle = { resolve, reject } })
  existed.catch(() => {})
  const link = client.link(op, name, options, {
    onData: (messages) => settle.resolve(messages[0]?.payload[0] === 1),
    onEnd: () => {},
    onFail: (err) => settle.reject(err)
  }, { bytes: 64 * 1024, messages: 16 })
  link.open().catch(settle.reject)
  return { link, existed }
}

/** Plain publish/subscribe through federation. */
export class RemotePubSub<T = any> implements RemoteTarget {
  readonly objectMode: boolean
  readonly codec: Codec

  constructor (private readonly ctx: RemoteContext, readonly name: string, options: CodecOptions = {}) {
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
  }

  get client (): FederationClient {
    return this.ctx.client
  }

  get maxMessageSize (): number {
    return this.ctx.maxMessageSize
  }

  /** Publishes one message; resolves with the number of subscribers (connections) that received it. */
  async publish (message: T): Promise<number> {
    this.ctx.assertOpen()
    const payload = encodeFor(this, message, this.objectMode, this.codec)
    return (await this.client.call('publish', this.name, {}, [payload], { retry: false })).result
  }

  createReadStream (options: { highWaterMark?: number } = {}): RemoteReadStream<T> {
    this.ctx.assertOpen()
    return new RemoteReadStream<T>(this, 'pubsub.read', {}, decoder(this.objectMode, this.codec, false), options.highWaterMark ?? 1024)
  }

  createWriteStream (options: { highWaterMark?: number } = {}): RemoteWriteStream<T> {
    this.ctx.assertOpen()
    return new RemoteWriteStream<T>(this, 'pubsub.write', {}, { highWaterMark: options.highWaterMark })
  }
}

/** A service reached through federation: requests (serving is done on a bus with Redis). */
export class RemoteService<Req = any, Res = any> {
  readonly objectMode: boolean
  readonly codec: Codec
  private readonly timeout?: number

  constructor (private readonly ctx: RemoteContext, readonly name: string, options: ServiceOptions = {}) {
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
    this.timeout = options.timeout
  }

  /**
   * Sends a request and resolves with its reply, as `Service.request()` does (`ERR_BUSMQ_REQUEST_TIMEOUT`,
   * `ERR_BUSMQ_REMOTE`, …). A request whose connection drops fails with `ERR_BUSMQ_FEDERATION` (it is
   * not sent twice).
   */
  async request (data: Req, options: RequestOptions = {}): Promise<Res> {
    this.ctx.assertOpen()
    const payload = encodeFor(this.ctx, data, this.objectMode, this.codec)
    const { payloads } = await this.ctx.client.call('request', this.name, {
      timeout: options.timeout ?? this.timeout, reliable: options.reliable
    }, [payload], { retry: false })
    return decodeMessage(payloads[0], this.objectMode, this.codec) as Res
  }

  /**
   * Sends a request that wants no reply, as `Service.send()` does: resolves once the federation server's
   * bus stored it. A request whose connection drops fails with `ERR_BUSMQ_FEDERATION` (not sent twice).
   */
  async send (data: Req, options: RequestOptions = {}): Promise<void> {
    this.ctx.assertOpen()
    const payload = encodeFor(this.ctx, data, this.objectMode, this.codec)
    await this.ctx.client.call('send', this.name, {
      timeout: options.timeout ?? this.timeout, reliable: options.reliable
    }, [payload], { retry: false })
  }

  /**
   * A Transform of requests into replies, as `Service.createTransform()`: at most `concurrency` requests
   * in flight, replies in request order unless `ordered: false`.
   */
  createTransform (options: ServiceTransformOptions = {}): ServiceTransform {
    this.ctx.assertOpen()
    const concurrency = checkInt(options.concurrency ?? DEFAULT_SERVICE_OPTIONS.concurrency, 'concurrency', 1, 100_000)
    if (options.ordered !== undefined && typeof options.ordered !== 'boolean') throw new InvalidOptionError('ordered must be a boolean')
    const ordered = options.ordered ?? DEFAULT_SERVICE_OPTIONS.ordered
    const call: RequestOptions = { timeout: options.timeout, reliable: options.reliable }
    return new ServiceTransform((chunk) => this.request(chunk as Req, call), { concurrency, ordered })
  }

  /**
   * Serves the service from this federated bus: the federation server runs a server (with these
   * options: `concurrency`, `reliable`, `lease`, `maxDeliveries`, `exposeStack`) that hands each request
   * to `handler` here and answers with what it returns (a value; streamed replies need a bus with Redis).
   * A handler that throws answers with `ERR_BUSMQ_REMOTE` at the requester. `close()` stops serving.
   */
  serve (handler: (req: { id: string, data: Req, deadline: number }) => Res | undefined | Promise<Res | undefined>, options: ServeOptions = {}): RemoteServiceServer {
    this.ctx.assertOpen()
    if (typeof handler !== 'function') throw new InvalidOptionError('serve needs a handler function')
    return new RemoteServiceServer(this.ctx, this.name, handler, options, this.objectMode, this.codec)
  }
}

/** What `serve()` returns on a federated bus. Emits `error` when a reply cannot be sent. */
export class RemoteServiceServer extends EventEmitter {
  private readonly link: Link
  private closing?: Promise<void>

  constructor (ctx: RemoteContext, readonly name: string, handler: (req: { id: string, data: any, deadline: number }) => unknown,
    options: ServeOptions, objectMode: boolean, codec: Codec) {
    super()
    const reply = (n: number, status: number, body: Buffer): void => {
      const head = Buffer.allocUnsafe(9)
      head.writeDoubleBE(n, 0)
      head[8] = status
      this.link.write([Buffer.concat([head, body])]).catch((err: Error) => { if (this.listenerCount('error') > 0) this.emit('error', err) })
      this.link.grant(true)
    }
    const owner: LinkOwner = {
      onData: (messages) => {
        for (const m of messages) {
          const n = m.id
          Promise.resolve().then(() => handler({
            id: String(n), deadline: m.payload.readDoubleBE(0), data: decodeMessage(m.payload.subarray(8), objectMode, codec)
          })).then((value) => {
            if (value === undefined) reply(n, REPLY_EMPTY, Buffer.alloc(0))
            else reply(n, REPLY_VALUE, encodeFor(ctx, value, objectMode, codec))
          }, (err: Error & { code?: unknown }) => {
            reply(n, REPLY_ERROR, Buffer.from(JSON.stringify({
              name: err?.name ?? 'Error', message: err?.message ?? String(err), code: typeof err?.code === 'string' ? err.code : undefined
            })))
          })
        }
      },
      onEnd: () => {},
      onFail: (err) => { if (this.listenerCount('error') > 0) this.emit('error', err) }
    }
    this.link = ctx.client.link('service.serve', name, {
      concurrency: options.concurrency,
      reliable: options.reliable,
      lease: options.lease,
      maxDeliveries: options.maxDeliveries,
      exposeStack: options.exposeStack
    }, owner, { bytes: 4 * 1024 * 1024, messages: 1024 })
    this.link.open().then(() => this.emit('ready'), (err: Error) => { if (this.listenerCount('error') > 0) this.emit('error', err) })
  }

  /** Stops serving: the server on the federation server closes (requests it did not start go to other servers). */
  close (): Promise<void> {
    this.closing ??= this.link.finish().catch(() => {})
    return this.closing
  }
}

/** A persisted object through federation: `load`, `set`, `unset`, `save`, change streams. */
export class RemoteObject<T extends Record<string, any> = Record<string, any>> {
  /** The version of the last `load()` or `save()` of this handle (0 before). */
  version = 0
  readonly codec: Codec
  private readonly ttl?: number
  private readonly changes = new Map<string, { value?: unknown, unset: boolean }>()
  private saving: Promise<unknown> = Promise.resolve()
  /** The stream of keepAlive(), until release(). */
  private kept?: Link

  constructor (private readonly ctx: RemoteContext, readonly name: string, options: ObjectOptions = {}) {
    this.codec = checkCodec(options.codec) ?? jsonCodec
    this.ttl = options.ttl
  }

  /** Every stored field, or null when the object does not exist. */
  async load (): Promise<Partial<T> | null> {
    this.ctx.assertOpen()
    const { result, payloads } = await this.ctx.client.call('object.load', this.name, { ttl: this.ttl })
    this.version = result.version
    if (result.fields === null) return null
    const out: Record<string, unknown> = {}
    ;(result.fields as string[]).forEach((k, i) => Object.defineProperty(out, k, {
      value: decodeMessage(payloads[i], true, this.codec), enumerable: true, writable: true, configurable: true
    }))
    return out as Partial<T>
  }

  set (fields: Partial<T>): this {
    for (const [k, v] of Object.entries(fields)) this.changes.set(k, { value: v, unset: false })
    return this
  }

  unset (...fields: Array<keyof T & string>): this {
    for (const k of fields) this.changes.set(k, { unset: true })
    return this
  }

  discard (): void {
    this.changes.clear()
  }

  /** Writes the pending changes, all or nothing; resolves with the new version (see `PersistedObject.save`). */
  save (options: SaveOptions = {}): Promise<number> {
    const run = this.saving.then(async () => {
      this.ctx.assertOpen()
      const set: string[] = []
      const unset: string[] = []
      const payloads: Buffer[] = []
      const sent = new Map(this.changes)
      for (const [k, c] of sent) {
        if (c.unset) unset.push(k)
        else {
          set.push(k)
          payloads.push(encodeFor(this.ctx, c.value, true, this.codec))
        }
      }
      const { result } = await this.ctx.client.call('object.save', this.name, { ttl: this.ttl, set, unset, ifVersion: options.ifVersion }, payloads, { retry: false })
      for (const [k, c] of sent) if (this.changes.get(k) === c) this.changes.delete(k)
      this.version = result
      return result as number
    })
    this.saving = run.catch(() => {})
    return run
  }

  async exists (): Promise<boolean> {
    return (await this.ctx.client.call('object.exists', this.name, {})).result
  }

  /**
   * Keeps the object alive (see `PersistedObject.keepAlive()`): the federation server keeps it alive on
   * this client's behalf while this client is connected, and through reconnections shorter than its
   * `resumeTimeout`. Until `release()` or `bus.close()`.
   */
  keepAlive (): void {
    if (this.kept) return
    this.ctx.assertOpen()
    const kept = keepLink(this.ctx.client, 'object.keep', this.name, { ttl: this.ttl })
    kept.existed.catch((err: Error) => debug('object %s: keepAlive() failed: %s', this.name, err.message))
    this.kept = kept.link
  }

  /** Stops keeping the object alive: it expires `ttl` ms from now unless saved or kept alive again. */
  release (): void {
    const link = this.kept
    this.kept = undefined
    link?.finish().catch((err: Error) => debug('object %s: release failed: %s', this.name, err.message))
  }

  async delete (): Promise<boolean> {
    return (await this.ctx.client.call('object.delete', this.name, {}, [], { retry: false })).result
  }

  /** A Readable of the object's saves (see `PersistedObject.createChangeStream`). */
  createChangeStream (options: ChangeStreamOptions = {}): RemoteReadStream<ObjectChange<T>> {
    this.ctx.assertOpen()
    const codec = this.codec
    return new RemoteReadStream({ name: this.name, client: this.ctx.client }, 'object.changes', {
      ttl: this.ttl, after: options.after ?? (this.version > 0 ? this.version : undefined)
    }, (m) => {
      const c = JSON.parse(m.payload.toString('utf8'))
      const fields: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(c.fields as Record<string, string>)) {
        Object.defineProperty(fields, k, { value: decodeMessage(Buffer.from(v, 'base64'), true, codec), enumerable: true, writable: true, configurable: true })
      }
      return { version: c.version, fields, deleted: c.deleted, resync: c.resync }
    }, options.highWaterMark ?? 100)
  }
}

/** `channel()` over federation. */
export function remoteChannel (ctx: RemoteContext, name: string, options: ChannelOptions = {}): RemoteChannel {
  ctx.assertOpen()
  if (options.reliable === true) unsupported('a reliable channel')
  return new RemoteChannel({
    name, client: ctx.client, objectMode: options.objectMode ?? false, codec: checkCodec(options.codec) ?? jsonCodec, maxMessageSize: ctx.maxMessageSize
  }, options)
}
