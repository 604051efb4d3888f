import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { Shard } from '../router/shard.js'
import { Queue } from '../queue/queue.js'
import { checkCodec, encodeValue, jsonCodec, type Codec } from '../queue/codec.js'
import type { MessageInput } from '../queue/message.js'
import { PRODUCER_FIELD_PREFIX, ServiceKeys, replyStreamKeys } from '../keys.js'
import { checkInt, checkDelay } from '../names.js'
import { InvalidOptionError, MessageTooLargeError } from '../errors.js'
import { decodeMessage } from '../queue/codec.js'
import { FLAG_REPLY, FLAG_STREAM, correlationId, encodeRequest, payloadLength, type Payload } from './envelope.js'
import { PushBatcher } from './push-batcher.js'
import { ReplyRouter } from './reply-router.js'
import { clockOffset, knownClockOffset } from './shard-clock.js'
import { ServiceServer, type ServiceHandler } from './service-server.js'
import { ServiceServerStream } from './service-server-stream.js'
import { ServiceReplyReader } from './service-reply-reader.js'
import { ServiceTransform } from './service-transform.js'
import type { IntakeSettings } from './request-intake.js'
import type { ServiceCounters } from '../metrics/service-counters.js'
import { serviceStats } from './server-status.js'
import {
  DEFAULT_SERVICE_OPTIONS, type RequestOptions, type RequestStreamOptions, type ServeOptions, type ServiceOptions,
  type ServiceTransformOptions
} from './service-options.js'

const debug = createDebug('busmq:service')

/** Room left in `maxMessageSize` for a request's or reply's envelope (see envelope.ts). */
const ENVELOPE_ROOM = 128

/** What `service.stats()` reports. */
export interface ServiceStats {
  name: string
  /** The shard holding the service's keys. */
  shard: string
  /** Servers announced (alive: they refresh their entry every `ttl / 3`). */
  servers: number
  /** Of those, the ones taking reliable requests. */
  reliableServers: number
  /** Requests the servers are running (taken, not yet answered), as they last told (within ~200 ms). */
  running: number
  /** Sum of the servers' `concurrency`. */
  concurrency: number
  /** Requests waiting to be taken (plain and reliable). */
  waiting: number
  /** Of those, the reliable ones (taken only by reliable servers). */
  waitingReliable: number
  /**
   * Median and 99th percentile (ms) of how long the servers took to answer the requests they finished
   * recently (over their last one or two heartbeats, `ttl / 3` each); undefined when none finished.
   */
  p50?: number
  p99?: number
  /** ms until the service's keys expire if nobody uses them; -2 when none exists. */
  ttl: number
}

/**
 * A handle on a service: request/response over the bus. Cheap to create (like `bus.queue()`); it reaches
 * Redis only when used. Any number of servers (`serve`, `createServerStream`), in any number of
 * processes, take the requests, each request exactly one of them; any number of requesters send them
 * (`request`, `requestStream`, `send`, `createTransform`). `Req` is the type of requests, `Res` of
 * replies: values in objectMode, Buffers in byte mode.
 */
export class Service<Req = any, Res = any> {
  readonly name: string
  /** @internal */
  readonly bus: Bus
  /** @internal */
  readonly keys: ServiceKeys
  readonly objectMode: boolean
  readonly codec: Codec
  /** Idle TTL of the service's keys, ms. */
  readonly ttl: number
  /** Default request timeout, ms. */
  readonly timeout: number
  /** Default of `reliable` for this handle's servers and requests. */
  readonly reliable: boolean
  private shardP?: Promise<Shard>
  /** The shard, once located (requests then go out without waiting for anything). */
  private located?: Shard
  private readonly what: string
  private readonly queues: Array<Queue | undefined> = [undefined, undefined]
  private readonly batchers: Array<PushBatcher | undefined> = [undefined, undefined]
  /** The producers of this handle's requests, to forget when the bus closes. */
  private readonly producers: Array<{ queue: Queue, id: string }> = []
  private untrack?: () => void
  private counts?: ServiceCounters

