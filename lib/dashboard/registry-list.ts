import type { Shard } from '../router/shard.js'
import type { Inspector } from './inspector.js'
import { byName } from './section.js'

/** A name of the registry, and the shard that lists it. */
export interface Listed { name: string, shard: Shard }

/** A registry this large is listed every 5 s instead of on every refresh. */
const LARGE_REGISTRY = 10_000

/**
 * The live queues and services of every shard, from one read of each shard's registry: the queues and
 * services sections share it, so a refresh reads a registry of 100,000 queues once, not once per section.
 */
export class RegistryList {
  /** In name order. */
  queues: Listed[] = []
  services: Listed[] = []
  /** Shards whose registry could not be read. */
  note?: string
  private readonly inspector: Inspector
  private readonly shards: () => Shard[]
  private readonly interval: number
  private at = 0
  private listing?: Promise<void>

  constructor (inspector: Inspector, shards: () => Shard[], interval: number) {
    this.inspector = inspector
    this.shards = shards
    this.interval = interval
  }

  /** Reads the registries again unless they were read lately (within half a refresh, or 5 s when large). */
  async refresh (): Promise<void> {
    const reuse = this.queues.length > LARGE_REGISTRY ? 5000 : this.interval / 2
    if (Date.now() - this.at < reuse) return
    this.listing ??= (async () => {
      const failed: string[] = []
      const per = await Promise.all(this.shards().map(async (shard) => {
        if (!shard.online) return { queues: [], services: [] }
        try {
          const r = await this.inspector.registry(shard)
          return { queues: r.queues.map((name) => ({ name, shard })), services: r.services.map((name) => ({ name, shard })) }
        } catch {
          failed.push(shard.id)
          return { queues: [], services: [] }
        }
      }))
      this.queues = per.flatMap((p) => p.queues).sort((a, b) => byName(a.name, b.name))
      this.services = per.flatMap((p) => p.services).sort((a, b) => byName(a.name, b.name))
      this.note = failed.length > 0 ? `could not read the registry of ${failed.join(', ')}` : undefined
      this.at = Date.now()
    })().finally(() => { this.listing = undefined })
    await this.listing
  }
}
