import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'
import { transform } from 'through2'
import type { Bus } from '../bus.js'
import type { Channel } from '../channel/channel.js'
import { MAX_NAME_LENGTH } from '../names.js'
import { expectPositionals, intOption, nameArg, type CommonOptions, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { Progress } from './progress.js'
import { onStopSignal, openBus } from './session.js'
import { UsageError } from './usage-error.js'
import { destroyAndWait } from '../util.js'

const help = `Usage: busmq tunnel listen <channel> --to HOST:PORT
       busmq tunnel connect <channel> --port N [--host 127.0.0.1]

Forwards TCP connections through Redis, byte for byte, one channel per connection.

"connect" accepts TCP connections on --host:--port (0 = any free port; the port is printed). For each
it opens the channel "<channel>:<uuid>" and announces it on the queue "<channel>:accept".
"listen" takes announcements from that queue (each one goes to one listener, so several listeners
share the load), connects to --to HOST:PORT and pipes that socket and the channel into each other.
Either side may start first. A half-close (FIN) travels through as a channel end and comes out as a
FIN; a connection that fails on one side is cut on the other.

  busmq tunnel listen web --to 127.0.0.1:80          (on the machine that can reach the server)
  busmq tunnel connect web --port 8080               (then: curl http://127.0.0.1:8080/)

Options:
  --to HOST:PORT   listen: where to connect for each tunnelled connection
  --port N         connect: the local port to accept connections on
  --host HOST      connect: the local address to listen on (default 127.0.0.1)

Ctrl-C or SIGTERM stops accepting, cuts open connections, and exits 0 (a listener gives its unread
announcements back to the queue). Progress (both directions) goes to stderr when it is a terminal.`

/** A channel name plus ":<uuid>:<role>" must stay a valid queue name. */
const MAX_CHANNEL_LENGTH = MAX_NAME_LENGTH - ':00000000-0000-0000-0000-000000000000:remote'.length
/** A connection no listener has picked up after this long gets a warning. */
const UNCLAIMED_WARNING_MS = 5000

function parseHostPort (text: string, cmd: string): { host: string, port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text)
  if (!m) throw new UsageError(`--to must be HOST:PORT, got ${JSON.stringify(text)}`, cmd)
  return { host: m[1] ?? m[2], port: intOption(m[3], '--to port', 1, 65535, cmd) }
}

/** Counts what passes in one direction. */
function counter (progress: Progress): ReturnType<typeof transform> {
  return transform(function (chunk: Buffer, _enc, cb) {
    progress.add(1, chunk.length)
    cb(null, chunk)
  })
}

interface Tunnel {
  socket: net.Socket
  channel: Channel
}

/** Open connections, and the status line shown with the progress meter. */
class Connections {
  readonly open = new Set<Tunnel>()
  total = 0
  private readonly quiet: boolean

  constructor (quiet: boolean) {
    this.quiet = quiet
  }

