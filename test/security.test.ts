// Issue 7: security. (a) AUTH, (b) an ACL user limited to the bus's keys and channels runs every feature
// and is refused everything else, (c) TLS with a CA made at test time, (d) hostile names and payloads.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Redis } from 'ioredis'
import { Bus, type Queue, type ReliableMessage, type IdentifiedMessage } from '../lib/index.js'
import { freePort, launchRedis, redisArgs, startRedis, type RedisServer } from './helpers/redis-server.js'
import { collect, eventually, openBus, uniqueName } from './helpers/bus.js'
import { sleep, writeAll } from './helpers/queue.js'

const CONNECT_TIMEOUT = 2000
const SLACK = 3000

/** connect() of a fresh bus; resolves with how long it took to settle and the error, if any. */
async function tryConnect (options: ConstructorParameters<typeof Bus>[0]): Promise<{ ms: number, err?: any }> {
  // A short commandTimeout: after a failed connect, ioredis leaves handshake commands whose timers keep
  // the process alive for commandTimeout (see the todo test below); this keeps the file quick.
  const bus = new Bus({ connectTimeout: CONNECT_TIMEOUT, commandTimeout: 2000, ...options })
  const t0 = Date.now()
  try {
    await bus.connect()
    return { ms: Date.now() - t0 }
  } catch (err) {
    return { ms: Date.now() - t0, err }
  } finally {
    await bus.close()
  }
}

/** The message of an error and of its causes, joined. */
function fullMessage (err: any): string {
  const parts: string[] = []
  for (let e = err; e && parts.length < 5; e = e.cause) parts.push(String(e.message ?? e))
  return parts.join(' <- ')
}

/** A queue round trip: push three messages, read them back in order. */
async function roundTrip (bus: Bus): Promise<void> {
  const q = bus.queue(uniqueName('rt'), { objectMode: true })
  await writeAll(q.createWriteStream(), [1, 2, 3])
  assert.deepEqual(await collect(q.createReadStream({ max: 3 })), [1, 2, 3])
}

interface FixtureRun {
  events: Array<{ event: string, code?: string, message?: string, ms?: number }>
  exitCode: number | null
  /** The process had to be killed: it was still alive 3 s after bus.close(). */
  killed: boolean
  /** ms from "closed" to the exit (or the kill). */
  lingered: number
  stderr: string
}

/**
 * Runs test/fixtures/fault-failed-connect.js: a bus that fails to connect and is closed, in a process of
 * its own (so what that leaves behind, or a crash, is seen and does not hit this process).
 */
async function runFailedConnect (args: string[]): Promise<FixtureRun> {
  const script = fileURLToPath(new URL('./fixtures/fault-failed-connect.js', import.meta.url))
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stderr = ''
  let closedAt = 0
  let timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  child.stderr.on('data', (d) => { stderr += d })
  child.stdout.on('data', (d) => {
    out += d
    if (closedAt === 0 && out.includes('"closed"')) {
      closedAt = Date.now()
      // No need to wait out a 15 s timer to know it is there.
      clearTimeout(timer)
      timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    }
  })
  const [exitCode, signal] = await once(child, 'exit')
  clearTimeout(timer)
  return {
    events: out.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l)),
    exitCode,
    killed: signal === 'SIGKILL',
    lingered: closedAt === 0 ? -1 : Date.now() - closedAt,
    stderr
  }
}

// ---------------------------------------------------------------------------------------------------
// (a) AUTH

