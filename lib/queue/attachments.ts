import createDebug from 'debug'
import type { Shard } from '../router/shard.js'
import type { KeepAliveKeys, QueueKeys } from '../keys.js'
import { heartbeat, register, type HeartbeatEntry, type HeartbeatOp, type ScriptTarget } from '../scripts/index.js'
import { BusClosedError } from '../errors.js'
import { DueHeap } from './due-heap.js'
import { timerDelay } from '../util.js'

const debug = createDebug('busmq:attach')

/** Queues per heartbeat call: about a millisecond of Redis time, so other commands wait at most that. */
export const HEARTBEAT_BATCH = 100

/**
 * Refreshes sent in one round at most: calls of {@link HEARTBEAT_BATCH} queues sent together (pipelined
 * on the heartbeat connection, Redis serves other clients between two of them), and the next round only
 * once they are all answered. A round on time takes a few calls' worth of the refreshes due next; a late
 * one takes every refresh already due, up to this many, so that a process too busy to turn its event
 * loop often (a burst of thousands of pushes, a long garbage collection) catches up in one turn instead
 * of one call per turn.
 */
export const HEARTBEAT_ROUND = 20_000

/** Calls of a round on time (the refreshes due within the next tenth of a period). */
const CALLS_ON_TIME = 1

/** Calls of a round of attaches or detaches (of the same kind, in the order they were made). */
const OPS_CALLS = 4

/** Default of the bus option `heartbeatRate`: refreshes per second one bus sends one shard at most. */
export const HEARTBEAT_RATE = 20_000

/**
 * How often a bus refreshes a queue it keeps attached with `ttl`, with `attached` entries on the shard
 * and a budget of `rate` refreshes a second (`heartbeatRate`): every third of its TTL, or, with more
 * entries than the budget refreshes that often, every `2 × attached / rate` seconds, so that on average
 * they take half the budget (the other half absorbs bursts: thousands attached at once come due together).
 */
export function refreshPeriod (ttl: number, attached: number, rate: number): number {
  return Math.max(5, Math.floor(ttl / 3), Math.ceil(2000 * attached / rate))
}

/**
 * What a refresh gives the keys (and the attachment field): three periods, so that a refresh may run up
 * to two periods late before a key expires. The TTL while periods are a third of it; longer once they are
 * stretched (a client that dies then leaves its queues until this lapses; a detach still gives them their
 * TTL from then, see heartbeat.lua).
 */
export function refreshHold (ttl: number, period: number): number {
  return Math.max(ttl, 3 * period)
}

interface Entry {
  keys: KeepAliveKeys
  /** TTLs of the attachments of this queue by this bus (one per attached handle); the largest applies. */
  ttls: number[]
  /** The TTL of the last attachment to go: the queue expires that long after its detach. */
  lastTtl: number
  /** When the next refresh is due (ms since the epoch); set through `Attachments.setDue`. */
  due: number
  /** Its place in the due heap (-1: not in it; see DueHeap). */
  heapIndex: number
  /**
   * What its last attach or refresh sent: the horizon the keys got (ms; the next refresh is due a third of
   * it after that call) and its TTL then (a detach gives the queue at least that).
   */
  sentHorizon: number
  sentTtl: number
  /** The first attach, until Redis answered it. */
  attaching?: Promise<boolean>
  /** A detach waiting to be sent. */
  detaching?: Pending
  /** Fields of the info hash to drop with the detach (idempotency records of producers and readers that are done). */
  forget: string[]
  /** Streams of this bus reading and writing the queue, and the roles Redis was last told of. */
  readers: number
  writers: number
  rolesSent: string
  /** When this queue was last sent to the registry (ms, this clock); 0: not yet. Objects are not registered. */
  registeredAt: number
}

/** What a handle attaches as: a reader or writer stream, or neither (a handle, a lingering reader). */
export type AttachRole = 'reader' | 'writer' | undefined

interface Pending {
  entry: Entry
  op: HeartbeatOp
  resolve: (existed: boolean) => void
  reject: (err: Error) => void
}

function ttlOf (e: Entry): number {
  return e.ttls.length > 0 ? Math.max(...e.ttls) : e.lastTtl
}

