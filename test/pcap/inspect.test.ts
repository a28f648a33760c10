/**
 * `kairo-gw pcap inspect` on captures built with pcap/pcapng.ts from real frames (the protocol
 * vectors of docs/protocol.md: a sealed Data frame, Alice's signed announce, an IK handshake,
 * the announce's fragments), one file per link type the gateway writes (Ethernet, IP/UDP,
 * LoRaTap, firmware-bridge, bare AI-TCP) and one with all of them: exact counts in --json, the
 * table, --packets lines. Bad files (truncated, corrupt, empty, not a capture, a directory,
 * missing) exit 1 with one line naming the file (and the offset); mutated files never end in
 * anything but exit 0 or 1 with a one-line message; mutated frames inside a valid file are
 * counted as malformed, never crash.
 *
 * The command runs in-process on a small commander program with `pcap inspect` registered
 * (registerPcapInspect), errors reported as appliance/cli/main.ts reports them.
 */
import t from 'tap'
import fc from 'fast-check'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command, CommanderError } from 'commander'
import { registerPcapInspect, type InspectReport } from '../../appliance/cli/commands/pcap-inspect.js'
import { CliError, errorLine, exitCodeFor } from '../../appliance/cli/errors.js'
import { computeVectors, ALICE_SEED } from '../../appliance/core/vectors.js'
import { Identity } from '../../appliance/core/identity.js'
import { encodeHop, hintOf } from '../../appliance/mesh/hop.js'
import { encodeEthernetFrame, encodeIpv4Datagram } from '../../drivers/ethernet/frame.js'
import { Flags, frameBytes } from '../../firmware-bridge/codec.js'
import { loraTapHeader, udpPacket } from '../../pcap/encap.js'
import { generateCapture } from '../../pcap/generate.js'
import { packetTypeName } from '../../appliance/core/wire/constants.js'
import { enhancedPacketBlock, fileHeader, interfaceStatisticsBlock, LINKTYPE, type InterfaceDescription, type PacketRecord } from '../../pcap/pcapng.js'
import { ethernetII, MAC_A, MAC_B } from '../lib/tshark.js'

const dir = mkdtempSync(join(tmpdir(), 'kairo-inspect-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

/* ------------------------------------------------------------------------------ the runner */

interface Run {
  code: number
  stdout: string
  stderr: string
  /** The error the command threw, if any (main.ts turns it into the stderr line). */
  error?: unknown
}

/** `kairo-gw pcap inspect ...args`, in-process, as main.ts runs it. */
async function inspect(...args: string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const program = new Command('kairo-gw')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s), outputError: (s, write) => write(s.replace(/^error: /, 'kairo-gw: ')) })
  registerPcapInspect(program.command('pcap'))
  try {
    await program.parseAsync(['pcap', 'inspect', ...args], { from: 'user' })
    return { code: 0, stdout, stderr }
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode === 0 ? 0 : 2, stdout, stderr, error }
    stderr += errorLine(error) + '\n'
    return { code: exitCodeFor(error), stdout, stderr, error }
  }
}

