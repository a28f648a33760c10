/**
 * sd_notify(3) for the daemon: tells systemd when kairo-gw is ready, reloading, stopping, what
 * it is doing (STATUS=), and that it is alive (WATCHDOG=1), for a unit with Type=notify,
 * NotifyAccess=main and WatchdogSec= (systemd/kairo-gw.service).
 *
 * The protocol is one datagram of newline-separated VAR=value assignments on the AF_UNIX
 * SOCK_DGRAM socket named by $NOTIFY_SOCKET (a path, or '@name' for an abstract address). Node
 * has no Unix datagram sockets, so the send is kairo-native's notify() (appliance/native).
 * Without $NOTIFY_SOCKET (not started by systemd: npm start, tests, a shell) every function
 * here does nothing and sdNotify() returns false, so the daemon calls them unconditionally.
 *
 * The watchdog follows sd_watchdog_enabled(3): enabled when $WATCHDOG_USEC is set and
 * $WATCHDOG_PID is unset or this process's pid; WATCHDOG=1 then goes out every half interval
 * from an unref'd timer. The timer firing is itself the liveness proof: an event loop blocked
 * for more than the interval stops the pings and systemd restarts the service
 * (Restart=on-failure, after SIGABRT).
 *
 * NotifyAccess=main means systemd only listens to the main pid: these functions must run in
 * the daemon's own process (not in a worker process it spawns), which they do, since the
 * datagram's sender is this process.
 */
import { loadNative } from './native.js'

/** A send to $NOTIFY_SOCKET failed: `code` is the errno name (ENOENT, ECONNREFUSED, EACCES...). */
export class SdNotifyError extends Error {
  override readonly name = 'SdNotifyError'
  constructor(
    message: string,
    readonly code: string,
    readonly socket: string,
    readonly state: string,
  ) {
    super(message)
  }
}

/** $WATCHDOG_USEC or $WATCHDOG_PID holds something sd_watchdog_enabled(3) would refuse (EINVAL). */
export class WatchdogConfigError extends Error {
  override readonly name = 'WatchdogConfigError'
  constructor(
    message: string,
    readonly variable: 'WATCHDOG_USEC' | 'WATCHDOG_PID',
    readonly value: string,
  ) {
    super(message)
  }
}

/** The notify socket from the environment, or undefined when systemd did not set one. */
export function notifySocket(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const s = env.NOTIFY_SOCKET
  return s === undefined || s === '' ? undefined : s
}

/**
 * Sends `state` (e.g. "READY=1\nSTATUS=up") to $NOTIFY_SOCKET. Returns false, doing nothing,
 * when $NOTIFY_SOCKET is unset; true when the datagram was sent. Throws SdNotifyError when it is
 * set but the send fails (a missing or refusing socket, a relative path, a wedged receiver
 * after 1 s), or when kairo-native is not built.
 */
export function sdNotify(state: string): boolean {
  const socket = notifySocket()
  if (socket === undefined) return false
  let native
  try {
    native = loadNative()
  } catch (err) {
    throw new SdNotifyError(`sd_notify ${firstLine(state)} to ${socket}: ${(err as Error).message}`, 'ENOSYS', socket, state)
  }
  try {
    native.notify(socket, state)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new SdNotifyError(`sd_notify ${firstLine(state)} to NOTIFY_SOCKET=${socket}: ${e.message}`, e.code ?? 'EIO', socket, state)
  }
  return true
}

/** One line of free text for STATUS=: a newline would start another assignment. */
function statusText(text: string): string {
  return text.replace(/[\r\n]+/g, ' ')
}

function firstLine(state: string): string {
  return state.split('\n', 1)[0] ?? ''
}

