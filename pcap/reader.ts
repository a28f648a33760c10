/**
 * A strict reader of capture files: pcapng (draft-ietf-opsawg-pcapng, either byte order, any
 * number of sections) and classic pcap (either byte order, microsecond or nanosecond
 * timestamps). Project code that takes a capture file reads it through here (today
 * `kairo-gw pcap inspect` and the generate tests), so a bad file gets the same clear error
 * everywhere.
 *
 *   readPcapng(bytes, {file})      the whole file in memory → {sections, interfaces, packets, stats}
 *   iteratePcapBytes(bytes, {file}) the same, one item at a time (sync generator)
 *   iteratePcapFile(path)          from disk in chunks, bounded memory (async generator)
 *   readPcapFile(path)             readPcapng of a whole file
 *
 * pcapng blocks read: Section Header (SHB), Interface Description (IDB), Enhanced Packet (EPB),
 * Simple Packet (SPB), the obsolete Packet Block (PB) and Interface Statistics (ISB), with the
 * options that matter (comments; if_name, if_description, if_tsresol in both its power-of-10 and
 * power-of-2 forms, if_tsoffset, if_filter, if_os, if_hardware; epb_flags direction,
 * epb_dropcount; the ISB counters). Name Resolution, Decryption Secrets, custom and unknown
 * blocks are framed, checked and skipped (counted in `skipped`).
 *
 * Strict: anything that does not follow the format is a `PcapFormatError` whose message names the
 * file, the byte offset and the block at fault and says what is wrong, e.g.
 *
 *   capture.pcapng: block at offset 1284 (Enhanced Packet) claims 65540 bytes but only 212 remain: the file is truncated
 *
 * It is the only error the parsers throw on any input (fuzzed by test/pcap/reader-fuzz.test.ts),
 * and no length field can make them allocate more than the file holds: the in-memory readers
 * only take views of the input, and the file reader reads at most one block (≤ MAX_BLOCK_BYTES)
 * beyond its chunk. Opening or reading the file itself fails with `PcapFileError`.
 *
 * Truncation. pcapng has no end marker, so a file cut exactly between two blocks is a valid,
 * shorter capture and reads as such (the cut cannot be seen — unless its Section Header Block
 * gives the section's length, which kairo-gw does not write: then it is an error). A file cut
 * inside a block (or inside a classic pcap record) is a `PcapFormatError` that says "the file is
 * truncated" and names the offset of the cut block. A capture still being written can thus end
 * in a truncated block: read it after the capture stopped.
 *
 * Packet numbers (`number`) count from 1 over the whole file, as Wireshark's frame numbers do.
 * Interfaces are numbered over the whole file too (`interfaceId` indexes `interfaces`); the
 * pcapng Interface ID within its section is `sectionInterfaceId`.
 */
import { open, type FileHandle } from 'node:fs/promises'

/** The largest block (or pcap record) accepted: a larger length field is corruption. */
export const MAX_BLOCK_BYTES = 16 * 1024 * 1024
/** Bytes the file reader reads at once. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024

const SHB_TYPE = 0x0a0d0d0a
const BOM = 0x1a2b3c4d
const BOM_SWAPPED = 0x4d3c2b1a
const PCAP_US = 0xa1b2c3d4
const PCAP_NS = 0xa1b23c4d
const PCAP_MODIFIED = 0xa1b2cd34
const PCAP_HEADER_BYTES = 24
const PCAP_RECORD_HEADER_BYTES = 16
/** Enough bytes to frame any unit (the pcap header is the largest). */
const HEAD_BYTES = PCAP_HEADER_BYTES

/** pcapng block types the reader names (tcpdump.org/pcapng, IANA registry draft). */
export const BLOCK_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [SHB_TYPE]: 'Section Header',
  0x00000001: 'Interface Description',
  0x00000002: 'Packet (obsolete)',
  0x00000003: 'Simple Packet',
  0x00000004: 'Name Resolution',
  0x00000005: 'Interface Statistics',
  0x00000006: 'Enhanced Packet',
  0x00000007: 'IRIG Timestamp',
  0x00000008: 'ARINC 429',
  0x00000009: 'systemd Journal Export',
  0x0000000a: 'Decryption Secrets',
  0x00000bad: 'Custom (copiable)',
  0x40000bad: 'Custom (not copiable)',
})

export function blockName(type: number): string {
  return BLOCK_NAMES[type] ?? `unknown type 0x${(type >>> 0).toString(16).padStart(8, '0')}`
}

/** Smallest total length of the blocks the reader decodes. */
const MIN_BLOCK: Readonly<Record<number, number>> = { [SHB_TYPE]: 28, 1: 20, 2: 32, 3: 16, 5: 24, 6: 32 }

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                       */

/** Where in the file a format error is. */
export interface PcapErrorLocation {
  offset?: number
  /** 'Enhanced Packet', 'pcap file header', ... */
  block?: string
}

/**
 * The capture file does not follow the format. `message` is one line:
 * `FILE: block at offset N (BLOCK) REASON` (or `FILE: REASON` for the file as a whole).
 */
export class PcapFormatError extends Error {
  override readonly name = 'PcapFormatError'
  readonly file: string
  /** Byte offset of the block (or record) at fault; undefined when the file as a whole is. */
  readonly offset: number | undefined
  readonly block: string | undefined
  /** What is wrong, without the file and location. */
  readonly reason: string
  /** The file ends inside a block (it was cut short). */
  readonly truncated: boolean

