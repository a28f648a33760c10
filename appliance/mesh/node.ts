/**
 * The mesh node: one gateway's share of the AI-TCP mesh (docs/mesh.md). It owns the links, the
 * sessions, the route table and the store-and-forward queue, and does four things:
 *
 * 1. Announces. Every `announceIntervalMs` it floods its signed announce on every link. Each
 *    node that hears one verifies it before anything else, records the neighbour it came from
 *    (ETX from the announces it hears), offers the path to the route table with the cost the
 *    announce carries plus the cost of the hop it arrived on, and floods it on: once, after a
 *    random delay, skipped on a link where it already heard it from 3 others (managed flooding),
 *    again only if a later copy is clearly cheaper, and never past the hop limit.
 * 2. Relaying. A Data or unicast Packet frame for another node is forwarded without decrypting:
 *    what a relay checks is what it can check (shape, known type, hop limit, a route, its own
 *    duplicate filter, the link budget); it never opens the payload. Signed broadcasts are
 *    verified when the source's key is known, delivered, and flooded like announces.
 * 3. Delivery. A message a local sender hands to `send()` is accepted into the durable outbox
 *    first (the promise resolves only then), then sent end to end on a Noise session, with the
 *    message ID inside the encryption, and retransmitted (RTO from measured round trips, RFC 6298
 *    style, doubling, a new handshake after repeated silence) until the destination acknowledges
 *    it, or its TTL passes (then an `expired` event: nothing is dropped silently). The receiver
 *    stores it in its durable inbox before it acknowledges, and acknowledges a duplicate again
 *    without delivering it twice.
 * 4. Links. Each link is opened on its own and retried with backoff; a link that dies takes its
 *    routes with it and traffic fails over to the next best path.
 *
 * Nothing a remote sends can crash the node: every frame that fails a check is counted by reason
 * in stats().dropped and logged at debug.
 */
import { EventEmitter } from 'node:events'
import { randomBytes, randomInt } from 'node:crypto'
import type { Link, LinkState, Priority, ReceivedFrame } from '../../drivers/link.js'
import { Identity, nodeIdToString } from '../core/identity.js'
import type { OutboxMessage } from '../store/outbox.js'
import type { InboxMessage } from '../store/inbox.js'
import { SessionManager } from '../core/sessions.js'
import { ConnectionLostError, KairoError, MalformedPacketError, ResourceLimitError } from '../core/errors.js'
import { Reassembler, fragment } from '../core/fragment.js'
import { decodePacket, decrementPacketHop, encodeSignedPacket, reencodePacket, verifyPacketSignature, type PacketFrame } from '../core/wire/packet.js'
import { encodeAnnounceBody, verifyAnnouncePacket } from '../core/wire/announce.js'
import { checkDataFrame, dataFlags, dataIsFor, dataType, decrementDataHop } from '../core/wire/data.js'
import { AGENT_TYPES, DEFAULT_HOP_LIMIT, DH_DST, HandshakePattern, LinkKind, MAX_DATA_PAYLOAD, PacketFlags, PacketType, VK_DATA, VK_FRAGMENT, VK_PACKET, packetTypeName, parseAgentType } from '../core/wire/constants.js'
import { DuplicateFilter } from './dedup.js'
import { TokenBucket } from './budget.js'
import { EtxEstimator, addCost, hopCost } from './metric.js'
import { RouteTable, type RouteCandidate, type RouteChange } from './routes.js'
import type { PolicySubject, Trust, Verdict } from '../policy/engine.js'
import { HOP_HEADER_BYTES, VK_HOP, decodeHop, encodeHop, hintAddress, hintOf, parseHintAddress } from './hop.js'

export interface MeshLogger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

const silent: MeshLogger = { debug() {}, info() {}, warn() {} }

/** The messages of the durable outbox and inbox (appliance/store/), as the mesh sees them. */
export type MeshOutboxMessage = OutboxMessage
export type MeshInboxMessage = InboxMessage

/** What the mesh needs of the durable outbox (appliance/store/outbox.ts). */
export interface MeshOutbox {
  accept(m: { to: string; type: number; flags?: number; payload: Buffer; ttlMs?: number }): Promise<MeshOutboxMessage>
  pending(to?: string): MeshOutboxMessage[]
  get(id: string): MeshOutboxMessage | undefined
  attempted(id: string): void
  delivered(id: string): Promise<boolean>
  expire(): Promise<MeshOutboxMessage[]>
  stats(): object
}
/** What the mesh needs of the durable inbox (appliance/store/inbox.ts). */
export interface MeshInbox {
  accept(m: { id: string; from: string; type: number; payload: Buffer }): Promise<{ fresh: boolean; message: MeshInboxMessage }>
  list(since: number, limit: number): MeshInboxMessage[]
  stats(): object
}

export interface MeshLinkOptions {
  link: Link
  /** Bytes/s this gateway may spend relaying for others on the link; 0 (default) unlimited. */
  budgetBytesPerS?: number
  /** Put a hop header in front of every frame (links without addresses); default: LoRa links. */
  hopHeader?: boolean
}

export interface MeshNodeOptions {
  identity: Identity
  links: MeshLinkOptions[]
  outbox: MeshOutbox
  inbox: MeshInbox
  announceIntervalMs?: number
  hopLimit?: number
  log?: MeshLogger
  /** Monotonic clock, ms. */
  now?: () => number
  /** First retransmission timeout before any round trip was measured, ms (default 3000). */
  initialRtoMs?: number
  maxRtoMs?: number
  /** Messages in flight (sent, not yet acknowledged) per destination (default 8). */
  window?: number
  /** Flood jitter: a rebroadcast waits a random 0..floodJitterMs (default 40; LoRa links x10). */
  floodJitterMs?: number
  /** Handshake timeout, ms (default 10000). */
  handshakeTimeoutMs?: number
  /** What our announces say besides keys and links (read at every announce: the mesh IP can move). */
  announceInfo?: () => { uuid?: Buffer; meshIp?: number; name?: string }
  /**
   * Decides on a peer from its verified announce (the signature is checked first): false refuses
   * it, and its announce then changes nothing here (no neighbour, no route, not flooded on).
   */
  admit?: (peer: AnnouncedPeer) => boolean
  /** True for a node refused earlier: its handshakes are not answered and its messages not taken. */
  refused?: (nodeId: string) => boolean
  /**
   * The .klp-policy (appliance/policy): asked about every frame before it is forwarded, delivered
   * or flooded on, after what authenticates it (a session's AEAD, a signature) and after the
   * duplicate filter (a copy is not charged twice). A refusal drops the frame, counts
   * `policy_<violation>` and emits 'policy_refused' {subject, verdict}. The subject is reused:
   * the policy must not keep it.
   */
  policy?: (s: PolicySubject) => Verdict
  /** How far a node is trusted (the peer registry); 'unknown' for nodes it has not admitted. */
  trust?: (nodeId: string) => Trust
}

/** A peer as its verified announce describes it. */
export interface AnnouncedPeer {
  nodeId: string
  identityKey: Buffer
  uuid?: Buffer
  meshIp?: number
  name?: string
  link: string
  /** Straight from the node (not relayed). */
  direct: boolean
}

export interface MeshMessage {
  id: string
  from: string
  type: string
  payload: Buffer
  cursor: number
  receivedAt: number
  broadcast: boolean
}

export interface NeighbourInfo {
  nodeId: string
  link: string
  address: string
  etx: number
  intervalMs: number
  lastSeenMs: number
}

