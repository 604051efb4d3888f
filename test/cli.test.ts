// The busmq executable, run as child processes against real redis-servers (two shards).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fsp from 'node:fs/promises'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Bus } from '../lib/index.js'
import { freePort, startRedis, startRedisGroup, ping, redisCommand, type RedisServer } from './helpers/redis-server.js'
import { connectionProblem } from '../lib/cli/redis-watch.js'
import { formatBytes } from '../lib/cli/progress.js'
import { openBus, uniqueName, eventually, collect } from './helpers/bus.js'
import { BIN, cliEnv, runCli, startCli, sha256 } from './helpers/cli.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { Readable } from 'node:stream'

// Two shards, so the commands route names as a multi-shard bus does; `bus` checks what they did.
const redis: { servers: RedisServer[] } = { servers: [] }
const env = (): NodeJS.ProcessEnv => ({ BUSMQ_REDIS: redis.servers.map((s) => s.url).join(',') })
let bus: Bus

before(async () => {
  redis.servers = await startRedisGroup(2)
  bus = await openBus(redis.servers)
})

after(async () => {
  await bus?.close()
  await Promise.all(redis.servers.map((s) => s.dispose()))
})

/** Lines `${prefix}0` … `${prefix}${n - 1}`, each with its newline. */
function numbered (prefix: string, n: number, pad = 0): string {
  let s = ''
  for (let i = 0; i < n; i++) s += `${prefix}${i}${pad > 0 ? ` ${'x'.repeat(pad)}` : ''}\n`
  return s
}

/** Complete lines of `text` (a last line without its newline was cut short and is left out). */
function completeLines (text: string): string[] {
  const lines = text.split('\n')
  lines.pop()
  return lines
}

async function remaining (name: string): Promise<string[]> {
  return (await collect<Buffer>(bus.queue(name).createReadStream({ untilEmpty: true }))).map(String)
}

/**
 * Resolves once `child` has written more to stdout than this process takes in while nobody reads it (its
 * stdout was left unread): our buffer is full, the pipe fills next, and the child's writes block.
 */
async function stdoutBackedUp (child: ChildProcess): Promise<void> {
  const out = child.stdout!
  await eventually(() => out.readableLength >= out.readableHighWaterMark, 15_000, 'the child\'s stdout to back up')
}

/** `text` as a literal in a RegExp. */
function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

function ok (r: { code: number | null, stderr: string }): void {
  assert.equal(r.code, 0, `exit code ${String(r.code)}, stderr: ${r.stderr}`)
}

test('push --end | pull --until-end moves 5 MB of random bytes exactly, reader started first', async () => {
  const q = uniqueName('file')
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-cli-'))
  try {
    const data = randomBytes(5 * 1024 * 1024)
    const file = path.join(dir, 'in.bin')
    await fsp.writeFile(file, data)
    const pulling = startCli(['pull', q, '--until-end'], { env: env(), timeout: 60_000 })
    const pushed = await runCli(['push', q, '--end'], { inputFile: file, env: env() })
    ok(pushed)
    const pulled = await pulling.done
    ok(pulled)
    assert.equal(pulled.stdout.length, data.length)
    assert.equal(sha256(pulled.stdout), sha256(data))
    // stderr is not a terminal: no progress, only the summary line naming the queue's shard.
    // (Each chunk read from stdin is one message; how big the chunks are is up to node.)
    const shard = escape((await bus.queue(q).shard()).id)
    const pushedLine = new RegExp(`^busmq: pushed ([\\d,]+) messages \\(5\\.24 MB\\) and an end marker to queue ${q} on shard ${shard}\n$`).exec(pushed.stderr)
    assert.ok(pushedLine, pushed.stderr)
    assert.equal(pulled.stderr, `busmq: pulled ${pushedLine[1]} messages (5.24 MB) from queue ${q} on shard ${(await bus.queue(q).shard()).id}\n`)
    const stats = await bus.queue(q).stats()
    assert.equal(stats.length, 0)
    assert.equal(stats.consumed, stats.pushed)
  } finally {
    await fsp.rm(dir, { recursive: true, force: true })
  }
})

test('--lines both ways: one message per line, bytes kept, the newline added back', async () => {
  const q = uniqueName('lines')
  const input = `alpha\n\nβeta ünïcödé\ttab\ncrlf\r\n${numbered('n', 500)}`
  ok(await runCli(['push', q, '--lines'], { input, env: env() }))
  assert.equal(await bus.queue(q).count(), 504)
  const pulled = await runCli(['pull', q, '--lines', '--until-empty'], { env: env() })
  ok(pulled)
  assert.equal(pulled.stdout.toString('utf8'), input)

  // A last line without a newline is a message too; a message is exactly the line.
  ok(await runCli(['push', q, '--lines'], { input: 'a\nb', env: env() }))
  assert.deepEqual(await remaining(q), ['a', 'b'])
})

test('--max, --until-empty and --until-end decide where pull stops', async () => {
  const q = uniqueName('stops')
  ok(await runCli(['push', q, '--lines'], { input: numbered('m', 10), env: env() }))
  const three = await runCli(['pull', q, '--lines', '--max', '3'], { env: env() })
  ok(three)
  assert.equal(three.stdout.toString(), 'm0\nm1\nm2\n')
  const rest = await runCli(['pull', q, '--lines', '--until-empty'], { env: env() })
  ok(rest)
  assert.equal(rest.stdout.toString(), numbered('m', 10).split('\n').slice(3).join('\n'))
  const none = await runCli(['pull', q, '--until-empty'], { env: env() })
  ok(none)
  assert.equal(none.stdout.length, 0)

  // An end marker ends the reader; what was pushed after it stays for the next one.
  ok(await runCli(['push', q, '--lines', '--end'], { input: 'a\nb\n', env: env() }))
  ok(await runCli(['push', q, '--lines'], { input: 'c\n', env: env() }))
  const untilEnd = await runCli(['pull', q, '--lines', '--until-end'], { env: env() })
  ok(untilEnd)
  assert.equal(untilEnd.stdout.toString(), 'a\nb\n')
  assert.deepEqual(await remaining(q), ['c'])
})

