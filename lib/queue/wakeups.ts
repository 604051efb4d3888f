import createDebug from 'debug'
import type { SubscriptionHub } from '../router/subscriptions.js'
import { sleep } from '../util.js'

const debug = createDebug('busmq:wakeups')

/** 'm': messages arrived; 'r': room was freed in a bounded queue. ('d', the queue was deleted, wakes both.) */
export type WakeKind = 'm' | 'r'

/**
 * Wake-ups of one queue handle: a reader that found the queue empty (or a producer that found it full)
 * sleeps until the queue's pub/sub channel says there is something to do, or `pollInterval` passes
 * (covering a lost wake-up).
 *
 * The channel is subscribed only once someone actually has to wait, and stays subscribed while a stream
 * that may wait again is open ({@link use}); an attached queue that nobody waits on costs Redis no
 * subscription. The first wait subscribes and returns at once, so the caller looks again: a wake-up
 * published between its failed look and the subscription would otherwise be missed.
 */
export class Wakeups {
  private readonly hub: SubscriptionHub
  private readonly channel: string
  private readonly pollInterval: number
  private readonly gen: Record<WakeKind, number> = { m: 0, r: 0 }
  private readonly waiters = new Set<{ kind: WakeKind, wake: () => void }>()
  private subscribed?: Promise<void>
  /** Handler of the current subscription (a new one each time, so a late unsubscribe never hits a later one). */
  private handler?: (message: string) => void
  private users = 0
  private readonly onMessage = (message: string): void => {
    const all = message === 'reconnect' || message === 'd'
    if (message === 'm' || all) this.bump('m')
    if (message === 'r' || all) this.bump('r')
  }

  constructor (hub: SubscriptionHub, channel: string, pollInterval: number) {
    this.hub = hub
    this.channel = channel
    this.pollInterval = pollInterval
  }

  /** Whether the channel is subscribed now. */
  get active (): boolean {
    return this.subscribed !== undefined
  }

  /** A stream that may wait registers; the returned function ends its interest (the last one unsubscribes). */
  use (): () => void {
    this.users++
    let done = false
    return () => {
      if (done) return
      done = true
      this.users--
      if (this.users === 0) this.drop()
    }
  }

  /** Current generation of `kind`; read it before a Redis call that may find nothing. */
  generation (kind: WakeKind): number {
    return this.gen[kind]
  }

  /**
   * Waits until a wake-up of `kind` arrives after generation `since`, the poll interval passes, or
   * `signal` aborts. Not subscribed yet: subscribes and returns, so the caller looks again.
   */
  async wait (kind: WakeKind, since: number, signal?: AbortSignal): Promise<void> {
    if (this.gen[kind] !== since || signal?.aborted) return
    if (!this.subscribed) {
      const handler = (message: string): void => this.onMessage(message)
      this.handler = handler
      const subscribing = this.hub.subscribe(this.channel, handler)
      this.subscribed = subscribing
      subscribing.then(() => {
        // Whoever looked before the subscription was active (a reader that found the queue empty while
        // a producer of the same handle was subscribing) may have missed the wake-up of that moment: it
        // looks again. A look that starts from now on cannot miss one.
        this.bump('m')
        this.bump('r')
      }, (err: Error) => {
        if (this.subscribed === subscribing) {
          this.subscribed = undefined
          this.handler = undefined
        }
        debug('subscribing to %s failed: %s', this.channel, err.message)
      })
      // Never longer than a poll: a subscriber connection that does not come must not hold anyone up.
      await Promise.race([subscribing.catch(() => sleep(this.pollInterval, signal)), sleep(this.pollInterval, signal)])
      return
    }
    // A plain timer and resolver, not an AbortController: a wake-up is on the path of every message to a
    // waiting reader, and aborting a controller builds a DOMException (with its stack) each time.
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.waiters.delete(w)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const w = { kind, wake: done }
      const timer = setTimeout(done, this.pollInterval)
      timer.unref()
      signal?.addEventListener('abort', done, { once: true })
      this.waiters.add(w)
    })
  }

  /** Wakes everything waiting (closing). */
  wakeAll (): void {
    for (const w of this.waiters) w.wake()
  }

  private bump (kind: WakeKind): void {
    this.gen[kind]++
    for (const w of this.waiters) if (w.kind === kind) w.wake()
  }

  private drop (): void {
    if (!this.subscribed) return
    const was = this.subscribed
    const handler = this.handler!
    this.subscribed = undefined
    this.handler = undefined
    was.then(() => this.hub.unsubscribe(this.channel, handler), () => {})
      .catch((err: Error) => debug('unsubscribing from %s failed: %s', this.channel, err.message))
  }

  /** Ends every interest (the handle closes with the bus). */
  close (): void {
    this.wakeAll()
    this.users = 0
    this.drop()
  }
}
