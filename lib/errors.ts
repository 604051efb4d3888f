/**
 * Every error BusMQ raises is a {@link BusMQError} with a stable `code`; match on `code`, not on the
 * message. Each failure has its own subclass with a default message.
 */
export class BusMQError extends Error {
  /** Stable machine-readable code, `ERR_BUSMQ_…`. */
  readonly code: string

  constructor (message: string, code = 'ERR_BUSMQ', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BusMQError'
    this.code = code
  }
}

function define (name: string, code: string, defaultMessage: string) {
  const Cls = class extends BusMQError {
    constructor (message = defaultMessage, options?: { cause?: unknown }) {
      super(message, code, options)
      this.name = name
    }
  }
  Object.defineProperty(Cls, 'name', { value: name })
  return Cls
}

/** A queue, channel or pub/sub name breaks the naming rules. */
export class InvalidNameError extends define('InvalidNameError', 'ERR_BUSMQ_INVALID_NAME', 'invalid name') {}
/** An option has a value of the wrong type or out of range. */
export class InvalidOptionError extends define('InvalidOptionError', 'ERR_BUSMQ_INVALID_OPTION', 'invalid option') {}
/** `bus.connect()` did not reach every shard within `connectTimeout`. */
export class ConnectTimeoutError extends define('ConnectTimeoutError', 'ERR_BUSMQ_CONNECT_TIMEOUT', 'timed out connecting to Redis') {}
/** A Redis server is older than the minimum version BusMQ needs (6.2). */
export class RedisVersionError extends define('RedisVersionError', 'ERR_BUSMQ_REDIS_VERSION', 'Redis >= 6.2 is required') {}
/** The bus was closed; no more operations are possible. */
export class BusClosedError extends define('BusClosedError', 'ERR_BUSMQ_CLOSED', 'the bus is closed') {}
/** A shard did not answer within `commandTimeout` (it is down or unreachable). */
export class ShardUnavailableError extends define('ShardUnavailableError', 'ERR_BUSMQ_SHARD_UNAVAILABLE', 'shard unavailable') {}
/** A message is larger than `maxMessageSize`; nothing was sent. */
export class MessageTooLargeError extends define('MessageTooLargeError', 'ERR_BUSMQ_MESSAGE_TOO_LARGE', 'message too large') {}
/** A value could not be encoded (for example JSON cannot represent it); nothing was sent. */
export class EncodeError extends define('EncodeError', 'ERR_BUSMQ_ENCODE', 'message could not be encoded') {}
/** A stored payload could not be decoded; the payload was moved to the queue's dead-letter queue. */
export class DecodeError extends define('DecodeError', 'ERR_BUSMQ_DECODE', 'message could not be decoded') {}
/** A Redis command failed in a way BusMQ does not handle itself. */
export class RedisCommandError extends define('RedisCommandError', 'ERR_BUSMQ_REDIS', 'Redis command failed') {}
/** A shard came back without the data it had (restarted empty, without persistence). */
export class ShardDataLossError extends define('ShardDataLossError', 'ERR_BUSMQ_SHARD_DATA_LOST', 'a shard restarted without its data') {}
/** A push reached the primary but fewer than `replicas` replicas confirmed it within `replicasTimeout`. */
export class ReplicationError extends define('ReplicationError', 'ERR_BUSMQ_REPLICATION', 'not enough replicas confirmed the write') {}
/** The channel's peer destroyed its side of the channel. */
export class PeerDestroyedError extends define('PeerDestroyedError', 'ERR_BUSMQ_PEER_DESTROYED', 'the channel peer destroyed the channel') {}
