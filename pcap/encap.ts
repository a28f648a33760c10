/**
 * The link-layer headers kairo-gw puts in front of a frame in a capture, per link type
 * (pcap/pcapng.ts LINKTYPE): LoRaTap for radio frames, and a bare IPv4/IPv6 + UDP header for
 * UDP links (the datagram as the kernel carried it, rebuilt from its real addresses and ports,
 * checksums included so that Wireshark shows them as good).
 */
import { isIPv4, isIPv6 } from 'node:net'

/** LoRaTap version 0 header, 15 bytes (github.com/eriknl/LoRaTap), all big-endian. */
export const LORATAP_HEADER_BYTES = 15

export interface LoRaTapFields {
  frequencyHz: number
  bandwidthHz: number
  spreadingFactor: number
  /** Packet RSSI, dBm (received frames). */
  rssi?: number
  /** SNR, dB (received frames). */
  snr?: number
  syncWord: number
}

const clampByte = (v: number): number => Math.max(0, Math.min(255, Math.round(v)))

/**
 * version 0, padding 0, length 15, frequency (Hz), bandwidth (units of 125 kHz, at least 1),
 * SF, packet/max/current RSSI (-139 + value dBm; 0 when unknown, as for transmitted frames),
 * SNR (signed, quarter dB), sync word.
 */
export function loraTapHeader(f: LoRaTapFields): Buffer {
  const b = Buffer.alloc(LORATAP_HEADER_BYTES)
  b[0] = 0
  b[1] = 0
  b.writeUInt16BE(LORATAP_HEADER_BYTES, 2)
  b.writeUInt32BE(f.frequencyHz >>> 0, 4)
  b[8] = Math.max(1, Math.round(f.bandwidthHz / 125_000))
  b[9] = f.spreadingFactor & 0xff
  const rssi = f.rssi === undefined ? 0 : clampByte(f.rssi + 139)
  b[10] = rssi
  b[11] = rssi
  b[12] = rssi
  b.writeInt8(f.snr === undefined ? 0 : Math.max(-128, Math.min(127, Math.round(f.snr * 4))), 13)
  b[14] = f.syncWord & 0xff
  return b
}

export interface UdpEndpoints {
  srcHost: string
  srcPort: number
  dstHost: string
  dstPort: number
}

function sum16(buf: Uint8Array, acc = 0): number {
  for (let i = 0; i + 1 < buf.length; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!
  if (buf.length % 2 === 1) acc += buf[buf.length - 1]! << 8
  return acc
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000)
  return acc
}

function ipv6Bytes(host: string): Buffer {
  const h = host.replace(/%.*$/, '')
  const [head, tail] = h.includes('::') ? h.split('::') : [h, undefined]
  const parse = (s: string | undefined): number[] => {
    if (s === undefined || s === '') return []
    const out: number[] = []
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const v4 = part.split('.').map(Number)
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
      } else out.push(Number.parseInt(part, 16))
    }
    return out
  }
  const a = parse(head)
  const b = parse(tail)
  const words = tail === undefined ? a : [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b]
  const out = Buffer.alloc(16)
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  return out
}

/** Ones-complement sum of big-endian 16-bit words, four bytes a step (RFC 1071). */
function sum16fast(buf: Uint8Array, acc: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const n = buf.byteLength & ~3
  let i = 0
  for (; i < n; i += 4) {
    const w = dv.getUint32(i)
    acc += (w >>> 16) + (w & 0xffff)
    if (acc > 0x3fffffff) acc = (acc & 0xffff) + (acc >>> 16)
  }
  return sum16(buf.subarray(i), acc)
}

/**
 * The IPv4 or IPv6 header and UDP header (28 or 48 bytes) of a datagram carrying `payload`
 * between the two endpoints, checksums included. A capture puts it in front of the payload
 * without copying the payload twice (pcapng.ts enhancedPacketBlock `head`).
 */
export function udpHeaders(e: UdpEndpoints, payload: Uint8Array): Buffer {
  const src = e.srcHost.replace(/^\[|\]$/g, '')
  const dst = e.dstHost.replace(/^\[|\]$/g, '')
  const udpLen = 8 + payload.length
  const v4 = isIPv4(src) && isIPv4(dst)
  if (!v4 && !(isIPv6(src) && isIPv6(dst))) throw new TypeError(`udpPacket: ${e.srcHost} and ${e.dstHost} are not both IPv4 or both IPv6 addresses`)
  const ipLen = v4 ? 20 : 40
  const out = Buffer.alloc(ipLen + 8)
  out.writeUInt16BE(e.srcPort, ipLen)
  out.writeUInt16BE(e.dstPort, ipLen + 2)
  out.writeUInt16BE(udpLen & 0xffff, ipLen + 4)
  let pseudo: number
  if (v4) {
    out[0] = 0x45
    out.writeUInt16BE((20 + udpLen) & 0xffff, 2)
    out.writeUInt16BE(0x4000, 6) // DF
    out[8] = 64
    out[9] = 17
    src.split('.').forEach((b, i) => (out[12 + i] = Number(b)))
    dst.split('.').forEach((b, i) => (out[16 + i] = Number(b)))
    out.writeUInt16BE(~fold(sum16(out.subarray(0, 20))) & 0xffff, 10)
    pseudo = sum16(out.subarray(12, 20)) + 17 + udpLen
  } else {
    out.writeUInt32BE(0x60000000, 0)
    out.writeUInt16BE(udpLen & 0xffff, 4)
    out[6] = 17
    out[7] = 64
    ipv6Bytes(src).copy(out, 8)
    ipv6Bytes(dst).copy(out, 24)
    pseudo = sum16(out.subarray(8, 40)) + 17 + udpLen
  }
  const c = ~fold(sum16fast(payload, sum16(out.subarray(ipLen), pseudo))) & 0xffff
  out.writeUInt16BE(c === 0 ? 0xffff : c, ipLen + 6)
  return out
}

/** The whole IP packet: udpHeaders() and the payload. */
export function udpPacket(e: UdpEndpoints, payload: Uint8Array): Buffer {
  return Buffer.concat([udpHeaders(e, payload), payload])
}

/** 'host:port' or '[v6]:port' → parts. */
export function splitHostPort(addr: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]+):(\d+)$/.exec(addr)
  if (m === null) return undefined
  return { host: m[1]!, port: Number(m[2]) }
}
