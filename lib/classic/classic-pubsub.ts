import { EventEmitter } from 'events'
import type { PubSub } from '../pubsub/pubsub.js'
import type { PubSubReadStream } from '../pubsub/pubsub-read-stream.js'
import type { ClassicBus } from './classic-bus.js'
import type { ClassicHost } from './classic-host.js'
import { isClosedError, promisifyMethods, settle, toPayload, toText, type Callback } from './util.js'

/**
 * BusMQ 3.1's publish/subscribe over a native {@link PubSub} (messages as strings). Events: `subscribed`,
 * `message` (message), `unsubscribed`, `error` (err).
 */
export class ClassicPubsub<B = ClassicBus> extends EventEmitter {
  readonly type = 'pubsub'
  readonly name: string
  readonly bus: B
  /** What this object uses of its bus (the bus itself). */
  private readonly host: ClassicHost
  private topicOf?: PubSub<Buffer>
  private reader?: PubSubReadStream<Buffer>
  private subscribed = false

  /** @internal Use `bus.pubsub(name)`. */
  constructor (bus: B & ClassicHost, name: string) {
    super()
    this.bus = bus
    this.host = bus
    this.name = name
  }

  private get topic (): PubSub<Buffer> {
    this.topicOf ??= this.host.native.pubsub(this.name)
    return this.topicOf
  }

  /** Subscribes: `subscribed` once in place, then `message` (message) per message published. */
  subscribe (): void {
    if (this.subscribed) return
    this.subscribed = true
    const reader = this.topic.createReadStream()
    this.reader = reader
    // Federated (bus.federate()): `ready` once the server's stream is open.
    reader.on(this.host.native.federationOnly ? 'ready' : 'subscribed', () => this.emit('subscribed'))
    reader.on('data', (data: Buffer) => { if (this.reader === reader) this.emit('message', toText(data)) })
    reader.on('error', (err: Error) => { if (!isClosedError(err)) this.emit('error', err) })
    reader.on('close', () => this.emit('unsubscribed'))
  }

  /** Alias of `subscribe()`. */
  attach (): void {
    this.subscribe()
  }

  /** Unsubscribes: `unsubscribed`. Publishing still works. */
  unsubscribe (): void {
    if (!this.subscribed) return
    this.subscribed = false
    const reader = this.reader
    this.reader = undefined
    reader?.destroy()
  }

  /** Alias of `unsubscribe()`. */
  detach (): void {
    this.unsubscribe()
  }

  /** True while subscribed. */
  isSubscribed (): boolean {
    return this.subscribed
  }

  /** Publishes a message (an object travels as JSON) to those subscribed now; `cb(err)`. */
  publish (message: unknown, cb?: Callback<void>): void {
    settle(this.topic.publish(toPayload(message)).then(() => undefined), cb, this)
  }

  /** Makes publish return a promise; returns the pubsub. */
  promisify (): this {
    return promisifyMethods(this, ['publish'])
  }
}
