/**
 * What every benchmark job shares: the configuration, payloads that carry a sequence number and an
 * integrity check, the exactly-once/order checker, and the meters (Node CPU, Redis CPU, peak RSS).
 */
import { performance } from 'node:perf_hooks'
import type { Redis } from 'ioredis'

export interface BenchConfig {
  quick: boolean
  /** Messages per round for raw ioredis and this project (32 B workloads). */
  n: number
  /** Messages per round for 1 KiB workloads. */
  nLarge: number
  /** Messages per round for the reliable workload (delivery + ack is slower). */
  nReliable: number
  /** Messages per round for the peers BusMQ 3.1 and bee-queue. */
  peerN: number
  /** Messages per round for BullMQ (the slowest: a few seconds per round). */
  bullN: number
  rounds: number
  /**
   * Rounds of the raw ioredis contenders: a raw round takes a fraction of a second, so one scheduling
   * hiccup of a shared machine swings it; more rounds keep its median (the ratios' denominator) steady.
   */
  rawRounds: number
  /** Queues of the many-queues workload. */
  queues: number
  /** Bytes a channel moves per round. */
  channelBytes: number
  /** Seconds of each latency run (after a warm-up of a tenth of it, at least 0.2 s). */
  latencySeconds: number
  /** Queues of the idle-queues check. */
  idleQueues: number
  /** Idle TTL (ms) of the idle-queues check. */
  idleTtl: number
  /** Queues attached at once in the attached-queues check, and their TTL (ms). */
  attachedQueues: number
  attachedTtl: number
  /** Requests per round of the services workload (this project), of BusMQ 3.1's, and how many in flight. */
  svcN: number
  svcPeerN: number
  svcInFlight: number
  peers: boolean
}

