/**
 * The Noise Protocol Framework (revision 34) for the suite 25519 / ChaChaPoly / BLAKE2b.
 *
 * `CipherState`, `SymmetricState` and `HandshakeState` follow the spec's sections 5.1 to 5.3.
 * Handshake patterns are data: each is a pre-message part and a list of message token lists,
 * run by one token engine (e, s, ee, es, se, ss), so a new pattern is one table entry. The table
 * holds the one-way patterns (N, K, X), the interactive fundamental patterns (NN ... IX) and the
 * deferred patterns of section 7.7 (NK1 ... I1X1). PSK modifiers are not supported.
 *
 * The code does no I/O: bytes in, bytes out. A handshake that fails (a bad message, a DH giving
 * the all-zero output) is dead: every later call throws `HandshakeError`, and its secrets are
 * wiped. Copies are taken of every key handed in, so wiping never touches the caller's buffers.
 */
import {
  AEAD_KEY_BYTES,
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  DH_BYTES,
  HASH_BYTES,
  aeadOpen,
  aeadSeal,
  blake2b,
  dhGenerate,
  dhInto,
  hkdf,
  wipe,
} from './crypto.js'
import { AuthenticationError, HandshakeError, MalformedPacketError, SessionExpiredError } from './errors.js'

export type NoisePatternName = 'XX' | 'IK' | string

/** The suite suffix of every protocol name this module speaks (Noise spec section 8). */
export const NOISE_SUITE = '25519_ChaChaPoly_BLAKE2b'
export const PROTOCOL_XX = 'Noise_XX_25519_ChaChaPoly_BLAKE2b'
export const PROTOCOL_IK = 'Noise_IK_25519_ChaChaPoly_BLAKE2b'

/** Largest Noise message, handshake or transport, bytes (Noise spec section 3). */
export const NOISE_MAX_MESSAGE_BYTES = 65535
/** DHLEN for 25519, bytes (Noise spec section 12.1). */
const DHLEN = DH_BYTES
/** HASHLEN for BLAKE2b, bytes (Noise spec section 12.3); BLOCKLEN 128 lives in crypto.ts's HMAC. */
const HASHLEN = HASH_BYTES
/** Largest nonce this implementation uses: JS numbers are exact up to 2^53 - 1, far below 2^64 - 1. */
const MAX_NONCE = Number.MAX_SAFE_INTEGER

// ---------------------------------------------------------------------------------------------
// Patterns

type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss'
type PreToken = 'e' | 's'

interface HandshakePattern {
  /** Pre-message of the initiator (`-> ...` before `...`), then of the responder (`<- ...`). */
  readonly preInitiator: readonly PreToken[]
  readonly preResponder: readonly PreToken[]
  /** Messages in order; even indexes are sent by the initiator, odd ones by the responder. */
  readonly messages: readonly (readonly Token[])[]
}

function p(preInitiator: string, preResponder: string, ...messages: string[]): HandshakePattern {
  const split = (s: string): string[] => (s === '' ? [] : s.split(',').map((x) => x.trim()))
  return {
    preInitiator: split(preInitiator) as PreToken[],
    preResponder: split(preResponder) as PreToken[],
    messages: messages.map((m) => split(m) as Token[]),
  }
}

/**
 * Handshake patterns by name (Noise spec sections 7.4, 7.5 and 7.7 / 18). Arguments: initiator
 * pre-message, responder pre-message, then each message's tokens.
 */
