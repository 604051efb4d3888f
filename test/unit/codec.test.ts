// The codec (lib/queue/codec.ts): JSON without __proto__, byte mode, user codecs, and the coded errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkCodec, decodeMessage, encodeMessage, jsonCodec, toBuffer, type Codec } from '../../lib/queue/codec.js'
import { DecodeError, EncodeError } from '../../lib/errors.js'

test('JSON round-trips what JSON can say', () => {
  for (const value of [0, -1.5, 1e300, 'text', 'ünïcødé ✓ 🚀 \u0000\r\n', true, false, null, [], {}, [1, [2, { a: 'b' }]],
    { nested: { deep: [null, 'x'] } }]) {
    assert.deepEqual(decodeMessage(encodeMessage(value, true, jsonCodec), true, jsonCodec), value)
  }
  assert.equal(String(encodeMessage({ a: 1 }, true, jsonCodec)), '{"a":1}')
})

test('JSON decoding drops every __proto__ key, also one spelled with escapes, and pollutes nothing', () => {
  for (const raw of ['{"__proto__":{"polluted":true},"a":1}', '{"a":{"__proto__":{"polluted":true},"b":2}}',
    '{"\\u005f_proto__":{"polluted":true},"a":1}', '[{"__proto__":{"polluted":true}}]']) {
    const value = jsonCodec.decode(Buffer.from(raw))
    assert.equal(({} as Record<string, unknown>).polluted, undefined, raw)
    assert.equal(JSON.stringify(value).includes('__proto__'), false, raw)
    assert.equal(JSON.stringify(value).includes('polluted'), false, raw)
  }
  assert.deepEqual(jsonCodec.decode(Buffer.from('{"__proto__":1,"a":1}')), { a: 1 })
  // A plain key that only looks similar stays.
  assert.deepEqual(jsonCodec.decode(Buffer.from('{"__proto":1}')), { __proto: 1 })
})

test('what JSON cannot encode fails with ERR_BUSMQ_ENCODE, naming why', () => {
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  for (const value of [undefined, () => 1, Symbol('s'), 10n, cycle]) {
    assert.throws(() => encodeMessage(value, true, jsonCodec), (err: any) => {
      assert.ok(err instanceof EncodeError)
      assert.equal(err.code, 'ERR_BUSMQ_ENCODE')
      assert.match(err.message, /^message could not be encoded: /)
      assert.ok(err.cause instanceof Error)
      return true
    }, typeof value)
  }
})

test('byte mode: Buffers as they are, strings in UTF-8 or their encoding, Uint8Array views without a copy', () => {
  const buf = Buffer.from([1, 2, 3])
  assert.equal(encodeMessage(buf, false, jsonCodec), buf)
  assert.deepEqual(toBuffer('héllo'), Buffer.from('héllo', 'utf8'))
  assert.deepEqual(toBuffer('aGk=', 'base64'), Buffer.from('hi'))
  const bytes = new Uint8Array([0, 1, 2, 3, 4])
  const view = toBuffer(bytes.subarray(1, 3))
  assert.deepEqual([...view], [1, 2])
  bytes[1] = 9
  assert.equal(view[0], 9, 'a view of the same memory')
  assert.equal(decodeMessage(buf, false, jsonCodec), buf, 'byte mode decodes nothing')
})

test('byte mode refuses anything but bytes and strings with ERR_BUSMQ_ENCODE', () => {
  for (const value of [42, null, undefined, { a: 1 }, [1], true]) {
    assert.throws(() => encodeMessage(value, false, jsonCodec), { code: 'ERR_BUSMQ_ENCODE', name: 'EncodeError' })
  }
})

test('a custom codec is used both ways; its failures are wrapped with the cause', () => {
  const upper: Codec = { encode: (v: string) => v.toUpperCase(), decode: (b) => `<${String(b)}>` }
  assert.equal(String(encodeMessage('abc', true, upper)), 'ABC')
  assert.equal(decodeMessage(Buffer.from('x'), true, upper), '<x>')
  const bytes: Codec = { encode: () => new Uint8Array([7, 8]) as Buffer, decode: (b) => [...b] }
  assert.deepEqual([...encodeMessage('any', true, bytes)], [7, 8])

  const boom = new Error('no bad values')
  const failing: Codec = { encode: () => { throw boom }, decode: () => { throw boom } }
  assert.throws(() => encodeMessage('x', true, failing), (err: any) => err instanceof EncodeError && err.cause === boom)
  assert.throws(() => decodeMessage(Buffer.from('x'), true, failing), (err: any) => {
    assert.ok(err instanceof DecodeError)
    assert.equal(err.code, 'ERR_BUSMQ_DECODE')
    assert.equal(err.cause, boom)
    return true
  })
  const numeric: Codec = { encode: () => 42 as any, decode: (b) => b }
  assert.throws(() => encodeMessage('x', true, numeric), { code: 'ERR_BUSMQ_ENCODE', message: 'codec.encode must return a Buffer or a string' })
  assert.throws(() => decodeMessage(Buffer.from('not json{'), true, jsonCodec), { code: 'ERR_BUSMQ_DECODE' })
})

test('checkCodec accepts an object with encode and decode functions, nothing else', () => {
  assert.equal(checkCodec(undefined), undefined)
  assert.equal(checkCodec(jsonCodec), jsonCodec)
  for (const bad of [null, {}, { encode: () => '' }, { decode: () => '' }, { encode: 1, decode: 2 }, 'json', 42]) {
    assert.throws(() => checkCodec(bad), { code: 'ERR_BUSMQ_INVALID_OPTION', name: 'InvalidOptionError' })
  }
})
