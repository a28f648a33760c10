/**
 * The companion-MCU emulator: one process (or one library call) standing in for the LoRa MCUs of
 * one or more gateways. Each emulated MCU owns the MCU end of a serial line (a socat PTY pair in
 * tests and in the lab), runs a device protocol (firmware-bridge or RNode KISS) on it, and drives
 * an EmulatedRadio on a shared Medium.
 *
 *   node --import=tsx firmware-bridge/emulator/main.ts --config FILE [--log json|text|none]
 *
 * Config (JSON):
 *   {
 *     "seed": 1, "timeScale": 0.01, "region": "EU868",          // all optional
 *     "radios": [ { "name": "gw-a", "tty": "/tmp/x/a-mcu", "protocol": "firmware-bridge",
 *                   "config": { "spreadingFactor": 7 }, "chip": "SX1262" }, ... ],
 *     "links": [ { "from": "gw-a", "to": "gw-b", "rssi": -90, "snr": 2, "loss": 0.1, "both": true } ],
 *     "factories": { "echo": "./echo-device.ts#createEchoDevice" }  // extra protocols (tests, lab)
 *   }
 * Without `links`, every radio hears every other (-60 dBm, 10 dB, no loss). With `links`, only the
 * listed directed pairs hear each other (`both: true` adds the reverse direction), unless
 * `defaultLink` is given. Relative paths (tty, factory modules) are relative to the config file.
 *
 * Serial lines: opened with serialport (the project's serial library; its epoll poller reads
 * PTYs without blocking a libuv thread per port, and reports a vanished PTY as a 'close' with
 * `disconnected`). An unplug is detected three ways, whichever comes first: the port closes or
 * errors (socat gone: the PTY read fails with EIO), or a watchdog finds the path gone or pointing
 * at another device (socat restarted, or a dangling link after SIGKILL). Then the MCU counts as
 * unpowered: its radio is switched off and its protocol state reset; the path is polled with
 * exponential backoff and, when it opens again, the MCU "boots": the radio returns to its
 * power-on state and the protocol is reset again (the host must handshake anew).
 */
import { EventEmitter } from 'node:events'
import { promises as fsp, realpathSync } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { SerialPort } from 'serialport'
import type { DeviceProtocol, DeviceProtocolFactory } from '../../drivers/lora/device.js'
import { REGIONS, type RadioConfig } from '../../drivers/lora/radio.js'
import { CHIP_NAMES, type ChipName } from '../chips.js'
import { Medium, type EmulatedRadio, type LinkSpec, type LossReason } from './medium.js'
import type { Scheduler, TimerHandle } from './scheduler.js'

// ---- configuration -------------------------------------------------------------------------

export interface EmulatorRadioConfig {
  name: string
  /** Path of the MCU end of the serial line (e.g. a socat PTY link). */
  tty: string
  /** "firmware-bridge", "rnode", or a name from `factories`. */
  protocol: string
  /** Power-on radio configuration, on top of DEFAULT_RADIO. */
  config?: Partial<RadioConfig>
  /** Radio on at power-on (default true). */
  on?: boolean
  /**
   * The radio chip the emulated firmware drives (firmware-bridge and rnode only): the firmware
   * then refuses what that chip cannot do, as real boards do (firmware-bridge/chips.ts; RNode:
   * SX127x boards top out at 17 dBm). Default: no chip limits beyond the protocol's.
   */
  chip?: ChipName
}

export interface EmulatorLinkConfig {
  from: string
  to: string
  rssi?: number
  snr?: number
  loss?: number
  frequencyErrorHz?: number
  /** Also the link `to → from` with the same figures. */
  both?: boolean
}

