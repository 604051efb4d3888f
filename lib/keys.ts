/**
 * What the batched heartbeat (lib/queue/attachments.ts, heartbeat.lua) keeps alive: a queue, by its info
 * hash, or a persisted object, by its hash. The script derives their other keys from `head`.
 */
export interface KeepAliveKeys {
  readonly kind: 'queue' | 'object'
  readonly head: string
}

/**
 * The one place where Redis key and channel names are built. Every key of a queue shares the hash tag
 * `{<name>}` so that one script never crosses Redis Cluster slots; names cannot contain braces.
 *
 * Layout for queue `q` with prefix `busmq`:
 *   busmq:q:{q}:m      list   messages: a kind byte + payload, or (put back at the head) kind | 0x80, the
 *                             id in 7 bytes, then the payload (lib/queue/element.ts)
 *   busmq:q:{q}:i      hash   seq (last id = messages pushed), consumed; n, the incarnation (a new id each
 *                             time the queue is created: streams bound to it notice a delete); the flags w
 *                             (a reader waits for data) and r (a producer waits for room); a:<client> -> when that client's
 *                             attachment lapses; p<producer> -> the record of its pushes (so a push re-sent after a
 *                             reconnection is not stored twice); u:<field> -> user metadata
 *   busmq:q:{q}:f/l/d/o       reliable mode: in-flight records (owner, time, element), lease deadlines, earlier
 *                             deliveries, owners (records of the earlier layout only; see scripts/includes/inflight.lua)
 *   busmq:q:{q}:h      hash   dead-letter queues only: why each message was dead-lettered, and its history
 *   busmq:q:{q}:dl:…   the same layout again for the queue's dead-letter queue
 *   busmq:q:{q}:wake   pub/sub channel for wake-ups ('m' data arrived, 'r' room freed, 'd' deleted)
 */
export class QueueKeys implements KeepAliveKeys {
  readonly kind = 'queue'
  readonly base: string
  readonly messages: string
  readonly info: string
  readonly inflight: string
  readonly leases: string
  readonly deliveries: string
  readonly owners: string
  readonly history: string
  readonly wake: string
  /**
   * Its member in the shard's registry of live queues ({@link registryKey}): the base without the
   * prefix (`q:{q}`, `q:{q}:dl`, `svc:{s}`, `svc:{s}:r`); undefined for the internal queues of services
   * (reply queues, streamed replies), which are not listed.
   */
  readonly registryMember?: string

  constructor (base: string) {
    this.base = base
    this.registryMember = memberOf(base)
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

  /** The key the heartbeat is given (the info hash). */
  get head (): string {
    return this.info
  }

  /** Keys whose existence means the queue exists (it was used and has not expired). */
  existence (): string[] {
    return [this.info, this.messages, this.inflight]
  }

  /** Every key of the queue and of its dead-letter queue, for deletion. */
  all (): string[] {
    return this.base.endsWith(':dl') ? this.own() : [...this.own(), ...this.deadLetter().own()]
  }

  /** The queue's own keys, in the order of delete-14.lua. */
  own (): string[] {
    return [this.messages, this.info, this.inflight, this.leases, this.deliveries, this.owners, this.history]
  }
}

/**
 * Keys of persisted object `o` (`bus.object`), prefix `busmq`; both share the hash tag `{o}`:
 *   busmq:o:{o}:h      hash    f:<field> -> the field's encoded value; v -> version (saves so far);
 *                              n -> incarnation (a new id each time the object is created)
 *   busmq:o:{o}:c      stream  the change log: one entry per save, id <version>-0, fields s:<field> ->
 *                              value for each field set and d:<field> for each field deleted; capped
 *   busmq:o:{o}:wake   pub/sub a save publishes 'm' here (change streams wake up), delete() 'd'
 */
export class ObjectKeys implements KeepAliveKeys {
  readonly kind = 'object'
  readonly hash: string
  readonly log: string
  readonly wake: string

  constructor (prefix: string, name: string) {
    const base = `${prefix}:o:{${name}}`
    this.hash = `${base}:h`
    this.log = `${base}:c`
    this.wake = `${base}:wake`
  }

  get head (): string {
    return this.hash
  }

  /** Every key of the object. */
  all (): string[] {
    return [this.hash, this.log]
  }
}

/** Field prefix of an object's own fields in its hash (`busmq:o:{o}:h`). */
export const OBJECT_FIELD_PREFIX = 'f:'

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

/**
 * The shard's registry of live queues: a sorted set of registry members (see {@link registryMember}), each
 * scored with the time (ms, the shard's clock) at which its last attachment lapses, so that the queues
 * attached anywhere can be listed without KEYS or SCAN. Written by the batched heartbeat (heartbeat.lua,
 * or register-1.lua on a Cluster, where it is one key in one slot); it expires like everything else.
 */
export function registryKey (prefix: string): string {
  return `${prefix}:registry`
}

/**
 * A queue's registry member: its base from the kind on (`<prefix>:q:{q}:dl` → `q:{q}:dl`), for queues
 * (`q`) and the request queues of services (`svc`). heartbeat.lua derives the same from the info key.
 */
function memberOf (base: string): string | undefined {
  const brace = base.indexOf('{')
  const colon = base.lastIndexOf(':', brace - 2)
  const kind = base.slice(colon + 1, brace - 1)
  return kind === 'q' || kind === 'svc' ? base.slice(colon + 1) : undefined
}

/** What a registry member stands for: a queue (`q:{q}`; `q:{q}:dl` → `q:dead-letter`) or a service. */
export function parseRegistryMember (member: string): { kind: 'queue' | 'service', name: string } | undefined {
  const open = member.indexOf(':{')
  const close = member.indexOf('}', open)
  if (open < 0 || close < 0) return undefined
  const kind = member.slice(0, open)
  const name = member.slice(open + 2, close)
  if (kind === 'svc') return { kind: 'service', name }
  if (kind !== 'q') return undefined
  return { kind: 'queue', name: member.endsWith('}:dl') ? `${name}${DEAD_LETTER_SUFFIX}` : name }
}

/** How a dead-letter queue's name ends (`queue.deadLetter().name`). */
export const DEAD_LETTER_SUFFIX = ':dead-letter'

/** Info-hash field prefix of the roles of an attached client (`k:<client>` → `r<readers>w<writers>`). */
export const ROLES_FIELD_PREFIX = 'k:'

/** Key the bus writes on every shard to notice a shard that restarted without its data. */
export function shardMarkerKey (prefix: string): string {
  return `${prefix}:shard-marker`
}

/**
 * Keys of service `name` (prefix `busmq`), all with the hash tag `{name}`, so they live on one shard (one
 * Cluster slot) and never collide with a queue's (`busmq:q:…`):
 *   busmq:svc:{name}:…     the request queue (the layout of a queue: m, i, f, l, d, o, dl:…, wake)
 *   busmq:svc:{name}:r:…   the reliable request queue, taken only by servers started with `reliable`
 *   busmq:svc:{name}:s     hash   server id -> "<lapses at>:<running>:<concurrency>:<reliable 0|1>[:<handled>]"
 *                                 (<handled>: requests finished recently per latency bucket, lib/service/server-status.ts)
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