interface MeshLink {
  link: Link
  name: string
  budget: TokenBucket
  hopHeader: boolean
  /** Payload room per frame on the link (MTU less the hop header). */
  room: number
  openAttempts: number
  retryTimer: NodeJS.Timeout | null
  lastError: string | null
  /** Removes the listeners addLink put on the driver. */
  detach?: () => void
  counters: { relayed: number; relayedBytes: number; floods: number; floodsSuppressed: number; floodsCongested: number; announcesSkipped: number; originated: number; received: number }
}

interface Neighbour {
  nodeId: string
  link: string
  address: string
  etx: EtxEstimator
  intervalMs: number
  lastSeen: number
}

interface InFlight {
  id: string
  sentAt: number
  attempts: number
  timer: NodeJS.Timeout
}

interface PeerState {
  inflight: Map<string, InFlight>
  srtt: number
  rttvar: number
  rto: number
  /** Consecutive retransmission timeouts without an acknowledgement in between. */
  silentTimeouts: number
  handshakeAt: number
  /** Wait before another handshake attempt, ms: doubles per attempt, reset by a session. */
  handshakeBackoffMs: number
  /** Only messages sent after this moment back the RTO off again (once per round, as TCP does). */
  backoffMark: number
  forceHandshake: boolean
  /** The last error of the packet core on the way to this peer (handshake timeout, refusal). */
  lastError: { code: string; message: string; transaction_id: string; at: number } | null
  /** Best-effort messages waiting for a route/session (not durable). */
  unreliable: Array<{ type: number; payload: Buffer; until: number }>
}

interface FloodState {
  bestCost: number
  floods: number
  /** Neighbours (link addresses) heard sending it, per link. */
  heard: Map<string, Set<string>>
  timer: NodeJS.Timeout | null
  at: number
}

/** Copies of a flood heard on a link before our rebroadcast makes ours redundant there. */
const FLOOD_SUPPRESS_COPIES = 3
/** A later, cheaper copy of a flood is rebroadcast again at most this many times. */
const FLOOD_MAX_REBROADCASTS = 2
const MESSAGE_ID_BYTES = 16
/** Longest payload send() takes. */
export const MAX_MESSAGE_PAYLOAD = MAX_DATA_PAYLOAD - MESSAGE_ID_BYTES
const UNRELIABLE_WAIT_MS = 10_000
const ROUTE_MIN_LIFETIME_MS = 15_000
/** A flood or an announce is not added to a link with this many frames already waiting. */
const CONTROL_QUEUE_LIMIT = 4

function linkKindCode(kind: string): LinkKind {
  switch (kind) {
    case 'udp':
      return LinkKind.Udp
    case 'ethernet':
      return LinkKind.Ethernet
    case 'lora':
      return LinkKind.LoRa
    case 'ble':
      return LinkKind.Ble
    case 'wifi-direct':
      return LinkKind.WifiDirect
    case 'nats':
      return LinkKind.Nats
    default:
      return LinkKind.Unknown
  }
}

export class MeshNode extends EventEmitter {
  readonly identity: Identity
  readonly sessions: SessionManager
  readonly nodeId: string
  private readonly hint: number
  private readonly links = new Map<string, MeshLink>()
  private readonly outbox: MeshOutbox
  private readonly inbox: MeshInbox
  private readonly routes: RouteTable
  private readonly neighbours = new Map<string, Neighbour>()
  private readonly relayFilter: DuplicateFilter
  private readonly floods = new Map<string, FloodState>()
  private readonly peers = new Map<string, PeerState>()
  private readonly reassembler: Reassembler
  private readonly announceIntervalMs: number
  private readonly hopLimit: number
  private readonly log: MeshLogger
  private readonly now: () => number
  private readonly initialRtoMs: number
  private readonly maxRtoMs: number
  private readonly window: number
  private readonly floodJitterMs: number
  private readonly announceInfo: NonNullable<MeshNodeOptions['announceInfo']>
  private readonly admit: NonNullable<MeshNodeOptions['admit']>
  private readonly refused: NonNullable<MeshNodeOptions['refused']>
  private readonly policy: MeshNodeOptions['policy']
  private readonly trust: NonNullable<MeshNodeOptions['trust']>
  /** The one subject the policy is asked about (no allocation per frame). */
  private readonly subject: PolicySubject = { path: 'relay', type: 0, peer: null, via: null, link: '', bytes: 0, trust: 'unknown' }
  private lastAnnounceTs = 0
  private announceTimer: NodeJS.Timeout | null = null
  private sweepTimer: NodeJS.Timeout | null = null
  private running = false
  private startedAt = 0
  private readonly announceReplies = new Map<string, number>()
  /** Transaction ID of each handshake we started → the peer, to report its errors to senders. */
  private readonly handshakeTx = new Map<string, string>()
  readonly dropped: Record<string, number> = {}
  readonly counters = { messagesIn: 0, messagesOut: 0, delivered: 0, expired: 0, duplicatesIn: 0, acksIn: 0, acksOut: 0, retransmissions: 0, handshakes: 0, announcesIn: 0, announcesOut: 0, relayed: 0, broadcastsIn: 0 }

