import { Readable } from 'readable-stream'
import type { Bus } from '../bus.js'
import type { ServiceServer } from '../service/service-server.js'
import type { Sink } from './server-stream.js'
import type { WireMessage } from './frame.js'

import { REPLY_EMPTY, REPLY_VALUE } from './frame.js'

/**
 * Serving a service from a federated client: a local server whose handler hands each request to the
 * client (as a message of the stream: id = request number, payload = `deadline (f64) | data`) and
 * answers with what the client replies (the stream's sink).
 */
export class ServeBridge implements Sink {
  readonly pipelined = true
  readonly requests = new Readable({ objectMode: true, highWaterMark: 1024, read () {} })
  private readonly pending = new Map<number, { resolve: (v: Buffer | undefined) => void, reject: (e: Error) => void }>()
  private readonly server: ServiceServer<Buffer, Buffer>
  private next = 0

  constructor (bus: Bus, name: string, options: Record<string, any>) {
    this.server = bus.service(name).serve((req) => new Promise<Buffer | undefined>((resolve, reject) => {
      const n = ++this.next
      this.pending.set(n, { resolve, reject })
      const head = Buffer.allocUnsafe(8)
      head.writeDoubleBE(req.deadline, 0)
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
      else {
        let e: { name?: string, message?: string, code?: string } = {}
        try {
          e = JSON.parse(body.toString('utf8'))
        } catch {}
        const err = new Error(typeof e.message === 'string' ? e.message : 'the federated handler failed')
        if (typeof e.name === 'string') err.name = e.name
        if (typeof e.code === 'string') (err as Error & { code?: string }).code = e.code
        waiting.reject(err)
      }
    }
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