test('AUTH: the right password works, a wrong or missing one makes connect() reject with the reason', { timeout: 60_000 }, async (t) => {
  const server = await startRedis({ args: ['--requirepass', 'secret'] })
  try {
    const url = `redis://:secret@${server.host}:${server.port}`
    const bus = await openBus([], { redis: [url] })
    try {
      await roundTrip(bus)
      // The subscriber connection authenticates too: pub/sub and wake-ups work.
      const topic = bus.pubsub(uniqueName('auth-topic'))
      const sub = topic.createReadStream()
      const got = once(sub, 'data')
      assert.ok(await eventually(async () => (await topic.publish('hi')) > 0, 5000))
      assert.equal(String((await got)[0]), 'hi')
      // Credentials are not part of the shard id.
      assert.deepEqual(bus.shardIds, [`${server.host}:${server.port}/0`])
    } finally {
      await bus.close()
    }
    // Through redisOptions instead of the URL.
    const viaOptions = await tryConnect({ redis: [server.url], redisOptions: { password: 'secret' } })
    assert.equal(viaOptions.err, undefined)

    const wrong = await tryConnect({ redis: [`redis://:n0t-the-pa55@${server.host}:${server.port}`] })
    t.diagnostic(`wrong password: ${wrong.err?.code} after ${wrong.ms} ms: ${fullMessage(wrong.err)}`)
    assert.equal(wrong.err?.code, 'ERR_BUSMQ_CONNECT_TIMEOUT')
    assert.match(fullMessage(wrong.err), /WRONGPASS|invalid username-password/)
    assert.ok(wrong.ms <= CONNECT_TIMEOUT + SLACK, `connect() took ${wrong.ms} ms to give up`)
    assert.ok(!fullMessage(wrong.err).includes('n0t-the-pa55'), 'the password leaked into the error message')

    const none = await tryConnect({ redis: [server.url] })
    t.diagnostic(`no password: ${none.err?.code} after ${none.ms} ms: ${fullMessage(none.err)}`)
    assert.equal(none.err?.code, 'ERR_BUSMQ_CONNECT_TIMEOUT')
    assert.match(fullMessage(none.err), /NOAUTH|Authentication required/)
    assert.ok(none.ms <= CONNECT_TIMEOUT + SLACK)
  } finally {
    await server.dispose()
  }
})

test('a process whose bus failed to connect (wrong password) exits by itself after close()', {
  timeout: 60_000
}, async (t) => {
  const server = await startRedis({ args: ['--requirepass', 'secret'] })
  try {
    const run = await runFailedConnect([`redis://:wrong@${server.host}:${server.port}`, '1000'])
    t.diagnostic(`events ${JSON.stringify(run.events.map((e) => e.event))}; ` +
      (run.killed ? `still alive ${run.lingered} ms after close() (killed)` : `exited ${run.lingered} ms after close()`))
    assert.deepEqual(run.events.map((e) => [e.event, e.code]), [['rejected', 'ERR_BUSMQ_CONNECT_TIMEOUT'], ['closed', undefined]])
    assert.equal(run.killed, false, `the process lived on ${run.lingered} ms after bus.close()`)
    // It used to linger for the 15 s of ioredis's command timers; a couple of seconds of socket teardown remain.
    assert.ok(run.lingered < 5000, `exited ${run.lingered} ms after close()`)
  } finally {
    await server.dispose()
  }
})

// ---------------------------------------------------------------------------------------------------
// (b) ACL

/** Everything a stream emits until 'end' (not for await: that would destroy a half-open channel). */
function readToEnd (stream: NodeJS.EventEmitter): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const out: unknown[] = []
    stream.on('data', (x: unknown) => out.push(x))
    stream.once('end', () => resolve(out))
    stream.once('error', reject)
  })
}

