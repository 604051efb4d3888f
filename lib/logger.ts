import createDebug from 'debug'
import { InvalidOptionError } from './errors.js'

/**
 * Where the bus reports what an operator should know (the `logger` bus option): any object with these
 * four methods, such as `console`, a pino or a winston logger. Each call gets one string.
 */
export interface Logger {
  debug: (message: string) => void
  info: (message: string) => void
  warn: (message: string) => void
  error: (message: string) => void
}

export type LogLevel = keyof Logger

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error']

/** Throws `ERR_BUSMQ_INVALID_OPTION` unless `logger` is undefined or has the four methods. */
export function checkLogger (logger: unknown): Logger | undefined {
  if (logger === undefined) return undefined
  const l = logger as Record<string, unknown>
  if (typeof l !== 'object' || l === null || LEVELS.some((level) => typeof l[level] !== 'function')) {
    throw new InvalidOptionError('logger must be an object with debug, info, warn and error methods (console, pino, winston, …)')
  }
  return logger as Logger
}

/**
 * The bus's log: every line goes to the `busmq:log` debug namespace and, when the user gave one, to
 * their logger at its level. A logger that throws is not allowed to break the bus.
 */
export class BusLog {
  private readonly logger?: Logger
  private readonly debug = createDebug('busmq:log')

  constructor (logger?: Logger) {
    this.logger = logger
  }

  log (level: LogLevel, message: string): void {
    this.debug('%s %s', level, message)
    if (!this.logger) return
    try {
      this.logger[level](`busmq: ${message}`)
    } catch (err) {
      this.debug('the logger threw: %s', (err as Error).message)
    }
  }

  info (message: string): void { this.log('info', message) }
  warn (message: string): void { this.log('warn', message) }
  error (message: string): void { this.log('error', message) }
}
