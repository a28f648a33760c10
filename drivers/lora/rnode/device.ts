/**
 * An RNode firmware emulation over a VirtualRadio: the device side of RNode's KISS protocol, for
 * the companion-MCU emulator (firmware-bridge/emulator/) and for tests.
 *
 * It follows markqvist/RNode_Firmware (RNode_Firmware.ino `serial_callback()`, `startRadio()`,
 * `flush_queue()`, `transmit()`, `receive_callback()`, `tx_queue_handler()`; Utilities.h
 * `kiss_indicate_*()`, `setBandwidth()`, `updateBitrate()`), release 1.85 on an ESP32 board by
 * default:
 *
 * - Settings are stored and echoed with the firmware's clamps (SF 5..12, CR 5..8, TX power to 22
 *   dBm on SX1262 / 17 dBm on SX127x). 0 (frequency, bandwidth) and 0xFF (one-byte settings) read a
 *   setting back. While the radio is on, frequency and bandwidth are echoed as the modem runs them
 *   (bandwidth rounded up to the next one the chip has, SX127x frequency in 61 Hz steps). The
 *   firmware never answers a setting with CMD_ERROR; it clamps, and the echo shows it.
 * - CMD_RADIO_STATE on starts the radio if frequency, bandwidth, TX power and SF are set (else it
 *   stays "locked" off) and reports the state twice, as startRadio() and its caller do. A radio
 *   that does not start (here: the VirtualRadio refuses the configuration) gives CMD_ERROR
 *   ERROR_INITRADIO, then state off.
 * - CMD_DATA packets go to a queue (200 packets / 6144 bytes, Boards.h CONFIG_QUEUE_*; excess is
 *   dropped silently, as the firmware does). With the radio on and the airtime limits not
 *   reached, the queue is flushed after CSMA (wait for a free channel, DIFS, then random(0, 15)
 *   slots, restarting DIFS whenever the channel gets busy): every queued packet, one after another,
 *   each with the 1-byte header (random sequence nibble, FLAG_SPLIT) and split into two LoRa frames
 *   above 254 bytes. While it transmits, the firmware reads no serial input: host frames that
 *   arrive then are handled after the flush (so answers, e.g. to CMD_READY, come after it).
 * - CMD_READY is answered 0x01 (queue not full) or 0x00. Nothing is sent unsolicited, as in the
 *   firmware.
 * - A received LoRa frame is reassembled like receive_callback() (split packets by sequence
 *   nibble) and sent as CMD_STAT_RSSI (dBm + 157), CMD_STAT_SNR (quarter dB), CMD_DATA.
 * - Every second while the radio is on, CMD_STAT_CHTM reports the airtime (ESP32/nRF52 platforms),
 *   as the firmware's loop() does (check_modem_status() → update_airtime() →
 *   kiss_indicate_channel_stats(), every UTIL_UPDATE_INTERVAL_MS = 1000 ms), whether or not
 *   anything is queued; so the host also learns when an airtime lock has lifted. The same tick
 *   re-checks the airtime lock and restarts a held queue (loop(): `airtime_lock`, then
 *   tx_queue_handler()). No report while a flush is on air (the firmware's loop does not run
 *   then). The emulator also reports right after each flush (the firmware only does so on its
 *   next tick, up to a second later). CMD_STAT_PHYPRM reports the PHY parameters when the radio
 *   starts or they change.
 * - reset() is a power cycle: all state is lost and the device announces CMD_RESET 0xF8, as an
 *   ESP32 RNode does when it boots.
 *
 * Garbage from the host (bad escapes, oversize frames, bytes outside frames, unknown commands) is
 * counted in stats().garbage and skipped.
 */
