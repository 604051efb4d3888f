import { Buffer } from 'buffer'
import type { ClientConnection } from './client-connection.js'
import { FrameType, cost, creditPayload, dataFrame, encodeFrame, jsonFrame, MESSAGE_OVERHEAD, type WireMessage } from './frame.js'
import { FederationError } from '../errors.js'

/** The ACK tag that says the server finished the stream's writing side (see server-stream.ts). */
const FINISHED_TAG = Number.MAX_SAFE_INTEGER
const BATCH_MESSAGES = 1000
const BATCH_BYTES = 512 * 1024

/** What a link tells the stream it carries. */
export interface LinkOwner {
  /** Messages from the server. */
  onData: (messages: WireMessage[]) => void
  /** The server's side ended (END). */
  onEnd: () => void
  /** The stream failed (RESET, or the client gave up). */
  onFail: (err: Error) => void
  /** Something happened to the server's stream (a channel's peer came or went). */
  onEvent?: (event: Record<string, unknown>) => void
}

let sessions = 0
function sessionToken (): string {
  const r = new Uint8Array(12)
  globalThis.crypto.getRandomValues(r)
  return `${Buffer.from(r).toString('hex')}.${(++sessions).toString(36)}`
}

/**
 * The client end of one federated stream, whatever its connection: opens it (and opens it again, with
 * its session token, after a reconnection), sends write batches within the server's window and keeps
 * them until acknowledged (to send them again after a reconnection), and grants read credit as its
 * stream's consumer reads.
 */
export class Link {
  readonly session = sessionToken()
  id = 0
  private opened = false
  private everOpened = false
  private openWaiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  private failure?: Error
  /** Write side: batches sent (or waiting for the connection) and not yet acknowledged. */
  private nextTag = 1
  private readonly unacked: Array<{ tag: number, frame: Buffer, bytes: number, messages: number }> = []
  private unackedBytes = 0
  private unackedMessages = 0
  /**
   * Messages that may be sent and not yet acknowledged (besides the server's window of bytes): a sink
   * that takes small messages one by one (a streamed reply) is not sent a window's worth of them at once.
   */
  writeMessages = Infinity
  private creditWaiters: Array<() => void> = []
  /** Waiting for the server to acknowledge every batch up to `tag` (see {@link acknowledged}). */
  private ackWaiters: Array<{ tag: number, resolve: () => void, reject: (err: Error) => void }> = []
  private endSent = false
  private finished = false
  private finishWaiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  /** Read side. */
  received = 0
  private unreportedBytes = 0
  private unreportedMessages = 0
  private remoteEnded = false
  private done = false

  constructor (
    readonly conn: ClientConnection,
    readonly op: string,
    readonly name: string,
    readonly options: Record<string, unknown>,
    readonly owner: LinkOwner,
    readonly window: { bytes: number, messages: number } = { bytes: 4 * 1024 * 1024, messages: 2000 }
  ) {}

