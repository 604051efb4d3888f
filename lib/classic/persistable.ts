import type { PersistedObject } from '../object/persisted-object.js'
import type { ClassicBus } from './classic-bus.js'
import type { Callback } from './util.js'

/** What `bus.persistify(name, object, properties)` adds to the object. */
export interface PersistableMethods {
  /** Saves the properties changed since the last save or load (only those); `cb(err)`. */
  save: (cb?: Callback<string>) => void
  /** Loads every persisted property, dropping unsaved changes; `cb(err, exists, id)`. */
  load: (cb?: (err: Error | null, exists?: boolean, id?: string) => void) => void
  /** Keeps the object alive in the bus (it otherwise expires `ttl` seconds after its last save). */
  persist: (ttl: number) => void
  /** Stops keeping it alive (it expires `ttl` seconds later) and forgets the loaded and unsaved values. */
  unpersist: () => void
  /** Its id in the bus: `bus:persisted:<name>`. */
  persistId: () => string
  /** The loaded or saved values, as JSON. */
  stringify: () => string
}

/** An object persistified by `bus.persistify()`. */
export type Persistable<T> = T & PersistableMethods & Record<string, any>

/** @internal Where a persistable keeps its name and properties (for `bus.federate()`). */
export const PERSISTED = Symbol('busmq.classic.persisted')

/** 3.1's expiry of a persisted object without `persist()`: 60 s after its last save. */
const DEFAULT_TTL = 60

/**
 * BusMQ 3.1's persistify over a native {@link PersistedObject}: the listed properties become accessors
 * that record changes; `save()` writes the changed ones (one atomic native save), `load()` reads them all.
 */
export function persistify<T extends object> (bus: ClassicBus, name: string, object: T, properties: readonly string[]): Persistable<T> {
  const o = object as Record<string, any>
  const id = `bus:persisted:${name}`
  let dirty: Record<string, unknown> = {}
  let values: Record<string, unknown> = {}
  let ttl = DEFAULT_TTL
  let doc: PersistedObject | undefined
  let kept = false
  const handle = (): PersistedObject => {
    doc ??= bus.native.object(name, { ttl: Math.round(ttl * 1000) })
    return doc
  }
  for (const p of properties) {
    Object.defineProperty(o, p, {
      enumerable: true,
      configurable: true,
      set (value: unknown) { dirty[p] = value },
      get () { return Object.prototype.hasOwnProperty.call(dirty, p) ? dirty[p] : values[p] }
    })
  }
  const methods: PersistableMethods = {
    save (cb) {
      const changes = dirty
      const keys = Object.keys(changes)
      if (keys.length === 0) {
        cb?.(null)
        return
      }
      const d = handle()
      d.set(changes)
      d.save().then(() => {
        for (const k of keys) {
          values[k] = changes[k]
          if (dirty[k] === changes[k]) delete dirty[k]
        }
        cb?.(null, id)
      }, (err: Error) => cb?.(err))
    },
    load (cb) {
      handle().load().then((fields) => {
        if (fields) values = { ...values, ...fields }
        dirty = {}
        cb?.(null, fields !== null, id)
      }, (err: Error) => cb?.(err))
    },
    persist (seconds) {
      if (kept) return
      kept = true
      if (seconds !== ttl) {
        ttl = seconds
        doc = undefined
      }
      handle().keepAlive()
    },
    unpersist () {
      if (kept) handle().release()
      kept = false
      dirty = {}
      values = {}
    },
    persistId: () => id,
    stringify: () => JSON.stringify(values)
  }
  for (const [k, f] of Object.entries(methods)) {
    Object.defineProperty(o, k, { value: f, enumerable: false, configurable: true, writable: true })
  }
  Object.defineProperty(o, PERSISTED, { value: { name, properties: [...properties] }, enumerable: false, configurable: true })
  if (o.id === undefined) o.id = id
  return o as Persistable<T>
}
