/**
 * The session manager: Noise handshakes framed as AI-TCP Packets, the identity binding, and the
 * keypair rotation of each peer (current, previous, next), after WireGuard.
 *
 * It does no I/O. `connect()` and `handleHandshake()` return frames for the caller to send;
 * `seal()` and `open()` route Data frames to the right Session. The clock and the random source
 * are injected.
 *
 * Rules (docs/protocol.md, "Sessions"):
 * - IK when the peer's identity and static keys are known (from a verified announce, or kept
 *   from an earlier session: that is how a session resumes after a link drop), XX otherwise.
 * - Every message that carries a static key carries a HandshakePayload binding it to an Ed25519
 *   identity whose node ID must equal the Packet's src; an IK first message must be newer than
 *   the last one accepted from that peer (replayed handshakes change nothing).
 * - Nothing changes before a message authenticates, except the bounded pending state that an XX
 *   first message (which cannot be authenticated) creates.
 * - The side that writes the last handshake message keeps the new session as `next` until a
 *   packet arrives on it; the side that reads the last message makes it current at once.
 */
import { randomFill } from './crypto.js'
import { AuthenticationError, HandshakeError, MalformedPacketError, ResourceLimitError, SessionExpiredError, TimeoutError, ConnectionLostError, newTransactionId } from './errors.js'
import { Identity, nodeIdFromPublicKey, nodeIdToString, verifyStaticBinding } from './identity.js'
import { HandshakeState } from './noise.js'
import { Session, type OpenedData, type SessionLimits } from './session.js'
import { DEFAULT_HOP_LIMIT, DH_SESSION, HandshakePattern, PacketType } from './wire/constants.js'
import { checkDataFrame } from './wire/data.js'
import { decodeHandshake, decodeHandshakePayload, encodeHandshake, encodeHandshakePayload } from './wire/handshake.js'
import { encodePacket, type PacketFrame } from './wire/packet.js'
import type { AnnounceBody } from './wire/announce.js'

/** Noise prologue of every AI-TCP v1 handshake. */
export const PROLOGUE = Buffer.from('kairo/aitcp/v1')

export interface PeerRecord {
  nodeId: Buffer
  identityKey: Buffer | null
  staticKey: Buffer | null
  /** Newest IK first-message timestamp accepted from this peer, ms since the epoch. */
  lastHandshakeTimestamp: number
  current: Session | null
  previous: Session | null
  next: Session | null
}

interface Pending {
  localIndex: number
  peer: Buffer | null
  hs: HandshakeState
  pattern: HandshakePattern
  initiator: boolean
  startedAt: number
  transactionId: string
}

export interface HandshakeOutcome {
  /** A Packet frame to send back to the peer, if any. */
  reply: Buffer | null
  /** The session this message established, if any. */
  session: Session | null
  /** Node ID of the peer, once known. */
  peer: Buffer | null
}

export interface SessionManagerOptions {
  identity: Identity
  /** Monotonic clock, ms. */
  now?: () => number
  /** Wall clock, ms since the Unix epoch (handshake timestamps). */
  wallClock?: () => number
  random?: (buf: Uint8Array) => void
  limits?: Partial<SessionLimits>
  /** How long a handshake may wait for its answer, ms. */
  handshakeTimeoutMs?: number
  /** Most handshakes in progress at once (bounds what unauthenticated XX openers can hold). */
  maxPending?: number
  hopLimit?: number
  /** Source of ephemeral X25519 key pairs (default: fresh random ones); fixed for test vectors. */
  ephemeral?: () => { publicKey: Uint8Array; secretKey: Uint8Array }
}

export class SessionManager {
  readonly identity: Identity
  private readonly now: () => number
  private readonly wallClock: () => number
  private readonly random: (buf: Uint8Array) => void
  private readonly limits: Partial<SessionLimits>
  private readonly handshakeTimeoutMs: number
  private readonly maxPending: number
  private readonly hopLimit: number
  private readonly ephemeral: (() => { publicKey: Uint8Array; secretKey: Uint8Array }) | undefined
  private readonly peers = new Map<string, PeerRecord>()
  private readonly byIndex = new Map<number, Session>()
  private readonly pending = new Map<number, Pending>()
  private readonly indexBuf = Buffer.alloc(4)
  private lastTimestamp = 0
  readonly stats = { handshakesStarted: 0, handshakesCompleted: 0, handshakesFailed: 0, handshakesReplayed: 0, handshakesTimedOut: 0 }

