/**
 * The RNode backend: drives an RNode (LilyGO / Heltec / RAK board with markqvist's RNode_Firmware)
 * over its KISS serial protocol as a kairo-gw LoRa radio (drivers/lora/backend.ts RadioBackend).
 *
 * What it does, and where the behaviour comes from:
 *
 * - **start()** sends, in one write, CMD_DETECT DETECT_REQ, CMD_FW_VERSION, CMD_PLATFORM and
 *   CMD_MCU (each with a dummy 0x00: the firmware acts on the byte after the command), like
 *   RNodeInterface.py `detect()`. It waits `detectTimeoutMs` for DETECT_RESP (re-sending the
 *   request every `detectRetryMs`, and once more after a CMD_RESET boot indication, because
 *   opening the port resets many ESP32 boards), then `commandTimeoutMs` for each of the others,
 *   and rejects with TimeoutError naming the command that did not answer. Firmware older than
 *   REQUIRED_FIRMWARE (1.52, RNodeInterface.py) is refused (RadioError 'unsupported-firmware').
 *
 * - **configure(cfg)** sends CMD_FREQUENCY, CMD_BANDWIDTH, CMD_TXPOWER, CMD_SF, CMD_CR and, when
 *   airtime limits are given, CMD_ST_ALOCK / CMD_LT_ALOCK, then CMD_RADIO_STATE on (the order of
 *   RNodeInterface.py `initRadio()`). The firmware answers every setting with the value it
 *   stored (`kiss_indicate_*()`), clamped to what it supports (RNode_Firmware.ino
 *   `serial_callback()`: SF to 5..12, CR to 5..8, TX power to the modem maximum). Like
 *   RNodeInterface.py `validateRadioState()`, each echo is compared with the request (frequency
 *   within 100 Hz, the rest exactly; airtime limits within 0.01 %), and the radio state must come
 *   back on. Because the firmware only asks the modem for what it really runs once the radio is on
 *   (`setBandwidth()`/`setFrequency()` read back only `if (radio_online)`), kairo-gw then reads
 *   every setting back once more (frequency/bandwidth with 0, the rest with 0xFF: the firmware's
 *   query forms); this catches e.g. a bandwidth the modem rounds up. A mismatch, or a CMD_ERROR
 *   while a setting's answer is awaited, rejects with ConfigRejectedError naming the RadioConfig
 *   field; the radio is then switched off (best effort) so it never transmits with settings the
 *   caller did not ask for.
 *   Values RNode's protocol cannot carry are refused before anything is sent: negative TX power
 *   (the byte is unsigned and the firmware would clamp 0xF7 to its maximum), 0xFF in a one-byte
 *   setting (that is the query form), 0 or more than 32 bits for frequency/bandwidth.
 *   **Sync word and preamble**: RNode has no command for either. The sync word is fixed at 0x12
 *   (sx127x/sx126x drivers: 0x12 / SYNC_WORD_6X 0x1424); any other `syncWord` is rejected with
 *   ConfigRejectedError('syncWord') because such a radio could never hear its peers. The preamble
 *   is chosen by the firmware (max(18, ceil(24 ms / T_sym)) symbols, updateBitrate()), so
 *   `preambleSymbols` is accepted and ignored; the effective value (from CMD_STAT_PHYPRM when the
 *   firmware reports it, else computed) is in stats() and used for time-on-air estimates.
 *   Range checks beyond that (SF 13, bandwidths the chip lacks, 2.4 GHz on an SX1280 board) are
 *   left to the device, which is the authority on its hardware; the LoRa link runs
 *   radioConfigProblems()/regionProblems() before it calls configure().
 *
 * - **transmit(payload)** sends one CMD_DATA (1..508 bytes, RNODE_MTU). RNode reports no TX done
 *   per packet, and its CMD_READY is a query answered "queue not full" (0x01) or "full" (0x00),
 *   never sent unsolicited by the firmware versions supported here. So completion is estimated
 *   and then confirmed:
 *     1. estimate: the frame reaches the device after its serial time (10 bits/byte at
 *        `baudRate`); the device transmits its queue in order; a packet that was not already
 *        queued when the previous flush began waits for CSMA first, at most DIFS + cw_max slots
 *        (tx_queue_handler(); slot and DIFS from CMD_STAT_PHYPRM or updateBitrate(), cw_max from
 *        CMD_STAT_CSMA or 15); it then occupies the channel for rnodeAirtimeMs() (1-byte header,
 *        split above 254 bytes, firmware preamble, Semtech's formula from drivers/lora/radio.ts),
 *        plus `txMarginMs`;
 *     2. confirm: at the estimate the host sends a CMD_READY query. The firmware's main loop does
 *        not read the serial port while it transmits (flush_queue() blocks in endPacket()), so
 *        the answer also proves the device is no longer on air. 0x01: the oldest packet is done,
 *        its transmit() resolves and its credit returns. 0x00 (queue full): credits stay at 0 and
 *        the query is repeated every `readyPollMs`. No answer within commandTimeoutMs plus the
 *        packet's time on air, twice: ConnectionLostError for everything pending.
 *   Credits are `queueDepth` (default 2: one packet on air, one waiting in the device) minus the
 *   packets not yet confirmed, and 0 while the radio is off, the device said "not ready", or
 *   its reported airtime (CMD_STAT_CHTM) is at a configured airtime limit (the firmware then
 *   holds its queue, RNode_Firmware.ino loop(): `airtime_lock`); estimates are paused during such
 *   a lock and restarted when CMD_STAT_CHTM shows it lifted.
 *
 * - **rx**: the firmware sends CMD_STAT_RSSI (dBm + 157) and CMD_STAT_SNR (signed quarter dB)
 *   before every CMD_DATA (receive_callback(), loop()); they are attached to that packet and then
 *   forgotten (RNodeInterface.py processIncoming()). A packet without them has rssi/snr NaN and is
 *   counted (`rxWithoutStats`).
 *
 * - **CMD_ERROR** is always emitted as `deviceError` (RadioError with the reason in
 *   commands.ts ERROR_REASONS). ERROR_TXFAILED rejects the oldest pending transmit ('tx-failed'),
 *   ERROR_QUEUE_FULL the newest ('queue-full'), ERROR_INITRADIO a pending radio-on ('init-failed').
 *   **CMD_RESET 0xF8** after start() (the device rebooted, e.g. after ERROR_MODEM_TIMEOUT): every
 *   pending promise rejects with ConnectionLostError and the backend must be started again.
 *
 * The backend does no I/O of its own: bytes in through receive(), out through the function given
 * to attach(); time through an injectable scheduler.
 */