async function report(path: string, ...more: string[]): Promise<InspectReport> {
  const r = await inspect(path, '--json', ...more)
  if (r.code !== 0) throw new Error(`inspect ${path} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout) as InspectReport
}

/* ------------------------------------------------------------------------------ the frames */

const vec = new Map(computeVectors().map((v) => [v.name, new Map(v.fields)]))
const frame = (name: string, field: string) => Buffer.from(vec.get(name)!.get(field)!, 'hex')
const DATA = frame('data', 'frame') // TASK_REQUEST, sealed
const ANNOUNCE = frame('announce', 'frame') // Alice's, signed
const IK0 = frame('ik', 'message0') // HANDSHAKE IK message 0
const IK1 = frame('ik', 'message1') // HANDSHAKE IK message 1
const FIRST = frame('ik', 'first_data') // TASK_REQUEST
const FRAGS = [...vec.get('fragment')!.entries()].filter(([k]) => k.startsWith('fragment')).map(([, h]) => Buffer.from(h, 'hex'))
const ALICE = Identity.fromSeed(ALICE_SEED)
const HINT = hintOf(ALICE.nodeId)

/** Alice's announce with one byte of its signature changed. */
function badSignatureAnnounce(): Buffer {
  const b = Buffer.from(ANNOUNCE)
  const sig = b.indexOf(Buffer.from(vec.get('announce')!.get('signature')!, 'hex'))
  b[sig + 10] = b[sig + 10]! ^ 0x01
  return b
}

const eth = (payload: Buffer, src = MAC_A, dst = MAC_B) => encodeEthernetFrame({ src, dst, payload })
const ethRaw = ethernetII
const lora = (payload: Buffer, rx: boolean) => Buffer.concat([loraTapHeader({ frequencyHz: 868_100_000, bandwidthHz: 125_000, spreadingFactor: 9, syncWord: 0x12, ...(rx ? { rssi: -87, snr: 7.5 } : {}) }), payload])
const udp4 = (payload: Buffer, sport = 47800, dport = 47800) => udpPacket({ srcHost: '10.0.0.1', srcPort: sport, dstHost: '10.0.0.2', dstPort: dport }, payload)
const udp6 = (payload: Buffer) => udpPacket({ srcHost: 'fd00::1', srcPort: 47800, dstHost: 'fd00::2', dstPort: 47801 }, payload)
const fb = (message: Parameters<typeof frameBytes>[0]['message'], flags: number = Flags.NEEDS_ACK, seq = 1) => frameBytes({ version: 1, flags, seq, ack: 0, message })

const T0 = 1_767_225_600_000_000n

interface Pkt {
  data: Buffer
  dir?: 'in' | 'out'
  iface?: number
}

function capture(name: string, interfaces: InterfaceDescription[], packets: Pkt[], stats: { iface: number; received: bigint; dropped: bigint }[] = []): string {
  const blocks = [
    fileHeader({ userappl: 'kairo-gw test', comment: `built by test/pcap/inspect.test.ts (${name})` }, interfaces),
    ...packets.map((p, i) => enhancedPacketBlock({ interfaceId: p.iface ?? 0, tsUs: T0 + BigInt(i) * 250_000n, data: p.data, ...(p.dir ? { dir: p.dir } : {}) } satisfies PacketRecord)),
    ...stats.map((s) => interfaceStatisticsBlock({ interfaceId: s.iface, tsUs: T0 + 3_600_000_000n, received: s.received, dropped: s.dropped })),
  ]
  const path = join(dir, name)
  writeFileSync(path, Buffer.concat(blocks))
  return path
}

const ETH_PACKETS: Pkt[] = [
  { data: eth(ANNOUNCE), dir: 'in' },
  { data: eth(DATA), dir: 'out' },
  { data: eth(IK0), dir: 'out' },
  { data: eth(IK1, MAC_B, MAC_A), dir: 'in' },
  { data: eth(FIRST), dir: 'out' },
  { data: ethRaw(0x0800, encodeIpv4Datagram({ src: '192.168.1.1', dst: '192.168.1.2', payload: DATA })), dir: 'out' }, // raw IP link: protocol 253
  { data: ethRaw(0x0800, udp4(ANNOUNCE)), dir: 'in' }, // UDP port 47800 seen on a NIC
  { data: ethRaw(0x0806, Buffer.alloc(28, 1)) }, // ARP: other
  { data: ethRaw(0x0800, udp4(Buffer.from('dns?'), 5353, 53)) }, // other UDP: other
  { data: (() => { const b = eth(DATA); b.writeUInt16BE(500, 14); return b })(), dir: 'in' }, // length field past the frame
  { data: eth(Buffer.from([0x99, 1, 2, 3])), dir: 'in' }, // not an AI-TCP frame
  { data: eth(badSignatureAnnounce()), dir: 'in' }, // announce whose signature does not verify
]

t.test('Ethernet (link type 1): EtherType 0x88B5, IP protocol 253, UDP 47800; exact counts', async (t) => {
  const path = capture('eth.pcapng', [{ linktype: LINKTYPE.ETHERNET, name: 'eth0', description: 'raw NIC', filter: 'ether proto 0x88b5', comment: `node ${ALICE.nodeId.toString('hex')}` }], ETH_PACKETS, [{ iface: 0, received: 14n, dropped: 2n }])
  const r = await report(path)
  t.match(r, { file: path, format: 'pcapng', packets: 12, dropped_by_capture: 2 })
  t.same(r.sections.map((s) => [s.userappl, s.comment]), [['kairo-gw test', 'built by test/pcap/inspect.test.ts (eth.pcapng)']])
  t.same(r.interfaces.map((i) => [i.name, i.linktype, i.linktype_name, i.description, i.comment, i.filter, i.packets, i.in, i.out, i.no_dir, i.statistics]), [
    ['eth0', 1, 'ETHERNET', 'raw NIC', `node ${ALICE.nodeId.toString('hex')}`, 'ether proto 0x88b5', 12, 6, 4, 2, { received: 14, dropped: 2, os_dropped: null }],
  ])
  t.same(r.by_proto, { aitcp: 7, kairo_fb: 0, beacon: 0, other: 2, malformed: 3 })
  t.same(r.aitcp.kinds, { data: 3, packet: 4, fragment: 0, hop: 0 })
  t.same(r.aitcp.types, { ANNOUNCE: 2, HANDSHAKE: 2, TASK_REQUEST: 3 })
  t.equal(r.aitcp.packets, 7)
  t.same(r.aitcp.signatures, { verified: 2, failed: 1, unknown_key: 0 })
  t.same(r.malformed, {
    count: 3,
    first: [
      { frame: 10, interface: 'eth0', reason: 'Ethernet: length field 500 but 58 bytes follow it' },
      { frame: 11, interface: 'eth0', reason: 'first byte 0x99 is not an AI-TCP frame (0x11 Data, 0x12 Packet, 0x13 Fragment, 0x14 Hop)' },
      { frame: 12, interface: 'eth0', reason: `Packet ANNOUNCE from ${ALICE.nodeId.toString('hex')}: signature does not verify` },
    ],
  })
  t.same(r.time, { first: '2026-01-01T00:00:00.000000Z', last: '2026-01-01T00:00:02.750000Z', first_us: T0.toString(), last_us: (T0 + 2_750_000n).toString(), span_s: 2.75 })
})

t.test('IP/UDP (link type 101): IPv4 and IPv6, beacon, any port; malformed UDP', async (t) => {
  const badUdp = udp4(DATA)
  badUdp.writeUInt16BE(9000, 24) // UDP length beyond the datagram
  const icmp = encodeIpv4Datagram({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 1, payload: Buffer.alloc(8) })
  const path = capture('udp.pcapng', [{ linktype: LINKTYPE.RAW, name: 'udp0' }], [
    { data: udp4(ANNOUNCE), dir: 'in' },
    { data: udp6(DATA, ), dir: 'out' },
    { data: udp4(Buffer.from([0x00, 0x4b, 0x47, 0x42]), 47800, 47800), dir: 'out' },
    { data: udp4(IK0, 40000, 47900), dir: 'out' }, // another port: still AI-TCP on a UDP link
    { data: badUdp, dir: 'in' },
    { data: icmp, dir: 'in' },
  ])
  const r = await report(path, '--packets')
  t.same(r.by_proto, { aitcp: 3, kairo_fb: 0, beacon: 1, other: 1, malformed: 1 })
  t.same(r.aitcp.kinds, { data: 1, packet: 2, fragment: 0, hop: 0 })
  t.same(r.aitcp.types, { ANNOUNCE: 1, HANDSHAKE: 1, TASK_REQUEST: 1 })
  t.equal(r.aitcp.beacons, 1)
  t.equal(r.dropped_by_capture, null, 'no ISB: not recorded')
  t.same(r.malformed.first, [{ frame: 5, interface: 'udp0', reason: 'UDP: length field 9000 outside 8..66' }])
  const lines = r.packet_list!.map((p) => `${p.number} ${p.dir} ${p.proto} ${p.summary}`)
  t.match(lines[0], /^1 in aitcp IPv4 10\.0\.0\.1 → 10\.0\.0\.2 UDP 47800 → 47800 \| Packet ANNOUNCE id=0x01020304 src=[0-9a-f]{8}… broadcast hop=16 name="" links=lora0,eth0 signature ok \d+ B payload$/)
  t.match(lines[1], /^2 out aitcp IPv6 fd00::1 → fd00::2 UDP 47800 → 47801 \| Data TASK_REQUEST session=0x0badcafe dst=[0-9a-f]{8}… hop=16 10 B sealed$/)
  t.equal(lines[2], '3 out beacon IPv4 10.0.0.1 → 10.0.0.2 UDP 47800 → 47800 | beacon')
  t.match(lines[3], /^4 out aitcp .* UDP 40000 → 47900 \| Packet HANDSHAKE id=0x[0-9a-f]{8} src=.* IK message 0 /)
  t.match(r.packet_list![4], { proto: 'malformed', malformed: 'UDP: length field 9000 outside 8..66' })
  t.equal(lines[5], '6 in other IPv4 10.0.0.1 → 10.0.0.2 protocol 1')
})

t.test('LoRaTap (link type 270): Hop frames, fragments reassembled into the announce', async (t) => {
  const badHop = encodeHop(DATA, 0, HINT)
  badHop[2] = 1 // reserved byte
  const path = capture('lora.pcapng', [{ linktype: LINKTYPE.LORATAP, name: 'lora0', description: 'LoRa 868.1 MHz SF9 BW125' }], [
    ...FRAGS.map((f): Pkt => ({ data: lora(encodeHop(f, 0, HINT), true), dir: 'in' })),
    { data: lora(encodeHop(DATA, 0x11223344, HINT), false), dir: 'out' },
    { data: lora(FRAGS[0]!, true), dir: 'in' }, // a bare fragment: starts a reassembly that never completes
    { data: lora(badHop, true), dir: 'in' },
    { data: lora(encodeHop(encodeHop(DATA, 0, HINT), 0, HINT), true), dir: 'in' }, // hop in hop
  ])
  const r = await report(path, '--packets')
  t.equal(r.packets, 11)
  t.same(r.by_proto, { aitcp: 9, kairo_fb: 0, beacon: 0, other: 0, malformed: 2 })
  t.same(r.aitcp.kinds, { data: 1, packet: 0, fragment: 8, hop: 8 })
  t.same(r.aitcp.types, { TASK_REQUEST: 1 })
  t.same(r.aitcp.reassembled, { frames: 1, kinds: { data: 0, packet: 1, fragment: 0, hop: 0 }, types: { ANNOUNCE: 1 } })
  t.same(r.aitcp.signatures, { verified: 1, failed: 0, unknown_key: 0 })
  t.same(r.malformed.first.map((m) => [m.frame, m.reason]), [
    [10, 'Hop: HopHeader reserved bytes must be zero'],
    [11, 'Hop: carries another Hop frame'],
  ])
  t.match(r.packet_list![0]!.summary, /^LoRa 868\.100 MHz BW125 SF9 RSSI -87 dBm SNR 7\.5 dB \| Hop next=all prev=0x[0-9a-f]{8} \| Fragment 1\/7 id=0x11223344 56 B$/)
  t.match(r.packet_list![6]!.summary, /\| Fragment 7\/7 id=0x11223344 4 B → reassembled 340 B: Packet ANNOUNCE id=0x01020304 .* signature ok/)
  t.match(r.packet_list![7]!.summary, /^LoRa 868\.100 MHz BW125 SF9 \| Hop next=0x11223344 prev=/)
})

t.test('firmware-bridge (link type 147): Transmit/Receive payloads decoded, other messages counted', async (t) => {
  const badCrc = fb({ type: 'Heartbeat' }, 0)
  badCrc[badCrc.length - 1] = badCrc[badCrc.length - 1]! ^ 0xff
  const path = capture('bridge.pcapng', [{ linktype: LINKTYPE.KAIRO_FB, name: 'lora0/bridge' }], [
    ...FRAGS.slice(0, 3).map((f, i): Pkt => ({ data: fb({ type: 'Transmit', token: i + 1, payload: encodeHop(f, 0, HINT) }, Flags.NEEDS_ACK, i + 1), dir: 'out' })),
    { data: fb({ type: 'Receive', payload: encodeHop(DATA, 0, HINT), rssiDbmX4: -350, snrDbX4: 30, frequencyErrorHz: 120, timestampUs: 1234 }), dir: 'in' },
    { data: fb({ type: 'TxDone', token: 1, airtimeUs: 123_456 }), dir: 'in' },
    { data: fb({ type: 'Heartbeat' }, 0), dir: 'out' },
    { data: fb(null, Flags.ACK_ONLY), dir: 'in' },
    { data: badCrc, dir: 'in' },
    { data: fb({ type: 'Transmit', token: 9, payload: Buffer.from([0x14, 0, 0, 0]) }), dir: 'out' }, // hop frame too short
  ])
  const r = await report(path, '--packets')
  t.same(r.by_proto, { aitcp: 0, kairo_fb: 7, beacon: 0, other: 0, malformed: 2 })
  t.equal(r.aitcp.packets, 4)
  t.same(r.bridge, { frames: 8, messages: { ACK_ONLY: 1, Heartbeat: 1, Receive: 1, Transmit: 4, TxDone: 1 } })
  t.same(r.aitcp.kinds, { data: 1, packet: 0, fragment: 3, hop: 4 })
  t.same(r.aitcp.reassembled.frames, 0, 'three fragments of seven: nothing reassembled')
  t.same(r.malformed.first.map((m) => m.frame), [8, 9])
  t.match(r.malformed.first[0]!.reason, /^firmware-bridge: link frame CRC-32C 0x[0-9a-f]{8} does not match the computed 0x[0-9a-f]{8}$/)
  t.equal(r.malformed.first[1]!.reason, 'Hop: hop frame of 4 bytes is too short (header is 12)')
  t.match(r.packet_list![3]!.summary, /^firmware-bridge seq=1 ack=0 Receive RSSI -87\.5 dBm SNR 7\.5 dB \| Hop next=all prev=0x[0-9a-f]{8} \| Data TASK_REQUEST/)
  t.equal(r.packet_list![6]!.summary, 'firmware-bridge seq=1 ack=0 ACK_ONLY')
})

t.test('all link types in one file: per-interface counts and directions, drops summed, table output', async (t) => {
  const ifaces: InterfaceDescription[] = [
    { linktype: LINKTYPE.ETHERNET, name: 'eth0', comment: 'node a' },
    { linktype: LINKTYPE.RAW, name: 'udp0' },
    { linktype: LINKTYPE.LORATAP, name: 'lora0', description: 'LoRa 868.1 MHz' },
    { linktype: LINKTYPE.KAIRO_FB, name: 'lora0/bridge' },
    { linktype: 148, name: 'fake0' },
    { linktype: 113, name: 'any' },
  ]
  const pk: Pkt[] = [
    { iface: 0, data: eth(ANNOUNCE), dir: 'in' },
    { iface: 1, data: udp4(DATA), dir: 'out' },
    { iface: 2, data: lora(encodeHop(DATA, 0, HINT), true), dir: 'in' },
    { iface: 3, data: fb({ type: 'Transmit', token: 1, payload: encodeHop(DATA, 0, HINT) }), dir: 'out' },
    { iface: 4, data: IK0, dir: 'out' },
    { iface: 4, data: IK1, dir: 'in' },
    { iface: 5, data: Buffer.alloc(20) },
  ]
  const path = capture('all.pcapng', ifaces, pk, [
    { iface: 0, received: 10n, dropped: 1n },
    { iface: 2, received: 5n, dropped: 4n },
  ])
  const r = await report(path)
  t.same(r.interfaces.map((i) => [i.name, i.packets, i.in, i.out, i.no_dir]), [
    ['eth0', 1, 1, 0, 0],
    ['udp0', 1, 0, 1, 0],
    ['lora0', 1, 1, 0, 0],
    ['lora0/bridge', 1, 0, 1, 0],
    ['fake0', 2, 1, 1, 0],
    ['any', 1, 0, 0, 1],
  ])
  t.equal(r.dropped_by_capture, 5)
  t.same(r.by_proto, { aitcp: 5, kairo_fb: 1, beacon: 0, other: 1, malformed: 0 })
  t.same(r.aitcp.types, { ANNOUNCE: 1, HANDSHAKE: 2, TASK_REQUEST: 3 })
  t.same(r.aitcp.kinds, { data: 3, packet: 3, fragment: 0, hop: 2 })

  const table = await inspect(path)
  t.equal(table.code, 0)
  t.equal(table.stderr, '')
  const out = table.stdout
  t.match(out, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: pcapng, 1 section, 6 interfaces, 7 packets \\([\\d.]+ (B|KiB) captured, file [\\d.]+ (B|KiB)\\)\n`))
  t.match(out, /\n {2}time +2026-01-01T00:00:00\.000000Z \.\. 2026-01-01T00:00:01\.500000Z \(1\.500 s\)\n/)
  t.match(out, /\n {2}written by +kairo-gw test\n/)
  t.match(out, /\n {2}dropped by capture +5\n/)
  t.match(out, /\n +0 +eth0 +1 ETHERNET +1 +1 +0 +\d+ +1 +node a\n/)
  t.match(out, /\n +2 +lora0 +270 LORATAP +1 +1 +0 +\d+ +4 +LoRa 868\.1 MHz\n/)
  t.match(out, /\n +5 +any +113 LINUX_SLL +1 +0 +0 +20 +-\s+-\n/)
  t.match(out, /\nAI-TCP: 6 packets with frames; 6 frames \(Data 3, Packet 3, Fragment 0\), 2 in Hop frames\n/)
  t.match(out, /\nTYPE +FRAMES\nANNOUNCE +1\nHANDSHAKE +2\nTASK_REQUEST +3\n/)
  t.match(out, /\nsignatures: 1 verified, 0 failed, 0 not checked/)
  t.match(out, /\nfirmware-bridge: 1 link frame \(Transmit 1\)\n/)
  t.match(out, /\nother traffic \(not AI-TCP\): 1 packet\nmalformed: 0\n$/)

  const listed = await inspect(path, '--packets')
  const lines = listed.stdout.split('\n')
  t.equal(lines[0], '     NO  TIME                         INTERFACE     DIR    LEN  SUMMARY')
  t.match(lines[1], /^ {6}1 {2}2026-01-01T00:00:00\.000000Z {2}eth0 {10}in +\d+ {2}Ethernet 02:00:00:00:00:0a → 02:00:00:00:00:0b \| Packet ANNOUNCE/)
  t.match(lines[7], /^ {6}7 {2}2026-01-01T00:00:01\.500000Z {2}any {11}- +20 {2}link type 113 \(LINUX_SLL\): not decoded$/)
  t.equal(lines[8], '', 'a blank line, then the summary')
  t.match(lines[9], /: pcapng, 1 section, 6 interfaces, 7 packets/)

  const j = JSON.parse((await inspect(path, '--json', '--packets')).stdout) as InspectReport
  t.equal(j.packet_list!.length, 7)
  t.same(j.packet_list!.map((p) => [p.number, p.interface, p.dir, p.proto]), [
    [1, 'eth0', 'in', 'aitcp'],
    [2, 'udp0', 'out', 'aitcp'],
    [3, 'lora0', 'in', 'aitcp'],
    [4, 'lora0/bridge', 'out', 'kairo_fb'],
    [5, 'fake0', 'out', 'aitcp'],
    [6, 'fake0', 'in', 'aitcp'],
    [7, 'any', null, 'other'],
  ])
  t.notOk('packet_list' in (await report(path)), 'no list without --packets')
  // Reading in small chunks changes nothing.
  t.same(await report(path, '--chunk-bytes', '64'), r)
})

