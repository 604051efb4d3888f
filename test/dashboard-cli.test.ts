// `busmq dashboard`: serves the page, the state and /metrics on 127.0.0.1, refuses admin actions unless
// started with a token, and ends cleanly (exit code 0) on SIGINT.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { useRedis } from './helpers/redis-server.js'
import { openBus, uniqueName } from './helpers/bus.js'
import { runCli, startCli } from './helpers/cli.js'

const redis = useRedis(1)

test('busmq dashboard --port 0 serves the page, the state and /metrics, and stops on SIGINT', async () => {
  const bus = await openBus(redis.servers)
  const name = uniqueName('cli-dash')
  try {
    await bus.queue(name).attach()
    await bus.queue(name).push('hello')
    const cli = startCli(['dashboard', '--port', '0', '--redis', redis.servers[0].url], { env: { BUSMQ_ADMIN_TOKEN: 'tok' } })
    await cli.waitForStderr(/dashboard on http:\/\/127\.0\.0\.1:\d+\//)
    const base = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(cli.stderr())![1]
    assert.match(cli.stderr(), /admin actions on/)
    const page = await fetch(base)
    assert.equal(page.status, 200)
    assert.match(await page.text(), /<title>BusMQ dashboard<\/title>/)
    const state = await (await fetch(`${base}api/state?filter=${name}`)).json() as { sections: Array<{ id: string, rows: Array<{ name: string, depth: number }> }> }
    assert.deepEqual(state.sections.find((s) => s.id === 'queues')?.rows.map((r) => [r.name, r.depth]), [[name, 1]])
    const metrics = await fetch(`${base}metrics`)
    assert.match(await metrics.text(), /^busmq_shard_up\{shard="127\.0\.0\.1:\d+\/0"\} 1$/m)
    const refused = await fetch(`${base}api/actions/delete?name=${name}`, { method: 'POST' })
    assert.equal(refused.status, 401)
    assert.equal(await bus.queue(name).count(), 1)
    cli.child.kill('SIGINT')
    const result = await cli.done
    assert.equal(result.code, 0, result.stderr)
  } finally {
    await bus.close()
  }
})

test('busmq dashboard: --master without --sentinel, a bad --cluster and --redis with --cluster are usage errors', async () => {
  for (const args of [['--master', 'a'], ['--cluster', 'nope'], ['--redis', 'redis://127.0.0.1:1', '--cluster', '127.0.0.1:7000']]) {
    const r = await runCli(['dashboard', ...args])
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /^busmq: .*\(try "busmq dashboard --help"\)\n$/)
  }
})
