/**
 * `npm run bench`: starts its own redis-server (free port, no persistence), runs every job — raw ioredis,
 * this project (queues, channels, services), BusMQ 3.1, BullMQ and bee-queue — against it, one child
 * process per job (so each job's peak RSS and CPU are its own), FLUSHALL between jobs, prints the table
 * and the targets, writes the figures as JSON to a temp file, and stops the server.
 *
 *   node dist/bench/index.js [--quick] [--idle] [--no-idle] [--no-peers] [--only=id,id-prefix,…] [--svg[=path]]
 *
 * `--svg` also writes the table as an SVG chart (bench/chart.ts), to docs/bench.svg (the README shows
 * it) or the path given; without it nothing is written to the repository.
 *
 * Environment: BENCH_N (messages per round, default 200000), BENCH_N_LARGE (1 KiB workloads, N/2),
 * BENCH_PEER_N (peers, 20000), BENCH_ROUNDS (5), BENCH_RAW_ROUNDS (2 × rounds + 1), BENCH_QUEUES (100), BENCH_CHANNEL_MB (256),
 * BENCH_LATENCY_SECONDS (5), BENCH_IDLE_QUEUES (100000), BENCH_IDLE_TTL (2000 ms), BENCH_SVC_N (50000),
 * BENCH_SVC_PEER_N (10000), BENCH_SVC_IN_FLIGHT (1000).
 * Each throughput figure is the median of BENCH_ROUNDS rounds. Exit code 1 when raw ioredis or this
 * project failed a check (or a job crashed); a peer that fails is reported, not fatal.
 *
 * Internal: `--child <job-id> --url <redis url>` runs one job and reports it to the parent over IPC (or
 * prints it when run by hand, e.g. under `node --cpu-prof`).
 */
import { fork } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { RssMeter, now } from './common.js'
import type { BenchConfig } from './common.js'
import type { JobContext, JobResult } from './job.js'
import { JOBS, loadConfig, type JobSpec } from './jobs.js'
import { startRedis, redisServerVersion } from '../lib/dev/redis-launcher.js'
import { report } from './report.js'
import { renderSvg } from './chart.js'

const self = fileURLToPath(import.meta.url)
/** Where `--svg` writes the chart: the README shows it from there. */
const DEFAULT_SVG = 'docs/bench.svg'

interface Args {
  quick: boolean
  idleOnly: boolean
  noIdle: boolean
  peers: boolean
  only?: string[]
  /** Where to write the SVG chart (--svg[=path]); none without the flag. */
  svg?: string
  child?: string
  url?: string
}

function parseArgs (argv: string[]): Args {
  const a: Args = { quick: false, idleOnly: false, noIdle: false, peers: true }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--quick') a.quick = true
    else if (arg === '--idle') a.idleOnly = true
    else if (arg === '--no-idle') a.noIdle = true
    else if (arg === '--no-peers') a.peers = false
    else if (arg.startsWith('--only=')) a.only = arg.slice(7).split(',').filter(Boolean)
    else if (arg === '--svg') a.svg = DEFAULT_SVG
    else if (arg.startsWith('--svg=')) a.svg = arg.slice(6)
    else if (arg === '--child') a.child = argv[++i]
    else if (arg === '--url') a.url = argv[++i]
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: node dist/bench/index.js [--quick] [--idle] [--no-idle] [--no-peers] [--only=job-id-prefix,…] [--svg[=path]]\n' +
        `  --svg writes the chart to ${DEFAULT_SVG} (relative to the current directory) or the path given\n` +
        `jobs: ${JOBS.map((j) => j.id).join(' ')}`)
      process.exit(0)
    } else throw new Error(`unknown argument ${arg}`)
  }
  return a
}

// --- child ---------------------------------------------------------------------------------------------

