// The browser build: dist/browser/busmq.js (ESM) and dist/browser/busmq.min.js (a global `busmq`), from
// lib/federation/browser.ts, with readable-stream and the npm buffer, events and process packages in
// place of Node's (the page's own WebSocket and WebCrypto do the rest).
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const root = new URL('../', import.meta.url)
const common = {
  entryPoints: [fileURLToPath(new URL('lib/federation/browser.ts', root))],
  bundle: true,
  platform: 'browser',
  target: ['es2022'],
  inject: [fileURLToPath(new URL('scripts/browser-globals.mjs', root))],
  define: { global: 'globalThis' },
  logLevel: 'warning',
  legalComments: 'none'
}
await build({ ...common, format: 'esm', outfile: fileURLToPath(new URL('dist/browser/busmq.js', root)) })
await build({ ...common, format: 'iife', globalName: 'busmq', minify: true, outfile: fileURLToPath(new URL('dist/browser/busmq.min.js', root)) })
