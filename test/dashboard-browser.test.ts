// The dashboard in a real browser (headless Chromium): a queue being pushed to appears with the depth that
// was pushed and consumed, a service shows its servers and the requests they run and that wait, with
// handling-time percentiles, a killed shard shows as down and comes back, admin actions are refused
// without the token, and a screenshot is saved (test-artifacts/dashboard.png, the README's
// docs/dashboard.png).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Bus, type BusMQError } from '../lib/index.js'
import { useRedis } from './helpers/redis-server.js'
import { uniqueName } from './helpers/bus.js'
import { writeAll } from './helpers/queue.js'
import { artifactPath, openBrowser, type Browser } from './helpers/browser.js'

const redis = useRedis(2, { appendonly: true })
const WAIT = 20_000

let bus: Bus
let server: Server
let url: string
let browser: Browser

// Set up by the first test (root before hooks may run alongside useRedis's).
let ready: Promise<void> | undefined
function setup (): Promise<void> {
  ready ??= start()
  return ready
}

async function start (): Promise<void> {
  // Shared by every test of this file (openBus() would close it after the first), closed by after().
  bus = new Bus({ redis: redis.servers.map((s) => s.url), commandTimeout: 3000 })
  await bus.connect()
  bus.on('error', () => {})
  server = createServer()
  bus.dashboard({ server, interval: 250 })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  browser = await openBrowser()
}

after(async () => {
  await browser?.close()
  server?.closeAllConnections()
  server?.close()
  await bus?.close()
})

function cell (queue: string, key: string): string {
  return `[data-section="queues"] tr[data-name="${queue}"] [data-key="${key}"]`
}

function serviceCell (service: string, key: string): string {
  return `[data-section="services"] tr[data-name="${service}"] [data-key="${key}"]`
}

async function textOf (selector: string, expected: string): Promise<void> {
  await browser.page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent?.trim() === want,
    [selector, expected], { timeout: WAIT })
}

/** Waits until the text of `selector` matches `pattern`, and returns it. */
async function textMatching (selector: string, pattern: RegExp): Promise<string> {
  await browser.page.waitForFunction(([sel, source]) => new RegExp(source).test(document.querySelector(sel)?.textContent?.trim() ?? ''),
    [selector, pattern.source], { timeout: WAIT })
  return (await browser.page.locator(selector).textContent())?.trim() ?? ''
}

test('a queue being pushed to appears; its depth follows what is pushed and consumed; readers and writers show', async () => {
  await setup()
  const { page } = browser
  await page.goto(url)
  await page.waitForSelector('[data-shard][data-up="true"]', { timeout: WAIT })
  assert.equal(await page.locator('[data-shard][data-up="true"]').count(), 2)

  const name = uniqueName('dash')
  const q = bus.queue(name)
  const writer = q.createWriteStream()
  await new Promise<void>((resolve, reject) => writer.write('first', (err) => err ? reject(err) : resolve()))
  await textOf(cell(name, 'depth'), '1')
  await textOf(cell(name, 'writers'), '1')
  for (let i = 0; i < 29; i++) writer.write(`m${i}`)
  await textOf(cell(name, 'depth'), '30')

  const reader = q.createReadStream({ max: 10 })
  let n = 0
  for await (const _ of reader) n++
  assert.equal(n, 10)
  await textOf(cell(name, 'depth'), '20')

  // Filter by name: only matching rows.
  await page.fill('#filter', name.slice(-12))
  await page.waitForFunction((want) => {
    const rows = [...document.querySelectorAll('[data-section="queues"] tbody tr[data-name]')]
    return rows.length === 1 && rows[0].getAttribute('data-name') === want
  }, name, { timeout: WAIT })

  // The queue's page: its newest messages, with their ids (the 10 consumed are gone: ids 11-30).
  await page.click(`[data-section="queues"] tr[data-name="${name}"] a`)
  await page.waitForSelector('#messages tr[data-id="30"]', { timeout: WAIT })
  assert.equal(await page.locator('#messages tr[data-id]').count(), 20)
  assert.equal((await page.locator('#messages tr[data-id="30"] .payload').textContent())?.trim(), 'm28')
  assert.equal(await page.locator('#messages tr[data-id="10"]').count(), 0)
  await writeAll(writer, [])
  await page.goto(url)
})

