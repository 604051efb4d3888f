import type { Codec } from '../queue/codec.js'

/** Options of `bus.object(name, options)`. */
export interface ObjectOptions {
  /**
   * ms after its last save (or its last refresh while kept alive, `keepAlive()`) after which the object
   * expires with every key of it.
   * @default the bus's `ttl` (30000)
   */
  ttl?: number
  /**
   * Encodes and decodes each field's value.
   * @default JSON, parsed without `__proto__` keys
   */
  codec?: Codec
  /**
   * How many of the latest saves the object's change log keeps, for change streams that are behind. A
   * change stream that needs a save no longer in the log gets the whole object instead (`resync: true`).
   * @default 1000
   */
  changeLog?: number
}

/** Options of `object.save(options)`. */
export interface SaveOptions {
  /**
   * Save only if the object is at this version now (0: only if it does not exist yet); otherwise reject
   * with `ERR_BUSMQ_CONFLICT`, writing nothing.
   * @default undefined (save whatever the version)
   */
  ifVersion?: number
}

/** Options of `object.createChangeStream(options)`. */
export interface ChangeStreamOptions {
  /**
   * The version after which to start: every save with a higher version is emitted.
   * @default the version of the object's last `load()` or `save()` on this handle; before either, the
   *   version the object has when the stream is ready
   */
  after?: number
  /** Changes buffered in the Readable, and the most read in one round trip. @default 100 */
  highWaterMark?: number
}

/** What a change stream emits: one save, or (`resync: true`) the whole object. */
export interface ObjectChange<T = Record<string, any>> {
  /** The object's version after this save. */
  readonly version: number
  /** The fields this save set, with their values; with `resync`, every field of the object. */
  readonly fields: Partial<T>
  /** The fields this save deleted. */
  readonly deleted: string[]
  /**
   * True when the stream could not follow save by save (the saves it needed left the change log, or the
   * object was deleted or expired and created anew): `fields` is then the whole object at `version`
   * (empty, version 0, when it no longer exists), and replaces what came before.
   */
  readonly resync: boolean
}

export const DEFAULT_OBJECT_OPTIONS = {
  changeLog: 1000,
  changeStreamHighWaterMark: 100,
  /** Fields set and deleted by one save, at most (the change log's entry is one command). */
  maxFieldsPerSave: 2000
} as const
