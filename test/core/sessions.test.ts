import t from 'tap'
import { Identity } from '../../appliance/core/identity.js'
import { SessionManager } from '../../appliance/core/sessions.js'
import { decodePacket } from '../../appliance/core/wire/packet.js'
import { openAnnounce, encodeAnnounce } from '../../appliance/core/wire/announce.js'
import { HandshakePattern, PacketType } from '../../appliance/core/wire/constants.js'
import { AuthenticationError, ConnectionLostError, HandshakeError, MalformedPacketError, ResourceLimitError, SessionExpiredError } from '../../appliance/core/errors.js'

function node(seedByte: number, clock: { now: number }, opts = {}) {
  const identity = Identity.fromSeed(Buffer.alloc(32, seedByte))
  return new SessionManager({ identity, now: () => clock.now, wallClock: () => 1_700_000_000_000 + clock.now, ...opts })
}

/** Delivers a frame as a link would, returning the receiver's outcome. */
function deliver(to: SessionManager, frame: Buffer) {
  return to.handleHandshake(decodePacket(frame))
}

function handshake(a: SessionManager, b: SessionManager) {
  const start = a.connect(b.identity.nodeId)
  let frame: Buffer | null = start.frame
  let turn: [SessionManager, SessionManager] = [b, a]
  let messages = 0
  while (frame !== null) {
    messages++
    frame = deliver(turn[0], frame).reply
    turn = [turn[1], turn[0]]
  }
  return { pattern: start.pattern, messages }
}

t.test('first contact runs XX (3 messages), then both sides exchange data', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  const hs = handshake(a, b)
  t.equal(hs.pattern, HandshakePattern.XX)
  t.equal(hs.messages, 3)
  const f = Buffer.from(a.seal(b.identity.nodeId, PacketType.TaskRequest, 0, Buffer.from('task')))
  const got = b.open(f)
  t.equal(got.data.payload.toString(), 'task')
  t.ok(got.session.remoteNodeId.equals(a.identity.nodeId), 'the receiver knows who sent it')
  const back = Buffer.from(b.seal(a.identity.nodeId, PacketType.TaskRequest, 0, Buffer.from('done')))
  t.equal(a.open(back).data.payload.toString(), 'done')
  t.equal(a.peer(b.identity.nodeId).identityKey!.toString('hex'), b.identity.identityKey.toString('hex'), 'XX taught A who B is')
})

t.test('a verified announce makes the next handshake IK (2 messages)', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  const ann = openAnnounce(encodeAnnounce(b.identity, { packetId: 7, timestamp: 1 }))
  a.learn(ann.body)
  const hs = handshake(a, b)
  t.equal(hs.pattern, HandshakePattern.IK)
  t.equal(hs.messages, 2)
  const f = Buffer.from(a.seal(b.identity.nodeId, PacketType.VectorSync, 0, Buffer.from('v')))
  t.equal(b.open(f).data.type, PacketType.VectorSync)
})

t.test('the IK responder waits for the first packet before it switches sessions', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  handshake(a, b)
  const old = b.sessionFor(a.identity.nodeId)!
  // A rekeys (IK now, since A learned B's keys during XX).
  const hs = handshake(a, b)
  t.equal(hs.pattern, HandshakePattern.IK)
  t.equal(b.sessionFor(a.identity.nodeId), old, 'B keeps sending on the confirmed session')
  const f = Buffer.from(a.seal(b.identity.nodeId, PacketType.TaskRequest, 0, Buffer.from('x')))
  const got = b.open(f)
  t.not(got.session, old)
  t.equal(b.sessionFor(a.identity.nodeId), got.session, 'first packet on the new session confirms it')
  const late = Buffer.from(b.seal(a.identity.nodeId, PacketType.TaskRequest, 0, Buffer.from('y')))
  t.equal(a.open(late).data.payload.toString(), 'y')
})

