/**
 * Every error BusMQ raises is a {@link BusMQError} with a stable `code`; match on `code`, not on the
 * message. Each failure has its own class with a literal `code` type and a default message.
 */

/** Every code BusMQ raises, the command line included. */
export type BusMQErrorCode =
  | 'ERR_BUSMQ_INVALID_NAME'
  | 'ERR_BUSMQ_INVALID_OPTION'
  | 'ERR_BUSMQ_CONNECT_TIMEOUT'
  | 'ERR_BUSMQ_REDIS_VERSION'
  | 'ERR_BUSMQ_CLOSED'
  | 'ERR_BUSMQ_SHARD_UNAVAILABLE'
  | 'ERR_BUSMQ_MESSAGE_TOO_LARGE'
  | 'ERR_BUSMQ_ENCODE'
  | 'ERR_BUSMQ_DECODE'
  | 'ERR_BUSMQ_REDIS'
  | 'ERR_BUSMQ_SHARD_DATA_LOST'
  | 'ERR_BUSMQ_REPLICATION'
  | 'ERR_BUSMQ_PEER_DESTROYED'
  | 'ERR_BUSMQ_QUEUE_FULL'
  | 'ERR_BUSMQ_QUEUE_DELETED'
  | 'ERR_BUSMQ_CONFLICT'
  | 'ERR_BUSMQ_REQUEST_TIMEOUT'
  | 'ERR_BUSMQ_REMOTE'
  | 'ERR_BUSMQ_SERVICE_CLOSED'
  // busmq/classic (BusMQ 3.1's API): a call 3.1 refused with an 'error' event, and what it cannot do.
  | 'ERR_BUSMQ_CLASSIC_USAGE'
  | 'ERR_BUSMQ_CLASSIC_UNSUPPORTED'
  | 'ERR_BUSMQ_UNAUTHORIZED'
  | 'ERR_BUSMQ_FORBIDDEN'
  | 'ERR_BUSMQ_FEDERATION'
  | 'ERR_BUSMQ_USAGE'
  | 'ERR_BUSMQ_CLI_AUTH'
  | 'ERR_BUSMQ_CLI_NO_SUCH_QUEUE'
  | 'ERR_BUSMQ_CLI_NO_SUCH_SERVICE'
  | 'ERR_BUSMQ_CLI_BAD_JSON'
  | 'ERR_BUSMQ_CLI_NO_REDIS_SERVER'
  | 'ERR_BUSMQ_CLI_REDIS_SERVER'
  // The dashboard's answers to admin actions it refuses (HTTP 403, 401), never thrown.
  | 'ERR_BUSMQ_DASHBOARD_READ_ONLY'
  | 'ERR_BUSMQ_DASHBOARD_UNAUTHORIZED'

/** Base class of every BusMQ error. */
export class BusMQError extends Error {
  /** Stable machine-readable code, `ERR_BUSMQ_…`. */
  readonly code: BusMQErrorCode

  constructor (message: string, code: BusMQErrorCode, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BusMQError'
    this.code = code
  }
}

/** True for any error BusMQ raised (also across copies of the package). */
export function isBusMQError (err: unknown): err is BusMQError {
  if (err instanceof BusMQError) return true
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined
  return typeof code === 'string' && code.startsWith('ERR_BUSMQ')
}

/** A queue, channel or pub/sub name breaks the naming rules. */
export class InvalidNameError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_INVALID_NAME'
  constructor (message = 'invalid name', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_INVALID_NAME', options)
    this.name = 'InvalidNameError'
  }
}

/** An option has a value of the wrong type or out of range. */
export class InvalidOptionError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_INVALID_OPTION'
  constructor (message = 'invalid option', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_INVALID_OPTION', options)
    this.name = 'InvalidOptionError'
  }
}

/** `bus.connect()` did not reach every shard within `connectTimeout`. */
export class ConnectTimeoutError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_CONNECT_TIMEOUT'
  constructor (message = 'timed out connecting to Redis', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_CONNECT_TIMEOUT', options)
    this.name = 'ConnectTimeoutError'
  }
}

