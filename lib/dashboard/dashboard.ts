import { readFileSync } from 'node:fs'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import createDebug from 'debug'
import type { Bus } from '../bus.js'
import type { Shard } from '../router/shard.js'
import { checkInt, checkDelay, validateName } from '../names.js'
import { InvalidOptionError, type BusMQErrorCode } from '../errors.js'
import { prometheusText } from '../metrics/prometheus.js'
import { ADMIN_TOKEN_HEADER, DEFAULT_DASHBOARD_OPTIONS, type DashboardOptions } from './dashboard-options.js'
import { Inspector, keysOf, type ShardView } from './inspector.js'
import { channelsSection, QueuesSection, topicsSection } from './builtin-sections.js'
import { ServicesSection } from './services-section.js'
import { ObjectsSection } from './objects-section.js'
import { RegistryList } from './registry-list.js'
import type { DashboardSection, SectionQuery, SectionState } from './section.js'
import { deleteQueue, redriveDeadLetters } from './admin.js'
import { DEAD_LETTER_SUFFIX } from '../keys.js'

const debug = createDebug('busmq:dashboard')

type Next = (err?: unknown) => void

/** What `bus.dashboard()` returns: a request handler, plus `close()`. */
export interface DashboardHandler {
  (req: IncomingMessage, res: ServerResponse, next?: Next): void
  /** Where it is mounted. */
  readonly path: string
  /** Ends open pages' event streams and unmounts it from `server`; `bus.close()` calls it too. */
  close: () => Promise<void>
}

/** What a page asks for: the sections' query, and the queue whose page is open. */
interface ViewQuery extends SectionQuery {
  queue?: string
}

let page: string | undefined
function pageHtml (): string {
  page ??= readFileSync(new URL('./page.html', import.meta.url), 'utf8')
  return page
}

