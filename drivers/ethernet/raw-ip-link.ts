/**
 * Raw IP link (npm `raw-socket`): kairo-gw frames as the payload of IPv4 datagrams of IP protocol
 * 253 (RFC 3692 "use for experimentation and testing"), for segments that have IP but no
 * multicast, or where opening the NIC with libpcap is not wanted. The kernel builds and checks
 * the IP header; the link strips it on receive (./frame.ts `stripIpv4Header`).
 *
 *   const link = new RawIpLink({ interface: 'eth1', peers: ['192.0.2.7'], broadcast: '192.0.2.255' })
 *   await link.open()
 *   link.send(frame)                      // broadcast: to `broadcast`, else one copy to each peer
 *   link.send(frame, { to: '192.0.2.7' }) // unicast
 *   link.on('frame', (f) => f.from)       // the sender's IPv4 address
 *
 * - MTU 1480 (a 1500-byte NIC − 20 bytes of IPv4 header) unless `mtu` says otherwise; the kernel
 *   fragments what does not fit the interface.
 * - The socket is bound to the interface (SO_BINDTODEVICE) and sends with TTL `ttl` (default 1:
 *   the datagrams never leave the segment). raw-socket cannot bind() an address: the kernel picks
 *   the source address (the interface's primary one for on-link peers). Received: protocol 253
 *   datagrams that arrived on the interface, addressed to one of its addresses or a broadcast
 *   address (255.255.255.255, `broadcast`, its subnets'), from anyone but us.
 * - Loss: like EthernetLink, the interface is watched (sysfs, every `pollMs`) and socket errors
 *   are listened to; down/away → `down`, then `up` again once it runs and has our address.
 *
 * The native module is imported inside open(). Raw sockets need root or CAP_NET_RAW.
 */
import type { Socket } from 'raw-socket'
import { isIPv4 } from 'node:net'
import { BaseLink, type BaseLinkOptions, type QueuedFrame } from '../base-link.js'
import type { LinkKind, SendOptions, TapHandle, TapInterface, TapSink } from '../link.js'
import { LINKTYPE } from '../../pcap/pcapng.js'
import { openLibpcapTap } from './capture.js'
import { IP_PROTOCOL_KAIRO, IPV4_MIN_HEADER_BYTES, stripIpv4Header } from './frame.js'
import {
  checkInt,
  checkInterfaceName,
  checkIPv4,
  codedError,
  errnoOf,
  interfaceIPv4,
  interfaceWithAddress,
  isRunning,
  MEDIUM_GONE,
  notRunningReason,
  readInterface,
  RecentlySent,
  reject,
  sleep,
  TRANSIENT,
} from './iface.js'
import { loadRawSocket } from './native.js'

export interface RawIpLinkOptions {
  /** The NIC to bind to, e.g. 'eth1'. At least one of `interface` and `address`. */
  interface?: string
  /** Our IPv4 address on it (default: the interface's first IPv4 address). */
  address?: string
  /** Neighbours' IPv4 addresses: a broadcast without `broadcast` goes to each of them. */
  peers?: string[]
  /** The segment's broadcast address (e.g. 192.0.2.255): one datagram per broadcast. */
  broadcast?: string
  /** IP protocol number (default 253). */
  protocol?: number
  /** Largest frame, bytes (default 1480). */
  mtu?: number
  /** IP time to live of what the link sends (default 1: one hop). */
  ttl?: number
  /** Link name; default `raw-ip:<interface or address>`. */
  name?: string
  /** How often the interface state is read from sysfs, ms (default 200). */
  pollMs?: number
  /** After the interface runs again, wait this long before sending, ms (default 2 × pollMs). */
  settleMs?: number
  /** Frames sent this long before a detected cut are sent again, ms (default 2 × pollMs). */
  resendWindowMs?: number
  queueLimit?: number
  highWater?: number
  backoffInitialMs?: number
  backoffMaxMs?: number
}

