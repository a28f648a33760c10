/**
 * `kairo-gw pcap inspect FILE [--json] [--packets]`: what a capture file holds, for an operator or
 * auditor without Wireshark. Reads pcapng or classic pcap with pcap/reader.ts (strict: a
 * truncated or corrupt file is exit 1 with the reader's one-line message naming the file and
 * offset) in chunks, so memory stays bounded whatever the file's size (--packets --json keeps
 * the list).
 *
 * It reports the sections and interfaces (name, link type, description, comment, filter),
 * packets and bytes per interface and direction, the time span, the drop counts the capture
 * recorded in its Interface Statistics Blocks, and what the packets carry, decoded by the
 * gateway's own code:
 *
 *   link type 1 (Ethernet)      EtherType 0x88B5 + length (drivers/ethernet/frame.ts), or IPv4/IPv6
 *                               with IP protocol 253, or UDP to/from port 47800 or 4747
 *   101 RAW, 228 IPV4, 229 IPV6 IPv4/IPv6 + UDP (any port: kairo-gw's UDP links), or IP protocol 253
 *   270 LoRaTap                 the LoRaTap header (its own length field), then the radio payload
 *   147 USER0                   a firmware-bridge link frame (firmware-bridge/codec.ts); the
 *                               payloads of Transmit and Receive are radio payloads
 *   148 USER1                   a bare AI-TCP frame
 *
 * and then the AI-TCP frame by its first byte: 0x11 Data (clear header checked), 0x12 Packet
 * (FlatBuffers verified; announces' signatures verified, and other signed packets' when an
 * announce in the capture gave the source's key), 0x13 Fragment (reassembled per link source by
 * the gateway's Reassembler, on the capture's clock, and the whole frame decoded), 0x14 Hop (then
 * the frame it carries). Counts: frame kinds (a Hop counts as hop and as the kind it carries),
 * packet types, firmware-bridge messages, UDP beacons, other traffic, and malformed frames with
 * the first few named (frame number, interface, what is wrong).
 */
import { once } from 'node:events'
import { stat } from 'node:fs/promises'
import { InvalidArgumentError, Option, type Command } from 'commander'
import { MalformedPacketError } from '../../core/errors.js'
import { decodeFragmentHeader, Reassembler } from '../../core/fragment.js'
import { verifyAnnouncePacket } from '../../core/wire/announce.js'
import { checkDataFrame, dataHopLimit, dataSessionIndex } from '../../core/wire/data.js'
import { decodeHandshake } from '../../core/wire/handshake.js'
import { decodePacket, verifyPacketSignature } from '../../core/wire/packet.js'
import { HandshakePattern, PacketFlags, PacketType, packetTypeName, VK_DATA, VK_FRAGMENT, VK_PACKET } from '../../core/wire/constants.js'
import { decodeHop, VK_HOP } from '../../mesh/hop.js'
import { decodeEthernetFrame, ETHERTYPE_KAIRO, formatMac, IP_PROTOCOL_KAIRO } from '../../../drivers/ethernet/frame.js'
import { decodeFrameBytes } from '../../../firmware-bridge/codec.js'
import { UDP_BEACON, UDP_DEFAULT_GROUP_PORT } from '../../../drivers/udp/link.js'
import { isPcapError, iteratePcapFile, linktypeName, type PcapInterface, type PcapItem, type PcapPacket, type PcapSection } from '../../../pcap/reader.js'
import { CliError } from '../errors.js'
import { escapeControl, formatBytes, renderFields, renderTable } from '../table.js'
import { outputOf } from '../output.js'

/** kairo-gw's default UDP port (and its UDP links' multicast group port): UDP on an Ethernet capture is decoded as AI-TCP to or from them. */
export const AITCP_UDP_PORTS: readonly number[] = [47800, UDP_DEFAULT_GROUP_PORT]
/** Malformed frames named in the report. */
export const MALFORMED_LISTED = 10
/** LINKTYPE_USER1 (pcap/pcapng.ts LINKTYPE.AITCP): a bare AI-TCP frame. */
const LINKTYPE_AITCP = 148
const MAX_DEPTH = 4
/** Identity keys remembered from announces (to verify other signed packets): bounded. */
const MAX_KEYS = 65_536

export type PacketProto = 'aitcp' | 'kairo_fb' | 'beacon' | 'other' | 'malformed'

export interface FrameCounts {
  kinds: { data: number; packet: number; fragment: number; hop: number }
  types: Record<string, number>
}

export interface InspectInterface {
  id: number
  section: number
  name: string | null
  linktype: number
  linktype_name: string
  description: string | null
  comment: string | null
  filter: string | null
  tsresol: number
  snaplen: number
  packets: number
  in: number
  out: number
  no_dir: number
  bytes: number
  /** The AI-TCP frames of the packets of this interface that decoded. */
  frames: FrameCounts
  /** The last Interface Statistics Block of the interface, or null when there is none. */
  statistics: { received: number | null; dropped: number | null; os_dropped: number | null } | null
}

