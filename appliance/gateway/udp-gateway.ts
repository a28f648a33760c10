/**
 * A UDP gateway: one node:dgram socket in front of a SessionManager. It is the smallest real
 * AI-TCP node: it answers handshakes, learns signed announces, opens Data frames into 'message'
 * events, and sends agent messages (running the handshake first when there is no session).
 *
 * What arrives on the socket, by first byte:
 * - 0x12 (Packet): Handshake → SessionManager.handleHandshake, the reply goes back to the sender;
 *   Announce → openAnnounce (signature verified) + SessionManager.learn. An announce with the
 *   AckRequested flag is answered with our own announce (rate-limited per address): that is how
 *   `send --to HOST:PORT` learns the node ID and static key of a peer it only has an address for.
 * - 0x11 (Data): SessionManager.open → a 'message' event.
 * - anything else, or anything that fails: counted by error code in stats().dropped, logged at
 *   debug, dropped. Nothing a remote sends can crash the gateway or get an explanation back.
 *
 * Peers are remembered by node ID → last UDP address, updated only by authenticated frames
 * (handshake messages that carry an identity, opened Data frames, announces newer than the last
 * one seen from that node), so a spoofed or replayed datagram cannot redirect a peer's traffic.
 */
import dgram from 'node:dgram'
import { EventEmitter } from 'node:events'
import { isIPv6 } from 'node:net'
import { performance } from 'node:perf_hooks'
import { randomInt } from 'node:crypto'
import { Identity, nodeIdToString, parseNodeId } from '../core/identity.js'
import { SessionManager } from '../core/sessions.js'
import { KairoError, TimeoutError, newTransactionId } from '../core/errors.js'
import { decodePacket, encodeSignedPacket } from '../core/wire/packet.js'
import { encodeAnnounceBody, verifyAnnouncePacket } from '../core/wire/announce.js'
import { decodeHandshake } from '../core/wire/handshake.js'
import {
  AGENT_TYPE_NAMES,
  DATA_OVERHEAD,
  DEFAULT_HOP_LIMIT,
  HandshakePattern,
  LinkKind,
  PacketFlags,
  PacketType,
  VK_DATA,
  VK_PACKET,
  packetTypeName,
  parseAgentType,
} from '../core/wire/constants.js'

export interface UdpAddress {
  host: string
  port: number
}

export interface GatewayLogger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

export const silentLogger: GatewayLogger = { debug() {}, info() {}, warn() {} }

export interface GatewayMessage {
  /** Node ID of the sender, 32 hex digits (authenticated by the session). */
  from: string
  /** Packet type name, e.g. TASK_REQUEST. */
  type: string
  /** The payload; a copy the listener owns. */
  payload: Buffer
  /** UDP address the frame came from. */
  address: UdpAddress
}

export interface GatewaySessionEvent {
  peer: string
  pattern: 'XX' | 'IK'
  initiator: boolean
  address: UdpAddress
}

export interface SendResult {
  /** Node ID of the peer. */
  peer: string
  /** The handshake this send ran, or null when it reused a session. */
  pattern: 'XX' | 'IK' | null
  /** True when the peer's node ID was learned from its announce (trust on first use). */
  discovered: boolean
  type: string
  payloadBytes: number
  /** Size of the Data frame on the wire (payload + header + tag). */
  frameBytes: number
  /** Every byte this send put on and took off the wire: announces, handshake, the Data frame. */
  wireBytesSent: number
  wireBytesReceived: number
  ms: number
}

export interface UdpGatewayOptions {
  identity: Identity
  host?: string
  port: number
  log?: GatewayLogger
  /** How long send() waits for a peer's announce / handshake answer, ms (default 5000). */
  timeoutMs?: number
  /** Links advertised in our announce. */
  linkName?: string
}

/** The agent message types send() accepts (kept here for the CLI and tests that import them from the gateway). */
export { AGENT_TYPE_NAMES, parseAgentType }

/** "127.0.0.1:47800", "[::1]:47800" → {host, port}. TypeError when it does not parse. */
export function parseAddress(text: string): UdpAddress {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text)
  const port = m ? Number(m[2]) : NaN
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`address must be HOST:PORT (port 1-65535), got ${JSON.stringify(text)}`)
  return { host: m[1]!, port }
}

export function formatAddress(a: UdpAddress): string {
  return isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}

function patternName(p: number): 'XX' | 'IK' {
  return p === HandshakePattern.IK ? 'IK' : 'XX'
}

