/**
 * Property tests (fast-check) of the .klp-policy parser, which reads files people write by hand
 * and that an operator may reload into a running relay.
 *
 *  1. Robustness: random text, random bytes through loadPolicy, random JSON, random documents
 *     made of the format's own keys and words with values of every kind, and random edits of
 *     the docs example never make the parser throw anything but PolicyError, and every problem
 *     names the file, a key path (or '' for the whole file) and a line inside the file.
 *  2. Accepted means valid: whatever parsePolicy returns satisfies every rule of the format.
 *  3. Valid means accepted, exactly: a policy built from the rules (written as YAML or as JSON)
 *     parses to the normalised policy computed independently here.
 *  4. Round trip: formatPolicy of any policy accepted in 1 to 3 parses to the same policy.
 *
 * fast-check picks the seed; a failure prints it with the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import { deepStrictEqual } from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify as stringifyYaml } from 'yaml'
import { formatProblem } from '../../appliance/config/errors.js'
import { PacketType, packetTypeName } from '../../appliance/core/wire/constants.js'
import {
  POLICY_LIMITS,
  PolicyError,
  QUOTA_SCOPES,
  TRUSTS,
  VIOLATIONS,
  formatPolicy,
  isAgentType,
  isControlType,
  loadPolicy,
  parsePolicy,
  type Policy,
  type PolicyAction,
  type QuotaRule,
  type Violation,
} from '../../appliance/policy/index.js'

const FILE = 'fuzz.klp-policy'
const RUNS = 400
const EXAMPLE = readFileSync(new URL('../../docs/examples/field-relay.klp-policy', import.meta.url), 'utf8')

const PATH_RE = /^(?:[A-Za-z_][A-Za-z0-9_-]*|\[".*"\])(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\[".*"\])*$/
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

type Outcome = { ok: true; policy: Policy } | { ok: false; err: PolicyError }

/** parsePolicy, checking everything that must hold of any outcome. */
function run(text: string): Outcome {
  let out: Outcome
  try {
    out = { ok: true, policy: parsePolicy(text, FILE) }
  } catch (err) {
    if (!(err instanceof PolicyError)) throw new Error(`threw ${String(err)} for ${JSON.stringify(text.slice(0, 200))}`, { cause: err })
    out = { ok: false, err }
  }
  if (out.ok) {
    checkAccepted(out.policy)
    roundTrip(out.policy)
  } else checkProblems(out.err, text)
  return out
}

/** formatPolicy of an accepted policy parses to the same policy. */
function roundTrip(p: Policy): void {
  const text = formatPolicy(p)
  let again: Policy
  try {
    again = parsePolicy(text, p.file)
  } catch (err) {
    throw new Error(`formatPolicy output refused: ${(err as Error).message}\n${text}`)
  }
  deepStrictEqual({ ...again, sha256: '' }, { ...p, sha256: '' })
}

function checkProblems(err: PolicyError, text: string): void {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text
  // Lines as the YAML parser counts them (\n; \r\n is one line end).
  const lines = body.split('\n').length
  if (err.problems.length === 0 || err.problems.length > 101) throw new Error(`${err.problems.length} problems`)
  for (const p of err.problems) {
    if (typeof p.path !== 'string' || (p.path !== '' && !PATH_RE.test(p.path))) throw new Error(`bad path ${JSON.stringify(p.path)}`)
    if (typeof p.message !== 'string' || p.message.length === 0 || p.message.includes('\n')) throw new Error(`bad message ${JSON.stringify(p.message)}`)
    if (!(Number.isInteger(p.line) && p.line! >= 1 && p.line! <= lines)) throw new Error(`line ${p.line} of ${lines}: ${formatProblem(p)}`)
    if (p.file !== FILE) throw new Error(`file ${p.file}`)
    const f = formatProblem(p)
    if (p.path !== '' && !f.endsWith(` (${FILE}:${p.line})`)) throw new Error(`format ${f}`)
    if (p.path === '' && !f.startsWith(`${FILE}:${p.line}: `)) throw new Error(`format ${f}`)
  }
  if (err.message !== err.problems.map(formatProblem).join('\n')) throw new Error('message is not the problems, one per line')
  if (err.field !== err.problems[0]!.path || err.file !== FILE || err.code !== 'ECONFIG') throw new Error('field, file or code')
}

