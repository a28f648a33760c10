/**
 * pcap/kairo-gw.lua with real tshark (Debian's 4.0): the fields of docs (contract) are registered,
 * frames made by the project's own code decode to exactly what was put in on every link type
 * (Ethernet 0x88B5, raw IP 253 over IPv4/IPv6, UDP over IPv4/IPv6, LoRaTap, firmware-bridge),
 * every malformed thing is flagged by an expert info naming its field (and the project's own
 * decoders agree it is malformed), preferences take effect, and a capture from
 * `kairo-gw pcap generate` decodes to its manifest. Garbage is in dissector-fuzz.test.ts.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { requirePart } from '../lib/parts.js'
import {
  aitcpProblem,
  aitcpSamples,
  ALICE,
  BOB,
  CaptureBuilder,
  decodeFile,
  DISSECTOR,
  dissectorFailures,
  errorExperts,
  ethernetKairo,
  ethernetProblem,
  ethernetRawIp,
  fbExpect,
  fbProblem,
  fbSamples,
  field,
  fragmentSamples,
  fullAnnounce,
  GROUP,
  HAS_TSHARK,
  hopSample,
  isFlaggedMalformed,
  LINK_INTERFACES,
  loraTap,
  LORA,
  rawUdp,
  registeredFields,
  SEVERITY,
  type DecodedPacket,
  type Expect,
  type LinkName,
  type Sample,
  unexpectedStderr,
} from '../lib/tshark.js'
import { encodeFrame, frameBytes, Flags, type LinkFrame } from '../../firmware-bridge/codec.js'
import { crc32c } from '../../firmware-bridge/crc.js'
import { exampleFrames } from '../../firmware-bridge/vectors.js'
import * as flatbuffers from 'flatbuffers'
import { Body } from '../../appliance/generated/kairo/fb/body.js'
import { Hello } from '../../appliance/generated/kairo/fb/hello.js'
import { Transmit } from '../../appliance/generated/kairo/fb/transmit.js'
import { Error as ErrorMsg } from '../../appliance/generated/kairo/fb/error.js'
import { encodeAnnounceBody } from '../../appliance/core/wire/announce.js'
import { encodeHandshake } from '../../appliance/core/wire/handshake.js'
import { encodePacket, encodeSignedPacket } from '../../appliance/core/wire/packet.js'
import { HandshakePattern, LinkKind, PacketFlags, PacketType } from '../../appliance/core/wire/constants.js'
import { encodeHop } from '../../appliance/mesh/hop.js'
import { fragment } from '../../appliance/core/fragment.js'
import { UDP_BEACON } from '../../drivers/udp/link.js'
import { encodeEthernetFrame } from '../../drivers/ethernet/frame.js'

const dir = mkdtempSync(join(tmpdir(), 'kairo-dissector-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const TSHARK = 'tshark (Debian package tshark)'
type Skippable = Parameters<typeof requirePart>[0]

const LORA_MTU = 255
const HOP = 12

/** The contract's fields and the kind of value each holds. */
const CONTRACT: Record<string, 'uint' | 'bytes' | 'string' | 'double' | 'any'> = {
  'aitcp.version': 'uint',
  'aitcp.kind': 'uint',
  'aitcp.type': 'uint',
  'aitcp.flags': 'uint',
  'aitcp.hop_limit': 'uint',
  'aitcp.session': 'uint',
  'aitcp.dst': 'bytes',
  'aitcp.seq_protected': 'bytes',
  'aitcp.ciphertext_len': 'uint',
  'aitcp.tag': 'bytes',
  'aitcp.packet_id': 'uint',
  'aitcp.src': 'bytes',
  'aitcp.payload_len': 'uint',
  'aitcp.signature': 'bytes',
  'aitcp.path_cost': 'uint',
  'aitcp.hs.pattern': 'uint',
  'aitcp.hs.message': 'uint',
  'aitcp.hs.sender_index': 'uint',
  'aitcp.hs.receiver_index': 'uint',
  'aitcp.hs.noise_len': 'uint',
  'aitcp.ann.identity_key': 'bytes',
  'aitcp.ann.static_key': 'bytes',
  'aitcp.ann.capabilities': 'uint',
  'aitcp.ann.timestamp': 'uint',
  'aitcp.ann.interval_ms': 'uint',
  'aitcp.ann.uuid': 'bytes',
  'aitcp.ann.mesh_ip': 'uint',
  'aitcp.ann.name': 'string',
  'aitcp.ann.link_name': 'string',
  'aitcp.ann.link_kind': 'uint',
  'aitcp.frag.index': 'uint',
  'aitcp.frag.count': 'uint',
  'aitcp.frag.id': 'uint',
  'aitcp.frag.chunk_len': 'uint',
  'aitcp.hop.next': 'uint',
  'aitcp.hop.prev': 'uint',
  'aitcp.beacon': 'any',
  'kairo_fb.version': 'uint',
  'kairo_fb.flags': 'uint',
  'kairo_fb.seq': 'uint',
  'kairo_fb.ack': 'uint',
  'kairo_fb.crc': 'uint',
  'kairo_fb.crc_ok': 'uint',
  'kairo_fb.msg': 'uint',
  'kairo_fb.msg_name': 'string',
  'kairo_fb.token': 'uint',
  'kairo_fb.payload_len': 'uint',
  'kairo_fb.rssi_dbm': 'double',
  'kairo_fb.snr_db': 'double',
  'kairo_fb.airtime_us': 'uint',
  'kairo_fb.frequency_hz': 'uint',
  'kairo_fb.sf': 'uint',
}

