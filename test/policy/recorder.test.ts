/**
 * The violation recorder with an injected clock: what one entry holds; at most perMinute entries
 * in any 60 s however violations arrive (property test over random arrival times and flushes);
 * every suppressed violation counted in exactly one summary, carried by the next entry written or
 * written by flush; summaries' breakdowns bounded; a throwing sink.
 */
import t from 'tap'
import fc from 'fast-check'
import { PacketType } from '../../appliance/core/wire/constants.js'
import { RECORDER_WINDOW_MS, ViolationRecorder, violationEntry, type PolicySubject, type Verdict, type ViolationEvent } from '../../appliance/policy/index.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const T0 = Date.UTC(2026, 0, 1)

function ev(o: Partial<PolicySubject> = {}, v: Partial<Verdict> = {}): ViolationEvent {
  return {
    subject: { path: 'relay', type: PacketType.TaskRequest, peer: A, via: B, link: 'lora0', bytes: 120, trust: 'tofu', ...o },
    verdict: { ok: false, violation: 'quota_messages', rule: 'tasks', detail: 'tasks: 30 messages per 60 s used up', ...v },
    policy: 'field-relay',
  }
}

function setup(perMinute: number) {
  const clock = { t: T0 }
  const entries: Array<Record<string, unknown>> = []
  const times: number[] = []
  const rec = new ViolationRecorder({
    perMinute,
    now: () => clock.t,
    sink: (e) => {
      entries.push(e)
      times.push(clock.t)
    },
  })
  return { clock, entries, times, rec }
}

t.test('one violation entry: what it holds', async (t) => {
  t.strictSame(violationEntry(ev()), {
    event: 'policy_violation',
    policy: 'field-relay',
    violation: 'quota_messages',
    rule: 'tasks',
    detail: 'tasks: 30 messages per 60 s used up',
    action: 'drop',
    path: 'relay',
    type: 'TASK_REQUEST',
    peer: A,
    via: B,
    link: 'lora0',
    bytes: 120,
    trust: 'tofu',
  })
  const blocked = violationEntry({ ...ev({ type: 0x40, peer: null }, { blockPeerMs: 1500, disconnectLink: true, detail: 'x'.repeat(400) }), policy: null })
  t.equal(blocked.action, 'drop+block_peer+disconnect_link')
  t.equal(blocked.block_peer_s, 1.5)
  t.equal(blocked.type, '0x40')
  t.equal(blocked.peer, null)
  t.equal(blocked.detail, 'x'.repeat(300) + '…', 'detail bounded')
  t.notOk('policy' in blocked)
  t.equal(violationEntry(ev({}, { disconnectLink: true })).action, 'drop+disconnect_link')
})

t.test('a flood: perMinute entries, then silence; the next entry written carries the summary of everything suppressed', async (t) => {
  const { clock, entries, rec } = setup(3)
  for (let i = 0; i < 3; i++) {
    t.ok(rec.record(ev()), `entry ${i + 1} written`)
    clock.t += 1000
  }
  // 2 s ... 59.999 s after the first write: everything is counted, nothing written.
  const peers = [A, B, null]
  let n = 0
  while (clock.t < T0 + RECORDER_WINDOW_MS) {
    const peer = peers[n % 3]!
    t.notOk(rec.record(ev({ peer, link: n % 2 ? 'eth0' : 'lora0' }, { violation: n % 5 === 0 ? 'peer_blocked' : 'quota_messages' })))
    n++
    clock.t += 500
  }
  t.equal(entries.length, 3)
  t.equal(rec.suppressedPending, n)
  // The first slot frees 60 s after the first write: the next violation is written, carrying
  // the summary of everything suppressed.
  clock.t = T0 + RECORDER_WINDOW_MS
  t.ok(rec.record(ev({ link: 'udp0' })))
  t.equal(entries.length, 4)
  const byPeer: Record<string, number> = {}
  const byViolation: Record<string, number> = {}
  const byLink: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const p = peers[i % 3] ?? B // no originator: counted under the neighbour
    byPeer[p] = (byPeer[p] ?? 0) + 1
    const v = i % 5 === 0 ? 'peer_blocked' : 'quota_messages'
    byViolation[v] = (byViolation[v] ?? 0) + 1
    const l = i % 2 ? 'eth0' : 'lora0'
    byLink[l] = (byLink[l] ?? 0) + 1
  }
  t.strictSame(entries[3], {
    ...violationEntry(ev({ link: 'udp0' })),
    suppressed: {
      count: n,
      first_at: new Date(T0 + 3000).toISOString(),
      last_at: new Date(T0 + 3000 + (n - 1) * 500).toISOString(),
      per_minute: 3,
      by_violation: byViolation,
      by_link: byLink,
      by_peer: byPeer,
    },
  })
  t.equal(rec.suppressedPending, 0)
  // The slots free one by one, 60 s after the writes they held: the flood goes on being
  // sampled at the budget, each written entry summarising what came since the last.
  t.notOk(rec.record(ev()))
  clock.t = T0 + 61_000
  t.ok(rec.record(ev()))
  t.equal((entries[4]!.suppressed as { count: number }).count, 1)
  t.ok(rec.record(ev()) === false && entries.length === 5)
  t.strictSame(rec.stats, { recorded: n + 7, written: 5, suppressed: n + 2, summaries: 0, sinkErrors: 0 })
  t.equal(rec.suppressedPending, 1)
})

