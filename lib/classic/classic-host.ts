import type { Bus } from '../bus.js'

/**
 * What a classic queue, channel, pubsub or persistable needs of its bus: a {@link ClassicBus} in Node, the
 * bus of `busmq(url, secret)` in a browser (whose native handles are the federation client's).
 */
export interface ClassicHost {
  /** The native factories (a federation-only bus's, `federationOnly`, in a browser). */
  readonly native: Pick<Bus, 'queue' | 'channel' | 'pubsub' | 'object'> & { readonly federationOnly: boolean }
  /** Connected channels, detached by a disconnect. */
  readonly open: Set<{ close: () => Promise<void> }>
  /** The configured federation URL the native `find()` answered with. */
  federationUrl: (url: string) => string
}
