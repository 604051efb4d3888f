import type { Bus } from '../bus.js'
import { Queue } from '../queue/queue.js'
import { replyQueueKeys } from '../keys.js'
import { PushBatcher, type Stored } from './push-batcher.js'

/** Reply queues a server keeps a handle on at once (one per requesting bus it answered lately). */
const MAX_TARGETS = 1000

interface Target {
  queue: Queue
  batcher: PushBatcher
  /** When it was last used (a counter): the least recently used is dropped first. */
  used: number
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
  private uses = 0

  constructor (bus: Bus, ttl: number) {
    this.bus = bus
    this.ttl = ttl
  }

  /** Calls `stored` once the reply is stored in the reply queue `replyTo` (a validated id, see envelope.ts). */
  send (replyTo: string, payload: Buffer, stored: Stored): void {
    let t = this.targets.get(replyTo)
    if (!t) {
      if (this.targets.size >= MAX_TARGETS) this.dropOldest()
      const queue = new Queue(this.bus, `svc-reply:${replyTo}`, { ttl: this.ttl },
        { keys: replyQueueKeys(this.bus.settings.prefix, replyTo) })
      t = { queue, batcher: new PushBatcher(queue.producer()), used: 0 }
      this.targets.set(replyTo, t)
    }
    t.used = ++this.uses
    t.batcher.add(payload, stored)
  }

  /** Rare (a thousand requesters at once): a scan is cheaper than keeping an order on every reply. */
  private dropOldest (): void {
    let oldest: [string, Target] | undefined
    for (const e of this.targets) if (!oldest || e[1].used < oldest[1].used) oldest = e
    if (!oldest) return
    this.targets.delete(oldest[0])
    // Its last batch may still be on its way; closing the handle only stops it closing with the bus.
    oldest[1].queue.close().catch(() => {})
  }

  close (): void {
    for (const t of this.targets.values()) t.queue.close().catch(() => {})
    this.targets.clear()
  }
}