/** Every feature, briefly, each checked. */
async function workload (bus: Bus): Promise<void> {
  // Consume-once, with an end marker.
  const q = bus.queue(uniqueName('acl-consume'), { objectMode: true })
  const w = q.createWriteStream({ endMarker: true })
  await writeAll(w, ['a', 'b', 'c'])
  assert.deepEqual(await collect(q.createReadStream({ untilEnd: true })), ['a', 'b', 'c'])

  // Replay with retention, from an offset.
  const log = bus.queue(uniqueName('acl-replay'), { objectMode: true, retain: 3 })
  const ids: number[] = []
  for (let i = 0; i < 5; i++) ids.push((await log.push(i))!)
  const replayed = await collect(log.createReadStream({ mode: 'replay', from: 0, withIds: true, max: 3 })) as Array<IdentifiedMessage<number>>
  assert.deepEqual(replayed.map((m) => m.data), [2, 3, 4])
  assert.deepEqual(await collect(log.createReadStream({ mode: 'replay', from: ids[4], max: 1 })), [4])

  // Reliable: ack, nack (redelivered), dead letter after maxDeliveries and on demand, the ack stream.
  const rq = bus.queue(uniqueName('acl-reliable'), { objectMode: true })
  await writeAll(rq.createWriteStream(), ['ok', 'retry', 'dead'])
  const reader = rq.createReadStream({ mode: 'reliable', maxDeliveries: 2, lease: 10_000 })
  const seen: string[] = []
  for await (const m of reader as AsyncIterable<ReliableMessage<string>>) {
    seen.push(`${m.data}#${m.deliveries}`)
    if (m.data === 'ok') assert.equal(await m.ack(), true)
    else if (m.data === 'retry') await m.nack()
    else await m.nack({ deadLetter: true })
    if (seen.length === 4) break
  }
  assert.deepEqual(seen, ['ok#1', 'retry#1', 'dead#1', 'retry#2'])
  // 'retry' was nacked a second time after its 2nd delivery: it is dead-lettered too.
  const dlq = rq.deadLetter()
  const dead = await collect(dlq.createReadStream({ mode: 'replay', withIds: true, max: 2 })) as Array<IdentifiedMessage<string>>
  assert.deepEqual(dead.map((d) => d.data).sort(), ['dead', 'retry'])
  const reasons = await Promise.all(dead.map(async (d) => (await dlq.history(d.id))?.reason))
  assert.deepEqual(reasons.sort(), ['max-deliveries', 'nack'])
  await writeAll(rq.createWriteStream(), ['x', 'y'])
  const acker = rq.createAckStream()
  await pipeline(rq.createReadStream({ mode: 'reliable', max: 2 }), acker)
  assert.equal(acker.acked, 2)
  assert.equal((await rq.stats()).inFlight, 0)

  // An undecodable payload: the reader fails with ERR_BUSMQ_DECODE, the payload goes to the dead letters.
  const poisoned = bus.queue(uniqueName('acl-poison'), { objectMode: true })
  await bus.queue(poisoned.name).push(Buffer.from('{not json'))
  const poisonReader = poisoned.createReadStream({ mode: 'reliable' })
  const failed = once(poisonReader, 'error')
  poisonReader.resume()
  const [decodeErr] = await failed
  assert.equal(decodeErr.code, 'ERR_BUSMQ_DECODE')
  const [poison] = await collect(bus.queue(poisoned.name).deadLetter().createReadStream({ mode: 'replay', withIds: true, max: 1 })) as Array<IdentifiedMessage<Buffer>>
  assert.equal(String(poison.data), '{not json')
  assert.equal((await poisoned.deadLetter().history(poison.id))?.reason, 'decode')

  // A bounded queue: the producer waits for room (the 'r' wake-up) and gets everything through.
  const bounded = bus.queue(uniqueName('acl-bounded'), { objectMode: true, maxLength: 2 })
  const consumer = collect(bounded.createReadStream({ max: 6 }))
  await writeAll(bounded.createWriteStream(), [0, 1, 2, 3, 4, 5])
  assert.deepEqual(await consumer, [0, 1, 2, 3, 4, 5])

  // Channels: either side first, presence, half-close both ways.
  const name = uniqueName('acl-chan')
  const a = bus.channel(name, { objectMode: true })
  const b = bus.channel(name, { objectMode: true, listen: true })
  const remote = once(a, 'remote:connect')
  const atB = readToEnd(b)
  const atA = readToEnd(a)
  a.end('hello')
  assert.deepEqual(await atB, ['hello'])
  assert.equal(a.destroyed, false)
  b.end('bye')
  assert.deepEqual(await atA, ['bye'])
  await remote

  // A reliable channel, both ways.
  const rname = uniqueName('acl-rchan')
  const ra = bus.channel(rname, { objectMode: true, reliable: true })
  const rb = bus.channel(rname, { objectMode: true, reliable: true, listen: true })
  const atRb = readToEnd(rb)
  const atRa = readToEnd(ra)
  ra.end({ n: 1 })
  assert.deepEqual(await atRb, [{ n: 1 }])
  rb.end({ n: 2 })
  assert.deepEqual(await atRa, [{ n: 2 }])

  // Plain pub/sub.
  const topic = bus.pubsub(uniqueName('acl-topic'), { objectMode: true })
  const sub = topic.createReadStream()
  const first = once(sub, 'data')
  assert.ok(await eventually(async () => (await topic.publish({ px: 1 })) > 0, 5000))
  assert.deepEqual((await first)[0], { px: 1 })
  sub.destroy()

  // Attach / TTL / expiry, stats, metadata, count, flush.
  const life = bus.queue(uniqueName('acl-life'), { objectMode: true, ttl: 300 })
  await life.attach({ ttl: 300 })
  await life.push('m')
  await life.setMeta({ owner: 'tests', n: 2 })
  assert.deepEqual(await life.getMeta(), { owner: 'tests', n: '2' })
  assert.equal(await life.getMeta('owner'), 'tests')
  let stats = await life.stats()
  assert.equal(stats.length, 1)
  assert.equal(stats.pushed, 1)
  assert.equal(stats.clients, 1)
  assert.ok(stats.ttl > 0 && stats.ttl <= 300)
  // Time passing is the point: past the TTL, an attached queue must still be there.
  await sleep(500)
  assert.equal(await life.exists(), true, 'an attached queue expired')
  assert.equal(await life.count(), 1)
  await life.flush()
  assert.equal(await life.count(), 0)
  await life.detach()
  stats = await life.stats()
  assert.equal(stats.clients, 0)
  assert.ok(await eventually(async () => !(await life.exists()), 5000), 'a detached queue did not expire')
  assert.equal(await life.ttlLeft(), -2)
}