t.test('perMinute 1: one entry a minute, each carrying the count of the rest', async (t) => {
  const { clock, entries, rec } = setup(1)
  t.ok(rec.record(ev()))
  for (let i = 0; i < 10; i++) t.notOk(rec.record(ev()))
  clock.t += RECORDER_WINDOW_MS
  t.ok(rec.record(ev()))
  t.strictSame(
    entries.map((e) => [e.event, (e.suppressed as { count: number } | undefined)?.count]),
    [
      ['policy_violation', undefined],
      ['policy_violation', 10],
    ],
  )
})

t.test('flush: only what is pending, only within the budget unless forced', async (t) => {
  const { clock, entries, rec } = setup(2)
  t.notOk(rec.flush(), 'nothing pending')
  t.notOk(rec.flush(true), 'nothing pending, even forced')
  rec.record(ev())
  rec.record(ev())
  rec.record(ev())
  t.notOk(rec.flush(), 'no room in this minute')
  t.equal(entries.length, 2)
  clock.t += 59_999
  t.notOk(rec.flush())
  clock.t += 1
  t.ok(rec.flush(), 'a quiet flood is summarised by the periodic flush')
  t.equal(entries[2]!.event, 'policy_violations_suppressed')
  t.equal((entries[2]!.suppressed as { count: number }).count, 1)
  t.notOk(rec.flush())
  rec.record(ev()) // the second slot
  rec.record(ev()) // suppressed
  t.ok(rec.flush(true), 'at shutdown: written whatever the budget')
  t.equal(entries.length, 5)
  t.strictSame([entries[4]!.event, (entries[4]!.suppressed as { count: number }).count], ['policy_violations_suppressed', 1])
  t.strictSame(rec.stats, { recorded: 5, written: 3, suppressed: 2, summaries: 2, sinkErrors: 0 })
})

t.test('a summary names the 16 busiest peers and counts the rest; at most 1024 peers are counted by name', async (t) => {
  const { clock, entries, rec } = setup(1)
  rec.record(ev())
  const id = (n: number) => n.toString(16).padStart(32, '0')
  // Peer i sends i+1 violations for i < 20; then 2000 peers one each.
  let total = 0
  for (let i = 0; i < 20; i++) {
    for (let k = 0; k <= i; k++) {
      rec.record(ev({ peer: id(i) }))
      total++
    }
  }
  for (let i = 100; i < 2100; i++) {
    rec.record(ev({ peer: id(i), link: `l${i}` }))
    total++
  }
  clock.t += RECORDER_WINDOW_MS
  rec.flush()
  t.equal(entries[1]!.event, 'policy_violations_suppressed')
  const s = entries[1]!.suppressed as Record<string, unknown>
  t.equal(s.count, total)
  const byPeer = s.by_peer as Record<string, number>
  t.strictSame(Object.keys(byPeer), Array.from({ length: 16 }, (_, k) => id(19 - k)), 'busiest first')
  t.equal(byPeer[id(19)], 20)
  t.equal(s.other_peers, total - Object.values(byPeer).reduce((a, b) => a + b, 0))
  t.equal(Object.keys(s.by_link as object).length, 64, 'links counted by name: at most 64')
  t.ok(JSON.stringify(s).length < 4096, 'a summary stays small')
})

t.test('a sink that throws loses the entry, not the relay', async (t) => {
  let calls = 0
  const clock = { t: T0 }
  const rec = new ViolationRecorder({
    perMinute: 5,
    now: () => clock.t,
    sink: () => {
      calls++
      throw new Error('ENOSPC')
    },
  })
  t.ok(rec.record(ev()))
  t.ok(rec.record(ev()))
  t.equal(calls, 2)
  t.equal(rec.stats.sinkErrors, 2)
})

t.test('options are checked', async (t) => {
  const sink = () => {}
  for (const perMinute of [0, -1, 1.5, NaN, 100_001]) t.throws(() => new ViolationRecorder({ perMinute, sink }), TypeError, String(perMinute))
  t.throws(() => new ViolationRecorder({ perMinute: 1, sink: undefined as unknown as () => void }), TypeError)
})

t.test('property: at most perMinute entries in any 60 s, and every violation written or in exactly one summary', async (t) => {
  const op = fc.record({ dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 90_000 })), flush: fc.constantFrom(false, false, false, true), peer: fc.constantFrom(A, B, null) })
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { minLength: 1, maxLength: 300 }), (perMinute, ops) => {
      const { clock, entries, times, rec } = setup(perMinute)
      let recorded = 0
      for (const o of ops) {
        clock.t += o.dt
        if (o.flush) rec.flush()
        else {
          rec.record(ev({ peer: o.peer }))
          recorded++
        }
      }
      // Any perMinute + 1 consecutive writes span at least 60 s.
      for (let i = perMinute; i < times.length; i++) {
        if (times[i]! - times[i - perMinute]! < RECORDER_WINDOW_MS) throw new Error(`${perMinute + 1} entries within ${times[i]! - times[i - perMinute]!} ms`)
      }
      const written = entries.filter((e) => e.event === 'policy_violation').length
      const counts = entries.filter((e) => e.suppressed !== undefined).map((e) => (e.suppressed as { count: number }).count)
      const summarised = counts.reduce((n, c) => n + c, 0)
      if (written + summarised + rec.suppressedPending !== recorded) throw new Error(`${written} written + ${summarised} summarised + ${rec.suppressedPending} pending != ${recorded}`)
      const s = rec.stats
      if (s.recorded !== recorded || s.written !== written || s.suppressed !== summarised + rec.suppressedPending) throw new Error('stats')
      // A summary never comes without something suppressed before it.
      if (counts.some((c) => !(c > 0))) throw new Error('an empty summary')
      if (entries.some((e) => e.event === 'policy_violations_suppressed' && e.suppressed === undefined)) throw new Error('a summary entry without its summary')
    }),
    { numRuns: 400 },
  )
})
