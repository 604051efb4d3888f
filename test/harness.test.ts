import { test, after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import { Redis, Cluster } from 'ioredis'
import {
  ping,
  redisCommand,
  redisServerVersion,
  startRedis,
  startRedisGroup,
  stopAllRedis,
  useRedis,
  waitFor,
  type RedisServer,
} from './helpers/redis-server.js'
import { startCluster } from './helpers/cluster.js'
import { startSentinelGroup } from './helpers/sentinel.js'

after(stopAllRedis)

/**
 * Whether `pid` still runs. A zombie counts as gone: processes orphaned by a
 * killed child node are reaped by init, which in containers may take a while.
 */
function running (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return !fs.existsSync('/proc/self/stat') // no procfs: trust kill(0)
  }
}

function assertGone (pid: number): void {
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `pid ${pid} is still running`)
}

let group: RedisServer[] = []

test('redis-server >= 6.2 is on PATH', () => {
  assert.match(redisServerVersion(), /^\d+\.\d+\.\d+$/)
})

test('startRedisGroup() starts servers in parallel on distinct loopback ports', async () => {
  group = await startRedisGroup(3)
  assert.equal(group.length, 3)
  assert.equal(new Set(group.map((s) => s.port)).size, 3)
  assert.equal(new Set(group.map((s) => s.pid)).size, 3)
  assert.equal(new Set(group.map((s) => s.dir)).size, 3)
  for (const s of group) {
    assert.equal(s.host, '127.0.0.1')
    assert.equal(s.url, `redis://127.0.0.1:${s.port}`)
    assert.ok(s.alive)
    assert.ok(fs.existsSync(s.dir))
    assert.equal(await ping(s.port), true)
    assert.equal(await s.cli('PING'), 'PONG')
  }
  assert.equal(await group[0].cli('SET', 'busmq:harness', 'x'), 'OK')
  assert.equal(await group[0].cli('GET', 'busmq:harness'), 'x')
  assert.equal(await group[1].cli('EXISTS', 'busmq:harness'), '0')
})

test('kill()/stop() + restart() keeps data with appendonly', async () => {
  const s = await startRedis({ appendonly: true })
  const { port, pid: firstPid } = s
  assert.equal(await s.cli('SET', 'busmq:persist', 'v1'), 'OK')

  await s.kill()
  assert.equal(s.alive, false)
  assertGone(firstPid)
  assert.equal(await ping(port, 300), false)

  await s.restart()
  assert.ok(s.alive)
  assert.equal(s.port, port)
  assert.notEqual(s.pid, firstPid)
  assert.equal(await s.cli('GET', 'busmq:persist'), 'v1')

  const secondPid = s.pid
  await s.stop()
  assertGone(secondPid)
  await s.restart()
  assert.equal(await s.cli('GET', 'busmq:persist'), 'v1')
  await s.dispose()
  assert.equal(fs.existsSync(s.dir), false)
})

test('extra args are passed through (requirepass)', async () => {
  const s = await startRedis({ args: ['--requirepass', 'secret'] })
  // redis-cli prints error replies and exits 0; accept a rejection too, just in case
  assert.match(await s.cli('SET', 'k', 'v').catch((e: Error) => e.message), /NOAUTH/)
  assert.equal(await s.cli('-a', 'secret', '--no-auth-warning', 'PING'), 'PONG')
  await s.kill()
  await s.restart() // readiness must cope with NOAUTH
  assert.equal(await s.cli('-a', 'secret', '--no-auth-warning', 'PING'), 'PONG')
})

test('pause() freezes a server until resume()', async () => {
  const s = group[0]
  s.pause()
  assert.equal(s.paused, true)
  try {
    assert.equal(await ping(s.port, 300), false)
  } finally {
    s.resume()
  }
  assert.equal(s.paused, false)
  assert.equal(await ping(s.port, 2000), true)
})

test('startCluster() forms a working cluster', async () => {
  const cluster = await startCluster(3)
  const client = new Cluster(cluster.seeds)
  try {
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.set(`busmq:c:${i}`, String(i))))
    assert.equal(await client.get('busmq:c:42'), '42')
    const sizes = await Promise.all(cluster.nodes.map((n) => redisCommand(n.port, ['DBSIZE'])))
    assert.equal(sizes.reduce<number>((a, b) => a + Number(b), 0), 100)
    assert.ok(sizes.every((n) => Number(n) > 0), 'keys are spread over all masters')
  } finally {
    client.disconnect()
    await cluster.stop()
  }
  for (const n of cluster.nodes) assertGone(n.pid)
})

