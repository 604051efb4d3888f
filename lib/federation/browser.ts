/**
 * The browser client (`busmq/browser`, or `busmq.min.js` as the global `busmq`): `connect(url, { secret })`
 * gives a bus whose queues, channels, pub/sub topics, service requests and objects all go through a
 * federation server, over the page's native WebSocket, with the same stream API as in Node
 * (readable-stream).
 */
import { EventEmitter } from 'events'
import { RemoteBus } from './remote-bus.js'
import type { SocketLike } from './client-connection.js'
import type { FederationOptions } from './federation-options.js'
import { BusClosedError } from '../errors.js'
import type { RemoteQueue, RemotePubSub, RemoteService, RemoteObject } from './remote-handles.js'
import type { RemoteChannel } from './remote-streams.js'
import type { QueueOptions } from '../queue/queue-options.js'
import type { ChannelOptions } from '../channel/channel-options.js'
import type { CodecOptions } from '../queue/codec.js'
import type { ServiceOptions } from '../service/service-options.js'
import type { ObjectOptions } from '../object/object-options.js'

export { jsonCodec } from '../queue/codec.js'
export {
  BusMQError, UnauthorizedError, ForbiddenError, FederationError, InvalidNameError, InvalidOptionError, EncodeError,
  DecodeError, MessageTooLargeError, RemoteError, RequestTimeoutError, ConflictError, isBusMQError
} from '../errors.js'
export { Buffer } from 'buffer'

/** Options of `connect()`: those of the `federation` option of a Node bus, without `urls`. */
export interface ConnectOptions extends Omit<FederationOptions, 'urls' | 'socketOptions'> {
  /** Largest message, in bytes after encoding. @default 16 MiB */
  maxMessageSize?: number
  /** This client's id, as the server's `allow` hook sees it. @default a random id */
  id?: string
}

/**
 * A bus in a browser: every handle goes through federation. Events: `reconnecting`, `reconnected`,
 * `unauthorized`, `close` (it gave up), as on a Node bus with `federation`.
 */
export class BrowserBus extends EventEmitter {
  private readonly remote: RemoteBus
  private closedFlag = false

  constructor (urls: string[], options: ConnectOptions = {}) {
    super()
    const id = options.id ?? `browser-${Math.random().toString(36).slice(2)}`
    this.remote = new RemoteBus({ ...options, urls }, id, options.maxMessageSize ?? 16 * 1024 * 1024,
      () => { if (this.closedFlag) throw new BusClosedError() },
      (event, ...args) => this.emit(event, ...args),
      (url) => new globalThis.WebSocket(url) as unknown as SocketLike)
  }

  /** Resolves once connected; rejects with `ERR_BUSMQ_UNAUTHORIZED` for a wrong secret. */
  async connect (): Promise<void> {
    await this.remote.client.connect()
  }

  queue<T = any> (name: string, options?: QueueOptions): RemoteQueue<T> {
    this.remote.assertOpen()
    return this.remote.queue(name, options)
  }

  channel<T = any> (name: string, options?: ChannelOptions): RemoteChannel<T> {
    this.remote.assertOpen()
    return this.remote.channel(name, options)
  }

  pubsub<T = any> (name: string, options?: CodecOptions): RemotePubSub<T> {
    this.remote.assertOpen()
    return this.remote.pubsub(name, options)
  }

  service<Req = any, Res = any> (name: string, options?: ServiceOptions): RemoteService<Req, Res> {
    this.remote.assertOpen()
    return this.remote.service(name, options)
  }

  object<T extends Record<string, any> = Record<string, any>> (name: string, options?: ObjectOptions): RemoteObject<T> {
    this.remote.assertOpen()
    return this.remote.object(name, options) as RemoteObject<T>
  }

  /** Closes the connections; open streams fail with `ERR_BUSMQ_CLOSED`. */
  async close (): Promise<void> {
    this.closedFlag = true
    this.remote.client.close(new BusClosedError())
  }
}

/** A browser bus on the federation server(s) at `url`; it connects at once (and on first use). */
export function connect (url: string | string[], options: ConnectOptions = {}): BrowserBus {
  const bus = new BrowserBus(Array.isArray(url) ? url : [url], options)
  bus.connect().catch(() => {})
  return bus
}