/** A Redis server is older than the minimum version BusMQ needs (6.2). */
export class RedisVersionError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_REDIS_VERSION'
  constructor (message = 'Redis >= 6.2 is required', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_REDIS_VERSION', options)
    this.name = 'RedisVersionError'
  }
}

/** The bus was closed; no more operations are possible. */
export class BusClosedError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_CLOSED'
  constructor (message = 'the bus is closed', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_CLOSED', options)
    this.name = 'BusClosedError'
  }
}

/** A shard did not answer within `commandTimeout` (it is down or unreachable). */
export class ShardUnavailableError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_SHARD_UNAVAILABLE'
  constructor (message = 'shard unavailable', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_SHARD_UNAVAILABLE', options)
    this.name = 'ShardUnavailableError'
  }
}

/** A message is larger than `maxMessageSize`; nothing was sent. */
export class MessageTooLargeError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE'
  constructor (message = 'message too large', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_MESSAGE_TOO_LARGE', options)
    this.name = 'MessageTooLargeError'
  }
}

/** A value could not be encoded (for example JSON cannot represent it); nothing was sent. */
export class EncodeError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_ENCODE'
  constructor (message = 'message could not be encoded', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_ENCODE', options)
    this.name = 'EncodeError'
  }
}

/** A stored payload could not be decoded; the payload was moved to the queue's dead-letter queue. */
export class DecodeError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_DECODE'
  /** Id of the message that could not be decoded (set by readers). */
  id?: number
  /** Its stored bytes (set by readers). */
  payload?: Buffer
  constructor (message = 'message could not be decoded', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_DECODE', options)
    this.name = 'DecodeError'
  }
}

/** A Redis command failed in a way BusMQ does not handle itself (Redis's reason is in the message). */
export class RedisCommandError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_REDIS'
  constructor (message = 'Redis command failed', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_REDIS', options)
    this.name = 'RedisCommandError'
  }
}

/** A shard came back without the data it had (restarted empty, without persistence). */
export class ShardDataLossError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_SHARD_DATA_LOST'
  constructor (message = 'a shard restarted without its data', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_SHARD_DATA_LOST', options)
    this.name = 'ShardDataLossError'
  }
}

/** A push reached the primary but fewer than `replicas` replicas confirmed it within `replicasTimeout`. */
export class ReplicationError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_REPLICATION'
  constructor (message = 'not enough replicas confirmed the write', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_REPLICATION', options)
    this.name = 'ReplicationError'
  }
}

/** The channel's peer destroyed its side of the channel. */
export class PeerDestroyedError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_PEER_DESTROYED'
  constructor (message = 'the channel peer destroyed the channel', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_PEER_DESTROYED', options)
    this.name = 'PeerDestroyedError'
  }
}

/** A push did not fit under the queue's `maxLength`, and its `overflow` is `'error'`; it was not stored. */
export class QueueFullError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_QUEUE_FULL'
  constructor (message = 'the queue is full', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_QUEUE_FULL', options)
    this.name = 'QueueFullError'
  }
}

/** The queue a stream was using was deleted (`queue.delete()`, in any process). */
export class QueueDeletedError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_QUEUE_DELETED'
  constructor (message = 'the queue was deleted', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_QUEUE_DELETED', options)
    this.name = 'QueueDeletedError'
  }
}

/** `object.save({ ifVersion })`: the object was saved by someone else since that version; nothing was written. */
export class ConflictError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_CONFLICT'
  /** The object's version now (0: it does not exist). */
  readonly version: number
  constructor (message = 'the object was changed since the version given', options?: { cause?: unknown, version?: number }) {
    super(message, 'ERR_BUSMQ_CONFLICT', options)
    this.name = 'ConflictError'
    this.version = options?.version ?? 0
  }
}

