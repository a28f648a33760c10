/**
 * Property tests (fast-check) of pcap/reader.ts. Properties:
 *
 *  1. Random valid files written by pcap/pcapng.ts (1-3 sections, 0-5 interfaces each, packets
 *     with random data, lengths, directions, comments, statistics) read back exactly.
 *  2. Every truncation of a valid file: a cut exactly between two blocks reads as the shorter
 *     file (its packets are a prefix); any other cut is a PcapFormatError with `truncated` set
 *     and `offset` naming the block the cut fell in (offset 0 for a cut inside the first 4 bytes;
 *     a 0-byte file is "empty"). The same for classic pcap records.
 *  3. Mutated valid files (bytes flipped, 32-bit fields overwritten with lengths and extremes,
 *     bytes inserted, deleted, blocks duplicated) and random bytes behind a valid magic: a
 *     capture or a PcapFormatError whose one-line message starts with the file name, nothing
 *     else, quickly.
 *  4. The file reader (iteratePcapFile, random chunk sizes) agrees with the in-memory reader on
 *     mutated files: the same packets, or the same error message.
 *
 * fast-check picks the seed; a failure prints it with the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { enhancedPacketBlock, fileHeader, interfaceDescriptionBlock, interfaceStatisticsBlock, sectionHeaderBlock, type InterfaceDescription, type InterfaceStatistics, type PacketRecord, type SectionOptions } from '../../pcap/pcapng.js'
import { iteratePcapBytes, iteratePcapFile, PcapFormatError, readPcapng, type PcapCapture, type PcapItem } from '../../pcap/reader.js'

const RUNS = 300
const MAX_MS = 100

const dir = mkdtempSync(join(tmpdir(), 'kairo-reader-fuzz-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/* ------------------------------------------------------------------------------ generators */

const text = fc.option(fc.string({ maxLength: 40, unit: 'grapheme' }), { nil: undefined })
const nonEmpty = (s: string | undefined) => (s === '' ? undefined : s)

const arbSection: fc.Arbitrary<SectionOptions> = fc.record({ userappl: text, hardware: text, os: text, comment: text })

const arbInterface: fc.Arbitrary<InterfaceDescription> = fc.record({
  linktype: fc.oneof(fc.constantFrom(1, 101, 147, 148, 270), fc.integer({ min: 0, max: 0xffff })),
  name: fc.string({ maxLength: 30 }),
  description: text,
  filter: fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
  comment: text,
  snaplen: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
})

interface Section {
  options: SectionOptions
  interfaces: InterfaceDescription[]
  packets: PacketRecord[]
  stats: InterfaceStatistics[]
}

const arbTs = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })

function arbSectionWith(n: number): fc.Arbitrary<Section> {
  const ifid = fc.integer({ min: 0, max: Math.max(0, n - 1) })
  const packets =
    n === 0
      ? fc.constant([] as PacketRecord[])
      : fc.array(
          fc
            .record({
              interfaceId: ifid,
              tsUs: arbTs,
              data: fc.uint8Array({ maxLength: 300 }),
              extra: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
              dir: fc.option(fc.constantFrom('in' as const, 'out' as const), { nil: undefined }),
              comment: text,
            })
            .map(({ extra, ...p }): PacketRecord => ({ ...p, ...(extra === undefined ? {} : { originalLength: p.data.length + extra }) })),
          { maxLength: 25 },
        )
  const stats =
    n === 0
      ? fc.constant([] as InterfaceStatistics[])
      : fc.array(
          fc.record({
            interfaceId: ifid,
            tsUs: arbTs,
            startUs: fc.option(arbTs, { nil: undefined }),
            endUs: fc.option(arbTs, { nil: undefined }),
            received: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
            dropped: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { nil: undefined }),
            comment: text,
          }),
          { maxLength: 3 },
        )
  return fc.record({ options: arbSection, interfaces: fc.constant([] as InterfaceDescription[]), packets, stats })
}

const arbFile: fc.Arbitrary<Section[]> = fc.array(
  fc
    .array(arbInterface, { maxLength: 5 })
    .chain((ifaces) => arbSectionWith(ifaces.length).map((s) => ({ ...s, interfaces: ifaces }))),
  { minLength: 1, maxLength: 3 },
)

