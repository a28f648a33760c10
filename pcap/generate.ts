/**
 * `kairo-gw pcap generate`: a realistic sample capture of AI-TCP traffic, reproducible from a seed.
 *
 * Nothing in the file is made up byte by byte: four simulated gateways with identities derived
 * from the seed run the repo's own packet code (SessionManager handshakes and sessions, signed
 * announces and broadcasts, fragmentation, hop headers, the firmware-bridge codec, Ethernet and
 * UDP encapsulation), and every frame one of them sends is also handed to the receiving node,
 * which must accept it (verify the signature, complete the handshake, open the Data frame).
 *
 * The capture point is gateway A ("gw-alpha"). Its four interfaces are the IDBs of the file:
 *
 *   0 eth0          linktype 1 (Ethernet)   A <-> B ("gw-bravo") over raw Ethernet, EtherType 0x88B5
 *   1 udp0          linktype 101 (raw IP)    A <-> C ("gw-charlie") over UDP/IPv4, port 47800
 *   2 lora0         linktype 270 (LoRaTap)   A <-> D ("gw-delta") on air: hop headers, fragments
 *   3 lora0/bridge  linktype 147 (USER0)     A's firmware-bridge serial line to its LoRa MCU
 *
 * Each IDB's comment names the node ("node <hex id>"). The traffic is a sequence of rounds; a
 * round is: announces and UDP beacons (every third round, the first included), an idle pause
 * (heartbeats on the bridge), an IK handshake with B and messages both ways with their ACKs and
 * a KEEPALIVE, a signed broadcast from B flooded on by A, a handshake with C (XX when C has
 * just restarted, IK otherwise) with messages and a CLOSE, and an IK handshake with D over LoRa
 * (IK message 0 and announces take two fragments) with messages. Message types rotate so that
 * every agent type appears on every link. Rounds repeat until exactly `count` packets are
 * written; the first round (about 80 packets) already has every interface and packet kind.
 *
 * Determinism: every random value (identity seeds, ephemeral keys, session indexes, packet IDs,
 * message IDs, payloads, MACs, radio figures, timing) comes from BLAKE2b over the seed and a
 * counter; timestamps start at 2026-01-01T00:00:00Z and advance by seeded amounts. No clock, no
 * Math.random, no CSPRNG. The same seed and count give the same bytes; another seed other bytes.
 *
 * The manifest lists, per packet, the fields the Wireshark dissector (pcap/kairo-gw.lua) must
 * show, named and formatted as docs/pcap.md and the issue-6 contract say (tshark -T fields
 * conventions: integers in decimal, bytes as lowercase hex, strings as they are). Only fields the
 * dissector shows once per packet are listed: aitcp.version and aitcp.kind are the outermost
 * frame's (a Hop frame's: kind 4), never those of the frame inside it (the dissector shows those
 * as aitcp.inner.*, which the contract does not name); FlatBuffers scalars absent from their
 * table (holding the default 0) are left out; a reassembling dissector shows the whole frame's
 * fields on the last fragment too, and those are not listed; repeated announce fields
 * (link_name, link_kind) are joined with ',' as tshark prints them.
 */
import { createHash } from 'node:crypto'
import { blake2b, dhFromSecret } from '../appliance/core/crypto.js'
import { Identity } from '../appliance/core/identity.js'
import { SessionManager } from '../appliance/core/sessions.js'
import { decodeFragmentHeader, fragment, FRAGMENT_HEADER_BYTES } from '../appliance/core/fragment.js'
import { decodeAnnounceBody, encodeAnnounceBody, openAnnounce, ANNOUNCE_SPEC, type AnnouncedLink } from '../appliance/core/wire/announce.js'
import { decodePacket, decrementPacketHop, encodeSignedPacket, reencodePacket, verifyPacketSignature, PACKET_SPEC } from '../appliance/core/wire/packet.js'
import { decodeHandshake, HANDSHAKE_SPEC } from '../appliance/core/wire/handshake.js'
import { checkDataFrame } from '../appliance/core/wire/data.js'
import {
  AGENT_TYPES,
  DATA_OVERHEAD,
  DEFAULT_HOP_LIMIT,
  HandshakePattern,
  LinkKind,
  LORA_MTU,
  PACKET_PREFIX_BYTES,
  PacketFlags,
  PacketType,
  TAG_BYTES,
  VK_DATA,
  VK_FRAGMENT,
  VK_PACKET,
  packetTypeName,
} from '../appliance/core/wire/constants.js'
import type { TableSpec } from '../appliance/core/wire/verify.js'
import { decodeHop, encodeHop, hintOf, HOP_HEADER_BYTES, VK_HOP } from '../appliance/mesh/hop.js'
import { addCost, hopCost } from '../appliance/mesh/metric.js'
import { Capabilities, decodeFrameBytes, Flags, frameBytes, MESSAGE_SPECS, PROTOCOL_VERSION, RadioChip, bodyTypeOf, type Message } from '../firmware-bridge/codec.js'
import { BROADCAST_MAC, decodeEthernetFrame, encodeEthernetFrame, stripIpv4Header } from '../drivers/ethernet/frame.js'
import { DEFAULT_RADIO, phyLimitBytesPerSecond, timeOnAirMs, type RadioConfig } from '../drivers/lora/radio.js'
import { UDP_BEACON, UDP_DEFAULT_GROUP_V4 } from '../drivers/udp/link.js'
import { packageVersion } from '../appliance/cli/version.js'
import { LORATAP_HEADER_BYTES, loraTapHeader, udpPacket } from './encap.js'
import { enhancedPacketBlock, fileHeader, interfaceStatisticsBlock, LINKTYPE, type Direction, type InterfaceDescription } from './pcapng.js'

/** Packets written when no count is given. */
export const DEFAULT_COUNT = 100
/** The seed used when none is given (documented in --help), so that the default file is reproducible. */
export const DEFAULT_SEED = '1'
/** Most packets one call writes (the whole file is built in memory). */
export const MAX_COUNT = 1_000_000
/** Longest seed, bytes of UTF-8. */
export const MAX_SEED_BYTES = 256
/** First timestamp of every generated capture: 2026-01-01T00:00:00Z, µs since the epoch. */
export const BASE_TIME_US = 1_767_225_600_000_000
/** The UDP port of the sample's UDP link (kairo-gw's default). */
export const SAMPLE_UDP_PORT = 47800

const DOMAIN = Buffer.from('kairo-gw/pcap-generate/v1')
const BASE_MS = BASE_TIME_US / 1000
/** LoRa frame room for a frame behind the hop header (as MeshNode: MTU less the 12-byte header). */
const LORA_ROOM = LORA_MTU - HOP_HEADER_BYTES
/** The sample's radio: the defaults at SF7 (EU868 g3 sub-band, 869.525 MHz, BW 125 kHz). */
export const SAMPLE_RADIO: Readonly<RadioConfig> = Object.freeze({ ...DEFAULT_RADIO, spreadingFactor: 7 })
/** Heartbeat interval on the firmware bridge (Hello.heartbeat_ms), µs. */
const HEARTBEAT_US = 1_000_000
/** Serial line of the firmware bridge: 115200 baud, 10 bits a byte. */
const SERIAL_US_PER_BYTE = 1e6 / 11_520