  constructor(opts: SessionManagerOptions) {
    this.identity = opts.identity
    this.now = opts.now ?? (() => performance.now())
    this.wallClock = opts.wallClock ?? Date.now
    this.random = opts.random ?? randomFill
    this.limits = opts.limits ?? {}
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000
    this.maxPending = opts.maxPending ?? 64
    this.hopLimit = opts.hopLimit ?? DEFAULT_HOP_LIMIT
    this.ephemeral = opts.ephemeral
  }

  private handshakeState(pattern: 'XX' | 'IK', initiator: boolean, rs?: Buffer): HandshakeState {
    return new HandshakeState({
      pattern,
      initiator,
      prologue: PROLOGUE,
      s: this.identity.static,
      ...(rs ? { rs } : {}),
      ...(this.ephemeral ? { e: this.ephemeral() } : {}),
    })
  }

  /** Records a peer's keys from a verified announce (see openAnnounce). */
  learn(body: AnnounceBody): PeerRecord {
    const rec = this.peer(nodeIdFromPublicKey(body.identityKey))
    if (rec.identityKey !== null && !rec.identityKey.equals(body.identityKey)) throw new AuthenticationError('announce identity key differs from the one on record')
    rec.identityKey = Buffer.from(body.identityKey)
    rec.staticKey = Buffer.from(body.staticKey)
    return rec
  }

  /** The record of a peer (created empty if unknown). */
  peer(nodeId: Uint8Array): PeerRecord {
    const key = nodeIdToString(nodeId)
    let rec = this.peers.get(key)
    if (rec === undefined) {
      rec = { nodeId: Buffer.from(nodeId), identityKey: null, staticKey: null, lastHandshakeTimestamp: 0, current: null, previous: null, next: null }
      this.peers.set(key, rec)
    }
    return rec
  }

  knownPeers(): PeerRecord[] {
    return [...this.peers.values()]
  }

  /**
   * Starts a handshake with `peer` and returns the Packet frame to send: IK when its keys are
   * known, XX otherwise. The handshake's transaction ID is on the returned object.
   */
  connect(peer: Uint8Array): { frame: Buffer; transactionId: string; pattern: HandshakePattern } {
    if (Buffer.from(peer).equals(this.identity.nodeId)) throw new TypeError('cannot open a session with ourselves')
    this.reapPending()
    if (this.pending.size >= this.maxPending) throw new ResourceLimitError(`${this.pending.size} handshakes already in progress`)
    const rec = this.peer(peer)
    const ik = rec.staticKey !== null && rec.identityKey !== null
    const pattern = ik ? HandshakePattern.IK : HandshakePattern.XX
    const hs = this.handshakeState(ik ? 'IK' : 'XX', true, ik ? rec.staticKey! : undefined)
    const localIndex = this.allocateIndex()
    const transactionId = newTransactionId()
    this.pending.set(localIndex, { localIndex, peer: rec.nodeId, hs, pattern, initiator: true, startedAt: this.now(), transactionId })
    const noise = hs.writeMessage(ik ? this.identityPayload() : Buffer.alloc(0))
    this.stats.handshakesStarted++
    return { frame: this.handshakePacket(rec.nodeId, { pattern, message: 0, senderIndex: localIndex, receiverIndex: 0, noise }), transactionId, pattern }
  }

