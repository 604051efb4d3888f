// A fixture process (test/fixtures/*.ts, compiled next to the tests) whose stdout is JSON lines.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { eventually } from './bus.js'

export interface Fixture {
  child: ChildProcess
  /** Every stdout line so far, parsed as JSON ({ text } when it is not JSON). */
  lines: any[]
  stderr: () => string
  /** Resolves with the first line (already seen or to come) that matches, or rejects after `ms`. */
  line: (match: (l: any) => boolean, ms?: number) => Promise<any>
  /** Writes one JSON line to its stdin. */
  send: (message: unknown) => void
  exited: Promise<[number | null, NodeJS.Signals | null]>
}

/** Starts `node dist/test/fixtures/<file> ...args`; it is SIGKILLed after the test if still running. */
export function fixture (t: TestContext, file: string, args: string[]): Fixture {
  const script = fileURLToPath(new URL(`../fixtures/${file}`, import.meta.url))
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const lines: any[] = []
  let err = ''
  child.stderr!.on('data', (d) => { err += d })
  // A child that exits while the test still writes to it must not fail the test with EPIPE.
  child.stdin!.on('error', () => {})
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const rl = createInterface({ input: child.stdout! })
  rl.on('line', (l) => {
    try {
      lines.push(JSON.parse(l))
    } catch {
      lines.push({ text: l })
    }
  })
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const line = async (match: (l: any) => boolean, ms = 20_000): Promise<any> => {
    const ok = await eventually(() => lines.some(match) || child.exitCode !== null || child.signalCode !== null, ms)
    const found = lines.find(match)
    if (!ok || found === undefined) {
      throw new Error(`${file}: no matching line within ${ms} ms; lines: ${JSON.stringify(lines).slice(0, 500)}; stderr: ${err.slice(0, 1000)}`)
    }
    return found
  }
  const send = (message: unknown): void => { child.stdin!.write(JSON.stringify(message) + '\n') }
  return { child, lines, stderr: () => err, line, send, exited }
}
