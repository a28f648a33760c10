/**
 * Property tests (fast-check) of every decoder a frame from the wire reaches: arbitrary bytes and
 * structure-aware mutations of valid frames. Properties:
 *
 *  1. Robustness: each call returns normally or throws a KairoError (never RangeError, TypeError,
 *     a plain Error...), in under 50 ms, and what it returns is bounded by what came in.
 *  2. Integrity of Data frames: a mutant of a sealed frame that differs from it anywhere but byte
 *     3 (hop limit) is rejected, a rejected mutant does not move the replay window, and a replay
 *     of an accepted frame is a ReplayError.
 *  3. Integrity of announces: a mutant that still opens verified has the original content (only
 *     the hop limit, which the signature does not cover, may differ).
 *
 * fast-check picks the seed; a failure prints it together with the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import { isDeepStrictEqual } from 'node:util'
import { KairoError, AuthenticationError, MalformedPacketError, ReplayError } from '../../appliance/core/errors.js'
import { Identity } from '../../appliance/core/identity.js'
import { Session } from '../../appliance/core/session.js'
import { SessionManager } from '../../appliance/core/sessions.js'
import { decodePacket, encodePacket, encodeSignedPacket, PACKET_SPEC, type PacketFrame } from '../../appliance/core/wire/packet.js'
import { decodeHandshake, decodeHandshakePayload, encodeHandshake, encodeHandshakePayload, HANDSHAKE_PAYLOAD_SPEC, HANDSHAKE_SPEC } from '../../appliance/core/wire/handshake.js'
import { ANNOUNCE_SPEC, decodeAnnounceBody, encodeAnnounce, encodeAnnounceBody, openAnnounce } from '../../appliance/core/wire/announce.js'
import { checkDataFrame } from '../../appliance/core/wire/data.js'
import { DATA_HEADER_BYTES, DH_HOP, DH_SESSION, DH_TYPE, KNOWN_TYPES, LinkKind, PACKET_PREFIX_BYTES, PacketFlags, PacketType, VK_DATA, VK_PACKET } from '../../appliance/core/wire/constants.js'
import type { TableSpec } from '../../appliance/core/wire/verify.js'

// ---------------------------------------------------------------------------------------------
// Budget

/** Runs per property: the whole file stays well under 20 s on a 2-core machine. */
const RUNS_RAW = 1000
const RUNS_MUTANT = 1000
const RUNS_STATEFUL = 500
/** Per handshake message (5 of them): each run replays a fresh handshake up to that message. */
const RUNS_HANDSHAKE = 300
/** Longest a single decode may take, ms: catches loops over attacker-controlled lengths. */
const MAX_MS = 50
/** Arbitrary inputs go up to this many bytes. */
const MAX_INPUT = 600
/** Largest handshake reply a manager may produce (ours are < 400 bytes). */
const MAX_REPLY = 1024

// ---------------------------------------------------------------------------------------------
// The harness: call, time, classify

type Outcome<T> = { ok: true; value: T } | { ok: false; err: KairoError }

/**
 * Calls `fn` and returns its value or the KairoError it threw. Anything else thrown, or a call
 * slower than MAX_MS, fails the property (fast-check then shrinks and prints the seed).
 *
 * A slow call is timed a second time before it fails, so that a GC pause or a busy CPU is not
 * taken for a loop: pure decoders are simply called again; a stateful call (a session or a manager,
 * which a second call would find in another state) passes `again`, the pure decoding it does on
 * the same input. Work that depends on the input is slow every time.
 */
function guarded<T>(what: string, fn: () => T, again: () => unknown = fn): Outcome<T> {
  const t0 = performance.now()
  let out: Outcome<T>
  try {
    out = { ok: true, value: fn() }
  } catch (err) {
    if (!(err instanceof KairoError)) {
      const e = err as Error
      throw new Error(`${what} threw ${e?.constructor?.name ?? typeof err} (not a KairoError): ${e?.message ?? String(err)}`, { cause: err })
    }
    out = { ok: false, err }
  }
  const ms = performance.now() - t0
  if (ms > MAX_MS) {
    const t1 = performance.now()
    try {
      again()
    } catch {
      // classified above
    }
    const ms2 = performance.now() - t1
    if (ms2 > MAX_MS) throw new Error(`${what} took ${ms.toFixed(1)} ms, then ${ms2.toFixed(1)} ms (limit ${MAX_MS} ms)`)
  }
  return out
}

/**
 * Fails unless every byte array, string and array reachable from `value` is at most `limit`
 * long: a decoder must not allocate (or claim) more than the input it was given.
 */
