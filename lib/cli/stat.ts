import type { Bus } from '../bus.js'
import type { QueueStats } from '../queue/queue.js'
import type { ServiceStats } from '../service/service.js'
import { intOption, nameArg, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { formatCount } from './progress.js'
import { DEAD_LETTER_SUFFIX, onStopSignal, openBus, queueByName } from './session.js'

const DEFAULT_WATCH_MS = 1000

const help = `Usage: busmq stat [queue…] [options]
       busmq stat --services [service…] [options]

Shows, for each queue: messages waiting (LENGTH), messages ever pushed (PUSHED), messages taken by
consume-once and reliable readers (CONSUMED), reliable messages delivered and not yet acked
(IN-FLIGHT), attached clients (CLIENTS), time until the queue expires if nobody uses it (TTL; "-"
when the queue does not exist, "none" when it does not expire) and the shard that holds it.
Without queue names it lists every queue it finds on the shards (SCAN). "<queue>:dead-letter" is the
dead-letter queue of <queue>.

A queue named on the command line that does not exist (never used, or expired) gets no row; instead
a line on stderr says so and the exit code is 1 (the rows of the queues that exist are printed):
  busmq: queue nope does not exist on shard 127.0.0.1:6379/0 (ERR_BUSMQ_CLI_NO_SUCH_QUEUE)

Without names, a second table lists the services found (as --services does): for each, the servers
announced (SERVERS; "(n reliable)" when some take reliable requests), the requests they run
(RUNNING), the sum of their concurrency (CONCURRENCY), the requests waiting for a server (WAITING;
"(n reliable)" for those only reliable servers take), the median and 99th percentile of how long the
servers took to answer the requests they finished lately (P50, P99; "-" when none did), TTL and shard.

Options:
  --services      services instead of queues: the table above for the services named (or found);
                  with --json, an array of { name, exists, shard, servers, reliableServers, running,
                  concurrency, waiting, waitingReliable, p50, p99, ttl } (p50, p99 in ms, absent when
                  no request finished lately); a named service that does not exist is
                  reported like a missing queue (ERR_BUSMQ_CLI_NO_SUCH_SERVICE)
  --json          print a JSON array of objects { name, exists, shard, length, pushed, consumed,
                  inFlight, clients, ttl } (ttl in ms: -2 = no such queue, -1 = no expiry), one per
                  queue, in the order given; a queue that does not exist is in it too, with exists:
                  false and zeros (and is reported on stderr, exit code 1, as above)
  --watch [MS]    refresh every MS ms (default ${DEFAULT_WATCH_MS}), clearing the screen, until Ctrl-C;
                  with --json, one array per line. Queues that do not exist are listed under the
                  table and do not end the watch. Write --watch=MS when a queue name is all digits.`

/** `--watch` takes an optional value: give it its default unless a number follows. */
function preprocess (argv: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      out.push(...argv.slice(i))
      break
    }
    if (a === '--watch') {
      const next = argv[i + 1]
      if (next !== undefined && /^\d+$/.test(next)) {
        out.push(`--watch=${next}`)
        i++
      } else {
        out.push(`--watch=${DEFAULT_WATCH_MS}`)
      }
      continue
    }
    out.push(a)
  }
  return out
}

/** Calls `each` with every key matching `match` on every shard (SCAN; each primary of a Cluster). */
async function scanShards (bus: Bus, match: string, each: (key: string) => void): Promise<void> {
  for (const id of bus.shardIds) {
    const shard = bus.shardById(id)!
    const client = shard.client as any
    // A Cluster client cannot SCAN as a whole: scan each primary.
    const nodes = typeof client.nodes === 'function' ? client.nodes('master') : [client]
    for (const node of nodes) {
      let cursor = '0'
      do {
        // Through the shard, so that a shard that went away is waited for and reported by its id.
        const [next, keys] = await shard.run(() => node.scan(cursor, 'MATCH', match, 'COUNT', 1000)) as [string, string[]]
        cursor = next
        for (const key of keys) each(key)
      } while (cursor !== '0')
    }
  }
}

