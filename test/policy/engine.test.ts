/**
 * The policy engine with an injected clock: each violation and the order of checks; quotas exact
 * at their window boundaries (messages, bytes, per peer, per type, per peer and type, type
 * filters) and charged only when a packet passes every quota; actions (temporary blocks that end
 * exactly when they should, disconnect requests); replace() keeping blocks and the windows of
 * unchanged rules; the bounds on tracked buckets and blocks; counters; and a model-based property
 * test against a plain reimplementation of the rules.
 */
import t from 'tap'
import fc from 'fast-check'
import { PacketType } from '../../appliance/core/wire/constants.js'
import { ALLOWED, PolicyEngine, VIOLATIONS, parsePolicy, type Policy, type PolicySubject, type Trust, type Verdict } from '../../appliance/policy/index.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const C = 'cc'.repeat(16)
const T0 = 1_700_000_000_000

function pol(body: string): Policy {
  return parsePolicy(`version: 1\n${body}`, 'e.klp-policy')
}

function setup(body: string | null, opts: { maxTrackedPerQuota?: number; maxBlocks?: number } = {}) {
  const clock = { t: T0 }
  const engine = new PolicyEngine(body === null ? null : pol(body), { now: () => clock.t, ...opts })
  return { clock, engine }
}

function subj(o: Partial<PolicySubject> = {}): PolicySubject {
  return { path: 'relay', type: PacketType.TaskRequest, peer: A, via: B, link: 'lora0', bytes: 100, trust: 'tofu', ...o }
}

/** ok, or the violation and rule: compact for comparing many verdicts. */
const brief = (v: Verdict) => (v.ok ? 'ok' : `${v.violation} ${v.rule}`)

t.test('no policy: everything passes, with the one shared frozen verdict', async (t) => {
  const { engine } = setup(null)
  for (const type of [0, 1, 16, 0x3f, 0x40, 255]) {
    const v = engine.check(subj({ type, peer: null, via: null, trust: 'unknown' }))
    t.equal(v, ALLOWED)
  }
  t.ok(Object.isFrozen(ALLOWED))
  t.equal(engine.policy, null)
  const c = engine.counters()
  t.strictSame(c, { checked: 6, allowed: 6, refused: 0, byViolation: Object.fromEntries(VIOLATIONS.map((v) => [v, 0])), byRule: {}, blockedPeers: [] })
})

t.test('an allowed packet gets the shared verdict under a full policy too', async (t) => {
  const { engine } = setup(`types: {agent: [TASK_REQUEST]}\npeers: {allow: [${A}], block: [${C}], min_trust: tofu}\nquotas:\n  - {per: peer_type, window_s: 60, messages: 100, bytes: 100000}\n  - {per: type, window_s: 1, messages: 100}\n`)
  for (let i = 0; i < 50; i++) t.equal(engine.check(subj()), ALLOWED)
})

t.test('peers.block: the originator or the neighbour', async (t) => {
  const { engine } = setup(`peers: {block: [${C}]}`)
  t.strictSame(engine.check(subj({ peer: C })), { ok: false, violation: 'peer_blocked', rule: 'peers.block', detail: `${C} is in peers.block` })
  t.strictSame(engine.check(subj({ via: C })), { ok: false, violation: 'peer_blocked', rule: 'peers.block', detail: `the neighbour ${C} is in peers.block` })
  t.equal(engine.check(subj({ peer: null, via: null })), ALLOWED)
  t.equal(engine.check(subj()), ALLOWED)
})

t.test('peers.allow: only listed originators; an unknown one is not listed', async (t) => {
  const { engine } = setup(`peers: {allow: [${A}]}`)
  t.equal(engine.check(subj({ peer: A, via: C })), ALLOWED, 'the neighbour need not be listed')
  t.strictSame(engine.check(subj({ peer: B })), { ok: false, violation: 'peer_not_allowed', rule: 'peers.allow', detail: `${B} is not in peers.allow` })
  t.strictSame(engine.check(subj({ peer: null })), { ok: false, violation: 'peer_not_allowed', rule: 'peers.allow', detail: 'an unknown originator is not in peers.allow' })
})

