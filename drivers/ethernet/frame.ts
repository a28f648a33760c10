/**
 * Pure frame codecs of the raw Ethernet links (no I/O, no native module): the Ethernet frame of
 * `EthernetLink` and the IPv4 header that `RawIpLink` receives in front of every datagram.
 *
 * Ethernet frame (EtherType 0x88B5, "IEEE Std 802 - Local Experimental Ethertype 1": free for
 * private protocols on one's own segments, never assigned to anyone, so no registered protocol
 * shares it; kairo-gw uses it as its own):
 *
 *     dst MAC (6) | src MAC (6) | EtherType 0x88B5 (2) | payload length (2, big-endian) | payload | pad
 *
 * Ethernet pads frames shorter than 60 bytes (64 with the FCS the NIC adds) with zeros, and a
 * receiver cannot tell padding from payload, hence the length field. The payload of one frame is
 * at most the interface MTU − 2 (1498 bytes on a 1500-byte NIC).
 *
 * Decoders never throw on received bytes: they return either the frame or a `reason` that the
 * link counts in `stats().errors` (`rx:<reason>`).
 */

/** IEEE 802 Local Experimental EtherType 1: kairo-gw's own. */
export const ETHERTYPE_KAIRO = 0x88b5
/** dst + src + EtherType. */
export const ETH_HEADER_BYTES = 14
/** The payload length field after the EtherType. */
export const LENGTH_FIELD_BYTES = 2
/** Smallest Ethernet frame without FCS; shorter frames are padded up to it. */
export const ETH_MIN_FRAME_BYTES = 60
/** Largest payload the 16-bit length field can describe. */
export const MAX_PAYLOAD_BYTES = 0xffff
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff'

const MAC_RE = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i

/** `aa:bb:cc:dd:ee:ff` (or with `-`, any case) → 6 bytes; undefined when it is not a MAC. */
export function parseMac(s: string): Buffer | undefined {
  const m = MAC_RE.exec(s)
  if (m === null) return undefined
  return Buffer.from(m.slice(1, 7).join(''), 'hex')
}

/** 6 bytes at `offset` → `aa:bb:cc:dd:ee:ff` (lower case). */
export function formatMac(b: Uint8Array, offset = 0): string {
  const parts: string[] = []
  for (let i = 0; i < 6; i++) parts.push((b[offset + i] ?? 0).toString(16).padStart(2, '0'))
  return parts.join(':')
}

/** Canonical form of a MAC string (`AA-BB-...` → `aa:bb:...`), or undefined. */
export function normalizeMac(s: string): string | undefined {
  const b = parseMac(s)
  return b === undefined ? undefined : formatMac(b)
}

/** True for group (multicast and broadcast) addresses: the I/G bit of the first octet. */
export function isGroupMac(b: Uint8Array, offset = 0): boolean {
  return ((b[offset] ?? 0) & 1) === 1
}

export interface EthernetFrameFields {
  /** Destination MAC, `aa:bb:...` or 6 bytes. */
  dst: string | Uint8Array
  src: string | Uint8Array
  payload: Uint8Array
  etherType?: number
}

function macBytes(m: string | Uint8Array, field: string): Uint8Array {
  const b = typeof m === 'string' ? parseMac(m) : m
  if (b === undefined || b.length !== 6) throw new TypeError(`${field} is not a MAC address: ${typeof m === 'string' ? JSON.stringify(m) : `${m.length} bytes`}`)
  return b
}

/** Builds one Ethernet frame (padded to 60 bytes). Throws TypeError on bad arguments (caller error). */
export function encodeEthernetFrame(f: EthernetFrameFields): Buffer {
  const dst = macBytes(f.dst, 'dst')
  const src = macBytes(f.src, 'src')
  const etherType = f.etherType ?? ETHERTYPE_KAIRO
  if (!Number.isInteger(etherType) || etherType < 0x0600 || etherType > 0xffff) throw new TypeError(`etherType ${etherType} is not an EtherType (0x0600..0xffff)`)
  if (f.payload.length > MAX_PAYLOAD_BYTES) throw new TypeError(`payload of ${f.payload.length} bytes exceeds the length field (${MAX_PAYLOAD_BYTES})`)
  const used = ETH_HEADER_BYTES + LENGTH_FIELD_BYTES + f.payload.length
  const out = Buffer.alloc(Math.max(used, ETH_MIN_FRAME_BYTES))
  out.set(dst, 0)
  out.set(src, 6)
  out.writeUInt16BE(etherType, 12)
  out.writeUInt16BE(f.payload.length, 14)
  out.set(f.payload, 16)
  return out
}

export type EthernetDecodeReason =
  /** Fewer than 16 bytes: no room for the header and the length field. */
  | 'short'
  /** Another EtherType (the capture filter should have kept it out). */
  | 'ethertype'
  /** The length field claims more bytes than the frame has. */
  | 'length'

export type DecodedEthernetFrame =
  | { ok: true; dst: Buffer; src: Buffer; etherType: number; payload: Buffer }
  | { ok: false; reason: EthernetDecodeReason }

