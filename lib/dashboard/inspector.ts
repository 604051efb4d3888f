import type { Cluster, Redis } from 'ioredis'
import type { Shard } from '../router/shard.js'
import {
  ATTACHMENT_FIELD_PREFIX, DEAD_LETTER_SUFFIX, ROLES_FIELD_PREFIX, ObjectKeys, QueueKeys, ServiceKeys, parseRegistryMember, registryKey
} from '../keys.js'
import { serviceStats } from '../service/server-status.js'
import type { ServiceStats } from '../service/service.js'
import { KIND_ABORT, KIND_END, parseElement } from '../queue/element.js'

type Node = Redis | Cluster

/** ms a dashboard read may take before it counts as failed (a shard that is down must not hold a page). */
export const READ_TIMEOUT = 2000

/** What the dashboard shows of a shard (or, on a Cluster, of each primary). */
export interface ShardView {
  id: string
  up: boolean
  /** From INFO, when it could be read: `master` / `slave`, used memory, connected clients, ops/s, version. */
  role?: string
  memory?: string
  clients?: number
  opsPerSec?: number
  version?: string
  /** Why some of it is missing ("INFO denied by ACL", "down"). */
  note?: string
}

/** One queue as the dashboard lists it. */
export interface QueueView {
  name: string
  shard: string
  depth: number
  pushed: number
  consumed: number
  inFlight: number
  deadLetters: number
  /** Live attachments, and the readers and writers those clients said they have. */
  clients: number
  readers: number
  writers: number
  /** ms until it expires if nobody touches it (-1: no expiry; -2: gone). */
  ttl: number
  /** Attached clients: id, roles, ms until the attachment lapses. */
  attached: Array<{ client: string, readers: number, writers: number, lapsesIn: number }>
}

/** One service as the dashboard lists it: what `service.stats()` reports. */
export type ServiceView = ServiceStats

/** One persisted object as the dashboard lists it. */
export interface ObjectView {
  name: string
  shard: string
  /** Saves so far. */
  version: number
  /** Its fields, and the entries of its change log. */
  fields: number
  changes: number
  /** ms until it expires if nobody saves it or keeps it alive (-1: no expiry; -2: gone). */
  ttl: number
}

/** One stored message, as the queue page shows it (read-only). */
export interface MessageView {
  id: number
  kind: 'data' | 'end' | 'abort'
  bytes: number
  /** UTF-8 text when the payload is text, else base64; at most 512 bytes of it. */
  text: string
  encoding: 'utf8' | 'base64'
  truncated: boolean
}

/** Whether `text` has control characters other than tab, CR and LF (then it is shown as base64). */
function hasControl (text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 32 && c !== 9 && c !== 10 && c !== 13) return true
  }
  return false
}

/** Primaries of a shard (one Redis, or each Cluster primary), for per-node commands. */
export function nodesOf (shard: Shard): Node[] {
  const c = shard.client as Cluster
  return typeof c.nodes === 'function' ? c.nodes('master') : [shard.client]
}

/** Every node a subscriber may be connected to (classic pub/sub is per node on a Cluster). */
function pubsubNodesOf (shard: Shard): Node[] {
  const c = shard.client as Cluster
  return typeof c.nodes === 'function' ? c.nodes('all') : [shard.client]
}

