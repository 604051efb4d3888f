import { Buffer } from 'buffer'
import { Readable } from 'readable-stream'
import { FederationError } from '../errors.js'
import { ServerStream, type Sink } from './server-stream.js'
import { ProtocolError } from './frame.js'

/**
 * The writing side of a stream that keeps something alive on the server (a queue attached for a
 * client, an object kept alive) and carries no messages: the client ending it (`detach()`,
 * `release()`) lets go, and so does the stream closing for any other reason (reset, the client's
 * connection gone for longer than `resumeTimeout`, the server closing).
 */
class KeepSink implements Sink {
  private released?: Promise<void>

  constructor (private readonly release: () => Promise<void>) {}

  async accept (): Promise<void> {
    throw new FederationError('this stream carries no messages')
  }

  async finish (): Promise<void> {
    await this.letGo()
  }

  destroy (): void {
    this.letGo().catch(() => {})
  }

  private letGo (): Promise<void> {
    this.released ??= this.release()
    return this.released
  }
}

/**
 * A server stream that holds what `hold` took (resolving with whether the thing existed before) until
 * the client ends it or it closes; its one message tells the client that flag, then its reading side ends.
 */
export function keepStream (session: string, op: string, existed: boolean, release: () => Promise<void>): ServerStream {
  const source = new Readable({ read () {} })
  source.push(Buffer.from([existed ? 1 : 0]))
  source.push(null)
  return new ServerStream(session, op, source, new KeepSink(release))
}

/** The `ttl` a client asks a kept thing to have (undefined: the bus's); anything else is a protocol error. */
export function keepTtl (ttl: unknown): number | undefined {
  if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 10)) throw new ProtocolError('OPEN: bad ttl')
  return ttl
}
