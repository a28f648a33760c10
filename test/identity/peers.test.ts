import t from 'tap'
import fc from 'fast-check'
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Identity } from '../../appliance/core/identity.js'
import { IdentityFileError } from '../../appliance/identity/files.js'
import { PEERS_FILE, PeerRegistry, peerNameProblem, type PeerClaim, type PeerPolicy, type PeerRecord } from '../../appliance/identity/peers.js'
import { arbUuid, identityOf, tempDir } from './helpers.js'

const TOFU: PeerPolicy = { mode: 'tofu', allow: [] }
const U1 = '0f8fad5b-d9cb-469f-a165-70867728950e'
const U2 = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'
const T0 = Date.UTC(2026, 0, 1)
const iso = (ms: number): string => new Date(ms).toISOString()

function claim(id: Identity, more: Omit<PeerClaim, 'nodeId' | 'identityKey'> = {}): PeerClaim {
  return { nodeId: id.nodeIdHex, identityKey: id.identityKey, ...more }
}

function onDisk(file: string): PeerRecord[] {
  return JSON.parse(readFileSync(file, 'utf8')).peers
}

t.test('TOFU: a new key is admitted and written at once; then known; last_seen waits for flush()', async (t) => {
  const file = join(tempDir(t), 'state', PEERS_FILE)
  const reg = PeerRegistry.open(file, TOFU)
  t.notOk(existsSync(file), 'nothing written at open')
  const a = identityOf(1)
  const first = reg.consider(claim(a, { uuid: U1.toUpperCase(), name: 'gw-1', meshIp: '100.64.3.4', now: T0 }))
  const rec: PeerRecord = { node_id: a.nodeIdHex, uuid: U1, name: 'gw-1', mesh_ip: '100.64.3.4', identity_key: a.identityKey.toString('hex'), state: 'admitted', reason: null, first_seen: iso(T0), last_seen: iso(T0), count: 1 }
  t.same(first, { decision: 'new', peer: rec })
  t.same(onDisk(file), [rec], 'written before consider returned')
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.notOk(reg.dirty)
  const second = reg.consider(claim(a, { uuid: U1, name: 'gw-1', meshIp: '100.64.3.4', now: T0 + 5000 }))
  t.same(second, { decision: 'known', peer: { ...rec, last_seen: iso(T0 + 5000), count: 2 } })
  t.ok(reg.dirty)
  t.same(onDisk(file), [rec], 'last_seen not written yet')
  t.same(PeerRegistry.open(file, TOFU).list(), [rec], 'a crash now loses only last_seen and count')
  t.equal(reg.flush(), true)
  t.equal(reg.flush(), false, 'nothing more to write')
  t.same(onDisk(file), [{ ...rec, last_seen: iso(T0 + 5000), count: 2 }])
  t.same(PeerRegistry.open(file, TOFU).list(), reg.list())
  t.same(reg.get(a.nodeIdHex.toUpperCase()), { ...rec, last_seen: iso(T0 + 5000), count: 2 })
  t.ok(reg.isAdmitted(a.nodeIdHex))
  t.same(reg.counts(), { admitted: 1, refused: 0 })
  // Claims left out keep what is recorded; a changed claim is written at once.
  const third = reg.consider(claim(a, { meshIp: '100.64.9.9', now: T0 + 6000 }))
  t.same(third.changed, ['mesh_ip'])
  t.equal(third.peer.uuid, U1)
  t.equal(onDisk(file)[0]!.mesh_ip, '100.64.9.9')
  t.notOk(reg.dirty)
  const copy = reg.list()[0]!
  copy.name = 'tampered'
  t.equal(reg.get(a.nodeIdHex)!.name, 'gw-1', 'list() returns copies')
})