  /**
   * Handles a decoded Packet of type Handshake addressed to this node. Throws
   * MalformedPacketError, AuthenticationError, HandshakeError or ResourceLimitError; none of them
   * is ever reported to the remote side.
   */
  handleHandshake(packet: PacketFrame): HandshakeOutcome {
    if (packet.type !== PacketType.Handshake) throw new MalformedPacketError('not a Handshake packet', { field: 'Packet.header.type' })
    if (packet.dst === null || !packet.dst.equals(this.identity.nodeId)) throw new MalformedPacketError('handshake is not addressed to this node', { field: 'Packet.dst' })
    const m = decodeHandshake(packet.payload)
    if (m.message === 0) return this.respond(packet, m.pattern, m.senderIndex, m.noise)
    const p = this.pending.get(m.receiverIndex)
    if (p === undefined || p.pattern !== m.pattern || p.hs.messageIndex !== m.message) throw new HandshakeError(`no handshake waits for message ${m.message} on index ${m.receiverIndex.toString(16)}`)
    if (p.peer !== null && !p.peer.equals(packet.src)) throw new HandshakeError('handshake answer comes from another node', { transaction_id: p.transactionId })
    if (this.now() - p.startedAt > this.handshakeTimeoutMs) {
      this.pending.delete(p.localIndex)
      this.stats.handshakesTimedOut++
      throw new TimeoutError('handshake answer arrived after the timeout', { transaction_id: p.transactionId })
    }
    let payload: Buffer
    try {
      payload = p.hs.readMessage(m.noise)
    } catch (err) {
      this.pending.delete(p.localIndex)
      this.stats.handshakesFailed++
      throw this.retag(err, p.transactionId)
    }
    try {
      return this.afterRead(p, m.senderIndex, packet.src, payload)
    } catch (err) {
      this.pending.delete(p.localIndex)
      this.pendingRemote.delete(p.localIndex)
      this.stats.handshakesFailed++
      throw err
    }
  }

  private afterRead(p: Pending, remoteIndex: number, src: Buffer, payload: Buffer): HandshakeOutcome {
    if (p.initiator && p.pattern === HandshakePattern.IK) {
      // IK message 1: the responder proved its static key; the handshake is complete.
      return { reply: null, session: this.finish(p, remoteIndex, src, false), peer: src }
    }
    if (p.initiator && p.pattern === HandshakePattern.XX) {
      // XX message 1: the responder's static key and its binding to the identity we asked for.
      const rec = this.adoptPeer(payload, p.hs.remoteStaticKey()!, src, p.transactionId)
      const noise = p.hs.writeMessage(this.identityPayload())
      const session = this.finish(p, remoteIndex, src, true)
      return { reply: this.handshakePacket(src, { pattern: p.pattern, message: 2, senderIndex: p.localIndex, receiverIndex: remoteIndex, noise }), session, peer: src }
    }
    // XX message 2 at the responder: the initiator's static key and identity.
    const rec = this.adoptPeer(payload, p.hs.remoteStaticKey()!, src, p.transactionId)
    p.peer = rec.nodeId
    return { reply: null, session: this.finish(p, this.pendingRemote.get(p.localIndex) ?? 0, src, false), peer: src }
  }

  /** Remote index learned from an XX first message, kept until the third. */
  private readonly pendingRemote = new Map<number, number>()

  private respond(packet: PacketFrame, pattern: HandshakePattern, remoteIndex: number, noise: Buffer): HandshakeOutcome {
    this.reapPending()
    if (pattern === HandshakePattern.IK) {
      const hs = this.handshakeState('IK', false)
      const payload = hs.readMessage(noise)
      const claim = decodeHandshakePayload(payload)
      const rec = this.peer(packet.src)
      if (claim.timestamp <= rec.lastHandshakeTimestamp) {
        this.stats.handshakesReplayed++
        throw new HandshakeError('handshake is not newer than the last one accepted from this peer (replay)')
      }
      this.adoptPeer(payload, hs.remoteStaticKey()!, packet.src)
      rec.lastHandshakeTimestamp = claim.timestamp
      const localIndex = this.allocateIndex()
      const reply = hs.writeMessage(encodeHandshakePayload({ identityKey: null, identitySig: null, timestamp: this.timestamp() }))
      const p: Pending = { localIndex, peer: rec.nodeId, hs, pattern, initiator: false, startedAt: this.now(), transactionId: newTransactionId() }
      const session = this.finish(p, remoteIndex, packet.src, true)
      return { reply: this.handshakePacket(packet.src, { pattern, message: 1, senderIndex: localIndex, receiverIndex: remoteIndex, noise: reply }), session, peer: packet.src }
    }
    // XX message 0 carries only an ephemeral key: nothing to authenticate yet, so the state it
    // creates is bounded by maxPending and by the handshake timeout.
    if (this.pending.size >= this.maxPending) throw new ResourceLimitError(`${this.pending.size} handshakes already in progress; XX opener from ${nodeIdToString(packet.src)} refused`)
    const hs = this.handshakeState('XX', false)
    hs.readMessage(noise)
    const localIndex = this.allocateIndex()
    const reply = hs.writeMessage(this.identityPayload())
    this.pending.set(localIndex, { localIndex, peer: Buffer.from(packet.src), hs, pattern, initiator: false, startedAt: this.now(), transactionId: newTransactionId() })
    this.pendingRemote.set(localIndex, remoteIndex)
    return { reply: this.handshakePacket(packet.src, { pattern, message: 1, senderIndex: localIndex, receiverIndex: remoteIndex, noise: reply }), session: null, peer: null }
  }

