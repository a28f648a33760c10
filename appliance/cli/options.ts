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