t.test('TOFU: another key claiming a pinned UUID or name is refused key_changed and recorded', async (t) => {
  const file = join(tempDir(t), PEERS_FILE)
  const reg = PeerRegistry.open(file, TOFU)
  const a = identityOf(1)
  const b = identityOf(2)
  reg.consider(claim(a, { uuid: U1, name: 'Gw-Tokyo', now: T0 }))
  const r1 = reg.consider(claim(b, { uuid: U1, name: 'other', meshIp: '100.64.5.5', now: T0 + 1000 }))
  t.equal(r1.decision, 'refused')
  t.equal(r1.reason, 'key_changed')
  t.same(r1.peer, {
    node_id: b.nodeIdHex,
    uuid: U1,
    name: 'other',
    mesh_ip: '100.64.5.5',
    identity_key: b.identityKey.toString('hex'),
    state: 'refused',
    reason: 'key_changed',
    first_seen: iso(T0 + 1000),
    last_seen: iso(T0 + 1000),
    count: 1,
    pinned_node_id: a.nodeIdHex,
    pinned_key: a.identityKey.toString('hex'),
    conflict: 'uuid',
  })
  t.ok(reg.dirty, 'a refusal waits for flush()')
  t.equal(onDisk(file).length, 1)
  const r2 = reg.consider(claim(b, { uuid: U1, now: T0 + 9000 }))
  t.equal(r2.peer.count, 2)
  t.equal(r2.peer.first_seen, iso(T0 + 1000))
  t.equal(r2.peer.last_seen, iso(T0 + 9000))
  const r3 = reg.consider(claim(b, { uuid: U2, name: 'GW-TOKYO', now: T0 + 10_000 }))
  t.equal(r3.reason, 'key_changed')
  t.equal(r3.peer.conflict, 'name', 'names compare case-insensitively')
  t.equal(r3.peer.count, 3)
  reg.flush()
  const reopened = PeerRegistry.open(file, TOFU)
  t.same(reopened.list(), reg.list())
  t.same(reopened.list().map((r) => r.state), ['admitted', 'refused'])
  // The admitted peer is unaffected, and b with its own UUID and name is a new peer.
  const r4 = reg.consider(claim(b, { uuid: U2, name: 'gw-osaka', now: T0 + 11_000 }))
  t.equal(r4.decision, 'new')
  t.same(reg.list().map((r) => [r.node_id, r.state]), [[a.nodeIdHex, 'admitted'], [b.nodeIdHex, 'admitted']], 'the refused record goes when the node is admitted')
  // An admitted peer claiming another's UUID is refused, but stays admitted under its own.
  const r5 = reg.consider(claim(b, { uuid: U1, now: T0 + 12_000 }))
  t.equal(r5.reason, 'key_changed')
  t.same(reg.get(b.nodeIdHex)!.uuid, U2)
  t.same(reg.list().map((r) => [r.node_id, r.state]), [[a.nodeIdHex, 'admitted'], [b.nodeIdHex, 'admitted'], [b.nodeIdHex, 'refused']])
  // A known peer may change its own UUID to a free one (KAIRO_NODE_ID changed): the old one is released.
  const U3 = '017f22e2-79b0-7cc3-98c4-dc0c0c07398f'
  const r6 = reg.consider(claim(a, { uuid: U3, now: T0 + 13_000 }))
  t.same([r6.decision, r6.changed], ['known', ['uuid']])
  t.equal(reg.consider(claim(identityOf(3), { uuid: U1, now: T0 + 14_000 })).decision, 'new', 'U1 is free again')
})

t.test('remove() forgets a node and releases its pins, written at once', async (t) => {
  const file = join(tempDir(t), PEERS_FILE)
  const reg = PeerRegistry.open(file, TOFU)
  const a = identityOf(1)
  const replacement = identityOf(2)
  reg.consider(claim(a, { uuid: U1, name: 'gw', now: T0 }))
  t.equal(reg.consider(claim(replacement, { uuid: U1, name: 'gw', now: T0 + 1 })).decision, 'refused')
  const removed = reg.remove(a.nodeIdHex)
  t.same(removed.map((r) => r.node_id), [a.nodeIdHex])
  t.same(reg.remove(a.nodeIdHex), [])
  t.same(onDisk(file).map((r) => r.node_id), [replacement.nodeIdHex], 'the pending refusal was written with the removal')
  t.equal(reg.consider(claim(replacement, { uuid: U1, name: 'gw', now: T0 + 2 })).decision, 'new', 'the replacement key is pinned now')
  t.same(reg.remove(replacement.nodeIdHex.toUpperCase()).length, 1)
  t.same(onDisk(file), [])
})

