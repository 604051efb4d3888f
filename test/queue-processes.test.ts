import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { range, trackBuses } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url))

/** Runs a fixture; resolves with its stdout once it exits 0, rejects otherwise (killing it after `ms`). */
async function run (name: string, args: string[], ms = 100_000): Promise<string> {
  const child = spawn(process.execPath, [fixture(name), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { err += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), ms)
  const [code, signal] = await once(child, 'exit')
  clearTimeout(timer)
  if (code !== 0) throw new Error(`${name} ${args.join(' ')} exited with ${code ?? signal}:\n${err}`)
  return out
}

test('2 producer processes × 100,000 messages, 4 consumer processes: each message once, each producer in order', async (t) => {
  const producers = 2
  const consumers = 4
  const perProducer = 100_000
  const url = redis.servers[0].url
  const name = uniqueName('procs')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-procs-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const files = range(0, consumers).map((c) => path.join(dir, `consumer-${c}.txt`))

  // Consumers first: they wait on the empty queue, then compete for every batch.
  const consuming = files.map((file) => run('queue-consumer', [url, name, file]))
  const produced = await Promise.all(range(0, producers).map((p) => run('queue-producer', [url, name, String(p), String(perProducer)])))
  for (const out of produced) assert.equal(out.trim(), `pushed ${perProducer}`)

  // Every message is in the queue now; one end marker per consumer goes after all of them, so each
  // consumer stops at its own marker, after the last message it was going to get.
  const bus = await openBus(redis.servers)
  const q = bus.queue(name, { objectMode: true })
  for (let c = 0; c < consumers; c++) {
    const w = q.createWriteStream({ endMarker: true })
    w.end()
    await once(w, 'finish')
  }
  const outs = await Promise.all(consuming)
  assert.equal(await q.count(), 0, 'every marker was taken')
  await bus.close()

  const seen = range(0, producers).map(() => new Uint8Array(perProducer))
  const counts: number[] = []
  let total = 0
  for (let c = 0; c < consumers; c++) {
    const lines = fs.readFileSync(files[c], 'utf8').split('\n').filter((l) => l.length > 0)
    assert.equal(outs[c].trim(), `received ${lines.length}`, `consumer ${c} wrote every message it received`)
    counts.push(lines.length)
    total += lines.length
    const last = range(0, producers).map(() => -1)
    for (const line of lines) {
      const [p, i] = line.split(' ').map(Number)
      if (!(p >= 0 && p < producers && i >= 0 && i < perProducer)) assert.fail(`consumer ${c}: bad message ${line}`)
      if (i <= last[p]) assert.fail(`consumer ${c}: producer ${p}'s message ${i} after ${last[p]}`)
      last[p] = i
      seen[p][i]++
    }
  }
  t.diagnostic(`messages per consumer: ${counts.join(', ')}`)
  assert.equal(total, producers * perProducer)
  for (let p = 0; p < producers; p++) {
    const missing = seen[p].findIndex((n) => n === 0)
    const twice = seen[p].findIndex((n) => n > 1)
    assert.equal(missing, -1, `producer ${p}'s message ${missing} never arrived`)
    assert.equal(twice, -1, `producer ${p}'s message ${twice} arrived ${seen[p][twice]} times`)
  }
})
