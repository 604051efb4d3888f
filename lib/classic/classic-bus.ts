import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import createDebug from 'debug'
import { Bus } from '../bus.js'
import type { Client } from '../router/shard.js'
import { ClassicUsageError } from '../errors.js'
import { DEFAULT_SECRET, nativeOptions, wsUrl, type ClassicBusOptions, type ClassicLog } from './classic-options.js'
import { ClassicLogger } from './classic-logger.js'
import { ClassicQueue } from './classic-queue.js'
import { ClassicChannel } from './classic-channel.js'
import { ClassicPubsub } from './classic-pubsub.js'
import { ClassicService } from './classic-service.js'
import { persistify, type Persistable } from './persistable.js'
import { classicName, promisifyMethods } from './util.js'
import { ClassicFederation, FederationTarget, serveOptions, targetUrl } from './classic-federation.js'

const debug = createDebug('busmq:classic')

/**
 * BusMQ 3.1's bus (`Bus.create(options)`), over a native {@link Bus}. Events: `online` once every shard
 * is connected (again after a connection was lost and came back), `offline` when one is lost and when
 * `disconnect()` has closed the bus, `error` (err).
 */
export class ClassicBus extends EventEmitter {
  /** This bus's id (`bus:<16 hex digits>`, as in 3.1). */
  readonly id = `bus:${randomBytes(8).toString('hex')}`
  readonly options: ClassicBusOptions
  /** @internal Where the native bus logs. */
  readonly logger = new ClassicLogger()
  private nativeBus?: Bus
  private connected = false
  private online = false
  /** @internal The last disconnect(), once its close is done. */
  closing?: Promise<void>
  /** @internal What disconnect() detaches before closing (connected channels). */
  readonly open = new Set<{ close: () => Promise<void> }>()
  /** The federation-only buses of `federate()`, by target URL. */
  private readonly targets = new Map<string, FederationTarget>()

  /**
   * Use `Bus.create(options)`. Throws `ERR_BUSMQ_INVALID_OPTION` for a bad layout, URL or `federate`.
   * @internal `native`: a classic face for that bus (connected already; for `federate()`).
   */
  constructor (options: ClassicBusOptions = {}, native?: Bus) {
    super()
    this.options = options
    // Checked now (a bad option throws at create), used for each native bus connect() makes.
    nativeOptions(options, this.logger)
    if (native) {
      this.nativeBus = native
      this.connected = true
    }
    if (options.logLevel !== undefined) this.logger.setLevel(options.logLevel)
    if (options.logger !== undefined) this.withLog(options.logger)
    if (options.driver !== undefined) debug('driver %s requested: busmq/classic always uses ioredis', options.driver)
  }

  /**
   * The native bus underneath (made when first needed, and by the first `connect()` after a
   * `disconnect()`): for code that migrates one call at a time to the native API on the same connections.
   */
  get native (): Bus {
    // After disconnect() the closed bus stays (objects made before fail with ERR_BUSMQ_CLOSED) until connect().
    if (!this.nativeBus) {
      const bus = new Bus(nativeOptions(this.options, this.logger))
      bus.on('online', () => this.update())
      bus.on('offline', () => this.update())
      bus.on('error', (err: Error) => {
        if (this.listenerCount('error') > 0) this.emit('error', err)
        else debug('bus error: %s', err.message)
      })
      this.nativeBus = bus
    }
    return this.nativeBus
  }

  /** Emits online / offline when the state changes (connected and every shard up, or not). */
  private update (): void {
    const now = this.connected && this.nativeBus !== undefined && this.nativeBus.online
    if (now === this.online) return
    this.online = now
    this.emit(now ? 'online' : 'offline')
  }

  /** An error only listeners hear about (connection errors, misuse of the bus), as the native bus does. */
  private report (err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else debug('error: %s', err.message)
  }

  /** Sets the logger (see `ClassicLog`); returns the bus. */
  withLog (log: ClassicLog): this {
    this.logger.target = log
    return this
  }

  /** Logs debug messages too (`on`), or only errors; returns the bus. */
  debug (on: boolean): this {
    this.logger.setLevel(on ? 'debug' : 'error')
    return this
  }

  /**
   * Connects to Redis: `online` follows once every shard is connected. A second call before
   * `disconnect()` emits `error` (`ERR_BUSMQ_CLASSIC_USAGE`, 'already connected').
   */
  connect (): void {
    if (this.connected) {
      this.report(new ClassicUsageError('already connected'))
      return
    }
    this.connected = true
    if (this.nativeBus?.closed === true) this.nativeBus = undefined
    const bus = this.native
    bus.connect().then(() => {
      const f = this.options.federate
      if (f?.server !== undefined && !bus.closed) bus.federate(serveOptions(f))
      this.update()
    }).catch((err: Error) => this.report(err))
  }