t.test('node_id_mismatch and malformed claims are refused and recorded', async (t) => {
  const reg = PeerRegistry.open(join(tempDir(t), PEERS_FILE), TOFU)
  const a = identityOf(1)
  const b = identityOf(2)
  const m = reg.consider({ nodeId: b.nodeIdHex, identityKey: a.identityKey, now: T0 })
  t.equal(m.reason, 'node_id_mismatch')
  t.equal(m.peer.node_id, b.nodeIdHex, 'recorded under the node ID claimed')
  t.equal(m.peer.identity_key, a.identityKey.toString('hex'))
  t.equal(reg.consider(claim(a, { uuid: 'nope' })).reason, 'invalid_uuid')
  t.equal(reg.consider(claim(a, { uuid: U1, name: 'bad\nname' })).reason, 'invalid_name')
  t.equal(reg.consider(claim(a, { name: 'x'.repeat(65) })).reason, 'invalid_name')
  t.equal(reg.consider(claim(a, { meshIp: '10.0.0.1' })).reason, 'invalid_mesh_ip')
  const last = reg.list().find((r) => r.node_id === a.nodeIdHex)!
  t.equal(last.count, 4)
  t.equal(last.reason, 'invalid_mesh_ip')
  t.equal(reg.isAdmitted(a.nodeIdHex), false)
  t.throws(() => reg.consider({ nodeId: 'x', identityKey: a.identityKey }), /nodeId must be 32 hex digits/)
  t.throws(() => reg.consider({ nodeId: a.nodeIdHex, identityKey: new Uint8Array(31) }), /identityKey must be a 32-byte/)
  for (const [name, ok] of [['gw-1', true], ['東京ゲートウェイ', true], ['', false], ['  ', false], ['a\u202eb', false], ['a\u0085', false], ['x'.repeat(64), true]] as const) {
    t.equal(peerNameProblem(name) === undefined, ok, JSON.stringify(name))
  }
})

t.test('allowlist: only listed keys or node IDs are admitted; an entry name is the label and is reserved', async (t) => {
  const file = join(tempDir(t), PEERS_FILE)
  const a = identityOf(1)
  const b = identityOf(2)
  const c = identityOf(3)
  const policy: PeerPolicy = { mode: 'allowlist', allow: [{ key: a.identityKey.toString('hex').toUpperCase(), name: 'alpha' }, { node_id: b.nodeIdHex }] }
  const reg = PeerRegistry.open(file, policy)
  t.equal(reg.policyMode, 'allowlist')
  const ra = reg.consider(claim(a, { name: 'whatever', now: T0 }))
  t.same([ra.decision, ra.peer.name], ['new', 'alpha'], "the operator's label wins")
  t.equal(reg.consider(claim(b, { name: 'bravo', now: T0 })).decision, 'new')
  const rc = reg.consider(claim(c, { now: T0 }))
  t.same([rc.decision, rc.reason], ['refused', 'not_allowlisted'])
  // In TOFU mode the entries still label and reserve names.
  const tofu = PeerRegistry.open(join(tempDir(t), PEERS_FILE), { mode: 'tofu', allow: [{ key: a.identityKey.toString('hex'), name: 'alpha' }] })
  const squat = tofu.consider(claim(c, { name: 'ALPHA', now: T0 }))
  t.same([squat.reason, squat.peer.conflict, squat.peer.pinned_node_id, squat.peer.pinned_key], ['key_changed', 'name', a.nodeIdHex, a.identityKey.toString('hex')])
  t.equal(tofu.consider(claim(c, { name: 'charlie', now: T0 })).decision, 'new')
})

t.test('setPolicy: admitted peers a new allowlist leaves out become refused not_allowlisted (written)', async (t) => {
  const file = join(tempDir(t), PEERS_FILE)
  const a = identityOf(1)
  const b = identityOf(2)
  const reg = PeerRegistry.open(file, TOFU)
  reg.consider(claim(a, { uuid: U1, now: T0 }))
  reg.consider(claim(b, { uuid: U2, name: 'b', now: T0 }))
  const demoted = reg.setPolicy({ mode: 'allowlist', allow: [{ node_id: a.nodeIdHex, name: 'A' }] })
  t.same(demoted.map((r) => [r.node_id, r.state, r.reason]), [[b.nodeIdHex, 'refused', 'not_allowlisted']])
  t.same(onDisk(file).map((r) => [r.node_id, r.state, r.name]), [[a.nodeIdHex, 'admitted', 'A'], [b.nodeIdHex, 'refused', 'b']])
  t.equal(reg.consider(claim(b, { uuid: U2 })).reason, 'not_allowlisted')
  const again = PeerRegistry.open(file, { mode: 'allowlist', allow: [] })
  t.same(again.demotedAtOpen.map((r) => r.node_id), [a.nodeIdHex])
  t.same(again.list().map((r) => r.state), ['refused', 'refused'])
  t.same(again.setPolicy(TOFU), [])
  t.equal(again.consider(claim(a, { uuid: U1 })).decision, 'new', 'back in TOFU mode, admitted anew')
})

