/**
 * pcap/reader.ts on known files: the writer's (pcap/pcapng.ts) files read back field for field;
 * hand-built pcapng in both byte orders with several sections, nanosecond, power-of-2 and offset
 * timestamps, Simple and obsolete Packet Blocks, skipped blocks; classic pcap in both byte orders,
 * µs and ns; files written by Wireshark's own tools (editcap, mergecap). Every file that should
 * be valid is also read by tshark/capinfos, and the packet count, timestamps, lengths, interfaces
 * and directions must agree. Bad files give a PcapFormatError with the exact message (file,
 * offset, block, what is wrong). The file reader (iteratePcapFile, in small and large chunks)
 * gives the same items and the same errors as the in-memory reader.
 */
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { enhancedPacketBlock, fileHeader, interfaceStatisticsBlock, LINKTYPE, sectionHeaderBlock, interfaceDescriptionBlock } from '../../pcap/pcapng.js'
import {
  iteratePcapFile,
  linktypeName,
  MAX_BLOCK_BYTES,
  PcapFileError,
  PcapFormatError,
  readPcapFile,
  readPcapng,
  type PcapCapture,
  type PcapItem,
} from '../../pcap/reader.js'
import { hasCommand, requirePart } from '../lib/parts.js'

const HAS_TSHARK = hasCommand('tshark', ['--version']) && hasCommand('capinfos', ['-v'])
const needs = (t: Test, ok: boolean, what: string) => requirePart(t as unknown as Parameters<typeof requirePart>[0], ok, what)

const dir = mkdtempSync(join(tmpdir(), 'kairo-reader-'))
if (process.env.KEEP_TMP !== '1') t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/* ----------------------------------------------------------------------------- raw builders */

type Opt = [number, Buffer]

function u16(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(2)
  if (le) b.writeUInt16LE(v)
  else b.writeUInt16BE(v)
  return b
}
function u32(v: number, le: boolean): Buffer {
  const b = Buffer.alloc(4)
  if (le) b.writeUInt32LE(v >>> 0)
  else b.writeUInt32BE(v >>> 0)
  return b
}
function u64(v: bigint, le: boolean): Buffer {
  const b = Buffer.alloc(8)
  if (le) b.writeBigUInt64LE(BigInt.asUintN(64, v))
  else b.writeBigUInt64BE(BigInt.asUintN(64, v))
  return b
}
const str = (s: string) => Buffer.from(s, 'utf8')
const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)])

function options(opts: Opt[], le: boolean, end = true): Buffer {
  if (opts.length === 0) return Buffer.alloc(0)
  const parts = opts.map(([c, v]) => Buffer.concat([u16(c, le), u16(v.length, le), pad(v)]))
  return Buffer.concat([...parts, ...(end ? [Buffer.alloc(4)] : [])])
}

/** A pcapng block in either byte order. */
function blk(type: number, body: Buffer, opts: Opt[] = [], le = true): Buffer {
  const o = options(opts, le)
  const total = 12 + body.length + o.length
  return Buffer.concat([u32(type, le), u32(total, le), body, o, u32(total, le)])
}
function shb(le: boolean, opts: Opt[] = [], sectionLength = -1n): Buffer {
  const body = Buffer.concat([u32(0x1a2b3c4d, le), u16(1, le), u16(0, le), u64(sectionLength, le)])
  return blk(0x0a0d0d0a, body, opts, le)
}
function idb(le: boolean, linktype: number, opts: Opt[] = [], snaplen = 0): Buffer {
  return blk(1, Buffer.concat([u16(linktype, le), u16(0, le), u32(snaplen, le)]), opts, le)
}
function epb(le: boolean, ifid: number, ticks: bigint, data: Buffer, opts: Opt[] = [], origlen = data.length): Buffer {
  return blk(6, Buffer.concat([u32(ifid, le), u32(Number(ticks >> 32n), le), u32(Number(ticks & 0xffffffffn), le), u32(data.length, le), u32(origlen, le), pad(data)]), opts, le)
}
function spb(le: boolean, data: Buffer, origlen = data.length): Buffer {
  return blk(3, Buffer.concat([u32(origlen, le), pad(data)]), [], le)
}
function pb(le: boolean, ifid: number, drops: number, ticks: bigint, data: Buffer, opts: Opt[] = []): Buffer {
  return blk(2, Buffer.concat([u16(ifid, le), u16(drops, le), u32(Number(ticks >> 32n), le), u32(Number(ticks & 0xffffffffn), le), u32(data.length, le), u32(data.length, le), pad(data)]), opts, le)
}
function isb(le: boolean, ifid: number, ticks: bigint, opts: Opt[] = []): Buffer {
  return blk(5, Buffer.concat([u32(ifid, le), u32(Number(ticks >> 32n), le), u32(Number(ticks & 0xffffffffn), le)]), opts, le)
}
/** Classic pcap: header + records. */
function pcap(le: boolean, ns: boolean, linktype: number, recs: { sec: number; frac: number; data: Buffer; orig?: number }[], snaplen = 65535): Buffer {
  const head = Buffer.concat([u32(ns ? 0xa1b23c4d : 0xa1b2c3d4, le), u16(2, le), u16(4, le), u32(0, le), u32(0, le), u32(snaplen, le), u32(linktype, le)])
  return Buffer.concat([head, ...recs.map((r) => Buffer.concat([u32(r.sec, le), u32(r.frac, le), u32(r.data.length, le), u32(r.orig ?? r.data.length, le), r.data]))])
}

