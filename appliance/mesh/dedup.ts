/**
 * Duplicate suppression for relayed frames: remembers keys for at least `windowMs` and at most
 * 2 x windowMs, in two generations of Sets (no per-key timers). When a generation reaches
 * `maxKeys` it rotates early, so memory stays bounded under a flood; a duplicate older than the
 * current generation may then pass once, and the end-to-end replay window drops it.
 */
export class DuplicateFilter {
  private current = new Set<string>()
  private previous = new Set<string>()
  private rotatedAt: number
  suppressed = 0

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.rotatedAt = now()
  }

  /** True the first time `key` is seen within the window; false for a duplicate. */
  firstSeen(key: string): boolean {
    const t = this.now()
    if (t - this.rotatedAt >= this.windowMs || this.current.size >= this.maxKeys) {
      this.previous = this.current
      this.current = new Set()
      this.rotatedAt = t
    }
    if (this.current.has(key) || this.previous.has(key)) {
      this.suppressed++
      return false
    }
    this.current.add(key)
    return true
  }

  get size(): number {
    return this.current.size + this.previous.size
  }
}
