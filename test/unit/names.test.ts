// Names and the integer option check (lib/names.ts): refused before anything reaches Redis.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Bus, MAX_NAME_LENGTH, validateName } from '../../lib/index.js'
import { checkInt, validatePrefix } from '../../lib/names.js'

// No shard is ever contacted: names are checked before anything reaches Redis.
const bus = new Bus({ redis: ['redis://127.0.0.1:1'] })

const bad: Array<[string, unknown]> = [
  ['empty', ''],
  ['too long', 'a'.repeat(MAX_NAME_LENGTH + 1)],
  ['open brace', 'a{b'],
  ['close brace', 'a}b'],
  ['hash tag', '{x}'],
  ['CR', 'a\rb'],
  ['LF', 'a\nb'],
  ['CRLF', 'a\r\nb'],
  ['NUL', 'a\u0000b'],
  ['glob star', 'a*'],
  ['glob ?', 'a?'],
  ['glob []', 'a[b]'],
  ['space', 'a b'],
  ['tab', 'a\tb'],
  ['non-ASCII', 'caf\u00e9'],
  ['emoji', 'q\u{1F600}'],
  ['not a string', 42],
  ['undefined', undefined],
  ['null', null]
]

for (const [what, name] of bad) {
  test(`a name that is ${what} is rejected with ERR_BUSMQ_INVALID_NAME`, () => {
    for (const make of [
      () => bus.queue(name as string),
      () => bus.pubsub(name as string),
      () => validateName(name)
    ]) {
      assert.throws(make, (err: any) => {
        assert.equal(err.code, 'ERR_BUSMQ_INVALID_NAME')
        assert.equal(err.name, 'InvalidNameError')
        return true
      })
    }
  })
}

test('valid names are accepted and their keys stay under the prefix, in one hash tag', () => {
  for (const name of ['a', 'orders', 'a.b-c_d:e@f/g=h', 'x'.repeat(MAX_NAME_LENGTH), '0']) {
    const q = bus.queue(name)
    for (const key of q.keys.all()) {
      assert.ok(key.startsWith(`busmq:q:{${name}}:`), key)
      // The first {...} of every key is exactly the queue's tag.
      assert.equal(/\{([^}]*)\}/.exec(key)![1], name)
    }
  }
})

test('a bad prefix is refused with ERR_BUSMQ_INVALID_OPTION', () => {
  for (const prefix of ['', 'a{b', 'a b', 'x'.repeat(65)]) {
    assert.throws(() => new Bus({ prefix, redis: 'redis://127.0.0.1:1' }), { code: 'ERR_BUSMQ_INVALID_OPTION' })
  }
})

test('a good prefix is accepted as it is', () => {
  for (const prefix of ['busmq', 'a', 'app:prod/v2', 'x'.repeat(64)]) assert.equal(validatePrefix(prefix), prefix)
  for (const prefix of [undefined, null, 42]) assert.throws(() => validatePrefix(prefix), { code: 'ERR_BUSMQ_INVALID_OPTION' })
})

test('checkInt: an integer within [min, max] passes; anything else is refused, naming the option and the value', () => {
  assert.equal(checkInt(5, 'ttl', 1), 5)
  assert.equal(checkInt(1, 'ttl', 1, 1), 1)
  assert.equal(checkInt(Number.MAX_SAFE_INTEGER, 'ttl', 0), Number.MAX_SAFE_INTEGER)
  for (const bad of [0, 11, 1.5, Number.NaN, Infinity, -Infinity, '5', null, undefined, 5n]) {
    assert.throws(() => checkInt(bad, 'answer', 1, 10), (err: any) => {
      assert.equal(err.code, 'ERR_BUSMQ_INVALID_OPTION')
      assert.equal(err.name, 'InvalidOptionError')
      assert.match(err.message, /^answer must be an integer from 1 to 10, got /)
      return true
    }, String(bad))
  }
})
