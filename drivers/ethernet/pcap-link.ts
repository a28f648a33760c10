/**
 * Raw Ethernet link over libpcap (npm `cap`, vendored with fixes at drivers/ethernet/vendor/cap):
 * frames of kairo-gw's own EtherType 0x88B5 (IEEE 802 Local Experimental EtherType 1) straight
 * on a NIC, no IP needed. Frame layout and codec: ./frame.ts.
 *
 *   const link = new EthernetLink({ interface: 'eth1' })
 *   await link.open()
 *   link.send(frame)                               // broadcast (ff:ff:ff:ff:ff:ff)
 *   link.send(frame, { to: 'aa:bb:cc:dd:ee:ff' })  // unicast
 *   link.on('frame', (f) => f.from)                // the sender's MAC, 'aa:bb:cc:dd:ee:ff'
 *
 * - MTU: interface MTU − 2 (the payload length field): 1498 on a 1500-byte NIC; `mtu` caps it.
 *   Read from /sys/class/net/<if>/mtu, again on every (re)connect and while up.
 * - Receives frames of our EtherType addressed to our MAC or to a group address (broadcast),
 *   from any other MAC; never our own (a BPF filter keeps them out; checked again here).
 *   Frames whose length field does not fit are counted in `stats().errors` (`rx:length`, ...).
 * - Loss: the interface is watched every `pollMs` (ifindex, MAC, flags, operstate in sysfs) and
 *   libpcap errors are listened to; when it goes down, away or is replaced the link goes `down`,
 *   waits for the interface to run again, lets the segment settle (`settleMs`, so that a peer
 *   watching the same cut is listening again before frames go out), and is `up` again. Frames
 *   sent in the last `resendWindowMs` before a cut are sent again (at least once, link.ts).
 *
 * The native module is imported inside open(): code that never opens an EthernetLink does not
 * need libpcap. Capturing needs root or CAP_NET_RAW.
 */
import type { Cap } from 'cap'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import { BaseLink, type BaseLinkOptions } from '../base-link.js'
import type { LinkKind, SendOptions, TapHandle, TapInterface, TapSink } from '../link.js'
import { LINKTYPE } from '../../pcap/pcapng.js'
import { openLibpcapTap } from './capture.js'
import { BROADCAST_MAC, decodeEthernetFrame, encodeEthernetFrame, ETHERTYPE_KAIRO, formatMac, isGroupMac, LENGTH_FIELD_BYTES, MAX_PAYLOAD_BYTES, parseMac } from './frame.js'
import {
  ARPHRD_ETHER,
  checkInt,
  checkInterfaceName,
  codedError,
  errnoOf,
  isRunning,
  MEDIUM_GONE,
  notRunningReason,
  readInterface,
  RecentlySent,
  reject,
  sleep,
  TRANSIENT,
  waitUntilRunning,
  type InterfaceInfo,
} from './iface.js'
import { loadCap } from './native.js'

export interface EthernetLinkOptions {
  /** The NIC, e.g. 'eth1' (required). */
  interface: string
  /** Link name for logs and stats; default `ethernet:<interface>`. */
  name?: string
  /** Upper bound on the MTU; the link uses min(mtu, interface MTU − 2). */
  mtu?: number
  /** libpcap ring buffer, bytes (default 2 MiB). */
  captureBufferBytes?: number
  /** How often the interface state is read from sysfs, ms (default 200). */
  pollMs?: number
  /** After the interface runs again, wait this long before sending, ms (default 2 × pollMs). */
  settleMs?: number
  /** Frames sent this long before a detected cut are sent again, ms (default 2 × pollMs). */
  resendWindowMs?: number
  /** Frames put on the wire per event-loop turn (default 16). */
  burst?: number
  queueLimit?: number
  highWater?: number
  backoffInitialMs?: number
  backoffMaxMs?: number
}

/** Largest interface MTU the 16-bit length field allows for (MTU − 2 ≤ 65535). */
const MAX_IF_MTU = MAX_PAYLOAD_BYTES + LENGTH_FIELD_BYTES
const DEFAULT_MTU = 1500 - LENGTH_FIELD_BYTES
const RETRY_MIN_MS = 5
const RETRY_MAX_MS = 250