function rolesOf (e: Entry): string {
  return e.readers + e.writers === 0 ? '' : `r${e.readers}w${e.writers}`
}

/**
 * The attachments of one bus to the queues of one shard, and their heartbeat. While a queue is
 * attached, its keys' TTLs are refreshed every `ttl / 3`. Persisted objects kept alive
 * (`object.keepAlive()`) are entries of the same kind (`KeepAliveKeys.kind` says which): refreshed in the
 * same calls, counted the same way, without an attachment field (the script only extends their TTL).
 *
 * However many queues are attached, one call refreshes up to {@link HEARTBEAT_BATCH} of them
 * (heartbeat.lua; due times are kept in a heap). Calls go out in rounds, a round only once the previous
 * one is answered (rounds never overlap; Redis serves other clients between two calls): a few calls while
 * refreshes are on time, every refresh already due (up to {@link HEARTBEAT_ROUND}) once they run late.
 * Attaches and detaches made in the same tick share calls too. On a Redis Cluster,
 * whose queues each have their own slot, a batch is sent as one call per queue, pipelined.
 *
 * Calls also write the shard's registry of live queues (lib/keys.ts `registryKey`): each queue about
 * once per ttl (on attach, detach, and the first refresh a ttl after it was last sent; scored with a
 * horizon of two ttls), with one ZADD per call for the queues of the batch that are due, so most
 * refreshes cost the registry nothing. On a Cluster, whose registry is in a slot of its own, they go in
 * one more call per batch (register-1.lua). The roles of this bus on a queue (how many of its streams read and write it) go
 * with the next call after they change, so refreshes of queues whose roles did not change cost nothing
 * more.
 */
export class Attachments {
  private readonly shard: Shard
  /** Where heartbeat calls go: the shard's side connection (see Shard.evalSideScript). */
  private readonly target: ScriptTarget
  private readonly clientId: string
  private readonly perQueue: boolean
  private readonly registry?: string
  /** Refreshes per second at most (the bus option `heartbeatRate`). */
  private readonly rate: number
  /** Refreshes that may go now (a token bucket: `rate` per second, at most one second's worth saved up). */
  private tokens: number
  private tokensAt = Date.now()
  private readonly entries = new Map<string, Entry>()
  /** The entries whose refresh is due some time, earliest first. */
  private readonly dues = new DueHeap<Entry>()
  private queue: Pending[] = []
  private running = false
  private timer?: NodeJS.Timeout
  private timerAt = Infinity
  private closed = false

  constructor (shard: Shard, clientId: string, options: { perQueueCalls?: boolean, registry?: string, rate?: number } = {}) {
    this.shard = shard
    this.target = { evalScript: (command, args, options) => shard.evalSideScript(command, args, options) }
    this.clientId = clientId
    this.perQueue = options.perQueueCalls ?? false
    this.registry = options.registry
    this.rate = Math.max(1, options.rate ?? HEARTBEAT_RATE)
    this.tokens = this.rate
  }

  /** Queues attached now. */
  get size (): number {
    return this.entries.size
  }

  /** How often an entry is refreshed now (see {@link refreshPeriod}). */
  private periodOf (e: Entry): number {
    return refreshPeriod(ttlOf(e), this.entries.size, this.rate)
  }

  /** What a refresh gives an entry's keys now (see {@link refreshHold}). */
  private horizonOf (e: Entry): number {
    return refreshHold(ttlOf(e), this.periodOf(e))
  }

