import type { IncomingMessage, Server } from 'node:http'
import type { RedisOptions } from 'ioredis'
import { defaultRedis, type BusOptions } from '../bus-options.js'
import type { Logger } from '../logger.js'
import { InvalidOptionError } from '../errors.js'

/** BusMQ 3.1's Redis layouts. */
export type ClassicLayout = 'direct' | 'cluster' | 'sentinels'

/** BusMQ 3.1's log levels (`logLevel`). */
export type ClassicLogLevel = 'error' | 'warning' | 'info' | 'debug'

/**
 * What BusMQ 3.1 accepts as a logger: an object with some of `debug`, `info`, `warning` (or `warn`),
 * `error`, and `log` for the levels it lacks (`console` qualifies).
 */
export type ClassicLog = Record<string, unknown>

/** Options of `Bus.create(options)` (BusMQ 3.1's). */
export interface ClassicBusOptions {
  /** BusMQ 3.1's choice of Redis client. Accepted and ignored: the bus always uses ioredis. */
  driver?: string
  /**
   * `'direct'`: `redis` lists Redis servers, one shard each; `'cluster'`: `redis` lists seed nodes of a
   * Redis Cluster; `'sentinels'`: `redis` lists Sentinels, which monitor the master named by
   * `redisOptions.name` (`'mymaster'` when not given).
   * @default 'direct'
   */
  layout?: ClassicLayout
  /**
   * One URL or a list: `redis://[auth_pass@]host[:port]` (`rediss://` for TLS); `redis://user:pass@…`
   * works too.
   * @default $BUSMQ_REDIS, else redis://127.0.0.1:6379
   */
  redis?: string | string[]
  /** ioredis options for every connection (`name`: the Sentinel master name). @default {} */
  redisOptions?: RedisOptions & { name?: string }
  /** BusMQ 3.1's federation: serving it (`server`) and federating objects to other buses (`bus.federate()`). */
  federate?: ClassicFederateOptions
  /** Where the bus logs (see `ClassicLog`). */
  logger?: ClassicLog
  /** The most verbose level written to `logger`. @default 'error' */
  logLevel?: ClassicLogLevel
}

/** What BusMQ 3.1's `secret` function (ws's `verifyClient`) is given. */
export interface ClassicVerifyInfo {
  origin: string | undefined
  secure: boolean
  req: IncomingMessage
}

/** ws's `verifyClient`: returns whether to accept, or (with two parameters) calls `cb(result)`. */
export type ClassicVerifyClient =
  | ((info: ClassicVerifyInfo) => boolean)
  | ((info: ClassicVerifyInfo, cb: (result: boolean, code?: number, message?: string) => void) => void)

/** BusMQ 3.1's `federate` option of `Bus.create()`. */
export interface ClassicFederateOptions {
  /** The http or https server on which `connect()` serves federation (none: this bus does not serve it). */
  server?: Server
  /** The path federation is served under. @default '/' */
  path?: string
  /**
   * Federation servers (`http(s)://` or `ws(s)://` URLs) that `queue.find()` asks, in order, about a
   * queue this bus's Redis does not have (`bus.federate(object, url)` connects to the URL it is given).
   */
  urls?: string[]
  /** WebSockets kept open to each target of `bus.federate()`. @default 1 */
  poolSize?: number
  /**
   * A string: the shared secret (serving and federating; it never crosses the wire). A function: the
   * server accepts the connections it accepts (ws's `verifyClient(info[, cb])`) and checks no secret;
   * a bus with a function federates without a secret.
   * @default 'notsosecret'
   */
  secret?: string | ClassicVerifyClient
}

/** 3.1's default federation secret. */
export const DEFAULT_SECRET = 'notsosecret'