const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff))

function save(name: string, b: Buffer): string {
  const p = join(dir, name)
  writeFileSync(p, b)
  return p
}

/** The error a function throws (fails the test when it does not throw). */
function errorOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return new Error('did not throw')
}

async function itemsOfFile(path: string, chunkBytes?: number): Promise<PcapItem[]> {
  const out: PcapItem[] = []
  for await (const it of iteratePcapFile(path, chunkBytes === undefined ? {} : { chunkBytes })) out.push(it)
  return out
}

function captureOf(items: PcapItem[], size: number): PcapCapture {
  const c: PcapCapture = { format: 'pcapng', size, sections: [], interfaces: [], packets: [], stats: [], skipped: {} }
  for (const it of items) {
    if (it.kind === 'section') {
      c.sections.push(it.section)
      c.format = it.section.format
    } else if (it.kind === 'interface') c.interfaces.push(it.iface)
    else if (it.kind === 'packet') c.packets.push({ ...it.packet, data: Buffer.from(it.packet.data) })
    else if (it.kind === 'stats') c.stats.push(it.stats)
    else c.skipped[it.name] = (c.skipped[it.name] ?? 0) + 1
  }
  return c
}

/** What tshark says of each packet: number, epoch time (ns), cap_len, len, interface id, direction. */
function tsharkPackets(path: string): { number: number; ns: bigint; caplen: number; len: number; iface: number; dir: string }[] {
  const out = execFileSync('tshark', ['-r', path, '-T', 'fields', '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'frame.cap_len', '-e', 'frame.len', '-e', 'frame.interface_id', '-e', 'frame.packet_flags_direction'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [n, time, cap, len, iface, d] = l.split('\t')
      const [s, f = ''] = time!.split('.')
      const dv = d === undefined || d === '' ? 0 : Number(d)
      return { number: Number(n), ns: BigInt(s!) * 1_000_000_000n + BigInt(f.padEnd(9, '0').slice(0, 9)), caplen: Number(cap), len: Number(len), iface: iface === '' ? 0 : Number(iface), dir: dv === 1 ? 'in' : dv === 2 ? 'out' : '' }
    })
}

