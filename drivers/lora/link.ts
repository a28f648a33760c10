/**
 * The LoRa link: a LoRa radio on a companion MCU behind a serial port, speaking either our
 * firmware-bridge protocol or RNode's KISS protocol (drivers/lora/backend.ts).
 *
 * - Hot-plug: when the device disappears the link goes `down`, keeps what is queued, retries with
 *   backoff, and comes back `up` with its configuration re-applied (drivers/base-link.ts).
 * - Frames larger than the radio's 255 bytes are cut with the packet core's fragmentation
 *   (appliance/core/fragment.ts) and reassembled on receipt, so the link's MTU is the largest
 *   fragmentable frame.
 * - Airtime discipline: the region's duty cycle over a rolling hour and its dwell time, the
 *   firmware's flow-control credits, and listen-before-talk when the firmware reports channel
 *   activity. When the budget is spent, send() returns false (backpressure) and frames wait;
 *   a frame that can never be sent (over the dwell time) is refused at send() with
 *   ResourceLimitError; frames that wait longer than `maxQueueAgeMs` are dropped, counted and
 *   reported.
 */
import { randomInt } from 'node:crypto'
import { SerialPort } from 'serialport'
import { ConfigRejectedError, ConnectionLostError, MalformedPacketError, RadioError, ResourceLimitError, TimeoutError } from '../../appliance/core/errors.js'
import { fragment, maxFragmentableBytes, Reassembler, FRAGMENT_VK } from '../../appliance/core/fragment.js'
import { BaseLink, type QueuedFrame } from '../base-link.js'
import type { LinkKind, LinkQuality, LinkStats, TapInterface } from '../link.js'
import { LINKTYPE } from '../../pcap/pcapng.js'
import { loraTapHeader } from '../../pcap/encap.js'
import { cobsDecode } from '../../firmware-bridge/cobs.js'
import type { DeviceInfo, RadioBackend, RadioRx } from './backend.js'
import { DutyCycle, type DutyEntry } from './duty-cycle.js'
import { DEFAULT_RADIO, LORA_PHY_MTU, REGIONS, radioConfigProblems, regionProblems, timeOnAirMs, type RadioConfig, type Region } from './radio.js'
import { FirmwareBridgeBackend } from '../../firmware-bridge/host.js'
import { RNodeBackend } from './rnode/host.js'

/** RNode firmware puts a one-byte header in every LoRa frame, so one frame carries 254 bytes. */
const RNODE_HEADER_BYTES = 1

/** What the link needs of a serial port (serialport's SerialPort fits). */
export interface SerialLike {
  open(cb: (err: Error | null) => void): void
  write(data: Uint8Array): boolean
  close(cb?: (err: Error | null) => void): void
  readonly isOpen: boolean
  on(event: 'data', fn: (d: Buffer) => void): this
  on(event: 'close', fn: (err?: Error & { disconnected?: boolean }) => void): this
  on(event: 'error', fn: (err: Error) => void): this
  removeAllListeners(): this
}

export interface LoRaLinkOptions {
  name: string
  /** Serial device, e.g. /dev/ttyACM0 or a PTY. */
  path: string
  baudRate?: number
  backend: 'firmware-bridge' | 'rnode' | (() => RadioBackend)
  radio?: Partial<RadioConfig>
  /** Regulatory region (REGIONS): duty cycle, dwell time, band, power. Default EU868. */
  region?: string
  /** Overrides the region's duty cycle (0..1, or null for none). */
  dutyCycle?: number | null
  /** Rolling duty-cycle window in radio time, ms (default 1 h, as ETSI EN 300 220 counts it). */
  dutyWindowMs?: number
  /** Hold frames while the firmware reports the channel busy. Default true. */
  listenBeforeTalk?: boolean
  /**
   * Share the channel with other transmitters (a mesh): hand the device one frame at a time and
   * wait a random 0..7 slots (a slot = the airtime of 16 bytes) before each, listening before
   * talking, so that two radios that both have something to send rarely start together (each
   * would miss the other's frame: a radio cannot receive while it transmits). Off by default: a
   * link alone on its channel keeps the device's queue full for the most goodput.
   */
  contention?: boolean
  /** Longest a frame may wait in the queue, ms, before it is dropped (counted). Default 10 min. */
  maxQueueAgeMs?: number
  /**
   * Radio time per real time: 1 on real radios; an emulator running at timeScale 0.01 makes
   * airtime pass 100 times faster, and the link must account for it the same way.
   */
  timeScale?: number
  queueLimit?: number
  highWater?: number
  backoffInitialMs?: number
  backoffMaxMs?: number
  /** Opens the serial port (tests may inject); default serialport's SerialPort. */
  openPort?: (path: string, baudRate: number) => SerialLike
}

