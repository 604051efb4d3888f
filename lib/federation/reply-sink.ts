import type { Writable } from 'readable-stream'
import { WritableSink } from './server-stream.js'
import { REPLY_CHUNK, errorFromPayload } from './frame.js'

/**
 * A streamed reply written by a federated handler (the `service.reply` stream): each message is
 * `kind (u8) | body`, a chunk of the reply ({@link REPLY_CHUNK}) or, last, the error the handler's stream
 * failed with (JSON `{ name, message, code }`), which ends the reply after what came before. A batch is
 * acknowledged once the reply stream took its chunks (it waits while its requester is that far behind),
 * so a slow requester holds the federated handler up.
 */
export class ReplySink extends WritableSink {
  constructor (private readonly reply: Writable, private readonly failWith: (err: Error) => Promise<void>) {
    super(reply)
  }

  override async accept (payloads: Buffer[]): Promise<void> {
    let chunks: Buffer[] = []
    for (const p of payloads) {
      if (p.length > 0 && p[0] === REPLY_CHUNK) {
        chunks.push(p.subarray(1))
        continue
      }
      await super.accept(chunks)
      chunks = []
      await this.failWith(errorFromPayload(p.subarray(1), 'the federated handler failed'))
    }
    await super.accept(chunks)
  }

  override async finish (): Promise<void> {
    if (this.reply.writableEnded) {
      // Ended by a failure: done once the abort marker is stored.
      if (this.reply.writableFinished || this.reply.destroyed) return
      await new Promise<void>((resolve) => {
        this.reply.once('finish', resolve)
        this.reply.once('close', resolve)
      })
      return
    }
    await super.finish()
  }
}
