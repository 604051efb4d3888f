import { BusMQError } from '../errors.js'

/**
 * A bad command line: unknown command or option, a missing or malformed argument. The CLI prints its
 * one-line message with a hint to use --help and exits with code 2.
 */
export class UsageError extends BusMQError {
  /** The command whose --help to suggest (empty for `busmq` itself). */
  readonly command: string

  constructor (message: string, command = '') {
    super(message, 'ERR_BUSMQ_USAGE')
    this.name = 'UsageError'
    this.command = command
  }
}
