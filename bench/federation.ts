/**
 * Federation over loopback: the same queue and channel workloads as the direct jobs, with both peers on
 * federation-only buses (no Redis) connected to a federation server (a bus with Redis serving
 * `bus.federate()` on an http server) in the job's process. The report gives each as a ratio to the
 * direct job.
 */
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Bus } from '../lib/index.js'
import type { JobContext } from './job.js'

const SECRET = 'bench-federation-secret'

/** Starts a federation server on `url`'s Redis; `open()` gives a federation-only bus connected to it. */
export async function federation (url: string): Promise<{ open: () => Promise<Bus>, close: () => Promise<void> }> {
  const server = new Bus({ redis: [url] })
  server.on('error', () => {})
  await server.connect()
  const http = createServer()
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const fed = server.federate({ server: http, path: '/bus', secret: SECRET })
  const wsUrl = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/bus`
  const clients: Bus[] = []
  return {
    async open () {
      const bus = new Bus({ federation: { urls: [wsUrl], secret: SECRET } })
      clients.push(bus)
      await bus.connect()
      return bus
    },
    async close () {
      await Promise.all(clients.map(async (c) => await c.close()))
      await fed.close()
      http.closeAllConnections()
      http.close()
      await server.close()
    }
  }
}

/** Runs `body` with a federation server for the job, closed afterwards. */
export async function withFederation (ctx: JobContext, body: (open: () => Promise<Bus>) => Promise<void>): Promise<void> {
  const f = await federation(ctx.url)
  try {
    await body(f.open)
  } finally {
    await f.close()
  }
}
