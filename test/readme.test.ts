// Runs every ```js block of README.md as written, each as its own program against a test Redis (given
// to `new Bus()` through BUSMQ_REDIS), so the README cannot go stale. A block must exit 0 by itself,
// write nothing to stderr, and print exactly what the `<!-- output: … -->` comment after it says, if
// there is one. Blocks that call require() run as CommonJS (.cjs), the others as ES modules (.mjs);
// `busmq` resolves to this checkout, as to an installed package.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Bus } from '../lib/index.js'
import { useRedis, redisCommand } from './helpers/redis-server.js'
import { REPO_ROOT, readmeBlocks, readmeJsBlocks } from './helpers/readme.js'

const redis = useRedis(1)
const blocks = readmeJsBlocks()
/** Temp dir with node_modules/busmq → this checkout; each block runs in a directory of its own in it. */
let dir = ''

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-readme-'))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(REPO_ROOT, path.join(dir, 'node_modules', 'busmq'), 'dir')
})

after(() => {
  if (!dir) return
  fs.unlinkSync(path.join(dir, 'node_modules', 'busmq'))
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Runs a program to its end (SIGKILL after `ms`). */
async function run (file: string, cwd: string, ms: number): Promise<{ code: number | null, signal: string | null, stdout: string, stderr: string }> {
  // Only the test Redis, never a BUSMQ_REDIS of the developer's (which may be the Redis on 6379).
  const { BUSMQ_REDIS: _, ...env } = process.env
  const child = spawn(process.execPath, [file], {
    cwd,
    env: { ...env, BUSMQ_REDIS: redis.servers[0].url },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), ms)
  const [code, signal] = await once(child, 'close')
  clearTimeout(timer)
  return { code, signal, stdout, stderr }
}

test('README.md has its JavaScript blocks where this test finds them', () => {
  assert.ok(blocks.length >= 10, `only ${blocks.length} js blocks found in README.md`)
  // A block that prints something is checked against an output comment; a comment must follow a js block.
  for (const b of readmeBlocks()) {
    if (b.output !== undefined) assert.equal(b.lang, 'js', `README.md:${b.line}: an output comment after a ${b.lang || 'plain'} block`)
  }
})

for (const block of blocks) {
  const kind = block.commonjs ? 'CommonJS' : 'ES module'
  test(`README.md:${block.line} runs as written (${kind})`, { timeout: 120_000 }, async () => {
    // Every block starts from an empty Redis, as a reader trying it would.
    await redisCommand(redis.servers[0].port, ['FLUSHALL'])
    const cwd = fs.mkdtempSync(path.join(dir, `line-${block.line}-`))
    const file = path.join(cwd, block.commonjs ? 'snippet.cjs' : 'snippet.mjs')
    fs.writeFileSync(file, block.code)
    const where = `README.md:${block.line} (${kind})`
    const { code, signal, stdout, stderr } = await run(file, cwd, 60_000)
    assert.equal(signal, null, `${where} did not exit by itself within 60 s\nstdout:\n${stdout}\nstderr:\n${stderr}`)
    assert.equal(code, 0, `${where} exited with code ${code}\nstderr:\n${stderr}`)
    assert.equal(stderr, '', `${where} wrote to stderr:\n${stderr}`)
    if (block.output !== undefined) {
      assert.equal(stdout, block.output, `${where} printed something else than the output comment after it says`)
    }
  })
}

test('new Bus() takes its shards from BUSMQ_REDIS, else redis://127.0.0.1:6379', async () => {
  const saved = process.env.BUSMQ_REDIS
  const buses: Bus[] = []
  const bus = (options?: ConstructorParameters<typeof Bus>[0]): Bus => {
    const b = new Bus(options)
    buses.push(b)
    return b
  }
  try {
    process.env.BUSMQ_REDIS = 'redis://127.0.0.1:7001, redis://127.0.0.1:7002/2'
    assert.deepEqual(bus().shardIds, ['127.0.0.1:7001/0', '127.0.0.1:7002/2'])
    // Given a layout, the bus does not look at BUSMQ_REDIS.
    assert.deepEqual(bus({ redis: 'redis://127.0.0.1:7003' }).shardIds, ['127.0.0.1:7003/0'])
    assert.deepEqual(bus({ cluster: ['127.0.0.1:7000'] }).shardIds, ['cluster'])
    process.env.BUSMQ_REDIS = ' '
    assert.deepEqual(bus().shardIds, ['127.0.0.1:6379/0'])
    delete process.env.BUSMQ_REDIS
    assert.deepEqual(bus().shardIds, ['127.0.0.1:6379/0'])
    process.env.BUSMQ_REDIS = 'http://127.0.0.1:7001'
    assert.throws(() => new Bus(), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  } finally {
    if (saved === undefined) delete process.env.BUSMQ_REDIS
    else process.env.BUSMQ_REDIS = saved
    // None of them connected: closing is immediate.
    await Promise.all(buses.map((b) => b.close()))
  }
})
