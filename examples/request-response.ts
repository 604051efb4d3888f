/**
 * Request/response between two processes over one BusMQ channel (objectMode).
 *
 *   node dist/examples/request-response.js [redis-url] [count]
 *
 * The script starts the responder, a copy of itself in a child process (`--responder <redis-url>
 * <channel>`), sends <count> requests (default 100), checks every answer and prints one summary line.
 * The Redis URL comes from the first argument, else $BUSMQ_REDIS, else redis://127.0.0.1:6379.
 *
 * The requester opens the channel plainly and the responder with `listen: true`, so they share a name
 * without choosing roles. Which process comes first does not matter: requests sent before the
 * responder is up wait in Redis.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { Bus } from 'busmq'

interface Request { id: number, n: number }
interface Response { id: number, square: number }

/** Answers every request with the square of its number; ends its side when the requester ends. */
async function responder (url: string, name: string): Promise<void> {
  const bus = new Bus({ redis: url })
  const channel = bus.channel(name, { listen: true, objectMode: true })
  channel.on('data', ({ id, n }: Request) => {
    channel.write({ id, square: n * n } satisfies Response)
  })
  // The requester ended its side (half-close): finish ours, then the channel closes by itself.
  channel.on('end', () => channel.end())
  await once(channel, 'close')
  await bus.close()
}

async function requester (url: string, count: number): Promise<boolean> {
  const bus = new Bus({ redis: url })
  await bus.connect()
  const name = `request-response-${randomUUID()}`
  const child = spawn(process.execPath, [process.argv[1], '--responder', url, name], { stdio: 'inherit' })
  const channel = bus.channel(name, { objectMode: true })

  // Match answers to requests by id, so requests can be in flight together.
  const waiting = new Map<number, (square: number) => void>()
  channel.on('data', ({ id, square }: Response) => {
    waiting.get(id)?.(square)
    waiting.delete(id)
  })
  let nextId = 0
  const request = (n: number): Promise<number> => new Promise((resolve) => {
    const id = nextId++
    waiting.set(id, resolve)
    channel.write({ id, n } satisfies Request)
  })

  const started = Date.now()
  const numbers = Array.from({ length: count }, (_, i) => i - Math.floor(count / 2))
  const answers = await Promise.all(numbers.map(request))
  const ms = Date.now() - started
  const correct = answers.filter((square, i) => square === numbers[i] * numbers[i]).length

  // Done: end our side, wait for the responder to end its side and exit.
  const ended = once(channel, 'end')
  channel.end()
  await ended
  const [code] = await once(child, 'exit')
  await bus.close()
  const ok = correct === count && code === 0
  console.log(`request-response: ${ok ? 'ok' : 'FAILED'}, ${count} requests, ${correct} correct answers in ${ms} ms ` +
    `(${Math.round(count / Math.max(ms, 1) * 1000)} requests/s), responder exited with code ${code}`)
  return ok
}

const args = process.argv.slice(2)
if (args[0] === '--responder') {
  await responder(args[1], args[2])
} else {
  const url = args[0] ?? process.env.BUSMQ_REDIS ?? 'redis://127.0.0.1:6379'
  const count = Number(args[1] ?? 100)
  // Give up rather than hang if something is wrong (for example Redis is not reachable).
  const timer = setTimeout(() => {
    console.error('request-response: no result within 60 s')
    process.exit(1)
  }, 60_000)
  timer.unref()
  process.exitCode = await requester(url, count) ? 0 : 1
}
