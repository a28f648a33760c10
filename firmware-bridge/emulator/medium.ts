/**
 * The shared radio medium behind the companion-MCU emulators: emulated LoRa radios attach to it
 * by name, and it decides who hears what, when, how strongly, and what is lost.
 *
 * Model (all times are *radio* time, ms; see `timeScale`):
 * - Topology: a directed link `from → to` says that `to` hears `from`, with an RSSI (dBm), an SNR
 *   (dB) and a loss probability. By default every radio hears every other at -60 dBm / 10 dB with
 *   no loss (`defaultLink`); `setLink(from, to, null)` puts `to` out of range of `from`, and
 *   `defaultLink: null` makes only the links set explicitly exist.
 * - Channel: a receiver hears a transmission only when frequency, bandwidth, spreading factor and
 *   sync word are all equal (other SFs/frequencies are treated as orthogonal: they neither
 *   deliver nor interfere).
 * - Time on air by Semtech's formula (drivers/lora/radio.ts `timeOnAirMs`) for the
 *   transmitter's SF/BW/CR/preamble. `txDone` fires after it.
 * - Channel busy (for a radio): while any radio it hears is transmitting on its channel, whether
 *   or not that packet will be decoded (energy/preamble detection). Changes emit `channel`.
 * - Collisions: two transmissions that overlap in time at a receiver are both lost there, except
 *   for the capture effect: with `captureDb` (default 6 dB) a packet at least that much stronger
 *   (RSSI) than each packet overlapping it survives while the weaker ones are lost.
 *   `captureDb: null` turns capture off (every overlap loses both). The model is symmetric: it
 *   does not matter which packet started first.
 * - Half duplex: a radio that is transmitting hears nothing; starting to transmit loses whatever
 *   it was receiving.
 * - Loss: for every (transmission, receiver that would hear it) the seeded PRNG draws once, in
 *   attach order; the packet is lost when the draw is below the link's loss probability. A link
 *   whose SNR is below the demodulation floor of the receiver's SF (SF7 -7.5 dB ... SF12 -20 dB)
 *   loses every packet. Lost packets still occupy the channel and still collide.
 * - Radios switched off hear nothing and cannot transmit; switching off during a transmission
 *   aborts it (no `txDone`; the medium emits `txAborted`); retuning or switching off while receiving loses the
 *   packet being received. `configure()` during a transmission is refused (RadioError 'busy').
 * - Duty cycle: each radio's airtime is accounted over a rolling window (`dutyWindowMs`, default
 *   1 h) against the region's duty cycle (EU868: 1 %). The medium only accounts and reports
 *   (`dutyCycle()`, `stats()`); enforcing the budget is the LoRa link's job.
 *
 * Time: the scheduler (real timers by default, or a VirtualScheduler in tests) counts wall ms;
 * radio time = wall time / timeScale. With timeScale 0.01 an SF12 packet of 2.8 s of airtime takes
 * 28 ms of real time, but every airtime, timestamp and duty-cycle figure is still reported in
 * radio time.
 */
import { EventEmitter } from 'node:events'
import { ConfigRejectedError, RadioError } from '../../appliance/core/errors.js'
import type { RadioRx } from '../../drivers/lora/backend.js'
import type { VirtualRadio, VirtualRadioEvents } from '../../drivers/lora/device.js'
import { DEFAULT_RADIO, LORA_PHY_MTU, REGIONS, radioConfigProblems, regionProblems, timeOnAirMs, type RadioConfig, type Region } from '../../drivers/lora/radio.js'
import { SeededRandom } from './random.js'
import { realScheduler, type Scheduler, type TimerHandle } from './scheduler.js'

/** What a receiver gets from a transmitter. */
export interface LinkSpec {
  /** Received signal strength, dBm. */
  rssi: number
  /** Signal-to-noise ratio, dB. */
  snr: number
  /** Probability that a packet is lost on this link, 0..1. */
  loss: number
  /** Frequency error reported with each packet, Hz (default 0). */
  frequencyErrorHz?: number
}

export const DEFAULT_LINK: Readonly<LinkSpec> = Object.freeze({ rssi: -60, snr: 10, loss: 0 })

