import t from 'tap'
import * as flatbuffers from 'flatbuffers'
import { DataHeader } from '../../appliance/generated/kairo/aitcp/data-header.js'
import { Identity } from '../../appliance/core/identity.js'
import { Session } from '../../appliance/core/session.js'
import { decodePacket, decrementPacketHop, encodePacket, encodeSignedPacket, verifyPacketSignature } from '../../appliance/core/wire/packet.js'
import { decodeAnnounceBody, encodeAnnounce, encodeAnnounceBody, openAnnounce } from '../../appliance/core/wire/announce.js'
import { DATA_HEADER_BYTES, DH_DST, DH_FLAGS, DH_HOP, DH_SEQ, DH_SESSION, DH_TYPE, LinkKind, PacketFlags, PacketType, VK_DATA, packetTypeName } from '../../appliance/core/wire/constants.js'
import { AuthenticationError, MalformedPacketError } from '../../appliance/core/errors.js'

const alice = Identity.fromSeed(Buffer.alloc(32, 1))
const bob = Identity.fromSeed(Buffer.alloc(32, 2))

t.test('the hand-written DataHeader offsets are the ones flatc lays out', async (t) => {
  t.equal(DataHeader.sizeOf(), DATA_HEADER_BYTES)
  const b = new flatbuffers.Builder(64)
  const dst = Buffer.from('00112233445566778899aabbccddeeff', 'hex')
  DataHeader.createDataHeader(b, VK_DATA, 0x10, 0x05, 7, 0xdeadbeef, dst.readBigUInt64LE(0), dst.readBigUInt64LE(8), 0x0102030405060708n)
  // An unfinished builder holds the struct in the last offset() bytes of its buffer.
  const all = b.dataBuffer().bytes()
  const bytes = Buffer.from(all.subarray(all.length - b.offset()))
  t.equal(bytes.length, 32)
  t.equal(bytes[0], VK_DATA)
  t.equal(bytes[DH_TYPE], 0x10)
  t.equal(bytes[DH_FLAGS], 0x05)
  t.equal(bytes[DH_HOP], 7)
  t.equal(bytes.readUInt32LE(DH_SESSION), 0xdeadbeef)
  t.same(bytes.subarray(DH_DST, DH_DST + 16), dst)
  t.equal(bytes.readBigUInt64LE(DH_SEQ), 0x0102030405060708n)
  // And a sealed frame parses with the generated reader.
  const s = new Session({ localIndex: 1, remoteIndex: 0xdeadbeef, sendKey: Buffer.alloc(32, 1), recvKey: Buffer.alloc(32, 2), localNodeId: alice.nodeId, remoteNodeId: dst, initiator: true })
  const f = s.sealCopy(PacketType.VectorSync, PacketFlags.AckRequested, Buffer.from('x'), 5)
  const h = new DataHeader().__init(0, new flatbuffers.ByteBuffer(f))
  t.equal(h.vk(), VK_DATA)
  t.equal(h.type(), PacketType.VectorSync)
  t.equal(h.hopLimit(), 5)
  t.equal(h.session(), 0xdeadbeef)
  t.equal(h.dst()!.w0(), dst.readBigUInt64LE(0))
})

t.test('Packet frames round-trip with and without dst', async (t) => {
  for (const dst of [bob.nodeId, null]) {
    const f = encodePacket({ type: PacketType.BroadcastAnnounce, flags: PacketFlags.Bulk, hopLimit: 9, packetId: 0xfedcba98, src: alice.nodeId, dst, payload: Buffer.from('hello') })
    const p = decodePacket(f)
    t.equal(p.type, PacketType.BroadcastAnnounce)
    t.equal(p.flags, PacketFlags.Bulk)
    t.equal(p.hopLimit, 9)
    t.equal(p.packetId, 0xfedcba98)
    t.same(p.src, alice.nodeId)
    t.same(p.dst, dst)
    t.equal(p.payload.toString(), 'hello')
    t.equal(p.signature, null)
  }
})

t.test('signed broadcasts verify, survive hop decrement, and reject tampering', async (t) => {
  const f = encodeSignedPacket(alice, { type: PacketType.BroadcastAnnounce, hopLimit: 4, packetId: 42, payload: Buffer.from('agents: assemble') })
  const p = decodePacket(f)
  verifyPacketSignature(p, alice.identityKey)
  t.ok(decrementPacketHop(f))
  const q = decodePacket(f)
  t.equal(q.hopLimit, 3)
  verifyPacketSignature(q, alice.identityKey)
  t.throws(() => verifyPacketSignature(q, bob.identityKey), AuthenticationError, 'wrong key')
  t.throws(() => verifyPacketSignature({ ...q, payload: Buffer.from('agents: disperse') }, alice.identityKey), AuthenticationError)
  t.throws(() => verifyPacketSignature({ ...q, packetId: 43 }, alice.identityKey), AuthenticationError)
})

