// BusMQ 3.1's browser API in a real browser (headless Chromium): a page loads
// dist/browser/busmq-classic.min.js (the global function `busmq(url, secret)`, as 3.1's busmq.min.js)
// and, through a federation server and Redis, runs the usage example of 3.1's documentation (queue: 5
// pushed, 5 received with ids 1..5), talks over a channel with a Node busmq/classic peer, publishes and
// receives on a pubsub, and saves and loads a persistable that Node loads and saves too. A wrong secret
// calls back with ERR_BUSMQ_UNAUTHORIZED; the ES module build exports the same function.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { openBrowser, type Browser } from './helpers/browser.js'
import { fedServer, SECRET } from './helpers/federation.js'
import { call, classicBus, messages } from './helpers/classic.js'

const redis = useRedis(1)
const files: Record<string, Buffer> = {
  '/busmq-classic.min.js': readFileSync(new URL('../browser/busmq-classic.min.js', import.meta.url)),
  '/busmq-classic.js': readFileSync(new URL('../browser/busmq-classic.js', import.meta.url))
}
const PAGE = '<!doctype html><html><head><script src="/busmq-classic.min.js"></script></head><body>busmq classic</body></html>'

let browser: Browser | undefined
after(async () => { await browser?.close() })

declare const busmq: any