test('--json: one JSON value per line in, one per line out, null included; a bad line stops the push', async () => {
  const q = uniqueName('json')
  const input = '{"a":1,"b":[true,null]}\nnull\n\n  "text"  \n42\n[]\n'
  ok(await runCli(['push', q, '--json'], { input, env: env() }))
  const lib = bus.queue(q, { objectMode: true })
  await lib.push({ from: 'library' })
  const pulled = await runCli(['pull', q, '--json', '--until-empty'], { env: env() })
  ok(pulled)
  assert.equal(pulled.stdout.toString(), '{"a":1,"b":[true,null]}\nnull\n"text"\n42\n[]\n{"from":"library"}\n')

  // What the CLI pushes is the library's JSON: an objectMode reader gets the values.
  ok(await runCli(['push', q, '--json'], { input: '{"y":2}\n[1,"two"]\n', env: env() }))
  assert.deepEqual(await collect(lib.createReadStream({ untilEmpty: true })), [{ y: 2 }, [1, 'two']])

  const bad = await runCli(['push', q, '--json'], { input: '1\n2\n{oops\n3\n', env: env() })
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^busmq: stdin line 3 is not JSON: .*\(ERR_BUSMQ_CLI_BAD_JSON\)\n$/)
  assert.deepEqual(await collect(lib.createReadStream({ untilEmpty: true })), [1, 2])
})

test('--reliable acknowledges what it wrote: nothing stays in flight, the rest stays queued', async () => {
  const q = uniqueName('reliable')
  ok(await runCli(['push', q, '--lines'], { input: numbered('r', 20), env: env() }))
  const five = await runCli(['pull', q, '--reliable', '--lines', '--max', '5'], { env: env() })
  ok(five)
  assert.equal(five.stdout.toString(), numbered('r', 5))
  let stats = await bus.queue(q).stats()
  assert.deepEqual([stats.length, stats.consumed, stats.inFlight], [15, 5, 0])
  const rest = await runCli(['pull', q, '--reliable', '--lines', '--until-empty'], { env: env() })
  ok(rest)
  assert.equal(rest.stdout.toString(), numbered('r', 20).split('\n').slice(5).join('\n'))
  stats = await bus.queue(q).stats()
  assert.deepEqual([stats.length, stats.consumed, stats.inFlight], [0, 20, 0])
})

test('--reliable: a pull killed while stdout is blocked loses nothing (unacked messages come back)', async () => {
  const q = uniqueName('reliable-kill')
  const total = 1000
  ok(await runCli(['push', q, '--lines'], { input: numbered('k', total, 1000), env: env() }))
  const cli = startCli(['pull', q, '--reliable', '--lines'], { env: env(), readStdout: false })
  // Wait until it holds messages it cannot write (nobody reads its stdout), then crash it.
  assert.ok(await eventually(async () => (await bus.queue(q).stats()).inFlight > 0))
  await stdoutBackedUp(cli.child)
  cli.child.kill('SIGKILL')
  await cli.exited
  cli.readStdout()
  const seen = completeLines((await cli.done).stdout.toString()).map((l) => l.split(' ')[0])
  // Acked means written: every message is either among the lines we got or back in the queue after
  // its lease (5 s) lapsed.
  const back = new Set<string>()
  assert.ok(await eventually(async () => {
    for await (const m of bus.queue(q).createReadStream({ mode: 'reliable', untilEmpty: true })) {
      back.add(String(m.data).split(' ')[0])
      await m.ack()
    }
    return seen.length + back.size >= total && numbered('k', total).split('\n').slice(0, total).every((k) => back.has(k) || seen.includes(k))
  }, 20_000), `lost messages: got ${seen.length} lines and ${back.size} back`)
  assert.equal((await bus.queue(q).stats()).inFlight, 0)
})

test('--from replays without consuming, and follows the queue', async () => {
  const q = uniqueName('replay')
  ok(await runCli(['push', q, '--lines'], { input: numbered('p', 10), env: env() }))
  const all = await runCli(['pull', q, '--from', '0', '--lines', '--until-empty'], { env: env() })
  ok(all)
  assert.equal(all.stdout.toString(), numbered('p', 10))
  // Message ids start at 1: id 5 is the fifth message.
  const some = await runCli(['pull', q, '--from', '5', '--lines', '--max', '3'], { env: env() })
  ok(some)
  assert.equal(some.stdout.toString(), 'p4\np5\np6\n')
  assert.equal(await bus.queue(q).count(), 10)

  const follow = startCli(['pull', q, '--from', '9', '--lines'], { env: env() })
  assert.ok(await eventually(() => follow.stdout().toString() === 'p8\np9\n'))
  await bus.queue(q).push('p10')
  assert.ok(await eventually(() => follow.stdout().toString() === 'p8\np9\np10\n'))
  follow.child.kill('SIGTERM')
  ok(await follow.done)
  assert.equal(await bus.queue(q).count(), 11)
})