t.test('classic pcap and an empty capture', async (t) => {
  // A pcap file: header + records, LoRaTap.
  const recs = FRAGS.map((f, i) => {
    const data = lora(encodeHop(f, 0, HINT), true)
    const h = Buffer.alloc(16)
    h.writeUInt32LE(1_767_225_600 + i, 0)
    h.writeUInt32LE(5, 4)
    h.writeUInt32LE(data.length, 8)
    h.writeUInt32LE(data.length, 12)
    return Buffer.concat([h, data])
  })
  const head = Buffer.alloc(24)
  head.writeUInt32LE(0xa1b2c3d4, 0)
  head.writeUInt16LE(2, 4)
  head.writeUInt16LE(4, 6)
  head.writeUInt32LE(65535, 16)
  head.writeUInt32LE(270, 20)
  const path = join(dir, 'lora.pcap')
  writeFileSync(path, Buffer.concat([head, ...recs]))
  const r = await report(path)
  t.match(r, { format: 'pcap', packets: 7, aitcp: { reassembled: { frames: 1, types: { ANNOUNCE: 1 } } } })
  t.same(r.interfaces.map((i) => [i.name, i.linktype, i.no_dir]), [[null, 270, 7]])
  t.same(r.time, { first: '2026-01-01T00:00:00.000005Z', last: '2026-01-01T00:00:06.000005Z', first_us: '1767225600000005', last_us: '1767225606000005', span_s: 6 })
  const empty = capture('empty.pcapng', [], [])
  const e = await report(empty)
  t.match(e, { packets: 0, interfaces: [], time: null, dropped_by_capture: null, malformed: { count: 0, first: [] } })
  const et = await inspect(empty)
  t.match(et.stdout, /: pcapng, 1 section, 0 interfaces, 0 packets .*\n[\s\S]*\(no interfaces\)\n[\s\S]*malformed: 0\n$/)
})

