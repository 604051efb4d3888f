// `busmq federate`: serves federation on 127.0.0.1 with the secret of a file; a federation-only bus
// pushes and reads through it, a wrong secret is refused; it ends cleanly (exit code 0) on SIGINT.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Bus } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { openBus, uniqueName } from './helpers/bus.js'
import { runCli, startCli } from './helpers/cli.js'

const redis = useRedis(1)

test('busmq federate --port 0 --secret-file F: a federation-only bus pushes and reads through it; SIGINT ends it', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'busmq-fed-'))
  const file = path.join(dir, 's.txt')
  writeFileSync(file, 'a-secret-from-a-file\n')
  const local = await openBus(redis.servers)
  const cli = startCli(['federate', '--port', '0', '--path', '/bus', '--secret-file', file, '--redis', redis.servers[0].url])
  try {
    await cli.waitForStderr(/federation on ws:\/\/127\.0\.0\.1:\d+\/bus/)
    const url = /(ws:\/\/127\.0\.0\.1:\d+\/bus)/.exec(cli.stderr())![1]
    const client = new Bus({ federation: { urls: [url], secret: 'a-secret-from-a-file' } })
    const name = uniqueName('cli-fed')
    assert.equal(await client.queue(name).push(Buffer.from('through the CLI')), 1)
    assert.equal((await local.queue(name).createReadStream({ max: 1 }).toArray())[0].toString(), 'through the CLI')
    assert.equal(await client.queue(name).find(), url)
    await client.close()
    const wrong = new Bus({ federation: { urls: [url], secret: 'wrong' } })
    await assert.rejects(wrong.connect(), { code: 'ERR_BUSMQ_UNAUTHORIZED' })
    await wrong.close()
    cli.child.kill('SIGINT')
    const result = await cli.done
    assert.equal(result.code, 0, result.stderr)
  } finally {
    cli.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
})

test('busmq federate without a secret, or with an unreadable secret file, is a usage error', async () => {
  for (const args of [[], ['--secret-file', '/nonexistent/secret']]) {
    const r = await runCli(['federate', '--port', '0', '--redis', redis.servers[0].url, ...args])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^busmq: .*\(try "busmq federate --help"\)\n$/)
  }
})
