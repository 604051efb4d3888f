// The dashboard of a bus on a Redis Cluster: the registry (one key, one slot) is written by its own
// batched call, so queues and services of every slot are listed; each primary is a shard card; persisted
// objects (by SCAN), channels and topics are found on every node; and nothing of it outlives the TTL.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Bus } from '../lib/index.js'
import { startCluster, type RedisCluster } from './helpers/cluster.js'
import { eventually, uniqueName } from './helpers/bus.js'

let cluster: RedisCluster | undefined
after(async () => { await cluster?.stop() })

interface State {
  shards: Array<{ id: string, up: boolean, role?: string }>
  sections: Array<{ id: string, total: number, rows: Array<Record<string, any>> }>
}

test('queues and services of every slot, each primary, objects, channels and topics; the registry expires', async () => {
  cluster = await startCluster(3)
  const prefix = uniqueName('dc')
  const TTL = 3000
  const bus = new Bus({ cluster: cluster.seeds, prefix, ttl: TTL })
  const server = createServer(bus.dashboard())
  try {
    const names = Array.from({ length: 12 }, (_, i) => `cq${i}-${uniqueName('').slice(-8)}`)
    await Promise.all(names.map((n) => bus.queue(n).attach()))
    await bus.queue(names[0]).push('hello')
    const a = bus.channel('cchat')
    const b = bus.channel('cchat', { listen: true })
    await Promise.all([once(a, 'remote:connect'), once(b, 'remote:connect')])
    const sub = bus.pubsub('cprices').createReadStream()
    await once(sub, 'subscribed')
    const services = Array.from({ length: 4 }, (_, i) => bus.service<number, number>(`csvc${i}-${uniqueName('').slice(-8)}`, { objectMode: true }))
    const servers = services.map((svc) => svc.serve((req) => req.data + 1))
    assert.deepEqual(await Promise.all(services.map((svc, i) => svc.request(i))), [1, 2, 3, 4])
    const objects = Array.from({ length: 4 }, (_, i) => bus.object(`cobj${i}-${uniqueName('').slice(-8)}`, { ttl: TTL }))
    await Promise.all(objects.map(async (o, i) => await o.set({ i }).save()))

    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/state?filter=cq`)
    const state = await res.json() as State
    assert.equal(state.shards.length, 3)
    assert.ok(state.shards.every((s) => s.up && s.role === 'master'), JSON.stringify(state.shards))
    const queues = state.sections.find((s) => s.id === 'queues')!
    assert.deepEqual(queues.rows.map((r) => r.name), [...names].sort())
    assert.equal(queues.rows.find((r) => r.name === names[0])?.depth, 1)
    const all = await (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/state`)).json() as State
    const channels = all.sections.find((s) => s.id === 'channels')!
    assert.deepEqual(channels.rows.map((r) => [r.name, r.present]), [['cchat', ['local', 'remote']]])
    const topics = all.sections.find((s) => s.id === 'topics')!
    assert.deepEqual(topics.rows.map((r) => [r.name, r.subscribers]), [['cprices', 1]])
    // Services of every slot, with what their servers told (the percentiles within ~200 ms of the request).
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    let svcRows: Array<Record<string, any>> = []
    await eventually(async () => {
      const st = await (await fetch(`${base}/api/state?filter=csvc`)).json() as State
      svcRows = st.sections.find((s) => s.id === 'services')!.rows
      return svcRows.length === 4 && svcRows.every((r) => r.p50 !== undefined)
    }, 10_000, () => `4 services with p50 (got ${JSON.stringify(svcRows)})`)
    assert.deepEqual(svcRows.map((r) => [r.name, r.servers, r.running, r.waiting]), services.map((svc) => [svc.name, 1, 0, 0]).sort())
    const withObjects = await (await fetch(`${base}/api/state?filter=cobj&scan=1`)).json() as State
    const objectRows = withObjects.sections.find((s) => s.id === 'objects')!.rows
    assert.deepEqual(objectRows.map((r) => [r.name, r.version, r.fields]), objects.map((o) => [o.name, 1, 1]).sort())
    await Promise.all(servers.map((s) => s.close()))
    sub.destroy()
    a.destroy()
    b.destroy()
  } finally {
    server.close()
    await bus.close()
  }
  const left: string[] = []
  const keys = async (): Promise<number> => {
    left.length = 0
    for (const node of cluster!.nodes) {
      // Every key but the one documented exception, the data-loss marker.
      for (const k of (await node.cli('--scan', '--pattern', `${prefix}:*`)).split('\n').filter((k) => k !== '' && k !== `${prefix}:shard-marker`)) {
        left.push(`${k} (pttl ${await node.cli('PTTL', k)})`)
      }
    }
    return left.length
  }
  // The registry's horizon is two TTLs (see "Dashboard" in the README).
  assert.ok(await eventually(async () => await keys() === 0, 2 * TTL + 20_000), `keys left after the TTL: ${left.join(', ')}`)
})