t.test('policy errors name the field', async (t) => {
  const file = join(tempDir(t), PEERS_FILE)
  const a = identityOf(1)
  const key = a.identityKey.toString('hex')
  const cases: Array<[unknown, RegExp]> = [
    [{ mode: 'open', allow: [] }, /^policy\.mode: the string "open" is not "tofu" or "allowlist"$/],
    [{ mode: 'tofu' }, /^policy\.allow: undefined undefined is not an array$/],
    [{ mode: 'allowlist', allow: [{ name: 'x' }] }, /^policy\.allow\[0\]: needs key or node_id \(a name alone authenticates nothing\)$/],
    [{ mode: 'allowlist', allow: [{ key: 'abc' }] }, /^policy\.allow\[0\]\.key: the string "abc" is not an Ed25519 public key \(64 hex digits\)$/],
    [{ mode: 'allowlist', allow: [{ node_id: 5 }] }, /^policy\.allow\[0\]\.node_id: number 5 is not a node ID/],
    [{ mode: 'allowlist', allow: [{ key, node_id: identityOf(2).nodeIdHex }] }, /^policy\.allow\[0\]\.node_id: [0-9a-f]{32} is not the node ID of key/],
    [{ mode: 'allowlist', allow: [{ key }, { node_id: a.nodeIdHex }] }, /^policy\.allow\[1\]: node [0-9a-f]{32} is also listed as policy\.allow\[0\]$/],
    [{ mode: 'allowlist', allow: [{ key, name: 'x' }, { node_id: identityOf(2).nodeIdHex, name: 'X' }] }, /^policy\.allow\[1\]\.name: "X" is also the name of policy\.allow\[0\]$/],
    [{ mode: 'allowlist', allow: [{ key, name: '' }] }, /^policy\.allow\[0\]\.name: "" is empty$/],
    [{ mode: 'allowlist', allow: ['x'] }, /^policy\.allow\[0\]: the string "x" is not an object/],
  ]
  for (const [policy, re] of cases) t.throws(() => PeerRegistry.open(file, policy as PeerPolicy), { name: 'TypeError', message: re }, JSON.stringify(policy))
})

t.test('bounds: maxPeers refuses registry_full; maxRefused keeps the most recently seen', async (t) => {
  const reg = PeerRegistry.open(join(tempDir(t), PEERS_FILE), TOFU, { maxPeers: 2, maxRefused: 2, now: () => T0 })
  t.equal(reg.consider(claim(identityOf(1))).decision, 'new')
  t.equal(reg.consider(claim(identityOf(2))).decision, 'new')
  t.equal(reg.consider(claim(identityOf(3))).reason, 'registry_full')
  t.equal(reg.consider(claim(identityOf(1))).decision, 'known', 'known peers still pass')
  reg.consider(claim(identityOf(4)))
  reg.consider(claim(identityOf(3))) // seen again: now the most recent
  reg.consider(claim(identityOf(5)))
  t.same(reg.list().filter((r) => r.state === 'refused').map((r) => r.node_id), [identityOf(3).nodeIdHex, identityOf(5).nodeIdHex])
  t.throws(() => PeerRegistry.open('/nonexistent/x', TOFU, { maxPeers: 0 }), /maxPeers must be a positive integer/)
})