test('EPIPE (stdout closed, as by "| head") ends pull with 0 and gives back what it had not written', async () => {
  for (const mode of [[], ['--reliable']]) {
    const q = uniqueName('epipe')
    const total = 5000
    ok(await runCli(['push', q, '--lines'], { input: numbered('e', total, 95), env: env() }))
    const cli = startCli(['pull', q, '--lines', '--until-empty', ...mode], { env: env(), timeout: 30_000 })
    assert.ok(await eventually(() => completeLines(cli.stdout().toString()).length >= 10))
    const got = completeLines(cli.stdout().toString()).map((l) => l.split(' ')[0])
    cli.child.stdout!.destroy()
    const result = await cli.done
    ok(result)
    const stats = await bus.queue(q).stats()
    assert.equal(stats.inFlight, 0)
    assert.equal(stats.length + stats.consumed, total)
    // In order: what we read is a prefix, what is left is the rest, from where the child stopped.
    const left = (await remaining(q)).map((l) => l.split(' ')[0])
    const names = numbered('e', total).split('\n').slice(0, total)
    assert.deepEqual(got, names.slice(0, got.length))
    assert.deepEqual(left, names.slice(total - left.length))
    assert.ok(left.length >= 1000, `only ${left.length} left: more was taken than a pipe holds`)
  }
})

test('push and pull say on stderr how many messages went where (the shard named), also when stderr is not a terminal; --quiet does not', async () => {
  const q = uniqueName('summary')
  const total = 1234
  const input = numbered('s', total)
  const pushed = await runCli(['push', q, '--lines'], { input, env: env() })
  ok(pushed)
  const shard = (await bus.queue(q).shard()).id
  assert.equal(pushed.stderr, `busmq: pushed 1,234 messages (${formatBytes(Buffer.byteLength(input) - total)}) to queue ${q} on shard ${shard}\n`)
  // The shard it names holds the queue's keys; the other one has none of them.
  for (const server of redis.servers) {
    const keys = await redisCommand(server.port, ['KEYS', `busmq:q:{${q}}:*`]) as string[]
    assert.equal(keys.length > 0, shard === `127.0.0.1:${server.port}/0`, `${server.port}: ${keys.join(' ')}`)
  }
  assert.equal(pushed.stdout.length, 0)

  const pulled = await runCli(['pull', q, '--lines', '--max', '1000'], { env: env() })
  ok(pulled)
  assert.equal(pulled.stdout.toString(), numbered('s', 1000))
  assert.equal(pulled.stderr, `busmq: pulled 1,000 messages (${formatBytes(Buffer.byteLength(numbered('s', 1000)))}) from queue ${q} on shard ${shard}\n`)
  const replayed = await runCli(['pull', q, '--lines', '--from', '0', '--until-empty'], { env: env() })
  ok(replayed)
  assert.equal(replayed.stderr, `busmq: replayed 234 messages (1.40 kB) from queue ${q} on shard ${shard}\n`)
  const one = await runCli(['pull', q, '--lines', '--max', '1', '--reliable'], { env: env() })
  ok(one)
  assert.equal(one.stderr, `busmq: pulled 1 message (6 B) from queue ${q} on shard ${shard}\n`)

  const quiet = await Promise.all([
    runCli(['push', q, '--lines', '--quiet', '--end'], { input: 'q\n', env: env() }),
    runCli(['pull', q, '-q', '--max', '1'], { env: env() })
  ])
  for (const r of quiet) {
    ok(r)
    assert.equal(r.stderr, '')
  }
})

test('stat of a queue that does not exist: one line on stderr saying so, exit 1; the queues that exist are still shown', async () => {
  const q = uniqueName('here')
  const nope = uniqueName('nope')
  ok(await runCli(['push', q, '--lines'], { input: 'a\nb\n', env: env() }))
  const missing = `busmq: queue ${nope} does not exist on any shard (${bus.shardIds.join(', ')}) (ERR_BUSMQ_CLI_NO_SUCH_QUEUE)\n`

  const table = await runCli(['stat', q, nope], { env: env() })
  assert.equal(table.code, 1)
  assert.equal(table.stderr, missing)
  const lines = table.stdout.toString().trimEnd().split('\n')
  assert.equal(lines.length, 2)
  assert.match(lines[1], new RegExp(`^${q} +2 +2 +0 `))

  // --json has a row for every name given, in order; the missing one says exists: false.
  const json = await runCli(['stat', nope, q, '--json'], { env: env() })
  assert.equal(json.code, 1)
  assert.equal(json.stderr, missing)
  const [a, b] = JSON.parse(json.stdout.toString())
  assert.deepEqual({ ...a, shard: '' }, { name: nope, exists: false, shard: '', length: 0, pushed: 0, consumed: 0, inFlight: 0, clients: 0, ttl: -2 })
  assert.ok(bus.shardIds.includes(a.shard))
  assert.deepEqual([b.name, b.exists, b.length], [q, true, 2])

  // Only missing queues: nothing on stdout. One shard: the line names it.
  const alone = await runCli(['stat', nope, `${q}:dead-letter`, '--redis', redis.servers[0].url], { env: env() })
  assert.equal(alone.code, 1)
  assert.equal(alone.stdout.length, 0)
  const id = `127.0.0.1:${redis.servers[0].port}/0`
  assert.equal(alone.stderr, `busmq: queue ${nope} does not exist on shard ${id} (ERR_BUSMQ_CLI_NO_SUCH_QUEUE)\n` +
    `busmq: queue ${q}:dead-letter does not exist on shard ${id} (ERR_BUSMQ_CLI_NO_SUCH_QUEUE)\n`)
})