export function defaultPort(path: string, baudRate: number): SerialLike {
  return new SerialPort({ path, baudRate, autoOpen: false }) as unknown as SerialLike
}

export function makeBackend(kind: LoRaLinkOptions['backend'], timeScale = 1): RadioBackend {
  if (typeof kind === 'function') return kind()
  if (kind === 'firmware-bridge') return new FirmwareBridgeBackend()
  // RNode firmware does not report TX done: the backend estimates it from the airtime. Four
  // frames on the device (its queue holds 200 packets, 6 KiB) keep it transmitting back to back
  // while the host waits on the estimates: SF7 goodput 0.44 -> 0.62 of the PHY limit, near what
  // its per-packet CSMA (DIFS + a random contention window) allows.
  if (kind === 'rnode') return new RNodeBackend({ timeScale, queueDepth: 4 })
  throw new TypeError(`unknown LoRa backend ${JSON.stringify(kind)}: use firmware-bridge or rnode`)
}

/** backend.start(), a timeout reported as no firmware answering on `path`. */
export async function startBackend(backend: RadioBackend, path: string, signal?: AbortSignal, who = ''): Promise<DeviceInfo> {
  try {
    return await backend.start(signal)
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err
    throw new TimeoutError(`${who}no ${backend.kind} firmware answered on ${path}: ${err.message}`, { transaction_id: err.transaction_id, cause: err })
  }
}

/** backend.configure(), a refusal reported as `radio.<field>` of the firmware on `path`. */
export async function configureBackend(backend: RadioBackend, info: DeviceInfo, path: string, cfg: RadioConfig, signal?: AbortSignal, who = ''): Promise<void> {
  try {
    await backend.configure(cfg, signal)
  } catch (err) {
    if (!(err instanceof ConfigRejectedError)) throw err
    const field = `radio.${err.field}`
    throw new ConfigRejectedError(`${who}the ${info.firmware} firmware on ${path} rejected ${field}: ${err.message}`, { field, transaction_id: err.transaction_id, cause: err })
  }
}

/** Nominal LoRa bit rate, bit/s: SF * (BW / 2^SF) * 4 / CR. */
export function loraBitrate(cfg: RadioConfig): number {
  return Math.round((cfg.spreadingFactor * (cfg.bandwidthHz / 2 ** cfg.spreadingFactor) * 4) / cfg.codingRate)
}

export class LoRaLink extends BaseLink {
  readonly kind: LinkKind = 'lora'
  readonly mtu: number
  readonly bitrate: number
  readonly radio: Readonly<RadioConfig>
  readonly region: Region
  private readonly opts: LoRaLinkOptions
  private readonly duty: DutyCycle
  private readonly scale: number
  private readonly reassembler = new Reassembler()
  private port: SerialLike | null = null
  private backend: RadioBackend | null = null
  private info: DeviceInfo | null = null
  private readonly radioMtu: number
  private ready = false
  private channelBusy = false
  private inFlight = 0
  /** contention: the random backoff before the next frame has been waited. */
  private backedOff = false
  private pumpTimer: NodeJS.Timeout | null = null
  private airtimeMs = 0
  private last: { rssi?: number; snr?: number } = {}