t.test('peers.min_trust: unknown < tofu < allowlisted', async (t) => {
  const trusts: Trust[] = ['unknown', 'tofu', 'allowlisted']
  for (const [mi, min] of trusts.entries()) {
    const { engine } = setup(`peers: {min_trust: ${min}}`)
    for (const [ti, trust] of trusts.entries()) {
      const v = engine.check(subj({ trust }))
      if (ti >= mi) t.equal(v, ALLOWED, `${trust} >= ${min}`)
      else t.strictSame(v, { ok: false, violation: 'trust_below_minimum', rule: 'peers.min_trust', detail: `trust ${trust} is below peers.min_trust ${min}` }, `${trust} < ${min}`)
    }
  }
})

t.test('types: agent and control lists, each defaulting to all of its kind; anything else refused', async (t) => {
  const none = setup('').engine
  for (const type of [1, 2, 3, 4, 5, 0x0f, 16, 20, 0x3f]) t.equal(none.check(subj({ type })), ALLOWED, `0x${type.toString(16)} with no types:`)
  for (const type of [0, 0x40, 0xff, 256, -1, 1.5, NaN]) t.equal(none.check(subj({ type })).violation, 'type_not_allowed', `${type} is no type`)
  t.strictSame(none.check(subj({ type: 0x40 })), { ok: false, violation: 'type_not_allowed', rule: 'types', detail: '0x40 is not a message type' })

  const agentOnly = setup('types: {agent: [TASK_REQUEST, VECTOR_SYNC]}').engine
  t.equal(agentOnly.check(subj({ type: PacketType.TaskRequest })), ALLOWED)
  t.equal(agentOnly.check(subj({ type: PacketType.Handshake })), ALLOWED, 'control types stay allowed')
  t.strictSame(agentOnly.check(subj({ type: PacketType.AgentMigration })), { ok: false, violation: 'type_not_allowed', rule: 'types.agent', detail: 'AGENT_MIGRATION is not in types.agent' })
  t.equal(agentOnly.check(subj({ type: 0x30 })).rule, 'types.agent')

  const controlOnly = setup('types: {control: [HANDSHAKE, ACK]}').engine
  t.equal(controlOnly.check(subj({ type: PacketType.Ack })), ALLOWED)
  t.equal(controlOnly.check(subj({ type: PacketType.AgentMigration })), ALLOWED, 'agent types stay allowed')
  t.strictSame(controlOnly.check(subj({ type: PacketType.Keepalive })), { ok: false, violation: 'type_not_allowed', rule: 'types.control', detail: 'KEEPALIVE is not in types.control' })

  const nothing = setup('types: {agent: [], control: []}').engine
  for (const type of [1, 5, 16, 20]) t.equal(nothing.check(subj({ type })).violation, 'type_not_allowed')
})

t.test('checks run in order: block, allow, trust, type, quota', async (t) => {
  const { engine } = setup(`types: {agent: [VECTOR_SYNC]}\npeers: {allow: [${A}, ${B}], block: [${C}], min_trust: allowlisted}\nquotas:\n  - {name: q, per: peer, window_s: 60, messages: 1}`)
  const worst = { type: PacketType.TaskRequest, trust: 'unknown' as Trust }
  t.equal(brief(engine.check(subj({ ...worst, peer: C }))), 'peer_blocked peers.block')
  t.equal(brief(engine.check(subj({ ...worst, peer: 'dd'.repeat(16) }))), 'peer_not_allowed peers.allow')
  t.equal(brief(engine.check(subj({ ...worst }))), 'trust_below_minimum peers.min_trust')
  t.equal(brief(engine.check(subj({ ...worst, trust: 'allowlisted' }))), 'type_not_allowed types.agent')
  t.equal(brief(engine.check(subj({ type: PacketType.VectorSync, trust: 'allowlisted' }))), 'ok')
  t.equal(brief(engine.check(subj({ type: PacketType.VectorSync, trust: 'allowlisted' }))), 'quota_messages q')
})

