/**
 * tshark with the project's Lua dissector (pcap/kairo-gw.lua), for tests: decode a capture file
 * into per-packet field values, list the registered fields, and find everything that says the
 * dissector misbehaved (a Lua error, a dissector bug, an exception, the script's own internal-
 * error expert info) apart from what says a packet is malformed (expert infos of group
 * Malformed, severity Error).
 *
 * tshark takes about a second to start, so tests put many packets into one file and decode it
 * with one run.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { hasCommand } from './parts.js'
import { ALICE_SEED, BOB_SEED, VECTOR_TIME } from '../../appliance/core/vectors.js'
import { dhFromSecret, blake2b } from '../../appliance/core/crypto.js'
import { Identity } from '../../appliance/core/identity.js'
import { SessionManager } from '../../appliance/core/sessions.js'
import type { Session } from '../../appliance/core/session.js'
import { decodeFragmentHeader, fragment } from '../../appliance/core/fragment.js'
import { MalformedPacketError } from '../../appliance/core/errors.js'
import { checkDataFrame } from '../../appliance/core/wire/data.js'
import { decodeAnnounceBody, encodeAnnounceBody, type AnnounceBody } from '../../appliance/core/wire/announce.js'
import { decodeHandshake } from '../../appliance/core/wire/handshake.js'
import { decodePacket, encodePacket, encodeSignedPacket, reencodePacket, type PacketInit } from '../../appliance/core/wire/packet.js'
import { LinkKind, PacketFlags, PacketType, VK_DATA, VK_FRAGMENT, VK_PACKET } from '../../appliance/core/wire/constants.js'
import { decodeHop, encodeHop, VK_HOP } from '../../appliance/mesh/hop.js'
import { UDP_BEACON } from '../../drivers/udp/link.js'
import { Body, decodeFrameBytes, frameBytes, Flags, type LinkFrame, type Message } from '../../firmware-bridge/codec.js'
import { exampleFrames } from '../../firmware-bridge/vectors.js'
import { decodeEthernetFrame, encodeEthernetFrame, encodeIpv4Datagram, IP_PROTOCOL_KAIRO } from '../../drivers/ethernet/frame.js'
import { enhancedPacketBlock, fileHeader, LINKTYPE, type InterfaceDescription } from '../../pcap/pcapng.js'
import { loraTapHeader, udpPacket } from '../../pcap/encap.js'

export const DISSECTOR = fileURLToPath(new URL('../../pcap/kairo-gw.lua', import.meta.url))

export const HAS_TSHARK = hasCommand('tshark', ['--version'])

/** Expert info severities and groups as tshark prints them (epan/proto.h PI_*). */
export const SEVERITY = Object.freeze({ COMMENT: 0x00100000, CHAT: 0x00200000, NOTE: 0x00400000, WARN: 0x00600000, ERROR: 0x00800000 })
export const GROUP = Object.freeze({ CHECKSUM: 0x01000000, SEQUENCE: 0x02000000, RESPONSE_CODE: 0x03000000, REQUEST_CODE: 0x04000000, UNDECODED: 0x05000000, REASSEMBLE: 0x06000000, MALFORMED: 0x07000000, DEBUG: 0x08000000, PROTOCOL: 0x09000000 })

/** stderr lines tshark prints that say nothing about the dissector. */
const BENIGN_STDERR = [/^Running as user "root" and group "root"\. This could be dangerous\.$/, /^\s*$/]

export interface TsharkRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs tshark with the dissector loaded (`-X lua_script:`), arguments after it. */
export function runTshark(args: readonly string[], opts: { lua?: boolean } = {}): Promise<TsharkRun> {
  const argv = opts.lua === false ? [...args] : ['-X', `lua_script:${DISSECTOR}`, ...args]
  return new Promise((resolve, reject) => {
    const child = spawn('tshark', argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }))
  })
}

/** stderr without the lines tshark always prints as root; anything left is a problem (e.g. "Lua: Error during loading"). */
export function unexpectedStderr(stderr: string): string[] {
  return stderr.split('\n').filter((l) => !BENIGN_STDERR.some((re) => re.test(l)))
}

/** Fields every decode asks for, to judge the packet. */
export const DIAGNOSTIC_FIELDS = [
  'frame.number',
  'frame.protocols',
  '_ws.col.Info',
  '_ws.expert.message',
  '_ws.expert.severity',
  '_ws.expert.group',
  '_ws.malformed',
  '_ws.malformed.dissector_bug',
  '_ws.malformed.expert',
  '_ws.lua.error',
  'aitcp.bug',
  'kairo_fb.bug',
  'kairo_eth.bug',
] as const

export interface Expert {
  message: string
  severity: number
  group: number
}

export interface DecodedPacket {
  /** 1-based, as frame.number. */
  number: number
  /** Every requested field that occurs in the packet: its values in tree order. */
  fields: Record<string, string[]>
  info: string
  protocols: string
  experts: Expert[]
}

export interface DecodeOptions {
  /** Preferences, `-o name:value`. */
  prefs?: Record<string, string>
  /** Display filter (-Y). */
  filter?: string
}

