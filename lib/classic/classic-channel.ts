import { EventEmitter, once } from 'node:events'
import type { Channel } from '../channel/channel.js'
import type { Queue } from '../queue/queue.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import { ClassicUsageError, PeerDestroyedError } from '../errors.js'
import { validateName } from '../names.js'
import type { ClassicBus } from './classic-bus.js'
import { ackUpTo, isClosedError, promisifyMethods, settle, toPayload, toText, type Callback, classicName } from './util.js'

/** Options of `channel.connect(options)` / `listen(options)`. */
export interface ClassicChannelOptions {
  /** Each message must be acked (`ack(id)`); what was not is delivered again to the next peer with these roles. @default false */
  reliable?: boolean
  /**
   * Reliable: the last id acked before (as a queue's `consume({ reliable, last })`); messages up to it
   * are acked as they arrive, not delivered. @default 0
   */
  last?: number
  /** Seconds the channel's queues live on with neither peer attached (0 or none: the default). @default 30 */
  ttl?: number
}

/**
 * BusMQ 3.1's channel over a native {@link Channel}: two peers with opposite roles, messages as strings.
 * Events: `connect`, `remote:connect`, `message` (message; reliable: message, id), `remote:disconnect`,
 * `disconnect`, `end` (the peer ended the channel), `error` (err).
 */
export class ClassicChannel extends EventEmitter {
  readonly type = 'channel'
  readonly name: string
  readonly bus: ClassicBus
  local: string
  remote: string
  private ch?: Channel
  /** The queue this side sends to (sends carry their ids, which a channel's write() does not give). */
  private out?: Queue
  private reliable = false
  private readonly held = new Map<number, ReliableMessage<Buffer>>()
  /** Sends on their way: the end marker and a detach go after them. */
  private readonly sending = new Set<Promise<unknown>>()
  private ending = false

  /** @internal Use `bus.channel(name, local, remote)`. */
  constructor (bus: ClassicBus, name: string, local = 'local', remote = 'remote') {
    super()
    this.bus = bus
    this.name = name
    this.local = classicName(local, 'channel local role')
    this.remote = classicName(remote, 'channel remote role')
  }

  /** Connects as `local` (reading) and `remote` (writing): `connect` once attached. Connected already: `error`. */
  connect (options: ClassicChannelOptions = {}): void {
    if (this.ch) {
      this.emit('error', new ClassicUsageError('cannot connect: channel is already bound'))
      return
    }
    this.reliable = options.reliable === true
    const last = this.reliable ? options.last ?? 0 : 0
    this.ending = false
    // 3.1 takes a ttl of 0 as the default (30 s), as a queue's attach() does.
    const ttl = options.ttl === undefined || options.ttl === 0 ? undefined : Math.round(options.ttl * 1000)
    const native = this.bus.native
    const ch = native.channel(this.name, {
      local: this.local, remote: this.remote, reliable: this.reliable, ack: this.reliable ? 'manual' : 'auto', ttl
    })
    this.ch = ch
    this.out = native.queue(`${this.name}:${this.remote}`, ttl === undefined ? {} : { ttl })
    // 3.1 announces a peer with a message this side reads once connected: remote:connect never comes
    // before connect (the native channel may see the peer's presence first).
    let connected = false
    let peerFirst = false
    ch.on('connect', () => {
      connected = true
      this.emit('connect')
      if (peerFirst && ch.remoteConnected) this.emit('remote:connect')
    })
    ch.on('remote:connect', () => {
      if (connected) this.emit('remote:connect')
      else peerFirst = true
    })
    ch.on('remote:disconnect', () => { if (connected && !this.ending) this.emit('remote:disconnect') })
    ch.on('data', (chunk: Buffer | ReliableMessage<Buffer>) => {
      if (this.ch !== ch) return
      if (Buffer.isBuffer(chunk)) {
        this.emit('message', toText(chunk))
        return
      }
      if (chunk.id <= last) {
        // Acked before this connect (`last`): discarded.
        chunk.ack().catch(() => {})
        return
      }
      this.held.set(chunk.id, chunk)
      this.emit('message', toText(chunk.data), chunk.id)
    })
    // The peer ended the channel: this side leaves too (3.1: `disconnect`, then `end`).
    ch.on('end', () => {
      if (this.ch !== ch || this.ending) return
      this.ending = true
      this.leave(ch, false).then(() => this.emit('end'), () => {})
    })
    ch.on('error', (err: Error) => {
      if (isClosedError(err)) return
      // The peer's bus closed under it (3.1 peers never learn that): it is gone; this side leaves.
      if (err instanceof PeerDestroyedError) {
        if (connected && !this.ending) this.emit('remote:disconnect')
        this.forget(ch)
        this.emit('disconnect')
        return
      }
      this.emit('error', err)
    })
    this.bus.open.add(this)
  }