function parseInfo (text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** The keys of a queue by its name (`<queue>:dead-letter` is the dead-letter queue of `<queue>`). */
export function keysOf (prefix: string, name: string): QueueKeys {
  if (name.endsWith(DEAD_LETTER_SUFFIX) && name.length > DEAD_LETTER_SUFFIX.length) {
    return QueueKeys.forQueue(prefix, name.slice(0, -DEAD_LETTER_SUFFIX.length)).deadLetter()
  }
  return QueueKeys.forQueue(prefix, name)
}

/**
 * Reads what the dashboard shows from Redis, with bounded work: the shards' INFO, the registry of live
 * queues (ZRANGEBYSCORE: no KEYS, no SCAN), details of the queues on screen only, channel presence and
 * pub/sub topics (PUBSUB CHANNELS of the bus's patterns), and a queue's newest messages (LRANGE).
 */
export class Inspector {
  readonly prefix: string

  constructor (prefix: string) {
    this.prefix = prefix
  }

  private run<T> (shard: Shard, fn: (c: Node) => Promise<T>): Promise<T> {
    return shard.run(fn as any, { timeout: READ_TIMEOUT }) as Promise<T>
  }

  /** The shard's state; on a Cluster one view per primary. */
  async shard (shard: Shard): Promise<ShardView[]> {
    if (!shard.online) return [{ id: shard.id, up: false, note: 'down' }]
    const nodes = nodesOf(shard)
    return await Promise.all(nodes.map(async (node) => {
      const opts = (node as Redis).options
      const id = nodes.length > 1 || shard.id === 'cluster' ? `${shard.id} ${opts.host}:${opts.port}` : shard.id
      try {
        const info = parseInfo(await this.run(shard, () => (node as Redis).info()))
        return {
          id,
          up: true,
          role: info.role,
          memory: info.used_memory_human,
          clients: Number(info.connected_clients),
          opsPerSec: Number(info.instantaneous_ops_per_sec),
          version: info.redis_version
        }
      } catch (err) {
        const message = (err as Error).message
        // An ACL user without INFO still gets the rest of the dashboard.
        if (/NOPERM|no permissions/i.test(message)) return { id, up: true, note: 'INFO denied by ACL' }
        return { id, up: shard.online, note: message.split('\n')[0] }
      }
    }))
  }

  /** Live registry members of a shard (their attachments have not lapsed): the queues and the services. */
  async registry (shard: Shard): Promise<{ queues: string[], services: string[] }> {
    const key = registryKey(this.prefix)
    const members = await this.run(shard, async (c) => {
      const t = await c.time()
      const now = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000)
      return await c.zrangebyscore(key, now, '+inf')
    })
    const queues: string[] = []
    const services = new Set<string>()
    for (const m of members) {
      const parsed = parseRegistryMember(m)
      if (parsed?.kind === 'queue') queues.push(parsed.name)
      // A service's plain and reliable request queues are one service.
      else if (parsed?.kind === 'service') services.add(parsed.name)
    }
    return { queues, services: [...services] }
  }

  /**
   * Queues found by a bounded SCAN of their info hashes (idle queues nobody is attached to are not in
   * the registry): at most `budget` keys examined per node. `complete` says whether the scan finished.
   */
  async scanned (shard: Shard, budget: number): Promise<{ names: string[], complete: boolean }> {
    const head = `${this.prefix}:q:{`
    return await this.scanNames(shard, budget, `${head}*}:*i`, (key) => {
      const close = key.indexOf('}', head.length)
      const rest = key.slice(close + 1)
      const name = key.slice(head.length, close)
      if (rest === ':i') return name
      if (rest === ':dl:i') return `${name}${DEAD_LETTER_SUFFIX}`
      return undefined
    })
  }

  /**
   * Persisted objects found by a bounded SCAN of their hashes (objects are not in the registry): at most
   * `budget` keys examined per node.
   */
  async scannedObjects (shard: Shard, budget: number): Promise<{ names: string[], complete: boolean }> {
    const head = `${this.prefix}:o:{`
    return await this.scanNames(shard, budget, `${head}*}:h`, (key) => key.slice(head.length, -3))
  }

  /** The names `nameOf` reads off the keys matching `pattern`, at most `budget` keys examined per node. */
  private async scanNames (shard: Shard, budget: number, pattern: string,
    nameOf: (key: string) => string | undefined): Promise<{ names: string[], complete: boolean }> {
    const names = new Set<string>()
    let complete = true
    for (const node of nodesOf(shard)) {
      let cursor = '0'
      let examined = 0
      do {
        const [next, keys] = await this.run(shard, () => (node as Redis).scan(cursor, 'MATCH', pattern, 'COUNT', 1000))
        cursor = next
        examined += 1000
        for (const key of keys) {
          const name = nameOf(key)
          if (name !== undefined) names.add(name)
        }
      } while (cursor !== '0' && examined < budget)
      if (cursor !== '0') complete = false
    }
    return { names: [...names], complete }
  }

  /** Details of some persisted objects of one shard (one pipelined round of four commands per object). */
  async objects (shard: Shard, names: string[]): Promise<ObjectView[]> {
    if (names.length === 0) return []
    return await this.run(shard, async (c) => await Promise.all(names.map(async (name) => {
      const k = new ObjectKeys(this.prefix, name)
      const [[version, incarnation], length, changes, ttl] = await Promise.all([
        c.hmget(k.hash, 'v', 'n'), c.hlen(k.hash), c.xlen(k.log), c.pttl(k.hash)
      ])
      // The hash holds its fields (f:<field>), and v and n.
      const fields = length - (version === null ? 0 : 1) - (incarnation === null ? 0 : 1)
      return { name, shard: shard.id, version: Number(version ?? 0), fields, changes, ttl }
    })))
  }

  /** Details of some queues of one shard (one pipelined round of five commands per queue). */
  async queues (shard: Shard, names: string[]): Promise<QueueView[]> {
    if (names.length === 0) return []
    const rows = await this.run(shard, async (c) => {
      const t = await c.time()
      const now = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000)
      return await Promise.all(names.map(async (name) => {
        const k = keysOf(this.prefix, name)
        const [info, depth, inFlight, deadLetters, ttl] = await Promise.all([
          c.hgetall(k.info), c.llen(k.messages), c.hlen(k.inflight), c.llen(k.deadLetter().messages), c.pttl(k.info)
        ])
        return { name, info, depth, inFlight, deadLetters, ttl, now }
      }))
    })
    return rows.map(({ name, info, depth, inFlight, deadLetters, ttl, now }) => {
      const attached: QueueView['attached'] = []
      for (const [field, value] of Object.entries(info)) {
        if (!field.startsWith(ATTACHMENT_FIELD_PREFIX) || Number(value) <= now) continue
        const client = field.slice(ATTACHMENT_FIELD_PREFIX.length)
        const roles = /^r(\d+)w(\d+)$/.exec(info[ROLES_FIELD_PREFIX + client] ?? '')
        attached.push({ client, readers: Number(roles?.[1] ?? 0), writers: Number(roles?.[2] ?? 0), lapsesIn: Number(value) - now })
      }
      return {
        name,
        shard: shard.id,
        depth,
        pushed: Number(info.seq ?? 0),
        consumed: Number(info.consumed ?? 0),
        inFlight,
        deadLetters,
        clients: attached.length,
        readers: attached.reduce((n, a) => n + a.readers, 0),
        writers: attached.reduce((n, a) => n + a.writers, 0),
        ttl,
        attached
      }
    })
  }

  /** Details of some services of one shard (one pipelined round of six commands per service). */
  async services (shard: Shard, names: string[]): Promise<ServiceView[]> {
    if (names.length === 0) return []
    const rows = await this.run(shard, async (c) => {
      const t = await c.time()
      const now = Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000)
      return await Promise.all(names.map(async (name) => {
        const k = new ServiceKeys(this.prefix, name)
        const [servers, waiting, waitingReliable, ttls] = await Promise.all([
          c.hgetall(k.servers), c.llen(k.requests.messages), c.llen(k.reliableRequests.messages),
          Promise.all(k.existence().map((key) => c.pttl(key)))
        ])
        return { name, servers, waiting, waitingReliable, ttl: Math.max(...ttls), now }
      }))
    })
    return rows.map(({ name, ...raw }) => serviceStats(name, shard.id, raw))
  }

  /** The newest `count` messages of a queue, with their ids (read-only: nothing is taken). */
  async messages (shard: Shard, name: string, count: number): Promise<MessageView[]> {
    const k = keysOf(this.prefix, name)
    const [seq, length, raw] = await this.run(shard, async (c) => {
      const r = await c.multi().hget(k.info, 'seq').llen(k.messages).lrangeBuffer(k.messages, -count, -1).exec()
      if (r === null) throw new Error('transaction aborted')
      for (const [err] of r) if (err) throw err
      return r.map(([, v]) => v) as [string | null, number, Buffer[]]
    })
    // Ids are positions: the head's id is seq - length + 1 (lib/queue/element.ts).
    const first = Number(seq ?? 0) - length + 1 + (length - raw.length)
    return raw.map((buf, i) => {
      const el = parseElement(buf, first + i)
      const shown = el.payload.subarray(0, 512)
      const text = shown.toString('utf8')
      const isText = !text.includes('\uFFFD') && !hasControl(text)
      return {
        id: el.id,
        kind: el.kind === KIND_END ? 'end' : el.kind === KIND_ABORT ? 'abort' : 'data',
        bytes: el.payload.length,
        text: isText ? text : shown.toString('base64'),
        encoding: isText ? 'utf8' : 'base64',
        truncated: el.payload.length > shown.length
      }
    })
  }

  /** Channels with a connected peer: presence channels subscribed on the shard, and which roles are present. */
  async channels (shard: Shard): Promise<Array<{ name: string, shard: string, peers: string[], present: string[] }>> {
    const head = `${this.prefix}:ch:{`
    const found = new Map<string, Set<string>>()
    for (const node of pubsubNodesOf(shard)) {
      const list = await this.run(shard, () => (node as Redis).pubsub('CHANNELS', `${head}*}:p:*`) as Promise<string[]>)
      for (const ch of list) {
        const close = ch.indexOf('}:p:', head.length)
        if (close < 0) continue
        const name = ch.slice(head.length, close)
        if (!found.has(name)) found.set(name, new Set())
        found.get(name)!.add(ch.slice(close + 4))
      }
    }
    const names = [...found.keys()].sort()
    return await Promise.all(names.map(async (name) => {
      const peers = [...found.get(name)!].sort()
      const present = await this.run(shard, (c) => Promise.all(peers.map((role) => c.exists(`${head}${name}}:p:${role}`))))
      return { name, shard: shard.id, peers, present: peers.filter((_, i) => present[i] === 1) }
    }))
  }

  /** Plain pub/sub topics with subscribers on the shard (PUBSUB CHANNELS, then NUMSUB). */
  async topics (shard: Shard): Promise<Array<{ name: string, shard: string, subscribers: number }>> {
    const head = `${this.prefix}:p:{`
    const counts = new Map<string, number>()
    for (const node of pubsubNodesOf(shard)) {
      const n = node as Redis
      const list = await this.run(shard, () => n.pubsub('CHANNELS', `${head}*}`) as Promise<string[]>)
      if (list.length === 0) continue
      const numsub = await this.run(shard, () => n.pubsub('NUMSUB', ...list) as Promise<Array<string | number>>)
      for (let i = 0; i < numsub.length; i += 2) {
        const name = String(numsub[i]).slice(head.length, -1)
        counts.set(name, (counts.get(name) ?? 0) + Number(numsub[i + 1]))
      }
    }
    return [...counts].sort(([a], [b]) => a < b ? -1 : 1).map(([name, subscribers]) => ({ name, shard: shard.id, subscribers }))
  }
}
