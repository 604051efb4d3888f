import { Bus } from './dist/lib/index.js'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
const url = 'redis://127.0.0.1:6390'
const N = +(process.env.N || 100000)
const p = new Bus({ redis: [url] }); const c = new Bus({ redis: [url] })
await p.connect(); await c.connect()
for (let round = 0; round < 3; round++) {
  const name = 'rel-' + Date.now() + round
  const ws = p.queue(name).createWriteStream()
  const b = Buffer.alloc(32, 1)
  await new Promise((res, rej) => { let i = 0; const w = () => { while (i < N) { i++; if (!ws.write(b)) return ws.once('drain', w) } ws.end(); ws.on('finish', res) }; ws.on('error', rej); w() })
  const q = c.queue(name)
  const t = performance.now(); const cpu = process.cpuUsage()
  let seen = 0
  await pipeline(q.createReadStream({ mode: 'reliable', max: N }), new Transform({ objectMode: true, transform (m, e, cb) { seen++; cb(null, m) } }), q.createAckStream())
  const ms = performance.now() - t; const u = process.cpuUsage(cpu)
  console.log(round, seen, Math.round(N / ms * 1000), 'msg/s', ((u.user + u.system) / N).toFixed(2), 'cpu us/msg')
}
await p.close(); await c.close()
