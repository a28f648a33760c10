/**
 * Noise (appliance/core/noise.ts) against the cacophony test vectors, plus the failures a
 * handshake must produce: wrong peer, tampered messages, out-of-turn calls, low-order keys.
 */
import t from 'tap'
import type { Test as Tap } from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AEAD_NONCE_BYTES, aeadSeal, blake2b, dhFromSecret, dhGenerate } from '../../appliance/core/crypto.js'
import { AuthenticationError, HandshakeError, MalformedPacketError } from '../../appliance/core/errors.js'
import {
  CipherState,
  HandshakeState,
  NOISE_PATTERNS,
  PROTOCOL_IK,
  PROTOCOL_XX,
  SymmetricState,
  type HandshakeOptions,
} from '../../appliance/core/noise.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const sharedDir = process.env.KAIRO_SHARED_DIR ?? join(repoRoot, '..', 'shared')
const vectorFile = join(sharedDir, 'vectors', 'noise-cacophony.json')

interface NoiseVector {
  protocol_name: string
  init_prologue?: string
  resp_prologue?: string
  init_static?: string
  init_ephemeral?: string
  init_remote_static?: string
  resp_static?: string
  resp_ephemeral?: string
  resp_remote_static?: string
  init_psks?: string[]
  resp_psks?: string[]
  handshake_hash?: string
  messages: { payload: string; ciphertext: string }[]
}

const SUITE = '_25519_ChaChaPoly_BLAKE2b'
const ONE_WAY = new Set(['N', 'K', 'X'])

const hex = (s: string): Buffer => Buffer.from(s, 'hex')
const keyPair = (secretHex: string): { publicKey: Buffer; secretKey: Buffer } => dhFromSecret(hex(secretHex))

function patternOf(name: string): string | null {
  const m = /^Noise_([A-Z0-9]+)_25519_ChaChaPoly_BLAKE2b$/.exec(name)
  return m ? m[1]! : null
}

function optionsFor(v: NoiseVector, initiator: boolean): HandshakeOptions {
  const pattern = patternOf(v.protocol_name)!
  const side = initiator ? 'init' : 'resp'
  const opts: HandshakeOptions = { pattern, initiator, prologue: hex(v[`${side}_prologue`] ?? '') }
  const s = v[`${side}_static`]
  const e = v[`${side}_ephemeral`]
  const rs = v[`${side}_remote_static`]
  if (s !== undefined) opts.s = keyPair(s)
  if (e !== undefined) opts.e = keyPair(e)
  if (rs !== undefined) opts.rs = hex(rs)
  return opts
}

/** Name of the class of a thrown value, for messages. */
function errName(err: unknown): string {
  return err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)
}

