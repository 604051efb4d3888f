// Copies the Lua scripts (and their includes) next to the compiled JavaScript that loads them.
import { cpSync } from 'node:fs'
cpSync(new URL('../lib/scripts/', import.meta.url), new URL('../dist/lib/scripts/', import.meta.url), {
  recursive: true,
  filter: (src) => !src.endsWith('.ts')
})
