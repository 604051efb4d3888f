import { EventEmitter } from 'node:events'
import { finished } from 'node:stream/promises'
import type { Service } from './service.js'
import type { ServiceRequest } from './service-request.js'
import { RequestIntake, type IntakeSettings } from './request-intake.js'
import { checkDelay } from '../names.js'
import { DEFAULT_SERVICE_OPTIONS, type CloseOptions } from './service-options.js'
import type { MessageInput } from '../queue/message.js'
import { isStreamLike, writeReply } from './stream-like.js'

/**
 * What a handler returns: the reply (a value, or `undefined`), or a streamed reply: a Readable, or any
 * async iterable (an async generator, say), of chunks.
 */
export type ServiceHandlerResult<Res> = MessageInput<Res> | undefined | void | NodeJS.ReadableStream | AsyncIterable<MessageInput<Res>>

/** A request handler: see `service.serve()`. */
export type ServiceHandler<Req = any, Res = any> =
  (req: ServiceRequest<Req, Res>) => ServiceHandlerResult<Res> | Promise<ServiceHandlerResult<Res>>

/** Resolves `grace` from close options. */
export function graceOf (options: CloseOptions): number {
  return checkDelay(options.grace ?? DEFAULT_SERVICE_OPTIONS.grace, 'grace', 0)
}

/**
 * A running server of a service (`service.serve(handler, options)`): up to `concurrency` handlers at once,
 * each request taken from Redis only when a slot is free.
 *
 * Events: `error` (err) when it can no longer take requests (Redis refused its reads, for example); it
 * closes then. `close` once closed.
 */
export class ServiceServer<Req = any, Res = any> extends EventEmitter {
  readonly service: Service<Req, Res>
  readonly concurrency: number
  readonly reliable: boolean
  private readonly intake: RequestIntake
  private readonly handler: ServiceHandler<Req, Res>
  private closing?: Promise<void>

  /** @internal Use `service.serve(handler, options)`. */
  constructor (service: Service<Req, Res>, handler: ServiceHandler<Req, Res>, settings: IntakeSettings) {
    super()
    this.service = service
    this.handler = handler
    this.concurrency = settings.concurrency
    this.reliable = settings.reliable
    this.intake = new RequestIntake(service, settings, {
      request: (req) => { this.run(req as ServiceRequest<Req, Res>) },
      failed: (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err)
        this.close().catch(() => {})
      }
    })
    this.intake.start().catch((err: Error) => this.failStart(err))
  }

  private failStart (err: Error): void {
    if (this.closing) return
    if (this.listenerCount('error') > 0) this.emit('error', err)
    this.close().catch(() => {})
  }

  /** Requests running now (taken and not yet answered). */
  get running (): number {
    return this.intake.running
  }

  /** Requests this server dropped unstarted because their deadline had passed when it took them. */
  get expired (): number {
    return this.intake.expired
  }

  private run (req: ServiceRequest<Req, Res>): void {
    // No async function here: this runs for every request, and each promise costs.
    let result: ServiceHandlerResult<Res> | Promise<ServiceHandlerResult<Res>>
    try {
      result = this.handler(req)
    } catch (err) {
      req.fail(err).catch(() => {})
      return
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<ServiceHandlerResult<Res>>).then((value) => this.answer(req, value), (err) => { req.fail(err).catch(() => {}) })
    } else {
      this.answer(req, result as ServiceHandlerResult<Res>)
    }
  }

  private answer (req: ServiceRequest<Req, Res>, result: ServiceHandlerResult<Res>): void {
    if (isStreamLike(result)) {
      this.stream(req, result).catch((err) => req.fail(err)).catch(() => {})
      return
    }
    // A handler that answered by itself (reply(), fail(), or a replyStream() it writes) returns nothing.
    if (result === undefined && (req.done || req.stream !== undefined)) return
    this.intake.answer(req, result)
  }

  /**
   * Writes a handler's stream of chunks to the streamed reply, at the reader's pace; if the stream fails,
   * the requester gets what was written before, then the error.
   */
  private async stream (req: ServiceRequest<Req, Res>, source: NodeJS.ReadableStream | AsyncIterable<unknown>): Promise<void> {
    let w: ReturnType<ServiceRequest['replyStream']>
    try {
      // Throws ERR_BUSMQ_INVALID_OPTION for a request that wants one value; the requester gets it.
      w = req.replyStream()
    } catch (err) {
      (source as { destroy?: () => void }).destroy?.()
      throw err
    }
    if (await writeReply(source, w, async (err) => await req.fail(err))) await finished(w).catch(() => {})
  }

  /**
   * Stops taking requests at once (those not taken stay in Redis for other servers; those taken and not
   * started go back), lets running handlers finish for up to `grace` ms, then aborts them: their
   * `signal` aborts and their requesters get `ERR_BUSMQ_SERVICE_CLOSED` (reliable: the request is
   * redelivered instead). Idempotent.
   */
  close (options: CloseOptions = {}): Promise<void> {
    const grace = graceOf(options)
    this.closing ??= this.intake.close(grace).then(() => { this.emit('close') })
    return this.closing
  }
}
