/**
 * Real-Redis test harness: starts throw-away `redis-server` processes on free
 * loopback ports, each in its own temp dir, and guarantees they are cleaned up
 * even when the test process dies abruptly.
 *
 * Cleanup happens at three levels:
 *  1. explicitly, via `server.dispose()`, `stopAllRedis()` or `useRedis()`;
 *  2. a synchronous `process.on('exit')` hook for servers a test forgot;
 *  3. a detached shell watchdog per server that outlives a SIGKILLed test
 *     process (e.g. a runner timeout), where no JS code gets to run.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { before, after } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

export const HOST = '127.0.0.1'
export const LOG_FILE = 'redis.log'
/** Anything redis-server prints before its logfile is open (e.g. config errors). */
const STDERR_FILE = 'redis.stderr'

const MIN_VERSION: readonly [number, number] = [6, 2]
const READY_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 10_000
const PORT_ATTEMPTS = 5

export interface HostPort {
  host: string;
  port: number;
}

export interface RedisOptions {
  /** Persist with AOF (`appendfsync always`) so data survives kill() + restart(). */
  appendonly?: boolean;
  /** Extra redis-server arguments, appended last (so they override defaults). */
  args?: string[];
  /** Fixed port instead of a free one. */
  port?: number;
}

export interface RedisServer extends HostPort {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** Temp dir holding the log, AOF, nodes.conf, sentinel.conf ... */
  readonly dir: string;
  /** pid of the current (or last) redis-server process. */
  readonly pid: number;
  readonly alive: boolean;
  readonly paused: boolean;
  /** SIGTERM and wait for exit (SIGKILL after 10 s). No-op if not running. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit. No-op if not running. */
  kill(): Promise<void>;
  /** Start again on the same port, dir and args (stops it first if running); resolves when it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: connections are still accepted by the kernel but never answered. */
  pause(): void;
  /** SIGCONT */
  resume(): void;
  /**
   * `redis-cli -h 127.0.0.1 -p PORT ...args`; resolves with stdout minus trailing
   * newlines. Note redis-cli exits 0 on error replies: they come back as text ("ERR ...").
   */
  cli(...args: string[]): Promise<string>;
  /** SIGKILL, remove the temp dir and forget the server. Idempotent; the server cannot be restarted. */
  dispose(): Promise<void>;
}

/** Low-level launch description, used by startRedis() and the cluster/sentinel helpers. */
export interface LaunchSpec {
  /** Fixed port; otherwise a free one is picked (and re-picked if redis cannot bind it). */
  port?: number;
  /** Full redis-server argv, once the port and temp dir are known. */
  argv(port: number, dir: string): string[];
  /** Runs before each first-start attempt (not on restart), e.g. to write a config file. */
  prepare?(port: number, dir: string): void | Promise<void>;
  /** Also require `port + busOffset` to be free (cluster bus port = port + 10000). */
  busOffset?: number;
}

// ---------------------------------------------------------------------------
// redis-server availability

let versionCheck: { version: string } | { error: Error } | undefined

function checkRedisServer (): { version: string } | { error: Error } {
  if (versionCheck) return versionCheck
  let out: string
  try {
    out = execFileSync('redis-server', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return (versionCheck = {
      error: new Error(
        e.code === 'ENOENT'
          ? 'redis-server not found on PATH: install Redis >= 6.2 (e.g. apt-get install redis-server)'
          : `redis-server --version failed: ${e.message}`
      ),
    })
  }
  const m = /v=(\d+)\.(\d+)\.(\d+)/.exec(out)
  if (!m) return (versionCheck = { error: new Error(`cannot parse the redis-server version from: ${out.trim()}`) })
  const version = `${m[1]}.${m[2]}.${m[3]}`
  const [major, minor] = [Number(m[1]), Number(m[2])]
  if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
    return (versionCheck = {
      error: new Error(
        `redis-server ${version} is older than ${MIN_VERSION.join('.')}: install Redis >= ${MIN_VERSION.join('.')} ` +
          '(streams consumer groups and the commands BusMQ relies on need it)'
      ),
    })
  }
  return (versionCheck = { version })
}

