import type { Writable } from 'readable-stream'
import type { MessageInput } from '../queue/message.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import type { RequestEnvelope } from './envelope.js'

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
 */
export class ServiceRequest<Req = any, Res = any> {
  /** Correlation id: unique across every bus, the same when a reliable request is redelivered. */
  readonly id: string
  /** The request's payload: the decoded value in objectMode, a Buffer in byte mode. */
  readonly data: Req
  /** When the requester stops waiting: ms since the epoch, on this process's clock. */
  readonly deadline: number
  /** The requester reads a stream (`requestStream`): answer with `replyStream()`, or a value for one chunk. */
  readonly streamed: boolean
  /** False for `service.send()`: nobody waits for a reply (what you reply is dropped). */
  readonly replyWanted: boolean
  /** How many times it was delivered (reliable: more than 1 after its server died). */
  readonly deliveries: number
  /** @internal */
  readonly envelope: RequestEnvelope
  /** @internal Reliable: the leased message, acked once the reply is stored. */
  readonly message?: ReliableMessage
  /** Made when `signal` is first read: most handlers never look at it, and a signal costs a few µs. */
  private controller?: AbortController
  private abortReason?: unknown
  private aborted = false
  /** @internal Set once answered (or given up): later answers are ignored. */
  done = false
  /** @internal Resolves once the request is finished (answered, or given up). */
  readonly finished: Promise<void>
  /** @internal */
  finish!: () => void
  /** @internal A streamed reply has written its first chunk: the deadline no longer aborts it. */
  started = false
  /** @internal The timer that aborts `signal` at the deadline. */
  timer?: NodeJS.Timeout
  /** @internal A server stream dropped it unhanded (its deadline passed in the buffer). */
  skipped = false
  /** @internal The streamed reply, once `replyStream()` made it. */
  stream?: Writable
  private readonly owner: RequestOwner

  /** @internal Made by a server. */
  constructor (owner: RequestOwner, init: {
    id: string
    data: Req
    deadline: number
    envelope: RequestEnvelope
    streamed: boolean
    replyWanted: boolean
    deliveries: number
    message?: ReliableMessage
  }) {
    this.owner = owner
    this.id = init.id
    this.data = init.data
    this.deadline = init.deadline
    this.envelope = init.envelope
    this.streamed = init.streamed
    this.replyWanted = init.replyWanted
    this.deliveries = init.deliveries
    this.message = init.message
    this.finished = new Promise((resolve) => { this.finish = resolve })
  }

  /**
   * Aborts at the deadline (unless a streamed reply has started by then), when the requester of a
   * streamed reply went away, and when the server closes and its grace is over.
   */
  get signal (): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.aborted) this.controller.abort(this.abortReason)
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
   * requester reads; `end()` ends its stream, `destroy(err)` fails it with `ERR_BUSMQ_REMOTE`. It waits
   * (`write()` returns false) while the requester is that far behind. Throws `ERR_BUSMQ_INVALID_OPTION`
   * for a request that wants one value (`request`).
   */
  replyStream (): Writable {
    return this.owner.replyStream(this)
  }

  /** Answers with an error: the requester's call rejects with `ERR_BUSMQ_REMOTE` carrying its name, message and code. */
  fail (err: unknown): Promise<void> {
    return this.owner.fail(this, err)
  }
}
