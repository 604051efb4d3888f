// The package as an application gets it: `npm pack`, then `npm install <tarball>` into a scratch app
// (with typescript and @types/node at the versions this repository uses, so the npm cache serves them),
// where
// - tsc --strict (module nodenext, skipLibCheck off) type-checks the README's js and ts blocks, the type
//   tests of test/fixtures/package-types.ts, and CommonJS TypeScript that imports busmq;
// - `import` from an ES module and `require()` from CommonJS both load it and use a test Redis.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { useRedis } from './helpers/redis-server.js'
import { REPO_ROOT, readmeBlocks } from './helpers/readme.js'

const redis = useRedis(1)
let dir = ''
let app = ''
let tarball = ''

interface Result { code: number | null, signal: string | null, stdout: string, stderr: string }

/**
 * Variables that `npm test` sets for its scripts and that would point a nested npm at this repository
 * (npm_config_local_prefix would install into it) or describe it. Other npm_config_* (registry, cache,
 * cafile, …) are the user's configuration and stay.
 */
const NPM_SCRIPT_ENV = /^(?:npm_(?!config_)|npm_config_(?:local_prefix|prefix|global|location|workspaces?|include_workspace_root)$|init_cwd$)/i

/** Runs a command to its end (SIGKILL after `ms`), without BUSMQ_REDIS or the variables npm sets for scripts. */
async function run (command: string, args: string[], cwd: string, ms: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<Result> {
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !NPM_SCRIPT_ENV.test(k) && k !== 'BUSMQ_REDIS'))
  const child = spawn(command, args, { cwd, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), ms)
  const [code, signal] = await once(child, 'close')
  clearTimeout(timer)
  return { code, signal, stdout, stderr }
}

function ok (what: string, r: Result): void {
  assert.equal(r.signal, null, `${what} was killed after its timeout\n${r.stdout}\n${r.stderr}`)
  assert.equal(r.code, 0, `${what} exited with ${r.code}\n${r.stdout}\n${r.stderr}`)
}

const installedVersion = (name: string): string =>
  JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')).version

const write = (file: string, text: string): void => {
  fs.mkdirSync(path.dirname(path.join(app, file)), { recursive: true })
  fs.writeFileSync(path.join(app, file), text)
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-package-'))
  app = path.join(dir, 'app')
  fs.mkdirSync(app)
  // dist/ is built already (this test runs from it): pack without running `prepare` again.
  const pack = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], REPO_ROOT, 120_000)
  ok('npm pack', pack)
  const [info] = JSON.parse(pack.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  tarball = path.join(dir, info.filename)
  const files = info.files.map((f) => f.path)
  for (const f of ['package.json', 'README.md', 'bin/busmq.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/scripts/push-2.lua']) {
    assert.ok(files.includes(f), `the tarball lacks ${f}`)
  }
  assert.equal(files.filter((f) => f.startsWith('dist/test/')).length, 0, 'the tarball ships the tests')

  write('package.json', JSON.stringify({ name: 'scratch-app', version: '1.0.0', private: true, type: 'module' }, null, 2))
  const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball,
    `typescript@${installedVersion('typescript')}`, `@types/node@${installedVersion('@types/node')}`], app, 180_000)
  ok('npm install of the tarball', install)
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('the installed package declares its Node versions, exports and runtime type dependencies', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'busmq', 'package.json'), 'utf8'))
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.engines.node, '^20.19.0 || >=22.12.0')
  assert.deepEqual(pkg.exports['.'], { types: './dist/lib/index.d.ts', default: './dist/lib/index.js' })
  // The declarations import readable-stream's types: a plain install must bring them.
  assert.ok(pkg.dependencies['@types/readable-stream'], '@types/readable-stream is not a dependency')
  assert.ok(fs.existsSync(path.join(app, 'node_modules', '@types', 'readable-stream', 'index.d.ts')))
})

