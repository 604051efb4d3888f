import { Duplex } from 'readable-stream'
import { randomUUID } from 'node:crypto'
import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { Queue } from '../queue/queue.js'
import type { QueueReader } from '../queue/queue-read-stream.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import type { Producer } from '../queue/producer.js'
import type { Shard } from '../router/shard.js'
import { checkCodec, jsonCodec, type Codec } from '../queue/codec.js'
import { KIND_ABORT, KIND_END } from '../queue/element.js'
import { validateName, checkInt, checkDelay } from '../names.js'
import { BusClosedError, InvalidNameError, InvalidOptionError, PeerDestroyedError } from '../errors.js'
import { presenceKey } from '../keys.js'
import { presence } from '../scripts/index.js'
import { closeByBus } from '../util.js'
import type { MessageInput } from '../queue/message.js'
import { DEFAULT_HEARTBEAT, type ChannelAck, type ChannelOptions } from './channel-options.js'
import { DEFAULT_WRITE_HIGH_WATER_MARK_BYTES, DEFAULT_WRITE_HIGH_WATER_MARK_OBJECTS } from '../queue/queue-options.js'

const debug = createDebug('busmq:channel')

type Callback = (err?: Error | null) => void
type WriteCallback = (error: Error | null | undefined) => void

/**
 * The typed face of a channel whose messages are `T` (declaration merging: types only): reads see `R`,
 * which is `T` (a Buffer in byte mode) except with `ack: 'manual'` (`ReliableMessage<T>`), writes take a
 * `T` (any bytes in byte mode); see lib/queue/message.ts and the queue reader and producer, whose typing
 * this repeats.
 */
export interface Channel<T = any, R = T> {
  [Symbol.asyncIterator] (): AsyncIteratorObject<R, any, any>
  on (event: 'data', listener: (chunk: R) => void): this
  on (event: 'close' | 'connect' | 'drain' | 'end' | 'finish' | 'pause' | 'readable' | 'ready' | 'remote:connect' |
  'remote:disconnect' | 'resume', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
  once (event: 'data', listener: (chunk: R) => void): this
  once (event: 'close' | 'connect' | 'drain' | 'end' | 'finish' | 'pause' | 'readable' | 'ready' | 'remote:connect' |
  'remote:disconnect' | 'resume', listener: () => void): this
  once (event: 'error', listener: (err: Error) => void): this
  once (event: string | symbol, listener: (...args: any[]) => void): this
  write (chunk: MessageInput<T>, callback?: WriteCallback): boolean
  write (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: WriteCallback): boolean
  write (chunk: never, encoding?: never, callback?: WriteCallback): boolean
  end (callback?: () => void): this
  end (chunk: MessageInput<T>, callback?: () => void): this
  end (chunk: MessageInput<T>, encoding: BufferEncoding | undefined, callback?: () => void): this
  end (chunk: never, encoding?: never, callback?: () => void): this
}

/**
 * A bi-directional channel between two peers, as one Duplex stream. Writes go to the queue
 * `<name>:<remote>`, reads come from `<name>:<local>`, so either peer may start first: what one writes
 * before the other arrives waits in the queue (for the queue TTL).
 *
 * `allowHalfOpen` is on, as with TCP: `end()` sends an end marker after everything written, the peer's
 * readable ends (`'end'`) once it has read all of it, and the peer can still write back. `destroy()`
 * sends an abort marker: the peer's channel fails with `ERR_BUSMQ_PEER_DESTROYED` after the data written
 * before it. `detach()` leaves without either: the peer sees `remote:disconnect`, and a channel opened
 * later with the same roles carries on where this one left. Events: `connect` and `ready` when this side
 * is attached, `remote:connect` / `remote:disconnect` when the peer's presence appears or lapses. `T` is
 * the type of its messages, `R` what its readable side yields.
 */
export class Channel<T = any, R = T> extends Duplex {
  readonly name: string
  readonly local: string
  readonly remote: string
  readonly bus: Bus
  readonly reliable: boolean
  /** Reliable mode: who acknowledges (`'auto'`: the channel; `'manual'`: the application). */
  readonly ack: ChannelAck
  readonly heartbeat: number
  /** True while the peer's presence is seen. */
  remoteConnected = false
  private readonly inQueue: Queue
  private readonly outQueue: Queue
  private readonly producer: Producer
  private readonly objectModeData: boolean
  private readonly codec: Codec
  private readonly presenceKeys: [string, string]
  private readonly instance = randomUUID()
  private reader?: QueueReader
  private presenceShard?: Shard
  private beatTimer?: NodeJS.Timeout
  private attached = false
  private finished = false
  /** detach(): leaving without an end or abort marker. */
  private detaching = false
  /** Reliable mode: envelopes pushed into the readable, oldest first, not yet acknowledged. */
  private unacked: ReliableMessage[] = []
  private pushedTotal = 0
  /** Chunks the readable side handed on (`'data'` events). */
  private handedTotal = 0
  private pendingError?: Error
  private ackedTotal = 0
  private readonly untrack: () => void

