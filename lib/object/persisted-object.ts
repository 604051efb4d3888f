import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { Shard } from '../router/shard.js'
import { ObjectKeys, OBJECT_FIELD_PREFIX } from '../keys.js'
import { checkInt } from '../names.js'
import { ConflictError, InvalidOptionError, MessageTooLargeError } from '../errors.js'
import { checkCodec, encodeMessage, jsonCodec, type Codec } from '../queue/codec.js'
import { objectSave, publish } from '../scripts/index.js'
import { checkField, decodeFields } from './fields.js'
import { ObjectChangeStream } from './change-stream.js'
import {
  DEFAULT_OBJECT_OPTIONS, type ChangeStreamOptions, type ObjectOptions, type SaveOptions
} from './object-options.js'

const debug = createDebug('busmq:object')

/** A field's pending deletion, in the map of unsaved changes. */
const DELETED = Symbol('deleted')

/**
 * A named object stored on the bus: one Redis hash on the shard its name is located on, with a version
 * that every save increments. Cheap to create; it reaches Redis only when used.
 *
 * `set()` and `unset()` record changes on this handle; `save()` writes only the fields changed since the
 * last save, atomically, and can be made conditional on the version (optimistic concurrency). `load()`
 * reads every field. Values are encoded one field at a time with JSON (or the `codec` option). An object
 * expires `ttl` ms after its last save unless some handle keeps it alive. `T` is the type of its
 * fields (types only: nothing checks them at run time).
 */
export class PersistedObject<T extends Record<string, any> = Record<string, any>> {
  readonly name: string
  /** @internal */
  readonly bus: Bus
  /** @internal */
  readonly keys: ObjectKeys
  /** ms after its last save (or refresh while kept alive) after which the object expires. */
  readonly ttl: number
  readonly codec: Codec
  /** How many of the latest saves the change log keeps. */
  readonly changeLog: number
  /** The version seen by the last `load()` or `save()` of this handle (0: none, or the object did not exist). */
  version = 0
  /** @internal The incarnation seen with `version` ('' when none): a new one each time the object is created. */
  incarnation = ''
  /** @internal Whether `load()` or `save()` has told this handle where the object is (change streams start there). */
  seen = false
  private readonly changes = new Map<string, unknown>()
  private shardP?: Promise<Shard>
  /** Saves of this handle run one at a time, so each sends only what the previous one left unsaved. */
  private saving: Promise<unknown> = Promise.resolve()
  private kept = false
  /** keepAlive() and release() in the order they were called. */
  private keeping: Promise<void> = Promise.resolve()
  private untrack?: () => void

  /** @internal Use `bus.object(name, options)`. */
  constructor (bus: Bus, name: string, options: ObjectOptions = {}) {
    this.bus = bus
    this.name = name
    this.keys = new ObjectKeys(bus.settings.prefix, name)
    this.ttl = checkInt(options.ttl ?? bus.settings.ttl, 'ttl', 10)
    this.codec = checkCodec(options.codec) ?? jsonCodec
    this.changeLog = checkInt(options.changeLog ?? DEFAULT_OBJECT_OPTIONS.changeLog, 'changeLog', 1, 1_000_000)
  }

  /** @internal The shard holding the object (where its hash is, else the owner of its name). */
  shard (): Promise<Shard> {
    this.shardP ??= (async () => {
      await this.bus.connect()
      const shard = await this.bus.router.locate(this.name, [this.keys.hash])
      debug('object %s on shard %s', this.name, shard.id)
      return shard
    })().catch((err) => {
      this.shardP = undefined
      throw err
    })
    return this.shardP
  }

  /**
   * Reads every stored field: resolves with them (a plain object of decoded values), or `null` when the
   * object does not exist. Sets `version`. Unsaved changes of this handle are kept (see `discard()`).
   */
  async load (): Promise<Partial<T> | null> {
    const shard = await this.shard()
    // Every stored name carries a prefix (f:, or is v or n), so none of them is special to this object.
    const all = await shard.run((c) => c.hgetallBuffer(this.keys.hash))
    const pairs: Array<[string, Buffer]> = []
    let version = 0
    let incarnation = ''
    for (const [field, value] of Object.entries(all)) {
      if (field.startsWith(OBJECT_FIELD_PREFIX)) pairs.push([field.slice(OBJECT_FIELD_PREFIX.length), value])
      else if (field === 'v') version = Number(value.toString())
      else if (field === 'n') incarnation = value.toString()
    }
    this.version = version
    this.incarnation = incarnation
    this.seen = true
    if (incarnation === '' && pairs.length === 0) return null
    return decodeFields(pairs, this.codec, `object ${this.name}`, (field) => this.skipped(field)) as Partial<T>
  }

  /** @internal A reserved field name found in Redis was skipped. */
  skipped (field: string): void {
    this.bus.log.warn(`object ${this.name}: skipped its field ${JSON.stringify(field)}, which no BusMQ save writes ` +
      '(it would reach the prototype)')
  }

