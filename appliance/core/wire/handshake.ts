/** Codecs of the Handshake and HandshakePayload tables (schemas/handshake.fbs). */
import * as flatbuffers from 'flatbuffers'
import { Handshake } from '../../generated/kairo/aitcp/handshake.js'
import { HandshakePayload } from '../../generated/kairo/aitcp/handshake-payload.js'
import { MalformedPacketError } from '../errors.js'
import { HandshakePattern } from './constants.js'
import { verifyRoot, type TableSpec } from './verify.js'

/** Largest Noise handshake message we accept, bytes (Noise allows 65535; ours are < 300). */
export const MAX_NOISE_MESSAGE = 1024

export const HANDSHAKE_SPEC: TableSpec = {
  name: 'Handshake',
  fields: [
    { name: 'pattern', kind: 'scalar', size: 1 },
    { name: 'message', kind: 'scalar', size: 1 },
    { name: 'sender_index', kind: 'scalar', size: 4 },
    { name: 'receiver_index', kind: 'scalar', size: 4 },
    { name: 'noise', kind: 'bytes', required: true, maxLength: MAX_NOISE_MESSAGE },
  ],
}

export const HANDSHAKE_PAYLOAD_SPEC: TableSpec = {
  name: 'HandshakePayload',
  fields: [
    { name: 'identity_key', kind: 'bytes', exactLength: 32 },
    { name: 'identity_sig', kind: 'bytes', exactLength: 64 },
    { name: 'timestamp', kind: 'scalar', size: 8 },
  ],
}

export interface HandshakeMessage {
  pattern: HandshakePattern
  message: number
  senderIndex: number
  receiverIndex: number
  noise: Buffer
}

/** Messages per pattern. */
export const PATTERN_MESSAGES: Readonly<Record<number, number>> = { [HandshakePattern.XX]: 3, [HandshakePattern.IK]: 2 }

export function encodeHandshake(m: HandshakeMessage): Buffer {
  const b = new flatbuffers.Builder(64 + m.noise.length)
  const noise = Handshake.createNoiseVector(b, m.noise)
  Handshake.startHandshake(b)
  Handshake.addPattern(b, m.pattern)
  Handshake.addMessage(b, m.message)
  Handshake.addSenderIndex(b, m.senderIndex >>> 0)
  Handshake.addReceiverIndex(b, m.receiverIndex >>> 0)
  Handshake.addNoise(b, noise)
  Handshake.finishHandshakeBuffer(b, Handshake.endHandshake(b))
  return Buffer.from(b.asUint8Array())
}

export function decodeHandshake(buf: Uint8Array): HandshakeMessage {
  verifyRoot(buf, HANDSHAKE_SPEC)
  const h = Handshake.getRootAsHandshake(new flatbuffers.ByteBuffer(buf))
  const pattern = h.pattern()
  const count = PATTERN_MESSAGES[pattern]
  if (count === undefined) throw new MalformedPacketError(`Handshake.pattern ${pattern} is not XX (1) or IK (2)`, { field: 'Handshake.pattern' })
  const message = h.message()
  if (message >= count) throw new MalformedPacketError(`Handshake.message ${message} is past the last message (${count - 1}) of the pattern`, { field: 'Handshake.message' })
  const noise = h.noiseArray()!
  return { pattern, message, senderIndex: h.senderIndex(), receiverIndex: h.receiverIndex(), noise: Buffer.from(noise.buffer, noise.byteOffset, noise.byteLength) }
}

export interface IdentityPayload {
  identityKey: Buffer | null
  identitySig: Buffer | null
  /** Milliseconds since the Unix epoch. */
  timestamp: number
}

export function encodeHandshakePayload(p: IdentityPayload): Buffer {
  const b = new flatbuffers.Builder(128)
  const key = p.identityKey ? HandshakePayload.createIdentityKeyVector(b, p.identityKey) : 0
  const sig = p.identitySig ? HandshakePayload.createIdentitySigVector(b, p.identitySig) : 0
  HandshakePayload.startHandshakePayload(b)
  if (key) HandshakePayload.addIdentityKey(b, key)
  if (sig) HandshakePayload.addIdentitySig(b, sig)
  HandshakePayload.addTimestamp(b, BigInt(p.timestamp))
  b.finish(HandshakePayload.endHandshakePayload(b))
  return Buffer.from(b.asUint8Array())
}

export function decodeHandshakePayload(buf: Uint8Array): IdentityPayload {
  verifyRoot(buf, HANDSHAKE_PAYLOAD_SPEC)
  const p = HandshakePayload.getRootAsHandshakePayload(new flatbuffers.ByteBuffer(buf))
  const view = (a: Uint8Array | null) => (a === null ? null : Buffer.from(a.buffer, a.byteOffset, a.byteLength))
  const ts = p.timestamp()
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedPacketError('HandshakePayload.timestamp is out of range', { field: 'HandshakePayload.timestamp' })
  return { identityKey: view(p.identityKeyArray()), identitySig: view(p.identitySigArray()), timestamp: Number(ts) }
}
