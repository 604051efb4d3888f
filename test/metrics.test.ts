// bus.metrics(), /metrics (prom-client's text, parsed by a Prometheus text parser) and the OpenTelemetry
// meter: the counters say exactly what the test did.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { MeterProvider, MetricReader, DataPointType } from '@opentelemetry/sdk-metrics'
import { Bus } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { trackBuses, writeAll, range } from './helpers/queue.js'

const redis = useRedis(1)
const open = trackBuses()

interface Parsed { name: string, type: string, metrics: Array<{ value?: string, labels?: Record<string, string>, buckets?: Record<string, string>, count?: string, sum?: string }> }

/** What the test does to a queue: 30 pushed (25 by a stream, 5 one by one), 10 popped, 5 reliable (3 acked
 * at once, 1 nacked then acked on its redelivery, 1 dead-lettered). */
async function workload (bus: Bus, name: string): Promise<void> {
  const q = bus.queue(name)
  await writeAll(q.createWriteStream(), range(0, 25).map((i) => `m${i}`))
  for (let i = 0; i < 5; i++) await q.push(`p${i}`)
  let popped = 0
  for await (const _ of q.createReadStream({ max: 10 })) popped++
  assert.equal(popped, 10)
  const reader = q.createReadStream({ mode: 'reliable', max: 6, prefetch: 1 })
  let k = 0
  for await (const msg of reader) {
    k++
    if (k === 4) await msg.nack()
    else if (k === 5) await msg.nack({ deadLetter: true })
    else assert.equal(await msg.ack(), true)
  }
}

async function scrape (url: string): Promise<Parsed[]> {
  const res = await fetch(url)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return parsePrometheusTextFormat(await res.text()) as Parsed[]
}

function sample (families: Parsed[], name: string, labels: Record<string, string>): Parsed['metrics'][number] | undefined {
  const family = families.find((f) => f.name === name)
  return family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
}

test('counters, depth and shard state in bus.metrics() and in /metrics of metricsHandler() and of the dashboard', async () => {
  const bus = await open(redis.servers)
  const name = uniqueName('metrics')
  await workload(bus, name)

  const snap = await bus.metrics()
  const q = snap.queues.find((x) => x.name === name)
  assert.ok(q)
  assert.deepEqual({ pushed: q.pushed, popped: q.popped, acked: q.acked, redelivered: q.redelivered, deadLettered: q.deadLettered },
    { pushed: 30, popped: 16, acked: 4, redelivered: 1, deadLettered: 1 })
  assert.deepEqual({ depth: q.depth, inFlight: q.inFlight, deadLetters: q.deadLetters }, { depth: 15, inFlight: 0, deadLetters: 1 })
  assert.equal(q.ackLatency.count, 4)
  assert.ok(q.pushDuration.count >= 6, `push calls: ${q.pushDuration.count}`)
  assert.deepEqual(snap.shards, [{ id: bus.shardIds[0], up: true, reconnects: 0, commandTimeouts: 0 }])

  const server = createServer()
  const metrics = bus.metricsHandler()
  const dashboard = bus.dashboard()
  // /metrics from metricsHandler(); everything else (/metrics?from=dashboard too) from the dashboard.
  server.on('request', (req, res) => req.url === '/metrics' ? metrics(req, res) : dashboard(req, res))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  try {
    for (const url of [`${base}/metrics`, `${base}/metrics?from=dashboard`]) {
      const families = await scrape(url)
      const value = (metric: string, labels: Record<string, string> = { queue: name }): number => Number(sample(families, metric, labels)?.value)
      assert.equal(value('busmq_queue_pushed_total'), 30)
      assert.equal(value('busmq_queue_popped_total'), 16)
      assert.equal(value('busmq_queue_acked_total'), 4)
      assert.equal(value('busmq_queue_redelivered_total'), 1)
      assert.equal(value('busmq_queue_dead_lettered_total'), 1)
      assert.equal(value('busmq_queue_depth', { queue: name, shard: bus.shardIds[0] }), 15)
      assert.equal(value('busmq_queue_dead_letters', { queue: name }), 1)
      assert.equal(value('busmq_shard_up', { shard: bus.shardIds[0] }), 1)
      assert.equal(value('busmq_shard_reconnects_total', { shard: bus.shardIds[0] }), 0)
      // This parser keeps only the buckets of a histogram (not its labels, sum and count), so it is read
      // where the bus has a single queue's series.
      const acks = families.find((f) => f.name === 'busmq_queue_ack_latency_seconds')?.metrics
      assert.equal(acks?.length, 1)
      assert.equal(Number(acks?.[0].buckets?.['+Inf']), 4)
      assert.equal(families.find((f) => f.name === 'busmq_queue_pushed_total')?.type, 'COUNTER')
    }
  } finally {
    await dashboard.close()
    server.close()
  }
})

class TestReader extends MetricReader {
  protected override async onShutdown (): Promise<void> {}
  protected override async onForceFlush (): Promise<void> {}
}

test('an OpenTelemetry meter gets the same counters, and the latency histograms', async () => {
  const reader = new TestReader()
  const provider = new MeterProvider({ readers: [reader] })
  const bus = new Bus({ redis: redis.servers.map((s) => s.url), meter: provider.getMeter('busmq') })
  try {
    const name = uniqueName('otel')
    await workload(bus, name)
    const { resourceMetrics } = await reader.collect()
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
    const point = (metric: string): any => all.find((m) => m.descriptor.name === metric)?.dataPoints
      .find((p: any) => p.attributes.queue === name)
    assert.equal(point('busmq.queue.pushed')?.value, 30)
    assert.equal(point('busmq.queue.popped')?.value, 16)
    assert.equal(point('busmq.queue.acked')?.value, 4)
    assert.equal(point('busmq.queue.dead_lettered')?.value, 1)
    assert.equal(point('busmq.queue.depth')?.value, 15)
    const acks = all.find((m) => m.descriptor.name === 'busmq.queue.ack_latency_seconds')
    assert.equal(acks?.dataPointType, DataPointType.HISTOGRAM)
    assert.equal(point('busmq.queue.ack_latency_seconds')?.value.count, 4)
  } finally {
    await bus.close()
    await provider.shutdown()
  }
})
