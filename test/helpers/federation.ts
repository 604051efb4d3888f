// A federation server for tests: a bus with Redis serving federation on a fresh http server on a free
// port, and federation-only client buses (no Redis at all) connected to it. Everything is closed after
// the test that opened it.
import { createServer, type RequestListener, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { afterEach, beforeEach } from 'node:test'
import { Bus, type BusOptions, type FederateOptions, type Federation, type FederationOptions } from '../../lib/index.js'

export const SECRET = 'test-secret-0123456789'

export interface FedServer {
  bus: Bus
  http: Server
  fed: Federation
  url: string
  port: number
  /** Stops the federation and its http server (clients see their sockets close). */
  stop: () => Promise<void>
  /** Starts them again on the same port. */
  start: () => Promise<void>
  /** Destroys the server side of every federation socket now (as a crashed proxy would). */
  dropSockets: () => number
}

const opened: Array<Array<{ close: () => Promise<void> }>> = []
beforeEach(() => { opened.push([]) })
afterEach(async () => {
  const list = opened.pop() ?? []
  for (const r of list.reverse()) await r.close().catch(() => {})
})

function track (r: { close: () => Promise<void> }): void {
  (opened.at(-1) ?? []).push(r)
}

/** A bus on `redis` serving federation on a new http server. */
export async function fedServer (redis: Array<{ url: string }>, options: Partial<FederateOptions> = {}, busOptions: BusOptions = {},
  handler: RequestListener = (req, res) => { res.statusCode = 404; res.end() }): Promise<FedServer> {
  const bus = new Bus({ redis: redis.map((s) => s.url), ...busOptions })
  bus.on('error', () => {})
  await bus.connect()
  const path = options.path ?? '/bus'
  let port = 0
  const sockets = new Set<Duplex>()
  const s: FedServer = {
    bus,
    http: undefined as unknown as Server,
    fed: undefined as unknown as Federation,
    url: '',
    port: 0,
    start: async () => {
      const http = createServer(handler)
      http.listen(port, '127.0.0.1')
      await once(http, 'listening')
      port = (http.address() as AddressInfo).port
      s.http = http
      s.port = port
      s.url = `ws://127.0.0.1:${port}${path}`
      s.fed = bus.federate({ server: http, path, secret: SECRET, ...options })
      http.on('upgrade', (req, socket) => {
        sockets.add(socket)
        socket.once('close', () => sockets.delete(socket))
      })
    },
    dropSockets: () => {
      const n = sockets.size
      for (const socket of sockets) socket.destroy()
      return n
    },
    stop: async () => {
      await s.fed.close()
      s.http.closeAllConnections()
      await new Promise<void>((resolve) => s.http.close(() => resolve()))
    }
  }
  await s.start()
  track({ close: async () => { await s.stop().catch(() => {}); await bus.close() } })
  return s
}

/** A bus with only federation (no Redis), connected. */
export async function fedClient (urls: string[], options: Partial<FederationOptions> = {}, busOptions: BusOptions = {}): Promise<Bus> {
  const bus = new Bus({ federation: { urls, secret: SECRET, ...options }, ...busOptions })
  track({ close: async () => await bus.close() })
  await bus.connect()
  return bus
}
