/**
 * A transport session: the keys that a Noise handshake produced, used to seal and open Data
 * frames (docs/protocol.md, "Data frames").
 *
 * Hot path: seal() and open() allocate nothing per packet once warm. They work in scratch
 * buffers shared by every session of the process (JavaScript runs them one at a time) and return
 * views into them, valid until the next seal() (or open()) on any session. Copy what you keep.
 *
 * Sequence numbers: 64-bit on the wire, counted as JS numbers (exact below 2^53, far beyond the
 * reject limit). The AEAD nonce is 4 zero bytes || LE64(seq), the Noise nonce layout. On the wire
 * the sequence field is XORed with 8 bytes of ChaCha20 keystream under the direction's
 * header-protection key, with the block counter and nonce taken from the packet's tag (the
 * "sample", as QUIC does with RFC 9001 section 5.4.4); the associated data is the header as it was
 * before protection, with the hop limit set to 0 so that relays can decrement it.
 */
import sodium from 'sodium-native'
import { blake2b, wipe } from './crypto.js'
import { AuthenticationError, MalformedPacketError, ReplayError, SessionExpiredError } from './errors.js'
import { NODE_ID_BYTES } from './identity.js'
import { ReplayWindow } from './replay.js'
import {
  DATA_HEADER_BYTES,
  DATA_OVERHEAD,
  DEFAULT_HOP_LIMIT,
  DH_DST,
  DH_FLAGS,
  DH_HOP,
  DH_SEQ,
  DH_SESSION,
  DH_TYPE,
  DH_VK,
  KNOWN_TYPES,
  MAX_DATA_PAYLOAD,
  MAX_FRAME_BYTES,
  TAG_BYTES,
  VK_DATA,
} from './wire/constants.js'

/** Domain separation for the header-protection key: BLAKE2b-256(key = traffic key, this). */
export const HP_KEY_CONTEXT = Buffer.from('kairo/aitcp/v1/hp')

/**
 * Rekey and reject limits. Times follow WireGuard (REKEY_AFTER_TIME 120 s, REJECT_AFTER_TIME
 * 180 s); message counts are lower than WireGuard's 2^60 / 2^64 because counters are JS numbers,
 * and still unreachable in practice (2^48 packets at 10 000 packets/s is 890 years).
 */
export interface SessionLimits {
  /** Ask for a new handshake after sending this many messages. */
  rekeyAfterMessages: number
  /** Refuse to send or receive at or beyond this sequence number. */
  rejectAfterMessages: number
  /** Ask for a new handshake when the session is this old, ms. */
  rekeyAfterMs: number
  /** The session expires when this old, ms: nothing is sealed or opened after. */
  rejectAfterMs: number
  /** Anti-replay window, packets (at least 2048, a multiple of 32). */
  replayWindow: number
}

export const DEFAULT_LIMITS: Readonly<SessionLimits> = Object.freeze({
  rekeyAfterMessages: 2 ** 48,
  rejectAfterMessages: 2 ** 52,
  rekeyAfterMs: 120_000,
  rejectAfterMs: 180_000,
  replayWindow: 8192,
})

/** Limits suited to LoRa, where a handshake costs seconds of airtime: rekey hourly. */
export const LORA_LIMITS: Readonly<SessionLimits> = Object.freeze({
  ...DEFAULT_LIMITS,
  rekeyAfterMs: 3_600_000,
  rejectAfterMs: 5_400_000,
})

export interface SessionInit {
  /** Our session index: peers put it in the Data frames they send us. */
  localIndex: number
  /** The peer's session index: we put it in the Data frames we send. */
  remoteIndex: number
  /** Traffic key for what we send (32 bytes); copied, the caller may wipe its own. */
  sendKey: Uint8Array
  /** Traffic key for what we receive (32 bytes). */
  recvKey: Uint8Array
  localNodeId: Uint8Array
  remoteNodeId: Uint8Array
  /** True on the side that started the handshake. */
  initiator: boolean
  /** Clock in ms (monotonic is best). */
  now?: () => number
  limits?: Partial<SessionLimits>
}

