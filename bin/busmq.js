#!/usr/bin/env node
// The busmq executable; the CLI itself is lib/cli/ (built into dist/lib/cli/).
import { run } from '../dist/lib/cli/main.js'

await run()