test('a service shows its servers; running and waiting follow the requests held and released; p50/p99 show', async () => {
  await setup()
  const { page } = browser
  await page.goto(url)
  const name = uniqueName('dash-svc')
  const svc = bus.service<number, number>(name, { objectMode: true, timeout: 60_000 })
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const handler = async (req: { data: number }): Promise<number> => {
    await gate
    return req.data * 2
  }
  const servers = [svc.serve(handler, { concurrency: 2 }), svc.serve(handler, { concurrency: 1 })]
  try {
    await textOf(serviceCell(name, 'servers'), '2')
    await textOf(serviceCell(name, 'concurrency'), '3')
    await textOf(serviceCell(name, 'running'), '0')
    await textOf(serviceCell(name, 'waiting'), '0')
    // Nothing finished yet: no percentiles.
    assert.equal((await page.locator(serviceCell(name, 'p50')).textContent())?.trim(), '–')

    // 5 requests: 3 run (held by the handler), 2 wait for a free server.
    const replies = Promise.all([1, 2, 3, 4, 5].map((n) => svc.request(n)))
    await textOf(serviceCell(name, 'running'), '3')
    await textOf(serviceCell(name, 'waiting'), '2')
    release()
    assert.deepEqual(await replies, [2, 4, 6, 8, 10])
    await textOf(serviceCell(name, 'running'), '0')
    await textOf(serviceCell(name, 'waiting'), '0')
    const p50 = await textMatching(serviceCell(name, 'p50'), /^[\d.]+ (ms|s)$/)
    const p99 = await textMatching(serviceCell(name, 'p99'), /^[\d.]+ (ms|s)$/)
    const seconds = (t: string): number => Number(t.split(' ')[0]) / (t.endsWith(' ms') ? 1000 : 1)
    assert.ok(seconds(p50) <= seconds(p99), `p50 ${p50}, p99 ${p99}`)

    // Filter by name: the services table too.
    await page.fill('#filter', name.slice(-12))
    await page.waitForFunction((want) => {
      const rows = [...document.querySelectorAll('[data-section="services"] tbody tr[data-name]')]
      return rows.length === 1 && rows[0].getAttribute('data-name') === want
    }, name, { timeout: WAIT })
    await page.fill('#filter', 'no-such-service-at-all')
    await page.waitForSelector('[data-section="services"] tbody td.empty', { timeout: WAIT })
  } finally {
    await Promise.all(servers.map((s) => s.close()))
  }
  // Its servers left.
  await page.fill('#filter', name.slice(-12))
  await textOf(serviceCell(name, 'servers'), '0')
  await page.goto(url)
})

test('persisted objects are listed (version, fields, change log) when the page asks for the SCAN', async () => {
  await setup()
  const { page } = browser
  await page.goto(url)
  const name = uniqueName('dash-obj')
  const obj = bus.object(name)
  obj.set({ user: 'ann', step: 1 })
  await obj.save()
  obj.set({ step: 2 })
  await obj.save()
  // Not in the registry: the section says how to list them.
  await page.waitForSelector('[data-section="objects"] h2 .note', { timeout: WAIT })
  assert.equal(await page.locator(`[data-section="objects"] tr[data-name="${name}"]`).count(), 0)
  await page.check('#scan')
  const cellOf = (key: string): string => `[data-section="objects"] tr[data-name="${name}"] [data-key="${key}"]`
  await textOf(cellOf('version'), '2')
  await textOf(cellOf('fields'), '2')
  await textOf(cellOf('changes'), '2')
  await obj.delete()
  await page.goto(url)
})

test('a killed shard shows as down within seconds, and up again after a restart', async () => {
  await setup()
  const { page } = browser
  await page.goto(url)
  const victim = redis.servers[1]
  const id = `127.0.0.1:${victim.port}/0`
  await page.waitForSelector(`[data-shard="${id}"][data-up="true"]`, { timeout: WAIT })
  await victim.kill()
  await page.waitForSelector(`[data-shard="${id}"][data-up="false"]`, { timeout: WAIT })
  await page.waitForSelector(`[data-shard="127.0.0.1:${redis.servers[0].port}/0"][data-up="true"]`, { timeout: WAIT })
  await victim.restart()
  await page.waitForSelector(`[data-shard="${id}"][data-up="true"]`, { timeout: WAIT })
})

test('admin actions: refused without a token (403 when off, 401 when not sent or wrong); with it, dead letters go back', async () => {
  await setup()
  const { page } = browser
  await page.goto(url)
  const name = uniqueName('dash-admin')
  const q = bus.queue(name)
  await q.push('x')
  // From the page, as its buttons do (same origin: a custom header is not sent across origins).
  const post = async (base: string, action: string, token?: string): Promise<number> => {
    if (!page.url().startsWith(base)) await page.goto(base)
    return await page.evaluate(async ([u, t]) => {
      const res = await fetch(u, { method: 'POST', headers: t === undefined ? {} : { 'x-busmq-admin-token': t } })
      return res.status
    }, [`${base}api/actions/${action}?name=${encodeURIComponent(name)}`, token] as const)
  }

  assert.equal(await post(url, 'delete'), 403)
  assert.equal(await post(url, 'delete', 'guess'), 403)
  assert.equal(await q.count(), 1, 'the queue is still there')

  // A second dashboard of the same bus, with actions on.
  const adminServer = createServer()
  const handler = bus.dashboard({ server: adminServer, path: '/ops', adminToken: 's3cret' })
  adminServer.listen(0, '127.0.0.1')
  await once(adminServer, 'listening')
  const adminUrl = `http://127.0.0.1:${(adminServer.address() as AddressInfo).port}/ops/`
  try {
    assert.equal(await post(adminUrl, 'delete'), 401)
    assert.equal(await post(adminUrl, 'delete', 'wrong'), 401)
    assert.equal(await q.count(), 1, 'the queue is still there')

    const reader = q.createReadStream({ mode: 'reliable', max: 1 })
    for await (const msg of reader) await msg.nack({ deadLetter: true })
    assert.equal(await q.deadLetter().count(), 1)
    assert.equal(await post(adminUrl, 'redrive', 's3cret'), 200)
    assert.equal(await q.deadLetter().count(), 0)
    assert.equal(await q.count(), 1, 'the dead letter is back in its queue')
    // A writer bound to the queue learns that it was deleted, as after queue.delete().
    const writer = q.createWriteStream()
    await new Promise<void>((resolve, reject) => writer.write('y', (err) => err ? reject(err) : resolve()))
    assert.equal(await q.count(), 2)
    assert.equal(await post(adminUrl, 'delete', 's3cret'), 200)
    assert.equal(await q.exists(), false)
    writer.write('z')
    const [err] = await once(writer, 'error') as [BusMQError]
    assert.equal(err.code, 'ERR_BUSMQ_QUEUE_DELETED')
    assert.equal(await q.exists(), false, 'the writer did not bring the queue back')
  } finally {
    await handler.close()
    adminServer.closeAllConnections()
    adminServer.close()
  }
})

