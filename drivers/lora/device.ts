/**
 * The emulator side: a virtual radio on a shared medium, and the firmware protocols that drive
 * one from a serial line. The emulator (firmware-bridge/emulator/) wires them to a PTY.
 */
import type { EventEmitter } from 'node:events'
import type { RadioConfig } from './radio.js'
import type { RadioRx } from './backend.js'

export interface VirtualRadioEvents {
  rx: [RadioRx]
  txDone: [{ airtimeMs: number }]
  channel: [busy: boolean]
}

/** A radio attached to a Medium. */
export interface VirtualRadio extends EventEmitter<VirtualRadioEvents> {
  readonly name: string
  readonly config: Readonly<RadioConfig>
  readonly isOn: boolean
  /** Applies a configuration; throws ConfigRejectedError naming the field when invalid. */
  configure(cfg: RadioConfig): void
  setOn(on: boolean): void
  /**
   * Starts transmitting `payload` (1..255 bytes). Emits `txDone` after its time on air.
   * Throws RadioError('busy') if already transmitting, RadioError('off') when switched off.
   */
  transmit(payload: Uint8Array): { airtimeMs: number }
  /** True while any radio this one can hear is transmitting on its channel. */
  channelBusy(): boolean
  stats(): Record<string, number>
  /**
   * Clock and timers in radio time, when the radio's air runs at another pace than the wall
   * clock (an emulator's time scale). Firmware timers tied to the air (CSMA slots, airtime
   * windows, periodic radio reports) use it; serial-line timers do not.
   */
  readonly airClock?: { now(): number; setTimeout(fn: () => void, ms: number): { cancel(): void } }
}

/**
 * The firmware side of a serial protocol (firmware-bridge or RNode KISS) driving one
 * VirtualRadio: it parses what the host writes, acts on the radio, and writes answers and
 * indications back. Garbage from the host is counted, never fatal.
 */
export interface DeviceProtocol {
  receive(bytes: Uint8Array): void
  /** Like a power cycle of the MCU: forget all protocol state (the host must handshake again). */
  reset(): void
  stats(): Record<string, number>
}

export type DeviceProtocolFactory = (radio: VirtualRadio, write: (bytes: Uint8Array) => void) => DeviceProtocol