t.test('a damaged peers.json is an error naming the file and the field', async (t) => {
  const a = identityOf(1)
  const b = identityOf(2)
  const good = { node_id: a.nodeIdHex, uuid: U1, name: 'a', mesh_ip: '100.64.1.1', identity_key: a.identityKey.toString('hex'), state: 'admitted', reason: null, first_seen: iso(T0), last_seen: iso(T0), count: 1 }
  const goodB = { ...good, node_id: b.nodeIdHex, identity_key: b.identityKey.toString('hex'), uuid: U2, name: 'b' }
  const doc = (peers: unknown[]): string => JSON.stringify({ version: 1, peers })
  const cases: Array<[string, RegExp]> = [
    ['', /: is empty; expected a JSON object$/],
    ['{"version":1,"peers":[', /: is not valid JSON/],
    ['{"version":1}', /: peers: is missing; expected an array$/],
    ['{"version":3,"peers":[]}', /: version: is number 3; expected 1$/],
    [doc([5]), /: peers\[0\]: is number 5; expected an object$/],
    [doc([{ ...good, node_id: 'AB' }]), /: peers\[0\]\.node_id: is the string "AB"; expected 32 lower-case hex digits$/],
    [doc([{ ...good, identity_key: undefined }]), /: peers\[0\]\.identity_key: is missing; expected 64 lower-case hex digits$/],
    [doc([good, { ...goodB, node_id: a.nodeIdHex }]), /: peers\[1\]\.node_id: [0-9a-f]{32} is not the node ID of identity_key \(that is [0-9a-f]{32}\)$/],
    [doc([{ ...good, state: 'maybe' }]), /: peers\[0\]\.state: is the string "maybe"; expected "admitted" or "refused"$/],
    [doc([{ ...good, reason: 'key_changed' }]), /: peers\[0\]\.reason: is the string "key_changed"; an admitted peer has reason null$/],
    [doc([{ ...good, state: 'refused', reason: 'because' }]), /: peers\[0\]\.reason: is the string "because"; expected one of node_id_mismatch, /],
    [doc([{ ...good, uuid: U1.toUpperCase() }]), /: peers\[0\]\.uuid: "0F8FAD5B-[^"]*" is not lower case$/],
    [doc([{ ...good, uuid: 'x' }]), /: peers\[0\]\.uuid: "x" is not a UUID/],
    [doc([{ ...good, name: 7 }]), /: peers\[0\]\.name: is number 7; expected a string or null$/],
    [doc([{ ...good, mesh_ip: '1.2.3.4' }]), /: peers\[0\]\.mesh_ip: "1\.2\.3\.4" is not an address in 100\.64\.0\.0\/16$/],
    [doc([{ ...good, first_seen: '2026-01-01' }]), /: peers\[0\]\.first_seen: "2026-01-01" is not an ISO 8601 UTC timestamp/],
    [doc([{ ...good, last_seen: iso(T0 - 1) }]), /: peers\[0\]\.last_seen: .* is before first_seen /],
    [doc([{ ...good, count: 0 }]), /: peers\[0\]\.count: is number 0; expected an integer >= 1$/],
    [doc([{ ...good, pinned_key: 'zz' }]), /: peers\[0\]\.pinned_key: is the string "zz"; expected 64 lower-case hex digits$/],
    [doc([{ ...good, conflict: 'uuid' }]), /: peers\[0\]: an admitted peer has no pinned_node_id, pinned_key or conflict$/],
    [doc([{ ...good, state: 'refused', reason: 'key_changed', conflict: 'ip' }]), /: peers\[0\]\.conflict: is the string "ip"; expected "uuid" or "name"$/],
    [doc([good, good]), /: peers\[1\]\.node_id: [0-9a-f]{32} has another admitted record at peers\[0\]$/],
    [doc([good, { ...goodB, uuid: U1 }]), /: peers\[1\]\.uuid: 0f8fad5b-[^ ]* is also the UUID of the admitted peer at peers\[0\]$/],
    [doc([good, { ...goodB, name: 'A' }]), /: peers\[1\]\.name: "A" is also the name of the admitted peer at peers\[0\] \(names compare case-insensitively\)$/],
  ]
  for (const [text, re] of cases) {
    const file = join(tempDir(t), PEERS_FILE)
    writeFileSync(file, text, { mode: 0o600 })
    const err = t.throws(() => PeerRegistry.open(file, TOFU), IdentityFileError, text.slice(0, 80)) as unknown as Error
    t.match(err.message, re, text.slice(0, 120))
    t.ok(err.message.startsWith(`${file}: `))
  }
  const file = join(tempDir(t), PEERS_FILE)
  writeFileSync(file, doc([good, goodB, { ...goodB, state: 'refused', reason: 'key_changed', pinned_node_id: a.nodeIdHex, conflict: 'uuid', uuid: U1 }, { ...good, node_id: identityOf(9).nodeIdHex, state: 'refused', reason: 'node_id_mismatch' }]))
  chmodSync(file, 0o600)
  t.equal(PeerRegistry.open(file, TOFU).list().length, 4, 'the valid forms open (a node_id_mismatch record may disagree with its key)')
  chmodSync(file, 0o666)
  t.throws(() => PeerRegistry.open(file, TOFU), /peers\.json: is writable by other users \(mode 0666\); it pins peer keys\. Fix it with: chmod 600 /)
})