/** The queue names behind `<prefix>:q:{<name>}:i` keys (each existing queue has its info hash). */
async function discover (bus: Bus): Promise<string[]> {
  const head = `${bus.settings.prefix}:q:{`
  const found = new Set<string>()
  await scanShards(bus, `${head}*}:*i`, (key) => {
    if (!key.startsWith(head)) return
    const close = key.indexOf('}', head.length)
    if (close < 0) return
    const name = key.slice(head.length, close)
    const rest = key.slice(close + 1)
    if (rest === ':i') found.add(name)
    else if (rest === ':dl:i') found.add(`${name}${DEAD_LETTER_SUFFIX}`)
  })
  return [...found].sort()
}

/** The service names behind `<prefix>:svc:{<name>}:i`, `:r:i` and `:s` keys (see lib/keys.ts). */
async function discoverServices (bus: Bus): Promise<string[]> {
  const head = `${bus.settings.prefix}:svc:{`
  const found = new Set<string>()
  await scanShards(bus, `${head}*}:*[is]`, (key) => {
    if (!key.startsWith(head)) return
    const close = key.indexOf('}', head.length)
    if (close < 0) return
    const rest = key.slice(close + 1)
    if (rest === ':i' || rest === ':r:i' || rest === ':s') found.add(key.slice(head.length, close))
  })
  return [...found].sort()
}

function formatTtl (ms: number): string {
  if (ms === -2) return '-'
  if (ms === -1) return 'none'
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}

/** A row of `busmq stat`: the queue's stats, and whether it exists. */
export interface StatRow extends QueueStats {
  /** False when no key of the queue exists (never used, or expired); the numbers are then zeros. */
  exists: boolean
}

/** A row of `busmq stat --services`: the service's stats, and whether any key of it exists. */
export interface ServiceRow extends ServiceStats {
  exists: boolean
}

/** The line that says a named queue (or service) does not exist, and on which shard(s) it was looked for. */
function missingLine (bus: Bus, row: { name: string, shard: string }, what = 'queue'): string {
  const where = bus.shardIds.length === 1 ? `on shard ${row.shard}` : `on any shard (${bus.shardIds.join(', ')})`
  return `${what} ${row.name} does not exist ${where}`
}

/** Right-aligned numbers, left-aligned text, two spaces between columns. */
function aligned (header: string[], right: boolean[], cells: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]): string => c.map((x, i) => right[i] ? x.padStart(widths[i]) : x.padEnd(widths[i]))
    .join('  ').trimEnd()
  return [line(header), ...cells.map(line)].join('\n')
}

/**
 * The services table: servers, running, concurrency, waiting (with their reliable shares), the handling
 * time's p50 and p99 (ms, over the servers' last heartbeats; '-' when none finished lately), TTL, shard.
 */
export function formatServiceTable (rows: ServiceStats[]): string {
  const share = (total: number, reliable: number): string =>
    reliable > 0 ? `${formatCount(total)} (${formatCount(reliable)} reliable)` : formatCount(total)
  const ms = (v: number | undefined): string => v === undefined ? '-' : `${v}ms`
  return aligned(['SERVICE', 'SERVERS', 'RUNNING', 'CONCURRENCY', 'WAITING', 'P50', 'P99', 'TTL', 'SHARD'],
    [false, true, true, true, true, true, true, true, false],
    rows.map((s) => [s.name, share(s.servers, s.reliableServers), formatCount(s.running), formatCount(s.concurrency),
      share(s.waiting, s.waitingReliable), ms(s.p50), ms(s.p99), formatTtl(s.ttl), s.shard]))
}

/** An aligned text table: numbers right-aligned, text left-aligned. */
export function formatTable (rows: QueueStats[]): string {
  return aligned(['QUEUE', 'LENGTH', 'PUSHED', 'CONSUMED', 'IN-FLIGHT', 'CLIENTS', 'TTL', 'SHARD'],
    [false, true, true, true, true, true, true, false],
    rows.map((s) => [s.name, formatCount(s.length), formatCount(s.pushed), formatCount(s.consumed),
      formatCount(s.inFlight), formatCount(s.clients), formatTtl(s.ttl), s.shard]))
}

