import { WebSocket } from 'ws'
import type { SocketFactory, SocketLike } from './client-connection.js'

/**
 * WebSockets of the `ws` package (Node); `options` go to each (headers, TLS). Frames go unmasked (a zero
 * mask): masking protects proxies from scripts in browsers, which a Node client is not, and it costs a
 * pass over every byte on both ends.
 */
export function nodeSockets (options: Record<string, unknown> = {}): SocketFactory {
  return (url) => new WebSocket(url, { perMessageDeflate: false, generateMask: (mask: Buffer) => mask.fill(0), ...options }) as unknown as SocketLike
}
