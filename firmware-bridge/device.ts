/**
 * The MCU side of firmware-bridge: the firmware logic of docs/firmware-bridge.md driving a
 * VirtualRadio (drivers/lora/device.ts). The emulator (firmware-bridge/emulator/) runs it on a
 * PTY; tests run it in-process against FirmwareBridgeBackend. It is also the reference a firmware
 * author can read next to the spec.
 *
 * Behaviour:
 * - Hello (SYN): a new session nonce opens a new session (sequence numbers from 0, queued
 *   Transmits of the old session dropped, a transmission on air finishes and returns its credit
 *   with Credits); the nonce of the current session means a retransmitted Hello: the same
 *   HelloAck again. A Hello of another protocol version gets a HelloAck with this firmware's
 *   version and no session.
 * - Configure: validated against the chip (chipConfigProblems: the chip's frequency, bandwidth,
 *   SF and power limits, or radioConfigProblems for a chip without limits; the first problem's
 *   field → Error BadConfig naming the Configure field, value and chip), then applied; while a transmission is on air it waits for its end.
 * - Transmit: queued up to `queueDepth` (queued plus on air; Error QueueFull beyond), sent one
 *   at a time, answered by TxDone (or Error RadioOff/TxFailed) carrying its token.
 * - Radio `rx` → Receive, `channel` → ChannelActivity (reliable, in order).
 * - RadioOnOff off fails every queued Transmit and the one on air with Error RadioOff.
 * - Reset: acknowledged, then everything is forgotten as after a power cycle.
 * - Without a session every frame but ACK_ONLY is answered with Error NoSession.
 * - Garbage is counted (stats().linkErrors and per kind), never fatal.
 */
import { ConfigRejectedError, RadioError } from '../appliance/core/errors.js'
import type { RadioRx } from '../drivers/lora/backend.js'
import type { DeviceProtocol, DeviceProtocolFactory, VirtualRadio } from '../drivers/lora/device.js'
import type { RadioConfig } from '../drivers/lora/radio.js'
import { CHIP_LIMITS, chipConfigProblems, chipLimitsOf, type ChipLimits, type ChipName } from './chips.js'
import {
  Capabilities,
  configKeyOf,
  DECODE_ERROR_KINDS,
  encodeFrame,
  ErrorCode,
  Flags,
  FrameDecoder,
  MAX_MESSAGE_BYTES,
  MAX_PAYLOAD_BYTES,
  PROTOCOL_VERSION,
  RadioChip,
  wireFieldOf,
  type LinkFrame,
  type Message,
  type MessageOf,
} from './codec.js'
import { DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DEAD_AFTER_HEARTBEATS, DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_RETRIES, DEFAULT_WINDOW, realClock, ReliableLink, type Clock } from './link.js'

export interface FirmwareBridgeDeviceOptions {
  /** Clock and timers (default real time); the emulator's Scheduler fits. */
  clock?: Clock
  /** HelloAck.firmware_name. Default "kairo-fb-emulator". */
  firmwareName?: string
  /** HelloAck.firmware_version. Default "1.0.0". */
  firmwareVersion?: string
  /** HelloAck.radio_chip. Default: the code of `chip`, else RadioChip.Emulated. */
  radioChip?: number
  /**
   * The radio chip this firmware drives (chips.ts CHIP_LIMITS): sets radio_chip, and every
   * Configure is checked against the chip's limits (frequency, bandwidth, spreading factor, TX
   * power) before the radio is touched; a value outside them is answered Error{BadConfig}. The
   * limits follow radio_chip, so `radioChip: RadioChip.SX1276` has the same effect. Chips
   * without limits (Emulated, Unknown, ...) are held to radioConfigProblems() only.
   */
  chip?: ChipName
  /** Transmissions held at once, queued plus on air (HelloAck.queue_depth). Default 4. */
  queueDepth?: number
  /** Largest radio payload, bytes (HelloAck.mtu). Default 255. */
  mtu?: number
  /** HelloAck.capabilities. Default ChannelActivity | FrequencyError | RxTimestamp. */
  capabilities?: number
  /** The protocol version this firmware speaks. Default PROTOCOL_VERSION; tests set others. */
  protocolVersion?: number
  ackTimeoutMs?: number
  maxRetries?: number
  deadAfterHeartbeats?: number
  window?: number
  /** Reliable frames waiting for the window before Receive/ChannelActivity are dropped. Default 64. */
  maxQueue?: number
  /** Wait before retrying a transmission the radio refused as busy, ms. Default 5. */
  busyRetryMs?: number
}