t.test('a messages quota is exact at its window boundaries', async (t) => {
  const { clock, engine } = setup('quotas:\n  - {name: five, per: peer, window_s: 10, messages: 5}')
  clock.t = T0 + 123 // the window opens with the first packet, not on a round time
  const opened = clock.t
  for (let i = 0; i < 5; i++) t.equal(engine.check(subj()), ALLOWED, `message ${i + 1}`)
  const sixth = engine.check(subj())
  t.strictSame(sixth, { ok: false, violation: 'quota_messages', rule: 'five', detail: `five: 5 messages per 10 s for ${A} used up; the window ends in 10 s` })
  clock.t = opened + 9_999
  t.strictSame(engine.check(subj()), { ok: false, violation: 'quota_messages', rule: 'five', detail: `five: 5 messages per 10 s for ${A} used up; the window ends in 0.001 s` })
  clock.t = opened + 10_000
  for (let i = 0; i < 5; i++) t.equal(engine.check(subj()), ALLOWED, `next window, message ${i + 1}`)
  t.equal(brief(engine.check(subj())), 'quota_messages five')
  // The next window opens with the first packet after the end, however late.
  clock.t = opened + 35_000
  t.equal(engine.check(subj()), ALLOWED)
  clock.t = opened + 44_999
  for (let i = 0; i < 4; i++) t.equal(engine.check(subj()), ALLOWED)
  t.equal(brief(engine.check(subj())), 'quota_messages five')
  clock.t = opened + 45_000
  t.equal(engine.check(subj()), ALLOWED)
})

t.test('a bytes quota is exact: up to the limit passes, one byte over does not', async (t) => {
  const { clock, engine } = setup('quotas:\n  - {name: kb, per: peer, window_s: 1, bytes: 1000}')
  t.equal(engine.check(subj({ bytes: 600 })), ALLOWED)
  t.equal(engine.check(subj({ bytes: 400 })), ALLOWED, 'exactly 1000')
  t.strictSame(engine.check(subj({ bytes: 1 })), { ok: false, violation: 'quota_bytes', rule: 'kb', detail: `kb: 1000 + 1 bytes would pass 1000 bytes per 1 s for ${A}; the window ends in 1 s` })
  t.equal(engine.check(subj({ bytes: 0 })), ALLOWED, 'an empty packet fits')
  clock.t += 999
  t.equal(brief(engine.check(subj({ bytes: 1 }))), 'quota_bytes kb')
  clock.t += 1
  t.equal(engine.check(subj({ bytes: 1000 })), ALLOWED)
  clock.t += 1000
  t.equal(brief(engine.check(subj({ bytes: 1001 }))), 'quota_bytes kb', 'a packet larger than the limit never passes')
  t.equal(engine.check(subj({ bytes: 999 })), ALLOWED, 'and costs nothing')
  // A caller's bad size counts as 0 instead of poisoning the window.
  t.equal(engine.check(subj({ bytes: NaN })), ALLOWED)
  t.equal(engine.check(subj({ bytes: -5 })), ALLOWED)
  t.equal(engine.check(subj({ bytes: 1 })), ALLOWED)
  t.equal(brief(engine.check(subj({ bytes: 1 }))), 'quota_bytes kb')
})

t.test('messages and bytes in one quota: whichever is reached first', async (t) => {
  const { engine } = setup('quotas:\n  - {name: both, per: peer, window_s: 60, messages: 3, bytes: 250}')
  t.equal(engine.check(subj({ bytes: 100 })), ALLOWED)
  t.equal(engine.check(subj({ bytes: 100 })), ALLOWED)
  t.equal(brief(engine.check(subj({ bytes: 100 }))), 'quota_bytes both')
  t.equal(engine.check(subj({ bytes: 50 })), ALLOWED)
  t.equal(brief(engine.check(subj({ bytes: 0 }))), 'quota_messages both')
})

t.test('per peer, per type, per peer and type: which packets share a budget', async (t) => {
  const TR = PacketType.TaskRequest
  const VS = PacketType.VectorSync
  const send = (engine: PolicyEngine, peer: string | null, type: number) => brief(engine.check(subj({ peer, type })))

  const perPeer = setup('quotas:\n  - {name: q, per: peer, window_s: 60, messages: 2}').engine
  t.strictSame([send(perPeer, A, TR), send(perPeer, A, VS), send(perPeer, A, TR), send(perPeer, B, TR), send(perPeer, B, VS), send(perPeer, B, VS)], ['ok', 'ok', 'quota_messages q', 'ok', 'ok', 'quota_messages q'])
  // Packets with no known originator share one budget.
  t.strictSame([send(perPeer, null, TR), send(perPeer, null, VS), send(perPeer, null, TR)], ['ok', 'ok', 'quota_messages q'])

  const perType = setup('quotas:\n  - {name: q, per: type, window_s: 60, messages: 2}').engine
  t.strictSame([send(perType, A, TR), send(perType, B, TR), send(perType, C, TR), send(perType, C, VS), send(perType, A, VS), send(perType, B, VS)], ['ok', 'ok', 'quota_messages q', 'ok', 'ok', 'quota_messages q'])

  const perBoth = setup('quotas:\n  - {name: q, per: peer_type, window_s: 60, messages: 1}').engine
  t.strictSame([send(perBoth, A, TR), send(perBoth, A, VS), send(perBoth, B, TR), send(perBoth, B, VS), send(perBoth, A, TR), send(perBoth, B, VS)], ['ok', 'ok', 'ok', 'ok', 'quota_messages q', 'quota_messages q'])
})

