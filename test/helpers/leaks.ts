// Fails a test file that leaves something holding its event loop once its last test and hook are done:
// a connection still open, a server still listening, a child process, a pending timer. Such a leak would
// keep the file's process alive until the runner's timeout; here it fails the file instead, naming what
// leaked. Installed once, at the first import (every helper that opens connections imports this module).
import { after, type TestContext } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'

/** How long closing sockets and exiting children get to disappear after the last hook. */
const GRACE_MS = 5000

type Handle = object & { unref?: () => unknown }

/** What holds the event loop besides this process's own stdio (undocumented, but the only handle list). */
function handles (): Handle[] {
  const all = (process as unknown as { _getActiveHandles: () => Handle[] })._getActiveHandles()
  return all.filter((h) => h !== process.stdout && h !== process.stderr && h !== process.stdin)
}

function describe (h: Handle): string {
  const any = h as Record<string, any>
  switch (h.constructor?.name) {
    case 'Socket':
    case 'TLSSocket':
      return any.remotePort !== undefined
        ? `a ${h.constructor.name} connected to ${String(any.remoteAddress)}:${String(any.remotePort)}`
        : `a ${h.constructor.name} (${any.connecting === true ? 'connecting' : 'not connected'})`
    case 'Server':
      return `a server listening on ${JSON.stringify(any.address?.())}`
    case 'ChildProcess':
      return `child process ${String(any.pid)} (${(any.spawnargs as string[] | undefined)?.join(' ') ?? '?'})`
    default:
      return `a ${String(h.constructor?.name ?? typeof h)}`
  }
}

function leftovers (): string[] {
  const out = handles().map(describe)
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'Timeout') out.push('a timer (setTimeout or setInterval not cleared, not unref()ed)')
    if (r === 'Immediate') out.push('a setImmediate')
  }
  return out
}

async function checkLeaks (): Promise<void> {
  const deadline = Date.now() + GRACE_MS
  let left = leftovers()
  while (left.length > 0 && Date.now() < deadline) {
    await delay(50)
    left = leftovers()
  }
  if (left.length === 0) return
  const report = `${process.argv[1]}: after its last test, ${left.length} handle(s) still hold the process open:\n  ` +
    left.join('\n  ')
  // The node:test runner reports a failed file by its exit code; the error below is also reported
  // where the runner does report hook failures.
  process.exitCode = 1
  process.stderr.write(`\nLEAK: ${report}\n`)
  // The failure is on record. What leaked would keep this process alive until the runner's timeout:
  // let go of what can be let go of, and end the process if a timer chain (a client reconnecting) still
  // holds it. This runs only after the leak was reported as a failure, so it hides nothing.
  for (const h of handles()) h.unref?.()
  setTimeout(() => process.exit(1), 2000).unref()
  throw new Error(report)
}

// Registered at the root when this module is first evaluated (at import time, before the file's own
// hooks); its first act appends the check to the root's after hooks, so the check runs last, once the
// file's own after hooks (closing buses, disposing servers) are done.
after((t) => { (t as TestContext).after(checkLeaks) })
