/**
 * The lab report's arithmetic: nearest-rank percentiles, delivered / duplicated / lost /
 * misdelivered counts, latency from the lab's send time, and the summary table.
 */
import t from 'tap'
import fc from 'fast-check'
import { computeDelivery, latencyOf, percentile, problemsOf, summaryTable, type InboxMessage, type LabReport, type SentMessage } from '../../appliance/lab/report.js'

t.test('percentile: nearest rank', async (t) => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1)
  t.equal(percentile(v, 50), 50)
  t.equal(percentile(v, 99), 99)
  t.equal(percentile(v, 100), 100)
  t.equal(percentile(v, 0), 1)
  t.equal(percentile([7], 50), 7)
  t.equal(percentile([7], 99), 7)
  t.equal(percentile([1, 2, 3, 4], 50), 2)
  t.equal(percentile([1, 2, 3, 4], 51), 3)
  t.equal(percentile([], 50), null)
  t.throws(() => percentile([1], 101), TypeError)
  t.same(latencyOf([30, 10, 20]), { p50: 20, p99: 30, max: 30, mean: 20 })
  t.same(latencyOf([]), { p50: null, p99: null, max: null, mean: null })
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 1e6 }), { minLength: 1 }), fc.integer({ min: 0, max: 100 }), (xs, p) => {
      const s = [...xs].sort((a, b) => a - b)
      const v = percentile(s, p)!
      const atOrBelow = s.filter((x) => x <= v).length
      const below = s.filter((x) => x < v).length
      return atOrBelow / s.length >= p / 100 && below / s.length < Math.max(p / 100, 1 / s.length) + 1e-9
    }),
  )
})

const sent = (index: number, from: string, to: string, id: string | undefined, at: number, phase: SentMessage['phase'] = 'steady'): SentMessage => ({ index, from, to, sent_at: at, phase, ...(id !== undefined && { id, accepted_at: at + 1 }) })
const msg = (id: string, received_at: number): InboxMessage => ({ id, received_at })

t.test('computeDelivery: delivered, duplicates, lost, refused, misdelivered, latency', async (t) => {
  const log: SentMessage[] = [
    sent(0, 'g1', 'g5', 'aa', 1000),
    sent(1, 'g5', 'g1', 'bb', 1100),
    sent(2, 'g1', 'g5', 'cc', 1200, 'partition'),
    sent(3, 'g5', 'g1', undefined, 1300),
    sent(4, 'g1', 'g5', 'ee', 1400),
  ]
  const inboxes = new Map<string, InboxMessage[]>([
    ['g5', [msg('aa', 1050), msg('cc', 5000), msg('cc', 5100), msg('aa', 1060), msg('aa', 1070)]],
    ['g1', [msg('bb', 1300)]],
    ['g3', [msg('ee', 1500)]],
  ])
  const d = computeDelivery(log, inboxes)
  t.same(d.messages, { sent: 4, delivered: 3, duplicates: 2, duplicate_copies: 3, lost: 1, refused: 1, misdelivered: 1 })
  t.same(d.missing, [{ index: 4, id: 'ee', from: 'g1', to: 'g5', phase: 'steady' }])
  t.same(d.latency_ms, { p50: 200, p99: 3800, max: 3800, mean: 1350 }, 'first copy counts: 50, 200, 3800 ms')
  t.equal(d.receivedAt.get('cc'), 5000)
  t.same(problemsOf(d.messages), ['1 of 4 messages lost', '2 messages delivered more than once', '1 messages reached a gateway they were not sent to', '1 sends refused by the source'])
  const clean = computeDelivery([sent(0, 'a', 'b', 'x', 0)], new Map([['b', [msg('x', 12)]]]))
  t.same(problemsOf(clean.messages), [])
  t.same(clean.latency_ms, { p50: 12, p99: 12, max: 12, mean: 12 })
})

t.test('property: delivered + lost = sent; duplicates <= delivered; unrelated inbox ids change nothing', async (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[0-9a-f]{4}$/), { maxLength: 30 }),
      fc.array(fc.nat(4)),
      fc.array(fc.stringMatching(/^z[0-9a-f]{3}$/), { maxLength: 5 }),
      (ids, copies, strangers) => {
        const log = ids.map((id, i) => sent(i, 'a', 'b', id, i))
        const inbox: InboxMessage[] = []
        ids.forEach((id, i) => {
          for (let k = 0; k < (copies[i] ?? 1); k++) inbox.push(msg(id, 100 + i + k))
        })
        for (const s of strangers) inbox.push(msg(s, 1))
        const d = computeDelivery(log, new Map([['b', inbox]]))
        const m = d.messages
        const expectDelivered = ids.filter((_, i) => (copies[i] ?? 1) > 0).length
        const expectDup = ids.filter((_, i) => (copies[i] ?? 1) > 1).length
        return m.delivered + m.lost === m.sent && m.sent === ids.length && m.delivered === expectDelivered && m.duplicates === expectDup && m.misdelivered === 0
      },
    ),
  )
})

t.test('summaryTable: one line per fact, failures spelled out', async (t) => {
  const report: LabReport = {
    ok: false,
    problems: ['1 of 20 messages lost'],
    topology: 'line5-mixed',
    prefix: 'kl1',
    gateways: [{ name: 'g1', node_id: '0'.repeat(32), pid: 1, namespace: 'kl1-g1', control_socket: '/x' }],
    messages: { sent: 20, delivered: 19, duplicates: 0, duplicate_copies: 0, lost: 1, refused: 0, misdelivered: 0 },
    latency_ms: { p50: 120, p99: 900, max: 950, mean: 200 },
    converge_ms: 2500,
    links: { 'g1/eth12': { kind: 'ethernet', state: 'up', framesOut: 40, framesIn: 38 } },
    partition: { segment: 'udp34', kind: 'udp', method: 'link-down', cut_at: 0, healed_at: 4000, duration_ms: 4000, sent_during: [10, 11, 12, 13, 14], delivered_after_heal: 5, delivered_before_heal: 0, undelivered: [], recovered_ms: 800 },
    duration_ms: 12_345,
  }
  const text = summaryTable(report)
  t.match(text, /messages\s+20 sent, 19 delivered, 1 lost, 0 duplicated\n/)
  t.match(text, /latency\s+p50 120 ms, p99 900 ms, max 950 ms\n/)
  t.match(text, /partition\s+udp34 \(udp, link-down\) cut 4000 ms; 5 sent during it: 5 delivered after the heal \(the last 800 ms after the heal\)\n/)
  t.match(text, /link g1\/eth12\s+ethernet up: 40 frames out, 38 in\n/)
  t.match(text, /result\s+FAILED: 1 of 20 messages lost\n$/)
})