/** Runs `sh -c script` with `args` as $0, $1, …; resolves with its exit code, stdout and stderr. */
async function shell (script: string, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn('sh', ['-c', script, ...args], { env: cliEnv(env()), stdio: ['ignore', 'pipe', 'pipe'] })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  const [code] = await once(child, 'close') as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

test('pull --lines | head -3: what pull handed to the pipe is consumed (the summary says how many), the rest stays queued, in order; --max 3 takes 3', async () => {
  // Short lines (the whole queue fits in a pipe; --until-empty, as with --follow pull could wait for more
  // after head has gone) and 1 kB lines (1 MB does not fit in a pipe, so pull is sure to find it closed).
  for (const [pad, stop] of [[0, ['--until-empty']], [1000, []]] as const) {
    const q = uniqueName('head')
    const total = 1000
    const names = numbered('h', total).split('\n').slice(0, total)
    ok(await runCli(['push', q, '--lines', '--quiet'], { input: numbered('h', total, pad), env: env() }))
    const r = await shell(`{ "$0" "$1" pull "$2" --lines ${stop.join(' ')}; echo "pull exited with $?" >&2; } | head -3`, [process.execPath, BIN, q])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.split('\n').map((l) => l.split(' ')[0]), ['h0', 'h1', 'h2', ''])
    const shard = escape((await bus.queue(q).shard()).id)
    const summary = new RegExp(`^busmq: pulled ([\\d,]+) messages? \\([\\d.]+ [km]?B\\) from queue ${q} on shard ${shard}(; stdout was closed, what was not written in full went back to the queue)?\npull exited with 0\n$`).exec(r.stderr)
    assert.ok(summary, r.stderr)
    const taken = Number(summary[1].replace(/,/g, ''))
    if (pad > 0) assert.ok(summary[2] !== undefined && taken < total, `${taken} taken: ${r.stderr}`)
    // Exactly what the summary says was consumed; every message pull took and did not hand to the pipe
    // went back to the front of the queue, in order.
    const stats = await bus.queue(q).stats()
    assert.deepEqual([stats.length, stats.consumed, stats.inFlight], [total - taken, taken, 0], r.stderr)
    assert.deepEqual((await remaining(q)).map((l) => l.split(' ')[0]), names.slice(taken))
  }

  // With --max, exactly N are taken.
  const q = uniqueName('head-max')
  ok(await runCli(['push', q, '--lines', '--quiet'], { input: numbered('m', 10), env: env() }))
  const max = await shell('"$0" "$1" pull "$2" --lines --max 3 | head -3', [process.execPath, BIN, q])
  assert.equal(max.code, 0, max.stderr)
  assert.equal(max.stdout, 'm0\nm1\nm2\n')
  assert.equal(max.stderr, `busmq: pulled 3 messages (9 B) from queue ${q} on shard ${(await bus.queue(q).shard()).id}\n`)
  assert.deepEqual(await remaining(q), numbered('m', 10).split('\n').slice(3, 10))
})

test('tunnel: an HTTP server reached through tunnel listen + tunnel connect, both ways', async () => {
  const blob = randomBytes(2 * 1024 * 1024)
  const server = http.createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-length': blob.length })
      res.end(blob)
      return
    }
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => res.end(sha256(Buffer.concat(parts))))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const target = (server.address() as AddressInfo).port
  const port = await freePort()
  const channel = uniqueName('web')
  const listen = startCli(['tunnel', 'listen', channel, '--to', `127.0.0.1:${target}`], { env: env(), timeout: 60_000 })
  const connect = startCli(['tunnel', 'connect', channel, '--port', String(port)], { env: env(), timeout: 60_000 })
  try {
    await Promise.all([listen.waitForStderr(/→ 127\.0\.0\.1:\d+/), connect.waitForStderr(/→ channel/)])
    const get = await new Promise<Buffer>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('end', () => resolve(Buffer.concat(parts)))
      }).on('error', reject)
    })
    assert.equal(get.length, blob.length)
    assert.equal(sha256(get), sha256(blob))
    const body = randomBytes(1024 * 1024)
    const posted = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent: false }, (res) => {
        let text = ''
        res.on('data', (d) => { text += String(d) })
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      req.end(body)
    })
    assert.equal(posted, sha256(body))
  } finally {
    listen.child.kill('SIGTERM')
    connect.child.kill('SIGTERM')
    const [l, c] = await Promise.all([listen.done, connect.done])
    server.close()
    ok(l)
    ok(c)
  }
})

test('tunnel: a half-close (FIN) travels through, and a failed target connection cuts the client', async () => {
  // Answers with the sha256 of everything it got, once the client has half-closed.
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    const parts: Buffer[] = []
    sock.on('data', (d: Buffer) => parts.push(d))
    sock.on('end', () => sock.end(sha256(Buffer.concat(parts))))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const target = (server.address() as AddressInfo).port
  const port = await freePort()
  const channel = uniqueName('fin')
  const listen = startCli(['tunnel', 'listen', channel, '--to', `127.0.0.1:${target}`], { env: env(), timeout: 60_000 })
  const connect = startCli(['tunnel', 'connect', channel, '--port', String(port)], { env: env(), timeout: 60_000 })
  try {
    await Promise.all([listen.waitForStderr(/→ 127\.0\.0\.1:\d+/), connect.waitForStderr(/→ channel/)])
    const data = randomBytes(300_000)
    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    let answer = ''
    client.on('data', (d) => { answer += String(d) })
    client.end(data)
    await once(client, 'end')
    assert.equal(answer, sha256(data))
    client.destroy()

    // The target goes away: a new tunnelled connection is cut, not left hanging.
    server.close()
    const lost = net.connect({ port, host: '127.0.0.1' })
    lost.on('error', () => {})
    lost.write('hello?')
    const started = Date.now()
    await once(lost, 'close')
    assert.ok(Date.now() - started < 10_000)
  } finally {
    listen.child.kill('SIGTERM')
    connect.child.kill('SIGTERM')
    ok(await listen.done)
    ok(await connect.done)
  }
})

