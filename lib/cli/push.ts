import { pipeline, finished } from 'node:stream/promises'
import { expectPositionals, exclusive, nameArg, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { boxedJsonCodec, createFramer, type Framing } from './framing.js'
import { Progress, formatBytes, formatMessages } from './progress.js'
import { onStopSignal, openBus, queueByName } from './session.js'

const help = `Usage: busmq push <queue> [options]

Pushes stdin into <queue>. By default each chunk read from stdin is one message (bytes, unchanged), so
a file round-trips byte for byte:  busmq push q --end < file.gz  …  busmq pull q --until-end > copy.gz

Options:
  --lines   one message per line, without its newline (a last line without one is a message too)
  --json    one JSON value per line (objectMode, the library's JSON codec); blank lines are skipped;
            a line that is not JSON stops the push with an error (the lines before it are pushed)
  --end     when stdin ends, push an end marker: "busmq pull --until-end" stops there

Ctrl-C or SIGTERM stops reading stdin, pushes everything already read, and exits 0 without an end
marker (the input was cut short). Progress goes to stderr when it is a terminal; at the end, a line
on stderr says how many messages went to which queue on which shard (not with --quiet):
  busmq: pushed 1,234 messages (5.00 MB) to queue jobs on shard 127.0.0.1:6379/0`

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  expectPositionals(positionals, 1, 1, 'queue name', 'push')
  exclusive(values, ['lines', 'json'], 'push')
  const name = nameArg(positionals[0], 'queue name', 'push')
  const framing: Framing = values.json === true ? 'json' : values.lines === true ? 'lines' : 'bytes'
  const stdin = process.stdin
  const bus = await openBus(common)
  try {
    const queue = queueByName(bus, name)
    const writer = queue.createWriteStream(framing === 'json' ? { objectMode: true, codec: boxedJsonCodec } : {})
    const progress = new Progress(`push ${name}`, Progress.wanted(common.quiet))
    let interrupted = false
    let inputStopped = false
    // Stops reading stdin but lets everything read so far go through the framer to Redis.
    const stopInput = (): void => {
      if (inputStopped) return
      inputStopped = true
      framer.stop()
      stdin.unpipe(framer.stream)
      stdin.pause()
      framer.stream.end()
    }
    const framer = createFramer(framing, (bytes) => progress.add(1, bytes), stopInput)
    const removeSignals = onStopSignal(() => {
      interrupted = true
      stopInput()
    })
    stdin.on('error', (err) => framer.stream.destroy(err))
    progress.start()
    const done = pipeline(framer.stream, writer)
    stdin.pipe(framer.stream)
    try {
      await done
    } finally {
      progress.stop()
      removeSignals()
      stdin.destroy()
    }
    if (framer.failure) throw framer.failure
    if (values.end === true && !interrupted) {
      // A separate stream for the marker, so that an interrupted push never sends one: bus.close()
      // ends open writers, and a writer made with endMarker would then mark a cut input as complete.
      const marker = queue.createWriteStream({ endMarker: true })
      marker.end()
      await finished(marker)
    }
    if (!common.quiet) {
      // Always, not only on a terminal: a push into the wrong Redis must not go unnoticed.
      const end = values.end === true ? (interrupted ? ', no end marker' : ' and an end marker') : ''
      process.stderr.write(`busmq: ${interrupted ? 'interrupted: ' : ''}pushed ${formatMessages(progress.messages)} ` +
        `(${formatBytes(progress.bytes)})${end} to queue ${name} on shard ${(await queue.shard()).id}\n`)
    }
    return 0
  } finally {
    await bus.close()
  }
}

export const push: Command = {
  name: 'push',
  summary: 'push stdin into a queue (bytes, lines or JSON)',
  help,
  options: {
    lines: { type: 'boolean' },
    json: { type: 'boolean' },
    end: { type: 'boolean' }
  },
  run
}
