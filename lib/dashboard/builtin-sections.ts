import type { Shard } from '../router/shard.js'
import type { Inspector, QueueView } from './inspector.js'
import { byName, detailKey, detailsByShard, page, type DashboardColumn, type DashboardSection, type SectionQuery, type SectionRows } from './section.js'
import type { Listed, RegistryList } from './registry-list.js'

/** Points of a sparkline (one per refresh). */
const HISTORY = 60
/** Queues whose rate history is kept (those on someone's screen lately). */
const HISTORY_QUEUES = 5000
/** Keys a SCAN for idle queues examines per node, and how long its result is reused. */
export const SCAN_BUDGET = 50_000
export const SCAN_REUSE = 10_000

interface History { seq: number, consumed: number, at: number, push: number[], pop: number[] }

/** Queues: the registry of every shard (and, on request, a bounded SCAN), details of the page on screen. */
export class QueuesSection implements DashboardSection {
  readonly id = 'queues'
  readonly title = 'Queues'
  readonly pages = true
  readonly columns: readonly DashboardColumn[] = [
    { key: 'name', label: 'Queue', kind: 'name' },
    { key: 'depth', label: 'Depth', kind: 'count', title: 'Messages waiting' },
    { key: 'pushRate', label: 'Push/s', kind: 'spark', title: 'Messages pushed per second (by anyone)' },
    { key: 'popRate', label: 'Pop/s', kind: 'spark', title: 'Messages taken per second (by anyone)' },
    { key: 'readers', label: 'Readers', kind: 'count', title: 'Reader streams attached' },
    { key: 'writers', label: 'Writers', kind: 'count', title: 'Writer streams attached' },
    { key: 'clients', label: 'Clients', kind: 'count', title: 'Clients (buses) attached' },
    { key: 'inFlight', label: 'In flight', kind: 'count', title: 'Reliable messages delivered, not yet acked' },
    { key: 'deadLetters', label: 'Dead letters', kind: 'count' },
    { key: 'ttl', label: 'TTL left', kind: 'ms', title: 'Until it expires if nobody touches it' },
    { key: 'shard', label: 'Shard', kind: 'text' }
  ]

  private readonly inspector: Inspector
  private readonly shards: () => Shard[]
  private readonly interval: number
  private readonly registry: RegistryList
  private scanned: Listed[] = []
  private scannedAt = 0
  private scanNote = ''
  private readonly history = new Map<string, History>()

  constructor (inspector: Inspector, shards: () => Shard[], interval: number, registry: RegistryList) {
    this.inspector = inspector
    this.shards = shards
    this.interval = interval
    this.registry = registry
  }

  private async scan (): Promise<void> {
    if (Date.now() - this.scannedAt < SCAN_REUSE) return
    let complete = true
    const per = await Promise.all(this.shards().filter((s) => s.online).map(async (shard) => {
      const r = await this.inspector.scanned(shard, SCAN_BUDGET)
      if (!r.complete) complete = false
      return r.names.map((name) => ({ name, shard }))
    }))
    this.scanned = per.flat()
    this.scannedAt = Date.now()
    this.scanNote = complete
      ? 'idle queues found by SCAN included'
      : `idle queues found by a partial SCAN included (${SCAN_BUDGET.toLocaleString('en-US')} keys per node examined)`
  }

  async rows (q: SectionQuery): Promise<SectionRows> {
    await this.registry.refresh()
    let all = this.registry.queues
    if (q.scan) {
      await this.scan()
      const seen = new Set(all.map((l) => `${l.shard.id}\n${l.name}`))
      all = [...all, ...this.scanned.filter((l) => !seen.has(`${l.shard.id}\n${l.name}`))].sort((a, b) => byName(a.name, b.name))
    }
    const { total, items } = page(all, (l) => l.name, q)
    const views = await detailsByShard(items, async (shard, names) => await this.inspector.queues(shard, names))
    const rows = items.map((l) => {
      const v = views.get(detailKey(l.shard, l.name))
      if (v === undefined) return { name: l.name, shard: l.shard.id }
      const h = this.rates(v)
      // The list of attached clients is for the queue's own page.
      const { attached: _, ...rest } = v
      return { ...rest, pushRate: h.push, popRate: h.pop }
    })
    const notes = [this.registry.note, q.scan ? this.scanNote : undefined].filter((n) => n !== undefined)
    return { total, rows, note: notes.length > 0 ? notes.join('; ') : undefined }
  }

