import type { FederationServer } from './federation-server.js'
import type { FederationClientInfo, FederationOp } from './federation-options.js'
import type { Codec } from '../queue/codec.js'
import type { Queue } from '../queue/queue.js'
import type { QueueOptions } from '../queue/queue-options.js'
import { DEAD_LETTER_SUFFIX } from '../keys.js'
import { ProtocolError } from './frame.js'
import { PARTS_PER_BATCH } from './server-stream.js'
import { MAX_ACKS_PER_CALL } from './ack-batcher.js'

/** Objects' fields cross the wire as the client encoded them: the server stores bytes as they are. */
export const PASSTHROUGH_CODEC: Codec = {
  encode: (value: Buffer) => value,
  decode: (payload: Buffer) => payload
}

const PRODUCER_ID = /^[A-Za-z0-9._-]{1,64}$/

function names (value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new ProtocolError(`${what} must be a list of strings`)
  return value
}

/**
 * Checks that `client` may do `op` on the queue a call or stream names, then gives what makes its handle:
 * `name`'s queue, or with `deadLetter: true` its dead-letter queue (`queue.deadLetter()`), which `allow`
 * sees as `<name>:dead-letter`. The flag says which, never the name: a queue may be called `x:dead-letter`.
 */
export async function allowedQueue (server: FederationServer, op: FederationOp, name: unknown, client: FederationClientInfo,
  deadLetter: unknown): Promise<(options?: QueueOptions) => Queue> {
  if (deadLetter !== undefined && typeof deadLetter !== 'boolean') throw new ProtocolError('deadLetter must be a boolean')
  if (typeof name !== 'string') throw new ProtocolError('name must be a string')
  await server.allowed(op, deadLetter === true ? `${name}${DEAD_LETTER_SUFFIX}` : name, client)
  return (options) => {
    const q = server.bus.queue(name, options)
    return deadLetter === true ? q.deadLetter() : q
  }
}