  /** Turns a completed handshake into a Session and installs it in the peer's record. */
  private finish(p: Pending, remoteIndex: number, peer: Buffer, wroteLast: boolean): Session {
    this.pending.delete(p.localIndex)
    this.pendingRemote.delete(p.localIndex)
    const [c1, c2] = p.hs.split()
    const [send, recv] = p.initiator ? [c1, c2] : [c2, c1]
    const session = new Session({
      localIndex: p.localIndex,
      remoteIndex,
      sendKey: send.key(),
      recvKey: recv.key(),
      localNodeId: this.identity.nodeId,
      remoteNodeId: peer,
      initiator: p.initiator,
      now: this.now,
      limits: this.limits,
    })
    send.destroy()
    recv.destroy()
    const rec = this.peer(peer)
    if (wroteLast) {
      if (rec.next !== null) this.retire(rec.next)
      rec.next = session
    } else {
      this.promote(rec, session)
    }
    this.byIndex.set(session.localIndex, session)
    this.stats.handshakesCompleted++
    return session
  }

  private promote(rec: PeerRecord, session: Session): void {
    if (rec.next === session) rec.next = null
    if (rec.previous !== null) this.retire(rec.previous)
    rec.previous = rec.current
    rec.current = session
  }

  private retire(s: Session): void {
    this.byIndex.delete(s.localIndex)
    s.close()
  }

  /** The session Data frames to `peer` go out on: current, or the unconfirmed next one. */
  sessionFor(peer: Uint8Array): Session | null {
    const rec = this.peers.get(nodeIdToString(peer))
    if (rec === undefined) return null
    const now = this.now()
    for (const s of [rec.current, rec.next]) if (s !== null && !s.isExpired(now)) return s
    return null
  }

  /**
   * Seals a Data frame for `peer` (a view, valid until the next seal). Throws
   * ConnectionLostError when there is no usable session: call connect() and retry after it.
   */
  seal(peer: Uint8Array, type: number, flags: number, payload: Uint8Array, hopLimit = this.hopLimit): Buffer {
    const s = this.sessionFor(peer)
    if (s === null) throw new ConnectionLostError(`no session with ${nodeIdToString(peer)}; a handshake is needed`)
    return s.seal(type, flags, payload, hopLimit)
  }

  /** True when the session to `peer` should be replaced by a new handshake. */
  needsHandshake(peer: Uint8Array): boolean {
    const s = this.sessionFor(peer)
    return s === null || s.needsRekey()
  }

  /** Opens a Data frame addressed to this node. */
  open(frame: Buffer): { session: Session; data: OpenedData } {
    checkDataFrame(frame)
    const index = frame.readUInt32LE(DH_SESSION)
    const session = this.byIndex.get(index)
    if (session === undefined) throw new SessionExpiredError(`no session with index ${index.toString(16)}`)
    const data = session.open(frame)
    const rec = this.peers.get(nodeIdToString(session.remoteNodeId))
    if (rec !== undefined && rec.next === session) this.promote(rec, session)
    if (data.type === PacketType.Close) this.closeSession(session)
    return { session, data }
  }

  /** Closes the session to `peer` and returns the Close frame to send (sealed on it), if any. */
  close(peer: Uint8Array): Buffer | null {
    const s = this.sessionFor(peer)
    if (s === null) return null
    const frame = s.sealCopy(PacketType.Close, 0, Buffer.alloc(0), this.hopLimit)
    this.closeSession(s)
    return frame
  }