/**
 * Decodes `file` with the dissector and returns, per packet, the values of `fields` (plus the
 * diagnostic fields). Rejects when tshark fails or prints anything unexpected on stderr (a
 * script that does not load, an unknown field name).
 */
export async function decodeFile(file: string, fields: readonly string[], opts: DecodeOptions = {}): Promise<DecodedPacket[]> {
  const names = [...new Set([...DIAGNOSTIC_FIELDS, ...fields])]
  const args = ['-r', file, '-T', 'json', ...names.flatMap((n) => ['-e', n])]
  for (const [k, v] of Object.entries(opts.prefs ?? {})) args.push('-o', `${k}:${v}`)
  if (opts.filter !== undefined) args.push('-Y', opts.filter)
  const r = await runTshark(args)
  const extra = unexpectedStderr(r.stderr)
  if (r.code !== 0 || extra.length > 0) throw new Error(`tshark ${args.join(' ')} exited ${String(r.code)}; stderr:\n${extra.join('\n')}`)
  const docs = JSON.parse(r.stdout === '' ? '[]' : r.stdout) as { _source: { layers: Record<string, string[]> } }[]
  return docs.map((d) => {
    const layers = d._source.layers
    const messages = layers['_ws.expert.message'] ?? []
    const severities = layers['_ws.expert.severity'] ?? []
    const groups = layers['_ws.expert.group'] ?? []
    const experts = messages.map((message, i) => ({ message, severity: Number(severities[i]), group: Number(groups[i]) }))
    return {
      number: Number(layers['frame.number']?.[0]),
      fields: layers,
      info: layers['_ws.col.Info']?.[0] ?? '',
      protocols: layers['frame.protocols']?.[0] ?? '',
      experts,
    }
  })
}

export const OUR_PROTOCOLS: readonly string[] = ['aitcp', 'kairo_fb', 'kairo_eth']

/**
 * What says the dissector itself went wrong on this packet (never acceptable, whatever the
 * input): a Lua error, a dissector bug, the script's own internal-error expert info, or an
 * exception ("Malformed Packet (Exception occurred)") raised while one of its protocols was the
 * innermost layer. An exception in Wireshark's own dissectors before ours are reached (a
 * 5-byte "Ethernet frame") is theirs, not ours.
 */
export function dissectorFailures(p: DecodedPacket): string[] {
  const out: string[] = []
  for (const f of ['_ws.lua.error', '_ws.malformed.dissector_bug', 'aitcp.bug', 'kairo_fb.bug', 'kairo_eth.bug']) {
    if (p.fields[f] !== undefined) out.push(`${f} present`)
  }
  for (const e of p.experts) if (/Lua Error|Dissector bug|kairo-gw\.lua bug/i.test(e.message)) out.push(e.message)
  const innermost = p.protocols.split(':').at(-1) ?? ''
  if (p.fields['_ws.malformed.expert'] !== undefined && OUR_PROTOCOLS.includes(innermost)) out.push(`exception in ${innermost} (${p.protocols})`)
  return out
}

/** Expert infos of severity Error (any group): what a valid packet must not have. */
export function errorExperts(p: DecodedPacket): Expert[] {
  return p.experts.filter((e) => e.severity >= SEVERITY.ERROR)
}

/** True when the packet carries an expert info of group Malformed and severity Error. */
export function isFlaggedMalformed(p: DecodedPacket): boolean {
  return p.experts.some((e) => e.group === GROUP.MALFORMED && e.severity >= SEVERITY.ERROR)
}

/** A field's values in the tests' conventions: byte fields as lowercase hex without ':'. */
export function field(p: DecodedPacket, name: string): string | undefined {
  const v = p.fields[name]
  if (v === undefined) return undefined
  return v.map((s) => normalizeValue(s)).join(',')
}

export function normalizeValue(s: string): string {
  return /^[0-9a-f]{2}(:[0-9a-f]{2})+$/i.test(s) ? s.replace(/:/g, '').toLowerCase() : s
}

export interface RegisteredField {
  abbrev: string
  name: string
  type: string
  protocol: string
}

/** `tshark -G fields` with the dissector loaded: every registered field by abbreviation. */
export async function registeredFields(): Promise<Map<string, RegisteredField>> {
  const r = await runTshark(['-G', 'fields', '-X', `lua_script:${DISSECTOR}`], { lua: false })
  const extra = unexpectedStderr(r.stderr)
  if (r.code !== 0 || extra.length > 0) throw new Error(`tshark -G fields exited ${String(r.code)}; stderr:\n${extra.join('\n')}`)
  const out = new Map<string, RegisteredField>()
  for (const line of r.stdout.split('\n')) {
    const cols = line.split('\t')
    if (cols[0] === 'F' && cols.length >= 5) out.set(cols[2]!, { name: cols[1]!, abbrev: cols[2]!, type: cols[3]!, protocol: cols[4]! })
    else if (cols[0] === 'P' && cols.length >= 3) out.set(cols[2]!, { name: cols[1]!, abbrev: cols[2]!, type: 'PROTOCOL', protocol: cols[2]! })
  }
  return out
}