const DEFAULT_MTU = 1500 - IPV4_MIN_HEADER_BYTES
const MAX_MTU = 0xffff - IPV4_MIN_HEADER_BYTES
/** SOL_SOCKET / IPPROTO_IP option numbers on Linux (raw-socket exports the same). */
const SOL_SOCKET = 1
const IPPROTO_IP = 0
const SO_BROADCAST = 6
const SO_RCVBUF = 8
const SO_BINDTODEVICE = 25
const IP_TTL = 2
const RETRY_MIN_MS = 5
const RETRY_MAX_MS = 250

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0)
}

/** 198.18.0.1 / 255.255.255.248 → 198.18.0.7. */
export function subnetBroadcast(address: string, netmask: string): string {
  const b = (ipv4ToInt(address) | (~ipv4ToInt(netmask) >>> 0)) >>> 0
  return [b >>> 24, (b >>> 16) & 0xff, (b >>> 8) & 0xff, b & 0xff].join('.')
}

function checkOptions(o: RawIpLinkOptions): { name: string; peers: string[] } {
  if (typeof o !== 'object' || o === null) throw new TypeError('RawIpLink options must be an object')
  const name = o.name ?? `raw-ip:${String(o.interface ?? o.address)}`
  if (typeof name !== 'string' || name.length === 0) reject(String(name), 'name', 'must be a non-empty string')
  if (o.interface === undefined && o.address === undefined) reject(name, 'interface', 'or address must be given (the interface to bind to)')
  if (o.interface !== undefined) checkInterfaceName(name, 'interface', o.interface)
  if (o.address !== undefined) checkIPv4(name, 'address', o.address)
  if (o.peers !== undefined && !Array.isArray(o.peers)) reject(name, 'peers', 'must be a list of IPv4 addresses')
  const peers = o.peers ?? []
  peers.forEach((p, i) => {
    checkIPv4(name, `peers[${i}]`, p)
    if (p === o.address) reject(name, `peers[${i}]`, `is our own address (${p})`)
  })
  if (o.broadcast !== undefined) checkIPv4(name, 'broadcast', o.broadcast)
  if (peers.length === 0 && o.broadcast === undefined) reject(name, 'peers', 'or broadcast must be given: there is no multicast to find neighbours with')
  if (o.protocol !== undefined) checkInt(name, 'protocol', o.protocol, 1, 254)
  if (o.mtu !== undefined) checkInt(name, 'mtu', o.mtu, 1, MAX_MTU)
  if (o.ttl !== undefined) checkInt(name, 'ttl', o.ttl, 1, 255)
  if (o.pollMs !== undefined) checkInt(name, 'pollMs', o.pollMs, 1, 60_000)
  if (o.settleMs !== undefined) checkInt(name, 'settleMs', o.settleMs, 0, 60_000)
  if (o.resendWindowMs !== undefined) checkInt(name, 'resendWindowMs', o.resendWindowMs, 0, 60_000)
  return { name, peers: [...peers] }
}

export class RawIpLink extends BaseLink {
  readonly kind: LinkKind = 'ethernet'
  /** How this Ethernet link reaches the medium. */
  readonly transport = 'raw-ip' as const
  readonly mtu: number
  readonly protocol: number
  readonly peers: readonly string[]
  readonly broadcast: string | undefined
  private readonly ttl: number
  private readonly opts: RawIpLinkOptions
  private readonly pollMs: number
  private readonly settleMs: number
  private _bitrate = 1e9
  private ifname: string | undefined
  private ifindex = -1
  private local: string | undefined
  /** Every address of the interface, and the broadcast addresses we take datagrams for. */
  private ours = new Set<string>()
  private broadcasts = new Set<string>()
  private sock: Socket | undefined
  private inFlight: QueuedFrame | undefined
  /** Wait before another try after the kernel refused a datagram for now (ENOBUFS), ms. */
  private retryMs = RETRY_MIN_MS
  private gen = 0
  private watchTimer: NodeJS.Timeout | null = null
  private socketFailed: string | undefined
  private readonly recent: RecentlySent