/** The file's blocks (to know where a cut falls) and the file. */
function build(sections: Section[]): { blocks: Buffer[]; file: Buffer } {
  const blocks: Buffer[] = []
  for (const s of sections) {
    blocks.push(sectionHeaderBlock(s.options))
    for (const i of s.interfaces) blocks.push(interfaceDescriptionBlock(i))
    for (const p of s.packets) blocks.push(enhancedPacketBlock(p))
    for (const st of s.stats) blocks.push(interfaceStatisticsBlock(st))
  }
  return { blocks, file: Buffer.concat(blocks) }
}

/** What the reader must return for `sections`. */
function expected(sections: Section[]) {
  let ifBase = 0
  let number = 0
  const packets: unknown[] = []
  const stats: unknown[] = []
  const interfaces: unknown[] = []
  const secs: unknown[] = []
  for (const [si, s] of sections.entries()) {
    secs.push({ userappl: nonEmpty(s.options.userappl), hardware: nonEmpty(s.options.hardware), os: nonEmpty(s.options.os), comment: nonEmpty(s.options.comment) })
    for (const i of s.interfaces)
      interfaces.push({ section: si, linktype: i.linktype, name: nonEmpty(i.name), description: nonEmpty(i.description), filter: i.filter, comment: nonEmpty(i.comment), snaplen: i.snaplen ?? 0 })
    for (const p of s.packets)
      packets.push({ number: ++number, interfaceId: ifBase + p.interfaceId, tsUs: p.tsUs, data: Buffer.from(p.data).toString('hex'), originalLength: p.originalLength ?? p.data.length, dir: p.dir, comment: nonEmpty(p.comment) })
    for (const st of s.stats)
      stats.push({ interfaceId: ifBase + st.interfaceId, tsUs: st.tsUs, startUs: st.startUs, endUs: st.endUs, received: st.received, dropped: st.dropped, comment: nonEmpty(st.comment) })
    ifBase += s.interfaces.length
  }
  return { sections: secs, interfaces, packets, stats }
}

function actual(c: PcapCapture) {
  return {
    sections: c.sections.map((s) => ({ userappl: s.userappl, hardware: s.hardware, os: s.os, comment: s.comment })),
    interfaces: c.interfaces.map((i) => ({ section: i.section, linktype: i.linktype, name: i.name, description: i.description, filter: i.filter, comment: i.comment, snaplen: i.snaplen })),
    packets: c.packets.map((p) => ({ number: p.number, interfaceId: p.interfaceId, tsUs: p.tsUs, data: p.data.toString('hex'), originalLength: p.originalLength, dir: p.dir, comment: p.comment })),
    stats: c.stats.map((s) => ({ interfaceId: s.interfaceId, tsUs: s.tsUs, startUs: s.startUs, endUs: s.endUs, received: s.received, dropped: s.dropped, comment: s.comment })),
  }
}

/** Strips undefined members so that t.same compares what is there. */
function clean<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x))) as T
}

/**
 * What a capture read from `b` must satisfy whatever the bytes: items in increasing offsets;
 * each packet's data is a view of `b` right after its block's fixed header and ends at least 4
 * bytes (the trailing length) before the next item, or at the end (pcap records); captured
 * length ≤ original length; interface ids valid.
 */
function checkLayout(b: Buffer): void {
  const items = [...iteratePcapBytes(b)]
  const offsetOf = (it: PcapItem) => (it.kind === 'section' ? it.section.offset : it.kind === 'interface' ? it.iface.offset : it.kind === 'packet' ? it.packet.offset : it.kind === 'stats' ? it.stats.offset : it.offset)
  const offsets = items.map(offsetOf)
  let interfaces = 0
  for (const [i, it] of items.entries()) {
    if (i > 0 && offsets[i]! < offsets[i - 1]!) throw new Error(`items out of order at ${offsets[i]}`)
    if (it.kind === 'interface') interfaces++
    if (it.kind !== 'packet') continue
    const p = it.packet
    const head = { EPB: 28, PB: 28, SPB: 12, record: 16 }[p.block]
    const next = offsets.slice(i + 1).find((o) => o > p.offset) ?? b.length
    const start = p.data.byteOffset - b.byteOffset
    const end = start + p.data.length
    if (p.data.buffer !== b.buffer || start !== p.offset + head) throw new Error(`packet ${p.number}: data is not right after its header`)
    if (end > (p.block === 'record' ? next : next - 4)) throw new Error(`packet ${p.number}: data runs to ${end}, into the next unit at ${next}`)
    if (p.data.length > p.originalLength) throw new Error(`packet ${p.number}: captured ${p.data.length} > original ${p.originalLength}`)
    if (p.interfaceId >= interfaces) throw new Error(`packet ${p.number}: interface ${p.interfaceId} of ${interfaces}`)
  }
}

