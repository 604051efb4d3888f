import type { Readable, Writable } from 'readable-stream'
import createDebug from 'debug'
import type { Queue } from '../queue/queue.js'
import type { Producer, ProducerIdentity } from '../queue/producer.js'
import type { QueueReader } from '../queue/queue-read-stream.js'
import { KIND_END } from '../queue/element.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import { MAX_BATCH_COUNT, MAX_BATCH_BYTES } from '../queue/producer.js'
import { RemoteError, type RemoteErrorDetails } from '../errors.js'
import { FrameType, cost, creditPayload, dataFrame, jsonFrame, encodeFrame, numberPayload, type WireMessage } from './frame.js'

const debug = createDebug('busmq:federation')

/** The ACK tag that tells a writer its stream finished (everything stored, the sink ended). */
export const FINISHED_TAG = Number.MAX_SAFE_INTEGER
/** Push calls per write batch a producer may make (parts of one batch, retries while waiting for room). */
export const PARTS_PER_BATCH = 1024
/** Messages per DATA frame a source sends. */
const FRAME_MESSAGES = 1000
const FRAME_BYTES = 256 * 1024

/** What a server stream writes the client's messages to. */
export interface Sink {
  /** Stores one batch; resolves once it is stored. */
  accept: (payloads: Buffer[]) => Promise<void>
  /** The client ended its side: flush, end, resolve once done. */
  finish: () => Promise<void>
  /** The stream is gone (client reset, or given up). */
  destroy: (err?: Error) => void
  /** Batches may be accepted before the previous one is stored. */
  readonly pipelined?: boolean
}

/** A connection as a server stream sees it. */
export interface StreamHost {
  send: (frame: Buffer) => void
  /** False while the socket holds more than the connection may buffer. */
  writable: () => boolean
  forget: (stream: ServerStream) => void
}

/** A sink onto a queue: its own producer, whose batch numbers are the client's (pushes are idempotent). */
export class QueueSink implements Sink {
  private readonly producer: Producer
  private readonly identity: ProducerIdentity
  private attached?: Promise<boolean>
  private done = false

  constructor (private readonly queue: Queue, producerId: string, private readonly endMarker: boolean) {
    this.identity = { id: producerId, batch: 0 }
    this.producer = queue.producer({ retryReplication: true, bind: true, identity: this.identity })
  }

  batch = 0

  async accept (payloads: Buffer[]): Promise<void> {
    this.attached ??= this.queue.attachAs('writer')
    await this.attached
    // The client numbers its batches; each push call of batch n is numbered n × PARTS_PER_BATCH + part,
    // so a batch sent again (on another connection, to another server) is stored once.
    this.identity.batch = this.batch * PARTS_PER_BATCH - 1
    for (let i = 0; i < payloads.length;) {
      let j = i
      let bytes = 0
      while (j < payloads.length && j - i < MAX_BATCH_COUNT && (j === i || bytes + payloads[j].length <= MAX_BATCH_BYTES)) bytes += payloads[j++].length
      await this.producer.push(payloads.slice(i, j))
      i = j
    }
  }

  async finish (): Promise<void> {
    this.attached ??= this.queue.attachAs('writer')
    await this.attached
    if (this.endMarker) {
      this.identity.batch = Math.max(this.identity.batch, (this.batch + 1) * PARTS_PER_BATCH - 1)
      await this.producer.push([Buffer.alloc(0)], KIND_END)
    }
    this.done = true
    await this.queue.detachDone([`p${this.producer.id}`], 'writer')
  }

  destroy (): void {
    if (this.done || !this.attached) return
    this.done = true
    this.attached.then(() => this.queue.detachDone(undefined, 'writer')).catch(() => {})
  }
}

/** A sink onto a Writable (a channel, a pub/sub publisher): a batch is stored when its last write called back. */
export class WritableSink implements Sink {
  readonly pipelined = true
  private failure?: Error
  constructor (private readonly stream: Writable) {
    stream.on('error', (err: Error) => { this.failure = err })
  }

  async accept (payloads: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure
    await new Promise<void>((resolve, reject) => {
      for (let i = 0; i < payloads.length; i++) {
        const last = i === payloads.length - 1
        this.stream.write(payloads[i], last ? (err?: Error | null) => err ? reject(err) : resolve() : undefined)
      }
      if (payloads.length === 0) resolve()
    })
  }

  async finish (): Promise<void> {
    if (this.failure) throw this.failure
    await new Promise<void>((resolve, reject) => {
      if (this.stream.writableFinished) return resolve()
      this.stream.once('finish', () => resolve())
      this.stream.once('error', reject)
      this.stream.end()
    })
  }

  destroy (err?: Error): void {
    this.stream.destroy(err)
  }
}

