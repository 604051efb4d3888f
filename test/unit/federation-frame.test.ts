// The federation frame codec: what it encodes it decodes, and everything malformed is a ProtocolError
// (never another exception, which would be a crash on the server).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import {
  FrameType, ProtocolError, decodeFrame, decodeBatch, encodeFrame, dataFrame, encodeCall, decodeCall, creditPayload, readCredit
} from '../../lib/federation/frame.js'
import { clientProof, serverProof, sameBytes } from '../../lib/federation/auth.js'

test('DATA, CALL and CREDIT frames round-trip', () => {
  const messages = [{ id: 1, payload: Buffer.from('a') }, { id: 2 ** 40, payload: Buffer.alloc(0) }, { id: 3, payload: randomBytes(1000) }]
  const f = decodeFrame(dataFrame(7, 42, messages))
  assert.equal(f.type, FrameType.DATA)
  assert.equal(f.stream, 7)
  const { tag, messages: back } = decodeBatch(f.payload)
  assert.equal(tag, 42)
  assert.deepEqual(back.map((m) => [m.id, m.payload.toString('hex')]), messages.map((m) => [m.id, m.payload.toString('hex')]))
  const call = decodeFrame(encodeFrame(FrameType.CALL, 9, encodeCall({ op: 'push', name: 'q' }, [Buffer.from('x')])))
  assert.deepEqual(decodeCall(call.payload, 'CALL'), { value: { op: 'push', name: 'q' }, payloads: [Buffer.from('x')] })
  assert.deepEqual(readCredit(decodeFrame(encodeFrame(FrameType.CREDIT, 1, creditPayload(1000, 3))).payload), { bytes: 1000, messages: 3 })
})

test('100,000 random and mutated frames: each decodes or throws a ProtocolError, nothing else', () => {
  const valid = [
    dataFrame(1, 1, [{ id: 5, payload: Buffer.from('hello') }]),
    encodeFrame(FrameType.CALL, 2, encodeCall({ op: 'count', name: 'q' })),
    encodeFrame(FrameType.CREDIT, 3, creditPayload(1, 1)),
    encodeFrame(FrameType.PING, 0),
    encodeFrame(FrameType.OPEN, 4, '{"op":"queue.read"}')
  ]
  let refused = 0
  for (let i = 0; i < 100_000; i++) {
    let f: Buffer
    if (i % 2 === 0) f = randomBytes(i % 64)
    else {
      f = Buffer.from(valid[i % valid.length])
      const at = (i * 7919) % f.length
      f[at] ^= 1 + (i % 255)
      if (i % 3 === 0) f = f.subarray(0, (i * 31) % (f.length + 1))
    }
    try {
      decodeFrame(f)
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `frame ${f.toString('hex')}: ${(err as Error).stack}`)
      refused++
    }
  }
  assert.ok(refused > 50_000)
})

test('a connection frame on a stream, a stream frame on the connection, and bad JSON are refused', () => {
  assert.throws(() => decodeFrame(encodeFrame(FrameType.PING, 3)), ProtocolError)
  assert.throws(() => decodeFrame(encodeFrame(FrameType.DATA, 0, Buffer.alloc(12))), ProtocolError)
  const call = decodeFrame(encodeFrame(FrameType.CALL, 1, Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{x'), Buffer.alloc(12)])))
  assert.throws(() => decodeCall(call.payload, 'CALL'), ProtocolError)
})

test('the handshake proofs: the same inputs agree, another secret or nonce does not', async () => {
  const [s, c] = [randomBytes(32), randomBytes(32)]
  assert.ok(sameBytes(await clientProof('k', s, c), await clientProof('k', s, c)))
  assert.ok(!sameBytes(await clientProof('k', s, c), await clientProof('other', s, c)))
  assert.ok(!sameBytes(await clientProof('k', s, c), await clientProof('k', randomBytes(32), c)))
  assert.ok(!sameBytes(await clientProof('k', s, c), await serverProof('k', s, c)), 'the two directions differ')
})