function checkOptions(o: EthernetLinkOptions): { name: string } {
  if (typeof o !== 'object' || o === null) throw new TypeError('EthernetLink options must be an object')
  const name = o.name ?? `ethernet:${String(o.interface)}`
  if (typeof name !== 'string' || name.length === 0) reject(String(name), 'name', 'must be a non-empty string')
  checkInterfaceName(name, 'interface', o.interface)
  if (o.mtu !== undefined) checkInt(name, 'mtu', o.mtu, 1, MAX_PAYLOAD_BYTES)
  if (o.captureBufferBytes !== undefined) checkInt(name, 'captureBufferBytes', o.captureBufferBytes, 65_536, 1 << 30)
  if (o.pollMs !== undefined) checkInt(name, 'pollMs', o.pollMs, 1, 60_000)
  if (o.settleMs !== undefined) checkInt(name, 'settleMs', o.settleMs, 0, 60_000)
  if (o.resendWindowMs !== undefined) checkInt(name, 'resendWindowMs', o.resendWindowMs, 0, 60_000)
  if (o.burst !== undefined) checkInt(name, 'burst', o.burst, 1, 4096)
  return { name }
}

export class EthernetLink extends BaseLink {
  readonly kind: LinkKind = 'ethernet'
  /** How this Ethernet link reaches the medium. */
  readonly transport = 'pcap' as const
  readonly interface: string
  readonly etherType = ETHERTYPE_KAIRO
  private readonly mtuCap: number
  private readonly captureBufferBytes: number
  private readonly pollMs: number
  private readonly settleMs: number
  private readonly burst: number
  private _mtu: number
  private _bitrate = 1e9
  private macBytes: Buffer | undefined
  private macStr: string | undefined
  private ifindex = -1
  private cap: Cap | undefined
  /** libpcap copies each captured frame here (65535-byte snap length). */
  private readonly rx = Buffer.alloc(65_536)
  private watchTimer: NodeJS.Timeout | null = null
  private txPending = false
  /** Wait before another try after the kernel refused a frame for now (ENOBUFS: qdisc full), ms. */
  private retryMs = RETRY_MIN_MS
  /** Bumped by disconnect(): a transmit turn scheduled before it does nothing. */
  private gen = 0
  private captureFailed: string | undefined
  private readonly recent: RecentlySent

  constructor(opts: EthernetLinkOptions) {
    const { name } = checkOptions(opts)
    const base: BaseLinkOptions = { name }
    if (opts.queueLimit !== undefined) base.queueLimit = opts.queueLimit
    if (opts.highWater !== undefined) base.highWater = opts.highWater
    if (opts.backoffInitialMs !== undefined) base.backoffInitialMs = opts.backoffInitialMs
    if (opts.backoffMaxMs !== undefined) base.backoffMaxMs = opts.backoffMaxMs
    super(base)
    this.interface = opts.interface
    this.mtuCap = opts.mtu ?? MAX_PAYLOAD_BYTES
    this.captureBufferBytes = opts.captureBufferBytes ?? 2 * 1024 * 1024
    this.pollMs = opts.pollMs ?? 200
    this.settleMs = opts.settleMs ?? 2 * this.pollMs
    this.burst = opts.burst ?? 16
    this.recent = new RecentlySent(opts.resendWindowMs ?? 2 * this.pollMs, this.now)
    // Before open() the MTU is what the interface has now (or the Ethernet default).
    const info = readInterface(this.interface)
    this._mtu = Math.min(this.mtuCap, info !== undefined && info.mtu > LENGTH_FIELD_BYTES ? info.mtu - LENGTH_FIELD_BYTES : DEFAULT_MTU)
  }

  /** Largest payload: interface MTU − 2 (capped by the `mtu` option). */
  get mtu(): number {
    return this._mtu
  }

  /** The interface's nominal speed (sysfs), or 1 Gbit/s when it reports none. */
  get bitrate(): number {
    return this._bitrate
  }

  /** Our MAC address (`aa:bb:cc:dd:ee:ff`) once open. */
  /** BPF filter of a capture of this link: our EtherType, both ways. */
  get captureFilter(): string {
    return `ether proto 0x${ETHERTYPE_KAIRO.toString(16)}`
  }