export interface EmulatorConfig {
  seed?: number
  timeScale?: number
  /** REGIONS key for duty-cycle accounting (default EU868). */
  region?: string
  enforceRegion?: boolean
  dutyWindowMs?: number
  /** Capture threshold dB, or null for none (default 6). */
  captureDb?: number | null
  /** Link for pairs not in `links`; default: DEFAULT_LINK without `links`, none with `links`. */
  defaultLink?: Partial<LinkSpec> | null
  radios: EmulatorRadioConfig[]
  links?: EmulatorLinkConfig[]
  /** Extra protocols: name → module path, optionally "#exportName" (default export name: createDevice, then default). */
  factories?: Record<string, string>
  /** Reopen backoff after an unplug, ms (default 50 doubling to 1000). */
  reopen?: { minMs?: number; maxMs?: number }
  /** How often the tty path is checked while open, ms (default 200). */
  watchMs?: number
  /** Baud rate set on the tty (meaningless on a PTY, default 115200). */
  baudRate?: number
}

/** The device protocols built in: module (relative to this file) and export. */
export const BUILTIN_PROTOCOLS: Readonly<Record<string, { module: string; export: string }>> = Object.freeze({
  'firmware-bridge': { module: '../device.js', export: 'createFirmwareBridgeDevice' },
  rnode: { module: '../../drivers/lora/rnode/device.js', export: 'createRNodeDevice' },
})

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * Validates a parsed JSON config, naming the offending path in a TypeError. Relative tty and
 * factory paths are resolved against `baseDir` when given. `extraProtocols`: protocol names
 * supplied otherwise (startEmulator's `factories` option).
 */
export function parseEmulatorConfig(raw: unknown, baseDir?: string, extraProtocols: Iterable<string> = []): EmulatorConfig {
  const extra = new Set(extraProtocols)
  const fail = (path: string, msg: string): never => {
    throw new TypeError(`emulator config: ${path}: ${msg}`)
  }
  if (!isObj(raw)) return fail('(root)', 'must be an object')
  const num = (path: string, v: unknown, ok: (n: number) => boolean, what: string): number | undefined => {
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) return fail(path, `${JSON.stringify(v)} is not ${what}`)
    return v
  }
  const abs = (p: string) => (baseDir !== undefined && !isAbsolute(p) ? resolve(baseDir, p) : p)
  const out: EmulatorConfig = { radios: [] }
  const seed = num('seed', raw.seed, Number.isInteger, 'an integer')
  if (seed !== undefined) out.seed = seed
  const ts = num('timeScale', raw.timeScale, (n) => n > 0, 'a positive number')
  if (ts !== undefined) out.timeScale = ts
  if (raw.region !== undefined) {
    if (typeof raw.region !== 'string' || REGIONS[raw.region] === undefined) fail('region', `${JSON.stringify(raw.region)} is not one of ${Object.keys(REGIONS).join(', ')}`)
    out.region = raw.region as string
  }
  if (raw.enforceRegion !== undefined) {
    if (typeof raw.enforceRegion !== 'boolean') fail('enforceRegion', 'must be true or false')
    out.enforceRegion = raw.enforceRegion as boolean
  }
  const dw = num('dutyWindowMs', raw.dutyWindowMs, (n) => n > 0, 'a positive number')
  if (dw !== undefined) out.dutyWindowMs = dw
  if (raw.captureDb === null) out.captureDb = null
  else {
    const c = num('captureDb', raw.captureDb, (n) => n >= 0, 'a non-negative number or null')
    if (c !== undefined) out.captureDb = c
  }
  const linkFields = (path: string, o: Record<string, unknown>): Partial<LinkSpec> => {
    const l: Partial<LinkSpec> = {}
    const rssi = num(`${path}.rssi`, o.rssi, () => true, 'a number')
    const snr = num(`${path}.snr`, o.snr, () => true, 'a number')
    const loss = num(`${path}.loss`, o.loss, (n) => n >= 0 && n <= 1, 'a probability 0..1')
    const fe = num(`${path}.frequencyErrorHz`, o.frequencyErrorHz, () => true, 'a number')
    if (rssi !== undefined) l.rssi = rssi
    if (snr !== undefined) l.snr = snr
    if (loss !== undefined) l.loss = loss
    if (fe !== undefined) l.frequencyErrorHz = fe
    return l
  }
  if (raw.defaultLink === null) out.defaultLink = null
  else if (raw.defaultLink !== undefined) {
    if (!isObj(raw.defaultLink)) fail('defaultLink', 'must be an object or null')
    out.defaultLink = linkFields('defaultLink', raw.defaultLink as Record<string, unknown>)
  }
  if (!Array.isArray(raw.radios) || raw.radios.length === 0) fail('radios', 'must be a non-empty array')
  const names = new Set<string>()
  const ttys = new Set<string>()
  ;(raw.radios as unknown[]).forEach((r, i) => {
    const p = `radios[${i}]`
    if (!isObj(r)) return fail(p, 'must be an object')
    if (typeof r.name !== 'string' || r.name === '') fail(`${p}.name`, 'must be a non-empty string')
    const name = r.name as string
    if (names.has(name)) fail(`${p}.name`, `"${name}" is used twice`)
    names.add(name)
    if (typeof r.tty !== 'string' || r.tty === '') fail(`${p}.tty`, 'must be a non-empty path')
    const tty = abs(r.tty as string)
    if (ttys.has(tty)) fail(`${p}.tty`, `${tty} is used twice`)
    ttys.add(tty)
    if (typeof r.protocol !== 'string' || r.protocol === '') fail(`${p}.protocol`, `must be a protocol name (${Object.keys(BUILTIN_PROTOCOLS).join(', ')} or one of factories)`)
    const entry: EmulatorRadioConfig = { name, tty, protocol: r.protocol as string }
    if (r.config !== undefined) {
      if (!isObj(r.config)) fail(`${p}.config`, 'must be an object')
      entry.config = r.config as Partial<RadioConfig>
    }
    if (r.on !== undefined) {
      if (typeof r.on !== 'boolean') fail(`${p}.on`, 'must be true or false')
      entry.on = r.on as boolean
    }
    if (r.chip !== undefined) {
      if (!(CHIP_NAMES as unknown[]).includes(r.chip)) fail(`${p}.chip`, `${JSON.stringify(r.chip)} is not one of ${CHIP_NAMES.join(', ')}`)
      if (r.protocol !== 'firmware-bridge' && r.protocol !== 'rnode') fail(`${p}.chip`, `applies to the firmware-bridge and rnode protocols, not "${String(r.protocol)}"`)
      entry.chip = r.chip as ChipName
    }
    out.radios.push(entry)
  })
  if (raw.links !== undefined) {
    if (!Array.isArray(raw.links)) fail('links', 'must be an array')
    out.links = (raw.links as unknown[]).map((l, i) => {
      const p = `links[${i}]`
      if (!isObj(l)) return fail(p, 'must be an object')
      for (const k of ['from', 'to'] as const) if (typeof l[k] !== 'string' || !names.has(l[k] as string)) fail(`${p}.${k}`, `${JSON.stringify(l[k])} is not a radio name`)
      if (l.from === l.to) fail(p, 'from and to are the same radio')
      const link: EmulatorLinkConfig = { from: l.from as string, to: l.to as string, ...linkFields(p, l) }
      if (l.both !== undefined) {
        if (typeof l.both !== 'boolean') fail(`${p}.both`, 'must be true or false')
        link.both = l.both as boolean
      }
      return link
    })
  }
  if (raw.factories !== undefined) {
    if (!isObj(raw.factories)) fail('factories', 'must be an object of name → module path')
    out.factories = {}
    for (const [k, v] of Object.entries(raw.factories as Record<string, unknown>)) {
      if (typeof v !== 'string' || v === '') fail(`factories.${k}`, 'must be a module path')
      const [mod, exp] = (v as string).split('#')
      out.factories[k] = abs(mod!) + (exp !== undefined ? `#${exp}` : '')
    }
  }
  for (const [i, r] of out.radios.entries()) {
    if (BUILTIN_PROTOCOLS[r.protocol] === undefined && out.factories?.[r.protocol] === undefined && !extra.has(r.protocol)) fail(`radios[${i}].protocol`, `"${r.protocol}" is not ${Object.keys(BUILTIN_PROTOCOLS).join(', ')} nor in factories`)
  }
  if (raw.reopen !== undefined) {
    if (!isObj(raw.reopen)) fail('reopen', 'must be an object')
    const ro = raw.reopen as Record<string, unknown>
    const minMs = num('reopen.minMs', ro.minMs, (n) => n > 0, 'a positive number')
    const maxMs = num('reopen.maxMs', ro.maxMs, (n) => n > 0, 'a positive number')
    out.reopen = {}
    if (minMs !== undefined) out.reopen.minMs = minMs
    if (maxMs !== undefined) out.reopen.maxMs = maxMs
  }
  const watch = num('watchMs', raw.watchMs, (n) => n > 0, 'a positive number')
  if (watch !== undefined) out.watchMs = watch
  const baud = num('baudRate', raw.baudRate, (n) => Number.isInteger(n) && n > 0, 'a positive integer')
  if (baud !== undefined) out.baudRate = baud
  return out
}