/* ------------------------------------------------------------------------------------------ */
/* Sample frames made by the project's real code, with the dissector fields they must decode to */

export type Expect = Record<string, string>

export interface Sample {
  name: string
  /** An AI-TCP frame (aitcp samples) or a COBS-decoded firmware-bridge link frame (kairo_fb). */
  bytes: Buffer
  /** Fields and values the dissector must produce (tshark conventions: decimal, lowercase hex). */
  expect: Expect
}

const hx = (b: Uint8Array) => Buffer.from(b).toString('hex')
const seq32 = (start: number) => Buffer.from(Array.from({ length: 32 }, (_, i) => (start + i) & 0xff))

/** A deterministic stand-in for the CSPRNG (as appliance/core/vectors.ts). */
function rng(label: string): (buf: Uint8Array) => void {
  let counter = 0
  return (buf) => {
    buf.set(blake2b(buf.length < 16 ? 16 : buf.length, [Buffer.from(label), Buffer.from([counter++])]).subarray(0, buf.length))
  }
}

export const ALICE = Identity.fromSeed(ALICE_SEED)
export const BOB = Identity.fromSeed(BOB_SEED)
export const CAROL = Identity.fromSeed(seq32(0x40))

/** Fields of a Data frame sealed from the given inputs. */
export function dataExpect(frame: Buffer, i: { type: number; flags: number; hopLimit: number; session: number; dst: Uint8Array; payloadLength: number }): Expect {
  return {
    'aitcp.version': '1',
    'aitcp.kind': '1',
    'aitcp.type': String(i.type),
    'aitcp.flags': String(i.flags),
    'aitcp.hop_limit': String(i.hopLimit),
    'aitcp.session': String(i.session >>> 0),
    'aitcp.dst': hx(i.dst),
    // masked by header protection: the frame's own bytes are what was put in
    'aitcp.seq_protected': hx(frame.subarray(24, 32)),
    'aitcp.ciphertext_len': String(i.payloadLength),
    'aitcp.tag': hx(frame.subarray(frame.length - 16)),
  }
}

/** Fields of a Packet frame encoded from `p` (signature as given or as encodeSignedPacket made it). */
export function packetExpect(frame: Buffer, p: PacketInit): Expect {
  const d = decodePacket(frame) // only for the signature encodeSignedPacket computed
  const e: Expect = {
    'aitcp.version': '1',
    'aitcp.kind': '2',
    'aitcp.type': String(p.type),
    'aitcp.flags': String(p.flags ?? 0),
    'aitcp.hop_limit': String(p.hopLimit),
    'aitcp.packet_id': String(p.packetId >>> 0),
    'aitcp.src': hx(p.src),
    'aitcp.payload_len': String(p.payload?.length ?? 0),
    'aitcp.path_cost': String(p.pathCost ?? 0),
  }
  if (p.dst) e['aitcp.dst'] = hx(p.dst)
  if (d.signature) e['aitcp.signature'] = hx(d.signature)
  return e
}

export function announceExpect(a: AnnounceBody): Expect {
  const e: Expect = {
    'aitcp.ann.identity_key': hx(a.identityKey),
    'aitcp.ann.static_key': hx(a.staticKey),
    'aitcp.ann.capabilities': String(a.capabilities),
    'aitcp.ann.timestamp': String(a.timestamp),
    'aitcp.ann.interval_ms': String(a.intervalMs ?? 0),
    'aitcp.ann.mesh_ip': String(a.meshIp ?? 0),
    'aitcp.ann.links_count': String(a.links.length),
  }
  if (a.links.length > 0) {
    e['aitcp.ann.link_name'] = a.links.map((l) => l.name).join(',')
    e['aitcp.ann.link_kind'] = a.links.map((l) => String(l.kind)).join(',')
    e['aitcp.ann.link_mtu'] = a.links.map((l) => String(l.mtu)).join(',')
    e['aitcp.ann.link_bitrate'] = a.links.map((l) => String(l.bitrate)).join(',')
  }
  if (a.uuid) e['aitcp.ann.uuid'] = hx(a.uuid)
  if (a.name !== undefined) e['aitcp.ann.name'] = a.name
  return e
}

function handshakeExpect(frame: Buffer): Expect {
  const p = decodePacket(frame)
  const h = decodeHandshake(p.payload)
  return {
    ...packetExpect(frame, { type: p.type, flags: p.flags, hopLimit: p.hopLimit, packetId: p.packetId, src: p.src, dst: p.dst, payload: p.payload, pathCost: p.pathCost }),
    'aitcp.hs.pattern': String(h.pattern),
    'aitcp.hs.message': String(h.message),
    'aitcp.hs.sender_index': String(h.senderIndex),
    'aitcp.hs.receiver_index': String(h.receiverIndex),
    'aitcp.hs.noise_len': String(h.noise.length),
  }
}

