// Injected into the browser build: the globals Node code (readable-stream, BusMQ's codecs) expects.
import { Buffer } from 'buffer'
import process from 'process/browser.js'
export { Buffer, process }