/** What open() returns; the object and its payload view are reused by the next open(). */
export interface OpenedData {
  type: number
  flags: number
  hopLimit: number
  seq: number
  payload: Buffer
}

/** Scratch memory shared by all sessions: one frame in each direction, and views cached by length. */
class Scratch {
  readonly tx = Buffer.allocUnsafeSlow(MAX_FRAME_BYTES)
  readonly rx = Buffer.allocUnsafeSlow(MAX_FRAME_BYTES)
  readonly txAd = this.tx.subarray(0, DATA_HEADER_BYTES)
  readonly rxAd = this.rx.subarray(0, DATA_HEADER_BYTES)
  readonly txSeq = this.tx.subarray(DH_SEQ, DH_SEQ + 8)
  readonly rxSeq = this.rx.subarray(DH_SEQ, DH_SEQ + 8)
  readonly nonce = Buffer.alloc(12)
  private readonly views: Buffer[][] = [[], [], [], [], [], []]

  /** Cached view of `buf` at [start, start + len), one per (slot, payload length `key`). */
  private view(slot: number, key: number, buf: Buffer, start: number, len: number): Buffer {
    const cache = this.views[slot]!
    let v = cache[key]
    if (v === undefined) {
      v = buf.subarray(start, start + len)
      cache[key] = v
    }
    return v
  }
  /** The last 12 bytes of the tag of a `len`-byte payload in `tx` (slot 0) or `rx` (slot 5). */
  hpNonce(rx: boolean, len: number): Buffer {
    return this.view(rx ? 5 : 0, len, rx ? this.rx : this.tx, DATA_HEADER_BYTES + len + 4, 12)
  }
  txCipher(len: number): Buffer {
    return this.view(1, len, this.tx, DATA_HEADER_BYTES, len + TAG_BYTES)
  }
  txFrame(len: number): Buffer {
    return this.view(2, len, this.tx, 0, len + DATA_OVERHEAD)
  }
  rxCipher(len: number): Buffer {
    return this.view(3, len, this.rx, DATA_HEADER_BYTES, len + TAG_BYTES)
  }
  rxPlain(len: number): Buffer {
    return this.view(4, len, this.rx, DATA_HEADER_BYTES, len)
  }
}

const scratch = new Scratch()

function writeSeq(buf: Buffer, offset: number, seq: number): void {
  buf.writeUInt32LE(seq % 0x1_0000_0000, offset)
  buf.writeUInt32LE(Math.floor(seq / 0x1_0000_0000), offset + 4)
}

/**
 * XORs the 8-byte sequence field of the frame in `tx` or `rx` (payload `len` bytes) with the mask
 * derived from its tag: ChaCha20 keystream under `hpKey`, block counter = LE32(tag[0..4]),
 * nonce = tag[4..16].
 */
function protectSeq(rx: boolean, len: number, hpKey: Buffer): void {
  const buf = rx ? scratch.rx : scratch.tx
  const field = rx ? scratch.rxSeq : scratch.txSeq
  sodium.crypto_stream_chacha20_ietf_xor_ic(field, field, scratch.hpNonce(rx, len), buf.readUInt32LE(DATA_HEADER_BYTES + len), hpKey)
}

export class Session {
  readonly localIndex: number
  readonly remoteIndex: number
  readonly localNodeId: Buffer
  readonly remoteNodeId: Buffer
  readonly initiator: boolean
  readonly createdAt: number
  readonly limits: Readonly<SessionLimits>
  private readonly sendKey: Buffer
  private readonly recvKey: Buffer
  private readonly sendHp: Buffer
  private readonly recvHp: Buffer
  private readonly replay: ReplayWindow
  private readonly now: () => number
  private sendCounter = 0
  /** createdAt + rejectAfterMs. */
  private readonly expiresAt: number
  /** vk, (type), (flags), hop 0, remote session index, dst: the constant part of our headers. */
  private readonly headerTemplate = Buffer.alloc(DATA_HEADER_BYTES)
  private closed = false
  private readonly result: OpenedData = { type: 0, flags: 0, hopLimit: 0, seq: 0, payload: scratch.rxPlain(0) }
  /** Last time a packet was opened, ms (createdAt until then). */
  lastReceivedAt: number
  /** Last time a packet was sealed, ms (createdAt until then). */
  lastSentAt: number
  readonly stats = { sealed: 0, opened: 0, authFailures: 0, replays: 0, malformed: 0 }