  /** @internal Use `bus.service(name, options)`. */
  constructor (bus: Bus, name: string, options: ServiceOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionError('service options must be an object')
    this.bus = bus
    this.name = name
    this.keys = new ServiceKeys(bus.settings.prefix, name)
    this.ttl = checkInt(options.ttl ?? bus.settings.ttl, 'ttl', 10)
    this.timeout = checkDelay(options.timeout ?? DEFAULT_SERVICE_OPTIONS.timeout, 'timeout', 1)
    this.reliable = checkBoolean(options.reliable, 'reliable') ?? DEFAULT_SERVICE_OPTIONS.reliable
    this.objectMode = checkBoolean(options.objectMode, 'objectMode') ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
    this.what = `a request to service ${name}`
    this.defaults = { timeout: this.timeout, reliable: this.reliable }
  }

  /** @internal The shard holding every key of the service (located once per handle, like a queue's). */
  shard (): Promise<Shard> {
    this.shardP ??= (async () => {
      await this.bus.connect()
      const shard = await this.bus.router.locate(`svc:${this.name}`, this.keys.existence())
      this.located = shard
      return shard
    })().catch((err) => {
      this.shardP = undefined
      throw err
    })
    return this.shardP
  }

  /** @internal This service's metrics record (looked up on first use, then held). */
  counters (): ServiceCounters {
    this.counts ??= this.bus.metricsRegistry.service(this)
    return this.counts
  }

  /** @internal The queue of plain or of reliable requests (raw envelopes). */
  requestQueue (reliable: boolean): Queue {
    const i = reliable ? 1 : 0
    this.queues[i] ??= new Queue(this.bus, `svc:${this.name}${reliable ? ':r' : ''}`, { ttl: this.ttl },
      { keys: reliable ? this.keys.reliableRequests : this.keys.requests, shard: () => this.shard() })
    return this.queues[i]
  }

  private batcher (reliable: boolean): PushBatcher {
    const i = reliable ? 1 : 0
    if (!this.batchers[i]) {
      const producer = this.requestQueue(reliable).producer()
      this.producers.push({ queue: this.requestQueue(reliable), id: producer.id })
      this.untrack ??= this.bus.track(this)
      this.batchers[i] = new PushBatcher(producer)
    }
    return this.batchers[i]
  }

  /**
   * @internal Used by `bus.close()`: this handle's requests are done, so their producers' records (which
   * make a push re-sent after a reconnection count once) can go from the request queues, which servers
   * keep alive: else every requesting process would leave one there for as long as the service lives.
   */
  async close (): Promise<void> {
    this.untrack?.()
    const producers = this.producers.splice(0)
    await Promise.allSettled(producers.map(async ({ queue, id }) =>
      await (await queue.shard()).run((c) => c.hdel(queue.keys.info, `${PRODUCER_FIELD_PREFIX}${id}`))))
  }

  /** @internal A request's or reply's payload (the codec's string, or bytes), checked against `maxMessageSize`. */
  encodeValue (value: unknown): Payload {
    const out = encodeValue(value, this.objectMode, this.codec)
    const max = this.bus.settings.maxMessageSize - ENVELOPE_ROOM
    // A string has at most 3 bytes per UTF-16 unit: only a long one needs counting.
    if ((typeof out === 'string' ? out.length * 3 : out.length) > max) {
      const size = payloadLength(out)
      if (size > max) throw new MessageTooLargeError(`a payload of ${size} bytes is over maxMessageSize (${max} bytes with its envelope)`)
    }
    return out
  }

  private decodeValue = (payload: Buffer): unknown => decodeMessage(payload, this.objectMode, this.codec)

  /** The handle's defaults, for a call without options. */
  private readonly defaults: { timeout: number, reliable: boolean }

  private callOptions (options: RequestOptions | undefined): { timeout: number, reliable: boolean } {
    if (options === undefined) return this.defaults
    if (options === null || typeof options !== 'object') throw new InvalidOptionError('request options must be an object')
    return {
      timeout: checkDelay(options.timeout ?? this.timeout, 'timeout', 1),
      reliable: checkBoolean(options.reliable, 'reliable') ?? this.reliable
    }
  }

