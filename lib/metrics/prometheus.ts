import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Metric, Registry } from 'prom-client'
import type { MetricFamily, MetricsSource } from './bus-metrics.js'

type Value = { value: number, labels: Record<string, string | number>, metricName?: string }

/** prom-client's form of a family's values (a histogram as its `_bucket`, `_sum` and `_count` series). */
function valuesOf (f: MetricFamily): Value[] {
  const out: Value[] = []
  for (const s of f.samples) {
    if (!('histogram' in s)) {
      out.push({ value: s.value, labels: s.labels })
      continue
    }
    for (const b of s.histogram.buckets) {
      out.push({ metricName: `${f.name}_bucket`, value: b.count, labels: { ...s.labels, le: b.le === Infinity ? '+Inf' : b.le } })
    }
    out.push({ metricName: `${f.name}_sum`, value: s.histogram.sum, labels: s.labels })
    out.push({ metricName: `${f.name}_count`, value: s.histogram.count, labels: s.labels })
  }
  return out
}

/**
 * A prom-client registry holding the families of `source` as they are now. prom-client writes the text
 * (escaping, `+Inf`, the content type); the values are taken from the bus when this is called, so each
 * scrape gets a registry of its own.
 */
export async function prometheusRegistry (source: MetricsSource): Promise<Registry> {
  // Loaded on the first scrape: a bus that is never scraped (and the command line) does not pay for it.
  const { Registry } = await import('prom-client')
  const registry = new Registry()
  for (const f of await source.families()) {
    const values = valuesOf(f)
    const metric = {
      name: f.name,
      help: f.help,
      type: f.type,
      aggregator: 'sum',
      get: async () => ({ name: f.name, help: f.help, type: f.type, aggregator: 'sum', values }),
      reset: () => {}
    }
    registry.registerMetric(metric as unknown as Metric)
  }
  return registry
}

/** The Prometheus text of `source`, and its content type. */
export async function prometheusText (source: MetricsSource): Promise<{ text: string, contentType: string }> {
  const registry = await prometheusRegistry(source)
  return { text: await registry.metrics(), contentType: registry.contentType }
}

/** A plain Node http handler that answers with the Prometheus text of `source`. */
export function prometheusHandler (source: MetricsSource): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    prometheusText(source).then(({ text, contentType }) => {
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' })
      res.end(text)
    }, (err: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(`metrics failed: ${err.message}\n`)
    })
  }
}
