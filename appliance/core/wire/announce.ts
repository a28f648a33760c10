/**
 * Signed announces (schemas/announce.fbs): a node's identity key, Noise static key (bound by the
 * packet signature), capabilities and links. Carried in a Packet of type Announce, always signed,
 * verified before anything acts on it.
 */
import * as flatbuffers from 'flatbuffers'
import { Announce } from '../../generated/kairo/aitcp/announce.js'
import { LinkInfo } from '../../generated/kairo/aitcp/link-info.js'
import { MalformedPacketError, AuthenticationError } from '../errors.js'
import type { Identity } from '../identity.js'
import { DEFAULT_HOP_LIMIT, LinkKind, PacketType } from './constants.js'
import { decodePacket, encodeSignedPacket, verifyPacketSignature, type PacketFrame } from './packet.js'
import { verifyRoot, type TableSpec } from './verify.js'

export const MAX_ANNOUNCED_LINKS = 16
export const MAX_LINK_NAME = 32

const LINK_SPEC: TableSpec = {
  name: 'LinkInfo',
  fields: [
    { name: 'kind', kind: 'scalar', size: 1 },
    { name: 'name', kind: 'string', maxLength: MAX_LINK_NAME },
    { name: 'mtu', kind: 'scalar', size: 2 },
    { name: 'bitrate', kind: 'scalar', size: 4 },
  ],
}

export const ANNOUNCE_SPEC: TableSpec = {
  name: 'Announce',
  fields: [
    { name: 'identity_key', kind: 'bytes', required: true, exactLength: 32 },
    { name: 'static_key', kind: 'bytes', required: true, exactLength: 32 },
    { name: 'capabilities', kind: 'scalar', size: 4 },
    { name: 'links', kind: 'tables', table: LINK_SPEC, maxCount: MAX_ANNOUNCED_LINKS },
    { name: 'timestamp', kind: 'scalar', size: 8 },
    { name: 'interval_ms', kind: 'scalar', size: 4 },
    { name: 'uuid', kind: 'bytes', exactLength: 16 },
    { name: 'mesh_ip', kind: 'scalar', size: 4 },
    { name: 'name', kind: 'string', maxLength: 32 },
  ],
}

export interface AnnouncedLink {
  kind: LinkKind
  name: string
  mtu: number
  bitrate: number
}

export interface AnnounceBody {
  identityKey: Buffer
  staticKey: Buffer
  capabilities: number
  links: AnnouncedLink[]
  /** Milliseconds since the Unix epoch. */
  timestamp: number
  /** How often the node announces, ms (0: unknown). Optional when encoding. */
  intervalMs?: number
  /** The node's UUID, 16 bytes (absent: not announced). */
  uuid?: Buffer
  /** Mesh IPv4 address as an unsigned 32-bit integer (absent or 0: none). */
  meshIp?: number
  /** The node's name (not trusted, not unique). */
  name?: string
}

export function encodeAnnounceBody(a: AnnounceBody): Buffer {
  const b = new flatbuffers.Builder(256)
  const links = a.links.map((l) => {
    const name = b.createString(l.name)
    LinkInfo.startLinkInfo(b)
    LinkInfo.addKind(b, l.kind)
    LinkInfo.addName(b, name)
    LinkInfo.addMtu(b, l.mtu)
    LinkInfo.addBitrate(b, l.bitrate >>> 0)
    return LinkInfo.endLinkInfo(b)
  })
  const linksVec = Announce.createLinksVector(b, links)
  const ik = Announce.createIdentityKeyVector(b, a.identityKey)
  const sk = Announce.createStaticKeyVector(b, a.staticKey)
  const uuid = a.uuid !== undefined ? Announce.createUuidVector(b, a.uuid) : 0
  const name = a.name !== undefined ? b.createString(a.name) : 0
  Announce.startAnnounce(b)
  Announce.addIdentityKey(b, ik)
  Announce.addStaticKey(b, sk)
  Announce.addCapabilities(b, a.capabilities >>> 0)
  Announce.addLinks(b, linksVec)
  Announce.addTimestamp(b, BigInt(a.timestamp))
  if (a.intervalMs) Announce.addIntervalMs(b, a.intervalMs >>> 0)
  if (uuid !== 0) Announce.addUuid(b, uuid)
  if (a.meshIp) Announce.addMeshIp(b, a.meshIp >>> 0)
  if (name !== 0) Announce.addName(b, name)
  Announce.finishAnnounceBuffer(b, Announce.endAnnounce(b))
  return Buffer.from(b.asUint8Array())
}

export function decodeAnnounceBody(buf: Uint8Array): AnnounceBody {
  verifyRoot(buf, ANNOUNCE_SPEC)
  const a = Announce.getRootAsAnnounce(new flatbuffers.ByteBuffer(buf))
  const links: AnnouncedLink[] = []
  for (let i = 0; i < a.linksLength(); i++) {
    const l = a.links(i)!
    links.push({ kind: l.kind(), name: l.name() ?? '', mtu: l.mtu(), bitrate: l.bitrate() })
  }
  const ts = a.timestamp()
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedPacketError('Announce.timestamp is out of range', { field: 'Announce.timestamp' })
  const ik = a.identityKeyArray()!
  const sk = a.staticKeyArray()!
  const uuid = a.uuidArray()
  const name = a.name()
  return {
    identityKey: Buffer.from(ik),
    staticKey: Buffer.from(sk),
    capabilities: a.capabilities(),
    links,
    timestamp: Number(ts),
    intervalMs: a.intervalMs(),
    ...(uuid !== null ? { uuid: Buffer.from(uuid) } : {}),
    ...(a.meshIp() !== 0 ? { meshIp: a.meshIp() } : {}),
    ...(name !== null ? { name } : {}),
  }
}

/** Builds the signed Packet frame announcing `identity`. */
export function encodeAnnounce(identity: Identity, opts: { packetId: number; timestamp: number; capabilities?: number; links?: AnnouncedLink[]; hopLimit?: number; intervalMs?: number }): Buffer {
  const body = encodeAnnounceBody({
    identityKey: identity.identityKey,
    staticKey: identity.static.publicKey,
    capabilities: opts.capabilities ?? 0,
    links: opts.links ?? [],
    timestamp: opts.timestamp,
    ...(opts.intervalMs ? { intervalMs: opts.intervalMs } : {}),
  })
  return encodeSignedPacket(identity, { type: PacketType.Announce, hopLimit: opts.hopLimit ?? DEFAULT_HOP_LIMIT, packetId: opts.packetId, payload: body })
}

export interface VerifiedAnnounce {
  packet: PacketFrame
  body: AnnounceBody
}

/**
 * Decodes and verifies an announce frame: well-formed, of type Announce, signed by the identity
 * key it carries, and that key's node ID is the packet source. Nothing may act on an announce
 * before this returns.
 */
export function openAnnounce(frame: Uint8Array): VerifiedAnnounce {
  const packet = decodePacket(frame)
  return { packet, body: verifyAnnouncePacket(packet) }
}

export function verifyAnnouncePacket(packet: PacketFrame): AnnounceBody {
  if (packet.type !== PacketType.Announce) throw new MalformedPacketError(`packet type ${packet.type} is not Announce`, { field: 'Packet.header.type' })
  if (packet.dst !== null) throw new MalformedPacketError('an announce has no destination', { field: 'Packet.dst' })
  const body = decodeAnnounceBody(packet.payload)
  try {
    verifyPacketSignature(packet, body.identityKey)
  } catch (err) {
    throw err instanceof AuthenticationError ? err : new AuthenticationError('announce does not verify', { cause: err })
  }
  return body
}
