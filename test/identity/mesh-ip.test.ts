import t from 'tap'
import fc from 'fast-check'
import { readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Identity } from '../../appliance/core/identity.js'
import { IdentityFileError } from '../../appliance/identity/files.js'
import {
  MESH_IP_FILE,
  MESH_IP_SPACE,
  MeshIpAllocator,
  conflictWinner,
  isAssignableMeshIp,
  isMeshIp,
  meshIpFor,
  meshIpIndex,
  type MeshIpConflict,
} from '../../appliance/identity/mesh-ip.js'
import { arbIdentity, identityOf, tempDir } from './helpers.js'

const KEY_0_31 = Buffer.from(Array.from({ length: 32 }, (_, i) => i))

function allocator(id: Identity, file: string, space?: number): MeshIpAllocator {
  return new MeshIpAllocator({ identityKey: id.identityKey, nodeId: id.nodeIdHex, file, ...(space === undefined ? {} : { space }) })
}

t.test('known answers (computed with Python hashlib.blake2b, digest_size=32)', async (t) => {
  t.equal(meshIpFor(KEY_0_31, 0), '100.64.219.57')
  t.equal(meshIpFor(KEY_0_31, 1), '100.64.160.166')
  t.equal(meshIpFor(Buffer.alloc(32, 0xff), 7), '100.64.254.233')
  t.equal(MESH_IP_SPACE, 65279)
})

t.test('derived addresses are in 100.64.1.0 .. 100.64.255.254, deterministic, and spread over attempts', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(0xffff_ffff), (key, attempt) => {
      const ip = meshIpFor(key, attempt)
      const i = meshIpIndex(ip)!
      return isAssignableMeshIp(ip) && i >= 256 && i <= 65534 && ip !== '100.64.255.255' && !ip.startsWith('100.64.0.') && meshIpFor(key, attempt) === ip
    }),
  )
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 1, max: 300 }), fc.nat(1000), (key, space, attempt) => {
      const i = meshIpIndex(meshIpFor(key, attempt, space))!
      return i >= 256 && i < 256 + space
    }),
  )
  const seen = new Set<string>()
  for (let a = 0; a < 200; a++) seen.add(meshIpFor(KEY_0_31, a))
  t.ok(seen.size > 195, 'attempts give different addresses')
})

t.test('argument checks', async (t) => {
  t.throws(() => meshIpFor(Buffer.alloc(31), 0), /identity key must be 32 bytes, got 31/)
  t.throws(() => meshIpFor(KEY_0_31, -1), /attempt must be an integer 0\.\.4294967295, got -1/)
  t.throws(() => meshIpFor(KEY_0_31, 1.5), RangeError)
  t.throws(() => meshIpFor(KEY_0_31, 2 ** 32), RangeError)
  t.throws(() => meshIpFor(KEY_0_31, 0, 0), /space must be an integer 1\.\.65279, got 0/)
  t.throws(() => meshIpFor(KEY_0_31, 0, 65280), RangeError)
  t.equal(meshIpFor(KEY_0_31, 0, 1), '100.64.1.0')
  for (const ip of ['100.64.0.0', '100.64.255.255', '100.64.12.34']) t.ok(isMeshIp(ip), ip)
  for (const ip of ['100.65.0.1', '100.64.1', '100.64.01.2', '100.64.256.1', ' 100.64.1.1', '100.64.1.1.', '10.64.1.1']) t.notOk(isMeshIp(ip), ip)
  t.notOk(isAssignableMeshIp('100.64.0.200'))
  t.notOk(isAssignableMeshIp('100.64.255.255'))
  t.ok(isAssignableMeshIp('100.64.255.254'))
  t.ok(isAssignableMeshIp('100.64.1.0'))
  const a = identityOf(1)
  const b = identityOf(2)
  const file = join(tempDir(t), MESH_IP_FILE)
  t.throws(() => new MeshIpAllocator({ identityKey: a.identityKey, nodeId: b.nodeIdHex, file }), /is not the node ID of the identity key/)
  t.throws(() => new MeshIpAllocator({ identityKey: a.identityKey, nodeId: 'x', file }), /nodeId must be 32 lower-case hex digits/)
  const m = allocator(a, file)
  t.throws(() => m.observe({ nodeId: 'zz', meshIp: '100.64.1.1' }), /peer nodeId must be 32 hex digits/)
  t.throws(() => m.observe({ nodeId: b.nodeIdHex, meshIp: '10.0.0.1' }), /peer meshIp must be an address in 100\.64\.0\.0\/16, got "10\.0\.0\.1"/)
})

