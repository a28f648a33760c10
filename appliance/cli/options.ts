/** Option parsers for commander: they throw InvalidArgumentError, which exits 2. */
import { InvalidArgumentError } from 'commander'

export function parsePort(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number 0-65535 (0 picks a free port)')
  return n
}

export function parsePositiveMs(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 1 || n > 3_600_000) throw new InvalidArgumentError('must be a whole number of milliseconds, 1-3600000')
  return n
}

export function parseNodeIdOption(value: string): string {
  if (!/^[0-9a-fA-F]{32}$/.test(value)) throw new InvalidArgumentError('must be a node ID: 32 hex digits (see `kairo-gw identity show` on the peer)')
  return value.toLowerCase()
}

function numberIn(value: string, min: number, max: number, what: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`must be ${what}`)
  return n
}

/** --sf: LoRa spreading factor 5..12. */
export function parseSpreadingFactor(value: string): number {
  const n = numberIn(value, 5, 12, 'a spreading factor, 5-12')
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be a spreading factor, 5-12')
  return n
}

/** --bw: bandwidth in kHz (7.8 .. 500), returned in Hz. */
export function parseBandwidthKhz(value: string): number {
  return Math.round(numberIn(value, 7.8, 500, 'a bandwidth in kHz, e.g. 125, 250 or 500') * 1000)
}

/** --cr: coding rate as 4/5..4/8 or its denominator 5..8. */
export function parseCodingRate(value: string): number {
  const m = /^(?:4\/)?([5-8])$/.exec(value.trim())
  if (m === null) throw new InvalidArgumentError('must be a coding rate: 4/5, 4/6, 4/7 or 4/8 (or 5-8)')
  return Number(m[1])
}

/** --freq: frequency in MHz, returned in Hz. */
export function parseFrequencyMhz(value: string): number {
  return Math.round(numberIn(value, 100, 3000, 'a frequency in MHz, e.g. 868.1') * 1e6)
}

/** A small whole number (dBm, symbols, bytes) within bounds. */
export function intIn(min: number, max: number, what: string): (value: string) => number {
  return (value) => {
    const n = numberIn(value, min, max, `${what}, ${min}-${max}`)
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`must be ${what}, ${min}-${max}`)
    return n
  }
}
