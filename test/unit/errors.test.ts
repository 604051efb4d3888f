// The error classes (lib/errors.ts): one class per code, each a BusMQError and an Error, with its name, its
// literal code, a default message and the cause kept; every class is exported and its code is in the README.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import * as busmq from '../../lib/index.js'
import { BusMQError, isBusMQError, type BusMQErrorCode } from '../../lib/index.js'

/** Every error class, with its code (the literal type is checked by `satisfies`). */
const classes = [
  [busmq.InvalidNameError, 'ERR_BUSMQ_INVALID_NAME'],
  [busmq.InvalidOptionError, 'ERR_BUSMQ_INVALID_OPTION'],
  [busmq.ConnectTimeoutError, 'ERR_BUSMQ_CONNECT_TIMEOUT'],
  [busmq.RedisVersionError, 'ERR_BUSMQ_REDIS_VERSION'],
  [busmq.BusClosedError, 'ERR_BUSMQ_CLOSED'],
  [busmq.ShardUnavailableError, 'ERR_BUSMQ_SHARD_UNAVAILABLE'],
  [busmq.MessageTooLargeError, 'ERR_BUSMQ_MESSAGE_TOO_LARGE'],
  [busmq.EncodeError, 'ERR_BUSMQ_ENCODE'],
  [busmq.DecodeError, 'ERR_BUSMQ_DECODE'],
  [busmq.RedisCommandError, 'ERR_BUSMQ_REDIS'],
  [busmq.ShardDataLossError, 'ERR_BUSMQ_SHARD_DATA_LOST'],
  [busmq.ReplicationError, 'ERR_BUSMQ_REPLICATION'],
  [busmq.PeerDestroyedError, 'ERR_BUSMQ_PEER_DESTROYED'],
  [busmq.ClassicUsageError, 'ERR_BUSMQ_CLASSIC_USAGE'],
  [busmq.ClassicUnsupportedError, 'ERR_BUSMQ_CLASSIC_UNSUPPORTED']
] as const satisfies ReadonlyArray<readonly [new (message?: string, options?: { cause?: unknown }) => BusMQError, BusMQErrorCode]>

// Compile-time: a class's `code` is its literal, not `string`.
const literal: 'ERR_BUSMQ_CLOSED' = new busmq.BusClosedError().code
void literal

test('each error class has its code, its name, a default message, and is a BusMQError and an Error', () => {
  for (const [Class, code] of classes) {
    const err = new Class()
    assert.ok(err instanceof Class)
    assert.ok(err instanceof BusMQError)
    assert.ok(err instanceof Error)
    assert.equal(err.code, code)
    assert.equal(err.name, Class.name)
    assert.ok(err.message.length > 0, `${Class.name} has no default message`)
    assert.equal(isBusMQError(err), true)
    assert.match(String(err), new RegExp(`^${Class.name}: `))
  }
  assert.equal(new Set(classes.map(([, code]) => code)).size, classes.length, 'two classes share a code')
})

test('a message and a cause are kept', () => {
  const cause = new Error('underneath')
  for (const [Class] of classes) {
    const err = new Class('what happened', { cause })
    assert.equal(err.message, 'what happened')
    assert.equal(err.cause, cause)
  }
  const base = new BusMQError('cli said no', 'ERR_BUSMQ_USAGE', { cause })
  assert.equal(base.name, 'BusMQError')
  assert.equal(base.code, 'ERR_BUSMQ_USAGE')
  assert.equal(base.cause, cause)
})

test('isBusMQError: also an error of another copy of the package (by its code), nothing else', () => {
  const foreign = Object.assign(new Error('from another copy'), { code: 'ERR_BUSMQ_CLOSED' })
  assert.equal(isBusMQError(foreign), true)
  for (const other of [new Error('plain'), Object.assign(new Error('node'), { code: 'ECONNREFUSED' }), { code: 'ERR_BUSMQ_CLOSED' },
    'ERR_BUSMQ_CLOSED', null, undefined]) {
    assert.equal(isBusMQError(other), false, String(other))
  }
})

test('every code in the BusMQErrorCode union is in the README\'s Errors table, and the union in errors.ts lists them', () => {
  const source = readFileSync(new URL('../../../lib/errors.ts', import.meta.url), 'utf8')
  const union = source.slice(source.indexOf('export type BusMQErrorCode'), source.indexOf('/** Base class'))
  const codes = [...union.matchAll(/'(ERR_BUSMQ_[A-Z_]+)'/g)].map((m) => m[1])
  for (const [, code] of classes) assert.ok(codes.includes(code), `${code} is not in the union`)
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  for (const code of codes) assert.ok(readme.includes(`\`${code}\``), `${code} is not in the README`)
})