test('stat --json reports length, counters, in-flight, clients, TTL and shard; the table lines up', async () => {
  const q = uniqueName('stat')
  const missing = uniqueName('missing')
  ok(await runCli(['push', q, '--lines'], { input: numbered('s', 5), env: env() }))
  ok(await runCli(['pull', q, '--max', '2'], { env: env() }))
  const r = await runCli(['stat', q, '--json'], { env: env() })
  ok(r)
  assert.equal(r.stderr, '')
  const [a] = JSON.parse(r.stdout.toString())
  assert.deepEqual(Object.keys(a).sort(), ['clients', 'consumed', 'exists', 'inFlight', 'length', 'name', 'pushed', 'shard', 'ttl'])
  assert.deepEqual({ ...a, ttl: 0 }, { name: q, exists: true, shard: (await bus.queue(q).shard()).id, length: 3, pushed: 5, consumed: 2, inFlight: 0, clients: 0, ttl: 0 })
  assert.ok(a.ttl > 0 && a.ttl <= 30_000, `ttl ${a.ttl}`)
  assert.ok(bus.shardIds.includes(a.shard))

  ok(await runCli(['push', missing.replace('missing', 'other'), '--lines'], { input: numbered('o', 12), env: env() }))
  const table = await runCli(['stat', q, missing.replace('missing', 'other')], { env: env() })
  ok(table)
  const lines = table.stdout.toString().trimEnd().split('\n')
  assert.equal(lines.length, 3)
  assert.match(lines[0], /^QUEUE +LENGTH +PUSHED +CONSUMED +IN-FLIGHT +CLIENTS +TTL +SHARD$/)
  assert.match(lines[1], new RegExp(`^${q} +3 +5 +2 +0 +0 +[\\d.]+s +127\\.0\\.0\\.1:\\d+/0$`))
  const end = lines[0].indexOf('LENGTH') + 'LENGTH'.length
  assert.equal(lines[1][end - 1], '3')
  assert.equal(lines[2].slice(end - 2, end), '12')

  // Without names it finds the queues of the prefix.
  const prefix = `p${Date.now()}`
  ok(await runCli(['push', 'one', '--prefix', prefix], { input: 'x', env: env() }))
  ok(await runCli(['push', 'two', '--prefix', prefix, '--lines'], { input: 'a\nb\n', env: env() }))
  const found = await runCli(['stat', '--json', '--prefix', prefix], { env: env() })
  ok(found)
  assert.deepEqual(JSON.parse(found.stdout.toString()).map((s: any) => [s.name, s.length]), [['one', 1], ['two', 2]])
})

test('request: prints the reply as a JSON line, a streamed reply one line per chunk; --bytes; a failed handler and a timeout exit 1 with their code', async () => {
  const name = uniqueName('cli-svc')
  const svc = bus.service<{ n: number, fail?: boolean }, unknown>(name, { objectMode: true })
  const server = svc.serve((req) => {
    if (req.data.fail === true) throw Object.assign(new Error('no thumbnails today'), { code: 'E_THUMBS' })
    if (!req.streamed) return { square: req.data.n * req.data.n }
    return Readable.from(Array.from({ length: req.data.n }, (_, i) => ({ i })))
  })
  try {
    // The command always asks for a stream: a handler's value is one line, its stream a line per chunk.
    const one = await runCli(['request', name, '{"n":3}'], { env: env() })
    ok(one)
    assert.equal(one.stdout.toString(), '{"i":0}\n{"i":1}\n{"i":2}\n')
    const bytes = bus.service(`${name}-bytes`)
    const byteServer = bytes.serve((req) => Buffer.concat([Buffer.from('got '), req.data]))
    const b = await runCli(['request', `${name}-bytes`, 'plain text', '--bytes'], { env: env() })
    ok(b)
    assert.equal(b.stdout.toString(), 'got plain text')
    await byteServer.close()
    const failed = await runCli(['request', name, '{"n":1,"fail":true}'], { env: env() })
    assert.equal(failed.code, 1)
    assert.equal(failed.stdout.length, 0)
    assert.match(failed.stderr, /^busmq: the service handler failed: Error: no thumbnails today \(E_THUMBS\) \(ERR_BUSMQ_REMOTE\)\n$/)
    const nobody = await runCli(['request', uniqueName('nobody'), '1', '--wait', '300'], { env: env() })
    assert.equal(nobody.code, 1)
    assert.match(nobody.stderr, /\(ERR_BUSMQ_REQUEST_TIMEOUT\)\n$/)
    const bad = await runCli(['request', name, '{oops'], { env: env() })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /^busmq: the request is not JSON .*\(try "busmq request --help"\)\n$/)
  } finally {
    await server.close()
  }
  const value = bus.service(uniqueName('cli-value'), { objectMode: true })
  const valueServer = value.serve(() => ({ ok: true }))
  const r = await runCli(['request', value.name, 'null'], { env: env() })
  ok(r)
  assert.equal(r.stdout.toString(), '{"ok":true}\n')
  await valueServer.close()
})

