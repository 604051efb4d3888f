import { EventEmitter } from 'node:events'
import createDebug from 'debug'
import type { Redis, Cluster } from 'ioredis'
import { BusClosedError, ShardUnavailableError } from '../errors.js'
import { retryable, classify, wrapRedisError, NOT_SENT_MESSAGES } from './redis-errors.js'
import { sleep } from '../util.js'
import { SubscriptionHub } from './subscriptions.js'
import { ShardHealth } from './shard-health.js'
import type { ScriptCallOptions, ScriptTarget } from '../scripts/index.js'

const debug = createDebug('busmq:shard')

export type Client = Redis | Cluster

/** How a shard makes connections: the command connection and, lazily, the subscriber. */
export interface ShardConnector {
  /** A new, not yet connected client (lazyConnect). */
  create: () => Client
  /** Prepares a command connection (registers the scripts). */
  prepare?: (client: Client) => void
}

export interface RunOptions {
  /** ms after which the call fails with ERR_BUSMQ_SHARD_UNAVAILABLE; 0 = never. @default commandTimeout */
  timeout?: number
  /** The call may be sent again after a connection drop (its effect is applied once). @default false */
  idempotent?: boolean
  /**
   * True while the call would go on a connection of its own that is up (the heartbeat's side
   * connection): it then skips the line of calls waiting for the command connection.
   */
  elsewhere?: () => boolean
}

/** A call waiting in a shard's line (see Shard.inLine). */
interface LineEntry {
  readonly seq: number
  readonly deadline: number
  readonly resolve: () => void
}

/** Removes from `line` (keeping its order) and returns the entries past their deadline, in one pass. */
function takeExpired (line: LineEntry[], now: number): LineEntry[] {
  const expired: LineEntry[] = []
  let kept = 0
  for (const e of line) {
    if (e.deadline <= now) expired.push(e)
    else line[kept++] = e
  }
  line.length = kept
  return expired
}

/**
 * One shard: a Redis endpoint, a Sentinel-managed primary, or a whole Redis Cluster. It owns the command
 * connection (its commands corked per turn of the event loop) with its retry rule and deadlines, and a {@link SubscriptionHub} for
 * pub/sub; a {@link ShardHealth} checks the server version and notices data loss.
 *
 * Events: `online` when the command connection is ready (again), `offline` when it is lost, `error`,
 * `dataloss` when it came back without its data.
 */
export class Shard extends EventEmitter implements ScriptTarget {
  readonly id: string
  readonly client: Client
  readonly subscriptions: SubscriptionHub
  online = false
  /** Last connection error, to explain a connect timeout. */
  lastError?: Error
  /** Grows each time the command connection closes: a WAIT only covers writes of the same connection. */
  connectionGeneration = 0
  /** ms after which a command fails with ERR_BUSMQ_SHARD_UNAVAILABLE (0: never). */
  readonly commandTimeout: number
  /** Metrics: times the connection came back after it was lost, and commands that failed with ERR_BUSMQ_SHARD_UNAVAILABLE. */
  reconnects = 0
  commandTimeouts = 0
  private everOnline = false
  private readonly connector: ShardConnector
  /** The side connection of heartbeats (see {@link evalSideScript}), made on first use. */
  private side?: Client
  private readonly health: ShardHealth
  private closing?: Promise<void>
  private nextReady?: Promise<void>
  /** Calls made so far: a call's number is its place in {@link line}. */
  private calls = 0
  /** Calls waiting to be sent (again), by number: see {@link inLine}. */
  private readonly line: LineEntry[] = []
  /** Calls let go from the line that have not sent yet: until they have, new calls queue up behind them. */
  private resuming = 0
  /** The line's re-check (200 ms) and whether it waits for the connection's 'ready'. */
  private lineTimer?: NodeJS.Timeout
  private lineAwaitsReady = false
  private lineCheck = false

