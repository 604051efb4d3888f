/**
 * The one place where Redis key and channel names are built. Every key of a queue shares the hash tag
 * `{<name>}` so that one script never crosses Redis Cluster slots; names cannot contain braces.
 *
 * Layout for queue `q` with prefix `busmq`:
 *   busmq:q:{q}:m      list   messages: a kind byte + payload, or (put back at the head) kind | 0x80, the
 *                             id in 7 bytes, then the payload (lib/queue/element.ts)
 *   busmq:q:{q}:i      hash   seq (last id = messages pushed), consumed; the flags w (a reader waits for
 *                             data) and r (a producer waits for room); a:<client> -> when that client's
 *                             attachment lapses; p<producer> -> its last push (so a push re-sent after a
 *                             reconnection is not stored twice); u:<field> -> user metadata
 *   busmq:q:{q}:f/l/d/o       reliable mode: in-flight payloads, lease deadlines, delivery histories, owners
 *   busmq:q:{q}:h      hash   dead-letter queues only: why each message was dead-lettered, and its history
 *   busmq:q:{q}:dl:…   the same layout again for the queue's dead-letter queue
 *   busmq:q:{q}:wake   pub/sub channel for wake-ups ('m' data arrived, 'r' room freed)
 */
export class QueueKeys {
  readonly base: string
  readonly messages: string
  readonly info: string
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

  /** Keys whose existence means the queue exists (it was used and has not expired). */
  existence (): string[] {
    return [this.info, this.messages, this.inflight]
  }

  /** Every key of the queue and of its dead-letter queue, for deletion. */
  all (): string[] {
    const own = [this.messages, this.info, this.inflight, this.leases, this.deliveries, this.owners, this.history]
    return this.base.endsWith(':dl') ? own : [...own, ...this.deadLetter().all()]
  }
}

/** Info-hash field prefix of user metadata (`queue.setMeta`). */
export const META_FIELD_PREFIX = 'u:'
/** Info-hash field prefix of attachments. */
export const ATTACHMENT_FIELD_PREFIX = 'a:'
/** Info-hash field prefix of a producer's record of its last push (push-2.lua, heartbeat.lua). */
export const PRODUCER_FIELD_PREFIX = 'p'

/** Pub/sub channel of `bus.pubsub(name)`. */
export function pubsubChannel (prefix: string, name: string): string {
  return `${prefix}:p:{${name}}`
}

/** Presence key (and pub/sub channel) of one role of a channel. */
export function presenceKey (prefix: string, channel: string, role: string): string {
  return `${prefix}:ch:{${channel}}:p:${role}`
}

/** Key the bus writes on every shard to notice a shard that restarted without its data. */
export function shardMarkerKey (prefix: string): string {
  return `${prefix}:shard-marker`
}

/**
 * Keys of service `name` (prefix `busmq`), all with the hash tag `{name}`, so they live on one shard (one
 * Cluster slot) and never collide with a queue's (`busmq:q:…`):
 *   busmq:svc:{name}:…     the request queue (the layout of a queue: m, i, f, l, d, o, dl:…, wake)
 *   busmq:svc:{name}:r:…   the reliable request queue, taken only by servers started with `reliable`
 *   busmq:svc:{name}:s     hash   server id -> "<lapses at>:<running>:<concurrency>:<reliable 0|1>"
 */
export class ServiceKeys {
  readonly requests: QueueKeys
  readonly reliableRequests: QueueKeys
  readonly servers: string

  constructor (prefix: string, name: string) {
    const base = `${prefix}:svc:{${name}}`
    this.requests = new QueueKeys(base)
    this.reliableRequests = new QueueKeys(`${base}:r`)
    this.servers = `${base}:s`
  }

  /** Keys whose existence means the service exists (a request waits, or a server runs). */
  existence (): string[] {
    return [this.requests.info, this.reliableRequests.info, this.servers]
  }
}

/** The queue one requesting bus reads every (unstreamed) reply from, by correlation id. */
export function replyQueueKeys (prefix: string, id: string): QueueKeys {
  return new QueueKeys(`${prefix}:svc-reply:{${id}}`)
}

/** The short-lived queue of one streamed reply. */
export function replyStreamKeys (prefix: string, id: string): QueueKeys {
  return new QueueKeys(`${prefix}:svc-stream:{${id}}`)
}