  constructor (bus: Bus, name: string, options: ChannelOptions = {}) {
    // Everything is checked before super(): once the Duplex exists it schedules _construct, and a
    // half-built channel must never get that far.
    const objectMode = options.objectMode ?? false
    const hwm = checkInt(options.highWaterMark ?? 256, 'highWaterMark', 1)
    const writableHwm = options.writableHighWaterMark === undefined
      ? (objectMode ? DEFAULT_WRITE_HIGH_WATER_MARK_OBJECTS : DEFAULT_WRITE_HIGH_WATER_MARK_BYTES)
      : checkInt(options.writableHighWaterMark, 'writableHighWaterMark', 1)
    const listen = options.listen ?? false
    const local = validateName(options.local ?? (listen ? 'remote' : 'local'), 'channel local role')
    const remote = validateName(options.remote ?? (listen ? 'local' : 'remote'), 'channel remote role')
    if (local === remote) throw new InvalidNameError(`channel roles must differ, both are ${local}`)
    const heartbeat = checkDelay(options.heartbeat ?? DEFAULT_HEARTBEAT, 'heartbeat', 10)
    if (options.reliable !== undefined && typeof options.reliable !== 'boolean') throw new InvalidOptionError('reliable must be a boolean')
    const ack = options.ack ?? 'auto'
    if (ack !== 'auto' && ack !== 'manual') throw new InvalidOptionError(`ack must be 'auto' or 'manual', got ${JSON.stringify(ack)}`)
    if (ack === 'manual' && options.reliable !== true) throw new InvalidOptionError('ack: \'manual\' needs reliable: true')
    const codec = checkCodec(options.codec) ?? jsonCodec
    const queueOptions = { ttl: options.ttl, objectMode, codec }
    const inQueue = bus.queue(validateName(`${name}:${local}`, 'channel name and role'), queueOptions)
    const outQueue = bus.queue(validateName(`${name}:${remote}`, 'channel name and role'), queueOptions)
    super({
      allowHalfOpen: true,
      readableObjectMode: true,
      readableHighWaterMark: hwm,
      writableObjectMode: objectMode,
      writableHighWaterMark: writableHwm,
      decodeStrings: true
    })
    this.bus = bus
    this.name = name
    this.local = local
    this.remote = remote
    this.reliable = options.reliable ?? false
    this.ack = ack
    this.heartbeat = heartbeat
    this.objectModeData = objectMode
    this.codec = codec
    this.inQueue = inQueue
    this.outQueue = outQueue
    this.producer = outQueue.producer({ retryReplication: true, bind: true })
    this.presenceKeys = [presenceKey(bus.settings.prefix, name, local), presenceKey(bus.settings.prefix, name, remote)]
    this.untrack = bus.track(this)
    this.on('end', () => debug('%s:%s read to the end', name, local))
  }

