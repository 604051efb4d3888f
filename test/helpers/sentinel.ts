/**
 * Throw-away primary + replicas + sentinels for tests, built on the real-Redis harness.
 */
import fsp from 'node:fs/promises'
import path from 'node:path'
import {
  HOST,
  LOG_FILE,
  launchAll,
  launchRedis,
  redisCommand,
  startRedis,
  startRedisGroup,
  waitFor,
  type HostPort,
  type RedisServer,
  type RespValue,
} from './redis-server.js'

export interface SentinelGroupOptions {
  /** Replicas of the primary (default 2). */
  replicas?: number;
  /** Sentinel processes (default 3). */
  sentinels?: number;
  /** Monitored master name (default 'mymaster'). */
  name?: string;
}

export interface SentinelGroup {
  primary: RedisServer;
  replicas: RedisServer[];
  /** Sentinel processes; kill()/restart() keep their (sentinel-rewritten) config. */
  sentinels: RedisServer[];
  /** For ioredis: `new Redis({ sentinels: sentinelAddrs, name })`. */
  sentinelAddrs: HostPort[];
  name: string;
  /** Kills every process of the group and removes their temp dirs. */
  stop(): Promise<void>;
}

const SENTINEL_CONF = 'sentinel.conf'

function sentinelConf (port: number, dir: string, name: string, primaryPort: number, quorum: number): string {
  return [
    `port ${port}`,
    `bind ${HOST}`,
    `dir ${dir}`,
    `logfile ${path.join(dir, LOG_FILE)}`,
    'daemonize no',
    'protected-mode no',
    `sentinel monitor ${name} ${HOST} ${primaryPort} ${quorum}`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 5000`,
    `sentinel parallel-syncs ${name} 1`,
    '',
  ].join('\n')
}

/** `SENTINEL master NAME` replies with a flat [field, value, ...] array. */
function fields (reply: RespValue): Record<string, string> {
  const out: Record<string, string> = {}
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1])
  return out
}

/**
 * Starts a primary, its replicas and the sentinels monitoring it. Resolves once
 * the replicas are online and every sentinel knows the master, all replicas and
 * all other sentinels (so a failover can actually reach quorum).
 */
export async function startSentinelGroup ({
  replicas = 2,
  sentinels = 3,
  name = 'mymaster',
}: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  if (sentinels < 1) throw new Error('startSentinelGroup needs at least 1 sentinel')
  // With fewer than 2 sentinels a quorum of 2 could never be reached.
  const quorum = Math.min(2, sentinels)
  const started: RedisServer[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.dispose()))
  }

  try {
    // Full syncs are diskless by default (Redis 7) and then wait 5 s for more
    // replicas to join; no delay keeps startup and post-failover resyncs fast.
    const syncArgs = ['--repl-diskless-sync-delay', '0']
    const primary = await startRedis({ args: syncArgs })
    started.push(primary)
    const reps = await startRedisGroup(replicas, { args: [...syncArgs, '--replicaof', HOST, String(primary.port)] })
    started.push(...reps)

    // Sentinels are started only once replication is up: a sentinel learns the
    // replicas from the master's INFO, which it refreshes only every 10 s.
    await waitFor(
      async () => {
        const info = String(await redisCommand(primary.port, ['INFO', 'replication']))
        const online = info.match(/^slave\d+:.*state=online/gm)?.length ?? 0
        return new RegExp(`connected_slaves:${replicas}\\b`).test(info) && online === replicas
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `${replicas} replicas online on the primary` }
    )

    const sents = await launchAll(
      Array.from({ length: sentinels }, () =>
        launchRedis({
          // Sentinel rewrites its config file, so it lives (writable) in the temp dir.
          prepare: (port, dir) =>
            fsp.writeFile(path.join(dir, SENTINEL_CONF), sentinelConf(port, dir, name, primary.port, quorum)),
          argv: (_port, dir) => [path.join(dir, SENTINEL_CONF), '--sentinel'],
        })
      )
    )
    started.push(...sents)

    await waitFor(
      async () => {
        for (const s of sents) {
          const addr = await redisCommand(s.port, ['SENTINEL', 'get-master-addr-by-name', name])
          if (!Array.isArray(addr) || addr[0] !== HOST || Number(addr[1]) !== primary.port) return false
          const m = fields(await redisCommand(s.port, ['SENTINEL', 'master', name]))
          if (m.flags !== 'master') return false
          if (Number(m['num-slaves']) !== replicas || Number(m['num-other-sentinels']) !== sentinels - 1) return false
        }
        return true
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `every sentinel to know master ${name}, its replicas and the other sentinels` }
    )

    return {
      primary,
      replicas: reps,
      sentinels: sents,
      sentinelAddrs: sents.map((s) => ({ host: s.host, port: s.port })),
      name,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
