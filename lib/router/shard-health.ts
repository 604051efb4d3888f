import createDebug from 'debug'
import { RedisVersionError, ShardDataLossError } from '../errors.js'
import { shardMarkerKey } from '../keys.js'
import type { Shard } from './shard.js'

const debug = createDebug('busmq:shard')

/** Oldest Redis BusMQ runs on (LPOP with a count, SET … PX with GET semantics, …). */
export const MIN_REDIS_VERSION: readonly [number, number] = [6, 2]

/**
 * Checks a shard is fit to use, once per `connect()` until one check succeeds, and after every
 * reconnection looks for data loss.
 *
 * A shard that restarts without its data (no persistence, or a wiped replica promoted) would silently
 * lose every queue on it. Each shard holds one marker key; after every reconnection the check verifies
 * that the marker seen before is still there, and reports `ERR_BUSMQ_SHARD_DATA_LOST` if not. (Cluster
 * layout: the marker lives on one node only, so only that node's loss is detected.)
 */
export class ShardHealth {
  private readonly shard: Shard
  private readonly prefix?: string
  private readonly onDataLoss: (err: ShardDataLossError) => void
  private checked?: Promise<void>
  /** Value of the marker key when last seen. */
  private marker?: string
  /** The marker check in progress: concurrent checks share it, so a loss is reported once. */
  private checking?: Promise<void>

  constructor (shard: Shard, prefix: string | undefined, onDataLoss: (err: ShardDataLossError) => void) {
    this.shard = shard
    this.prefix = prefix
    this.onDataLoss = onDataLoss
  }

  /** Resolves once the version and marker checks passed; a failed check runs again on the next call. */
  check (): Promise<void> {
    this.checked ??= this.run().catch((err: unknown) => {
      this.checked = undefined
      throw err
    })
    return this.checked
  }

  /** After a reconnection: look for data loss (when a marker was seen before). */
  recheck (): void {
    if (this.marker === undefined) return
    this.checkMarker().catch((err: Error) => debug('%s marker check failed: %s', this.shard.id, err.message))
  }

  /** The marker's value when last seen: it changes when the shard loses its data. */
  get seen (): string | undefined {
    return this.marker
  }

  /** Looks at the marker now (reporting a loss, once) and resolves with its value. */
  async current (): Promise<string | undefined> {
    await this.checkMarker()
    return this.marker
  }

  private async run (): Promise<void> {
    await this.checkVersion()
    await this.checkMarker()
  }

  private checkMarker (): Promise<void> {
    this.checking ??= this.readMarker().finally(() => { this.checking = undefined })
    return this.checking
  }

  private async checkVersion (): Promise<void> {
    // HELLO (not INFO, which ACLs usually deny as @dangerous) tells the server version.
    let version: string | undefined
    try {
      const hello = await this.shard.run((c) => c.call('HELLO')) as unknown[]
      const i = hello.indexOf('version')
      if (i >= 0) version = String(hello[i + 1])
    } catch {
      const info = await this.shard.run((c) => c.info('server')).catch(() => '')
      version = /redis_version:([\d.]+)/.exec(info)?.[1]
    }
    const m = /^(\d+)\.(\d+)/.exec(version ?? '')
    const [major, minor] = MIN_REDIS_VERSION
    if (m && (Number(m[1]) < major || (Number(m[1]) === major && Number(m[2]) < minor))) {
      throw new RedisVersionError(`shard ${this.shard.id} runs Redis ${m[1]}.${m[2]}; BusMQ needs Redis >= ${major}.${minor}`)
    }
  }

  private async readMarker (): Promise<void> {
    if (!this.prefix) return
    const key = shardMarkerKey(this.prefix)
    const fresh = `${Date.now()}-${Math.random().toString(36).slice(2)}`
    // Errors (NOPERM from an ACL that denies the prefix, …) are coded by Shard.run like any command's.
    const seen = await this.shard.run(async (c) => {
      const replies = await c.multi().set(key, fresh, 'NX').get(key).exec()
      return String(replies?.[1]?.[1])
    })
    if (this.marker !== undefined && seen !== this.marker) {
      const err = new ShardDataLossError(`shard ${this.shard.id} came back without its data (marker ${this.marker} is gone): ` +
        'messages stored on it were lost')
      debug('%s', err.message)
      this.onDataLoss(err)
    }
    this.marker = seen
  }
}