  constructor(file: string, reason: string, where: PcapErrorLocation = {}, truncated = false) {
    super(`${file}: ${locationText(where)}${reason}`)
    this.file = file
    this.offset = where.offset
    this.block = where.block
    this.reason = reason
    this.truncated = truncated
  }
}

/** 'block at offset N (Enhanced Packet) ', 'pcap record at offset N ', or ''. */
function locationText(w: PcapErrorLocation): string {
  if (w.offset === undefined) return ''
  if (w.block?.startsWith('pcap ')) return `${w.block} at offset ${w.offset} `
  return `block at offset ${w.offset}${w.block === undefined ? '' : ` (${w.block})`} `
}

/** The capture file cannot be opened or read (no such file, a directory, permissions). */
export class PcapFileError extends Error {
  override readonly name = 'PcapFileError'
  readonly file: string
  readonly code: string | undefined
  constructor(file: string, reason: string, code?: string) {
    super(`${file}: ${reason}`)
    this.file = file
    this.code = code
  }
}

/** True for the two errors the readers throw. */
export function isPcapError(err: unknown): err is PcapFormatError | PcapFileError {
  return err instanceof PcapFormatError || err instanceof PcapFileError
}

/* ------------------------------------------------------------------------------------------ */
/* What the readers return                                                                      */

export type CaptureFormat = 'pcapng' | 'pcap'

export interface PcapSection {
  /** 0-based, in file order. */
  index: number
  offset: number
  format: CaptureFormat
  byteOrder: 'little' | 'big'
  /** '1.0' for pcapng, '2.4' for pcap. */
  version: string
  /** pcapng section length when the SHB gives it (not -1); null otherwise. */
  sectionLength: bigint | null
  hardware?: string
  os?: string
  userappl?: string
  comment?: string
}

export interface PcapInterface {
  /** Index in the file's `interfaces` (what packets' `interfaceId` refers to). */
  id: number
  /** Index of its section. */
  section: number
  /** pcapng Interface ID within its section (0 for pcap). */
  sectionInterfaceId: number
  offset: number
  linktype: number
  /** 0 = no limit. */
  snaplen: number
  name?: string
  description?: string
  comment?: string
  /** if_tsresol as written (6 when absent: µs; 9 ns; 0x80|n is 2^-n). */
  tsresol: number
  /** Timestamp units per second that tsresol stands for. */
  unitsPerSecond: bigint
  /** if_tsoffset, seconds added to every timestamp (0 when absent). */
  tsoffset: bigint
  /** if_filter: the libpcap filter string, or `(BPF program, N bytes)`, `(filter type T, N bytes)`. */
  filter?: string
  os?: string
  hardware?: string
  fcslen?: number
}

export interface PcapPacket {
  /** 1-based over the whole file, like Wireshark's frame number. */
  number: number
  offset: number
  /** The block type it came from. */
  block: 'EPB' | 'SPB' | 'PB' | 'record'
  interfaceId: number
  /** Microseconds since the epoch (if_tsoffset included); null for a Simple Packet Block (no timestamp). */
  tsUs: bigint | null
  /** Nanoseconds since the epoch, as far as the resolution goes; null like tsUs. */
  tsNs: bigint | null
  /** The captured bytes: a view into the input (readPcapng) or the chunk read (iteratePcapFile). */
  data: Buffer
  /** Length on the medium (≥ data.length). */
  originalLength: number
  /** epb_flags / pack_flags direction bits. */
  dir?: 'in' | 'out'
  /** epb_flags (or pack_flags) as written. */
  flags?: number
  /** epb_dropcount, or the PB's drops count. */
  dropCount?: bigint
  comment?: string
}

export interface PcapInterfaceStats {
  offset: number
  interfaceId: number
  tsUs: bigint
  startUs?: bigint
  endUs?: bigint
  /** isb_ifrecv */
  received?: bigint
  /** isb_ifdrop */
  dropped?: bigint
  /** isb_filteraccept */
  filterAccepted?: bigint
  /** isb_osdrop */
  osDropped?: bigint
  /** isb_usrdeliv */
  delivered?: bigint
  comment?: string
}

export type PcapItem =
  | { kind: 'section'; section: PcapSection }
  | { kind: 'interface'; iface: PcapInterface }
  | { kind: 'packet'; packet: PcapPacket }
  | { kind: 'stats'; stats: PcapInterfaceStats }
  | { kind: 'skipped'; offset: number; type: number; name: string }

export interface PcapCapture {
  format: CaptureFormat
  /** File size, bytes. */
  size: number
  sections: PcapSection[]
  interfaces: PcapInterface[]
  packets: PcapPacket[]
  stats: PcapInterfaceStats[]
  /** Blocks framed and skipped, by name (Name Resolution, Decryption Secrets, custom, unknown). */
  skipped: Record<string, number>
}

export interface ReadOptions {
  /** Names the file in error messages (default '(buffer)'). */
  file?: string
}

/* ------------------------------------------------------------------------------------------ */
/* The decoder: frames units (blocks, pcap records) and decodes them, shared by every driver   */

const pad4 = (n: number): number => (4 - (n % 4)) % 4

