/**
 * kairo-hw: kairo-gw's N-API addon for physical controls (src/kairo_hw.c). Linux only.
 *
 * The rest of the code uses drivers/gpio, drivers/rfkill and drivers/netdev, not this package.
 *
 * Errors are `Error`s with Node's errno conventions: `code` (the errno name, e.g. 'ENOENT'),
 * `errno` (the negated number) and `syscall` (e.g. 'ioctl(GPIO_V2_GET_LINE_IOCTL)'); the message
 * names the device, line or interface. Wrong argument types throw a TypeError, out-of-range
 * numbers a RangeError.
 */

export interface ChipInfo {
  /** Kernel name, e.g. 'gpiochip0'. */
  name: string
  /** Driver's label, e.g. 'pinctrl-bcm2711' or 'gpio-sim.0-node0'. */
  label: string
  lines: number
}

export interface LineInfo {
  offset: number
  name: string
  consumer: string
  /** GPIO_V2_LINE_FLAG_* bits. */
  flags: number
  /** Debounce period set on the line, µs (0: none). */
  debounceUs: number
}

export interface EdgeEvent {
  /** Offset on the chip of the line that changed. */
  offset: number
  /** Rising (inactive → active) or falling edge, of the logical value. */
  rising: boolean
  /** CLOCK_MONOTONIC (default) or CLOCK_REALTIME with that flag. */
  timestampNs: bigint
  /** Sequence number across all lines of the request. */
  seqno: number
  /** Sequence number on this line. */
  lineSeqno: number
}

export interface RfkillEvent {
  index: number
  /** RFKILL_TYPE_*: 0 all, 1 wlan, 2 bluetooth, 3 uwb, 4 wimax, 5 wwan, 6 gps, 7 fm, 8 nfc. */
  type: number
  /** RFKILL_OP_*: 0 add, 1 del, 2 change, 3 change-all. */
  op: number
  soft: boolean
  hard: boolean
  /** RFKILL_HARD_BLOCK_* bits (kernels that send 9-byte events; else 0). */
  hardReasons: number
}

export interface LinkInfo {
  name: string
  index: number
  /** IFF_* flags as rtnetlink reports them (IFF_UP 0x1, IFF_RUNNING 0x40, IFF_LOWER_UP 0x10000). */
  flags: number
  /** IF_OPER_*: 0 unknown, 1 notpresent, 2 down, 3 lowerlayerdown, 4 testing, 5 dormant, 6 up. */
  operstate: number
  /** 1 carrier, 0 none, -1 not reported. */
  carrier: number
  mtu: number
}

/** An opaque handle from watch(). */
export interface WatchHandle {
  readonly __kairoWatch: unique symbol
}

/** GPIO_GET_CHIPINFO_IOCTL on `path` (opened and closed again). */
export function gpioChipInfo(path: string): ChipInfo
/** GPIO_V2_GET_LINEINFO_IOCTL for one line, or for every line of the chip without `offset`. */
export function gpioLineInfo(path: string, offset: number): LineInfo
export function gpioLineInfo(path: string): LineInfo[]
/**
 * GPIO_V2_GET_LINE_IOCTL: requests `offsets` (1..64) with `flags` (GPIO_V2_LINE_FLAG_*) for all
 * of them; `values` (one 0/1 per offset) are driven at once for outputs; `debounceUs` > 0 sets
 * debounce. Returns the request's fd (non-blocking, close-on-exec); closeFd releases the lines.
 * The consumer label is cut at 31 bytes.
 */
export function gpioRequest(path: string, offsets: number[], consumer: string, flags: number, values?: number[] | null, debounceUs?: number, eventBufferSize?: number): number
/** GPIO_V2_LINE_SET_CONFIG_IOCTL on a request of `n` lines. */
export function gpioSetConfig(fd: number, n: number, flags: number, values?: number[] | null, debounceUs?: number): void
/** GPIO_V2_LINE_GET_VALUES_IOCTL: the logical values (0/1) of the first `n` lines of the request. */
export function gpioGet(fd: number, n: number): number[]
/** GPIO_V2_LINE_SET_VALUES_IOCTL: sets the first values.length lines of the request. */
export function gpioSet(fd: number, values: number[]): void
/** Every edge event queued on a request fd now ([] when none). */
export function gpioReadEvents(fd: number): EdgeEvent[]
export function closeFd(fd: number): void

/** Opens /dev/rfkill (or `path`) read-write, non-blocking. The kernel queues one add event per switch. */
export function rfkillOpen(path: string): number
/** Every rfkill event queued now ([] when none, or at end of file). */
export function rfkillRead(fd: number): RfkillEvent[]
/** Writes one event: op 2 (change) with type 0 for switch `index`; op 3 (change-all) for every switch of `type`. */
export function rfkillWrite(fd: number, op: number, index: number, type: number, soft: boolean): void

/**
 * Calls `callback(null)` on Node's event loop whenever `fd` is readable (level-triggered: again
 * while data is left), `callback('ECODE')` on a poll error. Throws EPERM for an fd epoll cannot
 * watch (regular files, /dev/null). Keeps the loop alive unless watchRef(handle, false).
 */
export function watch(fd: number, callback: (error: string | null) => void): WatchHandle
/** No more callbacks; the fd may be closed right after. Idempotent. */
export function unwatch(handle: WatchHandle): void
export function watchRef(handle: WatchHandle, ref: boolean): void

/** RTM_NEWLINK setting or clearing IFF_UP on `ifname`; returns after the kernel's ACK. */
export function linkSetUp(ifname: string, up: boolean): void
/** RTM_GETLINK for `ifname`. ENODEV when there is none. */
export function linkGet(ifname: string): LinkInfo
