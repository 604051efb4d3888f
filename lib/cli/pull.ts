import { setImmediate as nextTurn } from 'node:timers/promises'
import type { QueueReader } from '../queue/queue-read-stream.js'
import type { ReliableMessage } from '../queue/reliable-message.js'
import type { ReadStreamOptions } from '../queue/queue-options.js'
import { exclusive, expectPositionals, intOption, nameArg, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { boxedJsonCodec, formatMessage, type Framing } from './framing.js'
import { Progress, formatBytes, formatMessages } from './progress.js'
import { flushed, onStopSignal, openBus, queueByName } from './session.js'
import { destroyAndWait } from '../util.js'

const help = `Usage: busmq pull <queue> [options]

Writes the messages of <queue> to stdout, in order. Each message is taken by this reader only
(consume-once), unless --from replays without taking. By default it follows the queue forever.
"<queue>:dead-letter" names the dead-letter queue of <queue>.

  busmq pull q --until-end | gzip > out.gz      busmq pull q --lines --max 3 | head -3

Options:
  --max N          stop after N messages
  --until-empty    stop as soon as the queue is found empty
  --until-end      stop at the end marker a "busmq push --end" (or an endMarker writer) left
  --follow         wait for new messages forever (the default; for scripts that want to say so)
  --lines          write a newline after each message
  --json           messages are JSON (objectMode); write each as one line of JSON
  --reliable       at-least-once: acknowledge each message only once its bytes have been handed to
                   stdout; a message not acked when busmq stops or dies is delivered again
  --from OFFSET    replay: read without removing, from message id OFFSET (0 = the oldest kept);
                   follows the queue unless --until-empty, --until-end or --max says when to stop

A message counts as delivered (consumed, acked) once stdout has handed its bytes to the OS: what a pipe
has taken is out of busmq's hands. So "| head -3" does not take only 3: a reader takes up to 256
messages per round trip and pull writes them to stdout at once, and pull learns that head has gone
only when its next write fails (EPIPE). Every write completed by then is consumed, read by head or
not: with short lines, typically the first 256. The write that failed goes back whole, with all
not yet written, even the part the pipe took (head may have printed some of it: they come again).
The summary line on stderr says how many were consumed. Use --max N to take exactly N. With
--follow (the default), a pull with nothing more to write does not notice that head has gone and
waits for the next message; give --max or --until-empty.

At the end, one line on stderr says how many messages were pulled (replayed) from which queue and
shard, and why it stopped early, if it did (not with --quiet):
  busmq: pulled 256 messages (916 B) from queue jobs on shard 127.0.0.1:6379/0; stdout was closed, …

Stopping: Ctrl-C, SIGTERM, or a closed stdout (EPIPE, as in "| head") end the command with exit code
0. Output already written gets up to 1 s to drain; then messages taken but not delivered go back to
the front of the queue, in order (--reliable: they are released unacknowledged), so nothing is lost.
A message of which stdout had taken only a part is given back whole (the reader saw a cut line).`

/** Most bytes gathered into one write to stdout. */
/** How long a stopping pull waits for stdout to take what was already written to it. */
const STOP_GRACE_MS = 1000

interface Pending {
  /** Bytes of each message in this write, in order. */
  sizes: number[]
  bytes: number
  envelopes: ReliableMessage[]
}

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'pull'
  expectPositionals(positionals, 1, 1, 'queue name', cmd)
  exclusive(values, ['lines', 'json'], cmd)
  exclusive(values, ['reliable', 'from'], cmd)
  exclusive(values, ['follow', 'until-empty'], cmd)
  exclusive(values, ['follow', 'until-end'], cmd)
  const name = nameArg(positionals[0], 'queue name', cmd)
  const framing: Framing = values.json === true ? 'json' : values.lines === true ? 'lines' : 'bytes'
  const reliable = values.reliable === true
  const options: ReadStreamOptions = {
    max: values.max === undefined ? undefined : intOption(values.max, '--max', 1, Number.MAX_SAFE_INTEGER, cmd),
    untilEmpty: values['until-empty'] === true,
    untilEnd: values['until-end'] === true
  }
  if (values.from !== undefined) {
    options.mode = 'replay'
    options.from = intOption(values.from, '--from', 0, Number.MAX_SAFE_INTEGER, cmd)
  }
  if (reliable) options.mode = 'reliable'
  if (framing === 'json') {
    options.objectMode = true
    options.codec = boxedJsonCodec
  }

  const bus = await openBus(common)
  const stdout = process.stdout
  const progress = new Progress(`pull ${name}`, Progress.wanted(common.quiet))
  let reader: QueueReader | undefined
  let removeSignals = (): void => {}
  /** Set once a write to stdout failed: nothing unconfirmed reached the reader then. */
  let broken = false
  /** Why the pull stopped early, for the summary line. */
  let cut: string | undefined
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    broken = true
    cut ??= err.code === 'EPIPE'
      ? `stdout was closed${options.mode === 'replay' ? '' : ', what was not written in full went back to the queue'}`
      : undefined
    stop(err.code === 'EPIPE' ? undefined : err)
  }
  let stop: (err?: Error) => void = () => {}
  try {
    // Owned: it stays open after its end, until pull has said what stdout did not take.
    reader = queueByName(bus, name).createReadStream({ ...options, owned: true })
    const r = reader
    /** Writes handed to stdout whose callback has not fired yet, oldest first. */
    const pending: Pending[] = []
    const acks = new Set<Promise<unknown>>()
    const ack = (env: ReliableMessage): void => {
      const p = env.ack().catch(() => {})
      acks.add(p)
      void p.finally(() => acks.delete(p))
    }
    let stopping = false
    let settled = false
    let ended = false

    const outcome = new Promise<Error | undefined>((resolve) => {
      const settle = (err?: Error): void => {
        if (stopping) return
        stopping = true
        resolve(err)
      }
      stop = settle
      r.on('end', () => {
        ended = true
        if (pending.length === 0) settle()
      })
      r.on('error', (err: Error) => settle(err))
    })

    // One message per write, and the next write only once stdout confirmed the previous one (the OS took
    // every byte of it). So at most one message is ever in doubt when pull stops: a write the OS took
    // only part of (a full pipe) goes back whole, and every message before it was confirmed. Node's
    // public stream API does not tell how much of a pending write the OS took, so a larger write would
    // leave a larger doubt.
    let inFlight = false
    const pump = (): void => {
      if (stopping || inFlight) return
      const m: unknown = r.read()
      if (m === null) return
      const data = reliable ? (m as ReliableMessage).data : m
      const buf = formatMessage(framing, data)
      const entry: Pending = { sizes: [buf.length], bytes: buf.length, envelopes: reliable ? [m as ReliableMessage] : [] }
      pending.push(entry)
      inFlight = true
      stdout.write(buf, (err) => {
        inFlight = false
        // A failed write (EPIPE) ends the pull; the write stays pending and goes back.
        if (err) {
          broken = true
          return
        }
        // After the stop below has settled what was delivered, a late completion changes nothing.
        if (settled) return
        pending.shift()
        progress.add(entry.sizes.length, entry.bytes)
        for (const env of entry.envelopes) ack(env)
        if (ended && pending.length === 0 && r.readableLength === 0) stop()
        else pump()
      })
    }
    stdout.on('error', onStdoutError)
    removeSignals = onStopSignal(() => {
      cut ??= 'interrupted'
      stop()
    })
    progress.start()
    r.on('readable', pump)

    const failure = await outcome
    // Stopped with output still on its way: give stdout a moment to take it.
    if (pending.length > 0 && !broken) await flushed(stdout, STOP_GRACE_MS)
    await nextTurn()
    // A message is delivered once stdout confirmed its write (the OS took every byte of it). Writes not
    // confirmed by now go back whole: the reader of a closed pipe never read them.
    let undelivered = 0
    settled = true
    for (const entry of pending) undelivered += entry.sizes.length
    // The undelivered messages go back to the front of the queue together with the reader's own buffer
    // (reliable: they are released), through the same internal hook a channel uses for
    // the same purpose.
    r.returnUnread(undelivered)
    // What was given back must not reach stdout after all: a write still pending is cut off.
    if (pending.length > 0 && !broken) stdout.destroy()
    await destroyAndWait(r)
    await Promise.allSettled([...acks])
    progress.stop()
    if (failure) throw failure
    if (!common.quiet) {
      // Always, not only on a terminal: it tells how many messages this pull took (and from where).
      process.stderr.write(`busmq: ${options.mode === 'replay' ? 'replayed' : 'pulled'} ${formatMessages(progress.messages)} ` +
        `(${formatBytes(progress.bytes)}) from queue ${name} on shard ${(await r.queue.shard()).id}${cut !== undefined ? `; ${cut}` : ''}\n`)
    }
    return 0
  } finally {
    removeSignals()
    stdout.off('error', onStdoutError)
    await bus.close()
  }
}

export const pull: Command = {
  name: 'pull',
  summary: 'write a queue to stdout (until empty, until an end marker, N messages, or forever)',
  help,
  options: {
    max: { type: 'string' },
    'until-empty': { type: 'boolean' },
    'until-end': { type: 'boolean' },
    follow: { type: 'boolean' },
    lines: { type: 'boolean' },
    json: { type: 'boolean' },
    reliable: { type: 'boolean' },
    from: { type: 'string' }
  },
  run
}