t.test('first open derives attempt 0 and persists it (0600); a restart keeps it', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'state', MESH_IP_FILE)
  const id = identityOf(3)
  const m = new MeshIpAllocator({ identityKey: id.identityKey, nodeId: id.nodeIdHex, file, now: () => Date.UTC(2026, 0, 1) })
  t.same(m.current(), { ip: meshIpFor(id.identityKey, 0), attempt: 0 })
  t.same(m.opened, { ip: meshIpFor(id.identityKey, 0), attempt: 0, assigned: true })
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.same(JSON.parse(readFileSync(file, 'utf8')), { version: 1, node_id: id.nodeIdHex, mesh_ip: meshIpFor(id.identityKey, 0), attempt: 0, assigned_at: '2026-01-01T00:00:00.000Z' })
  const again = allocator(id, file)
  t.same(again.opened, { ip: meshIpFor(id.identityKey, 0), attempt: 0, assigned: false })
  t.same(readdirSync(join(dir, 'state')), [MESH_IP_FILE])
})

t.test('a file of another node ID (the identity was replaced) is superseded by a fresh derivation', async (t) => {
  const file = join(tempDir(t), MESH_IP_FILE)
  const old = identityOf(4)
  const fresh = identityOf(5)
  allocator(old, file)
  const m = allocator(fresh, file)
  t.same(m.opened, { ip: meshIpFor(fresh.identityKey, 0), attempt: 0, assigned: true, replacedNodeId: old.nodeIdHex })
  t.equal(JSON.parse(readFileSync(file, 'utf8')).node_id, fresh.nodeIdHex)
})

t.test('a damaged mesh-ip.json is an error naming the file and the field', async (t) => {
  const id = identityOf(6)
  const ip0 = meshIpFor(id.identityKey, 0)
  const ip3 = meshIpFor(id.identityKey, 3)
  const base = { version: 1, node_id: id.nodeIdHex, mesh_ip: ip3, attempt: 3, assigned_at: '2026-01-01T00:00:00.000Z' }
  const cases: Array<[string, RegExp]> = [
    ['', /: is empty; expected a JSON object$/],
    ['{', /: is not valid JSON/],
    [JSON.stringify({ ...base, version: '1' }), /: version: is the string "1"; expected 1$/],
    [JSON.stringify({ ...base, node_id: 'AB' }), /: node_id: is the string "AB"; expected 32 lower-case hex digits$/],
    [JSON.stringify({ ...base, attempt: -1 }), /: attempt: is number -1; expected an integer 0\.\.4294967295$/],
    [JSON.stringify({ ...base, attempt: undefined }), /: attempt: is missing; expected an integer/],
    [JSON.stringify({ ...base, mesh_ip: '192.168.1.1' }), /: mesh_ip: is the string "192\.168\.1\.1"; expected an address in 100\.64\.0\.0\/16$/],
    [JSON.stringify({ ...base, mesh_ip: ip0 }), new RegExp(`: mesh_ip: ${ip0.replace(/\./g, '\\.')} is not this node's address for attempt 3 \\(that is ${ip3.replace(/\./g, '\\.')}\\); the file was edited or damaged\\. Delete it to derive the address again$`)],
    [JSON.stringify({ ...base, assigned_at: 5 }), /: assigned_at: is number 5; expected an ISO 8601 UTC timestamp$/],
  ]
  for (const [text, re] of cases) {
    const file = join(tempDir(t), MESH_IP_FILE)
    writeFileSync(file, text)
    const err = t.throws(() => allocator(id, file), IdentityFileError) as unknown as Error
    t.match(err.message, re, text)
    t.ok(err.message.startsWith(`${file}: `))
    t.equal(readFileSync(file, 'utf8'), text, 'left as it was')
  }
  const file = join(tempDir(t), MESH_IP_FILE)
  writeFileSync(file, JSON.stringify(base))
  t.same(allocator(id, file).current(), { ip: ip3, attempt: 3 }, 'the valid form opens')
})