/** Version of the redis-server on PATH, e.g. "7.0.15". Throws like assertRedisServer(). */
export function redisServerVersion (): string {
  const r = checkRedisServer()
  if ('error' in r) throw r.error
  return r.version
}

/** Throws a clear Error if redis-server is missing or older than 6.2 (result is cached). */
export function assertRedisServer (): void {
  redisServerVersion()
}

// ---------------------------------------------------------------------------
// Minimal RESP client: used for readiness probes and polling without the retry
// and reconnect behaviour of a real client, which would hide what we test for.

/** An error reply (`-ERR ...`, `-NOAUTH ...`, `-LOADING ...`). */
export class RespError extends Error {
  override name = 'RespError'
}

export type RespValue = string | number | null | RespError | RespValue[]

function encodeCommand (args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.from(a, 'utf8')
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Parses one RESP2 value at `pos`; undefined if the buffer is still incomplete. */
function parseReply (buf: Buffer, pos: number): [RespValue, number] | undefined {
  const eol = buf.indexOf('\r\n', pos)
  if (eol < 0) return undefined
  const line = buf.toString('utf8', pos + 1, eol)
  const next = eol + 2
  switch (buf[pos]) {
    case 0x2b: // +
      return [line, next]
    case 0x2d: // -
      return [new RespError(line), next]
    case 0x3a: // :
      return [Number(line), next]
    case 0x24: {
      // $
      const len = Number(line)
      if (len < 0) return [null, next]
      if (buf.length < next + len + 2) return undefined
      return [buf.toString('utf8', next, next + len), next + len + 2]
    }
    case 0x2a: {
      // *
      const n = Number(line)
      if (n < 0) return [null, next]
      const items: RespValue[] = []
      let p = next
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p)
        if (!r) return undefined
        items.push(r[0])
        p = r[1]
      }
      return [items, p]
    }
    default:
      throw new Error(`unexpected RESP reply: ${JSON.stringify(buf.toString('utf8', pos, Math.min(eol, pos + 40)))}`)
  }
}

/**
 * Sends one command on a fresh connection and resolves with the reply.
 * Rejects with a RespError for an error reply, with a plain Error on timeout or
 * connection failure.
 */
export function redisCommand (
  port: number,
  args: readonly string[],
  { host = HOST, timeoutMs = 2000 }: { host?: string; timeoutMs?: number } = {}
): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    let settled = false
    const sock = net.connect({ port, host })
    const finish = (err: Error | null, value: RespValue = null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      sock.destroy()
      if (err) reject(err)
      else resolve(value)
    }
    const timer = setTimeout(
      () => finish(new Error(`no reply from ${host}:${port} to ${args[0]} within ${timeoutMs} ms`)),
      timeoutMs
    )
    sock.once('connect', () => sock.write(encodeCommand(args)))
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      let r: [RespValue, number] | undefined
      try {
        r = parseReply(buf, 0)
      } catch (err) {
        return finish(err as Error)
      }
      if (r) {
        if (r[0] instanceof RespError) finish(r[0])
        else finish(null, r[0])
      }
    })
    sock.once('error', (err) => finish(err))
    sock.once('close', () => finish(new Error(`connection to ${host}:${port} closed without a reply`)))
  })
}

/**
 * True if something answers PING within `timeoutMs`. An error reply (e.g. NOAUTH)
 * counts as an answer: the point is whether the server is responsive.
 */
export async function ping (port: number, timeoutMs = 1000, host = HOST): Promise<boolean> {
  try {
    await redisCommand(port, ['PING'], { host, timeoutMs })
    return true
  } catch (err) {
    return err instanceof RespError
  }
}

