import { createServer } from 'node:http'
import { once } from 'node:events'
import type { BusOptions } from '../bus-options.js'
import { exclusive, expectPositionals, intOption, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { onStopSignal, openBus } from './session.js'
import { UsageError } from './usage-error.js'

const help = `Usage: busmq dashboard [--port N] [--host H] [--cluster HOST:PORT,… | --sentinel HOST:PORT,… --master NAME,…]
                       [--admin-token TOKEN] [options]

Serves the live web dashboard of a bus (shards, queues, channels, pub/sub topics; a queue's newest
messages) and its Prometheus metrics at /metrics, until Ctrl-C. Read-only unless an admin token is
given (--admin-token, or $BUSMQ_ADMIN_TOKEN, which keeps it out of the process list): the page then
asks for it before moving dead letters back or deleting a queue.

Options:
  --port N            port to listen on (default 8080; 0 picks a free one)
  --host H            address to listen on (default 127.0.0.1: this machine only)
  --cluster SEEDS     Redis Cluster seed nodes (instead of --redis)
  --sentinel ADDRS    Sentinel addresses (instead of --redis), with --master
  --master NAMES      the monitored master names (one shard each), with --sentinel
  --admin-token T     turn on the admin actions for requests that send T (header x-busmq-admin-token)
  --interval MS       refresh period of an open page (default 1000)`

function hostPorts (text: string, name: string): string[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  if (list.length === 0 || list.some((s) => !/^[^\s:]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(s))) {
    throw new UsageError(`${name} must be HOST:PORT[,HOST:PORT…], got ${JSON.stringify(text)}`, 'dashboard')
  }
  return list
}

function layoutOf (values: ParsedArgs['values']): Pick<BusOptions, 'cluster' | 'sentinel'> | undefined {
  exclusive(values, ['redis', 'cluster', 'sentinel'], 'dashboard')
  if (typeof values.cluster === 'string') return { cluster: hostPorts(values.cluster, '--cluster') }
  if (typeof values.sentinel === 'string') {
    if (typeof values.master !== 'string') throw new UsageError('--sentinel needs --master NAME[,NAME…]', 'dashboard')
    const names = values.master.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
    return { sentinel: { sentinels: hostPorts(values.sentinel, '--sentinel'), names } }
  }
  if (values.master !== undefined) throw new UsageError('--master goes with --sentinel', 'dashboard')
  return undefined
}

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'dashboard'
  expectPositionals(positionals, 0, 0, 'nothing', cmd)
  const port = intOption(values.port ?? '8080', '--port', 0, 65535, cmd)
  const interval = intOption(values.interval ?? '1000', '--interval', 100, 3_600_000, cmd)
  const host = typeof values.host === 'string' ? values.host : '127.0.0.1'
  const adminToken = typeof values['admin-token'] === 'string' ? values['admin-token'] : process.env.BUSMQ_ADMIN_TOKEN || undefined
  const layout = layoutOf(values)
  const bus = await openBus(common, layout)
  const server = createServer()
  try {
    bus.dashboard({ server, adminToken, interval })
    server.listen(port, host)
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
    const address = server.address()
    const actual = typeof address === 'object' && address !== null ? address.port : port
    const shown = host.includes(':') ? `[${host}]` : host
    process.stderr.write(`busmq: dashboard on http://${shown}:${actual}/ (${adminToken === undefined ? 'read-only' : 'admin actions on'}); ` +
      `metrics on http://${shown}:${actual}/metrics; Ctrl-C to stop\n`)
    await new Promise<void>((resolve) => {
      const remove = onStopSignal(() => {
        remove()
        resolve()
      })
    })
    return 0
  } finally {
    server.closeAllConnections()
    server.close()
    await bus.close()
  }
}

export const dashboard: Command = {
  name: 'dashboard',
  summary: 'live web dashboard and Prometheus /metrics of a bus (read-only unless --admin-token)',
  help,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    cluster: { type: 'string' },
    sentinel: { type: 'string' },
    master: { type: 'string' },
    'admin-token': { type: 'string' },
    interval: { type: 'string' }
  },
  run
}
