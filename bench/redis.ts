/**
 * A throw-away redis-server for the benchmark: a free loopback port, a temp dir, no persistence
 * (`--save '' --appendonly no`). A small copy of test/helpers/redis-server.ts without node:test, so the
 * benchmark does not depend on the test harness. Killed by pid on dispose(), on process exit and, should
 * this process be SIGKILLed, by a detached watchdog shell.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort, ping } from '../lib/cli/dev.js'

export const HOST = '127.0.0.1'

export interface BenchRedis {
  readonly port: number
  readonly url: string
  readonly pid: number
  readonly dir: string
  dispose: () => Promise<void>
}

export function redisVersion (): string {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' })
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim()
  } catch {
    throw new Error('redis-server not found on PATH: install Redis >= 6.2 (e.g. apt-get install redis-server)')
  }
}

export async function startBenchRedis (): Promise<BenchRedis> {
  redisVersion()
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-bench-'))
    const child: ChildProcess = spawn('redis-server', [
      '--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--protected-mode', 'no', '--logfile', path.join(dir, 'redis.log')
    ], { stdio: 'ignore' })
    child.unref()
    const exited = new Promise<void>((resolve) => { child.once('exit', () => resolve()); child.once('error', () => resolve()) })
    const kill = (): void => { try { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') } catch {} }
    const onExit = (): void => { kill(); try { fs.rmSync(dir, { recursive: true, force: true }) } catch {} }
    process.on('exit', onExit)
    // Backstop for a SIGKILLed benchmark: no JS runs then.
    const wd = spawn('sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -9 ${child.pid} 2>/dev/null; rm -rf '${dir}'`],
      { detached: true, stdio: 'ignore' })
    wd.on('error', () => {})
    wd.unref()
    const dispose = async (): Promise<void> => {
      process.off('exit', onExit)
      // The child is unref()ed: hold the event loop open ourselves until it is gone, or the process
      // could exit right here with nothing else pending.
      child.ref()
      kill()
      await exited
      child.unref()
      try { if (wd.pid) process.kill(-wd.pid, 'SIGKILL') } catch {}
      fs.rmSync(dir, { recursive: true, force: true })
    }
    const deadline = Date.now() + 10_000
    let ready = false
    while (Date.now() < deadline && child.exitCode === null) {
      if (await ping(port)) { ready = true; break }
      await delay(50)
    }
    if (ready && child.exitCode === null) {
      return { port, url: `redis://${HOST}:${port}`, pid: child.pid!, dir, dispose }
    }
    const log = fs.existsSync(path.join(dir, 'redis.log')) ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8') : ''
    await dispose()
    if (attempt >= 5 || !/address already in use/i.test(log)) {
      throw new Error(`redis-server did not start on port ${port}:\n${log.split('\n').slice(-10).join('\n')}`)
    }
  }
}
