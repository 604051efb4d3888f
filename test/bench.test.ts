// Smoke test of the benchmark (`npm run bench`): a --quick run (tiny N, one round, peers tiny) must
// finish, print the table and report no FAILED contender. No timing is asserted.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const benchMain = fileURLToPath(new URL('../bench/index.js', import.meta.url))

test('npm run bench -- --quick runs every contender and every check passes', { timeout: 240_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-bench-test-'))
  const svg = path.join(dir, 'chart', 'bench.svg')
  const child = spawn(process.execPath, [benchMain, '--quick', `--svg=${svg}`], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
  const output = `${stdout}\n--- stderr ---\n${stderr}`
  assert.equal(code, 0, `bench exited with ${code}:\n${output}`)
  assert.match(stdout, /^contender\s+workload\s+N\/round\s+pushed\/s\s+drained\/s\s+concurrent\/s/m, `no table header:\n${output}`)
  assert.match(stdout, /^Targets \(same run, same server\):/m, `no targets:\n${output}`)
  for (const id of ['raw ioredis', 'busmq (this)', 'BusMQ 3.1', 'BullMQ 6.7', 'bee-queue 2.0']) {
    assert.ok(stdout.includes(id), `no row for ${id}:\n${output}`)
  }
  assert.doesNotMatch(stdout, /FAILED/, `a contender FAILED:\n${output}`)
  for (const goal of ['32 B bytes drained/s ≥ 0.8× raw', '1 KiB objectMode pushed/s ≥ 0.5× raw', 'queues × writer + reader ≥ 0.8× raw',
    'reliable → ack stream drained ≥ 100k msgs/s', 'channel ≥ 150 MB/s']) {
    assert.match(stdout, new RegExp(`^ {2}(PASS|MISS) {2}.*${goal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'), `no verdict for ${goal}:\n${output}`)
  }
  // --svg: the chart, with a bar for this project and for the raw limit.
  const chart = fs.readFileSync(svg, 'utf8')
  fs.rmSync(dir, { recursive: true, force: true })
  assert.match(chart, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
  assert.match(chart, /raw ioredis \(limit\)/)
  assert.match(chart, /busmq \(this\), bytes/)
  assert.match(chart, /<\/svg>\n$/)
})