test('ACL: a user limited to ~busmq:* &busmq:* -@dangerous runs every feature; nothing it does is denied; the ACL bites', { timeout: 60_000 }, async () => {
  const server = await startRedis()
  try {
    assert.equal(await server.cli('ACL', 'SETUSER', 'app', 'on', '>pw', '~busmq:*', '&busmq:*', '+@all', '-@dangerous'), 'OK')
    assert.equal(await server.cli('ACL', 'LOG', 'RESET'), 'OK')
    // ioredis checks that a connection is ready with INFO, which -@dangerous denies (it then warns on
    // the console and carries on). That is ioredis's, not BusMQ's: it is turned off here, and the
    // denied-command check below is also run once with it on (see the second half).
    const warnings: string[] = []
    const warn = console.warn
    console.warn = (...args: unknown[]) => { warnings.push(args.join(' ')) }
    try {
      const bus = await openBus([], { redis: [`redis://app:pw@${server.host}:${server.port}`], redisOptions: { enableReadyCheck: false } })
      try {
        await workload(bus)
      } finally {
        await bus.close()
      }
    } finally {
      console.warn = warn
    }
    const denied = await server.cli('ACL', 'LOG')
    assert.equal(denied, '', `commands of the workload were denied:\n${denied}`)
    assert.deepEqual(warnings, [])

    // The ACL bites: the same user is refused KEYS, FLUSHALL, keys and channels outside the prefix.
    const app = new Redis({ host: server.host, port: server.port, username: 'app', password: 'pw', enableReadyCheck: false, lazyConnect: true })
    try {
      await app.connect()
      await assert.rejects(app.keys('*'), /NOPERM/)
      await assert.rejects(app.flushall(), /NOPERM/)
      await assert.rejects(app.call('CONFIG', 'GET', 'requirepass'), /NOPERM/)
      await assert.rejects(app.get('other:key'), /NOPERM/)
      await assert.rejects(app.publish('other-channel', 'x'), /NOPERM/)
      assert.equal(await app.set('busmq:acl-probe', '1'), 'OK')
    } finally {
      app.disconnect()
    }
    const log = await server.cli('ACL', 'LOG')
    for (const what of ['keys', 'flushall', 'config|get', 'other:key', 'other-channel']) {
      assert.ok(log.includes(what), `ACL LOG does not show the refused ${what}:\n${log}`)
    }
    assert.ok(Number(await server.cli('DBSIZE')) > 0, 'FLUSHALL went through')
  } finally {
    await server.dispose()
  }
})

test('ACL: with ioredis\'s default ready check (INFO), the only denied command is that INFO', { timeout: 60_000 }, async (t) => {
  const server = await startRedis()
  try {
    await server.cli('ACL', 'SETUSER', 'app', 'on', '>pw', '~busmq:*', '&busmq:*', '+@all', '-@dangerous')
    await server.cli('ACL', 'LOG', 'RESET')
    const warnings: string[] = []
    const warn = console.warn
    console.warn = (...args: unknown[]) => { warnings.push(args.join(' ')) }
    try {
      const bus = await openBus([], { redis: [`redis://app:pw@${server.host}:${server.port}`] })
      try {
        await roundTrip(bus)
      } finally {
        await bus.close()
      }
    } finally {
      console.warn = warn
    }
    // ACL LOG in redis-cli's raw form: one field per line; each entry has an "object" field.
    const lines = (await server.cli('ACL', 'LOG')).split('\n')
    const objects = lines.flatMap((l, i) => l === 'object' ? [lines[i + 1]] : [])
    t.diagnostic(`denied with the default ready check: ${JSON.stringify(objects)}; console.warn calls: ${warnings.length}`)
    assert.deepEqual([...new Set(objects)], objects.length > 0 ? ['info'] : [])
  } finally {
    await server.dispose()
  }
})

// ---------------------------------------------------------------------------------------------------
// (c) TLS

