import { LATENCY_BUCKETS, quantileOf } from '../metrics/latency-histogram.js'
import type { ServiceStats } from './service.js'

/**
 * What the servers of one service told in its servers hash (serve-1.lua), merged: each entry is
 * `<lapses at>:<running>:<concurrency>:<reliable 0|1>[:<handled per bucket>]`, the last part the counts
 * of the requests it finished recently (over its last one or two heartbeats, `ttl / 3` each) per bucket
 * of LATENCY_BUCKETS, comma-separated, trailing zeros left out. Entries without it (servers of an
 * earlier version) count as servers with no figures.
 */
export interface ServersStatus {
  /** Servers whose entry has not lapsed. */
  servers: number
  /** Of those, the ones taking reliable requests. */
  reliableServers: number
  running: number
  concurrency: number
  /** Requests finished recently, per bucket (one more than LATENCY_BUCKETS), summed over the servers. */
  handled: number[]
}

/** Merges the entries of a servers hash (HGETALL) that are alive at `now` (ms, the shard's clock). */
export function parseServers (hash: Record<string, string>, now: number): ServersStatus {
  const out: ServersStatus = { servers: 0, reliableServers: 0, running: 0, concurrency: 0, handled: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0) }
  for (const value of Object.values(hash)) {
    const parts = value.split(':')
    const [lapse, running, concurrency, reliable] = parts.map(Number)
    if (!(lapse > now)) continue
    out.servers++
    if (reliable === 1) out.reliableServers++
    out.running += running || 0
    out.concurrency += concurrency || 0
    if (parts[4] === undefined || parts[4] === '') continue
    const counts = parts[4].split(',')
    for (let i = 0; i < counts.length && i < out.handled.length; i++) out.handled[i] += Number(counts[i]) || 0
  }
  return out
}

/** Median and 99th percentile (ms) of merged counts; undefined when nothing was finished recently. */
export function handlingPercentiles (handled: readonly number[]): { p50?: number, p99?: number } {
  if (!handled.some((n) => n > 0)) return {}
  return { p50: round(quantileOf(handled, 0.5) * 1000), p99: round(quantileOf(handled, 0.99) * 1000) }
}

function round (ms: number): number {
  return ms >= 10 ? Math.round(ms) : Math.round(ms * 100) / 100
}

/** The per-bucket part of a server's entry: counts joined by ',', trailing zeros left out ('' for none). */
export function encodeHandled (counts: readonly number[]): string {
  let end = counts.length
  while (end > 0 && counts[end - 1] === 0) end--
  return counts.slice(0, end).join(',')
}

/**
 * A service's stats from what Redis holds (`service.stats()` and the dashboard's services): its servers
 * hash, the lengths of its request queues, the longest PTTL of its keys, and the shard's clock (ms).
 */
export function serviceStats (name: string, shard: string, raw: {
  servers: Record<string, string>, waiting: number, waitingReliable: number, ttl: number, now: number
}): ServiceStats {
  const status = parseServers(raw.servers, raw.now)
  return {
    name,
    shard,
    servers: status.servers,
    reliableServers: status.reliableServers,
    running: status.running,
    concurrency: status.concurrency,
    waiting: raw.waiting + raw.waitingReliable,
    waitingReliable: raw.waitingReliable,
    ...handlingPercentiles(status.handled),
    ttl: raw.ttl
  }
}
