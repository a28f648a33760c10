/**
 * Packet frames: a FlatBuffers Packet table with full addresses, for handshakes, announces and
 * signed broadcasts. Frame = VK_PACKET, three zero bytes, FlatBuffers buffer.
 */
import * as flatbuffers from 'flatbuffers'
import { Packet } from '../../generated/kairo/aitcp/packet.js'
import { PacketHeader } from '../../generated/kairo/aitcp/packet-header.js'
import { NodeId } from '../../generated/kairo/aitcp/node-id.js'
import { MalformedPacketError, AuthenticationError } from '../errors.js'
import { NODE_ID_BYTES, nodeIdFromPublicKey, type Identity } from '../identity.js'
import { signDetached, signVerify, SIGN_BYTES } from '../crypto.js'
import { KNOWN_TYPES, MAX_FRAME_BYTES, PACKET_PREFIX_BYTES, PacketFlags, VK_PACKET, VERSION } from './constants.js'
import { verifyRoot, type TableSpec } from './verify.js'

export const PACKET_SPEC: TableSpec = {
  name: 'Packet',
  fields: [
    { name: 'header', kind: 'struct', size: 8, required: true },
    { name: 'src', kind: 'struct', size: 16, required: true },
    { name: 'dst', kind: 'struct', size: 16 },
    { name: 'payload', kind: 'bytes', maxLength: MAX_FRAME_BYTES },
    { name: 'signature', kind: 'bytes', exactLength: SIGN_BYTES },
    { name: 'path_cost', kind: 'scalar', size: 4 },
  ],
}

/** A decoded Packet frame. Byte fields are views into the frame. */
export interface PacketFrame {
  type: number
  flags: number
  hopLimit: number
  packetId: number
  src: Buffer
  /** null for a broadcast. */
  dst: Buffer | null
  payload: Buffer
  signature: Buffer | null
  /** Route metric accumulated by relays (announces); not signed. 0 when absent. */
  pathCost: number
}

/** Domain separation for Packet signatures. */
export const PACKET_SIG_CONTEXT = Buffer.from('kairo/aitcp/v1/packet-sig')

/**
 * The bytes a Packet signature covers: context || version || type || flags || packet_id (LE32) ||
 * src || dst (16 zero bytes for a broadcast) || payload. The hop limit is not covered: relays
 * decrement it.
 */
export function packetSigningInput(p: Omit<PacketFrame, 'hopLimit' | 'signature' | 'pathCost'>): Buffer {
  const head = Buffer.alloc(PACKET_SIG_CONTEXT.length + 7 + 2 * NODE_ID_BYTES)
  let o = PACKET_SIG_CONTEXT.copy(head, 0)
  head[o++] = VERSION
  head[o++] = p.type
  head[o++] = p.flags
  head.writeUInt32LE(p.packetId >>> 0, o)
  o += 4
  p.src.copy(head, o)
  o += NODE_ID_BYTES
  if (p.dst) p.dst.copy(head, o)
  return Buffer.concat([head, p.payload])
}

function nodeIdWords(id: Uint8Array): [bigint, bigint] {
  if (id.length !== NODE_ID_BYTES) throw new TypeError(`node ID must be ${NODE_ID_BYTES} bytes, got ${id.length}`)
  const b = Buffer.from(id.buffer, id.byteOffset, id.byteLength)
  return [b.readBigUInt64LE(0), b.readBigUInt64LE(8)]
}

function nodeIdBytes(n: NodeId): Buffer {
  const b = Buffer.alloc(NODE_ID_BYTES)
  b.writeBigUInt64LE(n.w0(), 0)
  b.writeBigUInt64LE(n.w1(), 8)
  return b
}

export interface PacketInit {
  type: number
  flags?: number
  hopLimit: number
  packetId: number
  src: Uint8Array
  dst?: Uint8Array | null
  payload?: Uint8Array
  signature?: Uint8Array | null
  pathCost?: number
}

/** Encodes a Packet frame. */
export function encodePacket(p: PacketInit): Buffer {
  const b = new flatbuffers.Builder(64 + (p.payload?.length ?? 0))
  const payload = p.payload ? Packet.createPayloadVector(b, p.payload) : 0
  const signature = p.signature ? Packet.createSignatureVector(b, p.signature) : 0
  Packet.startPacket(b)
  Packet.addHeader(b, PacketHeader.createPacketHeader(b, p.type, p.flags ?? 0, p.hopLimit, 0, p.packetId >>> 0))
  const [s0, s1] = nodeIdWords(p.src)
  Packet.addSrc(b, NodeId.createNodeId(b, s0, s1))
  if (p.dst) {
    const [d0, d1] = nodeIdWords(p.dst)
    Packet.addDst(b, NodeId.createNodeId(b, d0, d1))
  }
  if (payload) Packet.addPayload(b, payload)
  if (signature) Packet.addSignature(b, signature)
  if (p.pathCost) Packet.addPathCost(b, p.pathCost >>> 0)
  Packet.finishPacketBuffer(b, Packet.endPacket(b))
  const fb = b.asUint8Array()
  const frame = Buffer.alloc(PACKET_PREFIX_BYTES + fb.length)
  frame[0] = VK_PACKET
  frame.set(fb, PACKET_PREFIX_BYTES)
  return frame
}