interface Pki { dir: string, ca: Buffer, wrongCaFile: string, cert: string, key: string, caFile: string }
let pki: Pki | undefined
let tlsServer: RedisServer | undefined
let tlsPort = 0
let tlsSkip: string | undefined

function openssl (dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A CA, a server certificate it signs (CN and SAN 127.0.0.1 / localhost), and an unrelated CA. */
async function makePki (): Promise<Pki> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'busmq-tls-'))
  // Also when the run is cut short (a timeout) and after() does not get to run.
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=busmq test CA', ...ca)
  openssl(dir, 'req', '-x509', ...ec, '-keyout', 'wrong.key', '-out', 'wrong.crt', '-days', '2', '-subj', '/CN=busmq test CA', ...ca)
  openssl(dir, 'req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf')
  return {
    dir,
    ca: fs.readFileSync(path.join(dir, 'ca.crt')),
    wrongCaFile: path.join(dir, 'wrong.crt'),
    cert: path.join(dir, 'server.crt'),
    key: path.join(dir, 'server.key'),
    caFile: path.join(dir, 'ca.crt')
  }
}

before(async () => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
  } catch {
    tlsSkip = 'openssl is not installed'
    return
  }
  pki = await makePki()
  tlsPort = await freePort()
  // The harness checks readiness on the plain port; once up, the plain port is closed (CONFIG SET
  // port 0), so the server speaks TLS only, as `--port 0 --tls-port P` would.
  try {
    tlsServer = await launchRedis({
      argv: (port, dir) => redisArgs(port, dir, {
        args: ['--tls-port', String(tlsPort), '--tls-cert-file', pki!.cert, '--tls-key-file', pki!.key,
          '--tls-ca-cert-file', pki!.caFile, '--tls-auth-clients', 'no']
      })
    })
  } catch (err) {
    // A redis-server built without TLS refuses the tls-* options at startup.
    if (/tls/i.test((err as Error).message)) {
      tlsSkip = `this redis-server has no TLS support: ${(err as Error).message.split('\n')[0]}`
      return
    }
    throw err
  }
  assert.equal(await tlsServer.cli('CONFIG', 'SET', 'port', '0'), 'OK')
})

after(async () => {
  await tlsServer?.dispose()
  if (pki) await fsp.rm(pki.dir, { recursive: true, force: true })
})

test('TLS: rediss:// with the right CA works end to end; a wrong CA or plain redis:// is refused', { timeout: 60_000 }, async (t) => {
  if (tlsSkip) assert.fail(`the TLS test needs openssl and a redis-server built with TLS: ${tlsSkip}`)
  const url = `rediss://127.0.0.1:${tlsPort}`
  // The plain port is gone: only TLS is spoken.
  await assert.rejects(new Promise((resolve, reject) => {
    const s = net.connect(tlsServer!.port, '127.0.0.1', () => { s.destroy(); resolve(undefined) })
    s.once('error', reject)
  }), /ECONNREFUSED/)

  // pollInterval far beyond this test's timeout: a waiting reader gets a push in time only by a wake-up.
  const bus = await openBus([], { redis: [url], pollInterval: 600_000, redisOptions: { tls: { ca: pki!.ca } } })
  const admin = new Redis(url, { tls: { ca: pki!.ca }, lazyConnect: true })
  try {
    await roundTrip(bus)
    // Wake-ups over the TLS subscriber connection: a waiting reader gets a later push at once.
    const q = bus.queue(uniqueName('tls-wake'))
    await admin.connect()
    const pops = async (): Promise<number> => Number(/cmdstat_lpop:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0)
    const popsBefore = await pops()
    const got = collect(q.createReadStream({ max: 1 }))
    // The reader found the queue empty, subscribed its wake-up channel, looked again (a second empty
    // pop) and sleeps: from now on only a wake-up (or the poll, 10 minutes away) makes it look again.
    await eventually(async () => {
      const [, subscribers] = await admin.call('PUBSUB', 'NUMSUB', q.keys.wake) as [string, number]
      return subscribers > 0 && await pops() >= popsBefore + 2
    }, 10_000, 'the reader to wait: subscribed, and two empty pops')
    await q.push(Buffer.from([0, 1, 2, 255]))
    assert.deepEqual(await got, [Buffer.from([0, 1, 2, 255])])
  } finally {
    admin.disconnect()
    await bus.close()
  }
  // The SAN has localhost too.
  const byName = await tryConnect({ redis: [`rediss://localhost:${tlsPort}`], redisOptions: { tls: { ca: pki!.ca } } })
  assert.equal(byName.err, undefined, fullMessage(byName.err))

  // Refused certificates, each in a process of its own: closing a bus whose TLS attempt is under way can
  // crash the process (see the todo test below), which must not take this test file down with it.
  for (const [what, ca] of [['wrong CA', pki!.wrongCaFile], ['no CA (system store)', '-']]) {
    const run = await runFailedConnect([url, String(CONNECT_TIMEOUT), ca])
    const rejected = run.events.find((e) => e.event === 'rejected')
    t.diagnostic(`${what}: ${rejected?.code} after ${rejected?.ms} ms: ${rejected?.message}; the process then ` +
      (run.killed ? `lived on ${run.lingered} ms (killed)` : `exited with code ${run.exitCode} after ${run.lingered} ms`))
    assert.equal(rejected?.code, 'ERR_BUSMQ_CONNECT_TIMEOUT', `${what}: ${JSON.stringify(run)}`)
    assert.match(rejected.message ?? '', /certificate/i)
    assert.ok(rejected.ms! <= CONNECT_TIMEOUT + SLACK)
  }

  // Plain text to the TLS port never gets an answer.
  const plainText = await tryConnect({ redis: [`redis://127.0.0.1:${tlsPort}`] })
  assert.equal(plainText.err?.code, 'ERR_BUSMQ_CONNECT_TIMEOUT')
})

