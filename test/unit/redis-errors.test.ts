// The ioredis error classification behind "re-send a command only while unsent": real ioredis errors,
// provoked without a server, and the messages pinned to the ioredis version in the lockfile.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { Redis, ReplyError } from 'ioredis'
import {
  ABORTED_MESSAGE, CLOSED_MESSAGE, NOT_SENT_MESSAGES, classify, retryable, wrapRedisError
} from '../../lib/router/redis-errors.js'
import { BusClosedError, ShardUnavailableError } from '../../lib/errors.js'

const require = createRequire(import.meta.url)
const { AbortError } = require('redis-errors') as { AbortError: new (message: string) => Error }
const ioredisDir = path.dirname(require.resolve('ioredis/package.json'))

function allJs (dir: string): string {
  let out = ''
  for (const f of readdirSync(dir)) {
    const p = path.join(dir, f)
    if (statSync(p).isDirectory()) out += allJs(p)
    else if (f.endsWith('.js')) out += readFileSync(p, 'utf8')
  }
  return out
}

/** A client that can never connect (port 1 refuses at once), without the offline queue. */
function unreachable (): Redis {
  return new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null, maxRetriesPerRequest: 0 })
}

test('the ioredis in node_modules is the one in the lockfile, and it still says what the classification reads', () => {
  const lock = JSON.parse(readFileSync(new URL('../../../package-lock.json', import.meta.url), 'utf8'))
  const installed = JSON.parse(readFileSync(path.join(ioredisDir, 'package.json'), 'utf8')).version
  assert.equal(installed, lock.packages['node_modules/ioredis'].version)
  const source = allJs(path.join(ioredisDir, 'built'))
  for (const message of [...NOT_SENT_MESSAGES, ABORTED_MESSAGE]) {
    assert.ok(source.includes(message), `ioredis ${installed} no longer says ${JSON.stringify(message)}`)
  }
  assert.ok(source.includes('CONNECTION_CLOSED_ERROR_MSG'))
  const utils = readFileSync(path.join(ioredisDir, 'built', 'utils', 'index.js'), 'utf8')
  assert.ok(utils.includes(JSON.stringify(CLOSED_MESSAGE)), `ioredis ${installed} changed its "${CLOSED_MESSAGE}" message`)
})

test('a command refused while the connection is not writable is not-sent: safe to send again', async () => {
  const client = unreachable()
  client.on('error', () => {})
  try {
    const err = await client.get('k').then(() => undefined, (e: Error) => e)
    assert.ok(err)
    assert.equal(classify(err), 'not-sent', err.message)
    assert.equal(retryable(err, false), true)
  } finally {
    client.disconnect()
  }
})

test('a command on a client that ended is closed: not sent again', async () => {
  const client = unreachable()
  client.on('error', () => {})
  client.disconnect()
  const err = await client.get('k').then(() => undefined, (e: Error) => e)
  assert.ok(err)
  assert.equal(err.message, CLOSED_MESSAGE)
  assert.equal(classify(err), 'closed')
  assert.equal(retryable(err, true), false)
})

test('a command cut off by a connection drop is aborted: only an idempotent one is sent again', () => {
  const err = new AbortError(ABORTED_MESSAGE)
  assert.equal(err.name, 'AbortError')
  assert.equal(classify(err), 'aborted')
  assert.equal(retryable(err, false), false)
  assert.equal(retryable(err, true), true)
  assert.equal(wrapRedisError(err, 's1').constructor, ShardUnavailableError)
})

test('a refusal by Redis is a reply error: never sent again, reported as ERR_BUSMQ_REDIS with its reason', () => {
  const err = new ReplyError('NOPERM this user has no permissions to access one of the keys used as arguments')
  assert.equal(classify(err), 'reply')
  assert.equal(retryable(err, true), false)
  const wrapped = wrapRedisError(err, 's1') as Error & { code: string }
  assert.equal(wrapped.code, 'ERR_BUSMQ_REDIS')
  assert.match(wrapped.message, /NOPERM/)
})

test('a failed MULTI (EXECABORT) is reported with the reasons of the commands that failed', () => {
  const err = new ReplyError('EXECABORT Transaction discarded because of previous errors.')
  ;(err as any).previousErrors = [new ReplyError('NOPERM this user has no permissions to access one of the keys used as arguments')]
  const wrapped = wrapRedisError(err, 's1') as Error & { code: string }
  assert.equal(wrapped.code, 'ERR_BUSMQ_REDIS')
  assert.match(wrapped.message, /NOPERM/)
  assert.doesNotMatch(wrapped.message, /EXECABORT/)
})

test('BusMQ errors pass through; socket errors become ERR_BUSMQ_SHARD_UNAVAILABLE', () => {
  const closed = new BusClosedError()
  assert.equal(classify(closed), 'other')
  assert.equal(wrapRedisError(closed, 's1'), closed)
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })
  assert.equal((wrapRedisError(refused, 's1') as any).code, 'ERR_BUSMQ_SHARD_UNAVAILABLE')
  assert.equal(classify('not an error'), 'other')
})
