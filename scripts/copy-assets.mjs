// Copies the dashboard's page (plain HTML, CSS and JavaScript: nothing to build) next to the compiled
// module that serves it.
import { cpSync } from 'node:fs'
cpSync(new URL('../lib/dashboard/page.html', import.meta.url), new URL('../dist/lib/dashboard/page.html', import.meta.url))