export interface ManifestPacket {
  /** 1-based packet number in the file (tshark frame.number). */
  frame: number
  /** The IDB's if_name. */
  interface: string
  linktype: number
  dir: Direction
  proto: 'aitcp' | 'kairo_fb'
  /** Expected dissector fields: name → value in tshark -T fields conventions. */
  fields: Record<string, string>
}

/**
 * What a Noise key log holds for one handshake message the generator wrote (like TLS's
 * SSLKEYLOGFILE): enough for a reader holding the nodes' identities to recompute the message
 * with a SessionManager and so decrypt the sessions. Tests use it; it is never in the file.
 */
export interface KeyLogEntry {
  /** Packet ID of the handshake Packet. */
  packet_id: number
  /** Node ID of the writer, hex. */
  src: string
  pattern: 'XX' | 'IK'
  message: number
  /** The writer's ephemeral X25519 secret, hex (on the first message each side writes). */
  ephemeral_secret?: string
  /** Handshake payload timestamp, ms (on messages that carry one). */
  timestamp_ms?: number
}

export interface SampleNode {
  /** 'A'..'D'. */
  name: string
  host: string
  node_id: string
  /** How the capture point sees it: 'capture point', or the interface it is heard on. */
  role: string
}

export interface GenerateSummary {
  packets: number
  bytes: number
  seed: string
  sha256: string
  /** Packets per interface (if_name). */
  interfaces: Record<string, number>
  /** Packets per kind: data:<TYPE>, packet:<TYPE>, handshake:XX|IK, broadcast:<TYPE>, fragment, beacon, fb:<Message>|fb:ACK_ONLY. */
  types: Record<string, number>
  nodes: SampleNode[]
}

export interface GenerateOptions {
  /** Packets to write, 1..MAX_COUNT (default 100). */
  count?: number
  /** Any text (default DEFAULT_SEED); a number is taken as its decimal text. */
  seed?: string | number
  /** Called as packets are made: (done, total), at most about 100 times. */
  onProgress?: (done: number, total: number) => void
  /** Build the manifest (default true; the CLI skips it without --manifest). */
  manifest?: boolean
  /** Return the Noise key log (default false). */
  keyLog?: boolean
}

export interface GeneratedCapture {
  bytes: Buffer
  manifest: ManifestPacket[]
  summary: GenerateSummary
  keyLog: KeyLogEntry[]
}

// ---------------------------------------------------------------------------------------------
// The deterministic random source

/** BLAKE2b-512(key = K_label, LE64(counter)), K_label = BLAKE2b-256(key = BLAKE2b-256(domain || seed), label). */
export class Drbg {
  private readonly key: Buffer
  private block = 0n
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0
  private readonly ctr = Buffer.alloc(8)

  constructor(seedKey: Uint8Array, label: string) {
    this.key = blake2b(32, [Buffer.from(label, 'utf8')], seedKey)
  }

  fill(out: Uint8Array): void {
    let o = 0
    while (o < out.length) {
      if (this.pos >= this.buf.length) {
        this.ctr.writeBigUInt64LE(this.block++)
        this.buf = blake2b(64, [this.ctr], this.key)
        this.pos = 0
      }
      const n = Math.min(out.length - o, this.buf.length - this.pos)
      out.set(this.buf.subarray(this.pos, this.pos + n), o)
      this.pos += n
      o += n
    }
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    this.fill(b)
    return b
  }

  u32(): number {
    const b = Buffer.alloc(4)
    this.fill(b)
    return b.readUInt32LE(0)
  }

  /** Integer in lo..hi (inclusive). */
  int(lo: number, hi: number): number {
    return lo + (this.u32() % (hi - lo + 1))
  }

  /** In [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!
  }
}

/** The 32-byte key every stream of a capture derives from. */
export function seedKey(seed: string): Buffer {
  return blake2b(32, [DOMAIN, Buffer.from(seed, 'utf8')])
}

/** Checks and normalises a seed: non-empty text of at most 256 bytes, no control characters. */
export function normalizeSeed(seed: string | number | undefined): string {
  const s = seed === undefined ? DEFAULT_SEED : typeof seed === 'number' ? String(seed) : seed
  if (typeof s !== 'string' || s.length === 0) throw new TypeError('seed must be non-empty text')
  if (Buffer.byteLength(s, 'utf8') > MAX_SEED_BYTES) throw new TypeError(`seed is longer than ${MAX_SEED_BYTES} bytes`)
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new TypeError('seed must not contain control characters')
  return s
}

// ---------------------------------------------------------------------------------------------
// The sample's nodes

const NODE_SPECS = [
  { name: 'A', host: 'gw-alpha', role: 'capture point' },
  { name: 'B', host: 'gw-bravo', role: 'eth0 neighbour' },
  { name: 'C', host: 'gw-charlie', role: 'udp0 neighbour' },
  { name: 'D', host: 'gw-delta', role: 'lora0 neighbour' },
] as const

/** The identities of the sample's gateways for a seed (A is the capture point). */
export function sampleIdentities(seed: string | number = DEFAULT_SEED): Record<'A' | 'B' | 'C' | 'D', Identity> {
  const key = seedKey(normalizeSeed(seed))
  const out = {} as Record<'A' | 'B' | 'C' | 'D', Identity>
  for (const n of NODE_SPECS) out[n.name] = Identity.fromSeed(new Drbg(key, `identity/${n.name}`).bytes(32))
  return out
}

const LORA_BITRATE = Math.round(phyLimitBytesPerSecond(SAMPLE_RADIO) * 8)
const LINKS: Record<string, AnnouncedLink> = {
  eth0: { kind: LinkKind.Ethernet, name: 'eth0', mtu: 1498, bitrate: 1_000_000_000 },
  udp0: { kind: LinkKind.Udp, name: 'udp0', mtu: 1200, bitrate: 100_000_000 },
  lora0: { kind: LinkKind.LoRa, name: 'lora0', mtu: 255, bitrate: LORA_BITRATE },
}

interface SimNode {
  name: 'A' | 'B' | 'C' | 'D'
  host: string
  identity: Identity
  hex: string
  hint: number
  /** Scenario choices of this node (packet IDs, message IDs, fragment IDs, payloads). */
  rng: Drbg
  sm: SessionManager
  incarnation: number
  links: AnnouncedLink[]
  uuid: Buffer
  meshIp: number
  mac: Buffer
  ip: string
  lastAnnounce: number
  lastWall: number
  /** What the last SessionManager call used: for the key log. */
  ephUsed: Buffer | null
  tsUsed: number | null
}

type Link = 'eth' | 'udp' | 'lora'
const IF_ETH = 0
const IF_UDP = 1
const IF_LORA = 2
const IF_FB = 3

// ---------------------------------------------------------------------------------------------
// Describing packets: the manifest fields, from the bytes

export interface PacketDescription {
  proto: 'aitcp' | 'kairo_fb'
  fields: Record<string, string>
  /** A short kind for summaries: data:TASK_REQUEST, handshake:IK, fb:Transmit, ... */
  label: string
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

/** Field offsets of a FlatBuffers table's vtable slots (0 = absent). The buffer must be verified. */
function slotOffsets(buf: Buffer, table: number): number[] {
  const vt = table - buf.readInt32LE(table)
  const size = buf.readUInt16LE(vt)
  const out: number[] = []
  for (let o = 4; o < size; o += 2) out.push(buf.readUInt16LE(vt + o))
  return out
}

/** Names of the fields of `spec` present in the table at `table` (a union takes two slots). */
function presentFields(spec: TableSpec, buf: Buffer, table: number): Set<string> {
  const slots = slotOffsets(buf, table)
  const out = new Set<string>()
  let i = 0
  for (const f of spec.fields) {
    if (f.kind === 'union') {
      if ((slots[i + 1] ?? 0) !== 0) out.add(f.name)
      i += 2
    } else {
      if ((slots[i] ?? 0) !== 0) out.add(f.name)
      i++
    }
  }
  return out
}

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength))