function hexStart(b: Uint8Array, n: number): string {
  return Array.from(b.subarray(0, n), (x) => x.toString(16).padStart(2, '0')).join(' ')
}

/** Text option values: UTF-8, trailing NULs (some writers add one) removed. */
function text(v: Buffer): string {
  let end = v.length
  while (end > 0 && v[end - 1] === 0) end--
  return v.toString('utf8', 0, end)
}

interface SectionState {
  section: PcapSection
  le: boolean
  /** File-wide ids of this section's interfaces, by section interface id. */
  interfaces: PcapInterface[]
  /** Offset where the section must end (SHB section length), or undefined. */
  end: number | undefined
}

const OPTION_NAMES: Readonly<Record<string, Readonly<Record<number, string>>>> = {
  'Section Header': { 2: 'shb_hardware', 3: 'shb_os', 4: 'shb_userappl' },
  'Interface Description': {
    2: 'if_name',
    3: 'if_description',
    4: 'if_IPv4addr',
    5: 'if_IPv6addr',
    6: 'if_MACaddr',
    7: 'if_EUIaddr',
    8: 'if_speed',
    9: 'if_tsresol',
    10: 'if_tzone',
    11: 'if_filter',
    12: 'if_os',
    13: 'if_fcslen',
    14: 'if_tsoffset',
    15: 'if_hardware',
  },
  'Enhanced Packet': { 2: 'epb_flags', 3: 'epb_hash', 4: 'epb_dropcount', 5: 'epb_packetid', 6: 'epb_queue', 7: 'epb_verdict' },
  'Packet (obsolete)': { 2: 'pack_flags', 3: 'pack_hash' },
  'Interface Statistics': { 2: 'isb_starttime', 3: 'isb_endtime', 4: 'isb_ifrecv', 5: 'isb_ifdrop', 6: 'isb_filteraccept', 7: 'isb_osdrop', 8: 'isb_usrdeliv' },
}

/** Fixed lengths of the options the reader uses. */
const OPTION_LENGTHS: Readonly<Record<string, number>> = {
  if_tsresol: 1,
  if_fcslen: 1,
  if_tsoffset: 8,
  epb_flags: 4,
  pack_flags: 4,
  epb_dropcount: 8,
  isb_starttime: 8,
  isb_endtime: 8,
  isb_ifrecv: 8,
  isb_ifdrop: 8,
  isb_filteraccept: 8,
  isb_osdrop: 8,
  isb_usrdeliv: 8,
}

function optionName(block: string, code: number): string {
  if (code === 0) return 'opt_endofopt'
  if (code === 1) return 'opt_comment'
  return OPTION_NAMES[block]?.[code] ?? `option ${code}`
}

/**
 * Decodes a capture unit by unit: `frame()` says how long the unit at an offset is (given its
 * first bytes), `decode()` decodes it, `end()` checks the end of the file. Throws only
 * PcapFormatError. Drivers: iteratePcapBytes (in memory) and iteratePcapFile (chunks).
 */
class Decoder {
  format: CaptureFormat | undefined
  private pcapNs = false
  private pcapLe = true
  private section: SectionState | undefined
  private readonly sections: PcapSection[] = []
  private readonly interfaces: PcapInterface[] = []
  private packetNumber = 0

  constructor(
    readonly file: string,
    readonly size: number,
  ) {}

  fail(reason: string, where: PcapErrorLocation = {}, truncated = false): PcapFormatError {
    return new PcapFormatError(this.file, reason, where, truncated)
  }

  /** Length of the unit at `offset`; `head` holds its first min(HEAD_BYTES, size - offset) bytes. */
  frame(offset: number, head: Buffer): number {
    const remaining = this.size - offset
    if (offset === 0) this.sniff(head)
    return this.format === 'pcap' ? this.framePcap(offset, head, remaining) : this.frameBlock(offset, head, remaining)
  }

  /** Decides the format from the first bytes. */
  private sniff(head: Buffer): void {
    if (this.size === 0) throw this.fail('is empty (0 bytes): not a pcapng or pcap file')
    const magics = [
      [0x0a, 0x0d, 0x0d, 0x0a],
      [0xd4, 0xc3, 0xb2, 0xa1],
      [0xa1, 0xb2, 0xc3, 0xd4],
      [0x4d, 0x3c, 0xb2, 0xa1],
      [0xa1, 0xb2, 0x3c, 0x4d],
    ]
    if (head.length < 4) {
      if (magics.some((m) => head.every((b, i) => b === m[i]))) {
        throw this.fail(`is only ${head.length} byte${head.length === 1 ? '' : 's'} long, cut inside its first block header: the file is truncated`, { offset: 0 }, true)
      }
      throw this.fail(`is ${head.length} byte${head.length === 1 ? '' : 's'} long, not a pcapng or pcap file: starts with ${hexStart(head, 4)}`)
    }
    const le = head.readUInt32LE(0)
    const be = head.readUInt32BE(0)
    if (le === SHB_TYPE) {
      this.format = 'pcapng'
      return
    }
    for (const [v, isLe] of [
      [le, true],
      [be, false],
    ] as const) {
      if (v === PCAP_US || v === PCAP_NS) {
        this.format = 'pcap'
        this.pcapNs = v === PCAP_NS
        this.pcapLe = isLe
        return
      }
      if (v === PCAP_MODIFIED) throw this.fail('is a "modified" (Kuznetsov) pcap file, which this reader does not support: convert it with `editcap -F pcapng`')
    }
    if (head[0] === 0x1f && head[1] === 0x8b) throw this.fail('is gzip-compressed, not a pcapng or pcap file: decompress it first (gunzip)')
    throw this.fail(`is not a pcapng or pcap file: starts with ${hexStart(head, 4)}`)
  }