  _construct (callback: Callback): void {
    (async () => {
      const attached = await Promise.allSettled([this.inQueue.attach(), this.outQueue.attachAs('writer')])
      const failed = attached.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed) {
        // One of the two is attached: let it go, so that it expires like any unused queue.
        if (attached[0].status === 'fulfilled') await this.inQueue.detach().catch(() => {})
        if (attached[1].status === 'fulfilled') await this.outQueue.detachDone(undefined, 'writer').catch(() => {})
        throw failed.reason
      }
      this.attached = true
      // Presence lives where the router finds either peer's presence key, so two peers that opened
      // the channel on either side of an addShards still meet.
      this.presenceShard = await this.bus.router.locate(this.name, this.presenceKeys)
      await this.presenceShard.subscriptions.subscribe(this.presenceKeys[0], this.onPresence)
      if (this.destroyed) return
      await this.beat('beat')
      this.beatTimer = setInterval(() => {
        this.beat('beat').catch((err) => debug('presence of %s failed: %s', this.name, err.message))
      }, this.heartbeat)
      this.beatTimer.unref()
      this.reader = this.inQueue.createReadStream({
        owned: true,
        mode: this.reliable ? 'reliable' : 'consume',
        untilEnd: true,
        highWaterMark: this.readableHighWaterMark
      })
      // The channel closes its reader (giving back what neither of them handed on), not the bus.
      this.reader.adopt()
      this.reader.on('data', (chunk: unknown) => this.accept(chunk))
      this.reader.on('end', () => this.push(null))
      this.reader.on('error', (err: Error) => {
        // The peer's abort: fail once what arrived before it has been read, as TCP does with a reset.
        if (err instanceof PeerDestroyedError) this.failAfterBuffer(err)
        else if (!(err instanceof BusClosedError)) this.destroy(err)
      })
      this.reader.pause()
    })().then(() => {
      callback()
      if (!this.destroyed) {
        process.nextTick(() => {
          this.emit('connect')
          this.emit('ready')
        })
      }
    }, (err: Error) => {
      // Closed by bus.close() while being set up: close quietly, as readers and writers do.
      if (this.destroyed || (err instanceof BusClosedError && this.bus.closed)) callback()
      else callback(err)
    })
  }

  private readonly onPresence = (): void => {
    // The peer appeared or left (or the subscription reconnected): look now, not at the next beat.
    if (!this.destroyed) this.beat('beat').catch((err) => debug('presence of %s failed: %s', this.name, err.message))
  }

  private async beat (op: 'beat' | 'leave'): Promise<void> {
    const [own, other] = this.presenceKeys
    const peer = await presence(this.presenceShard!, { own, other, instance: this.instance, expiry: this.heartbeat * 3, op })
    if (op === 'leave' || this.destroyed) return
    const up = peer !== null
    if (up === this.remoteConnected) return
    this.remoteConnected = up
    this.emit(up ? 'remote:connect' : 'remote:disconnect')
  }

  private accept (chunk: unknown): void {
    let data = chunk
    if (this.reliable && this.ack === 'auto') {
      const msg = chunk as ReliableMessage
      this.unacked.push(msg)
      data = msg.data
    }
    this.pushedTotal++
    const more = this.push(data)
    this.settle()
    if (!more) this.reader!.pause()
  }

  /** Reliable mode: acknowledges what the readable has handed on (everything not in its buffer). */
  private settle (): void {
    if (!this.reliable || this.ack === 'manual') return
    const handed = this.handedTotal
    while (this.ackedTotal < handed && this.unacked.length > 0) {
      this.ackedTotal++
      this.unacked.shift()!.ack().catch((err) => debug('ack on %s failed: %s', this.name, err.message))
    }
  }

  private failAfterBuffer (err: Error): void {
    this.pendingError = err
    if (this.readableLength === 0) this.destroy(err)
  }