/** The fields of one AI-TCP frame; returns its label. The vk of the frame inside a Hop frame is not listed. */
function describeAitcp(frame: Buffer, f: Record<string, string>, inHop: boolean): string {
  const vk = frame[0] ?? 0
  if (!inHop) {
    f['aitcp.version'] = String(vk >> 4)
    f['aitcp.kind'] = String(vk & 0x0f)
  }
  if (vk === VK_HOP) {
    if (inHop) throw new TypeError('a Hop frame inside a Hop frame')
    const h = decodeHop(frame)
    f['aitcp.hop.next'] = String(h.next)
    f['aitcp.hop.prev'] = String(h.prev)
    return describeAitcp(h.frame, f, true)
  }
  if (vk === VK_FRAGMENT) {
    const h = decodeFragmentHeader(frame)
    f['aitcp.frag.index'] = String(h.index)
    f['aitcp.frag.count'] = String(h.count)
    f['aitcp.frag.id'] = String(h.fragId)
    f['aitcp.frag.chunk_len'] = String(frame.length - FRAGMENT_HEADER_BYTES)
    return 'fragment'
  }
  if (vk === VK_DATA) {
    checkDataFrame(frame)
    f['aitcp.type'] = String(frame[1])
    f['aitcp.flags'] = String(frame[2])
    f['aitcp.hop_limit'] = String(frame[3])
    f['aitcp.session'] = String(frame.readUInt32LE(4))
    f['aitcp.dst'] = hex(frame.subarray(8, 24))
    f['aitcp.seq_protected'] = hex(frame.subarray(24, 32))
    f['aitcp.ciphertext_len'] = String(frame.length - DATA_OVERHEAD)
    f['aitcp.tag'] = hex(frame.subarray(frame.length - TAG_BYTES))
    return `data:${packetTypeName(frame[1]!)}`
  }
  if (vk === VK_PACKET) {
    const p = decodePacket(frame)
    const fb = frame.subarray(PACKET_PREFIX_BYTES)
    const present = presentFields(PACKET_SPEC, fb, fb.readUInt32LE(0))
    f['aitcp.type'] = String(p.type)
    f['aitcp.flags'] = String(p.flags)
    f['aitcp.hop_limit'] = String(p.hopLimit)
    f['aitcp.packet_id'] = String(p.packetId)
    f['aitcp.src'] = hex(p.src)
    if (p.dst !== null) f['aitcp.dst'] = hex(p.dst)
    if (present.has('payload')) f['aitcp.payload_len'] = String(p.payload.length)
    if (p.signature !== null) f['aitcp.signature'] = hex(p.signature)
    if (present.has('path_cost')) f['aitcp.path_cost'] = String(p.pathCost)
    if (p.type === PacketType.Handshake) {
      const h = decodeHandshake(p.payload)
      const hp = presentFields(HANDSHAKE_SPEC, p.payload, p.payload.readUInt32LE(0))
      if (hp.has('pattern')) f['aitcp.hs.pattern'] = String(h.pattern)
      if (hp.has('message')) f['aitcp.hs.message'] = String(h.message)
      if (hp.has('sender_index')) f['aitcp.hs.sender_index'] = String(h.senderIndex)
      if (hp.has('receiver_index')) f['aitcp.hs.receiver_index'] = String(h.receiverIndex)
      f['aitcp.hs.noise_len'] = String(h.noise.length)
      return `handshake:${h.pattern === HandshakePattern.IK ? 'IK' : 'XX'}`
    }
    if (p.type === PacketType.Announce) {
      const a = decodeAnnounceBody(p.payload)
      const ap = presentFields(ANNOUNCE_SPEC, p.payload, p.payload.readUInt32LE(0))
      f['aitcp.ann.identity_key'] = hex(a.identityKey)
      f['aitcp.ann.static_key'] = hex(a.staticKey)
      if (ap.has('capabilities')) f['aitcp.ann.capabilities'] = String(a.capabilities)
      if (ap.has('timestamp')) f['aitcp.ann.timestamp'] = String(a.timestamp)
      if (ap.has('interval_ms')) f['aitcp.ann.interval_ms'] = String(a.intervalMs ?? 0)
      if (a.uuid !== undefined) f['aitcp.ann.uuid'] = hex(a.uuid)
      if (ap.has('mesh_ip')) f['aitcp.ann.mesh_ip'] = String(a.meshIp ?? 0)
      if (a.name !== undefined) f['aitcp.ann.name'] = a.name
      // Repeated fields: listed only when every occurrence is there (kind 0 would be absent).
      if (a.links.length > 0 && a.links.every((l) => !l.name.includes(','))) f['aitcp.ann.link_name'] = a.links.map((l) => l.name).join(',')
      if (a.links.length > 0 && a.links.every((l) => l.kind !== 0)) f['aitcp.ann.link_kind'] = a.links.map((l) => String(l.kind)).join(',')
      return 'packet:ANNOUNCE'
    }
    return `${p.dst === null ? 'broadcast' : 'packet'}:${packetTypeName(p.type)}`
  }
  throw new TypeError(`first byte 0x${vk.toString(16).padStart(2, '0')} is not an AI-TCP frame`)
}

/** Message property (camelCase) → schema field name. */
const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())