test('startSentinelGroup() works with ioredis sentinels', async () => {
  const g = await startSentinelGroup({ replicas: 2, sentinels: 3 })
  assert.equal(g.sentinelAddrs.length, 3)
  const client = new Redis({ sentinels: g.sentinelAddrs, name: g.name })
  try {
    assert.equal(await client.set('busmq:s', 'v'), 'OK')
    assert.equal(await client.get('busmq:s'), 'v')
    assert.equal(await client.wait(2, 5000), 2)
    for (const r of g.replicas) assert.equal(await r.cli('GET', 'busmq:s'), 'v')
  } finally {
    client.disconnect()
    await g.stop()
  }
  for (const s of [g.primary, ...g.replicas, ...g.sentinels]) assertGone(s.pid)
})

/** Runs a child node process that starts one server with the launcher and prints its pid/dir. */
function childWithServer (keepAlive: boolean) {
  const helper = new URL('../lib/dev/redis-launcher.js', import.meta.url).href
  const code =
    `import { startRedis } from ${JSON.stringify(helper)};\n` +
    'const s = await startRedis();\n' +
    'process.stdout.write(JSON.stringify({ pid: s.pid, dir: s.dir }) + \'\\n\');\n' +
    (keepAlive ? 'setInterval(() => {}, 1000);\n' : '')
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const started = new Promise<{ pid: number; dir: string }>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('\n')) resolve(JSON.parse(out))
    })
    child.once('exit', () => reject(new Error(`child exited before starting redis: ${err}`)))
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return { child, started, exited }
}

test('an exiting process cleans up servers it never stopped (and is not kept alive by them)', async () => {
  const { child, started, exited } = childWithServer(false)
  const { pid, dir } = await started
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
  assert.equal(child.signalCode, null, 'child did not exit by itself: redis-server kept its event loop alive')
  await waitFor(() => !running(pid) && !fs.existsSync(dir), { timeoutMs: 5000, what: 'exit-hook cleanup' })
})

test('the watchdog cleans up after a SIGKILLed process', async () => {
  const { child, started, exited } = childWithServer(true)
  const { pid, dir } = await started
  assert.ok(running(pid))
  child.kill('SIGKILL')
  await exited
  await waitFor(() => !running(pid) && !fs.existsSync(dir), { timeoutMs: 8000, what: 'watchdog cleanup' })
})

test('a test file that leaves a handle open fails, naming it, and still ends', async () => {
  const fixture = new URL('./fixtures/leaky.js', import.meta.url).pathname
  const run = async (leak: string): Promise<{ code: number | null, signal: string | null, out: string }> => {
    const child = spawn(process.execPath, [fixture], { env: { ...process.env, LEAK: leak }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { out += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    const [code, signal] = await once(child, 'close') as [number | null, string | null]
    clearTimeout(timer)
    return { code, signal, out }
  }
  const clean = await run('none')
  assert.equal(clean.code, 0, clean.out)
  assert.doesNotMatch(clean.out, /LEAK/)
  // A test that fails with a bus open (a reader waiting): openBus() closes it after the test.
  const failed = await run('failed')
  assert.equal(failed.code, 1, failed.out)
  assert.match(failed.out, /failed half-way/)
  assert.doesNotMatch(failed.out, /LEAK/)
  const server = await run('server')
  assert.equal(server.code, 1, server.out)
  assert.match(server.out, /LEAK: .*leaky\.js: after its last test, 1 handle\(s\) still hold the process open:\n {2}a server listening on \{"address":"127\.0\.0\.1"/)
  // A client that keeps reconnecting: a chain of timers and sockets, which only ending the process stops.
  const bus = await run('bus')
  assert.equal(bus.signal, null, 'the process had to be killed: the leak kept it alive')
  assert.equal(bus.code, 1, bus.out)
  assert.match(bus.out, /LEAK: .*still hold the process open:\n {2}(a Socket|a timer)/)
})

let hooked: { readonly servers: RedisServer[] } = { servers: [] }
describe('useRedis()', () => {
  hooked = useRedis(2)
  it('starts the servers in before()', async () => {
    assert.equal(hooked.servers.length, 2)
    for (const s of hooked.servers) assert.equal(await ping(s.port), true)
  })
})

test('stopAllRedis() kills every server (even paused ones) and removes their dirs', async () => {
  for (const s of hooked.servers) assert.equal(s.alive, false, 'useRedis() after() disposed its servers')
  const paused = await startRedis()
  paused.pause()
  const all = [...group, paused]
  await stopAllRedis()
  for (const s of all) {
    assert.equal(s.alive, false)
    assertGone(s.pid)
    assert.equal(fs.existsSync(s.dir), false)
  }
  for (const s of hooked.servers) {
    assertGone(s.pid)
    assert.equal(fs.existsSync(s.dir), false)
  }
})
