import { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { FederateOptions } from '../federation/federation-options.js'
import { ClassicUnsupportedError, ClassicUsageError } from '../errors.js'
import { DEFAULT_SECRET, wsUrl, type ClassicFederateOptions, type ClassicVerifyClient } from './classic-options.js'
import type { ClassicBus } from './classic-bus.js'
import { ClassicQueue } from './classic-queue.js'
import { ClassicChannel } from './classic-channel.js'
import { ClassicPubsub } from './classic-pubsub.js'
import { ClassicService } from './classic-service.js'
import { PERSISTED } from './persistable.js'

const debug = createDebug('busmq:classic')

/** ws's `verifyClient(info[, cb])` as the native `authorize(request)` hook (a falsy result refuses with 401). */
export function verifyClientHook (fn: ClassicVerifyClient): (req: IncomingMessage) => Promise<boolean> {
  return async (req) => {
    const info = { origin: req.headers.origin, secure: (req.socket as TLSSocket).encrypted === true, req }
    if (fn.length >= 2) return await new Promise<boolean>((resolve) => { (fn as any)(info, (result: boolean) => resolve(result)) })
    return (fn as (i: typeof info) => boolean)(info)
  }
}

/** How a classic bus with `federate: { server, path, secret }` serves federation on its native bus. */
export function serveOptions (f: ClassicFederateOptions): FederateOptions {
  const secret = f.secret ?? DEFAULT_SECRET
  return {
    server: f.server!,
    path: f.path ?? '/',
    ...(typeof secret === 'function' ? { authorize: verifyClientHook(secret) } : { secret })
  }
}

/** 3.1's federation targets are http(s):// URLs; the native client speaks ws(s)://. */
export function targetUrl (target: unknown): string {
  if (typeof target !== 'string') {
    throw new ClassicUnsupportedError('busmq/classic federates to a URL only (not over an already open websocket)')
  }
  return wsUrl(target)
}

/** The kind of classic object `object` is, made again on `bus` (same name, roles, properties). */
export function sameObjectOn (bus: ClassicBus, object: unknown): object {
  if (object instanceof ClassicQueue) return bus.queue(object.name)
  if (object instanceof ClassicChannel) return bus.channel(object.name, object.local, object.remote)
  if (object instanceof ClassicPubsub) return bus.pubsub(object.name)
  if (object instanceof ClassicService) return bus.service(object.name)
  const persisted = (object as Record<symbol, { name: string, properties: readonly string[] } | undefined> | null)?.[PERSISTED]
  if (persisted) return bus.persistify(persisted.name, object as object, persisted.properties)
  throw new ClassicUsageError('cannot federate: not a queue, channel, pubsub, service or persistable of busmq/classic')
}

/** The federation-only native bus (and its classic face) that every object federated to one URL shares. */
export class FederationTarget {
  readonly feds = new Set<ClassicFederation<any>>()
  private closed = false

  constructor (readonly url: string, readonly native: Bus, readonly classic: ClassicBus, private readonly forget: () => void) {
    native.on('unauthorized', (_url: string, err: Error) => this.each((f) => f.emit('unauthorized', err)))
    native.on('reconnecting', () => this.each((f) => f.emit('reconnecting')))
    native.on('reconnected', () => this.each((f) => f.emit('reconnected')))
    native.on('close', () => this.close())
    native.on('error', (err: Error) => this.each((f) => f.report(err)))
  }

  private each (fn: (f: ClassicFederation<any>) => void): void {
    for (const f of [...this.feds]) fn(f)
  }

  /** Closes the WebSockets: every object federated to the URL is done with; each federation emits `close`. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.forget()
    this.classic.disconnect()
    this.each((f) => f.closed())
  }

  /** A federation stopped: the last one closes the WebSockets. */
  remove (fed: ClassicFederation<any>): void {
    this.feds.delete(fed)
    if (this.feds.size === 0) this.close()
  }
}

/**
 * What `bus.federate(object, target)` returns (BusMQ 3.1's). Events: `ready` (the federated object: the
 * same kind of object, used through the federation server), `unauthorized` (err), `reconnecting`,
 * `reconnected`, `close`, `error` (err).
 */
export class ClassicFederation<T = unknown> extends EventEmitter {
  private done = false

  override on (event: 'ready', listener: (object: T) => void): this
  override on (event: 'unauthorized' | 'error', listener: (err: Error) => void): this
  override on (event: 'reconnecting' | 'reconnected' | 'close', listener: () => void): this
  override on (event: string | symbol, listener: (...args: any[]) => void): this
  override on (event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener)
  }

  override once (event: 'ready', listener: (object: T) => void): this
  override once (event: 'unauthorized' | 'error', listener: (err: Error) => void): this
  override once (event: 'reconnecting' | 'reconnected' | 'close', listener: () => void): this
  override once (event: string | symbol, listener: (...args: any[]) => void): this
  override once (event: string | symbol, listener: (...args: any[]) => void): this {
    return super.once(event, listener)
  }

  /** @internal Use `bus.federate(object, target)`. */
  constructor (private readonly target: FederationTarget, object: unknown) {
    super()
    const federated = sameObjectOn(target.classic, object)
    target.feds.add(this)
    target.native.connect().then(() => {
      if (!this.done) this.emit('ready', federated)
    }, (err: Error & { code?: string }) => {
      // unauthorized and close (gave up) arrive as events of their own.
      if (err.code !== 'ERR_BUSMQ_UNAUTHORIZED' && err.code !== 'ERR_BUSMQ_FEDERATION') this.report(err)
    })
  }

  /** @internal An error only listeners hear about. */
  report (err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else debug('federation error: %s', err.message)
  }

  /** @internal The federation is over: `close` (once). */
  closed (): void {
    if (this.done) return
    this.done = true
    this.emit('close')
  }

  /**
   * Stops the federation (`close`). `disconnect`: also closes the WebSockets to the target, which ends
   * every object federated to it; they close anyway when this was the last one.
   */
  close (disconnect = false): void {
    if (this.done) return
    if (disconnect) this.target.close()
    else {
      this.closed()
      this.target.remove(this)
    }
  }
}
