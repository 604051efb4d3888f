/** Turns job results into the printed tables, the targets (PASS/MISS) and the ranking. */
import { median, type BenchConfig } from './common.js'
import type { JobResult } from './job.js'
import { BEE, BULL, OURS, RAW } from './jobs.js'

export const TABLE_HEADER = 'contender'

function si (x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—'
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`
  if (x >= 1e4) return `${Math.round(x / 1e3)}k`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`
  return x.toFixed(0)
}

/** Median and, with several rounds, the range: `412k (405k–420k)`. */
function fig (xs: number[] | undefined, fmt: (x: number) => string = si): string {
  if (!xs || xs.length === 0) return '—'
  const m = fmt(median(xs))
  if (xs.length === 1) return m
  return `${m} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`
}

const us = (x: number): string => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
// A latency run with no sample (a quick run on a machine so busy that the warm-up took it all) has no figure.
const ms = (x: number | null | undefined): string => {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—'
  return x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`
}
const mb = (bytes: number | undefined): string => {
  if (bytes === undefined) return '—'
  const m = bytes / 1048576
  return m >= 10 ? `${Math.round(m)} MiB` : m >= 1 ? `${m.toFixed(1)} MiB` : `${Math.round(bytes / 1024)} KiB`
}

function table (head: string[], rows: string[][], right: boolean[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

function check (r: JobResult): string {
  return r.failed ? `FAILED: ${r.failed}` : 'ok'
}

export function report (results: JobResult[], config: BenchConfig, machine: Record<string, unknown>): { text: string, fatal: boolean } {
  const out: string[] = []
  out.push(`BusMQ benchmark — ${String(machine.date)}`)
  out.push(`machine: ${String(machine.cpus)} CPU(s) (${String(machine.cpuModel)}), ${String(machine.platform)}, node ${String(machine.node)}, redis-server ${String(machine.redis)}`)
  out.push(`config: N=${config.n} per round (1 KiB: ${config.nLarge}, reliable: ${config.nReliable}, BusMQ 3.1 and bee-queue: ${config.peerN}, ` +
    `BullMQ: ${config.bullN}), ${config.rounds} round(s) after a warm-up (raw ioredis: ${config.rawRounds}), ` +
    `median (min–max) shown; ${config.quick ? 'QUICK smoke run: figures are not meaningful; ' : ''}total ${(machine.seconds as number).toFixed(0)} s`)
  out.push('')

  const isService = (r: JobResult): boolean => /^busmq(31)?-svc-/.test(r.id)
  const queueRows = results.filter((r) => r.push || r.drain || r.concurrent)
  out.push(table(
    [TABLE_HEADER, 'workload', 'N/round', 'pushed/s', 'drained/s', 'concurrent/s', 'node µs/msg', 'redis µs/msg', 'peak RSS', 'check'],
    queueRows.map((r) => [r.contender, r.workload, String(r.n), fig(r.push), fig(r.drain), fig(r.concurrent),
      fig(r.nodeUs, us), fig(r.redisUs, us), mb(r.rss), check(r)]),
    [false, false, true, true, true, true, true, true, true, false]))
  out.push('pushed/s: push N, time until stored; drained/s: then consume all N; concurrent/s: a writer and a reader at once, ' +
    'time until the reader has all N; µs/msg: CPU over push + drain per message (node = the job process, redis = INFO used_cpu_*)')

  const other = results.filter((r) => !(r.push || r.drain || r.concurrent) && !isService(r))
  if (other.length > 0) {
    out.push('')
    out.push(table(['contender', 'workload', 'result', 'peak RSS', 'check'], other.map((r) => {
      let res = '—'
      if (r.mbps) {
        res = `${fig(r.mbps, (x) => x.toFixed(0))} MB/s`
        if (r.nodeBusy && r.redisBusy) res += `; CPU: node ${median(r.nodeBusy).toFixed(0)}%, redis ${median(r.redisBusy).toFixed(0)}% of a core`
      }
      if (r.latency) {
        const l = r.latency
        res = `p50 ${ms(l.p50)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)}  (${si(l.achieved)} msgs/s achieved, ${l.samples} samples` +
          (r.nodeBusy && r.redisBusy ? `; CPU node ${median(r.nodeBusy).toFixed(0)}%, redis ${median(r.redisBusy).toFixed(0)}%)` : ')')
      }
      if (r.attached) {
        const a = r.attached
        res = `push p50 ${ms(a.p50)}  p99 ${ms(a.p99)}  max ${ms(a.max)} while all stay attached; redis ${(a.redisBusy * 100).toFixed(0)}% of a core, ` +
          `${si(a.refreshes)} refreshes/s in ${si(a.heartbeatCalls)} heartbeat calls/s (${a.queuesPerCall.toFixed(0)} queues each) over ${a.windowSeconds.toFixed(0)} s; event loop delay p99 ${ms(a.loopP99)} max ${ms(a.loopMax)}; ${a.alive}/${a.sampled} sampled alive; attached in ${a.attachSeconds.toFixed(1)} s` +
          (a.controlP99 !== undefined ? `; control (same handles, all detached): push p50 ${ms(a.controlP50)} p99 ${ms(a.controlP99)}, event loop max ${ms(a.controlLoopMax)}` : '')
      }
      if (r.idle) {
        const i = r.idle
        res = `redis ${(i.queueBytes / i.queues).toFixed(0)} B/queue vs bare list ${(i.bareBytes / i.queues).toFixed(0)} B = ` +
          `${i.ratio.toFixed(2)}×; all keys gone ${(i.goneAfterMs / 1000).toFixed(1)} s after the last push (details below)`
      }
      return [r.contender, r.workload, res, mb(r.rss), check(r)]
    }), [false, false, false, true, false]))
    out.push('MB/s = 10^6 bytes/s. Latency: push → receive, one paced producer (q.push: one call per message; ' +
      'write: ws.write per message, a tick\'s writes go out as one batch) and one reader, same process; warm-up not recorded.')
    const idle = other.find((r) => r.idle)?.idle
    if (idle) {
      out.push('')
      out.push(`Idle queues (${idle.queues} queues × one 32 B message, q.push on a fresh handle each, handles dropped; ` +
        'memory measured with a long TTL so that all exist at once, expiry checked on a second set with the short TTL):')
      out.push(`  Redis: ${(idle.queueBytes / idle.queues).toFixed(0)} B per queue (${idle.keysPerQueue.toFixed(1)} keys each) vs ` +
        `${(idle.bareBytes / idle.queues).toFixed(0)} B per bare one-element list = ${idle.ratio.toFixed(2)}× ` +
        `(used_memory deltas: ${mb(idle.queueBytes)} vs ${mb(idle.bareBytes)})`)
      out.push(`  Node: created in ${idle.createSeconds.toFixed(1)} s (${si(idle.queues / idle.createSeconds)} q.push/s); ` +
        `heap +${idle.nodeHeapGrowthMB.toFixed(0)} MiB at peak, +${idle.nodeHeapAfterGcMB.toFixed(1)} MiB after a full GC; ` +
        `RSS +${idle.nodeRssGrowthMB.toFixed(0)} MiB at peak`)
      out.push(`  Expiry: SCAN of the queue prefix finds 0 keys ${(idle.goneAfterMs / 1000).toFixed(1)} s after the last push; ` +
        `${idle.otherKeys} other key(s) under the bus prefix; used_memory back to +${Math.round(idle.memoryAfterExpiry / 1024)} KiB`)
    }
  }

  const services = results.filter(isService)
  if (services.length > 0) {
    out.push('')
    out.push(table(['contender', 'workload', 'N/round', 'result', 'node µs/req', 'redis µs/req', 'peak RSS', 'check'], services.map((r) => {
      let res = '—'
      if (r.requests) res = `${fig(r.requests)} requests/s`
      if (r.latency) {
        const l = r.latency
        res = `p50 ${ms(l.p50)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)}  (${si(l.achieved)} req/s achieved, ${l.samples} samples)`
      }
      return [r.contender, r.workload, r.requests ? String(r.n) : '—', res, fig(r.nodeUs, us), fig(r.redisUs, us), mb(r.rss), check(r)]
    }), [false, false, true, false, true, true, true, false]))
    out.push('Services: one echo server and one requester (each on its own bus) in the job process, 32 B JSON payloads; every ' +
      'reply checked (exactly once, intact). requests/s: N requests, the given number in flight; latency: request → reply, paced.')
  }

  // --- targets ---
  const find = (id: string): JobResult | undefined => results.find((r) => r.id === id)
  const ok = (r: JobResult | undefined): r is JobResult => r !== undefined && r.failed === undefined
  const targets: string[] = []
  const verdict = (pass: boolean | undefined): string => pass === undefined ? 'N/A ' : pass ? 'PASS' : 'MISS'
  const line = (pass: boolean | undefined, what: string, detail: string): void => {
    targets.push(`  ${verdict(pass)}  ${what.padEnd(52)} ${detail}`)
  }
  const ratio = (ours: JobResult | undefined, base: JobResult | undefined, key: 'push' | 'drain' | 'concurrent'): [number | undefined, string] => {
    if (!ok(ours) || !ok(base) || !ours[key] || !base[key]) {
      const why = !ours ? 'not run' : !base ? 'baseline not run' : ours.failed ? 'busmq FAILED' : base.failed ? 'baseline FAILED' : 'no figure'
      return [undefined, `(${why})`]
    }
    const a = median(ours[key]!)
    const b = median(base[key]!)
    return [a / b, `${si(a)} / ${si(b)}`]
  }
  // Goals of issue 18: ratios to the raw ioredis limit of the same run.
  const goal = (ours: JobResult | undefined, base: JobResult | undefined, key: 'push' | 'drain' | 'concurrent', min: number, what: string): void => {
    const [x, d] = ratio(ours, base, key)
    line(x === undefined ? undefined : x >= min, `${what} ≥ ${min}× raw`, x === undefined ? d : `${d} = ${x.toFixed(2)}×`)
  }
  const label = { push: 'pushed/s', drain: 'drained/s', concurrent: 'writer → reader/s' } as const
  for (const [size, rawId] of [['32 B', 'raw-32'], ['1 KiB', 'raw-1k']] as const) {
    const suffix = size === '32 B' ? '32' : '1k'
    for (const key of ['push', 'drain', 'concurrent'] as const) {
      goal(find(`busmq-bytes-${suffix}`), find(rawId), key, key === 'push' ? 0.9 : 0.8, `${size} bytes ${label[key]}`)
    }
    for (const key of ['push', 'drain', 'concurrent'] as const) {
      goal(find(`busmq-object-${suffix}`), find(rawId), key, 0.5, `${size} objectMode ${label[key]}`)
    }
  }
  goal(find('busmq-many'), find('raw-many'), 'concurrent', 0.8, `${config.queues} queues × writer + reader`)
  {
    const peers = ['busmq31-latency-1k', 'bullmq-latency-1k', 'bee-latency-1k'].map(find).filter((r): r is JobResult => ok(r) && r.latency !== undefined)
    const bestP50 = peers.length > 0 ? Math.min(...peers.map((r) => r.latency!.p50)) : undefined
    const bestP99 = peers.length > 0 ? Math.min(...peers.map((r) => r.latency!.p99)) : undefined
    for (const via of ['push', 'write']) {
      const lat = find(`busmq-latency-1k-${via}`)
      const how = via === 'push' ? 'q.push' : 'ws.write'
      const l = ok(lat) ? lat.latency : undefined
      const none = lat ? lat.failed !== undefined ? '(FAILED)' : '(no figure)' : '(not run)'
      line(l ? l.p50 <= 0.3 : undefined, `latency @ 1k msgs/s (${how}): p50 ≤ 0.3 ms`, l ? `p50 ${ms(l.p50)}` : none)
      line(l && bestP50 !== undefined && bestP99 !== undefined ? l.p50 <= bestP50 && l.p99 <= bestP99 : undefined,
        `latency @ 1k msgs/s (${how}): p50, p99 ≤ best peer`,
        !l ? none : bestP50 === undefined ? '(no peer ran)' : `p50 ${ms(l.p50)} vs ${ms(bestP50)}, p99 ${ms(l.p99)} vs ${ms(bestP99)}`)
    }
  }
  {
    const rel = find('busmq-reliable')
    line(ok(rel) && rel.drain ? median(rel.drain) >= 100_000 : undefined, 'reliable → ack stream drained ≥ 100k msgs/s',
      ok(rel) && rel.drain ? `${si(median(rel.drain))}/s` : rel ? '(FAILED)' : '(not run)')
  }
  const ch = find('busmq-channel')
  line(ok(ch) && ch.mbps ? median(ch.mbps) >= 150 : undefined, 'channel ≥ 150 MB/s (64 KiB chunks)',
    ok(ch) && ch.mbps ? `${median(ch.mbps).toFixed(0)} MB/s` : ch ? '(FAILED)' : '(not run)')
  const idle = find('busmq-idle')
  line(ok(idle) && idle.idle ? idle.idle.ratio <= 2 : undefined, 'idle queues: Redis memory ≤ 2× a bare list',
    ok(idle) && idle.idle ? `${idle.idle.ratio.toFixed(2)}× (${config.idleQueues} queues)` : idle ? '(FAILED)' : '(not run)')
  targets.push('')
  targets.push('Earlier goals:')
  const ours32 = find('busmq-bytes-32')
  const orig = find('busmq31-32')
  for (const key of ['push', 'drain', 'concurrent'] as const) {
    const [x, d] = ratio(ours32, orig, key)
    const label = key === 'push' ? 'pushed' : key === 'drain' ? 'drained' : 'concurrent'
    line(x === undefined ? undefined : x >= 20, `≥ 20× BusMQ 3.1 msgs/s (${label})`, x === undefined ? d : `${d} = ${x.toFixed(1)}×`)
  }
  const manyOurs = find('busmq-many')
  const manyOrig = find('busmq31-many')
  {
    const [x, d] = ratio(manyOurs, manyOrig, 'concurrent')
    line(x === undefined ? undefined : x >= 20, `≥ 20× BusMQ 3.1 msgs/s (${config.queues} queues)`, x === undefined ? d : `${d} = ${x.toFixed(1)}×`)
  }
  for (const [id, name] of [['bullmq-32', BULL], ['bee-32', BEE]] as const) {
    const peer = find(id)
    if (!peer) continue
    const parts = (['push', 'drain', 'concurrent'] as const).map((k) => {
      const [x] = ratio(ours32, peer, k)
      return `${k} ${x === undefined ? '—' : `${x.toFixed(1)}×`}`
    })
    targets.push(`  info  ${`vs ${name}`.padEnd(52)} ${peer.failed ? `(${name} FAILED)` : parts.join(', ')}`)
  }
  {
    const fed = find('busmq-fed-bytes-32')
    for (const key of ['push', 'drain', 'concurrent'] as const) {
      const [x, d] = ratio(fed, ours32, key)
      line(x === undefined ? undefined : x >= 0.5, `federated queue ≥ 0.5× direct (32 B, ${key})`, x === undefined ? d : `${d} = ${x.toFixed(2)}×`)
    }
    const fedCh = find('busmq-fed-channel')
    const both = ok(fedCh) && ok(ch) && fedCh.mbps && ch.mbps
    line(both ? median(fedCh.mbps!) / median(ch.mbps!) >= 0.5 : undefined, 'federated channel ≥ 0.5× direct (64 KiB chunks)',
      both ? `${median(fedCh.mbps!).toFixed(0)} / ${median(ch.mbps!).toFixed(0)} MB/s = ${(median(fedCh.mbps!) / median(ch.mbps!)).toFixed(2)}×` : fedCh ? '(FAILED)' : '(not run)')
  }
  {
    const ours = find('busmq-svc-rps')
    const base = find('busmq31-svc-rps')
    const [x, d] = ok(ours) && ok(base) && ours.requests && base.requests
      ? [median(ours.requests) / median(base.requests), `${si(median(ours.requests))} / ${si(median(base.requests))}`]
      : [undefined, `(${!ours ? 'not run' : !base ? 'baseline not run' : ours.failed ? 'busmq FAILED' : 'baseline FAILED'})`]
    line(x === undefined ? undefined : x >= 10, '≥ 10× BusMQ 3.1 services requests/s', x === undefined ? d : `${d} = ${x.toFixed(1)}×`)
    const lat = find('busmq-svc-latency-1k')
    const latBase = find('busmq31-svc-latency-1k')
    line(ok(lat) && ok(latBase) && lat.latency && latBase.latency ? lat.latency.p99 <= latBase.latency.p99 : undefined,
      'services p99 at 1k req/s no worse than BusMQ 3.1',
      ok(lat) && ok(latBase) && lat.latency && latBase.latency
        ? `p99 ${ms(lat.latency.p99)} vs ${ms(latBase.latency.p99)} (p50 ${ms(lat.latency.p50)} vs ${ms(latBase.latency.p50)})`
        : `(${!lat ? 'not run' : !latBase ? 'baseline not run' : lat.failed ? 'busmq FAILED' : 'baseline FAILED'})`)
  }
  const attached = find('busmq-attached')
  const att = ok(attached) ? attached.attached : undefined
  const attNot = attached ? `(${attached.failed})` : '(not run)'
  line(att ? att.redisBusy <= 0.25 : undefined,
    `${config.attachedQueues} attached queues (ttl ${config.attachedTtl} ms): heartbeats cost Redis ≤ 25% of a core, every queue kept`,
    att ? `redis ${(att.redisBusy * 100).toFixed(0)}% busy, ${si(att.refreshes)} refreshes/s, ${att.alive}/${att.sampled} alive` : attNot)
  line(att?.controlP99 !== undefined ? att.p99 <= att.controlP99 + 1 : undefined,
    `${config.attachedQueues} attached queues: heartbeats add ≤ 1 ms to push p99 (same process, all detached as control)`,
    att?.controlP99 !== undefined ? `p99 ${ms(att.p99)} attached vs ${ms(att.controlP99)} detached` : att ? '(quick run: no control)' : attNot)
  line(att ? att.p99 <= 5 : undefined,
    `${config.attachedQueues} attached queues: push p99 ≤ 5 ms`,
    att ? `p99 ${ms(att.p99)} (p50 ${ms(att.p50)}), event loop max ${ms(att.loopMax)}` : attNot)
  line(idle ? idle.failed === undefined : undefined, 'idle queues: every key gone after the TTL',
    ok(idle) && idle.idle ? `SCAN count 0 after ${(idle.idle.goneAfterMs / 1000).toFixed(1)} s (ttl ${config.idleTtl} ms)` : idle ? `(${idle.failed})` : '(not run)')
  out.push('')
  out.push('Targets (same run, same server):')
  out.push('  (issue 18: ratios are to the raw ioredis limit of this run; PASS/MISS compares medians)')
  out.push(...targets)

  // --- ranking: one queue, 32 B, contenders that passed their checks ---
  const ranked = (key: 'push' | 'drain' | 'concurrent'): string => results
    .filter((r) => ['raw-32', 'busmq-bytes-32', 'busmq-object-32', 'busmq31-32', 'bullmq-32', 'bee-32'].includes(r.id) && ok(r) && r[key])
    .sort((a, b) => median(b[key]!) - median(a[key]!))
    .map((r, i) => `${i + 1}. ${r.contender}${r.id === 'busmq-object-32' ? ' objectMode' : ''} ${si(median(r[key]!))}`)
    .join('  ')
  out.push('')
  out.push('Ranking, 1 queue, 32 B (contenders that failed a check are not ranked):')
  out.push(`  pushed/s:     ${ranked('push')}`)
  out.push(`  drained/s:    ${ranked('drain')}`)
  out.push(`  concurrent/s: ${ranked('concurrent')}`)
  const failed = results.filter((r) => r.failed)
  if (failed.length > 0) {
    out.push('')
    for (const r of failed) out.push(`FAILED ${r.contender} — ${r.workload}: ${r.failed}`)
  }
  const fatal = results.some((r) => r.failed && (r.contender === OURS || r.contender === RAW))
  return { text: out.join('\n'), fatal }
}
