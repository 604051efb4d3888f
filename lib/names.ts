import { InvalidNameError, InvalidOptionError } from './errors.js'
import { MAX_DELAY } from './util.js'

/** Longest queue, channel or pub/sub name, in characters (all allowed characters are ASCII). */
export const MAX_NAME_LENGTH = 200

/**
 * Allowed characters: ASCII letters and digits and `_ - . : @ / =`. Braces can never appear (they would
 * change the Redis Cluster hash tag), nor glob characters, spaces, control characters or anything
 * non-ASCII, so a name can never reach a key outside the bus's prefix or another queue's slot.
 */
export const NAME_PATTERN = /^[A-Za-z0-9_\-.:@/=]+$/

/** Throws {@link InvalidNameError} (`ERR_BUSMQ_INVALID_NAME`) unless `name` is a valid name. */
export function validateName (name: unknown, what = 'name'): string {
  if (typeof name !== 'string') {
    throw new InvalidNameError(`${what} must be a string, got ${typeof name}`)
  }
  if (name.length === 0) throw new InvalidNameError(`${what} must not be empty`)
  if (name.length > MAX_NAME_LENGTH) {
    throw new InvalidNameError(`${what} is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}`)
  }
  if (!NAME_PATTERN.test(name)) {
    throw new InvalidNameError(`${what} ${JSON.stringify(name)} has a character outside [A-Za-z0-9_-.:@/=]`)
  }
  return name
}

/** The key prefix follows the same rules as names, with a shorter limit. */
export function validatePrefix (prefix: unknown): string {
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 64 || !NAME_PATTERN.test(prefix)) {
    throw new InvalidOptionError(`prefix must be 1-64 characters of [A-Za-z0-9_-.:@/=], got ${JSON.stringify(prefix)}`)
  }
  return prefix
}

/** Throws {@link InvalidOptionError} unless `value` is an integer in [min, max]. */
export function checkInt (value: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${what} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

/** A duration that arms a timer (ms): an integer from `min` to {@link MAX_DELAY} (about 24.8 days). */
export function checkDelay (value: unknown, what: string, min: number): number {
  return checkInt(value, what, min, MAX_DELAY)
}
