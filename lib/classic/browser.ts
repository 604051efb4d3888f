/**
 * BusMQ 3.1's browser API (`busmq/classic/browser`, or `busmq-classic.min.js` as the global function
 * `busmq`): `busmq(url, secret)` gives a bus whose `queue`, `channel`, `pubsub` and `persistify` call back
 * with busmq/classic's objects once the federation connection is ready. The objects are the Node ones
 * (ClassicQueue, ClassicChannel, ClassicPubsub, persistify) over the browser client's federation handles.
 */
import { EventEmitter } from 'events'
import { connect, type BrowserBus } from '../federation/browser.js'
import type { ClassicHost } from './classic-host.js'
import { ClassicQueue } from './classic-queue.js'
import { ClassicChannel } from './classic-channel.js'
import { ClassicPubsub } from './classic-pubsub.js'
import { persistify, type Persistable } from './persistable.js'
import { classicName } from './util.js'

export type { ClassicQueue, ClassicChannel, ClassicPubsub, Persistable }

/** 3.1's default federation secret (that of `federate` in busmq/classic). */
const DEFAULT_SECRET = 'notsosecret'

/** A 3.1 browser callback: an error, or the object once ready. */
export type ClassicReadyCallback<T> = (err: Error | null, object?: T) => void

/**
 * The bus `busmq(url, secret)` returns. Events (of the federation connection): `reconnecting`,
 * `reconnected`, `unauthorized` (err), `close` (it gave up or was disconnected).
 */
export class ClassicBrowserBus extends EventEmitter {
  /** The browser client underneath (`busmq/browser`'s bus): for moving to the native API one call at a time. */
  readonly browser: BrowserBus
  /** @internal */
  readonly native: ClassicHost['native']
  /** @internal Connected channels, detached by `disconnect()`. */
  readonly open = new Set<{ close: () => Promise<void> }>()

  /** @internal Use `busmq(url, secret)`. */
  constructor (url: string | string[], secret: string = DEFAULT_SECRET) {
    super()
    const b = connect(url, { secret })
    this.browser = b
    for (const e of ['reconnecting', 'reconnected', 'close']) b.on(e, () => this.emit(e))
    b.on('unauthorized', (_url: string, err: Error) => this.emit('unauthorized', err))
    // The same factories a federation-only Node bus has (its handles are these, cast the same way).
    this.native = {
      federationOnly: true,
      queue: (name: string, options?: object) => b.queue(name, options),
      channel: (name: string, options?: object) => b.channel(name, options),
      pubsub: (name: string, options?: object) => b.pubsub(name, options),
      object: (name: string, options?: object) => b.object(name, options)
    } as unknown as ClassicHost['native']
  }

  /** @internal */
  federationUrl (url: string): string {
    return url
  }

  /** Calls back with `object` once connected, or with the connection's error (e.g. `ERR_BUSMQ_UNAUTHORIZED`). */
  private ready<T> (object: T, cb?: ClassicReadyCallback<T>): T {
    this.browser.connect().then(() => cb?.(null, object), (err: Error) => cb?.(err))
    return object
  }

  /** A federated queue: `cb(err, queue)` once ready (attach it, then push and consume). */
  queue (name: string, cb?: ClassicReadyCallback<ClassicQueue<ClassicBrowserBus>>): ClassicQueue<ClassicBrowserBus> {
    return this.ready(new ClassicQueue(this, classicName(name, 'queue name')), cb)
  }

  /** A federated channel between roles `local` and `remote`: `cb(err, channel)` once ready. */
  channel (name: string, local?: string, remote?: string, cb?: ClassicReadyCallback<ClassicChannel<ClassicBrowserBus>>): ClassicChannel<ClassicBrowserBus> {
    return this.ready(new ClassicChannel(this, classicName(name, 'channel name'), local, remote), cb)
  }

  /** A federated publish/subscribe channel: `cb(err, pubsub)` once ready. */
  pubsub (name: string, cb?: ClassicReadyCallback<ClassicPubsub<ClassicBrowserBus>>): ClassicPubsub<ClassicBrowserBus> {
    return this.ready(new ClassicPubsub(this, classicName(name, 'pubsub name')), cb)
  }

  /** Adds `save`, `load`, `persist`, `unpersist` to `object`, tracking `attributes`: `cb(err, persisted)` once ready. */
  persistify<T extends object> (name: string, object: T, attributes: readonly string[], cb?: ClassicReadyCallback<Persistable<T>>): Persistable<T> {
    return this.ready(persistify(this, classicName(name, 'object name'), object, attributes), cb)
  }

  /** Closes the WebSockets (not in 3.1's browser API): every object of this bus is done with. */
  disconnect (): void {
    const open = [...this.open]
    this.open.clear()
    void Promise.allSettled(open.map(async (o) => await o.close())).then(async () => await this.browser.close())
  }
}

/** BusMQ 3.1's `busmq(url, secret)`: a bus on the federation server at `url` (ws:// or wss://). */
export function busmq (url: string | string[], secret?: string): ClassicBrowserBus {
  return new ClassicBrowserBus(url, secret)
}

export default busmq
