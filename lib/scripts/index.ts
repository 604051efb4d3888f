import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Redis, Cluster } from 'ioredis'
import type { KeepAliveKeys, ObjectKeys, QueueKeys } from '../keys.js'

/**
 * The TypeScript side of every Lua script: one typed function per script, with named keys (taken from
 * {@link QueueKeys}) and named arguments, in the order of the script's header comment. Nothing else in
 * lib/ passes keys or arguments to a script by position.
 *
 * Scripts live beside this file as `<name>-<numberOfKeys>.lua` (or `<name>.lua` when the number of keys
 * varies), from the explicit list below. They are called with plain EVALSHA, falling back to EVAL (which
 * loads them) after a NOSCRIPT: not registered with ioredis `defineCommand`, because ioredis copies every
 * registered script onto each pipeline it makes, and auto-pipelining makes one per batch of commands
 * (with 17 scripts that copy was ~15 µs of Node CPU per command, more than the rest of a one-off push).
 */

type Arg = string | Buffer | number

/** What runs a script: a shard, which adds deadlines, retries and coded errors (see {@link runScript}). */
export interface ScriptTarget {
  evalScript: (script: Script, args: Arg[], options?: ScriptCallOptions) => Promise<unknown>
}

/** A script: its name, source, SHA1 and number of keys (undefined: the caller passes it first). */
export interface Script {
  readonly name: string
  readonly lua: string
  readonly sha: string
  readonly numberOfKeys?: number
}

export interface ScriptCallOptions {
  /** ms before the call fails with ERR_BUSMQ_SHARD_UNAVAILABLE; 0 = never (a read that takes messages). */
  timeout?: number
  /** The call may be sent again after a connection drop (its effect is applied once). */
  idempotent?: boolean
  /** Reply bulk strings as Buffers (payloads), not strings. */
  buffers?: boolean
}

/** Every script: file name (without `.lua`) and number of keys (undefined: the caller passes it first). */
export const SCRIPT_FILES = [
  'ack-4', 'delete-14', 'heartbeat', 'object-read-2', 'object-save-2', 'pop-2', 'presence-2', 'publish-1', 'push-2',
  'range-2', 'redrive-5', 'register-1', 'renew-3', 'requeue-9', 'reserve-9', 'serve-1', 'unpop-2'
] as const

export type ScriptFile = typeof SCRIPT_FILES[number]

/** `push-2` → script `push` with 2 keys. */
function parseFile (file: string): { name: string, numberOfKeys?: number } {
  const m = /^(.+?)(?:-(\d+))?$/.exec(file)!
  return { name: m[1], numberOfKeys: m[2] === undefined ? undefined : Number(m[2]) }
}

let scripts: Map<string, Script> | undefined

/** Replaces each `--@include <name>` line with `includes/<name>.lua`, so scripts share helpers. */
function expandIncludes (lua: string, dir: URL): string {
  return lua.replace(/^--@include (\S+)$/gm, (_, name: string) =>
    readFileSync(new URL(`includes/${name}.lua`, dir), 'utf8'))
}

/** The script of `file`: every script is read (and hashed) once per process, on the first call. */
function scriptOf (file: ScriptFile): Script {
  if (!scripts) {
    const dir = new URL('./', import.meta.url)
    scripts = new Map(SCRIPT_FILES.map((f) => {
      const lua = expandIncludes(readFileSync(new URL(`${f}.lua`, dir), 'utf8'), dir)
      return [f, { ...parseFile(f), lua, sha: createHash('sha1').update(lua).digest('hex') }]
    }))
  }
  return scripts.get(file)!
}

type Caller = Record<string, (...a: unknown[]) => Promise<unknown>>

/**
 * Runs `script` on a connection: EVALSHA, and EVAL when the server does not have it cached (NOSCRIPT: a
 * new or restarted server, SCRIPT FLUSH), which caches it. `buffers`: bulk replies as Buffers.
 */