  /* ---------------------------------------------------------------- pcapng framing */

  private frameBlock(offset: number, head: Buffer, remaining: number): number {
    const s = this.section
    if (remaining < 8) {
      const type = remaining < 4 ? undefined : head.readUInt32LE(0) === SHB_TYPE || s === undefined || s.le ? head.readUInt32LE(0) : head.readUInt32BE(0)
      throw this.fail(`is cut short: only ${remaining} byte${remaining === 1 ? '' : 's'} remain, a block header needs 8: the file is truncated`, { offset, ...(type === undefined ? {} : { block: blockName(type) }) }, true)
    }
    let type = head.readUInt32LE(0)
    let le: boolean
    if (type === SHB_TYPE) {
      if (remaining < 12) throw this.fail(`is cut short: only ${remaining} bytes remain, too few for its byte-order magic: the file is truncated`, { offset, block: blockName(type) }, true)
      const bom = head.readUInt32LE(8)
      if (bom === BOM) le = true
      else if (bom === BOM_SWAPPED) le = false
      else throw this.fail(`has byte-order magic ${hexStart(head.subarray(8), 4)}, which is neither 4d 3c 2b 1a (little-endian) nor 1a 2b 3c 4d (big-endian)`, { offset, block: blockName(type) })
      if (s !== undefined && s.end !== undefined && offset !== s.end) {
        throw this.fail(`starts a new section at offset ${offset}, but the Section Header Block at offset ${s.section.offset} says its section runs to offset ${s.end}`, { offset, block: blockName(type) })
      }
    } else {
      if (s === undefined) throw this.fail('is not a Section Header Block: a pcapng file must start with one', { offset, block: blockName(type) })
      le = s.le
      if (!le) type = head.readUInt32BE(0)
    }
    const name = blockName(type)
    const len = le ? head.readUInt32LE(4) : head.readUInt32BE(4)
    const min = MIN_BLOCK[type] ?? 12
    if (len < min) throw this.fail(`claims ${len} bytes, fewer than the minimum of ${min} for ${min === 12 ? 'any block' : 'this block type'}`, { offset, block: name })
    if (len % 4 !== 0) throw this.fail(`claims ${len} bytes, which is not a multiple of 4`, { offset, block: name })
    if (len > MAX_BLOCK_BYTES) throw this.fail(`claims ${len} bytes, more than the ${MAX_BLOCK_BYTES} this reader accepts for one block: its length field is corrupt`, { offset, block: name })
    if (len > remaining) throw this.fail(`claims ${len} bytes but only ${remaining} remain: the file is truncated`, { offset, block: name }, true)
    if (type !== SHB_TYPE && s !== undefined && s.end !== undefined && offset + len > s.end) {
      throw this.fail(`of ${len} bytes runs past the end of its section (offset ${s.end}, from the section length in the Section Header Block at offset ${s.section.offset})`, { offset, block: name })
    }
    return len
  }

  /* ---------------------------------------------------------------- pcapng blocks */

  decode(offset: number, unit: Buffer): PcapItem[] {
    if (this.format === 'pcap') return this.decodePcap(offset, unit)
    const first = unit.readUInt32LE(0)
    if (first === SHB_TYPE) return [this.decodeShb(offset, unit)]
    const s = this.section!
    const r32 = (o: number) => (s.le ? unit.readUInt32LE(o) : unit.readUInt32BE(o))
    const type = r32(0)
    const name = blockName(type)
    const len = unit.length
    const trailer = r32(len - 4)
    if (trailer !== len) throw this.fail(`has trailing length ${trailer}, which does not match its leading length ${len}`, { offset, block: name })
    switch (type) {
      case 1:
        return [this.decodeIdb(offset, unit, s)]
      case 2:
      case 6:
        return [this.decodePacketBlock(offset, unit, s, type)]
      case 3:
        return [this.decodeSpb(offset, unit, s)]
      case 5:
        return [this.decodeIsb(offset, unit, s)]
      default:
        return [{ kind: 'skipped', offset, type, name }]
    }
  }

