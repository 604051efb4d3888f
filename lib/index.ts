// The public API: everything the README documents, and nothing else.
export { Bus, shardIdOf } from './bus.js'
export type { BusSettings, ShardInfo } from './bus.js'
export { DEFAULT_BUS_OPTIONS } from './bus-options.js'
export type { BusOptions, SentinelLayout, HostPort } from './bus-options.js'
export { Queue } from './queue/queue.js'
export type { QueueStats } from './queue/queue.js'
export type { QueueOptions, WriteStreamOptions, ReadStreamOptions, ReadMode } from './queue/queue-options.js'
export { QueueWriteStream } from './queue/queue-write-stream.js'
export { QueueReadStream, QueueReader } from './queue/queue-read-stream.js'
export type { IdentifiedMessage } from './queue/queue-read-stream.js'
export { jsonCodec } from './queue/codec.js'
export type { Codec, CodecOptions } from './queue/codec.js'
export type { Bytes, MessageInput } from './queue/message.js'
export { PubSub } from './pubsub/pubsub.js'
export { PubSubReadStream } from './pubsub/pubsub-read-stream.js'
export { PubSubWriteStream } from './pubsub/pubsub-write-stream.js'
export { validateName, MAX_NAME_LENGTH, NAME_PATTERN } from './names.js'
export {
  BusMQError, InvalidNameError, InvalidOptionError, ConnectTimeoutError, RedisVersionError, BusClosedError,
  ShardUnavailableError, MessageTooLargeError, EncodeError, DecodeError, RedisCommandError, ShardDataLossError,
  PeerDestroyedError, ReplicationError, isBusMQError
} from './errors.js'
export type { BusMQErrorCode } from './errors.js'
export { ReliableReadStream } from './queue/reliable-read-stream.js'
export { AckStream } from './queue/ack-stream.js'
export type { ReliableMessage, DeadLetterRecord } from './queue/reliable-message.js'
export { Channel } from './channel/channel.js'
export type { ChannelOptions } from './channel/channel-options.js'