  constructor(opts: MeshNodeOptions) {
    super()
    this.identity = opts.identity
    this.nodeId = opts.identity.nodeIdHex
    this.hint = hintOf(opts.identity.nodeId)
    this.now = opts.now ?? (() => performance.now())
    this.log = opts.log ?? silent
    this.outbox = opts.outbox
    this.inbox = opts.inbox
    this.announceIntervalMs = opts.announceIntervalMs ?? 10_000
    this.hopLimit = opts.hopLimit ?? DEFAULT_HOP_LIMIT
    this.initialRtoMs = opts.initialRtoMs ?? 3000
    this.maxRtoMs = opts.maxRtoMs ?? 60_000
    this.window = opts.window ?? 8
    this.floodJitterMs = opts.floodJitterMs ?? 40
    this.announceInfo = opts.announceInfo ?? (() => ({}))
    this.admit = opts.admit ?? (() => true)
    this.refused = opts.refused ?? (() => false)
    this.policy = opts.policy
    this.trust = opts.trust ?? (() => 'unknown')
    this.sessions = new SessionManager({ identity: opts.identity, handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000, hopLimit: this.hopLimit })
    this.routes = new RouteTable(this.now)
    this.relayFilter = new DuplicateFilter(60_000, 100_000, this.now)
    this.reassembler = new Reassembler({ now: this.now })
    for (const l of opts.links) this.addLink(l)
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  addLink(opts: MeshLinkOptions): void {
    const link = opts.link
    if (this.links.has(link.name)) throw new TypeError(`a link named ${link.name} already exists`)
    const hopHeader = opts.hopHeader ?? link.kind === 'lora'
    const ml: MeshLink = {
      link,
      name: link.name,
      budget: new TokenBucket(opts.budgetBytesPerS ?? 0, 2, this.now),
      hopHeader,
      room: link.mtu - (hopHeader ? HOP_HEADER_BYTES : 0),
      openAttempts: 0,
      retryTimer: null,
      lastError: null,
      counters: { relayed: 0, relayedBytes: 0, floods: 0, floodsSuppressed: 0, floodsCongested: 0, announcesSkipped: 0, originated: 0, received: 0 },
    }
    this.links.set(link.name, ml)
    const onFrame = (f: ReceivedFrame) => this.onFrame(ml, f)
    const onState = (s: LinkState) => this.onLinkState(ml, s)
    const onError = (err: Error) => this.log.debug('link error', { link: ml.name, error: err.message })
    // A broadcast on a link with nobody to send it to (no peers, no discovery) is not a loss: the
    // link counts it in its own stats.
    const onDropped = (d: { reason: string; bytes: number }) => {
      if (d.reason !== 'no-destination') this.count(`link_${d.reason}`)
    }
    link.on('frame', onFrame)
    link.on('state', onState)
    link.on('error', onError)
    link.on('dropped', onDropped)
    ml.detach = () => {
      link.off('frame', onFrame)
      link.off('state', onState)
      link.off('error', onError)
      link.off('dropped', onDropped)
    }
    if (this.running) void this.openLink(ml)
  }

  /**
   * Takes a link out of the mesh: its neighbours and the routes through it go (traffic moves to
   * other links at once), its retry timer stops, and the driver is closed. Resolves when closed;
   * a driver that does not close within `closeTimeoutMs` is left behind (reported, not awaited).
   */
  async removeLink(name: string, closeTimeoutMs = 2000): Promise<Link | undefined> {
    const ml = this.links.get(name)
    if (ml === undefined) return undefined
    this.links.delete(name)
    if (ml.retryTimer !== null) clearTimeout(ml.retryTimer)
    ml.retryTimer = null
    ml.detach?.()
    for (const [k, n] of this.neighbours) if (n.link === name) this.neighbours.delete(k)
    this.applyRouteChanges(this.routes.dropLink(name))
    let timer: NodeJS.Timeout | undefined
    const closed = await Promise.race([
      ml.link.close().then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), closeTimeoutMs)
      }),
    ])
    clearTimeout(timer)
    if (!closed) this.log.warn('link did not close in time; left behind', { link: name, timeout_ms: closeTimeoutMs })
    this.emit('link', { link: name, state: 'removed' })
    return ml.link
  }

  hasLink(name: string): boolean {
    return this.links.has(name)
  }

  /** The drivers of the links in the mesh now. */
  linkDrivers(): Link[] {
    return [...this.links.values()].map((ml) => ml.link)
  }

  /** Opens every link (each on its own: one that fails is retried and does not stop the rest). */
  async start(): Promise<void> {
    if (this.running) return
    this.running = true
    this.startedAt = this.now()
    await Promise.all([...this.links.values()].map((ml) => this.openLink(ml)))
    this.sweepTimer = setInterval(() => this.sweep(), 500)
    this.sweepTimer.unref()
    // A quick second and third announce, so neighbours that started at the same time converge.
    this.scheduleAnnounce(200)
    for (const p of new Set(this.outbox.pending().map((m) => m.to))) this.kick(p)
  }

  async stop(): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.announceTimer !== null) clearTimeout(this.announceTimer)
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer)
    this.announceTimer = null
    this.sweepTimer = null
    for (const p of this.peers.values()) for (const f of p.inflight.values()) clearTimeout(f.timer)
    this.peers.clear()
    for (const f of this.floods.values()) if (f.timer !== null) clearTimeout(f.timer)
    this.floods.clear()
    for (const ml of this.links.values()) if (ml.retryTimer !== null) clearTimeout(ml.retryTimer)
    await Promise.all([...this.links.values()].map((ml) => ml.link.close().catch(() => undefined)))
  }

  private async openLink(ml: MeshLink): Promise<void> {
    if (!this.running || !this.links.has(ml.name)) return
    ml.openAttempts++
    try {
      await ml.link.open()
      ml.lastError = null
      this.log.info('link up', { link: ml.name, kind: ml.link.kind, mtu: ml.link.mtu })
      this.announceOn(ml)
    } catch (err) {
      ml.lastError = (err as Error).message
      const delay = Math.min(30_000, 500 * 2 ** Math.min(6, ml.openAttempts - 1))
      this.log.warn('link failed to open; retrying', { link: ml.name, error: ml.lastError, retry_ms: delay })
      this.emit('link', { link: ml.name, state: 'failed', error: ml.lastError, retry_ms: delay })
      ml.retryTimer = setTimeout(() => {
        ml.retryTimer = null
        void this.openLink(ml)
      }, delay)
      ml.retryTimer.unref()
    }
  }

  private onLinkState(ml: MeshLink, state: LinkState): void {
    this.emit('link', { link: ml.name, state })
    if (state === 'up') {
      this.announceOn(ml)
      return
    }
    if (state === 'down' || state === 'closed') {
      for (const [k, n] of this.neighbours) if (n.link === ml.name) this.neighbours.delete(k)
      this.applyRouteChanges(this.routes.dropLink(ml.name))
    }
  }

  // ---- sending -----------------------------------------------------------------------------

  /**
   * Accepts a message for `to` (a node ID, hex). Reliable (default): resolves once it is in the
   * durable outbox, with its ID; delivery follows, reported by a `delivered` (or `expired`)
   * event. Unreliable: sent once when a route and session exist (held up to 10 s for them), never
   * acknowledged. `to` = '*' floods a signed broadcast to every node (not encrypted).
   */
  async send(to: string, typeName: string, payload: Buffer, opts: { reliable?: boolean; ttlMs?: number } = {}): Promise<{ id: string; acceptedAt: number; broadcast: boolean }> {
    const type = parseAgentType(typeName)
    if (payload.length > MAX_MESSAGE_PAYLOAD) throw new ResourceLimitError(`payload of ${payload.length} bytes exceeds the ${MAX_MESSAGE_PAYLOAD}-byte maximum of one message`)
    if (to === '*') return this.broadcast(type, payload)
    if (!/^[0-9a-f]{32}$/.test(to)) throw new TypeError(`destination must be a node ID of 32 hex digits, got ${JSON.stringify(to)}`)
    if (to === this.nodeId) throw new TypeError('the destination is this gateway itself')
    if (opts.reliable === false) {
      this.peer(to).unreliable.push({ type, payload: Buffer.from(payload), until: this.now() + UNRELIABLE_WAIT_MS })
      this.kick(to)
      return { id: '', acceptedAt: Date.now(), broadcast: false }
    }
    const m = await this.outbox.accept({ to, type, flags: PacketFlags.AckRequested, payload: Buffer.from(payload), ...(opts.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}) })
    this.counters.messagesOut++
    this.kick(to)
    return { id: m.id, acceptedAt: m.acceptedAt, broadcast: false }
  }

  private async broadcast(type: number, payload: Buffer): Promise<{ id: string; acceptedAt: number; broadcast: boolean }> {
    const packetId = randomInt(0, 2 ** 32)
    const frame = encodeSignedPacket(this.identity, { type, hopLimit: this.hopLimit, packetId, payload })
    const key = `b${this.nodeId}${packetId}`
    this.floodState(key, 0)
    for (const ml of this.links.values()) if (ml.link.state === 'up') this.sendOn(ml, frame, '', 2, false)
    this.counters.messagesOut++
    return { id: broadcastId(this.identity.nodeId, packetId), acceptedAt: Date.now(), broadcast: true }
  }

  private peer(to: string): PeerState {
    let p = this.peers.get(to)
    if (p === undefined) {
      p = { inflight: new Map(), srtt: 0, rttvar: 0, rto: this.initialRtoMs, silentTimeouts: 0, handshakeAt: -Infinity, handshakeBackoffMs: 1000, backoffMark: -Infinity, forceHandshake: false, lastError: null, unreliable: [] }
      this.peers.set(to, p)
    }
    return p
  }

  /** Moves what waits for `to` as far as it can: handshake, then the window of messages. */
  private kick(to: string): void {
    if (!this.running) return
    const route = this.routes.lookup(to)
    if (route === undefined) return
    const p = this.peer(to)
    const pending = this.outbox.pending(to)
    if (p.unreliable.length === 0 && pending.length === 0) return
    const peerId = Buffer.from(to, 'hex')
    const session = p.forceHandshake ? null : this.sessions.sessionFor(peerId)
    if (session === null || session.needsRekey()) {
      this.startHandshake(to, p, route)
      if (session === null) return
    }
    const now = this.now()
    if (p.unreliable.length > 0) {
      for (const u of p.unreliable.splice(0)) if (u.until > now) this.sendData(to, u.type, 0, u.payload, route)
    }
    const window = this.windowFor(route)
    if (p.inflight.size >= window) return
    if (p.srtt === 0 && p.backoffMark === -Infinity) p.rto = this.firstRto(route, p)
    for (const m of pending) {
      if (p.inflight.size >= window) break
      if (p.inflight.has(m.id)) continue
      this.transmitMessage(to, p, m, route)
    }
  }

  /**
   * The timeout to start from: the measured one (RFC 6298) once there is a round trip, else the
   * route's cost (ms per 256 B, summed over the hops) there and back, three times over; always
   * within 0.5 s..initialRtoMs.
   */
  private firstRto(route: RouteCandidate, p: PeerState): number {
    return Math.min(this.initialRtoMs, Math.max(500, 6 * route.cost, p.srtt > 0 ? p.srtt + 4 * p.rttvar : 0))
  }

  /**
   * Messages in flight at once to a destination. Over several hops of a half-duplex radio, a
   * relay that forwards one frame cannot hear the next one its sender already put on the air:
   * pipelining collapses into losses, so such a path carries one message at a time.
   */
  private windowFor(route: RouteCandidate): number {
    const first = this.links.get(route.link)
    return first !== undefined && first.hopHeader && route.hops > 1 ? 1 : this.window
  }

  private startHandshake(to: string, p: PeerState, route: RouteCandidate): void {
    const now = this.now()
    if (now - p.handshakeAt < p.handshakeBackoffMs) return
    p.handshakeAt = now
    p.handshakeBackoffMs = Math.min(30_000, p.handshakeBackoffMs * 2)
    p.forceHandshake = false
    try {
      const c = this.sessions.connect(Buffer.from(to, 'hex'))
      if (this.handshakeTx.size > 1024) this.handshakeTx.clear()
      this.handshakeTx.set(c.transactionId, to)
      this.counters.handshakes++
      this.log.debug('handshake started', { peer: to, pattern: c.pattern === HandshakePattern.IK ? 'IK' : 'XX', via: route.link, transaction_id: c.transactionId })
      this.sendRouted(route, c.frame, 0)
    } catch (err) {
      this.log.debug('handshake not started', { peer: to, error: (err as Error).message })
    }
  }

  private transmitMessage(to: string, p: PeerState, m: MeshOutboxMessage, route: RouteCandidate, attempts = 1): void {
    const body = Buffer.allocUnsafe(MESSAGE_ID_BYTES + m.payload.length)
    body.write(m.id, 0, 'hex')
    m.payload.copy(body, MESSAGE_ID_BYTES)
    if (!this.sendData(to, m.type, m.flags | PacketFlags.AckRequested, body, route)) return
    this.outbox.attempted(m.id)
    const prev = p.inflight.get(m.id)
    if (prev) clearTimeout(prev.timer)
    // Up to 25% jitter, so that messages timed out together are not sent again together.
    const timer = setTimeout(() => this.onRetransmitTimeout(to, m.id), p.rto * (1 + Math.random() * 0.25))
    timer.unref()
    p.inflight.set(m.id, { id: m.id, sentAt: this.now(), attempts, timer })
    if (attempts > 1) this.counters.retransmissions++
  }

  private onRetransmitTimeout(to: string, id: string): void {
    const p = this.peers.get(to)
    const f = p?.inflight.get(id)
    if (p === undefined || f === undefined) return
    p.inflight.delete(id)
    // Back off once per round of timeouts, not once per message that was in flight.
    if (f.sentAt >= p.backoffMark) {
      p.rto = Math.min(this.maxRtoMs, p.rto * 2)
      p.backoffMark = this.now()
      p.silentTimeouts++
    }
    // Repeated silence: the session may be gone at the other end (it restarted); shake hands again.
    if (p.silentTimeouts >= 3) {
      p.forceHandshake = true
      p.silentTimeouts = 0
    }
    const m = this.outbox.get(id)
    if (m === undefined) return
    const route = this.routes.lookup(to)
    if (route === undefined) return
    const session = p.forceHandshake ? null : this.sessions.sessionFor(Buffer.from(to, 'hex'))
    if (session === null) {
      this.startHandshake(to, p, route)
      return
    }
    this.transmitMessage(to, p, m, route, f.attempts + 1)
  }

  /** Seals and sends one Data frame to `to` along `route`; false when there is no session. */
  private sendData(to: string, type: number, flags: number, body: Buffer, route: RouteCandidate): boolean {
    let frame: Buffer
    try {
      // A view valid until the next seal: sendRouted() hands it to Link.send, which copies it.
      frame = this.sessions.seal(Buffer.from(to, 'hex'), type, flags, body, this.hopLimit)
    } catch (err) {
      if (!(err instanceof ConnectionLostError)) this.log.debug('seal failed', { peer: to, error: (err as Error).message })
      return false
    }
    const priority: Priority = type === PacketType.Ack ? 0 : (flags & PacketFlags.Bulk) !== 0 ? 2 : 1
    this.sendRouted(route, frame, priority)
    return true
  }

  private sendRouted(route: RouteCandidate, frame: Buffer, priority: Priority): void {
    const ml = this.links.get(route.link)
    if (ml === undefined) return
    this.sendOn(ml, frame, route.nextHop, priority, false)
  }

  /**
   * Puts one frame on a link: hop header on links without addresses, fragments when it is
   * larger than the link takes. Relayed traffic is charged to the link's budget first.
   */
  private sendOn(ml: MeshLink, frame: Buffer, nextHop: string, priority: Priority, relayed: boolean): boolean {
    if (ml.link.state !== 'up' && ml.link.state !== 'down') {
      this.count('link_not_open')
      return false
    }
    if (relayed && !ml.budget.take(frame.length)) {
      this.count('budget')
      return false
    }
    const parts = frame.length <= ml.room ? [frame] : fragment(frame, ml.room, randomInt(0, 2 ** 32))
    let to: string | undefined = nextHop === '' ? undefined : nextHop
    let next = 0
    if (ml.hopHeader) {
      next = to === undefined ? 0 : parseHintAddress(to)
      to = undefined
    }
    try {
      for (const part of parts) {
        const wire = ml.hopHeader ? encodeHop(part, next, this.hint) : part
        ml.link.send(wire, to === undefined ? { priority } : { priority, to })
      }
    } catch (err) {
      this.count(err instanceof ResourceLimitError ? 'queue_full' : 'send_failed')
      this.log.debug('send failed', { link: ml.name, error: (err as Error).message })
      return false
    }
    if (relayed) {
      ml.counters.relayed++
      ml.counters.relayedBytes += frame.length
    } else ml.counters.originated++
    return true
  }

  // ---- announces ---------------------------------------------------------------------------

  private scheduleAnnounce(delayMs: number): void {
    if (this.announceTimer !== null) clearTimeout(this.announceTimer)
    this.announceTimer = setTimeout(() => {
      this.announceTimer = null
      if (!this.running) return
      for (const ml of this.links.values()) this.announceOn(ml)
      const uptime = this.now() - this.startedAt
      // Faster while young (0.2, 1, 2 s ...), then the interval with ±10% jitter.
      const next = uptime < 3 * this.announceIntervalMs && uptime < 5000 ? Math.min(this.announceIntervalMs, 1000) : this.announceIntervalMs * (0.9 + Math.random() * 0.2)
      this.scheduleAnnounce(next)
    }, delayMs)
    this.announceTimer.unref()
  }

  private announceFrame(flags = 0): Buffer {
    this.lastAnnounceTs = Math.max(Date.now(), this.lastAnnounceTs + 1)
    const links = [...this.links.values()].slice(0, 16).map((ml) => ({ kind: linkKindCode(ml.link.kind), name: ml.name.slice(0, 32), mtu: Math.min(65535, ml.link.mtu), bitrate: Math.min(0xffffffff, Math.round(ml.link.bitrate)) }))
    const info = this.announceInfo()
    const body = encodeAnnounceBody({ identityKey: this.identity.identityKey, staticKey: this.identity.static.publicKey, capabilities: 0b11, links, timestamp: this.lastAnnounceTs, intervalMs: this.announceIntervalMs, ...info })
    return encodeSignedPacket(this.identity, { type: PacketType.Announce, flags, hopLimit: this.hopLimit, packetId: randomInt(0, 2 ** 32), payload: body })
  }

  private announceOn(ml: MeshLink, to = ''): void {
    if (ml.link.state !== 'up') return
    // A busy link (a radio at its airtime limit) gets no more control traffic than it can carry:
    // the announce still queued from last time says the same.
    if (ml.link.stats().queued >= CONTROL_QUEUE_LIMIT) {
      ml.counters.announcesSkipped++
      return
    }
    const frame = this.announceFrame()
    this.floodState(`a${this.nodeId}${this.lastAnnounceTs}`, 0)
    if (this.sendOn(ml, frame, to, 0, false)) this.counters.announcesOut++
  }

  /** Sends our announce straight back to a neighbour that asked or that we just met (rate-limited). */
  private answerAnnounce(ml: MeshLink, from: string): void {
    const key = `${ml.name}|${from}`
    const t = this.now()
    const last = this.announceReplies.get(key)
    if (last !== undefined && t - last < 1000) return
    if (this.announceReplies.size > 4096) this.announceReplies.clear()
    this.announceReplies.set(key, t)
    this.announceOn(ml, ml.hopHeader ? '' : from)
  }

  // ---- receiving ---------------------------------------------------------------------------

  /** The neighbour (node ID) at `from` on a link, if its announce was heard. */
  private neighbourAt(ml: MeshLink, from: string): string | null {
    return this.neighbours.get(`${ml.name}|${from}`)?.nodeId ?? null
  }

  /**
   * The policy's word on one frame: true to go on. `peer`: the authenticated originator, else
   * the neighbour it came from (a relay cannot authenticate the originator of a frame it only
   * forwards, so a claimed source never decides a block).
   */
  private policyAllows(path: PolicySubject['path'], type: number, peer: string | null, via: string | null, ml: MeshLink, bytes: number): boolean {
    if (this.policy === undefined) return true
    const s = this.subject
    s.path = path
    s.type = type
    s.peer = peer
    s.via = via
    s.link = ml.name
    s.bytes = bytes
    s.trust = peer === null ? 'unknown' : this.trust(peer)
    const v = this.policy(s)
    if (v.ok) return true
    this.count(`policy_${v.violation ?? 'refused'}`)
    this.emit('policy_refused', { subject: { ...s }, verdict: v })
    return false
  }

  private onFrame(ml: MeshLink, f: ReceivedFrame): void {
    ml.counters.received++
    let data = f.data
    let from = f.from ?? ''
    try {
      if (ml.hopHeader) {
        if (data[0] !== VK_HOP) throw new MalformedPacketError('frame on a hop-header link has no hop header', { field: 'HopHeader.vk' })
        const h = decodeHop(data)
        if (h.prev === this.hint) return
        if (h.next !== 0 && h.next !== this.hint) {
          this.count('overheard')
          return
        }
        from = hintAddress(h.prev)
        data = h.frame
      }
      this.dispatch(ml, data, from, false)
    } catch (err) {
      const code = err instanceof KairoError ? err.code : 'EINTERNAL'
      this.count(code)
      if (err instanceof KairoError && err.transaction_id !== undefined) {
        const peer = this.handshakeTx.get(err.transaction_id)
        if (peer !== undefined) this.deliveryError(peer, err)
      }
      this.log.debug('dropped frame', { link: ml.name, from, bytes: f.data.length, code, error: (err as Error).message })
    }
  }

  private dispatch(ml: MeshLink, data: Buffer, from: string, reassembled: boolean): void {
    const vk = data[0]
    if (vk === VK_DATA) return this.onData(ml, data, from)
    if (vk === VK_PACKET) return this.onPacket(ml, data, from)
    if (vk === VK_FRAGMENT && !reassembled) {
      const whole = this.reassembler.push(`${ml.name}|${from}`, data)
      if (whole !== null) this.dispatch(ml, whole, from, true)
      return
    }
    throw new MalformedPacketError(vk === undefined ? 'empty frame' : `first byte 0x${vk.toString(16).padStart(2, '0')} is not a Data, Packet or Fragment frame`, { field: 'vk' })
  }

  private onData(ml: MeshLink, frame: Buffer, from: string): void {
    checkDataFrame(frame)
    if (dataIsFor(frame, this.identity.nodeId)) return this.openData(ml, frame, from)
    // Relay: what we can check without the keys, then forward.
    if (!this.relayFilter.firstSeen(frame.toString('latin1', 4, 32))) {
      this.count('duplicate')
      return
    }
    if (this.policy !== undefined) {
      const via = this.neighbourAt(ml, from)
      if (!this.policyAllows('relay', dataType(frame), via, via, ml, frame.length)) return
    }
    const dst = frame.toString('hex', DH_DST, DH_DST + 16)
    const route = this.routes.lookup(dst)
    if (route === undefined) {
      this.count('no_route')
      return
    }
    if (route.link === ml.name && route.nextHop === from && from !== '') {
      this.count('split_horizon')
      return
    }
    // The received frame is ours (drivers/link.ts) and Link.send copies what it queues: the hop
    // limit is decremented in place, with no copy of the frame on the relay path.
    if (!decrementDataHop(frame) || frame[3] === 0) {
      this.count('hop_limit')
      return
    }
    const type = dataType(frame)
    const priority: Priority = type === PacketType.Ack ? 0 : (dataFlags(frame) & PacketFlags.Bulk) !== 0 ? 2 : 1
    const out = this.links.get(route.link)
    if (out !== undefined && this.sendOn(out, frame, route.nextHop, priority, true)) this.counters.relayed++
  }

  private openData(ml: MeshLink, frame: Buffer, from: string): void {
    const { session, data } = this.sessions.open(frame)
    const peer = nodeIdToString(session.remoteNodeId)
    if (this.refused(peer)) {
      this.count('peer_refused')
      return
    }
    if (this.policy !== undefined && !this.policyAllows('deliver', data.type, peer, this.neighbourAt(ml, from), ml, frame.length)) return
    const p = this.peers.get(peer)
    if (data.type === PacketType.Ack) {
      this.counters.acksIn++
      const ids = data.payload
      for (let o = 0; o + MESSAGE_ID_BYTES <= ids.length; o += MESSAGE_ID_BYTES) this.onAck(peer, ids.toString('hex', o, o + MESSAGE_ID_BYTES))
      return
    }
    if (data.type === PacketType.Close || data.type === PacketType.Keepalive) return
    if (p !== undefined && p.forceHandshake === false && p.inflight.size === 0) this.kick(peer)
    const reliable = (data.flags & PacketFlags.AckRequested) !== 0
    let id: string
    let body: Buffer
    if (reliable) {
      if (data.payload.length < MESSAGE_ID_BYTES) throw new MalformedPacketError('reliable message shorter than its message ID', { field: 'payload' })
      id = data.payload.toString('hex', 0, MESSAGE_ID_BYTES)
      body = Buffer.from(data.payload.subarray(MESSAGE_ID_BYTES))
    } else {
      id = randomBytes(MESSAGE_ID_BYTES).toString('hex')
      body = Buffer.from(data.payload)
    }
    const type = data.type
    this.inbox
      .accept({ id, from: peer, type, payload: body })
      .then(({ fresh, message }) => {
        if (fresh) {
          this.counters.messagesIn++
          this.emit('message', { id, from: peer, type: packetTypeName(type), payload: body, cursor: message.cursor, receivedAt: message.receivedAt, broadcast: false } satisfies MeshMessage)
        } else {
          this.counters.duplicatesIn++
        }
        // Acknowledged only once durable; a duplicate is acknowledged again (the first ack may have been lost).
        if (reliable) this.sendAck(peer, id, ml, from)
      })
      .catch((err: Error) => {
        this.count('inbox_refused')
        this.log.warn('inbox refused a message; not acknowledged, the sender will retry', { from: peer, id, error: err.message })
      })
  }

  private sendAck(peer: string, id: string, ml: MeshLink, from: string): void {
    const route = this.routes.lookup(peer) ?? { dst: peer, link: ml.name, nextHop: from, via: '', cost: 0, hops: 1, timestamp: 0, feasible: true, updatedAt: 0, expiresAt: 0 }
    if (this.sendData(peer, PacketType.Ack, 0, Buffer.from(id, 'hex'), route)) this.counters.acksOut++
  }

  private onAck(peer: string, id: string): void {
    const p = this.peers.get(peer)
    const f = p?.inflight.get(id)
    if (p !== undefined && f !== undefined) {
      clearTimeout(f.timer)
      p.inflight.delete(id)
      p.silentTimeouts = 0
      if (f.attempts === 1) {
        // RFC 6298 with Karn's rule: only first transmissions give round-trip samples.
        const r = this.now() - f.sentAt
        if (p.srtt === 0) {
          p.srtt = r
          p.rttvar = r / 2
        } else {
          p.rttvar = 0.75 * p.rttvar + 0.25 * Math.abs(p.srtt - r)
          p.srtt = 0.875 * p.srtt + 0.125 * r
        }
        p.rto = Math.min(this.maxRtoMs, Math.max(500, p.srtt + 4 * p.rttvar))
      }
    }
    const m = this.outbox.get(id)
    if (m === undefined) return
    void this.outbox.delivered(id).then((was) => {
      if (!was) return
      this.counters.delivered++
      this.emit('delivered', { id, to: peer, attempts: f?.attempts ?? 0, ms: Date.now() - m.acceptedAt })
    })
    this.kick(peer)
  }

  private onPacket(ml: MeshLink, frame: Buffer, from: string): void {
    const p = decodePacket(frame)
    if (p.type === PacketType.Announce) return this.onAnnounce(ml, p, from)
    if (p.dst !== null) {
      if (p.dst.equals(this.identity.nodeId)) {
        if (p.type !== PacketType.Handshake) {
          this.count('unsupported')
          return
        }
        return this.onHandshake(ml, p, from)
      }
      if (!this.relayFilter.firstSeen(`p${p.src.toString('latin1')}${p.packetId}`)) {
        this.count('duplicate')
        return
      }
      if (this.policy !== undefined) {
        const via = this.neighbourAt(ml, from)
        if (!this.policyAllows('relay', p.type, via, via, ml, frame.length)) return
      }
      const dst = p.dst.toString('hex')
      const route = this.routes.lookup(dst)
      if (route === undefined) {
        this.count('no_route')
        return
      }
      if (!decrementPacketHop(frame) || p.hopLimit <= 1) {
        this.count('hop_limit')
        return
      }
      const out = this.links.get(route.link)
      if (out !== undefined && this.sendOn(out, frame, route.nextHop, p.type === PacketType.Handshake ? 0 : 1, true)) this.counters.relayed++
      return
    }
    this.onBroadcast(ml, p, frame, from)
  }

  private onHandshake(ml: MeshLink, p: PacketFrame, from: string): void {
    const src = nodeIdToString(p.src)
    if (this.refused(src)) {
      this.count('peer_refused')
      return
    }
    const outcome = this.sessions.handleHandshake(p)
    if (outcome.peer !== null && this.refused(nodeIdToString(outcome.peer))) {
      // The packet's src said otherwise; the handshake proved who it is. No reply, no session.
      if (outcome.session !== null) this.sessions.close(outcome.peer)
      this.count('peer_refused')
      return
    }
    if (outcome.reply !== null) {
      const route = this.routes.lookup(src) ?? { dst: src, link: ml.name, nextHop: from, via: '', cost: 0, hops: 1, timestamp: 0, feasible: true, updatedAt: 0, expiresAt: 0 }
      this.sendRouted(route, outcome.reply, 0)
    }
    if (outcome.session !== null && outcome.peer !== null) {
      const peer = nodeIdToString(outcome.peer)
      this.log.debug('session established', { peer, initiator: outcome.session.initiator })
      this.emit('session', { peer, initiator: outcome.session.initiator })
      const ps = this.peers.get(peer)
      if (ps !== undefined) {
        // Messages in flight on an old session will not be acknowledged: send them again now.
        for (const f of ps.inflight.values()) clearTimeout(f.timer)
        ps.inflight.clear()
        ps.forceHandshake = false
        ps.handshakeBackoffMs = 1000
        ps.rto = Math.min(ps.rto, Math.max(this.initialRtoMs, ps.srtt + 4 * ps.rttvar))
      }
      if (ps !== undefined) ps.lastError = null
      setImmediate(() => this.kick(peer))
    }
  }

  private onAnnounce(ml: MeshLink, p: PacketFrame, from: string): void {
    const body = verifyAnnouncePacket(p)
    const src = nodeIdToString(p.src)
    if (src === this.nodeId) return
    this.counters.announcesIn++
    const direct = p.pathCost === 0
    const announced: AnnouncedPeer = { nodeId: src, identityKey: body.identityKey, link: ml.name, direct }
    if (body.uuid !== undefined) announced.uuid = body.uuid
    if (body.meshIp !== undefined) announced.meshIp = body.meshIp
    if (body.name !== undefined) announced.name = body.name
    if (!this.admit(announced)) {
      this.count('peer_refused')
      return
    }
    // Signed by its source (verified above): the policy judges the originator.
    if (this.policy !== undefined && !this.policyAllows('broadcast', PacketType.Announce, src, direct ? src : this.neighbourAt(ml, from), ml, p.payload.length)) return
    this.sessions.learn(body)
    const interval = body.intervalMs ?? 0
    const nkey = `${ml.name}|${from}`
    let nb = this.neighbours.get(nkey)
    if (direct) {
      const fresh = nb === undefined || nb.nodeId !== src
      if (fresh) {
        nb = { nodeId: src, link: ml.name, address: from, etx: new EtxEstimator(this.now), intervalMs: interval, lastSeen: 0 }
        this.neighbours.set(nkey, nb)
        this.log.info('neighbour', { link: ml.name, node: src, address: from })
        this.emit('neighbour', { link: ml.name, node: src, address: from })
      }
      nb!.etx.heard(interval)
      nb!.intervalMs = interval
      nb!.lastSeen = this.now()
      if (fresh || (p.flags & PacketFlags.AckRequested) !== 0) this.answerAnnounce(ml, from)
    }
    const etx = nb !== undefined ? nb.etx.etx(nb.intervalMs) : 1
    const q = ml.link.quality()
    const cost = addCost(p.pathCost, hopCost(ml.link.bitrate, etx, q.airtimeAvailable ?? 1))
    const hops = direct ? 1 : Math.max(2, Math.min(this.hopLimit, this.hopLimit - p.hopLimit + 1))
    // 3.5 intervals of the destination, and never under ROUTE_MIN_LIFETIME_MS: on a busy radio an
    // announce can wait in a queue; a dead path is left sooner by link state and freshness.
    const lifetime = Math.max(ROUTE_MIN_LIFETIME_MS, 3.5 * (interval || this.announceIntervalMs))
    // Feasible: straight from the source, or cheaper than any copy of this announce heard before.
    const fkey = `a${src}${body.timestamp}`
    const prior = this.floods.get(fkey)
    const feasible = direct || prior === undefined || cost < prior.bestCost
    const change = this.routes.offer({ dst: src, link: ml.name, nextHop: from, via: nb?.nodeId ?? '', cost, hops, timestamp: body.timestamp, feasible }, lifetime)
    if (change !== null) this.applyRouteChanges([change])
    if (prior === undefined) this.destinationHeard(src)
    // Flood it on, once per announce (and again only for a clearly cheaper copy).
    if (p.hopLimit > 1) this.flood(fkey, ml, from, cost, (hop) => reencodePacket(p, p.hopLimit - 1, hop))
    else if (prior === undefined) this.floodState(fkey, cost)
  }

  private onBroadcast(ml: MeshLink, p: PacketFrame, frame: Buffer, from: string): void {
    const src = nodeIdToString(p.src)
    if (src === this.nodeId) return
    if (this.refused(src)) {
      this.count('peer_refused')
      return
    }
    const key = `b${src}${p.packetId}`
    const seen = this.floods.has(key)
    // Deliver what we can verify: the source's identity key comes from its announces.
    const rec = this.sessions.knownPeers().find((r) => r.nodeId.equals(p.src))
    if (!seen) {
      // The policy judges a verified broadcast by its source, one this node cannot verify yet (no
      // key for its source) by the neighbour that handed it over, like any relayed frame.
      const via = this.policy !== undefined ? this.neighbourAt(ml, from) : null
      if (rec?.identityKey) {
        verifyPacketSignature(p, rec.identityKey)
        if (!this.policyAllows('broadcast', p.type, src, via, ml, frame.length)) return
        if (AGENT_TYPES.includes(p.type)) {
          const id = broadcastId(p.src, p.packetId)
          const payload = Buffer.from(p.payload)
          this.inbox
            .accept({ id, from: src, type: p.type, payload })
            .then(({ fresh, message }) => {
              if (!fresh) return
              this.counters.broadcastsIn++
              this.emit('message', { id, from: src, type: packetTypeName(p.type), payload, cursor: message.cursor, receivedAt: message.receivedAt, broadcast: true } satisfies MeshMessage)
            })
            .catch((err: Error) => this.log.warn('inbox refused a broadcast', { from: src, error: err.message }))
        }
      } else {
        if (!this.policyAllows('relay', p.type, via, via, ml, frame.length)) return
        this.count('broadcast_unverified')
      }
    }
    if (p.hopLimit > 1) {
      decrementPacketHop(frame)
      this.flood(key, ml, from, 0, () => frame)
    }
  }

  /**
   * A new announce of `peer` arrived: it is alive and a path to it works. If messages for it
   * wait behind a long backoff (a partition that has healed, a gateway back from a restart), the
   * backoff is dropped and they go now: delivery follows the path's return within one announce
   * interval, not within the backoff's minutes.
   */
  private destinationHeard(peer: string): void {
    const p = this.peers.get(peer)
    if (p === undefined) return
    const route = this.routes.lookup(peer)
    if (route === undefined || this.outbox.pending(peer).length === 0) return
    const fresh = this.firstRto(route, p)
    const backedOff = p.rto > 2 * fresh || p.handshakeBackoffMs > 2000 || p.forceHandshake
    if (!backedOff) return
    p.rto = fresh
    p.backoffMark = this.now()
    p.handshakeBackoffMs = 1000
    p.handshakeAt = -Infinity
    this.log.debug('destination heard again; backoff reset', { peer, rto_ms: p.rto })
    const session = p.forceHandshake ? null : this.sessions.sessionFor(Buffer.from(peer, 'hex'))
    if (session === null) {
      // A new handshake first; the messages follow when it completes.
      for (const f of p.inflight.values()) clearTimeout(f.timer)
      p.inflight.clear()
    } else {
      // Sent again now, as retransmissions (their acknowledgements give no round-trip sample).
      for (const f of [...p.inflight.values()]) {
        const m = this.outbox.get(f.id)
        if (m !== undefined) this.transmitMessage(peer, p, m, route, f.attempts + 1)
      }
    }
    setImmediate(() => this.kick(peer))
  }

  /**
   * Managed flooding: the first copy of a flood schedules one rebroadcast per link after a
   * random delay; copies heard meanwhile are noted per link, and a link is skipped where every
   * neighbour known on it already sent us a copy, or where FLOOD_SUPPRESS_COPIES did. A later copy that is >10% cheaper (announces)
   * schedules one more, at most FLOOD_MAX_REBROADCASTS in all.
   */
  private flood(key: string, ml: MeshLink, from: string, cost: number, build: (cost: number) => Buffer): void {
    const existing = this.floods.get(key)
    if (existing !== undefined) {
      this.heardFrom(existing, ml.name, from)
      if (existing.timer !== null || cost >= existing.bestCost * 0.9 || existing.floods >= FLOOD_MAX_REBROADCASTS) {
        if (cost < existing.bestCost && existing.timer !== null) existing.bestCost = cost
        return
      }
      existing.bestCost = cost
      this.scheduleFlood(key, existing, build)
      return
    }
    const st = this.floodState(key, cost)
    this.heardFrom(st, ml.name, from)
    this.scheduleFlood(key, st, build)
  }

  private heardFrom(st: FloodState, link: string, from: string): void {
    let set = st.heard.get(link)
    if (set === undefined) {
      set = new Set()
      st.heard.set(link, set)
    }
    if (set.size < 16) set.add(from)
  }

  /** True when a rebroadcast on `ml` would tell no neighbour there anything new. */
  private floodRedundant(st: FloodState, ml: MeshLink): boolean {
    const heard = st.heard.get(ml.name)
    if (heard === undefined) return false
    if (heard.size >= FLOOD_SUPPRESS_COPIES) return true
    let known = 0
    for (const n of this.neighbours.values()) {
      if (n.link !== ml.name) continue
      known++
      if (!heard.has(n.address)) return false
    }
    return known > 0
  }

  private floodState(key: string, cost: number): FloodState {
    let st = this.floods.get(key)
    if (st === undefined) {
      st = { bestCost: cost, floods: 0, heard: new Map(), timer: null, at: this.now() }
      this.floods.set(key, st)
    }
    return st
  }

  private scheduleFlood(key: string, st: FloodState, build: (cost: number) => Buffer): void {
    const slowest = Math.max(...[...this.links.values()].map((l) => (l.link.kind === 'lora' ? 10 : 1)))
    const delay = Math.random() * this.floodJitterMs * slowest
    st.timer = setTimeout(() => {
      st.timer = null
      if (!this.running) return
      st.floods++
      const frame = build(st.bestCost)
      for (const ml of this.links.values()) {
        if (ml.link.state !== 'up') continue
        if (ml.link.stats().queued >= CONTROL_QUEUE_LIMIT) {
          ml.counters.floodsCongested++
          continue
        }
        if (this.floodRedundant(st, ml)) {
          ml.counters.floodsSuppressed++
          continue
        }
        if (this.sendOn(ml, frame, '', 0, true)) ml.counters.floods++
      }
    }, delay)
    st.timer.unref()
  }

  // ---- upkeep ------------------------------------------------------------------------------

  private applyRouteChanges(changes: RouteChange[]): void {
    for (const ch of changes) {
      this.emit('route', ch)
      if (ch.after === null) this.log.info('route lost', { dst: ch.dst, was: ch.before?.link })
      else if (ch.before === null || ch.before.link !== ch.after.link || ch.before.nextHop !== ch.after.nextHop) this.log.info('route', { dst: ch.dst, link: ch.after.link, next_hop: ch.after.nextHop, cost: ch.after.cost, hops: ch.after.hops })
      if (ch.after !== null) setImmediate(() => this.kick(ch.dst))
    }
  }

  private sweep(): void {
    const now = this.now()
    this.applyRouteChanges(this.routes.expire())
    for (const [k, n] of this.neighbours) if (n.intervalMs > 0 && now - n.lastSeen > 3.5 * n.intervalMs) this.neighbours.delete(k)
    for (const [k, f] of this.floods) if (f.timer === null && now - f.at > 120_000) this.floods.delete(k)
    for (const err of this.sessions.sweep()) {
      this.log.debug('handshake timed out', { error: err.message, transaction_id: err.transaction_id })
      const peer = err.transaction_id === undefined ? undefined : this.handshakeTx.get(err.transaction_id)
      if (peer !== undefined) this.deliveryError(peer, err)
    }
    void this.outbox.expire().then((gone) => {
      for (const m of gone) {
        this.counters.expired++
        const p = this.peers.get(m.to)
        const f = p?.inflight.get(m.id)
        if (f !== undefined) {
          clearTimeout(f.timer)
          p!.inflight.delete(m.id)
        }
        const last = this.peers.get(m.to)?.lastError ?? null
        this.log.warn('message expired undelivered', { id: m.id, to: m.to, attempts: m.attempts, last_error: last?.message })
        this.emit('expired', { id: m.id, to: m.to, attempts: m.attempts, last_error: last, route: this.routes.lookup(m.to) !== undefined })
      }
    })
    // Waiting messages whose peer has a route but nothing in flight (e.g. after a heal).
    for (const to of new Set(this.outbox.pending().map((m) => m.to))) {
      const p = this.peers.get(to)
      if (p === undefined || p.inflight.size === 0) this.kick(to)
    }
    for (const [to, p] of this.peers) {
      if (p.unreliable.length > 0) {
        p.unreliable = p.unreliable.filter((u) => u.until > now)
        this.kick(to)
      }
    }
  }

  /**
   * Surfaces an error of the packet core (a handshake that timed out or was refused) to whoever
   * waits on messages for `peer`: a `delivery_error` event, the peer's last error in the outbox
   * listing and in the `expired` event of a message that runs out of time.
   */
  private deliveryError(peer: string, err: KairoError): void {
    if (err.transaction_id !== undefined) this.handshakeTx.delete(err.transaction_id)
    const p = this.peer(peer)
    p.lastError = { code: err.code, message: err.message, transaction_id: err.transaction_id ?? '', at: Date.now() }
    const waiting = this.outbox.pending(peer).length
    if (waiting === 0) return
    this.log.warn('delivery error', { to: peer, code: err.code, error: err.message, transaction_id: err.transaction_id, waiting })
    this.emit('delivery_error', { to: peer, code: err.code, message: err.message, transaction_id: err.transaction_id, waiting })
  }

  /** The last packet-core error on the way to `peer`, if any. */
  lastErrorFor(peer: string): PeerState['lastError'] {
    return this.peers.get(peer)?.lastError ?? null
  }

  private count(reason: string): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
  }

  // ---- introspection -----------------------------------------------------------------------

  routeTable(): Array<RouteCandidate & { ageMs: number }> {
    const now = this.now()
    return this.routes.routes().map((r) => ({ ...r, ageMs: Math.round(now - r.updatedAt) }))
  }

  neighbourTable(): NeighbourInfo[] {
    const now = this.now()
    return [...this.neighbours.values()].map((n) => ({ nodeId: n.nodeId, link: n.link, address: n.address, etx: Math.round(n.etx.etx(n.intervalMs) * 100) / 100, intervalMs: n.intervalMs, lastSeenMs: Math.round(now - n.lastSeen) }))
  }

  linkTable(): Array<{ name: string; kind: string; state: LinkState; mtu: number; bitrate: number; budgetBytesPerS: number; lastError: string | null; stats: ReturnType<Link['stats']>; mesh: MeshLink['counters'] & { budgetRefused: number } }> {
    return [...this.links.values()].map((ml) => ({
      name: ml.name,
      kind: ml.link.kind,
      state: ml.link.state,
      mtu: ml.link.mtu,
      bitrate: ml.link.bitrate,
      budgetBytesPerS: ml.budget.bytesPerS,
      lastError: ml.lastError,
      stats: ml.link.stats(),
      mesh: { ...ml.counters, budgetRefused: ml.budget.refused },
    }))
  }

  inboxSince(since: number, limit: number): MeshInboxMessage[] {
    return this.inbox.list(since, limit)
  }

  pendingMessages(): MeshOutboxMessage[] {
    return this.outbox.pending()
  }

  stats() {
    return {
      node_id: this.nodeId,
      ...this.counters,
      dropped: { ...this.dropped },
      duplicates_suppressed: this.relayFilter.suppressed,
      routes: this.routes.size,
      neighbours: this.neighbours.size,
      handshakes: { ...this.sessions.stats, pending: this.sessions.pendingHandshakes },
      reassembly: this.reassembler.stats(),
      outbox: this.outbox.stats(),
      inbox: this.inbox.stats(),
    }
  }
}

/** The message ID of a broadcast: its source's node ID (first 12 bytes) and packet ID. */
export function broadcastId(src: Uint8Array, packetId: number): string {
  const b = Buffer.alloc(MESSAGE_ID_BYTES)
  b.set(src.subarray(0, 12), 0)
  b.writeUInt32BE(packetId >>> 0, 12)
  return b.toString('hex')
}