function assertBounded(what: string, value: unknown, limit: number, depth = 0): void {
  if (depth > 6 || value === null || value === undefined) return
  if (value instanceof Session || value instanceof SessionManager) return
  if (value instanceof Uint8Array) {
    if (value.length > limit) throw new Error(`${what}: decoded ${value.length}-byte array from a ${limit}-byte input`)
    return
  }
  if (typeof value === 'string') {
    if (value.length > limit) throw new Error(`${what}: decoded ${value.length}-char string from a ${limit}-byte input`)
    return
  }
  if (Array.isArray(value)) {
    if (value.length > limit) throw new Error(`${what}: decoded ${value.length} entries from a ${limit}-byte input`)
    for (const v of value) assertBounded(what, v, limit, depth + 1)
    return
  }
  if (typeof value === 'object') for (const v of Object.values(value)) assertBounded(what, v, limit, depth + 1)
}

/** guarded() + assertBounded() on the value, the usual check of a pure decoder. */
function decodeSafely<T>(what: string, input: Uint8Array, fn: () => T, again?: () => unknown): Outcome<T> {
  const out = guarded(what, fn, again)
  if (out.ok) assertBounded(what, out.value, input.length)
  return out
}

// ---------------------------------------------------------------------------------------------
// Mutations

/** A value to write into a 2- or 4-byte word. `end: d` is "the bytes left from here to the end, + d". */
type WordValue = { c: number } | { end: number } | { rnd: number }

type Op =
  | { k: 'flip'; pos: number; bit: number }
  | { k: 'byte'; pos: number; value: number }
  | { k: 'u32'; pos: number; aligned: boolean; v: WordValue }
  | { k: 'u16'; pos: number; aligned: boolean; v: WordValue }
  | { k: 'struct'; idx: number; v: WordValue }
  | { k: 'trunc'; len: number }
  | { k: 'extend'; bytes: Uint8Array }
  | { k: 'insert'; pos: number; bytes: Uint8Array }
  | { k: 'delete'; pos: number; n: number }
  | { k: 'overwrite'; pos: number; bytes: Uint8Array }

const wordValue: fc.Arbitrary<WordValue> = fc.oneof(
  fc.record({ c: fc.constantFrom(0, 1, 2, 4, 8, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff) }),
  fc.record({ end: fc.integer({ min: -12, max: 8 }) }),
  fc.record({ rnd: fc.nat({ max: 0xffffffff }) }),
)

const smallBytes = fc.uint8Array({ minLength: 1, maxLength: 24 })

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ k: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('byte' as const), pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('u32' as const), pos: fc.nat(), aligned: fc.boolean(), v: wordValue }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('u16' as const), pos: fc.nat(), aligned: fc.boolean(), v: wordValue }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('struct' as const), idx: fc.nat(), v: wordValue }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('trunc' as const), len: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('extend' as const), bytes: smallBytes }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('insert' as const), pos: fc.nat(), bytes: smallBytes }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('delete' as const), pos: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('overwrite' as const), pos: fc.nat(), bytes: smallBytes }) },
)

const opsArb = fc.array(opArb, { minLength: 1, maxLength: 4 })

/** Where the FlatBuffers structure of a frame lives: offsets, vtable entries, vector lengths. */
interface Word {
  pos: number
  size: 2 | 4
}

function resolveValue(v: WordValue, pos: number, len: number, size: 2 | 4): number {
  const mask = size === 4 ? 0xffffffff : 0xffff
  if ('c' in v) return v.c & mask
  if ('rnd' in v) return v.rnd & mask
  return (len - pos + v.end) & mask
}