function catchErr(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

const allVectors = (JSON.parse(readFileSync(vectorFile, 'utf8')) as { vectors: NoiseVector[] }).vectors
const ours = allVectors.filter((v) => v.protocol_name.endsWith(SUITE) && !v.protocol_name.includes('psk'))
const supported = ours.filter((v) => NOISE_PATTERNS.includes(patternOf(v.protocol_name) ?? ''))
const unsupported = ours.filter((v) => !supported.includes(v))
const vector = (name: string): NoiseVector => {
  const v = allVectors.find((x) => x.protocol_name === name)
  if (v === undefined) throw new Error(`no vector ${name}`)
  return v
}

/** A fresh initiator and responder for vector `v`, with messages 0..k-1 already exchanged. */
function advanceTo(v: Parameters<typeof optionsFor>[0], k: number): [HandshakeState, HandshakeState] {
  const init = new HandshakeState(optionsFor(v, true))
  const resp = new HandshakeState(optionsFor(v, false))
  for (let j = 0; j < k; j++) {
    const [w, r] = init.isMyTurn() ? [init, resp] : [resp, init]
    r.readMessage(w.writeMessage(hex(v.messages[j]!.payload)))
  }
  return [init, resp]
}

t.test('cacophony vectors, 25519_ChaChaPoly_BLAKE2b', async (t) => {
  t.same(
    unsupported.map((v) => v.protocol_name),
    [],
    'every non-psk pattern of the suite in the vector file is implemented',
  )
  const checked = new Map<string, number>()
  for (const v of supported) {
    const pattern = patternOf(v.protocol_name)!
    await t.test(v.protocol_name, async (t) => {
      const init = new HandshakeState(optionsFor(v, true))
      const resp = new HandshakeState(optionsFor(v, false))
      t.equal(init.protocolName, v.protocol_name)
      const hsLen = runHandshake(t, init, resp, v)
      t.ok(init.isComplete() && resp.isComplete(), `handshake complete after ${hsLen} messages`)
      t.equal(init.handshakeHash().toString('hex'), v.handshake_hash, 'initiator handshake hash')
      t.equal(resp.handshakeHash().toString('hex'), v.handshake_hash, 'responder handshake hash')

      const [i2r, r2i] = init.split()
      const [ri2r, rr2i] = resp.split()
      let mismatches = 0
      let transport = 0
      for (let i = hsLen; i < v.messages.length; i++) {
        const m = v.messages[i]!
        const fromInitiator = ONE_WAY.has(pattern) || i % 2 === 0
        const [enc, dec] = fromInitiator ? [i2r, ri2r] : [rr2i, r2i]
        const ct = enc.encryptWithAd(Buffer.alloc(0), hex(m.payload))
        const pt = dec.decryptWithAd(Buffer.alloc(0), hex(m.ciphertext))
        if (ct.toString('hex') !== m.ciphertext || pt.toString('hex') !== m.payload) {
          mismatches++
          t.fail(`transport message ${i} (${fromInitiator ? 'initiator' : 'responder'} sends) differs`, {
            found: ct.toString('hex'),
            wanted: m.ciphertext,
          })
        }
        transport++
      }
      t.equal(mismatches, 0, `${transport} transport messages match`)
      checked.set(pattern, (checked.get(pattern) ?? 0) + 1)
    })
  }

  /** Runs the handshake messages of `v`, checking each, and returns how many there were. */
  function runHandshake(t: Tap, init: HandshakeState, resp: HandshakeState, v: NoiseVector): number {
    let i = 0
    while (!init.isComplete()) {
      const m = v.messages[i]
      if (m === undefined) throw new Error(`${v.protocol_name}: vector ends before the handshake does`)
      const [writer, reader] = init.isMyTurn() ? [init, resp] : [resp, init]
      t.ok(reader.isMyTurn() === false && writer.isMyTurn(), `message ${i}: turn`)
      const ct = writer.writeMessage(hex(m.payload))
      t.equal(ct.toString('hex'), m.ciphertext, `handshake message ${i} by the ${writer.initiator ? 'initiator' : 'responder'}`)
      t.equal(reader.readMessage(hex(m.ciphertext)).toString('hex'), m.payload, `handshake message ${i} payload`)
      i++
    }
    return i
  }

  const xx = checked.get('XX') ?? 0
  const ik = checked.get('IK') ?? 0
  t.ok(xx > 0, `XX vectors checked: ${xx}`)
  t.ok(ik > 0, `IK vectors checked: ${ik}`)
  const total = [...checked.values()].reduce((a, b) => a + b, 0)
  const skippedPsk = allVectors.filter((v) => v.protocol_name.endsWith(SUITE) && v.protocol_name.includes('psk')).length
  t.comment(`noise vectors: XX=${xx} IK=${ik}, ${total} in all over ${checked.size} patterns; ${skippedPsk} psk vectors of the suite skipped`)
})

t.test('generated keys: XX and IK agree on keys, hash and peer identity', async (t) => {
  for (const pattern of ['XX', 'IK']) {
    const si = dhGenerate()
    const sr = dhGenerate()
    const init = new HandshakeState({ pattern, initiator: true, s: si, ...(pattern === 'IK' ? { rs: sr.publicKey } : {}), prologue: Buffer.from('kairo') })
    const resp = new HandshakeState({ pattern, initiator: false, s: sr, prologue: Buffer.from('kairo') })
    t.equal(init.protocolName, pattern === 'XX' ? PROTOCOL_XX : PROTOCOL_IK)
    let n = 0
    while (!init.isComplete()) {
      const [w, r] = init.isMyTurn() ? [init, resp] : [resp, init]
      t.equal(w.messageIndex, n)
      const payload = Buffer.from(`msg ${n}`)
      t.same(r.readMessage(w.writeMessage(payload)), payload)
      n++
    }
    t.ok(resp.isComplete())
    t.same(init.remoteStaticKey(), sr.publicKey, `${pattern}: initiator learned the responder's static key`)
    t.same(resp.remoteStaticKey(), si.publicKey, `${pattern}: responder learned the initiator's static key`)
    t.ok(init.remoteEphemeralKey() !== null && resp.remoteEphemeralKey() !== null)
    t.same(init.handshakeHash(), resp.handshakeHash())
    const [a1, a2] = init.split()
    const [b1, b2] = resp.split()
    t.same(a1.key(), b1.key())
    t.same(a2.key(), b2.key())
    t.notSame(a1.key(), a2.key())
    t.throws(() => init.split(), HandshakeError, 'split only once')
  }
})

t.test('wrong-peer IK fails at the responder with AuthenticationError', async (t) => {
  const v = vector(PROTOCOL_IK)
  const wrong = dhGenerate()
  const init = new HandshakeState({ ...optionsFor(v, true), rs: wrong.publicKey })
  const resp = new HandshakeState(optionsFor(v, false))
  const msg = init.writeMessage(Buffer.from('hello'))
  const err = catchErr(() => resp.readMessage(msg))
  t.ok(err instanceof AuthenticationError, `responder rejects: ${errName(err)}`)
  t.throws(() => resp.readMessage(msg), HandshakeError, 'the failed handshake is dead')
  t.throws(() => resp.writeMessage(Buffer.alloc(0)), HandshakeError, 'the failed handshake is dead for writing too')
})

t.test('flipping any single bit of a handshake message fails the handshake', async (t) => {
  for (const name of [PROTOCOL_XX, PROTOCOL_IK, 'Noise_NN_25519_ChaChaPoly_BLAKE2b', 'Noise_KK_25519_ChaChaPoly_BLAKE2b', 'Noise_X1X1_25519_ChaChaPoly_BLAKE2b']) {
    const v = vector(name)
    const messages = countMessages(v)
    for (let k = 0; k < messages; k++) {
      const original = hex(v.messages[k]!.ciphertext)
      let rejectedAtOnce = 0
      let rejectedNext = 0
      const bad: string[] = []
      for (let bit = 0; bit < original.length * 8; bit++) {
        const [init, resp] = advanceTo(v, k)
        const [w, r] = init.isMyTurn() ? [init, resp] : [resp, init]
        const msg = w.writeMessage(hex(v.messages[k]!.payload))
        msg[bit >> 3]! ^= 1 << (bit & 7)
        const err = catchErr(() => r.readMessage(msg))
        if (err !== undefined) {
          if (err instanceof AuthenticationError || err instanceof MalformedPacketError) rejectedAtOnce++
          else bad.push(`bit ${bit}: ${errName(err)}`)
          const again = catchErr(() => r.readMessage(msg))
          if (!(again instanceof HandshakeError)) bad.push(`bit ${bit}: state usable after failure (${errName(again)})`)
          continue
        }
        // An unauthenticated message (no key yet, e.g. XX message 0): the tampering changed h,
        // so the next message the tampered side sends cannot be read by the other side.
        if (r.isComplete()) {
          bad.push(`bit ${bit}: accepted as the last message`)
          continue
        }
        const next = r.writeMessage(Buffer.alloc(0))
        const err2 = catchErr(() => w.readMessage(next))
        if (err2 instanceof AuthenticationError) rejectedNext++
        else bad.push(`bit ${bit}: accepted, and the answer gave ${errName(err2)}`)
      }
      t.same(bad, [], `${name} message ${k} (${original.length} bytes): ${rejectedAtOnce} flips rejected by readMessage, ${rejectedNext} by the answer`)
    }
  }

  function countMessages(v: NoiseVector): number {
    const init = new HandshakeState(optionsFor(v, true))
    const resp = new HandshakeState(optionsFor(v, false))
    let n = 0
    while (!init.isComplete()) {
      const [w, r] = init.isMyTurn() ? [init, resp] : [resp, init]
      r.readMessage(w.writeMessage(hex(v.messages[n]!.payload)))
      n++
    }
    return n
  }
})

t.test('authenticated handshake messages reject every bit flip in readMessage itself', async (t) => {
  // IK message 0 and XX messages 1 and 2 are all authenticated.
  for (const [name, k] of [[PROTOCOL_IK, 0], [PROTOCOL_IK, 1], [PROTOCOL_XX, 1], [PROTOCOL_XX, 2]] as const) {
    const v = vector(name)
    const original = hex(v.messages[k]!.ciphertext)
    let wrong = 0
    for (let bit = 0; bit < original.length * 8; bit++) {
      const [init, resp] = advanceTo(v, k)
      const r = init.isMyTurn() ? resp : init
      const msg = Buffer.from(original)
      msg[bit >> 3]! ^= 1 << (bit & 7)
      const err = catchErr(() => r.readMessage(msg))
      if (!(err instanceof AuthenticationError || err instanceof MalformedPacketError)) {
        wrong++
        t.fail(`${name} message ${k} bit ${bit}: ${errName(err)}`)
      }
    }
    t.equal(wrong, 0, `${name} message ${k}: all ${original.length * 8} flips rejected`)
  }
})

t.test('truncated, oversized and out-of-turn messages', async (t) => {
  const v = vector(PROTOCOL_IK)
  const m0 = hex(v.messages[0]!.ciphertext)
  for (const len of [0, 1, 31, 32, 32 + 48 - 1, m0.length - 1]) {
    const resp = new HandshakeState(optionsFor(v, false))
    const err = catchErr(() => resp.readMessage(m0.subarray(0, len)))
    t.ok(err instanceof MalformedPacketError || err instanceof AuthenticationError, `IK message 0 cut to ${len} bytes: ${errName(err)}`)
  }
  const short = new HandshakeState(optionsFor(v, false))
  t.throws(() => short.readMessage(m0.subarray(0, 40)), MalformedPacketError, 'shorter than its keys: MalformedPacketError')
  const big = new HandshakeState(optionsFor(v, false))
  t.throws(() => big.readMessage(Buffer.alloc(65536)), MalformedPacketError, '65536 bytes: MalformedPacketError')
  t.throws(() => big.readMessage(m0), HandshakeError, 'dead after the oversized message')

  const tooLong = new HandshakeState(optionsFor(vector(PROTOCOL_XX), true))
  t.throws(() => tooLong.writeMessage(Buffer.alloc(65535 - 32 + 1)), TypeError, 'writing over 65535 bytes is refused')
  t.equal(tooLong.writeMessage(Buffer.alloc(65535 - 32)).length, 65535, 'exactly 65535 bytes is fine')

  const xx = vector(PROTOCOL_XX)
  const resp = new HandshakeState(optionsFor(xx, false))
  t.notOk(resp.isMyTurn(), 'the responder does not start')
  t.throws(() => resp.writeMessage(Buffer.alloc(0)), HandshakeError, 'responder writing first: HandshakeError')
  const init = new HandshakeState(optionsFor(xx, true))
  t.throws(() => init.readMessage(hex(xx.messages[0]!.ciphertext)), HandshakeError, 'initiator reading first: HandshakeError')
  const init2 = new HandshakeState(optionsFor(xx, true))
  init2.writeMessage(Buffer.alloc(0))
  t.throws(() => init2.writeMessage(Buffer.alloc(0)), HandshakeError, 'initiator writing twice: HandshakeError')
  t.throws(() => init2.split(), HandshakeError, 'split before completion: HandshakeError')

  const oneWay = vector('Noise_N_25519_ChaChaPoly_BLAKE2b')
  const nInit = new HandshakeState(optionsFor(oneWay, true))
  nInit.writeMessage(Buffer.alloc(0))
  t.ok(nInit.isComplete(), 'N completes after one message')
  t.throws(() => nInit.writeMessage(Buffer.alloc(0)), HandshakeError, 'writing after completion: HandshakeError')
})

t.test('missing or misplaced keys are TypeErrors', async (t) => {
  const s = dhGenerate()
  t.throws(() => new HandshakeState({ pattern: 'IK', initiator: true, s }), TypeError, 'IK initiator without rs')
  t.throws(() => new HandshakeState({ pattern: 'IK', initiator: false }), TypeError, 'IK responder without s')
  t.throws(() => new HandshakeState({ pattern: 'XX', initiator: true }), TypeError, 'XX initiator without s')
  t.throws(() => new HandshakeState({ pattern: 'XX', initiator: true, s, rs: s.publicKey }), TypeError, 'XX with rs (it is transmitted)')
  t.throws(() => new HandshakeState({ pattern: 'ZZ', initiator: true }), TypeError, 'unknown pattern')
  t.throws(() => new HandshakeState({ pattern: 'IK', initiator: true, s, rs: Buffer.alloc(31) }), TypeError, 'short rs')
  t.throws(() => new HandshakeState({ pattern: 'IK', initiator: true, s, rs: Buffer.alloc(32) }), TypeError, 'low-order rs')
  t.equal(new HandshakeState({ pattern: PROTOCOL_IK, initiator: true, s, rs: dhGenerate().publicKey }).protocolName, PROTOCOL_IK, 'full protocol name accepted')
  t.ok(new HandshakeState({ pattern: 'NN', initiator: true }).isMyTurn(), 'NN needs no keys')
})

/** Low-order X25519 points (canonical and not) as Wycheproof lists them, plus the obvious ones. */
function lowOrderPoints(): Buffer[] {
  const set = new Set<string>(['00'.repeat(32), '01' + '00'.repeat(31), 'ec' + 'ff'.repeat(30) + '7f', 'ed' + 'ff'.repeat(30) + '7f', 'ee' + 'ff'.repeat(30) + '7f'])
  const file = join(sharedDir, 'vectors', 'wycheproof-x25519_test.json')
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { testGroups: { tests: { public: string; flags: string[] }[] }[] }
  for (const g of doc.testGroups) for (const tc of g.tests) if (tc.flags.includes('LowOrderPublic')) set.add(tc.public)
  return [...set].map(hex)
}

t.test('low-order ephemeral keys from the peer are rejected with AuthenticationError', async (t) => {
  const points = lowOrderPoints()
  t.ok(points.length >= 7, `${points.length} low-order encodings`)
  const xx = vector(PROTOCOL_XX)
  const ik = vector(PROTOCOL_IK)
  let bad = 0
  for (const pt of points) {
    // XX message 0 is just `e`: the responder must refuse it while reading.
    const resp = new HandshakeState(optionsFor(xx, false))
    const e1 = catchErr(() => resp.readMessage(pt))
    // IK message 0: e, es, s, ss.
    const respIk = new HandshakeState(optionsFor(ik, false))
    const m0 = hex(ik.messages[0]!.ciphertext)
    pt.copy(m0, 0)
    const e2 = catchErr(() => respIk.readMessage(m0))
    // XX message 1 to the initiator: e, ee, s, es.
    const init = new HandshakeState(optionsFor(xx, true))
    init.writeMessage(hex(xx.messages[0]!.payload))
    const m1 = hex(xx.messages[1]!.ciphertext)
    pt.copy(m1, 0)
    const e3 = catchErr(() => init.readMessage(m1))
    for (const [what, err] of [['XX responder', e1], ['IK responder', e2], ['XX initiator', e3]] as const) {
      if (!(err instanceof AuthenticationError)) {
        bad++
        t.fail(`${what}, e = ${pt.toString('hex')}: ${errName(err)}`)
      }
    }
  }
  t.equal(bad, 0, `all ${points.length} low-order ephemerals rejected on XX (both sides) and IK`)
})

t.test('CipherState', async (t) => {
  const key = Buffer.alloc(32, 7)
  const empty = new CipherState()
  t.notOk(empty.hasKey())
  t.same(empty.encryptWithAd(Buffer.alloc(0), Buffer.from('abc')), Buffer.from('abc'), 'empty: pass-through')
  t.equal(empty.nonce, 0, 'empty: counter untouched')
  t.throws(() => empty.key(), HandshakeError)

  const a = new CipherState(key)
  const b = new CipherState(key)
  const n = 2 ** 32 + 5
  a.setNonce(n)
  b.setNonce(n)
  const nonce = Buffer.alloc(AEAD_NONCE_BYTES)
  nonce.writeBigUInt64LE(BigInt(n), 4)
  const ct = a.encryptWithAd(Buffer.from('ad'), Buffer.from('payload'))
  t.same(ct, aeadSeal(Buffer.from('payload'), Buffer.from('ad'), nonce, key), 'nonce = 4 zero bytes || LE64(n)')
  t.equal(a.nonce, n + 1)
  const tampered = Buffer.from(ct)
  tampered[0]! ^= 1
  t.throws(() => b.decryptWithAd(Buffer.from('ad'), tampered), AuthenticationError)
  t.equal(b.nonce, n, 'failed decryption leaves n')
  t.same(b.decryptWithAd(Buffer.from('ad'), ct), Buffer.from('payload'))

  const maxNonce = Buffer.concat([Buffer.alloc(4), Buffer.alloc(8, 0xff)])
  const expected = aeadSeal(Buffer.alloc(32), Buffer.alloc(0), maxNonce, key).subarray(0, 32)
  a.rekey()
  b.rekey()
  t.same(a.key(), expected, 'REKEY = ENCRYPT(k, 2^64-1, empty, zeros)[0:32]')
  t.same(b.decryptWithAd(Buffer.alloc(0), a.encryptWithAd(Buffer.alloc(0), Buffer.from('x'))), Buffer.from('x'), 'both sides rekeyed')
  t.throws(() => a.setNonce(-1), TypeError)
  t.throws(() => a.setNonce(1.5), TypeError)
})

t.test('protocol names longer than HASHLEN are hashed', async (t) => {
  const long = 'Noise_' + 'X'.repeat(80) + '_25519_ChaChaPoly_BLAKE2b'
  t.same(new SymmetricState(long).handshakeHash(), blake2b(64, [Buffer.from(long)]))
  const short = new SymmetricState(PROTOCOL_XX).handshakeHash()
  t.same(short, Buffer.concat([Buffer.from(PROTOCOL_XX), Buffer.alloc(64 - PROTOCOL_XX.length)]), 'short names are zero-padded')
})