async function runChild (id: string, url: string, config: BenchConfig): Promise<JobResult> {
  const spec = JOBS.find((j) => j.id === id)
  if (!spec) throw new Error(`no job ${id}`)
  const admin = new Redis(url)
  const rss = new RssMeter()
  rss.start()
  const result: JobResult = { id, contender: spec.contender, workload: spec.workload(config), n: 0, rounds: 0 }
  const ctx: JobContext = { config, url, port: Number(new URL(url).port), admin, rss, result }
  const t = now()
  try {
    await spec.run(ctx)
  } catch (err) {
    const e = err as Error
    result.failed = e.name === 'CheckError' ? e.message : `${e.name}: ${e.message}`
  } finally {
    result.rss = rss.stop()
    result.seconds = (now() - t) / 1000
    admin.disconnect()
  }
  return result
}

// --- parent --------------------------------------------------------------------------------------------

function runJob (spec: JobSpec, url: string, config: BenchConfig): Promise<JobResult> {
  return new Promise((resolve) => {
    const child = fork(self, ['--child', spec.id, '--url', url], {
      env: { ...process.env, BENCH_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    })
    let output = ''
    const keep = (d: Buffer): void => { output = (output + d.toString()).slice(-4000) }
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    let result: JobResult | undefined
    child.on('message', (m) => { result = m as JobResult })
    const limit = config.quick ? 90_000 : 240_000
    const timer = setTimeout(() => {
      output += `\n(killed after ${limit / 1000} s)`
      child.kill('SIGKILL')
    }, limit)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (result) return resolve(result)
      const tail = output.trim().split('\n').slice(-3).join(' | ')
      resolve({
        id: spec.id,
        contender: spec.contender,
        workload: spec.workload(config),
        n: 0,
        rounds: 0,
        failed: `job process exited (${signal ?? `code ${code}`}) without a result: ${tail}`
      })
    })
  })
}

function selectJobs (args: Args): JobSpec[] {
  return JOBS.filter((j) => {
    if (args.only) return args.only.some((p) => j.id === p || j.id.startsWith(p))
    if (args.idleOnly) return j.idle === true
    if (j.idle && args.noIdle) return false
    if (j.peer && !args.peers) return false
    return true
  })
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  if (args.child) {
    const config: BenchConfig = process.env.BENCH_CONFIG ? JSON.parse(process.env.BENCH_CONFIG) : loadConfig(args.quick, args.peers)
    if (!args.url) throw new Error('--child needs --url')
    const result = await runChild(args.child, args.url, config)
    if (process.send) process.send(result, () => process.exit(0))
    else {
      console.log(JSON.stringify(result, null, 2))
      process.exit(result.failed ? 1 : 0)
    }
    return
  }

  const config = loadConfig(args.quick, args.peers)
  const jobs = selectJobs(args)
  const started = new Date()
  const t0 = now()
  // A throw-away redis-server: free loopback port, temp dir, no persistence (the launcher `busmq dev` and
  // the tests use too).
  const server = await startRedis()
  const admin = new Redis(server.url)
  const results: JobResult[] = []
  const stop = async (): Promise<void> => {
    admin.disconnect()
    await server.dispose()
  }
  process.once('SIGINT', () => { stop().finally(() => process.exit(130)) })
  process.once('SIGTERM', () => { stop().finally(() => process.exit(143)) })
  try {
    for (const [i, spec] of jobs.entries()) {
      await admin.flushall()
      process.stderr.write(`[${i + 1}/${jobs.length}] ${spec.id}: ${spec.contender}, ${spec.workload(config)} … `)
      const r = await runJob(spec, server.url, config)
      process.stderr.write(`${r.failed ? 'FAILED' : 'ok'} (${(r.seconds ?? 0).toFixed(1)} s)\n`)
      results.push(r)
    }
  } finally {
    await stop()
  }
  const machine = {
    date: started.toISOString(),
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    redis: redisServerVersion(),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    seconds: (now() - t0) / 1000
  }
  const { text, fatal } = report(results, config, machine)
  const file = path.join(os.tmpdir(), `busmq-bench-${started.toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ machine, config, results }, null, 2))
  console.log(text)
  console.log(`\nfigures as JSON: ${file}`)
  if (args.svg !== undefined) {
    mkdirSync(path.dirname(path.resolve(args.svg)), { recursive: true })
    writeFileSync(args.svg, renderSvg(results, config, machine))
    console.log(`chart as SVG: ${path.resolve(args.svg)}`)
  }
  process.exitCode = fatal ? 1 : 0
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
