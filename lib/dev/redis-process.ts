import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import createDebug from 'debug'
import { BusMQError } from '../errors.js'
import { LOOPBACK } from './free-port.js'
import { RespError, redisCommand } from './resp.js'

const debug = createDebug('busmq:dev')

/** redis-server's log file, in the server's dir. */
export const LOG_FILE = 'redis.log'
/** What redis-server prints before its log file is open (a bad option, …), in the server's dir. */
const STDERR_FILE = 'redis.stderr'
const READY_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 10_000
const PORT_ATTEMPTS = 5

/** A throw-away redis-server process (see lib/dev/redis-launcher.ts). */
export interface RedisServer {
  /** '127.0.0.1' */
  readonly host: string
  readonly port: number
  /** `redis://127.0.0.1:PORT` */
  readonly url: string
  /** Its own temp dir: log, AOF, nodes.conf, sentinel.conf, … */
  readonly dir: string
  /** pid of the current (or last) redis-server process. */
  readonly pid: number
  readonly alive: boolean
  readonly paused: boolean
  /** SIGTERM and wait for the exit (SIGKILL after 10 s). Does nothing when it is not running. */
  stop: () => Promise<void>
  /** SIGKILL and wait for the exit. Does nothing when it is not running. */
  kill: () => Promise<void>
  /** Starts it again on the same port, dir and arguments (stopping it first); resolves when it answers. */
  restart: () => Promise<void>
  /** SIGSTOP: the kernel still accepts connections, nothing answers them. */
  pause: () => void
  /** SIGCONT */
  resume: () => void
  /**
   * `redis-cli -h 127.0.0.1 -p PORT …args`; resolves with stdout without its trailing newlines. redis-cli
   * exits 0 on an error reply: it comes back as text ("ERR …").
   */
  cli: (...args: string[]) => Promise<string>
  /** Resolves when the current process exits, saying how (`code 0`, `signal SIGKILL`). */
  whenExited: () => Promise<string>
  /** SIGKILL, remove the dir and forget the server; it cannot be restarted. Idempotent. */
  dispose: () => Promise<void>
}

export type StartResult = 'ready' | 'port-in-use'

export interface ProcessOptions {
  /**
   * The running server keeps this process's event loop alive (`busmq dev` runs until its servers are
   * stopped). Otherwise it never does: a test process ends when its tests are done.
   */
  keepAlive?: boolean
  /** A directory holding `dir`, removed too once empty (when the last server in it is gone). */
  parentDir?: string
}

const shQuote = (s: string): string => `'${s.replace(/'/g, '\'\\\'\'')}'`

/**
 * A detached shell that waits for this process to disappear, then kills the redis-server and removes its
 * dir: the only cleanup left when this process is SIGKILLed (a runner's timeout), where no code of ours
 * runs.
 */
function spawnWatchdog (redisPid: number, dir: string, parentDir?: string): ChildProcess {
  const script =
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
    `kill -CONT ${redisPid} 2>/dev/null; kill -9 ${redisPid} 2>/dev/null; rm -rf ${shQuote(dir)}` +
    (parentDir !== undefined ? `; rmdir ${shQuote(parentDir)} 2>/dev/null` : '')
  const wd = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
  wd.on('error', () => {}) // best effort: it only matters if this process is SIGKILLed
  wd.unref()
  return wd
}

function killWatchdog (wd: ChildProcess | undefined): void {
  // A negative pid: the watchdog leads its own process group (detached), so its `sleep` goes too.
  if (wd?.pid) {
    try {
      process.kill(-wd.pid, 'SIGKILL')
    } catch {}
  }
}

function fileSize (file: string): number {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

function readFrom (file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString('utf8')
  } catch {
    return ''
  }
}

function tail (text: string, lines = 25): string {
  const t = text.trimEnd()
  return t === '' ? '(log is empty)' : t.split('\n').slice(-lines).join('\n')
}

function removeEmptyDir (dir: string | undefined): void {
  if (dir === undefined) return
  try {
    fs.rmdirSync(dir)
  } catch {} // not empty yet (another server still uses it), or gone
}

