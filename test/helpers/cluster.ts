/**
 * Throw-away Redis Cluster (masters only) for tests, built on the real-Redis harness.
 */
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { launchAll, launchRedis, redisArgs, redisCommand, waitFor, type HostPort, type RedisServer } from './redis-server.js'

const execFileP = promisify(execFile)

/** Redis derives the cluster bus port as port + 10000 (6.2 has no --cluster-port). */
const CLUSTER_BUS_OFFSET = 10_000

export interface RedisCluster {
  nodes: RedisServer[];
  /** Startup nodes for `new Redis.Cluster(seeds)`. */
  seeds: HostPort[];
  /** Kills every node and removes their temp dirs. */
  stop(): Promise<void>;
}

/**
 * Starts `masters` cluster-enabled servers, joins them with
 * `redis-cli --cluster create` (no replicas) and waits until every node reports
 * cluster_state:ok and knows all the others.
 */
export async function startCluster (masters = 3): Promise<RedisCluster> {
  if (!Number.isInteger(masters) || masters < 3) {
    throw new Error(`startCluster needs at least 3 masters (redis-cli --cluster create refuses fewer), got ${masters}`)
  }
  const nodes = await launchAll(
    Array.from({ length: masters }, () =>
      launchRedis({
        busOffset: CLUSTER_BUS_OFFSET,
        argv: (port, dir) =>
          redisArgs(port, dir, {
            args: [
              '--cluster-enabled', 'yes',
              '--cluster-config-file', path.join(dir, 'nodes.conf'),
              '--cluster-node-timeout', '2000',
            ],
          }),
      })
    )
  )
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.dispose()))
  }

  try {
    try {
      await execFileP(
        'redis-cli',
        ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
        { timeout: 30_000 }
      )
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string }
      const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n')
      throw new Error(`redis-cli --cluster create failed: ${e.message}\n${out}`)
    }
    const known = new RegExp(`cluster_known_nodes:${masters}\\b`)
    await waitFor(
      async () => {
        for (const n of nodes) {
          const info = String(await redisCommand(n.port, ['CLUSTER', 'INFO']))
          if (!info.includes('cluster_state:ok') || !known.test(info)) return false
        }
        return true
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'cluster_state:ok on every cluster node' }
    )
  } catch (err) {
    await stop()
    throw err
  }

  return { nodes, seeds: nodes.map((n) => ({ host: n.host, port: n.port })), stop }
}
