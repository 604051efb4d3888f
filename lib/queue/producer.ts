import { randomBytes } from 'node:crypto'
import createDebug from 'debug'
import type { Shard } from '../router/shard.js'
import type { QueueKeys } from '../keys.js'
import { BusClosedError, QueueFullError, ReplicationError } from '../errors.js'
import { push as pushScript } from '../scripts/index.js'
import { batches } from '../util.js'
import { KIND_DATA, dropElements, encodeNewElements, type NewElements } from './element.js'
import type { Wakeups } from './wakeups.js'
import type { Overflow } from './queue-options.js'
import { QueueBinding } from './queue-binding.js'
import type { QueueCounters } from '../metrics/bus-metrics.js'
import { MAX_BATCH_BYTES, MAX_BATCH_COUNT } from './batch-limits.js'

const debug = createDebug('busmq:producer')

/** Largest script call a producer sends: messages and bytes per round trip. */
export { MAX_BATCH_COUNT, MAX_BATCH_BYTES }

let producers = 0
/**
 * Random id of this process's producers, followed by a producer number: short, because it is stored (as
 * a field of each queue's info hash) for every queue pushed to. 60 bits: the chance that two of a
 * thousand processes share one is about 1 in 2 billion.
 */
const processId = randomBytes(8).toString('base64url').slice(0, 10) + '.'

/**
 * Who a producer is to the push script: its id and the number of its last batch. One-off pushes of a
 * bus to one queue share one identity, whatever handle they go through, so their record in the queue's
 * info hash is one field, not one per handle.
 */
export interface ProducerIdentity {
  readonly id: string
  batch: number
  /**
   * Its batches sent and not yet answered, oldest first: the push script keeps its record of them, so
   * one that reaches Redis after a later one (sent again after a connection drop) is still stored once.
   */
  unanswered?: Set<number>
}

export function newProducerIdentity (): ProducerIdentity {
  return { id: `${processId}${(++producers).toString(36)}`, batch: 0 }
}

/**
 * The oldest of a producer's unanswered batches (at most `batch`). Batch numbers grow, so it is the
 * first of the set (insertion order); a federated stream's numbers can restart lower when it resumes,
 * so a small set is searched whole (the push script keeps 64 batches at most anyway).
 */
function oldest (unanswered: Set<number>, batch: number): number {
  let low = batch
  if (unanswered.size > 64) return Math.min(low, unanswered.values().next().value ?? batch)
  for (const b of unanswered) if (b < low) low = b
  return low
}

/** What a producer needs of its queue. */
export interface ProducerTarget {
  readonly name: string
  readonly keys: QueueKeys
  readonly ttl: number
  readonly maxLength: number
  readonly overflow: Overflow
  readonly retain: number
  /** The queue's shard and (for bounded queues) its wake-ups, resolved. */
  open: (needWakeups: boolean) => Promise<{ shard: Shard, wakeups: Wakeups }>
  /** The queue's metrics record. */
  counters: () => QueueCounters
}

export interface ProducerSettings {
  replicas: number
  replicasTimeout: number
  /** True once the bus closes: a producer waiting for room gives up. */
  closed: () => boolean
}

/** What a push stored. */
export interface PushResult {
  /** Id of the first message stored; 0 when none was (dropped: overflow 'drop'). */
  firstId: number
  /** How many of the messages were stored (the others were dropped). */
  stored: number
}

/**
 * The producer engine of a queue: encodes a batch of payloads into stored elements, sends them with the
 * push script in calls of at most {@link MAX_BATCH_COUNT} messages / {@link MAX_BATCH_BYTES}, waits for
 * room in a bounded queue (or drops, or fails: `overflow`), and for `replicas`.
 *
 * Every call carries this producer's id and the next batch number, so a call sent twice (after a
 * connection drop, or after a failover) is stored once. A write stream has a producer of its own and sets
 * `retryReplication`: when the connection changed during a push (a failover), it sends the same batch
 * again to the new primary (stored once: idempotent) and waits for its replicas, instead of failing; a
 * one-off `push()` reports `ERR_BUSMQ_REPLICATION`.
 *
 * A bound producer (a write stream's, a channel's) is bound to the incarnation of the queue its first
 * push reached: once that queue is deleted, its pushes fail with `ERR_BUSMQ_QUEUE_DELETED` instead of
 * creating a fresh queue. A one-off producer pushes to whatever queue exists.
 */
export class Producer {
  private readonly target: ProducerTarget
  private readonly settings: ProducerSettings
  private readonly retryReplication: boolean
  private readonly identity: ProducerIdentity
  private readonly bind: boolean
  /** The queue this producer is bound to, when `bind` (its incarnation, from its first push). */
  private readonly binding = new QueueBinding()

  constructor (target: ProducerTarget, settings: ProducerSettings,
    options: { retryReplication?: boolean, bind?: boolean, identity?: ProducerIdentity } = {}) {
    this.target = target
    this.settings = settings
    this.retryReplication = options.retryReplication ?? false
    this.bind = options.bind ?? false
    this.identity = options.identity ?? newProducerIdentity()
  }

  /** This producer's id in the queue's info hash (field p<id>). */
  get id (): string {
    return this.identity.id
  }