/**
 * How a schema field of a firmware-bridge message is listed: [manifest name, value] pairs as the
 * contract names them (kairo_fb.<schema name>; the radio payload as its length, the quarter-dB
 * figures in dB, the spreading factor also as kairo_fb.sf). Booleans are not listed: their
 * tshark rendering is not pinned down.
 */
function fbFields(name: string, value: unknown): [string, string][] {
  if (name === 'payload') return [['kairo_fb.payload_len', String((value as Uint8Array).length)]]
  if (name === 'rssi_dbm_x4') return [['kairo_fb.rssi_dbm', String((value as number) / 4)]]
  if (name === 'snr_db_x4') return [['kairo_fb.snr_db', String((value as number) / 4)]]
  if (name === 'spreading_factor') return [['kairo_fb.spreading_factor', String(value)], ['kairo_fb.sf', String(value)]]
  if (typeof value === 'number' || typeof value === 'string') return [[`kairo_fb.${name}`, String(value)]]
  return []
}

function describeFb(bytes: Buffer, f: Record<string, string>): string {
  const frame = decodeFrameBytes(bytes)
  const n = bytes.length
  f['kairo_fb.version'] = String(frame.version)
  f['kairo_fb.flags'] = String(frame.flags)
  f['kairo_fb.seq'] = String(frame.seq)
  f['kairo_fb.ack'] = String(frame.ack)
  f['kairo_fb.crc'] = String(bytes.readUInt32LE(n - 4))
  f['kairo_fb.crc_ok'] = '1'
  const m = frame.message
  if (m === null) return 'fb:ACK_ONLY'
  const code = bodyTypeOf(m.type)
  f['kairo_fb.msg'] = String(code)
  f['kairo_fb.msg_name'] = m.type
  const spec = MESSAGE_SPECS[code]
  if (spec !== undefined) {
    const body = bytes.subarray(4, n - 4)
    const root = body.readUInt32LE(0)
    const at = root + (slotOffsets(body, root)[1] ?? 0)
    const present = presentFields(spec, body, at + body.readUInt32LE(at))
    const values: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(m)) {
      if (k === 'config' && v !== null && typeof v === 'object') for (const [ck, cv] of Object.entries(v)) values[snake(ck)] = cv
      else values[snake(k)] = v
    }
    for (const field of spec.fields) {
      if (!present.has(field.name)) continue
      for (const [k, v] of fbFields(field.name, values[field.name])) f[k] = v
    }
  }
  return `fb:${m.type}`
}

/**
 * The manifest fields of one captured packet of `linktype` (the packet data of its EPB), read
 * from the bytes with the repo's decoders. Throws (MalformedPacketError, TypeError) on a packet
 * that is not what kairo-gw writes.
 */
export function describePacket(linktype: number, data: Uint8Array): PacketDescription {
  const b = asBuffer(data)
  const fields: Record<string, string> = {}
  let frame: Buffer
  switch (linktype) {
    case LINKTYPE.KAIRO_FB:
      return { proto: 'kairo_fb', fields, label: describeFb(b, fields) }
    case LINKTYPE.ETHERNET: {
      const e = decodeEthernetFrame(b)
      if (!e.ok) throw new TypeError(`not a kairo-gw Ethernet frame (${e.reason})`)
      frame = e.payload
      break
    }
    case LINKTYPE.RAW: {
      const ip = stripIpv4Header(b, 17)
      if (!ip.ok) throw new TypeError(`not an IPv4 UDP packet (${ip.reason})`)
      frame = ip.payload.subarray(8)
      break
    }
    case LINKTYPE.LORATAP:
      frame = b.subarray(LORATAP_HEADER_BYTES)
      break
    default:
      throw new TypeError(`linktype ${linktype} is not one kairo-gw writes`)
  }
  if (frame.equals(UDP_BEACON)) return { proto: 'aitcp', fields, label: 'beacon' }
  return { proto: 'aitcp', fields, label: describeAitcp(frame, fields, false) }
}

// ---------------------------------------------------------------------------------------------
// The simulation

/** Thrown when the count is reached, to unwind the scenario. */
class Enough extends Error {}

interface BridgeSide {
  /** Next sequence number of a reliable frame. */
  seq: number
  /** Next sequence number expected from the other side. */
  expect: number
  /** When this side owes an acknowledgement (µs), else null. */
  owes: number | null
  /** When it sends a Heartbeat unless it sends something else first. */
  nextHeartbeat: number
}

class Generator {
  readonly key: Buffer
  readonly rng: Drbg
  readonly nodes: Record<'A' | 'B' | 'C' | 'D', SimNode>
  /** Simulated time, µs since BASE_TIME_US. */
  t = 0
  private lastEmit = 0
  private readonly blocks: Buffer[] = []
  private byteCount = 0
  readonly manifest: ManifestPacket[] = []
  readonly keyLog: KeyLogEntry[] = []
  readonly perInterface = [0, 0, 0, 0]
  private readonly firstTs: number[] = [-1, -1, -1, -1]
  private readonly lastTs: number[] = [0, 0, 0, 0]
  readonly types: Record<string, number> = {}
  packets = 0
  private progressStep = -1
  private readonly interfaces: InterfaceDescription[]
  private readonly fb = {
    up: false,
    host: { seq: 0, expect: 0, owes: null, nextHeartbeat: Infinity } as BridgeSide,
    mcu: { seq: 0, expect: 0, owes: null, nextHeartbeat: Infinity } as BridgeSide,
    token: 0,
    bootUs: 0,
  }
  private readonly radio: { rssi: number; snrX4: number; freqErr: number }

