/**
 * pcapng block encoders (draft-ietf-opsawg-pcapng): the Section Header, Interface Description,
 * Enhanced Packet and Interface Statistics blocks, little-endian, with the options kairo-gw
 * writes. Pure functions: no I/O, no clock. Capture (pcap/capture.ts) and the sample generator
 * (pcap/generate.ts) both build their files from these, so a file is the concatenation of:
 *
 *     SHB, IDB × interfaces, then EPBs (and ISBs at the end)
 *
 * Timestamps are microseconds since the Unix epoch (`if_tsresol` 6, the pcapng default, written
 * out anyway so that readers need not assume it).
 *
 * The link types (LINKTYPE_*, tcpdump.org/linktypes.html) kairo-gw uses, and what a packet of
 * each holds, are in docs/pcap.md:
 */

/** tcpdump.org link types used by kairo-gw captures. */
export const LINKTYPE = Object.freeze({
  /** Ethernet II frames (raw NIC links: EtherType 0x88B5, or IP protocol 253). */
  ETHERNET: 1,
  /** A bare IPv4 or IPv6 packet (UDP links: the datagram with its real addresses and ports). */
  RAW: 101,
  /** LINKTYPE_USER0: one firmware-bridge link frame, COBS-decoded (header, Frame, CRC-32C). */
  KAIRO_FB: 147,
  /** LINKTYPE_USER1: one bare AI-TCP frame, no link header (links without one: fake, BLE GATT). */
  AITCP: 148,
  /** LoRaTap v0 header (15 bytes) + the radio payload as sent or heard on air. */
  LORATAP: 270,
})

export const BLOCK = Object.freeze({ SHB: 0x0a0d0d0a, IDB: 0x00000001, EPB: 0x00000006, ISB: 0x00000005 })
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d

/** Option codes (pcapng section 3.5 and the per-block lists). */
export const OPT = Object.freeze({
  END: 0,
  COMMENT: 1,
  SHB_HARDWARE: 2,
  SHB_OS: 3,
  SHB_USERAPPL: 4,
  IF_NAME: 2,
  IF_DESCRIPTION: 3,
  IF_TSRESOL: 9,
  IF_FILTER: 11,
  IF_OS: 12,
  IF_HARDWARE: 15,
  EPB_FLAGS: 2,
  ISB_STARTTIME: 2,
  ISB_ENDTIME: 3,
  ISB_IFRECV: 4,
  ISB_IFDROP: 5,
  ISB_OSDROP: 7,
})

/** epb_flags direction bits: 01 inbound, 10 outbound. */
export const EPB_DIR = Object.freeze({ in: 1, out: 2 })

export type Direction = 'in' | 'out'

type Opt = [code: number, value: Buffer]

const text = (code: number, s: string | undefined): Opt[] => (s === undefined || s === '' ? [] : [[code, Buffer.from(s, 'utf8')]])

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(v)
  return b
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v >>> 0)
  return b
}

/** A timestamp as pcapng writes it: high 32 bits, then low 32 bits (each little-endian). */
function ts(us: bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32LE(Number((us >> 32n) & 0xffffffffn), 0)
  b.writeUInt32LE(Number(us & 0xffffffffn), 4)
  return b
}

const pad4 = (n: number): number => (4 - (n % 4)) % 4

function optionsLength(opts: Opt[]): number {
  if (opts.length === 0) return 0
  let n = 4 // opt_endofopt
  for (const [, v] of opts) n += 4 + v.length + pad4(v.length)
  return n
}

function writeOptions(out: Buffer, offset: number, opts: Opt[]): number {
  if (opts.length === 0) return offset
  for (const [code, v] of opts) {
    if (v.length > 0xffff) throw new RangeError(`pcapng option ${code} of ${v.length} bytes is over 65535`)
    out.writeUInt16LE(code, offset)
    out.writeUInt16LE(v.length, offset + 2)
    v.copy(out, offset + 4)
    offset += 4 + v.length
    out.fill(0, offset, offset + pad4(v.length))
    offset += pad4(v.length)
  }
  out.writeUInt32LE(0, offset) // opt_endofopt
  return offset + 4
}

/** type, total length, body, options, total length again. */
function block(type: number, body: Buffer, opts: Opt[]): Buffer {
  const total = 12 + body.length + optionsLength(opts)
  const out = Buffer.allocUnsafe(total)
  out.writeUInt32LE(type, 0)
  out.writeUInt32LE(total, 4)
  body.copy(out, 8)
  const end = writeOptions(out, 8 + body.length, opts)
  out.writeUInt32LE(total, end)
  return out
}

export interface SectionOptions {
  /** shb_userappl, e.g. "kairo-gw 0.1.0". */
  userappl?: string
  hardware?: string
  os?: string
  comment?: string
}

export function sectionHeaderBlock(o: SectionOptions = {}): Buffer {
  const body = Buffer.alloc(16)
  body.writeUInt32LE(BYTE_ORDER_MAGIC, 0)
  body.writeUInt16LE(1, 4) // major
  body.writeUInt16LE(0, 6) // minor
  body.writeBigInt64LE(-1n, 8) // section length: not specified
  return block(BLOCK.SHB, body, [...text(OPT.COMMENT, o.comment), ...text(OPT.SHB_HARDWARE, o.hardware), ...text(OPT.SHB_OS, o.os), ...text(OPT.SHB_USERAPPL, o.userappl)])
}

