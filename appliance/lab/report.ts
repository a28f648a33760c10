/**
 * The lab report: what was sent, what arrived where, how long it took. Pure functions over the
 * send log and the destinations' inboxes, so that percentiles, duplicates and losses are
 * unit-tested.
 */

/** One message the lab asked a source gateway to send. */
export interface SentMessage {
  /** Position in the run's traffic (0-based). */
  index: number
  from: string
  to: string
  /** Message id the source's `send` returned; undefined when the send was refused. */
  id?: string
  /** ms epoch when the lab called `send`. */
  sent_at: number
  /** accepted_at of the `send` result. */
  accepted_at?: number
  /** When in the run it was sent: before/during/after a partition or a kill. */
  phase: Phase
  /** Sent while the --partition segment was cut. */
  cut?: boolean
  /** Sent while the --kill gateway was down (or held back until it was back, when it is the source). */
  down?: boolean
  /** Why `send` failed (refused messages are not counted as sent). */
  error?: string
}

export type Phase = 'steady' | 'partition' | 'healed' | 'down' | 'restarted'

/** One message of a destination's inbox (`messages` result). */
export interface InboxMessage {
  cursor?: number
  id: string
  from?: string
  type?: string
  bytes?: number
  received_at: number
}

export interface Latency {
  p50: number | null
  p99: number | null
  max: number | null
  mean: number | null
}

export interface MessageCounts {
  /** Accepted by a source (`send` returned an id). */
  sent: number
  /** Distinct sent ids found in their destination's inbox. */
  delivered: number
  /** Sent ids that appear more than once in their destination's inbox. */
  duplicates: number
  /** Extra copies beyond the first, over all duplicated ids. */
  duplicate_copies: number
  /** sent − delivered. */
  lost: number
  /** `send` calls that failed (not accepted, so neither lost nor delivered). */
  refused: number
  /** Sent ids that turned up in some other gateway's inbox. */
  misdelivered: number
}

export interface DeliveryResult {
  messages: MessageCounts
  latency_ms: Latency
  /** Ids sent but not delivered, with their source and destination. */
  missing: Array<{ index: number; id: string; from: string; to: string; phase: Phase }>
  /** Per sent id: first receive time at its destination. */
  receivedAt: Map<string, number>
}

/**
 * Nearest-rank percentile of ascending `sorted` (p in 0..100): the smallest value with at least
 * p % of the values at or below it. Null for an empty list.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (!(p >= 0 && p <= 100)) throw new TypeError(`percentile ${p} is not in 0..100`)
  if (sorted.length === 0) return null
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

export function latencyOf(values: readonly number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10)
  return {
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length === 0 ? null : sorted[sorted.length - 1]!),
    mean: round(sorted.length === 0 ? null : sorted.reduce((a, b) => a + b, 0) / sorted.length),
  }
}

/**
 * Counts delivery of `sent` given every gateway's inbox (`inboxes`: gateway name → its messages,
 * in arrival order). Latency is first receipt at the destination minus the lab's send time.
 */
export function computeDelivery(sent: readonly SentMessage[], inboxes: ReadonlyMap<string, readonly InboxMessage[]>): DeliveryResult {
  const accepted = sent.filter((m): m is SentMessage & { id: string } => m.id !== undefined)
  const counts = new Map<string, Map<string, { n: number; first: number }>>()
  for (const [gw, msgs] of inboxes) {
    const c = new Map<string, { n: number; first: number }>()
    for (const m of msgs) {
      const e = c.get(m.id)
      if (e === undefined) c.set(m.id, { n: 1, first: m.received_at })
      else {
        e.n++
        e.first = Math.min(e.first, m.received_at)
      }
    }
    counts.set(gw, c)
  }
  let delivered = 0
  let duplicates = 0
  let copies = 0
  let misdelivered = 0
  const latencies: number[] = []
  const missing: DeliveryResult['missing'] = []
  const receivedAt = new Map<string, number>()
  for (const m of accepted) {
    const at = counts.get(m.to)?.get(m.id)
    if (at === undefined) missing.push({ index: m.index, id: m.id, from: m.from, to: m.to, phase: m.phase })
    else {
      delivered++
      receivedAt.set(m.id, at.first)
      latencies.push(Math.max(0, at.first - m.sent_at))
      if (at.n > 1) {
        duplicates++
        copies += at.n - 1
      }
    }
    for (const [gw, c] of counts) if (gw !== m.to && c.has(m.id)) misdelivered++
  }
  return {
    messages: { sent: accepted.length, delivered, duplicates, duplicate_copies: copies, lost: accepted.length - delivered, refused: sent.length - accepted.length, misdelivered },
    latency_ms: latencyOf(latencies),
    missing,
    receivedAt,
  }
}

