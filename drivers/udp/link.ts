/**
 * The UDP link: AI-TCP frames as UDP datagrams on one IP segment (a LAN, a veth, loopback).
 * One datagram carries one frame; the link never looks inside it.
 *
 * Addresses are IP literals, `a.b.c.d:port` or `[v6addr]:port` (a link-local IPv6 address with
 * its `%interface` scope). There is no DNS: these are link-level addresses, like MACs.
 *
 * - Sending: `send(frame, { to: 'host:port' })` is unicast. Without `to` the frame is a broadcast:
 *   it goes to the multicast group (when discovery is on) and to every static peer, one datagram
 *   each. A broadcast with nowhere to go (discovery off, no peers) is dropped and counted as
 *   `no-destination`. A frame counts as sent once the kernel took it for at least one destination.
 * - MTU 1200 by default: IPv6 guarantees 1280-byte packets on every link, less 40 bytes of IPv6
 *   and 8 of UDP header leaves 1232; 1200 leaves room for a tunnel or VLAN header on the way, so a
 *   frame is never IP-fragmented (a lost fragment loses the whole datagram). QUIC picks 1200 for
 *   the same reason (RFC 9000, section 14).
 * - Link-local discovery: with `discovery` on (the default) the link joins a multicast group with
 *   TTL/hop limit 1, so broadcasts stay on the segment. IPv4 default group 239.255.75.71 (RFC 2365
 *   local scope, 239.255.0.0/16; 75.71 is "KG"), IPv6 ff02::4b47 (link-local scope, on
 *   `interface`). Every datagram received, unicast or to the group, is emitted as a `frame` with
 *   `from` = the sender's `host:port`, and its source enters the neighbour table (`neighbours()`,
 *   and a `neighbour` event the first time an address is heard). Replying to `from` is unicast.
 * - A link hears its own multicast (IP_MULTICAST_LOOP stays on so that two links on one host can
 *   discover each other): datagrams whose source is one of this host's addresses and this link's
 *   own port are ignored. Two links on one host must therefore use different ports.
 * - Beacons: with `beaconMs` set the link sends a 4-byte beacon (UDP_BEACON, `00 4b 47 42`) to the
 *   group at open and then every `beaconMs`, so that silent neighbours are learnt too. A received
 *   beacon refreshes the neighbour table and is never emitted as a frame. Its first byte, vk 0, is
 *   no AI-TCP frame's (docs/protocol.md: every frame starts with vk 0x11..0x13), so no frame of
 *   the mesh is ever mistaken for one.
 * - If the group cannot be joined (the interface has no multicast, no route to the group, the
 *   kernel refuses), open() rejects with ConfigRejectedError naming the interface and group: the
 *   link does not fall back silently. Set `discovery: false` and list `peers` for segments without
 *   multicast (loopback).
 * - Medium loss: with `interface` set the link watches it (every `watchMs`): when it goes down or
 *   loses carrier (a cable pulled, a veth whose peer went down) the link goes `down`, closes its
 *   sockets and reopens them when the interface is back (drivers/base-link.ts). With a specific
 *   `host` it watches that address the same way. A socket error while up also takes it `down`.
 *   UDP has no confirmation: a frame the kernel took just before the cut is lost, and the mesh
 *   above repeats it; frames still queued wait and go out when the link is up again.
 */
import type { EventEmitter } from 'node:events'
import dgram, { type RemoteInfo, type Socket, type SocketOptions } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { networkInterfaces } from 'node:os'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import { BaseLink, type BaseLinkOptions, type QueuedFrame } from '../base-link.js'
import type { LinkEvents, LinkKind, LinkStats, SendOptions, TapInterface } from '../link.js'
import { LINKTYPE } from '../../pcap/pcapng.js'
import { udpHeaders } from '../../pcap/encap.js'