function capinfosCount(path: string): number {
  const out = execFileSync('capinfos', ['-c', '-M', '-T', '-r', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  return Number(out.trim().split('\t')[1])
}

/** The reader and tshark agree on every packet of the file. */
function agreesWithTshark(tt: Test, path: string, c: PcapCapture): void {
  const ts = tsharkPackets(path)
  tt.equal(capinfosCount(path), c.packets.length, 'capinfos counts as many packets')
  tt.equal(ts.length, c.packets.length, 'tshark lists as many packets')
  for (const [i, p] of c.packets.entries()) {
    const s = ts[i]!
    tt.same(
      { number: p.number, ns: p.tsNs ?? 0n, caplen: p.data.length, len: p.originalLength, iface: p.interfaceId, dir: p.dir ?? '' },
      s,
      `packet ${p.number} as tshark reads it`,
    )
  }
}

/* ------------------------------------------------------------------------------------------- */

t.test('round trip: what pcap/pcapng.ts writes reads back field for field', async (t) => {
  const T0 = 1_767_225_600_000_000n
  const file = Buffer.concat([
    fileHeader({ userappl: 'kairo-gw 0.1.0', os: 'Linux 6.1', hardware: 'rpi4', comment: 'capture of lora0, eth0' }, [
      { linktype: LINKTYPE.ETHERNET, name: 'eth0', description: 'raw NIC', filter: 'ether proto 0x88b5', comment: 'node 00112233445566778899aabbccddeeff' },
      { linktype: LINKTYPE.LORATAP, name: 'lora0', description: 'LoRa 868.1 MHz SF9' },
      { linktype: LINKTYPE.KAIRO_FB, name: 'lora0/bridge', snaplen: 512 },
    ]),
    enhancedPacketBlock({ interfaceId: 0, tsUs: T0 + 1n, data: bytes(60, 1), dir: 'in', comment: 'first' }),
    enhancedPacketBlock({ interfaceId: 1, tsUs: T0 + 2500n, data: bytes(33, 2), dir: 'out' }),
    enhancedPacketBlock({ interfaceId: 2, tsUs: T0 + 2600n, data: bytes(3, 3) }),
    enhancedPacketBlock({ interfaceId: 0, tsUs: T0 + 1_000_000n, data: bytes(64, 4), originalLength: 1500, dir: 'out' }),
    interfaceStatisticsBlock({ interfaceId: 0, tsUs: T0 + 2_000_000n, startUs: T0, endUs: T0 + 2_000_000n, received: 10n, dropped: 3n, comment: 'queue full 3 times' }),
    interfaceStatisticsBlock({ interfaceId: 1, tsUs: T0 + 2_000_000n, received: 1n, dropped: 0n }),
  ])
  const path = save('writer.pcapng', file)
  const c = readPcapng(file, { file: 'writer.pcapng' })
  t.equal(c.format, 'pcapng')
  t.equal(c.size, file.length)
  t.same(c.sections, [{ index: 0, offset: 0, format: 'pcapng', byteOrder: 'little', version: '1.0', sectionLength: null, userappl: 'kairo-gw 0.1.0', os: 'Linux 6.1', hardware: 'rpi4', comment: 'capture of lora0, eth0' }])
  t.same(
    c.interfaces.map((i) => ({ id: i.id, linktype: i.linktype, name: i.name, description: i.description, filter: i.filter, comment: i.comment, tsresol: i.tsresol, snaplen: i.snaplen })),
    [
      { id: 0, linktype: 1, name: 'eth0', description: 'raw NIC', filter: 'ether proto 0x88b5', comment: 'node 00112233445566778899aabbccddeeff', tsresol: 6, snaplen: 0 },
      { id: 1, linktype: 270, name: 'lora0', description: 'LoRa 868.1 MHz SF9', filter: undefined, comment: undefined, tsresol: 6, snaplen: 0 },
      { id: 2, linktype: 147, name: 'lora0/bridge', description: undefined, filter: undefined, comment: undefined, tsresol: 6, snaplen: 512 },
    ],
  )
  t.same(
    c.packets.map((p) => ({ number: p.number, interfaceId: p.interfaceId, tsUs: p.tsUs, data: p.data.toString('hex'), originalLength: p.originalLength, dir: p.dir, comment: p.comment })),
    [
      { number: 1, interfaceId: 0, tsUs: T0 + 1n, data: bytes(60, 1).toString('hex'), originalLength: 60, dir: 'in', comment: 'first' },
      { number: 2, interfaceId: 1, tsUs: T0 + 2500n, data: bytes(33, 2).toString('hex'), originalLength: 33, dir: 'out', comment: undefined },
      { number: 3, interfaceId: 2, tsUs: T0 + 2600n, data: bytes(3, 3).toString('hex'), originalLength: 3, dir: undefined, comment: undefined },
      { number: 4, interfaceId: 0, tsUs: T0 + 1_000_000n, data: bytes(64, 4).toString('hex'), originalLength: 1500, dir: 'out', comment: undefined },
    ],
  )
  t.same(c.stats, [
    { offset: c.stats[0]!.offset, interfaceId: 0, tsUs: T0 + 2_000_000n, startUs: T0, endUs: T0 + 2_000_000n, received: 10n, dropped: 3n, comment: 'queue full 3 times' },
    { offset: c.stats[1]!.offset, interfaceId: 1, tsUs: T0 + 2_000_000n, received: 1n, dropped: 0n },
  ])
  t.same(c.skipped, {})
  t.equal(c.packets[0]!.data.buffer, file.buffer, 'packet data is a view of the input, not a copy')
  // The same from disk, in chunks of every size from tiny to whole.
  for (const chunk of [24, 100, 4096, undefined]) t.same(captureOf(await itemsOfFile(path, chunk), file.length), { ...c, packets: c.packets.map((p) => ({ ...p, data: Buffer.from(p.data) })) }, `iteratePcapFile, chunk ${chunk ?? 'default'}`)
  t.same((await readPcapFile(path)).packets.length, 4)
  if (!needs(t, HAS_TSHARK, 'tshark and capinfos (apt-get install tshark)')) return
  agreesWithTshark(t, path, c)
})

t.test('pcapng: big-endian and little-endian sections, ns / 2^-n / offset timestamps, SPB, obsolete PB, skipped blocks', async (t) => {
  const be = false
  const le = true
  const file = Buffer.concat([
    // Section 0, big-endian: ns resolution, a 10 s offset.
    shb(be, [
      [4, str('hand-built BE')],
      [1, str('section one')],
      [1, str('second comment')],
    ]),
    idb(be, 1, [
      [2, str('be0')],
      [9, Buffer.from([9])],
      [14, u64(10n, be)],
      [11, Buffer.concat([Buffer.from([0]), str('udp port 47800')])],
    ]),
    blk(4, Buffer.concat([u16(1, be), u16(8, be), Buffer.from([10, 0, 0, 1]), str('gw\0\0'), Buffer.alloc(4)]), [], be), // Name Resolution
    epb(be, 0, 1_767_225_600_123_456_789n, bytes(42, 5), [[2, u32(1, be)], [4, u64(7n, be)]]),
    isb(be, 0, 1_767_225_601_000_000_000n, [
      [4, u64(100n, be)],
      [5, u64(4n, be)],
      [7, u64(1n, be)],
    ]),
    // Section 1, little-endian: two interfaces, 2^-10 s and the default µs; SPB on interface 0; PB.
    shb(le),
    idb(le, 101, [[9, Buffer.from([0x80 | 10])]], 128),
    idb(le, 270, [[2, str('lora1')]]),
    epb(le, 0, 1_809_650_319_360n /* 1767236640 s × 1024 */ + 512n, bytes(20, 6), [[2, u32(2, le)]]),
    spb(le, bytes(128, 7), 300), // cut to the interface's snaplen 128
    pb(le, 1, 3, 1_767_225_602_000_001n, bytes(17, 8), [[2, u32(1, le)]]),
    blk(0x0000000a, Buffer.concat([u32(0x544c534b, le), u32(4, le), str('keys')]), [], le), // Decryption Secrets
    blk(0x12345678, bytes(8, 9), [], le), // unknown
    epb(le, 1, 1_767_225_603_000_000n, bytes(5, 10), [[1, str('last')]]),
    blk(0x00000bad, Buffer.concat([u32(32473, le), str('data')]), [], le), // custom, last (tshark lists it as a frame)
  ])
  const path = save('mixed.pcapng', file)
  const c = readPcapng(file, { file: 'mixed.pcapng' })
  t.same(
    c.sections.map((s) => ({ byteOrder: s.byteOrder, userappl: s.userappl, comment: s.comment })),
    [
      { byteOrder: 'big', userappl: 'hand-built BE', comment: 'section one\nsecond comment' },
      { byteOrder: 'little', userappl: undefined, comment: undefined },
    ],
  )
  t.same(
    c.interfaces.map((i) => ({ id: i.id, section: i.section, sid: i.sectionInterfaceId, linktype: i.linktype, name: i.name, tsresol: i.tsresol, ups: i.unitsPerSecond, tsoffset: i.tsoffset, filter: i.filter, snaplen: i.snaplen })),
    [
      { id: 0, section: 0, sid: 0, linktype: 1, name: 'be0', tsresol: 9, ups: 1_000_000_000n, tsoffset: 10n, filter: 'udp port 47800', snaplen: 0 },
      { id: 1, section: 1, sid: 0, linktype: 101, name: undefined, tsresol: 0x8a, ups: 1024n, tsoffset: 0n, filter: undefined, snaplen: 128 },
      { id: 2, section: 1, sid: 1, linktype: 270, name: 'lora1', tsresol: 6, ups: 1_000_000n, tsoffset: 0n, filter: undefined, snaplen: 0 },
    ],
  )
  t.same(
    c.packets.map((p) => ({ n: p.number, block: p.block, i: p.interfaceId, us: p.tsUs, ns: p.tsNs, len: p.data.length, orig: p.originalLength, dir: p.dir, drop: p.dropCount, comment: p.comment })),
    [
      { n: 1, block: 'EPB', i: 0, us: 1_767_225_610_123_456n, ns: 1_767_225_610_123_456_789n, len: 42, orig: 42, dir: 'in', drop: 7n, comment: undefined },
      { n: 2, block: 'EPB', i: 1, us: 1_767_236_640_500_000n, ns: 1_767_236_640_500_000_000n, len: 20, orig: 20, dir: 'out', drop: undefined, comment: undefined },
      { n: 3, block: 'SPB', i: 1, us: null, ns: null, len: 128, orig: 300, dir: undefined, drop: undefined, comment: undefined },
      { n: 4, block: 'PB', i: 2, us: 1_767_225_602_000_001n, ns: 1_767_225_602_000_001_000n, len: 17, orig: 17, dir: 'in', drop: 3n, comment: undefined },
      { n: 5, block: 'EPB', i: 2, us: 1_767_225_603_000_000n, ns: 1_767_225_603_000_000_000n, len: 5, orig: 5, dir: undefined, drop: undefined, comment: 'last' },
    ],
  )
  t.same(c.packets[2]!.data, bytes(128, 7))
  t.same(c.stats.map((s) => ({ i: s.interfaceId, us: s.tsUs, received: s.received, dropped: s.dropped, os: s.osDropped })), [{ i: 0, us: 1_767_225_611_000_000n, received: 100n, dropped: 4n, os: 1n }])
  t.same(c.skipped, { 'Name Resolution': 1, 'Decryption Secrets': 1, 'Custom (copiable)': 1, 'unknown type 0x12345678': 1 })
  t.same(captureOf(await itemsOfFile(path, 64), file.length), { ...c, packets: c.packets.map((p) => ({ ...p, data: Buffer.from(p.data) })) }, 'the file reader agrees')
  if (!needs(t, HAS_TSHARK, 'tshark and capinfos (apt-get install tshark)')) return
  // tshark gives an SPB no time (0) and does not know the PB's flags as direction: compare the rest.
  // capinfos counts 5 packets; tshark 4 also lists the custom block as a frame (6th). It is not a
  // packet: the reader skips it.
  const ts = tsharkPackets(path)
  t.equal(capinfosCount(path), 5)
  t.equal(ts.length, 6)
  ts.pop()
  t.same(
    ts.map((p) => [p.number, p.caplen, p.len, p.iface]),
    c.packets.map((p) => [p.number, p.data.length, p.originalLength, c.interfaces[p.interfaceId]!.sectionInterfaceId]),
    'tshark: numbers, lengths and (section) interface ids',
  )
  t.same([ts[0]!.ns, ts[1]!.ns, ts[4]!.ns], [c.packets[0]!.tsNs, c.packets[1]!.tsNs, c.packets[4]!.tsNs], 'tshark: the ns, 2^-10 and µs timestamps, with if_tsoffset')
})

t.test('classic pcap: both byte orders, µs and ns; the 1-interface, 1-section view', async (t) => {
  const recs = [
    { sec: 1_767_225_600, frac: 1, data: bytes(60, 1) },
    { sec: 1_767_225_601, frac: 999_999, data: bytes(10, 2), orig: 1514 },
  ]
  for (const [le, ns] of [
    [true, false],
    [false, false],
    [true, true],
    [false, true],
  ] as const) {
    const r = ns ? recs.map((x) => ({ ...x, frac: x.frac * 1000 + 7 })) : recs
    const file = pcap(le, ns, 270, r)
    const name = `classic-${le ? 'le' : 'be'}-${ns ? 'ns' : 'us'}.pcap`
    const path = save(name, file)
    const c = readPcapng(file, { file: name })
    t.equal(c.format, 'pcap', name)
    t.same(c.sections.map((s) => [s.byteOrder, s.version]), [[le ? 'little' : 'big', '2.4']])
    t.same(c.interfaces.map((i) => [i.linktype, i.tsresol, i.snaplen]), [[270, ns ? 9 : 6, 65535]])
    t.same(
      c.packets.map((p) => [p.number, p.block, p.tsUs, p.tsNs, p.data.toString('hex'), p.originalLength]),
      [
        [1, 'record', 1_767_225_600_000_001n, ns ? 1_767_225_600_000_001_007n : 1_767_225_600_000_001_000n, bytes(60, 1).toString('hex'), 60],
        [2, 'record', 1_767_225_601_999_999n, ns ? 1_767_225_601_999_999_007n : 1_767_225_601_999_999_000n, bytes(10, 2).toString('hex'), 1514],
      ],
      name,
    )
    t.same(captureOf(await itemsOfFile(path, 30), file.length), { ...c, packets: c.packets.map((p) => ({ ...p, data: Buffer.from(p.data) })) }, `${name}: the file reader agrees`)
    if (HAS_TSHARK) agreesWithTshark(t, path, c)
  }
  needs(t, HAS_TSHARK, 'tshark and capinfos (apt-get install tshark)')
})

t.test('files written by Wireshark tools (editcap, mergecap) read as tshark reads them', async (t) => {
  if (!needs(t, HAS_TSHARK && hasCommand('editcap', ['--version']) && hasCommand('mergecap', ['--version']), 'editcap, mergecap, tshark (apt-get install tshark)')) return
  const T0 = 1_767_225_600_000_000n
  const a = save(
    'tool-a.pcapng',
    Buffer.concat([
      fileHeader({ userappl: 'kairo-gw test' }, [{ linktype: LINKTYPE.ETHERNET, name: 'eth0' }, { linktype: LINKTYPE.LORATAP, name: 'lora0' }]),
      ...Array.from({ length: 20 }, (_, i) => enhancedPacketBlock({ interfaceId: i % 2, tsUs: T0 + BigInt(i * 1000), data: bytes(20 + i, i), dir: i % 3 === 0 ? 'in' : 'out', ...(i === 4 ? { comment: 'a comment' } : {}) })),
    ]),
  )
  const eth = save('tool-eth.pcapng', Buffer.concat([fileHeader({}, [{ linktype: LINKTYPE.ETHERNET, name: 'eth1' }]), ...Array.from({ length: 7 }, (_, i) => enhancedPacketBlock({ interfaceId: 0, tsUs: T0 + 500n + BigInt(i * 3000), data: bytes(64, 50 + i) }))]))
  const outs: [string, string[]][] = [
    ['tool-rewritten.pcapng', ['editcap', '-F', 'pcapng', a]],
    ['tool-eth.pcap', ['editcap', '-F', 'pcap', eth]],
    ['tool-eth-ns.pcap', ['editcap', '-F', 'nsecpcap', eth]],
    ['tool-snap.pcapng', ['editcap', '-s', '16', a]],
    ['tool-merged.pcapng', ['mergecap', '-w', '-', a, eth]],
  ]
  for (const [name, [cmd, ...args]] of outs) {
    const path = join(dir, name)
    if (cmd === 'mergecap') writeFileSync(path, execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] }))
    else execFileSync(cmd!, [...args, path], { stdio: 'ignore' })
    const c = await readPcapFile(path)
    t.ok(c.packets.length > 0, `${name}: ${c.packets.length} packets`)
    agreesWithTshark(t, path, c)
    t.same(captureOf(await itemsOfFile(path, 50), c.size), { ...c, packets: c.packets.map((p) => ({ ...p, data: Buffer.from(p.data) })) }, `${name}: the file reader agrees`)
  }
  const merged = await readPcapFile(join(dir, 'tool-merged.pcapng'))
  t.equal(merged.packets.length, 27)
  t.same(merged.packets.find((p) => p.comment !== undefined)?.comment, 'a comment', 'comments survive editcap/mergecap')
  const snap = await readPcapFile(join(dir, 'tool-snap.pcapng'))
  t.ok(snap.packets.every((p) => p.data.length <= 16 && p.originalLength >= p.data.length), 'snap length: captured ≤ 16 bytes, original kept')
})

