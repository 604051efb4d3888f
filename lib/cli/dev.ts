import fsp from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { BusMQError } from '../errors.js'
import { launchAll, startRedis, type RedisServer } from '../dev/redis-launcher.js'
import { expectPositionals, intOption, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { onStopSignal } from './session.js'

/** Local throw-away Redis shards (`busmq dev`, the demo). */
export interface DevShards {
  /** `redis://127.0.0.1:PORT`, one per shard. */
  readonly urls: string[]
  readonly pids: number[]
  /** Temp dir holding each shard's dir and log; removed by stop(). */
  readonly dir: string
  /** SIGTERM every shard (SIGKILL after 10 s), wait for them to exit, remove the temp dir. Idempotent. */
  stop: () => Promise<void>
  /** Resolves with a message when a shard exits before stop() was called. */
  readonly died: Promise<string>
}

/**
 * Starts `n` redis-server processes (from PATH) on free loopback ports, each in its own dir under one temp
 * dir, without persistence (lib/dev/redis-launcher.ts). Fails with `ERR_BUSMQ_CLI_NO_REDIS_SERVER` when
 * redis-server is missing. The shards are killed when this process exits, even by SIGKILL, and they keep
 * it alive until stopped.
 */
export async function startShards (n: number): Promise<DevShards> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-dev-'))
  let servers: RedisServer[]
  try {
    servers = await launchAll(Array.from({ length: n }, () => startRedis({ keepAlive: true, parentDir: dir })))
  } catch (err) {
    await fsp.rm(dir, { recursive: true, force: true })
    throw err
  }
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(servers.map(async (s) => {
        await s.stop()
        await s.dispose()
      }))
      await fsp.rm(dir, { recursive: true, force: true })
    })()
    return stopping
  }
  const died = Promise.race(servers.map(async (s) => `redis-server on port ${s.port} exited (${await s.whenExited()})`))
  return {
    urls: servers.map((s) => s.url),
    pids: servers.map((s) => s.pid),
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
