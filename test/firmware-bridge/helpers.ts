/**
 * Test parts for firmware-bridge: a virtual clock, a VirtualRadio stub, serial "pipes" that can
 * lose, duplicate or delay writes, and a host ⇄ device pair wired through them.
 */
import { EventEmitter } from 'node:events'
import { ConfigRejectedError, RadioError } from '../../appliance/core/errors.js'
import type { RadioRx } from '../../drivers/lora/backend.js'
import type { VirtualRadio, VirtualRadioEvents } from '../../drivers/lora/device.js'
import { DEFAULT_RADIO, radioConfigProblems, type RadioConfig } from '../../drivers/lora/radio.js'
import type { Clock } from '../../firmware-bridge/link.js'
import { FirmwareBridgeBackend, type FirmwareBridgeOptions } from '../../firmware-bridge/host.js'
import { createFirmwareBridgeDevice, type FirmwareBridgeDevice, type FirmwareBridgeDeviceOptions } from '../../firmware-bridge/device.js'
import { Medium, type EmulatedRadio, type MediumOptions } from '../../firmware-bridge/emulator/medium.js'
import { ErrorCode, Flags, PROTOCOL_VERSION, RadioChip, type LinkFrame, type Message } from '../../firmware-bridge/codec.js'

interface Timer {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/** Virtual time: timers fire only in advance(). */
export class VirtualClock implements Clock {
  private t = 0
  private seq = 0
  private timers: Timer[] = []

  now(): number {
    return this.t
  }

  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    const timer: Timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.timers.push(timer)
    return { cancel: () => void (timer.cancelled = true) }
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.timers.filter((x) => !x.cancelled).length
  }

  /** Moves time forward by `ms`, firing due timers in time order (then in the order set). */
  advance(ms: number): void {
    const end = this.t + ms
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled)
      let next: Timer | undefined
      for (const x of this.timers) if (x.at <= end && (next === undefined || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x
      if (next === undefined) break
      this.t = Math.max(this.t, next.at)
      next.cancelled = true
      next.fn()
    }
    this.t = end
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r))

/**
 * Advances `clock` in `stepMs` steps, letting promise callbacks run between steps, until `p`
 * settles; then returns (or throws) its outcome. Fails after `maxMs` of virtual time.
 */
export async function drive<T>(clock: VirtualClock, p: Promise<T>, maxMs = 60_000, stepMs = 1): Promise<T> {
  let done = false
  const watched = p.then(
    (v) => {
      done = true
      return v
    },
    (e: unknown) => {
      done = true
      throw e
    },
  )
  watched.catch(() => undefined)
  await tick()
  for (let t = 0; !done && t < maxMs; t += stepMs) {
    clock.advance(stepMs)
    await tick()
  }
  if (!done) throw new Error(`drive: still pending after ${maxMs} ms of virtual time`)
  return watched
}

/** Advances `clock` by `ms` in steps, letting promise callbacks run. */
export async function elapse(clock: VirtualClock, ms: number, stepMs = 1): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(stepMs)
    await tick()
  }
}

/** A VirtualRadio that transmits in `airtimeMs` of clock time and receives on demand. */
export class StubRadio extends EventEmitter<VirtualRadioEvents> implements VirtualRadio {
  readonly name = 'stub'
  config: Readonly<RadioConfig> = { ...DEFAULT_RADIO }
  isOn = true
  readonly sent: Buffer[] = []
  private tx: { cancel(): void } | null = null

  constructor(
    private readonly clock: Clock,
    public airtimeMs = 5,
  ) {
    super()
  }

  /** When set, configure() takes anything (so that only the firmware's own checks apply). */
  permissive = false

  configure(cfg: RadioConfig): void {
    const p = this.permissive ? undefined : radioConfigProblems(cfg)[0]
    if (p) throw new ConfigRejectedError(p.message, { field: p.field })
    if (this.tx) throw new RadioError('busy', { reason: 'busy' })
    this.config = { ...cfg }
  }

  setOn(on: boolean): void {
    this.isOn = on
    if (!on && this.tx) {
      this.tx.cancel()
      this.tx = null
    }
  }