/** Every server started by this process and not yet disposed. */
const registry = new Set<RedisProcess>()
let exitHookInstalled = false

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // 'exit' handlers must be synchronous: a signal and rmSync only. The watchdogs stay as a backstop;
  // they find nothing left to do.
  process.on('exit', () => {
    for (const server of registry) server.disposeSync()
  })
}

/** Disposes every server this process started and has not disposed yet. */
export async function disposeAll (): Promise<void> {
  await Promise.all([...registry].map((s) => s.dispose()))
}

/**
 * One redis-server process, restartable on its port and dir. Cleaned up by pid three ways: `dispose()`,
 * a synchronous 'exit' hook for servers nobody disposed, and a detached watchdog shell per process for a
 * SIGKILLed parent.
 */
export class RedisProcess implements RedisServer {
  readonly host = LOOPBACK
  readonly port: number
  readonly dir: string
  readonly #argv: readonly string[]
  readonly #options: ProcessOptions
  #child: ChildProcess | undefined
  #exited: Promise<string> = Promise.resolve('not started')
  #watchdog: ChildProcess | undefined
  #paused = false
  #disposed = false

  constructor (port: number, dir: string, argv: readonly string[], options: ProcessOptions = {}) {
    this.port = port
    this.dir = dir
    this.#argv = argv
    this.#options = options
    installExitHook()
    registry.add(this)
  }

  get url (): string {
    return `redis://${LOOPBACK}:${this.port}`
  }

  get pid (): number {
    return this.#child?.pid ?? 0
  }

  get alive (): boolean {
    const c = this.#child
    return c?.pid !== undefined && c.exitCode === null && c.signalCode === null
  }

  get paused (): boolean {
    return this.alive && this.#paused
  }

  whenExited (): Promise<string> {
    return this.#exited
  }

