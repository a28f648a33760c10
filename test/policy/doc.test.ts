/**
 * docs/policy.md says what it shows: its worked example is the example file, the frame-by-frame
 * story of that example is what the engine does (with an injected clock at the times the story
 * gives), and the violation record it shows is the one the recorder writes.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { PacketType } from '../../appliance/core/wire/constants.js'
import { ALLOWED, PolicyEngine, ViolationRecorder, loadPolicy, type PolicySubject } from '../../appliance/policy/index.js'

const DOC = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8')
const EXAMPLE_FILE = new URL('../../docs/examples/field-relay.klp-policy', import.meta.url).pathname

const NORTH = '0a1b2c3d4e5f60718293a4b5c6d7e8f9'
const BASE = '6f1c2a9e0b7d4c3e8a5f1b2c3d4e5f60'
const TRUCK = 'c0ffee00c0ffee00c0ffee00c0ffee00'
const NOON = Date.UTC(2026, 0, 1, 12, 0, 0)
const at = (m: number, s: number, ms = 0) => NOON + m * 60_000 + s * 1000 + ms

/** The fenced block of `lang` that follows `heading`. */
function block(heading: string, lang: string): string {
  const from = DOC.indexOf(heading)
  if (from < 0) throw new Error(`no ${heading} in docs/policy.md`)
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(DOC.slice(from))
  if (m === null) throw new Error(`no ${lang} block after ${heading}`)
  return m[1]!
}

t.test('the worked example is docs/examples/field-relay.klp-policy', async (t) => {
  t.equal(block('### A worked example', 'yaml'), readFileSync(EXAMPLE_FILE, 'utf8'))
})

t.test('the frame-by-frame story of the example is what the engine does', async (t) => {
  const clock = { t: NOON }
  const engine = new PolicyEngine(loadPolicy(EXAMPLE_FILE), { now: () => clock.t })
  const frame = (o: Partial<PolicySubject>): PolicySubject => ({ path: 'relay', type: PacketType.TaskRequest, peer: NORTH, via: BASE, link: 'lora0', bytes: 200, trust: 'tofu', ...o })

  // 1. Forwarded.
  t.equal(engine.check(frame({})), ALLOWED)
  // 2. VECTOR_SYNC is not in types.agent; nothing charged.
  clock.t = at(0, 5)
  t.strictSame(engine.check(frame({ type: PacketType.VectorSync })), { ok: false, violation: 'type_not_allowed', rule: 'types.agent', detail: 'VECTOR_SYNC is not in types.agent' })
  // 3. A node not in peers.allow.
  clock.t = at(0, 6)
  t.equal(engine.check(frame({ peer: 'dd'.repeat(16) })).violation, 'peer_not_allowed')
  // 4. 29 more between 12:00:10 and 12:00:40, then the 31st at 12:00:41.
  for (let i = 0; i < 29; i++) {
    clock.t = at(0, 10 + Math.round((i * 30) / 28))
    t.equal(engine.check(frame({})), ALLOWED, `task ${i + 2}`)
  }
  clock.t = at(0, 41)
  const refused = engine.check(frame({}))
  t.strictSame(refused, {
    ok: false,
    violation: 'quota_messages',
    rule: 'tasks-per-peer',
    detail: `tasks-per-peer: 30 messages per 60 s for ${NORTH} TASK_REQUEST used up; the window ends in 19 s`,
    blockPeerMs: 300_000,
  })
  // The record docs/policy.md shows is this violation's.
  const entries: Array<Record<string, unknown>> = []
  const rec = new ViolationRecorder({ perMinute: 60, now: () => clock.t, sink: (e) => entries.push(e) })
  rec.record({ subject: frame({}), verdict: refused, policy: 'field-relay' })
  t.strictSame(entries[0], JSON.parse(block('## Violation records', 'json')))

  // 5. Blocked until 12:05:41, as originator and as the neighbour of gw-truck's traffic.
  clock.t = at(1, 0)
  t.strictSame(engine.check(frame({})), { ok: false, violation: 'peer_temporarily_blocked', rule: 'tasks-per-peer', detail: `${NORTH} is blocked for 281 s more by tasks-per-peer` })
  t.equal(engine.check(frame({ peer: TRUCK, via: NORTH })).violation, 'peer_temporarily_blocked')
  clock.t = at(5, 40, 999)
  t.equal(engine.check(frame({})).violation, 'peer_temporarily_blocked')
  clock.t = at(5, 41)
  t.equal(engine.check(frame({})), ALLOWED)

  // 6. gw-truck: 20 HANDSHAKEs in 10 s pass, the 21st blocks it for an hour and asks for a cut.
  clock.t = at(10, 0)
  for (let i = 0; i < 20; i++) {
    clock.t = at(10, 0, i * 400)
    t.equal(engine.check(frame({ peer: TRUCK, via: TRUCK, type: PacketType.Handshake })), ALLOWED, `handshake ${i + 1}`)
  }
  clock.t = at(10, 9)
  const storm = engine.check(frame({ peer: TRUCK, via: TRUCK, type: PacketType.Handshake }))
  t.strictSame([storm.violation, storm.rule, storm.blockPeerMs, storm.disconnectLink], ['quota_messages', 'handshake-storm', 3_600_000, true])
  t.strictSame(engine.blocked(TRUCK), { peer: TRUCK, until: at(70, 9), rule: 'handshake-storm' })
})