const PATTERNS: Readonly<Record<string, HandshakePattern>> = {
  // One-way (7.4)
  N: p('', 's', 'e, es'),
  K: p('s', 's', 'e, es, ss'),
  X: p('', 's', 'e, es, s, ss'),
  // Interactive, fundamental (7.5)
  NN: p('', '', 'e', 'e, ee'),
  NK: p('', 's', 'e, es', 'e, ee'),
  NX: p('', '', 'e', 'e, ee, s, es'),
  KN: p('s', '', 'e', 'e, ee, se'),
  KK: p('s', 's', 'e, es, ss', 'e, ee, se'),
  KX: p('s', '', 'e', 'e, ee, se, s, es'),
  XN: p('', '', 'e', 'e, ee', 's, se'),
  XK: p('', 's', 'e, es', 'e, ee', 's, se'),
  XX: p('', '', 'e', 'e, ee, s, es', 's, se'),
  IN: p('', '', 'e, s', 'e, ee, se'),
  IK: p('', 's', 'e, es, s, ss', 'e, ee, se'),
  IX: p('', '', 'e, s', 'e, ee, se, s, es'),
  // Interactive, deferred (7.7)
  NK1: p('', 's', 'e', 'e, ee, es'),
  NX1: p('', '', 'e', 'e, ee, s', 'es'),
  X1N: p('', '', 'e', 'e, ee', 's', 'se'),
  X1K: p('', 's', 'e, es', 'e, ee', 's', 'se'),
  XK1: p('', 's', 'e', 'e, ee, es', 's, se'),
  X1K1: p('', 's', 'e', 'e, ee, es', 's', 'se'),
  X1X: p('', '', 'e', 'e, ee, s, es', 's', 'se'),
  XX1: p('', '', 'e', 'e, ee, s', 'es, s, se'),
  X1X1: p('', '', 'e', 'e, ee, s', 'es, s', 'se'),
  K1N: p('s', '', 'e', 'e, ee', 'se'),
  K1K: p('s', 's', 'e, es', 'e, ee', 'se'),
  KK1: p('s', 's', 'e', 'e, ee, se, es'),
  K1K1: p('s', 's', 'e', 'e, ee, es', 'se'),
  K1X: p('s', '', 'e', 'e, ee, s, es', 'se'),
  KX1: p('s', '', 'e', 'e, ee, se, s', 'es'),
  K1X1: p('s', '', 'e', 'e, ee, s', 'se, es'),
  I1N: p('', '', 'e, s', 'e, ee', 'se'),
  I1K: p('', 's', 'e, es, s', 'e, ee', 'se'),
  IK1: p('', 's', 'e, s', 'e, ee, se, es'),
  I1K1: p('', 's', 'e, s', 'e, ee, es', 'se'),
  I1X: p('', '', 'e, s', 'e, ee, s, es', 'se'),
  IX1: p('', '', 'e, s', 'e, ee, se, s', 'es'),
  I1X1: p('', '', 'e, s', 'e, ee, s', 'se, es'),
}

/** Names of the handshake patterns `HandshakeState` accepts. */
export const NOISE_PATTERNS: readonly string[] = Object.freeze(Object.keys(PATTERNS))

/** The full protocol name for a pattern name, e.g. `IK` -> `Noise_IK_25519_ChaChaPoly_BLAKE2b`. */
export function protocolNameFor(pattern: NoisePatternName): string {
  return `Noise_${pattern}_${NOISE_SUITE}`
}

/** Accepts `IK` or `Noise_IK_25519_ChaChaPoly_BLAKE2b`; returns the bare pattern name. */
function patternNameOf(pattern: string): string {
  const prefix = 'Noise_'
  const suffix = `_${NOISE_SUITE}`
  if (pattern.startsWith(prefix) && pattern.endsWith(suffix)) return pattern.slice(prefix.length, -suffix.length)
  return pattern
}

// ---------------------------------------------------------------------------------------------
// CipherState (Noise spec 5.1)

function nonceBytes(out: Buffer, n: number): Buffer {
  out.fill(0, 0, 4)
  out.writeUInt32LE(n % 0x1_0000_0000, 4)
  out.writeUInt32LE(Math.floor(n / 0x1_0000_0000), 8)
  return out
}

