// Federation: a bus with Redis serves federation over a WebSocket; a second bus configured with only
// `federation` (no Redis at all) uses queues, channels, pub/sub, services and objects through it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName, eventually } from './helpers/bus.js'
import { fedServer, fedClient } from './helpers/federation.js'

const redis = useRedis(1)

test('queue: 100,000 messages written through federation are read through federation exactly once, in order', async () => {
  const server = await fedServer(redis.servers)
  const client = await fedClient([server.url], { poolSize: 2 })
  const name = uniqueName('fedq')
  const N = 100_000
  const q = client.queue(name, { objectMode: true })
  const reader = q.createReadStream({ max: N })
  const got: number[] = []
  const reading = (async () => { for await (const m of reader) got.push(m as number) })()
  const writer = q.createWriteStream()
  await pipeline(Readable.from((function * () { for (let i = 0; i < N; i++) yield i })()), writer)
  await reading
  assert.equal(got.length, N)
  for (let i = 0; i < N; i++) if (got[i] !== i) assert.fail(`message ${i} is ${got[i]}`)
  assert.equal(await server.bus.queue(name).count(), 0)
})