  transmit(payload: Uint8Array): { airtimeMs: number } {
    if (!this.isOn) throw new RadioError('off', { reason: 'off' })
    if (this.tx) throw new RadioError('busy', { reason: 'busy' })
    this.sent.push(Buffer.from(payload))
    this.tx = this.clock.setTimeout(() => {
      this.tx = null
      this.emit('txDone', { airtimeMs: this.airtimeMs })
    }, this.airtimeMs)
    return { airtimeMs: this.airtimeMs }
  }

  get transmitting(): boolean {
    return this.tx !== null
  }

  channelBusy(): boolean {
    return false
  }

  /** A packet arrives from the air. */
  inject(rx: RadioRx): void {
    this.emit('rx', rx)
  }

  stats(): Record<string, number> {
    return { sent: this.sent.length }
  }
}

/** What a pipe does with the n-th write (0-based): deliver these chunks instead (none = lost). */
export type PipeFilter = (bytes: Uint8Array, n: number) => Uint8Array[]

export interface Pipe {
  write(bytes: Uint8Array): void
  writes: number
  /** Set to cut the line (every write lost) or restore it. */
  cut: boolean
  filter: PipeFilter | null
}

/** A serial line in one direction: writes arrive `latencyMs` later, in order. */
export function pipe(clock: Clock, deliver: (b: Uint8Array) => void, latencyMs = 1, filter: PipeFilter | null = null): Pipe {
  const p: Pipe = {
    writes: 0,
    cut: false,
    filter,
    write(bytes) {
      const n = p.writes++
      if (p.cut) return
      const chunks = p.filter ? p.filter(bytes, n) : [bytes]
      for (const c of chunks) {
        const copy = Buffer.from(c)
        if (latencyMs < 0) deliver(copy)
        else clock.setTimeout(() => deliver(copy), latencyMs)
      }
    },
  }
  return p
}

export interface Pair {
  clock: VirtualClock
  radio: StubRadio
  host: FirmwareBridgeBackend
  device: FirmwareBridgeDevice
  /** Host → device line. */
  down: Pipe
  /** Device → host line. */
  up: Pipe
  close(): void
}

export interface PairOptions {
  host?: FirmwareBridgeOptions
  device?: FirmwareBridgeDeviceOptions
  downFilter?: PipeFilter
  upFilter?: PipeFilter
  /** Line latency, ms; negative: synchronous delivery. Default 1. */
  latencyMs?: number
  airtimeMs?: number
}

/** A FirmwareBridgeBackend and a firmware-bridge device on a StubRadio, on virtual time. */
export function makePair(o: PairOptions = {}): Pair {
  const clock = new VirtualClock()
  const radio = new StubRadio(clock, o.airtimeMs ?? 5)
  const host = new FirmwareBridgeBackend({ clock, ackTimeoutMs: 20, heartbeatMs: 100, helloTimeoutMs: 500, requestTimeoutMs: 1000, random: () => 0x5eedc0de, ...o.host })
  let device: FirmwareBridgeDevice | null = null
  const up = pipe(clock, (b) => host.receive(b), o.latencyMs ?? 1, o.upFilter ?? null)
  const down = pipe(clock, (b) => device!.receive(b), o.latencyMs ?? 1, o.downFilter ?? null)
  device = createFirmwareBridgeDevice(radio, (b) => up.write(b), { clock, ackTimeoutMs: 20, ...o.device })
  host.attach((b) => down.write(b))
  return {
    clock,
    radio,
    host,
    device,
    down,
    up,
    close() {
      host.stop()
      device!.close()
    },
  }
}

/** A pair after a successful handshake. */
export async function readyPair(o: PairOptions = {}): Promise<Pair> {
  const p = makePair(o)
  await drive(p.clock, p.host.start())
  return p
}