  constructor (id: string, connector: ShardConnector, options: { prefix?: string, commandTimeout?: number } = {}) {
    super()
    this.id = id
    this.commandTimeout = options.commandTimeout ?? 0
    this.connector = connector
    this.client = connector.create()
    connector.prepare?.(this.client)
    this.subscriptions = new SubscriptionHub(id, connector.create)
    this.health = new ShardHealth(this, options.prefix, (err) => this.emit('dataloss', err))
    this.client.on('ready', () => {
      if (this.online) return
      if (this.everOnline) this.reconnects++
      this.everOnline = this.online = true
      debug('%s online', id)
      this.emit('online')
      this.health.recheck()
    })
    this.client.on('close', () => {
      this.connectionGeneration++
      if (!this.online) return
      this.online = false
      debug('%s offline', id)
      this.emit('offline')
    })
    this.client.on('error', (err: Error) => {
      this.lastError = err
      this.emit('error', err)
    })
  }

  /**
   * Resolves when the command connection is ready and the server passed its checks (Redis >= 6.2, the
   * data-loss marker readable). A failed check is tried again on the next call.
   */
  async connect (): Promise<void> {
    if (this.client.status === 'wait') {
      this.client.connect().catch(() => { /* reported through 'error' and retried by ioredis */ })
    }
    if (this.client.status !== 'ready') await this.ready()
    await this.health.check()
  }

  /** Resolves at the command connection's next 'ready' (one listener however many wait). */
  private ready (): Promise<void> {
    this.nextReady ??= new Promise<void>((resolve) => this.client.once('ready', () => {
      this.nextReady = undefined
      resolve()
    }))
    return this.nextReady
  }

  /**
   * Runs commands on the command connection, turning failures into coded errors: Redis's own refusals
   * into `ERR_BUSMQ_REDIS`, a shard that does not answer (command timeout, connection lost for good)
   * into `ERR_BUSMQ_SHARD_UNAVAILABLE`.
   *
   * The offline queue is off: a command issued while the shard is away fails at once without being
   * sent, so it is sent again once the shard is back, until the deadline (in the order the calls were
   * first made: see {@link inLine}). What was in flight when a connection closed, ioredis sends again
   * itself once it is back, ahead of those: the scripts that move messages are written so that running
   * twice changes nothing (pushes and give-backs carry a producer or reader id and a number; acks,
   * renewals and requeues only touch what the caller still owns); a pop is the exception (see
   * "Guarantees" in the README). A command that fails with `ERR_BUSMQ_SHARD_UNAVAILABLE` after its
   * deadline may still be applied when the shard is back.
   */
  async run<T> (fn: (client: Client) => Promise<T>, options: RunOptions = {}): Promise<T> {
    const timeout = options.timeout ?? this.commandTimeout
    const deadline = timeout > 0 ? Date.now() + timeout : Infinity
    const seq = ++this.calls
    // Behind calls waiting to be sent again: sent after them, never before.
    let turn = (this.line.length > 0 || this.resuming > 0) && options.elsewhere?.() !== true ? this.inLine(seq, deadline) : undefined
    let pause: Promise<void> | undefined
    for (;;) {
      let timer: NodeJS.Timeout | undefined
      try {
        let call: Promise<T>
        if (pause) {
          await pause
          pause = undefined
        }
        if (turn) {
          await turn
          turn = undefined
          try {
            // Let go past its deadline (the line is looked at every 200 ms): it is not sent at all.
            if (Date.now() >= deadline) throw new Error(NOT_SENT_MESSAGES[0])
            this.corkTurn()
            call = fn(this.client)
          } finally {
            this.resumed()
          }
        } else {
          this.corkTurn()
          call = fn(this.client)
        }
        if (deadline === Infinity) return await call
        // Our own timer, not ioredis's commandTimeout: it starts when the call is made (not when the
        // corked socket is finally written), and calls made without one (readers' pops) keep
        // waiting, so a reply that comes late is never thrown away.
        return await Promise.race([call, new Promise<never>((resolve, reject) => {
          timer = setTimeout(() => reject(this.timedOut(new ShardUnavailableError(`shard ${this.id} did not answer within ${timeout} ms ` +
            '(the command may still be applied when it is back)'))), Math.max(0, deadline - Date.now()))
          timer.unref()
        })])
      } catch (err) {
        if (retryable(err, options.idempotent ?? false) && Date.now() < deadline && !this.closing) {
          // On a connection of its own that is up: tried again shortly, outside the line.
          if (options.elsewhere?.() === true) pause = sleep(50)
          else turn = this.inLine(seq, deadline)
          continue
        }
        if (classify(err) === 'not-sent') {
          if (this.closing) throw new BusClosedError(`the bus was closed (shard ${this.id})`, { cause: err })
          throw this.timedOut(new ShardUnavailableError(`shard ${this.id} is unavailable: nothing was sent within ${timeout} ms`, { cause: err }))
        }
        throw wrapRedisError(err, this.id)
      } finally {
        clearTimeout(timer)
      }
    }
  }