/** Reads `b`; a capture or a PcapFormatError naming the file in one line, quickly; anything else throws. */
function readOrFormatError(b: Buffer): PcapCapture | PcapFormatError {
  const t0 = performance.now()
  let out: PcapCapture | PcapFormatError
  try {
    out = readPcapng(b, { file: 'fuzz.pcapng' })
  } catch (err) {
    if (!(err instanceof PcapFormatError)) throw err
    if (!err.message.startsWith('fuzz.pcapng: ') || err.message.includes('\n')) throw new Error(`badly formed message: ${JSON.stringify(err.message)}`)
    if (err.offset !== undefined && !err.message.includes(`at offset ${err.offset}`)) throw new Error(`message does not name offset ${err.offset}: ${err.message}`)
    out = err
  }
  const ms = performance.now() - t0
  if (!(out instanceof PcapFormatError)) checkLayout(b)
  if (ms > MAX_MS) {
    const t1 = performance.now()
    try {
      readPcapng(b)
    } catch {
      /* timed again */
    }
    if (performance.now() - t1 > MAX_MS) throw new Error(`read took ${ms.toFixed(1)} ms for ${b.length} bytes`)
  }
  return out
}

/* ------------------------------------------------------------------------------------ tests */

t.test('random valid files written by pcap/pcapng.ts read back exactly', async (t) => {
  fc.assert(
    fc.property(arbFile, (sections) => {
      const { file } = build(sections)
      const c = readPcapng(file)
      t.same(clean(actual(c)), clean(expected(sections)))
      return true
    }),
    { numRuns: RUNS },
  )
})

/** Start offsets of the blocks, and the end of the file. */
function boundaries(blocks: Buffer[]): number[] {
  const out = [0]
  for (const b of blocks) out.push(out[out.length - 1]! + b.length)
  return out
}

function checkCut(file: Buffer, bounds: number[], cut: number, packetsBefore: (n: number) => number): void {
  const r = readOrFormatError(file.subarray(0, cut))
  if (cut === 0) {
    if (!(r instanceof PcapFormatError) || r.reason !== 'is empty (0 bytes): not a pcapng or pcap file') throw new Error('a 0-byte file must be "empty"')
    return
  }
  if (bounds.includes(cut)) {
    if (r instanceof PcapFormatError) throw new Error(`cut at block boundary ${cut} failed: ${r.message}`)
    if (r.packets.length !== packetsBefore(cut)) throw new Error(`cut at ${cut}: ${r.packets.length} packets, expected ${packetsBefore(cut)}`)
    return
  }
  if (!(r instanceof PcapFormatError)) throw new Error(`cut at ${cut}, inside a block, read without error`)
  const blockStart = Math.max(...bounds.filter((b) => b < cut))
  if (!r.truncated || r.offset !== blockStart) throw new Error(`cut at ${cut}: expected "truncated" at offset ${blockStart}, got ${r.message}`)
}

t.test('every truncation: a valid prefix at block boundaries, "truncated" at the cut block otherwise', async (t) => {
  fc.assert(
    fc.property(arbFile, fc.integer({ min: 0, max: 1 << 30 }), (sections, r) => {
      const { blocks, file } = build(sections)
      const bounds = boundaries(blocks)
      const isPacket = blocks.map((b) => b.readUInt32LE(0) === 6)
      const packetsBefore = (cut: number) => isPacket.filter((p, i) => p && bounds[i + 1]! <= cut).length
      // Every cut of small files; a random cut and every boundary of larger ones.
      const cuts = file.length <= 600 ? Array.from({ length: file.length }, (_, i) => i) : [r % file.length, ...bounds.slice(0, -1), ...bounds.slice(1, -1).map((b) => b + 1), 1, 2, 3]
      for (const cut of cuts) checkCut(file, bounds, cut, packetsBefore)
      return true
    }),
    { numRuns: 100 },
  )
  t.pass('all cuts behaved')
})