/** One frame of every message type (and an ACK_ONLY), with non-default values everywhere. */
export function sampleFrames(): LinkFrame[] {
  const f = (flags: number, seq: number, ack: number, message: Message | null): LinkFrame => ({ version: PROTOCOL_VERSION, flags, seq, ack, message })
  const R = Flags.NEEDS_ACK
  return [
    f(Flags.SYN, 0, 0, { type: 'Hello', protocolVersion: 1, session: 0xfedcba98, heartbeatMs: 65535, hostName: 'gw-α' }),
    f(Flags.SYN, 0, 0, { type: 'HelloAck', protocolVersion: 1, session: 0xfedcba98, firmwareName: 'kairo-fb', firmwareVersion: '2.3.4-rc1', radioChip: RadioChip.SX1268, mtu: 222, queueDepth: 8, credits: 7, capabilities: 0x8000_0007 }),
    f(R, 0, 0, { type: 'Configure', config: { frequencyHz: 915_000_000, bandwidthHz: 500_000, spreadingFactor: 12, codingRate: 8, txPowerDbm: -9, syncWord: 0x34, preambleSymbols: 65535 } }),
    f(R, 1, 1, { type: 'ConfigureAck' }),
    f(R, 2, 255, { type: 'Transmit', token: 0xffff_ffff, payload: Buffer.alloc(255, 0xa5) }),
    f(R, 3, 2, { type: 'TxDone', token: 12345, airtimeUs: 4_000_000_000 }),
    f(R, 4, 2, { type: 'Receive', payload: Buffer.from([0, 1, 0, 0, 2]), rssiDbmX4: -32768, snrDbX4: 32767, frequencyErrorHz: -2_147_483_648, timestampUs: 2 ** 53 - 1 }),
    f(R, 5, 2, { type: 'ChannelActivity', busy: true }),
    f(R, 6, 2, { type: 'GetStatus' }),
    f(R, 7, 2, { type: 'Status', rxOk: 1, rxCrcError: 2, txOk: 3, txFail: 4, queueFree: 255, uptimeMs: 123_456_789_012, radioOn: true, linkErrors: 0xffff_ffff, retransmits: 6, config: { frequencyHz: 433_175_000, bandwidthHz: 62_500, spreadingFactor: 11, codingRate: 7, txPowerDbm: -4, syncWord: 0xab, preambleSymbols: 12 } }),
    f(0, 8, 2, { type: 'Heartbeat' }),
    f(R, 8, 2, { type: 'RadioOnOff', on: true }),
    f(R, 9, 2, { type: 'RadioOnOffAck', on: true }),
    f(R, 10, 2, { type: 'Reset' }),
    f(R, 11, 2, { type: 'Error', code: ErrorCode.BadConfig, refSeq: 255, token: 9, field: 'spreading_factor', message: 'x'.repeat(128) }),
    f(0, 12, 2, { type: 'Error', code: ErrorCode.NoSession, refSeq: -1, token: 0, field: '', message: '' }),
    f(R, 12, 2, { type: 'Credits', grant: 200 }),
    f(Flags.ACK_ONLY, 13, 77, null),
  ]
}

export interface MediumPair {
  clock: VirtualClock
  medium: Medium
  /** The gateway's radio, driven by the device. */
  radio: EmulatedRadio
  /** Another radio on the medium, driven by the test directly. */
  peer: EmulatedRadio
  host: FirmwareBridgeBackend
  device: FirmwareBridgeDevice
  down: Pipe
  up: Pipe
  close(): void
}

/**
 * A FirmwareBridgeBackend and a firmware-bridge device whose radio is an EmulatedRadio on a
 * seeded Medium (real LoRa airtime, channel activity, RSSI/SNR by topology), with a second radio
 * "peer" on the same medium, all on one virtual clock.
 */
export function makeMediumPair(o: Omit<PairOptions, 'airtimeMs'> & { medium?: MediumOptions } = {}): MediumPair {
  const clock = new VirtualClock()
  const medium = new Medium({ scheduler: clock, region: 'LAB', ...o.medium })
  const radio = medium.attach('gw')
  const peer = medium.attach('peer')
  const host = new FirmwareBridgeBackend({ clock, ackTimeoutMs: 20, heartbeatMs: 100, helloTimeoutMs: 500, requestTimeoutMs: 1000, random: () => 0x5eedc0de, ...o.host })
  let device: FirmwareBridgeDevice | null = null
  const up = pipe(clock, (b) => host.receive(b), o.latencyMs ?? 1, o.upFilter ?? null)
  const down = pipe(clock, (b) => device!.receive(b), o.latencyMs ?? 1, o.downFilter ?? null)
  device = createFirmwareBridgeDevice(radio, (b) => up.write(b), { clock, ackTimeoutMs: 20, ...o.device })
  host.attach((b) => down.write(b))
  return {
    clock,
    medium,
    radio,
    peer,
    host,
    device,
    down,
    up,
    close() {
      host.stop()
      device!.close()
      medium.close()
    },
  }
}