/** Signs with `identity` (whose node ID must be `src`) and encodes. */
export function encodeSignedPacket(identity: Identity, p: Omit<PacketInit, 'src' | 'signature'>): Buffer {
  const flags = (p.flags ?? 0) | PacketFlags.Signed
  const payload = Buffer.from(p.payload ?? Buffer.alloc(0))
  const dst = p.dst ? Buffer.from(p.dst) : null
  const signature = signDetached(packetSigningInput({ type: p.type, flags, packetId: p.packetId >>> 0, src: identity.nodeId, dst, payload }), identity.signing.secretKey)
  return encodePacket({ ...p, flags, src: identity.nodeId, dst, payload, signature })
}

/** Decodes a Packet frame; MalformedPacketError names the field at fault. */
export function decodePacket(frame: Uint8Array): PacketFrame {
  if (frame.length < PACKET_PREFIX_BYTES + 8) throw new MalformedPacketError(`Packet frame of ${frame.length} bytes is too short`, { field: 'length' })
  if (frame.length > MAX_FRAME_BYTES) throw new MalformedPacketError(`Packet frame of ${frame.length} bytes exceeds ${MAX_FRAME_BYTES}`, { field: 'length' })
  if (frame[0] !== VK_PACKET) throw new MalformedPacketError(`first byte 0x${frame[0]!.toString(16)} is not a version-1 Packet frame`, { field: 'vk' })
  if (frame[1] !== 0 || frame[2] !== 0 || frame[3] !== 0) throw new MalformedPacketError('Packet frame prefix bytes 1..3 must be zero', { field: 'prefix' })
  const buf = Buffer.from(frame.buffer, frame.byteOffset + PACKET_PREFIX_BYTES, frame.length - PACKET_PREFIX_BYTES)
  verifyRoot(buf, PACKET_SPEC)
  const p = Packet.getRootAsPacket(new flatbuffers.ByteBuffer(buf))
  const h = p.header()!
  if (h.reserved() !== 0) throw new MalformedPacketError('Packet.header.reserved must be zero', { field: 'Packet.header.reserved' })
  const type = h.type()
  if (!KNOWN_TYPES.has(type)) throw new MalformedPacketError(`Packet.header.type 0x${type.toString(16)} is not a known packet type`, { field: 'Packet.header.type' })
  const flags = h.flags()
  if (flags & ~(PacketFlags.AckRequested | PacketFlags.Signed | PacketFlags.Bulk)) throw new MalformedPacketError(`Packet.header.flags 0x${flags.toString(16)} has undefined bits`, { field: 'Packet.header.flags' })
  const payloadArr = p.payloadArray()
  const sigArr = p.signatureArray()
  const signed = (flags & PacketFlags.Signed) !== 0
  if (signed !== (sigArr !== null)) throw new MalformedPacketError(signed ? 'Signed flag set but no signature' : 'signature present without the Signed flag', { field: 'Packet.signature' })
  const view = (a: Uint8Array | null) => (a === null ? null : Buffer.from(a.buffer, a.byteOffset, a.byteLength))
  const dst = p.dst()
  // The signing input writes 16 zero bytes for an absent dst, so a present all-zero dst would
  // let a broadcast's signature verify on a unicast copy of it: broadcasts must omit dst.
  if (dst && dst.w0() === 0n && dst.w1() === 0n) throw new MalformedPacketError('Packet.dst is the all-zero node ID; a broadcast omits dst', { field: 'Packet.dst' })
  return {
    type,
    flags,
    hopLimit: h.hopLimit(),
    packetId: h.packetId(),
    src: nodeIdBytes(p.src()!),
    dst: dst ? nodeIdBytes(dst) : null,
    payload: view(payloadArr) ?? Buffer.alloc(0),
    signature: view(sigArr),
    pathCost: p.pathCost(),
  }
}

/**
 * Verifies the signature of a decoded packet against `identityKey`, whose node ID must be the
 * packet's src. Throws AuthenticationError (with no detail for the remote side) otherwise.
 */
export function verifyPacketSignature(p: PacketFrame, identityKey: Uint8Array, transaction_id?: string): void {
  const opts = transaction_id === undefined ? {} : { transaction_id }
  if (p.signature === null) throw new AuthenticationError('packet is not signed', opts)
  if (identityKey.length !== 32 || !nodeIdFromPublicKey(identityKey).equals(p.src)) throw new AuthenticationError('identity key does not belong to the packet source', opts)
  if (!signVerify(p.signature, packetSigningInput(p), identityKey)) throw new AuthenticationError('packet signature does not verify', opts)
}

/**
 * Re-encodes a decoded Packet as a relay forwards it: the same signed content, the hop limit
 * decremented by the caller and `pathCost` replaced. The signature stays valid (it covers
 * neither field).
 */
export function reencodePacket(p: PacketFrame, hopLimit: number, pathCost: number): Buffer {
  return encodePacket({ type: p.type, flags: p.flags, hopLimit, packetId: p.packetId, src: p.src, dst: p.dst, payload: p.payload, signature: p.signature, pathCost })
}

/** Decrements the hop limit of an encoded Packet frame in place; false if it was already 0. */
export function decrementPacketHop(frame: Buffer): boolean {
  const buf = frame.subarray(PACKET_PREFIX_BYTES)
  const root = buf.readUInt32LE(0)
  const vt = root - buf.readInt32LE(root)
  const fo = buf.readUInt16LE(vt + 4)
  const at = root + fo + 2
  const hop = buf[at]!
  if (hop === 0) return false
  buf[at] = hop - 1
  return true
}
