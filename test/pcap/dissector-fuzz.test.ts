/**
 * pcap/kairo-gw.lua on garbage, with real tshark: thousands of mutated frames (fast-check: bit
 * flips, truncations, FlatBuffers offsets and lengths set to extremes, bytes inserted and
 * deleted, splices of two frames, random bytes, CRC recomputed or not, COBS-encoded frames
 * damaged) on every link type, a few pcapng files, one tshark run per file. Properties:
 *
 *  1. tshark exits 0 and no packet shows a Lua error, a dissector bug, an exception or the
 *     script's own internal-error expert info;
 *  2. a packet is flagged malformed (expert info, group Malformed, severity Error) exactly when
 *     the project's own decoders reject it (appliance/core/wire, fragment, hop, firmware-bridge
 *     codec, drivers/ethernet/frame.ts): every invalid mutant, truncations included, is flagged,
 *     and no mutant they accept is (reassembly off, so that each packet stands alone);
 *  3. fully random link-layer bytes, with and without reassembly: property 1.
 *
 * The seed is random per run and printed; KAIRO_FUZZ_SEED=<n> reproduces a run.
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requirePart } from '../lib/parts.js'
import {
  aitcpProblem,
  aitcpSamples,
  CaptureBuilder,
  decodeFile,
  dissectorFailures,
  errorExperts,
  ethernetKairo,
  ethernetProblem,
  ethernetRawIp,
  fbProblem,
  fbSamples,
  HAS_TSHARK,
  hopSample,
  isFlaggedMalformed,
  loraTap,
  rawUdp,
  type DecodedPacket,
  type LinkName,
} from '../lib/tshark.js'
import { fragment } from '../../appliance/core/fragment.js'
import { encodeHop } from '../../appliance/mesh/hop.js'
import { UDP_BEACON } from '../../drivers/udp/link.js'
import { cobsDecode } from '../../firmware-bridge/cobs.js'
import { encodeFrame, frameBytes, Flags, type LinkFrame } from '../../firmware-bridge/codec.js'
import { crc32c } from '../../firmware-bridge/crc.js'
import { exampleFrames } from '../../firmware-bridge/vectors.js'

const TSHARK = 'tshark (Debian package tshark)'
type Skippable = Parameters<typeof requirePart>[0]

const SEED = process.env.KAIRO_FUZZ_SEED !== undefined ? Number(process.env.KAIRO_FUZZ_SEED) : Math.floor(Math.random() * 0x7fffffff)
/** Packets per file. */
const PER_FILE = Number(process.env.KAIRO_FUZZ_PACKETS ?? 1500)