/** A service request got no reply (or, for a streamed reply, no next chunk) within its `timeout`. */
export class RequestTimeoutError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_REQUEST_TIMEOUT'
  constructor (message = 'the request timed out', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_REQUEST_TIMEOUT', options)
    this.name = 'RequestTimeoutError'
  }
}

/** What a server sent about the error its handler threw (see {@link RemoteError}). */
export interface RemoteErrorDetails {
  /** The remote error's `name` (`'Error'`, `'TypeError'`, …). */
  name: string
  /** Its `message`. */
  message: string
  /** Its `code`, when it had a string or number one (`'ENOENT'`, `'ERR_BUSMQ_ENCODE'`, …). */
  code?: string
  /** Its stack, only when the server was started with `exposeStack: true`. */
  stack?: string
}

/**
 * A service handler threw or rejected (or its streamed reply failed): the requester's call rejects with
 * this. `remoteCode`, `remoteMessage` and `remoteName` are the remote error's; `remoteStack` is there
 * only when the server opted in (`exposeStack`).
 */
export class RemoteError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_REMOTE'
  /** The remote error's `code` (undefined when it had none). */
  readonly remoteCode?: string
  /** The remote error's `message`. */
  readonly remoteMessage: string
  /** The remote error's `name`. */
  readonly remoteName: string
  /** The remote error's stack, when the server sends it (`exposeStack: true`). */
  readonly remoteStack?: string

  constructor (details: RemoteErrorDetails, options?: { cause?: unknown }) {
    const code = details.code === undefined ? '' : ` (${details.code})`
    super(`the service handler failed: ${details.name}: ${details.message}${code}`, 'ERR_BUSMQ_REMOTE', options)
    this.name = 'RemoteError'
    this.remoteCode = details.code
    this.remoteMessage = details.message
    this.remoteName = details.name
    if (details.stack !== undefined) this.remoteStack = details.stack
  }
}

/**
 * The server running a request closed (`server.close()` after its grace, or its bus closed) before the
 * handler finished; with `reliable`, the request is redelivered instead and the requester never sees this.
 */
export class ServiceClosedError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_SERVICE_CLOSED'
  constructor (message = 'the server closed before the request was handled', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_SERVICE_CLOSED', options)
    this.name = 'ServiceClosedError'
  }
}

/**
 * busmq/classic: a call BusMQ 3.1 refuses with an `'error'` event (a second `connect()`, attaching twice,
 * serving and connecting one service object); the message is 3.1's (`'already connected'`, …).
 */
export class ClassicUsageError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_CLASSIC_USAGE'
  constructor (message = 'not allowed in this state', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_CLASSIC_USAGE', options)
    this.name = 'ClassicUsageError'
  }
}

/** busmq/classic: a BusMQ 3.1 feature the classic layer does not provide (federation, for now). */
export class ClassicUnsupportedError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_CLASSIC_UNSUPPORTED'
  constructor (message = 'not supported by busmq/classic', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_CLASSIC_UNSUPPORTED', options)
    this.name = 'ClassicUnsupportedError'
  }
}

/** A federation server refused this client's credentials (wrong secret, or its `authorize` hook said no). */
export class UnauthorizedError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_UNAUTHORIZED'
  constructor (message = 'the federation server refused the credentials', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_UNAUTHORIZED', options)
    this.name = 'UnauthorizedError'
  }
}

/** A federation server's `allow` hook refused this operation on this name; nothing was created. */
export class ForbiddenError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_FORBIDDEN'
  constructor (message = 'the federation server does not allow this operation', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_FORBIDDEN', options)
    this.name = 'ForbiddenError'
  }
}

/**
 * A federated stream or call failed for want of its federation server: the client gave up reconnecting,
 * the server broke the protocol or closed the stream, or a limit of the server was reached.
 */
export class FederationError extends BusMQError {
  declare readonly code: 'ERR_BUSMQ_FEDERATION'
  constructor (message = 'the federation connection failed', options?: { cause?: unknown }) {
    super(message, 'ERR_BUSMQ_FEDERATION', options)
    this.name = 'FederationError'
  }
}
