/**
 * Recording policy violations without letting a flood fill the disk.
 *
 * Every violation is offered to record(); at most `perMinute` entries reach the sink (the VoV
 * log) in any 60 s, counted with a ring of the last `perMinute` write times: an entry may be
 * written when the write `perMinute` writes ago is at least 60 s old. That bounds every sliding
 * minute, not just aligned ones, and costs one number per slot.
 *
 * What is not written is counted: how many, per violation, per link and per peer (the 16 busiest
 * of at most 1024 distinct peers, the rest as `other_peers`), and the first and last time. The
 * next entry written carries that summary as its `suppressed` field, so a flood costs no entry of
 * its own while violations keep coming and the record keeps showing real violations. flush()
 * writes a pending summary as an entry of its own (`policy_violations_suppressed`) when the
 * budget allows (the daemon calls it every minute, so a flood that stops is still summarised
 * soon) and, with `force`, regardless of the budget (at shutdown).
 *
 * The sink must not throw into the relay path: an exception from it is counted (stats) and the
 * entry is lost, as a write to a full disk would be.
 */
import { packetTypeName } from '../core/wire/constants.js'
import type { PolicySubject, Verdict } from './engine.js'

export interface ViolationEvent {
  subject: PolicySubject
  verdict: Verdict
  /** The policy's name (Policy.name), for the record. */
  policy?: string | null
}

export interface ViolationRecorderOptions {
  /** Most entries written in any 60 s (1..100000). */
  perMinute: number
  sink: (entry: Record<string, unknown>) => void
  /** Clock, ms (default Date.now). */
  now?: () => number
}

export const RECORDER_WINDOW_MS = 60_000
/** Distinct peers counted by name while suppressing; the rest are `others`. */
const MAX_PEERS_COUNTED = 1024
const MAX_LINKS_COUNTED = 64
/** Peers named in a summary. */
const TOP_PEERS = 16

export interface RecorderStats {
  /** Violations offered to record(). */
  recorded: number
  /** Violation entries written. */
  written: number
  /** Violations not written, in total. */
  suppressed: number
  /** Summaries written as entries of their own (by flush). */
  summaries: number
  /** Sink calls that threw. */
  sinkErrors: number
}

export class ViolationRecorder {
  private readonly perMinute: number
  private readonly sink: (entry: Record<string, unknown>) => void
  private readonly now: () => number
  /** Times of the last `perMinute` writes; oldest at `head`. */
  private readonly ring: Float64Array
  private head = 0
  // What is suppressed since the last summary.
  private pending = 0
  private pendingFirst = 0
  private pendingLast = 0
  private pendingByViolation = new Map<string, number>()
  private pendingByLink = new Map<string, number>()
  private pendingByPeer = new Map<string, number>()
  private pendingOtherPeers = 0
  private readonly st: RecorderStats = { recorded: 0, written: 0, suppressed: 0, summaries: 0, sinkErrors: 0 }

  constructor(opts: ViolationRecorderOptions) {
    if (!(Number.isSafeInteger(opts.perMinute) && opts.perMinute >= 1 && opts.perMinute <= 100_000)) throw new TypeError(`perMinute must be a whole number 1..100000, got ${String(opts.perMinute)}`)
    if (typeof opts.sink !== 'function') throw new TypeError('sink must be a function')
    this.perMinute = opts.perMinute
    this.sink = opts.sink
    this.now = opts.now ?? Date.now
    this.ring = new Float64Array(opts.perMinute).fill(-Infinity)
  }

  get stats(): RecorderStats {
    return { ...this.st }
  }

  /** Violations waiting to be summarised. */
  get suppressedPending(): number {
    return this.pending
  }

  /** Records one violation: writes it, or counts it for the next summary. True when written. */
  record(v: ViolationEvent): boolean {
    this.st.recorded++
    const now = this.now()
    if (this.slotFree(now)) {
      const entry = violationEntry(v)
      if (this.pending > 0) entry.suppressed = this.takeSummary()
      this.take(now)
      this.st.written++
      this.emit(entry)
      return true
    }
    this.suppress(v, now)
    return false
  }

