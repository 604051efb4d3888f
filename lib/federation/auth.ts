/**
 * The federation handshake, a challenge–response over HMAC-SHA256 (WebCrypto, so the browser build
 * shares it): the server sends a fresh nonce per connection, the client answers with its own nonce and
 * HMAC(secret, "busmq-fed-client" | server nonce | client nonce), and the server proves it knows the
 * secret too with HMAC(secret, "busmq-fed-server" | client nonce | server nonce). The secret never
 * crosses the wire, and an answer recorded on one connection is worthless on another (another nonce).
 */
import { Buffer } from 'buffer'
import { NONCE_SIZE } from './frame.js'

const encoder = new TextEncoder()

function subtle (): SubtleCrypto {
  const s = globalThis.crypto?.subtle
  if (!s) throw new Error('federation needs WebCrypto (crypto.subtle): Node 20+, or a browser page served over https or localhost')
  return s
}

export function randomNonce (): Buffer {
  const out = Buffer.alloc(NONCE_SIZE)
  globalThis.crypto.getRandomValues(out)
  return out
}

async function hmac (secret: string, parts: Uint8Array[]): Promise<Buffer> {
  const key = await subtle().importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  return Buffer.from(await subtle().sign('HMAC', key, Buffer.concat(parts)))
}

const CLIENT = encoder.encode('busmq-fed-client')
const SERVER = encoder.encode('busmq-fed-server')

/** What the client sends to prove it knows the secret. */
export async function clientProof (secret: string, serverNonce: Uint8Array, clientNonce: Uint8Array): Promise<Buffer> {
  return await hmac(secret, [CLIENT, serverNonce, clientNonce])
}

/** What the server sends back to prove it knows the secret too. */
export async function serverProof (secret: string, serverNonce: Uint8Array, clientNonce: Uint8Array): Promise<Buffer> {
  return await hmac(secret, [SERVER, clientNonce, serverNonce])
}

/** Constant-time comparison (both sides are MACs of the same length when honest). */
export function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i]
  return diff === 0
}