/** Reads and validates a JSON config file; relative paths in it are relative to its directory. */
export async function loadEmulatorConfig(file: string): Promise<EmulatorConfig> {
  const text = await fsp.readFile(file, 'utf8')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (e) {
    throw new TypeError(`emulator config: ${file} is not JSON: ${(e as Error).message}`)
  }
  return parseEmulatorConfig(raw, dirname(resolve(file)))
}

async function loadFactory(name: string, spec: { module: string; export: string | undefined }, baseUrl?: string): Promise<DeviceProtocolFactory> {
  const url = baseUrl !== undefined ? new URL(spec.module, baseUrl).href : pathToFileURL(spec.module).href
  let mod: Record<string, unknown>
  try {
    mod = (await import(url)) as Record<string, unknown>
  } catch (e) {
    throw new Error(`protocol "${name}": cannot load ${url}: ${(e as Error).message}`, { cause: e })
  }
  const candidates = spec.export !== undefined ? [spec.export] : ['createDevice', 'default']
  for (const c of candidates) if (typeof mod[c] === 'function') return mod[c] as DeviceProtocolFactory
  throw new Error(`protocol "${name}": ${url} exports no function ${candidates.join(' or ')}`)
}

/** The built-in firmware of `protocol` driving a radio `chip`. */
async function chipFactory(protocol: string, chip: ChipName): Promise<DeviceProtocolFactory> {
  if (protocol === 'firmware-bridge') {
    const { createFirmwareBridgeDevice } = await import('../device.js')
    return (radio, write) => createFirmwareBridgeDevice(radio, write, { chip })
  }
  const { rnodeDeviceFactory } = await import('../../drivers/lora/rnode/device.js')
  return rnodeDeviceFactory({ modem: chip.startsWith('SX127') ? 'sx1276' : 'sx1262' })
}