const TYPE_CLASS: Record<string, RegExp> = {
  uint: /^FT_U?INT(8|16|24|32|40|48|56|64)$/,
  bytes: /^FT_BYTES$/,
  string: /^FT_STRINGZ?$/,
  double: /^FT_(DOUBLE|FLOAT)$/,
  any: /./,
}

/** Every field of every table of schemas/firmware_bridge.fbs except Frame's union. */
function schemaMessageFields(): string[] {
  const text = readFileSync(fileURLToPath(new URL('../../schemas/firmware_bridge.fbs', import.meta.url)), 'utf8')
  const out = new Set<string>()
  for (const m of text.matchAll(/^table (\w+) \{([^}]*)\}/gm)) {
    if (m[1] === 'Frame') continue
    for (const f of m[2]!.matchAll(/^\s*(\w+)\s*:/gm)) out.add(f[1]!)
  }
  return [...out].sort()
}

t.test('tshark -G fields: the protocols and every contract and schema field are registered', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const fields = await registeredFields()
  for (const p of ['aitcp', 'kairo_fb', 'kairo_eth']) t.equal(fields.get(p)?.type, 'PROTOCOL', `protocol ${p}`)
  for (const [name, kind] of Object.entries(CONTRACT)) {
    const f = fields.get(name)
    t.ok(f, `${name} is registered`)
    if (f) t.match(f.type, TYPE_CLASS[kind]!, `${name} is ${kind} (${f.type})`)
  }
  const schema = schemaMessageFields()
  t.ok(schema.length >= 40, `found the schema's fields (${schema.length})`)
  for (const name of schema) t.ok(fields.get(`kairo_fb.${name}`), `kairo_fb.${name} (schemas/firmware_bridge.fbs) is registered`)
  for (const e of ['aitcp.malformed', 'kairo_fb.malformed', 'kairo_eth.malformed']) t.ok(fields.get(e), `expert ${e} is registered`)
})

t.test('installed as a personal plugin (~/.local/lib/wireshark/plugins), tshark loads it without -X', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const home = join(dir, 'home')
  mkdirSync(join(home, '.local/lib/wireshark/plugins'), { recursive: true })
  copyFileSync(DISSECTOR, join(home, '.local/lib/wireshark/plugins/kairo-gw.lua'))
  const cap = new CaptureBuilder(['udp'])
  const s = aitcpSamples().find((x) => x.expect['aitcp.kind'] === '1')!
  cap.add('udp', rawUdp(s.bytes))
  const file = join(dir, 'plugin.pcapng')
  writeFileSync(file, cap.bytes())
  const r = spawnSync('tshark', ['-r', file, '-T', 'fields', '-e', 'aitcp.session', '-e', '_ws.col.Info'], { encoding: 'utf8', env: { ...process.env, HOME: home } })
  t.equal(r.status, 0, `tshark exits 0 (${r.stderr})`)
  t.same(unexpectedStderr(r.stderr), [], 'nothing on stderr but the root warning')
  t.equal(r.stdout.split('\t')[0], s.expect['aitcp.session'], 'the plugin decoded the frame')
})

interface Want {
  frame: number
  name: string
  proto: 'aitcp' | 'kairo_fb'
  expect: Expect
}

/** Compares a decoded packet with what it must hold; every difference as one line. */
function differences(p: DecodedPacket | undefined, w: Want): string[] {
  if (p === undefined) return [`frame ${w.frame} missing from tshark's output`]
  const out = [...dissectorFailures(p), ...errorExperts(p).map((e) => `expert error: ${e.message}`)]
  if (!p.protocols.split(':').includes(w.proto)) out.push(`protocols ${p.protocols} lack ${w.proto}`)
  for (const [k, v] of Object.entries(w.expect)) {
    const got = field(p, k)
    if (got !== v) out.push(`${k}: got ${JSON.stringify(got)}, want ${JSON.stringify(v)}`)
  }
  return out
}

/** Fields of the outermost frame only (the frame inside has aitcp.inner.*). */
const OUTER_ONLY = new Set(['aitcp.kind', 'aitcp.version'])

/**
 * How `s` crosses a LoRa link: in a hop header, fragmented (MTU 255 with the hop header) when
 * it is too long. The last fragment completes the reassembly and also carries the frame's fields.
 */
function radioForm(s: Sample, fragId: number, next: number, prev: number): Sample[] {
  if (s.bytes.length + HOP <= LORA_MTU) return [hopSample(s, next, prev)]
  const frags = fragmentSamples(s.name, s.bytes, LORA_MTU - HOP, fragId)
  return frags.map((f, i) => {
    const h = hopSample(f, next, prev)
    if (i < frags.length - 1) return h
    const inner = Object.fromEntries(Object.entries(s.expect).filter(([k]) => !OUTER_ONLY.has(k)))
    return { ...h, expect: { ...h.expect, ...inner, 'aitcp.kind': '4', 'aitcp.inner.kind': `3,${s.expect['aitcp.kind']!}`, 'aitcp.inner.version': '1,1' } }
  })
}