  constructor(
    readonly seed: string,
    readonly count: number,
    private readonly withManifest: boolean,
    private readonly onProgress: ((done: number, total: number) => void) | undefined,
  ) {
    this.key = seedKey(seed)
    this.rng = new Drbg(this.key, 'scenario')
    const ids = sampleIdentities(seed)
    const nodes = {} as Record<'A' | 'B' | 'C' | 'D', SimNode>
    for (const spec of NODE_SPECS) {
      const identity = ids[spec.name]
      const rng = new Drbg(this.key, `node/${spec.name}`)
      const mac = rng.bytes(6)
      mac[0] = (mac[0]! & 0xfc) | 0x02 // locally administered, unicast
      const node: SimNode = {
        name: spec.name,
        host: spec.host,
        identity,
        hex: identity.nodeIdHex,
        hint: hintOf(identity.nodeId),
        rng,
        sm: undefined as unknown as SessionManager,
        incarnation: 0,
        links: spec.name === 'A' ? [LINKS.eth0!, LINKS.udp0!, LINKS.lora0!] : [spec.name === 'B' ? LINKS.eth0! : spec.name === 'C' ? LINKS.udp0! : LINKS.lora0!],
        uuid: uuidV4(rng.bytes(16)),
        meshIp: ((100 << 24) | (64 << 16) | rng.int(1, 0xfffe)) >>> 0,
        mac,
        ip: `192.168.47.${10 * (NODE_SPECS.indexOf(spec) + 1)}`,
        lastAnnounce: 0,
        lastWall: 0,
        ephUsed: null,
        tsUsed: null,
      }
      node.sm = this.manager(node)
      nodes[spec.name] = node
    }
    this.nodes = nodes
    this.radio = { rssi: this.rng.int(-112, -70), snrX4: this.rng.int(-24, 40), freqErr: this.rng.int(-2500, 2500) || 700 }
    this.fb.bootUs = this.rng.int(5, 3600) * 1_000_000
    const comment = `node ${nodes.A.hex}`
    const cfg = SAMPLE_RADIO
    this.interfaces = [
      { linktype: LINKTYPE.ETHERNET, name: 'eth0', description: 'raw Ethernet link (EtherType 0x88B5)', filter: 'ether proto 0x88b5', comment },
      { linktype: LINKTYPE.RAW, name: 'udp0', description: `UDP link ${nodes.A.ip}:${SAMPLE_UDP_PORT}, group ${UDP_DEFAULT_GROUP_V4}`, comment },
      {
        linktype: LINKTYPE.LORATAP,
        name: 'lora0',
        description: `LoRa link, air side: ${cfg.frequencyHz / 1e6} MHz, SF${cfg.spreadingFactor}, BW ${cfg.bandwidthHz / 1000} kHz, CR 4/${cfg.codingRate}`,
        comment,
      },
      { linktype: LINKTYPE.KAIRO_FB, name: 'lora0/bridge', description: 'LoRa link, serial side: firmware-bridge link frames (COBS-decoded) to the SX1262 MCU', comment },
    ]
  }

  /** A SessionManager for `node` whose randomness, ephemeral keys and clocks are the simulation's. */
  private manager(node: SimNode): SessionManager {
    const random = new Drbg(this.key, `sessions/${node.name}/${node.incarnation}`)
    const ephemeral = new Drbg(this.key, `ephemeral/${node.name}/${node.incarnation}`)
    return new SessionManager({
      identity: node.identity,
      now: () => this.t / 1000,
      wallClock: () => {
        const v = Math.max(BASE_MS + Math.floor(this.t / 1000), node.lastWall + 1)
        node.lastWall = v
        node.tsUsed = v
        return v
      },
      random: (buf) => random.fill(buf),
      ephemeral: () => {
        const secret = ephemeral.bytes(32)
        node.ephUsed = Buffer.from(secret)
        return dhFromSecret(secret)
      },
      handshakeTimeoutMs: 10_000,
    })
  }

  // ---- time ---------------------------------------------------------------------------------

  /** Advances the clock by a seeded amount between lo and hi ms. */
  private later(loMs: number, hiMs: number): void {
    this.t += Math.round((loMs + this.rng.float() * (hiMs - loMs)) * 1000)
  }

  // ---- writing packets ----------------------------------------------------------------------

  /** Writes one packet at the current time (bridge acknowledgements and heartbeats due first). */
  private emit(iface: number, dir: Direction, data: Buffer): void {
    this.pump(iface, dir)
    this.write(iface, dir, data, this.t)
  }

  private write(iface: number, dir: Direction, data: Buffer, at: number): void {
    if (this.packets >= this.count) throw new Enough()
    const ts = Math.max(at, this.lastEmit)
    this.lastEmit = ts
    const block = enhancedPacketBlock({ interfaceId: iface, tsUs: BigInt(BASE_TIME_US + ts), data, dir })
    this.blocks.push(block)
    this.byteCount += block.length
    this.packets++
    this.perInterface[iface]!++
    if (this.firstTs[iface]! < 0) this.firstTs[iface] = ts
    this.lastTs[iface] = ts
    const idb = this.interfaces[iface]!
    const d = describePacket(idb.linktype, data)
    this.types[d.label] = (this.types[d.label] ?? 0) + 1
    if (this.withManifest) this.manifest.push({ frame: this.packets, interface: idb.name, linktype: idb.linktype, dir, proto: d.proto, fields: d.fields })
    if (this.onProgress !== undefined) {
      const step = Math.floor((this.packets * 100) / this.count)
      if (step !== this.progressStep) {
        this.progressStep = step
        this.onProgress(this.packets, this.count)
      }
    }
  }

  // ---- the firmware bridge ------------------------------------------------------------------

  /**
   * Sends what the bridge owes before a packet at the current time: an acknowledgement a side
   * owes (unless the packet is that side's own frame, whose ack field carries it) and
   * heartbeats of a side that sent nothing for one interval (docs/firmware-bridge.md §5).
   */
  private pump(iface: number, dir: Direction): void {
    if (!this.fb.up) return
    const own = iface === IF_FB ? (dir === 'out' ? 'host' : 'mcu') : null
    for (;;) {
      let best: { at: number; side: 'host' | 'mcu'; what: 'ack' | 'heartbeat' } | null = null
      for (const side of ['host', 'mcu'] as const) {
        const s = this.fb[side]
        if (s.owes !== null && own !== side) {
          const at = Math.min(s.owes, this.t)
          if (best === null || at < best.at) best = { at, side, what: 'ack' }
        }
        if (s.nextHeartbeat < this.t || (s.nextHeartbeat === this.t && own !== side)) {
          if (best === null || s.nextHeartbeat < best.at) best = { at: s.nextHeartbeat, side, what: 'heartbeat' }
        }
      }
      if (best === null) return
      if (best.what === 'ack') this.fbFrame(best.side, null, false, best.at)
      else this.fbFrame(best.side, { type: 'Heartbeat' }, false, best.at)
    }
  }

  /** One bridge frame from `side`, now, after what the bridge owes before it. */
  private fbWrite(side: 'host' | 'mcu', message: Message | null, reliable: boolean): void {
    this.pump(IF_FB, side === 'host' ? 'out' : 'in')
    this.fbFrame(side, message, reliable, this.t)
  }

  /** Writes one bridge frame from `side` at `at`; a reliable one takes the next sequence number. */
  private fbFrame(side: 'host' | 'mcu', message: Message | null, reliable: boolean, at: number): void {
    const me = this.fb[side]
    const peer = this.fb[side === 'host' ? 'mcu' : 'host']
    const syn = message !== null && (message.type === 'Hello' || message.type === 'HelloAck')
    const flags = syn ? Flags.SYN : message === null ? Flags.ACK_ONLY : reliable ? Flags.NEEDS_ACK : 0
    const bytes = frameBytes({ version: PROTOCOL_VERSION, flags, seq: syn ? 0 : me.seq, ack: syn ? 0 : me.expect, message })
    this.write(IF_FB, side === 'host' ? 'out' : 'in', bytes, at)
    if (syn) return
    const sent = Math.max(at, this.lastEmit)
    me.owes = null
    me.nextHeartbeat = sent + HEARTBEAT_US + this.rng.int(0, 3000)
    if (reliable) {
      me.seq = (me.seq + 1) & 0xff
      peer.expect = (peer.expect + 1) & 0xff
      peer.owes = sent + Math.round(bytes.length * SERIAL_US_PER_BYTE) + this.rng.int(80, 400)
    }
  }

