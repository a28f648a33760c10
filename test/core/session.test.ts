import t from 'tap'
import { Session, DEFAULT_LIMITS } from '../../appliance/core/session.js'
import { AuthenticationError, MalformedPacketError, ReplayError, SessionExpiredError } from '../../appliance/core/errors.js'
import { DATA_OVERHEAD, LORA_MTU, PacketType } from '../../appliance/core/wire/constants.js'
import { dataHopLimit, decrementDataHop, dataIsFor } from '../../appliance/core/wire/data.js'

const A = Buffer.alloc(16, 0xaa)
const B = Buffer.alloc(16, 0xbb)
const k1 = Buffer.alloc(32, 1)
const k2 = Buffer.alloc(32, 2)

function pair(now = () => 0, limits = {}) {
  const a = new Session({ localIndex: 0x1111, remoteIndex: 0x2222, sendKey: k1, recvKey: k2, localNodeId: A, remoteNodeId: B, initiator: true, now, limits })
  const b = new Session({ localIndex: 0x2222, remoteIndex: 0x1111, sendKey: k2, recvKey: k1, localNodeId: B, remoteNodeId: A, initiator: false, now, limits })
  return { a, b }
}

t.test('seal then open round-trips every agent type and size, both ways', async (t) => {
  const { a, b } = pair()
  for (const type of [PacketType.TaskRequest, PacketType.AgentMigration, PacketType.ReputationDelta, PacketType.BroadcastAnnounce, PacketType.VectorSync]) {
    for (const len of [0, 1, 64, 207, 1024, 4000]) {
      const payload = Buffer.alloc(len, type)
      const frame = a.sealCopy(type, 1, payload, 9)
      t.equal(frame.length, len + DATA_OVERHEAD)
      t.ok(dataIsFor(frame, B), 'destination in clear header')
      const got = b.open(frame)
      t.equal(got.type, type)
      t.equal(got.flags, 1)
      t.equal(got.hopLimit, 9)
      t.ok(got.payload.equals(payload))
      const back = b.sealCopy(type, 0, payload)
      t.ok(a.open(back).payload.equals(payload))
    }
  }
})

t.test('overhead of a sealed data frame is 48 bytes, so 207 bytes of payload fit one LoRa frame', async (t) => {
  t.equal(DATA_OVERHEAD, 48)
  const { a } = pair()
  t.equal(a.seal(PacketType.TaskRequest, 0, Buffer.alloc(LORA_MTU - 48)).length, LORA_MTU)
})

t.test('the sequence number is not visible on the wire', async (t) => {
  const { a } = pair()
  const seqs = new Set<string>()
  for (let i = 0; i < 200; i++) {
    const f = a.sealCopy(PacketType.TaskRequest, 0, Buffer.alloc(8))
    const field = f.subarray(24, 32)
    seqs.add(field.toString('hex'))
    if (i > 0) t.not(field.readBigUInt64LE(0), BigInt(i), 'not the plaintext counter')
  }
  t.equal(seqs.size, 200, 'every protected sequence field differs')
})

t.test('relays may decrement the hop limit without breaking authentication', async (t) => {
  const { a, b } = pair()
  const f = a.sealCopy(PacketType.TaskRequest, 0, Buffer.from('hop'), 3)
  t.ok(decrementDataHop(f))
  t.ok(decrementDataHop(f))
  t.ok(decrementDataHop(f))
  t.notOk(decrementDataHop(f), 'stops at 0')
  t.equal(dataHopLimit(f), 0)
  t.equal(b.open(f).payload.toString(), 'hop')
})

t.test('flipping any bit of a sealed frame (except the hop limit) is rejected', async (t) => {
  const { a, b } = pair()
  const f = a.sealCopy(PacketType.VectorSync, 0, Buffer.from('integrity matters'))
  let rejected = 0
  for (let bit = 0; bit < f.length * 8; bit++) {
    if (bit >> 3 === 3) continue
    const g = Buffer.from(f)
    g[bit >> 3]! ^= 1 << (bit & 7)
    try {
      b.open(g)
      t.fail(`bit ${bit} accepted`)
    } catch (err) {
      if (err instanceof AuthenticationError || err instanceof MalformedPacketError || err instanceof ReplayError) rejected++
      else throw err
    }
  }
  t.equal(rejected, (f.length - 1) * 8)
  t.equal(b.open(f).payload.toString(), 'integrity matters', 'the untouched frame still opens: failures changed no state')
})

t.test('replays are rejected; reordering within the window is accepted', async (t) => {
  const { a, b } = pair()
  const frames = Array.from({ length: 100 }, (_, i) => a.sealCopy(PacketType.TaskRequest, 0, Buffer.from([i])))
  const order = [...frames.keys()].reverse()
  for (const i of order) t.equal(b.open(frames[i]!).payload[0], i)
  for (const i of [0, 50, 99]) t.throws(() => b.open(frames[i]!), ReplayError)
  t.equal(b.stats.replays, 3)
})

