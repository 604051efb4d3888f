// Pipes a file into a queue and out of it again into another file, then prints the sha256 of both.
//
//   node dist/examples/file-through-queue.js [redis-url] [input-file] [output-file]
//
// The Redis URL comes from the first argument or BUSMQ_REDIS (default redis://127.0.0.1:6379). Without
// an input file, a 4 MiB random one is made in a temp dir; both temp files are removed at the end.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Bus } from 'busmq'

const url = process.argv[2] || process.env.BUSMQ_REDIS || 'redis://127.0.0.1:6379'
let input = process.argv[3]
let output = process.argv[4]
const tmp = input && output ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-example-'))
if (!input) {
  input = path.join(tmp!, 'input.bin')
  fs.writeFileSync(input, randomBytes(4 * 1024 * 1024))
}
output ??= path.join(tmp!, 'output.bin')

async function sha256 (file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(fs.createReadStream(file), hash)
  return hash.digest('hex')
}

const bus = new Bus({ redis: url })
// A fresh name, so that two runs never share a queue.
const queue = bus.queue(`example-file-${randomUUID()}`)
try {
  await Promise.all([
    // Producer: each 64 KiB chunk of the file is one message; the end marker follows the last one.
    pipeline(fs.createReadStream(input, { highWaterMark: 64 * 1024 }), queue.createWriteStream({ endMarker: true })),
    // Consumer: every message, in order, into the output file, until the end marker.
    pipeline(queue.createReadStream({ untilEnd: true }), fs.createWriteStream(output))
  ])
} finally {
  await bus.close()
}

const [before, after] = [await sha256(input), await sha256(output)]
console.log(`${before}  ${input}`)
console.log(`${after}  ${output}`)
console.log(before === after ? 'identical' : 'DIFFERENT')
if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
process.exitCode = before === after ? 0 : 1