  private decodeShb(offset: number, unit: Buffer): PcapItem {
    const le = unit.readUInt32LE(8) === BOM
    const r32 = (o: number) => (le ? unit.readUInt32LE(o) : unit.readUInt32BE(o))
    const r16 = (o: number) => (le ? unit.readUInt16LE(o) : unit.readUInt16BE(o))
    const where = { offset, block: 'Section Header' }
    const len = unit.length
    const trailer = r32(len - 4)
    if (trailer !== len) throw this.fail(`has trailing length ${trailer}, which does not match its leading length ${len}`, where)
    const major = r16(12)
    const minor = r16(14)
    if (major !== 1) throw this.fail(`has version ${major}.${minor}; this reader knows pcapng version 1`, where)
    const sl = le ? unit.readBigInt64LE(16) : unit.readBigInt64BE(16)
    if (sl < -1n) throw this.fail(`has section length ${sl}: only -1 (not given) or a byte count is valid`, where)
    if (sl >= 0n && sl % 4n !== 0n) throw this.fail(`has section length ${sl}, which is not a multiple of 4`, where)
    const section: PcapSection = { index: this.sections.length, offset, format: 'pcapng', byteOrder: le ? 'little' : 'big', version: `${major}.${minor}`, sectionLength: sl === -1n ? null : sl }
    const comments: string[] = []
    this.options(unit, 24, len - 4, le, where, (code, v) => {
      if (code === 1) comments.push(text(v))
      else if (code === 2) section.hardware = text(v)
      else if (code === 3) section.os = text(v)
      else if (code === 4) section.userappl = text(v)
    })
    if (comments.length > 0) section.comment = comments.join('\n')
    // The previous section must have ended where its header said (frame() checked blocks ran to it).
    this.section = { section, le, interfaces: [], end: sl === -1n ? undefined : offset + len + Number(sl) }
    this.sections.push(section)
    return { kind: 'section', section }
  }