t.test('packets older than the replay window are rejected', async (t) => {
  const { a, b } = pair(() => 0, { replayWindow: 2080 })
  const old = a.sealCopy(PacketType.TaskRequest, 0, Buffer.alloc(1))
  for (let i = 0; i < 2100; i++) a.seal(PacketType.TaskRequest, 0, Buffer.alloc(1))
  b.open(a.sealCopy(PacketType.TaskRequest, 0, Buffer.alloc(1)))
  t.throws(() => b.open(old), ReplayError)
})

t.test('a frame for another session, a truncated frame and an unknown type are malformed', async (t) => {
  const { a, b } = pair()
  const f = a.sealCopy(PacketType.TaskRequest, 0, Buffer.alloc(10))
  t.throws(() => a.open(f), MalformedPacketError, 'wrong session index')
  t.throws(() => b.open(f.subarray(0, 47)), MalformedPacketError)
  const g = Buffer.from(f)
  g[1] = 0x7f
  t.throws(() => b.open(g), MalformedPacketError)
})

t.test('wrong keys fail authentication and say nothing more', async (t) => {
  const { a } = pair()
  const eve = new Session({ localIndex: 0x2222, remoteIndex: 0x1111, sendKey: k2, recvKey: Buffer.alloc(32, 9), localNodeId: B, remoteNodeId: A, initiator: false })
  const err = t.throws(() => eve.open(a.sealCopy(PacketType.TaskRequest, 0, Buffer.from('secret')))) as unknown as AuthenticationError
  t.type(err, AuthenticationError)
  t.equal(err.message, 'packet does not authenticate')
  t.match(err.transaction_id, /^[0-9a-f]{16}$/)
})

t.test('rekey and expiry by time', async (t) => {
  let now = 0
  const { a, b } = pair(() => now)
  t.notOk(a.needsRekey())
  now = DEFAULT_LIMITS.rekeyAfterMs
  t.ok(a.needsRekey(), 'rekey after 120 s')
  t.notOk(a.isExpired())
  b.open(a.sealCopy(PacketType.TaskRequest, 0, Buffer.alloc(1)))
  now = DEFAULT_LIMITS.rejectAfterMs
  t.ok(a.isExpired())
  t.throws(() => a.seal(PacketType.TaskRequest, 0, Buffer.alloc(1)), SessionExpiredError)
})

t.test('rekey and expiry by message count', async (t) => {
  const { a } = pair(() => 0, { rekeyAfterMessages: 5, rejectAfterMessages: 8 })
  for (let i = 0; i < 5; i++) a.seal(PacketType.TaskRequest, 0, Buffer.alloc(1))
  t.ok(a.needsRekey())
  for (let i = 0; i < 3; i++) a.seal(PacketType.TaskRequest, 0, Buffer.alloc(1))
  t.throws(() => a.seal(PacketType.TaskRequest, 0, Buffer.alloc(1)), SessionExpiredError)
})

t.test('close wipes the keys and stops the session', async (t) => {
  const { a, b } = pair()
  const f = a.sealCopy(PacketType.TaskRequest, 0, Buffer.alloc(1))
  b.close()
  t.ok(b.isClosed)
  t.throws(() => b.open(f), SessionExpiredError)
  t.throws(() => b.seal(PacketType.TaskRequest, 0, Buffer.alloc(1)), SessionExpiredError)
})

t.test('a session survives a link drop: lost packets leave a gap that later packets cross', async (t) => {
  const { a, b } = pair()
  b.open(a.sealCopy(PacketType.TaskRequest, 0, Buffer.from('before')))
  for (let i = 0; i < 500; i++) a.seal(PacketType.TaskRequest, 0, Buffer.from('lost while the link was down'))
  t.equal(b.open(a.sealCopy(PacketType.TaskRequest, 0, Buffer.from('after'))).payload.toString(), 'after')
})

t.test('seal and open reuse memory: the returned views are stable buffers', async (t) => {
  const { a, b } = pair()
  const f1 = a.seal(PacketType.TaskRequest, 0, Buffer.alloc(100, 1))
  const f1copy = Buffer.from(f1)
  const f2 = a.seal(PacketType.TaskRequest, 0, Buffer.alloc(100, 2))
  t.equal(f1, f2, 'same view object for the same length')
  t.notSame(f1copy, Buffer.from(f2))
  b.open(f1copy)
  t.throws(() => a.seal(PacketType.TaskRequest, 0, Buffer.alloc(20000)), TypeError)
})