t.test('types: a quota counts agent types unless told otherwise', async (t) => {
  const byDefault = setup('quotas:\n  - {name: q, per: peer, window_s: 60, messages: 1}').engine
  t.equal(byDefault.check(subj({ type: PacketType.TaskRequest })), ALLOWED)
  for (const type of [PacketType.Handshake, PacketType.Announce, PacketType.Ack, PacketType.Keepalive, PacketType.Close]) t.equal(byDefault.check(subj({ type })), ALLOWED, `control type ${type} not counted`)
  t.equal(brief(byDefault.check(subj({ type: PacketType.VectorSync }))), 'quota_messages q')

  const handshakes = setup('quotas:\n  - {name: hs, per: peer, window_s: 10, messages: 2, types: [HANDSHAKE]}').engine
  for (let i = 0; i < 10; i++) t.equal(handshakes.check(subj({ type: PacketType.TaskRequest })), ALLOWED)
  t.equal(handshakes.check(subj({ type: PacketType.Handshake })), ALLOWED)
  t.equal(handshakes.check(subj({ type: PacketType.Handshake })), ALLOWED)
  t.equal(brief(handshakes.check(subj({ type: PacketType.Handshake }))), 'quota_messages hs')
})

t.test('a packet is charged to its quotas only when it passes them all, and every earlier check', async (t) => {
  const { engine } = setup(`peers: {block: [${C}]}\nquotas:\n  - {name: per-peer, per: peer, window_s: 60, messages: 3}\n  - {name: tasks, per: type, window_s: 60, messages: 1, types: [TASK_REQUEST]}`)
  t.equal(engine.check(subj({ type: PacketType.TaskRequest })), ALLOWED) // per-peer 1, tasks 1
  for (let i = 0; i < 5; i++) t.equal(brief(engine.check(subj({ type: PacketType.TaskRequest }))), 'quota_messages tasks') // per-peer not charged
  t.equal(brief(engine.check(subj({ via: C, type: PacketType.VectorSync }))), 'peer_blocked peers.block') // not charged either
  t.equal(engine.check(subj({ type: PacketType.VectorSync })), ALLOWED) // per-peer 2
  t.equal(engine.check(subj({ type: PacketType.VectorSync })), ALLOWED) // per-peer 3
  t.equal(brief(engine.check(subj({ type: PacketType.VectorSync }))), 'quota_messages per-peer')
})

t.test('block_peer: the block is set, refuses the peer as originator and as neighbour, and ends exactly on time', async (t) => {
  const { clock, engine } = setup('quotas:\n  - {name: q, per: peer, window_s: 60, messages: 1, action: {block_peer: {for_s: 30}}}')
  t.equal(engine.check(subj({ peer: A, via: B })), ALLOWED)
  const at = clock.t
  t.strictSame(engine.check(subj({ peer: A, via: B })), { ok: false, violation: 'quota_messages', rule: 'q', detail: `q: 1 messages per 60 s for ${A} used up; the window ends in 60 s`, blockPeerMs: 30_000 })
  t.strictSame(engine.blocked(A), { peer: A, until: at + 30_000, rule: 'q' })
  t.equal(engine.blocked(B), null, 'the neighbour is not blocked')
  clock.t = at + 10_000
  t.strictSame(engine.check(subj({ peer: A, via: B, type: PacketType.Handshake })), { ok: false, violation: 'peer_temporarily_blocked', rule: 'q', detail: `${A} is blocked for 20 s more by q` })
  t.strictSame(engine.check(subj({ peer: C, via: A })), { ok: false, violation: 'peer_temporarily_blocked', rule: 'q', detail: `${A} (the neighbour) is blocked for 20 s more by q` })
  t.equal(engine.check(subj({ peer: C, via: B })), ALLOWED, 'others pass')
  clock.t = at + 29_999
  t.equal(brief(engine.check(subj({ peer: A }))), 'peer_temporarily_blocked q')
  clock.t = at + 30_000
  t.equal(brief(engine.check(subj({ peer: A, type: PacketType.Handshake }))), 'ok', 'the block has ended')
  t.equal(engine.blocked(A), null)
  t.strictSame(engine.counters().blockedPeers, [])
  // The quota window (60 s) is still used up: refused again, and blocked again.
  t.equal(engine.check(subj({ peer: A })).blockPeerMs, 30_000)
})