function checkAction(a: PolicyAction, v: Violation | null): void {
  if (typeof a.disconnectLink !== 'boolean') throw new Error('disconnectLink')
  if (a.blockPeerMs !== null && !(Number.isSafeInteger(a.blockPeerMs) && a.blockPeerMs >= 1 && a.blockPeerMs <= POLICY_LIMITS.blockForS[1] * 1000)) throw new Error(`blockPeerMs ${a.blockPeerMs}`)
  if (v === 'peer_temporarily_blocked' && a.blockPeerMs !== null) throw new Error('a blocked peer blocked again')
}

/** Every rule of the format holds of an accepted policy. */
function checkAccepted(p: Policy): void {
  const fail = (why: string) => {
    throw new Error(`accepted but ${why}: ${JSON.stringify(p)}`)
  }
  if (p.file !== FILE || !NAME_RE.test(p.name) || !/^[0-9a-f]{64}$/.test(p.sha256)) fail('file, name or hash')
  if (p.description !== null && (p.description.length === 0 || p.description.length > POLICY_LIMITS.description)) fail('description')
  const uniq = (a: unknown[]) => new Set(a).size === a.length
  if (p.types.agent !== null && (!p.types.agent.every(isAgentType) || !uniq(p.types.agent))) fail('types.agent')
  if (p.types.control !== null && (!p.types.control.every(isControlType) || !uniq(p.types.control))) fail('types.control')
  const id = /^[0-9a-f]{32}$/
  if (p.peers.allow !== null && (p.peers.allow.length === 0 || !p.peers.allow.every((x) => id.test(x)) || !uniq(p.peers.allow))) fail('peers.allow')
  if (!p.peers.block.every((x) => id.test(x)) || !uniq(p.peers.block)) fail('peers.block')
  if (p.peers.allow !== null && p.peers.block.some((x) => p.peers.allow!.includes(x))) fail('allowed and blocked')
  if (!TRUSTS.includes(p.peers.minTrust)) fail('min_trust')
  if (p.quotas.length > POLICY_LIMITS.quotas || !uniq(p.quotas.map((q) => q.name))) fail('quotas')
  for (const q of p.quotas) {
    if (!QUOTA_SCOPES.includes(q.per)) fail('per')
    if (!(Number.isSafeInteger(q.windowMs) && q.windowMs >= 1 && q.windowMs <= POLICY_LIMITS.windowS[1] * 1000)) fail('windowMs')
    if (q.messages === null && q.bytes === null) fail('no limit')
    if (q.messages !== null && !(Number.isSafeInteger(q.messages) && q.messages >= 1)) fail('messages')
    if (q.bytes !== null && !(Number.isSafeInteger(q.bytes) && q.bytes >= 1)) fail('bytes')
    if (q.types !== null && (q.types.length === 0 || !q.types.every((x) => isAgentType(x) || isControlType(x)) || !uniq(q.types))) fail('quota types')
    if (q.action !== null) checkAction(q.action, null)
  }
  for (const v of VIOLATIONS) checkAction(p.actions[v], v)
  if (Object.keys(p.actions).length !== VIOLATIONS.length) fail('actions')
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const TYPE_NAMES = [PacketType.Handshake, PacketType.Announce, PacketType.Ack, PacketType.Keepalive, PacketType.Close, PacketType.TaskRequest, PacketType.AgentMigration, PacketType.ReputationDelta, PacketType.BroadcastAnnounce, PacketType.VectorSync].map(packetTypeName)
const CONTROL_NAMES = TYPE_NAMES.slice(0, 5)
const AGENT_NAMES = TYPE_NAMES.slice(5)
const KEYS = ['version', 'name', 'description', 'types', 'peers', 'quotas', 'actions', 'agent', 'control', 'allow', 'block', 'min_trust', 'per', 'window_s', 'messages', 'bytes', 'action', 'block_peer', 'for_s', ...VIOLATIONS, 'x-a', '<<']
const WORDS = [...TYPE_NAMES, ...TRUSTS, ...QUOTA_SCOPES, 'drop', 'disconnect_link', 'block_peer', 'task-request', '*a', '&a x']

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const nodeId = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(hex)

const scalar = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom(...WORDS),
  nodeId,
  fc.integer({ min: -10, max: 100_000 }),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(1),
)
const { value: anyValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 4 })),
}))

