import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { timingSafeEqual } from 'node:crypto'
import createDebug from 'debug'
import { WebSocketServer, type WebSocket } from 'ws'
import type { Bus } from '../bus.js'
import { checkInt, checkDelay } from '../names.js'
import { FederationError, ForbiddenError, InvalidOptionError } from '../errors.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import {
  FrameType, ProtocolError, decodeFrame, encodeFrame, jsonFrame, parseJson, decodeBatch, readCredit, encodeCall,
  decodeCall, NONCE_SIZE, MAC_SIZE, type Frame, type WireMessage
} from './frame.js'
import { randomNonce, clientProof, serverProof } from './auth.js'
import { ServerStream, QueueSink, WritableSink, type StreamHost } from './server-stream.js'
import { runCall, allowedQueue, PASSTHROUGH_CODEC } from './server-calls.js'
import { ServeBridge } from './serve-bridge.js'
import { ReplySink } from './reply-sink.js'
import { keepStream, keepTtl } from './server-keep.js'
import type { ObjectChange } from '../object/object-options.js'
import {
  DEFAULT_FEDERATE_OPTIONS, type FederateOptions, type FederationClientInfo, type FederationOp
} from './federation-options.js'

const debug = createDebug('busmq:federation')

/** WebSocket close codes the client acts on. */
export const CLOSE_UNAUTHORIZED = 4001
export const CLOSE_PROTOCOL = 4002
export const CLOSE_GOING_AWAY = 1001

/** How many recent client nonces are remembered (a handshake replayed on a new connection is refused). */
const NONCES_KEPT = 100_000
const PRODUCER_ID = /^[A-Za-z0-9._-]{1,64}$/

function checkWindow (w: unknown): { bytes: number, messages: number } {
  const o = w as { bytes?: unknown, messages?: unknown } | undefined
  if (typeof o?.bytes !== 'number' || typeof o.messages !== 'number' || !(o.bytes > 0) || !(o.messages > 0) ||
    !Number.isSafeInteger(o.bytes) || !Number.isSafeInteger(o.messages)) throw new ProtocolError('OPEN: bad window')
  return { bytes: o.bytes, messages: o.messages }
}

/** What `bus.federate()` returns. */
export interface Federation {
  /** The path it serves. */
  readonly path: string
  /** Connections open now. */
  readonly connections: number
  /** Closes every federation connection (clients see code 1001 and reconnect elsewhere) and stops accepting. */
  close: () => Promise<void>
}

/**
 * The server side of federation: accepts WebSocket upgrades on an http(s) server, authenticates each
 * connection, and carries its clients' streams and calls to this bus.
 */
export class FederationServer implements Federation {
  readonly path: string
  /** @internal */
  readonly bus: Bus
  /** @internal */
  readonly options: Required<Omit<FederateOptions, 'secret' | 'authorize' | 'allow' | 'origins'>> & FederateOptions
  /** @internal Streams by session token, whichever connection they are on (or none, waiting to resume). */
  readonly sessions = new Map<string, ServerStream>()
  private readonly wss: WebSocketServer
  private readonly conns = new Set<ServerConnection>()
  /** @internal */
  readonly seenNonces = new Set<string>()
  private closing?: Promise<void>
  private readonly onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void

