/**
 * The host side of firmware-bridge: a RadioBackend (drivers/lora/backend.ts) that speaks the
 * protocol of docs/firmware-bridge.md to a companion MCU. Transport-independent: the LoRa link
 * feeds it what the serial port reads (`receive`) and gives it a function to write (`attach`).
 *
 * Lifecycle: `idle` → start() → `handshaking` → HelloAck → `ready` → (link lost, Reset, stop())
 * → `idle`. start() may be called again from `idle` (hot-plug: the link re-handshakes and
 * re-applies its configuration).
 *
 * Contract, in addition to RadioBackend's:
 * - start() resolves with what the device is; rejects with TimeoutError when no HelloAck comes
 *   within `helloTimeoutMs`, with HandshakeError naming both versions when the device speaks
 *   another protocol version.
 * - configure() rejects with ConfigRejectedError whose `field` is the RadioConfig key the device
 *   refused: a DeviceConfigRejectedError (message naming field, value and chip; `wireField`,
 *   `value`, `chip`, `deviceMessage`) when the firmware answered Error BadConfig, or a plain
 *   ConfigRejectedError for a value that does not fit its wire field at all (nothing is sent).
 * - transmit() takes one credit; throws TypeError synchronously when there is none or the payload
 *   is not 1..mtu bytes; resolves on TxDone; rejects with RadioError whose `reason` is
 *   'queue-full', 'radio-off', 'busy', 'tx-failed', 'unsupported' or 'internal'. Either way the
 *   credit comes back and `credits` is emitted.
 * - When the device stops acknowledging (maxRetries retransmissions), falls silent for
 *   `deadAfterHeartbeats` heartbeat intervals, or reports that it has no session (it rebooted),
 *   every pending promise rejects with ConnectionLostError, the state goes to `idle`, and
 *   `deviceError` is emitted with that ConnectionLostError (the sign to start() again).
 * - receive() never throws; garbage is counted in stats().errors.
 */
import { EventEmitter } from 'node:events'
import { randomInt } from 'node:crypto'
import { ConfigRejectedError, ConnectionLostError, HandshakeError, RadioError, TimeoutError } from '../appliance/core/errors.js'
import type { DeviceInfo, RadioBackend, RadioBackendEvents } from '../drivers/lora/backend.js'
import type { RadioConfig } from '../drivers/lora/radio.js'
import {
  Capabilities,
  CONFIG_FIELDS,
  CONFIG_WIRE_RANGE,
  configKeyOf,
  DECODE_ERROR_KINDS,
  ErrorCode,
  encodeFrame,
  Flags,
  FrameDecoder,
  MAX_NAME_BYTES,
  MAX_PAYLOAD_BYTES,
  PROTOCOL_VERSION,
  RadioChip,
  type LinkFrame,
  type Message,
  type MessageOf,
} from './codec.js'
import { DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DEAD_AFTER_HEARTBEATS, DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_RETRIES, DEFAULT_WINDOW, realClock, ReliableLink, type Clock, type OutFrame } from './link.js'

export interface FirmwareBridgeOptions {
  /** Clock and timers (default real time). Tests may pass a virtual one. */
  clock?: Clock
  /** Retransmit an unacknowledged frame after this long, ms. Default 200. */
  ackTimeoutMs?: number
  /** Retransmission rounds without progress before the device is lost. Default 5. */
  maxRetries?: number
  /** Heartbeat interval, ms, sent to the device in Hello. Default 1000. */
  heartbeatMs?: number
  /** Heartbeat intervals of silence after which the device is lost. Default 3. */
  deadAfterHeartbeats?: number
  /** How long start() waits for HelloAck, ms (Hello is repeated every ackTimeoutMs). Default 2000. */
  helloTimeoutMs?: number
  /** How long configure/setRadio/status wait for their answer, ms. Default 2000. */
  requestTimeoutMs?: number
  /** Unacknowledged frames in flight. Default 16. */
  window?: number
  /** Sent in Hello, for the firmware's logs. Default "kairo-gw". */
  hostName?: string
  /** Session nonce source (a uint32). Default crypto.randomInt. */
  random?: () => number
}

