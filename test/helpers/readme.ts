import fs from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The repository root (this file runs as dist/test/helpers/readme.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))
export const README = fileURLToPath(new URL('../../../README.md', import.meta.url))

/** A fenced code block of README.md. */
export interface CodeBlock {
  /** Its language: the word after the opening fence (`js`, `ts`, `sh`, or '' for none). */
  lang: string
  /** 1-based line of the opening fence in README.md, to name the block in failures. */
  line: number
  code: string
  /** Whether it calls require(), so it runs as CommonJS; every other js block runs as an ES module. */
  commonjs: boolean
  /**
   * What it must print (stdout), when the block is followed by a comment `<!-- output: … -->` (which
   * GitHub does not render).
   */
  output?: string
}

/** Every fenced code block of README.md, in order. */
export function readmeBlocks (file = README): CodeBlock[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n')
  const blocks: CodeBlock[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i])
    if (!open) continue
    const start = i
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i])
    if (i >= lines.length) throw new Error(`README.md:${start + 1}: code block never closed`)
    const code = body.join('\n') + '\n'
    const block: CodeBlock = { lang: open[1], line: start + 1, code, commonjs: /\brequire\(/.test(code) }
    let j = i + 1
    while (j < lines.length && lines[j].trim() === '') j++
    if (j < lines.length && /^<!-- output:\s*$/.test(lines[j])) {
      const out: string[] = []
      for (j++; j < lines.length && lines[j] !== '-->'; j++) out.push(lines[j])
      if (j >= lines.length) throw new Error(`README.md:${j}: output comment never closed`)
      block.output = out.join('\n') + '\n'
    }
    blocks.push(block)
  }
  return blocks
}

/** The JavaScript blocks, which must run as written. */
export function readmeJsBlocks (file = README): CodeBlock[] {
  return readmeBlocks(file).filter((b) => b.lang === 'js')
}
