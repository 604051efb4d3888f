import type { Bus } from '../bus.js'
import { pubsubChannel } from '../keys.js'
import { checkCodec, encodeMessage, jsonCodec, type Codec, type CodecOptions } from '../queue/codec.js'
import { MessageTooLargeError } from '../errors.js'
import { publish } from '../scripts/index.js'
import type { MessageInput } from '../queue/message.js'
import { PubSubReadStream } from './pubsub-read-stream.js'
import { PubSubWriteStream } from './pubsub-write-stream.js'

/**
 * Plain publish/subscribe on one topic: nothing is stored, a subscriber sees what is published while it
 * is subscribed. Topics are sharded by name like queues (rendezvous hashing over the shards). `T` is the
 * type of its messages (see lib/queue/message.ts).
 */
export class PubSub<T = any> {
  readonly name: string
  readonly bus: Bus
  readonly channel: string
  readonly objectMode: boolean
  readonly codec: Codec

  constructor (bus: Bus, name: string, options: CodecOptions = {}) {
    this.bus = bus
    this.name = name
    this.channel = pubsubChannel(bus.settings.prefix, name)
    this.objectMode = options.objectMode ?? false
    this.codec = checkCodec(options.codec) ?? jsonCodec
  }

  /** @internal Encodes one message, checking its size. */
  encode (value: unknown): Buffer {
    const buf = encodeMessage(value, this.objectMode, this.codec)
    if (buf.length > this.bus.settings.maxMessageSize) {
      throw new MessageTooLargeError(`message of ${buf.length} bytes is over maxMessageSize (${this.bus.settings.maxMessageSize} bytes)`)
    }
    return buf
  }

  /** Publishes one message; resolves with the number of subscribers (connections) that received it. */
  async publish (message: MessageInput<T>): Promise<number> {
    const payload = this.encode(message)
    await this.bus.connect()
    return await publish(this.bus.router.owner(this.name), { channel: this.channel, payload })
  }

  /** A Readable of what is published from now on (never ends by itself). */
  createReadStream (options: { highWaterMark?: number } = {}): PubSubReadStream<T> {
    this.bus.assertOpen()
    return new PubSubReadStream<T>(this, options.highWaterMark ?? 1024)
  }

  /** A Writable publisher: each chunk is one message. */
  createWriteStream (options: { highWaterMark?: number } = {}): PubSubWriteStream<T> {
    this.bus.assertOpen()
    return new PubSubWriteStream<T>(this, options.highWaterMark)
  }
}