  private bridgeStartup(): void {
    const A = this.nodes.A
    const session = this.rng.u32() || 1
    this.later(5, 20)
    this.fbWrite('host', { type: 'Hello', protocolVersion: PROTOCOL_VERSION, session, heartbeatMs: HEARTBEAT_US / 1000, hostName: A.host }, false)
    this.later(3, 8)
    this.fbWrite(
      'mcu',
      {
        type: 'HelloAck',
        protocolVersion: PROTOCOL_VERSION,
        session,
        firmwareName: 'kairo-fb',
        firmwareVersion: '1.0.3',
        radioChip: RadioChip.SX1262,
        mtu: 255,
        queueDepth: 8,
        credits: 8,
        capabilities: Capabilities.ChannelActivity | Capabilities.FrequencyError | Capabilities.RxTimestamp,
      },
      false,
    )
    this.fb.up = true
    for (const s of [this.fb.host, this.fb.mcu]) {
      s.seq = 0
      s.expect = 0
      s.owes = null
      s.nextHeartbeat = this.t + HEARTBEAT_US
    }
    this.later(1, 3)
    this.fbWrite('host', { type: 'Configure', config: { ...SAMPLE_RADIO } }, true)
    this.later(4, 9)
    this.fbWrite('mcu', { type: 'ConfigureAck' }, true)
  }

  private airtimeUs(bytes: number): number {
    return Math.round(timeOnAirMs(SAMPLE_RADIO, bytes) * 1000)
  }

  private tap(rx: { rssi: number; snr: number } | null): Buffer {
    const c = SAMPLE_RADIO
    return loraTapHeader({ frequencyHz: c.frequencyHz, bandwidthHz: c.bandwidthHz, spreadingFactor: c.spreadingFactor, syncWord: c.syncWord, ...(rx === null ? {} : { rssi: rx.rssi, snr: rx.snr }) })
  }

  /** Cuts a frame for the LoRa link as MeshNode.sendOn does (fragments of MTU − hop header). */
  private cut(frame: Buffer, by: SimNode): Buffer[] {
    return frame.length <= LORA_ROOM ? [frame] : fragment(frame, LORA_ROOM, by.rng.u32())
  }

  /** A sends a frame on LoRa: Transmit on the serial line, the frame on air, TxDone. */
  private loraTx(frame: Buffer, next: number): void {
    const A = this.nodes.A
    const queued: { radio: Buffer; token: number }[] = []
    for (const part of this.cut(frame, A)) {
      const radio = encodeHop(part, next, A.hint)
      this.fb.token = (this.fb.token % 0xffff_fffe) + 1
      this.later(0.05, 0.4)
      this.fbWrite('host', { type: 'Transmit', token: this.fb.token, payload: radio }, true)
      queued.push({ radio, token: this.fb.token })
    }
    for (const { radio, token } of queued) {
      // The MCU has the frame once the serial line carried it; the radio starts a little later.
      this.t += Math.round((radio.length + 40) * SERIAL_US_PER_BYTE)
      this.later(0.5, 2.5)
      this.emit(IF_LORA, 'out', Buffer.concat([this.tap(null), radio]))
      const air = this.airtimeUs(radio.length)
      this.t += air
      this.later(0.2, 1)
      this.fbWrite('mcu', { type: 'TxDone', token, airtimeUs: air }, true)
    }
  }

  /** A neighbour's frame heard on air by A's radio: the air capture, then Receive on the serial line. */
  private loraRx(from: SimNode, frame: Buffer, next: number): void {
    for (const part of this.cut(frame, from)) {
      const radio = encodeHop(part, next, from.hint)
      this.later(3, 25)
      this.t += this.airtimeUs(radio.length)
      const rxEnd = this.t
      const rssi = this.radio.rssi + this.rng.int(-3, 3)
      const snrX4 = this.radio.snrX4 + this.rng.int(-6, 6)
      this.emit(IF_LORA, 'in', Buffer.concat([this.tap({ rssi, snr: snrX4 / 4 }), radio]))
      this.t += Math.round((radio.length + 60) * SERIAL_US_PER_BYTE)
      this.fbWrite(
        'mcu',
        { type: 'Receive', payload: radio, rssiDbmX4: rssi * 4, snrDbX4: snrX4, frequencyErrorHz: this.radio.freqErr + this.rng.int(-40, 40), timestampUs: this.fb.bootUs + rxEnd },
        true,
      )
    }
  }

  // ---- links ----------------------------------------------------------------------------------

  /** Puts `frame` from `from` to `to` (null: broadcast) on a link of A. */
  private send(link: Link, from: SimNode, to: SimNode | null, frame: Buffer): void {
    const A = this.nodes.A
    const dir: Direction = from === A ? 'out' : 'in'
    switch (link) {
      case 'eth': {
        this.later(0.02, 0.3)
        this.emit(IF_ETH, dir, encodeEthernetFrame({ dst: to === null ? BROADCAST_MAC : to.mac, src: from.mac, payload: frame }))
        return
      }
      case 'udp': {
        this.later(0.05, 0.5)
        const dstHost = to === null ? UDP_DEFAULT_GROUP_V4 : to.ip
        this.emit(IF_UDP, dir, udpPacket({ srcHost: from.ip, srcPort: SAMPLE_UDP_PORT, dstHost, dstPort: SAMPLE_UDP_PORT }, frame))
        return
      }
      case 'lora':
        if (from === A) this.loraTx(frame, to === null ? 0 : to.hint)
        else this.loraRx(from, frame, to === null ? 0 : to.hint)
        return
    }
  }

  private beacon(from: SimNode): void {
    this.later(0.1, 5)
    this.emit(IF_UDP, from === this.nodes.A ? 'out' : 'in', udpPacket({ srcHost: from.ip, srcPort: SAMPLE_UDP_PORT, dstHost: UDP_DEFAULT_GROUP_V4, dstPort: SAMPLE_UDP_PORT }, UDP_BEACON))
  }

  // ---- the mesh's packets ---------------------------------------------------------------------

  /** The signed announce of `node`, built as MeshNode.announceFrame does. */
  private announceFrame(node: SimNode, flags = 0): Buffer {
    node.lastAnnounce = Math.max(BASE_MS + Math.floor(this.t / 1000), node.lastAnnounce + 1)
    const body = encodeAnnounceBody({
      identityKey: node.identity.identityKey,
      staticKey: node.identity.static.publicKey,
      capabilities: 0b11,
      links: node.links,
      timestamp: node.lastAnnounce,
      intervalMs: 10_000,
      uuid: node.uuid,
      meshIp: node.meshIp,
      name: node.host,
    })
    return encodeSignedPacket(node.identity, { type: PacketType.Announce, flags, hopLimit: DEFAULT_HOP_LIMIT, packetId: node.rng.u32(), payload: body })
  }

