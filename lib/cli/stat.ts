import type { Bus } from '../bus.js'
import type { QueueStats } from '../queue/queue.js'
import { intOption, nameArg, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { formatCount } from './progress.js'
import { DEAD_LETTER_SUFFIX, onStopSignal, openBus, queueByName } from './session.js'

const DEFAULT_WATCH_MS = 1000

const help = `Usage: busmq stat [queue…] [options]

Shows, for each queue: messages waiting (LENGTH), messages ever pushed (PUSHED), messages taken by
consume-once and reliable readers (CONSUMED), reliable messages delivered and not yet acked
(IN-FLIGHT), attached clients (CLIENTS), time until the queue expires if nobody uses it (TTL; "-"
when the queue does not exist, "none" when it does not expire) and the shard that holds it.
Without queue names it lists every queue it finds on the shards (SCAN). "<queue>:dead-letter" is the
dead-letter queue of <queue>.

Options:
  --json          print a JSON array of objects { name, shard, length, pushed, consumed, inFlight,
                  clients, ttl } (ttl in ms: -2 = no such queue, -1 = no expiry)
  --watch [MS]    refresh every MS ms (default ${DEFAULT_WATCH_MS}), clearing the screen, until Ctrl-C;
                  with --json, one array per line. Write --watch=MS when a queue name is all digits.`

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

/** The queue names behind `<prefix>:q:{<name>}:i` keys (each existing queue has its info hash). */
async function discover (bus: Bus): Promise<string[]> {
  const prefix = bus.settings.prefix
  const match = `${prefix}:q:{*}:*i`
  const found = new Set<string>()
  const head = `${prefix}:q:{`
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
        for (const key of keys) {
          if (!key.startsWith(head)) continue
          const close = key.indexOf('}', head.length)
          if (close < 0) continue
          const name = key.slice(head.length, close)
          const rest = key.slice(close + 1)
          if (rest === ':i') found.add(name)
          else if (rest === ':dl:i') found.add(`${name}${DEAD_LETTER_SUFFIX}`)
        }
      } while (cursor !== '0')
    }
  }
  return [...found].sort()
}

function formatTtl (ms: number): string {
  if (ms === -2) return '-'
  if (ms === -1) return 'none'
  if (ms < 1000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}

/** An aligned text table: numbers right-aligned, text left-aligned. */
export function formatTable (rows: QueueStats[]): string {
  const header = ['QUEUE', 'LENGTH', 'PUSHED', 'CONSUMED', 'IN-FLIGHT', 'CLIENTS', 'TTL', 'SHARD']
  const right = [false, true, true, true, true, true, true, false]
  const cells = rows.map((s) => [s.name, formatCount(s.length), formatCount(s.pushed), formatCount(s.consumed),
    formatCount(s.inFlight), formatCount(s.clients), formatTtl(s.ttl), s.shard])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c: string[]): string => c.map((x, i) => right[i] ? x.padStart(widths[i]) : x.padEnd(widths[i]))
    .join('  ').trimEnd()
  return [line(header), ...cells.map(line)].join('\n')
}

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'stat'
  const names = positionals.map((p) => nameArg(p, 'queue name', cmd))
  const watch = values.watch === undefined ? undefined : intOption(values.watch, '--watch', 50, 86_400_000, cmd)
  const json = values.json === true
  const bus = await openBus(common)
  try {
    const snapshot = async (): Promise<QueueStats[]> => {
      const targets = names.length > 0 ? names : await discover(bus)
      return await Promise.all(targets.map(async (name) => ({ ...await queueByName(bus, name).stats(), name })))
    }
    const show = (rows: QueueStats[]): string => json
      ? JSON.stringify(rows)
      : rows.length === 0 ? 'no queues' : formatTable(rows)
    if (watch === undefined) {
      console.log(show(await snapshot()))
      return 0
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
        const text = show(await snapshot())
        if (json) console.log(text)
        else if (tty) process.stdout.write(`\x1b[2J\x1b[H${new Date().toISOString()}  every ${watch} ms, Ctrl-C to stop\n\n${text}\n`)
        else console.log(`${new Date().toISOString()}\n${text}\n`)
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
  summary: 'queue length, counters, in-flight, clients, TTL and shard (table or JSON, --watch)',
  help,
  options: {
    json: { type: 'boolean' },
    watch: { type: 'string' }
  },
  preprocess,
  run
}
