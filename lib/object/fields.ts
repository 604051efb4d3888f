import { InvalidNameError, DecodeError } from '../errors.js'
import { decodeMessage, type Codec } from '../queue/codec.js'

/**
 * Field names that would reach an object's prototype (or pass for its constructor) when assigned:
 * `set()` refuses them, and `load()` and change streams skip them if they are found in Redis.
 */
export const RESERVED_FIELDS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

/** Longest field name, in characters. */
export const MAX_FIELD_LENGTH = 1000

/** Throws `ERR_BUSMQ_INVALID_NAME` unless `name` can be a field of a persisted object. */
export function checkField (name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_FIELD_LENGTH) {
    throw new InvalidNameError(`an object field name must be a string of 1 to ${MAX_FIELD_LENGTH} characters, got ${JSON.stringify(name)}`)
  }
  if (RESERVED_FIELDS.has(name)) {
    throw new InvalidNameError(`${JSON.stringify(name)} cannot be an object field: it would reach the object's prototype`)
  }
  return name
}

/**
 * The fields of `pairs` decoded with `codec`, as a plain object. Reserved names (written to Redis by
 * something else) are skipped and reported through `skipped`; a value the codec cannot decode fails
 * with `ERR_BUSMQ_DECODE`, naming the field.
 */
export function decodeFields (pairs: Array<[string, Buffer]>, codec: Codec, what: string,
  skipped: (field: string) => void): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [field, value] of pairs) {
    if (RESERVED_FIELDS.has(field)) {
      skipped(field)
      continue
    }
    try {
      out[field] = decodeMessage(value, true, codec)
    } catch (err) {
      const e = err as DecodeError
      e.message = `field ${JSON.stringify(field)} of ${what}: ${e.message}`
      e.payload = value
      throw e
    }
  }
  return out
}