/** Lowest SNR at which an SX126x still demodulates, dB, by spreading factor (datasheet 6.1.4). */
export const SNR_FLOOR_DB: Readonly<Record<number, number>> = Object.freeze({ 5: -2.5, 6: -5, 7: -7.5, 8: -10, 9: -12.5, 10: -15, 11: -17.5, 12: -20 })

export const DEFAULT_CAPTURE_DB = 6
export const DEFAULT_DUTY_WINDOW_MS = 3_600_000
export const DEFAULT_SEED = 0x6b61_6972 // "kair"

export interface MediumOptions {
  /** PRNG seed (default DEFAULT_SEED): the same seed and the same inputs give the same losses. */
  seed?: number
  /** Wall ms per radio ms (default 1). 0.01 runs the air 100x faster than real time. */
  timeScale?: number
  /** Region for duty-cycle accounting (a REGIONS key or a Region); default EU868. */
  region?: string | Region
  /** Also refuse, in configure(), frequencies and powers the region forbids (default false). */
  enforceRegion?: boolean
  /** Rolling duty-cycle window, radio ms (default 1 h). */
  dutyWindowMs?: number
  /** Link used for pairs with no explicit link; null: such pairs do not hear each other. */
  defaultLink?: Partial<LinkSpec> | null
  /** Capture threshold, dB (default 6); null: no capture, overlapping packets are all lost. */
  captureDb?: number | null
  /** Clock and timers (default: real). */
  scheduler?: Scheduler
}

export interface AttachOptions {
  /** Initial (and power-on reset) configuration, on top of DEFAULT_RADIO. */
  config?: Partial<RadioConfig>
  /** Whether the radio is on initially and after reset() (default true). */
  on?: boolean
}

export type LossReason =
  /** Overlapped another packet at this receiver (and did not capture it). */
  | 'collision'
  /** Dropped by the link's loss probability. */
  | 'loss'
  /** The link's SNR is below the floor for the receiver's SF. */
  | 'snr'
  /** The receiver was transmitting. */
  | 'half-duplex'
  /** The receiver was switched off during the packet. */
  | 'off'
  /** The receiver changed channel during the packet. */
  | 'retuned'
  /** The transmitter stopped (switched off or detached) during the packet. */
  | 'aborted'

export interface MediumEvents {
  tx: [{ id: number; from: string; bytes: number; airtimeMs: number; at: number }]
  txDone: [{ id: number; from: string; airtimeMs: number; at: number }]
  txAborted: [{ id: number; from: string; airtimeMs: number; at: number }]
  rx: [{ id: number; from: string; to: string; bytes: number; rssi: number; snr: number; at: number }]
  lost: [{ id: number; from: string; to: string; reason: LossReason; at: number }]
  channel: [{ radio: string; busy: boolean; at: number }]
}

/** Duty-cycle figures of one radio over the rolling window, radio ms. */
export interface DutyCycleReport {
  region: string
  /** The region's duty cycle (0..1), or null when it has none. */
  dutyCycle: number | null
  windowMs: number
  /** Airtime inside the window; a transmission in progress counts in full. */
  usedMs: number
  /** Allowed airtime in the window, or null when unlimited. */
  budgetMs: number | null
  /** usedMs / windowMs. */
  fraction: number
  /** True when usedMs exceeds budgetMs. */
  overBudget: boolean
}

interface Reception {
  to: EmulatedRadio
  rssi: number
  snr: number
  frequencyErrorHz: number
  lost: LossReason | null
}

interface Transmission {
  id: number
  from: EmulatedRadio
  channel: string
  payload: Buffer
  start: number
  end: number
  airtimeMs: number
  receptions: Map<EmulatedRadio, Reception>
  timer: TimerHandle | undefined
}

const COUNTERS = ['txFrames', 'txBytes', 'txAirtimeMs', 'txAborted', 'rxFrames', 'rxBytes', 'lostCollision', 'lostLoss', 'lostSnr', 'lostHalfDuplex', 'lostOff', 'lostRetuned', 'lostAborted'] as const
type Counter = (typeof COUNTERS)[number]
const LOSS_COUNTER: Record<LossReason, Counter> = {
  collision: 'lostCollision',
  loss: 'lostLoss',
  snr: 'lostSnr',
  'half-duplex': 'lostHalfDuplex',
  off: 'lostOff',
  retuned: 'lostRetuned',
  aborted: 'lostAborted',
}

