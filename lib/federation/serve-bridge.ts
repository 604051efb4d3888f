import { Readable, type Writable } from 'readable-stream'
import type { Bus } from '../bus.js'
import type { ServiceServer } from '../service/service-server.js'
import type { ServiceRequest } from '../service/service-request.js'
import { FederationError } from '../errors.js'
import type { Sink } from './server-stream.js'
import type { WireMessage } from './frame.js'

import { REPLY_EMPTY, REPLY_VALUE, REQUEST_ABORT, REQUEST_NO_REPLY, REQUEST_STREAMED, errorFromPayload, errorPayload } from './frame.js'

/**
 * Serving a service from a federated client: a local server whose handler hands each request to the
 * client (as a message of the stream: id = request number, payload = `deadline (f64) | flags (u8) | data`)
 * and answers with what the client replies (the stream's sink). A streamed reply comes on a stream of its
 * own (`service.reply`, see {@link replyStream}), with its own flow control. When a request's `signal`
 * aborts (its deadline, its streamed reply's requester gone, the server closing), the client is told (a
 * message flagged {@link REQUEST_ABORT}, carrying the reason), so that its handler's `signal` aborts too.
 * An answer is acknowledged once the native server stored it (the client's `reply()` resolves then).
 */
export class ServeBridge implements Sink {
  readonly pipelined = true
  readonly requests = new Readable({ objectMode: true, highWaterMark: 1024, read () {} })
  private readonly pending = new Map<number, { req: ServiceRequest<Buffer, Buffer>, resolve: (v: Buffer | undefined) => void, reject: (e: Error) => void }>()
  private readonly server: ServiceServer<Buffer, Buffer>
  private next = 0
  private closed = false
  private closing?: Promise<void>

  constructor (bus: Bus, readonly name: string, options: Record<string, any>) {
    this.server = bus.service(name).serve((req) => new Promise<Buffer | undefined>((resolve, reject) => {
      const n = ++this.next
      this.pending.set(n, { req, resolve, reject })
      // Closing: not handed on; the server's close answers it (ERR_BUSMQ_SERVICE_CLOSED, or gives it back).
      if (this.closed) return
      const head = Buffer.allocUnsafe(9)
      head.writeDoubleBE(req.deadline, 0)
      head[8] = (req.streamed ? REQUEST_STREAMED : 0) | (req.replyWanted ? 0 : REQUEST_NO_REPLY)
      this.requests.push({ id: n, payload: Buffer.concat([head, req.data]) } satisfies WireMessage)
      const signal = req.signal
      signal.addEventListener('abort', () => this.aborted(n, signal.reason), { once: true })
    }), {
      concurrency: options.concurrency,
      reliable: options.reliable,
      lease: options.lease,
      maxDeliveries: options.maxDeliveries,
      exposeStack: options.exposeStack
    })
    this.server.on('error', () => {})
  }

  /** Tells the client that request `n`'s signal aborted, and why. */
  private aborted (n: number, reason: unknown): void {
    if (this.closed) return
    const body = errorPayload(reason, 'aborted')
    const head = Buffer.alloc(9)
    head[8] = REQUEST_ABORT
    this.requests.push({ id: n, payload: Buffer.concat([head, body]) } satisfies WireMessage)
  }

  /** The client's answers (`n (f64) | status (u8) | body`); resolves once they are stored. */
  async accept (payloads: Buffer[]): Promise<void> {
    const stored: Array<Promise<void>> = []
    for (const p of payloads) {
      if (p.length < 9) continue
      const n = p.readDoubleBE(0)
      const waiting = this.pending.get(n)
      if (!waiting) continue
      this.pending.delete(n)
      const body = p.subarray(9)
      const req = waiting.req
      // Answered here (resolving once stored); the handler then returns nothing, which the server ignores.
      if (p[8] === REPLY_VALUE) stored.push(req.reply(Buffer.from(body)))
      else if (p[8] === REPLY_EMPTY) stored.push(req.reply(undefined))
      else stored.push(req.fail(errorFromPayload(body, 'the federated handler failed')))
      waiting.resolve(undefined)
    }
    await Promise.all(stored)
  }

  /**
   * The streamed reply to request `n` (the client's handler returned a stream): the request is answered
   * by it. Throws for a request that is not waiting (answered, or unknown), and, as a native server's
   * `replyStream()` does, for a request that wants one value (the requester gets the error).
   */
  replyStream (n: number): { stream: Writable, fail: (err: Error) => Promise<void> } {
    const waiting = this.pending.get(n)
    if (!waiting) throw new FederationError(`request ${n} is not waiting for a reply`)
    this.pending.delete(n)
    let stream: Writable
    try {
      stream = waiting.req.replyStream() as Writable
    } catch (err) {
      waiting.reject(err as Error)
      throw err
    }
    // Answered by the stream: the server leaves the request to it.
    waiting.resolve(undefined)
    return { stream, fail: async (err) => await waiting.req.fail(err) }
  }

  async finish (): Promise<void> {
    await this.close()
  }

  destroy (): void {
    this.close().catch(() => {})
  }

  private close (): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true
      const closing = this.server.close()
      this.requests.push(null)
      // As a native server closing (grace 0): what is still running is answered ERR_BUSMQ_SERVICE_CLOSED
      // (reliable: given back for another server); the handlers it waited on then return nothing.
      await closing
      for (const w of this.pending.values()) w.resolve(undefined)
      this.pending.clear()
    })()
    return this.closing
  }
}