test('stat lists services: servers, running and waiting requests; --services --json; a missing service exits 1', async () => {
  const prefix = `s${Date.now()}`
  const sbus = new Bus({ redis: redis.servers.map((x) => x.url), prefix })
  try {
    const svc = sbus.service('thumbs', { objectMode: true })
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const server = svc.serve(async () => { await gate }, { concurrency: 2 })
    const pending = Array.from({ length: 5 }, () => svc.request(1, { timeout: 60_000 }))
    await sbus.queue('plain').push('x')
    assert.ok(await eventually(async () => (await svc.stats()).running === 2 && (await svc.stats()).waiting === 3))
    const table = await runCli(['stat', '--prefix', prefix], { env: env() })
    ok(table)
    const lines = table.stdout.toString().trimEnd().split('\n')
    assert.match(lines[0], /^QUEUE +LENGTH/)
    assert.match(lines[1], /^plain +1 /)
    assert.equal(lines[2], '')
    assert.match(lines[3], /^SERVICE +SERVERS +RUNNING +CONCURRENCY +WAITING +P50 +P99 +TTL +SHARD$/)
    // Nothing finished yet: no percentiles.
    assert.match(lines[4], /^thumbs +1 +2 +2 +3 +- +- +[\d.]+s +127\.0\.0\.1:\d+\/0$/)
    const json = await runCli(['stat', '--services', '--json', '--prefix', prefix, 'thumbs', 'nope'], { env: env() })
    assert.equal(json.code, 1)
    const [found, missing] = JSON.parse(json.stdout.toString())
    assert.deepEqual({ ...found, ttl: 0 }, {
      name: 'thumbs', exists: true, shard: (await svc.stats()).shard, servers: 1, reliableServers: 0, running: 2, concurrency: 2, waiting: 3, waitingReliable: 0, ttl: 0
    })
    assert.equal(missing.exists, false)
    assert.match(json.stderr, /^busmq: service nope does not exist on any shard \(.*\) \(ERR_BUSMQ_CLI_NO_SUCH_SERVICE\)\n$/)
    release()
    await Promise.all(pending)
    // The 5 finished: their handling time's percentiles, as the server told them.
    await eventually(async () => {
      const s = await svc.stats()
      return s.p50 !== undefined && s.running === 0 && s.waiting === 0
    })
    const after = await runCli(['stat', '--services', '--prefix', prefix], { env: env() })
    ok(after)
    assert.match(after.stdout.toString().trimEnd().split('\n')[1], /^thumbs +1 +0 +2 +0 +[\d.]+ms +[\d.]+ms +[\d.]+s +127\.0\.0\.1:\d+\/0$/)
    await server.close()
  } finally {
    await sbus.close()
  }
})