/** What start() learns about the device. */
export interface FirmwareBridgeInfo extends DeviceInfo {
  protocolVersion: number
  /** RadioChip name, e.g. "SX1262", or the number when unknown to this version. */
  radioChip: string
  /** Capabilities bits. */
  capabilities: number
  /** Credits granted by HelloAck. */
  credits: number
}

/** The device's Status answer (the Status message without its tag). */
export type DeviceStatus = Omit<MessageOf<'Status'>, 'type'>

export type FirmwareBridgeState = 'idle' | 'handshaking' | 'ready'

/** RadioError reasons by ErrorCode. */
export const ERROR_REASONS: Readonly<Record<number, string>> = {
  [ErrorCode.QueueFull]: 'queue-full',
  [ErrorCode.BadConfig]: 'bad-config',
  [ErrorCode.CrcFail]: 'crc-fail',
  [ErrorCode.RadioOff]: 'radio-off',
  [ErrorCode.Busy]: 'busy',
  [ErrorCode.Unsupported]: 'unsupported',
  [ErrorCode.Internal]: 'internal',
  [ErrorCode.NoSession]: 'no-session',
  [ErrorCode.TxFailed]: 'tx-failed',
}

const reasonOf = (code: number) => ERROR_REASONS[code] ?? 'internal'

type RequestKind = 'Configure' | 'RadioOnOff' | 'GetStatus' | 'Reset'

interface Request {
  kind: RequestKind
  /** The configuration a Configure request sent. */
  config?: RadioConfig
  out: OutFrame | null
  settled: boolean
  resolve(value: unknown): void
  reject(err: Error): void
  cleanup(): void
}

interface PendingTx {
  token: number
  out: OutFrame
  settled: boolean
  resolve(): void
  reject(err: Error): void
  cleanup(): void
}

/**
 * configure() refused by the firmware (Error BadConfig). A ConfigRejectedError whose `field` is
 * the RadioConfig key (e.g. 'spreadingFactor'); its message names the field, the value sent and
 * the chip (from HelloAck), then the firmware's own explanation.
 */
export class DeviceConfigRejectedError extends ConfigRejectedError {
  /** The Configure field as the firmware named it (schema spelling, e.g. 'spreading_factor'). */
  readonly wireField: string
  /** The value of `field` in the configuration sent; undefined when the field is not a RadioConfig key. */
  readonly value: number | undefined
  /** The radio chip the device announced in HelloAck, e.g. 'SX1276'. */
  readonly chip: string
  /** Error.message from the firmware (may be empty). */
  readonly deviceMessage: string
  constructor(o: { field: string; wireField: string; value: number | undefined; chip: string; deviceMessage: string }) {
    const what = o.value === undefined ? `field ${o.wireField || 'unnamed'}` : `${o.field} = ${o.value}`
    super(`firmware-bridge: the ${o.chip} device refused the radio configuration: ${what}${o.deviceMessage ? ` (${o.deviceMessage})` : ''}`, { field: o.field })
    this.wireField = o.wireField
    this.value = o.value
    this.chip = o.chip
    this.deviceMessage = o.deviceMessage
  }
}

