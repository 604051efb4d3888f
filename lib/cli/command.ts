import type { OptionSpec, ParsedArgs } from './args.js'

/** One `busmq` command: its options, its help and what it does. */
export interface Command {
  name: string
  /** One line for the command list of `busmq --help`. */
  summary: string
  /** The full `busmq <name> --help` text (the common options are appended). */
  help: string
  /** Options besides the common ones. */
  options: OptionSpec
  /** Rewrites argv before parsing (for options whose value is optional). */
  preprocess?: (argv: string[]) => string[]
  /** Runs the command; resolves with the exit code. Throws a UsageError (exit 2) or any other error (exit 1). */
  run: (args: ParsedArgs) => Promise<number>
}