import { EventEmitter } from 'node:events'
import { ConfigRejectedError, ConnectionLostError, RadioError, TimeoutError } from '../../../appliance/core/errors.js'
import type { DeviceInfo, RadioBackend, RadioBackendEvents } from '../backend.js'
import type { RadioConfig } from '../radio.js'
import {
  CMD_BANDWIDTH, CMD_CR, CMD_DATA, CMD_DETECT, CMD_ERROR, CMD_FREQUENCY, CMD_FW_VERSION, CMD_LEAVE, CMD_LT_ALOCK, CMD_MCU,
  CMD_PLATFORM, CMD_RADIO_STATE, CMD_READY, CMD_RESET, CMD_RESET_BYTE, CMD_SF, CMD_ST_ALOCK, CMD_STAT_CHTM, CMD_STAT_CSMA,
  CMD_STAT_PHYPRM, CMD_STAT_RSSI, CMD_STAT_SNR, CMD_TXPOWER, DETECT_REQ, DETECT_RESP, ERROR_INITRADIO, ERROR_MODEM_TIMEOUT,
  ERROR_NAMES, ERROR_QUEUE_FULL, ERROR_TXFAILED, FREQUENCY_TOLERANCE_HZ, KNOWN_COMMANDS, MCU_NAMES, PLATFORM_NAMES,
  RADIO_STATE_OFF, RADIO_STATE_ON, REQUIRED_FIRMWARE, RNODE_BAUD, RNODE_MTU, RNODE_SYNC_WORD, RSSI_OFFSET, SNR_STEP_DB,
  commandName, errorReason, formatVersion, u16be, u32be,
} from './commands.js'
import { KissDecoder, KISS_MAX_FRAME, kissEncode } from './kiss.js'
import { CSMA_CW_PER_BAND, csmaGuardMs, rnodeAirtimeMs, rnodePhy, type RNodePhy } from './phy.js'

/** Timers and a clock; the same shape as firmware-bridge/emulator/scheduler.ts `Scheduler`. */
export interface RNodeScheduler {
  /** Current time, ms (monotonic). */
  now(): number
  /**
   * Calls `fn` once after `ms` ms; the handle cancels it. `unref` (optional) marks a timer that
   * must not keep the process alive on its own (the emulated device's periodic status report).
   */
  setTimeout(fn: () => void, ms: number): { cancel(): void; unref?(): void }
}

const realScheduler: RNodeScheduler = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const h = setTimeout(fn, Math.max(0, ms))
    return { cancel: () => clearTimeout(h) }
  },
}

/** RNode's airtime limits (CMD_ST_ALOCK / CMD_LT_ALOCK), percent of time, 0.01 % resolution; 0 or absent: no limit. */
export interface AirtimeLimits {
  /** Short-term limit (the firmware averages over ~15 s), percent, 0 ≤ x < 100. */
  shortTermPercent?: number
  /** Long-term limit (the firmware averages over 1 h), percent, 0 ≤ x < 100. */
  longTermPercent?: number
}

/** A RadioConfig with RNode's extra settings. */
export interface RNodeRadioConfig extends RadioConfig {
  /** Airtime limits to set on the device (overrides the backend option). */
  airtimeLimits?: AirtimeLimits
}

export interface RNodeBackendOptions {
  /** How long start() waits for DETECT_RESP, ms (default 2000). */
  detectTimeoutMs?: number
  /** Re-send the detect request this often while waiting, ms (default 500). */
  detectRetryMs?: number
  /** How long any other command waits for its answer, ms (default 1000; longer while the device is on air). */
  commandTimeoutMs?: number
  /** Packets handed to the device before the oldest is confirmed sent (default 2). */
  queueDepth?: number
  /** Airtime limits set by configure() when the config carries none. */
  airtimeLimits?: AirtimeLimits
  /** Oldest firmware accepted, [major, minor] (default REQUIRED_FIRMWARE, 1.52). */
  minFirmware?: readonly [number, number]
  /** Interval of CMD_READY re-queries while the device reports its queue full, ms (default 250). */
  readyPollMs?: number
  /** Added to every estimated TX completion, ms (default 0). */
  txMarginMs?: number
  /** Serial speed for the transfer-time estimate, baud (default 115200, RNode's). */
  baudRate?: number
  /** Bound of one decoded KISS frame, bytes (default 1024). */
  maxFrameBytes?: number
  /**
   * Wall time per radio time for the airtime estimates (default 1). An emulated RNode whose air
   * runs 100 times faster than real time (the emulator's timeScale 0.01) sends a 400 ms frame in
   * 4 ms; serial timings and command timeouts are not scaled.
   */
  timeScale?: number
  scheduler?: RNodeScheduler
}

/** What start() learns about the device. */
export interface RNodeDeviceInfo extends DeviceInfo {
  firmwareMajor: number
  firmwareMinor: number
  /** CMD_PLATFORM byte (0x80 ESP32, 0x70 nRF52, 0x90 AVR). */
  platform: number
  platformName: string
  /** CMD_MCU byte. */
  mcu: number
  mcuName: string
}

interface Waiter {
  command: number
  /** Returns true when the frame was consumed (the waiter is then done or keeps waiting). */
  onFrame(data: Buffer): boolean
  /** Returns true when this waiter takes a CMD_ERROR code (and rejects). */
  onError?(code: number): boolean
  fail(err: Error): void
}

