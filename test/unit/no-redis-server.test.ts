// The unit tier needs no Redis: the other unit test files run here in a child process whose PATH holds
// nothing but `node`, so no redis-server (nor redis-cli) can be found, and they must all pass.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

test('the unit tier passes with no redis-server on PATH', { timeout: 180_000 }, async (t) => {
  const self = fileURLToPath(import.meta.url)
  const dir = path.dirname(self)
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.test.js') && f !== path.basename(self)).sort()
  assert.ok(files.length >= 5, `only ${files.length} unit test files in ${dir}`)

  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-unit-path-'))
  t.after(() => fs.rmSync(bin, { recursive: true, force: true }))
  fs.symlinkSync(process.execPath, path.join(bin, 'node'))
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin }
  // Run as a runner of its own, not as a child of this file's runner.
  delete env.NODE_TEST_CONTEXT
  assert.equal((spawnSync('redis-server', ['--version'], { env }).error as NodeJS.ErrnoException)?.code, 'ENOENT',
    'redis-server is still found on the restricted PATH')

  const child = spawn(process.execPath, ['--test', '--test-reporter=tap', '--test-timeout=30000', ...files], {
    cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { out += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 150_000)
  const [code] = await once(child, 'close') as [number | null]
  clearTimeout(timer)
  const count = (what: string): number => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(out)?.[1] ?? -1)
  t.diagnostic(`${files.length} files without redis-server on PATH: ${count('pass')} passed, ${count('fail')} failed`)
  assert.equal(code, 0, out.slice(-3000))
  assert.equal(count('fail'), 0)
  assert.ok(count('pass') >= 30, `only ${count('pass')} unit tests passed`)
})
