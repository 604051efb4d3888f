import type { Bus } from '../bus.js'
import { Queue } from '../queue/queue.js'
import { replyQueueKeys } from '../keys.js'
import { PushBatcher } from './push-batcher.js'

/** Reply queues a server keeps a handle on at once (one per requesting bus it answered lately). */
const MAX_TARGETS = 1000

interface Target {
  queue: Queue
  batcher: PushBatcher
}

/**
 * A server's way back to its requesters: a handle (and a batcher) per requesting bus's reply queue, the
 * most recently used {@link MAX_TARGETS} of them. The replies to one requester made in one turn of the
 * event loop go out in one push.
 */
export class ReplySender {
  private readonly bus: Bus
  private readonly ttl: number
  private readonly targets = new Map<string, Target>()

  constructor (bus: Bus, ttl: number) {
    this.bus = bus
    this.ttl = ttl
  }

  /** Resolves once the reply is stored in the reply queue `replyTo` (a validated id, see envelope.ts). */
  send (replyTo: string, payload: Buffer): Promise<void> {
    let t = this.targets.get(replyTo)
    if (t) {
      // Most recently used last, so the first one is the one to drop.
      this.targets.delete(replyTo)
    } else {
      const queue = new Queue(this.bus, `svc-reply:${replyTo}`, { ttl: this.ttl },
        { keys: replyQueueKeys(this.bus.settings.prefix, replyTo) })
      t = { queue, batcher: new PushBatcher(queue.producer()) }
      if (this.targets.size >= MAX_TARGETS) {
        const [oldest, old] = this.targets.entries().next().value as [string, Target]
        this.targets.delete(oldest)
        // Its last batch may still be on its way; closing the handle only stops it closing with the bus.
        old.queue.close().catch(() => {})
      }
    }
    this.targets.set(replyTo, t)
    return t.batcher.store(payload)
  }

  close (): void {
    for (const t of this.targets.values()) t.queue.close().catch(() => {})
    this.targets.clear()
  }
}