  /** Spawns redis-server and waits until it answers; 'port-in-use' when another process has the port. */
  async start (): Promise<StartResult> {
    const mark = { log: fileSize(path.join(this.dir, LOG_FILE)), err: fileSize(path.join(this.dir, STDERR_FILE)) }
    // stderr goes to a file (not a pipe): early errors are kept without giving the event loop a handle.
    const errFd = fs.openSync(path.join(this.dir, STDERR_FILE), 'a')
    let child: ChildProcess
    try {
      // Its own process group: a Ctrl-C in a terminal reaches this process, which then stops the server
      // itself (or, killed outright, leaves it to the watchdog).
      child = spawn('redis-server', [...this.#argv], { cwd: this.dir, detached: true, stdio: ['ignore', 'ignore', errFd] })
    } finally {
      fs.closeSync(errFd)
    }
    if (!this.#options.keepAlive) child.unref()
    this.#child = child
    this.#paused = false
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve(signal !== null ? `signal ${signal}` : `code ${String(code)}`))
      child.once('error', (err) => resolve(err.message))
    })
    try {
      await once(child, 'spawn')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missingRedisServer()
      throw new BusMQError(`cannot start redis-server: ${(err as Error).message}`, 'ERR_BUSMQ_CLI_REDIS_SERVER')
    }
    killWatchdog(this.#watchdog)
    this.#watchdog = spawnWatchdog(child.pid!, this.dir, this.#options.parentDir)
    debug('redis-server pid %d on port %d in %s', child.pid, this.port, this.dir)
    return await this.#waitReady(child, mark)
  }

  async #waitReady (child: ChildProcess, mark: { log: number, err: number }): Promise<StartResult> {
    const logs = (): string =>
      readFrom(path.join(this.dir, STDERR_FILE), mark.err) + readFrom(path.join(this.dir, LOG_FILE), mark.log)
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        if (/address already in use/i.test(logs())) return 'port-in-use'
        const how = child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`
        throw new BusMQError(`redis-server on port ${this.port} exited during startup (${how}); log tail:\n${tail(logs())}`,
          'ERR_BUSMQ_CLI_REDIS_SERVER')
      }
      try {
        // INFO rather than PING: its process_id tells our server apart from a foreign one that took the
        // port while ours failed to bind it.
        const info = String(await redisCommand(this.port, ['INFO', 'server'], { timeoutMs: 500 }))
        const m = /process_id:(\d+)/.exec(info)
        if (m && Number(m[1]) === child.pid) return 'ready'
        if (m) {
          await this.#halt('SIGKILL')
          return 'port-in-use'
        }
      } catch (err) {
        if (err instanceof RespError && !/^(LOADING|BUSY)/.test(err.message)) {
          // It answers but refuses INFO (NOAUTH with --requirepass): the pid cannot be checked, so our
          // process must at least survive a short grace.
          await delay(100)
          if (child.exitCode === null && child.signalCode === null) return 'ready'
          continue
        }
      }
      await delay(50)
    }
    await this.#halt('SIGKILL')
    throw new BusMQError(`redis-server on port ${this.port} did not answer within ${READY_TIMEOUT_MS / 1000} s; log tail:\n` +
      tail(logs()), 'ERR_BUSMQ_CLI_REDIS_SERVER')
  }

  async #halt (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.#child
    if (!child || !this.alive) return
    // The child may be unref()ed; while we wait for its exit, nothing else may hold the event loop open.
    child.ref()
    let timer: NodeJS.Timeout | undefined
    try {
      // A stopped process only acts on SIGKILL: continue it so that SIGTERM is handled.
      if (this.#paused) child.kill('SIGCONT')
      this.#paused = false
      child.kill(signal)
      if (signal === 'SIGTERM') timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      await this.#exited
    } finally {
      clearTimeout(timer)
      child.unref()
    }
  }

  stop (): Promise<void> {
    return this.#halt('SIGTERM')
  }

  kill (): Promise<void> {
    return this.#halt('SIGKILL')
  }

  async restart (): Promise<void> {
    if (this.#disposed) throw new Error(`redis-server on port ${this.port} was disposed and cannot be restarted`)
    await this.stop()
    for (let attempt = 1; ; attempt++) {
      if ((await this.start()) === 'ready') return
      if (attempt >= PORT_ATTEMPTS) {
        throw new BusMQError(`cannot restart redis-server: port ${this.port} is in use`, 'ERR_BUSMQ_CLI_REDIS_SERVER')
      }
      await delay(200)
    }
  }

  pause (): void {
    if (!this.alive) throw new Error(`cannot pause redis-server on port ${this.port}: not running`)
    process.kill(this.pid, 'SIGSTOP')
    this.#paused = true
  }

  resume (): void {
    if (!this.alive || !this.#paused) return
    process.kill(this.pid, 'SIGCONT')
    this.#paused = false
  }

  cli (...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('redis-cli', ['-h', LOOPBACK, '-p', String(this.port), ...args], { timeout: 15_000, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) {
            const detail = (String(stderr) || String(stdout)).trim() || err.message
            reject(new Error(`redis-cli -p ${this.port} ${args.join(' ')} failed: ${detail}`))
          } else {
            resolve(String(stdout).replace(/(\r?\n)+$/, ''))
          }
        })
    })
  }

  async dispose (): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    await this.#halt('SIGKILL')
    await fsp.rm(this.dir, { recursive: true, force: true })
    this.forget()
    removeEmptyDir(this.#options.parentDir)
  }

  /** Drops the watchdog and the registry entry, leaving the dir alone (a start that lost its port). */
  forget (): void {
    killWatchdog(this.#watchdog)
    this.#watchdog = undefined
    registry.delete(this)
  }

  /** For the 'exit' hook: a synchronous SIGKILL and rm. */
  disposeSync (): void {
    this.#disposed = true
    if (this.alive) {
      try {
        if (this.#paused) process.kill(this.pid, 'SIGCONT')
        process.kill(this.pid, 'SIGKILL')
      } catch {}
    }
    try {
      fs.rmSync(this.dir, { recursive: true, force: true })
    } catch {}
    registry.delete(this)
    removeEmptyDir(this.#options.parentDir)
  }
}

export function missingRedisServer (): BusMQError {
  return new BusMQError('redis-server not found on PATH: install Redis >= 6.2 (Debian/Ubuntu: apt-get install ' +
    'redis-server; macOS: brew install redis)', 'ERR_BUSMQ_CLI_NO_REDIS_SERVER')
}