// ---- events --------------------------------------------------------------------------------

export type EmulatorEvent =
  | { event: 'ready'; pid: number; seed: number; timeScale: number; region: string; radios: Array<{ name: string; tty: string; protocol: string; connected: boolean }> }
  | { event: 'tx'; t: number; radio: string; id: number; bytes: number; airtimeMs: number }
  | { event: 'txDone'; t: number; radio: string; id: number; airtimeMs: number }
  | { event: 'txAborted'; t: number; radio: string; id: number; airtimeMs: number }
  | { event: 'rx'; t: number; radio: string; from: string; id: number; bytes: number; rssi: number; snr: number }
  | { event: 'collision'; t: number; radio: string; from: string; id: number }
  | { event: 'lost'; t: number; radio: string; from: string; id: number; reason: Exclude<LossReason, 'collision'> }
  | { event: 'channel'; t: number; radio: string; busy: boolean }
  | { event: 'unplug'; t: number; radio: string; tty: string; reason: string }
  | { event: 'replug'; t: number; radio: string; tty: string; downMs: number }
  | { event: 'error'; t: number; radio?: string; message: string }
  | { event: 'stopped'; t: number }

// ---- one emulated MCU ----------------------------------------------------------------------

export interface EmulatorDeviceStats {
  connected: boolean
  bytesIn: number
  bytesOut: number
  /** Bytes the firmware wrote while unplugged, or beyond MAX_PENDING_WRITE unread by the host. */
  writesDropped: number
  /** Exceptions thrown out of the protocol's receive() (a protocol bug; counted, not fatal). */
  protocolErrors: number
  unplugs: number
  replugs: number
  openFailures: number
}