/** The announce of `id` as encodeAnnounce builds it, with every optional field set. */
export function fullAnnounce(id: Identity, packetId: number): { frame: Buffer; body: AnnounceBody; init: PacketInit } {
  const body: AnnounceBody = {
    identityKey: id.identityKey,
    staticKey: id.static.publicKey,
    capabilities: 0b111,
    links: [
      { kind: LinkKind.LoRa, name: 'lora0', mtu: 255, bitrate: 5470 },
      { kind: LinkKind.Ethernet, name: 'eth0', mtu: 1500, bitrate: 100_000_000 },
      { kind: LinkKind.Udp, name: 'udp-ü', mtu: 1400, bitrate: 0 },
    ],
    timestamp: VECTOR_TIME + 1234,
    intervalMs: 30_000,
    uuid: Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex'),
    meshIp: (100 << 24) | (64 << 16) | (3 << 8) | 7,
    name: 'gw-north.1',
  }
  const payload = encodeAnnounceBody(body)
  const init: PacketInit = { type: PacketType.Announce, flags: PacketFlags.Signed | PacketFlags.AckRequested, hopLimit: 16, packetId, src: id.nodeId, payload }
  const frame = encodeSignedPacket(id, { type: PacketType.Announce, flags: PacketFlags.AckRequested, hopLimit: 16, packetId, payload })
  return { frame, body, init }
}

export interface Handshakes {
  ik: Buffer[]
  xx: Buffer[]
  /** Alice's session with Bob (from IK) and Bob's. */
  alice: Session
  bob: Session
}

/** An IK handshake (Alice → Bob, as the protocol vectors) and an XX one (Carol → Bob). */
export function handshakes(): Handshakes {
  const a = new SessionManager({ identity: ALICE, now: () => 0, wallClock: () => VECTOR_TIME, random: rng('alice'), ephemeral: () => dhFromSecret(seq32(0x80)) })
  const b = new SessionManager({ identity: BOB, now: () => 0, wallClock: () => VECTOR_TIME, random: rng('bob'), ephemeral: () => dhFromSecret(seq32(0xa0)) })
  a.learn({ identityKey: BOB.identityKey, staticKey: BOB.static.publicKey, capabilities: 0, links: [], timestamp: VECTOR_TIME })
  const m0 = a.connect(BOB.nodeId).frame
  const r = b.handleHandshake(decodePacket(m0))
  const m1 = r.reply!
  const done = a.handleHandshake(decodePacket(m1))
  const c = new SessionManager({ identity: CAROL, now: () => 0, wallClock: () => VECTOR_TIME, random: rng('carol'), ephemeral: () => dhFromSecret(seq32(0xc0)) })
  const b2 = new SessionManager({ identity: BOB, now: () => 0, wallClock: () => VECTOR_TIME, random: rng('bob2'), ephemeral: () => dhFromSecret(seq32(0xe0)) })
  const x0 = c.connect(BOB.nodeId).frame
  const x1 = b2.handleHandshake(decodePacket(x0)).reply!
  const x2 = c.handleHandshake(decodePacket(x1)).reply!
  b2.handleHandshake(decodePacket(x2))
  return { ik: [m0, m1], xx: [x0, x1, x2], alice: done.session!, bob: r.session! }
}