interface InFlight {
  bytes: number
  toaMs: number
  doneAt: number
  settled: boolean
  resolve(): void
  reject(err: Error): void
}

interface ExpectOptions<T> {
  command: number
  what: string
  timeoutMs: number
  signal?: AbortSignal | undefined
  /** Bytes to write once the waiter is registered. */
  send?: Buffer
  /** Called for each frame of `command`: call done()/fail() to finish, or return to keep waiting. */
  onFrame(data: Buffer, done: (v: T) => void, fail: (e: Error) => void): void
  onError?(code: number, fail: (e: Error) => void): boolean
  /** The error when time runs out (default TimeoutError naming `what`). */
  onTimeout?(): Error
  /** Receives a function that restarts the timeout. */
  onArmed?(rearm: () => void): void
}

type State = 'new' | 'started' | 'reset' | 'stopped'

const FIELD_TO_COMMAND = { frequencyHz: CMD_FREQUENCY, bandwidthHz: CMD_BANDWIDTH, txPowerDbm: CMD_TXPOWER, spreadingFactor: CMD_SF, codingRate: CMD_CR } as const

export class RNodeBackend extends EventEmitter<RadioBackendEvents> implements RadioBackend {
  readonly kind = 'rnode' as const
  readonly #opt: Required<Omit<RNodeBackendOptions, 'airtimeLimits' | 'scheduler'>> & { airtimeLimits: AirtimeLimits; scheduler: RNodeScheduler }
  readonly #sched: RNodeScheduler
  readonly #decoder: KissDecoder
  #write: ((bytes: Uint8Array) => void) | null = null
  #state: State = 'new'
  #info: RNodeDeviceInfo | null = null
  #waiters: Waiter[] = []
  #chain: Promise<unknown> = Promise.resolve()

  // radio
  #config: RadioConfig | null = null
  #limits: AirtimeLimits = {}
  #radioOn = false
  #deviceRadioState: number | null = null
  #phy: RNodePhy | null = null
  #phyReport: { preambleSymbols: number; csmaSlotMs: number; difsMs: number } | null = null
  #cwMax = CSMA_CW_PER_BAND
  #chtm: { airtimeShortPercent: number; airtimeLongPercent: number; loadShortPercent: number; loadLongPercent: number } | null = null

  // transmit pipeline
  #inflight: InFlight[] = []
  #busyUntil = -Infinity
  #flushEarliest = -Infinity
  #headTimer: { cancel(): void } | null = null
  #probing = false
  #probeFailures = 0
  #notReady = false
  #airtimeLocked = false
  #lastCredits = 0

  // rx
  #lastRssi: number | null = null
  #lastSnr: number | null = null

  // counters
  #framesIn = 0
  #framesOut = 0
  #rx = 0
  #tx = 0
  #txBytes = 0
  #ignored = 0
  #errors: Record<string, number> = {}
  #deviceErrors: Record<string, number> = {}

