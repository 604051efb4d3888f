import createDebug from 'debug'
import type { Shard } from '../router/shard.js'

const debug = createDebug('busmq:service')

/** How often the offset to a shard's clock is measured again (in the background; callers use the last). */
const REFRESH_MS = 60_000

interface Clock {
  /** Shard time minus local time, ms. */
  offset: number
  measuredAt: number
  measuring?: Promise<number>
}

const clocks = new WeakMap<Shard, Clock>()

async function measure (shard: Shard, clock: Clock): Promise<number> {
  const before = Date.now()
  const [sec, usec] = await shard.run((c) => c.time())
  const after = Date.now()
  // The shard read its clock somewhere in the round trip: the middle is off by at most half of it.
  clock.offset = Number(sec) * 1000 + Number(usec) / 1000 - (before + after) / 2
  clock.measuredAt = after
  debug('clock of %s is %d ms ahead of this one (round trip %d ms)', shard.id, Math.round(clock.offset), after - before)
  return clock.offset
}

/**
 * Service deadlines are on the clock of the service's shard, so that the clocks of the machines that
 * request and serve never have to agree: each process measures how far the shard's clock is from its
 * own (Redis `TIME`, to within half a round trip) and converts. Resolves with shard time minus local
 * time in ms; the first call per shard waits for a measurement, later ones use the last (refreshed in
 * the background every minute).
 */
export async function clockOffset (shard: Shard): Promise<number> {
  let clock = clocks.get(shard)
  if (!clock) {
    clock = { offset: 0, measuredAt: 0 }
    clocks.set(shard, clock)
  }
  const c = clock
  if (c.measuredAt === 0) {
    c.measuring ??= measure(shard, c).finally(() => { c.measuring = undefined })
    return await c.measuring
  }
  if (Date.now() - c.measuredAt > REFRESH_MS && !c.measuring) {
    c.measuring = measure(shard, c).catch((err: Error) => {
      debug('measuring the clock of %s failed: %s', shard.id, err.message)
      return c.offset
    }).finally(() => { c.measuring = undefined })
  }
  return c.offset
}

/**
 * The last measured offset of a shard's clock, at once (starting a measurement in the background when
 * it is older than a minute); undefined before the first measurement.
 */
export function knownClockOffset (shard: Shard): number | undefined {
  const c = clocks.get(shard)
  if (!c || c.measuredAt === 0) return undefined
  if (Date.now() - c.measuredAt > REFRESH_MS && !c.measuring) clockOffset(shard).catch(() => {})
  return c.offset
}
