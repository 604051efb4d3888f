import createDebug from 'debug'
import type { QueueKeys } from '../keys.js'
import type { Shard } from '../router/shard.js'
import { LatencyHistogram, type HistogramSnapshot } from './latency-histogram.js'
import {
  SERVICE_COUNTERS, SERVICE_GAUGES, SERVICE_HISTOGRAMS, ServiceCounters, type MeasuredService, type ServiceMetrics
} from './service-counters.js'
import { parseServers } from '../service/server-status.js'

const debug = createDebug('busmq:metrics')

/** What the metrics need of a queue handle: its name, keys and shard. */
export interface MeasuredQueue {
  readonly name: string
  readonly keys: QueueKeys
  shard: () => Promise<Shard>
}

/**
 * The counters of one queue in this process (one bus). Streams look their record up once, when they
 * are made, and then only add to its fields.
 */
export class QueueCounters {
  /** Messages this bus's producers had accepted by Redis (end markers included, as in `stats().pushed`). */
  pushed = 0
  /** Messages this bus's consume-once and reliable readers handed to the application. */
  popped = 0
  /** Reliable messages acknowledged (Redis confirmed the ack). */
  acked = 0
  /** Reliable messages handed to the application that had been delivered before. */
  redelivered = 0
  /** Messages this bus's readers sent to the dead-letter queue (nack, undecodable payload). */
  deadLettered = 0
  /** One push call (a batch) from its start until Redis accepted it. */
  readonly pushDuration = new LatencyHistogram()
  /** A reliable message from its arrival from Redis until Redis confirmed its ack. */
  readonly ackLatency = new LatencyHistogram()
  readonly queue: MeasuredQueue

  constructor (queue: MeasuredQueue) {
    this.queue = queue
  }
}

/** One queue in `bus.metrics()`. */
export interface QueueMetrics {
  name: string
  /** Shard holding it. */
  shard: string
  pushed: number
  popped: number
  acked: number
  redelivered: number
  deadLettered: number
  /** From Redis: messages waiting, reliable messages in flight, messages in its dead-letter queue. */
  depth: number
  inFlight: number
  deadLetters: number
  pushDuration: HistogramSnapshot
  ackLatency: HistogramSnapshot
}

/** One shard in `bus.metrics()`. */
export interface ShardMetrics {
  id: string
  /** Whether its command connection is up. */
  up: boolean
  /** Times its connection came back after it was lost. */
  reconnects: number
  /** Commands that failed because the shard did not answer within `commandTimeout`. */
  commandTimeouts: number
}

/** What `bus.metrics()` resolves with. */
export interface MetricsSnapshot {
  /** When it was taken (ms since the epoch). */
  at: number
  queues: QueueMetrics[]
  /** The services this bus used as a requester or a server (up to `metricsQueues`). */
  services: ServiceMetrics[]
  shards: ShardMetrics[]
}

/** A sample of a metric family: a number, or a histogram. */
export type MetricSample = { labels: Record<string, string>, value: number } | { labels: Record<string, string>, histogram: HistogramSnapshot }

/**
 * A metric family in the neutral form /metrics (prom-client) and the OpenTelemetry meter are fed from.
 * Later parts of the bus (services, objects) add theirs through a {@link MetricsSource}.
 */
export interface MetricFamily {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram'
  samples: MetricSample[]
}

/** Anything that reports metric families: the queues and shards here; services and objects later. */
export interface MetricsSource {
  families: () => Promise<MetricFamily[]>
}

/** Default of the bus option `metricsQueues`. */
export const DEFAULT_METRICS_QUEUES = 1000

/** Static description of the families of {@link BusMetrics} (also what the OpenTelemetry meter creates). */
export const QUEUE_COUNTERS = [
  ['pushed', 'busmq_queue_pushed_total', 'Messages pushed by this process and accepted by Redis (end markers included)'],
  ['popped', 'busmq_queue_popped_total', 'Messages handed to the application by this process\'s consume-once and reliable readers'],
  ['acked', 'busmq_queue_acked_total', 'Reliable messages acknowledged by this process'],
  ['redelivered', 'busmq_queue_redelivered_total', 'Reliable messages this process received that had been delivered before'],
  ['deadLettered', 'busmq_queue_dead_lettered_total', 'Messages this process\'s readers moved to the dead-letter queue (nack, undecodable)']
] as const

