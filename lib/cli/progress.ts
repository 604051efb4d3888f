/** How often the progress line is redrawn, in ms. */
export const PROGRESS_INTERVAL = 500

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

/** Bytes in decimal units (1 MB = 1,000,000 bytes), as `dd` and `pv -b` do by default. */
export function formatBytes (n: number): string {
  if (n < 1000) return `${integer.format(n)} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let v = n
  let i = -1
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000
    i++
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`
}

export function formatCount (n: number): string {
  return integer.format(n)
}

/** "1 message", "1,234 messages". */
export function formatMessages (n: number): string {
  return `${formatCount(n)} message${n === 1 ? '' : 's'}`
}

/**
 * A one-line progress meter on stderr: totals and the rates of the last interval, redrawn in place every
 * 500 ms, and a summary line (average rates) when it stops. It draws only when enabled, which the
 * commands do when stderr is a terminal and --quiet is not given.
 */
export class Progress {
  messages = 0
  bytes = 0
  private readonly label: string
  private readonly enabled: boolean
  private readonly extra?: () => string
  private timer?: NodeJS.Timeout
  private started = 0
  private last = { at: 0, messages: 0, bytes: 0 }
  private drawn = false

  constructor (label: string, enabled: boolean, extra?: () => string) {
    this.label = label
    this.enabled = enabled
    this.extra = extra
  }

  /** True when progress should be drawn: stderr is a terminal and --quiet was not given. */
  static wanted (quiet: boolean): boolean {
    return !quiet && process.stderr.isTTY === true
  }

  add (messages: number, bytes: number): void {
    this.messages += messages
    this.bytes += bytes
  }

  start (): void {
    this.started = Date.now()
    this.last = { at: this.started, messages: 0, bytes: 0 }
    if (!this.enabled) return
    this.timer = setInterval(() => this.draw(), PROGRESS_INTERVAL)
    this.timer.unref()
  }

  private line (seconds: number, messages: number, bytes: number): string {
    const rate = seconds > 0
      ? `${formatCount(messages / seconds)} msgs/s  ${formatBytes(bytes / seconds)}/s`
      : '-'
    const extra = this.extra ? `  ${this.extra()}` : ''
    return `${this.label}: ${formatCount(this.messages)} msgs  ${formatBytes(this.bytes)}  ·  ${rate}${extra}`
  }

  private draw (): void {
    const now = Date.now()
    const text = this.line((now - this.last.at) / 1000, this.messages - this.last.messages, this.bytes - this.last.bytes)
    this.last = { at: now, messages: this.messages, bytes: this.bytes }
    process.stderr.write(`\r\x1b[K${text}`)
    this.drawn = true
  }

  /** Stops redrawing and, when enabled, leaves a summary line with the average rates. */
  stop (): void {
    if (this.timer === undefined) return
    clearInterval(this.timer)
    this.timer = undefined
    const seconds = (Date.now() - this.started) / 1000
    const text = this.line(seconds, this.messages, this.bytes)
    process.stderr.write(`${this.drawn ? '\r\x1b[K' : ''}${text} (average over ${seconds.toFixed(1)} s)\n`)
  }
}
