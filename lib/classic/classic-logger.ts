import type { Logger } from '../logger.js'
import { InvalidOptionError } from '../errors.js'
import type { ClassicLog, ClassicLogLevel } from './classic-options.js'

const LEVEL: Record<ClassicLogLevel, number> = { error: 1, warning: 2, info: 3, debug: 4 }

/**
 * The native bus's logger, writing to a BusMQ 3.1 logger: `logLevel` filters, `warn` goes to the
 * logger's `warning` (or `warn`), and a level the logger lacks to its `log`. `bus.withLog()` and
 * `bus.debug()` change it after the bus was made.
 */
export class ClassicLogger implements Logger {
  target?: ClassicLog
  level = LEVEL.error

  setLevel (level: ClassicLogLevel | number): void {
    const n = typeof level === 'number' ? level : LEVEL[level]
    if (n === undefined) throw new InvalidOptionError(`logLevel must be 'error', 'warning', 'info' or 'debug', got ${String(level)}`)
    this.level = n
  }

  debug (message: string): void { this.write('debug', message) }
  info (message: string): void { this.write('info', message) }
  warn (message: string): void { this.write('warning', message) }
  error (message: string): void { this.write('error', message) }

  private write (level: ClassicLogLevel, message: string): void {
    const t = this.target
    if (!t || LEVEL[level] > this.level) return
    const f = t[level] ?? (level === 'warning' ? t.warn : undefined) ?? t.log
    if (typeof f === 'function') f.call(t, message)
  }
}