const dir = mkdtempSync(join(tmpdir(), 'kairo-dissector-fuzz-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
t.comment(`fuzz seed ${SEED} (KAIRO_FUZZ_SEED=${SEED} reproduces this run)`)

/* ------------------------------------------------------------------------------------------ */
/* Seeds: valid frames made by the real code */

const samples = aitcpSamples()
const bigFrames = samples.filter((s) => s.bytes.length > 200)
/** AI-TCP frames as any link carries them (incl. fragments and the beacon). */
const aitcpSeeds: Buffer[] = [
  ...samples.map((s) => s.bytes),
  ...bigFrames.slice(0, 3).flatMap((s, i) => fragment(s.bytes, 120, 0x10203040 + i)),
  UDP_BEACON,
]
/** Radio payloads: hop headers around frames that fit, and around fragments. */
const radioSeeds: Buffer[] = [
  ...samples.filter((s) => s.bytes.length <= 243).map((s, i) => encodeHop(s.bytes, i % 2 === 0 ? 0 : 0x0a0b0c0d, 0x01020304)),
  ...bigFrames.slice(0, 3).flatMap((s, i) => fragment(s.bytes, 243, 0x50607080 + i).map((f) => encodeHop(f, 0, 0x01020304))),
]
const fbFrames: LinkFrame[] = [
  ...exampleFrames()
    .filter((e) => e.name !== 'transmit' && e.name !== 'receive')
    .map((e) => e.frame),
  ...radioSeeds.slice(0, 12).map((p, i): LinkFrame => ({ version: 1, flags: Flags.NEEDS_ACK, seq: i, ack: 3, message: i % 2 === 0 ? { type: 'Transmit', token: i + 1, payload: p } : { type: 'Receive', payload: p, rssiDbmX4: -400 + i, snrDbX4: i - 20, frequencyErrorHz: -i * 100, timestampUs: i * 1000 } })),
]
const fbSeeds: Buffer[] = [
  ...fbFrames.map((f) => frameBytes(f)),
  ...fbSamples({ transmit: hopSample(samples.find((s) => s.expect['aitcp.kind'] === '1')!, 0, 1), receive: hopSample(samples.find((s) => s.expect['aitcp.kind'] === '1')!, 1, 2) }).map((s) => s.bytes),
]

/* ------------------------------------------------------------------------------------------ */
/* Mutations */

type Mutation =
  | { kind: 'flip'; bits: number[] }
  | { kind: 'truncate'; at: number }
  | { kind: 'word'; at: number; size: 1 | 2 | 4; value: { abs: number } | { rel: number } }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; n: number }
  | { kind: 'splice'; other: number; at: number }
  | { kind: 'random'; bytes: Uint8Array }

/** Values that break FlatBuffers offsets, lengths and vtables; `rel` ones are added to the word. */
const EXTREMES = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff]
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), bits: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('word' as const),
    at: fc.nat(),
    size: fc.constantFrom(1 as const, 2 as const, 4 as const),
    value: fc.oneof(
      fc.constantFrom(...EXTREMES).map((abs) => ({ abs })),
      fc.integer({ min: -16, max: 16 }).map((rel) => ({ rel })),
    ),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('splice' as const), other: fc.nat(), at: fc.nat() }),
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 600 }) }),
)

/**
 * Applies `m` to `b`. Word writes land on aligned offsets counted from `base` (where a
 * FlatBuffers buffer starts): an absolute value, or the word's own value + rel (lengths and
 * offsets off by a few bytes).
 */
function mutate(b: Buffer, m: Mutation, pool: readonly Buffer[], base: number): Buffer {
  switch (m.kind) {
    case 'flip': {
      const c = Buffer.from(b)
      if (c.length === 0) return c
      for (const bit of m.bits) c[(bit >> 3) % c.length]! ^= 1 << (bit & 7)
      return c
    }
    case 'truncate':
      return b.length === 0 ? b : Buffer.from(b.subarray(0, m.at % b.length))
    case 'word': {
      const c = Buffer.from(b)
      const slots = Math.floor((c.length - base) / m.size)
      if (slots <= 0) return c
      const at = base + (m.at % slots) * m.size
      const max = 2 ** (8 * m.size)
      const cur = m.size === 1 ? c[at]! : m.size === 2 ? c.readUInt16LE(at) : c.readUInt32LE(at)
      const v = 'rel' in m.value ? (((cur + m.value.rel) % max) + max) % max : m.value.abs % max
      if (m.size === 1) c[at] = v
      else if (m.size === 2) c.writeUInt16LE(v, at)
      else c.writeUInt32LE(v, at)
      return c
    }
    case 'insert': {
      const at = m.at % (b.length + 1)
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)])
    }
    case 'delete': {
      if (b.length === 0) return b
      const at = m.at % b.length
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)])
    }
    case 'splice': {
      const o = pool[m.other % pool.length]!
      const at = b.length === 0 ? 0 : m.at % b.length
      return Buffer.concat([b.subarray(0, at), o.subarray(at % Math.max(1, o.length))])
    }
    case 'random':
      return Buffer.from(m.bytes)
  }
}

interface Mutant {
  seed: number
  mutations: Mutation[]
  fixCrc: boolean
}
const mutantArb: fc.Arbitrary<Mutant> = fc.record({ seed: fc.nat(), mutations: fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fixCrc: fc.boolean() })