const abortReason = (signal: AbortSignal): Error => (signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError'))

export class FirmwareBridgeBackend extends EventEmitter<RadioBackendEvents> implements RadioBackend {
  readonly kind = 'firmware-bridge' as const
  private readonly clock: Clock
  private readonly ackTimeoutMs: number
  private readonly heartbeatMs: number
  private readonly helloTimeoutMs: number
  private readonly requestTimeoutMs: number
  private readonly hostName: string
  private readonly random: () => number
  private write: ((bytes: Uint8Array) => void) | null = null
  private readonly decoder: FrameDecoder
  private readonly link: ReliableLink
  private state_: FirmwareBridgeState = 'idle'
  private info_: FirmwareBridgeInfo | null = null
  private credits_ = 0
  private nextToken = 1
  private session = 0
  private handshake: { resolve(i: FirmwareBridgeInfo): void; reject(e: Error): void; timers: { cancel(): void }[]; hellos: number; cleanup(): void } | null = null
  private readonly requests: Request[] = []
  private readonly txs = new Map<number, PendingTx>()
  private readonly counters = { rx: 0, txDone: 0, airtimeUs: 0, lastAirtimeUs: 0, deviceErrors: 0, hellosSent: 0, sessions: 0, lost: 0 }
  /** Protocol anomalies (the decoder's counts are added in stats()). */
  private readonly errors = { unexpected: 0, unknownToken: 0, unsupported: 0, staleHelloAck: 0, beforeHandshake: 0, writeFailed: 0, internal: 0 }

  constructor(options: FirmwareBridgeOptions = {}) {
    super()
    const pos = (v: number | undefined, d: number, what: string, max = Number.MAX_SAFE_INTEGER) => {
      const x = v ?? d
      if (!Number.isInteger(x) || x < 1 || x > max) throw new TypeError(`FirmwareBridgeBackend: ${what} must be an integer 1..${max}, got ${String(v)}`)
      return x
    }
    this.clock = options.clock ?? realClock
    this.ackTimeoutMs = pos(options.ackTimeoutMs, DEFAULT_ACK_TIMEOUT_MS, 'ackTimeoutMs')
    this.heartbeatMs = pos(options.heartbeatMs, DEFAULT_HEARTBEAT_MS, 'heartbeatMs', 0xffff)
    this.helloTimeoutMs = pos(options.helloTimeoutMs, 2000, 'helloTimeoutMs')
    this.requestTimeoutMs = pos(options.requestTimeoutMs, 2000, 'requestTimeoutMs')
    this.hostName = options.hostName ?? 'kairo-gw'
    if (Buffer.byteLength(this.hostName) > MAX_NAME_BYTES) throw new TypeError(`FirmwareBridgeBackend: hostName is longer than ${MAX_NAME_BYTES} bytes`)
    this.random = options.random ?? (() => randomInt(0, 0x1_0000_0000))
    this.decoder = new FrameDecoder({ frame: (f) => this.onFrame(f) })
    this.link = new ReliableLink({
      write: (b) => this.out(b),
      clock: this.clock,
      ackTimeoutMs: this.ackTimeoutMs,
      maxRetries: pos(options.maxRetries, DEFAULT_MAX_RETRIES, 'maxRetries'),
      deadAfterHeartbeats: pos(options.deadAfterHeartbeats, DEFAULT_DEAD_AFTER_HEARTBEATS, 'deadAfterHeartbeats'),
      window: pos(options.window, DEFAULT_WINDOW, 'window', 127),
      maxQueue: 1024,
      onMessage: (m) => this.onMessage(m),
      onLost: (err) => this.lose(err),
    })
  }

  /** Transmissions that may be issued now (0 unless `ready`). */
  get credits(): number {
    return this.state_ === 'ready' ? this.credits_ : 0
  }

  get state(): FirmwareBridgeState {
    return this.state_
  }

  /** The device of the current session (null before the first handshake). */
  get info(): FirmwareBridgeInfo | null {
    return this.info_
  }

  attach(write: (bytes: Uint8Array) => void): void {
    if (typeof write !== 'function') throw new TypeError('attach: write must be a function')
    this.write = write
  }

  receive(bytes: Uint8Array): void {
    try {
      this.decoder.push(bytes)
      this.link.flushAck()
    } catch (err) {
      this.errors.internal++
      this.emit('deviceError', err instanceof Error ? err : new Error(String(err)))
    }
  }

  start(signal?: AbortSignal): Promise<FirmwareBridgeInfo> {
    if (this.write === null) throw new TypeError('start: attach() a write function first')
    if (this.state_ === 'handshaking') throw new TypeError('start: a handshake is already in progress')
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    if (this.state_ === 'ready') this.endSession(new ConnectionLostError('firmware-bridge: session restarted by start()'))
    // A new session never reuses the nonce of the previous one: the device would take the Hello
    // for a retransmission and keep its old sequence numbers.
    const previous = this.session
    this.session = this.random() >>> 0
    if (this.session === previous) this.session = (this.session + 1) >>> 0
    this.setState('handshaking')
    this.decoder.reset()
    return new Promise<FirmwareBridgeInfo>((resolve, reject) => {
      const onAbort = () => this.failHandshake(abortReason(signal!))
      signal?.addEventListener('abort', onAbort, { once: true })
      const hs = {
        resolve,
        reject,
        timers: [] as { cancel(): void }[],
        hellos: 0,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort)
          for (const t of hs.timers) t.cancel()
        },
      }
      this.handshake = hs
      hs.timers.push(
        this.clock.setTimeout(() => {
          const seen = this.decoder.frames > 0 ? `${this.decoder.frames} frames received, none a HelloAck for this session` : 'nothing valid received'
          this.failHandshake(new TimeoutError(`firmware-bridge: no HelloAck within ${this.helloTimeoutMs} ms after ${hs.hellos} Hello frames (${seen}; ${this.decoder.errorCount} garbled frames)`))
        }, this.helloTimeoutMs),
      )
      this.sendHello()
    })
  }

  private sendHello(): void {
    const hs = this.handshake
    if (hs === null) return
    hs.hellos++
    this.counters.hellosSent++
    const hello: Message = { type: 'Hello', protocolVersion: PROTOCOL_VERSION, session: this.session, heartbeatMs: this.heartbeatMs, hostName: this.hostName }
    const wire = encodeFrame({ version: PROTOCOL_VERSION, flags: Flags.SYN, seq: 0, ack: 0, message: hello })
    this.out(Buffer.concat([Buffer.from([0]), wire]))
    if (this.handshake !== hs) return
    hs.timers.push(this.clock.setTimeout(() => this.sendHello(), this.ackTimeoutMs))
  }

  private failHandshake(err: Error): void {
    const hs = this.handshake
    if (hs === null) return
    this.handshake = null
    hs.cleanup()
    this.setState('idle')
    hs.reject(err)
  }

  private onHelloAck(m: MessageOf<'HelloAck'>): void {
    const hs = this.handshake
    if (hs === null || m.session !== this.session) {
      this.errors.staleHelloAck++
      return
    }
    if (m.protocolVersion !== PROTOCOL_VERSION) {
      this.failHandshake(
        new HandshakeError(
          `firmware-bridge protocol version mismatch: the host speaks version ${PROTOCOL_VERSION}, the device (${m.firmwareName || 'unnamed firmware'} ${m.firmwareVersion}) speaks version ${m.protocolVersion}`,
        ),
      )
      return
    }
    if (m.mtu < 1 || m.queueDepth < 1) {
      this.failHandshake(new HandshakeError(`firmware-bridge: HelloAck with mtu ${m.mtu} and queue_depth ${m.queueDepth} is unusable (both must be at least 1)`))
      return
    }
    this.handshake = null
    hs.cleanup()
    const info: FirmwareBridgeInfo = {
      firmware: m.firmwareName,
      version: m.firmwareVersion,
      mtu: Math.min(m.mtu, MAX_PAYLOAD_BYTES),
      queueDepth: m.queueDepth,
      channelActivity: (m.capabilities & Capabilities.ChannelActivity) !== 0,
      protocolVersion: m.protocolVersion,
      radioChip: RadioChip[m.radioChip] ?? String(m.radioChip),
      capabilities: m.capabilities,
      credits: m.credits,
    }
    this.info_ = info
    this.credits_ = m.credits
    this.counters.sessions++
    this.link.open(this.heartbeatMs)
    this.setState('ready')
    hs.resolve(info)
    if (m.credits > 0) this.emit('credits', this.credits_)
  }

  configure(cfg: RadioConfig, signal?: AbortSignal): Promise<void> {
    if (cfg === null || typeof cfg !== 'object') throw new TypeError('configure: a RadioConfig object is needed')
    for (const [key, wire] of CONFIG_FIELDS) {
      const v = cfg[key]
      const [lo, hi] = CONFIG_WIRE_RANGE[key]
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
        return Promise.reject(new ConfigRejectedError(`${key}: ${String(v)} cannot be sent to the device (Configure.${wire} holds integers ${lo}..${hi})`, { field: key }))
      }
    }
    const config: RadioConfig = { frequencyHz: cfg.frequencyHz, bandwidthHz: cfg.bandwidthHz, spreadingFactor: cfg.spreadingFactor, codingRate: cfg.codingRate, txPowerDbm: cfg.txPowerDbm, syncWord: cfg.syncWord, preambleSymbols: cfg.preambleSymbols }
    return this.request<void>('Configure', { type: 'Configure', config }, signal, config)
  }

  setRadio(on: boolean, signal?: AbortSignal): Promise<void> {
    if (typeof on !== 'boolean') throw new TypeError('setRadio: on must be a boolean')
    return this.request<void>('RadioOnOff', { type: 'RadioOnOff', on }, signal)
  }

  /** Asks the device for its counters. */
  status(signal?: AbortSignal): Promise<DeviceStatus> {
    return this.request<DeviceStatus>('GetStatus', { type: 'GetStatus' }, signal)
  }

  /**
   * Tells the MCU to reboot its protocol. Resolves when the device acknowledged the Reset; the
   * backend is then `idle` (every other pending operation rejected with ConnectionLostError) and
   * start() must be called again.
   */
  reset(signal?: AbortSignal): Promise<void> {
    return this.request<void>('Reset', { type: 'Reset' }, signal)
  }

  private request<T>(kind: RequestKind, message: Message, signal?: AbortSignal, config?: RadioConfig): Promise<T> {
    if (this.state_ !== 'ready') return Promise.reject(new ConnectionLostError(`firmware-bridge: ${kind} while ${this.state_}: no session with the device`))
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => settle(new TimeoutError(`firmware-bridge: no answer to ${kind} within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs)
      const onAbort = () => settle(abortReason(signal!))
      const req: Request = {
        kind,
        ...(config ? { config } : {}),
        out: null,
        settled: false,
        resolve: (v) => settle(null, v),
        reject: (e) => settle(e),
        cleanup: () => {
          timer.cancel()
          signal?.removeEventListener('abort', onAbort)
        },
      }
      const settle = (err: Error | null, value?: unknown) => {
        if (req.settled) return
        req.settled = true
        req.cleanup()
        if (err) reject(err)
        else resolve(value as T)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      req.out = this.link.frame(message, kind === 'Reset' ? () => this.onResetAcked(req) : undefined)
      this.requests.push(req)
      if (!this.link.enqueue(req.out)) {
        this.removeRequest(req)
        settle(new ConnectionLostError(`firmware-bridge: ${kind} could not be queued`))
      }
    })
  }

  private onResetAcked(req: Request): void {
    this.removeRequest(req)
    req.resolve(undefined)
    this.endSession(new ConnectionLostError('firmware-bridge: the device was reset'))
  }

  transmit(payload: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (!(payload instanceof Uint8Array)) throw new TypeError('transmit: payload must be a Uint8Array')
    if (this.state_ !== 'ready') return Promise.reject(new ConnectionLostError(`firmware-bridge: transmit while ${this.state_}: no session with the device`))
    const mtu = this.info_?.mtu ?? MAX_PAYLOAD_BYTES
    if (payload.length < 1 || payload.length > mtu) throw new TypeError(`transmit: payload of ${payload.length} bytes is outside 1..${mtu}`)
    if (this.credits_ < 1) throw new TypeError('transmit: no credits (wait for the credits event; at most `credits` transmissions may be outstanding)')
    if (signal?.aborted) return Promise.reject(abortReason(signal))
    const token = this.allocToken()
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        if (tx.settled) return
        if (this.link.cancel(tx.out)) {
          this.txs.delete(token)
          this.returnCredit(1)
        }
        settle(abortReason(signal!))
      }
      const settle = (err: Error | null) => {
        if (tx.settled) return
        tx.settled = true
        tx.cleanup()
        if (err) reject(err)
        else resolve()
      }
      const tx: PendingTx = {
        token,
        out: this.link.frame({ type: 'Transmit', token, payload: Buffer.from(payload) }),
        settled: false,
        resolve: () => settle(null),
        reject: (e) => settle(e),
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      }
      this.credits_--
      this.txs.set(token, tx)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (!this.link.enqueue(tx.out)) {
        this.txs.delete(token)
        this.credits_++
        settle(new ConnectionLostError('firmware-bridge: transmit could not be queued'))
      }
    })
  }

  private allocToken(): number {
    for (;;) {
      const t = this.nextToken
      this.nextToken = this.nextToken >= 0xffff_ffff ? 1 : this.nextToken + 1
      if (!this.txs.has(t)) return t
    }
  }

  private returnCredit(n: number): void {
    this.credits_ += n
    this.emit('credits', this.credits_)
  }

  stats(): { framesIn: number; framesOut: number; errors: Record<string, number> } & Record<string, unknown> {
    const errors: Record<string, number> = { ...this.errors, badAck: this.link.stats.badAck, outOfOrder: this.link.stats.outOfOrder }
    for (const k of DECODE_ERROR_KINDS) errors[k] = this.decoder.errors[k]
    return {
      framesIn: this.decoder.frames,
      framesOut: this.link.stats.framesOut + this.counters.hellosSent,
      errors,
      state: this.state_,
      credits: this.credits,
      unacked: this.link.unacked,
      pendingTransmits: this.txs.size,
      retransmits: this.link.stats.retransmits,
      duplicates: this.link.stats.duplicates,
      heartbeatsSent: this.link.stats.heartbeatsSent,
      ...this.counters,
    }
  }

  stop(): void {
    this.failHandshake(new ConnectionLostError('firmware-bridge: stopped'))
    this.endSession(new ConnectionLostError('firmware-bridge: stopped'))
  }

  // -------------------------------------------------------------------------------------------

  private out(bytes: Uint8Array): void {
    try {
      this.write?.(bytes)
    } catch {
      this.errors.writeFailed++
    }
  }

  private setState(s: FirmwareBridgeState): void {
    if (this.state_ === s) return
    this.state_ = s
  }

  private onFrame(f: LinkFrame): void {
    if (f.flags & Flags.SYN) {
      if (f.message?.type === 'HelloAck') this.onHelloAck(f.message)
      else this.errors.unexpected++
      return
    }
    if (this.state_ !== 'ready') {
      this.errors.beforeHandshake++
      return
    }
    this.link.handle(f)
  }

  private onMessage(m: Message): void {
    switch (m.type) {
      case 'TxDone': {
        const tx = this.txs.get(m.token)
        if (tx === undefined) {
          this.errors.unknownToken++
          return
        }
        this.txs.delete(m.token)
        this.counters.txDone++
        this.counters.airtimeUs += m.airtimeUs
        this.counters.lastAirtimeUs = m.airtimeUs
        tx.resolve()
        this.returnCredit(1)
        return
      }
      case 'Receive': {
        this.counters.rx++
        const caps = this.info_?.capabilities ?? 0
        this.emit('rx', {
          payload: Buffer.from(m.payload),
          rssi: m.rssiDbmX4 / 4,
          snr: m.snrDbX4 / 4,
          ...(caps & Capabilities.FrequencyError ? { frequencyErrorHz: m.frequencyErrorHz } : {}),
          ...(caps & Capabilities.RxTimestamp ? { timestampUs: m.timestampUs } : {}),
        })
        return
      }
      case 'ChannelActivity':
        this.emit('channel', m.busy)
        return
      case 'Credits':
        if (m.grant > 0) this.returnCredit(m.grant)
        return
      case 'ConfigureAck':
        this.answer('Configure', undefined)
        return
      case 'RadioOnOffAck':
        this.answer('RadioOnOff', undefined)
        return
      case 'Status': {
        const { type: _t, ...status } = m
        this.answer('GetStatus', status)
        return
      }
      case 'Error':
        this.onError(m)
        return
      case 'Heartbeat':
        return
      case 'Unknown':
        this.errors.unsupported++
        return
      default:
        this.errors.unexpected++
    }
  }

  /** Settles the oldest request of `kind`: the device answers requests in order. */
  private answer(kind: RequestKind, value: unknown): void {
    const req = this.requests.find((r) => r.kind === kind)
    if (req === undefined) {
      this.errors.unexpected++
      return
    }
    this.removeRequest(req)
    req.resolve(value)
  }

  private removeRequest(req: Request): void {
    const i = this.requests.indexOf(req)
    if (i >= 0) this.requests.splice(i, 1)
  }

  private onError(m: MessageOf<'Error'>): void {
    if (m.code === ErrorCode.NoSession) {
      const reset = this.requests.find((r) => r.kind === 'Reset' && r.out !== null && r.out.seq >= 0)
      if (reset) {
        this.onResetAcked(reset)
        return
      }
      this.lose(new ConnectionLostError('firmware-bridge: the device has no session (it was reset or power-cycled)'))
      return
    }
    const tx = m.token !== 0 ? this.txs.get(m.token) : m.refSeq >= 0 ? [...this.txs.values()].find((t) => t.out.seq === m.refSeq) : undefined
    if (tx !== undefined) {
      this.txs.delete(tx.token)
      tx.reject(new RadioError(`firmware-bridge: transmit refused by the device: ${reasonOf(m.code)}${m.message ? ` (${m.message})` : ''}`, { reason: reasonOf(m.code) }))
      this.returnCredit(1)
      return
    }
    const req = m.refSeq >= 0 ? this.requests.find((r) => r.out !== null && r.out.seq === m.refSeq) : undefined
    if (req !== undefined) {
      this.removeRequest(req)
      if (m.code === ErrorCode.BadConfig && req.kind === 'Configure') {
        const key = configKeyOf(m.field)
        req.reject(
          new DeviceConfigRejectedError({
            field: key ?? (m.field || 'unknown'),
            wireField: m.field,
            value: key !== undefined && req.config ? req.config[key] : undefined,
            chip: this.info_?.radioChip ?? 'unknown',
            deviceMessage: m.message,
          }),
        )
      } else req.reject(new RadioError(`firmware-bridge: ${req.kind} refused by the device: ${reasonOf(m.code)}${m.message ? ` (${m.message})` : ''}`, { reason: reasonOf(m.code) }))
      return
    }
    this.counters.deviceErrors++
    this.emit('deviceError', new RadioError(`firmware-bridge: device reports ${reasonOf(m.code)}${m.message ? `: ${m.message}` : ''}`, { reason: reasonOf(m.code) }))
  }

  private lose(err: ConnectionLostError): void {
    if (this.state_ !== 'ready') return
    this.counters.lost++
    this.endSession(err)
    this.emit('deviceError', err)
  }

  /** Closes the session and rejects everything pending with `err`. */
  private endSession(err: ConnectionLostError): void {
    this.link.close()
    this.credits_ = 0
    if (this.state_ !== 'handshaking') this.setState('idle')
    const reqs = this.requests.splice(0)
    for (const r of reqs) r.reject(err)
    const txs = [...this.txs.values()]
    this.txs.clear()
    for (const t of txs) t.reject(err)
  }
}