  override tapInterfaces(): TapInterface[] {
    return [{ linktype: LINKTYPE.ETHERNET, name: this.name, description: `kairo-gw Ethernet link ${this.name} on ${this.interface} (EtherType 0x${ETHERTYPE_KAIRO.toString(16)})`, filter: this.captureFilter }]
  }

  /** Captured through a second libpcap handle on the interface (drivers/ethernet/capture.ts). */
  override async startTap(sink: TapSink): Promise<TapHandle> {
    return openLibpcapTap({
      interface: this.interface,
      filter: this.captureFilter,
      direction: (f) => (this.macBytes !== undefined && f.subarray(6, 12).equals(this.macBytes) ? 'out' : 'in'),
      sink,
      onError: () => this.countError('tap-capture'),
    })
  }

  get mac(): string | undefined {
    return this.macStr
  }

  /** `opts.to`: a unicast or group MAC `aa:bb:cc:dd:ee:ff`; omitted = broadcast. */
  override send(frame: Uint8Array, opts: SendOptions = {}): boolean {
    if (opts.to !== undefined && (typeof opts.to !== 'string' || parseMac(opts.to) === undefined)) throw new TypeError(`link ${this.name}: 'to' must be a MAC address like aa:bb:cc:dd:ee:ff, got ${JSON.stringify(opts.to)}`)
    return super.send(frame, opts)
  }

  private applyInterface(info: InterfaceInfo): void {
    if (info.type !== ARPHRD_ETHER) {
      throw new ConfigRejectedError(`link ${this.name}: interface ${this.interface} is not an Ethernet interface (ARPHRD type ${info.type})`, { field: 'interface' })
    }
    if (info.mtu <= LENGTH_FIELD_BYTES || info.mtu > MAX_IF_MTU) {
      throw new ConfigRejectedError(`link ${this.name}: interface ${this.interface} has MTU ${info.mtu}; the link needs 3..${MAX_IF_MTU}`, { field: 'interface' })
    }
    const mac = parseMac(info.mac)
    if (mac === undefined) throw new ConfigRejectedError(`link ${this.name}: interface ${this.interface} has no Ethernet address (${JSON.stringify(info.mac)})`, { field: 'interface' })
    this.macBytes = mac
    this.macStr = formatMac(mac)
    this.ifindex = info.ifindex
    this._mtu = Math.min(this.mtuCap, info.mtu - LENGTH_FIELD_BYTES)
    this._bitrate = info.speedMbps !== undefined ? info.speedMbps * 1e6 : 1e9
  }