t.test('block_peer with no known originator blocks the neighbour; with neither, nothing', async (t) => {
  const { engine } = setup('actions:\n  type_not_allowed: {block_peer: {for_s: 5}}\ntypes: {agent: []}')
  t.equal(engine.check(subj({ peer: null, via: B })).blockPeerMs, 5000)
  t.ok(engine.blocked(B))
  const v = engine.check(subj({ peer: null, via: null }))
  t.strictSame(v, { ok: false, violation: 'type_not_allowed', rule: 'types.agent', detail: 'TASK_REQUEST is not in types.agent' })
  t.strictSame(engine.counters().blockedPeers.map((b) => b.peer), [B])
})

t.test('actions: per violation kind, a quota its own, the policy default for quotas without', async (t) => {
  const { engine } = setup(`peers: {allow: [${A}, ${B}]}
types: {control: [HANDSHAKE]}
quotas:
  - {name: own, per: type, window_s: 60, messages: 1, types: [TASK_REQUEST], action: disconnect_link}
  - {name: msgs, per: type, window_s: 60, messages: 1, types: [VECTOR_SYNC]}
  - {name: size, per: type, window_s: 60, bytes: 10, types: [AGENT_MIGRATION]}
actions:
  peer_not_allowed: disconnect_link
  type_not_allowed: [{block_peer: {for_s: 1}}, disconnect_link]
  quota_messages: {block_peer: {for_s: 2}}
  quota_bytes: [drop, {block_peer: {for_s: 3}}]
  peer_temporarily_blocked: disconnect_link
`)
  const v1 = engine.check(subj({ peer: C }))
  t.same([v1.violation, v1.blockPeerMs, v1.disconnectLink], ['peer_not_allowed', undefined, true])
  const v2 = engine.check(subj({ peer: A, type: PacketType.Ack }))
  t.same([v2.violation, v2.blockPeerMs, v2.disconnectLink], ['type_not_allowed', 1000, true])
  const v3 = engine.check(subj({ peer: A }))
  t.same([v3.violation, v3.blockPeerMs, v3.disconnectLink], ['peer_temporarily_blocked', undefined, true])
  engine.unblock(A)
  t.equal(engine.check(subj({ peer: A })), ALLOWED)
  const v4 = engine.check(subj({ peer: A }))
  t.same([v4.violation, v4.rule, v4.blockPeerMs, v4.disconnectLink], ['quota_messages', 'own', undefined, true], 'the quota action replaces the default')
  t.equal(engine.check(subj({ peer: B, type: PacketType.VectorSync })), ALLOWED)
  const v5 = engine.check(subj({ peer: B, type: PacketType.VectorSync }))
  t.same([v5.violation, v5.rule, v5.blockPeerMs, v5.disconnectLink], ['quota_messages', 'msgs', 2000, undefined])
  engine.unblock(B)
  const v6 = engine.check(subj({ peer: B, type: PacketType.AgentMigration, bytes: 11 }))
  t.same([v6.violation, v6.rule, v6.blockPeerMs, v6.disconnectLink], ['quota_bytes', 'size', 3000, undefined])
})

t.test('block() and unblock(): a longer block wins, a shorter one does not shorten it', async (t) => {
  const { clock, engine } = setup(null)
  t.ok(engine.block(A, 10_000, 'operator'))
  t.ok(engine.block(A, 5_000, 'q'))
  t.strictSame(engine.blocked(A), { peer: A, until: T0 + 10_000, rule: 'operator' })
  t.ok(engine.block(A, 20_000, 'q'))
  t.strictSame(engine.blocked(A), { peer: A, until: T0 + 20_000, rule: 'q' })
  t.equal(brief(engine.check(subj())), 'peer_temporarily_blocked q', 'honoured with no policy')
  t.ok(engine.unblock(A))
  t.notOk(engine.unblock(A))
  t.equal(engine.check(subj()), ALLOWED)
  t.throws(() => engine.block(A, 0, 'x'), TypeError)
  clock.t += 1
})