  constructor(init: SessionInit) {
    for (const [k, v] of [['sendKey', init.sendKey], ['recvKey', init.recvKey]] as const) {
      if (v.length !== 32) throw new TypeError(`${k} must be 32 bytes, got ${v.length}`)
    }
    if (init.remoteNodeId.length !== NODE_ID_BYTES || init.localNodeId.length !== NODE_ID_BYTES) throw new TypeError('node IDs must be 16 bytes')
    this.localIndex = init.localIndex >>> 0
    this.remoteIndex = init.remoteIndex >>> 0
    this.localNodeId = Buffer.from(init.localNodeId)
    this.remoteNodeId = Buffer.from(init.remoteNodeId)
    this.initiator = init.initiator
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...init.limits })
    this.now = init.now ?? (() => performance.now())
    // One guarded allocation (sodium_malloc maps guard pages: costly) for all four keys.
    const keys = sodium.sodium_malloc(128)
    this.sendKey = keys.subarray(0, 32)
    this.recvKey = keys.subarray(32, 64)
    this.sendHp = keys.subarray(64, 96)
    this.recvHp = keys.subarray(96, 128)
    this.sendKey.set(init.sendKey)
    this.recvKey.set(init.recvKey)
    this.sendHp.set(blake2b(32, [HP_KEY_CONTEXT], this.sendKey))
    this.recvHp.set(blake2b(32, [HP_KEY_CONTEXT], this.recvKey))
    this.replay = new ReplayWindow(this.limits.replayWindow)
    this.createdAt = this.now()
    this.expiresAt = this.createdAt + this.limits.rejectAfterMs
    this.headerTemplate[DH_VK] = VK_DATA
    this.headerTemplate.writeUInt32LE(this.remoteIndex, DH_SESSION)
    this.remoteNodeId.copy(this.headerTemplate, DH_DST)
    this.lastReceivedAt = this.createdAt
    this.lastSentAt = this.createdAt
  }

  /** Messages sealed so far (the next sequence number). */
  get sent(): number {
    return this.sendCounter
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** True once the session is past a reject limit or closed: it can neither seal nor open. */
  isExpired(now = this.now()): boolean {
    return this.closed || now - this.createdAt >= this.limits.rejectAfterMs || this.sendCounter >= this.limits.rejectAfterMessages
  }

  /** True when a new handshake should be started (the session still works until it expires). */
  needsRekey(now = this.now()): boolean {
    return now - this.createdAt >= this.limits.rekeyAfterMs || this.sendCounter >= this.limits.rekeyAfterMessages
  }

  /**
   * Seals `payload` into a Data frame addressed to the peer and returns a view of it, valid until
   * the next seal() in this process. Throws SessionExpiredError past the reject limits.
   */
  seal(type: number, flags: number, payload: Uint8Array, hopLimit = DEFAULT_HOP_LIMIT): Buffer {
    const len = payload.length
    if (len > MAX_DATA_PAYLOAD) throw new TypeError(`payload of ${len} bytes exceeds the ${MAX_DATA_PAYLOAD}-byte limit of a Data frame`)
    const now = this.now()
    const seq = this.sendCounter
    if (now >= this.expiresAt || seq >= this.limits.rejectAfterMessages || this.closed) {
      throw new SessionExpiredError(this.closed ? 'session is closed' : `session ${this.localIndex.toString(16)} expired; a new handshake is needed`)
    }
    this.sendCounter = seq + 1
    const tx = scratch.tx
    this.headerTemplate.copy(tx, 0, 0, DH_SEQ)
    tx[DH_TYPE] = type
    tx[DH_FLAGS] = flags
    const lo = seq % 0x1_0000_0000
    const hi = (seq - lo) / 0x1_0000_0000
    tx.writeUInt32LE(lo, DH_SEQ)
    tx.writeUInt32LE(hi, DH_SEQ + 4)
    const nonce = scratch.nonce
    nonce.writeUInt32LE(lo, 4)
    nonce.writeUInt32LE(hi, 8)
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(scratch.txCipher(len), payload, scratch.txAd, null, nonce, this.sendKey)
    protectSeq(false, len, this.sendHp)
    tx[DH_HOP] = hopLimit
    this.lastSentAt = now
    this.stats.sealed++
    return scratch.txFrame(len)
  }

  /** seal(), returning a copy the caller owns. */
  sealCopy(type: number, flags: number, payload: Uint8Array, hopLimit = DEFAULT_HOP_LIMIT): Buffer {
    return Buffer.from(this.seal(type, flags, payload, hopLimit))
  }

  /**
   * Opens a Data frame addressed to this session. Checks, in order and before any state changes:
   * shape, expiry, sequence number in the replay window, tag. Only an authentic, fresh packet
   * moves the replay window. The returned object is reused by the next open() in this process.
   */
  open(frame: Uint8Array): OpenedData {
    const flen = frame.length
    if (flen < DATA_OVERHEAD || flen > MAX_FRAME_BYTES) {
      this.stats.malformed++
      throw new MalformedPacketError(`Data frame of ${flen} bytes is outside ${DATA_OVERHEAD}..${MAX_FRAME_BYTES}`, { field: 'length' })
    }
    if (frame[DH_VK] !== VK_DATA) {
      this.stats.malformed++
      throw new MalformedPacketError(`first byte 0x${frame[DH_VK]!.toString(16)} is not a version-1 Data frame`, { field: 'vk' })
    }
    if (!KNOWN_TYPES.has(frame[DH_TYPE]!)) {
      this.stats.malformed++
      throw new MalformedPacketError(`Data frame type 0x${frame[DH_TYPE]!.toString(16)} is not a known packet type`, { field: 'type' })
    }
    const now = this.now()
    if (now >= this.expiresAt || this.closed) throw new SessionExpiredError(`session ${this.localIndex.toString(16)} expired`)
    const rx = scratch.rx
    rx.set(frame, 0)
    if (rx.readUInt32LE(DH_SESSION) !== this.localIndex) {
      this.stats.malformed++
      throw new MalformedPacketError('Data frame is for another session index', { field: 'session' })
    }
    const plen = flen - DATA_OVERHEAD
    protectSeq(true, plen, this.recvHp)
    const hi = rx.readUInt32LE(DH_SEQ + 4)
    const seq = hi * 0x1_0000_0000 + rx.readUInt32LE(DH_SEQ)
    if (hi >= 0x20_0000 || seq >= this.limits.rejectAfterMessages) {
      this.stats.authFailures++
      throw new AuthenticationError('packet does not authenticate')
    }
    if (!this.replay.check(seq)) {
      this.stats.replays++
      throw new ReplayError(`sequence number ${seq} was already received or is older than the replay window`)
    }
    const hopLimit = rx[DH_HOP]!
    rx[DH_HOP] = 0
    writeSeq(scratch.nonce, 4, seq)
    const plain = scratch.rxPlain(plen)
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(plain, null, scratch.rxCipher(plen), scratch.rxAd, scratch.nonce, this.recvKey)
    } catch {
      this.stats.authFailures++
      throw new AuthenticationError('packet does not authenticate')
    }
    this.replay.update(seq)
    this.lastReceivedAt = now
    this.stats.opened++
    const r = this.result
    r.type = rx[DH_TYPE]!
    r.flags = rx[DH_FLAGS]!
    r.hopLimit = hopLimit
    r.seq = seq
    r.payload = plain
    return r
  }

  /** Ends the session now and wipes its keys. Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const k of [this.sendKey, this.recvKey, this.sendHp, this.recvHp]) wipe(k)
  }
}
