/**
 * A service served by two processes: requests through a Transform with 16 in flight, a streamed reply,
 * and a handler that fails.
 *
 *   node dist/examples/services.js [redis-url] [count]
 *
 * The script starts two servers, copies of itself in child processes (`--server <redis-url> <service>`),
 * each handling up to 8 requests at once, waits until both have announced themselves, sends <count>
 * requests (default 1000) and checks every reply, then stops the servers (SIGTERM: a graceful close) and
 * prints what happened. The Redis URL comes from the first argument, else $BUSMQ_REDIS, else
 * redis://127.0.0.1:6379.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Bus, RemoteError } from 'busmq'

interface Request { n: number }
interface Reply { square: number, pid: number }

/** Squares numbers (negative ones are an error); a request for `upTo` streams the squares 1…upTo. */
async function server (url: string, name: string): Promise<void> {
  const bus = new Bus({ redis: url })
  const svc = bus.service<Request & { upTo?: number }, Reply | number>(name, { objectMode: true })
  const serving = svc.serve(async function (req) {
    if (req.data.upTo !== undefined) {
      const upTo = req.data.upTo
      // A streamed reply: an async iterable of chunks, sent at the pace the requester reads them.
      return (async function * () { for (let i = 1; i <= upTo; i++) yield i * i })()
    }
    if (req.data.n < 0) throw Object.assign(new Error(`${req.data.n} is negative`), { code: 'E_NEGATIVE' })
    return { square: req.data.n * req.data.n, pid: process.pid }
  }, { concurrency: 8 })
  // SIGTERM: stop taking requests, give the running ones 5 s to finish, then exit.
  process.once('SIGTERM', () => {
    serving.close({ grace: 5000 }).then(() => bus.close(), () => bus.close())
  })
}

async function main (url: string, count: number): Promise<boolean> {
  const name = `squares-${randomUUID()}`
  const servers = [0, 1].map(() => spawn(process.execPath, [process.argv[1], '--server', url, name], { stdio: 'inherit' }))
  const bus = new Bus({ redis: url })
  const svc = bus.service<Request & { upTo?: number }, Reply | number>(name, { objectMode: true })
  try {
    // Requests wait for a server anyway; waiting for both shows the load spread over two processes.
    while ((await svc.stats()).servers < 2) await new Promise((resolve) => setTimeout(resolve, 50))

    const replies: Reply[] = []
    await pipeline(
      Readable.from(Array.from({ length: count }, (_, n) => ({ n }))),
      svc.createTransform({ concurrency: 16 }),    // each chunk a request; out come the replies, in order
      new Writable({ objectMode: true, write (reply: Reply, _enc, cb) { replies.push(reply); cb() } })
    )
    const correct = replies.filter((r, n) => r.square === n * n).length
    const pids = new Set(replies.map((r) => r.pid)).size
    console.log(`services: ${count} requests, ${correct} correct replies, in order (createTransform, 16 in flight), ` +
      `served by ${pids} processes`)

    const chunks: number[] = []
    for await (const square of svc.requestStream({ n: 0, upTo: 5 })) chunks.push(square as number)
    console.log(`services: streamed reply of ${chunks.length} chunks: ${chunks.join(' ')}`)

    let failure = ''
    try {
      await svc.request({ n: -1 })
    } catch (err) {
      if (err instanceof RemoteError) failure = `${err.code} ${err.remoteCode ?? ''}`
    }
    console.log(`services: a failing handler: ${failure}`)
    return correct === count && pids === 2 && chunks.join(' ') === '1 4 9 16 25' && failure === 'ERR_BUSMQ_REMOTE E_NEGATIVE'
  } finally {
    for (const child of servers) child.kill('SIGTERM')
    const codes = await Promise.all(servers.map(async (child) => (await once(child, 'exit'))[0]))
    await bus.close()
    if (codes.some((c) => c !== 0)) console.log(`services: a server exited with ${codes.join(', ')}`)
  }
}

const args = process.argv.slice(2)
if (args[0] === '--server') {
  await server(args[1], args[2])
} else {
  const url = args[0] ?? process.env.BUSMQ_REDIS ?? 'redis://127.0.0.1:6379'
  // Give up rather than hang if something is wrong (for example Redis is not reachable).
  const timer = setTimeout(() => {
    console.error('services: no result within 60 s')
    process.exit(1)
  }, 60_000)
  timer.unref()
  const ok = await main(url, Number(args[1] ?? 1000))
  console.log(`services: ${ok ? 'ok' : 'FAILED'}`)
  process.exitCode = ok ? 0 : 1
}