/**
 * Parses one captured frame. The payload is a view into `frame` (copy it before the capture
 * buffer is reused). Never throws.
 */
export function decodeEthernetFrame(frame: Uint8Array, etherType = ETHERTYPE_KAIRO): DecodedEthernetFrame {
  const b = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  if (b.length < ETH_HEADER_BYTES + LENGTH_FIELD_BYTES) return { ok: false, reason: 'short' }
  const type = b.readUInt16BE(12)
  if (type !== etherType) return { ok: false, reason: 'ethertype' }
  const len = b.readUInt16BE(14)
  const start = ETH_HEADER_BYTES + LENGTH_FIELD_BYTES
  if (start + len > b.length) return { ok: false, reason: 'length' }
  return { ok: true, dst: b.subarray(0, 6), src: b.subarray(6, 12), etherType: type, payload: b.subarray(start, start + len) }
}

/* ------------------------------------------------------------------------------------------ */
/* IPv4 (RawIpLink)                                                                             */

/** RFC 3692 experimental IP protocol number 253: kairo-gw's own on raw IP segments. */
export const IP_PROTOCOL_KAIRO = 253
export const IPV4_MIN_HEADER_BYTES = 20

export type Ipv4DecodeReason =
  /** Fewer than 20 bytes. */
  | 'short'
  /** Version field is not 4. */
  | 'version'
  /** Header length (IHL) below 5 words or beyond the datagram. */
  | 'ihl'
  /** Total length field smaller than the header or larger than the bytes received. */
  | 'length'
  /** Another IP protocol. */
  | 'protocol'
  /** A fragment (the kernel reassembles before raw sockets see datagrams: never expected). */
  | 'fragment'

export type StrippedIpv4 =
  | { ok: true; src: string; dst: string; protocol: number; ttl: number; payload: Buffer }
  | { ok: false; reason: Ipv4DecodeReason }

function ipv4At(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`
}

/**
 * Takes the IPv4 header off a datagram as a Linux raw socket delivers it (header in network byte
 * order, total length included). The payload is a view into `datagram`; bytes past the total
 * length (link padding) are ignored. Never throws.
 */
export function stripIpv4Header(datagram: Uint8Array, protocol?: number): StrippedIpv4 {
  const b = Buffer.isBuffer(datagram) ? datagram : Buffer.from(datagram.buffer, datagram.byteOffset, datagram.byteLength)
  if (b.length < IPV4_MIN_HEADER_BYTES) return { ok: false, reason: 'short' }
  const v = b[0]! >> 4
  if (v !== 4) return { ok: false, reason: 'version' }
  const ihl = (b[0]! & 0x0f) * 4
  if (ihl < IPV4_MIN_HEADER_BYTES || ihl > b.length) return { ok: false, reason: 'ihl' }
  const total = b.readUInt16BE(2)
  if (total < ihl || total > b.length) return { ok: false, reason: 'length' }
  const flagsFrag = b.readUInt16BE(6)
  if ((flagsFrag & 0x2000) !== 0 || (flagsFrag & 0x1fff) !== 0) return { ok: false, reason: 'fragment' }
  const proto = b[9]!
  if (protocol !== undefined && proto !== protocol) return { ok: false, reason: 'protocol' }
  return { ok: true, src: ipv4At(b, 12), dst: ipv4At(b, 16), protocol: proto, ttl: b[8]!, payload: b.subarray(ihl, total) }
}

/**
 * Builds an IPv4 header + payload the way the kernel sends it (for tests and tools; the link
 * lets the kernel build its headers). Throws TypeError on bad arguments.
 */
export function encodeIpv4Datagram(f: { src: string; dst: string; protocol?: number; ttl?: number; payload: Uint8Array; options?: Uint8Array }): Buffer {
  const addr = (s: string, field: string) => {
    const parts = s.split('.')
    const nums = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN))
    if (nums.length !== 4 || nums.some((n) => !(n >= 0 && n <= 255))) throw new TypeError(`${field} is not an IPv4 address: ${JSON.stringify(s)}`)
    return nums
  }
  const opts = f.options ?? new Uint8Array(0)
  if (opts.length % 4 !== 0 || opts.length > 40) throw new TypeError('IPv4 options must be a multiple of 4 bytes, at most 40')
  const ihl = IPV4_MIN_HEADER_BYTES + opts.length
  const total = ihl + f.payload.length
  if (total > 0xffff) throw new TypeError(`datagram of ${total} bytes exceeds 65535`)
  const b = Buffer.alloc(total)
  b[0] = 0x40 | (ihl / 4)
  b.writeUInt16BE(total, 2)
  b[8] = f.ttl ?? 64
  b[9] = f.protocol ?? IP_PROTOCOL_KAIRO
  b.set(addr(f.src, 'src'), 12)
  b.set(addr(f.dst, 'dst'), 16)
  b.set(opts, 20)
  let sum = 0
  for (let i = 0; i < ihl; i += 2) sum += b.readUInt16BE(i)
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  b.writeUInt16BE(~sum & 0xffff, 10)
  b.set(f.payload, ihl)
  return b
}