t.test('fuzz: any mesh-ip.json gives a valid address or an IdentityFileError naming the file', async (t) => {
  const id = identityOf(7)
  const dir = tempDir(t)
  const file = join(dir, MESH_IP_FILE)
  const valid = JSON.stringify({ version: 1, node_id: id.nodeIdHex, mesh_ip: meshIpFor(id.identityKey, 2), attempt: 2, assigned_at: '2026-01-01T00:00:00.000Z' })
  const mutated = fc.tuple(fc.nat(valid.length), fc.nat(3), fc.string({ maxLength: 3 })).map(([at, del, ins]) => valid.slice(0, at) + ins + valid.slice(at + del))
  const fields = fc
    .record({ version: fc.oneof(fc.constant(1), fc.jsonValue()), node_id: fc.oneof(fc.constant(id.nodeIdHex), fc.jsonValue()), mesh_ip: fc.oneof(fc.constant(meshIpFor(id.identityKey, 2)), fc.ipV4(), fc.jsonValue()), attempt: fc.oneof(fc.constant(2), fc.jsonValue()) }, { requiredKeys: [] })
    .map((o) => JSON.stringify(o))
  let ok = 0
  fc.assert(
    fc.property(fc.oneof(mutated, fields, fc.string()), (text) => {
      writeFileSync(file, text)
      try {
        const m = allocator(id, file)
        ok++
        const { ip, attempt } = m.current()
        return meshIpFor(id.identityKey, attempt) === ip
      } catch (err) {
        return err instanceof IdentityFileError && err.message.startsWith(`${file}: `)
      }
    }),
    { numRuns: 500 },
  )
  t.ok(ok > 0, `some opened (${ok})`)
})

/** Two identities whose attempt-0 addresses collide in `space`, found by search from `start`. */
function collidingPair(space: number, start: number): [Identity, Identity] {
  const a = identityOf(start)
  for (let n = start + 1; ; n++) {
    const b = identityOf(n & 0xff)
    if (b.nodeIdHex !== a.nodeIdHex && meshIpFor(a.identityKey, 0, space) === meshIpFor(b.identityKey, 0, space)) return [a, b]
  }
}

