import { WebSocket } from 'ws'
import type { SocketFactory, SocketLike } from './client-connection.js'

/** WebSockets of the `ws` package (Node); `options` go to each (headers, TLS). */
export function nodeSockets (options: Record<string, unknown> = {}): SocketFactory {
  return (url) => new WebSocket(url, { perMessageDeflate: false, ...options }) as unknown as SocketLike
}