import type { EventEmitter } from 'node:events'
import { ConfigRejectedError } from '../../../appliance/core/errors.js'
import type { RadioRx } from '../backend.js'
import type { DeviceProtocol, DeviceProtocolFactory, VirtualRadio } from '../device.js'
import type { RadioConfig } from '../radio.js'
import {
  BOARD_HELTEC32_V3, CMD_BANDWIDTH, CMD_BOARD, CMD_CR, CMD_DATA, CMD_DETECT, CMD_ERROR, CMD_FREQUENCY, CMD_FW_VERSION, CMD_LEAVE,
  CMD_LT_ALOCK, CMD_MCU, CMD_PLATFORM, CMD_RADIO_LOCK, CMD_RADIO_STATE, CMD_RANDOM, CMD_READY, CMD_RESET, CMD_RESET_BYTE, CMD_SF,
  CMD_ST_ALOCK, CMD_STAT_CHTM, CMD_STAT_PHYPRM, CMD_STAT_RSSI, CMD_STAT_RX, CMD_STAT_SNR, CMD_STAT_TX, CMD_TXPOWER, DETECT_REQ,
  DETECT_RESP, ERROR_INITRADIO, ERROR_TXFAILED, FLAG_SPLIT, HEADER_L, KNOWN_COMMANDS, MCU_ESP32, PLATFORM_AVR, PLATFORM_ESP32,
  RNODE_MTU, RNODE_SYNC_WORD, RSSI_OFFSET, u16be, u32be,
} from './commands.js'
import type { RNodeScheduler } from './host.js'
import { KissDecoder, kissEncode, type KissFrame } from './kiss.js'
import { CSMA_CW_PER_BAND, rnodeAirFrames, rnodePhy } from './phy.js'

export interface RNodeDeviceOptions {
  /** Firmware version reported, [major, minor] (default [1, 85]: Config.h MAJ_VERS 0x01, MIN_VERS 0x55). */
  firmwareVersion?: readonly [number, number]
  /** CMD_PLATFORM byte (default PLATFORM_ESP32 0x80). */
  platform?: number
  /** CMD_MCU byte (default MCU_ESP32 0x81). */
  mcu?: number
  /** CMD_BOARD byte (default BOARD_HELTEC32_V3 0x3A). */
  board?: number
  /** Modem family: TX power limit and frequency read-back (default 'sx1262'). */
  modem?: 'sx1262' | 'sx1276'
  /** Listen before talk with DIFS and a random contention window (default true). */
  csma?: boolean
  /** Seed of the header nibbles and contention windows (default: from the radio's name). */
  seed?: number
  /** Packets the TX queue holds (default 200, Boards.h CONFIG_QUEUE_MAX_LENGTH). */
  queueMaxLength?: number
  /** Bytes the TX queue holds (default 6144, Boards.h CONFIG_QUEUE_SIZE). */
  queueBytes?: number
  /** False emulates a board whose EEPROM is not provisioned: the radio never starts (default true). */
  hwReady?: boolean
  scheduler?: RNodeScheduler
}

/** Bandwidths the SX126x/SX127x drivers pick from, Hz: a request is rounded up (sx126x.cpp setSignalBandwidth()). */
const BW_STEPS = [7_800, 10_400, 15_600, 20_800, 31_250, 41_700, 62_500, 125_000, 250_000, 500_000]

/** Interval of the channel statistics report and airtime-lock check, ms (Config.h UTIL_UPDATE_INTERVAL_MS). */
export const STATUS_REPORT_MS = 1000

/** Airtime windows: short term (2 bins of 7.5 s, Config.h AIRTIME_BINLEN_MS) and long term (AIRTIME_LONGTERM 3600 s). */
const SHORT_WINDOW_MS = 15_000
const LONG_WINDOW_MS = 3_600_000

const realScheduler: RNodeScheduler = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const h = setTimeout(fn, Math.max(0, ms))
    return { cancel: () => clearTimeout(h), unref: () => void h.unref() }
  },
}

/** A DeviceProtocolFactory with options. */
export function rnodeDeviceFactory(opts: RNodeDeviceOptions = {}): DeviceProtocolFactory {
  return (radio, write) => new RNodeDevice(radio, write, opts)
}

/** The RNode firmware emulation with default options (an ESP32 + SX1262 board, firmware 1.85). */
export const createRNodeDevice: DeviceProtocolFactory = (radio, write) => new RNodeDevice(radio, write)

type Timer = ReturnType<RNodeScheduler["setTimeout"]>

export class RNodeDevice implements DeviceProtocol {
  readonly #radio: VirtualRadio
  readonly #write: (bytes: Uint8Array) => void
  readonly #sched: RNodeScheduler
  readonly #o: Required<Omit<RNodeDeviceOptions, 'scheduler' | 'seed'>>
  readonly #decoder = new KissDecoder()
  #rand: () => number
  #seed: number
  #gen = 0

