import net, { type AddressInfo } from 'node:net'

/** The loopback address every throw-away server listens on. */
export const LOOPBACK = '127.0.0.1'

/**
 * Ports handed out by this process. Two parallel callers never get the same port, even though the probe
 * socket is closed before the caller binds it.
 */
const handedOut = new Set<number>()

function bindOnce (port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(port, host, () => {
      const bound = (srv.address() as AddressInfo).port
      srv.close(() => resolve(bound))
    })
  })
}

export interface FreePortOptions {
  /** @default '127.0.0.1' */
  host?: string
  /** Also require `port + offset` to be free (a Redis Cluster node's bus port is port + 10000). @default 0 */
  alsoFree?: number
}

/**
 * A TCP port nothing listens on now (the kernel picks it), never one this process handed out before.
 * Another process may still take it before the caller binds it: callers that start a server on it
 * retry with another port when it turns out to be in use.
 */
export async function freePort (options: FreePortOptions = {}): Promise<number> {
  const host = options.host ?? LOOPBACK
  const offset = options.alsoFree ?? 0
  for (let i = 0; i < 100; i++) {
    const port = await bindOnce(0, host)
    if (handedOut.has(port)) continue
    if (offset > 0) {
      const other = port + offset
      if (other > 65535 || handedOut.has(other)) continue
      const free = await bindOnce(other, host).then(() => true, () => false)
      // Checked again: a parallel caller may have taken one of them while we probed.
      if (!free || handedOut.has(port) || handedOut.has(other)) continue
      handedOut.add(other)
    }
    handedOut.add(port)
    return port
  }
  throw new Error(`could not find a free port on ${host}`)
}
