import { Writable } from 'readable-stream'
import type { PubSub } from './pubsub.js'
import { publish } from '../scripts/index.js'
import type { MessageInput } from '../queue/message.js'

type Callback = (err?: Error | null) => void
type WriteCallback = (error: Error | null | undefined) => void

/** The typed face of a publisher (declaration merging: types only), as for queue producers. */
export interface PubSubWriteStream<T = any> {
  write (chunk: MessageInput<T>, callback?: WriteCallback): boolean
  write (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: WriteCallback): boolean
  write (chunk: never, encoding?: never, callback?: WriteCallback): boolean
  end (callback?: () => void): this
  end (chunk: MessageInput<T>, callback?: () => void): this
  end (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: () => void): this
  end (chunk: never, encoding?: never, callback?: () => void): this
}

/** Publisher: every buffered chunk is published in one pipelined round trip. */
export class PubSubWriteStream<T = any> extends Writable {
  private readonly pubsub: PubSub
  private readonly untrack: () => void

  constructor (pubsub: PubSub, highWaterMark?: number) {
    super({ objectMode: pubsub.objectMode, decodeStrings: true, highWaterMark })
    this.pubsub = pubsub
    this.untrack = pubsub.bus.track(this)
  }

  _construct (callback: Callback): void {
    this.pubsub.bus.connect().then(() => callback(), callback)
  }

  override _writev (chunks: Array<{ chunk: any }>, callback: Callback): void {
    let payloads: Buffer[]
    try {
      payloads = chunks.map(({ chunk }) => this.pubsub.encode(chunk))
    } catch (err) {
      return callback(err as Error)
    }
    const shard = this.pubsub.bus.router.owner(this.pubsub.name)
    Promise.all(payloads.map((payload) => publish(shard, { channel: this.pubsub.channel, payload }))).then(() => callback(), callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.untrack()
    callback(err)
  }

  /** @internal Used by `bus.close()`: ends the publisher after what it buffered. */
  async close (): Promise<void> {
    if (this.destroyed) return
    await new Promise<void>((resolve) => {
      this.once('close', () => resolve())
      if (!this.writableEnded) this.end()
    })
  }
}