  /**
   * Closes every connection (and every stream of this bus's queues, channels, pub/subs and services),
   * stops serving federation and ends the federations of `federate()`; `offline` follows when the bus
   * was online. Objects made before it are done with; `connect()` again starts afresh.
   */
  disconnect (): void {
    const bus = this.nativeBus
    this.connected = false
    for (const t of [...this.targets.values()]) t.close()
    if (!bus || bus.closed) return
    bus.removeAllListeners('online')
    bus.removeAllListeners('offline')
    const open = [...this.open]
    this.open.clear()
    this.closing = Promise.allSettled(open.map((o) => o.close())).then(() => bus.close()).then(() => this.update())
  }

  /** @internal The entry of `federate.urls` that the native `find()` answered with (its ws:// form). */
  federationUrl (url: string): string {
    return this.options.federate?.urls?.find((u) => wsUrl(u) === url) ?? url
  }

  /** True while every shard is connected (after `online`, before `offline`). */
  isOnline (): boolean {
    return this.online
  }

  /**
   * The Redis connection (an ioredis client) that holds `key`, or that a new `key` would go to; without
   * a key, the first shard's. Also returned when there is no key. Do not close it: the bus owns it.
   */
  connection (key?: string | ((client: Client) => void), cb?: (client: Client) => void): Client | undefined {
    if (typeof key === 'function') {
      cb = key
      key = undefined
    }
    const router = this.native.router
    if (!key) {
      const client = router.all()[0].client
      cb?.(client)
      return client
    }
    const k = key
    this.native.connect()
      .then(() => router.locate(k, [k]))
      .then((shard) => cb?.(shard.client), (err: Error) => this.report(err))
    return undefined
  }

  /**
   * A queue (attach it before use). Names outside this BusMQ's rules are stored escaped (see
   * `classicName`: a space is `=20`); throws `ERR_BUSMQ_INVALID_NAME` for an empty or too long name.
   */
  queue (name: string): ClassicQueue {
    return new ClassicQueue(this, classicName(name, 'queue name'))
  }

  /** A channel between two roles (default `local` and `remote`). */
  channel (name: string, local?: string, remote?: string): ClassicChannel {
    return new ClassicChannel(this, classicName(name, 'channel name'), local, remote)
  }

  /** A publish/subscribe channel. */
  pubsub (name: string): ClassicPubsub {
    return new ClassicPubsub(this, classicName(name, 'pubsub name'))
  }

  /** A service endpoint (serve or connect it before use). */
  service (name: string): ClassicService {
    return new ClassicService(this, classicName(name, 'service name'))
  }

  /** Adds `save`, `load`, `persist`, `unpersist` to `object` and tracks `properties` for saving. */
  persistify<T extends object> (name: string, object: T, properties: readonly string[]): Persistable<T> {
    return persistify(this, classicName(name, 'object name'), object, properties)
  }

  /** Makes the named callback methods of `object` return promises; returns `object`. */
  promisify<T extends object> (object: T, methods: readonly string[]): T {
    return promisifyMethods(object, methods)
  }

  /**
   * Federates `object` (a queue, channel, pubsub, service or persistable of this bus) to the bus serving
   * federation at `target` (`http(s)://` or `ws(s)://` URL): `ready` hands over the same kind of object,
   * used through that bus. Objects federated to one URL share its WebSockets (`federate.poolSize`,
   * `federate.secret`). Throws `ERR_BUSMQ_CLASSIC_UNSUPPORTED` for a target that is not a URL.
   */
  federate<T extends object> (object: T, target: unknown): ClassicFederation<T> {
    const url = targetUrl(target)
    let t = this.targets.get(url)
    if (!t) {
      const f = this.options.federate ?? {}
      const secret = f.secret ?? DEFAULT_SECRET
      const native = new Bus({
        logger: this.logger,
        federation: { urls: [url], ...(typeof secret === 'string' ? { secret } : {}), ...(f.poolSize !== undefined ? { poolSize: f.poolSize } : {}) }
      })
      const created: FederationTarget = new FederationTarget(url, native, new ClassicBus({}, native), () => {
        if (this.targets.get(url) === created) this.targets.delete(url)
      })
      t = created
      this.targets.set(url, t)
    }
    try {
      return new ClassicFederation<T>(t, object)
    } catch (err) {
      if (t.feds.size === 0) t.close()
      throw err
    }
  }
}