/** Default multicast group, IPv4: RFC 2365 local scope (239.255.0.0/16). */
export const UDP_DEFAULT_GROUP_V4 = '239.255.75.71'
/** Default multicast group, IPv6: link-local scope, joined on `interface`. */
export const UDP_DEFAULT_GROUP_V6 = 'ff02::4b47'
/** Group port when the link's own port is ephemeral (0). */
export const UDP_DEFAULT_GROUP_PORT = 4747
export const UDP_DEFAULT_MTU = 1200
/** Largest UDP payload over IPv4 (65535 - 20 - 8). */
export const UDP_MAX_MTU = 65_507
/** The discovery beacon: vk 0 (no AI-TCP frame starts with it), then "KGB". */
export const UDP_BEACON: Readonly<Buffer> = Buffer.from([0x00, 0x4b, 0x47, 0x42])

const IFF_MULTICAST = 0x1000
/** Send errors worth another try a moment later. */
const TRANSIENT = new Set(['EAGAIN', 'EWOULDBLOCK', 'ENOBUFS', 'EINTR'])
/** Send errors that may mean the medium went away (checked before the link goes down). */
const MEDIUM = new Set(['ENETDOWN', 'ENODEV', 'ENXIO', 'EADDRNOTAVAIL'])
/** Send errors that mean this destination cannot be reached from here. */
const UNREACHABLE = new Set(['ENETUNREACH', 'EHOSTUNREACH', 'EHOSTDOWN', 'EACCES', 'EPERM', 'EINVAL', 'ECONNREFUSED'])

export interface UdpLinkOptions extends BaseLinkOptions {
  /** Address to bind, an IP literal; its family is the link's. Default '0.0.0.0'; '::' for IPv6. */
  host?: string
  /** Port to bind; 0 = ephemeral. Default 0. */
  port?: number
  /** NIC to use: the multicast interface and group membership, and the medium the link watches. */
  interface?: string
  /** Multicast group for discovery and broadcasts (UDP_DEFAULT_GROUP_V4 / _V6). */
  group?: string
  /** Port of the group: default `port`, or UDP_DEFAULT_GROUP_PORT when `port` is 0. */
  groupPort?: number
  /** Static neighbours, 'host:port' ('[v6]:port'): broadcasts go to each, as well as to the group. */
  peers?: string[]
  /** Join the group, send broadcasts to it, learn neighbours from it. Default true. */
  discovery?: boolean
  /** Send a discovery beacon to the group this often, ms (needs discovery). Default: no beacons. */
  beaconMs?: number
  /** Largest frame, bytes (default 1200, see above; at most 65507). */
  mtu?: number
  /** Nominal bit rate, bit/s. Default 100e6. */
  bitrate?: number
  /** How often the interface (or bound address) is checked, ms. Default 1000. */
  watchMs?: number
  /** Neighbours kept; the least recently heard are forgotten beyond it. Default 256. */
  neighbourLimit?: number
  /** Datagrams handed to the kernel and not yet confirmed. Default 16. */
  maxInFlight?: number
  /** Makes the sockets (tests may inject); default node:dgram's createSocket. */
  createSocket?: (opts: SocketOptions) => Socket
}

export interface UdpNeighbour {
  /** 'host:port' as frames from it carry in `from`. */
  address: string
  /** Local time it was last heard, ms since the epoch (frames and beacons). */
  lastSeen: number
  /** Frames received from it (beacons not counted). */
  framesIn: number
}

export interface UdpLinkEvents extends LinkEvents {
  /** An address heard for the first time (emitted before its first frame). */
  neighbour: [UdpNeighbour]
}

export interface UdpEndpoint {
  address: string
  port: number
  family: 4 | 6
}

/** Parses 'a.b.c.d:port' or '[v6addr]:port' (port 1..65535); null when it is neither. */
export function parseUdpAddress(s: unknown): UdpEndpoint | null {
  if (typeof s !== 'string') return null
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s)
  if (m === null) return null
  const address = m[1]!
  const port = Number(m[2])
  const family = isIP(address)
  if (family === 0 || !(port >= 1 && port <= 65_535)) return null
  if (s.startsWith('[') !== (family === 6)) return null
  return { address, port, family: family as 4 | 6 }
}

