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

/** An IPv4 or IPv6 packet carrying `payload` in a UDP datagram between the two endpoints. */
export function udpPacket(e: UdpEndpoints, payload: Uint8Array): Buffer {
  const src = e.srcHost.replace(/^\[|\]$/g, '')
  const dst = e.dstHost.replace(/^\[|\]$/g, '')
  const udpLen = 8 + payload.length
  const udp = Buffer.alloc(udpLen)
  udp.writeUInt16BE(e.srcPort, 0)
  udp.writeUInt16BE(e.dstPort, 2)
  udp.writeUInt16BE(udpLen & 0xffff, 4)
  udp.set(payload, 8)
  if (isIPv4(src) && isIPv4(dst)) {
    const s = Buffer.from(src.split('.').map(Number))
    const d = Buffer.from(dst.split('.').map(Number))
    const pseudo = sum16(Buffer.concat([s, d, Buffer.from([0, 17, (udpLen >> 8) & 0xff, udpLen & 0xff])]))
    const c = ~fold(sum16(udp, pseudo)) & 0xffff
    udp.writeUInt16BE(c === 0 ? 0xffff : c, 6)
    const ip = Buffer.alloc(20)
    ip[0] = 0x45
    ip.writeUInt16BE((20 + udpLen) & 0xffff, 2)
    ip.writeUInt16BE(0x4000, 6) // DF
    ip[8] = 64
    ip[9] = 17
    s.copy(ip, 12)
    d.copy(ip, 16)
    ip.writeUInt16BE(~fold(sum16(ip)) & 0xffff, 10)
    return Buffer.concat([ip, udp])
  }
  if (isIPv6(src) && isIPv6(dst)) {
    const s = ipv6Bytes(src)
    const d = ipv6Bytes(dst)
    const len = Buffer.alloc(8)
    len.writeUInt32BE(udpLen, 0)
    len[7] = 17
    const c = ~fold(sum16(udp, sum16(Buffer.concat([s, d, len])))) & 0xffff
    udp.writeUInt16BE(c === 0 ? 0xffff : c, 6)
    const ip = Buffer.alloc(40)
    ip.writeUInt32BE(0x60000000, 0)
    ip.writeUInt16BE(udpLen & 0xffff, 4)
    ip[6] = 17
    ip[7] = 64
    s.copy(ip, 8)
    d.copy(ip, 24)
    return Buffer.concat([ip, udp])
  }
  throw new TypeError(`udpPacket: ${e.srcHost} and ${e.dstHost} are not both IPv4 or both IPv6 addresses`)
}

/** 'host:port' or '[v6]:port' → parts. */
export function splitHostPort(addr: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]+):(\d+)$/.exec(addr)
  if (m === null) return undefined
  return { host: m[1]!, port: Number(m[2]) }
}