  // firmware variables (Config.h)
  #freq = 0
  #bw = 0
  #txp = 0xff
  #sf = 0
  #cr = 5
  #online = false
  #stLimit = 0
  #ltLimit = 0
  #statRx = 0
  #statTx = 0

  // TX
  #queue: Buffer[] = []
  #queuedBytes = 0
  #busy = false
  #backlog: KissFrame[] = []
  #csma: { phase: 'free' | 'difs' | 'cw'; timer: Timer | null; target: number; passed: number; since: number } | null = null
  /** The once-a-second status tick while the radio is on. */
  #statusTimer: Timer | null = null
  #txWait: ((ok: boolean) => void) | null = null
  #airtime: Array<{ at: number; ms: number }> = []

  // RX reassembly (receive_callback())
  #seq: number | null = null
  #rxBuf: Buffer[] = []

  #c: Record<string, number> = {}
  readonly #listeners: Array<[string, (...a: never[]) => void]> = []

  constructor(radio: VirtualRadio, write: (bytes: Uint8Array) => void, opts: RNodeDeviceOptions = {}) {
    this.#radio = radio
    this.#write = write
    // The firmware's timers (CSMA, airtime windows, the 1 s status report) run in radio time.
    this.#sched = opts.scheduler ?? radio.airClock ?? realScheduler
    this.#o = {
      firmwareVersion: opts.firmwareVersion ?? [1, 0x55],
      platform: opts.platform ?? PLATFORM_ESP32,
      mcu: opts.mcu ?? MCU_ESP32,
      board: opts.board ?? BOARD_HELTEC32_V3,
      modem: opts.modem ?? 'sx1262',
      csma: opts.csma ?? true,
      queueMaxLength: opts.queueMaxLength ?? 200,
      queueBytes: opts.queueBytes ?? 6144,
      hwReady: opts.hwReady ?? true,
    }
    this.#seed = opts.seed ?? hashName(radio.name)
    this.#rand = mulberry32(this.#seed)
    const on = (ev: string, fn: (...a: never[]) => void): void => {
      ;(radio as unknown as EventEmitter).on(ev, fn as (...a: unknown[]) => void)
      this.#listeners.push([ev, fn])
    }
    on('rx', (rx: RadioRx) => this.#onAir(rx))
    on('txDone', () => this.#txWait?.(true))
    on('txAborted', () => this.#txWait?.(false))
    on('channel', (busy: boolean) => this.#onChannel(busy))
  }

  // -------------------------------------------------------------------------------------------
  // DeviceProtocol

  receive(bytes: Uint8Array): void {
    let frames: KissFrame[]
    try {
      frames = this.#decoder.push(bytes)
    } catch {
      this.#count('internal')
      return
    }
    for (const f of frames) {
      this.#count('framesIn')
      if (this.#busy) this.#backlog.push(f)
      else this.#handle(f)
    }
  }

  /** Power cycle: forget everything, radio off, then announce the boot (CMD_RESET 0xF8). */
  reset(): void {
    this.#gen++
    this.#cancelCsma()
    this.#stopStatus()
    const wait = this.#txWait
    this.#txWait = null
    wait?.(false)
    this.#freq = 0
    this.#bw = 0
    this.#txp = 0xff
    this.#sf = 0
    this.#cr = 5
    this.#stLimit = 0
    this.#ltLimit = 0
    this.#statRx = 0
    this.#statTx = 0
    this.#queue = []
    this.#queuedBytes = 0
    this.#busy = false
    this.#backlog = []
    this.#airtime = []
    this.#seq = null
    this.#rxBuf = []
    this.#decoder.reset()
    this.#rand = mulberry32(this.#seed + this.#gen)
    if (this.#online) {
      this.#online = false
      this.#safe(() => this.#radio.setOn(false))
    }
    this.#count('resets')
    if (this.#o.platform !== PLATFORM_AVR) this.#send(CMD_RESET, [CMD_RESET_BYTE])
  }

  stats(): Record<string, number> {
    const d = this.#decoder.errors
    const garbage = d.badEscape + d.oversize + d.outOfFrame + (this.#c.unknownCommand ?? 0) + (this.#c.oversizePacket ?? 0)
    return {
      ...this.#c,
      badEscape: d.badEscape,
      oversize: d.oversize,
      outOfFrame: d.outOfFrame,
      garbage,
      queued: this.#queue.length,
      queuedBytes: this.#queuedBytes,
      radioOnline: this.#online ? 1 : 0,
    }
  }

  /** Stops listening to the radio and cancels timers (the emulator calls it on shutdown). */
  close(): void {
    this.#gen++
    this.#cancelCsma()
    this.#stopStatus()
    for (const [ev, fn] of this.#listeners) (this.#radio as unknown as EventEmitter).off(ev, fn as (...a: unknown[]) => void)
    this.#listeners.length = 0
  }

  // -------------------------------------------------------------------------------------------
  // Host commands (serial_callback())

  #handle(f: KissFrame): void {
    const d = f.data
    switch (f.command) {
      case CMD_DATA:
        return this.#enqueue(d)
      case CMD_FREQUENCY:
        if (d.length < 4) return this.#count('shortCommand')
        {
          const v = d.readUInt32BE(0)
          if (v !== 0) this.#setLive('frequencyHz', () => (this.#freq = v))
          return this.#send(CMD_FREQUENCY, u32be(this.#freq))
        }
      case CMD_BANDWIDTH:
        if (d.length < 4) return this.#count('shortCommand')
        {
          const v = d.readUInt32BE(0)
          if (v !== 0) this.#setLive('bandwidthHz', () => (this.#bw = v))
          return this.#send(CMD_BANDWIDTH, u32be(this.#bw))
        }
      case CMD_ST_ALOCK:
      case CMD_LT_ALOCK:
        if (d.length < 2) return this.#count('shortCommand')
        {
          const at = d.readUInt16BE(0)
          let limit = at / 10_000
          if (limit >= 1) limit = 0
          if (f.command === CMD_ST_ALOCK) this.#stLimit = limit
          else this.#ltLimit = limit
          return this.#send(f.command, u16be(Math.trunc(limit * 10_000)))
        }
    }
    if (d.length === 0) return this.#count('noArgument') // the firmware acts on the byte after the command
    for (const b of d) this.#byteCommand(f.command, b)
  }

  /** Commands the firmware handles once per data byte. */
  #byteCommand(cmd: number, b: number): void {
    switch (cmd) {
      case CMD_TXPOWER:
        if (b !== 0xff) {
          const max = this.#o.modem === 'sx1262' ? 22 : 17
          this.#setLive('txPowerDbm', () => (this.#txp = Math.min(b, max)))
        }
        return this.#send(CMD_TXPOWER, [this.#txp & 0xff])
      case CMD_SF:
        if (b !== 0xff) this.#setLive('spreadingFactor', () => (this.#sf = Math.max(5, Math.min(12, b))))
        return this.#send(CMD_SF, [this.#sf])
      case CMD_CR:
        if (b !== 0xff) this.#setLive('codingRate', () => (this.#cr = Math.max(5, Math.min(8, b))))
        return this.#send(CMD_CR, [this.#cr])
      case CMD_RADIO_STATE:
        if (b === 0x00) this.#stopRadio()
        else if (b === 0x01) this.#startRadio()
        else if (b !== 0xff) return // the firmware ignores other values
        return this.#send(CMD_RADIO_STATE, [this.#online ? 1 : 0])
      case CMD_RADIO_LOCK:
        return this.#send(CMD_RADIO_LOCK, [this.#locked() ? 1 : 0])
      case CMD_DETECT:
        if (b === DETECT_REQ) this.#send(CMD_DETECT, [DETECT_RESP])
        return
      case CMD_READY:
        return this.#send(CMD_READY, [this.#queueFull() ? 0x00 : 0x01])
      case CMD_FW_VERSION:
        return this.#send(CMD_FW_VERSION, [this.#o.firmwareVersion[0], this.#o.firmwareVersion[1]])
      case CMD_PLATFORM:
        return this.#send(CMD_PLATFORM, [this.#o.platform])
      case CMD_MCU:
        return this.#send(CMD_MCU, [this.#o.mcu])
      case CMD_BOARD:
        return this.#send(CMD_BOARD, [this.#o.board])
      case CMD_STAT_RX:
        return this.#send(CMD_STAT_RX, u32be(this.#statRx))
      case CMD_STAT_TX:
        return this.#send(CMD_STAT_TX, u32be(this.#statTx))
      case CMD_RANDOM:
        return this.#send(CMD_RANDOM, [Math.floor(this.#rand() * 0xff)])
      case CMD_LEAVE:
        return
      case CMD_RESET:
        if (b === CMD_RESET_BYTE) this.reset()
        return
      default:
        if (KNOWN_COMMANDS.has(cmd)) this.#count('unsupported')
        else this.#count('unknownCommand')
    }
  }

  /**
   * Changes one setting; while the radio is on it goes to the modem at once. If the VirtualRadio
   * refuses it, the old value stays (and is what the echo reports).
   */
  #setLive(field: keyof RadioConfig, apply: () => void): void {
    const saved = [this.#freq, this.#bw, this.#txp, this.#sf, this.#cr] as const
    apply()
    if (!this.#online) return
    try {
      this.#radio.configure(this.#radioConfig())
      this.#sendPhy()
    } catch (err) {
      ;[this.#freq, this.#bw, this.#txp, this.#sf, this.#cr] = saved
      this.#count(`refused.${err instanceof ConfigRejectedError ? err.field : field}`)
    }
    if (this.#online) this.#readBack()
  }

  /** What the modem runs, read back into the firmware variables (getBandwidth(), getFrequency()). */
  #readBack(): void {
    this.#bw = snapBandwidth(this.#bw)
    if (this.#o.modem === 'sx1276') {
      const frf = Math.floor((this.#freq * 2 ** 19) / 32e6)
      this.#freq = Math.floor((frf * 32e6) / 2 ** 19)
    }
  }

  #radioConfig(): RadioConfig {
    const bw = snapBandwidth(this.#bw)
    const phy = rnodePhy({ spreadingFactor: this.#sf, bandwidthHz: bw, codingRate: this.#cr })
    return { frequencyHz: this.#freq, bandwidthHz: bw, spreadingFactor: this.#sf, codingRate: this.#cr, txPowerDbm: this.#txp, syncWord: RNODE_SYNC_WORD, preambleSymbols: phy.preambleSymbols }
  }

  #locked(): boolean {
    return !(this.#freq !== 0 && this.#bw !== 0 && this.#txp !== 0xff && this.#sf !== 0)
  }

  /** startRadio(): reports the state itself; the caller reports it once more. */
  #startRadio(): void {
    if (this.#online) return this.#send(CMD_RADIO_STATE, [1])
    if (this.#locked() || !this.#o.hwReady) return this.#send(CMD_RADIO_STATE, [0])
    try {
      this.#radio.configure(this.#radioConfig())
      this.#radio.setOn(true)
    } catch {
      this.#count('initFailed')
      return this.#send(CMD_ERROR, [ERROR_INITRADIO])
    }
    this.#online = true
    this.#readBack()
    this.#sendPhy()
    this.#send(CMD_RADIO_STATE, [1])
    this.#startStatus()
    this.#kick()
  }

  #stopRadio(): void {
    this.#cancelCsma()
    this.#stopStatus()
    if (!this.#online) return
    this.#online = false
    this.#safe(() => this.#radio.setOn(false))
  }

  /** loop() while the radio is on: every STATUS_REPORT_MS, report the channel statistics and re-check the airtime lock. */
  #startStatus(): void {
    this.#stopStatus()
    const gen = this.#gen
    const tick = (): void => {
      this.#statusTimer = null
      if (gen !== this.#gen || !this.#online) return
      if (!this.#busy) {
        this.#sendChannelStats()
        this.#kick()
      }
      this.#statusTimer = this.#sched.setTimeout(tick, STATUS_REPORT_MS)
      this.#statusTimer.unref?.()
    }
    this.#statusTimer = this.#sched.setTimeout(tick, STATUS_REPORT_MS)
    this.#statusTimer.unref?.()
  }

  #stopStatus(): void {
    this.#statusTimer?.cancel()
    this.#statusTimer = null
  }

  // -------------------------------------------------------------------------------------------
  // Transmit

  #queueFull(): boolean {
    return this.#queue.length >= this.#o.queueMaxLength || this.#queuedBytes >= this.#o.queueBytes
  }

  #enqueue(d: Buffer): void {
    if (d.length === 0) return this.#count('emptyPacket')
    if (d.length > RNODE_MTU) return this.#count('oversizePacket')
    if (this.#queueFull() || this.#queuedBytes + d.length > this.#o.queueBytes) return this.#count('queueOverflow')
    this.#queue.push(d)
    this.#queuedBytes += d.length
    this.#kick()
  }

  #airtimeFractions(): { short: number; long: number } {
    const now = this.#sched.now()
    this.#airtime = this.#airtime.filter((a) => a.at > now - LONG_WINDOW_MS)
    let s = 0
    let l = 0
    for (const a of this.#airtime) {
      l += a.ms
      if (a.at > now - SHORT_WINDOW_MS) s += a.ms
    }
    return { short: s / SHORT_WINDOW_MS, long: l / LONG_WINDOW_MS }
  }

  #airtimeLocked(): boolean {
    const a = this.#airtimeFractions()
    return (this.#stLimit !== 0 && a.short >= this.#stLimit) || (this.#ltLimit !== 0 && a.long >= this.#ltLimit)
  }

  /** tx_queue_handler(): start CSMA when there is something to send (held while airtime-locked: the status tick retries). */
  #kick(): void {
    if (!this.#online || this.#busy || this.#csma !== null || this.#queue.length === 0) return
    if (this.#airtimeLocked()) return this.#count('airtimeHeld')
    if (!this.#o.csma) return void this.#flush()
    const phy = rnodePhy(this.#radioConfig())
    const cw = Math.floor(this.#rand() * CSMA_CW_PER_BAND) // random(cw_min 0, cw_max 15)
    this.#csma = { phase: 'free', timer: null, target: cw * phy.csmaSlotMs, passed: 0, since: 0 }
    this.#csmaStep()
  }

  #csmaStep(): void {
    const c = this.#csma
    if (c === null) return
    c.timer?.cancel()
    c.timer = null
    if (this.#radio.channelBusy()) {
      c.phase = 'free' // wait for the 'channel' event
      return
    }
    const phy = rnodePhy(this.#radioConfig())
    const gen = this.#gen
    c.phase = 'difs'
    c.timer = this.#sched.setTimeout(() => {
      if (gen !== this.#gen || this.#csma !== c) return
      if (this.#radio.channelBusy()) return this.#csmaStep()
      c.phase = 'cw'
      c.since = this.#sched.now()
      c.timer = this.#sched.setTimeout(() => {
        if (gen !== this.#gen || this.#csma !== c) return
        this.#csma = null
        void this.#flush()
      }, c.target - c.passed)
    }, phy.difsMs)
  }

  #onChannel(busy: boolean): void {
    const c = this.#csma
    if (c === null) return
    if (busy) {
      if (c.phase === 'cw') c.passed += this.#sched.now() - c.since
      c.timer?.cancel()
      c.timer = null
      c.phase = 'free'
    } else if (c.phase === 'free') {
      this.#csmaStep()
    }
  }

  #cancelCsma(): void {
    this.#csma?.timer?.cancel()
    this.#csma = null
  }

  /** flush_queue() (pop_queue() above 60 kbit/s): send the queued packets back to back. */
  async #flush(): Promise<void> {
    if (!this.#online || this.#queue.length === 0) return
    const gen = this.#gen
    const limit = rnodePhy(this.#radioConfig()).limitRate
    const packets = limit ? this.#queue.splice(0, 1) : this.#queue.splice(0)
    for (const p of packets) this.#queuedBytes -= p.length
    this.#busy = true
    try {
      for (const p of packets) {
        if (gen !== this.#gen) return
        if (!(await this.#transmit(p, gen))) break
      }
    } finally {
      if (gen === this.#gen) {
        this.#busy = false
        this.#sendChannelStats()
        const backlog = this.#backlog
        this.#backlog = []
        for (const f of backlog) {
          if (this.#busy) this.#backlog.push(f)
          else this.#handle(f)
        }
        this.#kick()
      }
    }
  }

  /** transmit(): one packet, header first, split above 254 bytes. False when the radio failed. */
  async #transmit(p: Buffer, gen: number): Promise<boolean> {
    if (!this.#online) {
      this.#send(CMD_ERROR, [ERROR_TXFAILED])
      return false
    }
    const sizes = rnodeAirFrames(p.length)
    let header = Math.floor(this.#rand() * 256) & 0xf0
    if (sizes.length > 1) header |= FLAG_SPLIT
    let offset = 0
    for (const size of sizes) {
      const frame = Buffer.alloc(size)
      frame[0] = header
      const n = size - HEADER_L
      p.copy(frame, HEADER_L, offset, offset + n)
      offset += n
      let airtimeMs: number
      const done = new Promise<boolean>((resolve) => (this.#txWait = resolve))
      try {
        airtimeMs = this.#radio.transmit(frame).airtimeMs
      } catch {
        this.#txWait = null
        this.#count('txFailed')
        this.#send(CMD_ERROR, [ERROR_TXFAILED])
        return false
      }
      const ok = await done
      this.#txWait = null
      if (gen !== this.#gen) return false
      this.#airtime.push({ at: this.#sched.now(), ms: airtimeMs })
      this.#count('txFrames')
      if (!ok) return false
    }
    this.#statTx++
    this.#count('txPackets')
    return true
  }

  // -------------------------------------------------------------------------------------------
  // Receive (receive_callback())

  #onAir(rx: RadioRx): void {
    if (!this.#online || rx.payload.length < 1) return
    const header = rx.payload[0]!
    const data = rx.payload.subarray(1)
    const seq = header >> 4
    const split = (header & FLAG_SPLIT) !== 0
    let ready: Buffer | null = null
    if (split && this.#seq === seq) {
      ready = Buffer.concat([...this.#rxBuf, data]).subarray(0, RNODE_MTU)
      this.#seq = null
      this.#rxBuf = []
    } else if (split) {
      if (this.#seq !== null) this.#count('rxSplitDropped')
      this.#seq = seq
      this.#rxBuf = [Buffer.from(data)]
    } else {
      if (this.#seq !== null) this.#count('rxSplitDropped')
      this.#seq = null
      this.#rxBuf = []
      ready = Buffer.from(data)
    }
    if (ready === null) return
    this.#statRx++
    this.#count('rxPackets')
    const rssi = clamp(Math.round(rx.rssi) + RSSI_OFFSET, 0, 255)
    const snr = clamp(Math.round(rx.snr * 4), -128, 127) & 0xff
    this.#send(CMD_STAT_RSSI, [rssi])
    this.#send(CMD_STAT_SNR, [snr])
    this.#send(CMD_DATA, ready)
  }

  // -------------------------------------------------------------------------------------------
  // Indications

  #sendChannelStats(): void {
    if (this.#o.platform === PLATFORM_AVR) return
    const a = this.#airtimeFractions()
    const s = Math.min(0xffff, Math.trunc(a.short * 10_000))
    const l = Math.min(0xffff, Math.trunc(a.long * 10_000))
    // Channel load is reported as our own airtime: the emulator does not sample the channel.
    this.#send(CMD_STAT_CHTM, Buffer.concat([u16be(s), u16be(l), u16be(s), u16be(l)]))
  }

  #sendPhy(): void {
    if (this.#o.platform === PLATFORM_AVR) return
    const phy = rnodePhy({ spreadingFactor: this.#sf, bandwidthHz: snapBandwidth(this.#bw), codingRate: this.#cr })
    const w = (v: number): Buffer => u16be(Math.trunc(v))
    this.#send(CMD_STAT_PHYPRM, Buffer.concat([w(phy.symbolTimeMs * 1000), w(phy.symbolRate), w(phy.preambleSymbols), w(phy.preambleTimeMs), w(phy.csmaSlotMs), w(phy.difsMs)]))
  }

  #send(cmd: number, data: Uint8Array | number[]): void {
    const frame = kissEncode(cmd, data instanceof Uint8Array ? data : Buffer.from(data))
    this.#count('framesOut')
    try {
      this.#write(frame)
    } catch {
      this.#count('writeFailed')
    }
  }

  #safe(fn: () => void): void {
    try {
      fn()
    } catch {
      this.#count('radioError')
    }
  }

  #count(what: string): void {
    this.#c[what] = (this.#c[what] ?? 0) + 1
  }
}

function snapBandwidth(bw: number): number {
  for (const s of BW_STEPS) if (bw <= s) return s
  return BW_STEPS[BW_STEPS.length - 1]!
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v))
}

function hashName(name: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** Small seeded PRNG (mulberry32): [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

