/**
 * The host side of a companion radio: what the LoRa link needs from the firmware it talks to.
 * Two implementations: firmware-bridge (ours, firmware-bridge/) and RNode (KISS, ./rnode/).
 *
 * A backend is transport-independent: the link feeds it the bytes read from the serial port
 * (`receive`) and gives it a function to write bytes (`attach`). It never opens a device.
 *
 * Contract:
 * - `start()` resolves once the device answered its handshake or detect, with what it is; it
 *   rejects with TimeoutError if nothing sensible arrives in time.
 * - `configure()` resolves when the device confirmed the whole configuration, and rejects with
 *   ConfigRejectedError naming the field the device refused.
 * - `transmit()` resolves when the device reports the frame sent (TX done) and rejects with a
 *   RadioError (queue full, radio off, ...). Up to `credits` transmissions may be outstanding at
 *   once; more is a caller error (TypeError).
 * - Received frames, channel activity and device errors are events. Garbage on the line is
 *   counted (`stats().errors`) and skipped, never thrown out of `receive()`.
 * - `stop()` rejects every pending promise with ConnectionLostError.
 */
import type { EventEmitter } from 'node:events'
import type { RadioConfig } from './radio.js'

export interface RadioRx {
  payload: Buffer
  /** Received signal strength, dBm. */
  rssi: number
  /** Signal-to-noise ratio, dB. */
  snr: number
  /** Frequency error, Hz, when the firmware reports it. */
  frequencyErrorHz?: number
  /** Device timestamp of the end of reception, µs, when the firmware reports it. */
  timestampUs?: number
}

export interface DeviceInfo {
  /** Firmware name, e.g. "kairo-fb-emulator" or "RNode". */
  firmware: string
  /** Firmware version text, e.g. "1.0" or "1.78". */
  version: string
  /** Largest frame the radio sends, bytes. */
  mtu: number
  /** Frames the device can queue for transmission (initial credits). */
  queueDepth: number
  /** True when the firmware reports channel activity (listen before talk). */
  channelActivity: boolean
}

export interface RadioBackendEvents {
  rx: [RadioRx]
  /** Channel activity changed (busy = someone is transmitting). */
  channel: [busy: boolean]
  /** The device reported an error not tied to one request (e.g. CRC failures on air). */
  deviceError: [Error]
  /** Credits returned: more transmissions may be issued. */
  credits: [number]
}

export interface RadioBackend extends EventEmitter<RadioBackendEvents> {
  readonly kind: 'firmware-bridge' | 'rnode'
  /** Transmissions that may be issued now without waiting. */
  readonly credits: number
  /** Where the backend writes bytes for the device. */
  attach(write: (bytes: Uint8Array) => void): void
  /** Bytes read from the device. Never throws. */
  receive(bytes: Uint8Array): void
  start(signal?: AbortSignal): Promise<DeviceInfo>
  configure(cfg: RadioConfig, signal?: AbortSignal): Promise<void>
  setRadio(on: boolean, signal?: AbortSignal): Promise<void>
  transmit(payload: Uint8Array, signal?: AbortSignal): Promise<void>
  stats(): { framesIn: number; framesOut: number; errors: Record<string, number> } & Record<string, unknown>
  stop(): void
}