/** The nonce 2^64 - 1 that REKEY uses (Noise spec 4.2). */
const REKEY_NONCE = Buffer.concat([Buffer.alloc(4), Buffer.alloc(8, 0xff)])

/**
 * A key `k` (or none) and a 64-bit counter `n`. With no key, encryption and decryption pass the
 * bytes through unchanged. The counter is a JS number and stops at 2^53 - 1 (`SessionExpiredError`
 * beyond), which no session reaches before its rekey limits.
 */
export class CipherState {
  #k: Buffer | null = null
  #n = 0
  readonly #nonce = Buffer.alloc(AEAD_NONCE_BYTES)

  constructor(key?: Uint8Array) {
    if (key !== undefined) this.#initializeKey(key)
  }

  /** InitializeKey: copies `key` (32 bytes) and resets the counter. */
  #initializeKey(key: Uint8Array): void {
    if (!(key instanceof Uint8Array) || key.length !== AEAD_KEY_BYTES) throw new TypeError(`cipher key must be ${AEAD_KEY_BYTES} bytes`)
    if (this.#k === null) this.#k = Buffer.alloc(AEAD_KEY_BYTES)
    this.#k.set(key)
    this.#n = 0
  }

  hasKey(): boolean {
    return this.#k !== null
  }

  /** The counter n: the nonce the next encryption or decryption uses. */
  get nonce(): number {
    return this.#n
  }

