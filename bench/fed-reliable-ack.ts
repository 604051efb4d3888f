/**
 * Reliable drain over federation: N messages pushed natively, then read by a federated reliable reader
 * that acks each one as it reads it. Prints msgs/s (the median of `rounds`).
 *
 *   node dist/bench/fed-reliable-ack.js redis://127.0.0.1:PORT [n=20000] [rounds=3]
 */
import { Bus } from '../lib/index.js'
import { federation } from './federation.js'

const [url, nArg, roundsArg] = process.argv.slice(2)
if (url === undefined) throw new Error('usage: fed-reliable-ack.js redis://host:port [n] [rounds]')
const N = Number(nArg ?? 20_000)
const rounds = Number(roundsArg ?? 3)

const f = await federation(url)
const native = new Bus({ redis: [url] })
await native.connect()
const remote = await f.open()
const rates: number[] = []
for (let r = 0; r < rounds; r++) {
  const name = `bench-fedack-${Date.now()}-${r}`
  const w = native.queue(name).createWriteStream()
  for (let i = 0; i < N; i++) w.write(Buffer.alloc(32, i % 256))
  await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => err ? reject(err) : resolve()))
  const started = performance.now()
  const acks: Array<Promise<boolean>> = []
  for await (const m of remote.queue(name).createReadStream({ mode: 'reliable', max: N })) acks.push(m.ack())
  const ok = (await Promise.all(acks)).filter(Boolean).length
  const s = (performance.now() - started) / 1000
  if (ok !== N) throw new Error(`${ok} of ${N} acked`)
  const left = await native.queue(name).stats()
  if (left.length !== 0 || left.inFlight !== 0) throw new Error(`left: ${left.length} waiting, ${left.inFlight} in flight`)
  rates.push(N / s)
  await native.queue(name).delete()
}
rates.sort((a, b) => a - b)
console.log(`reliable drain over federation, ack per message: ${Math.round(rates[Math.floor(rates.length / 2)])} msgs/s (median of ${rounds}, n=${N}; all: ${rates.map(Math.round).join(', ')})`)
await native.close()
await f.close()