t.test('bad files: exit 1, one line on stderr naming the file (and the offset)', async (t) => {
  const good = Buffer.concat([fileHeader({}, [{ linktype: 1, name: 'eth0' }]), enhancedPacketBlock({ interfaceId: 0, tsUs: T0, data: eth(DATA) }), enhancedPacketBlock({ interfaceId: 0, tsUs: T0, data: eth(ANNOUNCE) })])
  const secondAt = good.length - enhancedPacketBlock({ interfaceId: 0, tsUs: T0, data: eth(ANNOUNCE) }).length
  const corrupt = Buffer.from(good)
  corrupt.writeUInt32LE(12, corrupt.length - 4)
  const sub = join(dir, 'a directory')
  mkdirSync(sub)
  const files: [string, string | Buffer, RegExp][] = [
    ['truncated.pcapng', good.subarray(0, good.length - 7), new RegExp(`^kairo-gw: \\S+truncated\\.pcapng: block at offset ${secondAt} \\(Enhanced Packet\\) claims \\d+ bytes but only \\d+ remain: the file is truncated\n$`)],
    ['corrupt.pcapng', corrupt, new RegExp(`^kairo-gw: \\S+corrupt\\.pcapng: block at offset ${secondAt} \\(Enhanced Packet\\) has trailing length 12, which does not match its leading length \\d+\n$`)],
    ['empty.bin', Buffer.alloc(0), /^kairo-gw: \S+empty\.bin: is empty \(0 bytes\): not a pcapng or pcap file\n$/],
    ['notes.txt', 'these are not packets\n', /^kairo-gw: \S+notes\.txt: is not a pcapng or pcap file: starts with 74 68 65 73\n$/],
    ['a directory', '', /^kairo-gw: \S+a directory: is a directory, not a capture file\n$/],
    ['missing.pcapng', '', /^kairo-gw: \S+missing\.pcapng: no such file or directory\n$/],
  ]
  for (const [name, content, want] of files) {
    const path = join(dir, name)
    if (name !== 'a directory' && name !== 'missing.pcapng') writeFileSync(path, content)
    for (const args of [[], ['--json'], ['--packets']]) {
      const r = await inspect(path, ...args)
      t.equal(r.code, 1, `${name} ${args.join(' ')}: exit 1`)
      t.match(r.stderr, want, `${name} ${args.join(' ')}: the message`)
      t.type(r.error, CliError)
      if (args[0] !== '--packets') t.equal(r.stdout, '', 'nothing on stdout')
    }
  }
  // --packets streams what it read before the error; the error still ends it with exit 1.
  const r = await inspect(join(dir, 'truncated.pcapng'), '--packets')
  t.match(r.stdout, /^ +NO +TIME[^\n]*\n +1 +2026-01-01T00:00:00\.000000Z +eth0 +- +74 +Ethernet[^\n]*\n$/)
  const usage = await inspect()
  t.equal(usage.code, 2, 'no FILE: usage error')
  t.match(usage.stderr, /^kairo-gw: missing required argument 'file'/)
})