/** READY=1 (start-up or a reload finished), with STATUS= when given. */
export function notifyReady(status?: string): boolean {
  return sdNotify(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${statusText(status)}`)
}

/** STOPPING=1: the daemon has begun shutting down (send it before draining). */
export function notifyStopping(status?: string): boolean {
  return sdNotify(status === undefined ? 'STOPPING=1' : `STOPPING=1\nSTATUS=${statusText(status)}`)
}

/** STATUS=text: shown by `systemctl status kairo-gw`. Newlines become spaces. */
export function notifyStatus(text: string): boolean {
  return sdNotify(`STATUS=${statusText(text)}`)
}

/**
 * RELOADING=1 plus MONOTONIC_USEC=<CLOCK_MONOTONIC now>, as systemd 253+ wants it (it pairs the
 * reload with the READY=1 that must follow once the reload is done; older systemd ignores
 * MONOTONIC_USEC and still shows "reloading"). Call notifyReady() when the reload has finished,
 * successfully or not. process.hrtime is CLOCK_MONOTONIC on Linux (libuv's uv_hrtime).
 */
export function notifyReloading(status?: string): boolean {
  const usec = process.hrtime.bigint() / 1000n
  const extra = status === undefined ? '' : `\nSTATUS=${statusText(status)}`
  return sdNotify(`RELOADING=1\nMONOTONIC_USEC=${usec}${extra}`)
}

const DECIMAL = /^[0-9]+$/

/**
 * The watchdog interval systemd asks for, in microseconds, per sd_watchdog_enabled(3): 0 when
 * disabled ($WATCHDOG_USEC unset, or $WATCHDOG_PID set to another process's pid, as a child
 * that inherited the environment sees it). Throws WatchdogConfigError for a value
 * sd_watchdog_enabled would answer -EINVAL for: not a decimal number, 0, or "infinity"
 * (2^64-1).
 */
export function watchdogUsec(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number {
  // The order of the checks is sd_watchdog_enabled's: the interval first, then whose it is.
  const usec = env.WATCHDOG_USEC
  if (usec === undefined) return 0
  if (!DECIMAL.test(usec)) {
    throw new WatchdogConfigError(`WATCHDOG_USEC=${JSON.stringify(usec)} is not a number of microseconds`, 'WATCHDOG_USEC', usec)
  }
  const n = BigInt(usec)
  if (n === 0n || n >= 0xffffffffffffffffn) {
    throw new WatchdogConfigError(`WATCHDOG_USEC=${usec} is not a finite, positive interval`, 'WATCHDOG_USEC', usec)
  }
  const wpid = env.WATCHDOG_PID
  if (wpid !== undefined) {
    if (!DECIMAL.test(wpid) || Number(wpid) <= 0 || !Number.isSafeInteger(Number(wpid))) {
      throw new WatchdogConfigError(`WATCHDOG_PID=${JSON.stringify(wpid)} is not a pid`, 'WATCHDOG_PID', wpid)
    }
    if (Number(wpid) !== pid) return 0
  }
  // More than Node's timers can hold (~24.8 days) cannot be pinged at half-interval precision
  // anyway; cap it there (pinging more often than asked is always allowed).
  return Number(n > 2_000_000_000_000n ? 2_000_000_000_000n : n)
}

export interface WatchdogOptions {
  /**
   * Called when a ping fails (the socket went away) or the environment is invalid; the timer
   * keeps running. Default: one process warning per distinct error message.
   */
  onError?: (err: Error) => void
}

/**
 * Starts WATCHDOG=1 pings every half of $WATCHDOG_USEC when the watchdog is enabled for this
 * process (watchdogUsec() > 0) and $NOTIFY_SOCKET is set; sends the first ping at once. The
 * timer is unref'd: it never keeps the process alive. Returns a function that stops the pings
 * (idempotent); a no-op function when the watchdog is not enabled. Never throws.
 */
export function startWatchdog(opts: WatchdogOptions = {}): () => void {
  const warned = new Set<string>()
  const onError =
    opts.onError ??
    ((err: Error) => {
      if (warned.has(err.message)) return
      warned.add(err.message)
      process.emitWarning(err.message, { code: 'KAIRO_WATCHDOG' })
    })
  let usec: number
  try {
    usec = watchdogUsec()
  } catch (err) {
    onError(err as Error)
    return () => {}
  }
  if (usec === 0 || notifySocket() === undefined) return () => {}
  const ping = () => {
    try {
      sdNotify('WATCHDOG=1')
    } catch (err) {
      onError(err as Error)
    }
  }
  ping()
  const timer = setInterval(ping, Math.max(1, Math.floor(usec / 2000)))
  timer.unref()
  return () => clearInterval(timer)
}