  private timedOut (err: Error): Error {
    this.commandTimeouts++
    return err
  }

  /**
   * Corks the command connection's socket until the end of this turn of the event loop (a setImmediate),
   * so the commands made in the turn leave in one write: the batching ioredis's auto-pipelining would
   * give, without its pipelines (see redisOptions in lib/bus.ts). A Cluster client keeps auto-pipelining.
   */
  private corkTurn (): void {
    if (this.corked !== undefined) return
    const client = this.client as unknown as { stream?: NodeJS.WritableStream & { cork?: () => void, uncork?: () => void }, status: string, isCluster?: boolean }
    const stream = client.stream
    if (client.isCluster === true || !this.writable() || stream?.cork === undefined) return
    stream.cork()
    this.corked = stream
    setImmediate(this.uncork)
  }

  private corked?: { uncork?: () => void }
  private readonly uncork = (): void => {
    const stream = this.corked
    this.corked = undefined
    stream?.uncork?.()
  }

  /** Calls a registered script (lib/scripts/index.ts) under the rules of {@link run}. */
  evalScript (command: string, args: Array<string | Buffer | number>, options: ScriptCallOptions = {}): Promise<unknown> {
    return this.run((c) => (c as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[command](...args), options)
  }

  /**
   * Calls a script like {@link evalScript}, on a connection of its own when it is up: the attachments'
   * heartbeat, which must not wait behind a burst of the application's commands (thousands of pushes
   * queued on the command connection would hold a refresh for as long as they take, and queues would
   * expire while attached). While the side connection is not ready (being made, reconnecting), and on a
   * Cluster (whose client is a connection per node already), the command connection is used.
   */
  evalSideScript (command: string, args: Array<string | Buffer | number>, options: ScriptCallOptions = {}): Promise<unknown> {
    return this.run((c) => {
      const side = this.sideClient()
      const on = side?.status === 'ready' ? side : c
      return (on as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[command](...args)
    }, { ...options, elsewhere: () => this.sideClient()?.status === 'ready' })
  }

  private sideClient (): Client | undefined {
    if (this.closing || (this.client as { isCluster?: boolean }).isCluster === true) return undefined
    if (!this.side) {
      const side = this.side = this.connector.create()
      this.connector.prepare?.(side)
      side.on('error', (err: Error) => debug('%s side connection: %s', this.id, err.message))
      side.connect().catch(() => { /* reported through 'error' and retried by ioredis */ })
    }
    return this.side
  }

  /**
   * Resolves when call number `seq` may be sent (again): the command connection is ready and every call
   * made before it that waits too has been sent first. Calls therefore go out again in the order they were
   * first made, however long the shard was away (a producer's batch sent again after a later batch of
   * the same producer would be taken by the push script for a duplicate, its record saying a later batch
   * is in, and never stored). Resolves at `deadline` too, when the shard is still away (the call then
   * fails), and when the shard closes.
   */
  private inLine (seq: number, deadline: number): Promise<void> {
    return new Promise((resolve) => {
      let i = this.line.length
      while (i > 0 && this.line[i - 1].seq > seq) i--
      this.line.splice(i, 0, { seq, deadline, resolve })
      this.checkLineSoon()
    })
  }

  /** A call let go from the line has sent (or failed to): once all have, the next ones may go. */
  private resumed (): void {
    this.resuming--
    if (this.resuming === 0 && this.line.length > 0) this.checkLineSoon()
  }

  /**
   * Looks at the line on the next turn of the event loop, never at once: a call that failed at once
   * (its connection is closing but not closed yet) must let the connection's events in before it is let
   * go again, or it would retry in a loop of promise callbacks that keeps them out.
   */
  private checkLineSoon (): void {
    if (this.lineCheck) return
    this.lineCheck = true
    setImmediate(() => {
      this.lineCheck = false
      this.checkLine()
    })
  }

  /** Whether commands can be written on the command connection now. */
  private writable (): boolean {
    const client = this.client as unknown as { status: string, stream?: { writable?: boolean } }
    return client.status === 'ready' && client.stream?.writable !== false
  }

  /**
   * Lets the whole line go, in order, when the connection is ready and nothing let go before is still
   * on its way; otherwise only the calls past their deadline (or all, closing), and looks again at the
   * next 'ready' and every 200 ms.
   */
  private checkLine (): void {
    if (this.line.length === 0) {
      clearTimeout(this.lineTimer)
      this.lineTimer = undefined
      return
    }
    const now = Date.now()
    const ready = this.writable() && this.resuming === 0
    const go = ready || this.closing !== undefined ? this.line.splice(0) : takeExpired(this.line, now)
    this.resuming += go.length
    for (const e of go) e.resolve()
    if (this.line.length === 0) return this.checkLine()
    if (!this.lineAwaitsReady && this.client.status !== 'ready') {
      this.lineAwaitsReady = true
      this.ready().then(() => {
        this.lineAwaitsReady = false
        this.checkLine()
      }, () => {})
    }
    if (!this.lineTimer) {
      this.lineTimer = setTimeout(() => {
        this.lineTimer = undefined
        this.checkLine()
      }, 200)
      this.lineTimer.unref()
    }
  }

  /**
   * The shard's data-loss marker as last seen: it changes when the shard comes back without its data.
   * Streams bound to a queue note it, to tell a queue lost with the shard's data from a deleted one.
   */
  get dataMarker (): string | undefined {
    return this.health.seen
  }

  /** Looks at the data-loss marker now (reporting a loss, once, as `dataloss`) and resolves with it. */
  async currentDataMarker (): Promise<string | undefined> {
    return await this.health.current()
  }

  /** `host:port` of the server the command connection is connected to now, when known (not for a Cluster). */
  get address (): string | undefined {
    const stream = (this.client as unknown as { stream?: { remoteAddress?: string, remotePort?: number } }).stream
    return stream?.remoteAddress && stream.remotePort ? `${stream.remoteAddress}:${stream.remotePort}` : undefined
  }

  /** Whether close() was called. */
  get closed (): boolean {
    return this.closing !== undefined
  }

  /** Closes its connections; safe to call more than once. */
  close (): Promise<void> {
    if (this.closing) return this.closing
    this.closing = (async () => {
      const quit = async (c: Client | undefined): Promise<void> => {
        if (!c) return
        // A socket torn down mid-handshake (TLS) may still report an error after ioredis stopped
        // listening; it must not become an uncaught exception.
        const stream = (c as unknown as { stream?: NodeJS.EventEmitter }).stream
        stream?.on?.('error', (err: Error) => debug('%s closing: %s', this.id, err.message))
        if (c.status === 'ready') {
          await Promise.race([c.quit().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
        }
        c.disconnect()
      }
      this.subscriptions.close()
      await Promise.all([quit(this.subscriptions.client), quit(this.client), quit(this.side)])
      // The connection's own 'close' may come later or not at all once it was disconnected: say it here.
      if (this.online) {
        this.online = false
        debug('%s offline (closed)', this.id)
        this.emit('offline')
      }
    })()
    // Calls waiting for the shard fail now (BusClosedError) instead of at their deadline.
    this.checkLine()
    return this.closing
  }
}