  private closeSession(s: Session): void {
    const rec = this.peers.get(nodeIdToString(s.remoteNodeId))
    if (rec !== undefined) {
      if (rec.current === s) rec.current = null
      if (rec.previous === s) rec.previous = null
      if (rec.next === s) rec.next = null
    }
    this.retire(s)
  }

  /**
   * Drops expired sessions and handshakes that waited too long; returns a TimeoutError (with the
   * handshake's transaction ID) for each handshake this node started that got no answer.
   */
  sweep(): TimeoutError[] {
    const now = this.now()
    for (const rec of this.peers.values()) {
      for (const slot of ['current', 'previous', 'next'] as const) {
        const s = rec[slot]
        if (s !== null && s.isExpired(now)) {
          this.retire(s)
          rec[slot] = null
        }
      }
    }
    return this.reapPending()
  }

  private reapPending(): TimeoutError[] {
    const now = this.now()
    const out: TimeoutError[] = []
    for (const p of this.pending.values()) {
      if (now - p.startedAt <= this.handshakeTimeoutMs) continue
      this.pending.delete(p.localIndex)
      this.pendingRemote.delete(p.localIndex)
      this.stats.handshakesTimedOut++
      if (p.initiator) out.push(new TimeoutError(`handshake with ${p.peer ? nodeIdToString(p.peer) : 'peer'} got no answer in ${this.handshakeTimeoutMs} ms`, { transaction_id: p.transactionId }))
    }
    return out
  }

  get pendingHandshakes(): number {
    return this.pending.size
  }

  /**
   * Checks that `payload` binds the Noise static key `rs` to an identity whose node ID is `src`
   * and that it is the identity on record for that node, then records the peer's keys.
   */
  private adoptPeer(payload: Buffer, rs: Buffer, src: Buffer, transaction_id?: string): PeerRecord {
    const opts = transaction_id === undefined ? {} : { transaction_id }
    let claim
    try {
      claim = decodeHandshakePayload(payload)
    } catch (err) {
      throw new AuthenticationError('handshake payload does not verify', { ...opts, cause: err })
    }
    const key = claim.identityKey
    if (key === null || claim.identitySig === null) throw new AuthenticationError('handshake payload has no identity binding', opts)
    if (!verifyStaticBinding(key, rs, claim.identitySig)) throw new AuthenticationError('identity does not sign this static key', opts)
    if (!nodeIdFromPublicKey(key).equals(src)) throw new AuthenticationError('identity key does not belong to the packet source', opts)
    const rec = this.peer(src)
    if (rec.identityKey !== null && !rec.identityKey.equals(key)) throw new AuthenticationError('peer presented a different identity key than the one on record', opts)
    rec.identityKey = Buffer.from(key)
    rec.staticKey = Buffer.from(rs)
    return rec
  }

  private identityPayload(): Buffer {
    return encodeHandshakePayload({ identityKey: this.identity.identityKey, identitySig: this.identity.staticBinding, timestamp: this.timestamp() })
  }

  /** Wall-clock ms, strictly increasing per process (two handshakes in one ms stay ordered). */
  private timestamp(): number {
    this.lastTimestamp = Math.max(this.wallClock(), this.lastTimestamp + 1)
    return this.lastTimestamp
  }

  private handshakePacket(dst: Buffer, m: Parameters<typeof encodeHandshake>[0]): Buffer {
    this.random(this.indexBuf)
    return encodePacket({ type: PacketType.Handshake, hopLimit: this.hopLimit, packetId: this.indexBuf.readUInt32LE(0), src: this.identity.nodeId, dst, payload: encodeHandshake(m) })
  }

  private allocateIndex(): number {
    for (;;) {
      this.random(this.indexBuf)
      const i = this.indexBuf.readUInt32LE(0)
      if (i !== 0 && !this.byIndex.has(i) && !this.pending.has(i)) return i
    }
  }

  private retag(err: unknown, transaction_id: string): unknown {
    if (err instanceof AuthenticationError) return new AuthenticationError(err.message, { transaction_id, cause: err })
    if (err instanceof MalformedPacketError) return new MalformedPacketError(err.message, { transaction_id, cause: err, ...(err.field ? { field: err.field } : {}) })
    return err
  }
}