/** Polls `check` until it returns true; errors thrown by `check` count as "not yet". */
export async function waitFor (
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 100, what = 'condition' }: { timeoutMs?: number; intervalMs?: number; what?: string } = {}
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await check()) return
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`)
    }
    await delay(intervalMs)
  }
}

// ---------------------------------------------------------------------------
// Ports, logs, watchdogs

/** Ports handed out by this process, so parallel starts never pick the same one. */
const reservedPorts = new Set<number>()

function bindOnce (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(port, HOST, () => {
      const bound = (srv.address() as AddressInfo).port
      srv.close(() => resolve(bound))
    })
  })
}

async function pickPort (busOffset: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await bindOnce(0)
    const bus = busOffset ? port + busOffset : 0
    if (reservedPorts.has(port)) continue
    if (bus) {
      if (bus > 65535 || reservedPorts.has(bus)) continue
      const free = await bindOnce(bus).then(
        () => true,
        () => false
      )
      // Re-check: a parallel pick may have reserved it while we were probing.
      if (!free || reservedPorts.has(port) || reservedPorts.has(bus)) continue
      reservedPorts.add(bus)
    }
    reservedPorts.add(port)
    return port
  }
  throw new Error('could not find a free loopback port')
}

interface LogMark {
  log: number;
  err: number;
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

function logMark (dir: string): LogMark {
  return { log: fileSize(path.join(dir, LOG_FILE)), err: fileSize(path.join(dir, STDERR_FILE)) }
}

/** Log output written since `mark` (i.e. by the current process only, not earlier runs in the same dir). */
function logsSince (dir: string, mark: LogMark): string {
  return readFrom(path.join(dir, STDERR_FILE), mark.err) + readFrom(path.join(dir, LOG_FILE), mark.log)
}

function tail (text: string, lines = 25): string {
  const t = text.trimEnd()
  if (!t) return '(log is empty)'
  return t.split('\n').slice(-lines).join('\n')
}

const shQuote = (s: string): string => `'${s.replace(/'/g, '\'\\\'\'')}'`

/**
 * A detached shell that waits for this process to disappear, then kills the
 * redis-server and removes its dir. It is the only cleanup that works when the
 * test process is SIGKILLed (runner timeout): no exit hook runs then.
 */