  constructor (bus: Bus, options: FederateOptions) {
    if (options === null || typeof options !== 'object' || typeof options.server?.on !== 'function') {
      throw new InvalidOptionError('federate needs { server }: an http or https server')
    }
    if (options.secret === undefined && options.authorize === undefined) {
      throw new InvalidOptionError('federate needs a secret, an authorize hook, or both')
    }
    if (options.secret !== undefined && (typeof options.secret !== 'string' || options.secret.length === 0)) {
      throw new InvalidOptionError('secret must be a non-empty string')
    }
    for (const f of ['authorize', 'allow'] as const) {
      if (options[f] !== undefined && typeof options[f] !== 'function') throw new InvalidOptionError(`${f} must be a function`)
    }
    if (options.origins !== undefined && (!Array.isArray(options.origins) || options.origins.some((o) => typeof o !== 'string'))) {
      throw new InvalidOptionError('origins must be a list of strings')
    }
    const path = options.path ?? DEFAULT_FEDERATE_OPTIONS.path
    if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
    this.bus = bus
    this.path = path
    this.options = {
      ...options,
      path,
      maxStreams: checkInt(options.maxStreams ?? DEFAULT_FEDERATE_OPTIONS.maxStreams, 'maxStreams', 1),
      maxMessageSize: checkInt(options.maxMessageSize ?? DEFAULT_FEDERATE_OPTIONS.maxMessageSize, 'maxMessageSize', 1024),
      idleTimeout: checkDelay(options.idleTimeout ?? DEFAULT_FEDERATE_OPTIONS.idleTimeout, 'idleTimeout', 100),
      maxBufferedBytes: checkInt(options.maxBufferedBytes ?? DEFAULT_FEDERATE_OPTIONS.maxBufferedBytes, 'maxBufferedBytes', 64 * 1024),
      resumeTimeout: checkDelay(options.resumeTimeout ?? DEFAULT_FEDERATE_OPTIONS.resumeTimeout, 'resumeTimeout', 0)
    }
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.options.maxMessageSize, perMessageDeflate: false })
    this.onUpgrade = (req, socket, head) => { this.upgrade(req, socket, head) }
    options.server.on('upgrade', this.onUpgrade)
    debug('serving federation on %s', path)
  }

  get connections (): number {
    return this.conns.size
  }

  /** @internal Bytes of write batches one stream may have unacknowledged. */
  get writeWindow (): number {
    return Math.max(64 * 1024, Math.min(4 * 1024 * 1024, Math.floor(this.options.maxBufferedBytes / 16)))
  }

  private refuse (socket: Duplex, status: number, text: string): void {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  }

  private upgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let pathname: string
    try {
      pathname = new URL(req.url ?? '/', 'http://localhost').pathname
    } catch {
      return
    }
    if (pathname !== this.path) return
    if (this.closing) return this.refuse(socket, 503, 'Service Unavailable')
    const origin = req.headers.origin
    if (origin !== undefined && this.options.origins !== undefined && !this.options.origins.includes(origin)) {
      debug('refused origin %s', origin)
      return this.refuse(socket, 403, 'Forbidden')
    }
    socket.on('error', () => {})
    Promise.resolve(this.options.authorize ? this.options.authorize(req) : true).then((auth) => {
      if (!auth) return this.refuse(socket, 401, 'Unauthorized')
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        if (this.closing) return ws.close(CLOSE_GOING_AWAY, 'server closing')
        const conn = new ServerConnection(this, ws, {
          id: '', address: req.socket.remoteAddress, origin, auth
        })
        this.conns.add(conn)
        ws.once('close', () => this.conns.delete(conn))
      })
    }, (err: Error) => {
      debug('authorize failed: %s', err.message)
      this.refuse(socket, 401, 'Unauthorized')
    })
  }

  /** @internal Whether `client` may do `op` on `name`. */
  async allowed (op: FederationOp, name: string, client: FederationClientInfo): Promise<void> {
    if (typeof name !== 'string') throw new ProtocolError('name must be a string')
    if (!this.options.allow) return
    let ok = false
    try {
      ok = await this.options.allow(op, name, client)
    } catch (err) {
      debug('allow threw: %s', (err as Error).message)
    }
    if (ok !== true) throw new ForbiddenError(`${op} on ${JSON.stringify(name)} is not allowed`)
  }

  /** @internal A client nonce not seen before (and now remembered). */
  freshNonce (nonce: Buffer): boolean {
    const key = nonce.toString('base64')
    if (this.seenNonces.has(key)) return false
    this.seenNonces.add(key)
    if (this.seenNonces.size > NONCES_KEPT) this.seenNonces.delete(this.seenNonces.values().next().value!)
    return true
  }

  close (): Promise<void> {
    this.closing ??= (async () => {
      this.options.server.off('upgrade', this.onUpgrade)
      const closed = [...this.conns].map(async (c) => await c.close())
      await Promise.allSettled(closed)
      for (const s of [...this.sessions.values()]) s.destroy()
      this.sessions.clear()
      this.wss.close()
      debug('federation on %s closed', this.path)
    })()
    return this.closing
  }

  /** @internal */
  get isClosing (): boolean {
    return this.closing !== undefined
  }
}

/**
 * A reliable channel for a federated peer: the channel here acks nothing by itself (`ack: 'manual'`); its
 * messages go to the client with their ids, held here (leased) until the client acks or nacks them
 * (`reliable.acks` calls). Destroyed, or left when its client does not come back within resumeTimeout,
 * it gives back whatever was not acked.
 */
