import { Buffer } from 'buffer'
import { Readable, Writable, Duplex } from 'readable-stream'
import { checkCodec, decodeMessage, encodeMessage, jsonCodec, type Codec } from '../queue/codec.js'
import { BusClosedError, EncodeError, MessageTooLargeError, DecodeError } from '../errors.js'
import type { FederationClient } from './federation-client.js'
import type { Link, LinkOwner } from './link.js'
import { REPLY_CHUNK, REPLY_ERROR, errorPayload, type WireMessage } from './frame.js'
import { AckBatcher, type SettleMode } from './ack-batcher.js'

type Callback = (err?: Error | null) => void

/** What a remote stream needs of its handle. */
export interface RemoteTarget {
  readonly name: string
  /** The name the federation server knows it by, when not `name` (a dead-letter queue: its queue's). */
  readonly wireName?: string
  readonly client: FederationClient
  readonly objectMode: boolean
  readonly codec: Codec
  readonly maxMessageSize: number
}

/**
 * Destroys a stream its link failed: with the error, except when the bus closed and nobody listens for
 * errors (a local stream closed by `bus.close()` does not crash the process either).
 */
function failQuietlyOnClose (stream: { destroy: (err?: Error) => unknown, listenerCount: (e: string) => number }, err: Error): void {
  if (err instanceof BusClosedError && stream.listenerCount('error') === 0) stream.destroy()
  else stream.destroy(err)
}

/** Encodes one value as a native stream would (mode, codec, size). */
export function encodeFor (t: { maxMessageSize: number }, value: unknown, objectMode: boolean, codec: Codec): Buffer {
  if (value === null && objectMode) {
    throw new EncodeError('null cannot be a message: a Readable ends at null (wrap it, for example { value: null })')
  }
  const buf = encodeMessage(value, objectMode, codec)
  if (buf.length > t.maxMessageSize) {
    throw new MessageTooLargeError(`message of ${buf.length} bytes is over maxMessageSize (${t.maxMessageSize} bytes)`)
  }
  return buf
}

function encodeAll (t: RemoteTarget, chunks: Array<{ chunk: any }>, objectMode: boolean, codec: Codec): { payloads: Buffer[], failure?: Error } {
  const payloads: Buffer[] = []
  for (const { chunk } of chunks) {
    try {
      payloads.push(encodeFor(t, chunk, objectMode, codec))
    } catch (err) {
      // Messages before the bad one still go out, in order; the stream then fails with the error.
      return { payloads, failure: err as Error }
    }
  }
  return { payloads }
}

/**
 * A Writable whose messages go over federation (a queue's producer, a pub/sub publisher). `write()`
 * returns false once the server's window is used up and the stream's own buffer is full; `'finish'`
 * means the server stored everything.
 */
export class RemoteWriteStream<T = any> extends Writable {
  readonly name: string
  readonly objectMode: boolean
  /** Messages dropped by a full queue (`overflow: 'drop'`); not reported over federation. */
  readonly dropped = 0
  protected readonly link: Link
  private readonly codec: Codec
  private readonly target: RemoteTarget

  /** @internal */
  constructor (target: RemoteTarget, op: 'queue.write' | 'pubsub.write' | 'service.reply', options: Record<string, unknown>, stream: { objectMode?: boolean, codec?: Codec, highWaterMark?: number }) {
    const objectMode = stream.objectMode ?? target.objectMode
    const codec = checkCodec(stream.codec) ?? target.codec
    super({ objectMode, decodeStrings: true, highWaterMark: stream.highWaterMark ?? (objectMode ? 1024 : 1024 * 1024) })
    this.name = target.name
    this.target = target
    this.objectMode = objectMode
    this.codec = codec
    const owner: LinkOwner = {
      onData: () => {},
      onEnd: () => {},
      onFail: (err) => failQuietlyOnClose(this, err)
    }
    this.link = target.client.link(op, target.wireName ?? target.name, options, owner)
  }

  _construct (callback: Callback): void {
    this.link.open().then(() => {
      callback()
      if (!this.destroyed) queueMicrotask(() => this.emit('ready'))
    }, (err: Error) => callback(this.destroyed ? null : err))
  }

  override _writev (chunks: Array<{ chunk: any }>, callback: Callback): void {
    const { payloads, failure } = encodeAll(this.target, chunks, this.objectMode, this.codec)
    if (payloads.length === 0) return callback(failure)
    this.link.write(this.framed(payloads)).then(() => callback(failure), callback)
  }

  /** The messages sent for these payloads. */
  protected framed (payloads: Buffer[]): Buffer[] {
    return payloads
  }

