/**
 * Asks the companion MCU on a serial port what it is, without bringing a link up: the
 * firmware-bridge handshake or RNode's detect, then (optionally) a configuration, then the
 * backend's counters. For `kairo-gw lora probe` and for field checks of a freshly flashed board.
 */
import { ConfigRejectedError, TimeoutError } from '../../appliance/core/errors.js'
import type { DeviceInfo } from './backend.js'
import { configureBackend, defaultPort, makeBackend, startBackend, type LoRaLinkOptions, type SerialLike } from './link.js'
import { DEFAULT_RADIO, radioConfigProblems, type RadioConfig } from './radio.js'

export interface ProbeOptions {
  path: string
  backend: 'firmware-bridge' | 'rnode'
  baudRate?: number
  /** Also apply this configuration (radio stays off): shows whether the firmware accepts it. */
  radio?: Partial<RadioConfig>
  /** Whole probe deadline, ms (default 5000). */
  timeoutMs?: number
  openPort?: LoRaLinkOptions['openPort']
}

export interface ProbeResult {
  path: string
  backend: 'firmware-bridge' | 'rnode'
  device: DeviceInfo
  /** The configuration the firmware accepted, when one was asked for. */
  configured: RadioConfig | null
  stats: Record<string, unknown>
  ms: number
}

export async function probeLoRa(o: ProbeOptions): Promise<ProbeResult> {
  const t0 = performance.now()
  const radio = o.radio === undefined ? null : { ...DEFAULT_RADIO, ...o.radio }
  if (radio !== null) {
    const p = radioConfigProblems(radio)
    if (p.length > 0) throw new ConfigRejectedError(p.map((x) => x.message).join('; '), { field: `radio.${p[0]!.field}` })
  }
  const port: SerialLike = (o.openPort ?? defaultPort)(o.path, o.baudRate ?? 115_200)
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(new Error(`cannot open ${o.path}: ${err.message}`)) : resolve())))
  const backend = makeBackend(o.backend)
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(new TimeoutError(`${o.path}: the probe took longer than ${o.timeoutMs ?? 5000} ms`)), o.timeoutMs ?? 5000)
  try {
    backend.attach((bytes) => {
      if (port.isOpen) port.write(bytes)
    })
    port.on('data', (d) => backend.receive(d))
    port.on('error', () => undefined)
    const device = await startBackend(backend, o.path, ac.signal)
    if (radio !== null) await configureBackend(backend, device, o.path, radio, ac.signal)
    return { path: o.path, backend: o.backend, device, configured: radio, stats: backend.stats(), ms: Math.round(performance.now() - t0) }
  } finally {
    clearTimeout(timer)
    backend.removeAllListeners()
    backend.stop()
    port.removeAllListeners()
    port.on('error', () => undefined)
    if (port.isOpen) await new Promise<void>((r) => port.close(() => r()))
  }
}