/** Every capability this implementation has. */
export const ALL_CAPABILITIES = Capabilities.ChannelActivity | Capabilities.FrequencyError | Capabilities.RxTimestamp

interface QueuedTx {
  token: number
  seq: number
  payload: Uint8Array
}

const clip = (s: string, max: number) => {
  const b = Buffer.from(s, 'utf8')
  return b.length <= max ? s : b.subarray(0, max).toString('utf8').replace(/\uFFFD+$/, '')
}

/** The firmware-bridge firmware over one VirtualRadio. */
export class FirmwareBridgeDevice implements DeviceProtocol {
  private readonly radio: VirtualRadio
  private readonly write: (bytes: Uint8Array) => void
  private readonly clock: Clock
  private readonly firmwareName: string
  private readonly firmwareVersion: string
  private readonly radioChip: number
  private readonly limits: ChipLimits | undefined
  private readonly queueDepth: number
  private readonly mtu: number
  private readonly capabilities: number
  private readonly protocolVersion: number
  private readonly busyRetryMs: number
  private readonly decoder: FrameDecoder
  private readonly link: ReliableLink
  private session: number | null = null
  private epoch = 0
  private helloAck: MessageOf<'HelloAck'> | null = null
  private queue: QueuedTx[] = []
  private inFlight: { token: number; epoch: number } | null = null
  private deferred: (() => void)[] = []
  private busyTimer: { cancel(): void } | null = null
  private boot: number
  private closed = false
  private counters = this.zeroCounters()
  private readonly listeners: { rx: (rx: RadioRx) => void; txDone: (d: { airtimeMs: number }) => void; channel: (busy: boolean) => void }

  constructor(radio: VirtualRadio, write: (bytes: Uint8Array) => void, options: FirmwareBridgeDeviceOptions = {}) {
    if (typeof write !== 'function') throw new TypeError('createFirmwareBridgeDevice: write must be a function')
    const int = (v: number | undefined, d: number, lo: number, hi: number, what: string) => {
      const x = v ?? d
      if (!Number.isInteger(x) || x < lo || x > hi) throw new TypeError(`createFirmwareBridgeDevice: ${what} must be an integer ${lo}..${hi}, got ${String(v)}`)
      return x
    }
    this.radio = radio
    this.write = write
    this.clock = options.clock ?? realClock
    this.firmwareName = options.firmwareName ?? 'kairo-fb-emulator'
    this.firmwareVersion = options.firmwareVersion ?? '1.0.0'
    if (options.chip !== undefined && !Object.hasOwn(CHIP_LIMITS, options.chip)) throw new TypeError(`createFirmwareBridgeDevice: chip must be one of ${Object.keys(CHIP_LIMITS).join(', ')}, got ${String(options.chip)}`)
    const chipCode = options.chip === undefined ? undefined : CHIP_LIMITS[options.chip].code
    this.radioChip = int(options.radioChip, chipCode ?? RadioChip.Emulated, 0, 255, 'radioChip')
    if (chipCode !== undefined && this.radioChip !== chipCode) throw new TypeError(`createFirmwareBridgeDevice: radioChip ${this.radioChip} contradicts chip ${String(options.chip)}`)
    this.limits = chipLimitsOf(this.radioChip)
    this.queueDepth = int(options.queueDepth, 4, 1, 255, 'queueDepth')
    this.mtu = int(options.mtu, MAX_PAYLOAD_BYTES, 1, MAX_PAYLOAD_BYTES, 'mtu')
    this.capabilities = int(options.capabilities, ALL_CAPABILITIES, 0, 0xffff_ffff, 'capabilities')
    this.protocolVersion = int(options.protocolVersion, PROTOCOL_VERSION, 0, 255, 'protocolVersion')
    this.busyRetryMs = int(options.busyRetryMs, 5, 0, 60_000, 'busyRetryMs')
    this.boot = this.clock.now()
    this.decoder = new FrameDecoder({ frame: (f) => this.onFrame(f) })
    this.link = new ReliableLink({
      write: (b) => this.out(b),
      clock: this.clock,
      ackTimeoutMs: int(options.ackTimeoutMs, DEFAULT_ACK_TIMEOUT_MS, 1, 600_000, 'ackTimeoutMs'),
      maxRetries: int(options.maxRetries, DEFAULT_MAX_RETRIES, 1, 1000, 'maxRetries'),
      deadAfterHeartbeats: int(options.deadAfterHeartbeats, DEFAULT_DEAD_AFTER_HEARTBEATS, 1, 1000, 'deadAfterHeartbeats'),
      window: int(options.window, DEFAULT_WINDOW, 1, 127, 'window'),
      maxQueue: int(options.maxQueue, 64, 1, 1 << 20, 'maxQueue'),
      onMessage: (m, f) => this.onMessage(m, f),
      onLost: () => this.endSession('hostLost'),
    })
    this.listeners = {
      rx: (rx) => this.onRadioRx(rx),
      txDone: (d) => this.onTxDone(d.airtimeMs),
      channel: (busy) => this.onChannel(busy),
    }
    radio.on('rx', this.listeners.rx)
    radio.on('txDone', this.listeners.txDone)
    radio.on('channel', this.listeners.channel)
  }