  private serveSettings (options: ServeOptions): IntakeSettings {
    if (options === null || typeof options !== 'object') throw new InvalidOptionError('serve options must be an object')
    return {
      concurrency: checkInt(options.concurrency ?? DEFAULT_SERVICE_OPTIONS.concurrency, 'concurrency', 1, 100_000),
      reliable: checkBoolean(options.reliable, 'reliable') ?? this.reliable,
      lease: checkDelay(options.lease ?? DEFAULT_SERVICE_OPTIONS.lease, 'lease', 100),
      maxDeliveries: checkInt(options.maxDeliveries ?? DEFAULT_SERVICE_OPTIONS.maxDeliveries, 'maxDeliveries', 1),
      exposeStack: checkBoolean(options.exposeStack, 'exposeStack') ?? DEFAULT_SERVICE_OPTIONS.exposeStack
    }
  }

  /**
   * Serves requests with `handler`, up to `concurrency` at once. The handler gets a
   * {@link ServiceRequest} (`id`, `data`, `deadline`, `signal`) and returns the reply (a value, or a
   * Promise of one), or a streamed reply (a Readable or an async iterable of chunks); what it throws
   * reaches the requester as `ERR_BUSMQ_REMOTE`.
   */
  serve (handler: ServiceHandler<Req, Res>, options: ServeOptions = {}): ServiceServer<Req, Res> {
    this.bus.assertOpen()
    if (typeof handler !== 'function') throw new InvalidOptionError('serve() needs a handler function')
    return new ServiceServer(this, handler, this.serveSettings(options))
  }

  /** The stream form of a server: a Readable of {@link ServiceRequest}s, each to answer. */
  createServerStream (options: ServeOptions = {}): ServiceServerStream<Req, Res> {
    this.bus.assertOpen()
    return new ServiceServerStream(this, this.serveSettings(options))
  }

  /**
   * Sends a request and resolves with its reply; rejects with `ERR_BUSMQ_REQUEST_TIMEOUT` after `timeout`
   * ms, `ERR_BUSMQ_REMOTE` when the handler failed, `ERR_BUSMQ_SERVICE_CLOSED` when its server closed
   * first. A request that cannot be encoded fails with `ERR_BUSMQ_ENCODE` (or `_MESSAGE_TOO_LARGE`)
   * before anything is sent.
   */
  request (data: MessageInput<Req>, options?: RequestOptions): Promise<Res> {
    const started = Date.now()
    let call: { timeout: number, reliable: boolean }
    let payload: Payload
    try {
      this.bus.assertOpen()
      call = this.callOptions(options)
      payload = this.encodeValue(data)
    } catch (err) {
      return Promise.reject(err)
    }
    const router = ReplyRouter.of(this.bus)
    // Once the shard, its clock and the reply queue are known, a request waits for nothing but Redis.
    const offset = this.located && router.isReady ? knownClockOffset(this.located) : undefined
    if (offset !== undefined) return this.sendRequest(router, offset, started, call, payload)
    return (async () => {
      const shard = await this.shard()
      const [known] = await Promise.all([clockOffset(shard), router.ready()])
      return await this.sendRequest(router, known, started, call, payload)
    })()
  }

  private sendRequest (router: ReplyRouter, offset: number, started: number, call: { timeout: number, reliable: boolean },
    payload: Payload): Promise<Res> {
    const seq = router.next()
    const envelope = encodeRequest({
      flags: FLAG_REPLY, deadline: started + offset + call.timeout, seq, window: 0, replyTo: router.id, payload
    })
    const counts = this.counts ?? this.counters()
    return new Promise<Res>((resolve, reject) => {
      router.expect(seq, { resolve: resolve as (v: unknown) => void, reject, decode: this.decodeValue, counts }, call.timeout,
        started + call.timeout, this.what)
      this.batcher(call.reliable).add(envelope, (err) => {
        if (err) router.fail(seq, err)
        else counts.requested++
      })
    })
  }

