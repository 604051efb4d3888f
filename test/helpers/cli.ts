// Runs the busmq executable (bin/busmq.js) as a child process, as a user's shell would.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

/** bin/busmq.js, from dist/test/helpers/. */
export const BIN = fileURLToPath(new URL('../../../bin/busmq.js', import.meta.url))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
  /** Wall time from spawn to exit, ms. */
  ms: number
}

export interface CliOptions {
  /** Written to stdin, which is then closed. */
  input?: Buffer | string
  /** A file to use as stdin. */
  inputFile?: string
  /** Added to the environment (BUSMQ_REDIS is removed from the inherited one first). */
  env?: NodeJS.ProcessEnv
  /** SIGKILL after this many ms (the test then fails on the signal). */
  timeout?: number
}

export function cliEnv (env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = { ...process.env }
  delete base.BUSMQ_REDIS
  return { ...base, ...env }
}

/** A running busmq process with its output collected. */
export interface CliProcess {
  child: ChildProcess
  /** stdout so far (unless stdout was left unread). */
  stdout: () => Buffer
  stderr: () => string
  /** Resolves once stderr has matched `pattern`; rejects if the process exits first or after `ms`. */
  waitForStderr: (pattern: RegExp, ms?: number) => Promise<void>
  /** Resolves when the process exits (its output may still be in transit). */
  exited: Promise<[number | null, NodeJS.Signals | null]>
  /** Resolves with the result once the process has exited and its output is read. */
  done: Promise<CliResult>
  /** Starts reading stdout when it was left unread. */
  readStdout: () => void
}

/** Starts `busmq <args>`; `readStdout: false` leaves stdout unread, so the pipe fills up. */
export function startCli (args: string[], options: CliOptions & { readStdout?: boolean } = {}): CliProcess {
  const started = Date.now()
  let stdinFd: number | undefined
  if (options.inputFile !== undefined) stdinFd = fs.openSync(options.inputFile, 'r')
  const child = spawn(process.execPath, [BIN, ...args], {
    env: cliEnv(options.env),
    stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe']
  })
  if (stdinFd !== undefined) fs.closeSync(stdinFd)
  if (child.stdin) {
    child.stdin.on('error', () => {})
    if (options.input !== undefined) child.stdin.end(options.input)
  }
  const out: Buffer[] = []
  let err = ''
  let reading = false
  // Left unread, stdout still needs a 'readable' listener: without one, node discards the output of a
  // child that exits (it resumes unconsumed stdio streams), and the test would miss what was written.
  const hold = (): void => {}
  const readStdout = (): void => {
    if (reading) return
    reading = true
    child.stdout!.off('readable', hold)
    child.stdout!.on('data', (d: Buffer) => out.push(d))
    child.stdout!.resume()
  }
  if (options.readStdout !== false) readStdout()
  else child.stdout!.on('readable', hold)
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  child.stderr!.on('data', (d) => { err += String(d) })
  const timer = options.timeout !== undefined ? setTimeout(() => child.kill('SIGKILL'), options.timeout) : undefined
  const done = (async () => {
    const [code, signal] = await once(child, 'close') as [number | null, NodeJS.Signals | null]
    clearTimeout(timer)
    return { code, signal, stdout: Buffer.concat(out), stderr: err, ms: Date.now() - started }
  })()
  const waitForStderr = (pattern: RegExp, ms = 15_000): Promise<void> => new Promise((resolve, reject) => {
    const deadline = setTimeout(() => { cleanup(); reject(new Error(`no ${pattern} on stderr within ${ms} ms: ${err}`)) }, ms)
    const check = (): void => {
      if (!pattern.test(err)) return
      cleanup()
      resolve()
    }
    const onExit = (): void => { cleanup(); reject(new Error(`busmq exited before ${pattern} on stderr: ${err}`)) }
    const cleanup = (): void => {
      clearTimeout(deadline)
      child.stderr!.off('data', check)
      child.off('exit', onExit)
    }
    child.stderr!.on('data', check)
    child.once('exit', onExit)
    check()
  })
  return { child, stdout: () => Buffer.concat(out), stderr: () => err, waitForStderr, exited, done, readStdout }
}

/** Runs `busmq <args>` to its end. */
export async function runCli (args: string[], options: CliOptions = {}): Promise<CliResult> {
  return await startCli(args, { timeout: 60_000, ...options }).done
}

export function sha256 (data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}