test('usage errors exit 2 with one line and a hint; --help and --version exit 0', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['frob'], /^busmq: unknown command "frob" \(try "busmq --help"\)\n$/],
    [[], /^busmq: missing command \(try "busmq --help"\)\n$/],
    [['pull', 'q', '--bogus'], /^busmq: unknown option --bogus \(try "busmq pull --help"\)\n$/],
    [['push'], /^busmq: missing queue name \(try "busmq push --help"\)\n$/],
    [['pull'], /^busmq: missing queue name \(try "busmq pull --help"\)\n$/],
    [['pull', 'q', '--max', 'abc'], /^busmq: --max must be an integer from 1 to \d+, got "abc" \(try "busmq pull --help"\)\n$/],
    [['pull', 'q', '--max', '0'], /^busmq: --max must be an integer/],
    [['pull', 'q', '--max'], /^busmq: option --max needs a value/],
    [['pull', 'q', '--lines', '--json'], /^busmq: --lines and --json cannot be used together/],
    [['pull', 'bad{name'], /^busmq: queue name "bad\{name" has a character outside/],
    [['pull', 'a', 'b'], /^busmq: unexpected argument "b"/],
    [['tunnel', 'listen', 'c'], /^busmq: missing --to HOST:PORT \(try "busmq tunnel --help"\)\n$/],
    [['tunnel', 'dig', 'c'], /^busmq: unknown tunnel command "dig"/],
    [['stat', '--watch=soon'], /^busmq: --watch must be an integer from 50 to \d+, got "soon"/],
    [['dev', '--shards', '0'], /^busmq: --shards must be an integer from 1 to 32/],
    [['push', 'q', '--redis', 'http://x'], /^busmq: --redis: Redis URL must start with redis:\/\//]
  ]
  const results = await Promise.all(cases.map(([args]) => runCli(args, { env: env() })))
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i][0].join(' ')}: exit ${String(r.code)}, ${r.stderr}`)
    assert.match(r.stderr, cases[i][1])
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr)
    assert.equal(r.stdout.length, 0)
  })

  const helps = await Promise.all([[], ['push'], ['pull'], ['tunnel'], ['stat'], ['dev'], ['request']].map((c) => runCli([...c, '--help'])))
  helps.forEach((r, i) => {
    ok(r)
    assert.match(r.stdout.toString(), /^Usage: busmq /)
    assert.match(r.stdout.toString(), /--redis URL/)
    if (i > 0) assert.match(r.stdout.toString(), new RegExp(`^Usage: busmq ${['push', 'pull', 'tunnel', 'stat', 'dev', 'request'][i - 1]}`))
  })
  const v = await runCli(['--version'])
  ok(v)
  const pkg = JSON.parse(await fsp.readFile(new URL('../../package.json', import.meta.url), 'utf8'))
  assert.equal(v.stdout.toString(), `${pkg.version as string}\n`)
})

test('a Redis that cannot be reached: said at once in plain words, then exit 1 after --timeout naming it and why', async () => {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  const id = `127\\.0\\.0\\.1:${port}/0`
  const notice = (ms: number): string => `busmq: cannot reach Redis at ${id} \\(connection refused\\); retrying for up to ${ms} ms \\(--timeout\\)\n`
  const failure = (ms: number): string => `busmq: cannot reach Redis at ${id} \\(connection refused\\) within ${ms} ms \\(--timeout\\) \\(ERR_BUSMQ_CONNECT_TIMEOUT\\)\n`
  // The first connection error is reported as soon as it comes, long before the command gives up.
  const pull = startCli(['pull', 'q', '--redis', url], { timeout: 60_000 })
  await pull.waitForStderr(new RegExp(`^${notice(5000)}`))
  const [pulled, pushed, quiet, stat] = await Promise.all([
    pull.done,
    runCli(['push', 'q', '--timeout', '1000'], { env: { BUSMQ_REDIS: url }, input: 'x' }),
    runCli(['push', 'q', '--timeout', '1000', '--quiet'], { env: { BUSMQ_REDIS: url }, input: 'x' }),
    // Two shards, one of them fine: only the other one is named.
    runCli(['stat', '--redis', `${redis.servers[0].url},${url}`, '--timeout', '1000'])
  ])
  assert.equal(pulled.code, 1)
  assert.match(pulled.stderr, new RegExp(`^${notice(5000)}${failure(5000)}$`))
  assert.ok(pulled.ms < 5000 + 10_000, `took ${pulled.ms} ms`)
  assert.equal(pushed.code, 1)
  assert.match(pushed.stderr, new RegExp(`^${notice(1000)}${failure(1000)}$`))
  assert.equal(quiet.code, 1)
  assert.match(quiet.stderr, new RegExp(`^${failure(1000)}$`), '--quiet: only the error')
  assert.equal(stat.code, 1)
  assert.match(stat.stderr, new RegExp(`^${notice(1000)}${failure(1000)}$`))
  for (const r of [pulled, pushed, quiet, stat]) {
    assert.doesNotMatch(r.stderr, /enableOfflineQueue|isn't writeable|ECONNREFUSED/, 'no ioredis internals')
    assert.equal(r.stdout.length, 0)
  }
  const debug = await runCli(['pull', 'q', '--redis', url, '--timeout', '200', '--debug'])
  assert.equal(debug.code, 1)
  assert.match(debug.stderr, /\n +at /, 'a stack trace with --debug')
  assert.match(debug.stderr, /caused by: Error: connect ECONNREFUSED/, 'and, with --debug, the ioredis error')
})

test('connection errors in words: socket errors, and what Redis says to a bad login', () => {
  const err = (message: string, code?: string): Error => Object.assign(new Error(message), code !== undefined ? { code } : {})
  assert.deepEqual(connectionProblem(err('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), { reason: 'connection refused', fatal: false })
  assert.deepEqual(connectionProblem(err('getaddrinfo ENOTFOUND nohost', 'ENOTFOUND')), { reason: 'host not found', fatal: false })
  assert.deepEqual(connectionProblem(err('connect ETIMEDOUT', 'ETIMEDOUT')), { reason: 'connection timed out', fatal: false })
  assert.deepEqual(connectionProblem(err('connect EHOSTUNREACH 10.0.0.1:6379', 'EHOSTUNREACH')), { reason: 'host unreachable', fatal: false })
  assert.deepEqual(connectionProblem(err('NOAUTH Authentication required.')), { reason: 'a password is required', fatal: true })
  assert.deepEqual(connectionProblem(err('WRONGPASS invalid username-password pair or user is disabled.')), { reason: 'wrong user name or password', fatal: true })
  assert.deepEqual(connectionProblem(err('ERR invalid password')), { reason: 'wrong user name or password', fatal: true })
  assert.equal(connectionProblem(err('Protocol error, got "H" as reply type byte')).reason, 'not a Redis server? (Protocol error, got "H" as reply type byte)')
  assert.equal(connectionProblem(err('something new', 'EWHATEVER')).reason, 'something new (EWHATEVER)')
})

test('a Redis that refuses the login: exit 1 at once (not after --timeout), saying so', async () => {
  const server = await startRedis({ args: ['--requirepass', 'secret'] })
  try {
    const host = `127.0.0.1:${server.port}`
    // A generous --timeout: the commands must not wait for it (runCli kills them after 60 s).
    const [none, wrong, user, right] = await Promise.all([
      runCli(['push', 'q', '--redis', `redis://${host}`, '--timeout', '120000'], { input: 'x' }),
      runCli(['stat', 'q', '--redis', `redis://:nope@${host}`, '--timeout', '120000']),
      runCli(['pull', 'q', '--redis', `redis://bob:secret@${host}`, '--timeout', '120000']),
      runCli(['push', 'q', '--redis', `redis://:secret@${host}`, '--lines'], { input: 'x\n' })
    ])
    assert.equal(none.code, 1, none.stderr)
    assert.equal(none.stderr, `busmq: Redis at ${host}/0 refused the login: a password is required ` +
      '(give it in the URL: redis://[USER]:PASSWORD@HOST:PORT) (ERR_BUSMQ_CLI_AUTH)\n')
    for (const r of [wrong, user]) {
      assert.equal(r.code, 1, r.stderr)
      assert.equal(r.stderr, `busmq: Redis at ${host}/0 refused the login: wrong user name or password (ERR_BUSMQ_CLI_AUTH)\n`)
    }
    for (const r of [none, wrong, user]) assert.ok(r.ms < 30_000, `took ${r.ms} ms`)
    ok(right)
    assert.equal(right.stderr, `busmq: pushed 1 message (1 B) to queue q on shard ${host}/0\n`)
  } finally {
    await server.dispose()
  }
})

