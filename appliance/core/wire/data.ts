/**
 * What a relay may read of a Data frame without its keys: the clear header fields. These
 * functions read the frame in place and allocate nothing.
 */
import { MalformedPacketError } from '../errors.js'
import { DATA_OVERHEAD, DH_DST, DH_FLAGS, DH_HOP, DH_SESSION, DH_TYPE, KNOWN_TYPES, MAX_FRAME_BYTES, VK_DATA } from './constants.js'
import { NODE_ID_BYTES } from '../identity.js'

/** Throws MalformedPacketError unless `frame` has the shape of a version-1 Data frame. */
export function checkDataFrame(frame: Uint8Array): void {
  if (frame.length < DATA_OVERHEAD || frame.length > MAX_FRAME_BYTES) throw new MalformedPacketError(`Data frame of ${frame.length} bytes is outside ${DATA_OVERHEAD}..${MAX_FRAME_BYTES}`, { field: 'length' })
  if (frame[0] !== VK_DATA) throw new MalformedPacketError('not a version-1 Data frame', { field: 'vk' })
  if (!KNOWN_TYPES.has(frame[DH_TYPE]!)) throw new MalformedPacketError(`unknown packet type 0x${frame[DH_TYPE]!.toString(16)}`, { field: 'type' })
}

export function dataType(frame: Uint8Array): number {
  return frame[DH_TYPE]!
}
export function dataFlags(frame: Uint8Array): number {
  return frame[DH_FLAGS]!
}
export function dataHopLimit(frame: Uint8Array): number {
  return frame[DH_HOP]!
}
export function dataSessionIndex(frame: Buffer): number {
  return frame.readUInt32LE(DH_SESSION)
}
/** True when the frame's destination is `nodeId`. */
export function dataIsFor(frame: Buffer, nodeId: Buffer): boolean {
  return frame.compare(nodeId, 0, NODE_ID_BYTES, DH_DST, DH_DST + NODE_ID_BYTES) === 0
}
/** Copies the destination node ID into `out` (16 bytes). */
export function dataDstInto(frame: Buffer, out: Buffer): void {
  frame.copy(out, 0, DH_DST, DH_DST + NODE_ID_BYTES)
}
/** Decrements the hop limit in place; false (frame untouched) when it is already 0. */
export function decrementDataHop(frame: Uint8Array): boolean {
  const hop = frame[DH_HOP]!
  if (hop === 0) return false
  frame[DH_HOP] = hop - 1
  return true
}
