import type { Shard } from '../router/shard.js'
/**
 * The dashboard's data model: the page shows a list of sections, each a table described by its columns,
 * and iterates over them without knowing what they are. Queues, services, persisted objects, channels
 * and pub/sub topics are sections; later subsystems plug in the same way (`bus.addDashboardSection()`),
 * with their metrics added to /metrics through a metrics source (lib/metrics/bus-metrics.ts).
 */

/** How the page renders a column's values. */
export type ColumnKind =
  /** Plain text. */
  | 'text'
  /** The row's name; a link to the row's own page when the section has pages (queues). */
  | 'name'
  /** A number, with thousands separators. */
  | 'count'
  /** A duration in ms ("0.42 ms", "1.2 s"; -1 "none", -2 "gone"; absent "–"). */
  | 'ms'
  /** A series of per-second rates, drawn as a sparkline with the latest value. */
  | 'spark'
  /** A list of strings, shown as badges. */
  | 'tags'

export interface DashboardColumn {
  key: string
  label: string
  kind: ColumnKind
  /** Hover text. */
  title?: string
}

export interface SectionQuery {
  /** Rows whose name contains this (case-insensitive); '' for all. */
  filter: string
  /** First row to return and how many, of the matches in name order. */
  offset: number
  limit: number
  /** Queues: also find idle queues (nobody attached) with a bounded SCAN. */
  scan: boolean
}

export interface SectionRows {
  /** Rows matching the filter, in all. */
  total: number
  rows: Array<Record<string, unknown>>
  /** Something the reader should know (a partial scan, a shard that could not be read). */
  note?: string
}

/** One table of the page, and (for the lead's later subsystems) what they implement. */
export interface DashboardSection {
  readonly id: string
  readonly title: string
  readonly columns: readonly DashboardColumn[]
  /** True when each row has a page of its own (`#<id>/<name>`). */
  readonly pages?: boolean
  rows: (query: SectionQuery) => Promise<SectionRows>
}

/** What the page gets for a section: its description and the rows for the client's query. */
export interface SectionState extends SectionRows {
  id: string
  title: string
  columns: readonly DashboardColumn[]
  pages: boolean
}

/** Case-insensitive substring filter over items already in name order, paged. */
export function page<T> (items: T[], name: (t: T) => string, q: SectionQuery): { total: number, items: T[] } {
  const f = q.filter.toLowerCase()
  const matching = f === '' ? items : items.filter((t) => name(t).toLowerCase().includes(f))
  return { total: matching.length, items: matching.slice(q.offset, q.offset + q.limit) }
}

/**
 * The details of the rows on screen, read shard by shard (`read`: one shard's rows, by name), keyed by
 * `<shard id>\n<name>` ({@link detailKey}). A shard that fails gives no details this time.
 */
export async function detailsByShard<V extends { name: string }> (items: ReadonlyArray<{ shard: Shard, name: string }>,
  read: (shard: Shard, names: string[]) => Promise<V[]>): Promise<Map<string, V>> {
  const byShard = new Map<Shard, string[]>()
  for (const l of items) {
    if (!byShard.has(l.shard)) byShard.set(l.shard, [])
    byShard.get(l.shard)!.push(l.name)
  }
  const views = new Map<string, V>()
  await Promise.all([...byShard].map(async ([shard, names]) => {
    try {
      for (const v of await read(shard, names)) views.set(detailKey(shard, v.name), v)
    } catch { /* the shard went away: its rows show no details this time */ }
  }))
  return views
}

/** The key of a row's details in {@link detailsByShard}'s map. */
export function detailKey (shard: Shard, name: string): string {
  return `${shard.id}\n${name}`
}

/** Compares names for sorting. */
export function byName (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