  /** `to` receives an announce: verified, then its keys are learnt (as MeshNode.onAnnounce). */
  private hearAnnounce(to: SimNode, frame: Buffer): void {
    const { body } = openAnnounce(frame)
    to.sm.learn(body)
  }

  private keyLogged(node: SimNode, frame: Buffer): void {
    const p = decodePacket(frame)
    const h = decodeHandshake(p.payload)
    const e: KeyLogEntry = { packet_id: p.packetId, src: node.hex, pattern: h.pattern === HandshakePattern.IK ? 'IK' : 'XX', message: h.message }
    if (node.ephUsed !== null) e.ephemeral_secret = node.ephUsed.toString('hex')
    if (node.tsUsed !== null) e.timestamp_ms = node.tsUsed
    this.keyLog.push(e)
    node.ephUsed = null
    node.tsUsed = null
  }

  /** A full handshake, each message handed to the real receiver. */
  private handshake(link: Link, ini: SimNode, res: SimNode): void {
    this.later(0.5, 4)
    ini.ephUsed = ini.tsUsed = res.ephUsed = res.tsUsed = null
    const m0 = ini.sm.connect(res.identity.nodeId).frame
    this.keyLogged(ini, m0)
    this.send(link, ini, res, m0)
    this.later(0.2, 1.5)
    const r1 = res.sm.handleHandshake(decodePacket(m0))
    const m1 = r1.reply!
    this.keyLogged(res, m1)
    this.send(link, res, ini, m1)
    this.later(0.2, 1.5)
    const r2 = ini.sm.handleHandshake(decodePacket(m1))
    if (r2.reply !== null) {
      this.keyLogged(ini, r2.reply)
      this.send(link, ini, res, r2.reply)
      this.later(0.1, 1)
      res.sm.handleHandshake(decodePacket(r2.reply))
    }
  }

  /** A reliable message (message ID first, AckRequested) and its ACK, as MeshNode sends them. */
  private message(link: Link, from: SimNode, to: SimNode, type: PacketType, big = false): void {
    this.later(1, link === 'lora' ? 300 : 40)
    const id = from.rng.bytes(16)
    const payload = Buffer.concat([id, this.payloadFor(type, from, to, link, big)])
    const frame = Buffer.from(from.sm.seal(to.identity.nodeId, type, PacketFlags.AckRequested, payload))
    this.send(link, from, to, frame)
    const got = to.sm.open(frame).data
    if (got.type !== type || !got.payload.equals(payload)) throw new Error(`${to.host} opened something else than ${from.host} sealed`)
    this.later(0.3, link === 'lora' ? 30 : 3)
    const ack = Buffer.from(to.sm.seal(from.identity.nodeId, PacketType.Ack, 0, id))
    this.send(link, to, from, ack)
    const acked = from.sm.open(ack).data
    if (acked.type !== PacketType.Ack || !acked.payload.equals(id)) throw new Error('ACK does not carry the message ID')
  }

  private keepalive(link: Link, from: SimNode, to: SimNode): void {
    this.later(5, 60)
    const frame = Buffer.from(from.sm.seal(to.identity.nodeId, PacketType.Keepalive, 0, Buffer.alloc(0)))
    this.send(link, from, to, frame)
    to.sm.open(frame)
  }

  private close(link: Link, from: SimNode, to: SimNode): void {
    this.later(5, 80)
    const frame = from.sm.close(to.identity.nodeId)
    if (frame === null) return
    this.send(link, from, to, frame)
    to.sm.open(frame)
  }

  /** A signed broadcast of an agent message (MeshNode.broadcast): no dst, not encrypted. */
  private broadcastFrame(from: SimNode, type: PacketType): Buffer {
    return encodeSignedPacket(from.identity, { type, hopLimit: DEFAULT_HOP_LIMIT, packetId: from.rng.u32(), payload: this.payloadFor(type, from, null, 'lora', false) })
  }

  /** Payloads an agent might send: small JSON documents, and float vectors for VECTOR_SYNC. */
  private payloadFor(type: PacketType, from: SimNode, to: SimNode | null, link: Link, big: boolean): Buffer {
    const r = from.rng
    switch (type) {
      case PacketType.TaskRequest:
        return json({
          task: r.pick(['classify-image', 'summarise', 'translate', 'route-plan', 'detect-anomaly', 'transcribe']),
          input: `sensor-${r.int(1, 64)}/frame-${r.int(1, 99_999)}`,
          deadline_ms: r.int(1, 60) * 500,
          priority: r.int(0, 3),
        })
      case PacketType.AgentMigration:
        return json({
          agent: `${r.pick(['planner', 'watcher', 'indexer', 'courier'])}-${r.int(1, 99)}`,
          from: from.hex.slice(0, 8),
          to: (to ?? from).hex.slice(0, 8),
          state_bytes: r.int(512, 262_144),
          checkpoint: r.bytes(8).toString('hex'),
        })
      case PacketType.ReputationDelta:
        return json({
          subject: r.pick(Object.values(this.nodes)).hex,
          delta: (r.int(-100, 100) || 5) / 100,
          reason: r.pick(['task-completed', 'late-ack', 'bad-signature', 'relay-helped', 'timeout']),
        })
      case PacketType.BroadcastAnnounce:
        return json({
          service: r.pick(['vision-inference', 'speech-to-text', 'route-planner', 'vector-index']),
          capacity: r.int(1, 16),
          models: [r.pick(['yolo-n', 'whisper-tiny', 'mini-lm', 'osrm-lite'])],
        })
      case PacketType.VectorSync: {
        const dim = link === 'lora' ? (big ? 60 : 12) : r.int(48, 256)
        const b = Buffer.alloc(8 + dim * 4)
        b.write('VSY1', 0, 'latin1')
        b.writeUInt16LE(dim, 4)
        b.writeUInt16LE(r.int(1, 999), 6) // shard
        for (let i = 0; i < dim; i++) b.writeFloatLE(Math.round((r.float() * 2 - 1) * 1e4) / 1e4, 8 + i * 4)
        return b
      }
      default:
        return Buffer.alloc(0)
    }
  }

  // ---- the scenario ---------------------------------------------------------------------------