/** Every kind of AI-TCP frame the project sends, as produced by its code. */
export function aitcpSamples(): Sample[] {
  const out: Sample[] = []
  const hs = handshakes()
  for (const [i, f] of hs.ik.entries()) out.push({ name: `IK message ${i}`, bytes: f, expect: handshakeExpect(f) })
  for (const [i, f] of hs.xx.entries()) out.push({ name: `XX message ${i}`, bytes: f, expect: handshakeExpect(f) })
  // Data frames of every type, both directions
  const types = [PacketType.Ack, PacketType.Keepalive, PacketType.Close, PacketType.TaskRequest, PacketType.AgentMigration, PacketType.ReputationDelta, PacketType.BroadcastAnnounce, PacketType.VectorSync]
  for (const [k, type] of types.entries()) {
    const s = k % 2 === 0 ? hs.alice : hs.bob
    const flags = type >= 0x10 ? PacketFlags.AckRequested | (k % 3 === 0 ? PacketFlags.Bulk : 0) : 0
    const payload = Buffer.alloc(type === PacketType.Keepalive || type === PacketType.Close ? 0 : 16 + 7 * k, k + 1)
    const hopLimit = 16 - k
    const frame = s.sealCopy(type, flags, payload, hopLimit)
    out.push({ name: `Data type 0x${type.toString(16)}`, bytes: frame, expect: dataExpect(frame, { type, flags, hopLimit, session: s.remoteIndex, dst: s.remoteNodeId, payloadLength: payload.length }) })
  }
  // Announces: the vector's (two links, no optional fields) and one with everything, flooded
  const full = fullAnnounce(ALICE, 0x01020304)
  out.push({ name: 'announce (all fields)', bytes: full.frame, expect: { ...packetExpect(full.frame, full.init), ...announceExpect(full.body) } })
  const relayed = reencodePacket(decodePacket(full.frame), 9, 4242)
  out.push({ name: 'announce relayed (path_cost)', bytes: relayed, expect: { ...packetExpect(relayed, { ...full.init, hopLimit: 9, pathCost: 4242 }), ...announceExpect(full.body) } })
  const plainBody: AnnounceBody = { identityKey: BOB.identityKey, staticKey: BOB.static.publicKey, capabilities: 0, links: [], timestamp: VECTOR_TIME }
  const plainPayload = encodeAnnounceBody(plainBody)
  const plain = encodeSignedPacket(BOB, { type: PacketType.Announce, hopLimit: 0, packetId: 0xffffffff, payload: plainPayload })
  out.push({ name: 'announce (minimal)', bytes: plain, expect: { ...packetExpect(plain, { type: PacketType.Announce, flags: PacketFlags.Signed, hopLimit: 0, packetId: 0xffffffff, src: BOB.nodeId, payload: plainPayload }), ...announceExpect(plainBody) } })
  // Signed agent packets: unicast and broadcast; an unsigned packet
  const task: PacketInit = { type: PacketType.TaskRequest, flags: PacketFlags.AckRequested, hopLimit: 7, packetId: 77, src: ALICE.nodeId, dst: CAROL.nodeId, payload: Buffer.from('{"task":"sum"}') }
  const taskFrame = encodeSignedPacket(ALICE, task)
  out.push({ name: 'signed TASK_REQUEST packet', bytes: taskFrame, expect: packetExpect(taskFrame, { ...task, flags: PacketFlags.AckRequested | PacketFlags.Signed }) })
  const bcast: PacketInit = { type: PacketType.BroadcastAnnounce, flags: PacketFlags.Bulk, hopLimit: 3, packetId: 0x80000001, src: CAROL.nodeId, payload: Buffer.alloc(300, 0x5a) }
  const bcastFrame = encodeSignedPacket(CAROL, bcast)
  out.push({ name: 'signed broadcast packet', bytes: bcastFrame, expect: packetExpect(bcastFrame, { ...bcast, flags: PacketFlags.Bulk | PacketFlags.Signed }) })
  const bare: PacketInit = { type: PacketType.VectorSync, hopLimit: 1, packetId: 5, src: BOB.nodeId, dst: ALICE.nodeId }
  const bareFrame = encodePacket(bare)
  out.push({ name: 'unsigned packet without payload', bytes: bareFrame, expect: packetExpect(bareFrame, bare) })
  return out
}

/** `frame` cut for `mtu` with `fragId`: one sample per fragment (the last one completes it). */
export function fragmentSamples(name: string, frame: Buffer, mtu: number, fragId: number): Sample[] {
  const frags = fragment(frame, mtu, fragId)
  return frags.map((f, i) => ({
    name: `${name} fragment ${i + 1}/${frags.length}`,
    bytes: f,
    expect: {
      'aitcp.version': '1',
      'aitcp.kind': '3',
      'aitcp.frag.index': String(i),
      'aitcp.frag.count': String(frags.length),
      'aitcp.frag.id': String(fragId >>> 0),
      'aitcp.frag.chunk_len': String(f.length - 8),
      ...(i === frags.length - 1 ? { 'aitcp.frag.reassembled_len': String(frame.length) } : {}),
    },
  }))
}

/** The sample inside a hop header. */
export function hopSample(s: Sample, next: number, prev: number): Sample {
  const kind = s.expect['aitcp.kind'] ?? '3'
  return {
    name: `hop ${s.name}`,
    bytes: encodeHop(s.bytes, next, prev),
    expect: { ...s.expect, 'aitcp.kind': '4', 'aitcp.version': '1', 'aitcp.inner.kind': kind, 'aitcp.inner.version': '1', 'aitcp.hop.next': String(next >>> 0), 'aitcp.hop.prev': String(prev >>> 0) },
  }
}