const MEDIUM_KEY = Symbol('medium')
const INTERNAL = Symbol('internal')
const INTERNAL_MEDIUM = Symbol('internal-medium')

function channelKey(c: Readonly<RadioConfig>): string {
  return `${c.frequencyHz}/${c.bandwidthHz}/${c.spreadingFactor}/${c.syncWord}`
}

function fullLink(spec: Partial<LinkSpec>, what: string): LinkSpec {
  const l: LinkSpec = { rssi: spec.rssi ?? DEFAULT_LINK.rssi, snr: spec.snr ?? DEFAULT_LINK.snr, loss: spec.loss ?? DEFAULT_LINK.loss }
  if (spec.frequencyErrorHz !== undefined) l.frequencyErrorHz = spec.frequencyErrorHz
  if (!Number.isFinite(l.rssi)) throw new TypeError(`${what}: rssi ${String(l.rssi)} is not a number`)
  if (!Number.isFinite(l.snr)) throw new TypeError(`${what}: snr ${String(l.snr)} is not a number`)
  if (!(l.loss >= 0 && l.loss <= 1)) throw new TypeError(`${what}: loss ${String(l.loss)} is not in 0..1`)
  if (l.frequencyErrorHz !== undefined && !Number.isFinite(l.frequencyErrorHz)) throw new TypeError(`${what}: frequencyErrorHz is not a number`)
  return Object.freeze(l)
}

const RADIO_FIELDS: ReadonlyArray<keyof RadioConfig> = ['frequencyHz', 'bandwidthHz', 'spreadingFactor', 'codingRate', 'txPowerDbm', 'syncWord', 'preambleSymbols']

export class Medium extends EventEmitter<MediumEvents> {
  readonly seed: number
  readonly timeScale: number
  readonly region: Region
  readonly enforceRegion: boolean
  readonly dutyWindowMs: number
  readonly captureDb: number | null
  readonly scheduler: Scheduler
  readonly #origin: number
  readonly #rng: SeededRandom
  readonly #radios = new Map<string, EmulatedRadio>()
  readonly #links = new Map<string, LinkSpec | null>()
  #defaultLink: LinkSpec | null
  readonly #active = new Set<Transmission>()
  #nextId = 1
  #closed = false

  constructor(options: MediumOptions = {}) {
    super()
    const seed = options.seed ?? DEFAULT_SEED
    this.#rng = new SeededRandom(seed)
    this.seed = this.#rng.seed
    const ts = options.timeScale ?? 1
    if (!(Number.isFinite(ts) && ts > 0)) throw new TypeError(`timeScale: ${String(ts)} is not a positive number`)
    this.timeScale = ts
    const region = options.region ?? 'EU868'
    if (typeof region === 'string') {
      const r = REGIONS[region]
      if (r === undefined) throw new TypeError(`region: unknown region "${region}" (one of ${Object.keys(REGIONS).join(', ')})`)
      this.region = r
    } else this.region = region
    this.enforceRegion = options.enforceRegion ?? false
    const w = options.dutyWindowMs ?? DEFAULT_DUTY_WINDOW_MS
    if (!(Number.isFinite(w) && w > 0)) throw new TypeError(`dutyWindowMs: ${String(w)} is not a positive number`)
    this.dutyWindowMs = w
    const cap = options.captureDb === undefined ? DEFAULT_CAPTURE_DB : options.captureDb
    if (cap !== null && !(Number.isFinite(cap) && cap >= 0)) throw new TypeError(`captureDb: ${String(cap)} is not a non-negative number`)
    this.captureDb = cap
    this.#defaultLink = options.defaultLink === null ? null : fullLink(options.defaultLink ?? {}, 'defaultLink')
    this.scheduler = options.scheduler ?? realScheduler
    this.#origin = this.scheduler.now()
  }

