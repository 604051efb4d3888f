import { expectPositionals, intOption, nameArg, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { UsageError } from './usage-error.js'
import { onStopSignal, openBus } from './session.js'
import { DEFAULT_SERVICE_OPTIONS } from '../service/service-options.js'
import { drained } from '../util.js'

const help = `Usage: busmq request <service> <json> [options]

Sends one request to <service> and writes its reply to stdout: one line of JSON, or, for a streamed
reply, one line per chunk as they come (a reply of null prints nothing). The request is the JSON value
<json> (the service must be in objectMode with the JSON codec, as it is by default for objects).

  busmq request thumbnails '{"file":"cat.jpg","width":128}'
  busmq request export '{"since":"2026-01-01"}' > rows.jsonl     (a streamed reply)

Options:
  --bytes               a byte-mode service: send <json> as it is (UTF-8), write the reply's bytes to
                        stdout unchanged
  --wait MS             how long the reply may take to start, and then pause between chunks
                        (default ${DEFAULT_SERVICE_OPTIONS.timeout}); then it fails with ERR_BUSMQ_REQUEST_TIMEOUT
  --reliable            send a reliable request (taken only by servers started with reliable)

A handler that fails makes it exit 1 with "busmq: the service handler failed: <name>: <message>
(<remote code>) (ERR_BUSMQ_REMOTE)"; chunks received before are written first. Ctrl-C or SIGTERM
stops reading (the server is told to stop) and exits 0.`

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'request'
  expectPositionals(positionals, 2, 2, 'service name and request', cmd)
  const name = nameArg(positionals[0], 'service name', cmd)
  const bytes = values.bytes === true
  let data: unknown = positionals[1]
  if (!bytes) {
    try {
      data = JSON.parse(positionals[1])
    } catch (err) {
      throw new UsageError(`the request is not JSON (${(err as Error).message}); use --bytes to send text as it is`, cmd)
    }
  }
  const timeout = values.wait === undefined ? DEFAULT_SERVICE_OPTIONS.timeout : intOption(values.wait, '--wait', 1, 86_400_000, cmd)
  const bus = await openBus(common)
  try {
    const svc = bus.service(name, { objectMode: !bytes })
    // A streamed request: a reply of one value is a stream of one chunk, so one call prints either.
    const reply = svc.requestStream(data, { timeout, reliable: values.reliable === true })
    let interrupted = false
    const removeSignals = onStopSignal(() => {
      interrupted = true
      reply.destroy()
    })
    const out = process.stdout
    try {
      for await (const chunk of reply) {
        const text = bytes ? chunk as Buffer : `${JSON.stringify(chunk)}\n`
        if (!out.write(text)) await drained(out)
      }
    } catch (err) {
      if (!interrupted) throw err
    } finally {
      removeSignals()
    }
    return 0
  } finally {
    await bus.close()
  }
}

export const request: Command = {
  name: 'request',
  summary: 'send a request to a service and print its reply (or its streamed reply)',
  help,
  options: {
    bytes: { type: 'boolean' },
    wait: { type: 'string' },
    reliable: { type: 'boolean' }
  },
  run
}