export interface InspectPacket {
  number: number
  time: string | null
  interface: string
  dir: 'in' | 'out' | null
  length: number
  original_length: number
  proto: PacketProto
  summary: string
  /** The AI-TCP frame kinds in the packet, outermost first (absent when none decoded). */
  kinds?: FrameKind[]
  /** The packet type of the Data or Packet frame it carries. */
  type?: string
  handshake?: { pattern: 'IK' | 'XX'; message: number }
  /** The type of a frame a fragment in this packet completed. */
  reassembled?: string
  /** The firmware-bridge message (link type 147). */
  bridge?: string
  malformed?: string
}

export interface InspectReport {
  file: string
  format: 'pcapng' | 'pcap'
  size: number
  sections: { index: number; byte_order: string; version: string; userappl: string | null; os: string | null; hardware: string | null; comment: string | null }[]
  interfaces: InspectInterface[]
  packets: number
  bytes: number
  time: { first: string; last: string; first_us: string; last_us: string; span_s: number } | null
  /** Σ over interfaces of their last ISB's isb_ifdrop + isb_osdrop; null when the file has no statistics. */
  dropped_by_capture: number | null
  by_proto: Record<PacketProto, number>
  aitcp: FrameCounts & {
    /** Captured packets that carried an AI-TCP frame that decoded (firmware-bridge Transmit/Receive included). */
    packets: number
    beacons: number
    signatures: { verified: number; failed: number; unknown_key: number }
    reassembled: FrameCounts & { frames: number }
  }
  bridge: { frames: number; messages: Record<string, number> }
  malformed: { count: number; first: { frame: number; interface: string; reason: string }[] }
  skipped_blocks: Record<string, number>
  packet_list?: InspectPacket[]
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding                                                                                     */

const hex8 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`
const shortId = (b: Uint8Array) => Buffer.from(b.subarray(0, 4)).toString('hex') + '…'

/** A packet's µs timestamp as ISO-8601 with microseconds; the raw number when out of Date's range. */
export function isoMicros(us: bigint): string {
  const ms = us >= 0n ? us / 1000n : -((-us + 999n) / 1000n)
  if (ms > 8_640_000_000_000_000n || ms < -8_640_000_000_000_000n) return `${us} µs since the epoch`
  const micro = Number(us - ms * 1000n)
  return new Date(Number(ms)).toISOString().replace(/Z$/, `${String(micro).padStart(3, '0')}Z`)
}

interface Decoded {
  proto: PacketProto
  summary: string
  /** An AI-TCP frame decoded (directly, or as a firmware-bridge radio payload). */
  frames?: true
  bridge?: string
  malformed?: string
}

class Malformed extends Error {}

function errorText(err: unknown): string {
  if (err instanceof Malformed || err instanceof MalformedPacketError) return err.message
  if (err instanceof Error) return `${err.name}: ${err.message}`
  return String(err)
}

type FrameKind = 'data' | 'packet' | 'fragment' | 'hop'

/** What the frames of one captured packet were, outermost first (committed to the counts when the packet decodes). */
export interface FrameTrace {
  kinds: FrameKind[]
  /** The packet type of the Data or Packet frame the packet carries (not of a reassembled one). */
  type?: string
  /** A Packet frame's handshake. */
  handshake?: { pattern: 'IK' | 'XX'; message: number }
  /** Frames that a fragment in this packet completed. */
  reassembled: { kind: FrameKind; type?: string }[]
}

const emptyCounts = (): FrameCounts => ({ kinds: { data: 0, packet: 0, fragment: 0, hop: 0 }, types: {} })

function addTo(c: FrameCounts, kind: FrameKind, type: string | undefined): void {
  c.kinds[kind]++
  if (type !== undefined) c.types[type] = (c.types[type] ?? 0) + 1
}

/** The frame-level state of one inspection: counts, keys learned from announces, reassembly. */
class FrameDecoder {
  readonly counts = emptyCounts()
  readonly reassembled: FrameCounts & { frames: number } = { frames: 0, ...emptyCounts() }
  readonly signatures = { verified: 0, failed: 0, unknown_key: 0 }
  /** node ID (hex) → identity key, from verified announces. */
  private readonly keys = new Map<string, Buffer>()
  private nowMs = 0
  private readonly reassembler = new Reassembler({ now: () => this.nowMs })
  private trace: FrameTrace = { kinds: [], reassembled: [] }
  /** Where in the trace frames go: the packet's own, or a reassembled frame's. */
  private inReassembled = 0

  /** Starts a captured packet: its timestamp drives reassembly timeouts. */
  begin(tsUs: bigint | null): FrameTrace {
    if (tsUs !== null) {
      const ms = Number(tsUs / 1000n)
      if (Number.isFinite(ms) && ms > this.nowMs) this.nowMs = ms
    }
    this.trace = { kinds: [], reassembled: [] }
    this.inReassembled = 0
    return this.trace
  }

  /** Counts the packet's frames (it decoded without a fault) into the totals and `also`. */
  commit(trace: FrameTrace, also: FrameCounts): void {
    trace.kinds.forEach((k, i) => {
      const type = i === trace.kinds.length - 1 ? trace.type : undefined
      addTo(this.counts, k, type)
      addTo(also, k, type)
    })
    for (const r of trace.reassembled) {
      this.reassembled.frames++
      addTo(this.reassembled, r.kind, r.type)
    }
  }

  private record(kind: FrameKind, type?: string): void {
    if (this.inReassembled > 0) {
      const last = this.trace.reassembled[this.trace.reassembled.length - 1]
      if (last !== undefined && type !== undefined) last.type = type
      return
    }
    this.trace.kinds.push(kind)
    if (type !== undefined) this.trace.type = type
  }

  /**
   * Decodes one AI-TCP frame; `source` keys fragment reassembly (the link-level sender). Returns
   * its summary; throws Malformed (message: which layer, what is wrong).
   */
  frame(frame: Buffer, source: string, depth = 0): string {
    if (depth > MAX_DEPTH) throw new Malformed(`frames nested more than ${MAX_DEPTH} deep`)
    if (frame.length === 0) throw new Malformed('empty AI-TCP frame')
    const vk = frame[0]!
    const layer = (name: string, fn: () => string): string => {
      try {
        return fn()
      } catch (err) {
        if (err instanceof Malformed) throw err
        throw new Malformed(`${name}: ${errorText(err)}`)
      }
    }
    switch (vk) {
      case VK_DATA:
        return layer('Data', () => {
          checkDataFrame(frame)
          const type = packetTypeName(frame[1]!)
          this.record('data', type)
          return `Data ${type} session=${hex8(dataSessionIndex(frame))} dst=${shortId(frame.subarray(8, 24))} hop=${dataHopLimit(frame)} ${frame.length - 48} B sealed`
        })
      case VK_PACKET:
        return layer('Packet', () => this.packet(frame))
      case VK_FRAGMENT:
        return layer('Fragment', () => {
          const h = decodeFragmentHeader(frame)
          this.record('fragment')
          let s = `Fragment ${h.index + 1}/${h.count} id=${hex8(h.fragId)} ${frame.length - 8} B`
          const whole = this.reassembler.push(source, frame)
          if (whole !== null && h.count > 1) {
            const vk0 = whole[0]
            const kind: FrameKind = vk0 === VK_DATA ? 'data' : vk0 === VK_PACKET ? 'packet' : vk0 === VK_FRAGMENT ? 'fragment' : 'hop'
            if (this.inReassembled === 0) this.trace.reassembled.push({ kind })
            this.inReassembled++
            try {
              s += ` → reassembled ${whole.length} B: ${this.frame(whole, `${source}/reassembled`, depth + 1)}`
            } catch (err) {
              throw new Malformed(`reassembled frame of ${whole.length} B: ${errorText(err)}`)
            } finally {
              this.inReassembled--
            }
          }
          return s
        })
      case VK_HOP:
        return layer('Hop', () => {
          const hop = decodeHop(frame)
          if (hop.frame[0] === VK_HOP) throw new Malformed('Hop: carries another Hop frame')
          this.record('hop')
          const head = `Hop next=${hop.next === 0 ? 'all' : hex8(hop.next)} prev=${hex8(hop.prev)}`
          try {
            return `${head} | ${this.frame(hop.frame, `${source}/hop:${hop.prev.toString(16)}`, depth + 1)}`
          } catch (err) {
            throw new Malformed(`Hop > ${errorText(err)}`)
          }
        })
      default:
        throw new Malformed(`first byte 0x${vk.toString(16).padStart(2, '0')} is not an AI-TCP frame (0x11 Data, 0x12 Packet, 0x13 Fragment, 0x14 Hop)`)
    }
  }

  private packet(frame: Buffer): string {
    const p = decodePacket(frame)
    const type = packetTypeName(p.type)
    const src = p.src.toString('hex')
    const s = `Packet ${type} id=${hex8(p.packetId)} src=${shortId(p.src)} ${p.dst === null ? 'broadcast' : `dst=${shortId(p.dst)}`} hop=${p.hopLimit}`
    let detail = ''
    if (p.type === PacketType.Announce) {
      let body
      try {
        body = verifyAnnouncePacket(p)
      } catch (err) {
        if (err instanceof MalformedPacketError) throw err
        this.signatures.failed++
        throw new Malformed(`Packet ANNOUNCE from ${src}: signature does not verify`)
      }
      this.signatures.verified++
      if (this.keys.size < MAX_KEYS || this.keys.has(src)) this.keys.set(src, body.identityKey)
      detail = ` name=${JSON.stringify(body.name ?? '')} links=${body.links.map((l) => l.name).join(',') || '-'} signature ok`
    } else {
      if (p.type === PacketType.Handshake) {
        const h = decodeHandshake(p.payload)
        const pattern = h.pattern === HandshakePattern.IK ? 'IK' : 'XX'
        if (this.inReassembled === 0) this.trace.handshake = { pattern, message: h.message }
        detail = ` ${pattern} message ${h.message}`
      }
      if ((p.flags & PacketFlags.Signed) !== 0) {
        const key = this.keys.get(src)
        if (key === undefined) {
          this.signatures.unknown_key++
          detail += ' signed (no announce of the source in the capture: not verified)'
        } else {
          try {
            verifyPacketSignature(p, key)
          } catch {
            this.signatures.failed++
            throw new Malformed(`Packet ${type} from ${src}: signature does not verify under the key its announce gave`)
          }
          this.signatures.verified++
          detail += ' signature ok'
        }
      }
    }
    this.record('packet', type)
    return `${s}${detail} ${p.payload.length} B payload`
  }
}

interface IpPayload {
  summary: string
  protocol: number
  payload: Buffer
  src: string
  dst: string
}

function ipv6Text(b: Buffer, off: number): string {
  const words: string[] = []
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(off + i).toString(16))
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')
}

/** IPv4 or IPv6 header off; throws Malformed. Bytes past the IP length (link padding) are dropped. */
function stripIp(b: Buffer): IpPayload {
  if (b.length < 1) throw new Malformed('IP: empty packet')
  const v = b[0]! >> 4
  if (v === 4) {
    if (b.length < 20) throw new Malformed(`IPv4: ${b.length} bytes, shorter than its 20-byte header`)
    const ihl = (b[0]! & 0x0f) * 4
    const total = b.readUInt16BE(2)
    if (ihl < 20 || ihl > b.length) throw new Malformed(`IPv4: header length ${ihl} outside 20..${b.length}`)
    if (total < ihl || total > b.length) throw new Malformed(`IPv4: total length ${total} outside ${ihl}..${b.length}`)
    const frag = b.readUInt16BE(6)
    const src = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`
    const dst = `${b[16]}.${b[17]}.${b[18]}.${b[19]}`
    if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) return { summary: `IPv4 ${src} → ${dst} fragment`, protocol: -1, payload: Buffer.alloc(0), src, dst }
    return { summary: `IPv4 ${src} → ${dst}`, protocol: b[9]!, payload: b.subarray(ihl, total), src, dst }
  }
  if (v === 6) {
    if (b.length < 40) throw new Malformed(`IPv6: ${b.length} bytes, shorter than its 40-byte header`)
    const len = b.readUInt16BE(4)
    if (40 + len > b.length) throw new Malformed(`IPv6: payload length ${len} but ${b.length - 40} bytes follow the header`)
    const src = ipv6Text(b, 8)
    const dst = ipv6Text(b, 24)
    return { summary: `IPv6 ${src} → ${dst}`, protocol: b[6]!, payload: b.subarray(40, 40 + len), src, dst }
  }
  throw new Malformed(`IP: version ${v} is neither 4 nor 6`)
}

