// busmq/classic in tests: buses made by classicBus() are disconnected (and their close awaited) after the
// test that made them, also when it failed; record() notes the events of an emitter in order.
import { afterEach } from 'node:test'
import type { EventEmitter } from 'node:events'
import Bus, { type ClassicBus, type ClassicBusOptions, type ClassicChannel } from '../../lib/classic/index.js'
import { nextEvent } from './bus.js'
import './leaks.js'

const open = new Set<ClassicBus>()

afterEach(async () => {
  const all = [...open]
  open.clear()
  for (const bus of all) {
    bus.disconnect()
    await bus.closing
  }
})

/** A classic bus over the test servers (direct layout, or `options`), connected and online. */
export async function classicBus (servers: Array<{ url: string }>, options: ClassicBusOptions = {}): Promise<ClassicBus> {
  const bus = Bus.create({ redis: servers.map((s) => s.url), ...options })
  open.add(bus)
  const online = nextEvent(bus, 'online')
  bus.connect()
  await online
  return bus
}

/** Tracks a classic bus made another way (disconnected after the test). */
export function track (bus: ClassicBus): ClassicBus {
  open.add(bus)
  return bus
}

/** Records every emission of `events` on `emitter`, in order: `[event, ...args]`. */
export function record (emitter: EventEmitter, events: string[]): Array<[string, ...any[]]> {
  const out: Array<[string, ...any[]]> = []
  for (const e of events) emitter.on(e, (...args: any[]) => out.push([e, ...args]))
  return out
}

/** The next `n` 'message' events of a classic queue or channel: `[message, id]` each. */
export async function messages (emitter: EventEmitter, n: number): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = []
  if (n === 0) return out
  return await new Promise((resolve) => {
    const on = (message: string, id: number): void => {
      out.push([message, id])
      if (out.length === n) {
        emitter.off('message', on)
        resolve(out)
      }
    }
    emitter.on('message', on)
  })
}

/** Calls a callback-style method and resolves with its callback's result (rejects with its error). */
export async function call<T = unknown> (fn: (cb: (err: Error | null, result?: T) => void) => void): Promise<T> {
  return await new Promise((resolve, reject) => fn((err, result) => err ? reject(err) : resolve(result as T)))
}

/** Connects `client` and listens with `server` (3.1's default roles); resolves once each has seen the other. */
export async function connectPair (client: ClassicChannel, server: ClassicChannel): Promise<void> {
  const seen = Promise.all([nextEvent(client, 'remote:connect'), nextEvent(server, 'remote:connect')])
  client.connect()
  server.listen()
  await seen
}