  setNonce(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`nonce must be an integer in 0..2^53-1, got ${n}`)
    this.#n = n
  }

  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Buffer {
    if (this.#k === null) return Buffer.from(plaintext)
    if (this.#n >= MAX_NONCE) throw new SessionExpiredError('Noise cipher state nonce exhausted')
    const out = aeadSeal(plaintext, ad, nonceBytes(this.#nonce, this.#n), this.#k)
    this.#n++
    return out
  }

  /** Throws `AuthenticationError` when the tag does not verify; the counter then stays put. */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Buffer {
    if (this.#k === null) return Buffer.from(ciphertext)
    if (this.#n >= MAX_NONCE) throw new SessionExpiredError('Noise cipher state nonce exhausted')
    const out = aeadOpen(ciphertext, ad, nonceBytes(this.#nonce, this.#n), this.#k)
    if (out === null) throw new AuthenticationError('Noise message failed authentication')
    this.#n++
    return out
  }

  /** REKEY (Noise spec 4.2 / 11.3): k = the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zeros). The counter is kept. */
  rekey(): void {
    const k = this.#requireKey()
    const next = aeadSeal(Buffer.alloc(AEAD_KEY_BYTES), null, REKEY_NONCE, k)
    k.set(next.subarray(0, AEAD_KEY_BYTES))
    wipe(next)
  }

  /** A copy of the raw 32-byte key, for the session layer, which uses explicit nonces. Throws `HandshakeError` if empty. */
  key(): Buffer {
    return Buffer.from(this.#requireKey())
  }

  /** Overwrites the key and empties this cipher state. */
  destroy(): void {
    if (this.#k !== null) wipe(this.#k)
    this.#k = null
    this.#n = 0
  }

  #requireKey(): Buffer {
    if (this.#k === null) throw new HandshakeError('Noise cipher state has no key')
    return this.#k
  }
}

// ---------------------------------------------------------------------------------------------
// SymmetricState (Noise spec 5.2)

/** Chaining key `ck`, handshake hash `h` and the CipherState they key. */
export class SymmetricState {
  #cs = new CipherState()
  readonly #ck: Buffer
  readonly #h: Buffer

  /** InitializeSymmetric(protocol_name). */
  constructor(protocolName: string) {
    const name = Buffer.from(protocolName, 'utf8')
    this.#h = Buffer.alloc(HASHLEN)
    if (name.length <= HASHLEN) this.#h.set(name)
    else blake2b(HASHLEN, [name]).copy(this.#h)
    this.#ck = Buffer.from(this.#h)
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = hkdf(this.#ck, ikm, 2) as [Buffer, Buffer]
    this.#ck.set(ck)
    this.#cs.destroy()
    this.#cs = new CipherState(tempK.subarray(0, AEAD_KEY_BYTES))
    wipe(ck)
    wipe(tempK)
  }

  /** The CipherState keyed by MixKey (empty until the first one). */
  get cs(): CipherState {
    return this.#cs
  }

  mixHash(data: Uint8Array): void {
    blake2b(HASHLEN, [this.#h, data]).copy(this.#h)
  }

  encryptAndHash(plaintext: Uint8Array): Buffer {
    const ct = this.#cs.encryptWithAd(this.#h, plaintext)
    this.mixHash(ct)
    return ct
  }

  decryptAndHash(ciphertext: Uint8Array): Buffer {
    const pt = this.#cs.decryptWithAd(this.#h, ciphertext)
    this.mixHash(ciphertext)
    return pt
  }

  /** Split(): the two transport cipher states, initiator-to-responder first. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = hkdf(this.#ck, Buffer.alloc(0), 2) as [Buffer, Buffer]
    const out: [CipherState, CipherState] = [new CipherState(k1.subarray(0, AEAD_KEY_BYTES)), new CipherState(k2.subarray(0, AEAD_KEY_BYTES))]
    wipe(k1)
    wipe(k2)
    return out
  }

  /** A copy of h. */
  handshakeHash(): Buffer {
    return Buffer.from(this.#h)
  }

  /** Overwrites ck and the cipher key (h is public to both parties and kept for channel binding). */
  destroy(): void {
    wipe(this.#ck)
    this.#cs.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// HandshakeState (Noise spec 5.3)

export interface HandshakeOptions {
  /** Pattern name without the `Noise_..._suite` parts (`XX`, `IK`, ...); the full protocol name is accepted too. */
  pattern: 'XX' | 'IK' | string
  initiator: boolean
  prologue?: Uint8Array
  /** Local static X25519 key pair. */
  s?: { publicKey: Uint8Array; secretKey: Uint8Array }
  /** Local ephemeral key pair (test vectors inject one); generated when the pattern needs it. */
  e?: { publicKey: Uint8Array; secretKey: Uint8Array }
  /** Remote static public key; required when the peer's static key is a pre-message (IK/NK/XK/KK initiator...). */
  rs?: Uint8Array
  re?: Uint8Array
}

interface KeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

function copyKeyPair(kp: { publicKey: Uint8Array; secretKey: Uint8Array }, what: string): KeyPair {
  if (!(kp.publicKey instanceof Uint8Array) || kp.publicKey.length !== DHLEN) throw new TypeError(`${what}.publicKey must be ${DHLEN} bytes`)
  if (!(kp.secretKey instanceof Uint8Array) || kp.secretKey.length !== DHLEN) throw new TypeError(`${what}.secretKey must be ${DHLEN} bytes`)
  return { publicKey: Buffer.from(kp.publicKey), secretKey: Buffer.from(kp.secretKey) }
}

function copyPublic(key: Uint8Array, what: string): Buffer {
  if (!(key instanceof Uint8Array) || key.length !== DHLEN) throw new TypeError(`${what} must be ${DHLEN} bytes`)
  return Buffer.from(key)
}

/**
 * A public, fixed scalar. X25519 clamps every scalar to a multiple of the cofactor 8, so
 * X25519(k, P) is all zero exactly when P has small order, whatever k is: one multiplication
 * tells whether a received public key is one of the low-order points.
 */
const PROBE_SCALAR = Buffer.alloc(DHLEN, 0x5a)

function isLowOrder(publicKey: Uint8Array): boolean {
  const out = Buffer.alloc(DHLEN)
  return !dhInto(out, PROBE_SCALAR, publicKey)
}

/** Whether `side` (true = initiator) sends token `tok` somewhere in `pattern`. */
function sends(pattern: HandshakePattern, initiator: boolean, tok: PreToken): boolean {
  if ((initiator ? pattern.preInitiator : pattern.preResponder).includes(tok)) return true
  return pattern.messages.some((m, i) => i % 2 === (initiator ? 0 : 1) && m.includes(tok))
}

/**
 * One side of a Noise handshake. Create it, alternate `writeMessage` / `readMessage` as
 * `isMyTurn()` says until `isComplete()`, then `split()` once for the transport cipher states.
 */
export class HandshakeState {
  readonly protocolName: string
  readonly initiator: boolean
  readonly #pattern: HandshakePattern
  readonly #ss: SymmetricState
  #s: KeyPair | null
  #e: KeyPair | null
  #rs: Buffer | null
  #re: Buffer | null
  #index = 0
  #failed = false
  #split = false

  constructor(opts: HandshakeOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('handshake options required')
    if (typeof opts.pattern !== 'string') throw new TypeError('pattern must be a string')
    const name = patternNameOf(opts.pattern)
    const pattern = Object.hasOwn(PATTERNS, name) ? PATTERNS[name] : undefined
    if (pattern === undefined) throw new TypeError(`unsupported Noise pattern ${JSON.stringify(opts.pattern)}`)
    if (typeof opts.initiator !== 'boolean') throw new TypeError('initiator must be a boolean')
    if (opts.prologue !== undefined && !(opts.prologue instanceof Uint8Array)) throw new TypeError('prologue must be a Uint8Array')
    this.#pattern = pattern
    this.initiator = opts.initiator
    this.protocolName = protocolNameFor(name)

    const me = this.initiator
    const needS = sends(pattern, me, 's')
    const preLocal = me ? pattern.preInitiator : pattern.preResponder
    const preRemote = me ? pattern.preResponder : pattern.preInitiator
    if (needS && opts.s === undefined) throw new TypeError(`${this.protocolName} needs the local static key pair (s) on the ${me ? 'initiator' : 'responder'}`)
    if (preLocal.includes('e') && opts.e === undefined) throw new TypeError(`${this.protocolName} needs the local ephemeral key pair (e) as a pre-message`)
    if (preRemote.includes('s') && opts.rs === undefined) throw new TypeError(`${this.protocolName} needs the remote static key (rs) on the ${me ? 'initiator' : 'responder'}`)
    if (preRemote.includes('e') && opts.re === undefined) throw new TypeError(`${this.protocolName} needs the remote ephemeral key (re) as a pre-message`)
    if (opts.rs !== undefined && !preRemote.includes('s')) throw new TypeError(`${this.protocolName}: the remote static key is transmitted in the handshake; rs must not be given`)
    if (opts.re !== undefined && !preRemote.includes('e')) throw new TypeError(`${this.protocolName}: the remote ephemeral key is transmitted in the handshake; re must not be given`)

    this.#s = opts.s !== undefined && needS ? copyKeyPair(opts.s, 's') : null
    this.#e = opts.e !== undefined ? copyKeyPair(opts.e, 'e') : null
    this.#rs = opts.rs !== undefined ? copyPublic(opts.rs, 'rs') : null
    this.#re = opts.re !== undefined ? copyPublic(opts.re, 're') : null
    if (this.#rs !== null && isLowOrder(this.#rs)) throw new TypeError('rs is a low-order X25519 point')
    if (this.#re !== null && isLowOrder(this.#re)) throw new TypeError('re is a low-order X25519 point')

    this.#ss = new SymmetricState(this.protocolName)
    this.#ss.mixHash(opts.prologue ?? Buffer.alloc(0))
    // Initiator's pre-message keys are hashed first (Noise spec 7.1).
    for (const tok of pattern.preInitiator) this.#ss.mixHash(this.#preKey(tok, me))
    for (const tok of pattern.preResponder) this.#ss.mixHash(this.#preKey(tok, !me))
  }

  #preKey(tok: PreToken, local: boolean): Buffer {
    const key = local ? (tok === 's' ? this.#s?.publicKey : this.#e?.publicKey) : tok === 's' ? this.#rs : this.#re
    if (key == null) throw new TypeError(`missing pre-message key ${tok}`)
    return key
  }

  /** Index of the next message to write or read, 0-based. */
  get messageIndex(): number {
    return this.#index
  }

  /** True when it is this side's turn to write. */
  isMyTurn(): boolean {
    return !this.#failed && !this.isComplete() && this.#index % 2 === (this.initiator ? 0 : 1)
  }

  isComplete(): boolean {
    return this.#index >= this.#pattern.messages.length
  }

  /**
   * Writes the next handshake message carrying `payload`. `HandshakeError` when it is not this
   * side's turn, the handshake is complete or failed; `TypeError` when the message would exceed
   * 65535 bytes (checked before any state changes).
   */
  writeMessage(payload: Uint8Array): Buffer {
    if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array')
    this.#checkUsable('write')
    if (!this.isMyTurn()) throw new HandshakeError(`${this.protocolName}: not our turn to write message ${this.#index}`)
    const tokens = this.#pattern.messages[this.#index]!
    const size = this.#messageSize(tokens, payload.length)
    if (size > NOISE_MAX_MESSAGE_BYTES) throw new TypeError(`Noise message would be ${size} bytes, over ${NOISE_MAX_MESSAGE_BYTES}`)
    try {
      const parts: Buffer[] = []
      for (const tok of tokens) {
        switch (tok) {
          case 'e': {
            if (this.#e === null) {
              const kp = dhGenerate()
              this.#e = { publicKey: kp.publicKey, secretKey: kp.secretKey }
            }
            parts.push(Buffer.from(this.#e.publicKey))
            this.#ss.mixHash(this.#e.publicKey)
            break
          }
          case 's':
            parts.push(this.#ss.encryptAndHash(this.#s!.publicKey))
            break
          default:
            this.#dhToken(tok)
        }
      }
      parts.push(this.#ss.encryptAndHash(payload))
      this.#index++
      if (this.isComplete()) this.#wipeKeys()
      return Buffer.concat(parts)
    } catch (err) {
      this.#fail()
      throw err
    }
  }

  /**
   * Reads the next handshake message and returns its payload. `MalformedPacketError` when it is
   * too short or over 65535 bytes, `AuthenticationError` when a decryption fails or a key is a
   * low-order point, `HandshakeError` when out of turn. Any failure kills the handshake.
   */
  readMessage(message: Uint8Array): Buffer {
    if (!(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array')
    this.#checkUsable('read')
    try {
      if (this.isMyTurn()) throw new HandshakeError(`${this.protocolName}: message ${this.#index} is ours to write, not to read`)
      if (message.length > NOISE_MAX_MESSAGE_BYTES) throw new MalformedPacketError(`Noise message of ${message.length} bytes, over ${NOISE_MAX_MESSAGE_BYTES}`)
      const tokens = this.#pattern.messages[this.#index]!
      const min = this.#messageSize(tokens, 0)
      if (message.length < min) throw new MalformedPacketError(`Noise handshake message ${this.#index} is ${message.length} bytes, needs at least ${min}`)
      let off = 0
      for (const tok of tokens) {
        switch (tok) {
          case 'e': {
            const re = Buffer.from(message.subarray(off, off + DHLEN))
            off += DHLEN
            if (this.#re !== null) throw new HandshakeError('remote ephemeral key already set')
            this.#ss.mixHash(re)
            if (isLowOrder(re)) throw new AuthenticationError('remote ephemeral key is a low-order point')
            this.#re = re
            break
          }
          case 's': {
            const len = DHLEN + (this.#ss.cs.hasKey() ? AEAD_TAG_BYTES : 0)
            const rs = this.#ss.decryptAndHash(message.subarray(off, off + len))
            off += len
            if (this.#rs !== null) throw new HandshakeError('remote static key already set')
            if (isLowOrder(rs)) throw new AuthenticationError('remote static key is a low-order point')
            this.#rs = rs
            break
          }
          default:
            this.#dhToken(tok)
        }
      }
      const payload = this.#ss.decryptAndHash(message.subarray(off))
      this.#index++
      if (this.isComplete()) this.#wipeKeys()
      return payload
    } catch (err) {
      this.#fail()
      throw err
    }
  }

  /**
   * After completion: [initiator→responder, responder→initiator] cipher states as Split() gives.
   * Callable once; the chaining key is wiped afterwards.
   */
  split(): [CipherState, CipherState] {
    this.#checkUsable('split')
    if (!this.isComplete()) throw new HandshakeError(`${this.protocolName}: handshake not complete (message ${this.#index} of ${this.#pattern.messages.length})`)
    if (this.#split) throw new HandshakeError(`${this.protocolName}: already split`)
    const out = this.#ss.split()
    this.#split = true
    this.#ss.destroy()
    return out
  }

  /** A copy of the handshake hash h (final once complete; usable for channel binding). */
  handshakeHash(): Buffer {
    return this.#ss.handshakeHash()
  }

  remoteStaticKey(): Buffer | null {
    return this.#rs === null ? null : Buffer.from(this.#rs)
  }

  remoteEphemeralKey(): Buffer | null {
    return this.#re === null ? null : Buffer.from(this.#re)
  }

  /** Bytes of a message of `tokens` carrying `payloadLen` bytes, given the current key state. */
  #messageSize(tokens: readonly Token[], payloadLen: number): number {
    let keyed = this.#ss.cs.hasKey()
    let size = 0
    for (const tok of tokens) {
      if (tok === 'e') size += DHLEN
      else if (tok === 's') size += DHLEN + (keyed ? AEAD_TAG_BYTES : 0)
      else keyed = true
    }
    return size + payloadLen + (keyed ? AEAD_TAG_BYTES : 0)
  }

  #dhToken(tok: 'ee' | 'es' | 'se' | 'ss'): void {
    // In es/se the first letter is the initiator's key, the second the responder's (Noise spec 7.1).
    const localFirst = this.initiator
    let local: KeyPair | null
    let remote: Buffer | null
    switch (tok) {
      case 'ee':
        local = this.#e
        remote = this.#re
        break
      case 'ss':
        local = this.#s
        remote = this.#rs
        break
      case 'es':
        local = localFirst ? this.#e : this.#s
        remote = localFirst ? this.#rs : this.#re
        break
      case 'se':
        local = localFirst ? this.#s : this.#e
        remote = localFirst ? this.#re : this.#rs
        break
    }
    if (local === null || remote === null) throw new HandshakeError(`${this.protocolName}: token ${tok} before its keys are known`)
    const shared = Buffer.alloc(DHLEN)
    try {
      if (!dhInto(shared, local.secretKey, remote)) throw new AuthenticationError(`Noise ${tok}: X25519 gave the all-zero output`)
      this.#ss.mixKey(shared)
    } finally {
      wipe(shared)
    }
  }

  #checkUsable(what: string): void {
    if (this.#failed) throw new HandshakeError(`${this.protocolName}: handshake failed earlier; cannot ${what}`)
    if (what !== 'split' && this.isComplete()) throw new HandshakeError(`${this.protocolName}: handshake already complete; cannot ${what}`)
  }

  #wipeKeys(): void {
    if (this.#e !== null) wipe(this.#e.secretKey)
    if (this.#s !== null) wipe(this.#s.secretKey)
  }

  #fail(): void {
    this.#failed = true
    this.#wipeKeys()
    this.#ss.destroy()
  }
}