/** A FlatBuffers buffer starts after the 4-byte Packet prefix / the 4-byte fb header; a hop header moves it by 12. */
const fbBase = (b: Buffer): number => (b[0] === 0x14 ? 16 : 4)

function mutant(pool: readonly Buffer[], m: Mutant, base = fbBase): { bytes: Buffer; truncated: boolean } {
  let b = pool[m.seed % pool.length]!
  const at = base(b)
  for (const x of m.mutations) b = mutate(b, x, pool, at)
  return { bytes: b, truncated: m.mutations.some((x) => x.kind === 'truncate') }
}

function withCrc(b: Buffer): Buffer {
  if (b.length < 8) return b
  const c = Buffer.from(b)
  c.writeUInt32LE(crc32c(c, 0, 0, c.length - 4), c.length - 4)
  return c
}

const crcGood = (b: Uint8Array) => b.length >= 8 && Buffer.from(b).readUInt32LE(b.length - 4) === crc32c(b, 0, 0, b.length - 4)

/** What the dissector's "auto" COBS mode decodes, judged by the project's decoders. */
function fbAutoProblem(b: Buffer): string | null {
  if (crcGood(b) || b.length === 0) return fbProblem(b)
  const enc = b[b.length - 1] === 0 ? b.subarray(0, b.length - 1) : b
  try {
    const dec = cobsDecode(enc)
    if (crcGood(dec)) return fbProblem(dec)
  } catch {
    // not COBS either: judged as it is
  }
  return fbProblem(b)
}

/* ------------------------------------------------------------------------------------------ */
/* Files and checks */

interface Case {
  frame: number
  /** null: the project's decoders accept it. */
  problem: string | null
  truncated: boolean
  hex: string
}

/** Adds `n` mutants to `cap`, each through `wrap` onto `link`; judged by `judge`. */
function addMutants(
  cap: CaptureBuilder,
  cases: Case[],
  n: number,
  salt: number,
  pool: readonly Buffer[],
  link: LinkName,
  wrap: (b: Buffer) => Buffer | null,
  judge: (b: Buffer, wrapped: Buffer) => string | null,
  fix?: (b: Buffer, m: Mutant) => Buffer,
  base?: (b: Buffer) => number,
): void {
  for (const m of fc.sample(mutantArb, { numRuns: n, seed: SEED + salt })) {
    const { bytes, truncated } = mutant(pool, m, base)
    const b = fix ? fix(bytes, m) : bytes
    const wrapped = wrap(b)
    if (wrapped === null) continue
    cases.push({ frame: cap.add(link, wrapped), problem: judge(b, wrapped), truncated, hex: b.toString('hex').slice(0, 400) })
  }
}