t.test('a conflict: the lower node ID keeps the address, the other moves; both say so; the move is on disk', async (t) => {
  const dir = tempDir(t)
  const [x, y] = collidingPair(4, 10)
  const [low, high] = x.nodeIdHex < y.nodeIdHex ? [x, y] : [y, x]
  t.equal(conflictWinner(low.nodeIdHex, high.nodeIdHex), low.nodeIdHex)
  t.equal(conflictWinner(high.nodeIdHex, low.nodeIdHex), low.nodeIdHex)
  const L = allocator(low, join(dir, 'low.json'), 4)
  const H = allocator(high, join(dir, 'high.json'), 4)
  const shared = L.current().ip
  t.equal(H.current().ip, shared)
  const claimL = { nodeId: low.nodeIdHex, meshIp: shared }
  const claimH = { nodeId: high.nodeIdHex, meshIp: shared }
  const atL = L.observe(claimH)
  const atH = H.observe(claimL)
  t.same(atL, { from: shared, to: shared, attempt: 0, with: high.nodeIdHex, kept: 'mine' })
  t.equal(atH?.kept, 'theirs')
  t.equal(atH?.with, low.nodeIdHex)
  t.equal(atH?.from, shared)
  t.not(atH?.to, shared)
  t.same(H.current(), { ip: atH!.to, attempt: atH!.attempt })
  t.equal(meshIpFor(high.identityKey, atH!.attempt, 4), atH!.to)
  t.same(allocator(high, join(dir, 'high.json'), 4).current(), H.current(), 'a restart keeps the moved address')
  t.equal(L.observe(claimH), null, 'the same claim again is not reported again')
  t.same(L.claimedBy(shared), [high.nodeIdHex])
  t.equal(L.observe({ nodeId: high.nodeIdHex, meshIp: atH!.to }), null, 'the new claim is no conflict')
  t.same(L.claimedBy(shared), [])
  t.same(L.claimedBy(atH!.to), [high.nodeIdHex])
  t.same(L.claimsHeard(), [{ nodeId: high.nodeIdHex, meshIp: atH!.to }])
  t.equal(H.observe({ nodeId: high.nodeIdHex.toUpperCase(), meshIp: H.current().ip }), null, 'my own node ID is ignored')
  // The peer comes back to the old address (e.g. it lost its state): reported again.
  t.same(L.observe(claimH), { from: shared, to: shared, attempt: 0, with: high.nodeIdHex, kept: 'mine' })
  L.forget(high.nodeIdHex)
  t.same(L.claimedBy(shared), [])
  t.same(L.claimsHeard(), [])
})

t.test('a move skips addresses other peers claim', async (t) => {
  const dir = tempDir(t)
  const space = 3
  const [x, y] = collidingPair(space, 40)
  const [low, high] = x.nodeIdHex < y.nodeIdHex ? [x, y] : [y, x]
  const H = allocator(high, join(dir, 'h.json'), space)
  const shared = H.current().ip
  // A third peer holds the one other address the next attempts might hit first.
  const others = [0, 1, 2].map((i) => `100.64.1.${i}`).filter((ip) => ip !== shared)
  const third = identityOf(99)
  H.observe({ nodeId: third.nodeIdHex, meshIp: others[0]! })
  const c = H.observe({ nodeId: low.nodeIdHex, meshIp: shared })
  t.equal(c?.kept, 'theirs')
  t.equal(c?.to, others[1], 'landed on the only address nobody claims')
  t.ok(c!.attempt >= 1)
})

interface Node {
  id: Identity
  m: MeshIpAllocator
  file: string
  events: MeshIpConflict[]
}

/** Lets every node hear every other's claims (in an order fast-check picks) until nothing moves. */
function converge(nodes: Node[], order: number[]): number {
  for (let round = 0; round < 20 * nodes.length + 20; round++) {
    const claims = nodes.map((n) => ({ nodeId: n.id.nodeIdHex, meshIp: n.m.current().ip }))
    let moved = false
    let k = round
    // This round's receiving order: every node once, permuted by the fast-check weights.
    const weight = (i: number): number => (order[(i * 7 + round) % order.length]! * 31 + i * round) % 1009
    const receivers = nodes.map((_, i) => i).sort((x, y) => weight(x) - weight(y) || x - y)
    for (const r of receivers) {
      const rx = nodes[r]!
      for (let j = 0; j < claims.length; j++) {
        const c = claims[(j + k++) % claims.length]!
        if (c.nodeId === rx.id.nodeIdHex) continue
        const got = rx.m.observe(c)
        if (got !== null) {
          rx.events.push(got)
          if (got.kept === 'theirs') moved = true
        }
      }
    }
    const ips = new Set(nodes.map((n) => n.m.current().ip))
    if (!moved && ips.size === nodes.length) return round
  }
  return -1
}