t.test('frames made by the real code decode to what was put in, on every link type', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const cap = new CaptureBuilder()
  const wants: Want[] = []
  const add = (link: LinkName, data: Buffer, name: string, proto: Want['proto'], expect: Expect, dir: 'in' | 'out' = 'in') => {
    wants.push({ frame: cap.add(link, data, dir), name: `${name} (${link})`, proto, expect })
  }
  const samples = aitcpSamples()
  let fragId = 0x5a000001
  let token = 1
  for (const [i, s] of samples.entries()) {
    add('udp', rawUdp(s.bytes), `${s.name} UDP/IPv4`, 'aitcp', s.expect)
    add('udp', rawUdp(s.bytes, true), `${s.name} UDP/IPv6`, 'aitcp', s.expect, 'out')
    add('eth', ethernetKairo(s.bytes), `${s.name} EtherType 0x88B5`, 'aitcp', { ...s.expect, 'kairo_eth.length': String(s.bytes.length) })
    add('rawip', ethernetRawIp(s.bytes), `${s.name} IPv4 protocol 253`, 'aitcp', s.expect)
    add('rawip', ethernetRawIp(s.bytes, true), `${s.name} IPv6 next header 253`, 'aitcp', s.expect)
    const next = i % 2 === 0 ? 0 : 0x0a0b0c0d
    for (const r of radioForm(s, fragId++, next, 0x01020304)) {
      add('lora', loraTap(r.bytes), `LoRaTap out ${r.name}`, 'aitcp', { ...r.expect, 'loratap.channel.frequency': String(LORA.frequencyHz), 'loratap.channel.sf': '9', 'loratap.syncword': '0x12' }, 'out')
    }
    for (const r of radioForm(s, fragId++, 0x01020304, 0x0a0b0c0d)) {
      add('lora', loraTap(r.bytes, { rssi: -97, snr: -3.25 }), `LoRaTap in ${r.name}`, 'aitcp', { ...r.expect, 'loratap.rssi.packet': String(-97 + 139), 'loratap.syncword': '0x12' })
    }
    for (const r of radioForm(s, fragId++, next, 0x01020304)) {
      const f: LinkFrame = { version: 1, flags: Flags.NEEDS_ACK, seq: token & 0xff, ack: 3, message: { type: 'Transmit', token: token++, payload: r.bytes } }
      add('fb', frameBytes(f), `fb Transmit ${r.name}`, 'kairo_fb', { ...fbExpect(f), ...r.expect }, 'out')
    }
    for (const r of radioForm(s, fragId++, 0x01020304, 0x0a0b0c0d)) {
      const f: LinkFrame = { version: 1, flags: Flags.NEEDS_ACK, seq: token & 0xff, ack: 3, message: { type: 'Receive', payload: r.bytes, rssiDbmX4: -350 - i, snrDbX4: 29 - 3 * i, frequencyErrorHz: -1200 * i, timestampUs: 5_000_000 + i } }
      add('fb', frameBytes(f), `fb Receive ${r.name}`, 'kairo_fb', { ...fbExpect(f), ...r.expect })
    }
  }
  add('udp', rawUdp(UDP_BEACON), 'UDP beacon', 'aitcp', { 'aitcp.beacon': '004b4742' })
  add('udp', rawUdp(UDP_BEACON, true), 'UDP beacon IPv6', 'aitcp', { 'aitcp.beacon': '004b4742' })
  // every firmware-bridge message, plain and as the serial line carries it (COBS, "auto" mode)
  const data = samples.find((s) => s.expect['aitcp.kind'] === '1')!
  const data2 = samples.filter((s) => s.expect['aitcp.kind'] === '1')[1]!
  const fbs = fbSamples({ transmit: hopSample(data, 0, 0x01020304), receive: hopSample(data2, 0x01020304, 0x0a0b0c0d) })
  for (const s of fbs) add('fb', s.bytes, s.name, 'kairo_fb', s.expect)
  for (const e of exampleFrames().filter((x) => x.name !== 'transmit' && x.name !== 'receive')) {
    add('fb', encodeFrame(e.frame), `fb ${e.name} COBS-encoded`, 'kairo_fb', { ...fbExpect(e.frame), 'kairo_fb.cobs': '1' })
  }
  const file = join(dir, 'known.pcapng')
  writeFileSync(file, cap.bytes())
  const names = [...new Set(wants.flatMap((w) => Object.keys(w.expect)))]
  const packets = await decodeFile(file, names)
  t.equal(packets.length, cap.count, 'tshark read every packet')
  const byNumber = new Map(packets.map((p) => [p.number, p]))
  const kinds = new Set<string>()
  for (const w of wants) {
    const p = byNumber.get(w.frame)
    t.same(differences(p, w), [], `frame ${w.frame}: ${w.name}`)
    for (const k of (p ? `${field(p, 'aitcp.kind') ?? ''},${field(p, 'aitcp.inner.kind') ?? ''}` : '').split(',')) kinds.add(k)
  }
  t.same([...kinds].filter((k) => k !== '').sort(), ['1', '2', '3', '4'], 'Data, Packet, Fragment and Hop frames were all decoded')
  const fbMsgs = new Set(packets.map((p) => field(p, 'kairo_fb.msg')).filter((v) => v !== undefined))
  t.equal(fbMsgs.size, 16, `all 16 firmware-bridge messages were decoded (${[...fbMsgs].join(' ')})`)
  // the Info column says what the packet is
  const info = (n: number) => byNumber.get(n)?.info ?? ''
  const firstData = wants.find((w) => w.name.startsWith('Data type 0x3 UDP/IPv4'))!
  t.match(info(firstData.frame), /^Data ACK session 0x[0-9a-f]{8} → dst [0-9a-f]{8}…, 16 B$/, 'Info of a Data frame')
  t.match(info(wants.find((w) => w.name.startsWith('IK message 0 UDP'))!.frame), /^Handshake IK 1\/2 /, 'Info of an IK handshake')
  t.match(info(wants.find((w) => w.name.startsWith('XX message 2 UDP'))!.frame), /^Handshake XX 3\/3 /, 'Info of an XX handshake')
  t.match(info(wants.find((w) => w.name.startsWith('announce (all fields) UDP'))!.frame), /^Announce from e6e8d472… "gw-north\.1", 3 links$/, 'Info of an announce')
  t.match(info(wants.find((w) => /^LoRaTap out hop announce \(all fields\) fragment 1\//.test(w.name))!.frame), /^\[Hop 01020304 → (all|0a0b0c0d)\] Fragment 1\/2 id 0x[0-9a-f]{8}, 235 B$/, 'Info of a hop-wrapped fragment')
  t.match(info(wants.find((w) => w.name.startsWith('fb Transmit hop Data'))!.frame), /^fb Transmit token \d+, \d+ B seq \d+ ack 3 \[NEEDS_ACK\]: \[Hop /, 'Info of a Transmit with its radio frame')
})

t.test('the documented Transmit/Receive examples: the bridge frame decodes, its text payload is not AI-TCP', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const cap = new CaptureBuilder(['fb'])
  const ex = exampleFrames().filter((e) => e.name === 'transmit' || e.name === 'receive')
  for (const e of ex) cap.add('fb', frameBytes(e.frame))
  const file = join(dir, 'examples.pcapng')
  writeFileSync(file, cap.bytes())
  const packets = await decodeFile(file, ['kairo_fb.crc_ok', 'kairo_fb.payload', 'kairo_fb.msg_name', 'aitcp.vk', 'aitcp.malformed'])
  for (const [i, p] of packets.entries()) {
    const e = ex[i]!
    t.same(dissectorFailures(p), [], `${e.name}: no dissector failure`)
    t.equal(field(p, 'kairo_fb.crc_ok'), '1', `${e.name}: CRC good`)
    t.equal(field(p, 'kairo_fb.msg_name'), e.frame.message!.type, `${e.name}: message`)
    const payload = (e.frame.message as { payload: Uint8Array }).payload
    t.equal(field(p, 'kairo_fb.payload'), Buffer.from(payload).toString('hex'), `${e.name}: payload`)
    t.equal(field(p, 'aitcp.vk'), String(payload[0]), `${e.name}: the payload was handed to aitcp`)
    t.ok(p.experts.some((x) => x.group === GROUP.MALFORMED && x.severity === SEVERITY.ERROR && /^vk: 0x68/.test(x.message)), `${e.name}: aitcp calls "hello mesh"/"hi" malformed at vk`)
    t.not(fbProblem(frameBytes(e.frame)), null, `${e.name}: the project's decoders agree the radio payload is no AI-TCP frame`)
  }
})

/** A firmware-bridge link frame with `body` (FlatBuffers Frame bytes) and a correct CRC. */
function fbRaw(header: number[], body: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + body.length + 4)
  Buffer.from(header).copy(out, 0)
  out.set(body, 4)
  out.writeUInt32LE(crc32c(out, 0, 0, out.length - 4), out.length - 4)
  return out
}

/** Replaces the CRC of a link frame (after patching it). */
function recrc(b: Buffer): Buffer {
  b.writeUInt32LE(crc32c(b, 0, 0, b.length - 4), b.length - 4)
  return b
}

function patched(b: Buffer, at: number, bytes: number[]): Buffer {
  const c = Buffer.from(b)
  Buffer.from(bytes).copy(c, at)
  return c
}

t.test('malformed frames: flagged (Malformed/Error) naming the field, as the project decoders reject them', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const samples = aitcpSamples()
  const data = samples.find((s) => s.expect['aitcp.kind'] === '1')!.bytes
  const full = fullAnnounce(ALICE, 99)
  const task = encodeSignedPacket(ALICE, { type: PacketType.TaskRequest, hopLimit: 4, packetId: 1, dst: BOB.nodeId, payload: Buffer.from('x') })
  // the Packet header struct's offset inside the frame, found as the decoders find it
  const headerAt = (frame: Buffer) => {
    const fb = frame.subarray(4)
    const root = fb.readUInt32LE(0)
    const vt = root - fb.readInt32LE(root)
    return 4 + root + fb.readUInt16LE(vt + 4)
  }
  const announce = (patch: Partial<Parameters<typeof encodeAnnounceBody>[0]>, dst?: Buffer) =>
    encodeSignedPacket(ALICE, {
      type: PacketType.Announce,
      hopLimit: 3,
      packetId: 9,
      ...(dst ? { dst } : {}),
      payload: encodeAnnounceBody({ identityKey: ALICE.identityKey, staticKey: ALICE.static.publicKey, capabilities: 0, links: [], timestamp: 1, ...patch }),
    })
  const handshake = (pattern: number, message: number, noise = Buffer.alloc(32, 1)) =>
    encodePacket({ type: PacketType.Handshake, hopLimit: 1, packetId: 2, src: ALICE.nodeId, dst: BOB.nodeId, payload: encodeHandshake({ pattern, message, senderIndex: 5, receiverIndex: 0, noise }) })
  const manyLinks = Array.from({ length: 17 }, (_, i) => ({ kind: LinkKind.Udp, name: `l${i}`, mtu: 1, bitrate: 1 }))
  const frags = fragment(full.frame, 100, 0x31323334)
  const aitcp: [string, Buffer, RegExp][] = [
    ['empty frame', Buffer.alloc(0), /^vk: empty frame/],
    ['Data of 47 bytes', data.subarray(0, 47), /^length: Data frame of 47 bytes/],
    ['Data of unknown type 0x06', patched(data, 1, [0x06]), /^type: 0x06 is not a known packet type/],
    ['version 2', patched(data, 0, [0x21]), /^vk: 0x21: version 2 is not 1/],
    ['kind 5', patched(data, 0, [0x15]), /^vk: 0x15: kind 5/],
    ['Packet of 11 bytes', task.subarray(0, 11), /^length: Packet frame of 11 bytes/],
    ['Packet prefix not zero', patched(task, 2, [1]), /^prefix: /],
    ['Packet root offset outside', patched(task, 4, [0xff, 0xff, 0, 0]), /^Packet: table offset 65535 outside/],
    ['Packet vtable outside', patched(task, 4 + task.readUInt32LE(4), [0x00, 0x00, 0x01, 0x00]), /^Packet: vtable offset/],
    ['Packet header reserved', patched(task, headerAt(task) + 3, [7]), /^Packet\.header\.reserved: must be zero, got 7/],
    ['Packet type 0x20', patched(task, headerAt(task), [0x20]), /^Packet\.header\.type: 0x20/],
    ['Packet undefined flag bit', patched(task, headerAt(task) + 1, [0x0a]), /^Packet\.header\.flags: 0x0a/],
    ['Signed flag without signature', encodePacket({ type: PacketType.TaskRequest, flags: PacketFlags.Signed, hopLimit: 1, packetId: 3, src: ALICE.nodeId, dst: BOB.nodeId }), /^Packet\.signature: Signed flag set but no signature/],
    ['signature of 63 bytes', encodePacket({ type: PacketType.TaskRequest, flags: PacketFlags.Signed, hopLimit: 1, packetId: 3, src: ALICE.nodeId, signature: Buffer.alloc(63) }), /^Packet\.signature: must be 64 bytes, got 63/],
    ['all-zero dst', encodePacket({ type: PacketType.VectorSync, hopLimit: 1, packetId: 3, src: ALICE.nodeId, dst: Buffer.alloc(16) }), /^Packet\.dst: the all-zero node ID/],
    ['announce with a dst', announce({}, BOB.nodeId), /^Packet\.dst: an announce has no destination/],
    ['unsigned announce', encodePacket({ type: PacketType.Announce, hopLimit: 1, packetId: 3, src: ALICE.nodeId, payload: encodeAnnounceBody({ identityKey: ALICE.identityKey, staticKey: ALICE.static.publicKey, capabilities: 0, links: [], timestamp: 1 }) }), /^Packet\.signature: an announce must be signed/],
    ['announce with 17 links', announce({ links: manyLinks }), /^Announce\.links: 17 entries exceeds the limit of 16/],
    ['announce name of 33 bytes', announce({ name: 'n'.repeat(33) }), /^Announce\.name: 33 bytes exceeds the limit of 32/],
    ['announce link name of 33 bytes', announce({ links: [{ kind: LinkKind.LoRa, name: 'x'.repeat(33), mtu: 255, bitrate: 1 }] }), /^Announce\.links\[0\]\.name: 33 bytes exceeds/],
    ['announce identity key of 31 bytes', announce({ identityKey: ALICE.identityKey.subarray(0, 31) }), /^Announce\.identity_key: must be 32 bytes, got 31/],
    ['announce uuid of 15 bytes', announce({ uuid: Buffer.alloc(15, 1) }), /^Announce\.uuid: must be 16 bytes, got 15/],
    ['announce timestamp above 2^53', announce({ timestamp: 2 ** 60 }), /^Announce\.timestamp: 1152921504606846976 is out of range/],
    ['handshake pattern 3', handshake(3, 0), /^Handshake\.pattern: 3 is not XX \(1\) or IK \(2\)/],
    ['handshake IK message 2', handshake(HandshakePattern.IK, 2), /^Handshake\.message: 2 is past the last message \(1\)/],
    ['handshake noise of 1025 bytes', handshake(HandshakePattern.XX, 0, Buffer.alloc(1025)), /^Handshake\.noise: 1025 bytes exceeds the limit of 1024/],
    ['fragment of 5 bytes', frags[0]!.subarray(0, 5), /^length: fragment of 5 bytes/],
    ['fragment without chunk', frags[0]!.subarray(0, 8), /^chunk: fragment has an empty chunk/],
    ['fragment count 0', patched(frags[0]!, 2, [0]), /^count: fragment count 0 is not 1\.\.64/],
    ['fragment count 65', patched(frags[0]!, 2, [65]), /^count: fragment count 65/],
    ['fragment index 9 of 9', patched(frags[0]!, 1, [9, 9]), /^index: fragment index 9 is not below count 9/],
    ['fragment reserved', patched(frags[0]!, 3, [1]), /^reserved: fragment reserved byte is 1/],
    ['hop of 12 bytes', encodeHop(data, 1, 2).subarray(0, 12), /^length: hop frame of 12 bytes/],
    ['hop reserved', patched(encodeHop(data, 1, 2), 2, [1]), /^HopHeader\.reserved/],
    ['hop prev 0', encodeHop(data, 1, 0), /^HopHeader\.prev: 0/],
    ['hop in a hop', encodeHop(encodeHop(data, 1, 2), 1, 2), /^vk: 0x14: a hop header inside a hop frame/],
    ['hop carrying garbage', encodeHop(Buffer.from('hello'), 1, 2), /^vk: 0x68/],
  ]
  const fbHello = exampleFrames().find((e) => e.name === 'hello')!.frame
  const fbTransmit: LinkFrame = { version: 1, flags: Flags.NEEDS_ACK, seq: 1, ack: 1, message: { type: 'Transmit', token: 1, payload: encodeHop(data, 0, 1) } }
  const fb: [string, Buffer, RegExp][] = [
    ['7-byte link frame', frameBytes(fbHello).subarray(0, 7), /^length: link frame of 7 bytes/],
    ['513-byte link frame', fbRaw([1, 0, 0, 0], Buffer.alloc(505)), /^size: link frame of 513 bytes exceeds 512/],
    ['bad CRC', patched(frameBytes(fbTransmit), frameBytes(fbTransmit).length - 1, [0x55]), /^crc: link frame CRC-32C 0x[0-9a-f]{8} does not match the computed/],
    ['undefined flag bit', recrc(patched(frameBytes(fbTransmit), 1, [0x09])), /^header\.flags: 0x09 has undefined bits/],
    ['ACK_ONLY with NEEDS_ACK', recrc(patched(frameBytes({ version: 1, flags: Flags.ACK_ONLY, seq: 0, ack: 0, message: null }), 1, [0x03])), /^header\.flags: ACK_ONLY combined/],
    ['SYN with NEEDS_ACK', recrc(patched(frameBytes(fbHello), 1, [0x05])), /^header\.flags: SYN combined with NEEDS_ACK/],
    ['version 2 outside SYN', recrc(patched(frameBytes(fbTransmit), 0, [2])), /^header\.version: 2 is not 1/],
    ['ACK_ONLY with a body', recrc(patched(frameBytes(fbTransmit), 1, [0x02])), /^body: an ACK_ONLY frame carries/],
    ['no body without ACK_ONLY', fbRaw([1, 1, 0, 0], Buffer.alloc(0)), /^body: a frame without ACK_ONLY has no body/],
    ['Hello outside SYN', recrc(patched(frameBytes(fbHello), 1, [0x01])), /^body: Hello outside a SYN frame/],
    ['Transmit in a SYN frame', recrc(patched(frameBytes(fbTransmit), 1, [0x04])), /^body: a SYN frame carries Transmit/],
    ['Frame of 4 bytes', fbRaw([1, 1, 0, 0], Buffer.alloc(4)), /^Frame: buffer of 4 bytes is shorter than the 8-byte minimum/],
    ['Frame root outside', recrc(patched(frameBytes(fbTransmit), 4, [0xf0, 0, 0, 0])), /^Frame: table offset 240 outside/],
    ['Error ref_seq 300', fbRaw([1, 1, 0, 0], fbFrame(Body.Error, (b) => ErrorMsg.createError(b, 2, 300, 0, 0, 0))), /^Frame\.body\.ref_seq: 300 is outside -1\.\.255/],
    ['Transmit payload of 256 bytes', fbRaw([1, 1, 0, 0], fbFrame(Body.Transmit, (b) => Transmit.createTransmit(b, 7, Transmit.createPayloadVector(b, Buffer.alloc(256, 0x11))))), /^Frame\.body\.payload: 256 bytes exceeds the limit of 255/],
    ['Hello host name of 33 bytes', fbRaw([1, 4, 0, 0], fbFrame(Body.Hello, (b) => Hello.createHello(b, 1, 1, 1, b.createString('h'.repeat(33))))), /^Frame\.body\.host_name: 33 bytes exceeds the limit of 32/],
    ['Transmit without payload', fbRaw([1, 1, 0, 0], fbFrame(Body.Transmit, (b) => Transmit.createTransmit(b, 7, 0))), /^Frame\.body\.payload: required field is missing/],
    ['Frame without body', fbRaw([1, 1, 0, 0], fbFrame(0, () => 0)), /^Frame\.body: required union is missing/],
    ['Frame body type 5 without value', fbRaw([1, 1, 0, 0], fbFrame(Body.Transmit, () => 0)), /^Frame\.body: union of type 5 has no value/],
    ['Transmit carrying a bad AI-TCP frame', frameBytes({ ...fbTransmit, message: { type: 'Transmit', token: 2, payload: encodeHop(data.subarray(0, 40), 0, 1) } }), /^length: Data frame of 40 bytes/],
  ]
  const cap = new CaptureBuilder(['udp', 'eth', 'lora', 'fb'])
  const cases: { frame: number; name: string; re: RegExp; problem: string | null }[] = []
  for (const [name, frame, re] of aitcp) {
    // (Wireshark's UDP dissector hands no empty payload to a subdissector)
    if (frame.length > 0) cases.push({ frame: cap.add('udp', rawUdp(frame)), name: `${name} (UDP)`, re, problem: aitcpProblem(frame) })
    cases.push({ frame: cap.add('lora', loraTap(frame)), name: `${name} (LoRaTap)`, re, problem: aitcpProblem(frame) })
  }
  for (const [name, frame, re] of fb) cases.push({ frame: cap.add('fb', frame), name, re, problem: fbProblem(frame) })
  const eth = encodeEthernetFrame({ dst: 'ff:ff:ff:ff:ff:ff', src: '02:00:00:00:00:01', payload: data })
  eth.writeUInt16BE(data.length + 100, 14)
  cases.push({ frame: cap.add('eth', eth), name: 'Ethernet length beyond the frame', re: new RegExp(`^kairo_eth\\.length: ${data.length + 100} bytes claimed, only ${data.length} in the frame`), problem: ethernetProblem(eth) })
  const shortEth = Buffer.concat([eth.subarray(0, 14), Buffer.from([0])])
  cases.push({ frame: cap.add('eth', shortEth), name: 'Ethernet without room for the length', re: /^kairo_eth\.length: 1 bytes after the EtherType/, problem: ethernetProblem(shortEth) })
  // a reassembled frame that is itself a fragment
  const inner = fragment(Buffer.from(frags[0]!), 50, 0x41424344)
  for (const f of inner) cases.push({ frame: cap.add('udp', rawUdp(f)), name: `fragment of a fragment ${f[1]! + 1}/${f[2]!}`, re: f[1]! === inner.length - 1 ? /^vk: 0x13: a fragment inside a reassembled frame/ : /^$/, problem: null })
  const file = join(dir, 'malformed.pcapng')
  writeFileSync(file, cap.bytes())
  const packets = new Map((await decodeFile(file, ['aitcp.malformed', 'kairo_fb.malformed', 'kairo_eth.malformed'])).map((p) => [p.number, p]))
  for (const c of cases) {
    const p = packets.get(c.frame)
    t.ok(p, `${c.name}: decoded`)
    if (!p) continue
    t.same(dissectorFailures(p), [], `${c.name}: no dissector failure`)
    if (c.re.source === '^$') {
      t.notOk(isFlaggedMalformed(p), `${c.name}: not malformed`)
      continue
    }
    t.ok(isFlaggedMalformed(p), `${c.name}: flagged malformed`)
    const messages = p.experts.filter((e) => e.group === GROUP.MALFORMED && e.severity === SEVERITY.ERROR).map((e) => e.message)
    t.ok(messages.some((m) => c.re.test(m)), `${c.name}: an expert info names the field (${JSON.stringify(messages)} ~ ${String(c.re)})`)
    if (!c.name.startsWith('fragment of a fragment')) t.not(c.problem, null, `${c.name}: the project's decoders reject it too`)
    t.match(p.info, /\[Malformed: /, `${c.name}: the Info column says so`)
  }
})

/** A FlatBuffers Frame built with the generated code, whatever the codec would refuse to encode. */
function fbFrame(type: number, body: (b: flatbuffers.Builder) => number): Buffer {
  const b = new flatbuffers.Builder(64)
  const off = body(b)
  // Frame.createFrame would refuse a missing body: lay the table out as it does, without the check
  b.startObject(2)
  if (type !== 0) b.addFieldInt8(0, type, 0)
  if (off !== 0) b.addFieldOffset(1, off, 0)
  b.finish(b.endObject())
  return Buffer.from(b.asUint8Array())
}

t.test('preferences: more UDP ports, more LoRaTap sync words, no reassembly', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const s = aitcpSamples().find((x) => x.expect['aitcp.kind'] === '1')!
  const cap = new CaptureBuilder(['udp', 'lora'])
  const onPort = cap.add('udp', rawUdp(s.bytes, false, 50000))
  const tap = Buffer.from(loraTap(s.bytes))
  tap[14] = 0x2b
  const onSync = cap.add('lora', tap)
  const frags = fragment(s.bytes, 30, 0x01010101)
  const fragFrames = frags.map((f) => cap.add('udp', rawUdp(f)))
  const file = join(dir, 'prefs.pcapng')
  writeFileSync(file, cap.bytes())
  const plain = new Map((await decodeFile(file, ['aitcp.kind', 'aitcp.session', 'aitcp.frag.reassembled_len'])).map((p) => [p.number, p]))
  t.equal(field(plain.get(onPort)!, 'aitcp.kind'), undefined, 'UDP port 50000 is not AI-TCP by default')
  t.equal(field(plain.get(onSync)!, 'aitcp.kind'), undefined, 'LoRaTap sync word 0x2b is not AI-TCP by default')
  t.equal(field(plain.get(fragFrames.at(-1)!)!, 'aitcp.frag.reassembled_len'), String(s.bytes.length), 'fragments are reassembled by default')
  t.equal(field(plain.get(fragFrames.at(-1)!)!, 'aitcp.session'), s.expect['aitcp.session'], 'and the frame they make is dissected')
  const withPrefs = new Map(
    (await decodeFile(file, ['aitcp.kind', 'aitcp.session', 'aitcp.frag.reassembled_len', 'loratap.syncword'], { prefs: { 'aitcp.udp_ports': '47800,50000', 'aitcp.loratap_syncwords': '0x12, 0x2b', 'aitcp.reassemble': 'FALSE' } })).map((p) => [p.number, p]),
  )
  t.equal(field(withPrefs.get(onPort)!, 'aitcp.session'), s.expect['aitcp.session'], 'with aitcp.udp_ports, port 50000 is AI-TCP')
  t.equal(field(withPrefs.get(onSync)!, 'aitcp.session'), s.expect['aitcp.session'], 'with aitcp.loratap_syncwords, sync word 0x2b is AI-TCP')
  t.equal(field(withPrefs.get(onSync)!, 'loratap.syncword'), '0x2b', 'and LoRaTap still shows its own fields')
  t.equal(field(withPrefs.get(fragFrames.at(-1)!)!, 'aitcp.frag.reassembled_len'), undefined, 'aitcp.reassemble FALSE turns reassembly off')
  for (const p of withPrefs.values()) t.same([...dissectorFailures(p), ...errorExperts(p).map((e) => e.message)], [], `frame ${p.number}: clean`)
})

