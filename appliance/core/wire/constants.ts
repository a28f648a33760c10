/**
 * Protocol constants of AI-TCP version 1 (docs/protocol.md). Enums come from the code flatc
 * generates from schemas/; the numbers here are the layout facts that code relies on.
 */
import { FrameKind } from '../../generated/kairo/aitcp/frame-kind.js'
import { PacketType } from '../../generated/kairo/aitcp/packet-type.js'
import { PacketFlags } from '../../generated/kairo/aitcp/packet-flags.js'
import { HandshakePattern } from '../../generated/kairo/aitcp/handshake-pattern.js'
import { LinkKind } from '../../generated/kairo/aitcp/link-kind.js'

export { FrameKind, PacketType, PacketFlags, HandshakePattern, LinkKind }

/** Protocol version, high nibble of every frame's first byte. */
export const VERSION = 1
/** First byte of a Data frame: version 1, FrameKind.Data. */
export const VK_DATA = (VERSION << 4) | FrameKind.Data
/** First byte of a Packet frame. */
export const VK_PACKET = (VERSION << 4) | FrameKind.Packet
/** First byte of a Fragment frame. */
export const VK_FRAGMENT = (VERSION << 4) | FrameKind.Fragment

/** Size of the DataHeader struct (schemas/aitcp.fbs), bytes. */
export const DATA_HEADER_BYTES = 32
/** Byte offsets of the DataHeader fields, as FlatBuffers lays out the struct. */
export const DH_VK = 0
export const DH_TYPE = 1
export const DH_FLAGS = 2
export const DH_HOP = 3
export const DH_SESSION = 4
export const DH_DST = 8
export const DH_SEQ = 24
/** Poly1305 tag, bytes. */
export const TAG_BYTES = 16
/** Everything in a sealed Data frame that is not payload: header + tag. */
export const DATA_OVERHEAD = DATA_HEADER_BYTES + TAG_BYTES
/** Bytes between the first byte of a Packet frame and its FlatBuffers buffer (keeps it 4-aligned). */
export const PACKET_PREFIX_BYTES = 4
/** Largest frame before fragmentation, bytes. Bounds every buffer and reassembly. */
export const MAX_FRAME_BYTES = 16384
/** Largest payload of one Data frame, bytes. */
export const MAX_DATA_PAYLOAD = MAX_FRAME_BYTES - DATA_OVERHEAD
/** Default hop limit of a new packet. */
export const DEFAULT_HOP_LIMIT = 16
/** LoRa PHY payload limit (SX126x/SX127x FIFO), bytes. */
export const LORA_MTU = 255

/** The agent message types of AI-TCP. */
export const AGENT_TYPES: readonly PacketType[] = [
  PacketType.TaskRequest,
  PacketType.AgentMigration,
  PacketType.ReputationDelta,
  PacketType.BroadcastAnnounce,
  PacketType.VectorSync,
]

/** Every defined packet type value. */
export const KNOWN_TYPES: ReadonlySet<number> = new Set(
  Object.values(PacketType).filter((v): v is number => typeof v === 'number' && v !== PacketType.Invalid),
)

/** Name of a packet type in the spec's spelling (TASK_REQUEST), or `0x..` for unknown values. */
export function packetTypeName(type: number): string {
  const name = (PacketType as unknown as Record<number, string | undefined>)[type]
  if (name === undefined || type === PacketType.Invalid) return `0x${type.toString(16).padStart(2, '0')}`
  return name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()
}

/** The agent message types in the spec's spelling (TASK_REQUEST, ...), for help texts and checks. */
export const AGENT_TYPE_NAMES: readonly string[] = AGENT_TYPES.map((t) => packetTypeName(t))

/** TASK_REQUEST (any case, `-` or `_`) → PacketType; TypeError listing the valid names otherwise. */
export function parseAgentType(name: string): PacketType {
  const wanted = name.trim().toUpperCase().replace(/-/g, '_')
  for (const t of AGENT_TYPES) if (packetTypeName(t) === wanted) return t
  throw new TypeError(`unknown message type ${JSON.stringify(name)}; valid types: ${AGENT_TYPE_NAMES.join(', ')}`)
}
