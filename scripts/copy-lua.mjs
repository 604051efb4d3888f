// Copies the Lua scripts (and their includes) next to the compiled JavaScript that loads them. Lua files
// left over from an earlier build are removed first: a stale script would be registered too.
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs'
const from = new URL('../lib/scripts/', import.meta.url)
const to = new URL('../dist/lib/scripts/', import.meta.url)
for (const f of existsSync(to) ? readdirSync(to, { recursive: true }) : []) {
  if (String(f).endsWith('.lua')) rmSync(new URL(String(f), to))
}
cpSync(from, to, { recursive: true, filter: (src) => !src.endsWith('.ts') })
