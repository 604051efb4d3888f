/**
 * TCP port forwarding through BusMQ channels: one channel per TCP connection, so the two ends only need
 * to reach the same Redis, not each other.
 *
 *   # where the service runs (e.g. a database on 10.0.0.5:5432):
 *   node dist/examples/tcp-tunnel.js exit  <tunnel> <targetHost:port> [redis-url]
 *   # where the clients are: connections to 127.0.0.1:<listenPort> reach the target
 *   node dist/examples/tcp-tunnel.js entry <tunnel> <listenPort>      [redis-url]
 *   # everything in one process against a tiny local echo server, then exit 0:
 *   node dist/examples/tcp-tunnel.js --self-test [redis-url]
 *
 * The Redis URL comes from the last argument, else $BUSMQ_REDIS, else redis://127.0.0.1:6379.
 *
 * How it works: the entry end accepts a socket, picks a fresh channel name `<tunnel>:<uuid>` and pushes
 * that name onto the queue `<tunnel>:accept`. The exit end reads that queue, opens the same channel with
 * `listen: true`, connects to the target and pipes socket <-> channel. Either end may come first: what
 * the client sends before the exit end is there waits in Redis.
 */
import net, { type AddressInfo } from 'node:net'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { pipeline, type Duplex } from 'node:stream'
import { Bus } from 'busmq'

type Stop = () => Promise<void>

/** Pipes socket <-> channel; the returned promise settles when both directions are done. */
function connect (socket: net.Socket, channel: Duplex, what: string): Promise<void> {
  return new Promise((resolve) => {
    pipeline(socket, channel, socket, (err) => {
      if (err) console.error(`${what} failed: ${err.message}`)
      resolve()
    })
  })
}

/** Exit end: for every announced connection, connect to the target and pipe it through the channel. */
function runExit (bus: Bus, tunnel: string, host: string, port: number): Stop {
  const open = new Set<Promise<void>>()
  const accept = bus.queue(`${tunnel}:accept`, { objectMode: true }).createReadStream()
  accept.on('data', (name: string) => {
    const channel = bus.channel(name, { listen: true })
    // allowHalfOpen: a FIN on one side becomes channel.end() and then a FIN on the other side.
    const socket = net.connect({ host, port, allowHalfOpen: true })
    const done = connect(socket, channel, `exit: connection ${name}`)
    open.add(done)
    done.finally(() => open.delete(done))
  })
  // Stops taking new connections and waits for the open ones.
  return async () => {
    accept.destroy()
    await Promise.all(open)
  }
}

/** Entry end: listen on `port`; each accepted socket gets its own channel, announced to the exit end. */
async function runEntry (bus: Bus, tunnel: string, port: number): Promise<{ port: number, stop: Stop }> {
  const open = new Set<Promise<void>>()
  const accept = bus.queue(`${tunnel}:accept`, { objectMode: true })
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const name = `${tunnel}:${randomUUID()}`
    const channel = bus.channel(name)
    const done = connect(socket, channel, `entry: connection ${name}`)
    open.add(done)
    done.finally(() => open.delete(done))
    // Tell the exit end; what the client sends meanwhile waits in the channel's queue.
    accept.push(name).catch((err) => socket.destroy(err))
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    // Stops accepting and waits for the open connections.
    stop: async () => {
      server.close()
      await Promise.all(open)
    }
  }
}

/** Starts an echo server and both tunnel ends, sends random bytes over a few connections, checks them. */
async function selfTest (redisUrl: string): Promise<boolean> {
  const echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
  echo.listen(0, '127.0.0.1')
  await once(echo, 'listening')
  // Two buses, as if the two ends ran on two machines.
  const exitBus = new Bus({ redis: redisUrl })
  const entryBus = new Bus({ redis: redisUrl })
  await Promise.all([exitBus.connect(), entryBus.connect()])
  const tunnel = `tcp-tunnel-self-test-${randomUUID()}`
  const stopExit = runExit(exitBus, tunnel, '127.0.0.1', (echo.address() as AddressInfo).port)
  const entry = await runEntry(entryBus, tunnel, 0)

  const started = Date.now()
  const sizes = [1, 100_000, 1_000_000, 3_000_000]
  const results = await Promise.all(sizes.map(async (size) => {
    const sent = randomBytes(size)
    const socket = net.connect({ port: entry.port, host: '127.0.0.1' })
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    socket.end(sent) // half-close: the echo server answers, then closes its side
    await once(socket, 'close')
    return Buffer.concat(received).equals(sent)
  }))
  const ms = Date.now() - started
  const ok = results.every(Boolean)
  const total = sizes.reduce((x, y) => x + y, 0)
  console.log(`tcp-tunnel self-test: ${ok ? 'ok' : 'FAILED'}, ${sizes.length} connections, ${total} bytes echoed ${ok ? 'byte-exact' : 'with differences'} in ${ms} ms`)

  await entry.stop()
  await stopExit()
  await Promise.all([exitBus.close(), entryBus.close()])
  echo.close()
  return ok
}

function redisFrom (arg: string | undefined): string {
  return arg ?? process.env.BUSMQ_REDIS ?? 'redis://127.0.0.1:6379'
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === '--self-test') {
  process.exitCode = await selfTest(redisFrom(rest[0])) ? 0 : 1
} else if (mode === 'exit' && rest.length >= 2) {
  const [tunnel, target, url] = rest
  const i = target.lastIndexOf(':')
  const bus = new Bus({ redis: redisFrom(url) })
  await bus.connect()
  runExit(bus, tunnel, target.slice(0, i), Number(target.slice(i + 1)))
  console.log(`tunnel ${tunnel}: exit end forwarding to ${target}`)
  process.once('SIGINT', () => { bus.close().then(() => process.exit(0)) })
  process.once('SIGTERM', () => { bus.close().then(() => process.exit(0)) })
} else if (mode === 'entry' && rest.length >= 2) {
  const [tunnel, port, url] = rest
  const bus = new Bus({ redis: redisFrom(url) })
  await bus.connect()
  const entry = await runEntry(bus, tunnel, Number(port))
  console.log(`tunnel ${tunnel}: entry end listening on 127.0.0.1:${entry.port}`)
  // Closing the bus closes the channels of connections still open.
  const stop = (): void => { bus.close().then(() => process.exit(0)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
} else {
  console.error('usage: tcp-tunnel.js exit <tunnel> <host:port> [redis-url]\n' +
    '       tcp-tunnel.js entry <tunnel> <listenPort> [redis-url]\n' +
    '       tcp-tunnel.js --self-test [redis-url]')
  process.exitCode = 2
}