  constructor(opts: LoRaLinkOptions) {
    super({ name: opts.name, queueLimit: opts.queueLimit ?? 512, highWater: opts.highWater ?? 32, backoffInitialMs: opts.backoffInitialMs ?? 250, backoffMaxMs: opts.backoffMaxMs ?? 10_000 })
    this.opts = opts
    const region = REGIONS[opts.region ?? 'EU868']
    if (region === undefined) throw new TypeError(`unknown region ${JSON.stringify(opts.region)}; known: ${Object.keys(REGIONS).join(', ')}`)
    this.region = region
    const radio = { ...DEFAULT_RADIO, ...opts.radio }
    const problems = [...radioConfigProblems(radio), ...regionProblems(radio, region)]
    if (problems.length > 0) throw new ConfigRejectedError(`link ${opts.name}: ${problems.map((p) => p.message).join('; ')}`, { field: `radio.${problems[0]!.field}` })
    this.radio = Object.freeze(radio)
    this.scale = opts.timeScale ?? 1
    if (!(this.scale > 0 && this.scale <= 1)) throw new TypeError(`link ${opts.name}: timeScale must be in (0, 1], got ${String(opts.timeScale)}`)
    // The window is radio time, like the airtime counted in it.
    this.duty = new DutyCycle(opts.dutyCycle === undefined ? region.dutyCycle : opts.dutyCycle, (opts.dutyWindowMs ?? 3_600_000) * this.scale)
    // RNode firmware puts a one-byte header in every LoRa frame; ours carries the frame as is.
    this.radioMtu = LORA_PHY_MTU - (opts.backend === 'rnode' ? RNODE_HEADER_BYTES : 0)
    this.mtu = maxFragmentableBytes(this.radioMtu)
    this.bitrate = loraBitrate(radio)
  }

  /** The device the link last spoke with. */
  get device(): DeviceInfo | null {
    return this.info
  }

  /** Time on air of one radio frame, in real ms. */
  private airtime(bytes: number): number {
    return timeOnAirMs(this.radio, bytes) * this.scale
  }

  protected override split(frame: Buffer): Buffer[] {
    const parts = frame.length <= this.radioMtu ? [frame] : fragment(frame, this.radioMtu, randomInt(0, 0x1_0000_0000))
    const longest = timeOnAirMs(this.radio, Math.max(...parts.map((p) => p.length)))
    if (this.region.maxDwellMs !== null && longest > this.region.maxDwellMs) {
      throw new ResourceLimitError(`link ${this.name}: a ${Math.max(...parts.map((p) => p.length))}-byte radio frame is ${longest.toFixed(0)} ms on air, over the ${this.region.name} dwell time of ${this.region.maxDwellMs} ms; use a lower spreading factor`)
    }
    return parts
  }

  protected override congested(): boolean {
    return this.duty.waitMs(this.airtime(this.radioMtu), this.now()) > 0
  }

  protected async connect(signal: AbortSignal): Promise<void> {
    const baud = this.opts.baudRate ?? 115_200
    const port = (this.opts.openPort ?? defaultPort)(this.opts.path, baud)
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
    this.port = port
    const backend = makeBackend(this.opts.backend, this.scale)
    this.backend = backend
    const serialTap = this.opts.backend === 'firmware-bridge' ? { in: new BridgeTapSplitter(), out: new BridgeTapSplitter() } : null
    backend.attach((bytes) => {
      if (serialTap !== null && this.tapping) this.tapBridge('out', serialTap.out, bytes)
      if (port.isOpen) port.write(bytes)
    })
    port.on('data', (d: Buffer) => {
      if (serialTap !== null && this.tapping) this.tapBridge('in', serialTap.in, d)
      backend.receive(d)
    })
    port.on('error', (err) => {
      this.countError((err as { code?: string }).code ?? 'serial-error')
      this.lost('serial error')
    })
    port.on('close', () => this.lost('device closed'))
    backend.on('rx', (rx) => this.onRx(rx))
    backend.on('channel', (busy) => {
      this.channelBusy = busy
      if (!busy) this.kick()
    })
    backend.on('credits', () => this.kick())
    backend.on('deviceError', (err) => this.countError((err as { reason?: string }).reason ?? err.name))
    const who = `link ${this.name}: `
    this.info = await startBackend(backend, this.opts.path, signal, who)
    if (this.info.mtu < this.radioMtu) {
      // Frames are cut at send() time; a device that takes less than planned cannot carry them.
      throw new RadioError(`link ${this.name}: the ${this.info.firmware} firmware on ${this.opts.path} takes ${this.info.mtu}-byte radio frames; this link needs ${this.radioMtu}`, { reason: 'mtu' })
    }
    await configureBackend(backend, this.info, this.opts.path, this.radio, signal, who)
    await backend.setRadio(true, signal)
    this.ready = true
  }

