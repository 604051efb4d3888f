import { parseArgs, type ParseArgsConfig } from 'node:util'
import { shardIdOf } from '../bus.js'
import { validateName, validatePrefix } from '../names.js'
import { UsageError } from './usage-error.js'

/** Option declarations in `util.parseArgs` form. */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>

/** The Redis a command uses when neither `--redis` nor `BUSMQ_REDIS` says otherwise. */
export const DEFAULT_REDIS = 'redis://127.0.0.1:6379'
/** ms `bus.connect()` waits for every shard before the command fails. */
export const DEFAULT_TIMEOUT = 5000

/** Options every command takes. */
export const COMMON_OPTIONS: OptionSpec = {
  redis: { type: 'string' },
  prefix: { type: 'string' },
  timeout: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
}

/** Help text of the common options, appended to every command's help. */
export const COMMON_HELP = `Common options:
  --redis URL[,URL…]  Redis shards (one URL each); default $BUSMQ_REDIS, else ${DEFAULT_REDIS}
  --prefix PREFIX     key namespace of the bus (default busmq)
  --timeout MS        how long to wait for Redis before failing (default ${DEFAULT_TIMEOUT})
  -q, --quiet         no progress or status lines on stderr
  --debug             print stack traces of errors
  -h, --help          this help`

/** What every command gets from the common options. */
export interface CommonOptions {
  redis: string[]
  prefix?: string
  timeout: number
  quiet: boolean
  debug: boolean
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>
  positionals: string[]
  common: CommonOptions
  help: boolean
}

/** Turns `util.parseArgs` failures into one-line usage errors. */
function usageFromParseError (err: NodeJS.ErrnoException, command: string): UsageError {
  const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? ''
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return new UsageError(`unknown option ${quoted}`, command)
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const name = quoted.replace(/ <value>$/, '')
    if (/does not take an argument/.test(err.message)) return new UsageError(`option ${name} does not take a value`, command)
    return new UsageError(`option ${name} needs a value (use ${name.split(', ').pop() ?? name}=VALUE for a value starting with '-')`, command)
  }
  return new UsageError(err.message.split('\n')[0], command)
}

/** Parses a command's arguments (strictly: unknown options are usage errors) plus the common options. */
export function parseCommandArgs (command: string, options: OptionSpec, argv: string[], env = process.env): ParsedArgs {
  let parsed: { values: Record<string, string | boolean | undefined>, positionals: string[] }
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true }) as typeof parsed
  } catch (err) {
    throw usageFromParseError(err as NodeJS.ErrnoException, command)
  }
  const v = parsed.values
  const help = v.help === true
  const common: CommonOptions = {
    redis: [],
    timeout: DEFAULT_TIMEOUT,
    quiet: v.quiet === true,
    debug: v.debug === true
  }
  if (!help) {
    common.redis = parseRedisList((v.redis as string | undefined) ?? env.BUSMQ_REDIS ?? DEFAULT_REDIS,
      v.redis === undefined && env.BUSMQ_REDIS !== undefined ? 'BUSMQ_REDIS' : '--redis', command)
    if (v.prefix !== undefined) {
      try {
        common.prefix = validatePrefix(v.prefix)
      } catch (err) {
        throw new UsageError(`--prefix: ${(err as Error).message}`, command)
      }
    }
    if (v.timeout !== undefined) common.timeout = intOption(v.timeout, '--timeout', 1, 3_600_000, command)
  }
  return { values: v, positionals: parsed.positionals, common, help }
}

/** `URL[,URL…]` → a checked list of Redis URLs. */
export function parseRedisList (text: string, what: string, command: string): string[] {
  const urls = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  if (urls.length === 0) throw new UsageError(`${what} needs at least one Redis URL`, command)
  for (const url of urls) {
    try {
      shardIdOf(url)
    } catch (err) {
      throw new UsageError(`${what}: ${(err as Error).message}`, command)
    }
  }
  return urls
}

/** A decimal integer option in [min, max], or a usage error naming the option and the bad value. */
export function intOption (value: string | boolean | undefined, name: string, min: number, max: number, command: string): number {
  const text = String(value)
  const n = /^\d+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`, command)
  }
  return n
}

/** Checks the number of positional arguments; `names` describes them for the message. */
export function expectPositionals (positionals: string[], min: number, max: number, names: string, command: string): void {
  if (positionals.length < min) throw new UsageError(`missing ${names}`, command)
  if (positionals.length > max) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[max])}`, command)
  }
}

/** A queue or channel name from the command line, checked by the library's naming rules. */
export function nameArg (name: string, what: string, command: string): string {
  try {
    return validateName(name, what)
  } catch (err) {
    throw new UsageError((err as Error).message, command)
  }
}

/** Rejects options that make no sense together. */
export function exclusive (values: Record<string, unknown>, names: string[], command: string): void {
  const given = names.filter((n) => values[n] !== undefined && values[n] !== false)
  if (given.length > 1) {
    throw new UsageError(`--${given[0]} and --${given[1]} cannot be used together`, command)
  }
}
