// `npm run build` starts from an empty dist/: nothing left over from an earlier build (a renamed script,
// a deleted module) can be packed, registered or tested.
import { rmSync } from 'node:fs'
rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true })
