import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import through2 from 'through2'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { trackBuses } from './helpers/queue.js'

const redis = useRedis(1)
const openBus = trackBuses()

/** A temp dir removed after the test. */
function tempDir (t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busmq-file-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Writes `size` random bytes to `file`, 1 MiB at a time. */
function randomFile (file: string, size: number): void {
  const fd = fs.openSync(file, 'w')
  try {
    for (let left = size; left > 0; left -= 1 << 20) fs.writeSync(fd, randomBytes(Math.min(left, 1 << 20)))
  } finally {
    fs.closeSync(fd)
  }
}

async function sha256 (file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(fs.createReadStream(file), hash)
  return hash.digest('hex')
}

/** Counts the chunks that pass. */
function counter (): { stream: ReturnType<typeof through2>, chunks: number, sizes: Set<number> } {
  const c = {
    chunks: 0,
    sizes: new Set<number>(),
    stream: through2((chunk: Buffer, _enc, cb) => {
      c.chunks++
      c.sizes.add(chunk.length)
      cb(null, chunk)
    })
  }
  return c
}

test('a 50 MB file piped through a queue comes out byte-identical (sha256), one message per 64 KiB chunk', async (t) => {
  const dir = tempDir(t)
  const input = path.join(dir, 'in.bin')
  const output = path.join(dir, 'out.bin')
  const size = 50 * 1024 * 1024 + 123
  randomFile(input, size)

  const bus = await openBus(redis.servers)
  const q = bus.queue(uniqueName('file'))
  const seen = counter()
  // Producer and consumer run at the same time, as two ends of a pipe.
  await Promise.all([
    pipeline(fs.createReadStream(input, { highWaterMark: 64 * 1024 }), q.createWriteStream({ endMarker: true })),
    pipeline(q.createReadStream({ untilEnd: true }), seen.stream, fs.createWriteStream(output))
  ])
  assert.equal(fs.statSync(output).size, size)
  assert.equal(await sha256(output), await sha256(input))
  assert.equal(seen.chunks, Math.ceil(size / (64 * 1024)))
  assert.deepEqual([...seen.sizes].sort((a, b) => a - b), [123, 64 * 1024])
  assert.equal(await q.count(), 0)
  await bus.close()
})

test('a file written whole into a queue before anyone reads it comes out identical', async (t) => {
  const dir = tempDir(t)
  const input = path.join(dir, 'in.bin')
  const output = path.join(dir, 'out.bin')
  const size = 8 * 1024 * 1024 + 1
  randomFile(input, size)

  const bus = await openBus(redis.servers)
  const name = uniqueName('file')
  // Small, odd-sized chunks: 8,389 messages.
  await pipeline(fs.createReadStream(input, { highWaterMark: 1000 }), bus.queue(name).createWriteStream({ endMarker: true }))
  await bus.close()

  // Another bus (another process, in real life) reads it out.
  const reader = await openBus(redis.servers)
  const q = reader.queue(name)
  assert.equal(await q.count(), Math.ceil(size / 1000) + 1, 'the messages and the end marker')
  await pipeline(q.createReadStream({ untilEnd: true, highWaterMark: 1024 }), fs.createWriteStream(output))
  assert.equal(await sha256(output), await sha256(input))
  assert.equal(await q.count(), 0)
  await reader.close()
})