  note (message: string): void {
    // On a terminal, the line replaces the progress line (redrawn at its next tick).
    if (!this.quiet) process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}busmq tunnel: ${message}\n`)
  }

  /** Pipes the socket into the channel and back, until both directions are done or one fails. */
  run (socket: net.Socket, channel: Channel, progress: Progress, what: string): void {
    const t = { socket, channel }
    this.open.add(t)
    this.total++
    pipeline(socket, counter(progress), channel, counter(progress), socket).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') this.note(`${what}: ${err.message}${err.code ? ` (${err.code})` : ''}`)
      socket.destroy()
      channel.destroy()
    }).finally(() => this.open.delete(t))
  }

  closeAll (): void {
    for (const t of this.open) {
      t.socket.destroy()
      t.channel.destroy()
    }
  }

  summary = (): string => `${this.open.size} open / ${this.total} connection(s)`
}

/** Resolves on a stop signal; rejects on a fatal error reported through `fail`. */
function untilStopped (): { done: Promise<void>, fail: (err: Error) => void, remove: () => void } {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const done = new Promise<void>((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  const remove = onStopSignal(() => resolve())
  return { done, fail: reject, remove }
}

async function listen (bus: Bus, channel: string, to: { host: string, port: number }, common: CommonOptions): Promise<void> {
  const conns = new Connections(common.quiet)
  const progress = new Progress(`tunnel ${channel}`, Progress.wanted(common.quiet), conns.summary)
  const stop = untilStopped()
  // One announcement at a time, so that an idle listener is not starved by a busy one's prefetch.
  const reader = bus.queue(`${channel}:accept`).createReadStream({ highWaterMark: 1 })
  reader.on('error', stop.fail)
  reader.on('data', (buf: Buffer) => {
    const name = buf.toString('utf8')
    if (!name.startsWith(`${channel}:`) || name.length > MAX_NAME_LENGTH - ':remote'.length) {
      conns.note(`ignoring a bad announcement ${JSON.stringify(name.slice(0, 80))}`)
      return
    }
    let ch: Channel
    try {
      ch = bus.channel(name, { listen: true })
    } catch (err) {
      conns.note(`ignoring announcement ${JSON.stringify(name.slice(0, 80))}: ${(err as Error).message}`)
      return
    }
    const socket = net.connect({ host: to.host, port: to.port, allowHalfOpen: true })
    conns.run(socket, ch, progress, `connection ${name} to ${to.host}:${to.port}`)
  })
  conns.note(`channel ${channel} → ${to.host}:${to.port} (Ctrl-C to stop)`)
  progress.start()
  try {
    await stop.done
  } finally {
    stop.remove()
    progress.stop()
    await destroyAndWait(reader)
    conns.closeAll()
  }
}

async function connect (bus: Bus, channel: string, host: string, port: number, common: CommonOptions): Promise<void> {
  const conns = new Connections(common.quiet)
  const progress = new Progress(`tunnel ${channel}`, Progress.wanted(common.quiet), conns.summary)
  const control = bus.queue(`${channel}:accept`)
  const stop = untilStopped()
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const name = `${channel}:${randomUUID()}`
    const ch = bus.channel(name)
    const warn = setTimeout(() => conns.note(`no listener has picked up connection ${name} yet (is "busmq tunnel listen ${channel}" running?)`),
      UNCLAIMED_WARNING_MS)
    warn.unref()
    ch.once('remote:connect', () => clearTimeout(warn))
    ch.once('close', () => clearTimeout(warn))
    control.push(name).catch((err: Error) => {
      conns.note(`cannot announce connection ${name}: ${err.message}`)
      socket.destroy()
      ch.destroy()
    })
    conns.run(socket, ch, progress, `connection ${name}`)
  })
  server.on('error', stop.fail)
  server.listen(port, host)
  await Promise.race([once(server, 'listening'), stop.done])
  const address = server.address() as AddressInfo | null
  if (address) conns.note(`${address.address}:${address.port} → channel ${channel} (Ctrl-C to stop)`)
  progress.start()
  try {
    await stop.done
  } finally {
    stop.remove()
    progress.stop()
    server.close()
    conns.closeAll()
  }
}

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'tunnel'
  const sub = positionals[0]
  if (sub === undefined) throw new UsageError('missing "listen" or "connect"', cmd)
  if (sub !== 'listen' && sub !== 'connect') throw new UsageError(`unknown tunnel command ${JSON.stringify(sub)}: use "listen" or "connect"`, cmd)
  expectPositionals(positionals, 2, 2, 'channel name', cmd)
  const channel = nameArg(positionals[1], 'channel name', cmd)
  if (channel.length > MAX_CHANNEL_LENGTH) throw new UsageError(`channel name is longer than ${MAX_CHANNEL_LENGTH} characters`, cmd)
  if (sub === 'listen') {
    if (values.port !== undefined || values.host !== undefined) throw new UsageError('--port and --host are for "tunnel connect"', cmd)
    if (values.to === undefined) throw new UsageError('missing --to HOST:PORT', cmd)
    const to = parseHostPort(String(values.to), cmd)
    const bus = await openBus(common)
    try {
      await listen(bus, channel, to, common)
    } finally {
      await bus.close()
    }
    return 0
  }
  if (values.to !== undefined) throw new UsageError('--to is for "tunnel listen"', cmd)
  if (values.port === undefined) throw new UsageError('missing --port N', cmd)
  const port = intOption(values.port, '--port', 0, 65535, cmd)
  const host = values.host === undefined ? '127.0.0.1' : String(values.host)
  const bus = await openBus(common)
  try {
    await connect(bus, channel, host, port, common)
  } finally {
    await bus.close()
  }
  return 0
}

export const tunnel: Command = {
  name: 'tunnel',
  summary: 'forward a TCP port through channels (tunnel listen / tunnel connect)',
  help,
  options: {
    to: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' }
  },
  run
}