/** Checks the `federate` option (throws `ERR_BUSMQ_INVALID_OPTION`). */
function checkFederate (f: ClassicFederateOptions): void {
  if (f === null || typeof f !== 'object') throw new InvalidOptionError('federate must be an object')
  if (f.server !== undefined && typeof f.server?.on !== 'function') throw new InvalidOptionError('federate.server must be an http or https server')
  if (f.path !== undefined && (typeof f.path !== 'string' || !f.path.startsWith('/'))) throw new InvalidOptionError('federate.path must start with /')
  if (f.secret !== undefined && typeof f.secret !== 'function' && (typeof f.secret !== 'string' || f.secret.length === 0)) {
    throw new InvalidOptionError('federate.secret must be a non-empty string or a function')
  }
  if (f.urls !== undefined && (!Array.isArray(f.urls) || f.urls.some((u) => typeof u !== 'string' || !/^(http|ws)s?:\/\//i.test(u)))) {
    throw new InvalidOptionError('federate.urls must be a list of http(s):// or ws(s):// URLs')
  }
  if (f.poolSize !== undefined && (!Number.isInteger(f.poolSize) || f.poolSize < 1)) {
    throw new InvalidOptionError('federate.poolSize must be a positive integer')
  }
}

/** 3.1's federation URLs are http(s):// URLs; the native client speaks ws(s)://. */
export function wsUrl (url: string): string {
  return url.replace(/^http(s?):\/\//i, 'ws$1://')
}

/**
 * `federate.urls` as the native bus's federation (what `queue.find()` asks when the queue is not
 * local), with `federate.secret` when it is a string.
 */
function federationOf (f: ClassicFederateOptions | undefined): Pick<BusOptions, 'federation'> {
  if (f?.urls === undefined || f.urls.length === 0) return {}
  const secret = f.secret ?? DEFAULT_SECRET
  return { federation: { urls: f.urls.map(wsUrl), ...(typeof secret === 'string' ? { secret } : {}) } }
}

const LAYOUTS: readonly ClassicLayout[] = ['direct', 'cluster', 'sentinels']

/** BusMQ 3.1 URL auth (`redis://pass@host`) as the password it is (ioredis reads it as a user name). */
function fixAuth (url: string): URL {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new InvalidOptionError(`not a Redis URL: ${JSON.stringify(url)}`)
  }
  if (u.username !== '' && u.password === '') {
    u.password = u.username
    u.username = ''
  }
  return u
}

/** The native bus options for BusMQ 3.1 options (`logger`: the classic logger adapter). */
export function nativeOptions (options: ClassicBusOptions, logger: Logger): BusOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('Bus.create() options must be an object')
  if (options.federate !== undefined) checkFederate(options.federate)
  const layout = options.layout ?? 'direct'
  if (!LAYOUTS.includes(layout)) throw new InvalidOptionError(`unsupported connection layout: ${String(layout)}`)
  const { name, ...redisOptions } = options.redisOptions ?? {}
  const base: BusOptions = { logger, redisOptions, ...federationOf(options.federate) }
  if (options.redis === undefined) {
    if (layout !== 'direct') throw new InvalidOptionError(`layout '${layout}' needs the redis option`)
    // With federation the bus must be told of its Redis (else it would have only federation).
    return base.federation ? { ...base, redis: defaultRedis() } : base
  }
  const urls = typeof options.redis === 'string' ? [options.redis] : options.redis
  if (!Array.isArray(urls) || urls.length === 0 || urls.some((u) => typeof u !== 'string')) {
    throw new InvalidOptionError('redis must be a URL or a non-empty list of URLs')
  }
  const parsed = urls.map(fixAuth)
  if (layout === 'direct') return { ...base, redis: parsed.map((u) => u.toString()) }
  const password = parsed.find((u) => u.password !== '')?.password
  const hostPorts = parsed.map((u) => `${u.hostname}:${u.port || (layout === 'sentinels' ? '26379' : '6379')}`)
  if (layout === 'cluster') {
    return { ...base, redisOptions: { ...(password ? { password: decodeURIComponent(password) } : {}), ...redisOptions }, cluster: hostPorts }
  }
  return {
    ...base,
    sentinel: {
      sentinels: hostPorts,
      names: [name ?? 'mymaster'],
      ...(password ? { sentinelPassword: decodeURIComponent(password) } : {})
    }
  }
}