/** One client call (`push`, `count`, `find`, `stats`, `getMeta`, `setMeta`, `flush`, `delete`, `history`, `publish`, `request`, `send`, object operations) run against the bus. */
export async function runCall (server: FederationServer, client: FederationClientInfo, call: Record<string, any>,
  payloads: Buffer[]): Promise<{ result: unknown, payloads?: Buffer[] }> {
  const { op, name } = call
  const a: Record<string, any> = call.args !== null && typeof call.args === 'object' ? call.args : {}
  const bus = server.bus
  switch (op) {
    case 'push': {
      const queue = await allowedQueue(server, 'write', name, client, a.deadLetter)
      if (payloads.length !== 1 || typeof a.producer !== 'string' || !PRODUCER_ID.test(a.producer) || !Number.isSafeInteger(a.batch) || a.batch < 1) {
        throw new ProtocolError('push: bad call')
      }
      const q = queue({ ttl: a.ttl, maxLength: a.maxLength, overflow: a.overflow, retain: a.retain })
      const producer = q.producer({ identity: { id: `f.${a.producer}`, batch: a.batch * PARTS_PER_BATCH - 1 } })
      const { firstId, stored } = await producer.push(payloads)
      return { result: stored === 0 ? null : firstId }
    }
    case 'count':
    case 'exists':
    case 'find': {
      const q = (await allowedQueue(server, 'inspect', name, client, a.deadLetter))()
      if (op === 'count') return { result: await q.count() }
      return { result: await q.exists() }
    }
    case 'stats':
    case 'ttlLeft':
    case 'getMeta': {
      const q = (await allowedQueue(server, 'inspect', name, client, a.deadLetter))()
      if (op === 'stats') return { result: await q.stats() }
      if (op === 'ttlLeft') return { result: await q.ttlLeft() }
      if (a.field === undefined) return { result: await q.getMeta() }
      if (typeof a.field !== 'string') throw new ProtocolError('getMeta: bad field')
      return { result: await q.getMeta(a.field) }
    }
    case 'setMeta': {
      const queue = await allowedQueue(server, 'write', name, client, a.deadLetter)
      const fields = a.fields as Record<string, unknown> | undefined
      if (fields === null || typeof fields !== 'object' || Array.isArray(fields) ||
        Object.values(fields).some((v) => typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v)))) {
        throw new ProtocolError('setMeta: fields must be an object of strings and numbers')
      }
      await queue({ ttl: a.ttl }).setMeta(fields as Record<string, string | number>)
      return { result: true }
    }
    case 'flush':
    case 'delete': {
      const q = (await allowedQueue(server, 'admin', name, client, a.deadLetter))()
      if (op === 'delete') return { result: await q.delete() }
      await q.flush()
      return { result: true }
    }
    case 'history': {
      // Why message `id` of a dead-letter queue got there (`dlq.history(id)`).
      const q = (await allowedQueue(server, 'inspect', name, client, a.deadLetter))()
      if (!Number.isSafeInteger(a.id)) throw new ProtocolError('history: bad id')
      return { result: await q.history(a.id) }
    }
    case 'publish': {
      await server.allowed('publish', name, client)
      if (payloads.length !== 1) throw new ProtocolError('publish: bad call')
      return { result: await bus.pubsub(name).publish(payloads[0]) }
    }
    case 'request': {
      await server.allowed('request', name, client)
      if (payloads.length !== 1) throw new ProtocolError('request: bad call')
      const reply = await bus.service(name).request(payloads[0], { timeout: a.timeout, reliable: a.reliable })
      return { result: true, payloads: [reply] }
    }
    case 'send': {
      await server.allowed('request', name, client)
      if (payloads.length !== 1) throw new ProtocolError('send: bad call')
      await bus.service(name).send(payloads[0], { timeout: a.timeout, reliable: a.reliable })
      return { result: true }
    }
    case 'reliable.acks': {
      // Several acks and nacks of one remote reliable reader (or channel) at once; a result for each.
      await server.allowed('read', name, client)
      const { ids, modes } = a
      if (typeof a.session !== 'string' || !Array.isArray(ids) || !Array.isArray(modes) || ids.length !== modes.length ||
        ids.length > MAX_ACKS_PER_CALL || ids.some((id) => !Number.isSafeInteger(id)) ||
        modes.some((m) => m !== 'ack' && m !== 'nack' && m !== 'dead')) {
        throw new ProtocolError('reliable.acks: bad call')
      }
      const stream = server.sessions.get(a.session)
      const results = await Promise.all((ids as number[]).map(async (id, i) => {
        const msg = stream?.held?.get(id)
        // Unknown: its reader is gone (and gave it back), or it was acked already.
        if (!stream || !msg) return false
        try {
          if (modes[i] === 'ack') return await msg.ack()
          await msg.nack({ deadLetter: modes[i] === 'dead' })
          return true
        } catch (err) {
          const code = (err as Error & { code?: unknown }).code
          return { code: typeof code === 'string' ? code : 'ERR_BUSMQ_FEDERATION', message: (err as Error).message }
        } finally {
          stream.held!.delete(id)
          stream.settled()
        }
      }))
      return { result: results }
    }
    case 'object.load': {
      await server.allowed('object', name, client)
      const obj = bus.object(name, { ttl: a.ttl, codec: PASSTHROUGH_CODEC })
      const fields = await obj.load()
      if (fields === null) return { result: { version: obj.version, fields: null } }
      const keys = Object.keys(fields)
      return { result: { version: obj.version, fields: keys }, payloads: keys.map((k) => (fields as Record<string, Buffer>)[k]) }
    }
    case 'object.save': {
      await server.allowed('object', name, client)
      const set = names(a.set, 'set')
      const unset = names(a.unset, 'unset')
      if (set.length !== payloads.length) throw new ProtocolError('object.save: bad call')
      const obj = bus.object(name, { ttl: a.ttl, codec: PASSTHROUGH_CODEC })
      const fields: Record<string, Buffer> = {}
      set.forEach((k, i) => Object.defineProperty(fields, k, { value: payloads[i], enumerable: true, writable: true, configurable: true }))
      if (set.length > 0) obj.set(fields)
      if (unset.length > 0) obj.unset(...unset)
      const version = await obj.save(a.ifVersion === undefined ? {} : { ifVersion: a.ifVersion })
      return { result: version }
    }
    case 'object.exists': {
      await server.allowed('object', name, client)
      return { result: await bus.object(name).exists() }
    }
    case 'object.delete': {
      await server.allowed('object', name, client)
      return { result: await bus.object(name).delete() }
    }
    default:
      throw new ProtocolError(`CALL: unknown op ${JSON.stringify(op)}`)
  }
}