/** 'a.b.c.d:port' or '[v6addr]:port'. */
export function formatUdpAddress(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

function isMulticast(address: string, family: 4 | 6): boolean {
  if (family === 6) return /^ff[0-9a-f]{2}:/i.test(address)
  const first = Number(address.split('.')[0])
  return first >= 224 && first <= 239
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::'
}

/** The bare address: no `%scope`, no IPv4-mapped prefix. */
function bare(address: string): string {
  const a = address.split('%')[0]!.toLowerCase()
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a
}

function errCode(err: unknown): string {
  return (err as { code?: unknown }).code === undefined ? (err as Error).name ?? 'Error' : String((err as { code: unknown }).code)
}

function codedError(message: string, code: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code })
}

interface Resolved {
  host: string
  port: number
  family: 4 | 6
  iface: string | undefined
  discovery: boolean
  group: string
  groupPort: number
  peers: UdpEndpoint[]
  beaconMs: number
  mtu: number
  bitrate: number
  watchMs: number
  neighbourLimit: number
  maxInFlight: number
}

function resolveOptions(o: UdpLinkOptions): Resolved {
  const who = `link ${String(o.name)}`
  const reject = (field: string, why: string): never => {
    throw new ConfigRejectedError(`${who}: ${field} ${why}`, { field })
  }
  if (typeof o.name !== 'string' || o.name === '') reject('name', `must be a non-empty string, got ${JSON.stringify(o.name)}`)
  const host = o.host ?? '0.0.0.0'
  const fam = typeof host === 'string' ? isIP(host) : 0
  if (fam === 0) reject('host', `${JSON.stringify(host)} is not an IP address (bind address, e.g. '0.0.0.0', '::', '10.0.0.1')`)
  const family = fam as 4 | 6
  const port = o.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65_535) reject('port', `${JSON.stringify(port)} is not a port (0..65535, 0 = ephemeral)`)
  const iface = o.interface
  if (iface !== undefined && (typeof iface !== 'string' || !/^[^\s/%]{1,15}$/.test(iface))) reject('interface', `${JSON.stringify(iface)} is not an interface name`)
  const discovery = o.discovery ?? true
  const group = o.group ?? (family === 4 ? UDP_DEFAULT_GROUP_V4 : UDP_DEFAULT_GROUP_V6)
  if (typeof group !== 'string' || isIP(group) !== family || !isMulticast(group, family)) {
    reject('group', `${JSON.stringify(group)} is not an IPv${family} multicast address (the family of host ${host})`)
  }
  if (discovery && family === 6 && /^ff[0-9a-f]2:/i.test(group) && iface === undefined) {
    reject('interface', `must be given for IPv6 discovery: link-local group ${group} is joined on one interface`)
  }
  const groupPort = o.groupPort ?? (port === 0 ? UDP_DEFAULT_GROUP_PORT : port)
  if (!Number.isInteger(groupPort) || groupPort < 1 || groupPort > 65_535) reject('groupPort', `${JSON.stringify(groupPort)} is not a port (1..65535)`)
  if (o.peers !== undefined && !Array.isArray(o.peers)) reject('peers', `must be an array of 'host:port' strings`)
  const peers = (o.peers ?? []).map((p, i) => {
    const e = parseUdpAddress(p)
    if (e === null) return reject(`peers[${i}]`, `${JSON.stringify(p)} is not an IP 'host:port' (IPv6 as '[addr]:port', port 1..65535)`)
    if (e.family !== family) return reject(`peers[${i}]`, `${JSON.stringify(p)} is IPv${e.family} but the link is bound to IPv${family} host ${host}`)
    return e
  })
  const beaconMs = o.beaconMs ?? 0
  if (o.beaconMs !== undefined) {
    if (!Number.isInteger(beaconMs) || beaconMs < 10) reject('beaconMs', `${JSON.stringify(o.beaconMs)} is not a whole number of ms >= 10`)
    if (!discovery) reject('beaconMs', 'needs discovery (beacons go to the multicast group)')
  }
  const mtu = o.mtu ?? UDP_DEFAULT_MTU
  if (!Number.isInteger(mtu) || mtu < 1 || mtu > UDP_MAX_MTU) reject('mtu', `${JSON.stringify(mtu)} is not a datagram size (1..${UDP_MAX_MTU})`)
  const bitrate = o.bitrate ?? 100e6
  if (typeof bitrate !== 'number' || !(bitrate > 0) || !Number.isFinite(bitrate)) reject('bitrate', `${JSON.stringify(bitrate)} is not a positive bit rate`)
  const watchMs = o.watchMs ?? 1000
  if (!Number.isInteger(watchMs) || watchMs < 10) reject('watchMs', `${JSON.stringify(watchMs)} is not a whole number of ms >= 10`)
  const neighbourLimit = o.neighbourLimit ?? 256
  if (!Number.isInteger(neighbourLimit) || neighbourLimit < 1) reject('neighbourLimit', `${JSON.stringify(neighbourLimit)} is not a positive whole number`)
  const maxInFlight = o.maxInFlight ?? 16
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) reject('maxInFlight', `${JSON.stringify(maxInFlight)} is not a positive whole number`)
  return { host, port, family, iface, discovery, group, groupPort, peers, beaconMs, mtu, bitrate, watchMs, neighbourLimit, maxInFlight }
}