  /** Resolves once the server opened the stream. */
  open (): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.opened) return Promise.resolve()
    const p = new Promise<void>((resolve, reject) => this.openWaiters.push({ resolve, reject }))
    if (this.id === 0) this.conn.attach(this)
    return p
  }

  /** @internal The connection is ready: (re)open on it. */
  send (): void {
    if (this.done) return
    this.opened = false
    this.id = this.conn.register(this)
    this.conn.sendFrame(jsonFrame(FrameType.OPEN, this.id, {
      op: this.op,
      name: this.name,
      options: this.options,
      session: this.session,
      window: this.window,
      received: this.received,
      resume: this.everOpened
    }))
  }

  /** @internal The connection dropped. */
  disconnected (): void {
    this.opened = false
  }

  /** @internal OPENED: send again what was not acknowledged, then carry on. */
  onOpened (): void {
    this.opened = true
    this.everOpened = true
    // Credit granted on the old connection is void; the server starts from the window again.
    this.unreportedBytes = 0
    this.unreportedMessages = 0
    for (const u of this.unacked) {
      // Sent again on this connection's stream id.
      u.frame.writeUInt32BE(this.id, 1)
      this.conn.sendFrame(u.frame)
    }
    if (this.endSent && !this.finished) this.conn.sendFrame(encodeFrame(FrameType.END, this.id))
    for (const w of this.openWaiters.splice(0)) w.resolve()
    this.wakeWriters()
  }

  private get writeWindow (): number {
    return this.conn.writeWindow
  }

  private wakeWriters (): void {
    for (const w of this.creditWaiters.splice(0)) w()
  }

  /** Sends messages (in batches within the server's window); resolves once all are sent (not stored). */
  async write (payloads: Buffer[]): Promise<void> {
    for (let i = 0; i < payloads.length;) {
      const max = Math.max(1, this.conn.maxMessageSize - 64 * 1024)
      let j = i
      let bytes = 0
      while (j < payloads.length && j - i < Math.min(BATCH_MESSAGES, this.writeMessages) && (j === i || bytes + payloads[j].length + MESSAGE_OVERHEAD <= Math.min(BATCH_BYTES, max))) {
        bytes += payloads[j++].length + MESSAGE_OVERHEAD
      }
      while (this.unackedBytes >= this.writeWindow || this.unackedMessages >= this.writeMessages || !this.opened) {
        if (this.failure) throw this.failure
        await new Promise<void>((resolve) => this.creditWaiters.push(resolve))
      }
      if (this.failure) throw this.failure
      const tag = this.nextTag++
      const frame = dataFrame(this.id, tag, payloads.slice(i, j).map((payload) => ({ id: 0, payload })))
      this.unacked.push({ tag, frame, bytes: frame.length, messages: j - i })
      this.unackedBytes += frame.length
      this.unackedMessages += j - i
      this.conn.sendFrame(frame)
      i = j
    }
  }

  /**
   * Resolves once the server acknowledged every batch written so far (call it after `write()` resolved):
   * for a sink that acknowledges once it stored a batch, once that is stored.
   */
  acknowledged (): Promise<void> {
    const tag = this.nextTag - 1
    if (this.unacked.length === 0 || this.unacked[0].tag > tag) return Promise.resolve()
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => this.ackWaiters.push({ tag, resolve, reject }))
  }

  private rejectAckWaiters (err: Error): void {
    for (const w of this.ackWaiters.splice(0)) w.reject(err)
  }

  /** Ends the writing side; resolves once the server stored everything and finished. */
  finish (): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.finished) return Promise.resolve()
    const p = new Promise<void>((resolve, reject) => this.finishWaiters.push({ resolve, reject }))
    if (!this.endSent) {
      this.endSent = true
      if (this.opened) this.conn.sendFrame(encodeFrame(FrameType.END, this.id))
    }
    return p
  }

  /** @internal ACK from the server. */
  onAck (tag: number): void {
    if (tag === FINISHED_TAG) {
      this.finished = true
      for (const w of this.finishWaiters.splice(0)) w.resolve()
      this.maybeDone()
      return
    }
    while (this.unacked.length > 0 && this.unacked[0].tag <= tag) {
      const u = this.unacked.shift()!
      this.unackedBytes -= u.bytes
      this.unackedMessages -= u.messages
    }
    if (this.ackWaiters.length > 0) {
      this.ackWaiters = this.ackWaiters.filter((w) => {
        if (w.tag > tag) return true
        w.resolve()
        return false
      })
    }
    this.wakeWriters()
  }

  /** @internal DATA from the server. */
  onData (messages: WireMessage[]): void {
    this.received += messages.length
    for (const m of messages) this.unreportedBytes += cost(m.payload)
    this.unreportedMessages += messages.length
    this.owner.onData(messages)
  }

  /** The stream's consumer wants more: report what it consumed, once that is worth a frame. */
  grant (force = false): void {
    if (!this.opened || this.unreportedMessages === 0) return
    if (!force && this.unreportedMessages < this.window.messages / 4 && this.unreportedBytes < this.window.bytes / 4) return
    this.conn.sendFrame(encodeFrame(FrameType.CREDIT, this.id, creditPayload(this.unreportedBytes, this.unreportedMessages)))
    this.unreportedBytes = 0
    this.unreportedMessages = 0
  }

  /** @internal END from the server. */
  onEnd (): void {
    if (this.remoteEnded) return
    this.remoteEnded = true
    this.owner.onEnd()
    this.maybeDone()
  }

  private maybeDone (): void {
    const readDone = !this.reads || this.remoteEnded
    const writeDone = !this.writes || this.finished
    if (readDone && writeDone) this.close()
  }

  private get reads (): boolean {
    return this.op !== 'queue.write' && this.op !== 'pubsub.write' && this.op !== 'service.reply'
  }

  private get writes (): boolean {
    return this.op === 'queue.write' || this.op === 'pubsub.write' || this.op === 'channel' || this.op === 'service.serve' ||
      this.op === 'queue.attach' || this.op === 'object.keep' || this.op === 'service.reply'
  }

  /** @internal The stream failed (RESET from the server, the client gave up). */
  fail (err: Error): void {
    if (this.failure || this.done) return
    this.failure = err
    for (const w of this.openWaiters.splice(0)) w.reject(err)
    for (const w of this.finishWaiters.splice(0)) w.reject(err)
    this.rejectAckWaiters(err)
    this.wakeWriters()
    this.close()
    this.owner.onFail(err)
  }

  /** The stream is destroyed locally: tells the server (what the reader did not hand on goes back). */
  reset (unread = 0): void {
    if (this.done) return
    if (this.opened) this.conn.sendFrame(jsonFrame(FrameType.RESET, this.id, { received: this.received, unread }))
    this.failure ??= new FederationError('the stream was destroyed')
    for (const w of this.openWaiters.splice(0)) w.reject(this.failure)
    for (const w of this.finishWaiters.splice(0)) w.reject(this.failure)
    this.rejectAckWaiters(this.failure)
    this.wakeWriters()
    this.close()
  }

  private close (): void {
    if (this.done) return
    this.done = true
    this.conn.detach(this)
  }
}