t.test('reassembly: fragments out of order, interleaved with another frame, repeated, and on two links', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  const s = aitcpSamples()
  const a = s.find((x) => x.name === 'announce (all fields)')!
  const b = s.find((x) => x.name === 'IK message 0')!
  const fa = fragment(a.bytes, 100, 0xaaaa0001)
  const fb = fragment(b.bytes, 90, 0xbbbb0002)
  const cap = new CaptureBuilder(['udp', 'lora'])
  const n = (link: LinkName, f: Buffer) => cap.add(link, link === 'udp' ? rawUdp(f) : loraTap(encodeHop(f, 0, 0x0c0c0c0c)))
  // a's fragments backwards, b's in order, interleaved; b's second fragment repeated with other bytes; a on LoRa too
  const order: [LinkName, Buffer][] = []
  for (let i = 0; i < Math.max(fa.length, fb.length); i++) {
    if (i < fa.length) order.push(['udp', fa[fa.length - 1 - i]!])
    if (i < fb.length) order.push(['udp', fb[i]!])
    if (i === 1) order.push(['udp', patched(fb[1]!, 20, [0xee])])
    if (i < fa.length) order.push(['lora', fa[i]!])
  }
  const frames = order.map(([link, f]) => n(link, f))
  const file = join(dir, 'reassembly.pcapng')
  writeFileSync(file, cap.bytes())
  const packets = await decodeFile(file, ['aitcp.frag.reassembled_len', 'aitcp.frag.frames', 'aitcp.type', 'aitcp.src', 'aitcp.warning'])
  const done = packets.filter((p) => field(p, 'aitcp.frag.reassembled_len') !== undefined)
  t.same(done.map((p) => field(p, 'aitcp.frag.reassembled_len')).sort(), [String(a.bytes.length), String(a.bytes.length), String(b.bytes.length)].sort(), 'three reassemblies: a on UDP, a on LoRa, b')
  for (const p of done) {
    const want = field(p, 'aitcp.frag.reassembled_len') === String(a.bytes.length) ? a : b
    t.equal(field(p, 'aitcp.type'), want.expect['aitcp.type'], `frame ${p.number}: the reassembled frame's type`)
    t.equal(field(p, 'aitcp.src'), want.expect['aitcp.src'], `frame ${p.number}: the reassembled frame's source`)
    t.same([...dissectorFailures(p), ...errorExperts(p).map((e) => e.message)], [], `frame ${p.number}: clean`)
  }
  const repeated = packets.find((p) => p.number === frames[order.findIndex(([, f], i) => i > 0 && f[0] === 0x13 && f.readUInt32LE(4) === 0xbbbb0002 && f[1] === 1 && !f.equals(fb[1]!))])!
  t.ok(repeated.experts.some((e) => e.severity === SEVERITY.WARN && /repeats with other bytes/.test(e.message)), 'a repeated fragment with other bytes is a warning')
  t.notOk(isFlaggedMalformed(repeated), 'not malformed')
})