  private decodeIdb(offset: number, unit: Buffer, s: SectionState): PcapItem {
    const where = { offset, block: 'Interface Description' }
    const le = s.le
    const linktype = le ? unit.readUInt16LE(8) : unit.readUInt16BE(8)
    const snaplen = le ? unit.readUInt32LE(12) : unit.readUInt32BE(12)
    const iface: PcapInterface = {
      id: this.interfaces.length,
      section: s.section.index,
      sectionInterfaceId: s.interfaces.length,
      offset,
      linktype,
      snaplen,
      tsresol: 6,
      unitsPerSecond: 1_000_000n,
      tsoffset: 0n,
    }
    const comments: string[] = []
    this.options(unit, 16, unit.length - 4, le, where, (code, v, at) => {
      switch (code) {
        case 1:
          comments.push(text(v))
          break
        case 2:
          iface.name = text(v)
          break
        case 3:
          iface.description = text(v)
          break
        case 9: {
          const r = v[0]!
          iface.tsresol = r
          iface.unitsPerSecond = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r)
          break
        }
        case 11:
          if (v.length === 0) throw this.fail(`has an empty if_filter option at offset ${at} (it needs at least its filter-type byte)`, where)
          iface.filter = v[0] === 0 ? text(v.subarray(1)) : v[0] === 1 ? `(BPF program, ${v.length - 1} bytes)` : `(filter type ${v[0]}, ${v.length - 1} bytes)`
          break
        case 12:
          iface.os = text(v)
          break
        case 13:
          iface.fcslen = v[0]!
          break
        case 14:
          iface.tsoffset = le ? v.readBigInt64LE(0) : v.readBigInt64BE(0)
          break
        case 15:
          iface.hardware = text(v)
          break
      }
    })
    if (comments.length > 0) iface.comment = comments.join('\n')
    s.interfaces.push(iface)
    this.interfaces.push(iface)
    return { kind: 'interface', iface }
  }

  private interfaceOf(s: SectionState, id: number, where: PcapErrorLocation): PcapInterface {
    const iface = s.interfaces[id]
    if (iface === undefined) {
      const n = s.interfaces.length
      throw this.fail(`references interface ${id} but ${n === 0 ? 'no interface is' : n === 1 ? 'only 1 is' : `only ${n} are`} defined in its section (by Interface Description Blocks before it)`, where)
    }
    return iface
  }

  private time(iface: PcapInterface, hi: number, lo: number): { us: bigint; ns: bigint } {
    const ticks = (BigInt(hi) << 32n) | BigInt(lo)
    const ups = iface.unitsPerSecond
    return { us: (ticks * 1_000_000n) / ups + iface.tsoffset * 1_000_000n, ns: (ticks * 1_000_000_000n) / ups + iface.tsoffset * 1_000_000_000n }
  }

  /** EPB (type 6) and the obsolete PB (type 2): same layout but for the PB's 16-bit interface id and drops count. */
  private decodePacketBlock(offset: number, unit: Buffer, s: SectionState, type: number): PcapItem {
    const epb = type === 6
    const block = blockName(type)
    const where = { offset, block }
    const le = s.le
    const r32 = (o: number) => (le ? unit.readUInt32LE(o) : unit.readUInt32BE(o))
    const ifid = epb ? r32(8) : le ? unit.readUInt16LE(8) : unit.readUInt16BE(8)
    const iface = this.interfaceOf(s, ifid, where)
    const caplen = r32(20)
    const origlen = r32(24)
    const room = unit.length - 32
    if (caplen > room) throw this.fail(`has captured length ${caplen} but only ${room} bytes of the block follow its header`, where)
    if (origlen < caplen) throw this.fail(`has captured length ${caplen}, larger than its original packet length ${origlen}`, where)
    const t = this.time(iface, r32(12), r32(16))
    const packet: PcapPacket = {
      number: ++this.packetNumber,
      offset,
      block: epb ? 'EPB' : 'PB',
      interfaceId: iface.id,
      tsUs: t.us,
      tsNs: t.ns,
      data: unit.subarray(28, 28 + caplen),
      originalLength: origlen,
    }
    if (!epb) packet.dropCount = BigInt(le ? unit.readUInt16LE(10) : unit.readUInt16BE(10))
    const comments: string[] = []
    this.options(unit, 28 + caplen + pad4(caplen), unit.length - 4, le, where, (code, v, at) => {
      if (code === 1) comments.push(text(v))
      else if (code === 2) {
        const flags = le ? v.readUInt32LE(0) : v.readUInt32BE(0)
        const d = flags & 3
        if (d === 3) throw this.fail(`has ${epb ? 'epb_flags' : 'pack_flags'} 0x${flags.toString(16).padStart(8, '0')} (at offset ${at}) with direction bits 11, which pcapng does not define`, where)
        packet.flags = flags
        if (d === 1) packet.dir = 'in'
        else if (d === 2) packet.dir = 'out'
      } else if (code === 4 && epb) packet.dropCount = le ? v.readBigUInt64LE(0) : v.readBigUInt64BE(0)
    })
    if (comments.length > 0) packet.comment = comments.join('\n')
    return { kind: 'packet', packet }
  }

  private decodeSpb(offset: number, unit: Buffer, s: SectionState): PcapItem {
    const where = { offset, block: 'Simple Packet' }
    const iface = this.interfaceOf(s, 0, where)
    const origlen = s.le ? unit.readUInt32LE(8) : unit.readUInt32BE(8)
    const room = unit.length - 16
    let caplen = Math.min(origlen, room)
    if (iface.snaplen > 0) caplen = Math.min(caplen, iface.snaplen)
    if (origlen <= room && room - origlen >= 4) throw this.fail(`holds ${room} bytes of packet data for a packet of ${origlen} bytes (at most 3 bytes of padding may follow it)`, where)
    const packet: PcapPacket = { number: ++this.packetNumber, offset, block: 'SPB', interfaceId: iface.id, tsUs: null, tsNs: null, data: unit.subarray(12, 12 + caplen), originalLength: origlen }
    return { kind: 'packet', packet }
  }

  private decodeIsb(offset: number, unit: Buffer, s: SectionState): PcapItem {
    const where = { offset, block: 'Interface Statistics' }
    const le = s.le
    const r32 = (o: number) => (le ? unit.readUInt32LE(o) : unit.readUInt32BE(o))
    const iface = this.interfaceOf(s, r32(8), where)
    const stats: PcapInterfaceStats = { offset, interfaceId: iface.id, tsUs: this.time(iface, r32(12), r32(16)).us }
    const comments: string[] = []
    this.options(unit, 20, unit.length - 4, le, where, (code, v) => {
      if (code === 1) {
        comments.push(text(v))
        return
      }
      if (code < 2 || code > 8) return
      const hi = le ? v.readUInt32LE(0) : v.readUInt32BE(0)
      const lo = le ? v.readUInt32LE(4) : v.readUInt32BE(4)
      if (code === 2) stats.startUs = this.time(iface, hi, lo).us
      else if (code === 3) stats.endUs = this.time(iface, hi, lo).us
      else {
        const n = le ? v.readBigUInt64LE(0) : v.readBigUInt64BE(0)
        if (code === 4) stats.received = n
        else if (code === 5) stats.dropped = n
        else if (code === 6) stats.filterAccepted = n
        else if (code === 7) stats.osDropped = n
        else stats.delivered = n
      }
    })
    if (comments.length > 0) stats.comment = comments.join('\n')
    return { kind: 'stats', stats }
  }

  /**
   * Walks the options in unit[start, end): code (2), length (2), value, padding to 4. The list
   * ends with opt_endofopt or at the end of the block; nothing may follow opt_endofopt. Calls
   * `each` with the value (a view) and the option's file offset; fixed-length options the
   * reader uses must have their length.
   */
  private options(unit: Buffer, start: number, end: number, le: boolean, where: PcapErrorLocation & { offset: number; block: string }, each: (code: number, value: Buffer, at: number) => void): void {
    let p = start
    while (p < end) {
      const at = where.offset + p
      if (end - p < 4) throw this.fail(`has ${end - p} byte${end - p === 1 ? '' : 's'} left at offset ${at} for its options, too few for an option header (4)`, where)
      const code = le ? unit.readUInt16LE(p) : unit.readUInt16BE(p)
      const len = le ? unit.readUInt16LE(p + 2) : unit.readUInt16BE(p + 2)
      const name = optionName(where.block, code)
      if (code === 0) {
        if (len !== 0) throw this.fail(`has opt_endofopt at offset ${at} with length ${len} (must be 0)`, where)
        if (p + 4 !== end) throw this.fail(`has ${end - p - 4} bytes after opt_endofopt at offset ${at}, before the block's trailing length`, where)
        return
      }
      const room = end - p - 4
      if (len + pad4(len) > room) throw this.fail(`has ${name} at offset ${at} claiming ${len} bytes${pad4(len) ? ` (${len + pad4(len)} padded)` : ''}, but only ${room} remain in the block`, where)
      const fixed = OPTION_LENGTHS[name]
      if (fixed !== undefined && len !== fixed) throw this.fail(`has ${name} at offset ${at} of ${len} bytes (must be ${fixed})`, where)
      each(code, unit.subarray(p + 4, p + 4 + len), at)
      p += 4 + len + pad4(len)
    }
  }

  /* ---------------------------------------------------------------- classic pcap */

  private framePcap(offset: number, head: Buffer, remaining: number): number {
    if (offset === 0) {
      if (remaining < PCAP_HEADER_BYTES) throw this.fail(`is cut short: only ${remaining} bytes remain of its ${PCAP_HEADER_BYTES}: the file is truncated`, { offset, block: 'pcap file header' }, true)
      return PCAP_HEADER_BYTES
    }
    const where = { offset, block: `pcap record` }
    if (remaining < PCAP_RECORD_HEADER_BYTES) throw this.fail(`(packet ${this.packetNumber + 1}) is cut short: only ${remaining} byte${remaining === 1 ? '' : 's'} remain, a record header needs ${PCAP_RECORD_HEADER_BYTES}: the file is truncated`, where, true)
    const incl = this.pcapLe ? head.readUInt32LE(8) : head.readUInt32BE(8)
    if (incl > MAX_BLOCK_BYTES) throw this.fail(`(packet ${this.packetNumber + 1}) claims ${incl} captured bytes, more than the ${MAX_BLOCK_BYTES} this reader accepts: its length field is corrupt`, where)
    if (PCAP_RECORD_HEADER_BYTES + incl > remaining) throw this.fail(`(packet ${this.packetNumber + 1}) claims ${PCAP_RECORD_HEADER_BYTES + incl} bytes but only ${remaining} remain: the file is truncated`, where, true)
    return PCAP_RECORD_HEADER_BYTES + incl
  }

  private decodePcap(offset: number, unit: Buffer): PcapItem[] {
    const le = this.pcapLe
    const r32 = (o: number) => (le ? unit.readUInt32LE(o) : unit.readUInt32BE(o))
    if (offset === 0) {
      const where = { offset, block: 'pcap file header' }
      const major = le ? unit.readUInt16LE(4) : unit.readUInt16BE(4)
      const minor = le ? unit.readUInt16LE(6) : unit.readUInt16BE(6)
      if (major !== 2) throw this.fail(`has version ${major}.${minor}; this reader knows pcap version 2`, where)
      const snaplen = r32(16)
      const network = r32(20)
      const section: PcapSection = { index: 0, offset: 0, format: 'pcap', byteOrder: le ? 'little' : 'big', version: `${major}.${minor}`, sectionLength: null }
      const iface: PcapInterface = {
        id: 0,
        section: 0,
        sectionInterfaceId: 0,
        offset: 0,
        linktype: network & 0xffff,
        snaplen,
        tsresol: this.pcapNs ? 9 : 6,
        unitsPerSecond: this.pcapNs ? 1_000_000_000n : 1_000_000n,
        tsoffset: 0n,
      }
      if (network & 0x04000000) iface.fcslen = ((network >>> 28) & 0xf) * 2
      this.sections.push(section)
      this.interfaces.push(iface)
      return [
        { kind: 'section', section },
        { kind: 'interface', iface },
      ]
    }
    const number = this.packetNumber + 1
    const where = { offset, block: 'pcap record' }
    const sec = r32(0)
    const frac = r32(4)
    const incl = r32(8)
    const orig = r32(12)
    const unitsPerSec = this.pcapNs ? 1_000_000_000 : 1_000_000
    if (frac >= unitsPerSec) throw this.fail(`(packet ${number}) has ${this.pcapNs ? 'nanosecond' : 'microsecond'} field ${frac}, not below ${unitsPerSec}`, where)
    if (orig < incl) throw this.fail(`(packet ${number}) has captured length ${incl}, larger than its original length ${orig}`, where)
    this.packetNumber = number
    const us = BigInt(sec) * 1_000_000n + BigInt(this.pcapNs ? Math.floor(frac / 1000) : frac)
    const ns = BigInt(sec) * 1_000_000_000n + BigInt(this.pcapNs ? frac : frac * 1000)
    return [{ kind: 'packet', packet: { number, offset, block: 'record', interfaceId: 0, tsUs: us, tsNs: ns, data: unit.subarray(PCAP_RECORD_HEADER_BYTES), originalLength: orig } }]
  }

  /** At the end of the file (offset = size): a section whose header gave its length must end here. */
  end(offset: number): void {
    const s = this.section
    if (this.format === 'pcapng' && s !== undefined && s.end !== undefined && s.end !== offset) {
      throw this.fail(
        `says its section runs to offset ${s.end}, but the file ends at offset ${offset}${s.end > offset ? ': the file is truncated' : ''}`,
        { offset: s.section.offset, block: 'Section Header' },
        s.end > offset,
      )
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Drivers                                                                                       */

/** The items of a capture held in memory, in file order. Throws PcapFormatError. */
export function* iteratePcapBytes(bytes: Uint8Array, opts: ReadOptions = {}): Generator<PcapItem, void, undefined> {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const d = new Decoder(opts.file ?? '(buffer)', buf.length)
  let off = 0
  if (buf.length === 0) d.frame(0, buf)
  while (off < buf.length) {
    const len = d.frame(off, buf.subarray(off, off + HEAD_BYTES))
    yield* d.decode(off, buf.subarray(off, off + len))
    off += len
  }
  d.end(off)
}

function collect(items: Iterable<PcapItem>, size: number): PcapCapture {
  const out: PcapCapture = { format: 'pcapng', size, sections: [], interfaces: [], packets: [], stats: [], skipped: {} }
  for (const it of items) {
    if (it.kind === 'section') {
      out.sections.push(it.section)
      out.format = it.section.format
    } else if (it.kind === 'interface') out.interfaces.push(it.iface)
    else if (it.kind === 'packet') out.packets.push(it.packet)
    else if (it.kind === 'stats') out.stats.push(it.stats)
    else out.skipped[it.name] = (out.skipped[it.name] ?? 0) + 1
  }
  return out
}

/**
 * Reads a whole pcapng (or classic pcap) file held in memory. Packet data are views into
 * `bytes`. Throws PcapFormatError, and nothing else, on any input.
 */
export function readPcapng(bytes: Uint8Array, opts: ReadOptions = {}): PcapCapture {
  return collect(iteratePcapBytes(bytes, opts), bytes.length)
}

function fileError(path: string, err: unknown): PcapFileError {
  const e = err as NodeJS.ErrnoException
  const reasons: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EISDIR: 'is a directory, not a capture file',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOTDIR: 'a component of the path is not a directory',
  }
  return new PcapFileError(path, (e.code && reasons[e.code]) ?? `cannot read: ${e.message}`, e.code)
}

async function openCapture(path: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle
  try {
    fh = await open(path, 'r')
  } catch (err) {
    throw fileError(path, err)
  }
  try {
    const st = await fh.stat()
    if (st.isDirectory()) throw new PcapFileError(path, 'is a directory, not a capture file', 'EISDIR')
    if (!st.isFile()) throw new PcapFileError(path, 'is not a regular file (a capture is read from a file of known size)')
    return { fh, size: st.size }
  } catch (err) {
    await fh.close()
    throw err instanceof PcapFileError ? err : fileError(path, err)
  }
}

export interface IterateFileOptions {
  /** Bytes read at once (default 1 MiB); a block larger than that is read whole. */
  chunkBytes?: number
  /** Name used in error messages (default: the path). */
  file?: string
}

/**
 * The items of a capture file, read in chunks: memory stays bounded by the chunk size plus one
 * block, whatever the file's size. A packet's `data` stays valid after the next item (each chunk
 * is a new buffer), but holding many keeps their chunks alive. Throws PcapFormatError (the
 * content) or PcapFileError (opening or reading the file).
 */
export async function* iteratePcapFile(path: string, opts: IterateFileOptions = {}): AsyncGenerator<PcapItem, void, undefined> {
  const chunk = Math.max(HEAD_BYTES, opts.chunkBytes ?? DEFAULT_CHUNK_BYTES)
  const file = opts.file ?? path
  const { fh, size } = await openCapture(path)
  try {
    const d = new Decoder(file, size)
    let buf = Buffer.alloc(0)
    let bufStart = 0
    /** [off, off + n) in `buf`; n ≤ size - off. */
    const window = async (off: number, n: number): Promise<Buffer> => {
      if (off < bufStart || off + n > bufStart + buf.length) {
        const want = Math.min(Math.max(n, chunk), size - off)
        const next = Buffer.allocUnsafe(want)
        let got = 0
        while (got < want) {
          let r: number
          try {
            ;({ bytesRead: r } = await fh.read(next, got, want - got, off + got))
          } catch (err) {
            throw fileError(path, err)
          }
          if (r === 0) throw new PcapFileError(path, `became shorter while being read (expected ${size} bytes, it ends at ${off + got})`)
          got += r
        }
        buf = next
        bufStart = off
      }
      return buf.subarray(off - bufStart, off - bufStart + n)
    }
    let off = 0
    if (size === 0) d.frame(0, Buffer.alloc(0))
    while (off < size) {
      const len = d.frame(off, await window(off, Math.min(HEAD_BYTES, size - off)))
      const items = d.decode(off, await window(off, len))
      for (const it of items) yield it
      off += len
    }
    d.end(off)
  } finally {
    await fh.close()
  }
}

/** readPcapng of a whole file (read into memory: use iteratePcapFile for large files). */
export async function readPcapFile(path: string, opts: ReadOptions = {}): Promise<PcapCapture> {
  const { fh } = await openCapture(path)
  let bytes: Buffer
  try {
    bytes = await fh.readFile()
  } catch (err) {
    throw fileError(path, err)
  } finally {
    await fh.close()
  }
  return readPcapng(bytes, { file: opts.file ?? path })
}

/* ------------------------------------------------------------------------------------------ */
/* Link types                                                                                   */

/** Names of common link types (tcpdump.org/linktypes.html), and kairo-gw's. */
export const LINKTYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  0: 'NULL',
  1: 'ETHERNET',
  101: 'RAW',
  105: 'IEEE802_11',
  113: 'LINUX_SLL',
  127: 'IEEE802_11_RADIOTAP',
  147: 'USER0 (kairo-gw firmware-bridge)',
  148: 'USER1 (kairo-gw AI-TCP)',
  228: 'IPV4',
  229: 'IPV6',
  270: 'LORATAP',
  276: 'LINUX_SLL2',
})

export function linktypeName(linktype: number): string {
  return LINKTYPE_NAMES[linktype] ?? (linktype >= 147 && linktype <= 162 ? `USER${linktype - 147}` : `LINKTYPE ${linktype}`)
}