/** Mostly `good`, sometimes anything. */
const mostly = <T,>(good: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: anyValue, weight: 1 }, { arbitrary: scalar, weight: 1 })

/** Documents with the format's shape, each value sometimes wrong. */
const actionish = mostly(
  fc.oneof(
    fc.constantFrom('drop', 'disconnect_link', 'block_peer'),
    fc.record({ block_peer: mostly(fc.record({ for_s: mostly(fc.oneof(fc.double(), fc.integer({ min: -1, max: 3e6 }))) })) }),
    fc.array(mostly(fc.oneof(fc.constantFrom('drop', 'disconnect_link'), fc.record({ block_peer: fc.record({ for_s: fc.integer({ min: 0, max: 100 }) }) }))), { maxLength: 4 }),
  ),
)
const shaped = fc.record(
  {
    version: mostly(fc.constant(1)),
    name: mostly(fc.constantFrom('a', 'relay-1', 'x y', '')),
    description: mostly(fc.string({ maxLength: 30 })),
    types: mostly(fc.record({ agent: mostly(fc.array(mostly(fc.constantFrom(...TYPE_NAMES)), { maxLength: 6 })), control: mostly(fc.array(mostly(fc.constantFrom(...TYPE_NAMES)), { maxLength: 6 })) }, { requiredKeys: [] })),
    peers: mostly(fc.record({ allow: mostly(fc.array(mostly(nodeId), { maxLength: 4 })), block: mostly(fc.array(mostly(nodeId), { maxLength: 4 })), min_trust: mostly(fc.constantFrom(...TRUSTS)) }, { requiredKeys: [] })),
    quotas: mostly(
      fc.array(
        mostly(
          fc.record(
            {
              name: mostly(fc.constantFrom('a', 'b', 'c')),
              per: mostly(fc.constantFrom(...QUOTA_SCOPES)),
              window_s: mostly(fc.oneof(fc.double(), fc.integer({ min: -1, max: 100_000 }))),
              messages: mostly(fc.integer({ min: -1, max: 100 })),
              bytes: mostly(fc.integer({ min: -1, max: 100_000 })),
              types: mostly(fc.array(mostly(fc.constantFrom(...TYPE_NAMES)), { maxLength: 4 })),
              action: actionish,
            },
            { requiredKeys: ['per', 'window_s'] },
          ),
        ),
        { maxLength: 4 },
      ),
    ),
    actions: mostly(fc.dictionary(fc.oneof({ arbitrary: fc.constantFrom(...VIOLATIONS), weight: 12 }, { arbitrary: fc.string({ maxLength: 6 }), weight: 1 }), actionish, { maxKeys: 4 })),
    'x-extra': anyValue,
  },
  { requiredKeys: ['version'] },
)

function write(doc: unknown, asJson: boolean): string {
  return asJson ? JSON.stringify(doc, null, 1) ?? 'null' : stringifyYaml(doc, { lineWidth: 0 })
}

// ---------------------------------------------------------------------------------------------
// 1, 2. Robustness; accepted means valid

t.test('random text never throws anything but PolicyError; problems are well formed', async (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 300, unit: 'binary' }), (s) => void run(s)), { numRuns: RUNS })
  const tokens = fc.constantFrom('version: 1\n', 'version', ':', ' ', '\n', '  ', '- ', '[', ']', '{', '}', ',', '"', "'", '&a ', '*a', '<<: ', '#', '---\n', '? ', '!!str ', '|\n', ...KEYS.map((k) => `${k}: `), ...WORDS, '0x10', '1e9', '.inf', '~')
  fc.assert(fc.property(fc.array(tokens, { maxLength: 60 }), (parts) => void run(parts.join(''))), { numRuns: RUNS })
  fc.assert(fc.property(fc.jsonValue(), (v) => void run(JSON.stringify(v))), { numRuns: RUNS / 2 })
})

