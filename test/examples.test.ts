// Runs the queue and service examples in examples/ against a test Redis, so they cannot go stale (the channel
// examples and the demo have their own test files).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { useRedis } from './helpers/redis-server.js'

const redis = useRedis(1)

const example = (name: string): string => fileURLToPath(new URL(`../examples/${name}.js`, import.meta.url))

/** Runs an example and resolves with its stdout; it must exit 0 by itself within 60 s. */
async function run (name: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  // Only the URL given here, never the developer's BUSMQ_REDIS (which may be the Redis on 6379).
  const { BUSMQ_REDIS: _, ...inherited } = process.env
  const child = spawn(process.execPath, [example(name), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...inherited, ...env }
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { err += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = await once(child, 'exit')
  clearTimeout(timer)
  assert.equal(signal, null, `${name} had to be killed: it did not exit by itself\n${err}`)
  assert.equal(code, 0, `${name} exited with ${code}\n${err}`)
  return out
}

const sha256 = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex')

test('examples/file-through-queue copies a given file through a queue and prints both sha256', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-examples-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const input = path.join(dir, 'in.bin')
  const output = path.join(dir, 'out.bin')
  fs.writeFileSync(input, randomBytes(3 * 1024 * 1024 + 7))
  const out = await run('file-through-queue', [redis.servers[0].url, input, output])
  const digest = sha256(input)
  assert.deepEqual(out.trim().split('\n'), [`${digest}  ${input}`, `${digest}  ${output}`, 'identical'])
  assert.equal(sha256(output), digest)
})

test('examples/file-through-queue makes its own file when given none (Redis URL from BUSMQ_REDIS)', async () => {
  const out = await run('file-through-queue', [], { BUSMQ_REDIS: redis.servers[0].url })
  const lines = out.trim().split('\n')
  assert.equal(lines.length, 3)
  const [a, b] = lines.slice(0, 2).map((l) => l.split('  '))
  assert.match(a[0], /^[0-9a-f]{64}$/)
  assert.equal(a[0], b[0])
  assert.equal(lines[2], 'identical')
  // Its temp files are gone.
  assert.equal(fs.existsSync(a[1]), false)
  assert.equal(fs.existsSync(b[1]), false)
})

test('examples/tee-transforms prints both branches of the tee, every message in order', async () => {
  const out = await run('tee-transforms', [redis.servers[0].url])
  assert.deepEqual(out.trim().split('\n'), [
    'upper: QUEUES ARE STREAMS AND STREAMS PIPE',
    'length: queues:6 are:3 streams:7 and:3 streams:7 pipe:4'
  ])
})

test('examples/services: two server processes share the requests, a streamed reply, a failing handler; the servers close gracefully', async () => {
  const out = await run('services', [redis.servers[0].url, '500'])
  assert.deepEqual(out.trim().split('\n'), [
    'services: 500 requests, 500 correct replies, in order (createTransform, 16 in flight), served by 2 processes',
    'services: streamed reply of 5 chunks: 1 4 9 16 25',
    'services: a failing handler: ERR_BUSMQ_REMOTE E_NEGATIVE',
    'services: ok'
  ])
})
