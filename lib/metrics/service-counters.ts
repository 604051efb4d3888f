import type { ServiceKeys } from '../keys.js'
import type { Shard } from '../router/shard.js'
import { LatencyHistogram, type HistogramSnapshot } from './latency-histogram.js'

/** What the metrics need of a service handle: its name, keys and shard. */
export interface MeasuredService {
  readonly name: string
  readonly keys: ServiceKeys
  shard: () => Promise<Shard>
}

/**
 * The counters of one service in this process (one bus), as a requester and as a server. A handle
 * looks its record up once, on first use; its requests and servers then only add to its fields.
 */
export class ServiceCounters {
  /** Requests this bus sent (`request`, `send`, `requestStream`) that Redis stored. */
  requested = 0
  /** Replies this bus's `request()` calls received (values and errors). */
  replies = 0
  /** Of those, the errors: the handler failed (ERR_BUSMQ_REMOTE) or its server closed first. */
  failed = 0
  /** `request()` calls of this bus that got no reply in time (ERR_BUSMQ_REQUEST_TIMEOUT). */
  timedOut = 0
  /** Requests this bus's servers finished: answered (with a reply or an error) or, from `send()`, done. */
  handled = 0
  /** Of those, the ones whose handler failed (threw, rejected, `req.fail()`). */
  handlerErrors = 0
  /** Requests this bus's servers took after their deadline had passed, and dropped unstarted. */
  expired = 0
  /** A `request()` from the call until its reply arrived. */
  readonly requestDuration = new LatencyHistogram()
  /** A request in one of this bus's servers, from when it was taken until it was answered. */
  readonly handlingDuration = new LatencyHistogram()
  readonly service: MeasuredService

  constructor (service: MeasuredService) {
    this.service = service
  }
}

/** One service in `bus.metrics()`. */
export interface ServiceMetrics {
  name: string
  /** Shard holding it. */
  shard: string
  requested: number
  replies: number
  failed: number
  timedOut: number
  handled: number
  handlerErrors: number
  expired: number
  /** From Redis, over every process: servers announced, requests they run, requests waiting to be taken. */
  servers: number
  running: number
  waiting: number
  requestDuration: HistogramSnapshot
  handlingDuration: HistogramSnapshot
}

export const SERVICE_COUNTERS = [
  ['requested', 'busmq_service_requests_total', 'Requests this process sent (request, send, requestStream) and Redis stored'],
  ['replies', 'busmq_service_replies_total', 'Replies this process\'s request() calls received (values and errors)'],
  ['failed', 'busmq_service_failed_total', 'Replies this process received that were errors (the handler failed, or its server closed)'],
  ['timedOut', 'busmq_service_timeouts_total', 'request() calls of this process that got no reply within their timeout'],
  ['handled', 'busmq_service_handled_total', 'Requests this process\'s servers finished (answered with a reply or an error)'],
  ['handlerErrors', 'busmq_service_handler_errors_total', 'Requests this process\'s servers answered with an error (the handler failed)'],
  ['expired', 'busmq_service_expired_total', 'Requests this process\'s servers dropped unstarted: their deadline had passed']
] as const

export const SERVICE_GAUGES = [
  ['servers', 'busmq_service_servers', 'Servers of the service, in every process (Redis)'],
  ['running', 'busmq_service_running', 'Requests the service\'s servers are running, in every process (Redis)'],
  ['waiting', 'busmq_service_waiting', 'Requests waiting to be taken by a server (Redis)']
] as const

export const SERVICE_HISTOGRAMS = [
  ['requestDuration', 'busmq_service_request_duration_seconds', 'A request() of this process from the call until its reply arrived'],
  ['handlingDuration', 'busmq_service_handling_duration_seconds', 'A request in this process\'s servers, from when it was taken until it was answered']
] as const