test('screenshot of a busy bus (saved to test-artifacts/dashboard.png)', async () => {
  await setup()
  const { page } = browser
  const names = ['orders', 'emails', 'invoices', 'thumbnails', 'audit-log'].map((n) => `${n}-${uniqueName('').slice(-6)}`)
  const writers = names.map((n) => bus.queue(n).createWriteStream())
  const readers = names.slice(0, 3).map((n) => bus.queue(n).createReadStream())
  for (const r of readers) r.on('data', () => {})
  const reliable = bus.queue(names[2]).createReadStream({ mode: 'reliable', prefetch: 5 })
  reliable.on('data', () => {})
  const channel = bus.channel(`chat-${uniqueName('').slice(-6)}`)
  const peer = bus.channel(channel.name, { listen: true })
  const topic = bus.pubsub('prices').createReadStream()
  topic.on('data', () => {})
  // Two services: one keeps up, one (2 servers of concurrency 2, ~20 ms a request) falls behind.
  const suffix = uniqueName('').slice(-6)
  const resize = bus.service<number>(`resize-image-${suffix}`, { objectMode: true })
  const geo = bus.service<number>(`geo-lookup-${suffix}`, { objectMode: true })
  const work = (base: number) => async (req: { data: number }): Promise<number> => {
    await new Promise((resolve) => setTimeout(resolve, base + (req.data % 7) * base / 2))
    return req.data
  }
  const servers = [resize.serve(work(8), { concurrency: 2 }), resize.serve(work(8), { concurrency: 2 }), geo.serve(work(1), { concurrency: 8 })]
  const objects = [bus.object(`session:${suffix}`), bus.object(`config-${suffix}`)]
  objects[0].set({ user: 'ann', cart: [1, 2, 3], step: 4 })
  objects[1].set({ theme: 'dark' })
  for (let v = 0; v < 3; v++) {
    objects[0].set({ step: 4 + v })
    objects[1].set({ theme: v % 2 === 0 ? 'dark' : 'light' })
    await Promise.all(objects.map(async (o) => await o.save()))
  }
  let i = 0
  const timer = setInterval(() => {
    writers.forEach((w, k) => { for (let j = 0; j < (k + 1) * 7 + (i % 5) * 3; j++) w.write(JSON.stringify({ n: i, j })) })
    for (let j = 0; j < 22; j++) resize.send(i * 100 + j).catch(() => {})
    for (let j = 0; j < 10; j++) geo.send(i * 100 + j).catch(() => {})
    i++
  }, 100)
  try {
    await page.goto(url)
    await page.check('#scan')
    await page.waitForSelector(`tr[data-name="${names[4]}"]`, { timeout: WAIT })
    await page.waitForSelector('[data-section="channels"] tr[data-name]', { timeout: WAIT })
    await page.waitForSelector(`[data-section="objects"] tr[data-name="${objects[0].name}"]`, { timeout: WAIT })
    await textMatching(serviceCell(resize.name, 'p99'), /ms|s$/)
    await page.waitForTimeout(6000)
    await page.screenshot({ path: artifactPath('dashboard.png'), fullPage: true })
    await page.click(`tr[data-name="${names[4]}"] a`)
    await page.waitForSelector('#messages tr[data-id]', { timeout: WAIT })
    await page.waitForTimeout(2500)
    await page.screenshot({ path: artifactPath('dashboard-queue.png'), fullPage: true })
  } finally {
    clearInterval(timer)
    await Promise.all(servers.map((s) => s.close({ grace: 0 })))
    await Promise.all(objects.map(async (o) => await o.delete()))
    // Closed (and their give-backs landed) before the bus closes.
    await Promise.all([...writers, ...readers, reliable, channel, peer, topic].map(async (s) => {
      s.on('error', () => {})
      const closed = once(s, 'close')
      s.destroy()
      await closed
    }))
  }
})
