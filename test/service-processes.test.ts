// Services across real processes: 3 servers × 4 requesters, a server SIGKILLed while it runs requests
// (plain and reliable), and a 100 MB streamed reply with bounded memory on both sides.
// Sizes can be made smaller for a quick run: SERVICE_TEST_REQUESTS (per requester, default 10000) and
// SERVICE_TEST_STREAM_MB (default 100).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { RequestTimeoutError, ServiceClosedError } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { eventually, uniqueName } from './helpers/bus.js'
import { range, trackBuses } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

const REQUESTS = Number(process.env.SERVICE_TEST_REQUESTS ?? 10_000)
const STREAM_MB = Number(process.env.SERVICE_TEST_STREAM_MB ?? 100)
/**
 * While a 100 MB reply streams through, what each side may hold (live memory: heap and buffers after a
 * full GC) and how far its RSS may grow (garbage included, which the GC collects when it sees fit).
 */
const LIVE_BOUND = 16 * 1024 * 1024
const RSS_BOUND = 200 * 1024 * 1024

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-service-procs-'))
const children = new Set<ChildProcess>()
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  fs.rmSync(tmp, { recursive: true, force: true })
})

interface Fixture {
  child: ChildProcess
  lines: string[]
  exited: Promise<[number | null, NodeJS.Signals | null]>
  /** Resolves with the first line (seen so far or to come) that starts with `prefix`; rejects if it exits first. */
  line: (prefix: string) => Promise<string>
}

function start (fixture: string, args: Array<string | number>): Fixture {
  const file = fileURLToPath(new URL(`./fixtures/${fixture}.js`, import.meta.url))
  const child = spawn(process.execPath, ['--expose-gc', file, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  const lines: string[] = []
  const waiters = new Set<() => void>()
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l)
    for (const w of waiters) w()
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  exited.then(() => { children.delete(child) }, () => {})
  const line = (prefix: string): Promise<string> => new Promise((resolve, reject) => {
    const check = (): boolean => {
      const found = lines.find((l) => l.startsWith(prefix))
      if (found === undefined) return false
      waiters.delete(check)
      resolve(found)
      return true
    }
    if (check()) return
    waiters.add(check)
    exited.then(([code, signal]) => {
      // The last lines may still be on their way.
      setImmediate(() => {
        if (!check()) reject(new Error(`${fixture} exited (${code ?? signal}) without a line "${prefix}…"; it printed: ${lines.join(' | ')}`))
      })
    }, () => {})
  })
  return { child, lines, exited, line }
}

/** Every "<r> <i> <deliveries>" line of the servers' record files. */
function records (files: string[]): Array<[string, number, number]> {
  return files.flatMap((f) => fs.existsSync(f)
    ? fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => {
      const [r, i, d] = l.split(' ')
      return [r, Number(i), Number(d)] as [string, number, number]
    })
    : [])
}

test(`3 server processes × 4 requester processes × ${REQUESTS} requests: each handled once, each reply once, to its requester`, async (t) => {
  const url = redis.servers[0].url
  const name = uniqueName('procs')
  const files = range(0, 3).map((s) => path.join(tmp, `${name}-server-${s}.txt`))
  const servers = files.map((file) => start('service-server', [url, name, 'plain', 16, 'echo', file]))
  await Promise.all(servers.map((s) => s.line('serving')))
  const requesters = range(0, 4).map((r) => start('service-requester', [url, name, `r${r}`, REQUESTS, 64, 'plain', 60_000]))
  const results = await Promise.all(requesters.map(async (r) => JSON.parse(await r.line('{'))))
  for (const [r, result] of results.entries()) {
    assert.deepEqual(result, { ok: REQUESTS, wrong: 0, timeouts: 0, closed: 0, other: 0, dropped: 0 }, `requester r${r}`)
  }
  for (const s of servers) s.child.kill('SIGTERM')
  const handled = await Promise.all(servers.map(async (s) => Number((await s.line('closed')).split(' ')[1])))
  assert.equal(handled.reduce((a, b) => a + b, 0), 4 * REQUESTS)
  for (const [i, n] of handled.entries()) assert.ok(n > 0, `server ${i} handled none (${handled.join(', ')})`)
  t.diagnostic(`requests per server: ${handled.join(', ')}`)
  const seen = new Map<string, number>()
  for (const [r, i] of records(files)) seen.set(`${r} ${i}`, (seen.get(`${r} ${i}`) ?? 0) + 1)
  assert.equal(seen.size, 4 * REQUESTS, 'every request was handled')
  assert.deepEqual([...seen.values()].filter((n) => n !== 1), [], 'no request was handled twice')
  for (const s of servers) assert.deepEqual(await s.exited, [0, null])
})