  /**
   * Sends a request that wants no reply; resolves once it is stored. No server starts it after
   * `timeout` ms.
   */
  async send (data: MessageInput<Req>, options: RequestOptions = {}): Promise<void> {
    const started = Date.now()
    this.bus.assertOpen()
    const { timeout, reliable } = this.callOptions(options)
    const payload = this.encodeValue(data)
    const router = ReplyRouter.of(this.bus)
    const offset = await clockOffset(await this.shard())
    await this.batcher(reliable).store(encodeRequest({
      flags: 0, deadline: started + offset + timeout, seq: router.next(), window: 0, replyTo: router.id, payload
    }))
    this.counters().requested++
  }

  /**
   * Sends a request whose reply is a stream: a Readable of its chunks, ending with the reply. It fails
   * with `ERR_BUSMQ_REQUEST_TIMEOUT` when the reply does not start within `timeout` ms or pauses longer
   * than that while the reader waits, `ERR_BUSMQ_REMOTE` when the handler failed. A slow reader slows the
   * server down (at most `2 × highWaterMark` chunks wait in Redis). Destroying it tells the server to stop.
   */
  requestStream (data: MessageInput<Req>, options: RequestStreamOptions = {}): ServiceReplyReader<Res> {
    const started = Date.now()
    this.bus.assertOpen()
    const { timeout, reliable } = this.callOptions(options)
    const hwm = checkInt(options.highWaterMark ?? DEFAULT_SERVICE_OPTIONS.streamHighWaterMark, 'highWaterMark', 1, 100_000)
    const payload = this.encodeValue(data)
    const router = ReplyRouter.of(this.bus)
    const seq = router.next()
    const id = correlationId(router.id, seq)
    const queue = new Queue(this.bus, `svc-stream:${id}`, { ttl: this.ttl }, { keys: replyStreamKeys(this.bus.settings.prefix, id) })
    return new ServiceReplyReader<Res>(queue, {
      objectMode: this.objectMode,
      codec: this.codec,
      highWaterMark: hwm,
      timeout,
      what: this.what,
      send: async () => {
        const offset = await clockOffset(await this.shard())
        await this.batcher(reliable).store(encodeRequest({
          flags: FLAG_REPLY | FLAG_STREAM, deadline: started + offset + timeout, seq, window: 2 * hwm, replyTo: router.id, payload
        }))
        this.counters().requested++
        debug('streamed request %s sent to %s', id, this.name)
      }
    })
  }

  /**
   * A Transform: each chunk written is a request, each chunk read its reply (`ordered`: in the order of
   * the requests), with up to `concurrency` requests in flight.
   */
  createTransform (options: ServiceTransformOptions = {}): ServiceTransform {
    this.bus.assertOpen()
    const call = this.callOptions(options)
    const concurrency = checkInt(options.concurrency ?? DEFAULT_SERVICE_OPTIONS.concurrency, 'concurrency', 1, 100_000)
    const ordered = checkBoolean(options.ordered, 'ordered') ?? DEFAULT_SERVICE_OPTIONS.ordered
    return new ServiceTransform((chunk) => this.request(chunk as MessageInput<Req>, call), { concurrency, ordered })
  }

  /** Replies this bus dropped: they came after their request's timeout, or twice (a redelivered request). */
  get droppedReplies (): number {
    return ReplyRouter.of(this.bus).dropped
  }

  /** Servers, running and waiting requests, TTL and shard. */
  async stats (): Promise<ServiceStats> {
    const shard = await this.shard()
    const k = this.keys
    const [waiting, waitingReliable, servers, ttls, time] = await shard.run((c) => Promise.all([
      c.llen(k.requests.messages),
      c.llen(k.reliableRequests.messages),
      c.hgetall(k.servers),
      Promise.all(k.existence().map((key) => c.pttl(key))),
      c.time()
    ]))
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
    return serviceStats(this.name, shard.id, { servers, waiting, waitingReliable, ttl: Math.max(...ttls), now })
  }
}

function checkBoolean (value: unknown, what: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw new InvalidOptionError(`${what} must be a boolean`)
  return value
}
