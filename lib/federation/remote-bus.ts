import { FederationClient, type FederationEvent } from './federation-client.js'
import type { SocketFactory } from './client-connection.js'
import type { FederationOptions } from './federation-options.js'
import { RemoteObject, RemotePubSub, RemoteQueue, RemoteService, remoteChannel, type RemoteContext } from './remote-handles.js'
import { validateName } from '../names.js'
import type { QueueOptions } from '../queue/queue-options.js'
import type { ChannelOptions } from '../channel/channel-options.js'
import type { CodecOptions } from '../queue/codec.js'
import type { ServiceOptions } from '../service/service-options.js'
import type { ObjectOptions } from '../object/object-options.js'

/**
 * The face of a bus whose streams all go through federation (`new Bus({ federation })` without Redis,
 * and the browser's `connect()`): every factory of the bus makes the remote kind of handle.
 */
export class RemoteBus implements RemoteContext {
  readonly client: FederationClient

  constructor (options: FederationOptions, id: string, readonly maxMessageSize: number, private readonly busOpen: () => void,
    emit: (event: FederationEvent, ...args: unknown[]) => void, sockets: SocketFactory) {
    this.client = new FederationClient(options, id, sockets, emit)
  }

  /** Throws when the bus closed, or the client gave up or was refused. */
  assertOpen (): void {
    this.busOpen()
    this.client.assertOpen()
  }

  queue (name: string, options?: QueueOptions): RemoteQueue {
    return new RemoteQueue(this, validateName(name, 'queue name'), options)
  }

  channel (name: string, options?: ChannelOptions): ReturnType<typeof remoteChannel> {
    return remoteChannel(this, validateName(name, 'channel name'), options)
  }

  pubsub (name: string, options?: CodecOptions): RemotePubSub {
    return new RemotePubSub(this, validateName(name, 'pubsub name'), options)
  }

  service (name: string, options?: ServiceOptions): RemoteService {
    return new RemoteService(this, validateName(name, 'service name'), options)
  }

  object (name: string, options?: ObjectOptions): RemoteObject {
    return new RemoteObject(this, validateName(name, 'object name'), options)
  }
}