  /**
   * Attaches one handle to the queue (attachments of one bus to one queue are counted, so the queue stays
   * attached until the last of them detaches). Resolves with true when the queue existed before.
   */
  attach (keys: KeepAliveKeys, ttl: number, role?: AttachRole): Promise<boolean> {
    if (this.closed) return Promise.reject(new BusClosedError())
    const entry = this.entries.get(keys.head)
    if (entry) {
      countRole(entry, role, 1)
      entry.ttls.push(ttl)
      const pending = entry.detaching
      if (pending && this.queue.includes(pending)) {
        // Re-attached before the detach went out (maybe before the first attach was answered): it never
        // needs to.
        this.queue = this.queue.filter((p) => p !== pending)
        entry.detaching = undefined
        pending.resolve(true)
      }
      if (entry.attaching) return entry.attaching.then(() => true)
      // Refresh now: the detach may have been sent, or this attachment has a shorter TTL.
      this.setDue(entry, Date.now())
      this.kick()
      return Promise.resolve(true)
    }
    const fresh: Entry = {
      keys, ttls: [ttl], lastTtl: ttl, due: Infinity, heapIndex: -1, sentHorizon: ttl, sentTtl: ttl, forget: [], readers: 0, writers: 0, rolesSent: '', registeredAt: 0
    }
    countRole(fresh, role, 1)
    this.entries.set(keys.head, fresh)
    fresh.attaching = this.enqueue(fresh, 'attach').finally(() => { fresh.attaching = undefined })
    return fresh.attaching
  }

  /**
   * Drops one handle's attachment with `ttl`. When the queue has none left, the client detaches from it
   * (and the info-hash fields in `forget`, idempotency records of producers and readers that are done,
   * are dropped); its keys then expire `ttl` after this.
   */
  async detach (keys: KeepAliveKeys, ttl: number, forget: string[] = [], role?: AttachRole): Promise<void> {
    const entry = this.entries.get(keys.head)
    if (!entry) return
    entry.forget.push(...forget)
    const i = entry.ttls.indexOf(ttl)
    entry.ttls.splice(i < 0 ? 0 : i, 1)
    countRole(entry, role, -1)
    if (entry.ttls.length > 0) {
      if (role !== undefined && entry.due !== Infinity) {
        // Tell Redis of the roles left with the next call.
        this.setDue(entry, Date.now())
        this.kick()
      }
      return
    }
    entry.lastTtl = ttl
    this.setDue(entry, Infinity)
    const done = this.enqueue(entry, 'detach')
    entry.detaching = this.queue[this.queue.length - 1]
    await done
  }

