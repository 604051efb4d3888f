import { QUEUE_COUNTERS, QUEUE_GAUGES, QUEUE_HISTOGRAMS, SHARD_FAMILIES, type BusMetrics, type QueueCounters } from './bus-metrics.js'
import { SERVICE_COUNTERS, SERVICE_GAUGES, SERVICE_HISTOGRAMS, type ServiceCounters } from './service-counters.js'

type Attributes = Record<string, string>

/** The part of an OpenTelemetry `Observable` instrument the bus uses. */
export interface ObservableLike {
  addCallback: (...args: any[]) => void
  removeCallback: (...args: any[]) => void
}

/** The part of an OpenTelemetry `BatchObservableResult` the bus uses. */
export interface BatchObservableResultLike {
  observe: (observable: any, value: number, attributes?: Attributes) => void
}

/**
 * The part of an OpenTelemetry `Meter` (`@opentelemetry/api`) the bus uses: give it
 * `metrics.getMeter('busmq')`. Typed structurally, so the package does not need `@opentelemetry/api`.
 */
export interface MeterLike {
  createObservableCounter: (name: string, options?: { description?: string, unit?: string }) => ObservableLike
  createObservableGauge: (name: string, options?: { description?: string, unit?: string }) => ObservableLike
  createHistogram: (name: string, options?: { description?: string, unit?: string }) => { record: (value: number, attributes?: Attributes) => void }
  addBatchObservableCallback: (callback: (result: BatchObservableResultLike) => void | Promise<void>, observables: ObservableLike[]) => void
}

/** `busmq_queue_dead_lettered_total` → `busmq.queue.dead_lettered`; `busmq_service_…` → `busmq.service.…`. */
export function otelName (prometheusName: string): string {
  return prometheusName.replace(/_total$/, '').replace(/^busmq_(queue|service|shard)_/, 'busmq.$1.')
}

/**
 * Reports the bus's metrics through an OpenTelemetry meter: counters and gauges as observable
 * instruments read from one snapshot per collection, latencies as histograms recorded as they happen.
 */
export function instrumentMeter (meter: MeterLike, metrics: BusMetrics): void {
  const counters = QUEUE_COUNTERS.map(([field, name, description]) =>
    ({ field, instrument: meter.createObservableCounter(otelName(name), { description, unit: '{message}' }) }))
  const gauges = QUEUE_GAUGES.map(([field, name, description]) =>
    ({ field, instrument: meter.createObservableGauge(otelName(name), { description, unit: '{message}' }) }))
  const shards = SHARD_FAMILIES.map(([field, name, type, description]) => ({
    field,
    instrument: type === 'counter'
      ? meter.createObservableCounter(otelName(name), { description })
      : meter.createObservableGauge(otelName(name), { description })
  }))
  const histograms = QUEUE_HISTOGRAMS.map(([field, name, description]) =>
    ({ field, instrument: meter.createHistogram(otelName(name), { description, unit: 's' }) }))
  const serviceCounters = SERVICE_COUNTERS.map(([field, name, description]) =>
    ({ field, instrument: meter.createObservableCounter(otelName(name), { description, unit: '{request}' }) }))
  const serviceGauges = SERVICE_GAUGES.map(([field, name, description]) =>
    ({ field, instrument: meter.createObservableGauge(otelName(name), { description }) }))
  const serviceHistograms = SERVICE_HISTOGRAMS.map(([field, name, description]) =>
    ({ field, instrument: meter.createHistogram(otelName(name), { description, unit: 's' }) }))
  meter.addBatchObservableCallback(async (result) => {
    const snap = await metrics.snapshot()
    for (const q of snap.queues) {
      for (const c of counters) result.observe(c.instrument, q[c.field], { queue: q.name })
      for (const g of gauges) result.observe(g.instrument, q[g.field], { queue: q.name, shard: q.shard })
    }
    for (const s of snap.services) {
      for (const c of serviceCounters) result.observe(c.instrument, s[c.field], { service: s.name })
      for (const g of serviceGauges) result.observe(g.instrument, s[g.field], { service: s.name, shard: s.shard })
    }
    for (const s of snap.shards) {
      for (const f of shards) result.observe(f.instrument, Number(s[f.field]), { shard: s.id })
    }
  }, [...counters, ...gauges, ...serviceCounters, ...serviceGauges, ...shards].map((c) => c.instrument))
  metrics.onRecord = (record: QueueCounters) => {
    const attributes = { queue: record.queue.name }
    for (const h of histograms) record[h.field].forward = (seconds) => h.instrument.record(seconds, attributes)
  }
  metrics.onServiceRecord = (record: ServiceCounters) => {
    const attributes = { service: record.service.name }
    for (const h of serviceHistograms) record[h.field].forward = (seconds) => h.instrument.record(seconds, attributes)
  }
}