export async function runScript (client: Redis | Cluster, script: Script, args: Arg[], buffers = false): Promise<unknown> {
  const full = script.numberOfKeys === undefined ? args : [script.numberOfKeys, ...args]
  const c = client as unknown as Caller
  try {
    return await c[buffers ? 'evalshaBuffer' : 'evalsha'](script.sha, ...full)
  } catch (err) {
    if (!/^NOSCRIPT/.test((err as Error).message ?? '')) throw err
    return await c[buffers ? 'evalBuffer' : 'eval'](script.lua, ...full)
  }
}

function call<T> (target: ScriptTarget, file: ScriptFile, args: Arg[], options?: ScriptCallOptions): Promise<T> {
  return target.evalScript(scriptOf(file), args, options) as Promise<T>
}

/** A queue's keys in the order of the reliable-mode scripts (reserve-9.lua, requeue-9.lua). */
function reliableKeys (k: QueueKeys): string[] {
  const dl = k.deadLetter()
  return [k.messages, k.info, k.inflight, k.leases, k.deliveries, k.owners, dl.messages, dl.info, dl.history]
}

/**
 * Reply of pop and range: the queue's incarnation, the implicit id of the first element, then the stored
 * elements; only the incarnation when there is nothing; `[0]` when the incarnation the reader is bound
 * to was deleted.
 */
export type ElementsReply = Array<Buffer | number>

export interface PushArgs {
  ttl: number
  /** 0 = unbounded. */
  maxLength: number
  /** 0 = keep everything. */
  retain: number
  producer: string
  batch: number
  /** Negative maxLength: bounded, but nobody waits for room (overflow 'drop' and 'error'). */
  waitForRoom: boolean
  /** The incarnation the producer is bound to; '' = not bound yet. */
  incarnation: string
  elements: Buffer[]
}

/**
 * push-2.lua: resolves with [pushed, seq after the push, incarnation], or [-1, 0, ''] when the bound
 * incarnation was deleted. Idempotent per (producer, batch).
 */
export function push (target: ScriptTarget, k: QueueKeys, a: PushArgs, options: ScriptCallOptions = {}): Promise<[number, number, string]> {
  const maxLength = a.waitForRoom ? a.maxLength : -a.maxLength
  return call(target, 'push-2', [k.messages, k.info, a.ttl, maxLength, a.retain, k.wake, a.producer, a.batch, a.incarnation,
    ...a.elements], { ...options, idempotent: true })
}

/** pop-2.lua: takes up to `count` messages (never timed out: the reply holds the messages). */
export function pop (target: ScriptTarget, k: QueueKeys, a: { count: number, ttl: number, incarnation: string }): Promise<ElementsReply> {
  return call(target, 'pop-2', [k.messages, k.info, a.count, a.ttl, k.wake, a.incarnation], { timeout: 0, buffers: true })
}

/** range-2.lua: reads up to `count` messages from id `from` on without removing them. */
export function range (target: ScriptTarget, k: QueueKeys, a: { from: number, count: number, ttl: number, incarnation: string }): Promise<ElementsReply> {
  return call(target, 'range-2', [k.messages, k.info, a.from, a.count, a.ttl, a.incarnation], { timeout: 0, buffers: true })
}

/**
 * unpop-2.lua: puts elements (with-id form) back at the head, in order; resolves with the new length, or
 * -1 when their incarnation was deleted (they are dropped with it). Idempotent per (reader, give-back
 * number): sent again after a connection drop, it is stored once.
 */
export function unpop (target: ScriptTarget, k: QueueKeys, a: {
  ttl: number,
  incarnation: string,
  reader: string,
  number: number,
  elements: Buffer[]
}): Promise<number> {
  return call(target, 'unpop-2', [k.messages, k.info, a.ttl, k.wake, a.incarnation, a.reader, a.number, ...a.elements],
    { idempotent: true })
}

