import type { Shard } from '../router/shard.js'
import type { Inspector } from './inspector.js'
import { SCAN_BUDGET, SCAN_REUSE } from './builtin-sections.js'
import { byName, detailKey, detailsByShard, page, type DashboardColumn, type DashboardSection, type SectionQuery, type SectionRows } from './section.js'

interface Listed { name: string, shard: Shard }

/**
 * Persisted objects. They are not in the registry (most live on their TTL after their last save, with
 * nobody attached), so they are found by the same kind of bounded SCAN as idle queues, and only when the
 * page asks for it (its "include … (SCAN)" box): a dashboard nobody asks this of costs Redis no SCAN.
 */
export class ObjectsSection implements DashboardSection {
  readonly id = 'objects'
  readonly title = 'Persisted objects'
  readonly columns: readonly DashboardColumn[] = [
    { key: 'name', label: 'Object', kind: 'name' },
    { key: 'version', label: 'Version', kind: 'count', title: 'Saves so far' },
    { key: 'fields', label: 'Fields', kind: 'count' },
    { key: 'changes', label: 'Change log', kind: 'count', title: 'Entries of its change log (capped)' },
    { key: 'ttl', label: 'TTL left', kind: 'ms', title: 'Until it expires if nobody saves it or keeps it alive' },
    { key: 'shard', label: 'Shard', kind: 'text' }
  ]

  private readonly inspector: Inspector
  private readonly shards: () => Shard[]
  private scanned: Listed[] = []
  private scannedAt = 0
  private scanning?: Promise<void>
  private complete = true

  constructor (inspector: Inspector, shards: () => Shard[]) {
    this.inspector = inspector
    this.shards = shards
  }

  private async scan (): Promise<void> {
    if (Date.now() - this.scannedAt < SCAN_REUSE) return
    this.scanning ??= (async () => {
      let complete = true
      const per = await Promise.all(this.shards().filter((s) => s.online).map(async (shard) => {
        try {
          const r = await this.inspector.scannedObjects(shard, SCAN_BUDGET)
          if (!r.complete) complete = false
          return r.names.map((name) => ({ name, shard }))
        } catch {
          complete = false
          return []
        }
      }))
      this.scanned = per.flat().sort((a, b) => byName(a.name, b.name))
      this.complete = complete
      this.scannedAt = Date.now()
    })().finally(() => { this.scanning = undefined })
    await this.scanning
  }

  async rows (q: SectionQuery): Promise<SectionRows> {
    if (!q.scan) return { total: 0, rows: [], note: 'found by SCAN: tick "include … (SCAN)" to list them' }
    await this.scan()
    const { total, items } = page(this.scanned, (l) => l.name, { ...q, offset: 0 })
    const views = await detailsByShard(items, async (shard, names) => await this.inspector.objects(shard, names))
    const rows = items.map((l): Record<string, unknown> => ({ ...(views.get(detailKey(l.shard, l.name)) ?? { name: l.name, shard: l.shard.id }) }))
    const note = this.complete ? undefined : `a partial SCAN (${SCAN_BUDGET.toLocaleString('en-US')} keys per node examined)`
    return { total, rows, note }
  }
}