/** One row per field of the report, aligned, for the terminal. */
export function summaryTable(report: LabReport): string {
  const m = report.messages
  const l = report.latency_ms
  const ms = (x: number | null) => (x === null ? '-' : `${x} ms`)
  const rows: Array<[string, string]> = [
    ['topology', `${report.topology} (${report.gateways.length} gateways: ${report.gateways.map((g) => g.name).join(', ')})`],
    ['messages', `${m.sent} sent, ${m.delivered} delivered, ${m.lost} lost, ${m.duplicates} duplicated${m.refused > 0 ? `, ${m.refused} refused by the source` : ''}${m.misdelivered > 0 ? `, ${m.misdelivered} at the wrong gateway` : ''}`],
    ['latency', `p50 ${ms(l.p50)}, p99 ${ms(l.p99)}, max ${ms(l.max)}`],
    ['converged', `${report.converge_ms} ms after the last gateway was ready`],
  ]
  if (report.partition !== undefined) {
    const p = report.partition
    rows.push(['partition', `${p.segment} (${p.kind}, ${p.method}) cut ${p.duration_ms} ms; ${p.sent_during.length} sent during it: ${p.delivered_after_heal} delivered after the heal${p.delivered_before_heal > 0 ? `, ${p.delivered_before_heal} before it` : ''}${p.undelivered.length > 0 ? `, ${p.undelivered.length} NOT delivered` : ''}${p.recovered_ms !== null ? ` (the last ${p.recovered_ms} ms after the heal)` : ''}`])
  }
  if (report.kill !== undefined) {
    const k = report.kill
    rows.push(['kill', `${k.node} (pid ${k.pid_before}) SIGKILLed, restarted as pid ${k.pid_after ?? '-'} after ${k.down_ms} ms (ready ${k.ready_ms ?? '-'} ms later${k.same_node_id === false ? ', ANOTHER node_id' : ''}); ${k.sent_while_down.length} sent while down: ${k.delivered} delivered${k.undelivered.length > 0 ? `, ${k.undelivered.length} NOT delivered` : ''}`])
  }
  for (const [name, s] of Object.entries(report.links)) {
    const st = s as Record<string, unknown>
    const num = (k: string) => (typeof st[k] === 'number' ? String(st[k]) : '-')
    rows.push([`link ${name}`, `${String(st.kind ?? '?')} ${String(st.state ?? '?')}: ${num('framesOut')} frames out, ${num('framesIn')} in`])
  }
  for (const [seg, radios] of Object.entries(report.air ?? {})) {
    for (const [node, a] of Object.entries(radios)) {
      const lost = a.lostHalfDuplex + a.lostCollision + a.lostLoss + a.lostOther
      rows.push([`air ${seg}/${node}`, `${a.txFrames} frames sent (${(a.txAirtimeMs / 1000).toFixed(1)} s on air), ${a.rxFrames} heard, ${lost} missed${lost > 0 ? ` (${a.lostHalfDuplex} while transmitting, ${a.lostCollision} collisions, ${a.lostLoss} segment loss${a.lostOther > 0 ? `, ${a.lostOther} other` : ''})` : ''}`])
    }
  }
  rows.push(['duration', `${(report.duration_ms / 1000).toFixed(1)} s`])
  rows.push(['result', report.ok ? 'ok: nothing lost, nothing duplicated' : `FAILED: ${report.problems.join('; ')}`])
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n'
}

export interface PartitionReport {
  segment: string
  kind: string
  /** How the segment was cut: `link-down` (ip link set down on both veth ends), `netem-loss` (100 % loss), `radio-out-of-range` (emulated medium). */
  method: string
  cut_at: number
  healed_at: number
  duration_ms: number
  /** Indexes of the messages sent while the segment was cut. */
  sent_during: number[]
  /** How many of them reached their destination after the heal (all of them is the pass mark). */
  delivered_after_heal: number
  /** How many arrived while the segment was still cut (a path around it, or the cut did not hold). */
  delivered_before_heal: number
  /** Indexes of those sent during the cut that never arrived. */
  undelivered: number[]
  /** ms from the heal until the last of them arrived. */
  recovered_ms: number | null
}

export interface KillReport {
  node: string
  pid_before: number
  pid_after: number | null
  killed_at: number
  restarted_at: number | null
  down_ms: number
  /** ms from the restart until the gateway printed `ready` again. */
  ready_ms: number | null
  /** Indexes of the messages sent while it was down (those it was to send: held back until it was back). */
  sent_while_down: number[]
  /** How many of them arrived. */
  delivered: number
  undelivered: number[]
  /** The restarted gateway's node_id is the same (same state dir). */
  same_node_id: boolean | null
}

export interface AirStats {
  txFrames: number
  txAirtimeMs: number
  rxFrames: number
  /** Frames this radio missed while it was transmitting itself. */
  lostHalfDuplex: number
  lostCollision: number
  /** Lost to the segment's configured loss. */
  lostLoss: number
  lostOther: number
}

/** The AirStats of one emulated radio from the emulator's medium counters. */
export function airStats(r: Record<string, number>): AirStats {
  const n = (k: string) => (typeof r[k] === 'number' ? r[k] : 0)
  return {
    txFrames: n('txFrames'),
    txAirtimeMs: Math.round(n('txAirtimeMs')),
    rxFrames: n('rxFrames'),
    lostHalfDuplex: n('lostHalfDuplex'),
    lostCollision: n('lostCollision'),
    lostLoss: n('lostLoss'),
    lostOther: n('lostSnr') + n('lostOff') + n('lostRetuned') + n('lostAborted'),
  }
}

export interface LabReport {
  ok: boolean
  problems: string[]
  topology: string
  prefix: string
  gateways: Array<{ name: string; node_id: string; pid: number; namespace: string; control_socket: string }>
  messages: MessageCounts
  latency_ms: Latency
  converge_ms: number
  links: Record<string, Record<string, unknown>>
  partition?: PartitionReport
  kill?: KillReport
  /** Per lora segment, per radio: the emulated air's counters (frames sent/heard, and lost and why). */
  air?: Record<string, Record<string, AirStats>>
  missing?: DeliveryResult['missing']
  duration_ms: number
  run_dir?: string
}

/** What makes a run fail: losses, duplicates, misdelivery, refusals. */
export function problemsOf(m: MessageCounts): string[] {
  const p: string[] = []
  if (m.lost > 0) p.push(`${m.lost} of ${m.sent} messages lost`)
  if (m.duplicates > 0) p.push(`${m.duplicates} messages delivered more than once`)
  if (m.misdelivered > 0) p.push(`${m.misdelivered} messages reached a gateway they were not sent to`)
  if (m.refused > 0) p.push(`${m.refused} sends refused by the source`)
  return p
}