export interface UdpLink {
  on(event: 'neighbour', listener: (n: UdpNeighbour) => void): this
  on<K extends keyof LinkEvents>(event: K, listener: (...args: LinkEvents[K]) => void): this
  once(event: 'neighbour', listener: (n: UdpNeighbour) => void): this
  once<K extends keyof LinkEvents>(event: K, listener: (...args: LinkEvents[K]) => void): this
  off(event: 'neighbour', listener: (n: UdpNeighbour) => void): this
  off<K extends keyof LinkEvents>(event: K, listener: (...args: LinkEvents[K]) => void): this
}

export class UdpLink extends BaseLink {
  readonly kind: LinkKind = 'udp'
  readonly mtu: number
  readonly bitrate: number
  /** The bind address, the group (null when discovery is off) and the static peers, as resolved. */
  readonly host: string
  readonly family: 4 | 6
  readonly group: string | null
  readonly groupPort: number
  readonly peers: readonly string[]
  private readonly cfg: Resolved
  private readonly createSocket: (opts: SocketOptions) => Socket
  private sock: Socket | null = null
  private groupSock: Socket | null = null
  private boundPort = 0
  /** The multicast interface argument in use (IPv4 address of the NIC, or '::%nic'). */
  private mcastIf: string | undefined
  private ready = false
  /** Bumped whenever the sockets are replaced: callbacks of older sockets are ignored. */
  private gen = 0
  private inFlight = 0
  private retryTimer: NodeJS.Timeout | null = null
  private watchTimer: NodeJS.Timeout | null = null
  private beaconTimer: NodeJS.Timeout | null = null
  private readonly table = new Map<string, UdpNeighbour>()
  private localCache = { at: -Infinity, set: new Set<string>() }
  /** Binds in progress, to fail when the sockets are closed under them. */
  private readonly binding = new Set<(err: Error) => void>()
  private selfHeard = 0
  private beaconsIn = 0
  private beaconsOut = 0

  constructor(opts: UdpLinkOptions) {
    const cfg = resolveOptions(opts)
    super({
      name: opts.name,
      ...(opts.queueLimit === undefined ? {} : { queueLimit: opts.queueLimit }),
      ...(opts.highWater === undefined ? {} : { highWater: opts.highWater }),
      ...(opts.backoffInitialMs === undefined ? {} : { backoffInitialMs: opts.backoffInitialMs }),
      ...(opts.backoffMaxMs === undefined ? {} : { backoffMaxMs: opts.backoffMaxMs }),
      ...(opts.now === undefined ? {} : { now: opts.now }),
    })
    this.cfg = cfg
    this.mtu = cfg.mtu
    this.bitrate = cfg.bitrate
    this.host = cfg.host
    this.family = cfg.family
    this.group = cfg.discovery ? cfg.group : null
    this.groupPort = cfg.groupPort
    this.peers = Object.freeze(cfg.peers.map((p) => formatUdpAddress(p.address, p.port)))
    this.createSocket = opts.createSocket ?? ((o) => dgram.createSocket(o))
  }

