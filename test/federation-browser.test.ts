// The browser client in a real browser (headless Chromium): a page served by the test loads
// dist/browser/busmq.min.js and, through a federation server and Redis, pushes 1,000 messages and reads
// them back, echoes over a channel with a Node peer, receives a topic and calls a service. An Origin not
// on the server's list is refused.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { WebSocket } from 'ws'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { openBrowser, type Browser } from './helpers/browser.js'
import { fedServer, SECRET } from './helpers/federation.js'

const redis = useRedis(1)
const bundle = readFileSync(new URL('../browser/busmq.min.js', import.meta.url))
const PAGE = '<!doctype html><html><head><script src="/busmq.min.js"></script></head><body>busmq</body></html>'

let browser: Browser | undefined
after(async () => { await browser?.close() })

declare const busmq: any

test('a page using busmq.min.js: queue, channel with a Node peer, topic, service', async () => {
  const origins: string[] = []
  const server = await fedServer(redis.servers, { origins }, {}, (req, res) => {
    if (req.url === '/busmq.min.js') {
      res.setHeader('content-type', 'text/javascript')
      res.end(bundle)
    } else {
      res.setHeader('content-type', 'text/html')
      res.end(PAGE)
    }
  })
  const origin = `http://127.0.0.1:${server.port}`
  origins.push(origin)
  browser = await openBrowser()
  const { page } = browser
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(`${origin}/`)
  await page.waitForFunction(() => typeof (globalThis as any).busmq?.connect === 'function')
  await page.evaluate(async ([url, secret]) => {
    const w = globalThis as any
    w.bus = busmq.connect(url, { secret })
    await w.bus.connect()
  }, [server.url, SECRET])

  // 1,000 messages pushed by the page and read back by it.
  const qname = uniqueName('browserq')
  const got = await page.evaluate(async (name) => {
    const q = (globalThis as any).bus.queue(name, { objectMode: true })
    const w = q.createWriteStream()
    for (let i = 0; i < 1000; i++) w.write({ i })
    w.end()
    await new Promise((resolve, reject) => { w.on('finish', resolve); w.on('error', reject) })
    const out: number[] = []
    for await (const m of q.createReadStream({ max: 1000 })) out.push(m.i)
    return out
  }, qname)
  assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => i))
  assert.equal(await server.bus.queue(qname).count(), 0)

  // A channel: the Node peer echoes in upper case; the page half-closes and sees the peer's end.
  const cname = uniqueName('browserch')
  const peer = server.bus.channel(cname, { listen: true })
  peer.on('data', (c: Buffer) => peer.write(c.toString().toUpperCase()))
  peer.on('end', () => peer.end())
  const echoed = await page.evaluate(async (name) => {
    const ch = (globalThis as any).bus.channel(name)
    const out: string[] = []
    ch.on('data', (c: Uint8Array) => out.push(new TextDecoder().decode(c)))
    const ended = new Promise((resolve) => ch.on('end', resolve))
    for (let i = 0; i < 10; i++) ch.write(`hello ${i}`)
    ch.end()
    await ended
    return out
  }, cname)
  assert.deepEqual(echoed, Array.from({ length: 10 }, (_, i) => `HELLO ${i}`))

  // A topic published by Node, received by the page.
  const topic = uniqueName('browsertopic')
  await page.evaluate(async (name) => {
    const w = globalThis as any
    const sub = w.bus.pubsub(name, { objectMode: true }).createReadStream()
    w.first = new Promise((resolve) => sub.once('data', resolve))
    await new Promise((resolve) => sub.once('ready', resolve))
  }, topic)
  assert.equal(await server.bus.pubsub(topic, { objectMode: true }).publish({ hello: 'page' }), 1)
  assert.deepEqual(await page.evaluate(async () => await (globalThis as any).first), { hello: 'page' })

  // A service served by Node, called from the page.
  const svc = uniqueName('browsersvc')
  server.bus.service<{ a: number, b: number }, number>(svc, { objectMode: true }).serve((req) => req.data.a + req.data.b)
  const sum = await page.evaluate(async (name) => await (globalThis as any).bus.service(name, { objectMode: true }).request({ a: 2, b: 40 }), svc)
  assert.equal(sum, 42)
  await page.evaluate(async () => await (globalThis as any).bus.close())
  assert.deepEqual(errors, [])

  // Another Origin is refused at the upgrade (403), before any handshake.
  const ws = new WebSocket(server.url, { headers: { origin: 'http://evil.example' } })
  ws.on('error', () => {})
  const [, res] = await once(ws, 'unexpected-response')
  assert.equal(res.statusCode, 403)
})