  async setRadio(on: boolean, timeoutMs: number): Promise<void> {
    const backend = this.backend
    if (backend === null || !this.ready) throw new RadioError(`link ${this.name}: the radio cannot be switched ${on ? 'on' : 'off'}: the link is not open (${this.state})`, { reason: 'not-open' })
    try {
      await backend.setRadio(on, AbortSignal.timeout(timeoutMs))
    } catch (err) {
      if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') throw new TimeoutError(`link ${this.name}: the ${backend.kind} firmware on ${this.opts.path} did not confirm radio ${on ? 'on' : 'off'} within ${timeoutMs} ms`, { cause: err })
      throw err
    }
    // Off: nothing may be handed to it until the link is opened again (which switches it on).
    if (!on) this.ready = false
  }

  private lost(reason: string): void {
    if (!this.ready) return
    this.ready = false
    this.mediumLost(reason)
  }

  protected async disconnect(): Promise<void> {
    this.ready = false
    if (this.pumpTimer !== null) clearTimeout(this.pumpTimer)
    this.pumpTimer = null
    const backend = this.backend
    this.backend = null
    backend?.removeAllListeners()
    backend?.stop()
    const port = this.port
    this.port = null
    if (port !== null) {
      port.removeAllListeners()
      port.on('error', () => {})
      if (port.isOpen) await new Promise<void>((r) => port.close(() => r()))
    }
  }

  // ---- capture ---------------------------------------------------------------------------------

  override tapInterfaces(): TapInterface[] {
    const r = this.radio
    const air: TapInterface = { linktype: LINKTYPE.LORATAP, name: this.name, description: `kairo-gw LoRa link ${this.name}: ${(r.frequencyHz / 1e6).toFixed(3)} MHz SF${r.spreadingFactor} BW${r.bandwidthHz / 1000} kHz, radio frames as on air` }
    if (this.opts.backend !== 'firmware-bridge') return [air]
    return [air, { linktype: LINKTYPE.KAIRO_FB, name: `${this.name}/bridge`, description: `kairo-gw LoRa link ${this.name}: firmware-bridge frames on ${this.opts.path}` }]
  }

  private tapAir(dir: 'in' | 'out', payload: Buffer, rssi?: number, snr?: number): void {
    const r = this.radio
    const hdr = loraTapHeader({ frequencyHz: r.frequencyHz, bandwidthHz: r.bandwidthHz, spreadingFactor: r.spreadingFactor, syncWord: r.syncWord, ...(rssi === undefined ? {} : { rssi }), ...(snr === undefined ? {} : { snr }) })
    this.tap({ iface: 0, dir, head: hdr, data: payload })
  }

  private tapBridge(dir: 'in' | 'out', splitter: BridgeTapSplitter, bytes: Uint8Array): void {
    for (const f of splitter.push(bytes)) this.tap({ iface: 1, dir, data: f.data, ...(f.comment === undefined ? {} : { comment: f.comment }) })
  }

  private onRx(rx: RadioRx): void {
    if (this.tapping) this.tapAir('in', rx.payload, rx.rssi, rx.snr)
    this.last = { rssi: rx.rssi, snr: rx.snr }
    let data: Buffer | null = rx.payload
    if (data.length > 0 && data[0] === FRAGMENT_VK) {
      try {
        data = this.reassembler.push('air', data)
      } catch (err) {
        this.countError(err instanceof MalformedPacketError ? 'EMALFORMED' : 'reassembly')
        return
      }
    }
    if (data !== null) this.deliver({ data, rssi: rx.rssi, snr: rx.snr, at: Date.now() })
  }

