/** Upper bounds (seconds) of the latency buckets, as Prometheus `le` labels; a last bucket takes the rest. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

/** Index of the bucket of an observation: the first bound it does not pass (the last bucket: past them all). */
export function bucketOf (seconds: number): number {
  let i = 0
  while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]) i++
  return i
}

/**
 * Estimated `q`-quantile (seconds) of per-bucket counts (not cumulative; one per bucket of
 * LATENCY_BUCKETS, and one past them), linear within a bucket; 0 without observations.
 */
export function quantileOf (counts: readonly number[], q: number): number {
  let total = 0
  for (const n of counts) total += n
  if (total === 0) return 0
  const rank = q * total
  let below = 0
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]
    if (below + n >= rank && n > 0) {
      const low = i === 0 ? 0 : LATENCY_BUCKETS[i - 1]
      // Past the last bound there is no upper edge: say the bound.
      if (i >= LATENCY_BUCKETS.length) return low
      return low + (LATENCY_BUCKETS[i] - low) * ((rank - below) / n)
    }
    below += n
  }
  return LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1]
}

/** A histogram as `bus.metrics()` reports it. */
export interface HistogramSnapshot {
  /** Observations. */
  count: number
  /** Their sum, in seconds. */
  sum: number
  /** Cumulative counts per upper bound (seconds; the last is `Infinity`), as Prometheus has them. */
  buckets: Array<{ le: number, count: number }>
  /** Estimated median and 99th percentile in seconds (linear within a bucket); 0 without observations. */
  p50: number
  p99: number
}

/**
 * A latency histogram with fixed buckets: `observe()` is a few comparisons and two additions, so it can
 * run once per batch or per acknowledged message without being noticed.
 */
export class LatencyHistogram {
  /** Per bucket; allocated by the first observation (a plain array: many short-lived records stay cheap). */
  private counts?: number[]
  private total = 0
  private sum = 0
  /** Also called with each observation (an OpenTelemetry histogram, when the bus has a meter). */
  forward?: (seconds: number) => void

  observe (seconds: number): void {
    const i = bucketOf(seconds)
    this.counts ??= new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)
    this.counts[i]++
    this.total++
    this.sum += seconds
    this.forward?.(seconds)
  }

  snapshot (): HistogramSnapshot {
    const buckets: Array<{ le: number, count: number }> = []
    let running = 0
    for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
      running += this.counts?.[i] ?? 0
      buckets.push({ le: i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i] : Infinity, count: running })
    }
    return { count: this.total, sum: this.sum, buckets, p50: this.quantile(0.5), p99: this.quantile(0.99) }
  }

  private quantile (q: number): number {
    return this.counts === undefined ? 0 : quantileOf(this.counts, q)
  }
}
