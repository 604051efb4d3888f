import { Readable } from 'readable-stream'
import createDebug from 'debug'
import type { PersistedObject } from './persisted-object.js'
import type { Shard } from '../router/shard.js'
import { Wakeups } from '../queue/wakeups.js'
import { checkInt } from '../names.js'
import { closeByBus, isReplyError, sleep } from '../util.js'
import { objectRead } from '../scripts/index.js'
import { decodeFields } from './fields.js'
import { DEFAULT_OBJECT_OPTIONS, type ChangeStreamOptions, type ObjectChange } from './object-options.js'

const debug = createDebug('busmq:object')

type Callback = (err?: Error | null) => void

/** The typed face of a change stream (declaration merging: types only), as for queue readers. */
export interface ObjectChangeStream<T = Record<string, any>> {
  [Symbol.asyncIterator] (): AsyncIteratorObject<ObjectChange<T>, any, any>
  on (event: 'data', listener: (chunk: ObjectChange<T>) => void): this
  on (event: 'close' | 'end' | 'pause' | 'readable' | 'ready' | 'resume', listener: () => void): this
  on (event: 'error', listener: (err: Error) => void): this
  on (event: string | symbol, listener: (...args: any[]) => void): this
  once (event: 'data', listener: (chunk: ObjectChange<T>) => void): this
  once (event: 'close' | 'end' | 'pause' | 'readable' | 'ready' | 'resume', listener: () => void): this
  once (event: 'error', listener: (err: Error) => void): this
  once (event: string | symbol, listener: (...args: any[]) => void): this
}

/**
 * The saves of one persisted object, as a Readable of {@link ObjectChange}s: every version after the
 * one it started at, in order, whichever process saved it.
 *
 * Pub/sub alone would lose versions (a save published while the stream was not subscribed, or two
 * saves between two looks), so every save also appends to the object's change log (a capped Redis
 * stream in the object's hash slot), and this stream reads that log from the version it has, like a
 * replay reader: a save's pub/sub message only wakes it (and it re-checks every `pollInterval`). When
 * the log no longer holds the next version it needs, it gets the whole object in one `resync` change.
 * Emits `'ready'` once it knows the version it starts after.
 */
export class ObjectChangeStream<T = Record<string, any>> extends Readable {
  readonly object: PersistedObject<any>
  private readonly batch: number
  /** The last version emitted (or started after); -1 until known. */
  private after: number
  /** The incarnation of the object `after` belongs to ('' when unknown or the object does not exist). */
  private incarnation: string
  private shard!: Shard
  private wakeups!: Wakeups
  private endWakeups?: () => void
  private running = false
  private wanted = false
  private readonly abort = new AbortController()
  private readonly untrack: () => void

  constructor (object: PersistedObject<any>, options: ChangeStreamOptions) {
    const hwm = checkInt(options.highWaterMark ?? DEFAULT_OBJECT_OPTIONS.changeStreamHighWaterMark, 'highWaterMark', 1, 100_000)
    const after = options.after === undefined ? undefined : checkInt(options.after, 'after', 0)
    super({ objectMode: true, highWaterMark: hwm })
    this.object = object
    this.batch = hwm
    if (after !== undefined) {
      this.after = after
      this.incarnation = ''
    } else if (object.seen) {
      this.after = object.version
      this.incarnation = object.incarnation
    } else {
      this.after = -1
      this.incarnation = ''
    }
    this.untrack = object.bus.track(this)
  }

  /** The version of the last change emitted (or the one the stream started after). */
  get version (): number {
    return Math.max(0, this.after)
  }

