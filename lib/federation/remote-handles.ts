import { Buffer } from 'buffer'
import createDebug from 'debug'
import { checkCodec, decodeMessage, jsonCodec, type Codec, type CodecOptions } from '../queue/codec.js'
import type { QueueOptions, ReadStreamOptions, WriteStreamOptions } from '../queue/queue-options.js'
import type { QueueStats } from '../queue/queue.js'
import type { ChannelOptions } from '../channel/channel-options.js'
import type { ObjectChange, ObjectOptions, SaveOptions, ChangeStreamOptions } from '../object/object-options.js'
import { DEFAULT_SERVICE_OPTIONS, type RequestOptions, type RequestStreamOptions, type ServeOptions, type ServiceOptions, type ServiceTransformOptions } from '../service/service-options.js'
import { ServiceTransform } from '../service/service-transform.js'
import { checkInt, checkDelay } from '../names.js'
import { EventEmitter } from 'events'
import { AckStream } from '../queue/ack-stream.js'
import type { Link, LinkOwner } from './link.js'
import { REPLY_EMPTY, REPLY_ERROR, REPLY_VALUE, REQUEST_ABORT, REQUEST_NO_REPLY, REQUEST_STREAMED, errorFromPayload, errorPayload } from './frame.js'
import { isStreamLike, writeReply } from '../service/stream-like.js'
import { InvalidOptionError, RequestTimeoutError, ServiceClosedError } from '../errors.js'
import { DEAD_LETTER_SUFFIX } from '../keys.js'
import type { DeadLetterRecord } from '../queue/reliable-message.js'
import type { FederationClient } from './federation-client.js'
import { AckBatcher, type SettleMode } from './ack-batcher.js'
import {
  RemoteChannel, RemoteReadStream, RemoteReplyStream, RemoteWriteStream, decoder, encodeFor, type RemoteTarget
} from './remote-streams.js'
import { Readable } from 'readable-stream'

/** What every remote handle shares: the client, and the bus's size limit. */
export interface RemoteContext {
  readonly client: FederationClient
  readonly maxMessageSize: number
  /** Throws once the bus is closed. */
  assertOpen: () => void
}