/** Applies `ops` to a copy of `frame`; `words` are the structural positions of the original. */
function mutate(frame: Uint8Array, ops: readonly Op[], words: readonly Word[] = []): Buffer {
  let b = Buffer.from(frame)
  const writeWord = (pos: number, size: 2 | 4, v: WordValue) => {
    if (b.length < size) return
    const p = Math.min(pos, b.length - size)
    const value = resolveValue(v, p, b.length, size)
    if (size === 4) b.writeUInt32LE(value >>> 0, p)
    else b.writeUInt16LE(value, p)
  }
  for (const op of ops) {
    const at = (pos: number) => (b.length === 0 ? 0 : pos % b.length)
    switch (op.k) {
      case 'flip':
        if (b.length > 0) {
          const i = at(op.pos)
          b[i] = b[i]! ^ (1 << op.bit)
        }
        break
      case 'byte':
        if (b.length > 0) b[at(op.pos)] = op.value
        break
      case 'u32':
      case 'u16': {
        const size = op.k === 'u32' ? 4 : 2
        let p = at(op.pos)
        if (op.aligned) p -= p % size
        writeWord(p, size, op.v)
        break
      }
      case 'struct': {
        if (words.length === 0) {
          writeWord(at(op.idx), 4, op.v)
          break
        }
        const w = words[op.idx % words.length]!
        writeWord(w.pos, w.size, op.v)
        break
      }
      case 'trunc':
        b = b.subarray(0, b.length === 0 ? 0 : op.len % b.length)
        break
      case 'extend':
        b = Buffer.concat([b, op.bytes])
        break
      case 'insert': {
        const p = b.length === 0 ? 0 : op.pos % (b.length + 1)
        b = Buffer.concat([b.subarray(0, p), op.bytes, b.subarray(p)])
        break
      }
      case 'delete': {
        const p = at(op.pos)
        b = Buffer.concat([b.subarray(0, p), b.subarray(p + op.n)])
        break
      }
      case 'overwrite': {
        const p = at(op.pos)
        b = Buffer.from(b)
        b.set(op.bytes.subarray(0, Math.max(0, b.length - p)), p)
        break
      }
    }
  }
  return b
}

/**
 * The structural words of a valid FlatBuffers buffer `buf` whose root is `spec`, shifted by
 * `base`: the root offset, each table's vtable offset, vtable size and entries, each offset field,
 * each vector or string length and each table-vector element offset. `nested` names byte fields
 * that hold another FlatBuffers buffer (the Packet payload) and the spec of its root.
 */
function structuralWords(buf: Uint8Array, spec: TableSpec, base: number, nested: Record<string, TableSpec> = {}): Word[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const out: Word[] = [{ pos: base, size: 4 }]
  const table = (pos: number, s: TableSpec) => {
    out.push({ pos: base + pos, size: 4 })
    const vt = pos - dv.getInt32(pos, true)
    const vtSize = dv.getUint16(vt, true)
    out.push({ pos: base + vt, size: 2 }, { pos: base + vt + 2, size: 2 })
    s.fields.forEach((f, i) => {
      const slot = 4 + 2 * i
      if (slot >= vtSize) return
      out.push({ pos: base + vt + slot, size: 2 })
      const fo = dv.getUint16(vt + slot, true)
      if (fo === 0 || f.kind === 'scalar' || f.kind === 'struct') return
      const at = pos + fo
      const target = at + dv.getUint32(at, true)
      out.push({ pos: base + at, size: 4 }, { pos: base + target, size: 4 })
      const count = dv.getUint32(target, true)
      if (f.kind === 'tables') {
        for (let k = 0; k < count; k++) {
          const el = target + 4 + 4 * k
          out.push({ pos: base + el, size: 4 })
          table(el + dv.getUint32(el, true), f.table)
        }
      } else if (f.kind === 'bytes' && nested[f.name]) {
        out.push(...structuralWords(buf.subarray(target + 4, target + 4 + count), nested[f.name]!, base + target + 4))
      }
    })
  }
  table(dv.getUint32(0, true), spec)
  return out
}

/** Structural words of a Packet frame, with those of its payload when it is `payloadSpec`. */
function packetWords(frame: Uint8Array, payloadSpec?: TableSpec): Word[] {
  return structuralWords(frame.subarray(PACKET_PREFIX_BYTES), PACKET_SPEC, PACKET_PREFIX_BYTES, payloadSpec ? { payload: payloadSpec } : {})
}

/** Arbitrary bytes whose first bytes are forced to `prefix`. */
function withPrefix(prefix: number[]): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength: MAX_INPUT }).map((b) => {
    const out = Buffer.alloc(Math.max(b.length, prefix.length))
    out.set(b)
    out.set(prefix)
    return out
  })
}

const rawBytes = fc.uint8Array({ maxLength: MAX_INPUT }).map((b) => Buffer.from(b))
const packetBytes = withPrefix([VK_PACKET, 0, 0, 0])
const dataBytes = withPrefix([VK_DATA])
const knownTypes = [...KNOWN_TYPES]

// ---------------------------------------------------------------------------------------------
// Fixtures

const alice = Identity.fromSeed(Buffer.alloc(32, 1))
const bob = Identity.fromSeed(Buffer.alloc(32, 2))
const carol = Identity.fromSeed(Buffer.alloc(32, 3))

/** A fake clock shared by the managers of a test: nothing here waits for real time. */
const clock = { now: 0 }
function manager(identity: Identity, opts: { maxPending?: number } = {}): SessionManager {
  return new SessionManager({ identity, now: () => clock.now, wallClock: () => 1_700_000_000_000 + clock.now, ...opts })
}

