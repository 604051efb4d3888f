/**
 * The one place where Redis key and channel names are built. Every key of a queue shares the hash tag
 * `{<name>}` so that one script never crosses Redis Cluster slots; names cannot contain braces.
 *
 * Layout for queue `q` with prefix `busmq`:
 *   busmq:q:{q}:m      list   messages, each an 8-byte header (kind, id) + payload
 *   busmq:q:{q}:i      hash   seq (last id = messages pushed), consumed, and p<producer> -> its last push
 *                             (so a push re-sent after a reconnection is not stored twice)
 *   busmq:q:{q}:meta   hash   user metadata
 *   busmq:q:{q}:c      zset   attached clients, scored by the time their attachment lapses
 *   busmq:q:{q}:w      string flag: a reader found the queue empty and waits for a wake-up
 *   busmq:q:{q}:r      string flag: a producer found the queue full and waits for room
 *   busmq:q:{q}:f/l/d/o       reliable mode: in-flight payloads, lease deadlines, delivery histories, owners
 *   busmq:q:{q}:h      hash   dead-letter queues only: why each message was dead-lettered, and its history
 *   busmq:q:{q}:dl:…   the same layout again for the queue's dead-letter queue
 *   busmq:q:{q}:wake   pub/sub channel for wake-ups ('m' data arrived, 'r' room freed)
 */
export class QueueKeys {
  readonly base: string
  readonly messages: string
  readonly info: string
  readonly meta: string
  readonly clients: string
  readonly waiters: string
  readonly room: string
  readonly inflight: string
  readonly leases: string
  readonly deliveries: string
  readonly owners: string
  readonly history: string
  readonly wake: string

  constructor (base: string) {
    this.base = base
    this.messages = `${base}:m`
    this.info = `${base}:i`
    this.meta = `${base}:meta`
    this.clients = `${base}:c`
    this.waiters = `${base}:w`
    this.room = `${base}:r`
    this.inflight = `${base}:f`
    this.leases = `${base}:l`
    this.deliveries = `${base}:d`
    this.owners = `${base}:o`
    this.history = `${base}:h`
    this.wake = `${base}:wake`
  }

  static forQueue (prefix: string, name: string): QueueKeys {
    return new QueueKeys(`${prefix}:q:{${name}}`)
  }

  /** The dead-letter queue lives in the same hash slot as its queue, so moving a message is atomic. */
  deadLetter (): QueueKeys {
    return new QueueKeys(`${this.base}:dl`)
  }

  /** Keys of reliable-mode scripts (reserve, requeue), in their order: see lib/scripts/reserve-12.lua. */
  reliable (): string[] {
    const dl = this.deadLetter()
    return [this.messages, this.info, this.waiters, this.room, this.inflight, this.leases, this.deliveries,
      this.owners, dl.messages, dl.info, dl.waiters, dl.history]
  }

  /** Keys of the attach script, in its order (lib/scripts/attach-22.lua): 22 of them. */
  attachKeys (): string[] {
    const rest = this.all().filter((key) => key !== this.clients && key !== this.info)
    return [this.clients, this.info, ...rest, ...this.deadLetter().all()]
  }

  /** Every key of the queue (not its dead-letter queue), for expiry and deletion. */
  all (): string[] {
    return [this.messages, this.info, this.meta, this.clients, this.waiters, this.room,
      this.inflight, this.leases, this.deliveries, this.owners, this.history]
  }
}

/** Pub/sub channel of `bus.pubsub(name)`. */
export function pubsubChannel (prefix: string, name: string): string {
  return `${prefix}:p:{${name}}`
}

/** Key the bus writes on every shard to notice a shard that restarted without its data. */
export function shardMarkerKey (prefix: string): string {
  return `${prefix}:shard-marker`
}