test('SIGTERM and SIGINT during an idle pull --follow: exit 0, and the queue keeps what comes later', async () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const q = uniqueName('idle')
    const cli = startCli(['pull', q, '--follow', '--lines'], { env: env(), timeout: 30_000 })
    assert.ok(await eventually(async () => (await bus.queue(q).stats()).clients === 1), 'the reader never attached')
    cli.child.kill(signal)
    const r = await cli.done
    ok(r)
    assert.ok(r.ms < 15_000)
    assert.equal(r.stdout.length, 0)
    assert.ok(await eventually(async () => (await bus.queue(q).stats()).clients === 0))
    const w = bus.queue(q).createWriteStream()
    for (let i = 0; i < 100; i++) w.write(`later${i}`)
    w.end()
    await once(w, 'finish')
    assert.equal(await bus.queue(q).count(), 100)
  }
})

test('SIGTERM while stdout is blocked: every message is either written whole or back in the queue, once', async () => {
  const q = uniqueName('blocked')
  const total = 1000
  const names = numbered('b', total).split('\n').slice(0, total)
  ok(await runCli(['push', q, '--lines'], { input: numbered('b', total, 1000), env: env() }))
  const cli = startCli(['pull', q, '--lines'], { env: env(), readStdout: false })
  // It has taken what it could and is stuck writing (nobody reads its stdout).
  assert.ok(await eventually(async () => (await bus.queue(q).count()) < total))
  await stdoutBackedUp(cli.child)
  cli.child.kill('SIGTERM')
  const [code] = await cli.exited
  assert.equal(code, 0)
  cli.readStdout()
  const got = completeLines((await cli.done).stdout.toString()).map((l) => l.split(' ')[0])
  const left = (await remaining(q)).map((l) => l.split(' ')[0])
  assert.ok(got.length > 0, 'nothing was written before the signal')
  assert.deepEqual([...got, ...left], names)
})

test('SIGTERM during push: what was read is pushed, without an end marker; exit 0', async () => {
  const q = uniqueName('push-term')
  const cli = startCli(['push', q, '--lines', '--end'], { env: env(), timeout: 30_000 })
  cli.child.stdin!.write(numbered('t', 100))
  assert.ok(await eventually(async () => (await bus.queue(q).count()) === 100))
  cli.child.kill('SIGTERM')
  const r = await cli.done
  ok(r)
  assert.equal(r.stderr, `busmq: interrupted: pushed 100 messages (290 B), no end marker to queue ${q} on shard ${(await bus.queue(q).shard()).id}\n`)
  const stats = await bus.queue(q).stats()
  assert.deepEqual([stats.length, stats.pushed], [100, 100])
})

test('dev --shards 2 prints 2 URLs that answer PING, and SIGTERM stops them and removes their dir', async () => {
  const cli = startCli(['dev', '--shards', '2'], { timeout: 60_000 })
  try {
    assert.ok(await eventually(() => cli.stdout().toString().split('\n').length >= 3, 15_000), cli.stderr())
    const [list, exported] = cli.stdout().toString().split('\n')
    const urls = list.split(',')
    assert.equal(urls.length, 2)
    assert.equal(exported, `export BUSMQ_REDIS=${list}`)
    const ports = urls.map((u) => {
      assert.match(u, /^redis:\/\/127\.0\.0\.1:\d+$/)
      return Number(new URL(u).port)
    })
    assert.ok(ports.every((p) => p !== 6379 && p !== 16390))
    const pids: number[] = []
    for (const port of ports) {
      assert.ok(await ping(port))
      const info = String(await redisCommand(port, ['INFO', 'server']))
      pids.push(Number(/process_id:(\d+)/.exec(info)![1]))
    }
    const dir = /running in (\S+);/.exec(cli.stderr())![1]
    await fsp.access(dir)
    // The URLs work as a bus.
    ok(await runCli(['push', 'dev-q', '--lines'], { input: 'hi\n', env: { BUSMQ_REDIS: list } }))
    cli.child.kill('SIGTERM')
    ok(await cli.done)
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' })
    for (const port of ports) assert.equal(await ping(port, 300), false)
    await assert.rejects(fsp.access(dir))
  } finally {
    cli.child.kill('SIGKILL')
  }
})

test('dev killed with SIGKILL still leaves no redis-server and no temp dir behind', async () => {
  const cli = startCli(['dev'], { timeout: 60_000 })
  assert.ok(await eventually(() => /running in (\S+);/.test(cli.stderr()), 15_000), cli.stderr())
  const port = Number(new URL(cli.stdout().toString().split('\n')[0]).port)
  const dir = /running in (\S+);/.exec(cli.stderr())![1]
  assert.ok(await ping(port))
  cli.child.kill('SIGKILL')
  await cli.done
  // Its watchdog notices within a second or so.
  assert.ok(await eventually(async () => !(await ping(port, 300)), 10_000), 'the shard outlived busmq dev')
  assert.ok(await eventually(async () => await fsp.access(dir).then(() => false, () => true), 10_000), `${dir} is still there`)
})

test('dev without redis-server on PATH exits 1 saying so', async () => {
  const empty = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-nopath-'))
  try {
    const r = await runCli(['dev'], { env: { PATH: empty } })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^busmq: redis-server not found on PATH: install Redis >= 6\.2 .*\(ERR_BUSMQ_CLI_NO_REDIS_SERVER\)\n$/)
  } finally {
    await fsp.rm(empty, { recursive: true, force: true })
  }
})