export const QUEUE_GAUGES = [
  ['depth', 'busmq_queue_depth', 'Messages waiting in the queue (Redis)'],
  ['inFlight', 'busmq_queue_in_flight', 'Reliable messages delivered and not yet acknowledged (Redis)'],
  ['deadLetters', 'busmq_queue_dead_letters', 'Messages in the queue\'s dead-letter queue (Redis)']
] as const

export const QUEUE_HISTOGRAMS = [
  ['pushDuration', 'busmq_queue_push_duration_seconds', 'One push call (a batch of messages) from its start until Redis accepted it'],
  ['ackLatency', 'busmq_queue_ack_latency_seconds', 'A reliable message from its arrival from Redis until Redis confirmed its ack']
] as const

export const SHARD_FAMILIES = [
  ['up', 'busmq_shard_up', 'gauge', 'Whether the shard\'s command connection is up (1) or not (0)'],
  ['reconnects', 'busmq_shard_reconnects_total', 'counter', 'Times the shard\'s connection came back after it was lost'],
  ['commandTimeouts', 'busmq_shard_command_timeouts_total', 'counter', 'Commands that failed because the shard did not answer within commandTimeout']
] as const

/**
 * The metrics of one bus: a counter record per queue it uses (at most `maxQueues`, the least recently
 * opened dropped first, so a process that touches many queues keeps bounded memory), its shards'
 * counters, and other sources (services, objects) registered with {@link addSource}.
 */
export class BusMetrics implements MetricsSource {
  private readonly records = new Map<string, QueueCounters>()
  private readonly serviceRecords = new Map<string, ServiceCounters>()
  private readonly sources: MetricsSource[] = []
  private readonly maxQueues: number
  private readonly shards: () => Shard[]
  /** Called with each new record (wires its histograms to an OpenTelemetry meter). */
  onRecord?: (record: QueueCounters) => void
  onServiceRecord?: (record: ServiceCounters) => void

  constructor (shards: () => Shard[], maxQueues = DEFAULT_METRICS_QUEUES) {
    this.shards = shards
    this.maxQueues = maxQueues
  }

  /** The record of a queue; streams call it once, when they are made. */
  queue (q: MeasuredQueue): QueueCounters {
    let record = this.records.get(q.name)
    if (record !== undefined) {
      // Most recently opened last: the first is the one to drop.
      this.records.delete(q.name)
      this.records.set(q.name, record)
      return record
    }
    record = new QueueCounters(q)
    this.records.set(q.name, record)
    if (this.records.size > this.maxQueues) this.records.delete(this.records.keys().next().value!)
    this.onRecord?.(record)
    return record
  }

  /** The record of a service; a handle calls it once, on first use. */
  service (s: MeasuredService): ServiceCounters {
    let record = this.serviceRecords.get(s.name)
    if (record !== undefined) {
      this.serviceRecords.delete(s.name)
      this.serviceRecords.set(s.name, record)
      return record
    }
    record = new ServiceCounters(s)
    this.serviceRecords.set(s.name, record)
    if (this.serviceRecords.size > this.maxQueues) this.serviceRecords.delete(this.serviceRecords.keys().next().value!)
    this.onServiceRecord?.(record)
    return record
  }

  /** Adds a source of metric families (a later subsystem: services, objects). */
  addSource (source: MetricsSource): void {
    this.sources.push(source)
  }