t.test('replace(): blocks stay; an unchanged quota keeps its window, a changed or renamed one starts over', async (t) => {
  const quotas = (a: string, b: string) => `quotas:\n  - {name: a, per: peer, window_s: 60, messages: ${a}}\n  - {name: b, per: type, window_s: 60, messages: ${b}}\n`
  const { clock, engine } = setup(quotas('2', '2'))
  engine.block(C, 60_000, 'operator')
  t.equal(engine.check(subj({ peer: A, type: PacketType.TaskRequest })), ALLOWED) // a[A]=1 b[TR]=1
  t.equal(engine.check(subj({ peer: B, type: PacketType.TaskRequest })), ALLOWED) // a[B]=1 b[TR]=2
  t.equal(engine.check(subj({ peer: A, type: PacketType.VectorSync })), ALLOWED) // a[A]=2 b[VS]=1

  // Same a, b changed: a's windows carry over, b's start empty.
  const p2 = pol(quotas('2', '3'))
  engine.replace(p2)
  t.equal(engine.policy, p2)
  t.equal(brief(engine.check(subj({ peer: A, type: PacketType.AgentMigration }))), 'quota_messages a', 'a kept A at 2')
  for (let i = 0; i < 3; i++) t.equal(engine.check(subj({ peer: `0${i}`.repeat(16), type: PacketType.TaskRequest })), ALLOWED, `b starts over (${i + 1})`)
  t.equal(brief(engine.check(subj({ peer: B, type: PacketType.TaskRequest }))), 'quota_messages b')
  t.equal(brief(engine.check(subj({ peer: C }))), 'peer_temporarily_blocked operator', 'the block stays')

  // The same definition under another name is another rule.
  engine.replace(pol('quotas:\n  - {name: a2, per: peer, window_s: 60, messages: 2}'))
  t.equal(engine.check(subj({ peer: A })), ALLOWED)

  // No policy: still blocked; then a policy again: the block still ends on time.
  engine.replace(null)
  t.equal(brief(engine.check(subj({ peer: C }))), 'peer_temporarily_blocked operator')
  engine.replace(pol(''))
  clock.t += 60_000
  t.equal(engine.check(subj({ peer: C })), ALLOWED)
})

t.test('replace() changes what is allowed at once', async (t) => {
  const { engine } = setup(`peers: {block: [${A}]}`)
  t.equal(brief(engine.check(subj())), 'peer_blocked peers.block')
  engine.replace(pol('types: {agent: [VECTOR_SYNC]}'))
  t.equal(brief(engine.check(subj())), 'type_not_allowed types.agent')
  t.equal(engine.check(subj({ type: PacketType.VectorSync })), ALLOWED)
})

t.test('tracked buckets are bounded: new peers are refused while full, admitted once windows end', async (t) => {
  const { clock, engine } = setup('quotas:\n  - {name: q, per: peer, window_s: 10, messages: 100}', { maxTrackedPerQuota: 3 })
  const id = (n: number) => n.toString(16).padStart(32, '0')
  for (let i = 0; i < 3; i++) t.equal(engine.check(subj({ peer: id(i) })), ALLOWED)
  t.strictSame(engine.check(subj({ peer: id(3) })), { ok: false, violation: 'quota_messages', rule: 'q', detail: 'q: more than 3 peers in one window; new ones are refused until windows end' })
  t.equal(engine.check(subj({ peer: id(0) })), ALLOWED, 'tracked peers go on')
  clock.t += 5_000
  t.equal(brief(engine.check(subj({ peer: id(4) }))), 'quota_messages q')
  clock.t += 5_000
  // All three windows have ended: swept, room for new peers.
  t.equal(engine.check(subj({ peer: id(4) })), ALLOWED)
  t.equal(engine.check(subj({ peer: id(5) })), ALLOWED)
  t.equal(engine.check(subj({ peer: id(0) })), ALLOWED, 'an old peer comes back as new')
  t.equal(brief(engine.check(subj({ peer: id(6) }))), 'quota_messages q')

  const pt = setup('quotas:\n  - {name: q, per: peer_type, window_s: 10, messages: 100}', { maxTrackedPerQuota: 2 })
  t.equal(pt.engine.check(subj({ peer: A, type: 16 })), ALLOWED)
  t.equal(pt.engine.check(subj({ peer: A, type: 17 })), ALLOWED)
  t.equal(pt.engine.check(subj({ peer: A, type: 18 })).detail, 'q: more than 2 peer and type pairs in one window; new ones are refused until windows end')
  pt.clock.t += 10_000
  t.equal(pt.engine.check(subj({ peer: A, type: 18 })), ALLOWED)
})