/** delete-14.lua: deletes every key of a queue and of its dead-letter queue; resolves with how many existed. */
export function deleteQueue (target: ScriptTarget, k: QueueKeys): Promise<number> {
  const dl = k.deadLetter()
  return call(target, 'delete-14', [...k.own(), ...dl.own(), k.wake, dl.wake])
}

export interface ReserveArgs {
  count: number
  ttl: number
  consumer: string
  lease: number
  maxDeliveries: number
  incarnation: string
}

/**
 * reserve-9.lua: [incarnation, requeued, dead-lettered, element, id, deliveries, element, id, deliveries, …],
 * or [0] when the bound incarnation was deleted. Never timed out.
 */
export function reserve (target: ScriptTarget, k: QueueKeys, a: ReserveArgs): Promise<Array<Buffer | number>> {
  return call(target, 'reserve-9', [...reliableKeys(k), a.count, a.ttl, k.wake, a.consumer, a.lease, a.maxDeliveries,
    k.deadLetter().wake, a.incarnation], { timeout: 0, buffers: true })
}

export type RequeueMode = 'release' | 'nack' | 'dead' | 'decode'

export interface RequeueArgs {
  consumer: string
  ttl: number
  maxDeliveries: number
  mode: RequeueMode
  /** How many of the first ids never reached the application (their delivery is struck). */
  undo: number
  ids: number[]
}

/** requeue-9.lua: resolves with [requeued, dead-lettered]. */
export function requeue (target: ScriptTarget, k: QueueKeys, a: RequeueArgs): Promise<[number, number]> {
  // Sent again, it finds the ids no longer owned by the consumer and changes nothing: idempotent.
  return call(target, 'requeue-9', [...reliableKeys(k), a.consumer, a.ttl, k.wake, k.deadLetter().wake, a.maxDeliveries,
    a.mode, a.undo, ...a.ids], { idempotent: true })
}

/** ack-4.lua: per id, 1 when acknowledged, 0 when this consumer no longer owned it. */
export function ack (target: ScriptTarget, k: QueueKeys, a: { consumer: string, ids: number[] }): Promise<number[]> {
  return call(target, 'ack-4', [k.inflight, k.leases, k.deliveries, k.owners, a.consumer, ...a.ids], { idempotent: true })
}

/** renew-3.lua: extends leases; resolves with the ids this consumer no longer owns. */
export function renew (target: ScriptTarget, k: QueueKeys, a: { consumer: string, lease: number, ids: number[] }): Promise<Array<string | number>> {
  return call(target, 'renew-3', [k.leases, k.inflight, k.owners, a.consumer, a.lease, ...a.ids], { idempotent: true })
}

export type HeartbeatOp = 'attach' | 'beat' | 'detach'

export interface HeartbeatEntry {
  keys: KeepAliveKeys
  ttl: number
  /** detach: fields of the info hash to drop (idempotency records of producers and readers that are done). */
  forget?: string[]
  /** This client's roles on the queue (`r<readers>w<writers>`), when they changed since the last call. */
  roles?: string
}

/**
 * heartbeat.lua: attaches, refreshes or detaches `client` on many queues (and keeps persisted objects
 * alive) of one shard in one call, and with `registry` (not on a Cluster) writes the first `registered`
 * entries (queues) to the shard's registry in the same call. With 'attach', resolves with one flag per
 * entry: 1 if it existed before.
 */
export function heartbeat (target: ScriptTarget, a: {
  client: string
  op: HeartbeatOp
  queues: HeartbeatEntry[]
  registry?: string
  registered?: number
}, options: ScriptCallOptions = {}): Promise<number[]> {
  const keys = a.queues.map((q) => q.keys.head)
  const args = a.queues.map((q) => {
    if (q.keys.kind === 'object') return `o${q.ttl}`
    let arg = q.roles === undefined ? String(q.ttl) : `${q.ttl}/${q.roles}`
    if (q.forget !== undefined && q.forget.length > 0) arg += `;${q.forget.join(';')}`
    return arg
  })
  const op = a.registry === undefined ? a.op[0] : `${a.op[0]}r${a.registered ?? a.queues.length}`
  if (a.registry !== undefined) keys.push(a.registry)
  return call(target, 'heartbeat', [keys.length, ...keys, a.client, op, ...args], options)
}

