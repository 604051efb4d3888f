import { readFileSync, readdirSync } from 'node:fs'
import type { Redis, Cluster } from 'ioredis'

/**
 * Lua scripts live beside this file as `<name>-<numberOfKeys>.lua` (or `<name>.lua` when the caller
 * passes the number of keys). They are read once and registered on each connection with ioredis
 * `defineCommand`, which sends EVALSHA and falls back to EVAL after a NOSCRIPT (a restarted server).
 */
interface ScriptSource { name: string, numberOfKeys?: number, lua: string }

let sources: ScriptSource[] | undefined

/** Replaces each `--@include <name>` line with `includes/<name>.lua`, so scripts share helpers. */
function expandIncludes (lua: string, dir: URL): string {
  return lua.replace(/^--@include (\S+)$/gm, (_, name: string) =>
    readFileSync(new URL(`includes/${name}.lua`, dir), 'utf8'))
}

function loadSources (): ScriptSource[] {
  if (sources) return sources
  const dir = new URL('./', import.meta.url)
  sources = readdirSync(dir)
    .filter((f) => f.endsWith('.lua'))
    .map((f) => {
      const m = /^(.+?)(?:-(\d+))?\.lua$/.exec(f)!
      return {
        name: `busmq_${m[1].replace(/-/g, '_')}`,
        numberOfKeys: m[2] === undefined ? undefined : Number(m[2]),
        lua: expandIncludes(readFileSync(new URL(f, dir), 'utf8'), dir)
      }
    })
  return sources
}

/** Registers every script as a command named `busmq_<name>` (and `busmq_<name>Buffer`). */
export function defineScripts (client: Redis | Cluster): void {
  for (const s of loadSources()) {
    client.defineCommand(s.name, { lua: s.lua, numberOfKeys: s.numberOfKeys })
  }
}

/** Signature of a registered script as called through ioredis. */
export type ScriptCall = (...args: Array<string | Buffer | number>) => Promise<unknown>