const debug = createDebug('busmq:federation')

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

  /**
   * `deadLetterOf`: for the handle `deadLetter()` returns, the name of its queue. The server knows it by
   * that name, with `deadLetter: true` in each call and stream (never by parsing `name`).
   */
  constructor (private readonly ctx: RemoteContext, name: string, private readonly options: QueueOptions = {},
    private readonly deadLetterOf?: string) {
    this.name = deadLetterOf === undefined ? name : `${deadLetterOf}${DEAD_LETTER_SUFFIX}`
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

  /** @internal The name the federation server knows the queue by (see `deadLetterOf`). */
  get wireName (): string {
    return this.deadLetterOf ?? this.name
  }

  /** A call's or stream's arguments, with `deadLetter: true` for a dead-letter queue. */
  private args (args: Record<string, unknown>): Record<string, unknown> {
    return this.deadLetterOf === undefined ? args : { ...args, deadLetter: true }
  }

  private get queueOptions (): Record<string, unknown> {
    return this.args({ ttl: this.ttl, maxLength: this.options.maxLength, overflow: this.options.overflow, retain: this.options.retain })
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
      // Acks and nacks made in the same turn of the event loop go to the server in one call.
      let acks: AckBatcher | undefined
      const settle = async (link: Link, id: number, mode: SettleMode): Promise<boolean> => {
        // `allow` sees the acks of a dead-letter queue's reader under the name it saw the stream under.
        acks ??= new AckBatcher(this.client, this.name, link.session)
        return await acks.settle(id, mode)
      }
      return new RemoteReadStream<T>(this, 'queue.read', this.args({
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
      }), (m, link) => {
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
    return new RemoteReadStream<T>(this, 'queue.read', this.args({
      mode: options.mode,
      from: options.from,
      max: options.max === Infinity ? undefined : options.max,
      untilEmpty: options.untilEmpty,
      untilEnd: options.untilEnd,
      ttl: this.ttl
    }), decoder(options.objectMode ?? this.objectMode, codec, options.withIds === true), hwm, options.mode === 'replay' ? 'replay' : 'consume')
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
    const { result } = await this.client.call('push', this.wireName, { ...this.queueOptions, producer: this.producer.id, batch }, [payload])
    return result
  }

  /** Messages waiting in the queue. */
  async count (): Promise<number> {
    return (await this.client.call('count', this.wireName, this.args({}))).result
  }

  /** True when the queue exists on the federation server's bus. */
  async exists (): Promise<boolean> {
    return (await this.client.call('exists', this.wireName, this.args({}))).result
  }

  /** The URL of the first federation server whose bus has the queue, or null. */
  async find (): Promise<string | null> {
    return await this.client.find(this.wireName, this.args({}))
  }

  /** Length, counters, attached clients, TTL left and shard, as the federation server's bus sees them. */
  async stats (): Promise<QueueStats> {
    return (await this.client.call('stats', this.wireName, this.args({}))).result
  }

  /** ms until the queue expires if nobody touches it; -2 when it does not exist. */
  async ttlLeft (): Promise<number> {
    return (await this.client.call('ttlLeft', this.wireName, this.args({}))).result
  }

  /** User metadata: one field, or all of them. */
  async getMeta (): Promise<Record<string, string>>
  async getMeta (field: string): Promise<string | null>
  async getMeta (field?: string): Promise<Record<string, string> | string | null> {
    if (field !== undefined && typeof field !== 'string') throw new InvalidOptionError('a metadata field is a string')
    return (await this.client.call('getMeta', this.wireName, this.args(field === undefined ? {} : { field }))).result
  }

  /** Sets metadata fields (strings); they expire with the queue. */
  async setMeta (fields: Record<string, string | number>): Promise<void> {
    this.ctx.assertOpen()
    if (fields === null || typeof fields !== 'object') throw new InvalidOptionError('setMeta needs an object of fields')
    if (Object.keys(fields).length === 0) return
    await this.client.call('setMeta', this.wireName, this.args({ fields, ttl: this.ttl }))
  }

  /** Deletes every waiting and in-flight message; counters and attachments stay. */
  async flush (): Promise<void> {
    await this.client.call('flush', this.wireName, this.args({}))
  }

  /** Deletes the queue on the federation server's bus (see `Queue.delete()`); resolves with whether it existed. */
  async delete (): Promise<boolean> {
    return (await this.client.call('delete', this.wireName, this.args({}), [], { retry: false })).result
  }

  /**
   * Attaches to the queue: the federation server attaches it on this client's behalf (one stream per
   * attachment) while this client is connected, and through reconnections shorter than its
   * `resumeTimeout`. `detach()` (or `bus.close()`) lets go. Resolves with true when the queue existed.
   */
  async attach (options: { ttl?: number } = {}): Promise<boolean> {
    this.ctx.assertOpen()
    if (options.ttl !== undefined) (this as { ttl?: number }).ttl = checkInt(options.ttl, 'ttl', 10)
    const kept = keepLink(this.client, 'queue.attach', this.wireName, this.args({ ttl: this.ttl }))
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

  /**
   * The queue's dead-letter queue on the federation server's bus (named `<name>:dead-letter`, as
   * `Queue.deadLetter()`). A dead-letter queue has none over federation: its `deadLetter()` throws.
   */
  deadLetter (): RemoteQueue<T> {
    if (this.deadLetterOf !== undefined) throw new InvalidOptionError('a dead-letter queue has no dead-letter queue over federation')
    return new RemoteQueue<T>(this.ctx, this.name, { ttl: this.ttl, objectMode: this.objectMode, codec: this.codec }, this.name)
  }

  /** Why message `id` of this dead-letter queue got there, and its delivery history (null when unknown). */
  async history (id: number): Promise<DeadLetterRecord | null> {
    if (!Number.isSafeInteger(id)) throw new InvalidOptionError('history needs a message id (an integer)')
    return (await this.client.call('history', this.wireName, this.args({ id }))).result
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
   * Sends a request whose reply is a stream, as `Service.requestStream()` does: a Readable of the reply's
   * chunks that ends with it, fails with `ERR_BUSMQ_REQUEST_TIMEOUT` (no chunk within `timeout` of the
   * request, or of the last chunk while the reader waits) or `ERR_BUSMQ_REMOTE` (the handler failed).
   * The reply comes as a federated stream with its own credit: a slow reader slows the server that
   * writes it (about `2 × highWaterMark` chunks wait in Redis, as many on the wire). Destroying it tells
   * the server to stop. A reply whose connection drops resumes; if the federation server lost it
   * meanwhile, it fails with `ERR_BUSMQ_FEDERATION` (the request is not sent twice).
   */
  requestStream (data: Req, options: RequestStreamOptions = {}): RemoteReadStream<Res> {
    this.ctx.assertOpen()
    const hwm = checkInt(options.highWaterMark ?? DEFAULT_SERVICE_OPTIONS.streamHighWaterMark, 'highWaterMark', 1, 100_000)
    const timeout = options.timeout === undefined ? this.timeout : checkDelay(options.timeout, 'timeout', 1)
    if (options.reliable !== undefined && typeof options.reliable !== 'boolean') throw new InvalidOptionError('reliable must be a boolean')
    const payload = encodeFor(this.ctx, data, this.objectMode, this.codec)
    return new RemoteReadStream<Res>({ name: this.name, client: this.ctx.client }, 'service.requestStream', {
      data: payload.toString('base64'), timeout, reliable: options.reliable, highWaterMark: hwm
    }, decoder(this.objectMode, this.codec, false), hwm, 'none', Math.max(4, 2 * hwm))
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
   * to `handler` here and answers with what it returns: a value, or a streamed reply (a Readable or an
   * async iterable of chunks) for a requester that called `requestStream()` (`req.streamed`). A streamed
   * reply goes as a federated stream of its own, at its requester's pace. A handler that throws (or whose
   * stream fails, after the chunks before) answers with `ERR_BUSMQ_REMOTE` at the requester. As natively,
   * the request has a `signal` (aborted at its deadline, when its streamed reply's requester went away,
   * and on `close()`) and may be answered by the handler itself with `reply()`, `replyStream()` or
   * `fail()` (it then returns nothing). `close()` stops serving.
   */
  serve (handler: RemoteServiceHandler<Req, Res>, options: ServeOptions = {}): RemoteServiceServer {
    this.ctx.assertOpen()
    if (typeof handler !== 'function') throw new InvalidOptionError('serve needs a handler function')
    return new RemoteServiceServer(this.ctx, this.name, handler, options, this.objectMode, this.codec)
  }

  /** The stream form of a server, as `Service.createServerStream()`: a Readable of requests to answer. */
  createServerStream (options: ServeOptions = {}): RemoteServiceServerStream<Req, Res> {
    this.ctx.assertOpen()
    return new RemoteServiceServerStream<Req, Res>(this.ctx, this.name, options, this.objectMode, this.codec)
  }
}

/** A request as a federated handler gets it (and a federated server stream yields): answer it once. */
export interface RemoteServiceRequest<Req = any, Res = any> {
  /** The request's number on this server (unique while it runs). */
  id: string
  data: Req
  /** When the requester stops waiting: ms since the epoch, on the federation server's clock. */
  deadline: number
  /** The requester reads a stream (`requestStream`): answer with `replyStream()`, or a value for one chunk. */
  streamed: boolean
  /** False for `service.send()`: nobody waits for a reply (what you reply is dropped). */
  replyWanted: boolean
  /**
   * Aborts when the federation server's request aborts: at the deadline (unless a streamed reply has
   * started by then), when the requester of a streamed reply went away, and when this server closes.
   */
  readonly signal: AbortSignal
  /**
   * Answers with one value; resolves once the federation server stored the reply. A second answer is
   * ignored (a handler that answered with it returns nothing).
   */
  reply: (value?: Res) => Promise<void>
  /**
   * A Writable for a streamed reply (see `RemoteReplyStream`); throws `ERR_BUSMQ_INVALID_OPTION` for a
   * request that wants one value (`request`), as natively.
   */
  replyStream: () => RemoteReplyStream<Res>
  /** Answers with an error: `ERR_BUSMQ_REMOTE` at the requester (after the chunks of a streamed reply). */
  fail: (err: unknown) => Promise<void>
}

/** What a federated handler returns: a value, or a streamed reply (a Readable or an async iterable). */
export type RemoteServiceHandler<Req = any, Res = any> = (req: RemoteServiceRequest<Req, Res>) =>
Res | undefined | void | NodeJS.ReadableStream | AsyncIterable<Res> | Promise<Res | undefined | void | NodeJS.ReadableStream | AsyncIterable<Res>>

/** A request of a federated server stream: the same as a handler's. */
export interface RemoteServerRequest<Req = any, Res = any> extends RemoteServiceRequest<Req, Res> {}

/** A request handed over by the federation server, answered through its {@link ServeLink}. */
class RemoteRequest<Req = any, Res = any> implements RemoteServiceRequest<Req, Res> {
  readonly id: string
  /** Answered (or its streamed reply made): later answers are ignored. */
  done = false
  stream?: RemoteReplyStream<Res>
  private controller?: AbortController
  private abortReason?: Error

  constructor (private readonly serving: ServeLink, readonly n: number, readonly data: Req, readonly deadline: number,
    readonly streamed: boolean, readonly replyWanted: boolean) {
    this.id = String(n)
  }

  get signal (): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.abortReason) this.controller.abort(this.abortReason)
    }
    return this.controller.signal
  }

  /** @internal Aborts `signal` (once). */
  abort (reason: Error): void {
    if (this.abortReason) return
    this.abortReason = reason
    this.controller?.abort(reason)
  }

  async reply (value?: Res): Promise<void> {
    if (this.done) return
    this.done = true
    await this.serving.reply(this.n, value)
    this.serving.settled(this)
  }

  replyStream (): RemoteReplyStream<Res> {
    if (this.stream) return this.stream
    if (!this.streamed && this.replyWanted) {
      throw new InvalidOptionError(`request ${this.id} wants one reply (service.request()): answer with a value, ` +
        'or have the requester call requestStream()')
    }
    this.done = true
    const w = this.serving.replyStream(this.n)
    this.stream = w
    // The federation server cut it (its requester went away, say): as natively, the signal aborts (the
    // server's word may come after the stream closed).
    w.once('error', (err: Error & { code?: unknown }) => { if (err.code === 'ERR_BUSMQ_FEDERATION') this.abort(err) })
    w.once('close', () => this.serving.settled(this))
    return w
  }

  async fail (err: unknown): Promise<void> {
    const e = err instanceof Error ? err : new Error(String(err))
    if (this.stream) {
      // After what was written.
      const w = this.stream
      w.fail(e)
      if (!w.closed) await new Promise((resolve) => w.once('close', resolve))
      return
    }
    if (this.done) return
    this.done = true
    await this.serving.answer(this.n, REPLY_ERROR, errorPayload(e))
    this.serving.settled(this)
  }
}

/** The reason a request's signal aborted, as the federation server sent it (`{ name, message, code }`). */
function abortReason (body: Buffer): Error {
  const err = errorFromPayload(body, 'the request was aborted')
  if (err.code === 'ERR_BUSMQ_REQUEST_TIMEOUT') return new RequestTimeoutError(err.message)
  if (err.code === 'ERR_BUSMQ_SERVICE_CLOSED') return new ServiceClosedError(err.message)
  return err
}

/**
 * The client end of a federated server (`service.serve` stream): the federation server runs a native
 * server whose requests arrive here (`onRequest`), and tells when one of them aborted; answers go back on
 * the stream (acknowledged once stored), streamed replies on streams of their own.
 */
class ServeLink {
  readonly link: Link
  private readonly target: RemoteTarget
  /** Requests handed on and not yet answered (a streamed reply: until it closed). */
  private readonly open = new Map<number, RemoteRequest>()

  constructor (private readonly ctx: RemoteContext, name: string, options: ServeOptions, objectMode: boolean, codec: Codec,
    onRequest: (req: RemoteRequest) => void, private readonly failed: (err: Error) => void) {
    this.target = { name, client: ctx.client, objectMode, codec, maxMessageSize: ctx.maxMessageSize }
    const owner: LinkOwner = {
      onData: (messages) => {
        let aborts = false
        for (const m of messages) {
          const flags = m.payload[8]
          if ((flags & REQUEST_ABORT) !== 0) {
            aborts = true
            this.open.get(m.id)?.abort(abortReason(m.payload.subarray(9)))
            continue
          }
          let data: unknown
          try {
            data = decodeMessage(m.payload.subarray(9), objectMode, codec)
          } catch (err) {
            this.answer(m.id, REPLY_ERROR, errorPayload(err as Error))
            continue
          }
          const req = new RemoteRequest(this, m.id, data, m.payload.readDoubleBE(0), (flags & REQUEST_STREAMED) !== 0,
            (flags & REQUEST_NO_REPLY) === 0)
          this.open.set(m.id, req)
          onRequest(req)
        }
        if (aborts) this.link.grant(true)
      },
      onEnd: () => {},
      onFail: (err) => {
        this.stop(err)
        failed(err)
      }
    }
    this.link = ctx.client.link('service.serve', name, {
      concurrency: options.concurrency,
      reliable: options.reliable,
      lease: options.lease,
      maxDeliveries: options.maxDeliveries,
      exposeStack: options.exposeStack
    }, owner, { bytes: 4 * 1024 * 1024, messages: 1024 })
  }

  /** Requests handed on and not yet answered. */
  get running (): number {
    return this.open.size
  }

  /** @internal `req` is answered (its reply stored, or its streamed reply closed). */
  settled (req: RemoteRequest): void {
    if (this.open.get(req.n) === req) this.open.delete(req.n)
  }

  /**
   * The server stops serving: the signals of the requests still open abort with `reason`, and what their
   * handlers answer after is ignored, as natively (the federation server answers them as it closes).
   */
  stop (reason: Error): void {
    for (const req of this.open.values()) {
      req.done = true
      req.abort(reason)
    }
    this.open.clear()
  }

  /** Stops serving (the federation server closes its server). */
  async close (): Promise<void> {
    this.stop(new ServiceClosedError(`the server of ${this.target.name} closed`))
    await this.link.finish().catch(() => {})
  }

  /** Answers request `n`: `status` and its body (see frame.ts); resolves once the federation server stored it. */
  answer (n: number, status: number, body: Buffer): Promise<void> {
    const head = Buffer.allocUnsafe(9)
    head.writeDoubleBE(n, 0)
    head[8] = status
    const sent = this.link.write([Buffer.concat([head, body])])
    this.link.grant(true)
    return sent.then(async () => await this.link.acknowledged()).catch((err: Error) => this.failed(err))
  }

  /** Answers request `n` with a value (`undefined`: no value). */
  reply (n: number, value: unknown): Promise<void> {
    if (value === undefined) return this.answer(n, REPLY_EMPTY, Buffer.alloc(0))
    let body: Buffer
    try {
      body = encodeFor(this.ctx, value, this.target.objectMode, this.target.codec)
    } catch (err) {
      return this.answer(n, REPLY_ERROR, errorPayload(err as Error))
    }
    return this.answer(n, REPLY_VALUE, body)
  }

  /** A streamed reply to request `n`, on a stream of its own. */
  replyStream (n: number): RemoteReplyStream {
    this.link.grant(true)
    const w = new RemoteReplyStream(this.target, this.link.session, n)
    // Its failures (the requester went away) reach whoever writes it.
    w.on('error', () => {})
    return w
  }

  /**
   * Writes a handler's stream of chunks as the streamed reply to `req`, at its requester's pace; a
   * request that wants one value gets the error `replyStream()` throws, as natively.
   */
  async stream (req: RemoteRequest, source: NodeJS.ReadableStream | AsyncIterable<unknown>): Promise<void> {
    let w: RemoteReplyStream
    try {
      w = req.replyStream()
    } catch (err) {
      (source as { destroy?: () => void }).destroy?.()
      await req.fail(err)
      return
    }
    await writeReply(source, w, async (err) => await req.fail(err))
  }
}

/** What `serve()` returns on a federated bus. Emits `error` when a reply cannot be sent. */
export class RemoteServiceServer extends EventEmitter {
  private readonly serving: ServeLink
  private closing?: Promise<void>

  constructor (ctx: RemoteContext, readonly name: string, handler: RemoteServiceHandler,
    options: ServeOptions, objectMode: boolean, codec: Codec) {
    super()
    const failed = (err: Error): void => { if (this.listenerCount('error') > 0) this.emit('error', err) }
    this.serving = new ServeLink(ctx, name, options, objectMode, codec, (req) => {
      Promise.resolve().then(() => handler(req)).then((value) => {
        if (isStreamLike(value)) {
          this.serving.stream(req, value).catch(failed)
          return
        }
        // A handler that answered by itself (reply(), fail(), or a replyStream() it writes) returns nothing.
        if (value === undefined && (req.done || req.stream !== undefined)) return
        req.reply(value).catch(failed)
      }, (err: Error) => { req.fail(err).catch(failed) })
    }, failed)
    this.serving.link.open().then(() => this.emit('ready'), failed)
  }

  /** Requests running now (handed to the handler and not yet answered). */
  get running (): number {
    return this.serving.running
  }

  /**
   * Stops serving: the server on the federation server closes (requests it did not start go to other
   * servers); the signals of the requests still running abort (`ERR_BUSMQ_SERVICE_CLOSED`).
   */
  close (): Promise<void> {
    this.closing ??= this.serving.close()
    return this.closing
  }
}

/**
 * The stream form of a federated server (`service.createServerStream()` on a federation-only bus): a
 * Readable of {@link RemoteServerRequest}s, each to answer with `reply()`, `replyStream()` or `fail()`.
 * The federation server takes at most `concurrency` requests unanswered. `destroy()` (or leaving a
 * `for await` loop) and `close()` stop serving; it emits `'ready'` once it takes requests.
 */
export class RemoteServiceServerStream<Req = any, Res = any> extends Readable {
  readonly name: string
  private readonly serving: ServeLink
  private closing?: Promise<void>

  /** @internal */
  constructor (ctx: RemoteContext, name: string, options: ServeOptions, objectMode: boolean, codec: Codec) {
    const concurrency = checkInt(options.concurrency ?? DEFAULT_SERVICE_OPTIONS.concurrency, 'concurrency', 1, 100_000)
    super({ objectMode: true, highWaterMark: concurrency })
    this.name = name
    this.serving = new ServeLink(ctx, name, options, objectMode, codec, (req) => { this.push(req as RemoteServerRequest<Req, Res>) }, (err) => this.destroy(err))
  }

  /** Requests taken and not yet answered (in its buffer, or handed on). */
  get running (): number {
    return this.serving.running
  }

  _construct (callback: (err?: Error | null) => void): void {
    this.serving.link.open().then(() => {
      callback()
      if (!this.destroyed) queueMicrotask(() => this.emit('ready'))
    }, (err: Error) => callback(this.destroyed ? null : err))
  }

  override _read (): void {}

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.close().finally(() => callback(err))
  }

  /** Stops serving (the federation server closes its server); idempotent. */
  close (): Promise<void> {
    this.closing ??= this.serving.close().then(() => { if (!this.destroyed) this.destroy() })
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
  if (options.reliable !== undefined && typeof options.reliable !== 'boolean') throw new InvalidOptionError('reliable must be a boolean')
  const ack = options.ack ?? 'auto'
  if (ack !== 'auto' && ack !== 'manual') throw new InvalidOptionError(`ack must be 'auto' or 'manual', got ${JSON.stringify(ack)}`)
  if (ack === 'manual' && options.reliable !== true) throw new InvalidOptionError('ack: \'manual\' needs reliable: true')
  return new RemoteChannel({
    name, client: ctx.client, objectMode: options.objectMode ?? false, codec: checkCodec(options.codec) ?? jsonCodec, maxMessageSize: ctx.maxMessageSize
  }, options)
}
