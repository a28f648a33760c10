/**
 * The hop header (schemas/aitcp.fbs, HopHeader): 12 bytes in front of every frame the mesh sends
 * on a link without link-layer addresses (LoRa). Every radio in range hears every frame; the
 * header says which neighbour should take it (`next`, 0 for all) and which one sent it (`prev`),
 * so a broadcast medium gets the addressing a NIC has in its MAC header. Like a MAC address it is
 * not authenticated: it only steers forwarding, never trust.
 *
 *   vk (0x14) | reserved (3 bytes, zero) | next (LE32) | prev (LE32) | frame
 *
 * A node's hint is the first 4 bytes of its node ID, read little-endian; 0 is never a hint (a
 * node whose ID starts with four zero bytes uses 1).
 */
import { MalformedPacketError } from '../core/errors.js'
import { FrameKind, VERSION } from '../core/wire/constants.js'

export const VK_HOP = (VERSION << 4) | FrameKind.Hop
export const HOP_HEADER_BYTES = 12

export function hintOf(nodeId: Uint8Array): number {
  const h = (nodeId[0]! | (nodeId[1]! << 8) | (nodeId[2]! << 16) | (nodeId[3]! << 24)) >>> 0
  return h === 0 ? 1 : h
}

/** 'hop:1a2b3c4d': the `from`/`to` a hop-header link uses for a neighbour. */
export function hintAddress(hint: number): string {
  return `hop:${hint.toString(16).padStart(8, '0')}`
}

export function parseHintAddress(address: string): number {
  const m = /^hop:([0-9a-f]{8})$/.exec(address)
  if (m === null) throw new TypeError(`not a hop address: ${JSON.stringify(address)} (expected hop:<8 hex digits>)`)
  return Number.parseInt(m[1]!, 16)
}

export function encodeHop(frame: Uint8Array, next: number, prev: number): Buffer {
  const out = Buffer.allocUnsafe(HOP_HEADER_BYTES + frame.length)
  out[0] = VK_HOP
  out[1] = 0
  out[2] = 0
  out[3] = 0
  out.writeUInt32LE(next >>> 0, 4)
  out.writeUInt32LE(prev >>> 0, 8)
  out.set(frame, HOP_HEADER_BYTES)
  return out
}

export interface HopFrame {
  next: number
  prev: number
  /** A view into the input. */
  frame: Buffer
}

export function decodeHop(buf: Buffer): HopFrame {
  if (buf.length <= HOP_HEADER_BYTES) throw new MalformedPacketError(`hop frame of ${buf.length} bytes is too short (header is ${HOP_HEADER_BYTES})`, { field: 'length' })
  if (buf[0] !== VK_HOP) throw new MalformedPacketError(`first byte 0x${buf[0]!.toString(16).padStart(2, '0')} is not a version-1 hop header`, { field: 'HopHeader.vk' })
  if (buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) throw new MalformedPacketError('HopHeader reserved bytes must be zero', { field: 'HopHeader.reserved' })
  const prev = buf.readUInt32LE(8)
  if (prev === 0) throw new MalformedPacketError('HopHeader.prev is 0 (no sender hint)', { field: 'HopHeader.prev' })
  return { next: buf.readUInt32LE(4), prev, frame: buf.subarray(HOP_HEADER_BYTES) }
}
