import type { Shard } from '../router/shard.js'
import { registryKey, type QueueKeys } from '../keys.js'
import { redrive } from '../scripts/index.js'
import type { Queue } from '../queue/queue.js'

/** Dead letters moved per script call (bounded Redis time per call). */
const REDRIVE_BATCH = 1000

/**
 * Moves every message of a queue's dead-letter queue back to the queue (new ids, at its tail), in calls
 * of {@link REDRIVE_BATCH}; resolves with how many moved.
 */
export async function redriveDeadLetters (shard: Shard, keys: QueueKeys, ttl: number): Promise<number> {
  let moved = 0
  for (;;) {
    const n = await redrive(shard, keys, { count: REDRIVE_BATCH, ttl })
    moved += n
    if (n < REDRIVE_BATCH) return moved
  }
}

/**
 * Deletes a queue as `queue.delete()` does (every key of it and of its dead-letter queue; its readers and
 * writers end with `ERR_BUSMQ_QUEUE_DELETED`), and its registry entry. Resolves with whether it existed.
 */
export async function deleteQueue (queue: Queue, shard: Shard, prefix: string): Promise<boolean> {
  const existed = await queue.delete()
  const member = queue.keys.registryMember
  if (member !== undefined) await shard.run((c) => c.zrem(registryKey(prefix), member))
  return existed
}