  private round(r: number): void {
    const { A, B, C, D } = this.nodes
    const T = AGENT_TYPES
    const type = (k: number): PacketType => T[(k + r) % T.length]!
    if (r === 0) this.bridgeStartup()

    if (r % 3 === 0) {
      // Announces, and the UDP beacons of discovery.
      this.beacon(C)
      this.later(1, 50)
      const aEth = this.announceFrame(A)
      this.send('eth', A, null, aEth)
      this.hearAnnounce(B, aEth)
      const bAnn = this.announceFrame(B)
      this.send('eth', B, null, bAnn)
      this.hearAnnounce(A, bAnn)
      this.later(1, 30)
      this.send('udp', A, null, this.announceFrame(A))
      // C asks for an announce in the first round (AckRequested): A answers it, unicast.
      const cAnn = this.announceFrame(C, r === 0 ? PacketFlags.AckRequested : 0)
      this.send('udp', C, null, cAnn)
      this.hearAnnounce(A, cAnn)
      if (r === 0) {
        this.later(0.2, 2)
        this.send('udp', A, C, this.announceFrame(A))
      }
      // A floods B's announce on: one hop less, the cost of the Ethernet hop added.
      const relayed = reencodePacket(decodePacket(bAnn), DEFAULT_HOP_LIMIT - 1, addCost(0, hopCost(LINKS.eth0!.bitrate, 1)))
      this.later(2, 40)
      this.send('udp', A, null, relayed)
      this.beacon(A)
      this.later(5, 200)
      const aAnn = this.announceFrame(A)
      this.send('lora', A, null, aAnn)
      this.hearAnnounce(D, aAnn)
      const dAnn = this.announceFrame(D)
      this.send('lora', D, null, dAnn)
      this.hearAnnounce(A, dAnn)
      if (r % 6 === 3) this.send('lora', A, null, reencodePacket(decodePacket(bAnn), DEFAULT_HOP_LIMIT - 1, addCost(0, hopCost(LINKS.eth0!.bitrate, 1))))
    }

    // Quiet for a while: the firmware bridge exchanges heartbeats.
    this.later(r === 0 ? 1200 : 300, r === 0 ? 1500 : 2500)

    // eth0: IK with B (it is known from its announce), messages both ways, a keepalive.
    const ethIni = r % 2 === 0 ? A : B
    this.handshake('eth', ethIni, ethIni === A ? B : A)
    this.message('eth', A, B, type(0))
    this.message('eth', B, A, type(2))
    this.keepalive('eth', A, B)
    if (r % 4 === 3) this.close('eth', B, A)

    // A signed broadcast from B, flooded on by A (hop limit one less; the signature still holds).
    const bc = this.broadcastFrame(B, type(3))
    this.send('eth', B, null, bc)
    verifyBroadcast(bc, B)
    const flooded = Buffer.from(bc)
    decrementPacketHop(flooded)
    this.later(5, 60)
    this.send('udp', A, null, flooded)
    if (r % 2 === 1) this.send('lora', A, null, flooded)

    // udp0: C restarts on even rounds and meets A with XX; on odd rounds A opens IK.
    if (r % 2 === 0) {
      C.incarnation++
      C.sm = this.manager(C)
      this.handshake('udp', C, A)
    } else {
      this.handshake('udp', A, C)
    }
    this.message('udp', C, A, type(4))
    this.message('udp', A, C, type(1))
    this.close('udp', r % 2 === 0 ? C : A, r % 2 === 0 ? A : C)

    // lora0: IK with D (two fragments for message 0), a message, a big vector on odd rounds.
    const loraIni = r % 2 === 0 ? A : D
    this.handshake('lora', loraIni, loraIni === A ? D : A)
    this.message('lora', loraIni, loraIni === A ? D : A, type(3))
    if (r % 2 === 1) this.message('lora', A, D, PacketType.VectorSync, true)
    if (r % 5 === 4) this.keepalive('lora', D, A)

    this.later(50, 900)
  }

  run(): void {
    try {
      for (let r = 0; ; r++) this.round(r)
    } catch (err) {
      if (!(err instanceof Enough)) throw err
    }
  }

  finish(): { bytes: Buffer } {
    const header = fileHeader({ userappl: `kairo-gw ${packageVersion()}`, comment: `sample AI-TCP capture: kairo-gw pcap generate --seed ${this.seed} --count ${this.count}` }, this.interfaces)
    const isbs: Buffer[] = []
    for (let i = 0; i < this.interfaces.length; i++) {
      const end = BigInt(BASE_TIME_US + this.lastEmit)
      const s = {
        interfaceId: i,
        tsUs: end,
        received: BigInt(this.perInterface[i]!),
        dropped: 0n,
        ...(this.firstTs[i]! >= 0 ? { startUs: BigInt(BASE_TIME_US + this.firstTs[i]!), endUs: BigInt(BASE_TIME_US + this.lastTs[i]!) } : {}),
      }
      isbs.push(interfaceStatisticsBlock(s))
    }
    return { bytes: Buffer.concat([header, ...this.blocks, ...isbs]) }
  }

  interfaceNames(): string[] {
    return this.interfaces.map((i) => i.name)
  }
}

/** What a receiver checks of a signed broadcast (MeshNode.onBroadcast), with the key from the source's announce. */
function verifyBroadcast(frame: Buffer, from: SimNode): void {
  const p = decodePacket(frame)
  if (p.dst !== null || p.signature === null) throw new Error('not a signed broadcast')
  verifyPacketSignature(p, from.identity.identityKey)
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8')
}

/** 16 random bytes as an RFC 9562 version-4 UUID. */
function uuidV4(b: Buffer): Buffer {
  b[6] = (b[6]! & 0x0f) | 0x40
  b[8] = (b[8]! & 0x3f) | 0x80
  return b
}

/** Checks a packet count: a whole number 1..MAX_COUNT. */
export function checkCount(count: number): number {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_COUNT) throw new RangeError(`count must be a whole number of packets, 1-${MAX_COUNT}, got ${String(count)}`)
  return count
}

/**
 * Generates a sample capture: the pcapng bytes, the manifest (what the dissector must show for
 * each packet), a summary and (on request) the Noise key log. Pure: no I/O, no clock.
 */
export function generateCapture(opts: GenerateOptions = {}): GeneratedCapture {
  const count = checkCount(opts.count ?? DEFAULT_COUNT)
  const seed = normalizeSeed(opts.seed)
  const g = new Generator(seed, count, opts.manifest !== false, opts.onProgress)
  g.run()
  const { bytes } = g.finish()
  const interfaces: Record<string, number> = {}
  g.interfaceNames().forEach((name, i) => (interfaces[name] = g.perInterface[i]!))
  const types: Record<string, number> = {}
  for (const k of Object.keys(g.types).sort()) types[k] = g.types[k]!
  const summary: GenerateSummary = {
    packets: g.packets,
    bytes: bytes.length,
    seed,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    interfaces,
    types,
    nodes: NODE_SPECS.map((n) => ({ name: n.name, host: n.host, node_id: g.nodes[n.name].hex, role: n.role })),
  }
  return { bytes, manifest: g.manifest, summary, keyLog: opts.keyLog === true ? g.keyLog : [] }
}

