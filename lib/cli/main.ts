import { readFileSync } from 'node:fs'
import { COMMON_HELP, parseCommandArgs } from './args.js'
import type { Command } from './command.js'
import { UsageError } from './usage-error.js'
import { explainError, flushed } from './session.js'
import { push } from './push.js'
import { pull } from './pull.js'
import { tunnel } from './tunnel.js'
import { stat } from './stat.js'
import { request } from './request.js'
import { dev } from './dev.js'
import { dashboard } from './dashboard.js'
import { federate } from './federate.js'

/** Exit codes: a command ran to its end (also after Ctrl-C/SIGTERM, which end cleanly), failed, or was misused. */
export const EXIT_OK = 0
export const EXIT_ERROR = 1
export const EXIT_USAGE = 2

const COMMANDS: Command[] = [push, pull, request, tunnel, stat, dashboard, federate, dev]
/** Common options that take a value, so that `busmq --redis URL push q` finds the command. */
const VALUE_OPTIONS = new Set(['--redis', '--prefix', '--timeout'])

function version (): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'))
    return String(pkg.version)
  } catch {
    return 'unknown'
  }
}

function mainHelp (): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return `Usage: busmq <command> [options]

BusMQ on the command line: pipe bytes, lines and JSON through Redis-backed queues, call services,
forward TCP ports through channels, watch queues and services, run local Redis shards.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

  busmq push jobs --lines < jobs.txt        busmq pull jobs --lines --until-empty
  busmq push backup --end < db.tar.gz       busmq pull backup --until-end > db.tar.gz
  busmq dev --shards 2                      busmq stat --watch
  busmq request thumbnails '{"file":"a.jpg"}'

${COMMON_HELP}
  -V, --version       print the version

Environment: BUSMQ_REDIS is the default of --redis (URL[,URL…]).
Exit codes: 0 done (Ctrl-C and SIGTERM end cleanly, with 0; a second one exits at once with 130),
1 runtime error ("busmq: <message> (<code>)"), 2 usage error.
Run "busmq <command> --help" for a command's options.`
}

/** Splits argv into the command and the rest; options may come before the command. */
function findCommand (argv: string[]): { name?: string, rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') break
    if (VALUE_OPTIONS.has(a)) {
      i++
      continue
    }
    if (a.startsWith('-')) continue
    return { name: a, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] }
  }
  return { rest: argv }
}

function describe (err: unknown, debug: boolean): string {
  const e = err as NodeJS.ErrnoException
  const message = e instanceof Error ? e.message.split('\n')[0] : String(err)
  const code = e instanceof Error ? (e.code ?? e.name) : 'ERR_BUSMQ'
  let text = `busmq: ${message} (${code})`
  if (debug && e instanceof Error) {
    text += `\n${e.stack ?? ''}`
    for (let cause = e.cause as Error | undefined; cause instanceof Error; cause = cause.cause as Error | undefined) {
      text += `\ncaused by: ${cause.stack ?? cause.message}`
    }
  }
  return text
}

/** Runs `busmq <argv>` and resolves with the exit code; output goes to stdout and stderr. */
export async function main (argv: string[]): Promise<number> {
  const debug = argv.includes('--debug')
  let command: Command | undefined
  try {
    const { name, rest } = findCommand(argv)
    if (name === undefined) {
      if (rest.includes('-V') || rest.includes('--version')) {
        console.log(version())
        return EXIT_OK
      }
      if (rest.includes('-h') || rest.includes('--help')) {
        console.log(mainHelp())
        return EXIT_OK
      }
      const option = rest.find((a) => a.startsWith('-') && !['--debug', '-q', '--quiet'].includes(a) && !VALUE_OPTIONS.has(a))
      throw new UsageError(option !== undefined ? `unknown option ${option}` : 'missing command')
    }
    command = COMMANDS.find((c) => c.name === name)
    if (command === undefined) throw new UsageError(`unknown command ${JSON.stringify(name)}`)
    const args = parseCommandArgs(command.name, command.options, command.preprocess ? command.preprocess(rest) : rest)
    if (args.help) {
      console.log(`${command.help}\n\n${COMMON_HELP}`)
      return EXIT_OK
    }
    return await command.run(args)
  } catch (err) {
    if (err instanceof UsageError) {
      const where = err.command || command?.name
      process.stderr.write(`busmq: ${err.message} (try "busmq${where ? ` ${where}` : ''} --help")\n`)
      return EXIT_USAGE
    }
    process.stderr.write(`${describe(explainError(err), debug)}\n`)
    return EXIT_ERROR
  }
}

/** The executable: runs main, lets stdout and stderr drain, and exits with its code. */
export async function run (argv = process.argv.slice(2)): Promise<void> {
  // A reader that went away (EPIPE) must not crash the process; pull handles it itself.
  process.stdout.on('error', () => {})
  const code = await main(argv)
  await Promise.all([flushed(process.stdout), flushed(process.stderr)])
  process.exit(code)
}
