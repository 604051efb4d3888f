import type { Writable } from 'readable-stream'
import type { MessageInput } from '../queue/message.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import { RequestTimeoutError } from '../errors.js'
import { FLAG_REPLY, FLAG_STREAM, correlationId, type RequestEnvelope } from './envelope.js'
import { timerDelay } from '../util.js'

/** @internal What a request asks of the server that took it (lib/service/request-intake.ts). */
export interface RequestOwner {
  reply: (req: ServiceRequest, value: unknown) => Promise<void>
  fail: (req: ServiceRequest, err: unknown) => Promise<void>
  replyStream: (req: ServiceRequest) => Writable
}

/**
 * One request, as a server sees it: what a handler gets, and what a server stream yields. Answer it once,
 * with `reply(value)`, `replyStream()` or `fail(err)` (the handler form does it with what the handler
 * returns or throws). `Req` is the type of `data`, `Res` of the reply.
 *
 * Made for every request a server takes, so what few handlers use (the id, the signal and its deadline
 * timer) is made only when first asked for.
 */
export class ServiceRequest<Req = any, Res = any> {
  /** The request's payload: the decoded value in objectMode, a Buffer in byte mode. */
  readonly data: Req
  /** When the requester stops waiting: ms since the epoch, on this process's clock. */
  readonly deadline: number
  /** How many times it was delivered (reliable: more than 1 after its server died). */
  readonly deliveries: number
  /** @internal */
  readonly envelope: RequestEnvelope
  /** @internal Reliable: the leased message, acked once the reply is stored. */
  readonly message?: ReliableMessage
  /** @internal Set once answered (or given up): later answers are ignored. */
  done = false
  /** @internal A streamed reply has written its first chunk: the deadline no longer aborts it. */
  started = false
  /** @internal The timer that aborts `signal` at the deadline (armed once `signal` is read). */
  timer?: NodeJS.Timeout
  /** @internal A server stream dropped it unhanded (its deadline passed in the buffer). */
  skipped = false
  /** @internal When its server took it (performance.now()), for the handling time. */
  taken = 0
  /** @internal The streamed reply, once `replyStream()` made it. */
  stream?: Writable
  private readonly owner: RequestOwner
  private idOf?: string
  private controller?: AbortController
  private abortReason?: unknown
  private aborted = false
  private released = false
  private finishedP?: Promise<void>
  private resolveFinished?: () => void

  /** @internal Made by a server. */
  constructor (owner: RequestOwner, envelope: RequestEnvelope, data: Req, deadline: number, message?: ReliableMessage) {
    this.owner = owner
    this.envelope = envelope
    this.data = data
    this.deadline = deadline
    this.message = message
    this.deliveries = message?.deliveries ?? 1
  }

  /** Correlation id: unique across every bus, the same when a reliable request is redelivered. */
  get id (): string {
    this.idOf ??= correlationId(this.envelope.replyTo, this.envelope.seq)
    return this.idOf
  }

  /** The requester reads a stream (`requestStream`): answer with `replyStream()`, or a value for one chunk. */
  get streamed (): boolean {
    return (this.envelope.flags & FLAG_STREAM) !== 0
  }

  /** False for `service.send()`: nobody waits for a reply (what you reply is dropped). */
  get replyWanted (): boolean {
    return (this.envelope.flags & FLAG_REPLY) !== 0
  }

  /**
   * Aborts at the deadline (unless a streamed reply has started by then), when the requester of a
   * streamed reply went away, and when the server closes and its grace is over.
   */
  get signal (): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.abortReason)
      else if (!this.done) {
        this.timer = setTimeout(() => {
          // A streamed reply that has started is bounded by its reader instead.
          if (!this.done && !(this.streamed && this.started)) this.abort(new RequestTimeoutError(`the deadline of request ${this.id} passed`))
        }, timerDelay(this.deadline - Date.now()))
      }
    }
    return this.controller.signal
  }

  /** @internal Aborts `signal` (once). */
  abort (reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.abortReason = reason
    this.controller?.abort(reason)
  }

  /** @internal Resolves once its server has let go of it (answered, or given up). */
  get finished (): Promise<void> {
    this.finishedP ??= this.released ? Promise.resolve() : new Promise((resolve) => { this.resolveFinished = resolve })
    return this.finishedP
  }

  /** @internal The server has let go of it: `finished` resolves. */
  finish (): void {
    this.released = true
    clearTimeout(this.timer)
    this.resolveFinished?.()
  }

  /**
   * Answers with one value (`undefined` reaches the requester as `undefined`). To a streamed request it
   * is a stream of that one chunk (none for `null` or `undefined`). Resolves once the reply is stored;
   * a second answer is ignored.
   */
  reply (value?: MessageInput<Res>): Promise<void> {
    return this.owner.reply(this, value)
  }

  /**
   * A Writable for a streamed reply (the requester called `requestStream`): each chunk is one chunk the
   * requester reads; `end()` ends its stream. It waits (`write()` returns false) while the requester is
   * that far behind. `req.fail(err)` ends it with an error after what was written; `destroy(err)` fails
   * it at once, dropping what was written and not yet sent. Throws `ERR_BUSMQ_INVALID_OPTION` for a
   * request that wants one value (`request`).
   */
  replyStream (): Writable {
    return this.owner.replyStream(this)
  }

  /** Answers with an error: the requester's call rejects with `ERR_BUSMQ_REMOTE` carrying its name, message and code. */
  fail (err: unknown): Promise<void> {
    return this.owner.fail(this, err)
  }
}