function pcapVersion3(): Buffer {
  const b = pcap(true, true, 1, [])
  b.writeUInt16LE(3, 4)
  return b
}

t.test('bad files: one PcapFormatError naming the file, the offset, the block and what is wrong', async (t) => {
  const good = Buffer.concat([fileHeader({ userappl: 'x' }, [{ linktype: 1, name: 'eth0' }, { linktype: 270, name: 'lora0' }]), enhancedPacketBlock({ interfaceId: 0, tsUs: 1n, data: bytes(40, 1), dir: 'in' })])
  const shbLen = sectionHeaderBlock({ userappl: 'x' }).length
  const idbLen = interfaceDescriptionBlock({ linktype: 1, name: 'eth0' }).length + interfaceDescriptionBlock({ linktype: 270, name: 'lora0' }).length
  const epbAt = shbLen + idbLen
  const mut = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good)
    f(b)
    return b
  }
  const cases: [string, Buffer, string, { offset?: number; truncated?: boolean }][] = [
    ['empty', Buffer.alloc(0), 'f: is empty (0 bytes): not a pcapng or pcap file', {}],
    ['an ELF binary', Buffer.from('7f454c46020101000000', 'hex'), 'f: is not a pcapng or pcap file: starts with 7f 45 4c 46', {}],
    ['text', Buffer.from('hello world\n'), 'f: is not a pcapng or pcap file: starts with 68 65 6c 6c', {}],
    ['two bytes of junk', Buffer.from('ab'), 'f: is 2 bytes long, not a pcapng or pcap file: starts with 61 62', {}],
    ['gzip', Buffer.from('1f8b0800000000000003', 'hex'), 'f: is gzip-compressed, not a pcapng or pcap file: decompress it first (gunzip)', {}],
    ['3 bytes of an SHB', good.subarray(0, 3), 'f: block at offset 0 is only 3 bytes long, cut inside its first block header: the file is truncated', { offset: 0, truncated: true }],
    ['cut inside the SHB', good.subarray(0, 20), `f: block at offset 0 (Section Header) claims ${shbLen} bytes but only 20 remain: the file is truncated`, { offset: 0, truncated: true }],
    ['cut in the EPB', good.subarray(0, epbAt + 50), `f: block at offset ${epbAt} (Enhanced Packet) claims 84 bytes but only 50 remain: the file is truncated`, { offset: epbAt, truncated: true }],
    ['cut in a block header', good.subarray(0, epbAt + 6), `f: block at offset ${epbAt} (Enhanced Packet) is cut short: only 6 bytes remain, a block header needs 8: the file is truncated`, { offset: epbAt, truncated: true }],
    ['trailing length', mut((b) => b.writeUInt32LE(68, b.length - 4)), `f: block at offset ${epbAt} (Enhanced Packet) has trailing length 68, which does not match its leading length 84`, { offset: epbAt }],
    ['length not a multiple of 4', mut((b) => b.writeUInt32LE(70, epbAt + 4)), `f: block at offset ${epbAt} (Enhanced Packet) claims 70 bytes, which is not a multiple of 4`, { offset: epbAt }],
    ['length below the minimum', mut((b) => b.writeUInt32LE(28, epbAt + 4)), `f: block at offset ${epbAt} (Enhanced Packet) claims 28 bytes, fewer than the minimum of 32 for this block type`, { offset: epbAt }],
    ['huge length', mut((b) => b.writeUInt32LE(0xfffffffc, epbAt + 4)), `f: block at offset ${epbAt} (Enhanced Packet) claims 4294967292 bytes, more than the ${MAX_BLOCK_BYTES} this reader accepts for one block: its length field is corrupt`, { offset: epbAt }],
    ['interface 3 of 2', mut((b) => b.writeUInt32LE(3, epbAt + 8)), `f: block at offset ${epbAt} (Enhanced Packet) references interface 3 but only 2 are defined in its section (by Interface Description Blocks before it)`, { offset: epbAt }],
    ['captured length beyond the block', mut((b) => b.writeUInt32LE(53, epbAt + 20)), `f: block at offset ${epbAt} (Enhanced Packet) has captured length 53 but only 52 bytes of the block follow its header`, { offset: epbAt }],
    ['captured > original', mut((b) => b.writeUInt32LE(39, epbAt + 24)), `f: block at offset ${epbAt} (Enhanced Packet) has captured length 40, larger than its original packet length 39`, { offset: epbAt }],
    ['direction 11', mut((b) => b.writeUInt32LE(3, epbAt + 72)), `f: block at offset ${epbAt} (Enhanced Packet) has epb_flags 0x00000003 (at offset ${epbAt + 68}) with direction bits 11, which pcapng does not define`, { offset: epbAt }],
    ['option past the block', mut((b) => b.writeUInt16LE(200, epbAt + 70)), `f: block at offset ${epbAt} (Enhanced Packet) has epb_flags at offset ${epbAt + 68} claiming 200 bytes, but only 8 remain in the block`, { offset: epbAt }],
    ['epb_flags of 2 bytes', mut((b) => b.writeUInt16LE(2, epbAt + 70)), `f: block at offset ${epbAt} (Enhanced Packet) has epb_flags at offset ${epbAt + 68} of 2 bytes (must be 4)`, { offset: epbAt }],
    ['bytes after opt_endofopt', mut((b) => b.writeUInt16LE(0, epbAt + 68)), `f: block at offset ${epbAt} (Enhanced Packet) has opt_endofopt at offset ${epbAt + 68} with length 4 (must be 0)`, { offset: epbAt }],
    ['bad byte-order magic', mut((b) => b.writeUInt32LE(0x11223344, 8)), 'f: block at offset 0 (Section Header) has byte-order magic 44 33 22 11, which is neither 4d 3c 2b 1a (little-endian) nor 1a 2b 3c 4d (big-endian)', { offset: 0 }],
    ['pcapng version 2', mut((b) => b.writeUInt16LE(2, 12)), 'f: block at offset 0 (Section Header) has version 2.0; this reader knows pcapng version 1', { offset: 0 }],
    ['an EPB before any IDB', Buffer.concat([sectionHeaderBlock(), enhancedPacketBlock({ interfaceId: 0, tsUs: 0n, data: bytes(4, 0) })]), `f: block at offset 28 (Enhanced Packet) references interface 0 but no interface is defined in its section (by Interface Description Blocks before it)`, { offset: 28 }],
    ['if_tsresol of 2 bytes', Buffer.concat([shb(true), idb(true, 1, [[9, Buffer.from([6, 0])]])]), 'f: block at offset 28 (Interface Description) has if_tsresol at offset 44 of 2 bytes (must be 1)', { offset: 28 }],
    ['SPB without an interface', Buffer.concat([shb(true), spb(true, bytes(4, 0))]), 'f: block at offset 28 (Simple Packet) references interface 0 but no interface is defined in its section (by Interface Description Blocks before it)', { offset: 28 }],
    ['section length that is not where the file ends', Buffer.concat([shb(true, [], 100n), idb(true, 1)]), 'f: block at offset 0 (Section Header) says its section runs to offset 128, but the file ends at offset 48: the file is truncated', { offset: 0, truncated: true }],
    ['a block past the section length', Buffer.concat([shb(true, [], 20n), idb(true, 1), idb(true, 1)]), 'f: block at offset 48 (Interface Description) of 20 bytes runs past the end of its section (offset 48, from the section length in the Section Header Block at offset 0)', { offset: 48 }],
    ['pcap: cut in the header', pcap(true, false, 1, []).subarray(0, 10), 'f: pcap file header at offset 0 is cut short: only 10 bytes remain of its 24: the file is truncated', { offset: 0, truncated: true }],
    ['pcap: cut in a record', pcap(true, false, 1, [{ sec: 1, frac: 0, data: bytes(50, 0) }]).subarray(0, 24 + 30), 'f: pcap record at offset 24 (packet 1) claims 66 bytes but only 30 remain: the file is truncated', { offset: 24, truncated: true }],
    ['pcap: usec out of range', pcap(false, false, 1, [{ sec: 1, frac: 1_000_000, data: bytes(5, 0) }]), 'f: pcap record at offset 24 (packet 1) has microsecond field 1000000, not below 1000000', { offset: 24 }],
    ['pcap: version 3', pcapVersion3(), 'f: pcap file header at offset 0 has version 3.4; this reader knows pcap version 2', { offset: 0 }],
    ['modified pcap', Buffer.from('34cdb2a1', 'hex'), 'f: is a "modified" (Kuznetsov) pcap file, which this reader does not support: convert it with `editcap -F pcapng`', {}],
  ]
  for (const [what, b, message, where] of cases) {
    const err = errorOf(() => readPcapng(b, { file: 'f' }))
    t.type(err, PcapFormatError, what)
    const e = err as PcapFormatError
    t.equal(e.message, message, what)
    t.notOk(e.message.includes('\n'), `${what}: one line`)
    t.equal(e.file, 'f')
    t.equal(e.offset, where.offset, `${what}: offset`)
    t.equal(e.truncated, where.truncated ?? false, `${what}: truncated`)
    // The file reader says the same, in small chunks and whole.
    const path = save(`bad-${what.replace(/\W+/g, '-')}`, b)
    for (const chunk of [24, undefined]) {
      const ferr = await itemsOfFile(path, chunk).then(
        () => new Error('did not throw'),
        (x: unknown) => x,
      )
      t.equal((ferr as Error).message, message.replace(/^f:/, `${path}:`), `${what}: iteratePcapFile (chunk ${chunk ?? 'default'})`)
    }
  }
})