  /**
   * Appends encoded payloads in order and resolves once Redis has accepted all of them, with the id of the
   * first and how many were stored. With `maxLength`: waits for room as often as needed (overflow
   * 'wait'; `signal` ends that wait, rejecting with its reason: what was pushed before stays pushed),
   * drops what does not fit ('drop'), or stores what fits and fails with `ERR_BUSMQ_QUEUE_FULL` ('error').
   */
  async push (payloads: Buffer[], kind = KIND_DATA, signal?: AbortSignal): Promise<PushResult> {
    const t = this.target
    const bounded = t.maxLength > 0
    const waits = bounded && t.overflow === 'wait'
    // Looked up per call (a batch), not held: a process with many one-off handles keeps only the
    // records the bus keeps (metricsQueues).
    const counts = t.counters()
    const { shard, wakeups } = await t.open(waits)
    const parts = batches(payloads, MAX_BATCH_COUNT, MAX_BATCH_BYTES).map((part) => encodeNewElements(part, kind))
    if (!bounded && (this.settings.replicas === 0 || parts.length === 1)) {
      // Unbounded: every batch is accepted whole, so they can all be in flight at once.
      const seqs = await Promise.all(parts.map(async (part) => {
        const [n, seq] = await this.send(shard, part, counts)
        counts.pushed += n
        return seq
      }))
      return { firstId: seqs[0] - parts[0].count + 1, stored: payloads.length }
    }
    // Bounded (a batch may be accepted in part), or re-sent after a failover (a batch re-sent must not
    // overtake a later one, which the idempotency record would take for a duplicate): in order.
    let firstId = 0
    let stored = 0
    for (const part of parts) {
      let rest = part
      for (;;) {
        const since = waits ? wakeups.generation('r') : 0
        const [n, seq] = await this.send(shard, rest, counts)
        counts.pushed += n
        if (n > 0 && firstId === 0) firstId = seq - n + 1
        stored += n
        rest = dropElements(rest, n)
        if (rest.count === 0) break
        if (t.overflow === 'drop') break
        if (t.overflow === 'error') {
          throw new QueueFullError(`queue ${t.name} is full (maxLength ${t.maxLength}): ${stored} of ${payloads.length} message(s) ` +
            'stored, the rest refused (overflow: \'error\')')
        }
        if (this.settings.closed()) {
          throw new BusClosedError(`the bus closed while ${rest.count} message(s) waited for room in ${t.name}`)
        }
        signal?.throwIfAborted()
        await wakeups.wait('r', since, signal)
        signal?.throwIfAborted()
      }
    }
    return { firstId, stored }
  }

  /** One batch: the push script, then (with `replicas`) WAIT; resolves with [pushed, seq]. */
  private async send (shard: Shard, elements: NewElements, counts: QueueCounters): Promise<[number, number]> {
    const batch = ++this.identity.batch
    const unanswered = this.identity.unanswered ??= new Set()
    unanswered.add(batch)
    try {
      return await this.sendBatch(shard, elements, counts, batch, unanswered)
    } finally {
      unanswered.delete(batch)
      // None in flight: the set goes (a bus keeps an identity for every queue it pushed to once).
      if (unanswered.size === 0 && this.identity.unanswered === unanswered) this.identity.unanswered = undefined
    }
  }

  private async sendBatch (shard: Shard, elements: NewElements, counts: QueueCounters, batch: number, unanswered: Set<number>): Promise<[number, number]> {
    const t = this.target
    // A stream re-sends for as long as a command may take: a failover, not a replica that never returns.
    const deadline = shard.commandTimeout > 0 ? Date.now() + shard.commandTimeout : Infinity
    for (;;) {
      const generation = shard.connectionGeneration
      const started = performance.now()
      const [n, seq, incarnation] = await pushScript(shard, t.keys, {
        ttl: t.ttl,
        maxLength: t.maxLength,
        waitForRoom: t.overflow === 'wait',
        retain: t.retain,
        producer: this.id,
        batch,
        low: oldest(unanswered, batch),
        incarnation: this.binding.incarnation,
        elements
      })
      counts.pushDuration.observe((performance.now() - started) / 1000)
      if (n < 0) {
        // Throws unless the queue went with a shard's data (then pushes to it as it is now).
        await this.binding.gone(shard, `queue ${t.name} was deleted: this producer cannot push to it any more`)
        continue
      }
      if (this.bind) this.binding.bind(incarnation, shard)
      if (n === 0 || this.settings.replicas === 0) return [n, seq]
      try {
        await this.replicate(shard, generation)
        return [n, seq]
      } catch (err) {
        if (!this.retryReplication || !(err instanceof ReplicationError) || this.settings.closed() || Date.now() >= deadline) {
          throw err
        }
        debug('%s: batch %d of %s sent again (%s)', t.name, batch, this.id, err.message)
      }
    }
  }

  /** With the bus option `replicas`, waits until that many replicas have what this connection wrote. */
  private async replicate (shard: Shard, generation: number): Promise<void> {
    const { replicas, replicasTimeout } = this.settings
    const acked = await shard.run((c) => c.wait(replicas, replicasTimeout))
    // WAIT counts replicas that have this connection's writes. If the connection changed since the push
    // (a failover), the new primary's replicas prove nothing about it.
    if (shard.connectionGeneration !== generation) {
      throw new ReplicationError(`the connection to ${shard.id} changed during a push to ${this.target.name}: ` +
        'its replication cannot be confirmed (the message may or may not be stored)')
    }
    if (acked < replicas) {
      throw new ReplicationError(`only ${acked} of ${replicas} replica(s) confirmed a push to ${this.target.name} ` +
        `within ${replicasTimeout} ms (the primary has it)`)
    }
  }
}
