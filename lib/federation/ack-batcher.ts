import type { FederationClient } from './federation-client.js'

/** How a reliable message is settled over federation (the `reliable.acks` call). */
export type SettleMode = 'ack' | 'nack' | 'dead'

/** Settlements sent in one call at most. */
export const MAX_ACKS_PER_CALL = 4096

interface Pending {
  id: number
  mode: SettleMode
  resolve: (ok: boolean) => void
  reject: (err: Error) => void
}

// Browsers have no setImmediate: a zero timeout there (acks of one task still go together).
const later: (fn: () => void) => void = typeof setImmediate === 'function'
  ? (fn) => { setImmediate(fn) }
  : (fn) => { setTimeout(fn, 0) }

/**
 * The acks and nacks of one remote reliable reader (or channel), sent together: those made in the same
 * turn of the event loop go in one `reliable.acks` call (at most {@link MAX_ACKS_PER_CALL}), and each
 * promise settles with its own message's result.
 */
export class AckBatcher {
  private pending: Pending[] = []
  private scheduled = false

  constructor (private readonly client: FederationClient, private readonly name: string, private readonly session: string) {}

  /** Acks (or nacks) message `id`; resolves as `ReliableMessage.ack()` does (false: unknown or expired). */
  settle (id: number, mode: SettleMode): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, mode, resolve, reject })
      if (this.scheduled) return
      this.scheduled = true
      later(() => this.flush())
    })
  }

  private flush (): void {
    this.scheduled = false
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_ACKS_PER_CALL)
      this.client.call('reliable.acks', this.name, {
        session: this.session, ids: batch.map((p) => p.id), modes: batch.map((p) => p.mode)
      }).then(({ result }) => {
        const results = Array.isArray(result) ? result : []
        batch.forEach((p, i) => {
          const r = results[i]
          if (r !== null && typeof r === 'object') p.reject(this.client.errorFromWire(r as Record<string, unknown>))
          else p.resolve(r === true)
        })
      }, (err: Error) => { for (const p of batch) p.reject(err) })
    }
  }
}
