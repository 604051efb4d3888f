import { Buffer } from 'buffer'
import createDebug from 'debug'
import { ClientConnection, type SocketFactory } from './client-connection.js'
import { Link, type LinkOwner } from './link.js'
import { checkInt, checkDelay } from '../names.js'
import {
  BusMQError, FederationError, InvalidOptionError, RemoteError, UnauthorizedError, type BusMQErrorCode
} from '../errors.js'
import { DEFAULT_FEDERATION_OPTIONS, type FederationOptions } from './federation-options.js'

const debug = createDebug('busmq:federation')

/** The events a federation client reports (through its bus). */
export type FederationEvent = 'reconnecting' | 'reconnected' | 'unauthorized' | 'close'

/**
 * The client side of federation: a pool of connections to federation servers, on which streams (links)
 * and calls are spread. Reconnects with backoff; gives up (`close`) after `giveUpAfter` ms without a
 * connection, or at once when the server refuses the credentials (`unauthorized`).
 */
export class FederationClient {
  readonly urls: string[]
  readonly secret?: string
  readonly pingInterval: number
  readonly reconnectDelay: number
  readonly maxReconnectDelay: number
  readonly giveUpAfter: number
  readonly callTimeout: number
  private readonly pool: ClientConnection[]
  private next = 0
  private closedWith?: Error
  private producerCount = 0

  constructor (
    options: FederationOptions,
    readonly id: string,
    readonly createSocket: SocketFactory,
    private readonly emit: (event: FederationEvent, ...args: unknown[]) => void
  ) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionError('federation must be an object')
    const urls = options.urls
    if (!Array.isArray(urls) || urls.length === 0 || urls.some((u) => typeof u !== 'string' || !/^wss?:\/\//.test(u))) {
      throw new InvalidOptionError('federation.urls must be a non-empty list of ws:// or wss:// URLs')
    }
    if (options.secret !== undefined && (typeof options.secret !== 'string' || options.secret.length === 0)) {
      throw new InvalidOptionError('federation.secret must be a non-empty string')
    }
    this.urls = [...urls]
    this.secret = options.secret
    const d = DEFAULT_FEDERATION_OPTIONS
    const poolSize = checkInt(options.poolSize ?? d.poolSize, 'federation.poolSize', 1, 1024)
    this.pingInterval = checkDelay(options.pingInterval ?? d.pingInterval, 'federation.pingInterval', 10)
    this.reconnectDelay = checkDelay(options.reconnectDelay ?? d.reconnectDelay, 'federation.reconnectDelay', 1)
    this.maxReconnectDelay = checkDelay(options.maxReconnectDelay ?? d.maxReconnectDelay, 'federation.maxReconnectDelay', 1)
    this.giveUpAfter = checkInt(options.giveUpAfter ?? d.giveUpAfter, 'federation.giveUpAfter', 0)
    this.callTimeout = checkDelay(options.callTimeout ?? d.callTimeout, 'federation.callTimeout', 1)
    const size = Math.max(poolSize, this.urls.length)
    this.pool = Array.from({ length: size }, (_, i) => new ClientConnection(this, this.urls[i % this.urls.length]))
  }

  /** Resolves once every connection of the pool is ready; rejects with `ERR_BUSMQ_UNAUTHORIZED` or when it gave up. */
  async connect (): Promise<void> {
    if (this.closedWith) throw this.closedWith
    await Promise.all(this.pool.map(async (c) => await c.ready()))
  }

  /** The least busy connection (new streams go there). */
  private pick (): ClientConnection {
    let best = this.pool[this.next++ % this.pool.length]
    for (const c of this.pool) if (c.load < best.load) best = c
    return best
  }

  /** Throws the reason the client closed (unauthorized, gave up, closed), if it did. */
  assertOpen (): void {
    if (this.closedWith) throw this.closedWith
  }