  private enqueue (entry: Entry, op: HeartbeatOp): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ entry, op, resolve, reject })
      this.kick()
    })
  }

  private kick (): void {
    if (this.running || this.closed) return
    this.running = true
    setImmediate(() => { this.pump().catch((err: Error) => debug('%s heartbeat failed: %s', this.shard.id, err.message)) })
  }

  /** Sends what is waiting, one round at a time: attaches and detaches first, then the refreshes due. */
  private async pump (): Promise<void> {
    try {
      let opsLast = false
      for (;;) {
        if (this.closed) return
        // Attaches and detaches first, but refreshes already due take turns with them: a stream of
        // attaches (thousands of queues opened at once) never starves the queues attached, nor the
        // other way round; refreshes that run late go in larger calls (see takeDue).
        const due = opsLast ? this.takeDue(true) : []
        const ops = due.length === 0 ? this.takeOps() : undefined
        if (ops) {
          opsLast = true
          await inCalls(ops.batch, async (batch) => await this.sendOps(ops.op, batch))
          continue
        }
        opsLast = false
        const beats = due.length > 0 ? due : this.takeDue(false)
        if (beats.length === 0) return
        await this.sendBeats(beats)
      }
    } finally {
      this.running = false
      this.schedule()
    }
  }

  private takeOps (): { op: HeartbeatOp, batch: Pending[] } | undefined {
    if (this.queue.length === 0) return undefined
    // The run of one kind at the head of the queue: a look at the whole queue per round would make
    // closing a bus with 100,000 attached queues quadratic.
    const op = this.queue[0].op
    let n = 1
    while (n < this.queue.length && n < HEARTBEAT_BATCH * OPS_CALLS && this.queue[n].op === op) n++
    return { op, batch: this.queue.splice(0, n) }
  }

  private async sendOps (op: HeartbeatOp, pending: Pending[]): Promise<void> {
    // Queues first: the script registers the first `registered` entries of a call, and objects never.
    const batch = [...pending.filter((p) => listed(p.entry)), ...pending.filter((p) => !listed(p.entry))]
    const queues = batch.map((p) => this.describe(p.entry, op === 'detach'))
    const sent = Date.now()
    let registered = 0
    for (const p of batch) {
      if (!listed(p.entry)) break
      p.entry.registeredAt = sent
      registered++
    }
    try {
      const existed = await this.call(op, queues, registered)
      const now = Date.now()
      batch.forEach((p, i) => {
        if (op === 'detach') {
          p.entry.detaching = undefined
          if (this.entries.get(p.entry.keys.head) === p.entry && p.entry.due === Infinity) this.entries.delete(p.entry.keys.head)
          p.entry.forget = []
        } else if (p.entry.ttls.length > 0 && p.entry.detaching === undefined) {
          // (Detached again while this attach was on its way: the detach queued after it decides.)
          this.setDue(p.entry, now + nextAfter(p.entry))
        }
        p.resolve(existed[i] === 1)
      })
    } catch (err) {
      for (const p of batch) {
        if (op === 'attach' && this.entries.get(p.entry.keys.head) === p.entry) this.entries.delete(p.entry.keys.head)
        if (op === 'detach') {
          p.entry.detaching = undefined
          if (this.entries.get(p.entry.keys.head) === p.entry && p.entry.due === Infinity) this.entries.delete(p.entry.keys.head)
        }
        p.reject(err as Error)
      }
    }
  }

  /**
   * The refreshes to send now. Those due within the next tenth of their period go too, so that calls
   * are full and the pump wakes up about once per batch rather than once per queue; with `overdue`, only
   * those already due (between two calls of attaches). On time, a round is up to {@link CALLS_ON_TIME}
   * calls; once the earliest is late by a tenth of its period or more, it is every refresh already due (up
   * to {@link HEARTBEAT_ROUND}). Never more than the budget allows (`heartbeatRate`): with none left, the
   * round waits (see `schedule`).
   */
  private takeDue (overdue: boolean): Entry[] {
    const now = Date.now()
    this.tokens = Math.min(this.rate, this.tokens + (now - this.tokensAt) * this.rate / 1000)
    this.tokensAt = now
    const out: Entry[] = []
    const first = this.dues.peek()
    const late = first !== undefined && now - first.due >= Math.max(1, Math.floor(nextAfter(first) / 10))
    const limit = Math.min(Math.floor(this.tokens), late ? HEARTBEAT_ROUND : HEARTBEAT_BATCH * CALLS_ON_TIME)
    for (let e = first; e !== undefined && out.length < limit; e = this.dues.peek()) {
      if (e.due > now + (overdue || late ? 0 : Math.floor(nextAfter(e) / 10))) break
      this.dues.pop()
      out.push(e)
    }
    this.tokens -= out.length
    return out
  }

  /** Sets when an entry's next refresh is due (Infinity: never, it is detaching). */
  private setDue (e: Entry, due: number): void {
    if (due === Infinity) {
      e.due = due
      this.dues.delete(e)
    } else this.dues.set(e, due)
  }

  /** One round: the refreshes in calls of {@link HEARTBEAT_BATCH}, sent together; resolves once all are answered. */
  private async sendBeats (due: Entry[]): Promise<void> {
    const ok = await inCalls(due, async (batch) => await this.sendBeat(batch))
    // The shard is away: pause before the next round (the refreshes are due again in 200 ms).
    if (ok.includes(false)) await new Promise((resolve) => setTimeout(resolve, 50).unref())
  }

  private async sendBeat (due: Entry[]): Promise<boolean> {
    const started = Date.now()
    // Those due for the registry go first: the script registers the first `registered` of a batch.
    const register = (e: Entry): boolean => listed(e) && started - e.registeredAt >= this.horizonOf(e)
    const entries = [...due.filter(register), ...due.filter((e) => !register(e))]
    let registered = 0
    while (registered < entries.length && register(entries[registered])) entries[registered++].registeredAt = started
    try {
      await this.call('beat', entries.map((e) => this.describe(e, false)), registered)
      if (debug.enabled) {
        // (The entries' due times are still the ones this call answered.)
        const late = started - Math.min(...entries.map((e) => e.due))
        debug('%s refreshed %d queue(s) in %d ms, %d ms late', this.shard.id, entries.length, Date.now() - started, late)
      }
      for (const e of entries) if (e.due !== Infinity) this.setDue(e, started + nextAfter(e))
      return true
    } catch (err) {
      // The shard is away: try again soon (the keys still have what is left of their TTL).
      debug('%s refresh of %d queue(s) failed: %s', this.shard.id, entries.length, (err as Error).message)
      const retry = Date.now() + 200
      for (const e of entries) {
        if (e.due !== Infinity) this.setDue(e, Math.max(e.due, retry))
        e.rolesSent = '?'
        e.registeredAt = 0
      }
      return false
    }
  }

  private describe (e: Entry, detaching: boolean): HeartbeatEntry {
    // A detach: the TTL of the last attachment to go, and never less than what the last refresh would
    // have given without spreading (an attachment with a longer TTL that went before it).
    if (detaching) return { keys: e.keys, ttl: Math.max(ttlOf(e), e.sentTtl), forget: e.forget }
    e.sentHorizon = this.horizonOf(e)
    e.sentTtl = ttlOf(e)
    const roles = rolesOf(e)
    if (roles === e.rolesSent) return { keys: e.keys, ttl: e.sentHorizon }
    e.rolesSent = roles
    return { keys: e.keys, ttl: e.sentHorizon, roles }
  }

  /** One heartbeat call; the first `registered` queues also go to the registry. */
  private async call (op: HeartbeatOp, queues: HeartbeatEntry[], registered: number): Promise<number[]> {
    const args = { client: this.clientId, op }
    if (!this.perQueue) return await heartbeat(this.target, { ...args, queues, registry: this.registry, registered }, { idempotent: true })
    const toRegister = queues.slice(0, registered).map((q) => ({ ttl: q.ttl, member: (q.keys as QueueKeys).registryMember as string }))
    const registering = this.registry === undefined || toRegister.length === 0
      ? undefined
      : register(this.shard, { registry: this.registry, entries: toRegister }, { idempotent: true })
    const [replies] = await Promise.all([
      Promise.all(queues.map((q) => heartbeat(this.shard, { ...args, queues: [q] }, { idempotent: true }))),
      registering
    ])
    return replies.map((r) => r[0])
  }

  /** Arms one timer for the earliest refresh due (or, with the budget spent, for when a call's worth is back). */
  private schedule (): void {
    if (this.closed || this.running) return
    let next = this.dues.peek()?.due ?? Infinity
    if (next === Infinity) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.timerAt = Infinity
      return
    }
    const short = Math.min(HEARTBEAT_BATCH, this.rate) - this.tokens
    if (short > 0) next = Math.max(next, this.tokensAt + Math.ceil(short * 1000 / this.rate))
    if (this.timer && this.timerAt <= next) return
    clearTimeout(this.timer)
    this.timerAt = next
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.timerAt = Infinity
      this.kick()
    }, timerDelay(next - Date.now()))
    this.timer.unref()
  }

  /** Stops refreshing (the bus is closing; its handles detached already). */
  close (): void {
    this.closed = true
    clearTimeout(this.timer)
    this.dues.clear()
    for (const p of this.queue) p.resolve(false)
    this.queue = []
  }
}

/**
 * When an entry's next refresh is due after a call answered: a third of the horizon that call gave its
 * keys (so that a refresh may run up to two thirds of it late), whatever the period is by now.
 */
function nextAfter (e: Entry): number {
  return Math.max(5, Math.floor(e.sentHorizon / 3))
}

/** Sends `items` in calls of {@link HEARTBEAT_BATCH}, all of them at once (one round); resolves with each call's result. */
async function inCalls<T, R> (items: T[], send: (batch: T[]) => Promise<R>): Promise<R[]> {
  const calls: Array<Promise<R>> = []
  for (let i = 0; i < items.length; i += HEARTBEAT_BATCH) calls.push(send(items.slice(i, i + HEARTBEAT_BATCH)))
  return await Promise.all(calls)
}

/** Whether the registry lists this entry: queues and service request queues do, objects and the internal queues of services do not. */
function listed (e: Entry): boolean {
  return e.keys.kind === 'queue' && (e.keys as QueueKeys).registryMember !== undefined
}

function countRole (e: Entry, role: AttachRole, by: number): void {
  if (role === 'reader') e.readers = Math.max(0, e.readers + by)
  else if (role === 'writer') e.writers = Math.max(0, e.writers + by)
}