const LINKS = [
  { kind: LinkKind.Ethernet, name: 'eth0', mtu: 1500, bitrate: 1_000_000_000 },
  { kind: LinkKind.LoRa, name: 'lora0', mtu: 255, bitrate: 5470 },
]
const ANNOUNCE = encodeAnnounce(bob, { packetId: 0x0badcafe, timestamp: 1_700_000_000_123, capabilities: 5, links: LINKS })
const ANNOUNCE_OPENED = openAnnounce(ANNOUNCE)
const ANNOUNCE_WORDS = packetWords(ANNOUNCE, ANNOUNCE_SPEC)
const ANNOUNCE_BODY_BYTES = encodeAnnounceBody(ANNOUNCE_OPENED.body)
const ANNOUNCE_BODY_WORDS = structuralWords(ANNOUNCE_BODY_BYTES, ANNOUNCE_SPEC, 0)

const PACKET = encodePacket({ type: PacketType.TaskRequest, flags: PacketFlags.AckRequested, hopLimit: 9, packetId: 77, src: alice.nodeId, dst: bob.nodeId, payload: Buffer.from('a task for bob, with some bytes') })
const PACKET_WORDS = packetWords(PACKET)
const SIGNED_PACKET = encodeSignedPacket(alice, { type: PacketType.BroadcastAnnounce, hopLimit: 4, packetId: 42, payload: Buffer.from('agents: assemble') })
const SIGNED_PACKET_WORDS = packetWords(SIGNED_PACKET)

const HANDSHAKE = encodeHandshake({ pattern: 1, message: 0, senderIndex: 0x01020304, receiverIndex: 0, noise: Buffer.alloc(32, 9) })
const HANDSHAKE_WORDS = structuralWords(HANDSHAKE, HANDSHAKE_SPEC, 0)
const HANDSHAKE_PAYLOAD = encodeHandshakePayload({ identityKey: alice.identityKey, identitySig: alice.staticBinding, timestamp: 1_700_000_000_000 })
const HANDSHAKE_PAYLOAD_WORDS = structuralWords(HANDSHAKE_PAYLOAD, HANDSHAKE_PAYLOAD_SPEC, 0)

/** A pair of sessions keyed to each other, as a handshake would leave them. */
function sessionPair(): { tx: Session; rx: Session; shadow: Session } {
  const k1 = Buffer.alloc(32, 0x11)
  const k2 = Buffer.alloc(32, 0x22)
  const tx = new Session({ localIndex: 0xa1, remoteIndex: 0xb2, sendKey: k1, recvKey: k2, localNodeId: alice.nodeId, remoteNodeId: bob.nodeId, initiator: true })
  const rx = new Session({ localIndex: 0xb2, remoteIndex: 0xa1, sendKey: k2, recvKey: k1, localNodeId: bob.nodeId, remoteNodeId: alice.nodeId, initiator: false })
  // Same keys and index as rx: it re-times a slow rx.open() on the same input (see guarded()).
  const shadow = new Session({ localIndex: 0xb2, remoteIndex: 0xa1, sendKey: k2, recvKey: k1, localNodeId: bob.nodeId, remoteNodeId: alice.nodeId, initiator: false })
  return { tx, rx, shadow }
}

/** Runs a full handshake between two managers (XX, or IK when `a` learned `b`). */
function handshake(a: SessionManager, b: SessionManager): void {
  let frame: Buffer | null = a.connect(b.identity.nodeId).frame
  let turn: [SessionManager, SessionManager] = [b, a]
  while (frame !== null) {
    frame = turn[0].handleHandshake(decodePacket(frame)).reply
    turn = [turn[1], turn[0]]
  }
}

/** What the manager under test did with a handshake frame, checked for bounds. */
function deliverSafely(what: string, to: SessionManager, frame: Uint8Array) {
  const out = guarded(what, () => to.handleHandshake(decodePacket(frame)), () => decodeHandshake(decodePacket(frame).payload))
  if (out.ok) {
    const { reply, peer } = out.value
    if (reply !== null && reply.length > MAX_REPLY) throw new Error(`${what}: ${reply.length}-byte reply`)
    if (peer !== null && peer.length !== 16) throw new Error(`${what}: peer ID of ${peer.length} bytes`)
  }
  return out
}

/** The fields of a decoded Packet a signature covers (everything but the hop limit). */
function signedView(p: PacketFrame) {
  return { type: p.type, flags: p.flags, packetId: p.packetId, src: p.src, dst: p.dst, payload: p.payload, signature: p.signature }
}