  constructor(opts: RNodeBackendOptions = {}) {
    super()
    const num = (name: string, v: number | undefined, dflt: number, min: number): number => {
      const x = v ?? dflt
      if (!(typeof x === 'number' && Number.isFinite(x) && x >= min)) throw new TypeError(`RNodeBackend: ${name} ${String(x)} is not a number >= ${min}`)
      return x
    }
    this.#sched = opts.scheduler ?? realScheduler
    this.#opt = {
      detectTimeoutMs: num('detectTimeoutMs', opts.detectTimeoutMs, 2000, 1),
      detectRetryMs: num('detectRetryMs', opts.detectRetryMs, 500, 1),
      commandTimeoutMs: num('commandTimeoutMs', opts.commandTimeoutMs, 1000, 1),
      queueDepth: num('queueDepth', opts.queueDepth, 2, 1),
      readyPollMs: num('readyPollMs', opts.readyPollMs, 250, 1),
      txMarginMs: num('txMarginMs', opts.txMarginMs, 0, 0),
      baudRate: num('baudRate', opts.baudRate, RNODE_BAUD, 1),
      maxFrameBytes: num('maxFrameBytes', opts.maxFrameBytes, KISS_MAX_FRAME, 16),
      timeScale: num('timeScale', opts.timeScale, 1, Number.MIN_VALUE),
      minFirmware: opts.minFirmware ?? REQUIRED_FIRMWARE,
      airtimeLimits: opts.airtimeLimits ?? {},
      scheduler: this.#sched,
    }
    if (!Number.isInteger(this.#opt.queueDepth)) throw new TypeError(`RNodeBackend: queueDepth ${this.#opt.queueDepth} is not an integer`)
    this.#decoder = new KissDecoder({ maxFrameBytes: this.#opt.maxFrameBytes })
  }

  // -------------------------------------------------------------------------------------------
  // RadioBackend

  get credits(): number {
    if (this.#state !== 'started' || this.#config === null || !this.#radioOn || this.#notReady || this.#airtimeLocked) return 0
    return Math.max(0, this.#opt.queueDepth - this.#inflight.length)
  }

  attach(write: (bytes: Uint8Array) => void): void {
    if (typeof write !== 'function') throw new TypeError('attach: write must be a function')
    this.#write = write
  }

  receive(bytes: Uint8Array): void {
    if (this.#state === 'stopped') return
    let frames
    try {
      frames = this.#decoder.push(bytes)
    } catch {
      this.#count('internal')
      return
    }
    for (const f of frames) {
      this.#framesIn++
      try {
        this.#onFrame(f.command, f.data)
      } catch {
        this.#count('internal')
      }
    }
  }

  start(signal?: AbortSignal): Promise<RNodeDeviceInfo> {
    return this.#exclusive(signal, () => this.#start(signal))
  }

  configure(cfg: RNodeRadioConfig, signal?: AbortSignal): Promise<void> {
    return this.#exclusive(signal, () => this.#configure(cfg, signal))
  }

  setRadio(on: boolean, signal?: AbortSignal): Promise<void> {
    return this.#exclusive(signal, async () => {
      this.#requireStarted()
      if (on && this.#config === null) throw new RadioError('RNode: configure() the radio before switching it on', { reason: 'not-configured' })
      await this.#radioState(on, signal)
      this.#radioOn = on
      this.#creditsMaybeChanged()
    })
  }

  transmit(payload: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (!(payload instanceof Uint8Array)) return Promise.reject(new TypeError('transmit: payload must be a Uint8Array'))
    if (payload.length < 1 || payload.length > RNODE_MTU) return Promise.reject(new TypeError(`transmit: ${payload.length} bytes is outside RNode's 1..${RNODE_MTU}`))
    if (this.#state === 'stopped' || this.#state === 'reset') return Promise.reject(this.#lostError())
    if (this.#state !== 'started' || this.#config === null || !this.#radioOn) return Promise.reject(new RadioError('RNode radio is not on (start(), configure(), setRadio(true) first)', { reason: 'radio-off' }))
    if (this.credits <= 0) return Promise.reject(new TypeError(`transmit: no credits (${this.#inflight.length} in flight, device ${this.#notReady ? 'not ready' : this.#airtimeLocked ? 'airtime-locked' : 'busy'})`))
    if (signal?.aborted) return Promise.reject(signal.reason)
    const frame = kissEncode(CMD_DATA, payload)
    try {
      this.#send(frame)
    } catch (err) {
      return Promise.reject(err)
    }
    this.#tx++
    this.#txBytes += payload.length
    const cfg = this.#config
    const phy = this.#effectivePhy()
    const now = this.#sched.now()
    const arrive = now + (frame.length * 10 * 1000) / this.#opt.baudRate
    const toaMs = rnodeAirtimeMs(cfg, payload.length, phy.preambleSymbols) * this.#opt.timeScale
    let start: number
    if (this.#inflight.length > 0 && arrive <= this.#flushEarliest) {
      start = this.#busyUntil // queued before the previous flush could begin: sent in the same flush
    } else {
      const idle = Math.max(arrive, this.#busyUntil)
      this.#flushEarliest = idle + phy.difsMs * this.#opt.timeScale
      start = idle + csmaGuardMs(phy, this.#cwMax) * this.#opt.timeScale
    }
    this.#busyUntil = start + toaMs
    return new Promise<void>((resolve, reject) => {
      const item: InFlight = { bytes: payload.length, toaMs, doneAt: this.#busyUntil + this.#opt.txMarginMs, settled: false, resolve, reject }
      const onAbort = (): void => settle(item, signal!.reason as Error)
      const settle = (it: InFlight, err?: Error): void => {
        if (it.settled) return
        it.settled = true
        signal?.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      item.resolve = () => settle(item)
      item.reject = (err) => settle(item, err)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#inflight.push(item)
      this.#lastCredits = this.credits
      this.#scheduleHead()
    })
  }

  stats(): { framesIn: number; framesOut: number; errors: Record<string, number> } & Record<string, unknown> {
    const phy = this.#config === null ? null : this.#effectivePhy()
    return {
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      errors: { ...this.#decoder.errors, ...this.#errors },
      state: this.#state,
      device: this.#info,
      radioOn: this.#radioOn,
      deviceRadioState: this.#deviceRadioState,
      credits: this.credits,
      inFlight: this.#inflight.length,
      notReady: this.#notReady,
      airtimeLocked: this.#airtimeLocked,
      rx: this.#rx,
      tx: this.#tx,
      txBytes: this.#txBytes,
      ignoredFrames: this.#ignored,
      deviceErrors: { ...this.#deviceErrors },
      airtime: this.#chtm === null ? null : { ...this.#chtm },
      airtimeLimits: { ...this.#limits },
      phy: phy === null ? null : { preambleSymbols: phy.preambleSymbols, csmaSlotMs: phy.csmaSlotMs, difsMs: phy.difsMs, symbolTimeMs: phy.symbolTimeMs, bitrate: phy.bitrate, reported: this.#phyReport !== null, cwMax: this.#cwMax },
    }
  }

  stop(): void {
    if (this.#state === 'stopped') return
    this.#state = 'stopped'
    this.#failAll(new ConnectionLostError('RNode backend stopped'))
    this.#decoder.reset()
  }

  /**
   * Switches the radio off and tells the firmware the host is leaving (CMD_LEAVE 0xFF), like
   * RNodeInterface.py `detach()`. Optional; stop() does not write anything.
   */
  leave(signal?: AbortSignal): Promise<void> {
    return this.#exclusive(signal, async () => {
      this.#requireStarted()
      await this.#radioState(false, signal)
      this.#radioOn = false
      this.#send(kissEncode(CMD_LEAVE, Buffer.from([0xff])))
    })
  }

  // -------------------------------------------------------------------------------------------
  // start / configure

  async #start(signal?: AbortSignal): Promise<RNodeDeviceInfo> {
    if (this.#state === 'stopped') throw this.#lostError()
    if (this.#state === 'started') this.#failAll(new ConnectionLostError('RNode backend restarted'))
    this.#state = 'new'
    this.#info = null
    this.#config = null
    this.#radioOn = false
    this.#notReady = false
    this.#airtimeLocked = false
    this.#chtm = null
    this.#phyReport = null
    this.#cwMax = CSMA_CW_PER_BAND
    const request = Buffer.concat([
      kissEncode(CMD_DETECT, Buffer.from([DETECT_REQ])),
      kissEncode(CMD_FW_VERSION, Buffer.from([0x00])),
      kissEncode(CMD_PLATFORM, Buffer.from([0x00])),
      kissEncode(CMD_MCU, Buffer.from([0x00])),
    ])
    // Restarting the timers after a boot indication: the device was not listening before it.
    const rearms: Array<() => void> = []
    const onArmed = (rearm: () => void): void => void rearms.push(rearm)
    const t = this.#opt.detectTimeoutMs + this.#opt.commandTimeoutMs
    const answer = (cmd: number, min = 1): Promise<Buffer> =>
      this.#expect<Buffer>({ command: cmd, what: commandName(cmd), timeoutMs: t, signal, onArmed, onFrame: (d, done) => (d.length >= min ? done(d) : this.#count('malformed')) })
    const version = answer(CMD_FW_VERSION, 2)
    const platform = answer(CMD_PLATFORM)
    const mcu = answer(CMD_MCU)
    for (const p of [version, platform, mcu]) p.catch(() => {})
    const detect = this.#expect<void>({
      command: CMD_DETECT,
      what: commandName(CMD_DETECT),
      timeoutMs: this.#opt.detectTimeoutMs,
      signal,
      onArmed,
      send: request,
      onFrame: (d, done) => {
        if (d[0] === DETECT_RESP) done()
        else this.#count('detectMismatch')
      },
      onTimeout: () => new TimeoutError(`RNode did not answer CMD_DETECT (0x08) with DETECT_RESP (0x46) within ${this.#opt.detectTimeoutMs} ms: no RNode firmware on this port, or it is not running`),
    })
    const resend = (): void => {
      if (this.#state !== 'new') return
      try {
        this.#send(request)
      } catch {
        // the waiter's timeout reports it
      }
    }
    const retry = { timer: null as { cancel(): void } | null }
    const every = (): void => {
      retry.timer = this.#sched.setTimeout(() => {
        resend()
        every()
      }, this.#opt.detectRetryMs)
    }
    every()
    let boots = 0
    this.#onBoot = () => {
      if (boots++ > 0) return
      for (const r of rearms) r()
      resend()
    }
    try {
      await detect
    } catch (err) {
      this.#cancelWaiters([CMD_FW_VERSION, CMD_PLATFORM, CMD_MCU])
      throw err
    } finally {
      retry.timer?.cancel()
      this.#onBoot = null
    }
    const v = await version
    const p = await platform
    const m = await mcu
    const maj = v[0]!
    const min = v[1]!
    const info: RNodeDeviceInfo = {
      firmware: 'RNode',
      version: formatVersion(maj, min),
      mtu: RNODE_MTU,
      queueDepth: this.#opt.queueDepth,
      channelActivity: false,
      firmwareMajor: maj,
      firmwareMinor: min,
      platform: p[0]!,
      platformName: PLATFORM_NAMES[p[0]!] ?? `0x${p[0]!.toString(16)}`,
      mcu: m[0]!,
      mcuName: MCU_NAMES[m[0]!] ?? `0x${m[0]!.toString(16)}`,
    }
    const [needMaj, needMin] = this.#opt.minFirmware
    if (maj < needMaj || (maj === needMaj && min < needMin)) {
      throw new RadioError(`RNode firmware ${info.version} is older than ${formatVersion(needMaj, needMin)}, the oldest kairo-gw drives (Reticulum's REQUIRED_FW_VER): update it with rnodeconf`, { reason: 'unsupported-firmware' })
    }
    this.#info = info
    this.#state = 'started'
    return info
  }

  /** Set while start() waits: called on a CMD_RESET boot indication. */
  #onBoot: (() => void) | null = null

  async #configure(cfg: RNodeRadioConfig, signal?: AbortSignal): Promise<void> {
    this.#requireStarted()
    const limits = cfg.airtimeLimits ?? this.#opt.airtimeLimits
    const problem = localProblem(cfg, limits)
    if (problem !== null) throw new ConfigRejectedError(`RNode: ${problem.message}`, { field: problem.field })
    const wasOn = this.#radioOn
    this.#config = null
    this.#creditsMaybeChanged()
    this.#phyReport = null
    const fields = ['frequencyHz', 'bandwidthHz', 'txPowerDbm', 'spreadingFactor', 'codingRate'] as const
    let radioTouched = wasOn
    try {
      for (const f of fields) await this.#setting(f, cfg[f], false, signal)
      if (limits.shortTermPercent !== undefined) await this.#airtimeSetting('shortTermPercent', CMD_ST_ALOCK, limits.shortTermPercent, signal)
      if (limits.longTermPercent !== undefined) await this.#airtimeSetting('longTermPercent', CMD_LT_ALOCK, limits.longTermPercent, signal)
      radioTouched = true
      await this.#radioState(true, signal)
      for (const f of fields) await this.#setting(f, cfg[f], true, signal)
    } catch (err) {
      this.#radioOn = false
      if (err instanceof ConfigRejectedError && radioTouched && this.#state === 'started') await this.#radioState(false).catch(() => {})
      throw err
    }
    const { airtimeLimits: _limits, ...radio } = cfg
    this.#config = { ...radio, syncWord: RNODE_SYNC_WORD }
    this.#limits = { ...limits }
    this.#phy = rnodePhy(cfg)
    this.#radioOn = true
    this.#creditsMaybeChanged()
  }

  /** Sends one setting (or its query form when `readBack`) and checks what the device reports. */
  #setting(field: keyof typeof FIELD_TO_COMMAND, want: number, readBack: boolean, signal?: AbortSignal): Promise<void> {
    const cmd = FIELD_TO_COMMAND[field]
    const wide = cmd === CMD_FREQUENCY || cmd === CMD_BANDWIDTH
    const payload = wide ? u32be(readBack ? 0 : want) : Buffer.from([readBack ? 0xff : want])
    return this.#expect<void>({
      command: cmd,
      what: `${commandName(cmd)} for ${field}`,
      timeoutMs: this.#commandTimeout(),
      signal,
      send: kissEncode(cmd, payload),
      onFrame: (d, done, fail) => {
        if (d.length < (wide ? 4 : 1)) return this.#count('malformed')
        const got = wide ? d.readUInt32BE(0) : d[0]!
        const ok = cmd === CMD_FREQUENCY ? Math.abs(got - want) <= FREQUENCY_TOLERANCE_HZ : got === want
        if (ok) return done()
        const how = readBack ? 'now runs' : 'set'
        fail(new ConfigRejectedError(`RNode ${how} ${field} ${got}, not ${want}: the device does not support that value (firmware clamps to its hardware)`, { field }))
      },
      onError: (code, fail) => {
        if (code === ERROR_TXFAILED || code === ERROR_QUEUE_FULL || code === ERROR_MODEM_TIMEOUT || code === ERROR_INITRADIO || code === 0x05) return false
        fail(new ConfigRejectedError(`RNode answered ${commandName(cmd)} for ${field} with CMD_ERROR 0x${code.toString(16).padStart(2, '0')} (${ERROR_NAMES[code] ?? 'unknown'})`, { field }))
        return true
      },
    })
  }

  #airtimeSetting(which: 'shortTermPercent' | 'longTermPercent', cmd: number, percent: number, signal?: AbortSignal): Promise<void> {
    const want = Math.round(percent * 100)
    const field = `airtimeLimits.${which}`
    return this.#expect<void>({
      command: cmd,
      what: `${commandName(cmd)} for ${field}`,
      timeoutMs: this.#commandTimeout(),
      signal,
      send: kissEncode(cmd, u16be(want)),
      onFrame: (d, done, fail) => {
        if (d.length < 2) return this.#count('malformed')
        const got = d.readUInt16BE(0)
        // The firmware stores at/10000 as a float and reports (uint16)(limit*10000): allow one step.
        if (Math.abs(got - want) <= 1) return done()
        fail(new ConfigRejectedError(`RNode set ${field} to ${got / 100} %, not ${want / 100} %`, { field }))
      },
    })
  }

  /** CMD_RADIO_STATE on/off; resolves when the device reports the wanted state. */
  #radioState(on: boolean, signal?: AbortSignal): Promise<void> {
    const want = on ? RADIO_STATE_ON : RADIO_STATE_OFF
    let seen: number | null = null
    return this.#expect<void>({
      command: CMD_RADIO_STATE,
      what: `CMD_RADIO_STATE (0x06) ${on ? 'on' : 'off'}`,
      timeoutMs: this.#commandTimeout(),
      signal,
      send: kissEncode(CMD_RADIO_STATE, Buffer.from([want])),
      // Newer firmware reports the state twice (from startRadio() and after it): a report of the
      // other state may be the tail of an earlier request, so keep waiting for the wanted one.
      onFrame: (d, done) => {
        if (d.length < 1) return this.#count('malformed')
        if (d[0] === want) done()
        else seen = d[0]!
      },
      onError: (code, fail) => {
        if (!on || code !== ERROR_INITRADIO) return false
        fail(new RadioError('RNode could not start its radio (CMD_ERROR ERROR_INITRADIO: the modem did not initialise)', { reason: 'init-failed' }))
        return true
      },
      onTimeout: () =>
        seen === null
          ? new TimeoutError(`RNode did not answer CMD_RADIO_STATE (0x06) within ${this.#commandTimeout()} ms`)
          : new RadioError(
              on
                ? 'RNode reports its radio off after CMD_RADIO_STATE on: the radio is locked (a setting missing) or the hardware is not ready (unprovisioned EEPROM, no modem)'
                : 'RNode reports its radio still on after CMD_RADIO_STATE off',
              { reason: on ? 'radio-offline' : 'radio-on' },
            ),
    })
  }

  // -------------------------------------------------------------------------------------------
  // Frames from the device

  #onFrame(cmd: number, d: Buffer): void {
    switch (cmd) {
      case CMD_DATA:
        return this.#onData(d)
      case CMD_STAT_RSSI:
        if (d.length < 1) return this.#count('malformed')
        this.#lastRssi = d[0]! - RSSI_OFFSET
        return
      case CMD_STAT_SNR:
        if (d.length < 1) return this.#count('malformed')
        this.#lastSnr = ((d[0]! << 24) >> 24) * SNR_STEP_DB
        return
      case CMD_ERROR:
        if (d.length < 1) return this.#count('malformed')
        return this.#onDeviceError(d[0]!)
      case CMD_RESET:
        if (d[0] === CMD_RESET_BYTE) return this.#onDeviceReset()
        return this.#count('malformed')
      case CMD_STAT_CHTM:
        return this.#onChannelStats(d)
      case CMD_STAT_PHYPRM:
        if (d.length < 10) return this.#count('malformed')
        this.#phyReport = { preambleSymbols: d.readUInt16BE(4), csmaSlotMs: d.readUInt16BE(8), difsMs: d.length >= 12 ? d.readUInt16BE(10) : 2 * d.readUInt16BE(8) }
        return
      case CMD_STAT_CSMA:
        if (d.length < 3) return this.#count('malformed')
        this.#cwMax = d[2]!
        return
      case CMD_RADIO_STATE:
        if (d.length >= 1) this.#deviceRadioState = d[0]!
        break
    }
    for (const w of this.#waiters) if (w.command === cmd && w.onFrame(d)) return
    if (cmd === CMD_READY && d.length >= 1) {
      // Unsolicited readiness (not sent by supported firmware): honour "not ready".
      const before = this.credits
      this.#notReady = d[0] === 0
      this.#creditsMaybeChanged(before)
      return
    }
    if (KNOWN_COMMANDS.has(cmd)) this.#ignored++
    else this.#count('unknownCommand')
  }

  #onData(d: Buffer): void {
    const rssi = this.#lastRssi
    const snr = this.#lastSnr
    this.#lastRssi = null
    this.#lastSnr = null
    if (rssi === null || snr === null) this.#count('rxWithoutStats')
    this.#rx++
    this.emit('rx', { payload: d, rssi: rssi ?? Number.NaN, snr: snr ?? Number.NaN })
  }