/** A local stream's outcome as the client learns it. */
function wireError (err: Error): { code: string, message: string, details?: RemoteErrorDetails } {
  const code = (err as Error & { code?: unknown }).code
  // A handler's error (a streamed reply that failed) keeps what the requester can match on.
  const details = err instanceof RemoteError
    ? { name: err.remoteName, message: err.remoteMessage, code: err.remoteCode, stack: err.remoteStack }
    : undefined
  return { code: typeof code === 'string' ? code : 'ERR_BUSMQ_FEDERATION', message: err.message, details }
}

/**
 * One federated stream on the server: a local source (a queue reader, a channel, a subscriber) whose
 * messages go to the client as far as the client's credit allows, and/or a sink the client writes to,
 * one acknowledged batch at a time. Resumable: when its connection drops it waits (resumeTimeout) for
 * the client to open it again with its session token, then goes on without losing or repeating anything.
 */
export class ServerStream {
  host?: StreamHost
  id = 0
  /** Called once, when the stream closes (the server forgets its session). */
  onClosed?: () => void
  /** A reliable reader's messages sent to the client and not yet acked or nacked, by id. */
  held?: Map<number, ReliableMessage>
  private credit = { bytes: 0, messages: 0 }
  /** Messages sent and not yet confirmed by the client's credit (resent on resume). */
  private unconfirmed: WireMessage[] = []
  private sent = 0
  private confirmed = 0
  private sourceEnded = false
  private endSent = false
  /** Sink: the highest batch tag received, and the chain of batches being stored. */
  private lastTag = 0
  private chain: Promise<void> = Promise.resolve()
  /** Bytes of batches received and not yet stored. */
  pendingBytes = 0
  private closed = false
  private expiry?: ReturnType<typeof setTimeout>
  private readonly onReadable = (): void => this.pump()

  constructor (
    readonly session: string,
    readonly kind: string,
    readonly source: Readable | undefined,
    readonly sink: Sink | undefined,
    private readonly options: {
      queueReader?: boolean
      finishSink?: boolean
      toPayload?: (chunk: any) => WireMessage
      /** When the client does not come back in time, the source leaves quietly (a reliable channel detaches). */
      leave?: () => Promise<void>
    } = {}
  ) {
    if (source) {
      source.on('readable', this.onReadable)
      source.on('end', () => {
        this.sourceEnded = true
        this.pump()
      })
      source.on('error', (err: Error) => this.fail(err))
      source.on('remote:connect', () => this.event({ event: 'remote:connect' }))
      source.on('remote:disconnect', () => this.event({ event: 'remote:disconnect' }))
    }
  }

  /** Attaches to a connection as stream `id`; `window` is the client's credit, `received` what it has. */
  attach (host: StreamHost, id: number, window: { bytes: number, messages: number }, received: number, details: Record<string, unknown>): void {
    if (!this.lingering) clearTimeout(this.expiry)
    this.host = host
    this.id = id
    this.credit = { ...window }
    // What the client says it has is confirmed; the rest goes again, in order.
    const have = Math.max(0, Math.min(received, this.sent) - this.confirmed)
    this.unconfirmed.splice(0, have)
    this.confirmed += have
    host.send(jsonFrame(FrameType.OPENED, id, { ...details, lastTag: this.lastTag }))
    const again = this.unconfirmed
    if (again.length > 0) {
      for (const m of again) this.take(cost(m.payload))
      for (let i = 0; i < again.length; i += FRAME_MESSAGES) host.send(dataFrame(id, 0, again.slice(i, i + FRAME_MESSAGES)))
    }
    if (this.endSent) host.send(encodeFrame(FrameType.END, id))
    this.pump()
  }

  /** The connection dropped: wait for the client to come back. */
  detach (resumeTimeout: number): void {
    this.host = undefined
    if (this.closed || this.lingering) return
    this.expiry = setTimeout(() => {
      this.timedOut = true
      this.destroy(undefined, 0)
    }, resumeTimeout)
    this.expiry.unref?.()
  }

  /** The client did not come back within resumeTimeout. */
  private timedOut = false

  private take (bytes: number): void {
    this.credit.bytes -= bytes
    this.credit.messages--
  }

  private event (value: Record<string, unknown>): void {
    this.host?.send(jsonFrame(FrameType.EVENT, this.id, value))
  }

  /** Sends what the source has, as far as credit and the socket allow. */
  pump (): void {
    const host = this.host
    if (!host || !this.source || this.closed) return
    while (this.credit.bytes > 0 && this.credit.messages > 0 && host.writable()) {
      const batch: WireMessage[] = []
      let bytes = 0
      while (batch.length < FRAME_MESSAGES && bytes < FRAME_BYTES && this.credit.bytes > 0 && this.credit.messages > 0) {
        const chunk = this.source.read()
        if (chunk === null) break
        const m = this.options.toPayload ? this.options.toPayload(chunk) : { id: 0, payload: chunk as Buffer }
        batch.push(m)
        this.take(cost(m.payload))
        bytes += m.payload.length
      }
      if (batch.length === 0) break
      this.sent += batch.length
      for (const m of batch) this.unconfirmed.push(m)
      host.send(dataFrame(this.id, 0, batch))
    }
    if (this.sourceEnded && !this.endSent && this.source.readableLength === 0) {
      this.endSent = true
      host.send(encodeFrame(FrameType.END, this.id))
      if (!this.sink) this.maybeDone()
    }
  }

