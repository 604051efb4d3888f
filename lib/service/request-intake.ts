import { Writable } from 'readable-stream'
import { finished } from 'node:stream/promises'
import createDebug from 'debug'
import type { Service } from './service.js'
import { Queue } from '../queue/queue.js'
import type { QueueReader } from '../queue/queue-read-stream.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import type { Shard } from '../router/shard.js'
import { decodeMessage } from '../queue/codec.js'
import { replyStreamKeys } from '../keys.js'
import { InvalidOptionError, ServiceClosedError } from '../errors.js'
import { serve } from '../scripts/index.js'
import { destroyAndWait, sleep, timerDelay } from '../util.js'
import {
  REPLY_CLOSED, REPLY_ERROR, REPLY_VALUE, REPLY_VOID, decodeRequest, encodeError, encodeReply, type Payload,
  type RequestEnvelope
} from './envelope.js'
import type { Stored } from './push-batcher.js'
import { ServiceRequest, type RequestOwner } from './service-request.js'
import { RequesterGoneError, ServiceReplyStream } from './service-reply-stream.js'
import { ReplySender } from './reply-sender.js'
import { clockOffset, knownClockOffset } from './shard-clock.js'
import { LATENCY_BUCKETS, bucketOf } from '../metrics/latency-histogram.js'
import type { ServiceCounters } from '../metrics/service-counters.js'
import { encodeHandled } from './server-status.js'

const debug = createDebug('busmq:service')

const noop = (): void => {}

/** How soon a change in the number of running requests is told to the servers hash (`busmq stat`). */
const STATUS_DELAY = 200

let servers = 0

/** How a server takes requests (resolved options). */
export interface IntakeSettings {
  concurrency: number
  reliable: boolean
  lease: number
  maxDeliveries: number
  exposeStack: boolean
}

/** Where the requests an intake takes go: the handler form starts them, the stream form hands them on. */
export interface IntakeSink {
  request: (req: ServiceRequest) => void
  /** The intake stopped on an error (its reader failed). */
  failed: (err: Error) => void
}

type Reader = QueueReader<Buffer | ReliableMessage<Buffer>>

/**
 * The server side of a service, shared by `service.serve()` and `service.createServerStream()`: reads the
 * service's request queue (consume-once, or leased in reliable mode) no faster than requests finish
 * (the reader's demand is the free concurrency), drops requests whose deadline passed, makes each a
 * {@link ServiceRequest}, sends its answer, and in reliable mode acks the request once its answer is
 * stored. It announces itself (and how many requests run) in the service's servers hash.
 *
 * Closing: stop taking at once (what was taken and not started goes back), let running requests finish
 * for up to `grace` ms, then abort them: their requesters get ERR_BUSMQ_SERVICE_CLOSED, or, reliable, the
 * request is released for another server.
 */
