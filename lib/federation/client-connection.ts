import { Buffer } from 'buffer'
import createDebug from 'debug'
import {
  FrameType, ProtocolError, decodeFrame, encodeFrame, parseJson, decodeBatch, encodeCall, decodeCall, MAC_SIZE,
  NONCE_SIZE, type Frame
} from './frame.js'
import { randomNonce, clientProof, serverProof, sameBytes } from './auth.js'
import type { Link } from './link.js'
import type { FederationClient } from './federation-client.js'

const debug = createDebug('busmq:federation')

/** The parts of a WebSocket (the browser's, or the `ws` package's) a connection uses. */
export interface SocketLike {
  binaryType: string
  readonly readyState: number
  send: (data: Uint8Array) => void
  close: (code?: number, reason?: string) => void
  onopen: ((ev: any) => void) | null
  onmessage: ((ev: { data: any }) => void) | null
  onclose: ((ev: { code: number, reason: string }) => void) | null
  onerror: ((ev: any) => void) | null
}

/** Makes a WebSocket to `url`. */
export type SocketFactory = (url: string) => SocketLike

interface PendingCall {
  payload: Buffer
  retry: boolean
  resolve: (v: { value: Record<string, any>, payloads: Buffer[] }) => void
  reject: (err: Error) => void
  id: number
}

const OPEN = 1
const CLOSE_UNAUTHORIZED = 4001

/**
 * One WebSocket of a federation client's pool: its handshake, keep-alive and reconnection; the streams
 * (links) and calls placed on it survive a reconnection.
 */
export class ClientConnection {
  private ws?: SocketLike
  state: 'idle' | 'connecting' | 'ready' | 'down' | 'closed' = 'idle'
  private nextId = 1
  /** Links placed on this connection, open or waiting for it. */
  readonly links = new Set<Link>()
  private readonly byId = new Map<number, Link>()
  private readonly calls = new Map<number, PendingCall>()
  private readonly queued: PendingCall[] = []
  private nonce?: Buffer
  private lastSeen = 0
  private pinger?: ReturnType<typeof setInterval>
  private retryTimer?: ReturnType<typeof setTimeout>
  private attempt = 0
  /** When the connection was lost (0: it is not). */
  downSince = 0
  private readyWaiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  maxMessageSize = 16 * 1024 * 1024
  writeWindow = 1024 * 1024
  /** The id of the server's bus, from its welcome. */
  serverId = ''

  constructor (readonly client: FederationClient, readonly url: string) {}