/** Bytes the MCU side may have queued for a host that does not read before it drops. */
export const MAX_PENDING_WRITE = 64 * 1024

type DeviceState = 'down' | 'opening' | 'up' | 'stopped'

/** One emulated MCU: a tty, a radio and the protocol between them. */
export class EmulatorDevice {
  readonly name: string
  readonly tty: string
  readonly protocolName: string
  readonly radio: EmulatedRadio
  readonly protocol: DeviceProtocol
  #port: SerialPort | undefined
  #state: DeviceState = 'down'
  #rdev = -1
  #ino = -1
  #attempt = 0
  #retry: TimerHandle | undefined
  #watch: ReturnType<typeof setInterval> | undefined
  #downSince = 0
  /** True once the MCU lost power (unplugged, or not there at start): the next open boots it. */
  #needsBoot = false
  readonly #opts: { minMs: number; maxMs: number; watchMs: number; baudRate: number }
  readonly #emit: (e: EmulatorEvent) => void
  readonly #scheduler: Scheduler
  readonly #counters = { bytesIn: 0, bytesOut: 0, writesDropped: 0, protocolErrors: 0, unplugs: 0, replugs: 0, openFailures: 0 }

  /** @internal created by startEmulator() */
  constructor(
    cfg: EmulatorRadioConfig,
    radio: EmulatedRadio,
    factory: DeviceProtocolFactory,
    opts: { minMs: number; maxMs: number; watchMs: number; baudRate: number },
    emit: (e: EmulatorEvent) => void,
    scheduler: Scheduler,
  ) {
    this.name = cfg.name
    this.tty = cfg.tty
    this.protocolName = cfg.protocol
    this.radio = radio
    this.#opts = opts
    this.#emit = emit
    this.#scheduler = scheduler
    this.protocol = factory(radio, (bytes) => this.#write(bytes))
  }

  get connected(): boolean {
    return this.#state === 'up'
  }

  stats(): EmulatorDeviceStats {
    return { connected: this.connected, ...this.#counters }
  }

  #t(): number {
    return this.radio.medium.now()
  }

  #write(bytes: Uint8Array): void {
    const port = this.#port
    if (this.#state !== 'up' || port === undefined) {
      this.#counters.writesDropped += bytes.length
      return
    }
    if (port.writableLength > MAX_PENDING_WRITE) {
      // Nobody reads the host side: like a UART TX buffer, overflow drops (counted).
      this.#counters.writesDropped += bytes.length
      return
    }
    this.#counters.bytesOut += bytes.length
    port.write(Buffer.from(bytes))
  }