// Warm up every path once so that first-call JIT and lazy init do not count against MAX_MS.
{
  const { tx, rx } = sessionPair()
  rx.open(tx.sealCopy(PacketType.TaskRequest, 0, Buffer.from('warm')))
  handshake(manager(alice), manager(bob))
  const c = manager(carol)
  c.learn(ANNOUNCE_OPENED.body)
  handshake(c, manager(bob))
  decodeHandshake(HANDSHAKE)
  decodeHandshakePayload(HANDSHAKE_PAYLOAD)
  decodeAnnounceBody(ANNOUNCE_BODY_BYTES)
}

// ---------------------------------------------------------------------------------------------
// 1. Arbitrary bytes

t.test('arbitrary bytes: Packet-frame decoders return or throw a KairoError, quickly', async (t) => {
  for (const [name, arb] of [['raw', rawBytes], ['0x12 prefix', packetBytes]] as const) {
    fc.assert(
      fc.property(arb, (bytes) => {
        decodeSafely('decodePacket', bytes, () => decodePacket(bytes))
        decodeSafely('openAnnounce', bytes, () => openAnnounce(bytes))
        deliverSafely('handleHandshake(decodePacket)', manager(bob), bytes)
      }),
      { numRuns: RUNS_RAW },
    )
    t.pass(`decodePacket / openAnnounce / handleHandshake on ${name} bytes`)
  }
})

t.test('arbitrary bytes: FlatBuffers body decoders return or throw a KairoError, quickly', async (t) => {
  fc.assert(
    fc.property(rawBytes, (bytes) => {
      decodeSafely('decodeHandshake', bytes, () => decodeHandshake(bytes))
      decodeSafely('decodeHandshakePayload', bytes, () => decodeHandshakePayload(bytes))
      decodeSafely('decodeAnnounceBody', bytes, () => decodeAnnounceBody(bytes))
    }),
    { numRuns: RUNS_RAW },
  )
  t.pass('decodeHandshake / decodeHandshakePayload / decodeAnnounceBody')
})

t.test('arbitrary bytes: Data-frame decoders return or throw a KairoError, quickly', async (t) => {
  const { rx, shadow } = sessionPair()
  const a = manager(alice)
  const b = manager(bob)
  handshake(a, b)
  const bIndex = b.sessionFor(alice.nodeId)!.localIndex
  // Raw, 0x11-prefixed, and 0x11 + known type + the receiver's own session index (reaches the AEAD).
  const aimed = (index: number) =>
    fc.tuple(dataBytes, fc.constantFrom(...knownTypes)).map(([bytes, type]) => {
      const out = Buffer.from(bytes)
      if (out.length >= DATA_HEADER_BYTES) {
        out[DH_TYPE] = type
        out.writeUInt32LE(index, DH_SESSION)
      }
      return out
    })
  for (const [name, arb] of [['raw', rawBytes], ['0x11 prefix', dataBytes], ['aimed at the session', aimed(rx.localIndex)]] as const) {
    fc.assert(
      fc.property(arb, (bytes) => {
        decodeSafely('checkDataFrame', bytes, () => checkDataFrame(bytes))
        const r = decodeSafely('Session.open', bytes, () => rx.open(bytes), () => shadow.open(bytes))
        if (r.ok) throw new Error('Session.open accepted random bytes')
      }),
      { numRuns: RUNS_RAW },
    )
    t.pass(`checkDataFrame / Session.open on ${name} bytes`)
  }
  fc.assert(
    fc.property(fc.oneof(rawBytes, dataBytes, aimed(bIndex)), (bytes) => {
      const r = decodeSafely('SessionManager.open', bytes, () => b.open(bytes), () => checkDataFrame(bytes))
      if (r.ok) throw new Error('SessionManager.open accepted random bytes')
    }),
    { numRuns: RUNS_RAW },
  )
  t.equal(b.sessionFor(alice.nodeId), b.peer(alice.nodeId).current, 'random frames did not disturb the session')
})

