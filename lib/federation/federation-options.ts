import type { IncomingMessage, Server } from 'node:http'

/** What a federated client asks to do: the `op` given to `allow(op, name, client)`. */
export type FederationOp =
  | 'write' // queue write streams, push() and setMeta(); with 'read', either lets a client attach()
  | 'read' // queue read streams (consume, replay)
  | 'inspect' // count(), exists(), find(), stats(), ttlLeft(), getMeta(), history()
  | 'admin' // a queue's flush() and delete()
  | 'channel'
  | 'publish'
  | 'subscribe'
  | 'request' // service requests
  | 'serve' // serving a service
  | 'object' // persisted objects: load, save, change streams

/** Who a federated client is, as `allow` sees it. */
export interface FederationClientInfo {
  /** The id the client's bus gave (its `id` option). */
  readonly id: string
  /** The remote address of its socket. */
  readonly address: string | undefined
  /** Its `Origin` header (browsers send one). */
  readonly origin: string | undefined
  /** What `authorize(request)` returned for it (true when there is no hook). */
  readonly auth: unknown
}

/** Options of `bus.federate(options)`. */
export interface FederateOptions {
  /** The http or https server whose WebSocket upgrades under `path` are federation clients. */
  server: Server
  /**
   * The path clients connect to (other upgrade requests are left to the server's other listeners).
   * @default '/'
   */
  path?: string
  /**
   * The shared secret clients prove they know (HMAC-SHA256 challenge–response; it never crosses the
   * wire). Give it, `authorize`, or both.
   */
  secret?: string
  /**
   * Decides on the upgrade request (its cookies, headers, a token in the URL) whether the client may
   * connect: a falsy result (or a rejection) refuses it with 401; anything else is kept as `client.auth`.
   */
  authorize?: (request: IncomingMessage) => unknown
  /**
   * Which operations on which names a client may use; a refusal fails the stream or call with
   * `ERR_BUSMQ_FORBIDDEN` before anything reaches Redis. A queue's dead-letter queue is named
   * `<name>:dead-letter` here.
   * @default everything is allowed
   */
  allow?: (op: FederationOp, name: string, client: FederationClientInfo) => boolean | Promise<boolean>
  /**
   * Browsers: the `Origin` headers accepted (exact matches); a request with another Origin is refused
   * with 403. Requests without an Origin (Node clients) are not affected.
   * @default any origin
   */
  origins?: string[]
  /**
   * Streams (and calls in progress) one connection may have open; one more fails with `ERR_BUSMQ_FEDERATION`.
   * @default 1000
   */
  maxStreams?: number
  /**
   * Largest frame a client may send, in bytes (a message and its framing); a larger one closes the
   * connection (WebSocket code 1009).
   * @default 16 MiB + 64 KiB
   */
  maxMessageSize?: number
  /**
   * A connection from which nothing arrived for this many ms (clients ping every third of it) is
   * closed: a dead peer is detected within this time.
   * @default 30000
   */
  idleTimeout?: number
  /**
   * Bytes the server buffers for a connection: it queues at most a quarter of it on the socket before
   * its streams stop reading from Redis, and each write stream may have a sixteenth of it (between
   * 64 KiB and 4 MiB) sent and not yet stored.
   * @default 64 MiB
   */
  maxBufferedBytes?: number
  /**
   * How long the streams of a connection that dropped wait for their client to come back (on any
   * connection) before they close: messages a reader had on the wire are then given back to the queue.
   * @default 30000
   */
  resumeTimeout?: number
}

export const DEFAULT_FEDERATE_OPTIONS = {
  path: '/',
  maxStreams: 1000,
  maxMessageSize: 16 * 1024 * 1024 + 64 * 1024,
  idleTimeout: 30_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  resumeTimeout: 30_000
} as const

/** The `federation` option of `new Bus()`: a bus with no Redis, every stream carried by WebSockets. */
export interface FederationOptions {
  /** WebSocket URLs of federation servers (`ws://` or `wss://`). */
  urls: string[]
  /** The servers' shared secret. */
  secret?: string
  /**
   * WebSockets kept open (spread over `urls`); streams are spread over them.
   * @default 1
   */
  poolSize?: number
  /**
   * Options given to each WebSocket (the `ws` package's: headers for an `authorize` hook, TLS options).
   * @default {}
   */
  socketOptions?: Record<string, unknown>
  /**
   * ms between two keep-alive pings; a connection from which nothing arrived for 3 × this is dropped
   * (and reconnected).
   * @default 5000
   */
  pingInterval?: number
  /**
   * Reconnection: the first delay in ms, doubled at each failure up to `maxReconnectDelay`.
   * @default 100
   */
  reconnectDelay?: number
  /** @default 5000 */
  maxReconnectDelay?: number
  /**
   * The client gives up (emits `close`; streams and calls fail with `ERR_BUSMQ_FEDERATION`) when a
   * connection could not be restored for this many ms.
   * @default 60000
   */
  giveUpAfter?: number
  /**
   * How long a call (`push`, `find`, `publish`, `request`, …) waits for its connection; a connection
   * that does not come back in time fails it with `ERR_BUSMQ_FEDERATION`.
   * @default 30000
   */
  callTimeout?: number
}

export const DEFAULT_FEDERATION_OPTIONS = {
  poolSize: 1,
  pingInterval: 5000,
  reconnectDelay: 100,
  maxReconnectDelay: 5000,
  giveUpAfter: 60_000,
  callTimeout: 30_000
} as const