  /** Resolves once the connection is ready (connecting it if needed). */
  ready (): Promise<void> {
    if (this.state === 'ready') return Promise.resolve()
    const p = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }))
    if (this.state === 'idle') this.connect()
    return p
  }

  private connect (): void {
    if (this.state === 'closed') return
    this.state = 'connecting'
    let ws: SocketLike
    try {
      ws = this.client.createSocket(this.url)
    } catch (err) {
      debug('cannot open %s: %s', this.url, (err as Error).message)
      this.lost()
      return
    }
    this.ws = ws
    ws.binaryType = 'arraybuffer'
    ws.onopen = () => { this.lastSeen = Date.now() }
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      this.lastSeen = Date.now()
      const data = ev.data
      if (typeof data === 'string') return this.violate('text frame')
      const buf = data instanceof ArrayBuffer ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      try {
        this.dispatch(decodeFrame(buf))
      } catch (err) {
        if (err instanceof ProtocolError) return this.violate(err.reason)
        throw err
      }
    }
    // An upgrade refused with 401 (an `authorize` hook said no) is as final as a wrong secret; Node's
    // ws reports it as this error (browsers cannot tell it from a network failure).
    let refused = false
    ws.onerror = (ev) => {
      debug('socket error on %s: %s', this.url, ev?.message ?? 'error')
      if (/Unexpected server response: 401\b/.test(String(ev?.message))) refused = true
    }
    ws.onclose = (ev) => {
      if (this.ws !== ws) return
      this.ws = undefined
      debug('connection to %s closed (%d %s)', this.url, ev.code, ev.reason)
      if (ev.code === CLOSE_UNAUTHORIZED) return this.client.unauthorized(this, ev.reason)
      if (refused) return this.client.unauthorized(this, 'the server refused the connection (401)')
      this.lost()
    }
    clearInterval(this.pinger)
    const interval = this.client.pingInterval
    this.pinger = setInterval(() => {
      if (this.ws !== ws) return
      if (Date.now() - this.lastSeen > 3 * interval) {
        debug('nothing from %s for %d ms: dropped', this.url, 3 * interval)
        this.drop()
        return
      }
      if (ws.readyState === OPEN) ws.send(encodeFrame(FrameType.PING, 0))
    }, interval)
    ;(this.pinger as { unref?: () => void }).unref?.()
  }

  /** Drops the socket now (the server or the network is gone); it reconnects. */
  drop (): void {
    const ws = this.ws
    if (!ws) return
    this.ws = undefined
    const t = ws as SocketLike & { terminate?: () => void }
    if (typeof t.terminate === 'function') t.terminate()
    else ws.close()
    this.lost()
  }

  private violate (reason: string): void {
    debug('protocol error from %s: %s', this.url, reason)
    this.ws?.close(4002, reason.slice(0, 120))
    this.drop()
  }

  private lost (): void {
    if (this.state === 'closed') return
    const wasReady = this.state === 'ready'
    this.state = 'down'
    clearInterval(this.pinger)
    this.byId.clear()
    for (const l of this.links) l.disconnected()
    // Calls in flight: idempotent ones go again after the reconnection, the others fail.
    for (const c of this.calls.values()) {
      if (c.retry) this.queued.push(c)
      else c.reject(this.client.lostError(this.url))
    }
    this.calls.clear()
    if (this.downSince === 0) this.downSince = Date.now()
    if (wasReady) this.client.emitEvent('reconnecting', this.url)
    if (Date.now() - this.downSince > this.client.giveUpAfter) return this.client.giveUp(this)
    const base = Math.min(this.client.maxReconnectDelay, this.client.reconnectDelay * 2 ** this.attempt++)
    const delay = Math.round(base * (0.5 + Math.random() / 2))
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => this.connect(), delay)
  }

  private dispatch (f: Frame): void {
    switch (f.type) {
      case FrameType.PING: return this.sendFrame(encodeFrame(FrameType.PONG, 0, f.payload))
      case FrameType.PONG: return
      case FrameType.CHALLENGE: return this.answer(f.payload)
      case FrameType.WELCOME: return this.welcome(f.payload)
    }
    if (this.state !== 'ready') throw new ProtocolError(`${FrameType[f.type]} before the handshake ended`)
    if (f.type === FrameType.REPLY) {
      const c = this.calls.get(f.stream)
      if (!c) return
      this.calls.delete(f.stream)
      c.resolve(decodeCall(f.payload, 'REPLY'))
      return
    }
    const link = this.byId.get(f.stream)
    if (!link) {
      // A stream destroyed while it was opening: close it on the server too.
      if (f.type === FrameType.OPENED) this.sendFrame(encodeFrame(FrameType.RESET, f.stream, '{}'))
      return
    }
    switch (f.type) {
      case FrameType.OPENED: return link.onOpened()
      case FrameType.DATA: return link.onData(decodeBatch(f.payload).messages)
      case FrameType.ACK: return link.onAck(f.payload.readDoubleBE(0))
      case FrameType.END: return link.onEnd()
      case FrameType.EVENT: return link.owner.onEvent?.(parseJson(f.payload, 'EVENT'))
      case FrameType.RESET: {
        const e = parseJson(f.payload, 'RESET')
        this.byId.delete(f.stream)
        return link.fail(this.client.errorFromWire(e))
      }
      default:
        throw new ProtocolError(`unexpected ${FrameType[f.type]} frame from the server`)
    }
  }

  private answer (serverNonce: Buffer): void {
    if (this.state !== 'connecting') throw new ProtocolError('CHALLENGE out of turn')
    const ws = this.ws
    this.nonce = Buffer.from(serverNonce)
    const clientNonce = randomNonce()
    const secret = this.client.secret
    const proof = secret === undefined ? Promise.resolve(Buffer.alloc(MAC_SIZE)) : clientProof(secret, serverNonce, clientNonce)
    proof.then((mac) => {
      if (this.ws !== ws) return
      this.clientNonce = clientNonce
      ws?.send(encodeFrame(FrameType.AUTH, 0, Buffer.concat([clientNonce, mac, Buffer.from(JSON.stringify({ id: this.client.id }))])))
    }, (err: Error) => this.client.giveUp(this, err))
  }

  private clientNonce?: Buffer

  private welcome (payload: Buffer): void {
    if (this.state !== 'connecting' || !this.nonce || !this.clientNonce) throw new ProtocolError('WELCOME out of turn')
    const mac = payload.subarray(0, MAC_SIZE)
    const info = parseJson(payload.subarray(MAC_SIZE), 'WELCOME')
    const ws = this.ws
    const secret = this.client.secret
    const check = secret === undefined ? Promise.resolve(true) : serverProof(secret, this.nonce, this.clientNonce).then((m) => sameBytes(m, mac))
    check.then((ok) => {
      if (this.ws !== ws) return
      if (!ok) return this.client.unauthorized(this, 'the server could not prove it knows the secret')
      if (typeof info.maxMessageSize === 'number') this.maxMessageSize = info.maxMessageSize
      if (typeof info.writeWindow === 'number') this.writeWindow = info.writeWindow
      this.serverId = typeof info.id === 'string' ? info.id : ''
      const reconnected = this.downSince !== 0
      this.state = 'ready'
      this.attempt = 0
      this.downSince = 0
      debug('connected to %s', this.url)
      for (const l of this.links) l.send()
      for (const c of this.queued.splice(0)) this.sendCall(c)
      for (const w of this.readyWaiters.splice(0)) w.resolve()
      if (reconnected) this.client.emitEvent('reconnected', this.url)
    }, () => {})
  }

  /** @internal Sends a frame if the socket is open (what is lost meanwhile is sent again on resume). */
  sendFrame (frame: Uint8Array): void {
    const ws = this.ws
    if (ws && ws.readyState === OPEN && this.state === 'ready') ws.send(frame)
  }

  /** @internal A link placed on this connection: opened now if it is ready, else when it is. */
  attach (link: Link): void {
    this.links.add(link)
    if (this.state === 'ready') link.send()
    else if (this.state === 'idle') this.connect()
  }

  /** @internal A fresh stream id for `link` on this socket. */
  register (link: Link): number {
    const id = this.nextId++
    this.byId.set(id, link)
    link.id = id
    return id
  }

  detach (link: Link): void {
    this.links.delete(link)
    if (this.byId.get(link.id) === link) this.byId.delete(link.id)
  }

  /** A one-off call; `retry`: sent again after a reconnection (it is idempotent). */
  call (value: Record<string, unknown>, payloads: Buffer[], retry: boolean): Promise<{ value: Record<string, any>, payloads: Buffer[] }> {
    if (this.state === 'closed') return Promise.reject(this.client.lostError(this.url))
    return new Promise((resolve, reject) => {
      const c: PendingCall = { payload: encodeCall(value, payloads), retry, resolve, reject, id: 0 }
      const timer = setTimeout(() => {
        this.calls.delete(c.id)
        const i = this.queued.indexOf(c)
        if (i >= 0) this.queued.splice(i, 1)
        reject(this.client.lostError(this.url, 'the call timed out waiting for its connection'))
      }, this.client.callTimeout)
      ;(timer as { unref?: () => void }).unref?.()
      c.resolve = (v) => { clearTimeout(timer); resolve(v) }
      c.reject = (e) => { clearTimeout(timer); reject(e) }
      if (this.state === 'ready') this.sendCall(c)
      else {
        this.queued.push(c)
        if (this.state === 'idle') this.connect()
      }
    })
  }

  private sendCall (c: PendingCall): void {
    c.id = this.nextId++
    this.calls.set(c.id, c)
    this.sendFrame(encodeFrame(FrameType.CALL, c.id, c.payload))
  }

  /** Closes for good: links and calls fail with `err`. */
  close (err: Error): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    clearInterval(this.pinger)
    clearTimeout(this.retryTimer)
    const ws = this.ws
    this.ws = undefined
    ws?.close(1000, 'client closing')
    for (const c of [...this.calls.values(), ...this.queued.splice(0)]) c.reject(err)
    this.calls.clear()
    for (const w of this.readyWaiters.splice(0)) w.reject(err)
    for (const l of [...this.links]) l.fail(err)
  }

  /** Streams on this connection (to spread new ones). */
  get load (): number {
    return this.links.size
  }
}

export { NONCE_SIZE }