t.test('well-formed Handshake packets with random contents reach Noise and fail cleanly', async (t) => {
  const handshakeFields = fc.record({
    pattern: fc.integer({ min: 0, max: 3 }),
    message: fc.integer({ min: 0, max: 3 }),
    useIndex: fc.boolean(),
    senderIndex: fc.nat({ max: 0xffffffff }),
    noise: fc.uint8Array({ maxLength: 400 }),
    src: fc.constantFrom(alice.nodeId, bob.nodeId, carol.nodeId, Buffer.alloc(16)),
  })
  fc.assert(
    fc.property(handshakeFields, fc.boolean(), (h, toInitiator) => {
      // An initiator with one XX and one IK handshake pending, and a fresh responder.
      const a = manager(alice)
      const b = manager(bob)
      a.learn({ identityKey: carol.identityKey, staticKey: carol.static.publicKey, capabilities: 0, links: [], timestamp: 0 })
      const xx = decodeHandshake(decodePacket(a.connect(bob.nodeId).frame).payload)
      const ik = decodeHandshake(decodePacket(a.connect(carol.nodeId).frame).payload)
      const receiverIndex = h.useIndex ? (h.pattern === 2 ? ik.senderIndex : xx.senderIndex) : 0
      const target = toInitiator ? a : b
      const payload = encodeHandshake({ pattern: h.pattern, message: h.message, senderIndex: h.senderIndex, receiverIndex, noise: Buffer.from(h.noise) })
      const frame = encodePacket({ type: PacketType.Handshake, hopLimit: 3, packetId: 1, src: h.src, dst: target.identity.nodeId, payload })
      const r = deliverSafely('handleHandshake', target, frame)
      // Random bytes cannot authenticate; only an XX opener (which carries nothing to check) passes.
      if (r.ok && r.value.session !== null) throw new Error('random Noise bytes established a session')
    }),
    { numRuns: RUNS_STATEFUL },
  )
  t.pass('handleHandshake on random Noise messages')
})

// ---------------------------------------------------------------------------------------------
// 2. Mutations of valid frames

t.test('mutated Packet frames decode or fail with a KairoError', async (t) => {
  for (const [name, frame, words] of [
    ['unsigned Packet', PACKET, PACKET_WORDS],
    ['signed broadcast', SIGNED_PACKET, SIGNED_PACKET_WORDS],
  ] as const) {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const m = mutate(frame, ops, words)
        decodeSafely('decodePacket', m, () => decodePacket(m))
      }),
      { numRuns: RUNS_MUTANT },
    )
    t.pass(name)
  }
})

t.test('mutated Handshake / HandshakePayload / Announce bodies decode or fail with a KairoError', async (t) => {
  for (const [name, bytes, words, decode] of [
    ['Handshake', HANDSHAKE, HANDSHAKE_WORDS, decodeHandshake],
    ['HandshakePayload', HANDSHAKE_PAYLOAD, HANDSHAKE_PAYLOAD_WORDS, decodeHandshakePayload],
    ['Announce', ANNOUNCE_BODY_BYTES, ANNOUNCE_BODY_WORDS, decodeAnnounceBody],
  ] as const) {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const m = mutate(bytes, ops, words)
        decodeSafely(`decode ${name}`, m, () => (decode as (b: Uint8Array) => unknown)(m))
      }),
      { numRuns: RUNS_MUTANT },
    )
    t.pass(name)
  }
})

t.test('a mutated signed announce never opens verified with different content', async (t) => {
  t.ok(ANNOUNCE_OPENED.body.links.length === 2, 'the fixture announces two links')
  const check = (ops: Op[]) => {
    const m = mutate(ANNOUNCE, ops, ANNOUNCE_WORDS)
    const r = decodeSafely('openAnnounce', m, () => openAnnounce(m))
    if (!r.ok) {
      if (!(r.err instanceof MalformedPacketError || r.err instanceof AuthenticationError)) throw new Error(`openAnnounce threw ${r.err.name}`)
      return
    }
    if (!isDeepStrictEqual(r.value.body, ANNOUNCE_OPENED.body)) throw new Error(`mutant verified with a different body: ${JSON.stringify(r.value.body)}`)
    if (!isDeepStrictEqual(signedView(r.value.packet), signedView(ANNOUNCE_OPENED.packet))) throw new Error('mutant verified with different packet fields')
  }
  fc.assert(fc.property(opsArb, check), { numRuns: RUNS_MUTANT })
  // Flipping every bit of every byte once, exhaustively: the same property, without luck.
  for (let pos = 0; pos < ANNOUNCE.length; pos++) for (let bit = 0; bit < 8; bit++) check([{ k: 'flip', pos, bit }])
  t.pass('accepted mutants (hop limit, padding) carry the original content')
  // The hop limit is the one field outside the signature: a relay decrements it.
  const hopAt = ANNOUNCE.indexOf(Buffer.from([PacketType.Announce, PacketFlags.Signed, 16, 0]))
  t.ok(hopAt > 0)
  const relayed = Buffer.from(ANNOUNCE)
  relayed[hopAt + 2] = 3
  t.equal(openAnnounce(relayed).packet.hopLimit, 3)
})

/**
 * Field-level tampering: the announce decoded, one field changed, re-encoded with the original
 * signature. Byte mutations rarely produce a well-formed Packet with a new field; this does.
 */
