/**
 * What the raw Ethernet links share: reading a network interface's state from sysfs, watching it
 * for loss, the option checks, and the window of recently sent frames that are sent again after
 * an outage (at-least-once across a cut, drivers/link.ts).
 */
import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { networkInterfaces } from 'node:os'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import type { QueuedFrame } from '../base-link.js'

export interface InterfaceInfo {
  name: string
  ifindex: number
  /** Interface MTU, bytes (IP payload size: without the 14-byte Ethernet header). */
  mtu: number
  /** `aa:bb:cc:dd:ee:ff`, lower case. */
  mac: string
  /** ARPHRD_* (1 = Ethernet). */
  type: number
  /** IFF_UP: administratively up. */
  adminUp: boolean
  /** RFC 2863 operstate: up, down, lowerlayerdown, dormant, unknown, ... */
  operstate: string
  /** Nominal speed, Mbit/s, when the driver reports one. */
  speedMbps: number | undefined
}

const SYS = '/sys/class/net'
const IFF_UP = 0x1
export const ARPHRD_ETHER = 1

function readSys(name: string, file: string): string | undefined {
  try {
    return readFileSync(`${SYS}/${name}/${file}`, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** The interface's state from /sys/class/net/<name>, or undefined when there is no such interface. */
export function readInterface(name: string): InterfaceInfo | undefined {
  const ifindex = readSys(name, 'ifindex')
  if (ifindex === undefined) return undefined
  const speed = Number(readSys(name, 'speed'))
  return {
    name,
    ifindex: Number(ifindex),
    mtu: Number(readSys(name, 'mtu') ?? 0),
    mac: (readSys(name, 'address') ?? '').toLowerCase(),
    type: Number(readSys(name, 'type') ?? -1),
    adminUp: (Number.parseInt(readSys(name, 'flags') ?? '0', 16) & IFF_UP) !== 0,
    operstate: readSys(name, 'operstate') ?? 'unknown',
    speedMbps: Number.isFinite(speed) && speed > 0 ? speed : undefined,
  }
}

/** Up and able to carry frames: administratively up, and operstate up (or unknown: no carrier reporting). */
export function isRunning(i: InterfaceInfo): boolean {
  return i.adminUp && (i.operstate === 'up' || i.operstate === 'unknown')
}

/**
 * Why an interface cannot carry frames now, for errors and stats: 'gone' (no such interface),
 * 'admin-down' (set down), 'no-carrier' (up, but no link: cable out, veth peer down), or
 * another operstate ('dormant', ...).
 */
export function notRunningReason(i: InterfaceInfo | undefined): string {
  if (i === undefined) return 'gone'
  if (!i.adminUp) return 'admin-down'
  if (i.operstate === 'down' || i.operstate === 'lowerlayerdown') return 'no-carrier'
  return i.operstate
}

/** The IPv4 addresses assigned to `name` now (getifaddrs). */
export function interfaceIPv4(name: string): Array<{ address: string; netmask: string }> {
  return (networkInterfaces()[name] ?? []).filter((a) => a.family === 'IPv4').map((a) => ({ address: a.address, netmask: a.netmask }))
}

/** The interface that has IPv4 `address`, if any. */
export function interfaceWithAddress(address: string): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if ((addrs ?? []).some((a) => a.family === 'IPv4' && a.address === address)) return name
  }
  return undefined
}

/** An Error with a Node-style `code` (the link counts `reconnect:<code>`). */
export function codedError(message: string, code: string, cause?: unknown): Error & { code: string } {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code })
}

/* ------------------------------------------------------------------------------------------ */
/* Option checks: ConfigRejectedError naming the field.                                        */

export function reject(link: string, field: string, problem: string): never {
  throw new ConfigRejectedError(`link ${link}: ${field} ${problem}`, { field })
}