/** register-1.lua: the registry writes of one heartbeat batch on a Cluster; resolves with how many. */
export function register (target: ScriptTarget, a: { registry: string, entries: Array<{ ttl: number, member: string }> },
  options: ScriptCallOptions = {}): Promise<number> {
  const args: Array<string | number> = []
  for (const e of a.entries) args.push(e.ttl, e.member)
  return call(target, 'register-1', [a.registry, ...args], options)
}

/** redrive-5.lua: moves up to `count` dead letters back to their queue; resolves with how many moved. */
export function redrive (target: ScriptTarget, k: QueueKeys, a: { count: number, ttl: number }): Promise<number> {
  const dl = k.deadLetter()
  return call(target, 'redrive-5', [dl.messages, dl.info, dl.history, k.messages, k.info, a.count, a.ttl, k.wake])
}

/** presence-2.lua: announce (`beat`) or withdraw (`leave`) a channel peer; resolves with the other's id or null. */
export function presence (target: ScriptTarget, a: {
  own: string,
  other: string,
  instance: string,
  expiry: number,
  op: 'beat' | 'leave'
}): Promise<string | null> {
  // Presence keys double as the pub/sub channels on which each peer hears of the other.
  return call(target, 'presence-2', [a.own, a.other, a.instance, a.expiry, a.op, a.other], { idempotent: true })
}

/** publish-1.lua: plain pub/sub publish routed by the topic's slot; resolves with the receivers. */
export function publish (target: ScriptTarget, a: { channel: string, payload: Buffer }): Promise<number> {
  return call(target, 'publish-1', [a.channel, a.payload])
}

export interface ObjectSaveArgs {
  ttl: number
  /** Save only at this version (0: only if the object does not exist); undefined: unconditionally. */
  ifVersion?: number
  logLength: number
  /** Field names and their encoded values. */
  set: Array<[string, Buffer]>
  deleted: string[]
}

/**
 * object-save-2.lua: resolves with [1 saved | 0 nothing to save | -1 conflict, version, incarnation].
 * Not re-sent after a connection drop (a save that was applied would be applied twice).
 */
export function objectSave (target: ScriptTarget, k: ObjectKeys, a: ObjectSaveArgs): Promise<[number, number, string]> {
  const args: Arg[] = [k.hash, k.log, a.ttl, a.ifVersion ?? '', a.logLength, k.wake, a.set.length]
  for (const [field, value] of a.set) args.push(field, value)
  args.push(...a.deleted)
  return call(target, 'object-save-2', args)
}

/**
 * object-read-2.lua: ['c', incarnation, version, ...entries] or ['r', incarnation, version, field,
 * value, …] (a resync); bulk strings as Buffers.
 */
export function objectRead (target: ScriptTarget, k: ObjectKeys, a: { after: number, count: number, incarnation: string }): Promise<unknown[]> {
  return call(target, 'object-read-2', [k.hash, k.log, a.after, a.count, a.incarnation], { buffers: true })
}

/** serve-1.lua: a service server announces its status (`beat`) or leaves; resolves with the servers announced. */
export function serve (target: ScriptTarget, a: {
  servers: string
  server: string
  op: 'beat' | 'leave'
  ttl: number
  running: number
  concurrency: number
  reliable: boolean
  /** Requests finished recently per latency bucket (lib/service/server-status.ts); '' for none. */
  handled?: string
}): Promise<number> {
  return call(target, 'serve-1', [a.servers, a.server, a.op === 'beat' ? 'b' : 'd', a.ttl,
    `${a.running}:${a.concurrency}:${a.reliable ? 1 : 0}${a.handled ? `:${a.handled}` : ''}`], { idempotent: true })
}