  override _final (callback: Callback): void {
    this.link.finish().then(() => callback(), callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.link?.reset()
    callback(err)
  }
}

function kind (k: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(body.length + 1)
  out[0] = k
  body.copy(out, 1)
  return out
}

/** Chunks of a streamed reply sent and not yet taken by the server's reply stream. */
const REPLY_MESSAGES_IN_FLIGHT = 64

/**
 * A streamed reply written by a federated handler (`req.replyStream()`), as a stream of its own to the
 * federation server (`service.reply`): each chunk is one chunk the requester reads, `end()` ends the
 * requester's stream, `fail(err)` ends it with the error after what was written. The server acknowledges
 * what its reply stream took, which waits while the requester is behind: `write()` then returns false.
 * It fails (destroyed with the server's error) when the requester went away, or when the request wants
 * one value (`ERR_BUSMQ_INVALID_OPTION`; the requester gets it as `ERR_BUSMQ_REMOTE`).
 */
export class RemoteReplyStream<T = any> extends RemoteWriteStream<T> {
  private failure?: Error

  /** @internal */
  constructor (target: RemoteTarget, serve: string, request: number) {
    super(target, 'service.reply', { serve, request }, { highWaterMark: target.objectMode ? 64 : 256 * 1024 })
    // The server's reply stream takes 64 chunks at a time (its highWaterMark): more on the wire only queue there.
    this.link.writeMessages = REPLY_MESSAGES_IN_FLIGHT
  }

  protected override framed (payloads: Buffer[]): Buffer[] {
    return payloads.map((p) => kind(REPLY_CHUNK, p))
  }

  /** Ends the reply with `err` after what was written: the requester gets `ERR_BUSMQ_REMOTE`. */
  fail (err: Error): void {
    if (this.writableEnded || this.destroyed) return
    this.failure = err
    this.end()
  }

  override _final (callback: Callback): void {
    if (!this.failure) return super._final(callback)
    this.link.write([kind(REPLY_ERROR, errorPayload(this.failure))]).then(async () => await this.link.finish()).then(() => callback(), callback)
  }
}

/** Ids a consume-once reader remembers: far more than the server may have sent and not had confirmed. */
const SEEN = 16_384

/** How a remote reader turns a message into a chunk (`link`: the stream's, for reliable acks). */
export type ChunkOf = (m: WireMessage, link: Link) => unknown

/**
 * A Readable of messages carried over federation (a queue's consumer, a subscriber, an object's change
 * stream). The server sends only as much as this stream's consumer has room for: a reader that stops
 * reading stops the server's reads from Redis.
 */
export class RemoteReadStream<T = any> extends Readable {
  readonly name: string
  private readonly link: Link
  private readonly chunkOf: ChunkOf

  /** Consume-once: ids lately received. A server that lost this stream gave back what it had sent, and
   * some of it may have arrived: what arrives again is dropped (ids are unique in a queue). */
  private readonly seen?: Set<number>
  private readonly seenRing: number[] = []
  private seenCount = 0
  private readonly max: number
  private count = 0

  /** @internal */
  constructor (target: { name: string, wireName?: string, client: FederationClient }, op: string, options: Record<string, unknown>, chunkOf: ChunkOf,
    highWaterMark = 256, resume: 'consume' | 'replay' | 'none' = 'none', messages = Math.max(2000, 2 * highWaterMark)) {
    super({ objectMode: true, highWaterMark })
    this.name = target.name
    this.chunkOf = chunkOf
    if (resume === 'consume') this.seen = new Set()
    this.max = typeof options.max === 'number' ? options.max : Infinity
    const owner: LinkOwner = {
      onData: (messages) => {
        for (const m of messages) {
          if (this.seen) {
            if (this.seen.has(m.id)) continue
            this.seen.add(m.id)
            // The oldest id goes by its slot in a ring (taking a Set's first value scans its holes).
            const slot = this.seenCount++ % SEEN
            if (this.seenCount > SEEN) this.seen.delete(this.seenRing[slot])
            this.seenRing[slot] = m.id
          }
          // Opened afresh (the server lost it), the stream goes on from here.
          this.count++
          if (this.max !== Infinity) options.max = this.max - this.count
          if (resume === 'replay') options.from = m.id + 1
          let chunk: unknown
          try {
            chunk = this.chunkOf(m, this.link)
          } catch (err) {
            this.destroy(err as Error)
            return
          }
          this.push(chunk)
        }
      },
      onEnd: () => this.push(null),
      onFail: (err) => failQuietlyOnClose(this, err)
    }
    this.link = target.client.link(op, target.wireName ?? target.name, options, owner, { bytes: 4 * 1024 * 1024, messages })
  }

  _construct (callback: Callback): void {
    this.link.open().then(() => {
      callback()
      if (!this.destroyed) queueMicrotask(() => this.emit('ready'))
    }, (err: Error) => callback(this.destroyed ? null : err))
  }