function reliableChannel (session: string, bus: Bus, name: string, o: Record<string, any>): ServerStream {
  const ch = bus.channel(name, {
    local: o.local, remote: o.remote, ttl: o.ttl, heartbeat: o.heartbeat, reliable: true, ack: 'manual', highWaterMark: o.highWaterMark
  })
  const held = new Map<number, ReliableMessage>()
  const stream = new ServerStream(session, 'channel', ch, new WritableSink(ch), {
    toPayload: (m: ReliableMessage<Buffer>) => reliablePayload(held, m),
    // A client that does not come back in time leaves the conversation as detach() does (no abort for
    // the peer): what was not acked goes back, for the channel it opens again when it reconnects.
    leave: async () => await ch.detach()
  })
  stream.held = held
  return stream
}

/** A reliable message for the client, `deliveries (u32) | data`, held until it is acked or nacked. */
function reliablePayload (held: Map<number, ReliableMessage>, m: ReliableMessage<Buffer>): WireMessage {
  held.set(m.id, m)
  const head = Buffer.allocUnsafe(4)
  head.writeUInt32BE(m.deliveries, 0)
  return { id: m.id, payload: Buffer.concat([head, m.data]) }
}

/** One client's WebSocket: the handshake, then its streams and calls. */
class ServerConnection implements StreamHost {
  private state: 'challenge' | 'verifying' | 'ready' | 'closed' = 'challenge'
  private readonly nonce = randomNonce()
  private readonly streams = new Map<number, ServerStream>()
  private readonly calls = new Set<number>()
  private client: FederationClientInfo
  private lastSeen = Date.now()
  private readonly timer: ReturnType<typeof setInterval>
  private inFlight = 0
  private blocked = false

