/**
 * Services of this project (public API: `bus.service()`, `serve`, `request`) and of BusMQ 3.1
 * (`bus.service()`, `serve` + 'request' events, `connect` + `request(data, options, cb)`), each with an
 * echo server and a requester on two buses of their own.
 */
import { setTimeout as delay } from 'node:timers/promises'
import { Bus, type Service, type ServiceServer } from '../../lib/index.js'
import type { ServiceAdapter } from '../services.js'
import { openBus, type OriginalService } from './busmq-original.js'

export async function busmqServiceAdapter (url: string, concurrency: number): Promise<ServiceAdapter> {
  const open = async (): Promise<Bus> => {
    const bus = new Bus({ redis: [url] })
    bus.on('error', () => {})
    await bus.connect()
    return bus
  }
  const [serverBus, requesterBus] = await Promise.all([open(), open()])
  const servers: ServiceServer[] = []
  const handles = new Map<string, Service>()
  return {
    async serve (name) {
      servers.push(serverBus.service(name, { objectMode: true }).serve((req) => req.data, { concurrency }))
      handles.set(name, requesterBus.service(name, { objectMode: true, timeout: 60_000 }))
    },
    request (name, payload, done) {
      handles.get(name)!.request(payload).then((reply) => done(null, reply), done)
    },
    async close () {
      await Promise.all(servers.map((s) => s.close()))
      await Promise.all([serverBus.close(), requesterBus.close()])
    }
  }
}

export async function originalServiceAdapter (url: string): Promise<ServiceAdapter> {
  const [serverBus, requesterBus] = await Promise.all([openBus(url), openBus(url)])
  const services: OriginalService[] = []
  const requesters = new Map<string, OriginalService>()
  return {
    async serve (name) {
      const server = serverBus.service(name)
      server.on('error', () => {})
      server.on('request', (data: unknown, reply: (err: unknown, res: unknown) => void) => reply(null, data))
      await new Promise<void>((resolve) => server.serve(resolve))
      services.push(server)
      const requester = requesterBus.service(name)
      requester.on('error', () => {})
      // Its default request timeout is 1 s: far too short for thousands of requests in flight.
      await new Promise<void>((resolve) => requester.connect({ reqTimeout: 60_000 }, resolve))
      requesters.set(name, requester)
    },
    request (name, payload, done) {
      requesters.get(name)!.request(payload, { reqTimeout: 60_000 }, (err, reply) => {
        done(err ? new Error(`BusMQ 3.1 request failed: ${String(err)}`) : null, reply)
      })
    },
    async close () {
      for (const s of [...services, ...requesters.values()]) { try { s.disconnect() } catch {} }
      await delay(100)
      serverBus.disconnect()
      requesterBus.disconnect()
    }
  }
}