function sha (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

function json (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}

/**
 * The dashboard of a bus: one page (lib/dashboard/page.html, no build step, nothing from a CDN), kept
 * live with Server-Sent Events, a JSON API under `api/`, and `/metrics` in Prometheus text. Read-only
 * unless an admin token is configured and sent. Every refresh is shared by the pages that ask the same
 * thing, and reads Redis with bounded work (see Inspector).
 */
export class Dashboard {
  readonly path: string
  private readonly bus: Bus
  private readonly adminToken?: Buffer
  private readonly interval: number
  private readonly limit: number
  private readonly inspector: Inspector
  private readonly queuesSection: QueuesSection
  private readonly sections: DashboardSection[]
  private readonly clients = new Map<ServerResponse, ViewQuery>()
  private timer?: NodeJS.Timeout
  private ticking = false
  private shardViews: ShardView[] = []
  private shardsAt = 0
  private server?: Server
  private serverListeners: Array<(...args: any[]) => void> = []
  private closed = false

  constructor (bus: Bus, options: DashboardOptions, extra: readonly DashboardSection[]) {
    const path = options.path ?? DEFAULT_DASHBOARD_OPTIONS.path
    if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError(`path must start with '/', got ${String(path)}`)
    if (options.adminToken !== undefined && (typeof options.adminToken !== 'string' || options.adminToken.length === 0)) {
      throw new InvalidOptionError('adminToken must be a non-empty string')
    }
    this.bus = bus
    this.path = path.length > 1 ? path.replace(/\/+$/, '') : '/'
    this.adminToken = options.adminToken === undefined ? undefined : sha(options.adminToken)
    this.interval = checkDelay(options.interval ?? DEFAULT_DASHBOARD_OPTIONS.interval, 'interval', 100)
    this.limit = checkInt(options.limit ?? DEFAULT_DASHBOARD_OPTIONS.limit, 'limit', 1, 10_000)
    this.inspector = new Inspector(bus.settings.prefix)
    const shards = (): Shard[] => bus.router.all()
    const registry = new RegistryList(this.inspector, shards, this.interval)
    this.queuesSection = new QueuesSection(this.inspector, shards, this.interval, registry)
    this.sections = [this.queuesSection, new ServicesSection(this.inspector, registry),
      new ObjectsSection(this.inspector, shards), ...extra, channelsSection(this.inspector, shards), topicsSection(this.inspector, shards)]
    if (options.server !== undefined) this.mount(options.server)
  }

  /** Takes the server's requests under `path`; the others go to its listeners as before (like socket.io). */
  private mount (server: Server): void {
    this.server = server
    this.serverListeners = server.listeners('request') as Array<(...args: any[]) => void>
    server.removeAllListeners('request')
    server.on('request', this.onServerRequest)
  }

  private readonly onServerRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/'
    if (this.path === '/' || url === this.path || url.startsWith(`${this.path}/`) || url.startsWith(`${this.path}?`)) {
      this.handle(req, res)
      return
    }
    if (this.serverListeners.length === 0) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
      res.end('not found\n')
      return
    }
    for (const l of this.serverListeners) l.call(this.server, req, res)
  }

  /** The request handler (what `bus.dashboard()` returns). */
  handle (req: IncomingMessage, res: ServerResponse, next?: Next): void {
    const url = new URL(req.url ?? '/', 'http://dashboard')
    let rel = url.pathname
    if (this.path !== '/') {
      if (rel !== this.path && !rel.startsWith(`${this.path}/`)) {
        if (next) return next()
        return json(res, 404, { error: 'not found' })
      }
      rel = rel.slice(this.path.length)
    }
    // The page uses relative URLs: it must be served from a path that ends with '/'.
    const original = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/'
    const originalPath = original.split('?')[0]
    if ((rel === '' || rel === '/') && !originalPath.endsWith('/')) {
      res.writeHead(301, { location: `${originalPath}/${url.search}` })
      res.end()
      return
    }
    this.route(req, res, rel, url.searchParams).catch((err: Error) => {
      debug('%s %s failed: %s', req.method, rel, err.message)
      const code = (err as { code?: string }).code
      if (!res.headersSent) json(res, code === 'ERR_BUSMQ_INVALID_NAME' ? 400 : 500, { error: err.message, code })
      else res.end()
    })
  }

  private async route (req: IncomingMessage, res: ServerResponse, rel: string, params: URLSearchParams): Promise<void> {
    const method = req.method ?? 'GET'
    if (method === 'POST' && rel.startsWith('/api/actions/')) return await this.action(req, res, rel.slice('/api/actions/'.length), params)
    if (method !== 'GET' && method !== 'HEAD') return json(res, 405, { error: 'method not allowed' })
    if (rel === '/' || rel === '' || rel === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(pageHtml())
      return
    }
    if (rel === '/metrics') {
      const { text, contentType } = await prometheusText(this.bus.metricsRegistry)
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' })
      res.end(text)
      return
    }
    if (rel === '/api/state') return json(res, 200, await this.state(this.query(params)))
    if (rel === '/events') return this.subscribe(req, res, this.query(params))
    if (rel === '/api/messages') {
      const name = validateName(params.get('name'), 'queue name')
      const count = Math.min(500, Math.max(1, Number(params.get('count') ?? 50) || 50))
      const shard = await this.shardOf(name)
      return json(res, 200, { name, shard: shard.id, messages: await this.inspector.messages(shard, name, count) })
    }
    json(res, 404, { error: 'not found' })
  }

  private query (params: URLSearchParams): ViewQuery {
    const offset = Math.max(0, Math.floor(Number(params.get('offset') ?? 0)) || 0)
    const queue = params.has('queue') ? validateName(params.get('queue'), 'queue name') : undefined
    return { filter: (params.get('filter') ?? '').slice(0, 200), offset, limit: this.limit, scan: params.get('scan') === '1', queue }
  }

  /** The shard holding a queue: where the registry lists it, else where its keys are, else its owner. */
  private async shardOf (name: string): Promise<Shard> {
    const keys = keysOf(this.bus.settings.prefix, name)
    return await this.bus.router.locate(name.replace(/:dead-letter$/, ''), keys.existence())
  }

  /** Everything a page shows for its query. */
  async state (q: ViewQuery): Promise<Record<string, unknown>> {
    const [shards, sections, queue] = await Promise.all([this.shards(), this.sectionStates(q), this.queueState(q.queue)])
    return {
      at: Date.now(),
      prefix: this.bus.settings.prefix,
      admin: this.adminToken !== undefined,
      interval: this.interval,
      limit: this.limit,
      shards,
      sections,
      queue
    }
  }

  private async shards (): Promise<ShardView[]> {
    if (Date.now() - this.shardsAt >= this.interval / 2) {
      this.shardViews = (await Promise.all(this.bus.router.all().map((s) => this.inspector.shard(s)))).flat()
      this.shardsAt = Date.now()
    }
    return this.shardViews
  }

  private async sectionStates (q: ViewQuery): Promise<SectionState[]> {
    return await Promise.all(this.sections.map(async (s) => {
      const base = { id: s.id, title: s.title, columns: s.columns, pages: s.pages === true }
      try {
        return { ...base, ...await s.rows(q) }
      } catch (err) {
        return { ...base, total: 0, rows: [], note: `could not be read: ${(err as Error).message}` }
      }
    }))
  }

  private async queueState (name: string | undefined): Promise<Record<string, unknown> | undefined> {
    if (name === undefined || name === '') return undefined
    const shard = await this.shardOf(name)
    if (!shard.online) return { name, shard: shard.id, exists: false, note: 'its shard is down' }
    const [view, messages, deadLetters] = await Promise.all([
      this.queuesSection.queue(name, shard),
      this.inspector.messages(shard, name, 50),
      name.endsWith(':dead-letter') ? Promise.resolve([]) : this.inspector.messages(shard, `${name}:dead-letter`, 50)
    ])
    const exists = view !== undefined && view.ttl !== -2
    return { name, shard: shard.id, exists, view, messages, deadLetters, rates: this.queuesSection.historyOf(shard.id, name) }
  }

  private subscribe (req: IncomingMessage, res: ServerResponse, q: ViewQuery): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    res.write(`retry: ${Math.max(1000, this.interval)}\n\n`)
    this.clients.set(res, q)
    req.on('close', () => {
      this.clients.delete(res)
      if (this.clients.size === 0) this.stop()
    })
    this.start()
    this.tick().catch(() => {})
  }

  private start (): void {
    if (this.timer || this.closed) return
    this.timer = setInterval(() => { this.tick().catch(() => {}) }, this.interval)
    this.timer.unref()
  }

  private stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** One refresh: each distinct query computed once, sent to every page that asked it. */
  private async tick (): Promise<void> {
    if (this.ticking || this.clients.size === 0) return
    this.ticking = true
    try {
      const groups = new Map<string, { q: ViewQuery, res: ServerResponse[] }>()
      for (const [res, q] of this.clients) {
        const key = JSON.stringify(q)
        if (!groups.has(key)) groups.set(key, { q, res: [] })
        groups.get(key)!.res.push(res)
      }
      await Promise.all([...groups.values()].map(async ({ q, res }) => {
        let data: string
        try {
          data = JSON.stringify(await this.state(q))
        } catch (err) {
          data = JSON.stringify({ at: Date.now(), error: (err as Error).message })
        }
        for (const r of res) r.write(`event: state\ndata: ${data}\n\n`)
      }))
    } finally {
      this.ticking = false
    }
  }

  private authorized (req: IncomingMessage): boolean {
    const sent = req.headers[ADMIN_TOKEN_HEADER]
    if (this.adminToken === undefined || typeof sent !== 'string') return false
    return timingSafeEqual(sha(sent), this.adminToken)
  }

  private async action (req: IncomingMessage, res: ServerResponse, action: string, params: URLSearchParams): Promise<void> {
    req.resume()
    if (this.adminToken === undefined) {
      const code: BusMQErrorCode = 'ERR_BUSMQ_DASHBOARD_READ_ONLY'
      return json(res, 403, { error: 'admin actions are off: start the dashboard with an admin token', code })
    }
    if (!this.authorized(req)) {
      const code: BusMQErrorCode = 'ERR_BUSMQ_DASHBOARD_UNAUTHORIZED'
      return json(res, 401, { error: `a valid ${ADMIN_TOKEN_HEADER} header is required`, code })
    }
    const name = validateName(params.get('name'), 'queue name')
    const keys = keysOf(this.bus.settings.prefix, name)
    const shard = await this.shardOf(name)
    if (action === 'redrive') {
      const moved = await redriveDeadLetters(shard, keys, this.bus.settings.ttl)
      debug('moved %d dead letter(s) back to %s', moved, name)
      return json(res, 200, { name, moved })
    }
    if (action === 'delete') {
      const queue = name.endsWith(DEAD_LETTER_SUFFIX) && name.length > DEAD_LETTER_SUFFIX.length
        ? this.bus.queue(name.slice(0, -DEAD_LETTER_SUFFIX.length)).deadLetter()
        : this.bus.queue(name)
      const existed = await deleteQueue(queue, shard, this.bus.settings.prefix)
      debug('deleted queue %s (existed: %s)', name, existed)
      return json(res, 200, { name, deleted: existed })
    }
    json(res, 404, { error: `no action ${action}` })
  }

  async close (): Promise<void> {
    this.closed = true
    this.stop()
    for (const res of this.clients.keys()) res.end()
    this.clients.clear()
    if (this.server) {
      this.server.off('request', this.onServerRequest)
      for (const l of this.serverListeners) this.server.on('request', l)
      this.server = undefined
    }
  }
}
