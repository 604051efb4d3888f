/**
 * The one way BusMQ starts throw-away `redis-server` processes: `busmq dev`, the demo, the benchmark and
 * the tests all use it. Not part of the public API (lib/index.ts does not export it).
 *
 * A server gets a free loopback port, its own temp dir and no persistence unless asked; it is ready when
 * it answers INFO with its own pid (not a foreign server that took the port). Every server is removed by
 * pid: by `dispose()`, by an 'exit' hook for servers nobody disposed, and by a detached watchdog shell
 * when this process is SIGKILLed (see lib/dev/redis-process.ts).
 */
import { execFileSync } from 'node:child_process'
import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { BusMQError } from '../errors.js'
import { LOOPBACK, freePort } from './free-port.js'
import { LOG_FILE, RedisProcess, disposeAll, missingRedisServer, type ProcessOptions, type RedisServer } from './redis-process.js'

export { LOG_FILE, type RedisServer }
export { freePort, LOOPBACK } from './free-port.js'
export { RespError, ping, redisCommand, type RespValue } from './resp.js'

/** Oldest redis-server the launcher starts (BusMQ itself needs 6.2). */
const MIN_VERSION: readonly [number, number] = [6, 2]
const PORT_ATTEMPTS = 5

export interface HostPort {
  host: string
  port: number
}

/** How to start one server. */
export interface LaunchSpec extends ProcessOptions {
  /** A fixed port; otherwise a free one is picked (and picked again when redis-server cannot bind it). */
  port?: number
  /** The whole redis-server argv, given the port and the server's dir. */
  argv: (port: number, dir: string) => string[]
  /** Runs before each first-start attempt (not on restart), for example to write a config file. */
  prepare?: (port: number, dir: string) => void | Promise<void>
  /** Also require `port + busOffset` to be free (a Cluster node's bus port is port + 10000). */
  busOffset?: number
}

/** A standalone server. */
export interface RedisOptions extends ProcessOptions {
  /** Persist with AOF (`appendfsync always`), so data survives kill() and restart(). @default false */
  appendonly?: boolean
  /** More redis-server arguments, after the defaults (so they override them). */
  args?: string[]
  /** A fixed port instead of a free one. */
  port?: number
}

let versionCheck: { version: string } | { error: BusMQError } | undefined

/** Version of the redis-server on PATH ("7.0.15"); throws `ERR_BUSMQ_CLI_NO_REDIS_SERVER` if it is missing or too old. */
export function redisServerVersion (): string {
  versionCheck ??= checkVersion()
  if ('error' in versionCheck) throw versionCheck.error
  return versionCheck.version
}

/** Throws `ERR_BUSMQ_CLI_NO_REDIS_SERVER` unless redis-server >= 6.2 is on PATH (the answer is cached). */
export function assertRedisServer (): void {
  redisServerVersion()
}

function checkVersion (): { version: string } | { error: BusMQError } {
  let out: string
  try {
    out = execFileSync('redis-server', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return {
      error: e.code === 'ENOENT'
        ? missingRedisServer()
        : new BusMQError(`redis-server --version failed: ${e.message}`, 'ERR_BUSMQ_CLI_NO_REDIS_SERVER')
    }
  }
  const m = /v=(\d+)\.(\d+)\.(\d+)/.exec(out)
  if (!m) return { error: new BusMQError(`cannot tell the redis-server version from: ${out.trim()}`, 'ERR_BUSMQ_CLI_NO_REDIS_SERVER') }
  const version = `${m[1]}.${m[2]}.${m[3]}`
  const [major, minor] = [Number(m[1]), Number(m[2])]
  if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
    return {
      error: new BusMQError(`redis-server ${version} is older than ${MIN_VERSION.join('.')}: install Redis >= ` +
        `${MIN_VERSION.join('.')}`, 'ERR_BUSMQ_CLI_NO_REDIS_SERVER')
    }
  }
  return { version }
}

/** Starts a server described by `spec` in a fresh temp dir; resolves once it answers. */
export async function launchRedis (spec: LaunchSpec): Promise<RedisServer> {
  assertRedisServer()
  const dir = await fsp.mkdtemp(path.join(spec.parentDir ?? os.tmpdir(), 'busmq-redis-'))
  const options: ProcessOptions = { keepAlive: spec.keepAlive, parentDir: spec.parentDir }
  for (let attempt = 1; ; attempt++) {
    let server: RedisProcess | undefined
    try {
      const port = spec.port ?? await freePort({ alsoFree: spec.busOffset })
      await spec.prepare?.(port, dir)
      server = new RedisProcess(port, dir, spec.argv(port, dir), options)
      if ((await server.start()) === 'ready') return server
      // Another process took the port (ours has exited by now): try again in the same dir.
      server.forget()
      if (attempt >= PORT_ATTEMPTS) {
        throw new BusMQError(`cannot start redis-server: port ${port} in use (${attempt} attempts)`, 'ERR_BUSMQ_CLI_REDIS_SERVER')
      }
    } catch (err) {
      if (server) await server.dispose()
      else await fsp.rm(dir, { recursive: true, force: true })
      throw err
    }
    if (spec.port !== undefined) await delay(200)
  }
}

/** Default redis-server arguments of a standalone server: loopback only, no RDB, AOF when asked. */
export function redisArgs (port: number, dir: string, opts: Pick<RedisOptions, 'appendonly' | 'args'> = {}): string[] {
  return [
    '--port', String(port),
    '--bind', LOOPBACK,
    '--dir', dir,
    '--save', '',
    '--appendonly', opts.appendonly ? 'yes' : 'no',
    ...(opts.appendonly ? ['--appendfsync', 'always'] : []),
    '--daemonize', 'no',
    '--logfile', path.join(dir, LOG_FILE),
    '--protected-mode', 'no',
    ...(opts.args ?? [])
  ]
}

/** Starts a standalone server on a free loopback port; resolves once it answers. */
export function startRedis (opts: RedisOptions = {}): Promise<RedisServer> {
  return launchRedis({ ...opts, argv: (port, dir) => redisArgs(port, dir, opts) })
}

/** Awaits every launch; if one fails, disposes those that started and rethrows (a half-started group never leaks). */
export async function launchAll (launches: Array<Promise<RedisServer>>): Promise<RedisServer[]> {
  const results = await Promise.allSettled(launches)
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  const servers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  if (failed) {
    await Promise.all(servers.map((s) => s.dispose()))
    throw failed.reason
  }
  return servers
}

/** Starts `n` standalone servers at once (leave `opts.port` out). */
export function startRedisGroup (n: number, opts: RedisOptions = {}): Promise<RedisServer[]> {
  return launchAll(Array.from({ length: n }, () => startRedis(opts)))
}

/** Kills every server this process started and removes their dirs. */
export async function stopAllRedis (): Promise<void> {
  await disposeAll()
}
