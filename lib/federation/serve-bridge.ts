import { Readable, type Writable } from 'readable-stream'
import type { Bus } from '../bus.js'
import type { ServiceServer } from '../service/service-server.js'
import type { ServiceRequest } from '../service/service-request.js'
import { FederationError } from '../errors.js'
import { remoteFailure } from './reply-sink.js'
import type { Sink } from './server-stream.js'
import type { WireMessage } from './frame.js'

import { REPLY_EMPTY, REPLY_VALUE, REQUEST_STREAMED } from './frame.js'

/**
 * Serving a service from a federated client: a local server whose handler hands each request to the
 * client (as a message of the stream: id = request number, payload = `deadline (f64) | flags (u8) | data`)
 * and answers with what the client replies (the stream's sink). A streamed reply comes on a stream of its
 * own (`service.reply`, see {@link replyStream}), with its own flow control.
 */
export class ServeBridge implements Sink {
  readonly pipelined = true
  readonly requests = new Readable({ objectMode: true, highWaterMark: 1024, read () {} })
  private readonly pending = new Map<number, { req: ServiceRequest<Buffer, Buffer>, resolve: (v: Buffer | undefined) => void, reject: (e: Error) => void }>()
  private readonly server: ServiceServer<Buffer, Buffer>
  private next = 0

  constructor (bus: Bus, readonly name: string, options: Record<string, any>) {
    this.server = bus.service(name).serve((req) => new Promise<Buffer | undefined>((resolve, reject) => {
      const n = ++this.next
      this.pending.set(n, { req, resolve, reject })
      const head = Buffer.allocUnsafe(9)
      head.writeDoubleBE(req.deadline, 0)
      head[8] = req.streamed ? REQUEST_STREAMED : 0
      this.requests.push({ id: n, payload: Buffer.concat([head, req.data]) } satisfies WireMessage)
    }), {
      concurrency: options.concurrency,
      reliable: options.reliable,
      lease: options.lease,
      maxDeliveries: options.maxDeliveries,
      exposeStack: options.exposeStack
    })
    this.server.on('error', () => {})
  }

  async accept (payloads: Buffer[]): Promise<void> {
    for (const p of payloads) {
      if (p.length < 9) continue
      const n = p.readDoubleBE(0)
      const waiting = this.pending.get(n)
      if (!waiting) continue
      this.pending.delete(n)
      const body = p.subarray(9)
      if (p[8] === REPLY_VALUE) waiting.resolve(Buffer.from(body))
      else if (p[8] === REPLY_EMPTY) waiting.resolve(undefined)
      else waiting.reject(remoteFailure(body))
    }
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

  private async close (): Promise<void> {
    const closing = this.server.close()
    for (const w of this.pending.values()) w.reject(new Error('the federated server went away'))
    this.pending.clear()
    this.requests.push(null)
    await closing
  }
}