const BODY_FIELDS: Record<string, (m: Message) => Expect> = {
  Hello: (m) => {
    const x = m as Extract<Message, { type: 'Hello' }>
    return { 'kairo_fb.protocol_version': String(x.protocolVersion), 'kairo_fb.session': String(x.session), 'kairo_fb.heartbeat_ms': String(x.heartbeatMs), 'kairo_fb.host_name': x.hostName }
  },
  HelloAck: (m) => {
    const x = m as Extract<Message, { type: 'HelloAck' }>
    return {
      'kairo_fb.protocol_version': String(x.protocolVersion),
      'kairo_fb.session': String(x.session),
      'kairo_fb.firmware_name': x.firmwareName,
      'kairo_fb.firmware_version': x.firmwareVersion,
      'kairo_fb.radio_chip': String(x.radioChip),
      'kairo_fb.mtu': String(x.mtu),
      'kairo_fb.queue_depth': String(x.queueDepth),
      'kairo_fb.credits': String(x.credits),
      'kairo_fb.capabilities': String(x.capabilities),
    }
  },
  Configure: (m) => configExpect((m as Extract<Message, { type: 'Configure' }>).config),
  Transmit: (m) => {
    const x = m as Extract<Message, { type: 'Transmit' }>
    return { 'kairo_fb.token': String(x.token), 'kairo_fb.payload': hx(x.payload), 'kairo_fb.payload_len': String(x.payload.length) }
  },
  TxDone: (m) => {
    const x = m as Extract<Message, { type: 'TxDone' }>
    return { 'kairo_fb.token': String(x.token), 'kairo_fb.airtime_us': String(x.airtimeUs) }
  },
  Receive: (m) => {
    const x = m as Extract<Message, { type: 'Receive' }>
    return {
      'kairo_fb.payload': hx(x.payload),
      'kairo_fb.payload_len': String(x.payload.length),
      'kairo_fb.rssi_dbm_x4': String(x.rssiDbmX4),
      'kairo_fb.snr_db_x4': String(x.snrDbX4),
      'kairo_fb.rssi_dbm': String(x.rssiDbmX4 / 4),
      'kairo_fb.snr_db': String(x.snrDbX4 / 4),
      'kairo_fb.frequency_error_hz': String(x.frequencyErrorHz),
      'kairo_fb.timestamp_us': String(x.timestampUs),
    }
  },
  ChannelActivity: (m) => ({ 'kairo_fb.busy': (m as Extract<Message, { type: 'ChannelActivity' }>).busy ? '1' : '0' }),
  Status: (m) => {
    const x = m as Extract<Message, { type: 'Status' }>
    return {
      'kairo_fb.rx_ok': String(x.rxOk),
      'kairo_fb.rx_crc_error': String(x.rxCrcError),
      'kairo_fb.tx_ok': String(x.txOk),
      'kairo_fb.tx_fail': String(x.txFail),
      'kairo_fb.queue_free': String(x.queueFree),
      'kairo_fb.uptime_ms': String(x.uptimeMs),
      'kairo_fb.radio_on': x.radioOn ? '1' : '0',
      'kairo_fb.link_errors': String(x.linkErrors),
      'kairo_fb.retransmits': String(x.retransmits),
      ...configExpect(x.config),
    }
  },
  RadioOnOff: (m) => ({ 'kairo_fb.on': (m as Extract<Message, { type: 'RadioOnOff' }>).on ? '1' : '0' }),
  RadioOnOffAck: (m) => ({ 'kairo_fb.on': (m as Extract<Message, { type: 'RadioOnOffAck' }>).on ? '1' : '0' }),
  Error: (m) => {
    const x = m as Extract<Message, { type: 'Error' }>
    return {
      'kairo_fb.code': String(x.code),
      'kairo_fb.ref_seq': String(x.refSeq),
      'kairo_fb.token': String(x.token),
      ...(x.field !== '' ? { 'kairo_fb.field': x.field } : {}),
      ...(x.message !== '' ? { 'kairo_fb.message': x.message } : {}),
    }
  },
  Credits: (m) => ({ 'kairo_fb.grant': String((m as Extract<Message, { type: 'Credits' }>).grant) }),
}

function configExpect(c: { frequencyHz: number; bandwidthHz: number; spreadingFactor: number; codingRate: number; txPowerDbm: number; syncWord: number; preambleSymbols: number }): Expect {
  return {
    'kairo_fb.frequency_hz': String(c.frequencyHz),
    'kairo_fb.bandwidth_hz': String(c.bandwidthHz),
    'kairo_fb.spreading_factor': String(c.spreadingFactor),
    'kairo_fb.sf': String(c.spreadingFactor),
    'kairo_fb.coding_rate': String(c.codingRate),
    'kairo_fb.tx_power_dbm': String(c.txPowerDbm),
    'kairo_fb.sync_word': String(c.syncWord),
    'kairo_fb.preamble_symbols': String(c.preambleSymbols),
  }
}

/** The fields of a firmware-bridge link frame built from `f`. */
export function fbExpect(f: LinkFrame): Expect {
  const bytes = frameBytes(f)
  const e: Expect = {
    'kairo_fb.version': String(f.version),
    'kairo_fb.flags': String(f.flags),
    'kairo_fb.seq': String(f.seq),
    'kairo_fb.ack': String(f.ack),
    'kairo_fb.crc': String(bytes.readUInt32LE(bytes.length - 4)),
    'kairo_fb.crc_ok': '1',
  }
  if (f.message !== null) {
    const type = f.message.type as keyof typeof Body
    e['kairo_fb.msg'] = String(Body[type])
    e['kairo_fb.msg_name'] = type
    Object.assign(e, BODY_FIELDS[type]?.(f.message) ?? {})
  }
  return e
}