  /** True while a host session is open. */
  get inSession(): boolean {
    return this.session !== null
  }

  receive(bytes: Uint8Array): void {
    if (this.closed) return
    this.counters.bytesIn += bytes.length
    this.decoder.push(bytes)
    this.link.flushAck()
  }

  /** Power cycle: forgets the session, the queue and the counters. The radio is not touched. */
  reset(): void {
    this.link.close()
    this.session = null
    this.helloAck = null
    this.epoch++
    this.queue = []
    this.deferred = []
    this.inFlight = null
    this.busyTimer?.cancel()
    this.busyTimer = null
    this.decoder.reset()
    for (const k of DECODE_ERROR_KINDS) this.decoder.errors[k] = 0
    this.decoder.frames = 0
    this.counters = this.zeroCounters()
    this.boot = this.clock.now()
  }

  /** Stops for good: timers cancelled, radio listeners removed. */
  close(): void {
    this.reset()
    this.closed = true
    this.radio.off('rx', this.listeners.rx)
    this.radio.off('txDone', this.listeners.txDone)
    this.radio.off('channel', this.listeners.channel)
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = {
      ...this.counters,
      framesIn: this.decoder.frames,
      framesOut: this.link.stats.framesOut + this.counters.synOut + this.counters.noSessionOut,
      linkErrors: this.decoder.errorCount,
      retransmits: this.link.stats.retransmits,
      duplicates: this.link.stats.duplicates,
      outOfOrder: this.link.stats.outOfOrder,
      queued: this.queue.length,
      inFlight: this.inFlight === null ? 0 : 1,
      inSession: this.session === null ? 0 : 1,
    }
    for (const k of DECODE_ERROR_KINDS) out[`err_${k}`] = this.decoder.errors[k]
    return out
  }

  // -------------------------------------------------------------------------------------------

  private zeroCounters() {
    return { bytesIn: 0, rxOk: 0, rxCrcError: 0, rxDropped: 0, txOk: 0, txFail: 0, configures: 0, badConfigs: 0, sessions: 0, hostLost: 0, unexpected: 0, synOut: 0, noSessionOut: 0 }
  }

  private out(bytes: Uint8Array): void {
    if (!this.closed) this.write(bytes)
  }

  private onFrame(f: LinkFrame): void {
    if (f.flags & Flags.SYN) {
      if (f.message?.type === 'Hello') this.onHello(f.message)
      else this.counters.unexpected++
      return
    }
    if (this.session === null) {
      if (f.flags & Flags.ACK_ONLY) return
      this.counters.noSessionOut++
      const refSeq = f.flags & Flags.NEEDS_ACK ? f.seq : -1
      this.out(encodeFrame({ version: PROTOCOL_VERSION, flags: 0, seq: 0, ack: 0, message: { type: 'Error', code: ErrorCode.NoSession, refSeq, token: 0, field: '', message: 'no session: send Hello' } }))
      return
    }
    this.link.handle(f)
  }

  private sendSyn(m: MessageOf<'HelloAck'>): void {
    this.counters.synOut++
    this.out(encodeFrame({ version: this.protocolVersion, flags: Flags.SYN, seq: 0, ack: 0, message: m }))
  }