  constructor(opts: RawIpLinkOptions) {
    const { name, peers } = checkOptions(opts)
    const base: BaseLinkOptions = { name }
    if (opts.queueLimit !== undefined) base.queueLimit = opts.queueLimit
    if (opts.highWater !== undefined) base.highWater = opts.highWater
    if (opts.backoffInitialMs !== undefined) base.backoffInitialMs = opts.backoffInitialMs
    if (opts.backoffMaxMs !== undefined) base.backoffMaxMs = opts.backoffMaxMs
    super(base)
    this.opts = { ...opts }
    this.mtu = opts.mtu ?? DEFAULT_MTU
    this.protocol = opts.protocol ?? IP_PROTOCOL_KAIRO
    this.peers = Object.freeze(peers)
    this.broadcast = opts.broadcast
    this.ttl = opts.ttl ?? 1
    this.pollMs = opts.pollMs ?? 200
    this.settleMs = opts.settleMs ?? 2 * this.pollMs
    this.recent = new RecentlySent(opts.resendWindowMs ?? 2 * this.pollMs, this.now)
    this.ifname = opts.interface
  }

  /** The interface's nominal speed (sysfs), or 1 Gbit/s when it reports none. */
  get bitrate(): number {
    return this._bitrate
  }

  /** Our IPv4 address once open (the source of what we send). */
  get address(): string | undefined {
    return this.local
  }

  /** The interface the link is bound to (given, or found from `address` at open). */
  get interfaceName(): string | undefined {
    return this.ifname
  }

  override tapInterfaces(): TapInterface[] {
    return [{ linktype: LINKTYPE.ETHERNET, name: this.name, description: `kairo-gw raw IP link ${this.name} on ${this.ifname ?? this.opts.interface ?? this.opts.address ?? '?'} (IP protocol ${IP_PROTOCOL_KAIRO})`, filter: `ip proto ${IP_PROTOCOL_KAIRO}` }]
  }

  /** Captured through libpcap on the interface, Ethernet frames with IP protocol 253 inside. */
  override async startTap(sink: TapSink): Promise<TapHandle> {
    const ifname = this.ifname ?? this.opts.interface
    if (ifname === undefined) throw new TypeError(`link ${this.name}: not open yet, so its interface is unknown; capture it once it is up`)
    return openLibpcapTap({
      interface: ifname,
      filter: `ip proto ${IP_PROTOCOL_KAIRO}`,
      // IPv4 source address at 14 + 12 in the Ethernet frame.
      direction: (f) => (this.local !== undefined && f.length >= 30 && f.subarray(26, 30).join('.') === this.local ? 'out' : 'in'),
      sink,
      onError: () => this.countError('tap-capture'),
    })
  }

  /** `opts.to`: an IPv4 address; omitted = broadcast (see RawIpLinkOptions). */
  override send(frame: Uint8Array, opts: SendOptions = {}): boolean {
    if (opts.to !== undefined && (typeof opts.to !== 'string' || !isIPv4(opts.to))) throw new TypeError(`link ${this.name}: 'to' must be an IPv4 address, got ${JSON.stringify(opts.to)}`)
    return super.send(frame, opts)
  }

  /** Interface name and our address on it, when the interface runs and has the address. */
  private resolve(): { ifname: string; address: string } | { problem: string; code: string } {
    const want = this.opts.address
    const ifname = this.opts.interface ?? (want !== undefined ? interfaceWithAddress(want) : undefined) ?? this.ifname
    if (ifname === undefined) return { problem: `no network interface has address ${want}`, code: 'EADDRNOTAVAIL' }
    const info = readInterface(ifname)
    if (info === undefined) return { problem: `network interface ${ifname} does not exist`, code: 'ENODEV' }
    if (!isRunning(info)) return { problem: `network interface ${ifname} is not running (${notRunningReason(info)})`, code: 'ENETDOWN' }
    const addrs = interfaceIPv4(ifname).map((a) => a.address)
    const address = want ?? addrs[0]
    if (address === undefined) return { problem: `network interface ${ifname} has no IPv4 address`, code: 'EADDRNOTAVAIL' }
    if (!addrs.includes(address)) return { problem: `network interface ${ifname} does not have address ${address}`, code: 'EADDRNOTAVAIL' }
    this.ifindex = info.ifindex
    this._bitrate = info.speedMbps !== undefined ? info.speedMbps * 1e6 : 1e9
    return { ifname, address }
  }

