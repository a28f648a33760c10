/**
 * Clocks and timers for the emulated radio medium, injectable so that tests can run it in
 * virtual time.
 *
 * A Scheduler counts in milliseconds of *wall* (scheduler) time. The Medium turns that into radio
 * time with its `timeScale` (radio ms = scheduler ms / timeScale).
 */

export interface TimerHandle {
  /** Cancels the timer; harmless after it fired or was cancelled. */
  cancel(): void
}

export interface Scheduler {
  /** Current time, ms (monotonic, arbitrary origin). */
  now(): number
  /** Calls `fn` once after `ms` milliseconds (0 and negative: as soon as possible). */
  setTimeout(fn: () => void, ms: number): TimerHandle
}

/**
 * Real time: performance.now() and the event loop's timers. Node's timers count on the loop's
 * cached millisecond clock and may fire up to a millisecond before performance.now() says the
 * delay is over; at a time scale of 0.01 that is 100 ms of air. So a timer that fires early is
 * set again for the rest: a callback never runs before now() reaches its due time.
 */
export const realScheduler: Scheduler = Object.freeze({
  now: () => performance.now(),
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const due = performance.now() + Math.max(0, ms)
    let h: ReturnType<typeof setTimeout>
    const fire = () => {
      const left = due - performance.now()
      if (left > 0) h = setTimeout(fire, left < 1 ? 1 : left)
      else fn()
    }
    h = setTimeout(fire, Math.max(0, ms))
    return { cancel: () => clearTimeout(h) }
  },
})

interface VirtualTimer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/**
 * Virtual time for tests: nothing happens until the test calls `advance()` / `runAll()`. Timers
 * due at the same instant fire in the order they were set. A timer set by a callback for a time
 * not later than the end of the current `advance()` fires in the same call.
 */
export class VirtualScheduler implements Scheduler {
  #now: number
  #seq = 0
  #timers: VirtualTimer[] = []

  constructor(start = 0) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: VirtualTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false }
    this.#timers.push(timer)
    return {
      cancel: () => {
        timer.cancelled = true
      },
    }
  }

  /** Timers still to fire. */
  get pending(): number {
    return this.#timers.filter((x) => !x.cancelled).length
  }

  /** Time of the next pending timer, or undefined. */
  nextAt(): number | undefined {
    return this.#next()?.at
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new TypeError(`advance: ${ms} is not a non-negative duration`)
    this.advanceTo(this.#now + ms)
  }

  /** Moves time forward to `t`, firing every timer due at or before `t`. */
  advanceTo(t: number): void {
    if (t < this.#now) throw new TypeError(`advanceTo: ${t} is in the past (now ${this.#now})`)
    for (;;) {
      const next = this.#next()
      if (next === undefined || next.at > t) break
      this.#fire(next)
    }
    this.#now = t
  }

  /** Fires timers until none is left (at most `limit`, against runaway loops); returns how many fired. */
  runAll(limit = 100_000): number {
    let n = 0
    for (;;) {
      const next = this.#next()
      if (next === undefined) return n
      if (n++ >= limit) throw new Error(`runAll: more than ${limit} timers fired`)
      this.#fire(next)
    }
  }

  #next(): VirtualTimer | undefined {
    this.#timers = this.#timers.filter((x) => !x.cancelled)
    let best: VirtualTimer | undefined
    for (const x of this.#timers) if (best === undefined || x.at < best.at || (x.at === best.at && x.seq < best.seq)) best = x
    return best
  }

  #fire(timer: VirtualTimer): void {
    timer.cancelled = true
    this.#now = Math.max(this.#now, timer.at)
    timer.fn()
  }
}