  override read (size?: number): any {
    // A destroyed channel hands on nothing more: what is still buffered goes back to the queue.
    if (this.destroyed) return null
    const chunk = super.read(size)
    this.settle()
    if (this.pendingError && this.readableLength === 0 && !this.destroyed) {
      const err = this.pendingError
      process.nextTick(() => this.destroy(err))
    }
    return chunk
  }

  override emit (event: string | symbol, ...args: any[]): boolean {
    if (event === 'data') {
      if (this.destroyed) return false
      this.handedTotal++
    }
    return super.emit(event, ...args)
  }

  override _read (): void {
    this.settle()
    this.reader?.resume()
  }

  override _writev (chunks: Array<{ chunk: any }>, callback: Callback): void {
    let payloads: Buffer[]
    try {
      payloads = chunks.map(({ chunk }) => this.outQueue.encode(chunk, this.objectModeData, this.codec))
    } catch (err) {
      return callback(err as Error)
    }
    this.producer.push(payloads).then(() => callback(), callback)
  }

  override _final (callback: Callback): void {
    // detach(): what was written is pushed (end() waited for it), but the conversation goes on.
    if (this.detaching) return callback()
    this.producer.push([Buffer.alloc(0)], KIND_END).then(() => {
      this.finished = true
      callback()
    }, callback)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.untrack()
    clearInterval(this.beatTimer)
    const reader = this.reader
    const done = async (): Promise<void> => {
      if (!this.attached) return
      this.attached = false
      const tasks: Array<Promise<unknown>> = []
      if (this.presenceShard) {
        tasks.push(this.beat('leave'), this.presenceShard.subscriptions.unsubscribe(this.presenceKeys[0], this.onPresence))
      }
      // An abrupt end is signalled to the peer, after the data already written (not echoed back to a
      // peer that aborted first: a later channel on the same roles would inherit the marker).
      if (!this.finished && !this.detaching && !(err instanceof PeerDestroyedError)) {
        tasks.push(this.producer.push([Buffer.alloc(0)], KIND_ABORT))
      }
      if (reader) {
        // What this side took but did not hand on goes back to the queue (reliable: released as never
        // delivered). If the reader already closed (it failed), it gives those back on its own.
        reader.returnUnread(Math.max(0, this.pushedTotal - this.handedTotal))
        if (!reader.closed) tasks.push(new Promise((resolve) => { reader.once('close', resolve); reader.destroy() }))
      }
      await Promise.allSettled(tasks)
      await Promise.allSettled([this.inQueue.detach(), this.outQueue.detachDone([`p${this.producer.id}`], 'writer')])
    }
    done().then(() => callback(err), (e: Error) => callback(err ?? e))
  }

  /**
   * Leaves the channel without ending the conversation: what was written is pushed first, then this side
   * closes with neither an end marker nor an abort marker. The peer sees `remote:disconnect` (not `'end'`,
   * not an error); what it writes meanwhile waits in the queue; what this side had taken and not handed
   * on (and, in reliable mode, not acknowledged) goes back. A channel opened later with the same roles
   * (in any process) carries on where this one left, nothing lost or repeated. Resolves once closed;
   * rejects if the channel failed meanwhile.
   */
  async detach (): Promise<void> {
    if (!this.closed) {
      this.detaching = true
      await new Promise<void>((resolve) => {
        this.once('close', () => resolve())
        if (this.destroyed) return
        if (this.writableFinished) {
          this.destroy()
          return
        }
        this.once('finish', () => this.destroy())
        if (!this.writableEnded) this.end()
      })
    }
    if (this.errored) throw this.errored
  }

  /**
   * @internal Used by `bus.close()`. A consumer that listens for errors (a `for await` loop, a pipeline)
   * sees `ERR_BUSMQ_CLOSED`; otherwise the channel closes quietly.
   */
  async close (): Promise<void> {
    await closeByBus(this)
  }
}
