/**
 * A per-link budget for traffic a gateway sends on behalf of others (relayed frames, flood
 * rebroadcasts): a token bucket of `bytesPerS`, holding at most `burstS` seconds of it. A link
 * with no budget (0) is unlimited. Traffic the gateway originates is not charged here: the link's
 * own queue and duty cycle pace it.
 */
export class TokenBucket {
  private tokens: number
  private last: number
  refused = 0
  refusedBytes = 0

  constructor(
    readonly bytesPerS: number,
    private readonly burstS = 2,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = bytesPerS * burstS
    this.last = now()
  }

  take(bytes: number): boolean {
    if (this.bytesPerS <= 0) return true
    const t = this.now()
    this.tokens = Math.min(this.bytesPerS * this.burstS, this.tokens + ((t - this.last) / 1000) * this.bytesPerS)
    this.last = t
    if (this.tokens < bytes) {
      this.refused++
      this.refusedBytes += bytes
      return false
    }
    this.tokens -= bytes
    return true
  }
}
