// Runs the end-to-end demo (examples/demo.ts, `npm run demo`) as a user would, so it cannot go stale:
// without BUSMQ_REDIS it starts its own redis-server shards, and it must stop them before it exits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { ping } from './helpers/redis-server.js'

const DEMO = fileURLToPath(new URL('../examples/demo.js', import.meta.url))

test('npm run demo: file through a queue to a second process, HTTP through a tunnel, throughput; exit 0', { timeout: 180_000 }, async (t) => {
  const env = { ...process.env }
  delete env.BUSMQ_REDIS
  const child = spawn(process.execPath, [DEMO], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += String(d) })
  child.stderr.on('data', (d) => { err += String(d) })
  const timer = setTimeout(() => child.kill('SIGTERM'), 170_000)
  const started = Date.now()
  const [code] = await once(child, 'close')
  clearTimeout(timer)
  const ms = Date.now() - started
  assert.equal(code, 0, `demo failed after ${ms} ms:\n${out}\n${err}`)
  const shards = /^demo: started 2 local redis-server shards: (redis:\/\/\S+), (redis:\/\/\S+)$/m.exec(out)
  assert.ok(shards, out)
  assert.match(out, /^demo: file: [\d.]+ MB through queue \S+ to a second process \(busmq pull --until-end\): sha256 ok, [\d.]+ MB\/s$/m)
  assert.match(out, /^demo: tunnel: 3 HTTP GETs of [\d.]+ MB through busmq tunnel listen\/connect: sha256 ok, [\d.]+ MB\/s$/m)
  assert.match(out, /^demo: small messages: 100,000 × 32 B: pushed [\d,]+ msgs\/s, pulled [\d,]+ msgs\/s$/m)
  assert.match(out, /^demo: all checks passed$/m)
  // The shards it started are gone.
  for (const url of [shards[1], shards[2]]) assert.equal(await ping(Number(new URL(url).port), 300), false, `${url} still answers`)
  t.diagnostic(`demo took ${ms} ms`)
  for (const line of out.trim().split('\n')) t.diagnostic(line)
})
