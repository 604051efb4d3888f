/**
 * The table of one `npm run bench` as an SVG chart (`--svg[=path]`): per workload, one horizontal bar per
 * contender of that run (this project against the raw ioredis limit and the peers), on a log scale, then
 * push → receive latency at 1k msgs/s (p50 and p99) and the channel. Plain SVG, no dependency.
 */
import { median, type BenchConfig } from './common.js'
import type { JobResult } from './job.js'

type Key = 'push' | 'drain' | 'concurrent'

interface Bar { label: string, value: number, color: string, ours: boolean, note?: string }
interface Group { title: string, bars: Bar[] }

const RAW_COLOR = '#8c8c8c'
const OURS_COLOR = '#1f6fd1'
const OURS_LIGHT = '#7fb0ec'
const PEER_COLORS: Record<string, string> = {
  'BusMQ 3.1': '#e08a1e',
  'BullMQ 6.7': '#b5478f',
  'bee-queue 2.0': '#3a9a5b'
}

function si (x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`
  if (x >= 1e4) return `${Math.round(x / 1e3)}k`
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`
  return x >= 10 ? x.toFixed(0) : x.toFixed(2)
}

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Bars of one throughput workload: the given jobs, in that order, that ran, passed and have the figure. */
function throughput (results: JobResult[], title: string, key: Key, ids: Array<[string, string]>): Group {
  const bars: Bar[] = []
  for (const [id, label] of ids) {
    const r = results.find((x) => x.id === id)
    const xs = r?.[key]
    if (!r || r.failed !== undefined || !xs || xs.length === 0) continue
    const ours = r.contender.startsWith('busmq (this)')
    const color = r.contender === 'raw ioredis'
      ? RAW_COLOR
      : ours ? (id.includes('object') ? OURS_LIGHT : OURS_COLOR) : PEER_COLORS[r.contender] ?? '#666'
    bars.push({ label, value: median(xs), color, ours })
  }
  // On a log scale a ratio is hard to read off: this project's bars say it.
  const raw = bars.find((b) => b.color === RAW_COLOR)
  if (raw) for (const b of bars) if (b.ours) b.note = `${(b.value / raw.value).toFixed(2)}× raw`
  return { title, bars }
}

interface Panel { title: string, unit: string, groups: Group[], log: boolean }

function panelHeight (p: Panel): number {
  return 34 + p.groups.reduce((h, g) => h + 22 + g.bars.length * 17 + 8, 0)
}

/** One panel: groups of bars against a shared axis (log or linear) starting at `y`. */
function drawPanel (p: Panel, y: number, width: number): string {
  const left = 230
  const right = width - 140
  const values = p.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => v > 0)
  if (values.length === 0) return ''
  const out: string[] = []
  out.push(`<text x="12" y="${y + 18}" class="h">${esc(p.title)}</text>`)
  let lo: number
  let hi: number
  let scale: (v: number) => number
  const ticks: number[] = []
  if (p.log) {
    lo = 10 ** Math.floor(Math.log10(Math.min(...values)))
    hi = 10 ** Math.ceil(Math.log10(Math.max(...values)))
    if (hi === lo) hi = lo * 10
    scale = (v) => left + (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * (right - left)
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t)
  } else {
    lo = 0
    const top = Math.max(...values)
    const step = 10 ** Math.floor(Math.log10(top)) * (top / 10 ** Math.floor(Math.log10(top)) > 5 ? 2 : 1)
    hi = Math.ceil(top / step) * step
    scale = (v) => left + v / hi * (right - left)
    for (let t = 0; t <= hi * 1.0001; t += step) ticks.push(t)
  }
  const top = y + 28
  const height = panelHeight(p) - 34
  for (const t of ticks) {
    const x = scale(t).toFixed(1)
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + height}" class="grid"/>`)
    out.push(`<text x="${x}" y="${top + height + 12}" class="tick" text-anchor="middle">${si(t)}${p.unit}</text>`)
  }
  let gy = top
  for (const g of p.groups) {
    out.push(`<text x="12" y="${gy + 15}" class="g">${esc(g.title)}</text>`)
    gy += 22
    for (const b of g.bars) {
      const x0 = scale(lo)
      const x1 = Math.max(x0 + 1, scale(b.value))
      out.push(`<text x="${left - 6}" y="${gy + 11}" class="${b.ours ? 'lb ours' : 'lb'}" text-anchor="end">${esc(b.label)}</text>`)
      out.push(`<rect x="${x0.toFixed(1)}" y="${gy + 1}" width="${(x1 - x0).toFixed(1)}" height="13" fill="${b.color}"/>`)
      out.push(`<text x="${(x1 + 4).toFixed(1)}" y="${gy + 11}" class="v">${si(b.value)}${p.unit}${b.note ? ` (${b.note})` : ''}</text>`)
      gy += 17
    }
    gy += 8
  }
  return out.join('\n')
}