t.test('--help: examples, what is decoded, exit codes', async (t) => {
  const r = await inspect('--help')
  t.equal(r.code, 0)
  t.match(r.stdout, /Usage: kairo-gw pcap inspect \[options\] <file>/)
  t.match(r.stdout, /--json/)
  t.match(r.stdout, /--packets/)
  t.notMatch(r.stdout, /--chunk-bytes/, 'the test-only option is hidden')
  t.match(r.stdout, /Examples:\n {2}\$ kairo-gw pcap inspect capture\.pcapng\n/)
  t.match(r.stdout, /block at offset 1284 \(Enhanced Packet\) claims 65540 bytes but only 212 remain: the file is truncated/)
  t.match(r.stdout, /Exit codes:\n {2}0 .*\n {2}1 .*\n(.*\n)* {2}2 {2}usage error/)
})

t.test('captures from pcap/generate.ts: inspect agrees with the manifest, packet by packet, and with the summary', async (t) => {
  const KIND = ['', 'data', 'packet', 'fragment', 'hop']
  for (const [count, seed] of [
    [200, '1'],
    [1000, 'inspect'],
  ] as const) {
    const g = generateCapture({ count, seed })
    const path = join(dir, `generated-${seed}.pcapng`)
    writeFileSync(path, g.bytes)
    const r = await report(path, '--packets')
    const list = r.packet_list!
    t.equal(r.packets, count)
    t.same(r.malformed, { count: 0, first: [] }, `seed ${seed}: nothing malformed`)
    t.equal(r.aitcp.signatures.failed, 0)
    t.same(Object.fromEntries(r.interfaces.map((i) => [i.name, i.packets])), g.summary.interfaces, 'packets per interface')
    // Packet by packet: interface, direction, protocol, outermost kind, type, bridge message.
    const wrong: string[] = []
    for (const m of g.manifest) {
      const p = list[m.frame - 1]!
      const f = m.fields
      const want = {
        interface: m.interface,
        dir: m.dir,
        // A beacon is listed with no fields (the dissector shows aitcp.beacon without a value).
        proto: m.proto === 'kairo_fb' ? 'kairo_fb' : 'aitcp.kind' in f ? 'aitcp' : 'beacon',
        kind: f['aitcp.kind'] === undefined ? undefined : KIND[Number(f['aitcp.kind'])],
        type: f['aitcp.type'] === undefined ? undefined : packetTypeName(Number(f['aitcp.type'])),
        bridge: f['kairo_fb.msg_name'] ?? (m.proto === 'kairo_fb' && f['kairo_fb.msg'] === undefined ? 'ACK_ONLY' : undefined),
        fragment: 'aitcp.frag.index' in f,
      }
      const got = {
        interface: p.interface,
        dir: p.dir,
        proto: p.proto,
        kind: m.proto === 'kairo_fb' ? undefined : p.kinds?.[0],
        type: m.proto === 'kairo_fb' ? undefined : p.type,
        bridge: p.bridge,
        fragment: m.proto === 'kairo_fb' ? false : (p.kinds ?? []).includes('fragment'),
      }
      if (want.type === undefined && got.type !== undefined && (got.fragment || m.proto === 'kairo_fb')) got.type = undefined
      if (JSON.stringify(want) !== JSON.stringify(got)) wrong.push(`frame ${m.frame}: manifest ${JSON.stringify(want)}, inspect ${JSON.stringify(got)}`)
    }
    t.same(wrong.slice(0, 5), [], `seed ${seed}: every packet as the manifest says`)
    // The generator's per-packet labels, counted from what inspect saw.
    const labels: Record<string, number> = {}
    for (const p of list) {
      const innermost = p.kinds?.[p.kinds.length - 1]
      const label =
        p.proto === 'kairo_fb'
          ? `fb:${p.bridge}`
          : p.proto === 'beacon'
            ? 'beacon'
            : p.kinds?.includes('fragment')
              ? 'fragment'
              : p.handshake !== undefined
                ? `handshake:${p.handshake.pattern}`
                : innermost === 'data'
                  ? `data:${p.type}`
                  : p.type === 'ANNOUNCE'
                    ? 'packet:ANNOUNCE'
                    : `broadcast:${p.type}`
      labels[label] = (labels[label] ?? 0) + 1
    }
    t.same(labels, g.summary.types, `seed ${seed}: the generator's counts per kind of packet`)
  }
})