/**
 * The link-level decode of one captured packet, per link type; AI-TCP frames go to `frames`.
 * Never throws: anything wrong is `malformed`.
 */
function decodePacketData(linktype: number, p: PcapPacket, ifaceTag: string, frames: FrameDecoder, bridge: Record<string, number>): Decoded {
  const data = p.data
  const aitcp = (frame: Buffer, source: string, prefix: string): Decoded => ({ proto: 'aitcp', frames: true, summary: `${prefix}${frames.frame(frame, `${ifaceTag}/${p.dir ?? '-'}/${source}`)}` })
  /** IP (from a RAW link, or inside Ethernet): UDP (any port, or only kairo-gw's) or protocol 253. */
  const ip = (b: Buffer, anyUdpPort: boolean): Decoded => {
    const h = stripIp(b)
    if (h.protocol === IP_PROTOCOL_KAIRO) return aitcp(h.payload, h.src, `${h.summary} proto 253 | `)
    if (h.protocol === 17) {
      const u = h.payload
      if (u.length < 8) throw new Malformed(`UDP: ${u.length} bytes, shorter than its 8-byte header`)
      const sport = u.readUInt16BE(0)
      const dport = u.readUInt16BE(2)
      const ulen = u.readUInt16BE(4)
      const head = `${h.summary} UDP ${sport} → ${dport}`
      if (!anyUdpPort && !AITCP_UDP_PORTS.includes(sport) && !AITCP_UDP_PORTS.includes(dport)) return { proto: 'other', summary: head }
      if (ulen < 8 || ulen > u.length) throw new Malformed(`UDP: length field ${ulen} outside 8..${u.length}`)
      const payload = u.subarray(8, ulen)
      if (payload.equals(UDP_BEACON)) return { proto: 'beacon', summary: `${head} | beacon` }
      return aitcp(payload, `${h.src}:${sport}`, `${head} | `)
    }
    return { proto: 'other', summary: `${h.summary} protocol ${h.protocol === -1 ? '(fragment)' : h.protocol}` }
  }
  switch (linktype) {
    case 1: {
      if (data.length < 14) throw new Malformed(`Ethernet: ${data.length} bytes, shorter than its 14-byte header`)
      const etherType = data.readUInt16BE(12)
      const macs = `Ethernet ${formatMac(data, 6)} → ${formatMac(data, 0)}`
      if (etherType === ETHERTYPE_KAIRO) {
        const e = decodeEthernetFrame(data)
        if (!e.ok) throw new Malformed(e.reason === 'short' ? `Ethernet: ${data.length} bytes, no room for the 2-byte length after EtherType 0x88b5` : `Ethernet: length field ${data.readUInt16BE(14)} but ${data.length - 16} bytes follow it`)
        return aitcp(e.payload, formatMac(data, 6), `${macs} | `)
      }
      if (etherType === 0x0800 || etherType === 0x86dd) {
        const r = ip(data.subarray(14), false)
        return { ...r, summary: `${macs} | ${r.summary}` }
      }
      return { proto: 'other', summary: `${macs} EtherType 0x${etherType.toString(16).padStart(4, '0')}` }
    }
    case 101:
    case 228:
    case 229:
      return ip(data, true)
    case 270: {
      if (data.length < 4) throw new Malformed(`LoRaTap: ${data.length} bytes, shorter than its header`)
      if (data[0] !== 0) throw new Malformed(`LoRaTap: version ${data[0]} (this reader knows version 0)`)
      const hlen = data.readUInt16BE(2)
      if (hlen < 15 || hlen > data.length) throw new Malformed(`LoRaTap: header length ${hlen} outside 15..${data.length}`)
      const freq = data.readUInt32BE(4)
      const rssi = data[10]!
      const radio = `LoRa ${(freq / 1e6).toFixed(3)} MHz BW${data[8]! * 125} SF${data[9]}${rssi === 0 ? '' : ` RSSI ${rssi - 139} dBm SNR ${data.readInt8(13) / 4} dB`}`
      return aitcp(data.subarray(hlen), 'air', `${radio} | `)
    }
    case 147: {
      let f
      try {
        f = decodeFrameBytes(data)
      } catch (err) {
        throw new Malformed(`firmware-bridge: ${errorText(err)}`)
      }
      const name = f.message === null ? 'ACK_ONLY' : f.message.type
      bridge[name] = (bridge[name] ?? 0) + 1
      const head = `firmware-bridge seq=${f.seq} ack=${f.ack} ${name}`
      const m = f.message
      if (m !== null && (m.type === 'Transmit' || m.type === 'Receive')) {
        const extra = m.type === 'Transmit' ? ` token=${m.token}` : ` RSSI ${m.rssiDbmX4 / 4} dBm SNR ${m.snrDbX4 / 4} dB`
        const r = aitcp(Buffer.from(m.payload), 'bridge', `${head}${extra} | `)
        return { ...r, proto: 'kairo_fb', bridge: name }
      }
      return { proto: 'kairo_fb', summary: head, bridge: name }
    }
    case LINKTYPE_AITCP:
      return aitcp(data, '-', '')
    default:
      return { proto: 'other', summary: `link type ${linktype} (${linktypeName(linktype)}): not decoded` }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The inspection                                                                               */

export interface InspectOptions {
  /** Keep a line per packet in the report (packet_list). */
  list?: boolean
  /** Called with each packet as it is read (for streaming output); a promise returned is awaited (backpressure). */
  onPacket?: (p: InspectPacket) => void | Promise<void>
  chunkBytes?: number
}

/**
 * Reads the whole capture and returns the report. Throws PcapFormatError / PcapFileError (from
 * pcap/reader.ts) for a file that cannot be read; never for what the packets hold.
 */
export async function inspectCapture(path: string, opts: InspectOptions = {}): Promise<InspectReport> {
  const sections: PcapSection[] = []
  const ifaces: PcapInterface[] = []
  const perIface: InspectInterface[] = []
  const frames = new FrameDecoder()
  const bridge: Record<string, number> = {}
  const byProto: Record<PacketProto, number> = { aitcp: 0, kairo_fb: 0, beacon: 0, other: 0, malformed: 0 }
  const malformed: InspectReport['malformed'] = { count: 0, first: [] }
  const skipped: Record<string, number> = {}
  const list: InspectPacket[] = []
  let packets = 0
  let bytes = 0
  let beacons = 0
  let withFrames = 0
  let first: bigint | null = null
  let last: bigint | null = null
  let format: 'pcapng' | 'pcap' = 'pcapng'
  let size = 0
  const label = (i: PcapInterface) => i.name ?? `#${i.id}`

  const onItem = (it: PcapItem): void | Promise<void> => {
    switch (it.kind) {
      case 'section':
        sections.push(it.section)
        format = it.section.format
        return
      case 'interface': {
        const i = it.iface
        ifaces.push(i)
        perIface.push({
          id: i.id,
          section: i.section,
          name: i.name ?? null,
          linktype: i.linktype,
          linktype_name: linktypeName(i.linktype),
          description: i.description ?? null,
          comment: i.comment ?? null,
          filter: i.filter ?? null,
          tsresol: i.tsresol,
          snaplen: i.snaplen,
          packets: 0,
          in: 0,
          out: 0,
          no_dir: 0,
          bytes: 0,
          frames: emptyCounts(),
          statistics: null,
        })
        return
      }
      case 'stats': {
        const s = it.stats
        const n = (v: bigint | undefined) => (v === undefined ? null : Number(v))
        perIface[s.interfaceId]!.statistics = { received: n(s.received), dropped: n(s.dropped), os_dropped: n(s.osDropped) }
        return
      }
      case 'skipped':
        skipped[it.name] = (skipped[it.name] ?? 0) + 1
        return
      case 'packet': {
        const p = it.packet
        const iface = ifaces[p.interfaceId]!
        const row = perIface[p.interfaceId]!
        packets++
        bytes += p.data.length
        row.packets++
        row.bytes += p.data.length
        if (p.dir === 'in') row.in++
        else if (p.dir === 'out') row.out++
        else row.no_dir++
        if (p.tsUs !== null) {
          if (first === null || p.tsUs < first) first = p.tsUs
          if (last === null || p.tsUs > last) last = p.tsUs
        }
        const trace = frames.begin(p.tsUs)
        let d: Decoded
        try {
          d = decodePacketData(iface.linktype, p, `if${iface.id}`, frames, bridge)
          frames.commit(trace, row.frames)
        } catch (err) {
          const reason = errorText(err)
          d = { proto: 'malformed', summary: `MALFORMED ${reason}`, malformed: reason }
        }
        if (d.proto === 'beacon') beacons++
        if (d.frames) withFrames++
        byProto[d.proto]++
        if (d.malformed !== undefined) {
          malformed.count++
          if (malformed.first.length < MALFORMED_LISTED) malformed.first.push({ frame: p.number, interface: label(iface), reason: d.malformed })
        }
        if (opts.list || opts.onPacket) {
          const line: InspectPacket = {
            number: p.number,
            time: p.tsUs === null ? null : isoMicros(p.tsUs),
            interface: label(iface),
            dir: p.dir ?? null,
            length: p.data.length,
            original_length: p.originalLength,
            proto: d.proto,
            summary: d.summary,
            ...(d.malformed === undefined && trace.kinds.length > 0 ? { kinds: trace.kinds } : {}),
            ...(d.malformed === undefined && trace.type !== undefined ? { type: trace.type } : {}),
            ...(d.malformed === undefined && trace.handshake !== undefined ? { handshake: trace.handshake } : {}),
            ...(d.malformed === undefined && trace.reassembled[0]?.type !== undefined ? { reassembled: trace.reassembled[0].type } : {}),
            ...(d.bridge === undefined ? {} : { bridge: d.bridge }),
            ...(d.malformed === undefined ? {} : { malformed: d.malformed }),
          }
          if (opts.list) list.push(line)
          return opts.onPacket?.(line)
        }
      }
    }
  }

  const it = iteratePcapFile(path, opts.chunkBytes === undefined ? {} : { chunkBytes: opts.chunkBytes })
  for await (const item of it) {
    const wait = onItem(item)
    if (wait !== undefined) await wait
  }
  size = (await stat(path).catch(() => ({ size: 0 }))).size

  const withStats = perIface.filter((i) => i.statistics !== null)
  const f = first as bigint | null
  const l = last as bigint | null
  const report: InspectReport = {
    file: path,
    format,
    size,
    sections: sections.map((s) => ({ index: s.index, byte_order: s.byteOrder, version: s.version, userappl: s.userappl ?? null, os: s.os ?? null, hardware: s.hardware ?? null, comment: s.comment ?? null })),
    interfaces: perIface.map((i) => ({ ...i, frames: { kinds: i.frames.kinds, types: sortKeys(i.frames.types) } })),
    packets,
    bytes,
    time: f === null || l === null ? null : { first: isoMicros(f), last: isoMicros(l), first_us: f.toString(), last_us: l.toString(), span_s: Number(l - f) / 1e6 },
    dropped_by_capture: withStats.length === 0 ? null : withStats.reduce((n, i) => n + (i.statistics!.dropped ?? 0) + (i.statistics!.os_dropped ?? 0), 0),
    by_proto: byProto,
    aitcp: { packets: withFrames, ...frames.counts, types: sortKeys(frames.counts.types), beacons, signatures: frames.signatures, reassembled: { ...frames.reassembled, types: sortKeys(frames.reassembled.types) } },
    bridge: { frames: Object.values(bridge).reduce((a, b) => a + b, 0), messages: sortKeys(bridge) },
    malformed,
    skipped_blocks: skipped,
  }
  if (opts.list) report.packet_list = list
  return report
}

function sortKeys(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)))
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                       */

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