  /** The bound unicast address 'host:port' while the socket is open, else null. */
  address(): string | null {
    return this.sock === null || this.boundPort === 0 ? null : formatUdpAddress(this.host, this.boundPort)
  }

  /** Everyone heard so far (least recently heard first); copies. */
  neighbours(): UdpNeighbour[] {
    return [...this.table.values()].map((n) => ({ ...n }))
  }

  /** Checks `to` now: a TypeError names a bad destination at send() rather than later. */
  override send(frame: Uint8Array, opts: SendOptions = {}): boolean {
    if (opts.to !== undefined) this.destination(opts.to)
    return super.send(frame, opts)
  }

  private destination(to: unknown): UdpEndpoint {
    const e = parseUdpAddress(to)
    if (e === null) throw new TypeError(`link ${this.name}: destination ${JSON.stringify(to)} is not an IP 'host:port' (IPv6 as '[addr]:port', port 1..65535)`)
    if (e.family !== this.family) throw new TypeError(`link ${this.name}: destination ${JSON.stringify(to)} is IPv${e.family} but the link is bound to IPv${this.family} host ${this.host}`)
    return this.scoped(e)
  }

  /** An IPv6 link-local address without a scope gets the link's interface. */
  private scoped(e: UdpEndpoint): UdpEndpoint {
    if (e.family === 6 && this.cfg.iface !== undefined && !e.address.includes('%') && /^fe[89ab][0-9a-f]:/i.test(e.address)) {
      return { ...e, address: `${e.address}%${this.cfg.iface}` }
    }
    return e
  }

  // ---- the medium --------------------------------------------------------------------------

  /** The interface's address of the link's family, or undefined when it is absent or not up. */
  private interfaceAddress(iface: string): string | undefined {
    const addrs = networkInterfaces()[iface]
    const a = addrs?.find((x) => x.family === (this.family === 4 ? 'IPv4' : 'IPv6'))
    return a?.address
  }

  /** What the multicast calls take as the interface: its IPv4 address, or '::%nic'. */
  private multicastInterface(): string | undefined {
    const iface = this.cfg.iface
    if (iface === undefined) return undefined
    const addr = this.interfaceAddress(iface)
    if (addr === undefined) {
      throw codedError(`link ${this.name}: interface ${iface} is not present, not up, or has no IPv${this.family} address`, 'ENODEV')
    }
    return this.family === 4 ? addr : `::%${iface}`
  }

  /** False when the kernel says the interface has multicast off; true when it cannot tell. */
  private interfaceHasMulticast(iface: string): boolean {
    try {
      return (Number.parseInt(readFileSync(`/sys/class/net/${iface}/flags`, 'utf8').trim(), 16) & IFF_MULTICAST) !== 0
    } catch {
      return true
    }
  }

