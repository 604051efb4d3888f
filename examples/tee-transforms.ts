// Tees one queue reader into two through2 transforms: one upper-cases every message, the other
// reports its length. Each branch sees every message, in order.
//
//   node dist/examples/tee-transforms.js [redis-url]
//
// The Redis URL comes from the first argument or BUSMQ_REDIS (default redis://127.0.0.1:6379).
import { randomUUID } from 'node:crypto'
import through2 from 'through2'
import { Bus } from 'busmq'

const url = process.argv[2] || process.env.BUSMQ_REDIS || 'redis://127.0.0.1:6379'
const words = ['queues', 'are', 'streams', 'and', 'streams', 'pipe']

async function collect (stream: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const x of stream) out.push(x)
  return out
}

const bus = new Bus({ redis: url })
const queue = bus.queue(`example-tee-${randomUUID()}`, { objectMode: true })

// One reader, ending at the producer's end marker, piped into two transforms: a Readable can feed
// several destinations and runs at the pace of the slowest.
const reader = queue.createReadStream({ untilEnd: true })
const upper = through2.obj((word: string, _enc, cb) => cb(null, word.toUpperCase()))
const length = through2.obj((word: string, _enc, cb) => cb(null, `${word}:${word.length}`))
reader.pipe(upper)
reader.pipe(length)

const writer = queue.createWriteStream({ endMarker: true })
for (const word of words) writer.write(word)
writer.end()

const [shouted, measured] = await Promise.all([collect(upper), collect(length)])
console.log(`upper: ${shouted.join(' ')}`)
console.log(`length: ${measured.join(' ')}`)
await bus.close()