t.test('fuzz: any peers.json opens with consistent records or is an IdentityFileError naming the file', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, PEERS_FILE)
  const seed = PeerRegistry.open(file, TOFU)
  seed.consider(claim(identityOf(1), { uuid: U1, name: 'one', meshIp: '100.64.1.1', now: T0 }))
  seed.consider(claim(identityOf(2), { uuid: U1, now: T0 + 1 }))
  seed.consider(claim(identityOf(3), { uuid: U2, name: 'three', now: T0 + 2 }))
  seed.flush()
  const valid = readFileSync(file, 'utf8')
  const mutated = fc.tuple(fc.nat(valid.length), fc.nat(4), fc.string({ maxLength: 4 })).map(([at, del, ins]) => valid.slice(0, at) + ins + valid.slice(at + del))
  const truncated = fc.nat(valid.length).map((n) => valid.slice(0, n))
  const recordish = fc
    .array(
      fc.record(
        {
          node_id: fc.oneof(fc.constant(identityOf(1).nodeIdHex), fc.string()),
          identity_key: fc.oneof(fc.constant(identityOf(1).identityKey.toString('hex')), fc.string()),
          state: fc.constantFrom('admitted', 'refused', 'x'),
          reason: fc.constantFrom(null, 'key_changed', 'x'),
          uuid: fc.oneof(fc.constant(null), arbUuid, fc.string()),
          name: fc.oneof(fc.constant(null), fc.string()),
          mesh_ip: fc.oneof(fc.constant(null), fc.ipV4()),
          first_seen: fc.constantFrom(iso(T0), 'x'),
          last_seen: fc.constantFrom(iso(T0), iso(T0 + 1)),
          count: fc.oneof(fc.integer(), fc.double()),
        },
        { requiredKeys: [] },
      ),
      { maxLength: 3 },
    )
    .map((peers) => JSON.stringify({ version: 1, peers }))
  let opened = 0
  fc.assert(
    fc.property(fc.oneof(mutated, truncated, recordish, fc.jsonValue().map((v) => JSON.stringify(v))), (text) => {
      writeFileSync(file, text)
      chmodSync(file, 0o600)
      let reg: PeerRegistry
      try {
        reg = PeerRegistry.open(file, TOFU)
      } catch (err) {
        return err instanceof IdentityFileError && err.message.startsWith(`${file}: `)
      }
      opened++
      const admitted = reg.list().filter((r) => r.state === 'admitted')
      const uuids = admitted.flatMap((r) => (r.uuid === null ? [] : [r.uuid]))
      const names = admitted.flatMap((r) => (r.name === null ? [] : [r.name.toLowerCase()]))
      return new Set(uuids).size === uuids.length && new Set(names).size === names.length
    }),
    { numRuns: 600 },
  )
  t.ok(opened > 0, `some opened (${opened})`)
})