test('tsc --strict accepts the README snippets, CommonJS TypeScript and the typed API', { timeout: 180_000 }, async () => {
  // The app is an ES module package; cjs/ is a CommonJS one (its own package.json) in the same app.
  write('cjs/package.json', JSON.stringify({ type: 'commonjs' }))
  let snippets = 0
  for (const block of readmeBlocks()) {
    if (block.lang !== 'js' && block.lang !== 'ts') continue
    write(block.commonjs ? `cjs/readme-${block.line}.ts` : `src/readme-${block.line}.ts`, block.code)
    snippets++
  }
  assert.ok(snippets >= 10, `only ${snippets} README snippets`)
  write('src/package-types.ts', fs.readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'package-types.ts'), 'utf8'))
  // TypeScript in a CommonJS package: `import` compiles to require(), of an ES module.
  write('cjs/typed.ts', `import { Bus, type Queue } from 'busmq'

interface Job { n: number }
const bus = new Bus()
const jobs: Queue<Job> = bus.queue<Job>('jobs', { objectMode: true })
jobs.push({ n: 1 }).then(async () => { await bus.close() }, (err: Error) => { console.error(err) })
`)
  write('tsconfig.json', JSON.stringify({
    compilerOptions: {
      strict: true,
      module: 'nodenext',
      target: 'es2022',
      noEmit: true,
      skipLibCheck: false,
      // Every snippet is a module of its own, also a CommonJS one without import or export.
      moduleDetection: 'force',
      types: ['node']
    },
    include: ['src', 'cjs']
  }, null, 2))
  const tsc = await run(process.execPath, [path.join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], app, 150_000)
  // tsc prints its errors on stdout; name the README line of those in README snippets.
  tsc.stdout = tsc.stdout.replace(/^(?:src|cjs)\/readme-(\d+)\.ts\((\d+),(\d+)\)/gm,
    (_, fence: string, row: string, col: string) => `README.md:${Number(fence) + Number(row)}:${col}`)
  ok('tsc --strict in the scratch app', tsc)
})

test('import from an ES module and require() from CommonJS load one and the same module, which works', { timeout: 120_000 }, async () => {
  write('esm.mjs', `import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import * as busmq from 'busmq'
const required = createRequire(import.meta.url)('busmq')
// require(esm): the same module instance, not a second copy.
assert.equal(required.Bus, busmq.Bus)
assert.deepEqual(Object.keys(required).sort(), Object.keys(busmq).sort())
const bus = new busmq.Bus()
const q = bus.queue('package-esm', { objectMode: true })
await q.push({ from: 'esm' })
for await (const m of q.createReadStream({ max: 1 })) console.log(m.from)
await bus.close()
`)
  write('cjs/main.js', `const assert = require('node:assert/strict')
const busmq = require('busmq')
const { Bus, BusMQError, InvalidNameError } = busmq
assert.equal(typeof Bus, 'function')
assert.ok(new InvalidNameError('x') instanceof BusMQError)
assert.equal(require('busmq/package.json').name, 'busmq')
async function main () {
  const bus = new Bus()
  const q = bus.queue('package-cjs')
  await q.push('from cjs')
  for await (const m of q.createReadStream({ max: 1 })) console.log(m.toString())
  await bus.close()
}
main().catch((err) => { console.error(err); process.exitCode = 1 })
`)
  const env = { BUSMQ_REDIS: redis.servers[0].url }
  const esm = await run(process.execPath, ['esm.mjs'], app, 60_000, env)
  ok('esm.mjs', esm)
  assert.equal(esm.stdout, 'esm\n')
  assert.equal(esm.stderr, '')
  const cjs = await run(process.execPath, ['cjs/main.js'], app, 60_000, env)
  ok('cjs/main.js', cjs)
  assert.equal(cjs.stdout, 'from cjs\n')
  // No warning either (require(esm) is not experimental any more on the Node versions in engines).
  assert.equal(cjs.stderr, '')
})

test('busmq/classic: import and require() give the same object (Bus.create), which works', { timeout: 120_000 }, async () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'busmq', 'package.json'), 'utf8'))
  assert.deepEqual(Object.keys(pkg.exports['./classic']), ['import', 'require'])
  write('classic-esm.mjs', `import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import Bus from 'busmq/classic'
// One object both ways (require(esm) under the CommonJS entry): no second copy of the classes.
assert.equal(createRequire(import.meta.url)('busmq/classic'), Bus)
const bus = Bus.create({ redis: process.env.BUSMQ_REDIS })
bus.on('online', () => {
  const q = bus.queue('package-classic-esm')
  q.on('message', (message, id) => { console.log(id, message); bus.disconnect() })
  q.attach()
  q.push({ from: 'esm' })
  q.consume()
})
bus.connect()
`)
  write('cjs/classic.js', `const Bus = require('busmq/classic')
const bus = Bus.create({ driver: 'node-redis', redis: [process.env.BUSMQ_REDIS] })
bus.on('online', function () {
  const q = bus.queue('package-classic-cjs')
  q.on('message', function (message, id) { console.log(id, message); bus.disconnect() })
  q.attach()
  q.push('from cjs')
  q.consume()
})
bus.connect()
`)
  const env = { BUSMQ_REDIS: redis.servers[0].url }
  const esm = await run(process.execPath, ['classic-esm.mjs'], app, 60_000, env)
  ok('classic-esm.mjs', esm)
  assert.equal(esm.stdout, '1 {"from":"esm"}\n')
  assert.equal(esm.stderr, '')
  const cjs = await run(process.execPath, ['cjs/classic.js'], app, 60_000, env)
  ok('cjs/classic.js', cjs)
  assert.equal(cjs.stdout, '1 from cjs\n')
  assert.equal(cjs.stderr, '')
})