t.test('blocks are bounded: beyond maxBlocks no new block is set, and the verdict says so', async (t) => {
  const { clock, engine } = setup('types: {agent: []}\nactions: {type_not_allowed: {block_peer: {for_s: 10}}}', { maxBlocks: 2 })
  t.equal(engine.check(subj({ peer: A, via: null })).blockPeerMs, 10_000)
  t.equal(engine.check(subj({ peer: B, via: null })).blockPeerMs, 10_000)
  const v = engine.check(subj({ peer: C, via: null }))
  t.strictSame(v, { ok: false, violation: 'type_not_allowed', rule: 'types.agent', detail: `TASK_REQUEST is not in types.agent (${C} not blocked: 2 blocks in force already)` })
  t.notOk(engine.block(C, 1000, 'operator'))
  clock.t += 10_000
  t.equal(engine.check(subj({ peer: C, via: null })).blockPeerMs, 10_000, 'ended blocks make room')
})

t.test('counters: totals, per violation, per rule, blocks in force soonest first', async (t) => {
  const { clock, engine } = setup(`peers: {block: [${C}]}\nquotas:\n  - {name: q, per: peer, window_s: 60, messages: 1, action: {block_peer: {for_s: 100}}}`)
  engine.check(subj({ peer: A }))
  engine.check(subj({ peer: A })) // quota, blocks A for 100 s
  engine.check(subj({ peer: A })) // temporarily blocked, rule q
  engine.check(subj({ peer: C }))
  clock.t += 1
  engine.block(B, 50_000, 'operator')
  const c = engine.counters()
  t.strictSame(c, {
    checked: 4,
    allowed: 1,
    refused: 3,
    byViolation: { peer_temporarily_blocked: 1, peer_blocked: 1, peer_not_allowed: 0, trust_below_minimum: 0, type_not_allowed: 0, quota_messages: 1, quota_bytes: 0 },
    byRule: { q: 2, 'peers.block': 1 },
    blockedPeers: [
      { peer: B, until: T0 + 50_001, rule: 'operator' },
      { peer: A, until: T0 + 100_000, rule: 'q' },
    ],
  })
  clock.t = T0 + 100_000
  t.strictSame(engine.counters().blockedPeers, [], 'ended blocks are not listed')
  c.byViolation.peer_blocked = 99
  t.equal(engine.counters().byViolation.peer_blocked, 1, 'a copy')
})

t.test('options are checked', async (t) => {
  t.throws(() => new PolicyEngine(null, { maxTrackedPerQuota: 0 }), TypeError)
  t.throws(() => new PolicyEngine(null, { maxBlocks: 1.5 }), TypeError)
})

// ---------------------------------------------------------------------------------------------
// Model-based: the engine against a plain reimplementation of docs/policy.md's rules.

interface ModelQuota {
  name: string
  per: 'peer' | 'type' | 'peer_type'
  windowMs: number
  messages: number | null
  bytes: number | null
  types: number[] | null
  blockMs: number | null
}

class Model {
  windows = new Map<string, { start: number; messages: number; bytes: number }>()
  blocks = new Map<string, number>()
  constructor(
    readonly quotas: ModelQuota[],
    readonly blockList: string[],
    readonly defaultBlockMs: number | null,
  ) {}

  check(s: PolicySubject, now: number): string {
    for (const who of [s.peer, s.via]) {
      if (who === null) continue
      const until = this.blocks.get(who)
      if (until !== undefined && until > now) return 'peer_temporarily_blocked'
    }
    if ((s.peer !== null && this.blockList.includes(s.peer)) || (s.via !== null && this.blockList.includes(s.via))) return 'peer_blocked'
    const charged: Array<{ start: number; messages: number; bytes: number }> = []
    for (const q of this.quotas) {
      const counted = q.types === null ? s.type >= 16 && s.type <= 63 : q.types.includes(s.type)
      if (!counted) continue
      const key = `${q.name}/${q.per === 'type' ? '' : (s.peer ?? '')}/${q.per === 'peer' ? '' : s.type}`
      let w = this.windows.get(key)
      if (w === undefined || now - w.start >= q.windowMs) {
        w = { start: now, messages: 0, bytes: 0 }
        this.windows.set(key, w)
      }
      const over = q.messages !== null && w.messages + 1 > q.messages ? 'quota_messages' : q.bytes !== null && w.bytes + s.bytes > q.bytes ? 'quota_bytes' : null
      if (over !== null) {
        const ms = q.blockMs ?? (over === 'quota_messages' ? this.defaultBlockMs : null)
        const target = s.peer ?? s.via
        if (ms !== null && target !== null) this.blocks.set(target, Math.max(this.blocks.get(target) ?? 0, now + ms))
        return `${over} ${q.name}`
      }
      charged.push(w)
    }
    for (const w of charged) {
      w.messages++
      w.bytes += s.bytes
    }
    return 'ok'
  }
}