t.test('a cut exactly between blocks is a valid shorter file; inside a block it is an error', async (t) => {
  const head = fileHeader({}, [{ linktype: 1, name: 'eth0' }])
  const blocks = [enhancedPacketBlock({ interfaceId: 0, tsUs: 5n, data: bytes(9, 0) }), enhancedPacketBlock({ interfaceId: 0, tsUs: 6n, data: bytes(1, 1) })]
  const file = Buffer.concat([head, ...blocks])
  t.equal(readPcapng(file.subarray(0, head.length)).packets.length, 0)
  t.equal(readPcapng(file.subarray(0, head.length + blocks[0]!.length)).packets.length, 1)
  t.equal(readPcapng(file.subarray(0, 28)).interfaces.length, 0, 'just the SHB: no interfaces, no packets')
  const err = errorOf(() => readPcapng(file.subarray(0, head.length + blocks[0]!.length + 12), { file: 'cut.pcapng' })) as PcapFormatError
  t.match(err, { name: 'PcapFormatError', truncated: true, offset: head.length + blocks[0]!.length })
})

t.test('the file reader: missing file, directory, and bounded reads', async (t) => {
  const missing = join(dir, 'nope.pcapng')
  const e1 = await itemsOfFile(missing).catch((e: unknown) => e)
  t.type(e1, PcapFileError)
  t.equal((e1 as Error).message, `${missing}: no such file or directory`)
  const sub = join(dir, 'a-directory')
  mkdirSync(sub)
  const e2 = await readPcapFile(sub).catch((e: unknown) => e)
  t.type(e2, PcapFileError)
  t.equal((e2 as Error).message, `${sub}: is a directory, not a capture file`)
  // A length field of 16 MiB in a 100-byte file: the truncation is found before anything is read.
  const b = Buffer.concat([sectionHeaderBlock(), Buffer.alloc(72)])
  b.writeUInt32LE(6, 28)
  b.writeUInt32LE(MAX_BLOCK_BYTES, 32)
  const path = save('huge-claim.pcapng', b)
  const before = process.memoryUsage().arrayBuffers
  const e3 = await itemsOfFile(path, 64).catch((e: unknown) => e)
  t.equal((e3 as Error).message, `${path}: block at offset 28 (Enhanced Packet) claims ${MAX_BLOCK_BYTES} bytes but only 72 remain: the file is truncated`)
  t.ok(process.memoryUsage().arrayBuffers - before < MAX_BLOCK_BYTES / 2, 'no buffer of the claimed size was allocated')
  // Many packets in small chunks: every packet, in order, data intact.
  const many = Buffer.concat([fileHeader({}, [{ linktype: 1, name: 'eth0' }]), ...Array.from({ length: 500 }, (_, i) => enhancedPacketBlock({ interfaceId: 0, tsUs: BigInt(i), data: bytes(i % 97, i) }))])
  const mpath = save('many.pcapng', many)
  const items = await itemsOfFile(mpath, 256)
  const pk = items.flatMap((it) => (it.kind === 'packet' ? [it.packet] : []))
  t.equal(pk.length, 500)
  t.ok(
    pk.every((p, i) => p.number === i + 1 && p.tsUs === BigInt(i) && p.data.equals(bytes(i % 97, i))),
    'all 500 packets, in order, with their bytes',
  )
  t.same(readFileSync(mpath), many)
})

t.test('link type names', async (t) => {
  t.equal(linktypeName(1), 'ETHERNET')
  t.equal(linktypeName(270), 'LORATAP')
  t.equal(linktypeName(147), 'USER0 (kairo-gw firmware-bridge)')
  t.equal(linktypeName(150), 'USER3')
  t.equal(linktypeName(9999), 'LINKTYPE 9999')
})