t.test('documents of the format shape with wrong values: only PolicyError, accepted ones valid', async (t) => {
  let accepted = 0
  fc.assert(
    fc.property(shaped, fc.boolean(), (doc, asJson) => {
      if (run(write(doc, asJson)).ok) accepted++
    }),
    { numRuns: RUNS * 2 },
  )
  // Not a check on the parser: that the generator reaches both outcomes at all.
  t.ok(accepted > 0, `${accepted} of ${RUNS * 2} accepted`)
})

t.test('edits of the docs example: only PolicyError, accepted ones valid', async (t) => {
  const lines = EXAMPLE.split('\n')
  const edits = fc.oneof(
    fc.tuple(fc.nat(EXAMPLE.length), fc.nat(6), fc.string({ maxLength: 6 })).map(([at, del, ins]) => EXAMPLE.slice(0, at) + ins + EXAMPLE.slice(at + del)),
    fc.nat(lines.length - 1).map((i) => lines.filter((_, j) => j !== i).join('\n')),
    fc.tuple(fc.nat(lines.length - 1), fc.nat(lines.length - 1)).map(([i, j]) => lines.map((l, k) => (k === i ? lines[j]! : l)).join('\n')),
    fc.tuple(fc.nat(lines.length - 1), fc.constantFrom(...WORDS, '0', '-1', '[]', '{}', '', '1.5', 'null')).map(([i, w]) => lines.map((l, k) => (k === i ? l.replace(/:\s.*$/, `: ${w}`) : l)).join('\n')),
  )
  fc.assert(fc.property(edits, (text) => void run(text)), { numRuns: RUNS * 2 })
})

t.test('random bytes through loadPolicy: only PolicyError naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kairo-policy-fuzz-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'x.klp-policy')
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      writeFileSync(file, bytes)
      try {
        loadPolicy(file)
      } catch (err) {
        if (!(err instanceof PolicyError) || err.file !== file || err.problems.some((p) => p.file !== file)) throw err
      }
    }),
    { numRuns: RUNS / 2 },
  )
})

// ---------------------------------------------------------------------------------------------
// 3, 4. Valid means accepted, as computed here; round trip

interface Built {
  doc: Record<string, unknown>
  expected: Omit<Policy, 'sha256' | 'file'>
}

const ruleName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$/)
const seconds = (max: number) => fc.oneof(fc.integer({ min: 1, max }), fc.double({ min: 0.000_1, max, noNaN: true }))
const anAction = fc
  .record({ block: fc.option(seconds(POLICY_LIMITS.blockForS[1])), disconnect: fc.boolean(), drop: fc.boolean(), list: fc.boolean() })
  .map(({ block, disconnect, drop, list }) => {
    const items: unknown[] = []
    if (drop || (block === null && !disconnect)) items.push('drop')
    if (block !== null) items.push({ block_peer: { for_s: block } })
    if (disconnect) items.push('disconnect_link')
    const written = list || items.length > 1 ? items : items[0]
    const action: PolicyAction = { blockPeerMs: block === null ? null : Math.max(1, Math.round(block * 1000)), disconnectLink: disconnect }
    return { written, action }
  })

const aQuota = fc.record({
  name: fc.option(ruleName),
  per: fc.constantFrom(...QUOTA_SCOPES),
  window: seconds(POLICY_LIMITS.windowS[1]),
  messages: fc.option(fc.integer({ min: 1, max: 1_000_000 })),
  bytes: fc.option(fc.integer({ min: 1, max: 1e12 })),
  types: fc.option(fc.subarray(TYPE_NAMES, { minLength: 1 })),
  action: fc.option(anAction),
})