t.test('property: TOFU pins hold over any sequence of claims, and the file matches memory after flush', async (t) => {
  const ids = Array.from({ length: 5 }, (_, i) => identityOf(i + 1))
  const uuids = [U1, U2, '017f22e2-79b0-7cc3-98c4-dc0c0c07398f']
  const names = ['a', 'B', 'b', 'c']
  const op = fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('claim' as const), who: fc.nat(4), uuid: fc.option(fc.nat(2), { nil: undefined }), name: fc.option(fc.nat(3), { nil: undefined }), ip: fc.option(fc.nat(3), { nil: undefined }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), who: fc.nat(4) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
  )
  const dir = tempDir(t)
  let run = 0
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const file = join(dir, `p${run++}.json`)
      const reg = PeerRegistry.open(file, TOFU)
      // Model: who holds each UUID and (folded) name; a holder only changes through remove or its own change.
      const uuidHolder = new Map<string, string>()
      const nameHolder = new Map<string, string>()
      let clock = T0
      for (const o of ops) {
        clock += 1000
        if (o.kind === 'flush') {
          reg.flush()
          continue
        }
        const id = ids[o.who]!
        if (o.kind === 'remove') {
          reg.remove(id.nodeIdHex)
          for (const [k, v] of [...uuidHolder]) if (v === id.nodeIdHex) uuidHolder.delete(k)
          for (const [k, v] of [...nameHolder]) if (v === id.nodeIdHex) nameHolder.delete(k)
          continue
        }
        const u = o.uuid === undefined ? undefined : uuids[o.uuid]!
        const n = o.name === undefined ? undefined : names[o.name]!
        const d = reg.consider(claim(id, { ...(u === undefined ? {} : { uuid: u }), ...(n === undefined ? {} : { name: n }), ...(o.ip === undefined ? {} : { meshIp: `100.64.2.${o.ip}` }), now: clock }))
        const uTaken = u !== undefined && uuidHolder.has(u) && uuidHolder.get(u) !== id.nodeIdHex
        const nTaken = n !== undefined && nameHolder.has(n.toLowerCase()) && nameHolder.get(n.toLowerCase()) !== id.nodeIdHex
        if (uTaken || nTaken) {
          if (d.decision !== 'refused' || d.reason !== 'key_changed') return false
          continue
        }
        if (d.decision === 'refused') return false
        const rec = reg.get(id.nodeIdHex)!
        for (const [k, v] of [...uuidHolder]) if (v === id.nodeIdHex && k !== rec.uuid) uuidHolder.delete(k)
        for (const [k, v] of [...nameHolder]) if (v === id.nodeIdHex && k !== rec.name?.toLowerCase()) nameHolder.delete(k)
        if (rec.uuid !== null) uuidHolder.set(rec.uuid, id.nodeIdHex)
        if (rec.name !== null) nameHolder.set(rec.name.toLowerCase(), id.nodeIdHex)
      }
      const admitted = reg.list().filter((r) => r.state === 'admitted')
      for (const r of admitted) {
        if (r.uuid !== null && uuidHolder.get(r.uuid) !== r.node_id) return false
        if (r.name !== null && nameHolder.get(r.name.toLowerCase()) !== r.node_id) return false
      }
      reg.flush()
      if (!existsSync(file)) return reg.list().length === 0
      return JSON.stringify(PeerRegistry.open(file, TOFU).list()) === JSON.stringify(reg.list())
    }),
    { numRuns: 200 },
  )
})

t.test('property: any claims, well formed or not, leave a registry that reopens as it was', async (t) => {
  const ids = Array.from({ length: 4 }, (_, i) => identityOf(i + 1))
  const text = fc.oneof(fc.string(), arbUuid, fc.constantFrom('gw', 'GW', '100.64.1.1', '10.0.0.1', 'a\u202eb'))
  const op = fc.record({
    who: fc.nat(3),
    keyOf: fc.nat(3),
    uuid: fc.option(text, { nil: undefined }),
    name: fc.option(text, { nil: undefined }),
    meshIp: fc.option(fc.oneof(text, fc.ipV4()), { nil: undefined }),
  })
  const dir = tempDir(t)
  let run = 0
  fc.assert(
    fc.property(fc.constantFrom<'tofu' | 'allowlist'>('tofu', 'allowlist'), fc.array(op, { maxLength: 25 }), (mode, ops) => {
      const file = join(dir, `q${run++}.json`)
      const policy: PeerPolicy = { mode, allow: [{ node_id: ids[0]!.nodeIdHex, name: 'gw' }, { key: ids[1]!.identityKey.toString('hex') }] }
      const reg = PeerRegistry.open(file, policy, { now: () => T0 + run })
      for (const o of ops) {
        const c: PeerClaim = { nodeId: ids[o.who]!.nodeIdHex, identityKey: ids[o.keyOf]!.identityKey }
        if (o.uuid !== undefined) c.uuid = o.uuid
        if (o.name !== undefined) c.name = o.name
        if (o.meshIp !== undefined) c.meshIp = o.meshIp
        const d = reg.consider(c)
        if (o.who !== o.keyOf && d.reason !== 'node_id_mismatch') return false
        if (d.decision !== 'refused' && d.peer.state !== 'admitted') return false
      }
      reg.flush()
      if (!existsSync(file)) return reg.list().length === 0
      return JSON.stringify(PeerRegistry.open(file, policy).list()) === JSON.stringify(reg.list())
    }),
    { numRuns: 300 },
  )
})