export function renderSvg (results: JobResult[], config: BenchConfig, machine: Record<string, unknown>): string {
  const one32: Array<[string, string]> = [
    ['raw-32', 'raw ioredis (limit)'],
    ['busmq-bytes-32', 'busmq (this), bytes'],
    ['busmq-object-32', 'busmq (this), objectMode'],
    ['busmq31-32', 'BusMQ 3.1'],
    ['bullmq-32', 'BullMQ 6.7'],
    ['bee-32', 'bee-queue 2.0']
  ]
  const one1k: Array<[string, string]> = [
    ['raw-1k', 'raw ioredis (limit)'],
    ['busmq-bytes-1k', 'busmq (this), bytes'],
    ['busmq-object-1k', 'busmq (this), objectMode']
  ]
  const many: Array<[string, string]> = [
    ['raw-many', 'raw ioredis (limit)'],
    ['busmq-many', 'busmq (this), bytes'],
    ['busmq31-many', 'BusMQ 3.1']
  ]
  const groups: Group[] = [
    throughput(results, '1 queue, 32 B: push N', 'push', one32),
    throughput(results, '1 queue, 32 B: then drain N', 'drain', one32),
    throughput(results, '1 queue, 32 B: writer → reader at once', 'concurrent', one32),
    throughput(results, '1 queue, 1 KiB: push N', 'push', one1k),
    throughput(results, '1 queue, 1 KiB: then drain N', 'drain', one1k),
    throughput(results, '1 queue, 1 KiB: writer → reader at once', 'concurrent', one1k),
    throughput(results, `${config.queues} queues × writer + reader, 32 B`, 'concurrent', many),
    throughput(results, '1 queue, 32 B, reliable → ack stream: drain N', 'drain', [['busmq-reliable', 'busmq (this), reliable']])
  ].filter((g) => g.bars.length > 0)

  const latency: Group[] = []
  const latIds: Array<[string, string]> = [
    ['busmq-latency-1k-push', 'busmq (this), q.push'],
    ['busmq-latency-1k-write', 'busmq (this), ws.write'],
    ['busmq31-latency-1k', 'BusMQ 3.1'],
    ['bullmq-latency-1k', 'BullMQ 6.7'],
    ['bee-latency-1k', 'bee-queue 2.0']
  ]
  for (const q of ['p50', 'p99'] as const) {
    const bars: Bar[] = []
    for (const [id, label] of latIds) {
      const r = results.find((x) => x.id === id)
      const v = r?.latency?.[q]
      if (!r || r.failed !== undefined || typeof v !== 'number' || !Number.isFinite(v)) continue
      const ours = r.contender.startsWith('busmq (this)')
      bars.push({ label, value: v, ours, color: ours ? (id.endsWith('write') ? OURS_LIGHT : OURS_COLOR) : PEER_COLORS[r.contender] ?? '#666' })
    }
    if (bars.length > 0) latency.push({ title: `push → receive at 1k msgs/s, ${q} (shorter is better)`, bars })
  }
  const channel: Group[] = []
  const ch = results.find((r) => r.id === 'busmq-channel')
  if (ch && ch.failed === undefined && ch.mbps && ch.mbps.length > 0) {
    channel.push({
      title: 'channel, 64 KiB chunks, one way',
      bars: [{ label: 'busmq (this)', value: median(ch.mbps), color: OURS_COLOR, ours: true, note: 'goal: 150 MB/s' }]
    })
  }

  const panels: Panel[] = [
    { title: 'Throughput, messages/s (log scale; longer is better)', unit: '', groups, log: true },
    { title: 'Latency, ms (log scale)', unit: ' ms', groups: latency, log: true },
    { title: 'Channel, MB/s', unit: ' MB/s', groups: channel, log: false }
  ].filter((p) => p.groups.length > 0)

  const width = 900
  const head = 52
  let y = head
  const body: string[] = []
  for (const p of panels) {
    body.push(drawPanel(p, y, width))
    y += panelHeight(p) + 24
  }
  const height = y + 6
  const date = String(machine.date ?? '').replace('T', ' ').slice(0, 16)
  const sub = `${date} UTC · ${String(machine.cpus)} CPU(s) ${String(machine.cpuModel)} · node ${String(machine.node)} · ` +
    `redis-server ${String(machine.redis)} · median of ${config.rounds} round(s)${config.quick ? ' · QUICK run: not meaningful' : ''}`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.h{font-size:14px;font-weight:bold}.g{font-size:12px;font-weight:bold;fill:#333}.lb{font-size:11px;fill:#333}' +
      '.ours{font-weight:bold;fill:#1f4f91}.v{font-size:11px;fill:#222}.tick{font-size:10px;fill:#777}.grid{stroke:#e3e3e3;stroke-width:1}' +
      '.t{font-size:16px;font-weight:bold}.s{font-size:11px;fill:#555}</style>',
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    '<text x="12" y="22" class="t">BusMQ benchmark: this project against the raw ioredis limit and the peers, same run, same server</text>',
    `<text x="12" y="40" class="s">${esc(sub)}</text>`,
    ...body,
    '</svg>',
    ''
  ].join('\n')
}