  #onDeviceError(code: number): void {
    const reason = errorReason(code)
    this.#deviceErrors[reason] = (this.#deviceErrors[reason] ?? 0) + 1
    const name = ERROR_NAMES[code] ?? 'unknown'
    const err = new RadioError(`RNode reported CMD_ERROR 0x${code.toString(16).padStart(2, '0')} (${name})`, { reason })
    this.emit('deviceError', err)
    for (const w of this.#waiters) if (w.onError?.(code)) return
    if (code === ERROR_TXFAILED) {
      const head = this.#inflight[0]
      if (head !== undefined) this.#complete(head, new RadioError('RNode could not transmit the packet (ERROR_TXFAILED)', { reason: 'tx-failed' }))
    } else if (code === ERROR_QUEUE_FULL) {
      const last = this.#inflight[this.#inflight.length - 1]
      if (last !== undefined) this.#complete(last, new RadioError('RNode dropped the packet: its queue is full (ERROR_QUEUE_FULL)', { reason: 'queue-full' }))
    }
  }

  #onDeviceReset(): void {
    this.emit('deviceError', new RadioError('RNode reset itself (CMD_RESET 0xF8)', { reason: 'device-reset' }))
    this.#deviceErrors['device-reset'] = (this.#deviceErrors['device-reset'] ?? 0) + 1
    if (this.#state === 'new') {
      this.#onBoot?.()
      return
    }
    if (this.#state !== 'started') return
    this.#state = 'reset'
    this.#radioOn = false
    this.#failAll(new ConnectionLostError('RNode reset itself (CMD_RESET 0xF8): start() and configure() it again'))
  }

