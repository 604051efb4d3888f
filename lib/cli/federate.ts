import { createServer } from 'node:http'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { expectPositionals, intOption, type ParsedArgs } from './args.js'
import type { Command } from './command.js'
import { onStopSignal, openBus } from './session.js'
import { UsageError } from './usage-error.js'

const help = `Usage: busmq federate --secret-file FILE [--port N] [--host H] [--path P] [options]

Serves federation: clients with no access to Redis (a bus created with { federation: { urls, secret } },
or a browser page using busmq/browser) use this bus's queues, channels, pub/sub, services and objects
through WebSockets at ws://HOST:PORT/PATH, until Ctrl-C. Clients prove they know the secret (HMAC
challenge-response; it never crosses the wire). Put TLS in front of it (a reverse proxy) for wss://.

Options:
  --secret-file F     file whose content (trimmed) is the shared secret; or $BUSMQ_FEDERATION_SECRET
  --port N            port to listen on (default 8080; 0 picks a free one)
  --host H            address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)
  --path P            the WebSocket path (default /bus)
  --origin O[,O…]     accept browser pages of these Origins only (other Origins get 403)
  --max-streams N     streams per connection (default 1000)`

function secretOf (file: string | undefined, cmd: string): string {
  let secret: string | undefined
  if (file !== undefined) {
    try {
      secret = readFileSync(file, 'utf8').trim()
    } catch (err) {
      throw new UsageError(`cannot read --secret-file ${JSON.stringify(file)}: ${(err as Error).message}`, cmd)
    }
  } else {
    secret = process.env.BUSMQ_FEDERATION_SECRET?.trim()
  }
  if (!secret) throw new UsageError('a secret is needed: --secret-file FILE (or $BUSMQ_FEDERATION_SECRET), not empty', cmd)
  return secret
}

async function run ({ values, positionals, common }: ParsedArgs): Promise<number> {
  const cmd = 'federate'
  expectPositionals(positionals, 0, 0, 'nothing', cmd)
  const port = intOption(values.port ?? '8080', '--port', 0, 65535, cmd)
  const maxStreams = intOption(values['max-streams'] ?? '1000', '--max-streams', 1, 1_000_000, cmd)
  const host = typeof values.host === 'string' ? values.host : '127.0.0.1'
  const path = typeof values.path === 'string' ? values.path : '/bus'
  if (!path.startsWith('/')) throw new UsageError('--path must start with /', cmd)
  const origins = typeof values.origin === 'string' ? values.origin.split(',').map((o) => o.trim()).filter((o) => o.length > 0) : undefined
  const secret = secretOf(typeof values['secret-file'] === 'string' ? values['secret-file'] : undefined, cmd)
  const bus = await openBus(common)
  const server = createServer((req, res) => {
    res.statusCode = 426
    res.end('busmq federation: connect with a WebSocket\n')
  })
  try {
    const fed = bus.federate({ server, path, secret, origins, maxStreams })
    server.listen(port, host)
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
    const address = server.address()
    const actual = typeof address === 'object' && address !== null ? address.port : port
    const shown = host.includes(':') ? `[${host}]` : host
    process.stderr.write(`busmq: federation on ws://${shown}:${actual}${path}; Ctrl-C to stop\n`)
    await new Promise<void>((resolve) => {
      const remove = onStopSignal(() => {
        remove()
        resolve()
      })
    })
    await fed.close()
    return 0
  } finally {
    server.closeAllConnections()
    server.close()
    await bus.close()
  }
}

export const federate: Command = {
  name: 'federate',
  summary: 'serve federation: WebSocket access to the bus for clients and browsers without Redis',
  help,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    path: { type: 'string' },
    'secret-file': { type: 'string' },
    origin: { type: 'string' },
    'max-streams': { type: 'string' }
  },
  run
}