/** Every firmware-bridge message (the documented examples and the ones they lack), as link frames. */
export function fbSamples(radioPayloads: { transmit: Sample; receive: Sample }): Sample[] {
  // The documented Transmit and Receive examples carry text, not AI-TCP frames: they are left out
  // here (the aitcp dissector rightly calls their payloads malformed) and tested on their own.
  const frames: { name: string; frame: LinkFrame; inner?: Expect }[] = exampleFrames()
    .filter((e) => e.name !== 'transmit' && e.name !== 'receive')
    .map((e) => ({ name: e.name, frame: e.frame }))
  const v = 1
  frames.push(
    { name: 'channel_activity', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 9, ack: 3, message: { type: 'ChannelActivity', busy: true } } },
    { name: 'channel_free', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 10, ack: 3, message: { type: 'ChannelActivity', busy: false } } },
    { name: 'get_status', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 2, ack: 2, message: { type: 'GetStatus' } } },
    { name: 'radio_off', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 4, ack: 5, message: { type: 'RadioOnOff', on: false } } },
    { name: 'radio_off_ack', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 11, ack: 5, message: { type: 'RadioOnOffAck', on: false } } },
    { name: 'radio_on', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 5, ack: 12, message: { type: 'RadioOnOff', on: true } } },
    { name: 'reset', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 6, ack: 12, message: { type: 'Reset' } } },
    { name: 'credits', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 12, ack: 7, message: { type: 'Credits', grant: 3 } } },
    { name: 'error_queue_full', frame: { version: v, flags: Flags.NEEDS_ACK, seq: 13, ack: 8, message: { type: 'Error', code: 1, refSeq: 255, token: 0xfffffffe, field: '', message: '' } } },
    {
      name: 'transmit_aitcp',
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 7, ack: 14, message: { type: 'Transmit', token: 5, payload: radioPayloads.transmit.bytes } },
      inner: radioPayloads.transmit.expect,
    },
    {
      name: 'receive_aitcp',
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 14, ack: 8, message: { type: 'Receive', payload: radioPayloads.receive.bytes, rssiDbmX4: -437, snrDbX4: -41, frequencyErrorHz: 2_000_000_000, timestampUs: 2 ** 53 - 1 } },
      inner: radioPayloads.receive.expect,
    },
  )
  return frames.map((f) => ({ name: `fb ${f.name}`, bytes: frameBytes(f.frame), expect: { ...fbExpect(f.frame), ...(f.inner ?? {}) } }))
}

/* ------------------------------------------------------------------------------------------ */
/* Link-layer encapsulations and a capture file builder */

export const MAC_A = '02:00:00:00:00:0a'
export const MAC_B = '02:00:00:00:00:0b'
export const KAIRO_UDP_PORT = 47800

/** Ethernet II, EtherType 0x88B5, payload length, padding (drivers/ethernet/frame.ts). */
export function ethernetKairo(frame: Uint8Array): Buffer {
  return encodeEthernetFrame({ dst: MAC_B, src: MAC_A, payload: frame })
}

/** A plain Ethernet II frame MAC_A → MAC_B (no kairo length field), padded to 60 bytes. */
export function ethernetII(etherType: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(14)
  Buffer.from(MAC_B.replace(/:/g, ''), 'hex').copy(head, 0)
  Buffer.from(MAC_A.replace(/:/g, ''), 'hex').copy(head, 6)
  head.writeUInt16BE(etherType, 12)
  const out = Buffer.concat([head, payload])
  return out.length >= 60 ? out : Buffer.concat([out, Buffer.alloc(60 - out.length)])
}

/** An IPv6 header (next header `proto`) and payload. */
export function ipv6Packet(proto: number, payload: Uint8Array, src = 'fd00::a', dst = 'fd00::b'): Buffer {
  const ip = Buffer.alloc(40)
  ip.writeUInt32BE(0x60000000, 0)
  ip.writeUInt16BE(payload.length, 4)
  ip[6] = proto
  ip[7] = 64
  const addr = (s: string) => {
    const [head, tail] = s.split('::') as [string, string]
    const a = head === '' ? [] : head.split(':')
    const b = tail === '' ? [] : tail.split(':')
    const words = [...a, ...new Array<string>(8 - a.length - b.length).fill('0'), ...b]
    const out = Buffer.alloc(16)
    words.forEach((w, i) => out.writeUInt16BE(Number.parseInt(w, 16), i * 2))
    return out
  }
  addr(src).copy(ip, 8)
  addr(dst).copy(ip, 24)
  return Buffer.concat([ip, payload])
}

/** A raw IP link's frame on Ethernet: IPv4 or IPv6 with IP protocol 253. */
export function ethernetRawIp(frame: Uint8Array, v6 = false): Buffer {
  return v6 ? ethernetII(0x86dd, ipv6Packet(IP_PROTOCOL_KAIRO, frame)) : ethernetII(0x0800, encodeIpv4Datagram({ src: '192.0.2.10', dst: '192.0.2.11', payload: frame }))
}

/** A UDP link's datagram as LINKTYPE_RAW: IPv4 or IPv6 + UDP. */
export function rawUdp(frame: Uint8Array, v6 = false, port = KAIRO_UDP_PORT): Buffer {
  return v6
    ? udpPacket({ srcHost: 'fd00::a', srcPort: port, dstHost: 'fd00::b', dstPort: port }, frame)
    : udpPacket({ srcHost: '192.0.2.10', srcPort: port, dstHost: '192.0.2.11', dstPort: port }, frame)
}

