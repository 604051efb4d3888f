import { EventEmitter } from 'node:events'
import { Transform, Writable, pipeline } from 'node:stream'
import type { Service } from '../service/service.js'
import type { ServiceServerStream } from '../service/service-server-stream.js'
import type { ServiceRequest } from '../service/service-request.js'
import { ClassicUsageError } from '../errors.js'
import type { ClassicBus } from './classic-bus.js'
import { isClosedError, promisifyMethods } from './util.js'
import { MAX_DELAY } from '../util.js'

/** What a `request` listener answers with: `reply(err, value)`; `reply.createWriteStream()` streams it. */
export interface ClassicReply {
  (err?: unknown, value?: unknown, partial?: boolean): void
  /** A Writable (objects): each chunk goes to the requester (`streamReply`), `end()` ends the reply. */
  createWriteStream: () => Writable
}

/** Options of `service.serve(options, cb)`. */
export interface ClassicServeOptions {
  /** Stop serving (as `disconnect()` without the `disconnect` event) after this many requests. */
  max?: number
}

/** Options of `service.connect(options, cb)`. */
export interface ClassicConnectOptions {
  /** Default request timeout, ms (0 or none: the default, as in 3.1). @default 1000 */
  reqTimeout?: number
}

/** Options of `service.request(data, options, cb)`. */
export interface ClassicRequestOptions {
  /** This request's timeout, ms (for a streamed reply: until each chunk; 0 or none: the connect() one). @default the connect() one */
  reqTimeout?: number
  /** The callback's reply is a Readable of the reply's chunks. @default false */
  streamReply?: boolean
}

/** Requests a classic server runs at once (3.1 takes them all; this is its bound). */
const SERVE_CONCURRENCY = 1000
/** 3.1's default request timeout, ms. */
const DEFAULT_REQ_TIMEOUT = 1000

/**
 * BusMQ 3.1's service over a native {@link Service} (objectMode: requests and replies are JSON values).
 * A service object either serves (`serve`) or requests (`connect`). Events: `serving`, `connected`,
 * `request` (request, reply), `disconnect`, `error` (err).
 */
export class ClassicService extends EventEmitter {
  readonly type = 'service'
  readonly name: string
  readonly bus: ClassicBus
  private svcOf?: Service
  private server?: ServiceServerStream
  private connected = false
  private reqTimeout = DEFAULT_REQ_TIMEOUT
  /** Requests (as requester) waiting for their reply. */
  private pending = 0
  private disconnecting?: () => void
  /** A requester's session: replies to an earlier one (before disconnect) are dropped. */
  private session = 0

  /** @internal Use `bus.service(name)`. */
  constructor (bus: ClassicBus, name: string) {
    super()
    this.bus = bus
    this.name = name
  }

  private get svc (): Service {
    this.svcOf ??= this.bus.native.service(this.name, { objectMode: true })
    return this.svcOf
  }

  /** True while serving requests. */
  isServing (): boolean {
    return this.server !== undefined
  }

  /** True while connected as a requester. */
  isConnected (): boolean {
    return this.connected
  }

  private refuse (): boolean {
    if (this.isServing()) this.emit('error', new ClassicUsageError('already serving'))
    else if (this.isConnected()) this.emit('error', new ClassicUsageError('already connected'))
    else return false
    return true
  }

  /**
   * Serves requests: `serving` (and `cb`) once requests are taken, then `request` (request, reply) for
   * each. The listener must call `reply()` (also when no reply is wanted).
   */
  serve (options?: ClassicServeOptions | (() => void), cb?: () => void): void {
    if (this.refuse()) return
    if (typeof options === 'function') {
      cb = options
      options = undefined
    }
    const max = options?.max !== undefined && options.max > 0 ? options.max : undefined
    const server = this.svc.createServerStream({ concurrency: SERVE_CONCURRENCY })
    this.server = server
    if (cb) this.once('serving', () => cb!())
    server.once('ready', () => this.emit('serving'))
    let served = 0
    server.on('data', (req: ServiceRequest) => {
      if (max !== undefined && ++served >= max) {
        // Stops taking requests; those taken and not handed on go back for other servers.
        if (this.server === server) this.server = undefined
        server.close({ grace: MAX_DELAY }).catch(() => {})
      }
      this.emit('request', req.data, this.replier(req))
    })
    server.on('error', (err: Error) => { if (!isClosedError(err)) this.emit('error', err) })
  }