export interface InterfaceDescription {
  linktype: number
  /** if_name: the link's name, e.g. "lora0" or "lora0/bridge". */
  name: string
  description?: string
  /** BPF filter the packets were captured with (if_filter, as a libpcap string). */
  filter?: string
  hardware?: string
  comment?: string
  /** Largest bytes kept per packet; 0 = no limit. */
  snaplen?: number
}

export function interfaceDescriptionBlock(i: InterfaceDescription): Buffer {
  if (!Number.isInteger(i.linktype) || i.linktype < 0 || i.linktype > 0xffff) throw new RangeError(`linktype ${i.linktype} is not 0..65535`)
  const body = Buffer.alloc(8)
  body.writeUInt16LE(i.linktype, 0)
  body.writeUInt16LE(0, 2)
  body.writeUInt32LE(i.snaplen ?? 0, 4)
  const opts: Opt[] = [
    ...text(OPT.COMMENT, i.comment),
    ...text(OPT.IF_NAME, i.name),
    ...text(OPT.IF_DESCRIPTION, i.description),
    [OPT.IF_TSRESOL, Buffer.from([6])],
    ...(i.filter === undefined ? [] : ([[OPT.IF_FILTER, Buffer.concat([Buffer.from([0]), Buffer.from(i.filter, 'utf8')])]] as Opt[])),
    ...text(OPT.IF_HARDWARE, i.hardware),
  ]
  return block(BLOCK.IDB, body, opts)
}

export interface PacketRecord {
  /** Index of the interface (order of its IDB in the section). */
  interfaceId: number
  /** Microseconds since the Unix epoch. */
  tsUs: bigint
  data: Uint8Array
  /** Link-layer header written in front of `data` (saves the caller a copy). */
  head?: Uint8Array
  /** Length on the medium when `data` was cut to a snap length (default data.length). */
  originalLength?: number
  dir?: Direction
  comment?: string
}

const DIR_OPTS = { in: [[OPT.EPB_FLAGS, u32(EPB_DIR.in)]], out: [[OPT.EPB_FLAGS, u32(EPB_DIR.out)]] }

/** Bytes an EPB of `dataLength` bytes takes (without options): to size buffers. */
export const EPB_FIXED_BYTES = 32

export function enhancedPacketBlock(p: PacketRecord): Buffer {
  // Written straight into one buffer: a capture makes one per packet on the relay path.
  const headLen = p.head?.length ?? 0
  const len = headLen + p.data.length
  const opts: Opt[] = p.comment === undefined && p.dir !== undefined ? (DIR_OPTS[p.dir] as Opt[]) : [...text(OPT.COMMENT, p.comment), ...(p.dir === undefined ? [] : ([[OPT.EPB_FLAGS, u32(EPB_DIR[p.dir])]] as Opt[]))]
  const bodyLen = 20 + len + pad4(len)
  const total = 12 + bodyLen + optionsLength(opts)
  const out = Buffer.allocUnsafe(total)
  out.writeUInt32LE(BLOCK.EPB, 0)
  out.writeUInt32LE(total, 4)
  out.writeUInt32LE(p.interfaceId, 8)
  out.writeUInt32LE(Number((p.tsUs >> 32n) & 0xffffffffn), 12)
  out.writeUInt32LE(Number(p.tsUs & 0xffffffffn), 16)
  out.writeUInt32LE(len, 20)
  out.writeUInt32LE(p.originalLength ?? len, 24)
  if (p.head !== undefined) out.set(p.head, 28)
  out.set(p.data, 28 + headLen)
  out.fill(0, 28 + len, 8 + bodyLen)
  const end = writeOptions(out, 8 + bodyLen, opts)
  out.writeUInt32LE(total, end)
  return out
}

export interface InterfaceStatistics {
  interfaceId: number
  tsUs: bigint
  startUs?: bigint
  endUs?: bigint
  /** Packets the capture saw on this interface. */
  received?: bigint
  /** Packets seen but not written (the capture's queue was full). */
  dropped?: bigint
  comment?: string
}

export function interfaceStatisticsBlock(s: InterfaceStatistics): Buffer {
  const body = Buffer.alloc(12)
  body.writeUInt32LE(s.interfaceId, 0)
  ts(s.tsUs).copy(body, 4)
  const opts: Opt[] = [
    ...text(OPT.COMMENT, s.comment),
    ...(s.startUs === undefined ? [] : ([[OPT.ISB_STARTTIME, ts(s.startUs)]] as Opt[])),
    ...(s.endUs === undefined ? [] : ([[OPT.ISB_ENDTIME, ts(s.endUs)]] as Opt[])),
    ...(s.received === undefined ? [] : ([[OPT.ISB_IFRECV, u64(s.received)]] as Opt[])),
    ...(s.dropped === undefined ? [] : ([[OPT.ISB_IFDROP, u64(s.dropped)]] as Opt[])),
  ]
  return block(BLOCK.ISB, body, opts)
}

/** The SHB and IDBs every file (and every file of a ring) starts with. */
export function fileHeader(section: SectionOptions, interfaces: readonly InterfaceDescription[]): Buffer {
  return Buffer.concat([sectionHeaderBlock(section), ...interfaces.map(interfaceDescriptionBlock)])
}

/** Wall-clock microseconds since the Unix epoch, at better than millisecond resolution. */
export function nowUs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000))
}
