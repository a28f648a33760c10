/**
 * Test harness for the RNode backend and emulator: a virtual clock, a VirtualRadio stub (txDone
 * after the time on air, rx on demand) and an in-process host ⇄ device loopback.
 */
import { EventEmitter } from 'node:events'
import { ConfigRejectedError, RadioError } from '../../appliance/core/errors.js'
import type { RadioRx } from '../../drivers/lora/backend.js'
import type { VirtualRadio, VirtualRadioEvents } from '../../drivers/lora/device.js'
import { DEFAULT_RADIO, radioConfigProblems, timeOnAirMs, type RadioConfig } from '../../drivers/lora/radio.js'
import { RNodeDevice, type RNodeDeviceOptions } from '../../drivers/lora/rnode/device.js'
import { RNodeBackend, type RNodeBackendOptions, type RNodeScheduler } from '../../drivers/lora/rnode/host.js'

interface Timer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/** Virtual time: timers fire only when the test advances the clock. */
export class Clock implements RNodeScheduler {
  #now = 0
  #seq = 0
  #timers: Timer[] = []

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    const t: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false }
    this.#timers.push(t)
    return { cancel: () => void (t.cancelled = true) }
  }

  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length
  }

  /** Fires the next timer (if any); returns false when none is left. */
  step(limit = Infinity): boolean {
    this.#timers = this.#timers.filter((t) => !t.cancelled)
    let next: Timer | undefined
    for (const t of this.#timers) if (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t
    if (next === undefined || next.at > limit) return false
    next.cancelled = true
    this.#now = Math.max(this.#now, next.at)
    next.fn()
    return true
  }

  /** Advances to `now + ms`, firing due timers and letting promises run between them. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms
    await settle()
    while (this.step(end)) await settle()
    this.#now = Math.max(this.#now, end)
    await settle()
  }

  /** Runs timers (and promise continuations) until `p` settles; fails after `maxMs` of virtual time. */
  async run<T>(p: Promise<T>, maxMs = 600_000): Promise<T> {
    let done = false
    const watched = p.finally(() => void (done = true))
    watched.catch(() => {})
    const end = this.#now + maxMs
    await settle()
    while (!done) {
      if (!this.step(end)) break
      await settle()
    }
    await settle()
    if (!done) throw new Error(`clock.run: promise still pending at t=${this.#now} (no timer left before ${end})`)
    return watched
  }
}

/** Lets queued microtasks and setImmediate callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r))
}

/** A VirtualRadio without a medium: txDone after Semtech's time on air, rx when the test says. */
export class StubRadio extends EventEmitter<VirtualRadioEvents> implements VirtualRadio {
  readonly name: string
  config: Readonly<RadioConfig> = DEFAULT_RADIO
  isOn = false
  busy = false
  channel = false
  readonly sent: Array<{ at: number; bytes: Buffer; airtimeMs: number; doneAt: number }> = []
  readonly #clock: Clock

  constructor(clock: Clock, name = 'stub') {
    super()
    this.#clock = clock
    this.name = name
  }

  configure(cfg: RadioConfig): void {
    const p = radioConfigProblems(cfg)
    if (p.length > 0) throw new ConfigRejectedError(p[0]!.message, { field: p[0]!.field })
    if (this.busy) throw new RadioError('busy', { reason: 'busy' })
    this.config = { ...cfg }
  }

  setOn(on: boolean): void {
    this.isOn = on
  }

  transmit(payload: Uint8Array): { airtimeMs: number } {
    if (!this.isOn) throw new RadioError('off', { reason: 'off' })
    if (this.busy) throw new RadioError('busy', { reason: 'busy' })
    if (payload.length < 1 || payload.length > 255) throw new RadioError('size', { reason: 'size' })
    const airtimeMs = timeOnAirMs(this.config, payload.length)
    const rec = { at: this.#clock.now(), bytes: Buffer.from(payload), airtimeMs, doneAt: this.#clock.now() + airtimeMs }
    this.sent.push(rec)
    this.busy = true
    this.#clock.setTimeout(() => {
      this.busy = false
      this.emit('txDone', { airtimeMs })
    }, airtimeMs)
    return { airtimeMs }
  }

  /** A LoRa frame arrives (ignored while the radio is off, like a real one). */
  inject(payload: Uint8Array, rssi = -80, snr = 8): void {
    if (!this.isOn) return
    const rx: RadioRx = { payload: Buffer.from(payload), rssi, snr }
    this.emit('rx', rx)
  }

  setChannel(busy: boolean): void {
    this.channel = busy
    this.emit('channel', busy)
  }

  channelBusy(): boolean {
    return this.channel
  }

  stats(): Record<string, number> {
    return { sent: this.sent.length }
  }
}

export interface Pair {
  clock: Clock
  radio: StubRadio
  device: RNodeDevice
  host: RNodeBackend
  /** Every byte chunk the device wrote, in order. */
  fromDevice: Buffer[]
  /** Every byte chunk the host wrote, in order. */
  fromHost: Buffer[]
  /** Bytes injected into the device→host stream (noise on the line). */
  toHost(bytes: Uint8Array): void
  /** Bytes injected into the host→device stream. */
  toDevice(bytes: Uint8Array): void
}

/** A host and an emulated RNode joined by an in-process serial line (delivery on the next microtask). */
export function pair(opts: { host?: RNodeBackendOptions; device?: RNodeDeviceOptions; radioName?: string } = {}): Pair {
  const clock = new Clock()
  const radio = new StubRadio(clock, opts.radioName)
  const fromDevice: Buffer[] = []
  const fromHost: Buffer[] = []
  const host = new RNodeBackend({ scheduler: clock, ...opts.host })
  const device = new RNodeDevice(
    radio,
    (b) => {
      const copy = Buffer.from(b)
      fromDevice.push(copy)
      queueMicrotask(() => host.receive(copy))
    },
    { scheduler: clock, seed: 1, ...opts.device },
  )
  host.attach((b) => {
    const copy = Buffer.from(b)
    fromHost.push(copy)
    queueMicrotask(() => device.receive(copy))
  })
  return {
    clock,
    radio,
    device,
    host,
    fromDevice,
    fromHost,
    toHost: (b) => queueMicrotask(() => host.receive(b)),
    toDevice: (b) => queueMicrotask(() => device.receive(b)),
  }
}

/** start() + configure() on a pair, with `cfg` over DEFAULT_RADIO. */
export async function ready(p: Pair, cfg: Partial<RadioConfig> = {}): Promise<void> {
  await p.clock.run(p.host.start())
  await p.clock.run(p.host.configure({ ...DEFAULT_RADIO, ...cfg }))
}