/* ------------------------------------------------------------------------------------- fuzz */

const FUZZ_BASE = Buffer.concat([
  fileHeader({ userappl: 'fuzz' }, [
    { linktype: 1, name: 'eth0' },
    { linktype: 101, name: 'udp0' },
    { linktype: 270, name: 'lora0' },
    { linktype: 147, name: 'bridge' },
    { linktype: 148, name: 'fake0' },
  ]),
  ...ETH_PACKETS.slice(0, 7).map((p, i) => enhancedPacketBlock({ interfaceId: 0, tsUs: T0 + BigInt(i), data: p.data, dir: 'in' })),
  enhancedPacketBlock({ interfaceId: 1, tsUs: T0 + 10n, data: udp4(IK1) }),
  ...FRAGS.map((f, i) => enhancedPacketBlock({ interfaceId: 2, tsUs: T0 + 20n + BigInt(i), data: lora(encodeHop(f, 0, HINT), true), dir: 'in' })),
  enhancedPacketBlock({ interfaceId: 3, tsUs: T0 + 30n, data: fb({ type: 'Receive', payload: encodeHop(DATA, 0, HINT), rssiDbmX4: -300, snrDbX4: 4, frequencyErrorHz: 0, timestampUs: 0 }) }),
  enhancedPacketBlock({ interfaceId: 4, tsUs: T0 + 40n, data: ANNOUNCE }),
  interfaceStatisticsBlock({ interfaceId: 0, tsUs: T0 + 50n, received: 9n, dropped: 1n }),
])

