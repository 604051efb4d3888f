import type { Inspector } from './inspector.js'
import { detailKey, detailsByShard, page, type DashboardColumn, type DashboardSection, type SectionQuery, type SectionRows } from './section.js'
import type { RegistryList } from './registry-list.js'

/**
 * Services: those whose request queues are attached somewhere (a server reads them, a requester writes
 * them), from the registry of every shard (read once per refresh for queues and services together),
 * with details of the rows on screen only.
 */
export class ServicesSection implements DashboardSection {
  readonly id = 'services'
  readonly title = 'Services'
  readonly columns: readonly DashboardColumn[] = [
    { key: 'name', label: 'Service', kind: 'name' },
    { key: 'servers', label: 'Servers', kind: 'count', title: 'Servers announced, in every process' },
    { key: 'running', label: 'Running', kind: 'count', title: 'Requests the servers are running (as they told within ~200 ms)' },
    { key: 'concurrency', label: 'Concurrency', kind: 'count', title: 'Sum of the servers\' concurrency' },
    { key: 'waiting', label: 'Waiting', kind: 'count', title: 'Requests waiting to be taken (plain and reliable)' },
    { key: 'p50', label: 'p50', kind: 'ms', title: 'Median handling time of the requests the servers finished recently' },
    { key: 'p99', label: 'p99', kind: 'ms', title: '99th percentile handling time of the requests the servers finished recently' },
    { key: 'ttl', label: 'TTL left', kind: 'ms', title: 'Until its keys expire if nobody uses them' },
    { key: 'shard', label: 'Shard', kind: 'text' }
  ]

  private readonly inspector: Inspector
  private readonly registry: RegistryList

  constructor (inspector: Inspector, registry: RegistryList) {
    this.inspector = inspector
    this.registry = registry
  }

  async rows (q: SectionQuery): Promise<SectionRows> {
    await this.registry.refresh()
    const { total, items } = page(this.registry.services, (l) => l.name, { ...q, offset: 0 })
    const views = await detailsByShard(items, async (shard, names) => await this.inspector.services(shard, names))
    const rows = items.map((l): Record<string, unknown> => ({ ...(views.get(detailKey(l.shard, l.name)) ?? { name: l.name, shard: l.shard.id }) }))
    return { total, rows, note: this.registry.note }
  }
}
