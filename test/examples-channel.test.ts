// Runs the compiled channel examples (dist/examples/*.js) against a test redis-server.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import net, { type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { useRedis } from './helpers/redis-server.js'
import { eventually, uniqueName } from './helpers/bus.js'

const redis = useRedis(1)

const example = (file: string): string => fileURLToPath(new URL(`../examples/${file}`, import.meta.url))

interface Run {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<[number | null, NodeJS.Signals | null]>
}

function start (t: TestContext, file: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  // BUSMQ_REDIS is set only where a test sets it, so the argv path is tested on its own.
  const base = { ...process.env }
  delete base.BUSMQ_REDIS
  const child = spawn(process.execPath, [example(file), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...base, ...env } })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => { out += d })
  child.stderr!.on('data', (d) => { err += d })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return { child, stdout: () => out, stderr: () => err, exited }
}

/** Runs an example to its end (SIGKILL after `ms`); resolves with its exit code and output. */
async function run (t: TestContext, file: string, args: string[], env: NodeJS.ProcessEnv = {}, ms = 60_000): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const r = start(t, file, args, env)
  const timer = setTimeout(() => r.child.kill('SIGKILL'), ms)
  const [code] = await r.exited
  clearTimeout(timer)
  return { code, stdout: r.stdout(), stderr: r.stderr() }
}

test('tcp-tunnel --self-test (Redis URL as an argument) tunnels to its echo server and exits 0', { timeout: 90_000 }, async (t) => {
  const { code, stdout, stderr } = await run(t, 'tcp-tunnel.js', ['--self-test', redis.servers[0].url])
  assert.equal(code, 0, stderr)
  assert.match(stdout, /^tcp-tunnel self-test: ok, 4 connections, 4100001 bytes echoed byte-exact in \d+ ms$/m)
  assert.equal(stderr, '')
})

test('tcp-tunnel --self-test takes the Redis URL from BUSMQ_REDIS', { timeout: 90_000 }, async (t) => {
  const { code, stdout, stderr } = await run(t, 'tcp-tunnel.js', ['--self-test'], { BUSMQ_REDIS: redis.servers[0].url })
  assert.equal(code, 0, stderr)
  assert.match(stdout, /tcp-tunnel self-test: ok/)
})

test('tcp-tunnel exit and entry in two processes forward a TCP connection byte-exact', { timeout: 90_000 }, async (t) => {
  const echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  t.after(() => echo.close())
  const url = redis.servers[0].url
  const tunnel = uniqueName('tunnel')
  const exit = start(t, 'tcp-tunnel.js', ['exit', tunnel, `127.0.0.1:${(echo.address() as AddressInfo).port}`, url])
  const entry = start(t, 'tcp-tunnel.js', ['entry', tunnel, '0', url])
  let port = 0
  assert.ok(await eventually(() => {
    const m = /entry end listening on 127\.0\.0\.1:(\d+)/.exec(entry.stdout())
    if (m) port = Number(m[1])
    return port > 0
  }, 20_000), `entry did not start: ${entry.stderr()}`)
  assert.ok(await eventually(() => /exit end forwarding to 127\.0\.0\.1:\d+/.test(exit.stdout()), 20_000), exit.stderr())

  for (const size of [10, 700_000]) {
    const sent = randomBytes(size)
    const socket = net.connect({ port, host: '127.0.0.1' })
    const received: Buffer[] = []
    socket.on('data', (c: Buffer) => received.push(c))
    socket.end(sent)
    await once(socket, 'close')
    assert.ok(Buffer.concat(received).equals(sent), `${size} bytes echoed byte-exact through the tunnel`)
  }
  for (const r of [entry, exit]) r.child.kill('SIGTERM')
  assert.deepEqual(await Promise.all([entry.exited, exit.exited]), [[0, null], [0, null]])
  assert.equal(entry.stderr() + exit.stderr(), '')
})

test('tcp-tunnel without a mode prints its usage and exits 2', { timeout: 30_000 }, async (t) => {
  const { code, stderr } = await run(t, 'tcp-tunnel.js', [])
  assert.equal(code, 2)
  assert.match(stderr, /usage: tcp-tunnel\.js exit/)
})

test('request-response: the requester forks a responder, 200 requests are all answered, exit 0', { timeout: 90_000 }, async (t) => {
  const { code, stdout, stderr } = await run(t, 'request-response.js', [redis.servers[0].url, '200'])
  assert.equal(code, 0, stderr)
  assert.match(stdout, /^request-response: ok, 200 requests, 200 correct answers in \d+ ms \(\d+ requests\/s\), responder exited with code 0$/m)
  assert.equal(stderr, '')
})

test('request-response takes the Redis URL from BUSMQ_REDIS and sends 100 requests by default', { timeout: 90_000 }, async (t) => {
  const { code, stdout, stderr } = await run(t, 'request-response.js', [], { BUSMQ_REDIS: redis.servers[0].url })
  assert.equal(code, 0, stderr)
  assert.match(stdout, /request-response: ok, 100 requests, 100 correct answers/)
})
