// Headless Chromium (Debian's package, /usr/bin/chromium) driven by playwright-core. Nothing downloads a
// browser: the system binary is used, with a fresh profile in a temp dir, and every process it started
// is killed by pid when the test is done, also when it fails.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM = process.env.BUSMQ_CHROMIUM ?? '/usr/bin/chromium'

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']

export interface Browser {
  page: Page
  context: BrowserContext
  /** Closes the browser, kills whatever of it is left (by pid) and removes its profile. Idempotent. */
  close: () => Promise<void>
}

/** Pids of the processes whose parent is `pid`, recursively. */
function descendants (pid: number): number[] {
  let out = ''
  try {
    out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
  } catch {
    return []
  }
  const children = out.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0)
  return children.flatMap((c) => [c, ...descendants(c)])
}

export async function openBrowser (): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (or set BUSMQ_CHROMIUM)`)
  const before = new Set(descendants(process.pid))
  const profile = mkdtempSync(path.join(os.tmpdir(), 'busmq-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1440, height: 1000 }
  })
  // The browser: the children of this process that its launch started (its renderers are theirs).
  const pids = descendants(process.pid).filter((p) => !before.has(p))
  const page = context.pages()[0] ?? await context.newPage()
  let closed = false
  return {
    page,
    context,
    close: async () => {
      if (closed) return
      closed = true
      await Promise.race([context.close().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 5000))])
      for (const pid of pids.flatMap((p) => [p, ...descendants(p)])) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch { /* gone already */ }
      }
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

/** Where tests save what a person would look at (screenshots); gitignored. */
export function artifactPath (name: string): string {
  const dir = path.resolve(process.env.BUSMQ_TEST_ARTIFACTS ?? 'test-artifacts')
  rmSync(path.join(dir, name), { force: true })
  mkdirSync(dir, { recursive: true })
  return path.join(dir, name)
}