  /** Radio time since the medium was created, ms. */
  now(): number {
    return (this.scheduler.now() - this.#origin) / this.timeScale
  }

  /** Attaches a new radio called `name` (unique on this medium). */
  attach(name: string, options: AttachOptions = {}): EmulatedRadio {
    if (this.#closed) throw new Error('medium is closed')
    if (typeof name !== 'string' || name === '') throw new TypeError('attach: name must be a non-empty string')
    if (this.#radios.has(name)) throw new TypeError(`attach: a radio named "${name}" is already attached`)
    const radio = new EmulatedRadio(this, name, options, MEDIUM_KEY)
    this.#radios.set(name, radio)
    this.#updateChannels()
    return radio
  }

  /** Detaches `name` (aborting what it transmits). */
  detach(name: string): void {
    const radio = this.#radios.get(name)
    if (radio === undefined) return
    radio[INTERNAL].setPower(false)
    this.#radios.delete(name)
    this.#updateChannels()
  }

  radio(name: string): EmulatedRadio | undefined {
    return this.#radios.get(name)
  }

  radios(): EmulatedRadio[] {
    return [...this.#radios.values()]
  }

  /**
   * Sets the link `from → to` (what `to` receives from `from`): missing fields come from
   * DEFAULT_LINK. `null` puts `to` out of range of `from`. Packets already in the air keep the
   * link they started with.
   */
  setLink(from: string, to: string, spec: Partial<LinkSpec> | null): void {
    if (from === to) throw new TypeError(`setLink: "${from}" cannot be linked to itself`)
    this.#links.set(`${from}\u0000${to}`, spec === null ? null : fullLink(spec, `link ${from} -> ${to}`))
    this.#updateChannels()
  }

  /** Forgets an explicit link so that the default applies again. */
  clearLink(from: string, to: string): void {
    this.#links.delete(`${from}\u0000${to}`)
    this.#updateChannels()
  }

  /** The link `from → to`, or null when `to` does not hear `from`. */
  link(from: string, to: string): LinkSpec | null {
    if (from === to) return null
    const explicit = this.#links.get(`${from}\u0000${to}`)
    return explicit === undefined ? this.#defaultLink : explicit
  }

  /** Per-radio statistics (see EmulatedRadio.stats()). */
  stats(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {}
    for (const [name, r] of this.#radios) out[name] = r.stats()
    return out
  }

  /** Aborts everything in the air and cancels every timer; the medium cannot be used afterwards. */
  close(): void {
    if (this.#closed) return
    for (const r of this.#radios.values()) r[INTERNAL].abortTx()
    this.#closed = true
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Packets in the air now. */
  get inFlight(): number {
    return this.#active.size
  }

  // ---- internals, called by EmulatedRadio -------------------------------------------------

  /** @internal */
  [INTERNAL_MEDIUM] = {
    startTx: (from: EmulatedRadio, payload: Buffer): Transmission => this.#startTx(from, payload),
    abortTx: (tx: Transmission): void => this.#abortTx(tx),
    retuned: (radio: EmulatedRadio, reason: LossReason): void => this.#radioChanged(radio, reason),
    powered: (radio: EmulatedRadio): void => this.#radioChanged(radio, 'off'),
    busyFor: (radio: EmulatedRadio): boolean => this.#busyFor(radio),
  }

  #hears(tx: Transmission, r: EmulatedRadio): LinkSpec | null {
    if (r === tx.from || !r.isOn || channelKey(r.config) !== tx.channel) return null
    return this.link(tx.from.name, r.name)
  }

  #busyFor(r: EmulatedRadio): boolean {
    for (const tx of this.#active) if (this.#hears(tx, r) !== null) return true
    return false
  }

  #updateChannels(): void {
    const at = this.now()
    for (const r of [...this.#radios.values()]) {
      const busy = this.#busyFor(r)
      if (r[INTERNAL].setBusy(busy)) {
        this.emit('channel', { radio: r.name, busy, at })
        r.emit('channel', busy)
      }
    }
  }

  #lose(rec: Reception, reason: LossReason): void {
    if (rec.lost === null) rec.lost = reason
  }

  /** Does `a` (at this receiver, rssi a) survive an overlap with a packet of rssi b? */
  #captures(a: number, b: number): boolean {
    return this.captureDb !== null && a - b >= this.captureDb
  }

  #startTx(from: EmulatedRadio, payload: Buffer): Transmission {
    if (this.#closed) throw new RadioError('the medium is closed', { reason: 'off' })
    const cfg = from.config
    const airtimeMs = timeOnAirMs(cfg, payload.length)
    const start = this.now()
    const tx: Transmission = { id: this.#nextId++, from, channel: channelKey(cfg), payload, start, end: start + airtimeMs, airtimeMs, receptions: new Map(), timer: undefined }
    // Half duplex: whatever `from` was receiving is lost.
    for (const other of this.#active) {
      const rec = other.receptions.get(from)
      if (rec !== undefined) this.#lose(rec, 'half-duplex')
    }
    for (const r of this.#radios.values()) {
      const link = this.#hears(tx, r)
      if (link === null) continue
      const rec: Reception = { to: r, rssi: link.rssi, snr: link.snr, frequencyErrorHz: link.frequencyErrorHz ?? 0, lost: null }
      // One draw per potential receiver, whatever the link's loss, so that changing one link's
      // loss does not shift the random sequence of the others.
      const dropped = this.#rng.chance(link.loss)
      if (r.isTransmitting) rec.lost = 'half-duplex'
      else if (dropped) rec.lost = 'loss'
      else if (link.snr < (SNR_FLOOR_DB[r.config.spreadingFactor] ?? -20)) rec.lost = 'snr'
      // Collisions with every packet already present at this receiver on its channel.
      for (const other of this.#active) {
        const otherLink = this.#hears(other, r)
        if (otherLink === null) continue
        const otherRec = other.receptions.get(r)
        const otherRssi = otherRec?.rssi ?? otherLink.rssi
        if (!this.#captures(rec.rssi, otherRssi)) this.#lose(rec, 'collision')
        if (otherRec !== undefined && !this.#captures(otherRssi, rec.rssi)) this.#lose(otherRec, 'collision')
      }
      tx.receptions.set(r, rec)
    }
    this.#active.add(tx)
    from[INTERNAL].txStarted(tx)
    from[INTERNAL].account(tx.start, airtimeMs)
    tx.timer = this.scheduler.setTimeout(() => this.#endTx(tx), airtimeMs * this.timeScale)
    this.emit('tx', { id: tx.id, from: from.name, bytes: payload.length, airtimeMs, at: start })
    this.#updateChannels()
    return tx
  }

  #finish(tx: Transmission): void {
    this.#active.delete(tx)
    tx.timer?.cancel()
    tx.from[INTERNAL].txEnded(tx)
  }

  #endTx(tx: Transmission): void {
    if (!this.#active.has(tx)) return
    this.#finish(tx)
    this.#updateChannels()
    const at = tx.end
    for (const rec of tx.receptions.values()) {
      const r = rec.to
      if (rec.lost !== null) {
        r[INTERNAL].count(LOSS_COUNTER[rec.lost])
        this.emit('lost', { id: tx.id, from: tx.from.name, to: r.name, reason: rec.lost, at })
        continue
      }
      r[INTERNAL].count('rxFrames')
      r[INTERNAL].count('rxBytes', tx.payload.length)
      this.emit('rx', { id: tx.id, from: tx.from.name, to: r.name, bytes: tx.payload.length, rssi: rec.rssi, snr: rec.snr, at })
      const rx: RadioRx = { payload: Buffer.from(tx.payload), rssi: rec.rssi, snr: rec.snr, frequencyErrorHz: rec.frequencyErrorHz, timestampUs: Math.round(at * 1000) }
      r.emit('rx', rx)
    }
    tx.from[INTERNAL].count('txFrames')
    tx.from[INTERNAL].count('txBytes', tx.payload.length)
    tx.from[INTERNAL].count('txAirtimeMs', tx.airtimeMs)
    this.emit('txDone', { id: tx.id, from: tx.from.name, airtimeMs: tx.airtimeMs, at })
    tx.from.emit('txDone', { airtimeMs: tx.airtimeMs })
  }

  #abortTx(tx: Transmission): void {
    if (!this.#active.has(tx)) return
    this.#finish(tx)
    const at = this.now()
    const spent = Math.min(tx.airtimeMs, Math.max(0, at - tx.start))
    tx.from[INTERNAL].account(tx.start, spent, tx.airtimeMs)
    for (const rec of tx.receptions.values()) {
      this.#lose(rec, 'aborted')
      rec.to[INTERNAL].count(LOSS_COUNTER[rec.lost ?? 'aborted'])
      this.emit('lost', { id: tx.id, from: tx.from.name, to: rec.to.name, reason: rec.lost ?? 'aborted', at })
    }
    tx.from[INTERNAL].count('txAborted')
    tx.from[INTERNAL].count('txAirtimeMs', spent)
    if (!this.#closed) this.#updateChannels()
    this.emit('txAborted', { id: tx.id, from: tx.from.name, airtimeMs: spent, at })
  }

  /** `radio` retuned or was switched off: packets it was receiving are lost. */
  #radioChanged(radio: EmulatedRadio, reason: LossReason): void {
    for (const tx of this.#active) {
      const rec = tx.receptions.get(radio)
      if (rec !== undefined && (reason === 'off' ? !radio.isOn : channelKey(radio.config) !== tx.channel)) this.#lose(rec, reason)
    }
    this.#updateChannels()
  }
}

/**
 * A radio on a Medium, the VirtualRadio a device protocol drives. Created by `medium.attach()`.
 */
export class EmulatedRadio extends EventEmitter<VirtualRadioEvents> implements VirtualRadio {
  readonly name: string
  readonly medium: Medium
  readonly #initialConfig: Readonly<RadioConfig>
  readonly #initialOn: boolean
  #config: Readonly<RadioConfig>
  #on: boolean
  #busy = false
  #tx: Transmission | undefined
  /** [start, airtimeMs] of recent transmissions, radio ms. */
  #history: Array<[number, number]> = []
  readonly #counters = Object.fromEntries(COUNTERS.map((k) => [k, 0])) as Record<Counter, number>

  /** Clock and timers in radio time (the medium's time scale applied). */
  readonly airClock = Object.freeze({
    now: (): number => this.medium.now(),
    setTimeout: (fn: () => void, ms: number): TimerHandle => this.medium.scheduler.setTimeout(fn, ms * this.medium.timeScale),
  })

  /** @internal use medium.attach() */
  constructor(medium: Medium, name: string, options: AttachOptions, key: symbol) {
    super()
    if (key !== MEDIUM_KEY) throw new TypeError('use medium.attach() to create an EmulatedRadio')
    this.medium = medium
    this.name = name
    const cfg = { ...DEFAULT_RADIO, ...(options.config ?? {}) }
    this.#check(cfg)
    this.#initialConfig = Object.freeze(cfg)
    this.#config = this.#initialConfig
    this.#initialOn = options.on ?? true
    this.#on = this.#initialOn
  }

  get config(): Readonly<RadioConfig> {
    return this.#config
  }

  get isOn(): boolean {
    return this.#on
  }

  get isTransmitting(): boolean {
    return this.#tx !== undefined
  }

  #check(cfg: RadioConfig): void {
    const problems = radioConfigProblems(cfg)
    if (this.medium.enforceRegion) problems.push(...regionProblems(cfg, this.medium.region))
    const first = problems[0]
    if (first !== undefined) throw new ConfigRejectedError(`radio ${this.name}: ${problems.map((p) => p.message).join('; ')}`, { field: first.field })
  }

  /** Applies a configuration; throws ConfigRejectedError naming the field when invalid, RadioError('busy') while transmitting. */
  configure(cfg: RadioConfig): void {
    if (cfg === null || typeof cfg !== 'object') throw new TypeError('configure: a RadioConfig object is needed')
    const next = {} as RadioConfig
    for (const k of RADIO_FIELDS) next[k] = cfg[k]
    this.#check(next)
    if (this.#tx !== undefined) throw new RadioError(`radio ${this.name}: cannot reconfigure while transmitting`, { reason: 'busy' })
    this.#config = Object.freeze(next)
    this.medium[INTERNAL_MEDIUM].retuned(this, 'retuned')
  }

  setOn(on: boolean): void {
    this[INTERNAL].setPower(on)
  }

  /** Back to the power-on state given to attach(): aborts a transmission, restores config and on/off. */
  reset(): void {
    this[INTERNAL].abortTx()
    this.#config = this.#initialConfig
    this.#on = this.#initialOn
    this.medium[INTERNAL_MEDIUM].retuned(this, 'retuned')
    this.medium[INTERNAL_MEDIUM].powered(this)
  }

  transmit(payload: Uint8Array): { airtimeMs: number } {
    if (!(payload instanceof Uint8Array)) throw new TypeError('transmit: payload must be a Uint8Array')
    if (!this.#on) throw new RadioError(`radio ${this.name} is off`, { reason: 'off' })
    if (this.#tx !== undefined) throw new RadioError(`radio ${this.name} is already transmitting`, { reason: 'busy' })
    if (payload.length < 1 || payload.length > LORA_PHY_MTU) throw new RadioError(`radio ${this.name}: payload of ${payload.length} bytes is outside 1..${LORA_PHY_MTU}`, { reason: 'payload-size' })
    const tx = this.medium[INTERNAL_MEDIUM].startTx(this, Buffer.from(payload))
    return { airtimeMs: tx.airtimeMs }
  }

  channelBusy(): boolean {
    return this.#on && this.medium[INTERNAL_MEDIUM].busyFor(this)
  }

  /** Duty-cycle accounting over the medium's rolling window (radio time). */
  dutyCycle(): DutyCycleReport {
    const now = this.medium.now()
    const windowMs = this.medium.dutyWindowMs
    const from = now - windowMs
    this.#history = this.#history.filter(([s, a]) => s + a > from)
    let usedMs = 0
    for (const [s, a] of this.#history) usedMs += s >= from ? a : Math.max(0, a - (from - s))
    const dc = this.medium.region.dutyCycle
    const budgetMs = dc === null ? null : dc * windowMs
    return { region: this.medium.region.name, dutyCycle: dc, windowMs, usedMs, budgetMs, fraction: usedMs / windowMs, overBudget: budgetMs !== null && usedMs > budgetMs }
  }

  /**
   * Counters (txFrames, txBytes, txAirtimeMs, txAborted, rxFrames, rxBytes, lost* by reason) and
   * the duty cycle: dutyWindowMs, dutyAirtimeMs, dutyFraction, overBudget (0/1) and, when the
   * region has a limit, dutyBudgetMs. All times radio ms.
   */
  stats(): Record<string, number> {
    const d = this.dutyCycle()
    const out: Record<string, number> = { ...this.#counters, on: this.#on ? 1 : 0, dutyWindowMs: d.windowMs, dutyAirtimeMs: d.usedMs, dutyFraction: d.fraction, overBudget: d.overBudget ? 1 : 0 }
    if (d.budgetMs !== null) out.dutyBudgetMs = d.budgetMs
    return out
  }

  /** @internal */
  readonly [INTERNAL] = {
    setPower: (on: boolean): void => {
      if (on === this.#on) return
      if (!on) this[INTERNAL].abortTx()
      this.#on = on
      this.medium[INTERNAL_MEDIUM].powered(this)
    },
    abortTx: (): void => {
      if (this.#tx !== undefined) this.medium[INTERNAL_MEDIUM].abortTx(this.#tx)
    },
    txStarted: (tx: Transmission): void => {
      this.#tx = tx
    },
    txEnded: (tx: Transmission): void => {
      if (this.#tx === tx) this.#tx = undefined
    },
    setBusy: (busy: boolean): boolean => {
      const b = busy && this.#on
      if (b === this.#busy) return false
      this.#busy = b
      return true
    },
    account: (start: number, airtimeMs: number, replacing?: number): void => {
      if (replacing !== undefined) {
        const i = this.#history.findIndex(([s, a]) => s === start && a === replacing)
        if (i >= 0) this.#history[i] = [start, airtimeMs]
        return
      }
      this.#history.push([start, airtimeMs])
    },
    count: (k: Counter, n = 1): void => {
      this.#counters[k] += n
    },
  }
}
