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
import { eventually, uniqueName } from './helpers/bus.js'
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

interface Job { n: number, fail?: boolean, hold?: boolean }

/**
 * What the test does to a service: a server of concurrency 2; 2 requests (timeout 3 s) held by the
 * handler until they time out (K = 2); meanwhile 8 more wait (running 2, waiting 8), of which 2 fail
 * (M = 2); the gate opens and the held ones finish late (their replies are dropped). N = 10 requests,
 * 8 replies, 10 handled, 2 handler errors.
 */
async function serviceWorkload (bus: Bus, name: string, during?: () => Promise<void>): Promise<void> {
  const svc = bus.service<Job, number>(name, { objectMode: true, timeout: 60_000 })
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let held = 0
  const server = svc.serve(async (req) => {
    if (req.data.hold === true) {
      held++
      await gate
    }
    if (req.data.fail === true) throw new Error(`job ${req.data.n} failed`)
    return req.data.n
  }, { concurrency: 2 })
  const timeouts = [0, 1].map((n) => svc.request({ n, hold: true }, { timeout: 3000 }).then(() => 'replied', (err) => err.code))
  await eventually(() => held === 2, 10_000, 'both held requests started')
  const rest = [2, 3, 4, 5, 6, 7, 8, 9].map((n) => svc.request({ n, fail: n >= 8 }).then((v) => v, (err) => err.code))
  await during?.()
  assert.deepEqual(await Promise.all(timeouts), ['ERR_BUSMQ_REQUEST_TIMEOUT', 'ERR_BUSMQ_REQUEST_TIMEOUT'])
  release()
  assert.deepEqual(await Promise.all(rest), [2, 3, 4, 5, 6, 7, 'ERR_BUSMQ_REMOTE', 'ERR_BUSMQ_REMOTE'])
  // The held requests are answered too (late: their replies are dropped).
  await eventually(async () => (await bus.metrics()).services.find((s) => s.name === name)?.handled === 10)
  await eventually(() => svc.droppedReplies === 2)
  await server.close()
}

test('services: requests, replies, failures, timeouts, handled, servers, running and waiting in bus.metrics() and /metrics', async () => {
  const bus = await open(redis.servers)
  const name = uniqueName('metrics-svc')
  const service = async (): Promise<any> => (await bus.metrics()).services.find((s) => s.name === name)
  await serviceWorkload(bus, name, async () => {
    // While 2 run and 8 wait: read from Redis, as every process's servers told it.
    await eventually(async () => {
      const s = await service()
      return s?.servers === 1 && s.running === 2 && s.waiting === 8
    }, 10_000, async () => `servers 1, running 2, waiting 8 (got ${JSON.stringify(await service())})`)
  })
  const s = await service()
  assert.deepEqual({
    requested: s.requested, replies: s.replies, failed: s.failed, timedOut: s.timedOut, handled: s.handled, handlerErrors: s.handlerErrors, expired: s.expired
  }, { requested: 10, replies: 8, failed: 2, timedOut: 2, handled: 10, handlerErrors: 2, expired: 0 })
  assert.equal(s.shard, bus.shardIds[0])
  assert.equal(s.requestDuration.count, 8)
  assert.equal(s.handlingDuration.count, 10)
  assert.ok(s.handlingDuration.p50 > 0 && s.handlingDuration.p50 <= s.handlingDuration.p99, JSON.stringify(s.handlingDuration))
  // Its request queue is a queue of this bus as well.
  assert.equal((await bus.metrics()).queues.find((q) => q.name === `svc:${name}`)?.pushed, 10)

  const server = createServer(bus.metricsHandler())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const families = await scrape(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`)
    const value = (metric: string, labels: Record<string, string> = { service: name }): number => Number(sample(families, metric, labels)?.value)
    assert.deepEqual({
      requests: value('busmq_service_requests_total'),
      replies: value('busmq_service_replies_total'),
      failed: value('busmq_service_failed_total'),
      timeouts: value('busmq_service_timeouts_total'),
      handled: value('busmq_service_handled_total'),
      handlerErrors: value('busmq_service_handler_errors_total'),
      expired: value('busmq_service_expired_total')
    }, { requests: 10, replies: 8, failed: 2, timeouts: 2, handled: 10, handlerErrors: 2, expired: 0 })
    // The server closed: none left, nothing running or waiting.
    const shard = { service: name, shard: bus.shardIds[0] }
    assert.deepEqual([value('busmq_service_servers', shard), value('busmq_service_running', shard), value('busmq_service_waiting', shard)], [0, 0, 0])
    assert.equal(families.find((f) => f.name === 'busmq_service_requests_total')?.type, 'COUNTER')
    assert.equal(families.find((f) => f.name === 'busmq_service_waiting')?.type, 'GAUGE')
    const handling = families.find((f) => f.name === 'busmq_service_handling_duration_seconds')
    assert.equal(handling?.type, 'HISTOGRAM')
    assert.equal(handling?.metrics.length, 1)
    assert.equal(Number(handling?.metrics[0].buckets?.['+Inf']), 10)
    const requests = families.find((f) => f.name === 'busmq_service_request_duration_seconds')?.metrics
    assert.equal(Number(requests?.[0].buckets?.['+Inf']), 8)
  } finally {
    server.close()
  }
})

test('service.stats() has the handling p50/p99 the servers told; none before any request finished', async () => {
  const bus = await open(redis.servers)
  const svc = bus.service<number, number>(uniqueName('stats-svc'), { objectMode: true })
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const server = svc.serve(async (req) => {
    await gate
    return req.data * 2
  })
  const first = svc.request(1)
  await eventually(async () => (await svc.stats()).running === 1)
  const before = await svc.stats()
  assert.equal(before.p50, undefined)
  assert.equal(before.p99, undefined)
  release()
  assert.deepEqual(await Promise.all([first, svc.request(2), svc.request(3)]), [2, 4, 6])
  await eventually(async () => (await svc.stats()).p50 !== undefined)
  const after = await svc.stats()
  assert.ok(after.p50! > 0 && after.p50! <= after.p99!, JSON.stringify(after))
  await server.close()
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

    const service = uniqueName('otel-svc')
    await serviceWorkload(bus, service)
    const collected = (await reader.collect()).resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
    const svcPoint = (metric: string): any => collected.find((m) => m.descriptor.name === metric)?.dataPoints
      .find((p: any) => p.attributes.service === service)
    assert.deepEqual(['requests', 'replies', 'failed', 'timeouts', 'handled', 'handler_errors', 'expired'].map((m) => svcPoint(`busmq.service.${m}`)?.value),
      [10, 8, 2, 2, 10, 2, 0])
    assert.equal(svcPoint('busmq.service.servers')?.value, 0)
    assert.equal(svcPoint('busmq.service.handling_duration_seconds')?.value.count, 10)
    assert.equal(svcPoint('busmq.service.request_duration_seconds')?.value.count, 8)
  } finally {
    await bus.close()
    await provider.shutdown()
  }
})