t.test('an impostor cannot claim another node ID', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  const mallory = node(3, clock)
  // Mallory runs XX with B but writes A's node ID as the source of its packets.
  const start = mallory.connect(b.identity.nodeId)
  const p = decodePacket(start.frame)
  const forged = { ...p, src: a.identity.nodeId }
  const r1 = b.handleHandshake(forged)
  // Mallory answers message 1 (it is addressed to the real A, but Mallory sees the medium).
  const m1 = decodePacket(r1.reply!)
  const r2 = mallory.handleHandshake({ ...m1, dst: mallory.identity.nodeId, src: b.identity.nodeId })
  const m2 = decodePacket(r2.reply!)
  t.throws(() => b.handleHandshake({ ...m2, src: a.identity.nodeId }), AuthenticationError)
  t.equal(b.sessionFor(a.identity.nodeId), null, 'no session was created for the claimed ID')
})

t.test('IK to the wrong static key fails with AuthenticationError at the responder', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  const c = node(3, clock)
  // A believes B's static key is C's.
  a.learn({ identityKey: b.identity.identityKey, staticKey: c.identity.static.publicKey, capabilities: 0, links: [], timestamp: 0 })
  const start = a.connect(b.identity.nodeId)
  t.throws(() => deliver(b, start.frame), AuthenticationError)
})

t.test('a replayed IK first message changes nothing', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  a.learn(openAnnounce(encodeAnnounce(b.identity, { packetId: 1, timestamp: 1 })).body)
  const start = a.connect(b.identity.nodeId)
  const r = deliver(b, start.frame)
  a.handleHandshake(decodePacket(r.reply!))
  const before = b.peer(a.identity.nodeId).next
  t.throws(() => deliver(b, start.frame), HandshakeError)
  t.equal(b.stats.handshakesReplayed, 1)
  t.equal(b.peer(a.identity.nodeId).next, before)
})

t.test('handshakes time out with the transaction ID of the attempt', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock, { handshakeTimeoutMs: 1000 })
  const b = node(2, clock)
  const start = a.connect(b.identity.nodeId)
  clock.now = 1500
  const timeouts = a.sweep()
  t.equal(timeouts.length, 1)
  t.equal(timeouts[0]!.transaction_id, start.transactionId)
  t.equal(a.pendingHandshakes, 0)
})

t.test('unauthenticated XX openers hold bounded state', async (t) => {
  const clock = { now: 0 }
  const b = node(2, clock, { maxPending: 4 })
  for (let i = 0; i < 4; i++) deliver(b, node(10 + i, clock).connect(b.identity.nodeId).frame)
  t.throws(() => deliver(b, node(20, clock).connect(b.identity.nodeId).frame), ResourceLimitError)
})

t.test('after a link drop longer than the session lifetime the session resumes with IK', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  t.equal(handshake(a, b).pattern, HandshakePattern.XX)
  clock.now += 200_000
  a.sweep()
  b.sweep()
  t.throws(() => a.seal(b.identity.nodeId, PacketType.TaskRequest, 0, Buffer.alloc(1)), ConnectionLostError)
  t.ok(a.needsHandshake(b.identity.nodeId))
  t.equal(handshake(a, b).pattern, HandshakePattern.IK, 'keys kept from the first session; no announce needed')
  const f = Buffer.from(a.seal(b.identity.nodeId, PacketType.TaskRequest, 0, Buffer.from('resumed')))
  t.equal(b.open(f).data.payload.toString(), 'resumed')
})

t.test('close sends an authenticated Close that ends the session on both sides', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  handshake(a, b)
  b.open(Buffer.from(a.seal(b.identity.nodeId, PacketType.TaskRequest, 0, Buffer.alloc(1))))
  const close = a.close(b.identity.nodeId)!
  t.equal(a.sessionFor(b.identity.nodeId), null)
  const r = b.open(close)
  t.equal(r.data.type, PacketType.Close)
  t.equal(b.sessionFor(a.identity.nodeId), null)
  t.throws(() => b.open(close), SessionExpiredError)
})

t.test('handshake packets that are not for us or not handshakes are malformed', async (t) => {
  const clock = { now: 0 }
  const a = node(1, clock)
  const b = node(2, clock)
  const c = node(3, clock)
  const start = a.connect(b.identity.nodeId)
  t.throws(() => deliver(c, start.frame), MalformedPacketError)
  t.throws(() => b.handleHandshake({ ...decodePacket(start.frame), type: PacketType.Announce }), MalformedPacketError)
})
