/**
 * A binary min-heap of timestamps, for the heartbeat's refreshes: what is due first comes out first, in
 * O(log n), however many queues are attached (a scan of every attachment per call would make a
 * heartbeat of n queues cost O(n²) per period).
 *
 * Removal is lazy: the owner keeps each item's current due time and a sequence number, and a node whose
 * sequence is not the item's current one is skipped when it surfaces.
 */
export interface DueNode<T> {
  item: T
  due: number
  seq: number
}

export class DueHeap<T> {
  private readonly nodes: Array<DueNode<T>> = []

  get size (): number {
    return this.nodes.length
  }

  push (item: T, due: number, seq: number): void {
    const nodes = this.nodes
    nodes.push({ item, due, seq })
    let i = nodes.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (nodes[parent].due <= nodes[i].due) break
      swap(nodes, i, parent)
      i = parent
    }
  }

  peek (): DueNode<T> | undefined {
    return this.nodes[0]
  }

  pop (): DueNode<T> | undefined {
    const nodes = this.nodes
    const top = nodes[0]
    const last = nodes.pop()
    if (top === undefined || last === undefined || nodes.length === 0) return top
    nodes[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let least = i
      if (l < nodes.length && nodes[l].due < nodes[least].due) least = l
      if (r < nodes.length && nodes[r].due < nodes[least].due) least = r
      if (least === i) break
      swap(nodes, i, least)
      i = least
    }
    return top
  }

  clear (): void {
    this.nodes.length = 0
  }
}

function swap<T> (nodes: Array<DueNode<T>>, a: number, b: number): void {
  const t = nodes[a]
  nodes[a] = nodes[b]
  nodes[b] = t
}