test('a page using busmq-classic.min.js: 3.1 usage example, channel with a Node classic peer, pubsub, persistable', async () => {
  const server = await fedServer(redis.servers, {}, {}, (req, res) => {
    const file = files[req.url ?? '']
    res.setHeader('content-type', file ? 'text/javascript' : 'text/html')
    res.end(file ?? PAGE)
  })
  const node = await classicBus(redis.servers)
  browser = await openBrowser()
  const { page } = browser
  const errors: string[] = []
  const logs: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('console', (m) => logs.push(m.text()))
  await page.goto(`http://127.0.0.1:${server.port}/`)
  assert.equal(await page.evaluate(() => typeof busmq), 'function')

  // 3.1's usage example, as documented (with this server's URL and secret, and a fresh queue name).
  const foo = uniqueName('foo')
  await page.evaluate(([url, secret, name]) => {
    const bus = busmq(url, secret);
    (globalThis as any).bus = bus
    bus.queue(name, function (err: Error | null, q: any) {
      if (err) {
        console.log('bus: error ' + String(err))
        return
      }
      console.log('bus: q ready')
      q.on('attached', function () {
        console.log('bus: queue attached')
        for (let i = 0; i < 5; ++i) {
          q.push('message number ' + i)
        }
      })
      q.on('message', function (message: string, id: number) {
        console.log('got bus message ' + id + ': ' + message)
      })
      q.attach()
      q.consume()
    })
  }, [server.url, SECRET, foo])
  await page.waitForFunction(() => (globalThis as any).bus !== undefined)
  const expected = ['bus: q ready', 'bus: queue attached', ...[1, 2, 3, 4, 5].map((id) => `got bus message ${id}: message number ${id - 1}`)]
  while (logs.length < expected.length && errors.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  assert.deepEqual(logs, expected)
  assert.deepEqual(await call<number>((cb) => node.queue(foo).count(cb)), 0)

  // A channel: the page connects as 'browser' and echoes in upper case; the Node classic peer
  // (roles swapped) sends five messages and gets them back, then ends the channel.
  const cname = uniqueName('chan')
  await page.evaluate(async (name) => {
    const w = globalThis as any
    w.chanEvents = []
    const c = await new Promise<any>((resolve, reject) => w.bus.channel(name, 'browser', 'node', (err: Error | null, ch: any) => err ? reject(err) : resolve(ch)))
    for (const e of ['connect', 'remote:connect', 'disconnect', 'end']) c.on(e, () => w.chanEvents.push(e))
    c.on('message', (m: string) => c.send(m.toUpperCase()))
    const connected = new Promise((resolve) => c.once('connect', resolve))
    c.connect()
    await connected
  }, cname)
  const peer = node.channel(cname, 'node', 'browser')
  const peerConnected = new Promise((resolve) => peer.once('remote:connect', resolve))
  peer.connect()
  await peerConnected
  const echoed = messages(peer, 5)
  for (let i = 0; i < 5; i++) peer.send(`hello ${i}`)
  assert.deepEqual((await echoed).map(([m]) => m), [0, 1, 2, 3, 4].map((i) => `HELLO ${i}`))
  peer.end()
  await page.waitForFunction(() => (globalThis as any).chanEvents.includes('end'))
  assert.deepEqual(await page.evaluate(() => (globalThis as any).chanEvents), ['connect', 'remote:connect', 'disconnect', 'end'])

  // A pubsub: the page subscribes and publishes; a Node classic subscriber and publisher on the same name.
  const pname = uniqueName('topic')
  const nodeSub = node.pubsub(pname)
  const nodeSubscribed = new Promise((resolve) => nodeSub.once('subscribed', resolve))
  nodeSub.subscribe()
  await nodeSubscribed
  const fromPage = new Promise((resolve) => nodeSub.once('message', resolve))
  await page.evaluate(async (name) => {
    const w = globalThis as any
    const p = await new Promise<any>((resolve, reject) => w.bus.pubsub(name, (err: Error | null, ps: any) => err ? reject(err) : resolve(ps)))
    w.heard = []
    p.on('message', (m: string) => w.heard.push(m))
    const subscribed = new Promise((resolve) => p.once('subscribed', resolve))
    p.subscribe()
    await subscribed
    p.publish('hello from the page')
  }, pname)
  assert.equal(await fromPage, 'hello from the page')
  await call((cb) => node.pubsub(pname).publish({ hello: 'page' }, cb))
  // The page hears its own message (published first) and Node's.
  await page.waitForFunction(() => (globalThis as any).heard.length === 2)
  assert.deepEqual(await page.evaluate(() => (globalThis as any).heard), ['hello from the page', '{"hello":"page"}'])

  // A persistable saved by the page is loaded by Node; Node's save is loaded by the page.
  const oname = uniqueName('doc')
  const saved = await page.evaluate(async (name) => {
    const w = globalThis as any
    const o = await new Promise<any>((resolve, reject) => w.bus.persistify(name, { other: 'kept' }, ['a', 'b'], (err: Error | null, p: any) => err ? reject(err) : resolve(p)))
    o.a = 1
    o.b = { x: 'y' }
    return await new Promise((resolve, reject) => o.save((err: Error | null, id: string) => err ? reject(err) : resolve(id)))
  }, oname)
  assert.equal(saved, `bus:persisted:${oname}`)
  const there = node.persistify(oname, {}, ['a', 'b']) as Record<string, any>
  assert.equal(await new Promise((resolve, reject) => there.load((err: Error | null, exists: boolean) => err ? reject(err) : resolve(exists))), true)
  assert.deepEqual([there.a, there.b], [1, { x: 'y' }])
  there.b = 'from node'
  await call((cb) => there.save(cb))
  const loaded = await page.evaluate(async (name) => {
    const w = globalThis as any
    const o = await new Promise<any>((resolve, reject) => w.bus.persistify(name, {}, ['a', 'b'], (err: Error | null, p: any) => err ? reject(err) : resolve(p)))
    const exists = await new Promise((resolve, reject) => o.load((err: Error | null, e: boolean) => err ? reject(err) : resolve(e)))
    return { exists, a: o.a, b: o.b }
  }, oname)
  assert.deepEqual(loaded, { exists: true, a: 1, b: 'from node' })

  // A wrong secret: the callback gets ERR_BUSMQ_UNAUTHORIZED (no object).
  const refused = await page.evaluate(async ([url, name]) => await new Promise((resolve) => {
    busmq(url, 'not the secret').queue(name, (err: any, q: any) => resolve({ code: err?.code, q: q === undefined }))
  }), [server.url, uniqueName('refused')])
  assert.deepEqual(refused, { code: 'ERR_BUSMQ_UNAUTHORIZED', q: true })

  // The ES module build: the same function, as its default and named export.
  assert.deepEqual(await page.evaluate(async () => {
    const m = await import('/busmq-classic.js' as string)
    return [typeof m.default, m.default === m.busmq]
  }), ['function', true])

  await page.evaluate(() => (globalThis as any).bus.disconnect())
  assert.deepEqual(errors, [])
})
