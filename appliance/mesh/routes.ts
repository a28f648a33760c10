/**
 * The route table: for every destination node, the paths heard in its signed announces, one per
 * (link, next hop), and the best of them by cost (metric.ts).
 *
 * - A path is offered each time an announce from the destination arrives; the announce's own
 *   timestamp orders them, so a stale copy (from a loop or a slow path) never replaces a newer one
 *   on the same (link, next hop).
 * - A path lives for `lifetimeMs` after its last refresh (3.5 announce intervals of its
 *   destination): a destination that stops announcing, or a neighbour that stops relaying it,
 *   drops out by itself.
 * - A dead link removes its paths at once (`dropLink`), and the next best takes over: failover
 *   costs no waiting for expiry.
 * - Loops: a path is selectable only if it is *feasible* (the node decides, Babel's rule): it came
 *   straight from the destination, or it is cheaper than every copy of the same announce heard
 *   before. A neighbour that got the announce from us can only offer it back at a higher cost,
 *   so it can never become our next hop for it. An infeasible path is kept as a spare and
 *   becomes feasible with the destination's next announce.
 * - Freshness: once a newer announce of a destination has arrived by another path, a path that
 *   has not been refreshed for a grace period (lifetime / 7, at most 2 s) is no longer selected:
 *   a path that stopped carrying the destination's announces (a dead relay behind a live link) is
 *   left within the grace period, not at its expiry.
 * - Hysteresis: the best path changes to another only when that one is cheaper by more than 10%
 *   (or the best one went away), so two near-equal paths do not flap.
 */
export interface RouteCandidate {
  /** Destination node ID, hex. */
  dst: string
  link: string
  /** Link-level address of the next hop ('host:port', a MAC, 'hop:<hint>'), '' on a point-to-point link. */
  nextHop: string
  /** Node ID of the next hop when known (hex), else ''. */
  via: string
  cost: number
  hops: number
  /** The announce's own timestamp (ms since the epoch). */
  timestamp: number
  /** Selectable (see above); infeasible paths are spares. */
  feasible: boolean
  updatedAt: number
  expiresAt: number
}

export interface RouteChange {
  dst: string
  before: RouteCandidate | null
  after: RouteCandidate | null
}

const HYSTERESIS = 0.9

export class RouteTable {
  private readonly paths = new Map<string, Map<string, RouteCandidate>>()
  private readonly best = new Map<string, RouteCandidate>()
  /** Newest announce timestamp per destination, and the grace period of its paths. */
  private readonly newest = new Map<string, { ts: number; graceMs: number }>()

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Offers a path; returns the change of the best route, or null when it did not change. */
  offer(c: Omit<RouteCandidate, 'updatedAt' | 'expiresAt'>, lifetimeMs: number): RouteChange | null {
    const t = this.now()
    let m = this.paths.get(c.dst)
    if (m === undefined) {
      m = new Map()
      this.paths.set(c.dst, m)
    }
    const key = `${c.link}|${c.nextHop}`
    const old = m.get(key)
    if (old !== undefined && c.timestamp < old.timestamp) return null
    if (old !== undefined && c.timestamp === old.timestamp && c.cost >= old.cost) {
      old.expiresAt = Math.max(old.expiresAt, t + lifetimeMs)
      return null
    }
    m.set(key, { ...c, updatedAt: t, expiresAt: t + lifetimeMs })
    const n = this.newest.get(c.dst)
    if (n === undefined || c.timestamp > n.ts) this.newest.set(c.dst, { ts: c.timestamp, graceMs: Math.min(2000, lifetimeMs / 7) })
    return this.reselect(c.dst)
  }

  /** The route to `dst`, or undefined. */
  lookup(dst: string): RouteCandidate | undefined {
    const r = this.best.get(dst)
    if (r !== undefined && r.expiresAt <= this.now()) {
      this.expire()
      return this.best.get(dst)
    }
    return r
  }

  /** Removes every path over `link`; returns the changes. */
  dropLink(link: string): RouteChange[] {
    return this.dropWhere((c) => c.link === link)
  }

  /** Removes every path through the neighbour at (link, nextHop). */
  dropNextHop(link: string, nextHop: string): RouteChange[] {
    return this.dropWhere((c) => c.link === link && c.nextHop === nextHop)
  }

  /** Removes expired paths and leaves stale ones; returns the changes. */
  expire(): RouteChange[] {
    const t = this.now()
    const changes = this.dropWhere((c) => c.expiresAt <= t)
    for (const dst of this.paths.keys()) {
      const ch = this.reselect(dst)
      if (ch !== null) changes.push(ch)
    }
    return changes
  }

  routes(): RouteCandidate[] {
    return [...this.best.values()].sort((a, b) => a.dst.localeCompare(b.dst))
  }

  get size(): number {
    return this.best.size
  }

  private dropWhere(pred: (c: RouteCandidate) => boolean): RouteChange[] {
    const changes: RouteChange[] = []
    for (const [dst, m] of this.paths) {
      let touched = false
      for (const [k, c] of m) {
        if (pred(c)) {
          m.delete(k)
          touched = true
        }
      }
      if (!touched) continue
      if (m.size === 0) {
        this.paths.delete(dst)
        this.newest.delete(dst)
      }
      const ch = this.reselect(dst)
      if (ch !== null) changes.push(ch)
    }
    return changes
  }

  private reselect(dst: string): RouteChange | null {
    const m = this.paths.get(dst)
    const before = this.best.get(dst) ?? null
    const n = this.newest.get(dst)
    const t = this.now()
    const eligible = (c: RouteCandidate) => c.feasible && (n === undefined || c.timestamp >= n.ts || t - c.updatedAt < n.graceMs)
    let winner: RouteCandidate | null = null
    for (const c of m?.values() ?? []) if (eligible(c) && (winner === null || c.cost < winner.cost)) winner = c
    // Keep the current path unless the winner is clearly better (or the current one is gone).
    const cur = before === null ? undefined : m?.get(`${before.link}|${before.nextHop}`)
    const current = cur !== undefined && eligible(cur) ? cur : undefined
    if (current !== undefined && winner !== null && winner !== current && winner.cost > current.cost * HYSTERESIS) winner = current
    if (winner === null) {
      if (before === null) return null
      this.best.delete(dst)
      return { dst, before, after: null }
    }
    this.best.set(dst, winner)
    if (before !== null && before.link === winner.link && before.nextHop === winner.nextHop && before.cost === winner.cost) return null
    return { dst, before, after: winner }
  }
}
