import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { computeVectors, parseVectors, ALICE_SEED, BOB_SEED, VECTOR_TIME } from '../../appliance/core/vectors.js'
import { Identity, nodeIdFromPublicKey, verifyStaticBinding } from '../../appliance/core/identity.js'
import { Session } from '../../appliance/core/session.js'
import { SessionManager } from '../../appliance/core/sessions.js'
import { openAnnounce } from '../../appliance/core/wire/announce.js'
import { decodePacket } from '../../appliance/core/wire/packet.js'
import { Reassembler } from '../../appliance/core/fragment.js'
import { dhFromSecret } from '../../appliance/core/crypto.js'
import { PacketType } from '../../appliance/core/wire/constants.js'

const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8')
const inDoc = parseVectors(doc)
const h = (name: string, field: string) => {
  const v = inDoc.get(name)?.get(field)
  if (v === undefined) throw new Error(`docs/protocol.md: vector ${name} has no field ${field}`)
  return Buffer.from(v, 'hex')
}

t.test('every vector in docs/protocol.md equals what the code computes', async (t) => {
  const computed = computeVectors()
  t.equal(inDoc.size, computed.length, 'same number of vectors')
  for (const v of computed) {
    const fields = inDoc.get(v.name)
    t.ok(fields, `vector ${v.name} is in the document`)
    for (const [k, val] of v.fields) t.equal(fields?.get(k), val, `${v.name}.${k}`)
  }
})

t.test('identity vector: node ID and static binding check out from the document alone', async (t) => {
  t.same(nodeIdFromPublicKey(h('identity', 'identity_key')), h('identity', 'node_id'))
  t.ok(verifyStaticBinding(h('identity', 'identity_key'), h('identity', 'static_key'), h('identity', 'static_binding')))
  t.same(dhFromSecret(h('identity', 'static_secret')).publicKey, h('identity', 'static_key'))
})

t.test('data vector opens with the documented key and yields the documented payload', async (t) => {
  const bob = Identity.fromSeed(BOB_SEED)
  const alice = Identity.fromSeed(ALICE_SEED)
  const rx = new Session({ localIndex: 0x0badcafe, remoteIndex: 1, sendKey: Buffer.alloc(32, 9), recvKey: h('data', 'send_key'), localNodeId: bob.nodeId, remoteNodeId: alice.nodeId, initiator: false })
  const got = rx.open(h('data', 'frame'))
  t.equal(got.seq, 5)
  t.equal(got.type, PacketType.TaskRequest)
  t.same(got.payload, h('data', 'payload'))
  t.equal(h('data', 'frame').length - got.payload.length, 48, 'overhead')
})

t.test('announce vector verifies', async (t) => {
  const a = openAnnounce(h('announce', 'frame'))
  t.same(a.body.identityKey, h('identity', 'identity_key'))
  t.equal(a.body.timestamp, VECTOR_TIME)
  t.same(a.packet.signature, h('announce', 'signature'))
})

t.test('IK vector: a fresh responder and initiator reproduce the documented messages', async (t) => {
  const alice = Identity.fromSeed(ALICE_SEED)
  const bob = Identity.fromSeed(BOB_SEED)
  const bobE = dhFromSecret(h('ik', 'bob_ephemeral_secret'))
  const m1 = decodePacket(h('ik', 'message1'))
  t.same(m1.src, bob.nodeId)
  // Bob's "random" draws, in order: his session index, then message 1's packet ID.
  const draws = [h('ik', 'bob_index').readUInt32BE(0), m1.packetId]
  const random = (buf: Uint8Array) => Buffer.from(buf.buffer, buf.byteOffset, buf.length).writeUInt32LE(draws.shift()!, 0)
  const b = new SessionManager({ identity: bob, now: () => 0, wallClock: () => VECTOR_TIME, ephemeral: () => bobE, random })
  const r = b.handleHandshake(decodePacket(h('ik', 'message0')))
  t.ok(r.session, 'the responder accepts message 0 and completes')
  t.same(r.peer, alice.nodeId)
  t.same(r.reply, h('ik', 'message1'), 'the responder writes exactly message 1')
  const first = b.open(h('ik', 'first_data'))
  t.equal(first.data.payload.toString(), 'first task')
})

t.test('fragment vector reassembles to the announce', async (t) => {
  const r = new Reassembler({ now: () => 0 })
  const frags = [...inDoc.get('fragment')!.keys()].filter((k) => k.startsWith('fragment')).map((k) => h('fragment', k))
  t.equal(frags.length, 7)
  let whole: Buffer | null = null
  for (const f of frags.reverse()) whole = r.push('lora0', f) ?? whole
  t.same(whole, h('fragment', 'frame'))
})