type Tamper =
  | { f: 'dst'; id: Uint8Array }
  | { f: 'hopLimit'; v: number }
  | { f: 'flags'; v: number }
  | { f: 'type'; v: number }
  | { f: 'packetId'; v: number }
  | { f: 'src'; id: Uint8Array }
  | { f: 'payload'; pos: number; value: number }

const ZERO_ID = new Uint8Array(16)
const tamperArb: fc.Arbitrary<Tamper> = fc.oneof(
  fc.record({ f: fc.constant('dst' as const), id: fc.oneof(fc.constant(ZERO_ID), fc.constant(new Uint8Array(alice.nodeId)), fc.uint8Array({ minLength: 16, maxLength: 16 })) }),
  fc.record({ f: fc.constant('hopLimit' as const), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ f: fc.constant('flags' as const), v: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ f: fc.constant('type' as const), v: fc.constantFrom(...knownTypes) }),
  fc.record({ f: fc.constant('packetId' as const), v: fc.nat({ max: 0xffffffff }) }),
  fc.record({ f: fc.constant('src' as const), id: fc.oneof(fc.constant(ZERO_ID), fc.constant(new Uint8Array(alice.nodeId))) }),
  fc.record({ f: fc.constant('payload' as const), pos: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
)

/** Re-encodes the fixture announce with one field changed and its original signature. */
function tamperedAnnounce(tp: Tamper): Buffer {
  const p = ANNOUNCE_OPENED.packet
  const init = { type: p.type, flags: p.flags, hopLimit: p.hopLimit, packetId: p.packetId, src: p.src, dst: p.dst as Uint8Array | null, payload: Buffer.from(p.payload), signature: p.signature }
  switch (tp.f) {
    case 'dst':
    case 'src':
      init[tp.f] = Buffer.from(tp.id)
      break
    case 'payload':
      init.payload[tp.pos % init.payload.length] = tp.value
      break
    default:
      init[tp.f] = tp.v
  }
  return encodePacket(init)
}

t.test('a re-encoded signed announce with any field changed but the hop limit does not verify', async (t) => {
  const check = (tp: Tamper) => {
    const m = tamperedAnnounce(tp)
    const r = decodeSafely('openAnnounce', m, () => openAnnounce(m))
    if (!r.ok) return
    if (!isDeepStrictEqual(r.value.body, ANNOUNCE_OPENED.body)) throw new Error('re-encoded announce verified with a different body')
    if (!isDeepStrictEqual(signedView(r.value.packet), signedView(ANNOUNCE_OPENED.packet))) throw new Error(`re-encoded announce verified with a different ${tp.f}`)
  }
  fc.assert(fc.property(tamperArb, check), {
    numRuns: RUNS_MUTANT,
    // Regression: an all-zero dst signs like an absent one (the signing input writes 16 zero
    // bytes for a broadcast), so a broadcast announce used to verify with dst = 00..00.
    examples: [[{ f: 'dst', id: ZERO_ID }]],
  })
  const regression = tamperedAnnounce({ f: 'dst', id: ZERO_ID })
  const err = t.throws(() => openAnnounce(regression), MalformedPacketError) as MalformedPacketError | undefined
  t.equal(err?.field, 'Packet.dst', 'the all-zero dst is rejected by name')
  t.throws(() => decodePacket(encodePacket({ type: PacketType.TaskRequest, hopLimit: 1, packetId: 1, src: alice.nodeId, dst: ZERO_ID })), MalformedPacketError, 'unsigned Packets too: broadcasts omit dst')
})

t.test('mutated handshake messages (XX 0..2, IK 0..1) fail with a KairoError or change nothing that matters', async (t) => {
  const announceOfBob = ANNOUNCE_OPENED.body
  /** Builds a fresh handshake up to message `upTo` and returns who should read it and the frame. */
  const stage = (pattern: 'XX' | 'IK', upTo: number) => {
    const a = manager(alice)
    const b = manager(bob)
    if (pattern === 'IK') a.learn(announceOfBob)
    let frame = a.connect(bob.nodeId).frame
    let turn: [SessionManager, SessionManager] = [b, a]
    for (let i = 0; i < upTo; i++) {
      frame = turn[0].handleHandshake(decodePacket(frame)).reply!
      turn = [turn[1], turn[0]]
    }
    return { reader: turn[0], writer: turn[1], frame }
  }
  for (const [pattern, upTo] of [['XX', 0], ['XX', 1], ['XX', 2], ['IK', 0], ['IK', 1]] as const) {
    const sample = stage(pattern, upTo).frame
    const words = packetWords(sample, HANDSHAKE_SPEC)
    fc.assert(
      fc.property(opsArb, (ops) => {
        const { reader, writer, frame } = stage(pattern, upTo)
        const m = mutate(frame, ops, words)
        const r = deliverSafely(`handleHandshake(${pattern} message ${upTo})`, reader, m)
        if (r.ok && r.value.peer !== null && !r.value.peer.equals(writer.identity.nodeId)) {
          throw new Error(`a mutant of ${pattern} message ${upTo} was accepted as coming from ${r.value.peer.toString('hex')}`)
        }
      }),
      { numRuns: RUNS_HANDSHAKE },
    )
    t.pass(`${pattern} message ${upTo}`)
  }
})

// ---------------------------------------------------------------------------------------------
// 3. Data-frame integrity and replay

/** Mutations of a Data frame, plus the ones that only touch the hop limit (which must pass). */
const dataOps = fc.oneof(
  { weight: 4, arbitrary: opsArb },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }).map((value): Op[] => [{ k: 'byte', pos: DH_HOP, value }]) },
)