t.test('property: two colliding nodes end distinct, agree on who moved, and keep it across a restart', async (t) => {
  const dir = tempDir(t)
  let run = 0
  fc.assert(
    fc.property(arbIdentity, arbIdentity, fc.integer({ min: 2, max: 5 }), fc.boolean(), (a, b, space, aFirst) => {
      fc.pre(a.nodeIdHex !== b.nodeIdHex && meshIpFor(a.identityKey, 0, space) === meshIpFor(b.identityKey, 0, space))
      run++
      const A = allocator(a, join(dir, `a${run}.json`), space)
      const B = allocator(b, join(dir, `b${run}.json`), space)
      const claimA = { nodeId: a.nodeIdHex, meshIp: A.current().ip }
      const claimB = { nodeId: b.nodeIdHex, meshIp: B.current().ip }
      let ra: MeshIpConflict | null
      let rb: MeshIpConflict | null
      if (aFirst) {
        ra = A.observe(claimB)
        rb = B.observe(claimA)
      } else {
        rb = B.observe(claimA)
        ra = A.observe(claimB)
      }
      if (ra === null || rb === null) return false
      const lowIsA = a.nodeIdHex < b.nodeIdHex
      const agree = ra.kept === (lowIsA ? 'mine' : 'theirs') && rb.kept === (lowIsA ? 'theirs' : 'mine') && ra.with === b.nodeIdHex && rb.with === a.nodeIdHex
      const distinct = A.current().ip !== B.current().ip
      const mover = lowIsA ? B : A
      const restarted = allocator(lowIsA ? b : a, join(dir, `${lowIsA ? 'b' : 'a'}${run}.json`), space)
      return agree && distinct && restarted.current().ip === mover.current().ip && restarted.current().attempt === mover.current().attempt
    }),
    { numRuns: 60, maxSkipsPerRun: 1000 },
  )
  t.ok(run >= 60)
})

t.test('property: N nodes in a crowded space all end with distinct addresses; only higher node IDs move', async (t) => {
  const dir = tempDir(t)
  let run = 0
  let moves = 0
  fc.assert(
    fc.property(
      fc.uniqueArray(arbIdentity, { minLength: 2, maxLength: 7, selector: (i) => i.nodeIdHex }),
      fc.integer({ min: 0, max: 3 }),
      fc.array(fc.nat(1000), { minLength: 1, maxLength: 10 }),
      (ids, extra, order) => {
        run++
        const space = ids.length + extra
        const nodes: Node[] = ids.map((id, i) => {
          const file = join(dir, `r${run}-${i}.json`)
          return { id, file, m: allocator(id, file, space), events: [] }
        })
        const rounds = converge(nodes, order)
        if (rounds < 0) return false
        for (const n of nodes) moves += n.events.filter((e) => e.kept === 'theirs').length
        const byId = new Map(nodes.map((n) => [n.id.nodeIdHex, n]))
        for (const n of nodes) {
          for (const e of n.events) {
            // Every decision follows the rule: the lower node ID keeps it.
            const winner = conflictWinner(n.id.nodeIdHex, e.with)
            if ((e.kept === 'mine') !== (winner === n.id.nodeIdHex)) return false
            // When the other side reported the same conflict, it reached the mirror conclusion.
            const other = byId.get(e.with)!
            const mirror = other.events.find((o) => o.with === n.id.nodeIdHex && o.from === e.from)
            if (mirror !== undefined && mirror.kept === e.kept) return false
          }
        }
        // Restarts keep every address.
        return nodes.every((n) => {
          const again = allocator(n.id, n.file, space)
          return again.current().ip === n.m.current().ip && again.current().attempt === n.m.current().attempt && !again.opened.assigned
        })
      },
    ),
    { numRuns: 80 },
  )
  t.ok(run >= 80)
  t.ok(moves > 80, `conflicts were resolved (${moves} moves in ${run} runs)`)
})
