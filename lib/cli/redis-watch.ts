import type { Bus } from '../bus.js'
import { BusMQError, ConnectTimeoutError } from '../errors.js'
import type { CommonOptions } from './args.js'

/** What went wrong with a connection to Redis, in the user's terms. */
export interface ConnectionProblem {
  /** A few words: "connection refused", "host not found", "wrong user name or password", … */
  reason: string
  /** Retrying cannot help (the credentials are wrong): fail at once instead of waiting for --timeout. */
  fatal: boolean
}

/** Socket errors (err.code) in words. */
const SOCKET_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  EACCES: 'permission denied'
}

/** What a connection error of ioredis (a socket error or Redis's reply to AUTH) means to the user. */
export function connectionProblem (err: Error): ConnectionProblem {
  const code = (err as NodeJS.ErrnoException).code
  if (code !== undefined && SOCKET_REASONS[code] !== undefined) return { reason: SOCKET_REASONS[code], fatal: false }
  const message = err.message.split('\n')[0]
  if (/^NOAUTH\b/.test(message)) return { reason: 'a password is required', fatal: true }
  if (/^WRONGPASS\b|invalid (username-)?password/i.test(message)) return { reason: 'wrong user name or password', fatal: true }
  if (/^Protocol error\b/.test(message)) return { reason: `not a Redis server? (${message})`, fatal: false }
  if (typeof code === 'string' && /^(ERR_SSL|ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED)/.test(code)) {
    return { reason: `TLS: ${message}`, fatal: false }
  }
  return { reason: code !== undefined && !message.includes(code) ? `${message} (${code})` : message, fatal: false }
}

/**
 * Watches a command's connections to Redis and says what goes wrong, in the user's terms, as soon as
 * it happens: on the first connection error of a shard it prints that it cannot reach it and is
 * retrying (and, if it gets through later, that it did); once connected, that a shard was lost and
 * came back. Status lines are left out with --quiet. Errors about the connections (a connect timeout,
 * a shard that did not answer) get the reason added.
 */
export class RedisWatch {
  private readonly bus: Bus
  private readonly common: CommonOptions
  /** The current problem of each shard that is not connected. */
  private readonly problems = new Map<string, ConnectionProblem>()
  /** Shards whose trouble has been announced on stderr (to say when it is over). */
  private readonly told = new Set<string>()
  private connected = false
  /** Errors already explained (the command's own catch and main may both ask). */
  private readonly explained = new WeakSet<Error>()
  private failFast?: (err: Error) => void

  constructor (bus: Bus, common: CommonOptions) {
    this.bus = bus
    this.common = common
    for (const id of bus.shardIds) {
      const shard = bus.shardById(id)!
      shard.on('error', (err: Error) => this.onError(id, err))
      shard.on('online', () => this.onOnline(id))
    }
    // With a listener the bus hands connection errors on instead of only logging them (debug).
    bus.on('error', (err: Error) => {
      if (common.debug) process.stderr.write(`busmq: redis: ${err.message}\n`)
    })
  }

  /**
   * Connects the bus. Fails at once when a shard refuses the credentials (`ERR_BUSMQ_CLI_AUTH`), and
   * after `--timeout` ms naming each shard it could not reach and why (`ERR_BUSMQ_CONNECT_TIMEOUT`).
   */
  async connect (): Promise<void> {
    const refused = new Promise<never>((resolve, reject) => { this.failFast = reject })
    try {
      await Promise.race([this.bus.connect(), refused])
    } catch (err) {
      throw this.explain(err)
    } finally {
      this.failFast = undefined
    }
    this.connected = true
  }

  private onError (id: string, err: Error): void {
    if (this.bus.closed) return
    const problem = connectionProblem(err)
    this.problems.set(id, problem)
    if (problem.fatal && this.failFast !== undefined) {
      const hint = problem.reason === 'a password is required' ? ' (give it in the URL: redis://[USER]:PASSWORD@HOST:PORT)' : ''
      this.failFast(new BusMQError(`Redis at ${id} refused the login: ${problem.reason}${hint}`, 'ERR_BUSMQ_CLI_AUTH', { cause: err }))
      return
    }
    if (this.told.has(id)) return
    this.told.add(id)
    this.status(this.connected
      ? `lost the connection to Redis at ${id} (${problem.reason}); retrying`
      : `cannot reach Redis at ${id} (${problem.reason}); retrying for up to ${this.common.timeout} ms (--timeout)`)
  }

  private onOnline (id: string): void {
    this.problems.delete(id)
    if (!this.told.delete(id) || this.bus.closed) return
    this.status(`${this.connected ? 'reconnected' : 'connected'} to Redis at ${id}`)
  }

  private status (text: string): void {
    // On a terminal the line replaces a progress line (which redraws itself at its next tick).
    if (!this.common.quiet) process.stderr.write(`${process.stderr.isTTY === true ? '\r\x1b[K' : ''}busmq: ${text}\n`)
  }

  /**
   * The error to report for `err`: a connect timeout names every shard not reached and why; an error
   * about a shard that is away gets its reason added. Anything else is returned as it is.
   */
  explain (err: unknown): unknown {
    if (!(err instanceof BusMQError) || this.explained.has(err)) return err
    this.explained.add(err)
    if (err instanceof ConnectTimeoutError) {
      const away = this.bus.shardIds.filter((id) => this.bus.shardById(id)?.online !== true)
      if (away.length === 0) return err
      const list = away.map((id) => `${id} (${this.problems.get(id)?.reason ?? 'no answer'})`).join(', ')
      const explained = new ConnectTimeoutError(`cannot reach Redis at ${list} within ${this.common.timeout} ms (--timeout)`, { cause: err })
      this.explained.add(explained)
      return explained
    }
    if (err.code === 'ERR_BUSMQ_SHARD_UNAVAILABLE') {
      const id = /^shard (\S+) /.exec(err.message)?.[1]
      const problem = id !== undefined ? this.problems.get(id) : undefined
      if (problem !== undefined) err.message += `; Redis at ${id}: ${problem.reason}`
    }
    return err
  }
}