function formatSpan(s: number): string {
  if (s < 1) return `${(s * 1000).toFixed(3)} ms`
  if (s < 120) return `${s.toFixed(3)} s`
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = Math.floor(s % 60)
  return h > 0 ? `${h}h ${m}m ${sec}s` : `${m}m ${sec}s`
}

/** The human report. */
export function renderInspect(r: InspectReport): string {
  const nSec = r.sections.length
  let s = `${escapeControl(r.file)}: ${r.format}, ${plural(nSec, 'section')}, ${plural(r.interfaces.length, 'interface')}, ${plural(r.packets, 'packet')} (${formatBytes(r.bytes)} captured, file ${formatBytes(r.size)})\n`
  const fields: [string, unknown][] = []
  if (r.time) fields.push(['time', `${r.time.first} .. ${r.time.last} (${formatSpan(r.time.span_s)})`])
  for (const sec of r.sections) {
    const who = [sec.userappl, sec.os, sec.hardware].filter((x) => x !== null).join(', ')
    const tag = nSec > 1 ? `section ${sec.index}` : 'written by'
    if (who !== '' || nSec > 1) fields.push([tag, `${who || '-'}${nSec > 1 ? ` (${sec.byte_order}-endian)` : ''}`])
    if (sec.comment !== null) fields.push([nSec > 1 ? `section ${sec.index} comment` : 'comment', sec.comment])
  }
  fields.push(['dropped by capture', r.dropped_by_capture === null ? 'not recorded (no interface statistics in the file)' : r.dropped_by_capture])
  const skipped = Object.entries(r.skipped_blocks)
  if (skipped.length > 0) fields.push(['other blocks', skipped.map(([k, v]) => `${k} ${v}`).join(', ')])
  s += renderFields(fields)
  s += '\n'
  s += renderTable(
    [
      { header: 'ID', align: 'right' },
      { header: 'INTERFACE' },
      { header: 'LINK TYPE' },
      { header: 'PACKETS', align: 'right' },
      { header: 'IN', align: 'right' },
      { header: 'OUT', align: 'right' },
      { header: 'BYTES', align: 'right' },
      { header: 'DROPPED', align: 'right' },
      { header: 'DESCRIPTION / COMMENT' },
    ],
    r.interfaces.map((i) => [
      i.id,
      i.name,
      `${i.linktype} ${i.linktype_name}`,
      i.packets,
      i.in,
      i.out,
      i.bytes,
      i.statistics === null ? null : (i.statistics.dropped ?? 0) + (i.statistics.os_dropped ?? 0),
      [i.description, i.comment, i.filter === null ? null : `filter: ${i.filter}`].filter((x) => x !== null).join('; '),
    ]),
    '(no interfaces)',
  )
  const a = r.aitcp
  const framesTotal = a.kinds.data + a.kinds.packet + a.kinds.fragment
  s += `\nAI-TCP: ${plural(a.packets, 'packet')} with frames; ${plural(framesTotal, 'frame')} (Data ${a.kinds.data}, Packet ${a.kinds.packet}, Fragment ${a.kinds.fragment}), ${a.kinds.hop} in Hop frames\n`
  const types = Object.entries(a.types)
  if (types.length > 0) s += renderTable([{ header: 'TYPE' }, { header: 'FRAMES', align: 'right' }], types)
  if (a.reassembled.frames > 0) {
    s += `reassembled from fragments: ${plural(a.reassembled.frames, 'frame')}: ${Object.entries(a.reassembled.types).map(([k, v]) => `${k} ${v}`).join(', ') || '-'}\n`
  }
  const sig = a.signatures
  if (sig.verified + sig.failed + sig.unknown_key > 0) s += `signatures: ${sig.verified} verified, ${sig.failed} failed, ${sig.unknown_key} not checked${sig.unknown_key > 0 ? ' (no announce of their source in the capture)' : ''}\n`
  if (r.bridge.frames > 0) s += `firmware-bridge: ${plural(r.bridge.frames, 'link frame')} (${Object.entries(r.bridge.messages).map(([k, v]) => `${k} ${v}`).join(', ')})\n`
  if (a.beacons > 0) s += `UDP beacons: ${a.beacons}\n`
  if (r.by_proto.other > 0) s += `other traffic (not AI-TCP): ${plural(r.by_proto.other, 'packet')}\n`
  s += `malformed: ${r.malformed.count}\n`
  for (const m of r.malformed.first) s += `  frame ${m.frame} (${escapeControl(m.interface)}): ${escapeControl(m.reason)}\n`
  if (r.malformed.count > r.malformed.first.length) s += `  (${r.malformed.count - r.malformed.first.length} more: --packets lists them all)\n`
  return s
}