t.test('classic pcap: every truncation', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 8 }), fc.boolean(), (datas, le) => {
      const u32 = (v: number) => {
        const b = Buffer.alloc(4)
        if (le) b.writeUInt32LE(v)
        else b.writeUInt32BE(v)
        return b
      }
      const head = Buffer.concat([u32(0xa1b2c3d4), le ? Buffer.from([2, 0, 4, 0]) : Buffer.from([0, 2, 0, 4]), u32(0), u32(0), u32(65535), u32(1)])
      const recs = datas.map((d, i) => Buffer.concat([u32(1000 + i), u32(i), u32(d.length), u32(d.length), d]))
      const blocks = [head, ...recs]
      const file = Buffer.concat(blocks)
      const bounds = boundaries(blocks)
      for (let cut = 0; cut < file.length; cut++) checkCut(file, bounds, cut, (c) => bounds.filter((b) => b > 0 && b <= c).length - 1)
      const full = readPcapng(file)
      if (full.packets.length !== datas.length || !full.packets.every((p, i) => p.data.equals(datas[i]!))) throw new Error('classic pcap did not read back')
      return true
    }),
    { numRuns: 200 },
  )
  t.pass('all cuts behaved')
})

/** A mutation of a valid file. */
const arbMutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('u32' as const),
    at: fc.nat(),
    v: fc.constantFrom(0, 1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff, 16 * 1024 * 1024, 0x0a0d0d0a, 0x1a2b3c4d, 0x4d3c2b1a),
    le: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('u16' as const), at: fc.nat(), v: fc.constantFrom(0, 1, 2, 3, 4, 8, 9, 0xffff, 0xfffc) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 200 }) }),
)
type Mutation = (typeof arbMutation extends fc.Arbitrary<infer M> ? M : never) | { kind: 'add'; at: number; v: number } | { kind: 'field'; block: number; word: number; v: number }

/** `starts`: the blocks' offsets in `file`, for 'field' mutations (valid until a mutation moves bytes). */
function mutate(file: Buffer, muts: Mutation[], starts: number[] = [0]): Buffer {
  let b = Buffer.from(file)
  for (const m of muts) {
    if (b.length === 0) break
    if (m.kind === 'field') {
      const at = starts[m.block % starts.length]! + 4 * m.word
      if (at + 4 <= b.length) b.writeUInt32LE((b.readUInt32LE(at) + m.v) >>> 0, at)
      continue
    }
    const at = m.at % b.length
    switch (m.kind) {
      case 'flip':
        b[at] = b[at]! ^ (1 << m.bit)
        break
      case 'byte':
        b[at] = m.v
        break
      case 'u32':
        if (at + 4 <= b.length) {
          if (m.le) b.writeUInt32LE(m.v >>> 0, at)
          else b.writeUInt32BE(m.v >>> 0, at)
        }
        break
      case 'add':
        if (at + 4 <= b.length) b.writeUInt32LE((b.readUInt32LE(at - (at % 4)) + m.v) >>> 0, at - (at % 4))
        break
      case 'u16':
        if (at + 2 <= b.length) b.writeUInt16LE(m.v, at)
        break
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)])
        break
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)])
        break
      case 'repeat':
        b = Buffer.concat([b.subarray(0, at + m.n), b.subarray(at)])
        break
    }
  }
  return b
}

/** Aligned 32-bit mutations hit the length and id fields: more of them, and small nudges (off by a few). */
const arbAligned = fc.oneof(
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat().map((n) => n * 4), v: fc.integer({ min: 0, max: 0xffffffff }), le: fc.constant(true) }),
  fc.record({ kind: fc.constant('add' as const), at: fc.nat().map((n) => n * 4), v: fc.integer({ min: -8, max: 8 }) }),
  // A word of a block's fixed part (type, lengths, interface id, timestamps, captured and original lengths), nudged.
  fc.record({ kind: fc.constant('field' as const), block: fc.nat(), word: fc.integer({ min: 1, max: 6 }), v: fc.integer({ min: -8, max: 8 }) }),
)