  #onChannelStats(d: Buffer): void {
    if (d.length < 8) return this.#count('malformed')
    this.#chtm = {
      airtimeShortPercent: d.readUInt16BE(0) / 100,
      airtimeLongPercent: d.readUInt16BE(2) / 100,
      loadShortPercent: d.readUInt16BE(4) / 100,
      loadLongPercent: d.readUInt16BE(6) / 100,
    }
    const st = this.#limits.shortTermPercent ?? 0
    const lt = this.#limits.longTermPercent ?? 0
    const locked = (st > 0 && this.#chtm.airtimeShortPercent >= st) || (lt > 0 && this.#chtm.airtimeLongPercent >= lt)
    if (locked === this.#airtimeLocked) return
    const before = this.credits
    this.#airtimeLocked = locked
    if (locked) {
      this.#headTimer?.cancel()
      this.#headTimer = null
    } else {
      this.#reestimate()
      this.#scheduleHead()
    }
    this.#creditsMaybeChanged(before)
  }

  // -------------------------------------------------------------------------------------------
  // Transmit pipeline

  #effectivePhy(): RNodePhy {
    const base = this.#phy ?? rnodePhy(this.#config!)
    const r = this.#phyReport
    if (r === null || r.preambleSymbols === 0) return base
    return { ...base, preambleSymbols: r.preambleSymbols, csmaSlotMs: r.csmaSlotMs, difsMs: r.difsMs }
  }

  /** Restarts the estimates from now (after an airtime lock): the device starts over with CSMA. */
  #reestimate(): void {
    const phy = this.#config === null ? null : this.#effectivePhy()
    let t = this.#sched.now()
    if (phy !== null) {
      this.#flushEarliest = t + phy.difsMs * this.#opt.timeScale
      t += csmaGuardMs(phy, this.#cwMax) * this.#opt.timeScale
    }
    for (const it of this.#inflight) {
      t += it.toaMs
      it.doneAt = t + this.#opt.txMarginMs
    }
    this.#busyUntil = t
  }

  #scheduleHead(): void {
    if (this.#headTimer !== null || this.#probing || this.#airtimeLocked || this.#state !== 'started') return
    const head = this.#inflight[0]
    if (head === undefined) return
    this.#headTimer = this.#sched.setTimeout(() => {
      this.#headTimer = null
      this.#probe()
    }, head.doneAt - this.#sched.now())
  }

  /** At the estimated end of the oldest packet: ask CMD_READY; the answer confirms it. */
  #probe(): void {
    const head = this.#inflight[0]
    if (head === undefined || this.#state !== 'started' || this.#airtimeLocked) return
    this.#probing = true
    this.#expect<number>({
      command: CMD_READY,
      what: 'CMD_READY (0x0F)',
      timeoutMs: this.#opt.commandTimeoutMs + head.toaMs,
      send: kissEncode(CMD_READY, Buffer.from([0x00])),
      onFrame: (d, done) => (d.length >= 1 ? done(d[0]!) : this.#count('malformed')),
    }).then(
      (ready) => {
        this.#probing = false
        this.#probeFailures = 0
        const before = this.credits
        this.#notReady = ready === 0
        if (ready !== 0) {
          const h = this.#inflight[0]
          if (h !== undefined) this.#complete(h, undefined, false)
          this.#creditsMaybeChanged(before)
          this.#scheduleHead()
        } else {
          this.#creditsMaybeChanged(before)
          this.#retryProbe(this.#opt.readyPollMs)
        }
      },
      (err: unknown) => {
        this.#probing = false
        if (this.#state !== 'started') return
        this.#count('readyTimeout')
        if (++this.#probeFailures >= 2) {
          this.#probeFailures = 0
          this.#state = 'reset'
          this.#radioOn = false
          this.#failAll(new ConnectionLostError('RNode stopped answering CMD_READY', { cause: err }))
          return
        }
        this.#retryProbe(0)
      },
    )
  }

  #retryProbe(ms: number): void {
    if (this.#headTimer !== null || this.#airtimeLocked) return
    this.#headTimer = this.#sched.setTimeout(() => {
      this.#headTimer = null
      this.#probe()
    }, ms)
  }

  /** Finishes one in-flight packet (resolve, or reject with `err`) and returns its credit. */
  #complete(item: InFlight, err?: Error, announce = true): void {
    const i = this.#inflight.indexOf(item)
    if (i < 0) return
    const before = this.credits
    this.#inflight.splice(i, 1)
    if (err === undefined) item.resolve()
    else item.reject(err)
    if (this.#inflight.length === 0) this.#busyUntil = Math.min(this.#busyUntil, this.#sched.now())
    if (announce) this.#creditsMaybeChanged(before)
  }

  #creditsMaybeChanged(before = this.#lastCredits): void {
    const now = this.credits
    this.#lastCredits = now
    if (now > before) this.emit('credits', now)
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  #send(bytes: Buffer): void {
    if (this.#write === null) throw new ConnectionLostError('RNode backend: attach() a write function first')
    try {
      this.#write(bytes)
    } catch (err) {
      throw new ConnectionLostError('RNode backend: writing to the device failed', { cause: err })
    }
    this.#framesOut++
  }

  /** Command timeout, extended while the device is (estimated to be) on air: it reads no serial then. */
  #commandTimeout(): number {
    return this.#opt.commandTimeoutMs + Math.max(0, this.#busyUntil - this.#sched.now())
  }

  #expect<T>(o: ExpectOptions<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#state === 'stopped') return reject(this.#lostError())
      if (o.signal?.aborted) return reject(o.signal.reason)
      let finished = false
      let timer: { cancel(): void } | null = null
      const finish = (): void => {
        finished = true
        timer?.cancel()
        o.signal?.removeEventListener('abort', onAbort)
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
      }
      const done = (v: T): void => {
        if (finished) return
        finish()
        resolve(v)
      }
      const fail = (e: Error): void => {
        if (finished) return
        finish()
        reject(e)
      }
      const onAbort = (): void => fail(o.signal!.reason as Error)
      const arm = (ms: number): void => {
        timer?.cancel()
        timer = this.#sched.setTimeout(() => fail(o.onTimeout?.() ?? new TimeoutError(`RNode did not answer ${o.what} within ${Math.round(ms)} ms`)), ms)
      }
      const waiter: Waiter = {
        command: o.command,
        onFrame: (d) => {
          o.onFrame(d, done, fail)
          return true
        },
        fail,
      }
      if (o.onError !== undefined) waiter.onError = (code) => o.onError!(code, fail)
      this.#waiters.push(waiter)
      o.signal?.addEventListener('abort', onAbort, { once: true })
      arm(o.timeoutMs)
      o.onArmed?.(() => {
        if (!finished) arm(o.timeoutMs)
      })
      if (o.send !== undefined) {
        try {
          this.#send(o.send)
        } catch (err) {
          fail(err as Error)
        }
      }
    })
  }

  #cancelWaiters(commands: number[]): void {
    for (const w of [...this.#waiters]) if (commands.includes(w.command)) w.fail(new Error('cancelled'))
  }

  #failAll(err: Error): void {
    this.#headTimer?.cancel()
    this.#headTimer = null
    for (const w of [...this.#waiters]) w.fail(err)
    this.#waiters = []
    const items = this.#inflight
    this.#inflight = []
    for (const it of items) it.reject(err)
    this.#busyUntil = -Infinity
    this.#lastCredits = 0
  }

  #exclusive<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (signal?.aborted) throw signal.reason
      if (this.#state === 'stopped') throw this.#lostError()
      return fn()
    }
    const p = this.#chain.then(run, run)
    this.#chain = p.catch(() => {})
    return p
  }

  #requireStarted(): void {
    if (this.#state === 'stopped' || this.#state === 'reset') throw this.#lostError()
    if (this.#state !== 'started') throw new RadioError('RNode backend: start() it first', { reason: 'not-started' })
  }

  #lostError(): ConnectionLostError {
    return new ConnectionLostError(this.#state === 'reset' ? 'RNode was reset or stopped answering: start() it again' : 'RNode backend stopped')
  }

  #count(what: string): void {
    this.#errors[what] = (this.#errors[what] ?? 0) + 1
  }
}