  /** The `reply` a `request` listener gets for `req`. */
  private replier (req: ServiceRequest): ClassicReply {
    let done = false
    let stream: ReturnType<ServiceRequest['replyStream']> | undefined
    const failed = (err: unknown): Error => err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err))
    const ignore = (): void => {}
    const reply = ((err?: unknown, value?: unknown, partial = false): void => {
      if (done) return
      if (!req.replyWanted) {
        done = true
        req.reply().catch(ignore)
      } else if (err !== undefined && err !== null) {
        done = true
        req.fail(failed(err)).catch(ignore)
      } else if (req.streamed) {
        // 3.1's partial replies are chunks of a streamed reply; the last reply ends it.
        stream ??= req.replyStream()
        if (value !== undefined && value !== null) stream.write(value)
        if (!partial) {
          done = true
          stream.end()
        }
      } else {
        // One value wanted: the first reply is it.
        done = true
        req.reply(value).catch(ignore)
      }
    }) as ClassicReply
    reply.createWriteStream = () => {
      if (req.replyWanted && req.streamed && !done) {
        done = true
        stream ??= req.replyStream()
        return stream as unknown as Writable
      }
      // No stream wanted: the first chunk is the reply (as 3.1 hands a plain request its first chunk).
      return new Writable({
        objectMode: true,
        write (chunk, _encoding, callback) { reply(null, chunk); callback() },
        final (callback) { reply(null, undefined); callback() }
      })
    }
    return reply
  }

  /** Connects as a requester: `connected` (and `cb`). `reqTimeout` (ms) is the default request timeout. */
  connect (options?: ClassicConnectOptions | (() => void), cb?: () => void): void {
    if (this.refuse()) return
    if (typeof options === 'function') {
      cb = options
      options = undefined
    }
    this.connected = true
    this.reqTimeout = options?.reqTimeout || DEFAULT_REQ_TIMEOUT
    const session = ++this.session
    if (cb) this.once('connected', () => cb!())
    this.bus.native.connect().then(() => {
      if (this.session === session && this.connected) this.emit('connected')
    }, (err: Error) => { if (!isClosedError(err)) this.emit('error', err) })
  }

  /**
   * Sends a request. With `cb(err, reply)` the reply comes back (a Readable of its chunks with
   * `streamReply`); without, none is sent. Ignored when not connected.
   */
  request (data: unknown, options?: ClassicRequestOptions | ((err: Error | null, reply?: any) => void),
    cb?: (err: Error | null, reply?: any) => void): void {
    if (!this.connected || this.disconnecting) return
    if (typeof options === 'function') {
      cb = options
      options = undefined
    }
    const timeout = options?.reqTimeout || this.reqTimeout
    if (!cb) {
      this.svc.send(data, { timeout }).catch((err: Error) => { if (!isClosedError(err)) this.emit('error', err) })
      return
    }
    const callback = cb
    const session = this.session
    this.pending++
    let settled = false
    const finish = (): void => {
      if (settled) return
      settled = true
      this.pending--
      if (this.pending === 0) this.disconnecting?.()
    }
    const answer = (err: Error | null, reply?: unknown): void => {
      if (this.session === session) callback(err, reply)
    }
    if (options?.streamReply !== true) {
      // The answer first: a disconnect() waiting for it completes after it.
      this.svc.request(data, { timeout }).then((reply) => {
        answer(null, reply)
        finish()
      }, (err: Error) => {
        answer(err)
        finish()
      })
      return
    }
    // 3.1 calls back with the stream once the reply starts, or with the error when it never does.
    let started = false
    const start = (): void => {
      if (started) return
      started = true
      answer(null, out)
    }
    const out = new Transform({
      objectMode: true,
      transform (chunk, _encoding, callback) {
        start()
        callback(null, chunk)
      },
      flush (callback) {
        start()
        callback()
      }
    })
    pipeline(this.svc.requestStream(data, { timeout }), out, (err) => {
      if (err && !started) {
        started = true
        answer(err)
      }
      finish()
    })
  }

  /**
   * Disconnects. A server stops taking requests, gives those running `gracePeriod` ms (default 0), then
   * answers the rest with `ERR_BUSMQ_SERVICE_CLOSED`; a requester makes no more requests and waits up to
   * `gracePeriod` ms for the replies on their way (later ones are dropped). Then `disconnect`.
   */
  disconnect (gracePeriod?: number): void {
    const grace = Math.max(Math.round(gracePeriod ?? 0), 0)
    const server = this.server
    if (server) {
      this.server = undefined
      server.close({ grace }).then(() => this.emit('disconnect'), () => this.emit('disconnect'))
      return
    }
    if (!this.connected || this.disconnecting) return
    const timers: { grace?: NodeJS.Timeout } = {}
    const done = (): void => {
      clearTimeout(timers.grace)
      this.disconnecting = undefined
      this.connected = false
      this.session++
      this.emit('disconnect')
    }
    this.disconnecting = done
    if (this.pending === 0) process.nextTick(done)
    else timers.grace = setTimeout(done, grace)
  }

  /** Makes serve, connect and request return promises; returns the service. */
  promisify (): this {
    return promisifyMethods(this, ['serve', 'connect', 'request'])
  }
}
