// Every Lua script has a typed wrapper and every wrapper a script; headers name the keys the wrapper passes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { SCRIPT_FILES } from '../../lib/scripts/index.js'

const src = new URL('../../../lib/scripts/', import.meta.url)
const built = new URL('../../lib/scripts/', import.meta.url)

test('every .lua file is in the explicit script list, and every listed script has its file (source and build)', () => {
  const files = readdirSync(src).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4)).sort()
  assert.deepEqual(files, [...SCRIPT_FILES].sort(), 'lib/scripts/*.lua and SCRIPT_FILES differ')
  const builtFiles = readdirSync(built).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4)).sort()
  assert.deepEqual(builtFiles, [...SCRIPT_FILES].sort(), 'dist/lib/scripts holds a .lua that is not in the list (a stale build?)')
})

test('every listed script is called by a typed wrapper in lib/scripts/index.ts', () => {
  const index = readFileSync(new URL('index.ts', src), 'utf8')
  const body = index.slice(index.indexOf('] as const'))
  for (const file of SCRIPT_FILES) {
    assert.ok(body.includes(`'${file}'`), `no wrapper calls ${file}.lua`)
  }
})

test('every --@include names a file in includes/', () => {
  for (const file of SCRIPT_FILES) {
    const lua = readFileSync(new URL(`${file}.lua`, src), 'utf8')
    for (const m of lua.matchAll(/^--@include (\S+)$/gm)) {
      assert.ok(existsSync(new URL(`includes/${m[1]}.lua`, src)), `${file}.lua includes a missing ${m[1]}`)
    }
  }
})

test('a script named <name>-<n>.lua documents KEYS[1] to KEYS[n] in its header, and no more', () => {
  for (const file of SCRIPT_FILES) {
    const m = /-(\d+)$/.exec(file)
    if (!m) continue
    const n = Number(m[1])
    const lua = readFileSync(new URL(`${file}.lua`, src), 'utf8')
    const header = lua.slice(0, lua.indexOf(']]'))
    const documented = new Set<number>()
    for (const k of header.matchAll(/KEYS\[(\d+)(?:\.\.(\d+))?\]/g)) {
      const from = Number(k[1])
      const to = k[2] === undefined ? from : Number(k[2])
      for (let i = from; i <= to; i++) documented.add(i)
    }
    assert.deepEqual([...documented].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1), `${file}.lua header`)
  }
})
