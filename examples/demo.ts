// The end-to-end demo (`npm run demo`): BusMQ on a fresh machine with only redis-server installed.
//
// 1. a 20 MB random file goes through a queue to a second process (`busmq pull … --until-end`),
//    and arrives byte for byte (sha256);
// 2. an HTTP server is reached through a `busmq tunnel` (listen + connect, two more processes);
// 3. 100,000 small messages are pushed and pulled, to show the message rate.
//
// It uses the Redis shards in BUSMQ_REDIS (URL[,URL…]) or, without it, starts two local redis-server
// shards itself, and stops everything it started before it exits: 0 when every check passed.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { Bus } from 'busmq'
import { startShards, type DevShards } from '../lib/cli/dev.js'
import { freePort } from '../lib/dev/free-port.js'

const BIN = fileURLToPath(new URL('../../bin/busmq.js', import.meta.url))
const FILE_SIZE = 20_000_000
const BLOB_SIZE = 4_000_000
const GETS = 3
const SMALL_COUNT = 100_000
const SMALL_SIZE = 32

const log = (line: string): void => console.log(`demo: ${line}`)
/** Megabytes, decimal (1 MB = 1,000,000 bytes), as busmq's progress line counts them. */
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1)
const rate = (n: number, ms: number): string => Math.round(n / (ms / 1000)).toLocaleString('en-US')
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function fileSha256 (file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(fs.createReadStream(file), hash)
  return hash.digest('hex')
}

class Check extends Error {}

function check (ok: boolean, what: string): void {
  if (!ok) throw new Check(what)
}

/** Child processes of the demo; all killed (and waited for) at the end. */
const children = new Set<ChildProcess>()

function busmq (args: string[], env: NodeJS.ProcessEnv, stdout: 'pipe' | 'inherit' | number = 'inherit'): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', stdout, 'pipe'] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

async function stopChildren (): Promise<void> {
  await Promise.all([...children].map(async (c) => {
    if (c.exitCode !== null || c.signalCode !== null) return
    const exited = once(c, 'exit')
    c.kill('SIGTERM')
    const timer = setTimeout(() => c.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }))
}

/** Resolves with the stderr line of `child` that matches `pattern`; rejects if it exits first. */
function waitForLine (child: ChildProcess, pattern: RegExp, ms = 15_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Check(`no ${pattern} from busmq within ${ms} ms; stderr: ${text}`)), ms)
    child.stderr!.on('data', (d) => {
      text += String(d)
      const m = pattern.exec(text)
      if (m) {
        clearTimeout(timer)
        resolve(m)
      }
    })
    child.once('exit', (code) => reject(new Check(`busmq exited (code ${String(code)}) before ${pattern}: ${text}`)))
  })
}