  /** The counters, with each queue's depth, in-flight and dead-letter counts read from Redis. */
  async snapshot (): Promise<MetricsSnapshot> {
    const queues = await Promise.all([...this.records.values()].map(async (r): Promise<QueueMetrics> => {
      let shard = '?'
      let depth = 0
      let inFlight = 0
      let deadLetters = 0
      try {
        const s = await r.queue.shard()
        shard = s.id
        const k = r.queue.keys
        ;[depth, inFlight, deadLetters] = await s.run((c) => Promise.all([
          c.llen(k.messages), c.hlen(k.inflight), c.llen(k.deadLetter().messages)
        ]), { timeout: Math.min(s.commandTimeout || 2000, 2000) })
      } catch (err) {
        debug('depth of %s: %s', r.queue.name, (err as Error).message)
      }
      return {
        name: r.queue.name,
        shard,
        pushed: r.pushed,
        popped: r.popped,
        acked: r.acked,
        redelivered: r.redelivered,
        deadLettered: r.deadLettered,
        depth,
        inFlight,
        deadLetters,
        pushDuration: r.pushDuration.snapshot(),
        ackLatency: r.ackLatency.snapshot()
      }
    }))
    const services = await Promise.all([...this.serviceRecords.values()].map((r) => serviceMetrics(r)))
    const shards = this.shards().map((s) => ({
      id: s.id, up: s.online, reconnects: s.reconnects, commandTimeouts: s.commandTimeouts
    }))
    return { at: Date.now(), queues: queues.sort(byName), services: services.sort(byName), shards }
  }

  /** Every family: the queues' and shards' (from one snapshot), then the other sources'. */
  async families (): Promise<MetricFamily[]> {
    const [snap, more] = await Promise.all([this.snapshot(), Promise.all(this.sources.map((s) => s.families()))])
    return [...familiesOf(snap), ...more.flat()]
  }
}

function byName (a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0
}

/** A service's counters, with its servers, running and waiting requests read from Redis. */
async function serviceMetrics (r: ServiceCounters): Promise<ServiceMetrics> {
  let shard = '?'
  let servers = 0
  let running = 0
  let waiting = 0
  try {
    const s = await r.service.shard()
    shard = s.id
    const k = r.service.keys
    const [plain, reliable, hash, time] = await s.run((c) => Promise.all([
      c.llen(k.requests.messages), c.llen(k.reliableRequests.messages), c.hgetall(k.servers), c.time()
    ]), { timeout: Math.min(s.commandTimeout || 2000, 2000) })
    const status = parseServers(hash, Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000))
    servers = status.servers
    running = status.running
    waiting = plain + reliable
  } catch (err) {
    debug('state of service %s: %s', r.service.name, (err as Error).message)
  }
  return {
    name: r.service.name,
    shard,
    requested: r.requested,
    replies: r.replies,
    failed: r.failed,
    timedOut: r.timedOut,
    handled: r.handled,
    handlerErrors: r.handlerErrors,
    expired: r.expired,
    servers,
    running,
    waiting,
    requestDuration: r.requestDuration.snapshot(),
    handlingDuration: r.handlingDuration.snapshot()
  }
}

/** A snapshot as metric families (labels: `queue` or `service`, and `shard` on what is read from Redis). */
export function familiesOf (snap: MetricsSnapshot): MetricFamily[] {
  const out: MetricFamily[] = []
  for (const [field, name, help] of QUEUE_COUNTERS) {
    out.push({ name, help, type: 'counter', samples: snap.queues.map((q) => ({ labels: { queue: q.name }, value: q[field] })) })
  }
  for (const [field, name, help] of QUEUE_GAUGES) {
    out.push({ name, help, type: 'gauge', samples: snap.queues.map((q) => ({ labels: { queue: q.name, shard: q.shard }, value: q[field] })) })
  }
  for (const [field, name, help] of QUEUE_HISTOGRAMS) {
    out.push({ name, help, type: 'histogram', samples: snap.queues.map((q) => ({ labels: { queue: q.name }, histogram: q[field] })) })
  }
  for (const [field, name, help] of SERVICE_COUNTERS) {
    out.push({ name, help, type: 'counter', samples: snap.services.map((s) => ({ labels: { service: s.name }, value: s[field] })) })
  }
  for (const [field, name, help] of SERVICE_GAUGES) {
    out.push({ name, help, type: 'gauge', samples: snap.services.map((s) => ({ labels: { service: s.name, shard: s.shard }, value: s[field] })) })
  }
  for (const [field, name, help] of SERVICE_HISTOGRAMS) {
    out.push({ name, help, type: 'histogram', samples: snap.services.map((s) => ({ labels: { service: s.name }, histogram: s[field] })) })
  }
  for (const [field, name, type, help] of SHARD_FAMILIES) {
    out.push({ name, help, type, samples: snap.shards.map((s) => ({ labels: { shard: s.id }, value: Number(s[field]) })) })
  }
  return out
}