  private schedule(ms: number): void {
    if (this.pumpTimer !== null) return
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = null
      this.maybeDrain()
      this.kick()
      if (this.state === 'closing') this.pump()
    }, Math.max(1, Math.min(ms, 60_000)))
  }

  protected pump(): void {
    const backend = this.backend
    if (backend === null || !this.ready) return
    const now = this.now()
    const maxAge = this.opts.maxQueueAgeMs ?? 600_000
    while (backend.credits > 0) {
      const f = this.peek()
      if (f === undefined) return
      if (now - f.enqueuedAt > maxAge) {
        this.dequeue()
        this.drop('expired', f.data.length)
        continue
      }
      const air = this.airtime(f.data.length)
      const wait = this.duty.waitMs(air, now)
      // Look again when the budget allows, or when the head frame would expire, whichever is first.
      if (wait > 0) return this.schedule(Math.min(wait, f.enqueuedAt + maxAge - now + 1))
      if (this.opts.contention === true) {
        if (this.inFlight > 0) return
        if (!this.backedOff) {
          this.backedOff = true
          return this.schedule(Math.max(1, Math.round(randomInt(0, 8) * this.airtime(16))))
        }
      }
      if (this.channelBusy && (this.opts.listenBeforeTalk ?? true) && this.info?.channelActivity) return this.schedule(20 + randomInt(0, 80))
      this.backedOff = false
      this.dequeue()
      const entry = this.duty.record(air, now)
      this.airtimeMs += air / this.scale
      this.transmit(backend, f, entry, air)
    }
  }

  private transmit(backend: RadioBackend, f: QueuedFrame, entry: DutyEntry | null, air: number): void {
    this.inFlight++
    backend.transmit(f.data).then(
      () => {
        this.inFlight--
        // The frame left the antenna later than it left the queue (serial line, the device's own
        // queue and CSMA): count its airtime from when it really started, as the regulator does.
        if (entry !== null) this.duty.restamp(entry, this.now() - air)
        // Captured once the radio reports it sent (TX done), so a frame retried is shown once.
        if (this.tapping) this.tapAir('out', f.data)
        this.sent(f.data.length)
        this.kick()
        if (this.state === 'closing') this.pump()
      },
      (err: unknown) => {
        this.inFlight--
        if (err instanceof RadioError && (err.reason === 'queue-full' || err.reason === 'busy' || err.reason === 'radio-off')) {
          this.countError(err.reason)
          this.requeue(f)
          this.schedule(50)
          if (entry !== null) this.duty.forget(entry)
        } else if (err instanceof ConnectionLostError) {
          this.requeue(f)
          this.lost('device stopped answering')
        } else {
          this.countError((err as { code?: string }).code ?? 'tx-failed')
          this.drop('tx-failed', f.data.length)
        }
      },
    )
  }

  protected override async flush(): Promise<void> {
    const deadline = this.now() + 5000
    while ((this.queued > 0 || this.inFlight > 0) && this.now() < deadline && this.ready) {
      this.pump()
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  override quality(): LinkQuality {
    const budget = this.duty.budgetMs
    const q: LinkQuality = { airtimeAvailable: budget === Infinity ? 1 : Math.max(0, 1 - this.duty.usedMs(this.now()) / budget) }
    if (this.last.rssi !== undefined) q.rssi = this.last.rssi
    if (this.last.snr !== undefined) q.snr = this.last.snr
    return q
  }

  override stats(): LinkStats & { airtimeMs: number; device: DeviceInfo | null; reassembly: ReturnType<Reassembler['stats']>; backend: Record<string, unknown> | null } {
    return { ...super.stats(), airtimeMs: Math.round(this.airtimeMs), device: this.info, reassembly: this.reassembler.stats(), backend: this.backend?.stats() ?? null }
  }
}

/**
 * Cuts the serial byte stream of one direction into firmware-bridge link frames for a capture:
 * split at the 0x00 delimiter, COBS-decoded. What is not valid COBS is kept as it was on the
 * line, with a comment, so an auditor sees line noise too. Bounded like the protocol's receiver.
 */
class BridgeTapSplitter {
  private buf: Buffer[] = []
  private size = 0

  push(bytes: Uint8Array): { data: Buffer; comment?: string }[] {
    const out: { data: Buffer; comment?: string }[] = []
    let start = 0
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] !== 0) continue
      const chunk = bytes.subarray(start, i)
      start = i + 1
      const whole = this.size === 0 ? Buffer.from(chunk) : Buffer.concat([...this.buf, chunk])
      this.buf = []
      this.size = 0
      if (whole.length === 0) continue
      try {
        out.push({ data: cobsDecode(whole) })
      } catch {
        out.push({ data: whole, comment: 'not valid COBS: the bytes as they were on the serial line' })
      }
    }
    if (start < bytes.length) {
      this.buf.push(Buffer.from(bytes.subarray(start)))
      this.size += bytes.length - start
      if (this.size > 1024) {
        out.push({ data: Buffer.concat(this.buf), comment: 'over 1024 bytes without a delimiter: the bytes as they were on the serial line' })
        this.buf = []
        this.size = 0
      }
    }
    return out
  }
}