async function fileThroughQueue (bus: Bus, dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const input = path.join(dir, 'in.bin')
  const output = path.join(dir, 'out.bin')
  const out = fs.createWriteStream(input)
  for (let left = FILE_SIZE; left > 0; left -= 1_000_000) {
    if (!out.write(randomBytes(Math.min(left, 1_000_000)))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  const expected = await fileSha256(input)

  const name = `demo-file-${randomUUID()}`
  const started = Date.now()
  const fd = fs.openSync(output, 'w')
  const reader = busmq(['pull', name, '--until-end', '--quiet'], env, fd)
  fs.closeSync(fd)
  const exited = once(reader, 'exit')
  reader.stderr!.pipe(process.stderr)
  // This process writes the file into the queue while the other one reads it out.
  await pipeline(fs.createReadStream(input), bus.queue(name).createWriteStream({ endMarker: true }))
  const [code] = await exited
  const ms = Date.now() - started
  check(code === 0, `busmq pull exited with ${String(code)}`)
  const got = await fileSha256(output)
  check(got === expected, `the file came out different: sha256 ${got} instead of ${expected}`)
  log(`file: ${mb(FILE_SIZE)} MB through queue ${name} to a second process (busmq pull --until-end): ` +
    `sha256 ok, ${mb(FILE_SIZE / (ms / 1000))} MB/s`)
}

async function httpThroughTunnel (env: NodeJS.ProcessEnv): Promise<void> {
  const blob = randomBytes(BLOB_SIZE)
  const expected = sha256(blob)
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length })
    res.end(blob)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const target = (server.address() as AddressInfo).port
    const port = await freePort()
    const channel = `demo-tunnel-${randomUUID()}`
    const listener = busmq(['tunnel', 'listen', channel, '--to', `127.0.0.1:${target}`], env)
    const connector = busmq(['tunnel', 'connect', channel, '--port', String(port)], env)
    await Promise.all([waitForLine(listener, /→ 127\.0\.0\.1:\d+/), waitForLine(connector, /→ channel/)])
    const started = Date.now()
    for (let i = 0; i < GETS; i++) {
      const body = await new Promise<Buffer>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: `/blob/${i}`, agent: false }, (res) => {
          const parts: Buffer[] = []
          res.on('data', (d: Buffer) => parts.push(d))
          res.on('end', () => resolve(Buffer.concat(parts)))
          res.on('error', reject)
        }).on('error', reject)
      })
      check(body.length === blob.length && sha256(body) === expected,
        `GET ${i + 1} through the tunnel returned ${body.length} bytes that differ from what the server sent`)
    }
    const ms = Date.now() - started
    log(`tunnel: ${GETS} HTTP GETs of ${mb(BLOB_SIZE)} MB through busmq tunnel listen/connect: sha256 ok, ` +
      `${mb((GETS * BLOB_SIZE) / (ms / 1000))} MB/s`)
  } finally {
    server.closeAllConnections()
    server.close()
  }
}

async function smallMessages (bus: Bus): Promise<void> {
  const queue = bus.queue(`demo-small-${randomUUID()}`)
  const payload = Buffer.alloc(SMALL_SIZE, 'x')
  const writer = queue.createWriteStream()
  let started = Date.now()
  for (let i = 0; i < SMALL_COUNT; i++) {
    if (!writer.write(payload)) await once(writer, 'drain')
  }
  writer.end()
  await once(writer, 'finish')
  const pushMs = Date.now() - started
  started = Date.now()
  let n = 0
  for await (const m of queue.createReadStream({ untilEmpty: true, highWaterMark: 1000 })) {
    if ((m as Buffer).length === SMALL_SIZE) n++
  }
  const pullMs = Date.now() - started
  check(n === SMALL_COUNT, `pulled ${n} small messages instead of ${SMALL_COUNT}`)
  log(`small messages: ${SMALL_COUNT.toLocaleString('en-US')} × ${SMALL_SIZE} B: pushed ${rate(SMALL_COUNT, pushMs)} msgs/s, ` +
    `pulled ${rate(SMALL_COUNT, pullMs)} msgs/s`)
}

async function main (): Promise<number> {
  let shards: DevShards | undefined
  let bus: Bus | undefined
  let dir: string | undefined
  let interrupted = false
  const cleanup = async (): Promise<void> => {
    await stopChildren()
    await bus?.close()
    await shards?.stop()
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  }
  const onSignal = (): void => {
    if (interrupted) process.exit(130)
    interrupted = true
    log('interrupted, cleaning up')
    cleanup().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    let urls = process.env.BUSMQ_REDIS?.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
    if (!urls || urls.length === 0) {
      shards = await startShards(2)
      urls = shards.urls
      log(`started 2 local redis-server shards: ${urls.join(', ')}`)
    } else {
      log(`using BUSMQ_REDIS: ${urls.join(', ')}`)
    }
    const env = { ...process.env, BUSMQ_REDIS: urls.join(',') }
    bus = new Bus({ redis: urls, connectTimeout: 5000 })
    await bus.connect()
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-demo-'))
    await fileThroughQueue(bus, dir, env)
    await httpThroughTunnel(env)
    await smallMessages(bus)
    log('all checks passed')
    return 0
  } catch (err) {
    console.error(`demo: FAILED: ${err instanceof Check ? err.message : (err as Error).stack ?? String(err)}`)
    return 1
  } finally {
    await cleanup()
  }
}

process.exitCode = await main()
