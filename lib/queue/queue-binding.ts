import type { Shard } from '../router/shard.js'
import { QueueDeletedError } from '../errors.js'

/**
 * What a stream (a reader, a bound producer) is bound to: the incarnation of its queue that its first
 * call found (see lib/scripts/includes/incarnation.lua), and the shard's data-loss marker at that moment.
 *
 * A script answers "deleted" when the queue no longer is that incarnation. That means `queue.delete()`,
 * unless the shard lost its data since (restarted empty): the queue went with the data, and the bus
 * carries on after a data loss (it reports it as `dataloss`), so the stream binds afresh instead of
 * failing. The marker tells the two apart.
 */
export class QueueBinding {
  /** The bound incarnation; '' until the first call (scripts then use, or create, whatever exists). */
  incarnation = ''
  private marker?: string

  /** Binds to the incarnation a call returned, unless bound already. */
  bind (incarnation: string, shard: Shard): void {
    if (this.incarnation !== '') return
    this.incarnation = incarnation
    this.marker = shard.dataMarker
  }

  /**
   * A call found the bound incarnation gone. Resolves (unbound: the caller calls again) when the shard
   * lost its data since the binding; throws `ERR_BUSMQ_QUEUE_DELETED` when the queue was deleted.
   */
  async gone (shard: Shard, message: string): Promise<void> {
    const now = await shard.currentDataMarker()
    if (now === this.marker) throw new QueueDeletedError(message)
    this.incarnation = ''
    this.marker = undefined
  }
}