/** Fails unless an accepted mutant equals the original except at the hop-limit byte. */
function onlyHopChanged(original: Uint8Array, mutant: Uint8Array): boolean {
  if (original.length !== mutant.length) return false
  for (let i = 0; i < original.length; i++) if (i !== DH_HOP && original[i] !== mutant[i]) return false
  return true
}

t.test('Session.open: a mutant differing anywhere but the hop limit is rejected; replays are ReplayError', async (t) => {
  const { tx, rx, shadow } = sessionPair()
  const payloadArb = fc.uint8Array({ maxLength: 200 })
  let accepted = 0
  fc.assert(
    fc.property(payloadArb, fc.constantFrom(...knownTypes), dataOps, (payload, type, ops) => {
      const frame = tx.sealCopy(type, PacketFlags.AckRequested, payload, 7)
      const m = mutate(frame, ops)
      const r = decodeSafely('Session.open', m, () => rx.open(m), () => shadow.open(m))
      if (r.ok) {
        if (!onlyHopChanged(frame, m)) throw new Error('Session.open accepted a mutant that changed more than the hop limit')
        if (!Buffer.from(payload).equals(r.value.payload) || r.value.type !== type || r.value.hopLimit !== m[DH_HOP]) throw new Error('accepted mutant opened to different content')
        accepted++
      } else {
        // The rejected mutant must not have moved the replay window: the genuine frame still opens.
        const g = decodeSafely('Session.open(original)', frame, () => rx.open(frame), () => shadow.open(frame))
        if (!g.ok) throw new Error(`the original frame no longer opens after a rejected mutant: ${g.err.name}: ${g.err.message}`)
        if (!Buffer.from(payload).equals(g.value.payload)) throw new Error('original opened to different content')
      }
      const replay = guarded('Session.open(replay)', () => rx.open(frame), () => shadow.open(frame))
      if (replay.ok || !(replay.err instanceof ReplayError)) throw new Error(`a replayed frame gave ${replay.ok ? 'success' : replay.err.name}`)
    }),
    { numRuns: RUNS_MUTANT },
  )
  t.ok(accepted > 0, `hop-limit-only mutants open (${accepted} of them)`)
})

t.test('SessionManager.open: same integrity and replay properties through the manager', async (t) => {
  const a = manager(alice)
  const b = manager(bob)
  handshake(a, b)
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), dataOps, (payload, ops) => {
      const frame = Buffer.from(a.seal(bob.nodeId, PacketType.VectorSync, 0, payload))
      const m = mutate(frame, ops)
      const r = decodeSafely('SessionManager.open', m, () => b.open(m), () => checkDataFrame(m))
      if (r.ok) {
        if (!onlyHopChanged(frame, m)) throw new Error('SessionManager.open accepted a mutant that changed more than the hop limit')
        if (!Buffer.from(payload).equals(r.value.data.payload)) throw new Error('accepted mutant opened to different content')
      } else {
        const g = guarded('SessionManager.open(original)', () => b.open(frame), () => checkDataFrame(frame))
        if (!g.ok) throw new Error(`the original frame no longer opens after a rejected mutant: ${g.err.name}`)
      }
      const replay = guarded('SessionManager.open(replay)', () => b.open(frame), () => checkDataFrame(frame))
      if (replay.ok || !(replay.err instanceof ReplayError)) throw new Error(`a replayed frame gave ${replay.ok ? 'success' : replay.err.name}`)
    }),
    { numRuns: RUNS_STATEFUL },
  )
  t.pass('through SessionManager.open')
})