  /**
   * Records changes to save: each field given gets its value (`undefined` deletes the field, like
   * `unset()`). Nothing is sent until `save()`. Field names `__proto__`, `constructor` and `prototype`
   * are refused with `ERR_BUSMQ_INVALID_NAME`.
   */
  set (fields: Partial<T>): this {
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      throw new InvalidOptionError('set() takes an object of fields')
    }
    const entries = Object.entries(fields)
    for (const [field] of entries) checkField(field)
    for (const [field, value] of entries) this.changes.set(field, value === undefined ? DELETED : value)
    return this
  }

  /** Records the deletion of fields, saved by the next `save()`. */
  unset (...fields: Array<keyof T & string>): this {
    for (const field of fields) checkField(field)
    for (const field of fields) this.changes.set(field, DELETED)
    return this
  }

  /** Names of the fields changed on this handle and not saved yet. */
  get pending (): string[] {
    return [...this.changes.keys()]
  }

  /** Drops the unsaved changes of this handle. */
  discard (): void {
    this.changes.clear()
  }

  /**
   * Writes the fields changed since the last save, all or nothing, and resolves with the object's new
   * version (its current one when there was nothing to save). With `ifVersion`, only if the object is
   * still at that version (0: does not exist yet): otherwise rejects with `ERR_BUSMQ_CONFLICT` and
   * writes nothing (the changes stay pending: `load()`, then `set()` again or `discard()`). A value the
   * codec cannot encode rejects with `ERR_BUSMQ_ENCODE` before anything is sent. Every save, from any
   * process, reaches the object's change streams.
   */
  save (options: SaveOptions = {}): Promise<number> {
    let ifVersion: number | undefined
    try {
      ifVersion = options.ifVersion === undefined ? undefined : checkInt(options.ifVersion, 'ifVersion', 0)
    } catch (err) {
      return Promise.reject(err)
    }
    const run = this.saving.then(() => this.write(ifVersion))
    this.saving = run.catch(() => {})
    return run
  }

  private async write (ifVersion: number | undefined): Promise<number> {
    const sent = new Map(this.changes)
    if (sent.size > DEFAULT_OBJECT_OPTIONS.maxFieldsPerSave) {
      throw new InvalidOptionError(`a save may change at most ${DEFAULT_OBJECT_OPTIONS.maxFieldsPerSave} fields; ` +
        `${sent.size} are pending on object ${this.name}`)
    }
    const set: Array<[string, Buffer]> = []
    const deleted: string[] = []
    let bytes = 0
    for (const [field, value] of sent) {
      if (value === DELETED) {
        deleted.push(field)
        continue
      }
      // Throws ERR_BUSMQ_ENCODE, naming nothing written.
      const encoded = encodeMessage(value, true, this.codec)
      bytes += encoded.length
      set.push([field, encoded])
    }
    const max = this.bus.settings.maxMessageSize
    if (bytes > max) {
      throw new MessageTooLargeError(`a save of object ${this.name} of ${bytes} bytes is over maxMessageSize (${max} bytes)`)
    }
    const shard = await this.shard()
    const [status, version, incarnation] = await objectSave(shard, this.keys, {
      ttl: this.ttl, ifVersion, logLength: this.changeLog, set, deleted
    })
    if (status < 0) {
      throw new ConflictError(`object ${this.name} is at version ${version}, not ${ifVersion}: someone saved it since; nothing was written`,
        { version })
    }
    this.version = version
    this.incarnation = incarnation
    this.seen = true
    // Changes made while the save was in flight stay pending.
    for (const [field, value] of sent) if (this.changes.get(field) === value) this.changes.delete(field)
    return version
  }

  /**
   * Keeps the object alive: while kept, its keys' TTL is refreshed every `ttl / 3` (in the bus's batched
   * heartbeat), so it does not expire however long nobody saves it. An object that does not exist yet is
   * not created. Until `release()` or `bus.close()`.
   */
  keepAlive (): void {
    if (this.kept) return
    this.bus.assertOpen()
    this.kept = true
    this.untrack ??= this.bus.track(this)
    this.keeping = this.keeping.then(async () => {
      await this.bus.attachments(await this.shard()).attach(this.keys, this.ttl)
    }).catch((err: Error) => this.bus.log.warn(`object ${this.name}: keepAlive() failed: ${err.message}`))
  }

  /** Stops keeping the object alive: it expires `ttl` ms from now unless saved or kept alive again. */
  release (): void {
    if (!this.kept) return
    this.kept = false
    this.untrack?.()
    this.untrack = undefined
    this.keeping = this.keeping.then(async () => {
      await this.bus.attachments(await this.shard()).detach(this.keys, this.ttl)
    }).catch((err: Error) => debug('object %s: release failed: %s', this.name, err.message))
  }

  /**
   * A Readable of the object's saves, from any process: one `{ version, fields, deleted, resync }` per
   * save, every version in order (see `ObjectChange` for what a stream that fell behind the change log
   * gets). It never ends by itself.
   */
  createChangeStream (options: ChangeStreamOptions = {}): ObjectChangeStream<T> {
    this.bus.assertOpen()
    return new ObjectChangeStream<T>(this, options)
  }

  /** Whether the object exists (it was saved and has not expired or been deleted). */
  async exists (): Promise<boolean> {
    return (await (await this.shard()).run((c) => c.exists(this.keys.hash))) > 0
  }

  /** ms until the object expires if nobody saves it or keeps it alive; -2 when it does not exist. */
  async ttlLeft (): Promise<number> {
    return await (await this.shard()).run((c) => c.pttl(this.keys.hash))
  }

  /**
   * Deletes the object and its change log; its change streams get an empty resync (version 0). The
   * next save creates it anew, at version 1. Resolves with whether it existed.
   */
  async delete (): Promise<boolean> {
    const shard = await this.shard()
    const deleted = await shard.run((c) => c.del(...this.keys.all()))
    this.version = 0
    this.incarnation = ''
    // Change streams look at once (they would anyway within pollInterval).
    await publish(shard, { channel: this.keys.wake, payload: Buffer.from('d') })
    return deleted > 0
  }

  /** @internal Closes the handle with the bus: stops keeping the object alive. */
  async close (): Promise<void> {
    this.release()
    await this.keeping
  }
}