const PACKET_HEADER = `${'NO'.padStart(7)}  ${'TIME'.padEnd(27)}  ${'INTERFACE'.padEnd(12)}  DIR  ${'LEN'.padStart(5)}  SUMMARY\n`

/** One --packets line, fixed widths (streamed: the table cannot be measured ahead). */
export function packetLine(p: InspectPacket): string {
  return `${String(p.number).padStart(7)}  ${(p.time ?? '-').padEnd(27)}  ${escapeControl(p.interface).padEnd(12)}  ${(p.dir ?? '-').padEnd(3)}  ${String(p.length).padStart(5)}  ${escapeControl(p.summary)}`.trimEnd() + '\n'
}


const JSON_REPLACER = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)

function parseChunk(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 24) throw new InvalidArgumentError('must be a number of bytes, at least 24')
  return Number(value)
}

/** Adds `inspect` to the `kairo-gw pcap` command group. */
export function registerPcapInspect(pcap: Command): void {
  pcap
    .command('inspect')
    .description('what a capture file holds, without Wireshark: interfaces, packets per interface and direction, time span, AI-TCP frame kinds and types, malformed frames')
    .argument('<file>', 'a pcapng or pcap file (e.g. from `kairo-gw pcap capture` or `pcap generate`, tcpdump, Wireshark)')
    .option('--json', 'print the report as one JSON object', false)
    .option('--packets', 'also list every packet: number, time, interface, direction, length, what it carries', false)
    .addOption(new Option('--chunk-bytes <n>', 'read the file in chunks of N bytes (default 1 MiB)').argParser(parseChunk).hideHelp())
    .addHelpText(
      'after',
      `
Examples:
  $ kairo-gw pcap inspect capture.pcapng
  capture.pcapng: pcapng, 1 section, 4 interfaces, 100 packets (16 KiB captured, file 21 KiB)
    time                2026-01-01T00:00:00.010830Z .. 2026-01-01T00:00:08.432468Z (8.422 s)
    written by          kairo-gw 0.1.0
    dropped by capture  0

  ID  INTERFACE     LINK TYPE                             PACKETS  IN  OUT  BYTES  DROPPED  DESCRIPTION / COMMENT
   0  eth0          1 ETHERNET                                 18   9    9   3522        0  raw Ethernet link ...
   2  lora0         270 LORATAP                                13   6    7   2699        0  LoRa link, air side ...
   ...
  AI-TCP: 65 packets with frames; 65 frames (Data 24, Packet 25, Fragment 16), 26 in Hop frames
  TYPE                FRAMES
  ACK                     10
  ANNOUNCE                 6
  ...
  reassembled from fragments: 8 frames: ANNOUNCE 4, HANDSHAKE 4
  signatures: 16 verified, 0 failed, 0 not checked
  firmware-bridge: 46 link frames (ACK_ONLY 18, Configure 1, ..., Transmit 7, TxDone 7)
  malformed: 1
    frame 17 (lora0): Hop > Packet: Packet.header.type 0x63 is not a known packet type
  $ kairo-gw pcap inspect capture.pcapng --packets | less
  $ kairo-gw pcap inspect capture.pcapng --json | jq '.aitcp.types, .malformed'

Frames are decoded by the gateway's own code: Ethernet (EtherType 0x88B5, or IP protocol 253,
or UDP port ${AITCP_UDP_PORTS.join('/')}), IP/UDP (link type 101), LoRaTap (270), firmware-bridge link frames (147,
their Transmit/Receive payloads), bare AI-TCP frames (148); then Data, Packet (announce
signatures verified), Fragment (reassembled) and Hop frames. A Hop frame counts as hop and as
the kind of frame it carries.

A truncated or corrupt file is an error naming the file, the byte offset and the block, e.g.
  kairo-gw: capture.pcapng: block at offset 1284 (Enhanced Packet) claims 65540 bytes but only 212 remain: the file is truncated
(a file cut exactly between two blocks cannot be told from a shorter capture, and reads as one).

Exit codes:
  0  the file was read (malformed frames inside it are reported, not an error)
  1  the file cannot be read: missing, a directory, not pcap/pcapng, truncated or corrupt
  2  usage error`,
    )
    .action(async (file: string, opts: { json: boolean; packets: boolean; chunkBytes?: number }, cmd: Command) => {
      const o = outputOf(cmd)
      let report: InspectReport
      let headerShown = false
      // --packets lines are written in batches, waiting for stdout to drain (a pager reading slowly
      // must not make them pile up in memory).
      let pending = ''
      const flush = async (): Promise<void> => {
        if (pending === '') return
        o.out(pending)
        pending = ''
        if (process.stdout.writableNeedDrain) await once(process.stdout, 'drain')
      }
      try {
        report = await inspectCapture(file, {
          list: opts.json && opts.packets,
          ...(opts.chunkBytes === undefined ? {} : { chunkBytes: opts.chunkBytes }),
          ...(!opts.json && opts.packets
            ? {
                onPacket: (p: InspectPacket) => {
                  if (!headerShown) {
                    pending += PACKET_HEADER
                    headerShown = true
                  }
                  pending += packetLine(p)
                  return pending.length >= 65_536 ? flush() : undefined
                },
              }
            : {}),
        })
      } catch (err) {
        await flush()
        if (isPcapError(err)) throw new CliError(escapeControl(err.message))
        throw err
      }
      await flush()
      if (opts.json) {
        o.out(JSON.stringify(report, JSON_REPLACER) + '\n')
        return
      }
      if (headerShown) o.out('\n')
      o.out(renderInspect(report))
    })
}