test('closing a bus while its TLS connection attempt is under way does not crash the process', {
  timeout: 60_000
}, async (t) => {
  if (tlsSkip) assert.fail(`the TLS test needs openssl and a redis-server built with TLS: ${tlsSkip}`)
  const run = await runFailedConnect([`rediss://127.0.0.1:${tlsPort}`, String(CONNECT_TIMEOUT), pki!.wrongCaFile, 'close-at-once'])
  t.diagnostic(`exit code ${run.exitCode}${run.killed ? ' (killed)' : ''}; stderr: ${run.stderr.split('\n').slice(0, 8).join(' | ')}`)
  assert.deepEqual(run.events.map((e) => e.event), ['closed'])
  assert.equal(run.exitCode, 0, `the process crashed after bus.close(): ${run.stderr.split('\n').find((l) => /Error|ERR_/.test(l))}`)
})

// ---------------------------------------------------------------------------------------------------
// (d) Hostile names and payloads

const plain = { servers: [] as RedisServer[] }
before(async () => { plain.servers.push(await startRedis()) })
after(async () => { await Promise.all(plain.servers.map((s) => s.dispose())) })

test('names that break the hash tag, glob, or smuggle a command are rejected before reaching Redis', { timeout: 60_000 }, async () => {
  const server = plain.servers[0]
  const bus = await openBus(plain.servers)
  try {
    const before = await server.cli('INFO', 'commandstats')
    const bad = ['a}{b', '{busmq}', '}', '{', '*', 'a?b', '[ab]', 'x\r\nFLUSHALL', 'x\nFLUSHALL', 'a b', 'x\0y', 'é', '',
      'a'.repeat(201), 'busmq:q:{x}:m']
    for (const name of bad) {
      assert.throws(() => bus.queue(name), { code: 'ERR_BUSMQ_INVALID_NAME' }, `queue ${JSON.stringify(name)}`)
      assert.throws(() => bus.channel(name), { code: 'ERR_BUSMQ_INVALID_NAME' }, `channel ${JSON.stringify(name)}`)
      assert.throws(() => bus.pubsub(name), { code: 'ERR_BUSMQ_INVALID_NAME' }, `pubsub ${JSON.stringify(name)}`)
    }
    for (const name of [123, null, undefined, { toString: () => 'x' }]) {
      assert.throws(() => bus.queue(name as any), { code: 'ERR_BUSMQ_INVALID_NAME' })
    }
    // (Bad channel roles are covered by channel.test.ts: today they crash the process, see its todo.)
    assert.throws(() => new Bus({ redis: [server.url], prefix: 'a}{b' }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
    assert.throws(() => new Bus({ redis: [server.url], prefix: '*' }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
    // Nothing reached Redis (apart from the INFO calls themselves).
    const strip = (s: string): string => s.split('\n').filter((l) => !l.startsWith('cmdstat_info')).join('\n')
    assert.equal(strip(await server.cli('INFO', 'commandstats')), strip(before))
  } finally {
    await bus.close()
  }
})

test('"../x" is a legal name (README: . and / are allowed) and its keys stay inside the prefix and hash tag', { timeout: 60_000 }, async () => {
  const server = plain.servers[0]
  const bus = await openBus(plain.servers)
  try {
    for (const name of ['../x', '../../etc/passwd', 'a:b:c', '=@/.']) {
      const q = bus.queue(name)
      await q.push('m')
      const keys = (await server.cli('--scan', '--pattern', '*')).split('\n').filter((k) => k.includes(name))
      assert.ok(keys.length > 0)
      for (const k of keys) assert.ok(k.startsWith(`busmq:q:{${name}}:`), `key ${k} of ${name} is outside busmq:q:{${name}}:`)
      assert.deepEqual((await collect<Buffer>(q.createReadStream({ max: 1 }))).map(String), ['m'])
      await q.flush()
    }
  } finally {
    await bus.close()
  }
})

/** Pushes raw bytes through a byte-mode handle and reads them back through an objectMode one. */
async function decodeRaw (bus: Bus, raw: string, mode: 'consume' | 'replay' | 'reliable' = 'consume'): Promise<any> {
  const name = uniqueName('payload')
  await bus.queue(name).push(Buffer.from(raw, 'utf8'))
  const q: Queue = bus.queue(name, { objectMode: true })
  if (mode === 'reliable') {
    const [m] = await collect(q.createReadStream({ mode: 'reliable', max: 1 })) as Array<ReliableMessage>
    await m.ack()
    return m.data
  }
  const [m] = await collect(q.createReadStream({ mode, max: 1 }))
  return m
}

function assertNotPolluted (msg: any): void {
  assert.equal(({} as any).polluted, undefined, 'Object.prototype was polluted')
  assert.equal((globalThis as any).polluted, undefined)
  assert.equal(Object.assign({}, msg).polluted, undefined, 'Object.assign({}, msg) got a polluted prototype')
  assert.equal({ ...msg }.polluted, undefined)
  assert.equal(Object.getPrototypeOf(msg), Object.prototype)
  assert.ok(!Object.prototype.hasOwnProperty.call(msg, '__proto__'), 'an own __proto__ key survived decoding')
}

test('a JSON payload with __proto__ pollutes nothing, in every read mode and over pub/sub', { timeout: 60_000 }, async () => {
  const bus = await openBus(plain.servers)
  try {
    const raw = '{"__proto__":{"polluted":true},"a":1}'
    for (const mode of ['consume', 'replay', 'reliable'] as const) {
      const msg = await decodeRaw(bus, raw, mode)
      assert.equal(msg.a, 1, `${mode}: the rest of the payload was lost`)
      assertNotPolluted(msg)
    }
    // Nested, and the constructor.prototype form: plain data, nothing polluted.
    const nested = await decodeRaw(bus, '{"a":{"__proto__":{"polluted":true},"b":2}}')
    assert.equal(nested.a.b, 2)
    assertNotPolluted(nested.a)
    const ctor = await decodeRaw(bus, '{"constructor":{"prototype":{"polluted":true}}}')
    assert.equal(({} as any).polluted, undefined)
    assert.deepEqual(Object.keys(ctor), ['constructor'])
    // Pub/sub decodes with the same codec.
    const topic = bus.pubsub(uniqueName('proto-topic'), { objectMode: true })
    const sub = topic.createReadStream()
    const first = once(sub, 'data')
    const raw2 = bus.pubsub(topic.name)
    assert.ok(await eventually(async () => (await raw2.publish(Buffer.from(raw))) > 0, 5000))
    const [msg] = await first
    assert.equal(msg.a, 1)
    assertNotPolluted(msg)
    sub.destroy()
  } finally {
    await bus.close()
  }
})

test('a __proto__ key spelled with JSON escapes pollutes nothing either', {
  timeout: 60_000
}, async () => {
  const bus = await openBus(plain.servers)
  try {
    const msg = await decodeRaw(bus, '{"\\u005f_proto__":{"polluted":true},"a":1}')
    assert.equal(msg.a, 1)
    assertNotPolluted(msg)
  } finally {
    await bus.close()
  }
})

test('payloads that look like code are data, never evaluated', { timeout: 60_000 }, async () => {
  const bus = await openBus(plain.servers)
  try {
    assert.equal(await decodeRaw(bus, '"process.exit(1)"'), 'process.exit(1)')
    const obj = await decodeRaw(bus, '{"toString":"x","valueOf":"y","then":"z","constructor":"c"}')
    assert.equal(obj.toString, 'x')
    assert.equal(obj.then, 'z')
    assert.equal(typeof obj.toString, 'string')
    // A value with a `then` key that is not a function is not a thenable: awaiting it gives it back.
    assert.equal(await Promise.resolve(obj), obj)
    await assert.rejects(decodeRaw(bus, 'function () { globalThis.pwned = 1 }'), { code: 'ERR_BUSMQ_DECODE' })
    await assert.rejects(decodeRaw(bus, '(() => { globalThis.pwned = 1 })()'), { code: 'ERR_BUSMQ_DECODE' })
    assert.equal((globalThis as any).pwned, undefined)
    // Byte mode hands the bytes back untouched.
    const q = bus.queue(uniqueName('code-bytes'))
    await q.push('require("child_process").execSync("touch /tmp/pwned")')
    const [b] = await collect<Buffer>(q.createReadStream({ max: 1 }))
    assert.equal(b.toString(), 'require("child_process").execSync("touch /tmp/pwned")')
  } finally {
    await bus.close()
  }
})

test('a message over maxMessageSize is refused before anything is sent', { timeout: 60_000 }, async (t) => {
  const server = plain.servers[0]
  const max = 64 * 1024
  const bus = await openBus(plain.servers, { maxMessageSize: max })
  try {
    const q = bus.queue(uniqueName('big'))
    const oq = bus.queue(q.name, { objectMode: true })
    await q.push(Buffer.alloc(max, 1)) // exactly at the limit: accepted
    assert.equal(await q.count(), 1)
    const inputBytes = async (): Promise<number> => Number(/total_net_input_bytes:(\d+)/.exec(await server.cli('INFO', 'stats'))![1])
    const before = await inputBytes()
    const big = Buffer.alloc(4 * 1024 * 1024, 2)
    const refused = 4 * big.length + (max + 1) + (max + 1)
    await assert.rejects(q.push(big), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
    await assert.rejects(q.push(Buffer.alloc(max + 1)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
    await assert.rejects(oq.push('x'.repeat(max - 1)), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' }) // + 2 quotes
    await assert.rejects(bus.pubsub(uniqueName('big-topic')).publish(big), { code: 'ERR_BUSMQ_MESSAGE_TOO_LARGE' })
    // A producer stream: what came before goes through, the big one fails the stream.
    const w = q.createWriteStream()
    const failed = new Promise<any>((resolve) => w.on('error', resolve))
    w.write('small')
    w.write(big)
    assert.equal((await failed).code, 'ERR_BUSMQ_MESSAGE_TOO_LARGE')
    // A channel's writable side.
    const ch = bus.channel(uniqueName('big-chan'))
    const chFailed = new Promise<any>((resolve) => ch.on('error', resolve))
    ch.write(big)
    assert.equal((await chFailed).code, 'ERR_BUSMQ_MESSAGE_TOO_LARGE')
    const grew = (await inputBytes()) - before
    t.diagnostic(`Redis received ${grew} bytes while ${refused} bytes of oversized messages were refused`)
    assert.ok(grew < max, `Redis received ${grew} bytes: an oversized message was sent`)
    assert.equal(await q.count(), 2) // the one at the limit and 'small'
  } finally {
    await bus.close()
  }
})

test('ACL that denies the prefix: connect() rejects with ERR_BUSMQ_REDIS naming NOPERM, and succeeds once the ACL is fixed', { timeout: 60_000 }, async () => {
  const server = await startRedis()
  try {
    await server.cli('ACL', 'SETUSER', 'app', 'on', '>pw', '~other:*', '&other:*', '+@all', '-@dangerous')
    const bus = new Bus({ redis: [`redis://app:pw@${server.host}:${server.port}`], redisOptions: { enableReadyCheck: false }, connectTimeout: 5000 })
    try {
      const err = await bus.connect().then(() => undefined, (e: any) => e)
      assert.ok(err, 'connect() resolved although every key of the bus is denied')
      assert.equal(err.code, 'ERR_BUSMQ_REDIS')
      assert.match(err.message, /NOPERM/)
      // The same Bus connects once the ACL allows its prefix: the failed check is not cached.
      await server.cli('ACL', 'SETUSER', 'app', 'resetkeys', '~busmq:*', 'resetchannels', '&busmq:*')
      await bus.connect()
      const q = bus.queue(uniqueName())
      assert.equal(await q.push('x'), 1)
    } finally {
      await bus.close()
    }
  } finally {
    await server.dispose()
  }
})