  constructor (private readonly server: FederationServer, private readonly ws: WebSocket, client: FederationClientInfo) {
    this.client = client
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data, isBinary) => {
      this.lastSeen = Date.now()
      if (!isBinary) return this.violate('text frame')
      this.receive(data as Buffer)
    })
    // 1000: the client closed on purpose (bus.close()); its streams will not come back.
    ws.on('close', (code) => this.closed(code === 1000))
    ws.on('error', (err) => debug('socket error: %s', err.message))
    ws.on('pong', () => { this.lastSeen = Date.now() })
    const idle = server.options.idleTimeout
    this.timer = setInterval(() => {
      if (Date.now() - this.lastSeen > idle) {
        debug('connection idle for %d ms: dropped', idle)
        ws.terminate()
        return
      }
      ws.ping()
    }, Math.max(50, Math.floor(idle / 3)))
    this.timer.unref?.()
    this.sendRaw(encodeFrame(FrameType.CHALLENGE, 0, this.nonce))
  }

  private sendRaw (frame: Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return
    this.inFlight += frame.length
    this.ws.send(frame, () => {
      this.inFlight -= frame.length
      if (this.blocked && this.writable()) {
        this.blocked = false
        for (const s of this.streams.values()) s.pump()
      }
    })
  }

  send (frame: Buffer): void {
    this.sendRaw(frame)
  }

  writable (): boolean {
    const ok = this.inFlight < this.server.options.maxBufferedBytes / 4
    if (!ok) this.blocked = true
    return ok
  }

  forget (stream: ServerStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id)
  }

  /** A protocol violation: the connection closes with the reason; nothing else is affected. */
  private violate (reason: string): void {
    if (this.state === 'closed') return
    debug('protocol error: %s', reason)
    this.ws.close(CLOSE_PROTOCOL, reason.slice(0, 120))
    this.state = 'closed'
    setTimeout(() => this.ws.terminate(), 2000).unref?.()
  }

  private receive (data: Buffer): void {
    if (this.state === 'closed') return
    let frame: Frame
    try {
      frame = decodeFrame(data)
      this.dispatch(frame)
    } catch (err) {
      if (err instanceof ProtocolError) return this.violate(err.reason)
      debug('frame handling failed: %s', (err as Error).message)
      this.violate('internal error')
    }
  }

  private dispatch (f: Frame): void {
    if (f.type === FrameType.PING) return this.sendRaw(encodeFrame(FrameType.PONG, 0, f.payload))
    if (f.type === FrameType.PONG) return
    if (this.state === 'challenge') {
      if (f.type !== FrameType.AUTH) throw new ProtocolError(`${FrameType[f.type]} before AUTH`)
      this.state = 'verifying'
      this.auth(f.payload).catch(() => this.violate('internal error'))
      return
    }
    if (this.state !== 'ready') throw new ProtocolError(`${FrameType[f.type]} during the handshake`)
    switch (f.type) {
      case FrameType.OPEN: return this.open(f.stream, parseJson(f.payload, 'OPEN'))
      case FrameType.CALL: return this.call(f.stream, f.payload)
      case FrameType.DATA: {
        const s = this.stream(f.stream)
        if (!s) return
        const { tag, messages } = decodeBatch(f.payload)
        if (!s.sink) throw new ProtocolError(`DATA to read-only stream ${f.stream}`)
        if (tag < 1) throw new ProtocolError('DATA without a batch number')
        if (s.pendingBytes > this.server.writeWindow) throw new ProtocolError('write window exceeded')
        return s.data(tag, messages.map((m) => m.payload), f.payload.length)
      }
      case FrameType.CREDIT: {
        const c = readCredit(f.payload)
        return this.stream(f.stream)?.grant(c.bytes, c.messages)
      }
      case FrameType.END: return this.stream(f.stream)?.end()
      case FrameType.RESET: {
        const s = this.stream(f.stream)
        if (!s) return
        const why = parseJson(f.payload, 'RESET')
        const unread = Number.isSafeInteger(why.unread) && why.unread > 0 ? why.unread : 0
        const received = Number.isSafeInteger(why.received) && why.received >= 0 ? why.received : 0
        s.destroy(undefined, unread, received)
        return
      }
      default:
        throw new ProtocolError(`unexpected ${FrameType[f.type]} frame from a client`)
    }
  }

  /** Frames for a stream that is gone (closed by the server meanwhile) are ignored; ids never seen are not. */
  private stream (id: number): ServerStream | undefined {
    const s = this.streams.get(id)
    if (!s && id > this.highestId) throw new ProtocolError(`frame for stream ${id}, never opened`)
    return s
  }

  private highestId = 0

  private async auth (payload: Buffer): Promise<void> {
    const clientNonce = payload.subarray(0, NONCE_SIZE)
    const mac = payload.subarray(NONCE_SIZE, NONCE_SIZE + MAC_SIZE)
    const hello = parseJson(payload.subarray(NONCE_SIZE + MAC_SIZE), 'AUTH')
    const secret = this.server.options.secret
    let ok = this.server.freshNonce(Buffer.from(clientNonce))
    if (secret !== undefined) {
      const expected = await clientProof(secret, this.nonce, clientNonce)
      ok = timingSafeEqual(expected, mac) && ok
    }
    if (this.state !== 'verifying') return
    if (!ok) {
      debug('handshake refused (wrong secret or replayed)')
      this.state = 'closed'
      this.ws.close(CLOSE_UNAUTHORIZED, 'unauthorized')
      return
    }
    this.client = { ...this.client, id: typeof hello.id === 'string' ? hello.id.slice(0, 200) : '' }
    const proof = secret !== undefined ? await serverProof(secret, this.nonce, clientNonce) : Buffer.alloc(MAC_SIZE)
    this.state = 'ready'
    this.sendRaw(encodeFrame(FrameType.WELCOME, 0, Buffer.concat([proof, Buffer.from(JSON.stringify({
      id: this.server.bus.settings.id,
      maxMessageSize: this.server.options.maxMessageSize,
      writeWindow: this.server.writeWindow
    }))])))
  }

  private get load (): number {
    return this.streams.size + this.calls.size
  }

  private open (id: number, req: Record<string, any>): void {
    if (id <= this.highestId) throw new ProtocolError(`stream ${id} opened twice`)
    this.highestId = id
    const window = checkWindow(req.window)
    const session = req.session
    if (typeof session !== 'string' || session.length < 8 || session.length > 64) throw new ProtocolError('OPEN: bad session')
    const received = Number.isSafeInteger(req.received) && req.received > 0 ? req.received as number : 0
    if (this.load >= this.server.options.maxStreams) {
      this.sendRaw(jsonFrame(FrameType.RESET, id, { code: 'ERR_BUSMQ_FEDERATION', message: `too many streams on one connection (maxStreams ${this.server.options.maxStreams})` }))
      return
    }
    const existing = this.server.sessions.get(session)
    if (existing && !existing.isClosed) {
      // The client came back (maybe before the server noticed its old connection was gone).
      if (existing.host && existing.host !== this) (existing.host as ServerConnection).release(existing)
      this.streams.set(id, existing)
      existing.attach(this, id, window, received, { resumed: true })
      return
    }
    if (req.resume === true) {
      // The server lost the stream (it restarted, or the stream timed out): a fresh one, as the client asks.
      debug('stream %s resumed without its session: opened afresh', session)
    }
    const placeholder = id
    this.calls.add(placeholder)
    this.create(req).then((stream) => {
      this.calls.delete(placeholder)
      if (this.state === 'closed' || this.server.isClosing) return stream.destroy()
      this.streams.set(id, stream)
      this.server.sessions.set(session, stream)
      stream.linger = this.server.options.resumeTimeout
      stream.onClosed = () => { if (this.server.sessions.get(session) === stream) this.server.sessions.delete(session) }
      stream.attach(this, id, window, 0, { writeWindow: this.server.writeWindow })
    }, (err: Error) => {
      this.calls.delete(placeholder)
      if (err instanceof ProtocolError) return this.violate(err.reason)
      const code = (err as Error & { code?: unknown }).code
      this.sendRaw(jsonFrame(FrameType.RESET, id, { code: typeof code === 'string' ? code : 'ERR_BUSMQ_FEDERATION', message: err.message }))
    })
  }

  /** @internal A stream that resumed on another connection no longer belongs to this one. */
  release (stream: ServerStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id)
  }

  private async create (req: Record<string, any>): Promise<ServerStream> {
    const { op, name, session } = req
    const o: Record<string, any> = req.options !== null && typeof req.options === 'object' ? req.options : {}
    const bus = this.server.bus
    switch (op) {
      case 'queue.write': {
        const queue = await allowedQueue(this.server, 'write', name, this.client, o.deadLetter)
        if (typeof o.producer !== 'string' || !PRODUCER_ID.test(o.producer)) throw new ProtocolError('OPEN: bad producer id')
        const q = queue({ ttl: o.ttl, maxLength: o.maxLength, overflow: o.overflow, retain: o.retain })
        return new ServerStream(session, op, undefined, new QueueSink(q, `f.${o.producer}`, o.endMarker === true))
      }
      case 'queue.read': {
        const q = (await allowedQueue(this.server, 'read', name, this.client, o.deadLetter))({ ttl: o.ttl })
        if (o.mode === 'reliable') {
          // Leases are the server's; the client acks messages by id (reliable.acks calls, batched).
          const held = new Map<number, ReliableMessage>()
          const reader = q.createReadStream({
            mode: 'reliable',
            lease: o.lease,
            maxDeliveries: o.maxDeliveries,
            prefetch: o.prefetch,
            after: o.after,
            max: o.max ?? undefined,
            untilEmpty: o.untilEmpty,
            untilEnd: o.untilEnd,
            highWaterMark: o.highWaterMark
          })
          const stream = new ServerStream(session, op, reader, undefined, {
            toPayload: (m: ReliableMessage<Buffer>) => reliablePayload(held, m)
          })
          stream.held = held
          return stream
        }
        const reader = q.createReadStream({
          mode: o.mode, from: o.from, max: o.max ?? undefined, untilEmpty: o.untilEmpty, untilEnd: o.untilEnd, withIds: true, highWaterMark: 1000
        })
        return new ServerStream(session, op, reader, undefined, {
          queueReader: (o.mode ?? 'consume') === 'consume',
          toPayload: (c: { id: number, data: Buffer }) => ({ id: c.id, payload: c.data })
        })
      }
      case 'queue.attach': {
        // Whoever may open a stream on the queue (which attaches it) may attach it.
        const queue = await allowedQueue(this.server, 'read', name, this.client, o.deadLetter)
          .catch(async () => await allowedQueue(this.server, 'write', name, this.client, o.deadLetter))
        const q = queue({ ttl: keepTtl(o.ttl) })
        const existed = await q.attach()
        return keepStream(session, op, existed, async () => await q.detach())
      }
      case 'object.keep': {
        await this.server.allowed('object', name, this.client)
        const obj = bus.object(name, { ttl: keepTtl(o.ttl) })
        obj.keepAlive()
        return keepStream(session, op, true, async () => await obj.close())
      }
      case 'channel': {
        await this.server.allowed('channel', name, this.client)
        if (o.reliable === true) return reliableChannel(session, bus, name, o)
        const ch = bus.channel(name, { local: o.local, remote: o.remote, ttl: o.ttl, heartbeat: o.heartbeat, listen: o.listen })
        return new ServerStream(session, op, ch, new WritableSink(ch))
      }
      case 'pubsub.read': {
        await this.server.allowed('subscribe', name, this.client)
        return new ServerStream(session, op, bus.pubsub(name).createReadStream({ highWaterMark: 1024 }), undefined)
      }
      case 'pubsub.write': {
        await this.server.allowed('publish', name, this.client)
        return new ServerStream(session, op, undefined, new WritableSink(bus.pubsub(name).createWriteStream()))
      }
      case 'service.serve': {
        await this.server.allowed('serve', name, this.client)
        const bridge = new ServeBridge(bus, name, o)
        return new ServerStream(session, op, bridge.requests, bridge, { toPayload: (c: WireMessage) => c })
      }
      case 'service.requestStream': {
        await this.server.allowed('request', name, this.client)
        // Opened again after the server lost it: the request is not sent twice (its reply is gone with it).
        if (req.resume === true) throw new FederationError('the streamed reply was lost with its federation connection')
        if (typeof o.data !== 'string') throw new ProtocolError('OPEN: bad request')
        const reply = bus.service(name).requestStream(Buffer.from(o.data, 'base64'), {
          timeout: o.timeout, reliable: o.reliable, highWaterMark: o.highWaterMark
        })
        return new ServerStream(session, op, reply, undefined)
      }
      case 'service.reply': {
        await this.server.allowed('serve', name, this.client)
        const serving = typeof o.serve === 'string' ? this.server.sessions.get(o.serve) : undefined
        const bridge = serving?.sink
        if (!(bridge instanceof ServeBridge) || bridge.name !== name || !Number.isSafeInteger(o.request)) {
          throw new FederationError('no such request to reply to')
        }
        const { stream, fail } = bridge.replyStream(o.request)
        return new ServerStream(session, op, undefined, new ReplySink(stream, fail))
      }
      case 'object.changes': {
        await this.server.allowed('object', name, this.client)
        const stream = bus.object(name, { ttl: o.ttl, codec: PASSTHROUGH_CODEC }).createChangeStream({ after: o.after })
        return new ServerStream(session, op, stream, undefined, {
          toPayload: (c: ObjectChange<Record<string, Buffer>>) => {
            const fields: Record<string, string> = {}
            for (const [k, v] of Object.entries(c.fields)) fields[k] = v!.toString('base64')
            return { id: c.version, payload: Buffer.from(JSON.stringify({ ...c, fields })) }
          }
        })
      }
      default:
        throw new ProtocolError(`OPEN: unknown op ${JSON.stringify(op)}`)
    }
  }

  private call (id: number, payload: Buffer): void {
    if (id <= this.highestId) throw new ProtocolError(`call ${id} reuses a stream id`)
    this.highestId = id
    const { value, payloads } = decodeCall(payload, 'CALL')
    if (this.load >= this.server.options.maxStreams) {
      this.sendRaw(encodeFrame(FrameType.REPLY, id, encodeCall({ error: { code: 'ERR_BUSMQ_FEDERATION', message: 'too many calls and streams on one connection' } })))
      return
    }
    this.calls.add(id)
    runCall(this.server, this.client, value, payloads).then(({ result, payloads }) => {
      this.sendRaw(encodeFrame(FrameType.REPLY, id, encodeCall({ result }, payloads)))
    }, (err: Error) => {
      if (err instanceof ProtocolError) return this.violate(err.reason)
      const code = (err as Error & { code?: unknown }).code
      this.sendRaw(encodeFrame(FrameType.REPLY, id, encodeCall({ error: { code: typeof code === 'string' ? code : 'ERR_BUSMQ_FEDERATION', message: err.message, details: (err as any).details } })))
    }).finally(() => this.calls.delete(id))
  }

  private closed (final = false): void {
    this.state = 'closed'
    clearInterval(this.timer)
    const closing = final || this.server.isClosing
    for (const s of this.streams.values()) {
      if (closing) s.destroy()
      else s.detach(this.server.options.resumeTimeout)
    }
    this.streams.clear()
  }

  async close (): Promise<void> {
    if (this.ws.readyState === this.ws.CLOSED) return
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve())
      this.ws.close(CLOSE_GOING_AWAY, 'server closing')
      setTimeout(() => this.ws.terminate(), 1000).unref?.()
    })
  }
}