  /** A stream link, not yet open. */
  link (op: string, name: string, options: Record<string, unknown>, owner: LinkOwner, window?: { bytes: number, messages: number }): Link {
    if (this.closedWith) throw this.closedWith
    return new Link(this.pick(), op, name, options, owner, window)
  }

  /** A fresh producer id for write streams and one-off pushes (the server keeps a record of each). */
  producerId (): string {
    const r = new Uint8Array(9)
    globalThis.crypto.getRandomValues(r)
    return `${Buffer.from(r).toString('hex')}${(++this.producerCount).toString(36)}`
  }

  /** A one-off call; `retry` for idempotent ones (sent again after a reconnection). */
  async call (op: string, name: string, args: Record<string, unknown>, payloads: Buffer[] = [], options: { retry?: boolean, url?: string } = {}): Promise<{ result: any, payloads: Buffer[] }> {
    if (this.closedWith) throw this.closedWith
    const conn = options.url === undefined ? this.pick() : this.pool.find((c) => c.url === options.url)!
    const { value, payloads: out } = await conn.call({ op, name, args }, payloads, options.retry ?? true)
    if (value.error) throw this.errorFromWire(value.error)
    return { result: value.result, payloads: out }
  }

  /** The first of `urls` whose server's bus has the queue `name` (with `args.deadLetter`: its dead-letter queue), or null. */
  async find (name: string, args: Record<string, unknown> = {}): Promise<string | null> {
    for (const url of this.urls) {
      const { result } = await this.call('find', name, args, [], { url })
      if (result === true) return url
    }
    return null
  }

  /** @internal An error sent by the server, as the class with its code. */
  errorFromWire (e: Record<string, any>): Error {
    const code = typeof e.code === 'string' && e.code.startsWith('ERR_BUSMQ_') ? e.code as BusMQErrorCode : 'ERR_BUSMQ_FEDERATION'
    const message = typeof e.message === 'string' ? e.message : 'the federation server failed'
    if (code === 'ERR_BUSMQ_REMOTE' && e.details && typeof e.details === 'object') return new RemoteError(e.details)
    const err = new BusMQError(message, code)
    err.name = code.slice('ERR_BUSMQ_'.length).toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase()) + 'Error'
    return err
  }

  /** @internal */
  lostError (url: string, why = 'the connection was lost'): FederationError {
    return new FederationError(`${why} (federation server ${url})`)
  }

  /** @internal */
  emitEvent (event: FederationEvent, ...args: unknown[]): void {
    debug('%s %o', event, args)
    this.emit(event, ...args)
  }

  /** @internal A server refused the credentials: nothing more is tried. */
  unauthorized (conn: ClientConnection, reason: string): void {
    if (this.closedWith) return
    const err = new UnauthorizedError(`the federation server ${conn.url} refused the credentials${reason ? ` (${reason})` : ''}`)
    this.emitEvent('unauthorized', conn.url, err)
    this.shutdown(err)
    this.emitEvent('close', err)
  }

  /** @internal A connection could not be restored in time. */
  giveUp (conn: ClientConnection, cause?: Error): void {
    if (this.closedWith) return
    const err = new FederationError(`gave up reconnecting to ${conn.url} after ${this.giveUpAfter} ms`, { cause })
    this.shutdown(err)
    this.emitEvent('close', err)
  }

  private shutdown (err: Error): void {
    this.closedWith = err
    for (const c of this.pool) c.close(err)
  }

  /** Closes every connection; streams still open fail with `ERR_BUSMQ_CLOSED`-like federation errors. */
  close (err: Error): void {
    if (this.closedWith) return
    this.shutdown(err)
  }

  /** Whether it gave up or was closed. */
  get closed (): boolean {
    return this.closedWith !== undefined
  }

  /** @internal For tests: drops every socket as if the network failed (they reconnect). */
  dropConnections (): void {
    for (const c of this.pool) c.drop()
  }
}
