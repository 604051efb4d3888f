import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Pipeline, type Redis, type Cluster } from 'ioredis'
import type { KeepAliveKeys, ObjectKeys, QueueKeys } from '../keys.js'

/**
 * The TypeScript side of every Lua script: one typed function per script, with named keys (taken from
 * {@link QueueKeys}) and named arguments, in the order of the script's header comment. Nothing else in
 * lib/ passes keys or arguments to a script by position.
 *
 * Scripts live beside this file as `<name>-<numberOfKeys>.lua` (or `<name>.lua` when the number of keys
 * varies) and are registered from the explicit list below, once per connection, with ioredis
 * `defineCommand`: written as they are made (the shard corks the socket per turn of the event loop: see
 * Shard.corkTurn), sent as EVAL the first time on each socket (a new, restarted or
 * failed-over server has the script before any EVALSHA of that socket, so no call is answered NOSCRIPT
 * and sent again after a later one) and as EVALSHA after.
 */

type Arg = string | Buffer | number

/** What runs a registered script: a shard, which adds deadlines, retries and coded errors. */
export interface ScriptTarget {
  evalScript: (command: string, args: Arg[], options?: ScriptCallOptions) => Promise<unknown>
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

interface ScriptSource { command: string, numberOfKeys?: number, lua: string }

/** `push-2` → script `push` with 2 keys. */
function parseFile (file: string): { name: string, numberOfKeys?: number } {
  const m = /^(.+?)(?:-(\d+))?$/.exec(file)!
  return { name: m[1].replace(/-/g, '_'), numberOfKeys: m[2] === undefined ? undefined : Number(m[2]) }
}

let sources: Map<ScriptFile, ScriptSource> | undefined

/** Replaces each `--@include <name>` line with `includes/<name>.lua`, so scripts share helpers. */
function expandIncludes (lua: string, dir: URL): string {
  return lua.replace(/^--@include (\S+)$/gm, (_, name: string) =>
    readFileSync(new URL(`includes/${name}.lua`, dir), 'utf8'))
}

/**
 * Every script, read once per process. Its command is `busmq_<name>_<first 8 hex digits of its SHA1>`:
 * the registrations are shared through ioredis's `Pipeline.prototype` (see {@link shareWithPipelines}),
 * so two copies of this package in one process, with scripts that differ, must not share a name.
 */
function loadSources (): Map<ScriptFile, ScriptSource> {
  if (sources) return sources
  const dir = new URL('./', import.meta.url)
  sources = new Map(SCRIPT_FILES.map((file) => {
    const { name, numberOfKeys } = parseFile(file)
    const lua = expandIncludes(readFileSync(new URL(`${file}.lua`, dir), 'utf8'), dir)
    const command = `busmq_${name}_${createHash('sha1').update(lua).digest('hex').slice(0, 8)}`
    return [file, { command, numberOfKeys, lua }]
  }))
  return sources
}

/** The command a script is registered as. */
function commandOf (file: ScriptFile): string {
  return loadSources().get(file)!.command
}

/**
 * A script whose number of keys varies is also registered for exactly one key, as `<command>_one`: the
 * Cluster client routes a call (and groups auto-pipelined ones) by its first argument, which must then be
 * a key, not the number of keys.
 */
const ONE_KEY_SUFFIX = '_one'

/** Registers every script on a connection as its command (and `<command>Buffer`). */
export function defineScripts (client: Redis | Cluster): void {
  for (const s of loadSources().values()) {
    client.defineCommand(s.command, { lua: s.lua, numberOfKeys: s.numberOfKeys })
    if (s.numberOfKeys === undefined) client.defineCommand(s.command + ONE_KEY_SUFFIX, { lua: s.lua, numberOfKeys: 1 })
  }
  if ((client as { isCluster?: boolean }).isCluster !== true) shareWithPipelines(client as Redis)
}

type Methods = Record<string, unknown>

/**
 * ioredis copies every script registered on a client onto each pipeline it makes for it (a MULTI, and
 * with auto-pipelining, which the bus no longer uses on a single server, one per batch of commands): with 18 registrations (each also as `…Buffer`) that copy
 * cost about 13 µs of Node CPU per batch (a one-off push took 94 µs with it, 81 without). So on a single-server
 * client the registrations move: their methods onto `Pipeline.prototype` (where an auto-pipeline finds
 * them, under their `busmq_` names), off the client's list that the copy walks. Calls keep every property
 * of a registered script (EVAL first on each socket, then EVALSHA). The methods are shared
 * by every such client, which is right while they run the same scripts (a command's name carries its
 * script's hash) with the same key prefix: a client with a `keyPrefix` of its own keeps the copy.
 */
function shareWithPipelines (client: Redis): void {
  if (client.options.keyPrefix) return
  const proto = Pipeline.prototype as unknown as Methods
  const own = client as unknown as Methods
  const registered = (client as unknown as { scriptsSet: Methods }).scriptsSet
  for (const name of Object.keys(registered)) {
    if (!name.startsWith('busmq_')) continue
    for (const method of [name, `${name}Buffer`]) proto[method] ??= own[method]
    delete registered[name]
  }
}

function call<T> (target: ScriptTarget, file: ScriptFile, args: Arg[], options?: ScriptCallOptions): Promise<T> {
  const command = commandOf(file)
  return target.evalScript(options?.buffers === true ? `${command}Buffer` : command, args, options) as Promise<T>
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
  /** The producer's oldest batch still unanswered (default: batch): the script keeps the record from it on. */
  low?: number
  /** Negative maxLength: bounded, but nobody waits for room (overflow 'drop' and 'error'). */
  waitForRoom: boolean
  /** The incarnation the producer is bound to; '' = not bound yet. */
  incarnation: string
  /** The elements (see `NewElements` in lib/queue/element.ts): how many, packed in one buffer or one buffer each. */
  elements: { count: number, packed?: Buffer, separate?: Buffer[] }
}

/**
 * push-2.lua: resolves with [pushed, seq after the push, incarnation], or [-1, 0, ''] when the bound
 * incarnation was deleted. Idempotent per (producer, batch).
 */
export function push (target: ScriptTarget, k: QueueKeys, a: PushArgs, options: ScriptCallOptions = {}): Promise<[number, number, string]> {
  const maxLength = a.waitForRoom ? a.maxLength : -a.maxLength
  const batch = a.low === undefined || a.low === a.batch ? a.batch : `${a.batch}:${a.low}`
  return call(target, 'push-2', [k.messages, k.info, a.ttl, maxLength, a.retain, k.wake, a.producer, batch, a.incarnation,
    ...(a.elements.packed ? [-a.elements.count, a.elements.packed] : [a.elements.count, ...a.elements.separate!])],
  { ...options, idempotent: true })
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
  if (keys.length === 1) {
    return target.evalScript(commandOf('heartbeat') + ONE_KEY_SUFFIX, [keys[0], a.client, op, ...args], options) as Promise<number[]>
  }
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
