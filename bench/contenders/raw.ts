/**
 * The physical limit: plain ioredis against the same server. RPUSH of 1000 messages per call and LPOP
 * COUNT 1000, pipelined (up to WINDOW calls per pipeline, DEPTH pipelines in flight); the concurrent
 * reader uses BLMPOP COUNT 1000 on its own connection so it blocks, not spins, when it catches up.
 */
import { Redis } from 'ioredis'
import { bytePayload, byteSeq, type Checker } from '../common.js'
import type { QueueAdapter } from '../job.js'

const PER_CALL = 1000
const WINDOW = 8
const DEPTH = 4

export function rawAdapter (url: string, size: number): QueueAdapter {
  const writer = new Redis(url)
  const reader = new Redis(url)
  const key = (name: string): string => `raw:${name}`

  async function pushAll (name: string, n: number): Promise<void> {
    const k = key(name)
    const inflight: Array<Promise<unknown>> = []
    let seq = 0
    while (seq < n) {
      const p = writer.pipeline()
      for (let c = 0; c < WINDOW && seq < n; c++) {
        const batch: Buffer[] = []
        for (let i = 0; i < PER_CALL && seq < n; i++) batch.push(bytePayload(seq++, size))
        p.rpush(k, ...batch)
      }
      inflight.push(p.exec())
      if (inflight.length >= DEPTH) await inflight.shift()
    }
    await Promise.all(inflight)
  }

  function accept (check: Checker, items: Buffer[] | null | undefined): void {
    if (!items) return
    for (const b of items) check.accept(byteSeq(b, size))
  }

  async function drainAll (name: string, n: number, check: Checker): Promise<void> {
    const k = key(name)
    const calls = Math.ceil(n / PER_CALL)
    const inflight: Array<Promise<Array<[Error | null, any]> | null>> = []
    const settle = async (): Promise<void> => {
      const res = await inflight.shift()!
      for (const [err, items] of res ?? []) {
        if (err) throw err
        accept(check, items)
      }
    }
    for (let c = 0; c < calls;) {
      const p = reader.pipeline()
      for (let w = 0; w < WINDOW && c < calls; w++, c++) p.lpopBuffer(k, PER_CALL)
      inflight.push(p.exec())
      if (inflight.length >= DEPTH) await settle()
    }
    while (inflight.length > 0) await settle()
  }

  async function concurrent (name: string, n: number, check: Checker): Promise<void> {
    const k = key(name)
    const consume = (async () => {
      while (!check.done) {
        const r = await reader.callBuffer('BLMPOP', '1', '1', k, 'LEFT', 'COUNT', String(PER_CALL)) as [Buffer, Buffer[]] | null
        if (r) accept(check, r[1])
      }
    })()
    await Promise.all([pushAll(name, n), consume])
  }

  /**
   * `names.length` queues at once, a writer and a reader each, as this project's many-queues workload
   * runs them, but as plain Redis allows: every queue's writer pushes pipelined RPUSH 1000 on one shared
   * writer connection; one reader pipelines LPOP COUNT 1000 over every queue not finished yet, and when a
   * whole sweep finds nothing, blocks in BLMPOP over those queues (no spinning) until one has data.
   */
  async function many (names: string[], per: number, checks: Checker[]): Promise<void> {
    const keys = names.map(key)
    const consume = (async () => {
      let open = keys.map((_, i) => i)
      while (open.length > 0) {
        const p = reader.pipeline()
        for (const i of open) p.lpopBuffer(keys[i], PER_CALL)
        const res = await p.exec()
        let got = 0
        res?.forEach(([err, items], j) => {
          if (err) throw err
          if (items) got += (items as Buffer[]).length
          accept(checks[open[j]], items as Buffer[] | null)
        })
        open = open.filter((i) => !checks[i].done)
        if (got === 0 && open.length > 0) {
          const r = await reader.callBuffer('BLMPOP', '1', String(open.length), ...open.map((i) => keys[i]), 'LEFT', 'COUNT', String(PER_CALL)) as [Buffer, Buffer[]] | null
          if (r) {
            const i = keys.indexOf(r[0].toString())
            accept(checks[i], r[1])
          }
          open = open.filter((i) => !checks[i].done)
        }
      }
    })()
    await Promise.all([...names.map((name) => pushAll(name, per)), consume])
  }

  return {
    pushAll,
    drainAll,
    concurrent,
    many,
    async close () {
      writer.disconnect()
      reader.disconnect()
    }
  }
}