  /** Push and pop rates from the counters in Redis (`seq`, `consumed`), kept for the queues on screen. */
  private rates (v: QueueView): History {
    const key = `${v.shard}\n${v.name}`
    const now = Date.now()
    let h = this.history.get(key)
    if (h === undefined) {
      h = { seq: v.pushed, consumed: v.consumed, at: now, push: [], pop: [] }
      this.history.set(key, h)
      if (this.history.size > HISTORY_QUEUES) this.history.delete(this.history.keys().next().value!)
      return h
    }
    const dt = (now - h.at) / 1000
    // Several viewers in one refresh: one point per refresh.
    if (dt < this.interval / 2000) return h
    h.push.push(Math.max(0, (v.pushed - h.seq) / dt))
    h.pop.push(Math.max(0, (v.consumed - h.consumed) / dt))
    if (h.push.length > HISTORY) h.push.shift()
    if (h.pop.length > HISTORY) h.pop.shift()
    h.seq = v.pushed
    h.consumed = v.consumed
    h.at = now
    return h
  }

  /** One queue's details (its page), on the shard that lists it or else where the name is found. */
  async queue (name: string, shard: Shard): Promise<QueueView | undefined> {
    const [v] = await this.inspector.queues(shard, [name])
    if (v === undefined) return undefined
    this.rates(v)
    return v
  }

  /** Rate history of a queue (its page). */
  historyOf (shard: string, name: string): { push: number[], pop: number[] } {
    const h = this.history.get(`${shard}\n${name}`)
    return { push: h?.push ?? [], pop: h?.pop ?? [] }
  }
}

/**
 * A section whose rows each shard's primaries report on their own (from PUBSUB), merged and filtered
 * here: channels and pub/sub topics.
 */
export class PerShardSection implements DashboardSection {
  readonly id: string
  readonly title: string
  readonly columns: readonly DashboardColumn[]
  private readonly shards: () => Shard[]
  private readonly read: (shard: Shard) => Promise<Array<{ name: string }>>

  constructor (spec: Pick<DashboardSection, 'id' | 'title' | 'columns'>, shards: () => Shard[],
    read: (shard: Shard) => Promise<Array<{ name: string }>>) {
    this.id = spec.id
    this.title = spec.title
    this.columns = spec.columns
    this.shards = shards
    this.read = read
  }

  async rows (q: SectionQuery): Promise<SectionRows> {
    // A shard that cannot be read shows nothing this time (its card says why).
    const per = await Promise.all(this.shards().filter((s) => s.online).map((s) => this.read(s).catch(() => [])))
    const all = per.flat().sort((a, b) => byName(a.name, b.name))
    const { total, items } = page(all, (r) => r.name, q)
    return { total, rows: items }
  }
}

/** Channels with a peer connected: presence channels subscribed on each shard. */
export function channelsSection (inspector: Inspector, shards: () => Shard[]): PerShardSection {
  return new PerShardSection({
    id: 'channels',
    title: 'Channels',
    columns: [
      { key: 'name', label: 'Channel', kind: 'name' },
      { key: 'present', label: 'Peers present', kind: 'tags', title: 'Roles whose presence key is alive' },
      { key: 'peers', label: 'Peers listening', kind: 'tags', title: 'Roles subscribed to their presence channel' },
      { key: 'shard', label: 'Shard', kind: 'text' }
    ]
  }, shards, (s) => inspector.channels(s))
}

/** Plain pub/sub topics with subscribers. */
export function topicsSection (inspector: Inspector, shards: () => Shard[]): PerShardSection {
  return new PerShardSection({
    id: 'topics',
    title: 'Pub/sub topics',
    columns: [
      { key: 'name', label: 'Topic', kind: 'name' },
      { key: 'subscribers', label: 'Subscribers', kind: 'count', title: 'Subscribed connections (PUBSUB NUMSUB)' },
      { key: 'shard', label: 'Shard', kind: 'text' }
    ]
  }, shards, (s) => inspector.topics(s))
}