const built: fc.Arbitrary<Built> = fc
  .record({
    name: fc.option(ruleName),
    description: fc.option(fc.string({ minLength: 1, maxLength: 50 }).filter((s) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s))),
    agent: fc.option(fc.subarray(AGENT_NAMES)),
    control: fc.option(fc.subarray(CONTROL_NAMES)),
    allow: fc.option(fc.uniqueArray(nodeId, { minLength: 1, maxLength: 4 })),
    block: fc.option(fc.uniqueArray(nodeId, { maxLength: 4 })),
    minTrust: fc.option(fc.constantFrom(...TRUSTS)),
    quotas: fc.option(fc.array(aQuota, { maxLength: 4 })),
    actions: fc.option(fc.dictionary(fc.constantFrom(...VIOLATIONS), anAction, { maxKeys: 7 })),
    upper: fc.boolean(),
  })
  .map((r) => {
    const doc: Record<string, unknown> = { version: 1 }
    if (r.name !== null) doc.name = r.name
    if (r.description !== null) doc.description = r.description
    const types: Record<string, unknown> = {}
    if (r.agent !== null) types.agent = r.agent.map((n) => (r.upper ? n : n.toLowerCase().replace(/_/g, '-')))
    if (r.control !== null) types.control = r.control
    if (Object.keys(types).length > 0) doc.types = types
    const block = (r.block ?? []).filter((id) => !(r.allow ?? []).includes(id))
    const peers: Record<string, unknown> = {}
    if (r.allow !== null) peers.allow = r.allow.map((id) => (r.upper ? id.toUpperCase() : id))
    if (r.block !== null) peers.block = block
    if (r.minTrust !== null) peers.min_trust = r.minTrust
    if (Object.keys(peers).length > 0) doc.peers = peers
    const names = new Set<string>()
    const quotas: QuotaRule[] = []
    const written: unknown[] = []
    for (const q of r.quotas ?? []) {
      const name = q.name !== null && !names.has(q.name) ? q.name : null
      if (name !== null) names.add(name)
      const messages = q.messages ?? (q.bytes === null ? 10 : null)
      written.push({
        ...(name !== null && { name }),
        per: q.per,
        window_s: q.window,
        ...(messages !== null && { messages }),
        ...(q.bytes !== null && { bytes: q.bytes }),
        ...(q.types !== null && { types: q.types }),
        ...(q.action !== null && { action: q.action.written }),
      })
      quotas.push({
        name: name ?? `quotas[${written.length - 1}]`,
        per: q.per,
        windowMs: Math.max(1, Math.round(q.window * 1000)),
        messages,
        bytes: q.bytes,
        types: q.types === null ? null : q.types.map((n) => TYPE_NAMES.indexOf(n)).map((i) => [1, 2, 3, 4, 5, 16, 17, 18, 19, 20][i]!),
        action: q.action?.action ?? null,
      })
    }
    if (r.quotas !== null) doc.quotas = written
    const actions = Object.fromEntries(VIOLATIONS.map((v) => [v, { blockPeerMs: null, disconnectLink: false }])) as Record<Violation, PolicyAction>
    if (r.actions !== null) {
      const a: Record<string, unknown> = {}
      for (const [v, act] of Object.entries(r.actions) as Array<[Violation, { written: unknown; action: PolicyAction }]>) {
        if (v === 'peer_temporarily_blocked' && act.action.blockPeerMs !== null) continue
        a[v] = act.written
        actions[v] = act.action
      }
      doc.actions = a
    }
    const typeNo = (n: string) => [1, 2, 3, 4, 5, 16, 17, 18, 19, 20][TYPE_NAMES.indexOf(n.toUpperCase().replace(/-/g, '_'))]!
    return {
      doc,
      expected: {
        name: r.name ?? 'fuzz',
        description: r.description,
        types: { agent: r.agent === null ? null : r.agent.map(typeNo), control: r.control === null ? null : r.control.map(typeNo) },
        peers: { allow: r.allow, block, minTrust: r.minTrust ?? 'unknown' },
        quotas,
        actions,
      },
    }
  })

t.test('a policy built from the rules parses to the policy computed from them, as YAML and as JSON', async (t) => {
  fc.assert(
    fc.property(built, fc.boolean(), ({ doc, expected }, asJson) => {
      const out = run(write(doc, asJson))
      if (!out.ok) throw new Error(`refused: ${out.err.message}\n${write(doc, asJson)}`)
      const { sha256: _h, file: _f, ...got } = out.policy
      deepStrictEqual(got, expected)
    }),
    { numRuns: RUNS },
  )
})