interface HandshakeWait {
  promise: Promise<void>
  resolve: () => void
  reject: (err: Error) => void
  transactionIds: Set<string>
}

interface DiscoveryWait {
  promise: Promise<string>
  resolve: (nodeId: string) => void
  reject: (err: Error) => void
}

/** Answer at most one announce request per address per this many ms. */
const ANNOUNCE_REPLY_INTERVAL_MS = 1000
/** Retransmit a handshake opener / announce request after this long without an answer, doubling. */
const FIRST_RETRY_MS = 1000
/** Most addresses remembered for announce-reply rate limiting. */
const MAX_RATE_ENTRIES = 4096

export class UdpGateway extends EventEmitter {
  readonly identity: Identity
  readonly sessions: SessionManager
  private readonly host: string
  private readonly requestedPort: number
  private readonly log: GatewayLogger
  private readonly timeoutMs: number
  private readonly linkName: string
  private socket: dgram.Socket | null = null
  private sweepTimer: NodeJS.Timeout | null = null
  private bound: UdpAddress | null = null
  /** node ID hex → last authenticated address. */
  private readonly addresses = new Map<string, UdpAddress>()
  /** node ID hex → timestamp of the newest announce accepted from it. */
  private readonly announceTimestamps = new Map<string, number>()
  /** address → when we last answered an announce request from it (performance.now ms). */
  private readonly announceReplies = new Map<string, number>()
  private readonly handshakes = new Map<string, HandshakeWait>()
  private readonly discoveries = new Map<string, DiscoveryWait>()
  /** node ID hex → pattern of the handshake we started with it. */
  private readonly startedPatterns = new Map<string, 'XX' | 'IK'>()
  private counters = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0, announcesIn: 0, announcesOut: 0 }
  private readonly dropped: Record<string, number> = {}

  constructor(opts: UdpGatewayOptions) {
    super()
    this.identity = opts.identity
    this.host = opts.host ?? '127.0.0.1'
    this.requestedPort = opts.port
    this.log = opts.log ?? silentLogger
    this.timeoutMs = opts.timeoutMs ?? 5000
    this.linkName = opts.linkName ?? 'udp0'
    this.sessions = new SessionManager({ identity: opts.identity, handshakeTimeoutMs: this.timeoutMs })
  }

  get nodeIdHex(): string {
    return this.identity.nodeIdHex
  }

  /** The bound address (after start()). */
  get address(): UdpAddress {
    if (this.bound === null) throw new Error('gateway is not started')
    return this.bound
  }

  /** Binds the socket; resolves with the address actually bound (port 0 picks a free port). */
  async start(): Promise<UdpAddress> {
    if (this.socket !== null) return this.address
    const socket = dgram.createSocket({ type: isIPv6(this.host) ? 'udp6' : 'udp4' })
    this.socket = socket
    socket.on('message', (msg, rinfo) => this.receive(msg, { host: rinfo.address, port: rinfo.port }))
    socket.on('error', (err) => {
      // Bind errors reject start() below; later socket errors are logged, never thrown.
      this.count('ESOCKET')
      this.log.warn('udp socket error', { error: err.message })
    })
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.socket = null
        socket.close()
        reject(err)
      }
      socket.once('error', onError)
      socket.bind(this.requestedPort, this.host, () => {
        socket.off('error', onError)
        resolve()
      })
    })
    const a = socket.address()
    this.bound = { host: a.address, port: a.port }
    this.sweepTimer = setInterval(() => this.sweep(), 1000)
    this.sweepTimer.unref()
    this.log.debug('udp gateway listening', { address: formatAddress(this.bound), node_id: this.nodeIdHex })
    return this.bound
  }

  /** Closes the socket and fails every send() still waiting. Idempotent. */
  async stop(): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer)
    this.sweepTimer = null
    const socket = this.socket
    this.socket = null
    const err = new Error('gateway stopped')
    for (const w of this.handshakes.values()) w.reject(err)
    for (const w of this.discoveries.values()) w.reject(err)
    this.handshakes.clear()
    this.discoveries.clear()
    if (socket !== null) await new Promise<void>((resolve) => socket.close(() => resolve()))
  }

  stats() {
    return {
      node_id: this.nodeIdHex,
      address: this.bound ? formatAddress(this.bound) : null,
      ...this.counters,
      dropped: { ...this.dropped },
      peers: this.addresses.size,
      handshakes: { ...this.sessions.stats, pending: this.sessions.pendingHandshakes },
    }
  }

  /** Peers with a known address: node ID hex → address. */
  peers(): Map<string, UdpAddress> {
    return new Map(this.addresses)
  }

  /** Sends our signed announce to `address` (asking for theirs back when `requestReply`). */
  async announce(address: UdpAddress | string, requestReply = false): Promise<number> {
    const to = typeof address === 'string' ? parseAddress(address) : address
    const frame = this.announceFrame(requestReply)
    await this.transmit(frame, to)
    this.counters.announcesOut++
    return frame.length
  }

  /**
   * Sends one agent message. `address` may be null when the peer's address is known; `peer` may
   * be null when the address is given: the node ID is then the one last seen at that address, or
   * is learned from the peer's signed announce (asked for with an AckRequested announce of ours).
   * Runs a handshake when there is no usable session (IK when the peer's static key is known,
   * XX otherwise). Rejects with TimeoutError (carrying the handshake's transaction ID) when the
   * peer does not answer within the timeout.
   */
  async send(address: UdpAddress | string | null, peer: string | Uint8Array | null, typeName: string, payload: Uint8Array, opts: { timeoutMs?: number } = {}): Promise<SendResult> {
    const started = performance.now()
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs
    const deadline = started + timeoutMs
    const type = parseAgentType(typeName)
    if (this.socket === null) throw new Error('gateway is not started')
    const before = { out: this.counters.bytesOut, in: this.counters.bytesIn }
    let to = address === null ? null : typeof address === 'string' ? parseAddress(address) : address
    let peerHex = peer === null ? null : typeof peer === 'string' ? parseNodeId(peer).toString('hex') : nodeIdToString(peer)
    let discovered = false
    if (peerHex === null) {
      if (to === null) throw new TypeError('send() needs an address or a peer node ID')
      peerHex = this.nodeAt(to)
      if (peerHex === null) {
        peerHex = await this.discover(to, deadline, timeoutMs)
        discovered = true
      }
    }
    if (peerHex === this.nodeIdHex) throw new TypeError(`the peer at ${to ? formatAddress(to) : peerHex} is this node itself (same identity); use another identity`)
    if (to === null) {
      to = this.addresses.get(peerHex) ?? null
      if (to === null) throw new TypeError(`no known address for node ${peerHex}`)
    }
    const peerId = Buffer.from(peerHex, 'hex')
    let pattern: 'XX' | 'IK' | null = null
    const current = this.sessions.sessionFor(peerId)
    if (current === null) {
      pattern = await this.handshake(peerHex, to, deadline, timeoutMs)
    } else if (current.needsRekey() && !this.handshakes.has(peerHex)) {
      // The session still works: send on it and rekey in the background.
      this.handshake(peerHex, to, performance.now() + this.timeoutMs, this.timeoutMs).catch((err: Error) => this.log.debug('background rekey failed', { peer: peerHex, error: err.message }))
    }
    const frame = Buffer.from(this.sessions.seal(peerId, type, 0, payload, DEFAULT_HOP_LIMIT))
    await this.transmit(frame, to)
    this.counters.messagesOut++
    return {
      peer: peerHex,
      pattern,
      discovered,
      type: packetTypeName(type),
      payloadBytes: payload.length,
      frameBytes: frame.length,
      wireBytesSent: this.counters.bytesOut - before.out,
      wireBytesReceived: this.counters.bytesIn - before.in,
      ms: performance.now() - started,
    }
  }

  /** The node last authenticated at `address`, if any. */
  private nodeAt(address: UdpAddress): string | null {
    for (const [id, a] of this.addresses) if (a.host === address.host && a.port === address.port) return id
    return null
  }

  /** Asks `to` for its announce until one arrives or the deadline passes; resolves its node ID. */
  private discover(to: UdpAddress, deadline: number, timeoutMs: number): Promise<string> {
    const key = formatAddress(to)
    const existing = this.discoveries.get(key)
    if (existing) return existing.promise
    const transactionId = newTransactionId()
    let resolve!: (id: string) => void
    let reject!: (err: Error) => void
    const promise = new Promise<string>((res, rej) => {
      resolve = res
      reject = rej
    })
    const wait: DiscoveryWait = { promise, resolve, reject }
    this.discoveries.set(key, wait)
    const timers: NodeJS.Timeout[] = []
    const done = () => {
      for (const t of timers) clearTimeout(t)
      if (this.discoveries.get(key) === wait) this.discoveries.delete(key)
    }
    promise.then(done, done)
    const attempt = () => {
      this.announce(to, true).catch((err: Error) => this.log.debug('announce request failed', { to: key, error: err.message }))
    }
    attempt()
    for (let at = FIRST_RETRY_MS, step = FIRST_RETRY_MS; at < deadline - performance.now(); step *= 2, at += step) timers.push(setTimeout(attempt, at))
    timers.push(
      setTimeout(() => {
        reject(new TimeoutError(`no answer from ${key} within ${timeoutMs} ms: is a kairo-gw gateway listening there? (it did not answer our announce)`, { transaction_id: transactionId }))
      }, Math.max(0, deadline - performance.now())),
    )
    return promise
  }

  /** Runs a handshake with `peerHex` at `to`, retransmitting the opener, until the deadline. */
  private handshake(peerHex: string, to: UdpAddress, deadline: number, timeoutMs: number): Promise<'XX' | 'IK'> {
    const existing = this.handshakes.get(peerHex)
    if (existing) return existing.promise.then(() => this.startedPatterns.get(peerHex) ?? 'XX')
    let resolve!: () => void
    let reject!: (err: Error) => void
    const promise = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    const wait: HandshakeWait = { promise, resolve, reject, transactionIds: new Set() }
    this.handshakes.set(peerHex, wait)
    const timers: NodeJS.Timeout[] = []
    const done = () => {
      for (const t of timers) clearTimeout(t)
      if (this.handshakes.get(peerHex) === wait) this.handshakes.delete(peerHex)
    }
    promise.then(done, done)
    let firstTransaction: string | null = null
    const peerId = Buffer.from(peerHex, 'hex')
    const attempt = () => {
      try {
        const c = this.sessions.connect(peerId)
        firstTransaction ??= c.transactionId
        wait.transactionIds.add(c.transactionId)
        this.startedPatterns.set(peerHex, patternName(c.pattern))
        this.log.debug('handshake started', { peer: peerHex, to: formatAddress(to), pattern: patternName(c.pattern), transaction_id: c.transactionId })
        this.transmit(c.frame, to).catch((err: Error) => this.log.debug('handshake send failed', { to: formatAddress(to), error: err.message }))
      } catch (err) {
        reject(err as Error)
      }
    }
    attempt()
    for (let at = FIRST_RETRY_MS, step = FIRST_RETRY_MS; at < deadline - performance.now(); step *= 2, at += step) timers.push(setTimeout(attempt, at))
    const budget = Math.max(0, deadline - performance.now())
    timers.push(
      setTimeout(() => {
        reject(new TimeoutError(`no handshake answer from ${formatAddress(to)} (node ${peerHex}) within ${timeoutMs} ms`, { transaction_id: firstTransaction ?? newTransactionId() }))
      }, budget),
    )
    return promise.then(() => this.startedPatterns.get(peerHex) ?? 'XX')
  }

  private sweep(): void {
    for (const err of this.sessions.sweep()) this.log.debug('handshake timed out', { error: err.message, transaction_id: err.transaction_id })
    const now = performance.now()
    for (const [k, at] of this.announceReplies) if (now - at > ANNOUNCE_REPLY_INTERVAL_MS) this.announceReplies.delete(k)
  }

  private announceFrame(requestReply: boolean): Buffer {
    const body = encodeAnnounceBody({
      identityKey: this.identity.identityKey,
      staticKey: this.identity.static.publicKey,
      capabilities: 0,
      links: [{ kind: LinkKind.Udp, name: this.linkName, mtu: 1200, bitrate: 0 }],
      timestamp: Date.now(),
    })
    return encodeSignedPacket(this.identity, {
      type: PacketType.Announce,
      flags: requestReply ? PacketFlags.AckRequested : 0,
      hopLimit: 0,
      packetId: randomInt(0, 2 ** 32),
      payload: body,
    })
  }

  private transmit(frame: Buffer, to: UdpAddress): Promise<void> {
    const socket = this.socket
    if (socket === null) return Promise.reject(new Error('gateway is stopped'))
    return new Promise((resolve, reject) => {
      socket.send(frame, to.port, to.host, (err) => {
        if (err) {
          this.count('ESEND')
          reject(err)
          return
        }
        this.counters.framesOut++
        this.counters.bytesOut += frame.length
        resolve()
      })
    })
  }

  private count(code: string): void {
    this.dropped[code] = (this.dropped[code] ?? 0) + 1
  }

  private remember(peerHex: string, address: UdpAddress): void {
    const old = this.addresses.get(peerHex)
    if (old && old.host === address.host && old.port === address.port) return
    this.addresses.set(peerHex, { ...address })
    this.log.debug('peer address', { peer: peerHex, address: formatAddress(address) })
  }

  private receive(frame: Buffer, from: UdpAddress): void {
    this.counters.framesIn++
    this.counters.bytesIn += frame.length
    try {
      const first = frame[0]
      if (first === VK_PACKET) this.receivePacket(frame, from)
      else if (first === VK_DATA) this.receiveData(frame, from)
      else {
        this.count('EMALFORMED')
        this.log.debug('dropped frame', { from: formatAddress(from), bytes: frame.length, reason: first === undefined ? 'empty datagram' : `first byte 0x${first.toString(16).padStart(2, '0')} is not a Packet or Data frame` })
      }
    } catch (err) {
      const code = err instanceof KairoError ? err.code : 'EINTERNAL'
      this.count(code)
      const fields: Record<string, unknown> = { from: formatAddress(from), bytes: frame.length, code, error: (err as Error).message }
      if (err instanceof KairoError) fields.transaction_id = err.transaction_id
      this.log.debug('dropped frame', fields)
    }
  }

  private receivePacket(frame: Buffer, from: UdpAddress): void {
    const packet = decodePacket(frame)
    if (packet.type === PacketType.Handshake) {
      const peek = decodeHandshake(packet.payload)
      const outcome = this.sessions.handleHandshake(packet)
      if (outcome.reply !== null) void this.transmit(outcome.reply, from).catch((err: Error) => this.log.debug('handshake reply failed', { to: formatAddress(from), error: err.message }))
      if (outcome.session !== null && outcome.peer !== null) {
        const peerHex = nodeIdToString(outcome.peer)
        this.remember(peerHex, from)
        const initiator = outcome.session.initiator
        this.log.debug('session established', { peer: peerHex, pattern: patternName(peek.pattern), initiator })
        const ev: GatewaySessionEvent = { peer: peerHex, pattern: patternName(peek.pattern), initiator, address: { ...from } }
        this.emit('session', ev)
        // After the reply (XX message 2) is queued, so the first Data frame goes out behind it.
        this.handshakes.get(peerHex)?.resolve()
      }
      return
    }
    if (packet.type === PacketType.Announce) {
      const body = verifyAnnouncePacket(packet)
      const peerHex = nodeIdToString(packet.src)
      if (peerHex === this.nodeIdHex) return
      this.counters.announcesIn++
      const last = this.announceTimestamps.get(peerHex) ?? -1
      const fresh = body.timestamp > last
      this.sessions.learn(body)
      if (fresh) {
        this.announceTimestamps.set(peerHex, body.timestamp)
        this.remember(peerHex, from)
      }
      this.log.debug('announce', { peer: peerHex, from: formatAddress(from), fresh, reply_requested: (packet.flags & PacketFlags.AckRequested) !== 0 })
      this.emit('announce', { peer: peerHex, address: { ...from } })
      const key = formatAddress(from)
      this.discoveries.get(key)?.resolve(peerHex)
      if ((packet.flags & PacketFlags.AckRequested) !== 0) this.answerAnnounce(from)
      return
    }
    this.count('EUNSUPPORTED')
    this.log.debug('dropped packet', { from: formatAddress(from), type: packetTypeName(packet.type), reason: 'packet type not handled by the UDP gateway' })
  }

  private answerAnnounce(to: UdpAddress): void {
    const key = formatAddress(to)
    const now = performance.now()
    const last = this.announceReplies.get(key)
    if (last !== undefined && now - last < ANNOUNCE_REPLY_INTERVAL_MS) {
      this.count('ERATELIMIT')
      return
    }
    if (this.announceReplies.size >= MAX_RATE_ENTRIES) {
      this.count('ERATELIMIT')
      return
    }
    this.announceReplies.set(key, now)
    this.announce(to, false).catch((err: Error) => this.log.debug('announce reply failed', { to: key, error: err.message }))
  }

  private receiveData(frame: Buffer, from: UdpAddress): void {
    const { session, data } = this.sessions.open(frame)
    const peerHex = nodeIdToString(session.remoteNodeId)
    this.remember(peerHex, from)
    if (data.type === PacketType.Close || data.type === PacketType.Keepalive) {
      this.log.debug(packetTypeName(data.type).toLowerCase(), { peer: peerHex })
      return
    }
    this.counters.messagesIn++
    const msg: GatewayMessage = { from: peerHex, type: packetTypeName(data.type), payload: Buffer.from(data.payload), address: { ...from } }
    this.emit('message', msg)
  }
}

/** Overhead of one Data frame on the wire, bytes (header + tag). */
export const DATA_FRAME_OVERHEAD = DATA_OVERHEAD