/** One look at the queues (or services): what goes to stdout, and the named ones that do not exist. */
interface Snapshot {
  text: string
  /** "<what> <name> does not exist on …" lines, with their code. */
  missing: Array<{ line: string, code: string }>
}

async function queueSnapshot (bus: Bus, names: string[], json: boolean): Promise<Snapshot> {
  const targets = names.length > 0 ? names : await discover(bus)
  const rows: StatRow[] = await Promise.all(targets.map(async (name) => {
    const queue = queueByName(bus, name)
    const [stats, exists] = await Promise.all([queue.stats(), queue.exists()])
    return { ...stats, name, exists }
  }))
  const missing = rows.filter((r) => !r.exists).map((r) => ({ line: missingLine(bus, r), code: 'ERR_BUSMQ_CLI_NO_SUCH_QUEUE' }))
  if (json) return { text: JSON.stringify(rows), missing }
  const found = rows.filter((r) => r.exists)
  let text = found.length > 0 ? formatTable(found) : names.length === 0 ? 'no queues' : ''
  if (names.length === 0) {
    // Without names: the services too (they are not queues of their own).
    const services = (await serviceSnapshot(bus, [], false)).text
    if (services !== 'no services') text += `\n\n${services}`
  }
  return { text, missing }
}

async function serviceSnapshot (bus: Bus, names: string[], json: boolean): Promise<Snapshot> {
  const targets = names.length > 0 ? names : await discoverServices(bus)
  const rows: ServiceRow[] = await Promise.all(targets.map(async (name) => {
    const stats = await bus.service(name).stats()
    return { ...stats, exists: stats.ttl !== -2 }
  }))
  const missing = rows.filter((r) => !r.exists)
    .map((r) => ({ line: missingLine(bus, r, 'service'), code: 'ERR_BUSMQ_CLI_NO_SUCH_SERVICE' }))
  if (json) return { text: JSON.stringify(rows), missing }
  const found = rows.filter((r) => r.exists)
  return { text: found.length > 0 ? formatServiceTable(found) : names.length === 0 ? 'no services' : '', missing }
}

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'stat'
  const services = values.services === true
  const names = positionals.map((p) => nameArg(p, services ? 'service name' : 'queue name', cmd))
  const watch = values.watch === undefined ? undefined : intOption(values.watch, '--watch', 50, 86_400_000, cmd)
  const json = values.json === true
  const bus = await openBus(common)
  try {
    const snapshot = (): Promise<Snapshot> => services ? serviceSnapshot(bus, names, json) : queueSnapshot(bus, names, json)
    if (watch === undefined) {
      const { text, missing } = await snapshot()
      if (text !== '') process.stdout.write(`${text}\n`)
      for (const m of missing) process.stderr.write(`busmq: ${m.line} (${m.code})\n`)
      return missing.length > 0 ? 1 : 0
    }
    const tty = process.stdout.isTTY === true
    let stopped = false
    let wake = (): void => {}
    const removeSignals = onStopSignal(() => {
      stopped = true
      wake()
    })
    try {
      while (!stopped) {
        const { text: shown, missing } = await snapshot()
        let text = shown
        if (!json) text = [text, ...missing.map((m) => m.line)].filter((t) => t !== '').join('\n')
        if (json) process.stdout.write(`${text}\n`)
        else if (tty) process.stdout.write(`\x1b[2J\x1b[H${new Date().toISOString()}  every ${watch} ms, Ctrl-C to stop\n\n${text}\n`)
        else process.stdout.write(`${new Date().toISOString()}\n${text}\n\n`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, watch)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
    } finally {
      removeSignals()
    }
    return 0
  } finally {
    await bus.close()
  }
}

export const stat: Command = {
  name: 'stat',
  summary: 'queues (length, counters, in-flight, clients, TTL, shard) and services (servers, running, waiting)',
  help,
  options: {
    json: { type: 'boolean' },
    watch: { type: 'string' },
    services: { type: 'boolean' }
  },
  preprocess,
  run
}