export class RequestIntake implements RequestOwner {
  readonly id: string
  readonly settings: IntakeSettings
  /** Requests dropped because their deadline had passed when they were taken. */
  expired = 0
  private readonly service: Service
  private readonly sink: IntakeSink
  private readonly replies: ReplySender
  private readonly open = new Set<ServiceRequest>()
  private reader?: Reader
  private shard?: Shard
  private finishedCount = 0
  private stopping = false
  private closing?: Promise<void>
  private beatTimer?: NodeJS.Timeout
  private statusTimer?: NodeJS.Timeout
  private readonly untrack: () => void
  private readonly counts: ServiceCounters
  /**
   * Requests finished per latency bucket since the last heartbeat, and in the heartbeat before: what
   * the servers hash tells of this server's recent handling times (p50/p99 on the dashboard).
   */
  private recent = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)
  private previous = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)

  constructor (service: Service, settings: IntakeSettings, sink: IntakeSink) {
    this.service = service
    this.settings = settings
    this.sink = sink
    this.id = `${service.bus.settings.id}/s${++servers}`
    this.replies = new ReplySender(service.bus, service.ttl)
    this.counts = service.counters()
    // bus.close() closes the server (no grace), not its reader on its own.
    this.untrack = service.bus.track({ close: () => this.close(0) })
  }

  /** Requests taken and not finished (running, or waiting in a server stream's buffer). */
  get running (): number {
    return this.open.size
  }

  /** @internal The reader, for the stream form (what it did not hand on goes back with the reader). */
  get requestReader (): Reader | undefined {
    return this.reader
  }

  /** Starts taking requests; resolves once the reader is set up. */
  async start (): Promise<void> {
    const { concurrency, reliable, lease, maxDeliveries } = this.settings
    const queue = this.service.requestQueue(reliable)
    const shard = await queue.shard()
    this.shard = shard
    await clockOffset(shard)
    if (this.stopping) return
    const reader: Reader = reliable
      ? queue.createReadStream({ mode: 'reliable', objectMode: false, highWaterMark: concurrency, prefetch: concurrency, lease, maxDeliveries })
      : queue.createReadStream({ objectMode: false, highWaterMark: concurrency })
    reader.adopt()
    // Demand-driven: never more requests taken than can be started now.
    reader.limit(() => this.stopping ? 0 : concurrency - (reader.delivered - this.finishedCount))
    reader.on('data', (chunk: Buffer | ReliableMessage<Buffer>) => this.accept(chunk))
    reader.on('error', (err: Error) => {
      if (this.stopping) return
      debug('server %s of %s failed: %s', this.id, this.service.name, err.message)
      this.sink.failed(err)
    })
    this.reader = reader
    this.beat('beat')
    this.beatTimer = setInterval(() => {
      // The figures told cover the last one or two heartbeats.
      this.previous = this.recent
      this.recent = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)
      this.beat('beat')
    }, timerDelay(Math.max(10, Math.floor(this.service.ttl / 3))))
    this.beatTimer.unref()
  }

  private accept (chunk: Buffer | ReliableMessage<Buffer>): void {
    const message = this.settings.reliable ? chunk as ReliableMessage<Buffer> : undefined
    const raw = message ? message.data : chunk as Buffer
    let env: RequestEnvelope
    try {
      env = decodeRequest(raw)
    } catch (err) {
      debug('server %s of %s dropped a message that is not a request: %s', this.id, this.service.name, (err as Error).message)
      this.discard(message)
      return
    }
    const offset = knownClockOffset(this.shard!) ?? 0
    const now = Date.now()
    if (env.deadline <= now + offset) {
      // Its requester has given up: never started.
      this.expired++
      this.counts.expired++
      this.discard(message)
      return
    }
    let data: unknown
    let failure: unknown
    try {
      data = decodeMessage(env.payload, this.service.objectMode, this.service.codec)
    } catch (err) {
      failure = err
    }
    const req = new ServiceRequest(this, env, data, env.deadline - offset, message)
    req.taken = performance.now()
    this.open.add(req)
    this.statusChanged()
    if (failure !== undefined) {
      this.fail(req, failure).catch(() => {})
      return
    }
    this.sink.request(req)
  }

  /** Forgets a request that will not be started (reliable: acked, so it is not redelivered). */
  private discard (message: ReliableMessage<Buffer> | undefined): void {
    const done = (): void => {
      this.finishedCount++
      this.reader?.demandChanged()
    }
    if (message) message.ack().catch((err: Error) => debug('ack failed: %s', err.message)).finally(done)
    else done()
  }

  /**
   * Finishes a request once: `send` stores its answer; then (reliable) it is acked, or given back if the
   * answer could not be stored; its slot is free again; then `done`. Callbacks, not promises: it runs
   * for every request.
   */
  private settle (req: ServiceRequest, send: ((stored: Stored) => void) | null, done?: () => void): void {
    if (req.done) {
      done?.()
      return
    }
    req.done = true
    clearTimeout(req.timer)
    if (!req.skipped) this.measure(req)
    const stored = (err?: Error): void => {
      if (err) debug('the answer to %s could not be stored: %s', req.id, err.message)
      if (!req.message) {
        this.release(req)
        done?.()
        return
      }
      (err ? req.message.nack() : req.message.ack()).catch((e: Error) => debug('ack of %s failed: %s', req.id, e.message))
        .finally(() => {
          this.release(req)
          done?.()
        })
    }
    if (send) send(stored)
    else stored()
  }

  /** A request answered (or, from `send()`, done): counted, and its handling time observed. */
  private measure (req: ServiceRequest): void {
    const seconds = (performance.now() - req.taken) / 1000
    this.counts.handled++
    this.counts.handlingDuration.observe(seconds)
    this.recent[bucketOf(seconds)]++
  }

  private settled (req: ServiceRequest, send: ((stored: Stored) => void) | null): Promise<void> {
    return new Promise((resolve) => this.settle(req, send, resolve))
  }

  private release (req: ServiceRequest): void {
    this.open.delete(req)
    this.finishedCount++
    this.reader?.demandChanged()
    this.statusChanged()
    req.finish()
  }

  /** Sends a plain reply (or an error, or "closed") to the request's requester. */
  private sendReply (req: ServiceRequest, kind: number, body?: Payload): (stored: Stored) => void {
    const { replyTo, seq } = req.envelope
    return (stored) => this.replies.send(replyTo, encodeReply(kind, seq, body), stored)
  }

  /**
   * @internal Answers with a value (the handler form calls it with what the handler returned: no promise
   * of its own, since it runs for every request); `done` once the answer is stored.
   */
  answer (req: ServiceRequest, value: unknown, done: () => void = noop): void {
    if (req.done) return done()
    if (!req.replyWanted) return this.settle(req, null, done)
    if (req.streamed) {
      const w = this.replyStream(req)
      if (value === null || value === undefined) w.end()
      else w.end(value)
      finished(w).catch(noop).then(done)
      return
    }
    let body: Payload | undefined
    if (value !== undefined) {
      try {
        body = this.service.encodeValue(value)
      } catch (err) {
        this.fail(req, err).then(done, done)
        return
      }
    }
    this.settle(req, this.sendReply(req, body !== undefined ? REPLY_VALUE : REPLY_VOID, body), done)
  }

  /** The stream form: a request whose deadline passed before it was handed on is never started. */
  expire (req: ServiceRequest): void {
    if (req.done) return
    this.expired++
    this.counts.expired++
    this.settle(req, null)
  }

  /**
   * The stream form closes with these requests in its buffer, never handed on: they go back to the
   * queue with the reader (unanswered), for another server.
   */
  giveBack (reqs: ServiceRequest[]): void {
    for (const req of reqs) {
      if (req.done) continue
      req.done = true
      clearTimeout(req.timer)
      this.release(req)
    }
  }

  reply (req: ServiceRequest, value: unknown): Promise<void> {
    return new Promise((resolve) => this.answer(req, value, resolve))
  }

  async fail (req: ServiceRequest, err: unknown): Promise<void> {
    if (req.done) return
    this.counts.handlerErrors++
    if (!req.replyWanted) {
      debug('the handler of %s failed (nobody waits for it): %s', req.id, err instanceof Error ? err.message : String(err))
      return await this.settled(req, null)
    }
    if (req.streamed) {
      const w = this.replyStream(req)
      // After what was written before.
      if (w instanceof ServiceReplyStream) w.fail(err instanceof Error ? err : new Error(String(err)))
      else w.destroy()
      await finished(w).catch(() => {})
      return
    }
    await this.settled(req, this.sendReply(req, REPLY_ERROR, encodeError(err, this.settings.exposeStack)))
  }

  replyStream (req: ServiceRequest): Writable {
    if (req.stream) return req.stream
    if (!req.replyWanted) {
      // Nobody reads it: a sink, so that a handler that streams works for send() too.
      const sink = new Writable({ objectMode: true, write: (_chunk, _enc, cb) => cb() })
      sink.on('error', () => {})
      sink.on('close', () => this.settle(req, null))
      req.stream = sink
      return sink
    }
    if (!req.streamed) {
      throw new InvalidOptionError(`request ${req.id} wants one reply (service.request()): answer with a value, ` +
        'or have the requester call requestStream()')
    }
    const { bus } = this.service
    const queue = new Queue(bus, `svc-stream:${req.id}`, { ttl: this.service.ttl, maxLength: Math.max(1, req.envelope.window) },
      { keys: replyStreamKeys(bus.settings.prefix, req.id) })
    const token = `${this.id}/${req.deliveries}`
    const stream = new ServiceReplyStream({
      queue,
      objectMode: this.service.objectMode,
      codec: this.service.codec,
      signal: req.signal,
      claim: req.message ? () => this.claim(queue, token) : undefined,
      checkEvery: bus.settings.pollInterval,
      exposeStack: this.settings.exposeStack,
      started: () => { req.started = true },
      ended: (err) => {
        if (err instanceof RequesterGoneError) req.abort(err)
        this.settle(req, null)
      }
    })
    // Its failures reach the requester; the handler learns of them through write callbacks and 'close'.
    stream.on('error', (err: Error) => debug('streamed reply %s: %s', req.id, err.message))
    req.stream = stream
    return stream
  }

  /** Reliable: only one delivery of a request may write its streamed reply (see ServiceReplyStream). */
  private async claim (queue: Queue, token: string): Promise<boolean> {
    const shard = await queue.shard()
    const info = queue.keys.info
    const res = await shard.run((c) => c.multi().hsetnx(info, 'c', token).hget(info, 'c').pexpire(info, queue.ttl).exec())
    return res?.[1]?.[1] === token
  }

  /** Gives up on the requests still open (the grace is over). */
  private async abortAll (): Promise<void> {
    const closing: Array<Promise<void>> = []
    for (const req of [...this.open]) {
      if (req.done) continue
      const reason = new ServiceClosedError(`the server of ${this.service.name} closed before request ${req.id} was answered`)
      if (req.message) {
        // Reliable: not answered; the reader gives it back (to another server) when it closes.
        req.done = true
        clearTimeout(req.timer)
        req.abort(reason)
        if (req.stream instanceof ServiceReplyStream) req.stream.abandon()
        this.release(req)
        continue
      }
      req.abort(reason)
      if (!req.replyWanted) {
        closing.push(this.settled(req, null))
      } else if (req.streamed) {
        const w = this.replyStream(req)
        w.destroy(reason)
        closing.push(finished(w).then(() => {}, () => {}))
      } else {
        closing.push(this.settled(req, this.sendReply(req, REPLY_CLOSED, encodeError(reason, false, true))))
      }
    }
    await Promise.allSettled(closing)
  }

  /**
   * Stops taking requests, waits up to `grace` ms for the running ones, then aborts what is left.
   * Idempotent; resolves once everything it took is answered or back in the queue.
   */
  close (grace: number): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true
      this.untrack()
      const reader = this.reader
      if (reader) {
        reader.pause()
        reader.demandChanged()
        // Consume-once: what it took and did not hand on goes back now (running requests are not its
        // concern). Reliable: its leases cover the running requests, so it closes last.
        if (!this.settings.reliable) await destroyAndWait(reader)
      }
      const open = [...this.open]
      if (open.length > 0 && grace > 0) await Promise.race([Promise.all(open.map((r) => r.finished)), sleep(grace)])
      await this.abortAll()
      if (reader && this.settings.reliable) await destroyAndWait(reader)
      clearInterval(this.beatTimer)
      clearTimeout(this.statusTimer)
      if (this.shard) await this.announce('leave').catch(() => {})
      this.replies.close()
    })()
    return this.closing
  }

  private statusChanged (): void {
    if (this.statusTimer || this.stopping || !this.shard) return
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined
      this.beat('beat')
    }, STATUS_DELAY)
    this.statusTimer.unref()
  }

  private beat (op: 'beat'): void {
    if (this.stopping || !this.shard) return
    // Keeps the offset to the shard's clock fresh as well.
    clockOffset(this.shard).catch(() => {})
    this.announce(op).catch((err: Error) => debug('server %s could not announce itself: %s', this.id, err.message))
  }

  private async announce (op: 'beat' | 'leave'): Promise<number> {
    return await serve(this.shard!, {
      servers: this.service.keys.servers,
      server: this.id,
      op,
      ttl: this.service.ttl,
      running: this.open.size,
      concurrency: this.settings.concurrency,
      reliable: this.settings.reliable,
      handled: encodeHandled(this.recent.map((n, i) => n + this.previous[i]))
    })
  }
}