  private forget (ch: Channel): void {
    if (this.ch !== ch) return
    this.ch = undefined
    this.out = undefined
    this.held.clear()
    this.bus.open.delete(this)
  }

  /** @internal `bus.disconnect()`: detaches (the conversation goes on with a later peer, as in 3.1). */
  async close (): Promise<void> {
    if (this.ch && !this.ending) await this.leave(this.ch, false)
  }

  /** Alias of `connect()`. */
  attach (options?: ClassicChannelOptions): void {
    this.connect(options)
  }

  /** Connects with the roles swapped (the peer of one that called `connect()`). */
  listen (options?: ClassicChannelOptions): void {
    const remote = this.remote
    this.remote = this.local
    this.local = remote
    this.connect(options)
  }

  /** Sends a message to the peer (who may connect later); `cb(err, id)`. Ignored when not connected. */
  send (message: unknown, cb?: Callback<number | null>): void {
    if (!this.out || this.ending) return
    const p = this.out.push(toPayload(message))
    this.sending.add(p)
    const forget = (): void => { this.sending.delete(p) }
    p.then(forget, forget)
    settle(p, cb, this)
  }

  /** Sends a message to role `endpoint` of the channel without connecting; `cb(err, id)`. */
  sendTo (endpoint: string, message: unknown, cb?: Callback<number | null>): void {
    const q = this.bus.native.queue(validateName(`${this.name}:${endpoint}`, 'channel name and role'))
    settle(q.push(toPayload(message)), cb, this)
  }

  /** Leaves the channel open for a later peer with these roles: the peer sees `remote:disconnect`; `disconnect` follows. */
  disconnect (): void {
    if (!this.ch || this.ending) return
    this.leave(this.ch, false).catch(() => {})
  }

  /** Alias of `disconnect()`. */
  detach (): void {
    this.disconnect()
  }

  /**
   * Ends the channel for both peers: after what this side sent, the peer gets `disconnect` then `end`;
   * this side gets `disconnect`.
   */
  end (): void {
    if (!this.ch || this.ending) return
    this.ending = true
    this.leave(this.ch, true).catch(() => {})
  }

  /** Sends what is on its way, then (`end`) the end marker, then detaches: `disconnect`. */
  private async leave (ch: Channel, end: boolean): Promise<void> {
    await Promise.allSettled([...this.sending])
    try {
      if (end) {
        const finished = once(ch, 'finish')
        ch.end()
        await finished
      }
      // A federated channel (bus.federate()) has no detach: closing it releases the server's side.
      if (this.bus.native.federationOnly) ch.destroy()
      else await ch.detach()
    } catch (err) {
      if (!isClosedError(err)) this.emit('error', err)
    }
    this.forget(ch)
    this.emit('disconnect')
  }

  /** True while connected; also `cb(attached)`. */
  isAttached (cb?: (attached: boolean) => void): boolean {
    const attached = this.ch !== undefined && !this.ending
    cb?.(attached)
    return attached
  }

  /** Reliable: acks message `id` and every message before it. Ignored otherwise. */
  ack (id: number, cb?: Callback<void>): void {
    if (!this.reliable) {
      cb?.(null)
      return
    }
    settle(ackUpTo(this.held, id), cb, this)
  }

  /** Makes send, sendTo and ack return promises; returns the channel. */
  promisify (): this {
    return promisifyMethods(this, ['send', 'sendTo', 'ack'])
  }
}
