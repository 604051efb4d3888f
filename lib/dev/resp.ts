/**
 * A minimal RESP2 client: one command on a fresh connection. The launcher's readiness probe uses it, and
 * the tests use it to look at a server without a real client's retries and reconnections, which would
 * hide what they look for (a server that does not answer, a connection that is refused).
 */
import net from 'node:net'
import { LOOPBACK } from './free-port.js'

/** An error reply (`-ERR …`, `-NOAUTH …`, `-LOADING …`). */
export class RespError extends Error {
  override name = 'RespError'
}

export type RespValue = string | number | null | RespError | RespValue[]

function encodeCommand (args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.from(a, 'utf8')
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Parses one RESP2 value at `pos`; undefined while the buffer is still incomplete. */
function parseReply (buf: Buffer, pos: number): [RespValue, number] | undefined {
  const eol = buf.indexOf('\r\n', pos)
  if (eol < 0) return undefined
  const line = buf.toString('utf8', pos + 1, eol)
  const next = eol + 2
  switch (buf[pos]) {
    case 0x2b: // +
      return [line, next]
    case 0x2d: // -
      return [new RespError(line), next]
    case 0x3a: // :
      return [Number(line), next]
    case 0x24: { // $
      const len = Number(line)
      if (len < 0) return [null, next]
      if (buf.length < next + len + 2) return undefined
      return [buf.toString('utf8', next, next + len), next + len + 2]
    }
    case 0x2a: { // *
      const n = Number(line)
      if (n < 0) return [null, next]
      const items: RespValue[] = []
      let p = next
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p)
        if (!r) return undefined
        items.push(r[0])
        p = r[1]
      }
      return [items, p]
    }
    default:
      throw new Error(`unexpected RESP reply: ${JSON.stringify(buf.toString('utf8', pos, Math.min(eol, pos + 40)))}`)
  }
}

/**
 * Sends one command on a fresh connection and resolves with the reply. Rejects with a {@link RespError}
 * for an error reply, with a plain Error on timeout or connection failure.
 */
export function redisCommand (
  port: number,
  args: readonly string[],
  { host = LOOPBACK, timeoutMs = 2000 }: { host?: string, timeoutMs?: number } = {}
): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    let settled = false
    const sock = net.connect({ port, host })
    const finish = (err: Error | null, value: RespValue = null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      sock.destroy()
      if (err) reject(err)
      else resolve(value)
    }
    const timer = setTimeout(
      () => finish(new Error(`no reply from ${host}:${port} to ${args[0]} within ${timeoutMs} ms`)),
      timeoutMs
    )
    sock.once('connect', () => sock.write(encodeCommand(args)))
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      let r: [RespValue, number] | undefined
      try {
        r = parseReply(buf, 0)
      } catch (err) {
        return finish(err as Error)
      }
      if (r) {
        if (r[0] instanceof RespError) finish(r[0])
        else finish(null, r[0])
      }
    })
    sock.once('error', (err) => finish(err))
    sock.once('close', () => finish(new Error(`connection to ${host}:${port} closed without a reply`)))
  })
}

/**
 * True if something answers PING within `timeoutMs`. An error reply (NOAUTH, …) counts as an answer: the
 * question is whether the server responds.
 */
export async function ping (port: number, timeoutMs = 1000, host = LOOPBACK): Promise<boolean> {
  try {
    await redisCommand(port, ['PING'], { host, timeoutMs })
    return true
  } catch (err) {
    return err instanceof RespError
  }
}
