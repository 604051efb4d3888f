/**
 * A binary min-heap of items by due time, for the heartbeat's refreshes: what is due first comes out
 * first, in O(log n), however many queues are attached (a scan of every attachment per call would make a
 * heartbeat of n queues cost O(n²) per period).
 *
 * Intrusive: an item keeps its own due time and its place in the heap (`heapIndex`, -1 when it is not in
 * it), so rescheduling moves it in place and nothing is allocated per refresh. (A node object per
 * refresh, alive for a whole period, was most of what 100,000 attached queues made the garbage
 * collector promote.)
 */
export interface DueItem {
  due: number
  heapIndex: number
}

export class DueHeap<T extends DueItem> {
  private readonly items: T[] = []

  get size (): number {
    return this.items.length
  }

  /** Puts `item` in the heap due at `due`, or moves it there if it is in already. */
  set (item: T, due: number): void {
    item.due = due
    if (item.heapIndex < 0) {
      item.heapIndex = this.items.length
      this.items.push(item)
    }
    this.up(this.down(item.heapIndex))
  }

  /** Takes `item` out of the heap (nothing if it is not in it). */
  delete (item: T): void {
    const i = item.heapIndex
    if (i < 0) return
    item.heapIndex = -1
    const last = this.items.pop()!
    if (last === item) return
    this.items[i] = last
    last.heapIndex = i
    this.up(this.down(i))
  }

  peek (): T | undefined {
    return this.items[0]
  }

  pop (): T | undefined {
    const top = this.items[0]
    if (top !== undefined) this.delete(top)
    return top
  }

  clear (): void {
    for (const item of this.items) item.heapIndex = -1
    this.items.length = 0
  }

  private up (i: number): number {
    const items = this.items
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent].due <= items[i].due) break
      this.swap(i, parent)
      i = parent
    }
    return i
  }

  private down (i: number): number {
    const items = this.items
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let least = i
      if (l < items.length && items[l].due < items[least].due) least = l
      if (r < items.length && items[r].due < items[least].due) least = r
      if (least === i) return i
      this.swap(i, least)
      i = least
    }
  }

  private swap (a: number, b: number): void {
    const items = this.items
    const t = items[a]
    items[a] = items[b]
    items[b] = t
    items[a].heapIndex = a
    items[b].heapIndex = b
  }
}
