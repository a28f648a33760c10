/**
 * Airtime accounting over a rolling window: how much a transmitter may still be on air under a
 * duty-cycle limit (EU868: 1 % = 36 s per hour, ETSI EN 300 220-2 section 4.2.6). No allocation
 * per packet beyond the small record of each transmission inside the window.
 */
/** One transmission in the window (see DutyCycle.record). */
export interface DutyEntry {
  at: number
  readonly ms: number
}

export class DutyCycle {
  private readonly log: DutyEntry[] = []
  private used = 0

  /**
   * @param share allowed share of time on air, 0..1, or null for no limit
   * @param windowMs length of the rolling window, ms (ETSI: one hour)
   */
  constructor(readonly share: number | null, readonly windowMs = 3_600_000) {
    if (share !== null && !(share > 0 && share <= 1)) throw new TypeError(`duty cycle must be in (0, 1], got ${share}`)
  }

  /** Airtime allowed per window, ms (Infinity without a limit). */
  get budgetMs(): number {
    return this.share === null ? Infinity : this.share * this.windowMs
  }

  private expire(now: number): void {
    while (this.log.length > 0 && this.log[0]!.at + this.windowMs <= now) this.used -= this.log.shift()!.ms
  }

  /** Airtime used in the window ending now, ms. */
  usedMs(now: number): number {
    this.expire(now)
    return this.used
  }

  /** How long to wait before `airtimeMs` more fits in the budget, ms (0: now). */
  waitMs(airtimeMs: number, now: number): number {
    if (this.share === null) return 0
    this.expire(now)
    if (airtimeMs > this.budgetMs) return Infinity
    let excess = this.used + airtimeMs - this.budgetMs
    if (excess <= 0) return 0
    for (const e of this.log) {
      excess -= e.ms
      if (excess <= 0) return e.at + this.windowMs - now
    }
    return this.windowMs
  }

  /** Counts `airtimeMs` starting at `now`; the entry may later be restamped or forgotten. */
  record(airtimeMs: number, now: number): DutyEntry | null {
    if (this.share === null) return null
    const e: DutyEntry = { at: now, ms: airtimeMs }
    this.log.push(e)
    this.used += airtimeMs
    return e
  }

  /**
   * Moves a transmission later, to when it really started (never earlier: the accounting only
   * errs on the safe side). Later entries move with it so the log stays in time order.
   */
  restamp(e: DutyEntry, at: number): void {
    const i = this.log.indexOf(e)
    if (i < 0 || at <= e.at) return
    for (let k = i; k < this.log.length && this.log[k]!.at < at; k++) this.log[k]!.at = at
  }

  /** A transmission that never went on air (the device refused it). */
  forget(e: DutyEntry): void {
    const i = this.log.indexOf(e)
    if (i < 0) return
    this.log.splice(i, 1)
    this.used -= e.ms
  }
}