  /** One attempt to open the tty; true when it is open. */
  async open(): Promise<boolean> {
    if (this.#state !== 'down') return this.#state === 'up'
    this.#state = 'opening'
    let st: { rdev: number; ino: number }
    let port: SerialPort | undefined
    try {
      st = await fsp.stat(this.tty)
      port = new SerialPort({ path: this.tty, baudRate: this.#opts.baudRate, autoOpen: false })
      await new Promise<void>((res, rej) => port!.open((e) => (e ? rej(e) : res())))
    } catch {
      this.#counters.openFailures++
      if (port?.isOpen === true) port.close(() => undefined)
      if (this.#state === 'opening') {
        this.#state = 'down'
        if (!this.#needsBoot) this.#powerDown() // not there at start: unpowered until it appears
        this.#scheduleOpen()
      }
      return false
    }
    if (this.#state !== 'opening') {
      // stopped meanwhile
      port.close(() => undefined)
      return false
    }
    this.#port = port
    this.#rdev = st.rdev
    this.#ino = st.ino
    this.#state = 'up'
    this.#attempt = 0
    port.on('data', (chunk: Buffer) => {
      if (this.#port !== port) return
      this.#counters.bytesIn += chunk.length
      try {
        this.protocol.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))
      } catch (e) {
        this.#counters.protocolErrors++
        this.#emit({ event: 'error', t: this.#t(), radio: this.name, message: `protocol: ${(e as Error).message}` })
      }
    })
    port.on('close', (err: (Error & { disconnected?: boolean }) | null) => this.#lost(port, err?.disconnected === true ? 'disconnected' : 'closed'))
    port.on('error', (err: Error) => this.#lost(port, `error: ${err.message}`))
    this.#watch = setInterval(() => void this.#check(port), this.#opts.watchMs)
    if (this.#needsBoot) {
      // The MCU boots: radio at its power-on state, protocol forgets everything.
      this.#needsBoot = false
      this.radio.reset()
      this.protocol.reset()
      this.#counters.replugs++
      this.#emit({ event: 'replug', t: this.#t(), radio: this.name, tty: this.tty, downMs: Math.round(performance.now() - this.#downSince) })
    }
    return true
  }

  /** No power: the radio goes off (aborting what it sends) and the protocol state is lost. */
  #powerDown(): void {
    this.#needsBoot = true
    this.#downSince = performance.now()
    this.radio.setOn(false)
    this.protocol.reset()
  }

  async #check(port: SerialPort): Promise<void> {
    try {
      const st = await fsp.stat(this.tty)
      if (st.rdev !== this.#rdev || st.ino !== this.#ino) this.#lost(port, 'path-changed')
    } catch {
      this.#lost(port, 'path-gone')
    }
  }

  #lost(port: SerialPort, reason: string): void {
    if (this.#port !== port || this.#state !== 'up') return
    this.#state = 'down'
    this.#port = undefined
    clearInterval(this.#watch)
    this.#watch = undefined
    port.removeAllListeners('data')
    port.on('error', () => undefined)
    if (port.isOpen) port.close(() => undefined)
    this.#counters.unplugs++
    this.#powerDown()
    this.#emit({ event: 'unplug', t: this.#t(), radio: this.name, tty: this.tty, reason })
    this.#scheduleOpen()
  }

  #scheduleOpen(): void {
    if (this.#state !== 'down') return
    const delay = Math.min(this.#opts.maxMs, this.#opts.minMs * 2 ** Math.min(this.#attempt, 30))
    this.#attempt++
    this.#retry?.cancel()
    this.#retry = this.#scheduler.setTimeout(() => {
      this.#retry = undefined
      void this.open()
    }, delay)
  }

  async stop(): Promise<void> {
    this.#state = 'stopped'
    this.#retry?.cancel()
    clearInterval(this.#watch)
    const port = this.#port
    this.#port = undefined
    if (port !== undefined) {
      port.removeAllListeners('data')
      port.removeAllListeners('close')
      port.on('error', () => undefined)
      if (port.isOpen) await new Promise<void>((res) => port.close(() => res()))
    }
    // Power off: the firmware's own timers (heartbeats, status reports) stop with it.
    this.radio.setOn(false)
    this.protocol.reset()
  }
}

// ---- the emulator --------------------------------------------------------------------------

export interface StartEmulatorOptions {
  /** Protocol factories by name; they take precedence over config `factories` and the built-ins. */
  factories?: Record<string, DeviceProtocolFactory>
  /** Called for every event, including `ready` (before startEmulator resolves). */
  onEvent?: (e: EmulatorEvent) => void
  /** Clock and timers of the medium and the reopen backoff (default real). */
  scheduler?: Scheduler
  /** Also report channel busy/free changes (default false: they are frequent). */
  channelEvents?: boolean
}

export interface EmulatorEvents {
  event: [EmulatorEvent]
}

export class Emulator extends EventEmitter<EmulatorEvents> {
  readonly medium: Medium
  readonly devices: ReadonlyMap<string, EmulatorDevice>
  readonly #onEvent: ((e: EmulatorEvent) => void) | undefined
  #stopped: Promise<void> | undefined

  /** @internal use startEmulator() */
  constructor(medium: Medium, devices: Map<string, EmulatorDevice>, onEvent?: (e: EmulatorEvent) => void) {
    super()
    this.medium = medium
    this.devices = devices
    this.#onEvent = onEvent
  }

  /** @internal */
  report(e: EmulatorEvent): void {
    try {
      this.#onEvent?.(e)
    } finally {
      this.emit('event', e)
    }
  }

  device(name: string): EmulatorDevice {
    const d = this.devices.get(name)
    if (d === undefined) throw new TypeError(`no emulated radio "${name}"`)
    return d
  }

  stats(): { radios: Record<string, Record<string, number>>; devices: Record<string, EmulatorDeviceStats & { protocol: Record<string, number> }> } {
    const devices: Record<string, EmulatorDeviceStats & { protocol: Record<string, number> }> = {}
    for (const [n, d] of this.devices) devices[n] = { ...d.stats(), protocol: d.protocol.stats() }
    return { radios: this.medium.stats(), devices }
  }

  /** Closes every tty and stops the medium. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await Promise.all([...this.devices.values()].map((d) => d.stop()))
      this.medium.close()
      this.report({ event: 'stopped', t: this.medium.now() })
    })()
    return this.#stopped
  }
}

/**
 * Starts the emulator: builds the medium and the devices, tries to open every tty once, emits
 * `ready` and resolves. A tty that is not there yet is retried with backoff (its radio is off
 * until then). Rejects on a bad config or a protocol that cannot be loaded.
 */
export async function startEmulator(config: EmulatorConfig, options: StartEmulatorOptions = {}): Promise<Emulator> {
  const cfg = parseEmulatorConfig(config, undefined, Object.keys(options.factories ?? {}))
  const factories = new Map<string, DeviceProtocolFactory>()
  for (const name of new Set(cfg.radios.map((r) => r.protocol))) {
    const given = options.factories?.[name]
    if (given !== undefined) {
      factories.set(name, given)
      continue
    }
    const fromConfig = cfg.factories?.[name]
    if (fromConfig !== undefined) {
      const [module, exp] = fromConfig.split('#')
      factories.set(name, await loadFactory(name, { module: module!, export: exp }))
      continue
    }
    const builtin = BUILTIN_PROTOCOLS[name]
    if (builtin === undefined) throw new TypeError(`emulator config: protocol "${name}" is unknown`)
    factories.set(name, await loadFactory(name, builtin, import.meta.url))
  }

  const linksGiven = cfg.links !== undefined && cfg.links.length > 0
  const medium = new Medium({
    ...(cfg.seed !== undefined && { seed: cfg.seed }),
    ...(cfg.timeScale !== undefined && { timeScale: cfg.timeScale }),
    ...(cfg.region !== undefined && { region: cfg.region }),
    ...(cfg.enforceRegion !== undefined && { enforceRegion: cfg.enforceRegion }),
    ...(cfg.dutyWindowMs !== undefined && { dutyWindowMs: cfg.dutyWindowMs }),
    ...(cfg.captureDb !== undefined && { captureDb: cfg.captureDb }),
    defaultLink: cfg.defaultLink !== undefined ? cfg.defaultLink : linksGiven ? null : {},
    ...(options.scheduler !== undefined && { scheduler: options.scheduler }),
  })
  for (const l of cfg.links ?? []) {
    const spec: Partial<LinkSpec> = {}
    if (l.rssi !== undefined) spec.rssi = l.rssi
    if (l.snr !== undefined) spec.snr = l.snr
    if (l.loss !== undefined) spec.loss = l.loss
    if (l.frequencyErrorHz !== undefined) spec.frequencyErrorHz = l.frequencyErrorHz
    medium.setLink(l.from, l.to, spec)
    if (l.both === true) medium.setLink(l.to, l.from, spec)
  }

  const devices = new Map<string, EmulatorDevice>()
  const emulator = new Emulator(medium, devices, options.onEvent)
  const emit = (e: EmulatorEvent) => emulator.report(e)
  medium.on('tx', (e) => emit({ event: 'tx', t: e.at, radio: e.from, id: e.id, bytes: e.bytes, airtimeMs: e.airtimeMs }))
  medium.on('txDone', (e) => emit({ event: 'txDone', t: e.at, radio: e.from, id: e.id, airtimeMs: e.airtimeMs }))
  medium.on('txAborted', (e) => emit({ event: 'txAborted', t: e.at, radio: e.from, id: e.id, airtimeMs: e.airtimeMs }))
  medium.on('rx', (e) => emit({ event: 'rx', t: e.at, radio: e.to, from: e.from, id: e.id, bytes: e.bytes, rssi: e.rssi, snr: e.snr }))
  medium.on('lost', (e) => {
    if (e.reason === 'collision') emit({ event: 'collision', t: e.at, radio: e.to, from: e.from, id: e.id })
    else emit({ event: 'lost', t: e.at, radio: e.to, from: e.from, id: e.id, reason: e.reason })
  })
  if (options.channelEvents === true) medium.on('channel', (e) => emit({ event: 'channel', t: e.at, radio: e.radio, busy: e.busy }))

  const opts = { minMs: cfg.reopen?.minMs ?? 50, maxMs: cfg.reopen?.maxMs ?? 1000, watchMs: cfg.watchMs ?? 200, baudRate: cfg.baudRate ?? 115_200 }
  try {
    for (const r of cfg.radios) {
      const radio = medium.attach(r.name, { ...(r.config !== undefined && { config: r.config }), ...(r.on !== undefined && { on: r.on }) })
      devices.set(r.name, new EmulatorDevice(r, radio, r.chip === undefined ? factories.get(r.protocol)! : await chipFactory(r.protocol, r.chip), opts, emit, medium.scheduler))
    }
  } catch (e) {
    medium.close()
    throw e
  }
  await Promise.all([...devices.values()].map((d) => d.open()))
  emit({
    event: 'ready',
    pid: process.pid,
    seed: medium.seed,
    timeScale: medium.timeScale,
    region: medium.region.name,
    radios: [...devices.values()].map((d) => ({ name: d.name, tty: d.tty, protocol: d.protocolName, connected: d.connected })),
  })
  return emulator
}

// ---- command line --------------------------------------------------------------------------

function textLine(e: EmulatorEvent): string {
  const { event, ...rest } = e
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
  return [event, ...fields].join(' ')
}

const USAGE = 'usage: main.ts --config FILE [--log json|text|none] [--channel-events]'

/** The CLI; resolves with the exit status once stopped (SIGTERM/SIGINT) or on a startup error. */
export async function main(argv: string[]): Promise<number> {
  let configPath: string | undefined
  let log: 'json' | 'text' | 'none' = 'text'
  let channelEvents = false
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--config') configPath = argv[++i]
    else if (a === '--log') {
      const v = argv[++i]
      if (v !== 'json' && v !== 'text' && v !== 'none') {
        process.stderr.write(`--log: ${String(v)} is not json, text or none\n${USAGE}\n`)
        return 2
      }
      log = v
    } else if (a === '--channel-events') channelEvents = true
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`)
      return 0
    } else {
      process.stderr.write(`unknown argument ${String(a)}\n${USAGE}\n`)
      return 2
    }
  }
  if (configPath === undefined) {
    process.stderr.write(`--config is required\n${USAGE}\n`)
    return 2
  }
  const print = (e: EmulatorEvent) => {
    if (log === 'json') process.stdout.write(`${JSON.stringify(e)}\n`)
    else if (log === 'text') process.stdout.write(`${textLine(e)}\n`)
  }
  let emulator: Emulator
  try {
    const cfg = await loadEmulatorConfig(configPath)
    emulator = await startEmulator(cfg, { onEvent: print, channelEvents })
  } catch (e) {
    process.stderr.write(`emulator: ${(e as Error).message}\n`)
    return 1
  }
  return new Promise<number>((resolveExit) => {
    const stop = () => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      void emulator.stop().then(() => resolveExit(0))
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  })
}

/** True when the module at `moduleUrl` is the script node was started with (not imported). */
export function invokedDirectly(moduleUrl: string = import.meta.url): boolean {
  const arg = process.argv[1]
  if (arg === undefined) return false
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(moduleUrl))
  } catch {
    return false
  }
}

if (invokedDirectly()) {
  void main(process.argv.slice(2)).then((code) => {
    // Ports and timers are closed by stop(); exit explicitly so a stray handle cannot hang us.
    process.stdout.write('', () => process.exit(code))
  })
}