/** Linux interface names: 1..15 bytes, no '/', ':' or whitespace, not '.' or '..'. */
export function checkInterfaceName(link: string, field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[^\s/:]{1,15}$/.test(v) || v === '.' || v === '..') reject(link, field, `must be a network interface name (1-15 characters, no '/', ':' or spaces), got ${JSON.stringify(v)}`)
  return v
}

export function checkIPv4(link: string, field: string, v: unknown): string {
  if (typeof v !== 'string' || !isIPv4(v)) reject(link, field, `must be an IPv4 address (a.b.c.d), got ${JSON.stringify(v)}`)
  return v
}

export function checkInt(link: string, field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) reject(link, field, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`)
  return v
}

/* ------------------------------------------------------------------------------------------ */

/** Resolves after `ms`, or rejects when `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, rejectP) => {
    if (signal?.aborted) return rejectP(signal.reason ?? new Error('aborted'))
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      rejectP(signal?.reason ?? new Error('aborted'))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Polls the interface every `pollMs` until it runs (resolves with its state), `signal` fires or
 * `stop()` says the wait is pointless (the link is closing): then rejects.
 */
export async function waitUntilRunning(name: string, pollMs: number, signal: AbortSignal, stop: () => boolean): Promise<InterfaceInfo> {
  for (;;) {
    const info = readInterface(name)
    if (info !== undefined && isRunning(info)) return info
    if (stop()) throw codedError(`interface ${name} is ${notRunningReason(info)}; stopped waiting for it`, 'ENETDOWN')
    await sleep(pollMs, signal)
  }
}

/**
 * Frames put on the medium in the last `windowMs`: a medium without confirmations (Ethernet,
 * raw IP) only learns of a cut up to one poll later, so what it sent in that time is taken as
 * in flight and queued again after the outage (at least once; the mesh drops duplicates).
 */
export class RecentlySent {
  private readonly frames: Array<{ f: QueuedFrame; at: number }> = []
  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  add(f: QueuedFrame): void {
    const at = this.now()
    this.frames.push({ f, at })
    this.prune(at)
  }

  /** The frames sent within the window, oldest first, and forgets all. */
  takeInFlight(): QueuedFrame[] {
    this.prune(this.now())
    return this.frames.splice(0).map((e) => e.f)
  }

  clear(): void {
    this.frames.length = 0
  }

  private prune(now: number): void {
    let drop = 0
    while (drop < this.frames.length && now - this.frames[drop]!.at > this.windowMs) drop++
    if (drop > 0) this.frames.splice(0, drop)
    // Bound memory whatever the rate: a window never needs more than this many frames.
    if (this.frames.length > 4096) this.frames.splice(0, this.frames.length - 4096)
  }
}

const ERRNO_BY_MESSAGE: Array<[RegExp, string]> = [
  [/network is down/i, 'ENETDOWN'],
  [/network is unreachable/i, 'ENETUNREACH'],
  [/no such device or address/i, 'ENXIO'],
  [/no such device/i, 'ENODEV'],
  [/no buffer space/i, 'ENOBUFS'],
  [/resource temporarily unavailable|would block/i, 'EAGAIN'],
  [/message too long/i, 'EMSGSIZE'],
  [/no route to host/i, 'EHOSTUNREACH'],
  [/operation not permitted/i, 'EPERM'],
  [/permission denied/i, 'EACCES'],
  [/invalid argument/i, 'EINVAL'],
  [/bad file descriptor/i, 'EBADF'],
]

/** The errno name behind a strerror()-style message (native modules give only the text). */
export function errnoOf(err: unknown): string {
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return code
  const msg = err instanceof Error ? err.message : String(err)
  for (const [re, name] of ERRNO_BY_MESSAGE) if (re.test(msg)) return name
  return 'EIO'
}

/** Errors that mean the interface cannot carry frames now. */
export const MEDIUM_GONE = new Set(['ENETDOWN', 'ENETUNREACH', 'ENXIO', 'ENODEV', 'EBADF'])
/** Errors worth a short wait and another try. */
export const TRANSIENT = new Set(['ENOBUFS', 'EAGAIN'])
