import { Readable } from 'readable-stream'
import type { Service } from './service.js'
import type { ServiceRequest } from './service-request.js'
import { RequestIntake, type IntakeSettings } from './request-intake.js'
import { graceOf } from './service-server.js'
import type { CloseOptions } from './service-options.js'
import { closeByBus } from '../util.js'

type Callback = (err?: Error | null) => void

/**
 * The typed face of a server stream (declaration merging: types only): it yields
 * `ServiceRequest<Req, Res>`s.
 */
export interface ServiceServerStream<Req = any, Res = any> {
  [Symbol.asyncIterator] (): AsyncIteratorObject<ServiceRequest<Req, Res>, any, any>
  on (event: 'data', listener: (req: ServiceRequest<Req, Res>) => void): this
  on (event: 'close' | 'end' | 'pause' | 'readable' | 'ready' | 'resume', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
  once (event: 'data', listener: (req: ServiceRequest<Req, Res>) => void): this
  once (event: 'close' | 'end' | 'pause' | 'readable' | 'ready' | 'resume', listener: () => void): this
  once (event: 'error', listener: (err: Error) => void): this
  once (event: string | symbol, listener: (...args: any[]) => void): this
}

/**
 * The stream form of a server (`service.createServerStream(options)`): a Readable of
 * {@link ServiceRequest}s, each to answer with `reply()`, `replyStream()` or `fail()`. It takes a
 * request from Redis only while fewer than `concurrency` are taken and unanswered (those in its own
 * buffer included), so a consumer that falls behind leaves requests for other servers.
 *
 * `destroy()` (or leaving a `for await` loop) is `close({ grace: 0 })`: requests still in its buffer go
 * back to the queue; those handed on and not answered are answered `ERR_BUSMQ_SERVICE_CLOSED` (reliable:
 * redelivered). A request whose deadline passed while it waited in the buffer is dropped, never handed
 * on. It never ends by itself. It emits `'ready'` once it takes requests.
 */
export class ServiceServerStream<Req = any, Res = any> extends Readable {
  readonly service: Service<Req, Res>
  readonly concurrency: number
  readonly reliable: boolean
  private readonly intake: RequestIntake
  /** Requests pushed into the Readable and not yet handed on, oldest first. */
  private queued: ServiceRequest[] = []
  /** Closing: nothing more is handed on (what is buffered goes back). */
  private stopped = false
  private closing?: Promise<void>
  private readonly untrack: () => void

  /** @internal Use `service.createServerStream(options)`. */
  constructor (service: Service<Req, Res>, settings: IntakeSettings) {
    super({ objectMode: true, highWaterMark: settings.concurrency })
    this.service = service
    this.concurrency = settings.concurrency
    this.reliable = settings.reliable
    this.intake = new RequestIntake(service, settings, {
      request: (req) => {
        this.queued.push(req)
        this.push(req)
      },
      failed: (err) => this.destroy(err)
    })
    // bus.close(): a consumer that listens for errors (a for await loop) sees ERR_BUSMQ_CLOSED.
    this.untrack = service.bus.track({ close: () => closeByBus(this) })
  }

  /** Requests taken and not yet answered (in its buffer, or handed on). */
  get running (): number {
    return this.intake.running
  }

  _construct (callback: Callback): void {
    this.intake.start().then(() => {
      callback()
      // Like a queue reader's: it takes requests from now on.
      if (!this.destroyed) process.nextTick(() => this.emit('ready'))
    }, (err: Error) => callback(this.destroyed ? null : err))
  }

  override _read (): void {
    // Nothing to do: the intake takes requests as slots free up (answers, not reads, free them).
  }

  override emit (event: string | symbol, ...args: any[]): boolean {
    if (event === 'data') {
      if (this.destroyed || this.stopped) return false
      const req = this.queued.shift()
      if (req && req.deadline <= Date.now()) {
        // Its requester has given up by now: never started.
        req.skipped = true
        this.intake.expire(req)
        return false
      }
    }
    return super.emit(event, ...args)
  }

  override read (size?: number): any {
    for (;;) {
      if (this.destroyed || this.stopped) return null
      const req = super.read(size) as ServiceRequest | null
      if (req === null || !req.skipped) return req
    }
  }

  /** Stops handing on: what is still buffered goes back to the queue with the reader. */
  private stop (): void {
    if (this.stopped) return
    this.stopped = true
    const unread = this.queued
    this.queued = []
    this.intake.giveBack(unread)
    this.intake.requestReader?.returnUnread(unread.length)
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.untrack()
    this.stop()
    this.intake.close(0).then(() => callback(err), (e: Error) => callback(err ?? e))
  }

  /**
   * Stops taking requests at once (those in its buffer go back to the queue), gives the requests handed
   * on `grace` ms to be answered, then answers the rest `ERR_BUSMQ_SERVICE_CLOSED` (reliable: gives them
   * back for redelivery) and destroys the stream. Idempotent.
   */
  close (options: CloseOptions = {}): Promise<void> {
    const grace = graceOf(options)
    this.closing ??= (async () => {
      this.stop()
      await this.intake.close(grace)
      if (!this.closed) {
        await new Promise<void>((resolve) => {
          this.once('close', () => resolve())
          this.destroy()
        })
      }
    })()
    return this.closing
  }
}