function spawnWatchdog (redisPid: number, dir: string): ChildProcess {
  const script =
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ` +
    `kill -CONT ${redisPid} 2>/dev/null; kill -9 ${redisPid} 2>/dev/null; rm -rf ${shQuote(dir)}`
  const wd = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
  wd.on('error', () => {}) // best effort: it only matters if this process gets SIGKILLed
  wd.unref()
  return wd
}

function killWatchdog (wd: ChildProcess | undefined): void {
  // Negative pid: the watchdog is a group leader (detached), so its `sleep` goes too.
  if (wd?.pid) {
    try {
      process.kill(-wd.pid, 'SIGKILL')
    } catch {
      /* already gone */
    }
  }
}

// ---------------------------------------------------------------------------
// Server

type StartResult = 'ready' | 'port-in-use'

/** Every server started by this process and not yet disposed. */
const registry = new Set<Server>()
let exitHookInstalled = false

function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // 'exit' handlers must be synchronous: signal + rmSync only. The watchdogs
  // are left running as a backstop; they find nothing left to do.
  process.on('exit', () => {
    for (const server of registry) server.disposeSync()
  })
}

class Server implements RedisServer {
  readonly host = HOST
  readonly #argv: readonly string[]
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  #watchdog: ChildProcess | undefined
  #paused = false
  #disposed = false

  constructor (
    readonly port: number,
    readonly dir: string,
    argv: readonly string[]
  ) {
    this.#argv = argv
  }

  get url (): string {
    return `redis://${HOST}:${this.port}`
  }

  get pid (): number {
    return this.#child?.pid ?? 0
  }

  get alive (): boolean {
    const c = this.#child
    return !!c && c.pid !== undefined && c.exitCode === null && c.signalCode === null
  }

  get paused (): boolean {
    return this.alive && this.#paused
  }

  /** Spawns redis-server and waits until it answers. Internal. */
  async start (): Promise<StartResult> {
    const mark = logMark(this.dir)
    // A file descriptor (not a pipe) for stderr: keeps early errors without
    // giving the event loop a handle that would keep the test process alive.
    const errFd = fs.openSync(path.join(this.dir, STDERR_FILE), 'a')
    let child: ChildProcess
    try {
      child = spawn('redis-server', [...this.#argv], { cwd: this.dir, stdio: ['ignore', 'ignore', errFd] })
    } finally {
      fs.closeSync(errFd)
    }
    child.unref()
    this.#child = child
    this.#paused = false
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => resolve())
      child.once('error', () => resolve())
    })
    try {
      await once(child, 'spawn')
    } catch (err) {
      throw new Error(`cannot spawn redis-server: ${(err as Error).message}`)
    }
    killWatchdog(this.#watchdog)
    this.#watchdog = spawnWatchdog(child.pid!, this.dir)
    return this.#waitReady(child, mark)
  }

  async #waitReady (child: ChildProcess, mark: LogMark): Promise<StartResult> {
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const logs = logsSince(this.dir, mark)
        if (/address already in use/i.test(logs)) return 'port-in-use'
        const how = child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`
        throw new Error(`redis-server on port ${this.port} exited during startup (${how}); log tail:\n${tail(logs)}`)
      }
      try {
        // INFO rather than PING: its process_id tells our server apart from a
        // foreign one that grabbed the port while ours failed to bind it.
        const info = String(await redisCommand(this.port, ['INFO', 'server'], { timeoutMs: 500 }))
        const m = /process_id:(\d+)/.exec(info)
        if (m && Number(m[1]) === child.pid) return 'ready'
        if (m) {
          await this.#halt('SIGKILL')
          return 'port-in-use'
        }
      } catch (err) {
        if (err instanceof RespError && !/^(LOADING|BUSY)/.test(err.message)) {
          // Answers, but INFO is refused (e.g. NOAUTH with --requirepass): the pid
          // cannot be checked, so require that our process survives a short grace.
          await delay(100)
          if (child.exitCode === null && child.signalCode === null) return 'ready'
          continue
        }
      }
      await delay(50)
    }
    await this.#halt('SIGKILL')
    throw new Error(
      `redis-server on port ${this.port} did not answer PING within ${READY_TIMEOUT_MS / 1000} s; log tail:\n` +
        tail(logsSince(this.dir, mark))
    )
  }

  async #halt (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.#child
    if (!child || !this.alive) return
    // The child is unref()ed; while we wait for its exit nothing else may be
    // holding the event loop open, so hold it ourselves.
    child.ref()
    let timer: NodeJS.Timeout | undefined
    try {
      // A stopped process only acts on SIGKILL; continue it so SIGTERM is handled.
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
      if (attempt >= PORT_ATTEMPTS) throw new Error(`cannot restart redis-server: port ${this.port} is in use`)
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
      execFile(
        'redis-cli',
        ['-h', HOST, '-p', String(this.port), ...args],
        { timeout: 15_000, maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) {
            const detail = (String(stderr) || String(stdout)).trim() || err.message
            reject(new Error(`redis-cli -p ${this.port} ${args.join(' ')} failed: ${detail}`))
          } else {
            resolve(String(stdout).replace(/(\r?\n)+$/, ''))
          }
        }
      )
    })
  }

  async dispose (): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    await this.#halt('SIGKILL')
    await fsp.rm(this.dir, { recursive: true, force: true })
    this.forget()
  }

  /** Drops the watchdog and the registry entry, leaving the dir alone. Internal. */
  forget (): void {
    killWatchdog(this.#watchdog)
    this.#watchdog = undefined
    registry.delete(this)
  }

  /** For the 'exit' hook: synchronous SIGKILL + rm. Internal. */
  disposeSync (): void {
    this.#disposed = true
    if (this.alive) {
      try {
        if (this.#paused) process.kill(this.pid, 'SIGCONT')
        process.kill(this.pid, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }
    try {
      fs.rmSync(this.dir, { recursive: true, force: true })
    } catch {
      /* best effort */
    }
    registry.delete(this)
  }
}

// ---------------------------------------------------------------------------
// Public API

/**
 * Starts a redis-server described by `spec` in a fresh temp dir and resolves
 * once it answers. Building block for startRedis() and the cluster/sentinel helpers.
 */
export async function launchRedis (spec: LaunchSpec): Promise<RedisServer> {
  assertRedisServer()
  installExitHook()
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-test-'))
  for (let attempt = 1; ; attempt++) {
    let server: Server | undefined
    try {
      const port = spec.port ?? (await pickPort(spec.busOffset ?? 0))
      await spec.prepare?.(port, dir)
      server = new Server(port, dir, spec.argv(port, dir))
      registry.add(server)
      if ((await server.start()) === 'ready') return server
      // Port taken (our process is gone by now): retry in the same dir.
      server.forget()
      if (attempt >= PORT_ATTEMPTS) {
        throw new Error(`cannot start redis-server: port ${port} in use (${attempt} attempts)`)
      }
    } catch (err) {
      if (server) await server.dispose()
      else await fsp.rm(dir, { recursive: true, force: true })
      throw err
    }
    if (spec.port !== undefined) await delay(200)
  }
}

/** Default redis-server arguments for a standalone test server. */
export function redisArgs (port: number, dir: string, opts: Pick<RedisOptions, 'appendonly' | 'args'> = {}): string[] {
  return [
    '--port', String(port),
    '--bind', HOST,
    '--dir', dir,
    '--save', '',
    '--appendonly', opts.appendonly ? 'yes' : 'no',
    ...(opts.appendonly ? ['--appendfsync', 'always'] : []),
    '--daemonize', 'no',
    '--logfile', path.join(dir, LOG_FILE),
    '--protected-mode', 'no',
    ...(opts.args ?? []),
  ]
}

/** Starts a standalone redis-server on a free loopback port; resolves once it answers. */
export function startRedis (opts: RedisOptions = {}): Promise<RedisServer> {
  return launchRedis({ port: opts.port, argv: (port, dir) => redisArgs(port, dir, opts) })
}

/**
 * Awaits all launches; if any fails, disposes the ones that succeeded and
 * rethrows the first failure (so a half-started group never leaks).
 */
export async function launchAll (launches: Promise<RedisServer>[]): Promise<RedisServer[]> {
  const results = await Promise.allSettled(launches)
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  const servers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  if (failed) {
    await Promise.all(servers.map((s) => s.dispose()))
    throw failed.reason
  }
  return servers
}

/** Starts `n` servers in parallel (`opts.port` makes no sense here and should be left out). */
export function startRedisGroup (n: number, opts: RedisOptions = {}): Promise<RedisServer[]> {
  return launchAll(Array.from({ length: n }, () => startRedis(opts)))
}

/** Kills every server started by this process and removes their temp dirs. */
export async function stopAllRedis (): Promise<void> {
  await Promise.all([...registry].map((s) => s.dispose()))
}

/**
 * node:test convenience: starts `n` servers in a `before` hook and disposes
 * them in an `after` hook of the enclosing suite (or file).
 */
export function useRedis (n = 1, opts: RedisOptions = {}): { readonly servers: RedisServer[] } {
  const ctx = { servers: [] as RedisServer[] }
  before(async () => {
    ctx.servers.push(...(await startRedisGroup(n, opts)))
  })
  after(async () => {
    await Promise.all(ctx.servers.map((s) => s.dispose()))
    // A test that failed half-way may leave a client reconnecting to a server that is gone, which would
    // keep this file's process alive until the runner's timeout. Every test has finished by now.
    setTimeout(() => process.exit(), 10_000).unref()
  })
  return ctx
}
