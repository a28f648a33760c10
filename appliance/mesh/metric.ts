/**
 * The route metric (docs/mesh.md §Metric). The cost of one hop is the expected time, in ms, to
 * get a 256-byte frame across it, times its ETX, plus 1 so that hop count still breaks ties:
 *
 *     hop cost = ceil(ETX x airtime(256 B) / airtimeAvailable) + 1
 *
 * - airtime(256 B) = 2048 bits / link bit rate, in ms (at least 1 ms of it counted below 1);
 * - airtimeAvailable is the share of a duty-cycled radio's budget still free (1 elsewhere), so a
 *   LoRa link near its duty-cycle limit looks slower and traffic moves to other paths;
 * - ETX = 1 / d², d the share of the neighbour's announces heard over the last window (the
 *   reverse direction is taken as equal: announces are the only traffic known to be periodic).
 * A path's cost is the sum of its hops' costs; it saturates at 2^32 - 1.
 */
export const COST_MAX = 0xffff_ffff
/** Announce intervals an ETX estimate looks back over. */
export const ETX_WINDOW_INTERVALS = 10
/** Worst ETX: below 10% heard, the neighbour is all but gone. */
export const ETX_MAX = 100

export function hopCost(bitrate: number, etx: number, airtimeAvailable = 1): number {
  const airtimeMs = bitrate > 0 ? (2048 * 1000) / bitrate : 1000
  const cost = Math.ceil((Math.max(1, etx) * Math.max(airtimeMs, 0.01)) / Math.max(0.05, Math.min(1, airtimeAvailable))) + 1
  return Math.min(COST_MAX, cost)
}

export function addCost(a: number, b: number): number {
  return Math.min(COST_MAX, a + b)
}

/**
 * Delivery ratio of one neighbour on one link, from the arrival times of its own announces and
 * the interval it says it keeps. Before a full window has passed it counts only the intervals
 * since the first announce heard, so a new neighbour starts at ETX 1.
 */
export class EtxEstimator {
  private arrivals: number[] = []
  private first = -1

  constructor(private readonly now: () => number) {}

  heard(intervalMs: number): void {
    const t = this.now()
    if (this.first < 0) this.first = t
    this.arrivals.push(t)
    const horizon = t - Math.max(1, intervalMs) * ETX_WINDOW_INTERVALS
    while (this.arrivals.length > 0 && this.arrivals[0]! < horizon) this.arrivals.shift()
  }

  /** Share of expected announces heard, 0..1. */
  deliveryRatio(intervalMs: number): number {
    if (intervalMs <= 0 || this.first < 0) return 1
    const t = this.now()
    const window = intervalMs * ETX_WINDOW_INTERVALS
    const since = Math.min(window, t - this.first)
    const expected = Math.max(1, Math.floor(since / intervalMs) + 1)
    const heard = this.arrivals.filter((a) => a >= t - window).length
    return Math.min(1, heard / expected)
  }

  etx(intervalMs: number): number {
    const d = this.deliveryRatio(intervalMs)
    return Math.min(ETX_MAX, 1 / Math.max(0.1, d) ** 2)
  }
}