const mutation = fc.oneof(
  fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ at: fc.nat(), cut: fc.constant(true) }),
  fc.record({ at: fc.nat(), insert: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
)

function apply(b: Buffer, muts: { at: number; xor?: number; cut?: boolean; insert?: Uint8Array }[], from = 0): Buffer {
  let out = Buffer.from(b)
  for (const m of muts) {
    const at = from + (m.at % Math.max(1, out.length - from))
    if (m.xor !== undefined) out[at] = out[at]! ^ m.xor
    else if (m.cut) out = out.subarray(0, at)
    else if (m.insert) out = Buffer.concat([out.subarray(0, at), m.insert, out.subarray(at)])
  }
  return out
}

t.test('fuzz: mutated files exit 0 or 1, with a one-line message, never anything else', async (t) => {
  let n = 0
  let ones = 0
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(), async (muts, listing) => {
      const path = join(dir, `fuzz-${n++ % 4}.pcapng`)
      writeFileSync(path, apply(FUZZ_BASE, muts))
      const r = await inspect(path, '--json', ...(listing ? ['--packets'] : []))
      if (r.code === 0) {
        const rep = JSON.parse(r.stdout) as InspectReport
        const sum = Object.values(rep.by_proto).reduce((a, b) => a + b, 0)
        if (sum !== rep.packets) throw new Error(`by_proto sums to ${sum}, not ${rep.packets}`)
        return true
      }
      ones++
      if (r.code !== 1 || !(r.error instanceof CliError)) throw new Error(`exit ${r.code}: ${String(r.error instanceof Error ? r.error.stack : r.error)}`)
      if (!/^kairo-gw: \S+fuzz-\d\.pcapng: [^\n]+\n$/.test(r.stderr)) throw new Error(`stderr is not one line naming the file: ${JSON.stringify(r.stderr)}`)
      return true
    }),
    { numRuns: 300 },
  )
  t.ok(ones > 0, `some mutated files were refused (${ones})`)
})