/** The test process requests; two server processes serve slowly; one is SIGKILLed while it runs requests. */
async function killOneServer (mode: 'plain' | 'reliable'): Promise<{ replies: Array<string | Error>, files: string[], dropped: number }> {
  const url = redis.servers[0].url
  const name = uniqueName(`kill-${mode}`)
  const files = range(0, 2).map((s) => path.join(tmp, `${name}-server-${s}.txt`))
  const servers = files.map((file) => start('service-server', [url, name, mode, 8, 'slow:50', file]))
  await Promise.all(servers.map((s) => s.line('serving')))
  const bus = await openBus(redis.servers)
  const svc = bus.service<{ r: string, i: number }, { r: string, i: number }>(name, { objectMode: true, reliable: mode === 'reliable' })
  const timeout = mode === 'reliable' ? 60_000 : 4000
  const replies = Promise.all(range(0, 200).map((i) => svc.request({ r: 'test', i }, { timeout }).then(
    (reply) => reply.r === 'test' && reply.i === i ? 'ok' : 'wrong', (err: Error) => err)))
  // Kill the first server while it runs requests (it has recorded some, and more are waiting).
  assert.ok(await eventually(() => records([files[0]]).length >= 10, 30_000), 'the first server took requests')
  servers[0].child.kill('SIGKILL')
  assert.deepEqual(await servers[0].exited, [null, 'SIGKILL'])
  const settled = await replies
  servers[1].child.kill('SIGTERM')
  await servers[1].line('closed')
  return { replies: settled, files, dropped: svc.droppedReplies }
}

test('a plain server SIGKILLed while it runs requests: its requesters reject (timeout), none hangs, the others are answered', async () => {
  const { replies, files } = await killOneServer('plain')
  const lost: Array<string | Error> = replies.filter((r) => r instanceof RequestTimeoutError || r instanceof ServiceClosedError)
  assert.equal(replies.filter((r) => r === 'ok').length + lost.length, 200, `every request settled: ${replies.filter((r) => r !== 'ok' && !lost.includes(r)).map(String).join(', ')}`)
  assert.ok(lost.length > 0, 'the killed server had requests running')
  // What the killed server took and did not answer is lost (at most once): never handled again.
  const handled = records(files)
  assert.equal(new Set(handled.map(([, i]) => i)).size, handled.length, 'no request was handled twice')
})

test('a reliable server SIGKILLed while it runs requests: every request is answered exactly once', async () => {
  const { replies, files } = await killOneServer('reliable')
  assert.deepEqual(replies.filter((r) => r !== 'ok').map(String), [], 'every request got its own reply')
  const handled = records(files)
  const again = handled.filter(([, , d]) => d > 1)
  assert.ok(again.length > 0, 'what the killed server held was delivered again, to the other')
  assert.equal(new Set(handled.map(([, i]) => i)).size, 200, 'every request was handled')
})

test(`a ${STREAM_MB} MB streamed reply arrives intact (sha256), with bounded memory on both sides`, async (t) => {
  const url = redis.servers[0].url
  const name = uniqueName('big-stream')
  const bytes = STREAM_MB * 1024 * 1024
  const server = start('service-server', [url, name, 'plain', 1, `stream:${bytes}`, '-'])
  await server.line('serving')
  const requester = start('service-requester', [url, name, 'stream', 60_000])
  const [received, sent] = await Promise.all([requester.line('received'), server.line('sent')])
  assert.equal(received.split(' ')[1], sent.split(' ')[1], 'the same bytes')
  assert.equal(Number(received.split(' ')[2]), bytes)
  const value = async (f: Fixture, prefix: string): Promise<number> => Number((await f.line(prefix)).split(' ')[1])
  const [requesterRss, requesterLive, serverLive] = await Promise.all([value(requester, 'rss'), value(requester, 'live'), value(server, 'live')])
  server.child.kill('SIGTERM')
  const serverRss = await value(server, 'rss')
  const mb = (n: number): string => (n / 1048576).toFixed(1)
  assert.ok(requesterLive < LIVE_BOUND, `the requester held ${mb(requesterLive)} MB`)
  assert.ok(serverLive < LIVE_BOUND, `the server held ${mb(serverLive)} MB`)
  assert.ok(requesterRss < RSS_BOUND, `the requester's RSS grew by ${mb(requesterRss)} MB`)
  assert.ok(serverRss < RSS_BOUND, `the server's RSS grew by ${mb(serverRss)} MB`)
  const info = await redis.servers[0].cli('INFO', 'memory')
  const peak = Number(/used_memory_peak:(\d+)/.exec(info)?.[1])
  assert.ok(peak < LIVE_BOUND, `Redis peaked at ${mb(peak)} MB`)
  t.diagnostic(`live memory growth: requester ${mb(requesterLive)} MB, server ${mb(serverLive)} MB; RSS growth: requester ` +
    `${mb(requesterRss)} MB, server ${mb(serverRss)} MB; Redis used_memory_peak ${mb(peak)} MB`)
})
