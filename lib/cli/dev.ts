import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { BusMQError } from '../errors.js'
import { expectPositionals, intOption, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { onStopSignal } from './session.js'

const HOST = '127.0.0.1'
const READY_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5000
const PORT_ATTEMPTS = 5

/** Local throw-away Redis shards (`busmq dev`, the demo). */
export interface DevShards {
  /** `redis://127.0.0.1:PORT`, one per shard. */
  readonly urls: string[]
  readonly pids: number[]
  /** Temp dir holding each shard's dir and log; removed by stop(). */
  readonly dir: string
  /** SIGTERM every shard (SIGKILL after 5 s), wait for them to exit, remove the temp dir. Idempotent. */
  stop: () => Promise<void>
  /** Resolves with a message when a shard exits before stop() was called. */
  readonly died: Promise<string>
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, HOST, () => {
      const { port } = srv.address() as AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** True when something on `port` answers PING with +PONG. */
export function ping (port: number, ms = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: HOST })
    let got = ''
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      sock.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), ms)
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => {
      got += String(d)
      if (got.includes('\r\n')) done(got.startsWith('+PONG'))
    })
    sock.once('error', () => done(false))
    sock.once('close', () => done(false))
  })
}

function missingRedis (): BusMQError {
  return new BusMQError('redis-server not found on PATH: install Redis >= 6.2 (Debian/Ubuntu: apt-get install ' +
    'redis-server; macOS: brew install redis)', 'ERR_BUSMQ_CLI_NO_REDIS_SERVER')
}

/**
 * A detached shell that waits for this process to disappear, then kills the shard and removes the temp
 * dir of all shards: the only cleanup that still happens when this process is killed with SIGKILL.
 */
function watchdog (pid: number, dir: string): ChildProcess | undefined {
  const quoted = `'${dir.replace(/'/g, "'\\''")}'`
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -9 ${pid} 2>/dev/null; rm -rf ${quoted}`
  try {
    const wd = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' })
    wd.on('error', () => {})
    wd.unref()
    return wd
  } catch {
    return undefined
  }
}

interface Shard {
  child: ChildProcess
  port: number
  exited: Promise<void>
  watchdog?: ChildProcess
}

/** Starts one shard in `dir`, a subdirectory of `top`, the temp dir its watchdog removes. */
async function launch (dir: string, top: string): Promise<Shard> {
  await fsp.mkdir(dir, { recursive: true })
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const child = spawn('redis-server', ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '',
      '--appendonly', 'no', '--daemonize', 'no', '--logfile', 'redis.log', '--protected-mode', 'no'], {
      cwd: dir,
      // Its own process group: a Ctrl-C in the terminal reaches busmq, which then stops the shards itself.
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe']
    })
    let stderr = ''
    child.stderr!.on('data', (d) => { stderr += String(d) })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const spawned = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null))
      child.once('error', (err) => resolve(err))
    })
    if (spawned) {
      if ((spawned as NodeJS.ErrnoException).code === 'ENOENT') throw missingRedis()
      throw new BusMQError(`cannot start redis-server: ${spawned.message}`, 'ERR_BUSMQ_CLI_REDIS_SERVER')
    }
    const shard: Shard = { child, port, exited, watchdog: watchdog(child.pid!, top) }
    const deadline = Date.now() + READY_TIMEOUT_MS
    let gone = false
    void exited.then(() => { gone = true })
    while (!gone && Date.now() < deadline) {
      if (await ping(port)) return shard
      await delay(50)
    }
    await halt(shard)
    const log = fs.existsSync(path.join(dir, 'redis.log')) ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8') : ''
    const why = `${stderr}\n${log}`.trim()
    if (/address already in use/i.test(why) && attempt < PORT_ATTEMPTS) continue
    const last = why.split('\n').slice(-3).join(' | ')
    throw new BusMQError(`redis-server on port ${port} did not start${last ? `: ${last}` : ''}`, 'ERR_BUSMQ_CLI_REDIS_SERVER')
  }
}

async function halt (shard: Shard): Promise<void> {
  const { child } = shard
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await shard.exited
    clearTimeout(timer)
  }
  if (shard.watchdog?.pid !== undefined) {
    try {
      process.kill(-shard.watchdog.pid, 'SIGKILL')
    } catch {}
  }
}

/**
 * Starts `n` redis-server processes (from PATH) on free loopback ports, each in its own dir under one temp
 * dir, without persistence. Fails with `ERR_BUSMQ_CLI_NO_REDIS_SERVER` when redis-server is missing.
 * The shards are killed when this process exits, even by SIGKILL (a watchdog shell per shard).
 */
export async function startShards (n: number): Promise<DevShards> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-dev-'))
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => launch(path.join(dir, `shard-${i + 1}`), dir)))
  const shards = results.flatMap((r) => r.status === 'fulfilled' ? [r.value] : [])
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  let stopping: Promise<void> | undefined
  const onExit = (): void => {
    for (const s of shards) {
      try {
        s.child.kill('SIGKILL')
      } catch {}
    }
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {}
  }
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      process.off('exit', onExit)
      await Promise.all(shards.map(halt))
      await fsp.rm(dir, { recursive: true, force: true })
    })()
    return stopping
  }
  if (failed) {
    await stop()
    throw failed.reason
  }
  process.on('exit', onExit)
  const died = Promise.race(shards.map((s) => s.exited.then(() =>
    `redis-server on port ${s.port} exited (${s.child.signalCode ?? `code ${String(s.child.exitCode)}`})`)))
  return {
    urls: shards.map((s) => `redis://${HOST}:${s.port}`),
    pids: shards.map((s) => s.child.pid!),
    dir,
    stop,
    died: died.then((why) => stopping ? new Promise<string>(() => {}) : why)
  }
}

const help = `Usage: busmq dev [--shards N]

Starts N local redis-server processes (default 1; redis-server must be on PATH) on free loopback
ports, in a temp dir, without persistence, and prints their URLs: first the comma-separated list,
then an "export BUSMQ_REDIS=…" line for other shells. Runs until Ctrl-C or SIGTERM, then stops the
servers and removes the temp dir (exit 0). Exits 1 if redis-server is missing or a server dies.

Options:
  --shards N   how many redis-server processes (1-32)`

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  expectPositionals(positionals, 0, 0, '', 'dev')
  const n = values.shards === undefined ? 1 : intOption(values.shards, '--shards', 1, 32, 'dev')
  let signalled: (() => void) | undefined
  const stopRequested = new Promise<void>((resolve) => { signalled = resolve })
  // Signals are caught before the shards start, so a Ctrl-C while they start still cleans up.
  const removeSignals = onStopSignal(() => signalled!())
  let stopNow = false
  void stopRequested.then(() => { stopNow = true })
  let shards: DevShards | undefined
  try {
    shards = await startShards(n)
    if (stopNow) return 0
    const list = shards.urls.join(',')
    console.log(list)
    console.log(`export BUSMQ_REDIS=${list}`)
    if (!common.quiet) process.stderr.write(`busmq dev: ${n} redis-server shard(s) running in ${shards.dir}; Ctrl-C to stop\n`)
    const died = await Promise.race([stopRequested.then(() => undefined), shards.died])
    if (died !== undefined) throw new BusMQError(died, 'ERR_BUSMQ_CLI_REDIS_SERVER')
    if (!common.quiet) process.stderr.write('busmq dev: stopping\n')
    return 0
  } finally {
    await shards?.stop()
    removeSignals()
  }
}

export const dev: Command = {
  name: 'dev',
  summary: 'run local redis-server shards for development, until Ctrl-C',
  help,
  options: { shards: { type: 'string' } },
  run
}