t.test('fuzz: mutated frames inside a valid file are counted, never crash', async (t) => {
  let malformedSeen = 0
  const pkts = [
    ...ETH_PACKETS.slice(0, 7).map((p) => ({ i: 0, d: p.data })),
    { i: 1, d: udp4(IK1) },
    ...FRAGS.map((f) => ({ i: 2, d: lora(encodeHop(f, 0, HINT), true) })),
    { i: 3, d: fb({ type: 'Transmit', token: 5, payload: encodeHop(DATA, 0, HINT) }) },
    { i: 4, d: ANNOUNCE },
  ]
  await fc.assert(
    fc.asyncProperty(fc.array(fc.record({ pkt: fc.nat(), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 6 }), async (muts) => {
      // Mutate only packet bytes: the file is rebuilt around the mutated data, so the container stays valid.
      const path = join(dir, 'fuzz-frames.pcapng')
      const mutated = pkts.map((p, k) => ({ ...p, d: apply(p.d, muts.filter((m) => m.pkt % pkts.length === k)) }))
      writeFileSync(
        path,
        Buffer.concat([
          fileHeader({}, [{ linktype: 1, name: 'eth0' }, { linktype: 101, name: 'udp0' }, { linktype: 270, name: 'lora0' }, { linktype: 147, name: 'bridge' }, { linktype: 148, name: 'fake0' }]),
          ...mutated.map((p, k) => enhancedPacketBlock({ interfaceId: p.i, tsUs: T0 + BigInt(k), data: p.d })),
        ]),
      )
      const r = await inspect(path, '--json', '--packets')
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`)
      const rep = JSON.parse(r.stdout) as InspectReport
      if (rep.packets !== pkts.length) throw new Error(`${rep.packets} packets`)
      malformedSeen += rep.malformed.count
      return true
    }),
    { numRuns: 300 },
  )
  t.ok(malformedSeen > 0, `malformed frames were found and counted (${malformedSeen})`)
})