  private onHello(m: MessageOf<'Hello'>): void {
    const ack: MessageOf<'HelloAck'> = {
      type: 'HelloAck',
      protocolVersion: this.protocolVersion,
      session: m.session,
      firmwareName: this.firmwareName,
      firmwareVersion: this.firmwareVersion,
      radioChip: this.radioChip,
      mtu: this.mtu,
      queueDepth: this.queueDepth,
      credits: this.queueDepth - (this.inFlight === null ? 0 : 1),
      capabilities: this.capabilities,
    }
    if (m.protocolVersion !== this.protocolVersion) {
      this.sendSyn(ack)
      return
    }
    if (this.session === m.session && this.helloAck !== null && this.link.isOpen) {
      this.sendSyn(this.helloAck)
      return
    }
    this.endSession(null)
    this.session = m.session
    this.helloAck = ack
    this.counters.sessions++
    this.link.open(m.heartbeatMs > 0 ? m.heartbeatMs : DEFAULT_HEARTBEAT_MS)
    this.sendSyn(ack)
  }

  /** Ends the session (host lost, new Hello): queued Transmits are dropped silently. */
  private endSession(counter: 'hostLost' | null): void {
    if (counter) this.counters[counter]++
    this.link.close()
    this.session = null
    this.helloAck = null
    this.epoch++
    this.queue = []
    this.deferred = []
  }

  private send(m: Message): void {
    if (this.link.send(m) === null && (m.type === 'Receive' || m.type === 'ChannelActivity')) this.counters.rxDropped++
  }

  private error(code: number, refSeq: number, token: number, message: string, field = ''): void {
    this.send({ type: 'Error', code, refSeq, token, field, message: clip(message, MAX_MESSAGE_BYTES) })
  }

  private onMessage(m: Message, f: LinkFrame): void {
    const ref = f.flags & Flags.NEEDS_ACK ? f.seq : -1
    switch (m.type) {
      case 'Configure':
        if (this.inFlight !== null) this.deferred.push(() => this.applyConfigure(m.config, ref))
        else this.applyConfigure(m.config, ref)
        return
      case 'Transmit':
        this.onTransmit(m, ref)
        return
      case 'GetStatus':
        this.send({
          type: 'Status',
          rxOk: this.counters.rxOk >>> 0,
          rxCrcError: this.counters.rxCrcError >>> 0,
          txOk: this.counters.txOk >>> 0,
          txFail: this.counters.txFail >>> 0,
          queueFree: Math.max(0, this.queueDepth - this.queue.length - (this.inFlight === null ? 0 : 1)),
          uptimeMs: Math.max(0, Math.floor(this.clock.now() - this.boot)),
          radioOn: this.radio.isOn,
          linkErrors: this.decoder.errorCount >>> 0,
          retransmits: this.link.stats.retransmits >>> 0,
          config: { ...this.radio.config },
        })
        return
      case 'RadioOnOff':
        this.onRadioOnOff(m.on, ref)
        return
      case 'Reset':
        this.link.sendAck()
        this.reset()
        ;(this.radio as VirtualRadio & { reset?: () => void }).reset?.()
        return
      case 'Heartbeat':
        return
      default:
        this.counters.unexpected++
        if (ref >= 0) this.error(ErrorCode.Unsupported, ref, 0, `${m.type === 'Unknown' ? `message type ${m.bodyType}` : m.type} is not handled by the firmware`)
    }
  }

  private applyConfigure(cfg: RadioConfig, ref: number): void {
    this.counters.configures++
    const problem = chipConfigProblems(cfg, this.limits)[0]
    if (problem !== undefined) {
      this.counters.badConfigs++
      this.error(ErrorCode.BadConfig, ref, 0, problem.message, wireFieldOf(problem.field))
      return
    }
    try {
      this.radio.configure(cfg)
    } catch (err) {
      if (err instanceof ConfigRejectedError) {
        this.counters.badConfigs++
        const key = configKeyOf(err.field)
        this.error(ErrorCode.BadConfig, ref, 0, err.message, key ? wireFieldOf(key) : err.field)
      } else if (err instanceof RadioError && err.reason === 'busy') this.error(ErrorCode.Busy, ref, 0, err.message)
      else this.error(ErrorCode.Internal, ref, 0, (err as Error).message ?? String(err))
      return
    }
    this.send({ type: 'ConfigureAck' })
  }

  private onTransmit(m: MessageOf<'Transmit'>, ref: number): void {
    if (m.payload.length < 1 || m.payload.length > this.mtu) {
      this.counters.txFail++
      this.error(ErrorCode.TxFailed, ref, m.token, `payload of ${m.payload.length} bytes is outside 1..${this.mtu}`)
      return
    }
    if (!this.radio.isOn) {
      this.counters.txFail++
      this.error(ErrorCode.RadioOff, ref, m.token, 'the radio is off')
      return
    }
    if (this.queue.length + (this.inFlight === null ? 0 : 1) >= this.queueDepth) {
      this.counters.txFail++
      this.error(ErrorCode.QueueFull, ref, m.token, `transmit queue full (${this.queueDepth})`)
      return
    }
    this.queue.push({ token: m.token, seq: ref, payload: m.payload })
    this.pump()
  }