t.test('mutated valid files: a capture or a PcapFormatError, nothing else', async (t) => {
  let errors = 0
  let reads = 0
  fc.assert(
    fc.property(arbFile, fc.array(fc.oneof(arbMutation, arbAligned), { minLength: 1, maxLength: 4 }), (sections, muts) => {
      const { blocks, file } = build(sections)
      const r = readOrFormatError(mutate(file, muts, boundaries(blocks).slice(0, -1)))
      if (r instanceof PcapFormatError) errors++
      else reads++
      return true
    }),
    { numRuns: 2000 },
  )
  t.ok(errors > 0 && reads > 0, `both outcomes seen (${errors} errors, ${reads} reads)`)
})

t.test('random bytes behind a valid start: a capture or a PcapFormatError', async (t) => {
  const starts = [
    Buffer.from('0a0d0d0a', 'hex'),
    Buffer.from('0a0d0d0a1c0000004d3c2b1a', 'hex'),
    Buffer.from('0a0d0d0a0000001c1a2b3c4d', 'hex'),
    Buffer.from('0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000', 'hex'),
    Buffer.from('d4c3b2a1020004000000000000000000ffff000001000000', 'hex'),
    Buffer.from('a1b23c4d000200040000000000000000', 'hex'),
    Buffer.alloc(0),
  ]
  fc.assert(
    fc.property(fc.constantFrom(...starts), fc.uint8Array({ maxLength: 400 }), (start, rest) => {
      readOrFormatError(Buffer.concat([start, rest]))
      return true
    }),
    { numRuns: 3000 },
  )
  // Valid headers then random, 4-aligned "blocks" of plausible lengths.
  const block = fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 6, 10, 0xbad, 0x0a0d0d0a, 77), fc.uint8Array({ maxLength: 64 })).map(([type, body]) => {
    const len = 12 + body.length + ((4 - (body.length % 4)) % 4)
    const b = Buffer.alloc(len)
    b.writeUInt32LE(type, 0)
    b.writeUInt32LE(len, 4)
    b.set(body, 8)
    b.writeUInt32LE(len, len - 4)
    return b
  })
  fc.assert(
    fc.property(fc.array(block, { maxLength: 10 }), (blocks) => {
      readOrFormatError(Buffer.concat([fileHeader({}, [{ linktype: 1, name: 'x' }]), ...blocks]))
      return true
    }),
    { numRuns: 3000 },
  )
  t.pass('no other error')
})

t.test('the file reader agrees with the in-memory reader on mutated files', async (t) => {
  let n = 0
  await fc.assert(
    fc.asyncProperty(arbFile, fc.array(arbMutation, { maxLength: 3 }), fc.integer({ min: 1, max: 600 }), async (sections, muts, chunk) => {
      const b = mutate(build(sections).file, muts)
      const path = join(dir, `m${n++ % 8}.pcapng`)
      writeFileSync(path, b)
      let mem: string
      try {
        const c = readPcapng(b, { file: path })
        mem = JSON.stringify(clean(actual(c)))
      } catch (err) {
        if (!(err instanceof PcapFormatError)) throw err
        mem = err.message
      }
      let disk: string
      try {
        const c: PcapCapture = { format: 'pcapng', size: b.length, sections: [], interfaces: [], packets: [], stats: [], skipped: {} }
        for await (const it of iteratePcapFile(path, { chunkBytes: chunk })) {
          if (it.kind === 'section') c.sections.push(it.section)
          else if (it.kind === 'interface') c.interfaces.push(it.iface)
          else if (it.kind === 'packet') c.packets.push(it.packet)
          else if (it.kind === 'stats') c.stats.push(it.stats)
        }
        disk = JSON.stringify(clean(actual(c)))
      } catch (err) {
        if (!(err instanceof PcapFormatError)) throw err
        disk = err.message
      }
      if (mem !== disk) throw new Error(`in memory: ${mem.slice(0, 300)}\non disk (chunk ${chunk}): ${disk.slice(0, 300)}`)
      return true
    }),
    { numRuns: 200 },
  )
  t.pass('same packets or the same error')
})
