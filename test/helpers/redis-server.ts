/**
 * Real-Redis test servers: the launcher of lib/dev/ (the one `busmq dev` and the benchmark use) under the
 * names the tests use, plus useRedis() for node:test. Throw-away `redis-server` processes on free loopback
 * ports, each in its own temp dir, removed by pid even when the test process dies abruptly (see
 * lib/dev/redis-process.ts). Importing this module also installs the leak check (./leaks.ts).
 */
import { before, after } from 'node:test'
import { startRedisGroup, type RedisOptions, type RedisServer } from '../../lib/dev/redis-launcher.js'
import './leaks.js'

export {
  LOG_FILE,
  LOOPBACK as HOST,
  RespError,
  assertRedisServer,
  freePort,
  launchAll,
  launchRedis,
  ping,
  redisArgs,
  redisCommand,
  redisServerVersion,
  startRedis,
  startRedisGroup,
  stopAllRedis
} from '../../lib/dev/redis-launcher.js'
export type { HostPort, LaunchSpec, RedisOptions, RedisServer, RespValue } from '../../lib/dev/redis-launcher.js'
export { waitFor } from './wait.js'

/**
 * node:test: starts `n` servers in a `before` hook and disposes of them in an `after` hook of the
 * enclosing suite (or file). A file whose tests leave a connection open fails (./leaks.ts); nothing
 * here ends the process.
 */
export function useRedis (n = 1, opts: RedisOptions = {}): { readonly servers: RedisServer[] } {
  const ctx = { servers: [] as RedisServer[] }
  before(async () => {
    ctx.servers.push(...(await startRedisGroup(n, opts)))
  })
  after(async () => {
    await Promise.all(ctx.servers.map((s) => s.dispose()))
  })
  return ctx
}

/**
 * Calls of `commands` the server has answered (those inside scripts included) since it started or the
 * last CONFIG RESETSTAT, together.
 */
export async function commandCalls (server: RedisServer, ...commands: string[]): Promise<number> {
  const stats = await server.cli('INFO', 'commandstats')
  let n = 0
  for (const m of stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) if (commands.includes(m[1])) n += Number(m[2])
  return n
}