  private localAddresses(): Set<string> {
    const now = Date.now()
    if (now - this.localCache.at > 1000) {
      const set = new Set<string>()
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) set.add(bare(a.address))
      if (!isWildcard(this.host)) set.add(bare(this.host))
      this.localCache = { at: now, set }
    }
    return this.localCache.set
  }

  /** Is the medium there: the interface up with an address, or the bound address still local. */
  private mediumPresent(): boolean {
    const iface = this.cfg.iface
    if (iface !== undefined) {
      const addr = this.interfaceAddress(iface)
      if (addr === undefined) return false
      if (this.family === 4 && this.mcastIf !== undefined && addr !== this.mcastIf) return false
    }
    if (!isWildcard(this.host)) {
      this.localCache.at = -Infinity
      if (!this.localAddresses().has(bare(this.host))) return false
    }
    return true
  }

  private bind(sock: Socket, port: number, address: string, what: string, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // disconnect() or abort() while binding: the socket is closed and would never answer.
      const cancel = (err: Error) => {
        this.binding.delete(cancel)
        signal.removeEventListener('abort', onAbort)
        reject(err)
      }
      const onAbort = () => cancel(signal.reason instanceof Error ? signal.reason : new Error(`link ${this.name}: open aborted`))
      this.binding.add(cancel)
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      const onError = (err: Error) => {
        sock.off('listening', onListening)
        const code = errCode(err)
        cancel(codedError(`link ${this.name}: cannot bind UDP ${what} ${formatUdpAddress(address, port)}: ${code}${code === 'EADDRINUSE' ? ' (the port is taken)' : code === 'EADDRNOTAVAIL' ? ' (not an address of this host)' : ''}`, code, err))
      }
      const onListening = () => {
        sock.off('error', onError)
        this.binding.delete(cancel)
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      sock.once('error', onError)
      sock.once('listening', onListening)
      try {
        sock.bind({ port, address })
      } catch (err) {
        onError(err as Error)
      }
    })
  }

  protected async connect(signal: AbortSignal): Promise<void> {
    const gen = ++this.gen
    this.inFlight = 0
    const { discovery, iface, group, groupPort, port } = this.cfg
    const type = this.family === 4 ? 'udp4' : 'udp6'
    this.mcastIf = this.multicastInterface()
    if (discovery && iface !== undefined && !this.interfaceHasMulticast(iface)) {
      throw new ConfigRejectedError(`link ${this.name}: interface ${iface} has multicast off, so discovery cannot join group ${group}; set discovery: false and list static peers, or turn multicast on (ip link set ${iface} multicast on)`, { field: 'interface' })
    }
    // One socket when it can hear the group too; else a second one, bound to the group port.
    const single = discovery && isWildcard(this.host) && port === groupPort
    const sock = this.createSocket({ type, reuseAddr: discovery && port === groupPort })
    this.sock = sock
    // Listeners go on as soon as a socket is bound: an 'error' without one would throw.
    const attach = (s: Socket) => {
      s.on('message', (msg, rinfo) => this.onMessage(gen, msg, rinfo))
      s.on('error', (err) => this.socketError(gen, err))
      s.on('close', () => this.socketClosed(gen))
    }
    await this.bind(sock, port, this.host, 'address', signal)
    attach(sock)
    this.boundPort = sock.address().port
    let gsock: Socket | null = null
    if (discovery) {
      if (single) gsock = sock
      else {
        gsock = this.createSocket({ type, reuseAddr: true })
        this.groupSock = gsock
        await this.bind(gsock, groupPort, this.family === 4 ? '0.0.0.0' : '::', 'group port', signal)
        attach(gsock)
      }
      try {
        gsock.addMembership(group, this.mcastIf)
        sock.setMulticastTTL(1)
        sock.setMulticastLoopback(true)
        if (this.mcastIf !== undefined) sock.setMulticastInterface(this.mcastIf)
      } catch (err) {
        const code = errCode(err)
        throw new ConfigRejectedError(`link ${this.name}: cannot join multicast group ${group} on ${iface === undefined ? 'the default interface (no route to the group?)' : `interface ${iface}`}: ${code}; set discovery: false and list static peers for a segment without multicast`, { field: 'group', cause: err })
      }
    }
    if (signal.aborted) return
    this.localCache.at = -Infinity
    this.ready = true
    if (iface !== undefined || !isWildcard(this.host)) {
      this.watchTimer = setInterval(() => {
        if (gen === this.gen && this.ready && !this.mediumPresent()) this.lost(iface !== undefined ? `interface ${iface} went away` : `address ${this.host} went away`)
      }, this.cfg.watchMs)
      this.watchTimer.unref()
    }
    if (this.cfg.beaconMs > 0) {
      this.beacon()
      this.beaconTimer = setInterval(() => this.beacon(), this.cfg.beaconMs)
      this.beaconTimer.unref()
    }
  }

  protected async disconnect(): Promise<void> {
    this.ready = false
    this.gen++
    this.inFlight = 0
    for (const t of [this.retryTimer]) if (t !== null) clearTimeout(t)
    for (const t of [this.watchTimer, this.beaconTimer]) if (t !== null) clearInterval(t)
    this.retryTimer = this.watchTimer = this.beaconTimer = null
    const socks = [this.sock, this.groupSock].filter((s): s is Socket => s !== null)
    this.sock = this.groupSock = null
    this.boundPort = 0
    for (const cancel of [...this.binding]) cancel(codedError(`link ${this.name}: socket closed while binding`, 'ECANCELED'))
    await Promise.all(
      socks.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.removeAllListeners()
            s.on('error', () => {})
            try {
              s.close(() => resolve())
            } catch {
              resolve() // never bound, or closed already
            }
          }),
      ),
    )
  }

  private lost(reason: string): void {
    if (!this.ready) return
    this.ready = false
    this.mediumLost(reason)
  }

  private socketError(gen: number, err: Error): void {
    if (gen !== this.gen) return
    this.countError(errCode(err))
    this.lost(`socket error ${errCode(err)}`)
  }

  private socketClosed(gen: number): void {
    if (gen !== this.gen) return
    this.lost('socket closed')
  }

  // ---- receiving -----------------------------------------------------------------------------

  private isSelf(rinfo: RemoteInfo): boolean {
    return rinfo.port === this.boundPort && this.localAddresses().has(bare(rinfo.address))
  }

  private onMessage(gen: number, msg: Buffer, rinfo: RemoteInfo): void {
    if (gen !== this.gen) return
    if (this.isSelf(rinfo)) {
      this.selfHeard++
      return
    }
    const from = formatUdpAddress(rinfo.address, rinfo.port)
    const now = this.now()
    let n = this.table.get(from)
    if (n === undefined) {
      n = { address: from, lastSeen: now, framesIn: 0 }
      this.table.set(from, n)
      while (this.table.size > this.cfg.neighbourLimit) this.table.delete(this.table.keys().next().value!)
      ;(this as EventEmitter).emit('neighbour', { ...n })
    } else {
      n.lastSeen = now
      this.table.delete(from) // keep the map in least-recently-heard order
      this.table.set(from, n)
    }
    if (this.tapping) this.tapUdp('in', rinfo.address, rinfo.port, msg)
    if (msg.length === UDP_BEACON.length && msg.equals(UDP_BEACON)) {
      this.beaconsIn++
      return
    }
    if (msg.length === 0) {
      this.countError('empty-datagram')
      return
    }
    n.framesIn++
    this.deliver({ data: msg, from, at: Date.now() })
  }

  // ---- sending -------------------------------------------------------------------------------

  private broadcastTargets(): UdpEndpoint[] {
    const out: UdpEndpoint[] = []
    if (this.cfg.discovery) {
      const scoped = this.family === 6 && this.cfg.iface !== undefined && /^ff[0-9a-f]2:/i.test(this.cfg.group)
      out.push({ address: scoped ? `${this.cfg.group}%${this.cfg.iface}` : this.cfg.group, port: this.cfg.groupPort, family: this.family })
    }
    for (const p of this.cfg.peers) out.push(this.scoped(p))
    return out
  }

  private beacon(): void {
    const sock = this.sock
    const target = this.broadcastTargets()[0]
    if (sock === null || !this.ready || target === undefined) return
    const gen = this.gen
    try {
      if (this.tapping) this.tapUdp('out', target.address, target.port, UDP_BEACON)
      sock.send(UDP_BEACON, target.port, target.address, (err) => {
        if (gen !== this.gen) return
        if (err) this.countError(`beacon:${errCode(err)}`)
        else this.beaconsOut++
      })
    } catch (err) {
      this.countError(`beacon:${errCode(err)}`)
    }
  }

  protected pump(): void {
    const sock = this.sock
    if (sock === null || !this.ready || this.retryTimer !== null) return
    while (this.inFlight < this.cfg.maxInFlight) {
      const f = this.dequeue()
      if (f === undefined) return
      const dests = f.to === undefined ? this.broadcastTargets() : [this.destination(f.to)]
      if (dests.length === 0) {
        this.drop('no-destination', f.data.length)
        continue
      }
      this.transmit(sock, f, dests)
    }
  }

  private transmit(sock: Socket, f: QueuedFrame, dests: UdpEndpoint[]): void {
    const gen = this.gen
    this.inFlight++
    let left = dests.length
    const errs: unknown[] = []
    const done = (err: unknown) => {
      if (err) errs.push(err)
      if (--left > 0) return
      if (gen !== this.gen) {
        // The socket went under it: send it again on the next one (at least once).
        if (errs.length === dests.length && (this.state === 'down' || this.state === 'up')) {
          this.requeue(f)
          this.kick()
        }
        return
      }
      this.inFlight--
      this.settle(f, dests.length, errs)
      this.kick()
      if (this.state === 'closing') this.pump()
    }
    for (const d of dests) {
      if (this.tapping) this.tapUdp('out', d.address, d.port, f.data)
      try {
        sock.send(f.data, d.port, d.address, done)
      } catch (err) {
        queueMicrotask(() => done(err))
      }
    }
  }

  private settle(f: QueuedFrame, tried: number, errs: unknown[]): void {
    for (const e of errs) this.countError(errCode(e))
    if (errs.length < tried) return this.sent(f.data.length)
    const code = errCode(errs[0])
    if (TRANSIENT.has(code)) {
      this.requeue(f)
      if (this.retryTimer === null) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null
          this.kick()
          if (this.state === 'closing') this.pump()
        }, 10)
      }
      return
    }
    if (MEDIUM.has(code) && !this.mediumPresent()) {
      this.requeue(f)
      return this.lost(`send failed: ${code}`)
    }
    this.drop(UNREACHABLE.has(code) || MEDIUM.has(code) ? 'unreachable' : 'send-failed', f.data.length)
  }

  protected override async flush(): Promise<void> {
    const deadline = this.now() + 2000
    while ((this.queued > 0 || this.inFlight > 0) && this.now() < deadline && this.ready) {
      this.pump()
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  // ---- capture ---------------------------------------------------------------------------------

  override tapInterfaces(): TapInterface[] {
    return [{ linktype: LINKTYPE.RAW, name: this.name, description: `kairo-gw UDP link ${this.name} on ${this.address() ?? this.host}: one AI-TCP frame per datagram` }]
  }

  /**
   * The datagram as an IP packet. The local address is the bound one; a link bound to the
   * wildcard shows the loopback address towards loopback peers and the wildcard otherwise (the
   * kernel picks the real source per route, which the socket does not report).
   */
  private tapUdp(dir: 'in' | 'out', remoteHost: string, remotePort: number, data: Uint8Array): void {
    const remote = bare(remoteHost)
    let local = bare(this.host)
    if (isWildcard(this.host)) local = /^127\.|^::1$/.test(remote) ? remote : this.host
    const here = { host: local, port: this.boundPort ?? 0 }
    const there = { host: remote, port: remotePort }
    const [src, dst] = dir === 'out' ? [here, there] : [there, here]
    try {
      // The payload is handed over as it is: the sink copies it once, into its packet block.
      this.tap({ iface: 0, dir, head: udpHeaders({ srcHost: src.host, srcPort: src.port, dstHost: dst.host, dstPort: dst.port }, data), data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) })
    } catch {
      this.countError('tap-encode')
    }
  }

  override stats(): LinkStats & { address: string | null; neighbours: number; selfHeard: number; beaconsIn: number; beaconsOut: number } {
    return { ...super.stats(), address: this.address(), neighbours: this.table.size, selfHeard: this.selfHeard, beaconsIn: this.beaconsIn, beaconsOut: this.beaconsOut }
  }
}