  _construct (callback: Callback): void {
    (async () => {
      this.shard = await this.object.shard()
      this.wakeups = new Wakeups(this.shard.subscriptions, this.object.keys.wake, this.object.bus.settings.pollInterval)
      this.endWakeups = this.wakeups.use()
      if (this.after < 0) {
        // Start at the version the object has now.
        const reply = await objectRead(this.shard, this.object.keys, { after: -1, count: 1, incarnation: '' })
        this.incarnation = String(reply[1])
        this.after = Number(reply[2])
      }
    })().then(() => {
      callback()
      if (!this.destroyed) process.nextTick(() => this.emit('ready'))
    }, (err: Error) => callback(this.destroyed ? null : err))
  }

  override _read (): void {
    // As in QueueReader: a _read while the loop runs only raises `wanted`, which the loop checks last.
    this.wanted = true
    if (this.running) return
    this.running = true
    this.loop().catch((err: Error) => this.destroy(err))
  }

  private async loop (): Promise<void> {
    const signal = this.abort.signal
    try {
      while (!this.destroyed && this.wanted) {
        const since = this.wakeups.generation('m')
        let reply: unknown[]
        try {
          reply = await objectRead(this.shard, this.object.keys, { after: this.after, count: this.batch, incarnation: this.incarnation })
        } catch (err) {
          if (this.destroyed) return
          if (isReplyError(err)) throw err
          debug('reading the changes of %s failed, retrying: %s', this.object.name, (err as Error).message)
          await sleep(this.object.bus.settings.pollInterval, signal)
          continue
        }
        if (this.destroyed) return
        const changes = this.parse(reply)
        if (changes.length === 0) {
          await this.wakeups.wait('m', since, signal)
          continue
        }
        for (const change of changes) this.wanted = this.push(change)
      }
    } finally {
      this.running = false
    }
  }

  /** The changes in a reply of object-read-2.lua, moving `after` and `incarnation` along. */
  private parse (reply: unknown[]): Array<ObjectChange<T>> {
    const kind = String(reply[0])
    const incarnation = String(reply[1])
    const version = Number(reply[2])
    const what = `object ${this.object.name}`
    const skipped = (field: string): void => this.object.skipped(field)
    if (kind === 'r') {
      const pairs: Array<[string, Buffer]> = []
      for (let i = 3; i < reply.length; i += 2) pairs.push([String(reply[i]), reply[i + 1] as Buffer])
      this.after = version
      this.incarnation = incarnation
      debug('%s: resync at version %d', what, version)
      return [{ version, fields: decodeFields(pairs, this.object.codec, what, skipped) as Partial<T>, deleted: [], resync: true }]
    }
    if (incarnation === '') {
      // The object is gone (deleted or expired): say so once, and wait for it to be created anew.
      if (this.incarnation === '') return []
      this.incarnation = ''
      this.after = 0
      return [{ version: 0, fields: {}, deleted: [], resync: true }]
    }
    this.incarnation = incarnation
    const out: Array<ObjectChange<T>> = []
    for (let i = 3; i < reply.length; i++) {
      const [id, flat] = reply[i] as [Buffer, Buffer[]]
      const entryVersion = Number.parseInt(id.toString(), 10)
      const pairs: Array<[string, Buffer]> = []
      const deleted: string[] = []
      for (let j = 0; j < flat.length; j += 2) {
        const key = flat[j].toString()
        if (key.startsWith('s:')) pairs.push([key.slice(2), flat[j + 1]])
        else if (key.startsWith('d:')) deleted.push(key.slice(2))
      }
      this.after = entryVersion
      out.push({ version: entryVersion, fields: decodeFields(pairs, this.object.codec, what, skipped) as Partial<T>, deleted, resync: false })
    }
    return out
  }

  override _destroy (err: Error | null, callback: (error: Error | null) => void): void {
    this.abort.abort()
    this.untrack()
    this.endWakeups?.()
    callback(err)
  }

  /**
   * @internal Used by `bus.close()`: a consumer that listens for errors sees `ERR_BUSMQ_CLOSED`,
   * otherwise the stream closes quietly.
   */
  async close (): Promise<void> {
    await closeByBus(this)
  }
}