/** What pcap/generate.ts exports (issue 6 contract). */
interface GeneratedCapture {
  bytes: Buffer
  manifest: { frame: number; interface: string; linktype: number; dir: 'in' | 'out'; proto: 'aitcp' | 'kairo_fb'; fields: Record<string, string> }[]
}

const GENERATOR = fileURLToPath(new URL('../../pcap/generate.ts', import.meta.url))

t.test('a capture from pcap/generate.ts decodes to its manifest, every packet clean', async (t) => {
  if (!requirePart(t as unknown as Skippable, HAS_TSHARK, TSHARK)) return
  if (!existsSync(GENERATOR)) {
    ;(t as unknown as Skippable).skip('pcap/generate.ts (the generator) is not in the tree yet')
    return
  }
  const mod = (await import(pathToFileURL(GENERATOR).href)) as { generateCapture: (o: { count: number; seed: number | string }) => GeneratedCapture | Promise<GeneratedCapture> }
  for (const [count, seed] of [
    [300, 1],
    [120, 'kairo'],
  ] as const) {
    const g = await mod.generateCapture({ count, seed })
    const file = join(dir, `generated-${String(seed)}.pcapng`)
    writeFileSync(file, g.bytes)
    const names = [...new Set(g.manifest.flatMap((m) => Object.keys(m.fields)))]
    const packets = await decodeFile(file, names)
    const byNumber = new Map(packets.map((p) => [p.number, p]))
    t.ok(g.manifest.length >= count, `seed ${String(seed)}: the manifest lists ${g.manifest.length} packets`)
    t.equal(packets.length, g.manifest.length, `seed ${String(seed)}: tshark reads as many packets as the manifest lists`)
    const protos = new Set<string>()
    const bad: string[] = []
    for (const m of g.manifest) {
      protos.add(m.proto)
      const diff = differences(byNumber.get(m.frame), { frame: m.frame, name: `${m.interface} ${m.dir}`, proto: m.proto, expect: m.fields })
      if (diff.length > 0) bad.push(`frame ${m.frame} (${m.interface}, linktype ${m.linktype}, ${m.dir}): ${diff.join('; ')}`)
    }
    t.same(bad.slice(0, 20), [], `seed ${String(seed)}: every packet decodes as its manifest says, no malformed or expert-error packet (${bad.length} differ)`)
    t.ok(protos.has('aitcp'), `seed ${String(seed)}: has aitcp packets`)
    const linktypes = new Set(g.manifest.map((m) => m.linktype))
    for (const lt of [LINK_INTERFACES.eth.linktype, LINK_INTERFACES.lora.linktype, LINK_INTERFACES.fb.linktype]) t.ok(linktypes.has(lt), `seed ${String(seed)}: has linktype ${lt}`)
  }
})