  override _read (): void {
    this.link.grant()
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    // What this reader holds and did not hand on goes back to the queue (the server gives it back).
    this.link?.reset(this.readableLength)
    callback(err)
  }
}

/** Decodes a payload for a reader with these settings. */
export function decoder (objectMode: boolean, codec: Codec, withIds: boolean): ChunkOf {
  return (m) => {
    let data: unknown
    try {
      data = decodeMessage(m.payload, objectMode, codec)
    } catch (err) {
      if (err instanceof DecodeError) err.message += ` (message id ${m.id})`
      throw err
    }
    return withIds ? { id: m.id, data } : data
  }
}

/**
 * A channel carried over federation: a Duplex like `bus.channel()`'s (`end()` is a half-close the peer
 * sees as `'end'`; `remote:connect` / `remote:disconnect` as the server's channel sees its peer).
 */
export class RemoteChannel<T = any> extends Duplex {
  readonly name: string
  readonly local: string
  readonly remote: string
  /** Reliable mode: the server's channel holds leases; each message is acked once handed on (or by you). */
  readonly reliable: boolean
  /** Reliable mode: who acknowledges (`'auto'`: the channel; `'manual'`: the application). */
  readonly ack: 'auto' | 'manual'
  remoteConnected = false
  private readonly link: Link
  private readonly target: RemoteTarget
  private readonly objectModeData: boolean
  private readonly codec: Codec
  /** Reliable, `ack: 'auto'`: ids pushed into the readable and not yet handed on, oldest first. */
  private readonly unhanded: number[] = []
  private acks?: AckBatcher

  /** @internal */
  constructor (target: RemoteTarget, options: Record<string, any>) {
    const objectMode = options.objectMode ?? false
    const listen = options.listen ?? false
    super({
      allowHalfOpen: true,
      readableObjectMode: true,
      readableHighWaterMark: options.highWaterMark ?? 256,
      writableObjectMode: objectMode,
      writableHighWaterMark: options.writableHighWaterMark ?? (objectMode ? 1024 : 1024 * 1024),
      decodeStrings: true
    })
    this.name = target.name
    this.target = target
    this.objectModeData = objectMode
    this.codec = checkCodec(options.codec) ?? jsonCodec
    this.local = options.local ?? (listen ? 'remote' : 'local')
    this.remote = options.remote ?? (listen ? 'local' : 'remote')
    this.reliable = options.reliable === true
    this.ack = options.ack ?? 'auto'
    const decode = this.reliable ? this.reliableDecoder(objectMode) : decoder(objectMode, this.codec, false)
    const owner: LinkOwner = {
      onData: (messages) => {
        for (const m of messages) {
          let chunk: unknown
          try {
            chunk = decode(m, this.link)
          } catch (err) {
            this.destroy(err as Error)
            return
          }
          if (this.reliable && this.ack === 'auto') this.unhanded.push(m.id)
          this.push(chunk)
        }
      },
      onEnd: () => this.push(null),
      onFail: (err) => failQuietlyOnClose(this, err),
      onEvent: (e) => {
        if (e.event === 'remote:connect') this.remoteConnected = true
        if (e.event === 'remote:disconnect') this.remoteConnected = false
        if (typeof e.event === 'string' && e.event.startsWith('remote:')) this.emit(e.event)
      }
    }
    this.link = target.client.link('channel', target.name, {
      local: this.local,
      remote: this.remote,
      ttl: options.ttl,
      heartbeat: options.heartbeat,
      ...(this.reliable ? { reliable: true, highWaterMark: options.highWaterMark } : {})
    }, owner)
  }

  /** Reliable: a message is `deliveries (u32) | payload`; acks go to the server, batched. */
  private reliableDecoder (objectMode: boolean): ChunkOf {
    const decode = decoder(objectMode, this.codec, false)
    return (m, link) => {
      const deliveries = m.payload.readUInt32BE(0)
      const data = decode({ id: m.id, payload: m.payload.subarray(4) }, link)
      if (this.ack === 'auto') return data
      return {
        id: m.id,
        data,
        deliveries,
        redelivered: deliveries > 1,
        ack: async () => await this.settle(m.id, 'ack'),
        nack: async (o: { deadLetter?: boolean } = {}) => { await this.settle(m.id, o.deadLetter === true ? 'dead' : 'nack') }
      }
    }
  }

  private settle (id: number, mode: SettleMode): Promise<boolean> {
    this.acks ??= new AckBatcher(this.target.client, this.name, this.link.session)
    return this.acks.settle(id, mode)
  }

  override emit (event: string | symbol, ...args: any[]): boolean {
    // Reliable, auto: a message is acked once the readable has handed it on (as a native channel does).
    if (event === 'data' && this.unhanded.length > 0) {
      this.settle(this.unhanded.shift()!, 'ack').catch(() => {})
    }
    return super.emit(event, ...args)
  }

  _construct (callback: Callback): void {
    this.link.open().then(() => {
      callback()
      if (!this.destroyed) {
        queueMicrotask(() => {
          this.emit('connect')
          this.emit('ready')
        })
      }
    }, (err: Error) => callback(this.destroyed ? null : err))
  }

  override _read (): void {
    this.link.grant()
  }

  override _writev (chunks: Array<{ chunk: any }>, callback: Callback): void {
    const { payloads, failure } = encodeAll(this.target, chunks, this.objectModeData, this.codec)
    if (payloads.length === 0) return callback(failure)
    this.link.write(payloads).then(() => callback(failure), callback)
  }

  override _final (callback: Callback): void {
    this.link.finish().then(() => callback(), callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.link?.reset(this.readableLength)
    callback(err)
  }
}

export { Buffer }