t.test('model: random policies and traffic give the verdicts of a plain reimplementation', async () => {
  const TYPES: Array<[number, string]> = [
    [PacketType.Handshake, 'HANDSHAKE'],
    [PacketType.Ack, 'ACK'],
    [PacketType.TaskRequest, 'TASK_REQUEST'],
    [PacketType.AgentMigration, 'AGENT_MIGRATION'],
    [PacketType.VectorSync, 'VECTOR_SYNC'],
  ]
  const PEERS = [A, B, C, null]
  const quota = fc.record({
    per: fc.constantFrom('peer' as const, 'type' as const, 'peer_type' as const),
    windowMs: fc.integer({ min: 1, max: 50 }),
    messages: fc.option(fc.integer({ min: 1, max: 4 })),
    bytes: fc.option(fc.integer({ min: 1, max: 300 })),
    types: fc.option(fc.subarray(TYPES, { minLength: 1 })),
    blockMs: fc.option(fc.integer({ min: 1, max: 40 })),
  })
  const step = fc.record({
    dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 30 })),
    peer: fc.constantFrom(...PEERS),
    via: fc.constantFrom(...PEERS),
    type: fc.constantFrom(...TYPES.map(([n]) => n)),
    bytes: fc.integer({ min: 0, max: 200 }),
  })
  fc.assert(
    fc.property(fc.array(quota, { maxLength: 3 }), fc.subarray([C]), fc.option(fc.integer({ min: 1, max: 40 })), fc.array(step, { minLength: 1, maxLength: 120 }), (qs, blockList, defaultBlockMs, steps) => {
      const quotas: ModelQuota[] = qs.map((q, i) => ({ ...q, name: `q${i}`, messages: q.messages === null && q.bytes === null ? 1 : q.messages, types: q.types === null ? null : q.types.map(([n]) => n) }))
      const lines = quotas.map((q, i) => {
        const parts = [`name: ${q.name}`, `per: ${q.per}`, `window_s: ${q.windowMs / 1000}`]
        if (q.messages !== null) parts.push(`messages: ${q.messages}`)
        if (q.bytes !== null) parts.push(`bytes: ${q.bytes}`)
        if (qs[i]!.types !== null) parts.push(`types: [${qs[i]!.types!.map(([, name]) => name).join(', ')}]`)
        if (q.blockMs !== null) parts.push(`action: {block_peer: {for_s: ${q.blockMs / 1000}}}`)
        return `  - {${parts.join(', ')}}`
      })
      const text = [
        blockList.length === 0 ? '' : `peers: {block: [${blockList.join(', ')}]}`,
        defaultBlockMs === null ? '' : `actions: {quota_messages: {block_peer: {for_s: ${defaultBlockMs / 1000}}}}`,
        lines.length === 0 ? '' : `quotas:\n${lines.join('\n')}`,
      ].join('\n')
      const clock = { t: 0 }
      const engine = new PolicyEngine(pol(text), { now: () => clock.t })
      const model = new Model(quotas, blockList, defaultBlockMs)
      let refused = 0
      for (const [i, s] of steps.entries()) {
        clock.t += s.dt
        const subject = subj({ peer: s.peer, via: s.via, type: s.type, bytes: s.bytes })
        const got = engine.check(subject)
        const want = model.check(subject, clock.t)
        const gotBrief = got.ok ? 'ok' : got.violation!.startsWith('quota') ? `${got.violation} ${got.rule}` : got.violation!
        if (gotBrief !== want) throw new Error(`step ${i} at ${clock.t}: engine ${gotBrief}, model ${want}\n${text}`)
        if (got.ok && got !== ALLOWED) throw new Error('an allowed verdict that is not the shared one')
        if (!got.ok) refused++
      }
      const c = engine.counters()
      if (c.checked !== steps.length || c.refused !== refused || c.allowed !== steps.length - refused) throw new Error('counters')
    }),
    { numRuns: 500 },
  )
})