  private pump(): void {
    while (this.inFlight === null && this.busyTimer === null && this.queue.length > 0 && this.session !== null) {
      const tx = this.queue.shift()!
      try {
        this.radio.transmit(tx.payload)
        this.inFlight = { token: tx.token, epoch: this.epoch }
      } catch (err) {
        if (err instanceof RadioError && err.reason === 'busy') {
          this.queue.unshift(tx)
          this.busyTimer = this.clock.setTimeout(() => {
            this.busyTimer = null
            this.pump()
          }, this.busyRetryMs)
          return
        }
        this.counters.txFail++
        const off = err instanceof RadioError && err.reason === 'off'
        this.error(off ? ErrorCode.RadioOff : ErrorCode.TxFailed, tx.seq, tx.token, (err as Error).message ?? String(err))
      }
    }
  }

  private onTxDone(airtimeMs: number): void {
    const tx = this.inFlight
    if (tx === null) return
    this.inFlight = null
    this.counters.txOk++
    if (this.session !== null) {
      if (tx.epoch === this.epoch) this.send({ type: 'TxDone', token: tx.token, airtimeUs: Math.min(0xffff_ffff, Math.max(0, Math.round(airtimeMs * 1000))) })
      else this.send({ type: 'Credits', grant: 1 })
    }
    this.afterTx()
  }

  private afterTx(): void {
    const deferred = this.deferred
    this.deferred = []
    for (const fn of deferred) fn()
    this.pump()
    this.link.flushAck()
  }

  private onRadioOnOff(on: boolean, ref: number): void {
    try {
      this.radio.setOn(on)
    } catch (err) {
      this.error(ErrorCode.Internal, ref, 0, (err as Error).message ?? String(err))
      return
    }
    if (!on) {
      const failed = this.queue
      this.queue = []
      const flying = this.inFlight
      this.inFlight = null
      if (flying !== null && flying.epoch === this.epoch) failed.unshift({ token: flying.token, seq: -1, payload: Buffer.alloc(0) })
      for (const tx of failed) {
        this.counters.txFail++
        this.error(ErrorCode.RadioOff, tx.seq, tx.token, 'the radio was switched off')
      }
      if (flying !== null && flying.epoch !== this.epoch) this.send({ type: 'Credits', grant: 1 })
      const deferred = this.deferred
      this.deferred = []
      for (const fn of deferred) fn()
    }
    this.send({ type: 'RadioOnOffAck', on: this.radio.isOn })
  }

  private onRadioRx(rx: RadioRx): void {
    this.counters.rxOk++
    if (this.session === null) {
      this.counters.rxDropped++
      return
    }
    const q = (v: number) => Math.max(-0x8000, Math.min(0x7fff, Math.round(v * 4)))
    const fe = rx.frequencyErrorHz ?? 0
    const ts = rx.timestampUs ?? (this.clock.now() - this.boot) * 1000
    this.send({
      type: 'Receive',
      payload: Buffer.from(rx.payload.subarray(0, MAX_PAYLOAD_BYTES)),
      rssiDbmX4: q(rx.rssi),
      snrDbX4: q(rx.snr),
      frequencyErrorHz: this.capabilities & Capabilities.FrequencyError ? Math.max(-0x8000_0000, Math.min(0x7fff_ffff, Math.round(fe))) : 0,
      timestampUs: this.capabilities & Capabilities.RxTimestamp ? Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(ts))) : 0,
    })
  }

  private onChannel(busy: boolean): void {
    if (this.session === null || !(this.capabilities & Capabilities.ChannelActivity)) return
    this.send({ type: 'ChannelActivity', busy })
  }
}

/**
 * The firmware-bridge DeviceProtocolFactory: `createFirmwareBridgeDevice(radio, write)` is what
 * the emulator calls; tests and the emulator may pass options (a virtual clock, another queue
 * depth or firmware name). The result also has `close()`, which a DeviceProtocol does not
 * require: call it when the device goes away for good.
 */
export const createFirmwareBridgeDevice = ((radio: VirtualRadio, write: (bytes: Uint8Array) => void, options?: FirmwareBridgeDeviceOptions): FirmwareBridgeDevice =>
  new FirmwareBridgeDevice(radio, write, options)) satisfies DeviceProtocolFactory
