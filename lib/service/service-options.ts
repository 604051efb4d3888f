import type { CodecOptions } from '../queue/codec.js'

/** Options of `bus.service(name, options)`; its servers and requests inherit them. */
export interface ServiceOptions extends CodecOptions {
  /**
   * Idle TTL in ms of the service's keys (its request queues and its list of servers) and of the
   * streamed replies' queues: they expire this long after their last use once nothing is attached.
   * @default the bus's `ttl` (30000)
   */
  ttl?: number
  /**
   * Default of `reliable` for this handle's servers and requests: reliable requests are leased to the
   * server that runs them and redelivered if it dies. A reliable request is taken only by a reliable
   * server, a plain one only by a plain server, so say it here, once, for both sides.
   * @default false
   */
  reliable?: boolean
  /**
   * Default request timeout in ms (`request`, `requestStream`, `send`, `createTransform`).
   * @default 30000
   */
  timeout?: number
}

/** Options of `service.serve(handler, options)` and `service.createServerStream(options)`. */
export interface ServeOptions {
  /**
   * Requests this server handles at once. It takes no more requests from Redis than it has free slots,
   * so idle servers elsewhere get the rest.
   * @default 16
   */
  concurrency?: number
  /**
   * Take the service's reliable requests (leased, redelivered if this server dies) instead of its
   * plain ones.
   * @default the service's `reliable` (false)
   */
  reliable?: boolean
  /**
   * Reliable: ms a request stays leased to this server without a renewal; a running server renews every
   * `lease / 3`. A request whose server died is redelivered within about `lease + pollInterval`.
   * @default 5000
   */
  lease?: number
  /**
   * Reliable: deliveries after which a request that keeps failing its servers (they die running it) goes
   * to the request queue's dead-letter queue instead of being redelivered.
   * @default 5
   */
  maxDeliveries?: number
  /**
   * Send the handler's error stack to requesters (`RemoteError.remoteStack`). Off, a requester learns
   * the error's name, message and code only.
   * @default false
   */
  exposeStack?: boolean
}

/** Options of `server.close(options)`. */
export interface CloseOptions {
  /**
   * ms that running requests get to finish before they are aborted (their `signal` aborts; their
   * requesters get `ERR_BUSMQ_SERVICE_CLOSED`, or, reliable, the request is redelivered).
   * @default 0
   */
  grace?: number
}

/** Options of `service.request()`, `service.send()` and `service.requestStream()`. */
export interface RequestOptions {
  /**
   * ms until the request fails with `ERR_BUSMQ_REQUEST_TIMEOUT`; no server starts it after that. A
   * streamed reply must start within it, and then never pause longer than it while the reader waits.
   * @default the service's `timeout` (30000)
   */
  timeout?: number
  /**
   * Send it as a reliable request (taken only by reliable servers; redelivered if its server dies).
   * @default the service's `reliable` (false)
   */
  reliable?: boolean
}

/** Options of `service.requestStream(data, options)`. */
export interface RequestStreamOptions extends RequestOptions {
  /**
   * Chunks buffered in the Readable; the server may store up to twice as many in Redis ahead of it,
   * and then waits (backpressure).
   * @default 16
   */
  highWaterMark?: number
}

/** Options of `service.createTransform(options)`. */
export interface ServiceTransformOptions extends RequestOptions {
  /** Requests in flight at once. @default 16 */
  concurrency?: number
  /** Replies come out in the order of their requests (else as they arrive). @default true */
  ordered?: boolean
}

export const DEFAULT_SERVICE_OPTIONS = {
  timeout: 30_000,
  reliable: false,
  concurrency: 16,
  lease: 5000,
  maxDeliveries: 5,
  exposeStack: false,
  grace: 0,
  streamHighWaterMark: 16,
  ordered: true
} as const
