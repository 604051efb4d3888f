// The one way the tests wait for a condition.
import { setTimeout as delay } from 'node:timers/promises'

export interface WaitOptions {
  /** Give up (and throw) after this many ms. @default 10000 */
  timeoutMs?: number
  /** Pause between two checks. @default 20 */
  intervalMs?: number
  /** What is waited for, named in the error; a function is called only when it is needed. */
  what?: string | (() => string | Promise<string>)
}

/**
 * Checks `check` until it returns true, and resolves with true. After `timeoutMs` it throws an Error
 * naming what it waited for (and the last error `check` threw: a check that throws counts as "not yet").
 */
export async function waitFor (check: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<true> {
  const { timeoutMs = 10_000, intervalMs = 20 } = options
  // Unnamed, the wait is named by the check's own source: `() => got.length === 2`.
  const what = options.what ?? (() => check.toString().replace(/\s+/g, ' ').slice(0, 300))
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await check()) return true
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const name = typeof what === 'function' ? await what() : what
      const cause = lastError instanceof Error ? ` (the check last threw: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}${cause}`, { cause: lastError })
    }
    await delay(intervalMs)
  }
}

/**
 * {@link waitFor} under the name most tests use: `await eventually(check, ms, what)`. It throws on
 * timeout (it never resolves with false), so the older `assert.ok(await eventually(…), message)` still
 * works; its failure names the check's source, not `message`: pass `what` to name the wait.
 */
export async function eventually (
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
  what?: WaitOptions['what']
): Promise<true> {
  return await waitFor(check, { timeoutMs: ms, what })
}