  /** Writes the pending summary if the budget allows, or anyway with `force`. True when written. */
  flush(force = false): boolean {
    if (this.pending === 0) return false
    const now = this.now()
    if (!force && !this.slotFree(now)) return false
    const entry = { event: 'policy_violations_suppressed', suppressed: this.takeSummary() }
    this.take(now)
    this.st.summaries++
    this.emit(entry)
    return true
  }

  private slotFree(now: number): boolean {
    return now - this.ring[this.head]! >= RECORDER_WINDOW_MS
  }

  private take(now: number): void {
    this.ring[this.head] = now
    this.head = (this.head + 1) % this.perMinute
  }

  private emit(entry: Record<string, unknown>): void {
    try {
      this.sink(entry)
    } catch {
      this.st.sinkErrors++
    }
  }

  private suppress(v: ViolationEvent, now: number): void {
    this.st.suppressed++
    if (this.pending === 0) this.pendingFirst = now
    this.pending++
    this.pendingLast = now
    const violation = v.verdict.violation ?? 'unknown'
    this.pendingByViolation.set(violation, (this.pendingByViolation.get(violation) ?? 0) + 1)
    const link = String(v.subject.link)
    if (this.pendingByLink.has(link) || this.pendingByLink.size < MAX_LINKS_COUNTED) this.pendingByLink.set(link, (this.pendingByLink.get(link) ?? 0) + 1)
    const peer = v.subject.peer ?? v.subject.via
    if (peer !== null && (this.pendingByPeer.has(peer) || this.pendingByPeer.size < MAX_PEERS_COUNTED)) this.pendingByPeer.set(peer, (this.pendingByPeer.get(peer) ?? 0) + 1)
    else this.pendingOtherPeers++
  }

  /** The summary of what is pending, which is then cleared. */
  private takeSummary(): Record<string, unknown> {
    const peers = [...this.pendingByPeer].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    const top = peers.slice(0, TOP_PEERS)
    const others = this.pendingOtherPeers + peers.slice(TOP_PEERS).reduce((n, [, c]) => n + c, 0)
    const summary: Record<string, unknown> = {
      count: this.pending,
      first_at: new Date(this.pendingFirst).toISOString(),
      last_at: new Date(this.pendingLast).toISOString(),
      per_minute: this.perMinute,
      by_violation: Object.fromEntries(this.pendingByViolation),
      by_link: Object.fromEntries(this.pendingByLink),
      by_peer: Object.fromEntries(top),
      ...(others > 0 && { other_peers: others }),
    }
    this.pending = 0
    this.pendingByViolation = new Map()
    this.pendingByLink = new Map()
    this.pendingByPeer = new Map()
    this.pendingOtherPeers = 0
    return summary
  }
}

/** The entry of one violation: snake_case, bounded in size, no payload. */
export function violationEntry(v: ViolationEvent): Record<string, unknown> {
  const { subject: s, verdict: d } = v
  const type = Number.isInteger(s.type) && s.type >= 0 && s.type <= 255 ? packetTypeName(s.type) : String(s.type)
  return {
    event: 'policy_violation',
    ...(v.policy != null && { policy: v.policy }),
    violation: d.violation ?? 'unknown',
    rule: d.rule ?? null,
    detail: d.detail === undefined ? null : d.detail.length > 300 ? d.detail.slice(0, 300) + '…' : d.detail,
    action: actionText(d),
    ...(d.blockPeerMs !== undefined && { block_peer_s: d.blockPeerMs / 1000 }),
    path: s.path,
    type,
    peer: s.peer,
    via: s.via,
    link: s.link,
    bytes: s.bytes,
    trust: s.trust,
  }
}

/** `drop`, `drop+block_peer`, `drop+disconnect_link`, `drop+block_peer+disconnect_link`. */
function actionText(d: Verdict): string {
  return 'drop' + (d.blockPeerMs !== undefined ? '+block_peer' : '') + (d.disconnectLink ? '+disconnect_link' : '')
}