export const LORA = Object.freeze({ frequencyHz: 869_525_000, bandwidthHz: 125_000, spreadingFactor: 9, syncWord: 0x12 })

/** LoRaTap v0 header (pcap/encap.ts) + the radio payload. */
export function loraTap(frame: Uint8Array, rx?: { rssi: number; snr: number }): Buffer {
  return Buffer.concat([loraTapHeader({ ...LORA, ...(rx ?? {}) }), frame])
}

export type LinkName = 'eth' | 'rawip' | 'udp' | 'lora' | 'fb'

export const LINK_INTERFACES: Readonly<Record<LinkName, InterfaceDescription>> = Object.freeze({
  eth: { linktype: LINKTYPE.ETHERNET, name: 'eth0' },
  rawip: { linktype: LINKTYPE.ETHERNET, name: 'eth1' },
  udp: { linktype: LINKTYPE.RAW, name: 'udp0' },
  lora: { linktype: LINKTYPE.LORATAP, name: 'lora0' },
  fb: { linktype: LINKTYPE.KAIRO_FB, name: 'lora0/bridge' },
})

/** A pcapng file with one interface per link kind; packets added in order (frame 1, 2, ...). */
export class CaptureBuilder {
  private readonly links: LinkName[]
  private readonly blocks: Buffer[] = []
  private ts = 1_767_225_600_000_000n

  constructor(links: readonly LinkName[] = ['eth', 'rawip', 'udp', 'lora', 'fb']) {
    this.links = [...links]
  }

  get count(): number {
    return this.blocks.length
  }

  /** Adds a packet (link-layer bytes) on `link`; returns its frame number. */
  add(link: LinkName, data: Uint8Array, dir: 'in' | 'out' = 'in'): number {
    const interfaceId = this.links.indexOf(link)
    if (interfaceId < 0) throw new Error(`CaptureBuilder: no interface for ${link}`)
    this.ts += 1000n
    this.blocks.push(enhancedPacketBlock({ interfaceId, tsUs: this.ts, data, dir }))
    return this.blocks.length
  }

  bytes(): Buffer {
    return Buffer.concat([fileHeader({ userappl: 'kairo-gw tests' }, this.links.map((l) => LINK_INTERFACES[l])), ...this.blocks])
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The project's own decoders as the judge of what is malformed */

function judge(fn: () => void): string | null {
  try {
    fn()
    return null
  } catch (err) {
    if (err instanceof MalformedPacketError) return `${err.field ?? '?'}: ${err.message}`
    throw err
  }
}

function checkAitcp(frame: Buffer, where: { top?: boolean; inHop?: boolean }): void {
  if (where.top === true && frame.equals(UDP_BEACON)) return
  const vk = frame[0]
  if (vk === VK_DATA) return checkDataFrame(frame)
  if (vk === VK_PACKET) {
    const p = decodePacket(frame)
    if (p.type === PacketType.Handshake) decodeHandshake(p.payload)
    if (p.type === PacketType.Announce) {
      if (p.dst !== null) throw new MalformedPacketError('an announce has no destination', { field: 'Packet.dst' })
      if (p.signature === null) throw new MalformedPacketError('an announce must be signed', { field: 'Packet.signature' })
      decodeAnnounceBody(p.payload)
    }
    return
  }
  if (vk === VK_FRAGMENT) {
    decodeFragmentHeader(frame)
    return
  }
  if (vk === VK_HOP && where.inHop !== true) {
    checkAitcp(decodeHop(frame).frame, { inHop: true })
    return
  }
  throw new MalformedPacketError(vk === undefined ? 'empty frame' : `first byte 0x${vk.toString(16)}`, { field: 'vk' })
}

/**
 * What the project's decoders say of one AI-TCP frame taken alone (no reassembly): null when
 * they accept it, else "field: message". Packet payloads are decoded as the node does
 * (Handshake, Announce structure; signatures are not checked).
 */
export function aitcpProblem(frame: Uint8Array): string | null {
  return judge(() => checkAitcp(Buffer.from(frame), { top: true }))
}

/** The same for a firmware-bridge link frame; a Transmit/Receive payload must be an AI-TCP frame. */
export function fbProblem(bytes: Uint8Array): string | null {
  let payload: Uint8Array | null = null
  const p = judge(() => {
    const f = decodeFrameBytes(bytes)
    if (f.message?.type === 'Transmit' || f.message?.type === 'Receive') payload = f.message.payload
  })
  if (p !== null) return p
  if (payload !== null && (payload as Uint8Array).length > 0) {
    const q = aitcpProblem(payload)
    if (q !== null) return `payload: ${q}`
  }
  return null
}

/** The same for an Ethernet frame of an EthernetLink. */
export function ethernetProblem(frame: Uint8Array): string | null {
  const d = decodeEthernetFrame(frame)
  if (!d.ok) return `kairo_eth.${d.reason}`
  return aitcpProblem(d.payload)
}