t.test('announces: encode, verify, decode; forged ones are refused', async (t) => {
  const links = [
    { kind: LinkKind.LoRa, name: 'lora0', mtu: 255, bitrate: 5470 },
    { kind: LinkKind.Udp, name: 'udp0', mtu: 1400, bitrate: 100_000_000 },
  ]
  const f = encodeAnnounce(alice, { packetId: 1, timestamp: 1_700_000_000_123, capabilities: 3, links })
  const a = openAnnounce(f)
  t.same(a.packet.src, alice.nodeId)
  t.same(a.body.identityKey, alice.identityKey)
  t.same(a.body.staticKey, alice.static.publicKey)
  t.equal(a.body.timestamp, 1_700_000_000_123)
  t.equal(a.body.capabilities, 3)
  t.same(a.body.links, links)
  // Mallory signs an announce carrying Alice's identity key: the signature does not verify.
  const mallory = Identity.fromSeed(Buffer.alloc(32, 3))
  const forged = decodePacket(encodeAnnounce(mallory, { packetId: 2, timestamp: 1 }))
  const body = decodeAnnounceBody(forged.payload)
  t.same(body.identityKey, mallory.identityKey)
  t.throws(() => openAnnounce(encodePacket({ type: PacketType.Announce, flags: PacketFlags.Signed, hopLimit: 1, packetId: 2, src: alice.nodeId, payload: forged.payload, signature: forged.signature })), AuthenticationError)
})

t.test('decoders name the field at fault', async (t) => {
  const good = encodePacket({ type: PacketType.Handshake, hopLimit: 1, packetId: 1, src: alice.nodeId, dst: bob.nodeId, payload: Buffer.alloc(3) })
  const cases: [string, Buffer, string][] = [
    ['short', good.subarray(0, 6), 'length'],
    ['bad vk', Buffer.concat([Buffer.from([0x22]), good.subarray(1)]), 'vk'],
    ['prefix', Buffer.concat([Buffer.from([0x12, 1]), good.subarray(2)]), 'prefix'],
  ]
  for (const [name, frame, field] of cases) {
    const err = t.throws(() => decodePacket(frame), MalformedPacketError, name) as unknown as MalformedPacketError
    t.equal(err.field, field, name)
  }
  const unsigned = encodePacket({ type: PacketType.Announce, flags: PacketFlags.Signed, hopLimit: 1, packetId: 1, src: alice.nodeId })
  t.throws(() => decodePacket(unsigned), MalformedPacketError, 'Signed flag without signature')
  const unknownType = encodePacket({ type: 0x7e, hopLimit: 1, packetId: 1, src: alice.nodeId })
  t.throws(() => decodePacket(unknownType), MalformedPacketError)
})

t.test('packet type names follow the spec', async (t) => {
  t.equal(packetTypeName(PacketType.TaskRequest), 'TASK_REQUEST')
  t.equal(packetTypeName(PacketType.AgentMigration), 'AGENT_MIGRATION')
  t.equal(packetTypeName(PacketType.ReputationDelta), 'REPUTATION_DELTA')
  t.equal(packetTypeName(PacketType.BroadcastAnnounce), 'BROADCAST_ANNOUNCE')
  t.equal(packetTypeName(PacketType.VectorSync), 'VECTOR_SYNC')
  t.equal(packetTypeName(0x7e), '0x7e')
})

t.test('announces carry UUID, mesh IP and name, covered by the signature', async (t) => {
  const alice = Identity.generate()
  const uuid = Buffer.from('6f1c2a7e9b3d4c5aa1b2c3d4e5f60718', 'hex')
  const body = encodeAnnounceBody({ identityKey: alice.identityKey, staticKey: alice.static.publicKey, capabilities: 0, links: [], timestamp: 5, uuid, meshIp: (100 << 24) | (64 << 16) | (7 << 8) | 9, name: 'gw-north' })
  const d = decodeAnnounceBody(body)
  t.same(d.uuid, uuid)
  t.equal(d.meshIp, (((100 << 24) | (64 << 16) | (7 << 8) | 9) >>> 0))
  t.equal(d.name, 'gw-north')
  // Absent fields stay absent.
  const bare = decodeAnnounceBody(encodeAnnounceBody({ identityKey: alice.identityKey, staticKey: alice.static.publicKey, capabilities: 0, links: [], timestamp: 5 }))
  t.equal(bare.uuid, undefined)
  t.equal(bare.meshIp, undefined)
  t.equal(bare.name, undefined)
  // A UUID of the wrong length is malformed, named by field.
  const bad = encodeAnnounceBody({ identityKey: alice.identityKey, staticKey: alice.static.publicKey, capabilities: 0, links: [], timestamp: 5, uuid: Buffer.alloc(15) })
  t.throws(() => decodeAnnounceBody(bad), { name: 'MalformedPacketError', message: /uuid/ })
  // Changing the mesh IP inside a signed announce breaks the signature.
  const signed = encodeSignedPacket(alice, { type: PacketType.Announce, hopLimit: 4, packetId: 1, payload: body })
  const tampered = Buffer.from(signed)
  const at = tampered.indexOf(Buffer.from('gw-north'))
  tampered[at] = tampered[at]! ^ 1
  t.throws(() => openAnnounce(tampered))
  t.equal(openAnnounce(signed).body.name, 'gw-north')
})
