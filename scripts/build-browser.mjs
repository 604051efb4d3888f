// The browser build: dist/browser/busmq.js (ESM) and dist/browser/busmq.min.js (a global `busmq`), from
// lib/federation/browser.ts; dist/browser/busmq-classic.js (ESM) and busmq-classic.min.js (BusMQ 3.1's
// global function `busmq(url, secret)`), from lib/classic/browser.ts; with readable-stream and the npm
// buffer, events and process packages in place of Node's (the page's own WebSocket and WebCrypto do the rest).
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const root = new URL('../', import.meta.url)
const common = {
  bundle: true,
  platform: 'browser',
  target: ['es2022'],
  inject: [fileURLToPath(new URL('scripts/browser-globals.mjs', root))],
  define: { global: 'globalThis' },
  logLevel: 'warning',
  legalComments: 'none'
}
const native = { ...common, entryPoints: [fileURLToPath(new URL('lib/federation/browser.ts', root))] }
await build({ ...native, format: 'esm', outfile: fileURLToPath(new URL('dist/browser/busmq.js', root)) })
await build({ ...native, format: 'iife', globalName: 'busmq', minify: true, outfile: fileURLToPath(new URL('dist/browser/busmq.min.js', root)) })
const classic = { ...common, entryPoints: [fileURLToPath(new URL('lib/classic/browser.ts', root))] }
await build({ ...classic, format: 'esm', outfile: fileURLToPath(new URL('dist/browser/busmq-classic.js', root)) })
// As 3.1's busmq.min.js: the global `busmq` is the function itself.
await build({
  ...classic,
  format: 'iife',
  globalName: 'busmq',
  footer: { js: 'busmq=busmq.busmq;' },
  minify: true,
  outfile: fileURLToPath(new URL('dist/browser/busmq-classic.min.js', root))
})
