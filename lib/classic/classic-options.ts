import type { RedisOptions } from 'ioredis'
import type { BusOptions } from '../bus-options.js'
import type { Logger } from '../logger.js'
import { ClassicUnsupportedError, InvalidOptionError } from '../errors.js'

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
  /** BusMQ 3.1's federation. Not supported yet: giving it throws `ERR_BUSMQ_CLASSIC_UNSUPPORTED`. */
  federate?: unknown
  /** Where the bus logs (see `ClassicLog`). */
  logger?: ClassicLog
  /** The most verbose level written to `logger`. @default 'error' */
  logLevel?: ClassicLogLevel
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
  if (options.federate !== undefined) {
    throw new ClassicUnsupportedError('busmq/classic does not support federation (the federate option) yet')
  }
  const layout = options.layout ?? 'direct'
  if (!LAYOUTS.includes(layout)) throw new InvalidOptionError(`unsupported connection layout: ${String(layout)}`)
  const { name, ...redisOptions } = options.redisOptions ?? {}
  const base: BusOptions = { logger, redisOptions }
  if (options.redis === undefined) {
    if (layout !== 'direct') throw new InvalidOptionError(`layout '${layout}' needs the redis option`)
    return base
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
