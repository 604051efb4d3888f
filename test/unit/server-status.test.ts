// The servers hash of a service (lib/service/server-status.ts): entries of this version and of earlier ones
// (without handling-time counts) merged; percentiles from the merged counts of every server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeHandled, handlingPercentiles, parseServers } from '../../lib/service/server-status.js'
import { LATENCY_BUCKETS, bucketOf, quantileOf } from '../../lib/metrics/latency-histogram.js'

const NOW = 1_000_000

test('entries with and without handling-time counts are merged; lapsed entries are left out', () => {
  const counts = (pairs: Array<[number, number]>): number[] => {
    const out = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)
    for (const [i, n] of pairs) out[i] = n
    return out
  }
  const status = parseServers({
    a: `${NOW + 5000}:2:4:0:${encodeHandled(counts([[1, 3], [2, 1]]))}`,
    b: `${NOW + 5000}:1:2:1:${encodeHandled(counts([[2, 4], [LATENCY_BUCKETS.length, 1]]))}`,
    // An earlier version's server: no counts.
    c: `${NOW + 10}:3:8:0`,
    // Announced with nothing finished lately.
    d: `${NOW + 10}:0:1:1:`,
    // Lapsed (its server died): not counted.
    e: `${NOW - 1}:9:9:1:9,9,9`
  }, NOW)
  assert.deepEqual({ servers: status.servers, reliable: status.reliableServers, running: status.running, concurrency: status.concurrency },
    { servers: 4, reliable: 2, running: 6, concurrency: 15 })
  assert.deepEqual(status.handled, counts([[1, 3], [2, 5], [LATENCY_BUCKETS.length, 1]]))
})

test('encodeHandled leaves out trailing zeros; nothing for none', () => {
  assert.equal(encodeHandled([0, 2, 0, 1, 0, 0]), '0,2,0,1')
  assert.equal(encodeHandled([0, 0, 0]), '')
})

test('percentiles: none without counts; p50 and p99 within the buckets that hold them, in ms', () => {
  assert.deepEqual(handlingPercentiles(new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)), {})
  const counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0)
  // 99 requests of 3 ms, 1 of 400 ms.
  counts[bucketOf(0.003)] += 99
  counts[bucketOf(0.4)] += 1
  const { p50, p99 } = handlingPercentiles(counts)
  assert.ok(p50! > 2.5 && p50! <= 5, `p50 ${p50}`)
  assert.ok(p99! > 2.5 && p99! <= 5, `p99 ${p99}: the 99th of 100 is still a 3 ms one`)
  counts[bucketOf(0.4)] += 9
  const after = handlingPercentiles(counts)
  assert.ok(after.p99! > 250 && after.p99! <= 500, `p99 ${after.p99}`)
  // Past the last bound: the bound.
  assert.equal(quantileOf([...new Array<number>(LATENCY_BUCKETS.length).fill(0), 5], 0.5), LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1])
})