  protected async connect(signal: AbortSignal): Promise<void> {
    const reconnecting = this.state === 'down'
    const raw = await loadRawSocket()
    let where = this.resolve()
    while ('problem' in where && reconnecting && this.state === 'down') {
      await sleep(this.pollMs, signal)
      where = this.resolve()
    }
    if ('problem' in where) throw codedError(`link ${this.name}: ${where.problem}`, where.code)
    this.ifname = where.ifname
    this.local = where.address
    this.learnAddresses(where.ifname)
    let sock: Socket
    try {
      sock = raw.createSocket({ protocol: this.protocol, addressFamily: raw.AddressFamily.IPv4, bufferSize: 65_536 })
    } catch (err) {
      const code = errnoOf(err)
      const hint = code === 'EPERM' || code === 'EACCES' ? ' (raw sockets need root or CAP_NET_RAW)' : ''
      throw codedError(`link ${this.name}: cannot open a raw IPv4 socket for protocol ${this.protocol}: ${(err as Error).message}${hint}`, code, err)
    }
    this.sock = sock
    this.socketFailed = undefined
    sock.on('message', (buf) => this.onDatagram(sock, buf))
    sock.on('error', (err) => this.onSocketError(sock, err))
    sock.on('close', () => undefined)
    try {
      const dev = Buffer.from(`${where.ifname}\0`)
      sock.setOption(SOL_SOCKET, SO_BINDTODEVICE, dev, dev.length)
      sock.setOption(SOL_SOCKET, SO_BROADCAST, 1)
      sock.setOption(SOL_SOCKET, SO_RCVBUF, 1 << 20)
      sock.setOption(IPPROTO_IP, IP_TTL, this.ttl)
    } catch (err) {
      throw codedError(`link ${this.name}: cannot bind the raw socket to ${where.ifname}: ${(err as Error).message}`, errnoOf(err), err)
    }
    if (reconnecting && this.settleMs > 0) {
      await sleep(this.settleMs, signal)
      const again = this.resolve()
      if ('problem' in again || again.ifname !== where.ifname) throw codedError(`link ${this.name}: ${'problem' in again ? again.problem : 'the interface changed'}`, 'ENETDOWN')
    }
    if (this.socketFailed !== undefined) throw codedError(`link ${this.name}: raw socket failed: ${this.socketFailed}`, 'EIO')
    this.startWatch()
  }

  protected async disconnect(): Promise<void> {
    this.stopWatch()
    this.gen++
    this.recent.clear()
    const f = this.inFlight
    this.inFlight = undefined
    // A frame the socket still held when the link closes (a lost medium requeued it in lost()).
    if (f !== undefined) {
      if (this.state === 'down') this.requeue(f)
      else this.drop('closed', f.data.length)
    }
    const sock = this.sock
    this.sock = undefined
    if (sock !== undefined) {
      try {
        sock.close()
      } catch {
        // already closed
      }
    }
  }