/** Decodes `file` and checks properties 1 and 2 on `cases`. */
async function check(t: Test, name: string, file: string, cases: Case[], prefs: Record<string, string>): Promise<void> {
  const packets = new Map<number, DecodedPacket>((await decodeFile(file, ['aitcp.malformed', 'kairo_fb.malformed', 'kairo_eth.malformed'], { prefs })).map((p) => [p.number, p]))
  t.equal(packets.size, cases.length, `${name}: tshark decoded every packet (seed ${SEED})`)
  const failures: string[] = []
  const missed: string[] = []
  const false_: string[] = []
  let invalid = 0
  let truncatedInvalid = 0
  for (const c of cases) {
    const p = packets.get(c.frame)
    if (!p) {
      failures.push(`frame ${c.frame} missing`)
      continue
    }
    const f = dissectorFailures(p)
    if (f.length > 0) failures.push(`frame ${c.frame}: ${f.join('; ')} [${c.hex}]`)
    if (c.problem !== null) {
      invalid++
      if (c.truncated) truncatedInvalid++
      if (!isFlaggedMalformed(p)) missed.push(`frame ${c.frame}: decoders say "${c.problem}", dissector flags nothing (info: ${p.info}) [${c.hex}]`)
    } else {
      const errs = errorExperts(p)
      if (errs.length > 0) false_.push(`frame ${c.frame}: decoders accept it, dissector says ${JSON.stringify(errs.map((e) => e.message))} [${c.hex}]`)
    }
  }
  const fields = new Map<string, number>()
  for (const c of cases) if (c.problem !== null) {
    const f = c.problem.split(':')[0]!.replace(/\[\d+\]/g, '[]')
    fields.set(f, (fields.get(f) ?? 0) + 1)
  }
  t.comment(`${name}: what the decoders rejected: ${[...fields].sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f} ${n}`).join(', ')}`)
  t.same(failures.slice(0, 10), [], `${name}: no Lua error, dissector bug or exception in ${cases.length} packets (seed ${SEED}; ${failures.length} bad)`)
  t.same(missed.slice(0, 10), [], `${name}: all ${invalid} packets the decoders reject are flagged malformed (${truncatedInvalid} truncations among them; seed ${SEED}; ${missed.length} missed)`)
  t.same(false_.slice(0, 10), [], `${name}: no packet the decoders accept has an error expert info (seed ${SEED}; ${false_.length} wrong)`)
  t.ok(invalid > cases.length / 3, `${name}: the mutants are mostly invalid (${invalid} of ${cases.length})`)
  t.ok(invalid < cases.length, `${name}: some mutants stay valid (${cases.length - invalid})`)
}

const NO_REASSEMBLY = { 'aitcp.reassemble': 'FALSE' }

t.test('mutated AI-TCP frames over UDP and raw IP: never a Lua error; flagged exactly when invalid', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const cap = new CaptureBuilder(['udp', 'rawip'])
  const cases: Case[] = []
  // (Wireshark gives no empty UDP or IP payload to a subdissector)
  addMutants(cap, cases, PER_FILE / 2, 1, aitcpSeeds, 'udp', (b) => (b.length === 0 ? null : rawUdp(b, b.length % 2 === 0)), (b) => aitcpProblem(b))
  addMutants(cap, cases, PER_FILE / 2, 2, aitcpSeeds, 'rawip', (b) => (b.length === 0 ? null : ethernetRawIp(b, b.length % 2 === 1)), (b) => aitcpProblem(b))
  const file = join(dir, 'udp-rawip.pcapng')
  writeFileSync(file, cap.bytes())
  await check(t, 'UDP/raw IP', file, cases, NO_REASSEMBLY)
})

t.test('mutated Ethernet 0x88B5 frames (payload length included): never a Lua error; flagged exactly when invalid', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const cap = new CaptureBuilder(['eth'])
  const cases: Case[] = []
  // the mutation covers the length field and the frame, never the MAC header and EtherType;
  // half of the mutants get their length field made right again (so the frame is what is wrong)
  const pool = aitcpSeeds.map((b) => ethernetKairo(b).subarray(14))
  const fixLength = (b: Buffer, m: Mutant) => {
    if (!m.fixCrc || b.length < 2) return b
    const c = Buffer.from(b)
    c.writeUInt16BE(Math.min(0xffff, c.length - 2 - (c.length > 2 ? m.seed % 2 : 0)), 0) // (sometimes one byte of padding)
    return c
  }
  const eth = (b: Buffer) => Buffer.concat([ethernetKairo(Buffer.alloc(0)).subarray(0, 14), b])
  addMutants(cap, cases, PER_FILE, 3, pool, 'eth', eth, (_b, wrapped) => ethernetProblem(wrapped), fixLength, (b) => 2 + fbBase(b.subarray(2)))
  const file = join(dir, 'eth.pcapng')
  writeFileSync(file, cap.bytes())
  await check(t, 'Ethernet', file, cases, NO_REASSEMBLY)
})

t.test('mutated LoRaTap radio payloads (hop headers, fragments): never a Lua error; flagged exactly when invalid', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const cap = new CaptureBuilder(['lora'])
  const cases: Case[] = []
  addMutants(cap, cases, PER_FILE, 4, radioSeeds, 'lora', (b) => loraTap(b, b.length % 3 === 0 ? undefined : { rssi: -100, snr: 5 }), (b) => aitcpProblem(b))
  const file = join(dir, 'lora.pcapng')
  writeFileSync(file, cap.bytes())
  await check(t, 'LoRaTap', file, cases, NO_REASSEMBLY)
  // the same packets with reassembly on (mutated fragments meet): still no failure
  const again = await decodeFile(file, [])
  const bad = again.flatMap((p) => dissectorFailures(p).map((f) => `frame ${p.number}: ${f}`))
  t.same(bad.slice(0, 10), [], `LoRaTap with reassembly: no Lua error or dissector bug (seed ${SEED})`)
})

t.test('mutated firmware-bridge frames (CRC fixed or not, COBS-encoded ones damaged): never a Lua error; flagged exactly when invalid', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const cap = new CaptureBuilder(['fb'])
  const cases: Case[] = []
  // decoded frames; half with the CRC made right again, so that the verifier is what stands in the way
  addMutants(cap, cases, (PER_FILE * 2) / 3, 5, fbSeeds, 'fb', (b) => b, (b) => fbAutoProblem(b), (b, m) => (m.fixCrc ? withCrc(b) : b))
  // COBS-encoded frames (a raw serial capture), damaged: the dissector's "auto" mode decodes what it can
  const wires = fbFrames.map((f) => encodeFrame(f))
  addMutants(cap, cases, PER_FILE / 3, 6, wires, 'fb', (b) => b, (b) => fbAutoProblem(b))
  const file = join(dir, 'fb.pcapng')
  writeFileSync(file, cap.bytes())
  await check(t, 'firmware-bridge', file, cases, NO_REASSEMBLY)
})

t.test('random link-layer bytes on every link type, with reassembly: tshark exits 0, never a Lua error', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const links: LinkName[] = ['eth', 'udp', 'lora', 'fb']
  const cap = new CaptureBuilder(links)
  // bytes that lead into each branch: a vk byte (or the beacon) first, then anything
  const head = fc.constantFrom(0x11, 0x12, 0x13, 0x14, 0x00, 0x21, 0xff)
  const body = fc.tuple(head, fc.uint8Array({ maxLength: 300 }), fc.nat(3)).map(([h, rest, how]) => {
    const b = Buffer.concat([Buffer.from([h]), rest])
    return { b, how }
  })
  let n = 0
  for (const { b, how } of fc.sample(body, { numRuns: PER_FILE, seed: SEED + 7 })) {
    n++
    const link = links[n % links.length]!
    if (how === 0) cap.add(link, b.subarray(1)) // nothing but random bytes as the whole link-layer packet
    else if (link === 'eth') cap.add(link, ethernetKairo(b))
    else if (link === 'udp') cap.add(link, rawUdp(b))
    else if (link === 'lora') cap.add(link, loraTap(how === 1 ? encodeHop(b, 0, 1) : b))
    else cap.add(link, how === 1 ? withCrc(Buffer.concat([Buffer.from([1, 1, 0, 0]), b, Buffer.alloc(4)])) : b)
  }
  const file = join(dir, 'random.pcapng')
  writeFileSync(file, cap.bytes())
  const runs: Record<string, string>[] = [{}, { 'kairo_fb.cobs': 'COBS-encoded (raw serial line)' }]
  for (const prefs of runs) {
    const packets = await decodeFile(file, [], { prefs })
    t.equal(packets.length, cap.count, `every random packet decoded (${JSON.stringify(prefs)})`)
    const bad = packets.flatMap((p) => dissectorFailures(p).map((f) => `frame ${p.number}: ${f}`))
    t.same(bad.slice(0, 10), [], `no Lua error, dissector bug or exception (${JSON.stringify(prefs)}; seed ${SEED})`)
  }
})