  protected async connect(signal: AbortSignal): Promise<void> {
    const reconnecting = this.state === 'down'
    const { Cap } = await loadCap()
    let info = readInterface(this.interface)
    if (reconnecting) {
      info = await waitUntilRunning(this.interface, this.pollMs, signal, () => this.state !== 'down')
    } else if (info === undefined) {
      throw codedError(`link ${this.name}: network interface ${this.interface} does not exist`, 'ENODEV')
    } else if (!isRunning(info)) {
      throw codedError(`link ${this.name}: network interface ${this.interface} is not running (${notRunningReason(info)})`, 'ENETDOWN')
    }
    this.applyInterface(info)
    const cap = new Cap()
    let linkType: string
    try {
      // Our EtherType, not from us: outgoing frames and other protocols stay in the kernel.
      linkType = cap.open(this.interface, `ether proto 0x${ETHERTYPE_KAIRO.toString(16)} and not ether src ${this.macStr}`, this.captureBufferBytes, this.rx)
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err)
      throw codedError(`link ${this.name}: libpcap cannot open interface ${this.interface}: ${msg}`, errnoOf(err), err)
    }
    this.cap = cap
    this.captureFailed = undefined
    cap.on('packet', (bytes, truncated) => this.onPacket(bytes, truncated))
    cap.on('error', (err) => this.onCaptureError(cap, err))
    if (linkType !== 'ETHERNET') throw new ConfigRejectedError(`link ${this.name}: libpcap sees interface ${this.interface} as ${linkType}, not Ethernet`, { field: 'interface' })
    if (reconnecting && this.settleMs > 0) {
      // Listening already; the peer that saw the same cut reopens within about one poll.
      await sleep(this.settleMs, signal)
      const now = readInterface(this.interface)
      if (now === undefined || !isRunning(now) || now.ifindex !== this.ifindex) throw codedError(`link ${this.name}: interface ${this.interface} went ${notRunningReason(now)} again`, 'ENETDOWN')
    }
    if (this.captureFailed !== undefined) throw codedError(`link ${this.name}: capture on ${this.interface} failed: ${this.captureFailed}`, 'EIO')
    this.startWatch()
  }

  protected async disconnect(): Promise<void> {
    this.stopWatch()
    this.gen++
    this.txPending = false
    this.recent.clear()
    const cap = this.cap
    this.cap = undefined
    if (cap !== undefined) {
      try {
        cap.close()
      } catch {
        // already closed
      }
    }
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
    if (this.state !== 'up') return
    const info = readInterface(this.interface)
    if (info === undefined || !isRunning(info)) return this.lost(notRunningReason(info))
    if (info.ifindex !== this.ifindex || info.mac.toLowerCase() !== this.macStr) return this.lost('replaced')
    if (this.captureFailed !== undefined) return this.lost('capture')
    const mtu = Math.min(this.mtuCap, info.mtu - LENGTH_FIELD_BYTES)
    if (mtu !== this._mtu && mtu > 0) this._mtu = mtu
  }

  /** The medium went: what was sent just before is in flight, then BaseLink takes over. */
  private lost(reason: string): void {
    if (this.state !== 'up') return
    const inFlight = this.recent.takeInFlight()
    for (let i = inFlight.length - 1; i >= 0; i--) this.requeue(inFlight[i]!)
    this.mediumLost(reason)
  }

  private onCaptureError(cap: Cap, err: Error): void {
    if (cap !== this.cap) return
    this.captureFailed = err.message
    this.countError('capture')
    const info = readInterface(this.interface)
    this.lost(info === undefined || !isRunning(info) ? notRunningReason(info) : 'capture')
  }

  private onPacket(bytes: number, truncated: boolean): void {
    if (truncated) return this.countError('rx:truncated')
    const d = decodeEthernetFrame(this.rx.subarray(0, bytes))
    if (!d.ok) return this.countError(`rx:${d.reason}`)
    const mac = this.macBytes
    if (mac === undefined || d.src.equals(mac)) return // our own frame
    if (!isGroupMac(d.dst) && !d.dst.equals(mac)) return // for another station (promiscuous capture)
    if (d.payload.length === 0) return this.countError('rx:empty')
    this.deliver({ data: Buffer.from(d.payload), from: formatMac(d.src), at: Date.now() })
  }

  protected pump(): void {
    if (this.txPending || this.cap === undefined) return
    this.txPending = true
    const gen = this.gen
    setImmediate(() => this.transmit(gen))
  }

  /** One event-loop turn of sending: at most `burst` frames, so that send() sees backpressure. */
  private transmit(gen: number): void {
    if (gen !== this.gen) return
    this.txPending = false
    const cap = this.cap
    const mac = this.macBytes
    if (cap === undefined || mac === undefined || (this.state !== 'up' && this.state !== 'closing')) return
    for (let n = 0; n < this.burst; n++) {
      const f = this.dequeue()
      if (f === undefined) break
      if (f.data.length > this._mtu) {
        this.drop('mtu', f.data.length)
        continue
      }
      const wire = encodeEthernetFrame({ dst: f.to ?? BROADCAST_MAC, src: mac, payload: f.data })
      try {
        cap.send(wire)
      } catch (err) {
        const code = /not open/.test((err as Error).message) ? 'ENETDOWN' : errnoOf(err)
        if (TRANSIENT.has(code)) {
          this.requeue(f)
          this.countError(`tx:${code}`)
          this.txPending = true
          setTimeout(() => this.transmit(gen), this.retryMs)
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS)
          return
        }
        if (MEDIUM_GONE.has(code) && this.state === 'up') {
          this.requeue(f)
          this.countError(`tx:${code}`)
          const info = readInterface(this.interface)
          this.lost(info === undefined || !isRunning(info) ? notRunningReason(info) : `tx:${code}`)
          return
        }
        this.countError(`tx:${code}`)
        this.drop('tx-error', f.data.length)
        continue
      }
      this.retryMs = RETRY_MIN_MS
      this.recent.add(f)
      this.sent(f.data.length)
    }
    if (this.queued > 0) this.pump()
  }
}