/** The first thing RNode's protocol cannot carry in `cfg`, or null. */
function localProblem(cfg: RadioConfig, limits: AirtimeLimits): { field: string; message: string } | null {
  if (cfg === null || typeof cfg !== 'object') return { field: 'config', message: 'configure() needs a RadioConfig object' }
  const u32 = (field: keyof RadioConfig): { field: string; message: string } | null => {
    const v = cfg[field]
    return Number.isInteger(v) && v >= 1 && v <= 0xffff_ffff ? null : { field, message: `${field}: ${String(v)} is not an integer in 1..${0xffff_ffff} (a 4-byte field; 0 is the query form)` }
  }
  const byte = (field: keyof RadioConfig, extra = ''): { field: string; message: string } | null => {
    const v = cfg[field]
    return Number.isInteger(v) && v >= 0 && v <= 0xfe ? null : { field, message: `${field}: ${String(v)} is not an integer in 0..254 (a 1-byte field; 0xFF is the query form)${extra}` }
  }
  const p =
    u32('frequencyHz') ??
    u32('bandwidthHz') ??
    byte('txPowerDbm', '; RNode firmware reads TX power as an unsigned byte, so negative powers cannot be set') ??
    byte('spreadingFactor') ??
    byte('codingRate')
  if (p !== null) return p
  if (cfg.syncWord !== RNODE_SYNC_WORD) return { field: 'syncWord', message: `syncWord: RNode firmware always uses 0x12 (no command sets it), not ${String(cfg.syncWord)}` }
  if (!(Number.isInteger(cfg.preambleSymbols) && cfg.preambleSymbols >= 0)) return { field: 'preambleSymbols', message: `preambleSymbols: ${String(cfg.preambleSymbols)} is not a non-negative integer` }
  for (const k of ['shortTermPercent', 'longTermPercent'] as const) {
    const v = limits[k]
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && v < 100)) return { field: `airtimeLimits.${k}`, message: `airtimeLimits.${k}: ${String(v)} is not a percentage in 0..<100 (0: no limit)` }
  }
  return null
}