  /** close() waits for the frame the socket holds too, not only for the queue. */
  protected override async flush(): Promise<void> {
    const deadline = this.now() + 2000
    while ((this.queued > 0 || this.inFlight !== undefined) && this.now() < deadline && this.state === 'closing') {
      this.pump()
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  /**
   * The interface's addresses (the kernel picks the source address of what we send, which need
   * not be `address`, so answers may come to any of them) and their subnets' broadcast addresses.
   */
  private learnAddresses(ifname: string): Set<string> {
    const addrs = interfaceIPv4(ifname)
    this.ours = new Set(addrs.map((a) => a.address))
    this.broadcasts = new Set(['255.255.255.255', ...(this.broadcast === undefined ? [] : [this.broadcast]), ...addrs.map((a) => subnetBroadcast(a.address, a.netmask))])
    return this.ours
  }

  private startWatch(): void {
    this.stopWatch()
    this.watchTimer = setInterval(() => this.checkInterface(), this.pollMs)
    this.watchTimer.unref()
  }

  private stopWatch(): void {
    if (this.watchTimer !== null) clearInterval(this.watchTimer)
    this.watchTimer = null
  }

  private checkInterface(): void {
    if (this.state !== 'up' || this.ifname === undefined) return
    const info = readInterface(this.ifname)
    if (info === undefined || !isRunning(info)) return this.lost(notRunningReason(info))
    if (info.ifindex !== this.ifindex) return this.lost('replaced')
    if (this.socketFailed !== undefined) return this.lost('socket')
    if (this.local !== undefined && !this.learnAddresses(this.ifname).has(this.local)) return this.lost('address')
  }

  private lost(reason: string): void {
    if (this.state !== 'up') return
    // Newest first to the head of the queue: the frame in the socket, then what left before it.
    const held = this.inFlight
    this.inFlight = undefined
    if (held !== undefined) this.requeue(held)
    const inFlight = this.recent.takeInFlight()
    for (let i = inFlight.length - 1; i >= 0; i--) this.requeue(inFlight[i]!)
    this.mediumLost(reason)
  }

  private onSocketError(sock: Socket, err: Error): void {
    if (sock !== this.sock) return
    this.socketFailed = err.message
    this.countError('socket')
    const info = this.ifname === undefined ? undefined : readInterface(this.ifname)
    this.lost(info === undefined || !isRunning(info) ? notRunningReason(info) : 'socket')
  }

  private onDatagram(sock: Socket, buf: Buffer): void {
    if (sock !== this.sock) return
    const d = stripIpv4Header(buf, this.protocol)
    if (!d.ok) return this.countError(`rx:${d.reason}`)
    if (this.ours.has(d.src)) return // our own broadcast, looped back
    if (!this.ours.has(d.dst) && !this.broadcasts.has(d.dst)) return // not for us
    if (d.payload.length === 0) return this.countError('rx:empty')
    this.deliver({ data: Buffer.from(d.payload), from: d.src, at: Date.now() })
  }

  protected pump(): void {
    if (this.inFlight !== undefined || this.sock === undefined) return
    if (this.state !== 'up' && this.state !== 'closing') return
    const f = this.dequeue()
    if (f === undefined) return
    const dests = f.to !== undefined ? [f.to] : this.broadcast !== undefined ? [this.broadcast] : [...this.peers]
    this.inFlight = f
    this.sendTo(this.sock, f, dests, 0, this.gen)
  }

  /** Sends `f` to dests[i], then to the rest; one frame in the socket at a time. */
  private sendTo(sock: Socket, f: QueuedFrame, dests: string[], i: number, gen: number): void {
    sock.send(f.data, 0, f.data.length, dests[i]!, (err) => {
      if (gen !== this.gen || this.inFlight !== f) return // disconnected meanwhile: disconnect() took care of f
      if (err !== null) {
        const code = errnoOf(err)
        this.countError(`tx:${code}`)
        if (TRANSIENT.has(code)) {
          setTimeout(() => {
            if (gen === this.gen && this.inFlight === f && this.sock === sock) this.sendTo(sock, f, dests, i, gen)
          }, this.retryMs)
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS)
          return
        }
        if (MEDIUM_GONE.has(code) && this.state === 'up') {
          this.inFlight = undefined
          this.requeue(f)
          const info = this.ifname === undefined ? undefined : readInterface(this.ifname)
          this.lost(info === undefined || !isRunning(info) ? notRunningReason(info) : `tx:${code}`)
          return
        }
        if (dests.length === 1) {
          this.inFlight = undefined
          this.drop('tx-error', f.data.length)
          this.pump()
          return
        }
        // One neighbour of several refused it: the others still get it.
      }
      if (err === null) this.retryMs = RETRY_MIN_MS
      if (i + 1 < dests.length) return this.sendTo(sock, f, dests, i + 1, gen)
      this.inFlight = undefined
      this.recent.add(f)
      this.sent(f.data.length)
      this.pump()
    })
  }
}