function envInt (name: string, fallback: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(v)}`)
  return n
}

export function loadConfig (quick: boolean, peers: boolean): BenchConfig {
  const n = envInt('BENCH_N', quick ? 2000 : 200_000)
  const rounds = envInt('BENCH_ROUNDS', quick ? 1 : 5)
  return {
    quick,
    n,
    nLarge: envInt('BENCH_N_LARGE', quick ? 1000 : Math.max(1, Math.round(n / 2))),
    nReliable: envInt('BENCH_N_RELIABLE', quick ? 1000 : Math.max(1, Math.round(n / 4))),
    peerN: envInt('BENCH_PEER_N', quick ? 300 : 20_000),
    bullN: envInt('BENCH_BULLMQ_N', quick ? 300 : 5000),
    rounds,
    rawRounds: envInt('BENCH_RAW_ROUNDS', quick ? 1 : 2 * rounds + 1),
    queues: envInt('BENCH_QUEUES', quick ? 10 : 100),
    channelBytes: envInt('BENCH_CHANNEL_MB', quick ? 4 : 256) * 1024 * 1024,
    latencySeconds: envInt('BENCH_LATENCY_SECONDS', quick ? 0.5 : 5),
    idleQueues: envInt('BENCH_IDLE_QUEUES', quick ? 2000 : 100_000),
    idleTtl: envInt('BENCH_IDLE_TTL', 2000),
    attachedQueues: envInt('BENCH_ATTACHED_QUEUES', quick ? 2000 : 100_000),
    attachedTtl: envInt('BENCH_ATTACHED_TTL', 3000),
    svcN: envInt('BENCH_SVC_N', quick ? 1000 : 50_000),
    svcPeerN: envInt('BENCH_SVC_PEER_N', quick ? 300 : 10_000),
    svcInFlight: envInt('BENCH_SVC_IN_FLIGHT', 1000),
    peers
  }
}

// ---------------------------------------------------------------------------------------------------
// Payloads. Bytes 0-3: sequence number (UInt32BE); 4-7: sequence XOR a constant; 8-15: a timestamp
// (latency runs) or filler; then filler up to the size, the last byte a marker. So a reader can check
// count, order, duplicates and that the bytes arrived intact without comparing whole payloads.

const MAGIC = 0x5a17c0de
const FILL = 0x78 // 'x'
const LAST = 0x21 // '!'

export function bytePayload (seq: number, size: number, ts = 0): Buffer {
  const b = Buffer.allocUnsafe(size)
  b.writeUInt32BE(seq, 0)
  b.writeUInt32BE((seq ^ MAGIC) >>> 0, 4)
  if (ts !== 0) b.writeDoubleBE(ts, 8)
  else b.fill(FILL, 8, 16)
  b.fill(FILL, 16, size - 1)
  b[size - 1] = LAST
  return b
}

/** The sequence number of a byte payload, or a string saying why it is not intact. */
export function byteSeq (b: Buffer, size: number): number | string {
  if (!Buffer.isBuffer(b)) return `not a Buffer (${typeof b})`
  if (b.length !== size) return `payload of ${b.length} bytes, expected ${size}`
  const seq = b.readUInt32BE(0)
  if (b.readUInt32BE(4) !== ((seq ^ MAGIC) >>> 0) || b[size - 1] !== LAST || b[size - 2] !== FILL) {
    return `corrupt payload (seq field ${seq})`
  }
  return seq
}

/** Object payload whose JSON is exactly `size` bytes: `{"s":<seq>,"p":"xxx…"}`. */
export function objectPayload (seq: number, size: number): { s: number, p: string } {
  const bare = 13 + String(seq).length // {"s":N,"p":""}
  return { s: seq, p: 'x'.repeat(Math.max(0, size - bare)) }
}

export function objectSeq (o: any, size: number): number | string {
  if (o === null || typeof o !== 'object' || typeof o.s !== 'number' || typeof o.p !== 'string') {
    return `not a payload object: ${JSON.stringify(o)?.slice(0, 60)}`
  }
  const expect = Math.max(0, size - 13 - String(o.s).length)
  if (o.p.length !== expect) return `corrupt object payload (seq ${o.s as number})`
  return o.s
}

/** String payload of exactly `size` characters: 10-digit sequence, ':', filler (peers push strings). */
export function stringPayload (seq: number, size: number): string {
  const head = String(seq).padStart(10, '0') + ':'
  return head + 'x'.repeat(size - head.length)
}

export function stringSeq (s: any, size: number): number | string {
  if (typeof s !== 'string') return `not a string (${typeof s})`
  if (s.length !== size || s[10] !== ':' || s[size - 1] !== 'x') return `corrupt string payload (${s.slice(0, 12)}…)`
  return Number(s.slice(0, 10))
}

// ---------------------------------------------------------------------------------------------------

/**
 * Checks that messages 0..n-1 arrive exactly once (count + bitmap of sequence numbers + payload
 * integrity), and in order when `ordered`. Records the first problem only.
 */
export class Checker {
  readonly n: number
  readonly ordered: boolean
  count = 0
  private next = 0
  private readonly seen: Uint8Array
  problem?: string

  constructor (n: number, ordered: boolean) {
    this.n = n
    this.ordered = ordered
    this.seen = new Uint8Array(n)
  }

  /** Accepts a sequence number or an integrity problem (string). Returns false once a problem is known. */
  accept (seq: number | string): boolean {
    this.count++
    if (this.problem !== undefined) return false
    if (typeof seq === 'string') {
      this.problem = seq
      return false
    }
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.n) {
      this.problem = `unexpected sequence number ${seq}`
    } else if (this.seen[seq] === 1) {
      this.problem = `message ${seq} delivered twice`
    } else if (this.ordered && seq !== this.next) {
      this.problem = `out of order: got ${seq}, expected ${this.next}`
    }
    if (this.problem !== undefined) return false
    this.seen[seq] = 1
    this.next = seq + 1
    return true
  }

  get done (): boolean {
    return this.count >= this.n || this.problem !== undefined
  }

  /** Undefined when all n arrived exactly once (and in order), else the reason. */
  verdict (): string | undefined {
    if (this.problem !== undefined) return this.problem
    if (this.count !== this.n) return `received ${this.count} of ${this.n} messages`
    return undefined
  }
}

/** Throws when a checker reports a problem. */
export function assertChecked (c: Checker, what: string): void {
  const v = c.verdict()
  if (v !== undefined) throw new CheckError(`${what}: ${v}`)
}

/** A failed correctness check (as opposed to a crash): the job reports FAILED with the reason. */
export class CheckError extends Error {
  override name = 'CheckError'
}

// ---------------------------------------------------------------------------------------------------
// Meters

/** Samples process RSS every 20 ms; `peak` is the highest seen since start or the last reset. */
export class RssMeter {
  peak = 0
  private timer?: NodeJS.Timeout
  start (): void {
    this.peak = process.memoryUsage.rss()
    this.timer = setInterval(() => { this.sample() }, 20)
    this.timer.unref()
  }

  sample (): void {
    const r = process.memoryUsage.rss()
    if (r > this.peak) this.peak = r
  }

  stop (): number {
    this.sample()
    clearInterval(this.timer)
    return this.peak
  }
}

export async function redisCpuSeconds (admin: Redis): Promise<number> {
  const info = await admin.info('cpu')
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0)
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0)
  return sys + user
}

export async function redisUsedMemory (admin: Redis): Promise<number> {
  const info = await admin.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0)
}

/** Node CPU (user + system) and Redis CPU between start() and stop(), in µs per message. */
export class CpuMeter {
  private node0?: NodeJS.CpuUsage
  private redis0 = 0
  constructor (private readonly admin: Redis) {}
  async start (): Promise<void> {
    this.redis0 = await redisCpuSeconds(this.admin)
    this.node0 = process.cpuUsage()
  }

  async stop (messages: number): Promise<{ nodeUs: number, redisUs: number }> {
    const d = process.cpuUsage(this.node0)
    const redis = await redisCpuSeconds(this.admin) - this.redis0
    return { nodeUs: (d.user + d.system) / messages, redisUs: redis * 1e6 / messages }
  }
}

export function now (): number {
  return performance.now()
}

/** msgs/s from a count and a start time (ms, performance.now()). */
export function rate (count: number, since: number): number {
  const s = (performance.now() - since) / 1000
  return count / Math.max(s, 1e-9)
}

export function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** p-th percentile (0-100) of sorted samples, nearest rank. */
export function percentile (sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))
  return sorted[i]
}

/** Runs `fn` with a timeout; a run that hangs becomes a clear error instead of a stuck benchmark. */
export async function withTimeout<T> (ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([fn(), new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new CheckError(`${what}: did not finish within ${Math.round(ms / 1000)} s`)), ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}