  /** CREDIT from the client: it consumed this much; also confirms that many messages arrived. */
  grant (bytes: number, messages: number): void {
    this.credit.bytes += bytes
    this.credit.messages += messages
    const n = Math.min(messages, this.unconfirmed.length)
    this.unconfirmed.splice(0, n)
    this.confirmed += n
    this.pump()
  }

  /** A DATA batch from the client, numbered `tag`. */
  data (tag: number, payloads: Buffer[], bytes: number): void {
    const sink = this.sink
    if (!sink) return
    if (tag <= this.lastTag) {
      // Sent again after a reconnection: acknowledged once what was before it is stored, not stored twice.
      this.chain = this.chain.then(() => this.host?.send(encodeFrame(FrameType.ACK, this.id, numberPayload(tag))))
      return
    }
    this.lastTag = tag
    this.pendingBytes += bytes
    // A Writable keeps the order of its writes and calls back in order: batches go in at once, acks
    // follow in order. A queue's producer numbers its pushes: one batch at a time.
    const early = sink.pipelined === true && !this.closed ? sink.accept(payloads) : undefined
    early?.catch(() => {})
    this.chain = this.chain.then(async () => {
      if (this.closed) return
      if (sink instanceof QueueSink) sink.batch = tag
      await (early ?? sink.accept(payloads))
      this.pendingBytes -= bytes
      this.host?.send(encodeFrame(FrameType.ACK, this.id, numberPayload(tag)))
    }).catch((err: Error) => this.fail(err))
  }

  /** The client ended its writing side. */
  end (): void {
    const sink = this.sink
    if (!sink) return
    this.chain = this.chain.then(async () => {
      if (this.closed) return
      // Sent again by a client that did not get the answer (its connection dropped): answered again.
      if (!this.sinkFinished) await sink.finish()
      this.host?.send(encodeFrame(FrameType.ACK, this.id, numberPayload(FINISHED_TAG)))
      this.sinkFinished = true
      this.maybeDone()
    }).catch((err: Error) => this.fail(err))
  }

  private sinkFinished = false

  /** A stream whose every direction is done is forgotten (the client learnt it through END / ACK). */
  private maybeDone (): void {
    const sourceDone = !this.source || this.endSent
    const sinkDone = !this.sink || this.sinkFinished
    if (!sourceDone || !sinkDone) return
    // A reliable reader lives on until the client has acked or nacked what it holds (its leases).
    if (this.held && this.held.size > 0) {
      this.doneWhenSettled = true
      return
    }
    // Everything was sent (END went after the last message): nothing is given back. A writer's stream
    // stays a while (closed locally, its session kept): a client whose connection dropped before the
    // last acknowledgements arrived sends its batches again, and they must not be stored twice.
    if (this.sink && this.linger > 0 && !this.lingering) {
      this.lingering = true
      // It no longer counts against its connection's streams; its session finds it if the client asks.
      this.host?.forget(this)
      this.host = undefined
      this.expiry = setTimeout(() => this.destroy(undefined, 0, this.sent), this.linger)
      this.expiry.unref?.()
      return
    }
    if (!this.lingering) this.destroy(undefined, 0, this.sent)
  }

  /** ms a finished writer's session is kept (the server's resumeTimeout). */
  linger = 0
  private lingering = false

  private doneWhenSettled = false

  /** A reliable message was acked or nacked. */
  settled (): void {
    if (this.doneWhenSettled && this.held?.size === 0) this.destroy(undefined, 0, this.sent)
  }

  private fail (err: Error): void {
    if (this.closed) return
    debug('%s stream %d failed: %s', this.kind, this.id, err.message)
    this.host?.send(jsonFrame(FrameType.RESET, this.id, wireError(err)))
    this.destroy(err, 0)
  }

  /**
   * Closes the local streams. `unread`: messages the client received and did not hand on, which a
   * consume-once reader gives back to its queue together with those it sent and the client never got.
   */
  destroy (err?: Error, unread = 0, received = this.confirmed): void {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.expiry)
    this.host?.forget(this)
    this.host = undefined
    this.onClosed?.()
    if (this.source) {
      this.source.off('readable', this.onReadable)
      if (this.options.queueReader) {
        const back = Math.max(0, this.sent - Math.max(received, this.confirmed)) + unread
        ;(this.source as unknown as QueueReader).returnUnread(back)
      }
      if (this.timedOut && this.options.leave) this.options.leave().catch((e: Error) => debug('%s stream %d: leaving failed: %s', this.kind, this.id, e.message))
      else this.source.destroy()
    }
    if (this.sink && !this.sinkFinished && !(this.timedOut && this.options.leave)) this.sink.destroy(err)
  }

  /** Server closing: everything goes now. */
  get isClosed (): boolean {
    return this.closed
  }
}

export { creditPayload }
