// A TCP proxy in front of a test redis-server, for faults a real server cannot be asked for: a reply that
// never arrives (Redis ran the command; the connection drops before its answer), or new connections that
// are accepted and then never answered (a black-holed subscriber).
import net, { type AddressInfo } from 'node:net'

export interface RedisProxy {
  readonly port: number
  readonly url: string
  /** The next request containing `needle` is forwarded, its reply swallowed, and its connection cut. */
  dropReplyTo: (needle: string) => void
  /** Whether the armed request was seen. */
  readonly fired: boolean
  /** Connections accepted from now on get no answer at all (existing ones carry on). */
  blackholeNewConnections: (on: boolean) => void
  /** Connections accepted from now on are closed at once (the client keeps trying to reconnect). */
  refuseNewConnections: (on: boolean) => void
  /** Cuts every connection open now, both ways. */
  cutAll: () => void
  close: () => Promise<void>
}

export async function startProxy (targetPort: number, host = '127.0.0.1'): Promise<RedisProxy> {
  let armed: Buffer | undefined
  let fired = false
  let blackhole = false
  let refuse = false
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    if (refuse) {
      client.destroy()
      return
    }
    if (blackhole) return
    const upstream = net.connect(targetPort, host)
    sockets.add(upstream)
    let dropping = false
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.on('data', (buf) => {
      if (armed && !fired && buf.includes(armed)) {
        fired = true
        dropping = true
      }
      upstream.write(buf)
    })
    upstream.on('data', (buf) => {
      // Redis ran it and answered; the answer never arrives.
      if (dropping) return end()
      client.write(buf)
    })
    upstream.on('error', end)
    upstream.on('close', () => {
      sockets.delete(upstream)
      end()
    })
    client.on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `redis://${host}:${port}`,
    dropReplyTo: (needle) => {
      armed = Buffer.from(needle)
      fired = false
    },
    get fired () {
      return fired
    },
    blackholeNewConnections: (on) => { blackhole = on },
    refuseNewConnections: (on) => { refuse = on },
    cutAll: () => { for (const s of sockets) s.destroy() },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
