import createDebug from 'debug'
import type { Shard } from './shard.js'
import { rank, pick } from './rendezvous.js'

const debug = createDebug('busmq:router')

/**
 * Where every name lives. Queues, channels (their queues and their presence), pub/sub topics, and the
 * later subsystems ask the router, never a shard list of their own.
 *
 * - `owner(name)`: the shard rendezvous hashing gives a name among the current shards.
 * - `locate(name, keys)`: the highest-ranked shard that holds any of `keys`, or the owner when none
 *   does. So a name whose data is on its previous owner stays reachable there after shards are added,
 *   until its keys expire. Shards that are down are skipped (they count as holding nothing).
 * - `add(shards)` grows the set; `onGrowth(fn)` tells those who must follow new owners (pub/sub).
 */
export class Router {
  private readonly shards = new Map<string, Shard>()
  private readonly growthListeners = new Set<() => void>()

  /** Ids of the shards, in the order they were added. */
  get ids (): string[] {
    return [...this.shards.keys()]
  }

  get size (): number {
    return this.shards.size
  }

  all (): Shard[] {
    return [...this.shards.values()]
  }

  has (id: string): boolean {
    return this.shards.has(id)
  }

  get (id: string): Shard | undefined {
    return this.shards.get(id)
  }

  /** Adds shards (ignoring ids already known) and tells the growth listeners once. */
  add (shards: Shard[]): Shard[] {
    const added = shards.filter((s) => !this.shards.has(s.id))
    for (const s of added) this.shards.set(s.id, s)
    if (added.length > 0 && this.shards.size > added.length) {
      debug('grew by %d shard(s) to %d', added.length, this.shards.size)
      for (const fn of this.growthListeners) fn()
    }
    return added
  }

  /** Calls `fn` whenever shards are added; returns the function that stops it. */
  onGrowth (fn: () => void): () => void {
    this.growthListeners.add(fn)
    return () => this.growthListeners.delete(fn)
  }

  /** The shard that owns `name` by rendezvous hashing, ignoring where data already is. */
  owner (name: string): Shard {
    return this.shards.get(pick(this.ids, name))!
  }

  /** The highest-ranked shard holding any of `keys`, else the owner (see the class comment). */
  async locate (name: string, keys: string[]): Promise<Shard> {
    const ids = rank(this.ids, name)
    if (ids.length === 1) return this.shards.get(ids[0])!
    const found = await Promise.allSettled(ids.map(async (id) => {
      const shard = this.shards.get(id)!
      if (!shard.online) return 0
      return await shard.run((c) => c.exists(...keys))
    }))
    const i = found.findIndex((r) => r.status === 'fulfilled' && r.value > 0)
    return this.shards.get(ids[i < 0 ? 0 : i])!
  }
}
