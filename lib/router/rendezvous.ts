/**
 * Rendezvous (highest random weight) hashing: every (shard, name) pair gets a pseudo-random weight and a
 * name belongs to the shard with the highest weight. Adding a shard moves only the names the new shard
 * wins (about 1/N of them), and never moves a name between two old shards.
 */

/** 53-bit string hash (cyrb53): fast, well mixed, deterministic across processes and platforms. */
export function hash53 (str: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed
  let h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i)
    h1 = Math.imul(h1 ^ ch, 2654435761)
    h2 = Math.imul(h2 ^ ch, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507)
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507)
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}

/** Weight of `name` on the shard whose stable id is `shardId`. */
export function weight (shardId: string, name: string): number {
  return hash53(`${shardId}\u0000${name}`)
}

/** Shard ids ordered from the owner of `name` down; ties (practically impossible) break by id. */
export function rank (shardIds: readonly string[], name: string): string[] {
  return shardIds
    .map((id) => ({ id, w: weight(id, name) }))
    .sort((a, b) => b.w - a.w || (a.id < b.id ? -1 : 1))
    .map((x) => x.id)
}

/** The owner of `name` among `shardIds`. */
export function pick (shardIds: readonly string[], name: string): string {
  let best = shardIds[0]
  let bestW = -1
  for (const id of shardIds) {
    const w = weight(id, name)
    if (w > bestW || (w === bestW && id < best)) { best = id; bestW = w }
  }
  return best
}
