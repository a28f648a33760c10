/**
 * rfkill through /dev/rfkill (kairo-hw): the kernel's radio switches — a Wi-Fi phy, a Bluetooth
 * controller, a WWAN modem — listed, soft-blocked and unblocked, and watched.
 *
 *   const rf = await Rfkill.open()
 *   rf.block({ name: 'phy0' }, true)
 *   await rf.waitFor({ name: 'phy0' }, true, 500)   // the kernel's change event seen
 *   rf.on('change', (d) => ...)                      // also a hardware kill switch (d.hard)
 *
 * The kernel sends one 'add' event per switch when the device is opened, and a 'change' whenever a
 * switch's soft or hard state changes (a write of ours, another program's, a hardware switch), to
 * every reader; a write that changes nothing sends nothing. So the state kept here is the kernel's,
 * and waitFor() resolves on the event (or at once when the state already is the wanted one).
 * Reading is driven by kairo-hw's uv_poll watcher on Node's loop: no thread, no timer.
 *
 * Soft block is what we set; hard block is a physical switch (or firmware) we can only observe.
 * A radio is off when either is set.
 */
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { errnoOf, hw, messageOf } from '../physical/native.js'

export type RfkillType = 'all' | 'wlan' | 'bluetooth' | 'uwb' | 'wimax' | 'wwan' | 'gps' | 'fm' | 'nfc'

/** RFKILL_TYPE_* in order (linux/rfkill.h). */
export const RFKILL_TYPES: readonly RfkillType[] = ['all', 'wlan', 'bluetooth', 'uwb', 'wimax', 'wwan', 'gps', 'fm', 'nfc']

export interface RfkillDevice {
  /** The kernel's index (rfkillN). */
  index: number
  /** A switch of a type newer than this list shows as `type<N>` (cast: not an RfkillType). */
  type: RfkillType
  /** /sys/class/rfkill/rfkillN/name, e.g. 'phy0' or 'hci0' ('' when sysfs does not say). */
  name: string
  /** Soft-blocked (by software: us, rfkill(8), NetworkManager...). */
  soft: boolean
  /** Hard-blocked (a physical switch or the firmware); cannot be changed from here. */
  hard: boolean
}

export interface RfkillSelector {
  index?: number
  /** All switches of this type; 'all': every switch. */
  type?: RfkillType
  name?: string
}

const OP_ADD = 0
const OP_DEL = 1
const OP_CHANGE = 2
const OP_CHANGE_ALL = 3

/** An rfkill operation failed; names the device path or the switch, and the errno when the kernel refused. */
export class RfkillError extends Error {
  /** The errno name, 'ENATIVE', 'ETIMEDOUT' (waitFor) or 'ERFKILL' (our own check). */
  readonly code: string
  readonly path?: string
  /** The switch(es) concerned, as described in the message ('phy0', 'type wlan', 'index 3'). */
  readonly device?: string
  readonly errno?: string

  constructor(message: string, opts: { path?: string; device?: string; errno?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'RfkillError'
    this.path = opts.path
    this.device = opts.device
    this.errno = opts.errno
    this.code = opts.errno ?? 'ERFKILL'
  }
}

function explain(errno: string | undefined, path: string): string {
  switch (errno) {
    case 'ENOENT':
      return path === '/dev/rfkill' ? 'no /dev/rfkill (a kernel without rfkill, or no radio driver loaded)' : 'no such file'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied (root, or a udev rule for /dev/rfkill)'
    case 'ENATIVE':
      return 'the kairo-hw addon is not built'
    default:
      return 'failed'
  }
}

function typeName(t: number): RfkillType {
  return RFKILL_TYPES[t] ?? (`type${t}` as RfkillType)
}

/** How a selector reads in messages: 'phy0', 'type wlan', 'index 3', or several of those. */
export function describeSelector(sel: RfkillSelector): string {
  const parts: string[] = []
  if (sel.name !== undefined) parts.push(sel.name)
  if (sel.index !== undefined) parts.push(`index ${sel.index}`)
  if (sel.type !== undefined) parts.push(`type ${sel.type}`)
  return parts.length > 0 ? parts.join(' ') : '(nothing selected)'
}

function describeDevice(d: RfkillDevice): string {
  return `${d.name || `rfkill${d.index}`} (index ${d.index}, ${d.type}${d.soft ? ', soft-blocked' : ''}${d.hard ? ', hard-blocked' : ''})`
}

function readName(index: number): string {
  try {
    return readFileSync(`/sys/class/rfkill/rfkill${index}/name`, 'utf8').trim()
  } catch {
    return ''
  }
}

interface Waiter {
  sel: RfkillSelector
  blocked: boolean
  resolve: (d: RfkillDevice[]) => void
  reject: (e: Error) => void
  timer: NodeJS.Timeout
}

/**
 * /dev/rfkill opened: 'add' and 'remove' (RfkillDevice) as switches come and go, 'change'
 * (RfkillDevice) on every soft or hard state change, 'error' (RfkillError) if reading fails
 * (then no more events).
 */
export class Rfkill extends EventEmitter {
  readonly path: string
  private fd: number
  private watcher: ReturnType<ReturnType<typeof hw>['watch']> | undefined
  private readonly devices = new Map<number, RfkillDevice>()
  private readonly waiters = new Set<Waiter>()

  private constructor(path: string, fd: number) {
    super()
    this.path = path
    this.fd = fd
  }

  /**
   * Opens `path` (default /dev/rfkill) and reads the switches the kernel lists at open. Rejects
   * with RfkillError naming the path: ENOENT (no rfkill in this kernel), EACCES, EPERM (not a
   * device that can be watched), ENATIVE.
   */
  static async open(path = '/dev/rfkill'): Promise<Rfkill> {
    let n: ReturnType<typeof hw>
    let fd: number
    try {
      n = hw()
      fd = n.rfkillOpen(path)
    } catch (err) {
      const errno = errnoOf(err)
      throw new RfkillError(`rfkill ${path}: ${explain(errno, path)} (${messageOf(err)})`, { path, errno, cause: err })
    }
    const rf = new Rfkill(path, fd)
    try {
      rf.watcher = n.watch(fd, (pollError) => rf.readable(pollError))
    } catch (err) {
      n.closeFd(fd)
      const errno = errnoOf(err)
      throw new RfkillError(`rfkill ${path}: cannot watch it (${messageOf(err)}); is it the rfkill device?`, { path, errno, cause: err })
    }
    // The kernel queued one add event per switch during open(): read them now, synchronously.
    try {
      rf.drain()
    } catch (err) {
      rf.close()
      throw err
    }
    return rf
  }

  /** Every switch the kernel has told of, by index (copies). */
  list(): RfkillDevice[] {
    return [...this.devices.values()].sort((a, b) => a.index - b.index).map((d) => ({ ...d }))
  }

  /** The switches `sel` selects now: every given criterion must match; type 'all' matches any switch. */
  select(sel: RfkillSelector): RfkillDevice[] {
    this.checkSelector(sel)
    return this.list().filter(
      (d) => (sel.index === undefined || d.index === sel.index) && (sel.type === undefined || sel.type === 'all' || d.type === sel.type) && (sel.name === undefined || d.name === sel.name),
    )
  }

  /**
   * Soft-blocks (or unblocks) the selected switches. A type alone is one change-all write: it
   * also sets the default for switches of that type that appear later. Index or name: one write
   * per switch; RfkillError when none matches. Returns at once: waitFor() observes.
   */
  block(sel: RfkillSelector, blocked: boolean): void {
    const fd = this.live('block')
    const n = hw()
    const what = describeSelector(sel)
    if (sel.index === undefined && sel.name === undefined && sel.type !== undefined) {
      const t = RFKILL_TYPES.indexOf(sel.type)
      this.write(() => n.rfkillWrite(fd, OP_CHANGE_ALL, 0, t, blocked), what)
      return
    }
    const hits = this.select(sel)
    if (hits.length === 0) throw this.noMatch(sel)
    for (const d of hits) this.write(() => n.rfkillWrite(fd, OP_CHANGE, d.index, 0, blocked), describeDevice(d))
  }

  /**
   * Resolves with the selected switches once every one reports soft === blocked (at once when
   * they already do). Rejects with RfkillError naming the switches still in the other state
   * after `timeoutMs` (code ETIMEDOUT), when none is selected, or when the device is closed.
   */
  waitFor(sel: RfkillSelector, blocked: boolean, timeoutMs: number): Promise<RfkillDevice[]> {
    try {
      this.live('waitFor')
      this.drain()
      const done = this.check(sel, blocked)
      if (done !== undefined) return Promise.resolve(done)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        sel,
        blocked,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(w)
          const late = this.select(sel).filter((d) => d.soft !== blocked)
          reject(
            new RfkillError(`rfkill ${describeSelector(sel)}: still ${blocked ? 'unblocked' : 'soft-blocked'} after ${timeoutMs} ms: ${late.map(describeDevice).join(', ')}`, {
              path: this.path,
              device: late.map((d) => d.name || `rfkill${d.index}`).join(',') || describeSelector(sel),
              errno: 'ETIMEDOUT',
            }),
          )
        }, Math.max(0, timeoutMs)),
      }
      this.waiters.add(w)
    })
  }

  /** Closes the device: no more events; pending waitFor() calls reject. Idempotent. */
  close(): void {
    if (this.fd < 0) return
    if (this.watcher !== undefined) hw().unwatch(this.watcher)
    this.watcher = undefined
    const fd = this.fd
    this.fd = -1
    try {
      hw().closeFd(fd)
    } catch {
      // the fd is released either way
    }
    for (const w of [...this.waiters]) this.settle(w, new RfkillError(`rfkill ${this.path}: closed while waiting for ${describeSelector(w.sel)}`, { path: this.path, device: describeSelector(w.sel), errno: 'ECANCELED' }))
  }

  get closed(): boolean {
    return this.fd < 0
  }

  /** Whether the open device keeps the process alive (it does by default). */
  ref(): this {
    if (this.watcher !== undefined) hw().watchRef(this.watcher, true)
    return this
  }

  unref(): this {
    if (this.watcher !== undefined) hw().watchRef(this.watcher, false)
    return this
  }

  private checkSelector(sel: RfkillSelector): void {
    const ok =
      sel !== null &&
      typeof sel === 'object' &&
      (sel.index !== undefined || sel.type !== undefined || sel.name !== undefined) &&
      (sel.index === undefined || (Number.isInteger(sel.index) && sel.index >= 0 && sel.index <= 0xffff_ffff)) &&
      (sel.type === undefined || RFKILL_TYPES.includes(sel.type)) &&
      (sel.name === undefined || typeof sel.name === 'string')
    if (!ok) throw new RfkillError(`rfkill: select switches by index (a whole number), type (${RFKILL_TYPES.join(', ')}) or name, got ${JSON.stringify(sel)}`, { path: this.path })
  }

  private noMatch(sel: RfkillSelector): RfkillError {
    const have = this.list()
    const listed = have.length === 0 ? 'no switches at all' : `switches: ${have.map(describeDevice).join(', ')}`
    return new RfkillError(`rfkill ${describeSelector(sel)}: no such switch (${listed})`, { path: this.path, device: describeSelector(sel), errno: 'ENODEV' })
  }

  private live(op: string): number {
    if (this.fd < 0) throw new RfkillError(`rfkill ${this.path}: ${op} after close()`, { path: this.path, errno: 'EBADF' })
    return this.fd
  }

  private write(fn: () => void, what: string): void {
    try {
      fn()
    } catch (err) {
      const errno = errnoOf(err)
      throw new RfkillError(`rfkill ${what}: write to ${this.path} failed: ${explain(errno, this.path)} (${messageOf(err)})`, { path: this.path, device: what, errno, cause: err })
    }
  }

  /** Undefined while some selected switch is not yet in the wanted state; throws when none is selected. */
  private check(sel: RfkillSelector, blocked: boolean): RfkillDevice[] | undefined {
    const hits = this.select(sel)
    if (hits.length === 0) throw this.noMatch(sel)
    return hits.every((d) => d.soft === blocked) ? hits : undefined
  }

  private settle(w: Waiter, result: RfkillDevice[] | Error): void {
    if (!this.waiters.delete(w)) return
    clearTimeout(w.timer)
    if (result instanceof Error) w.reject(result)
    else w.resolve(result)
  }

  private readable(pollError: string | null): void {
    if (this.fd < 0) return
    try {
      if (pollError !== null) throw new RfkillError(`rfkill ${this.path}: poll failed (${pollError})`, { path: this.path, errno: pollError })
      this.drain()
    } catch (err) {
      const e = err instanceof RfkillError ? err : new RfkillError(`rfkill ${this.path}: read failed (${messageOf(err)})`, { path: this.path, errno: errnoOf(err), cause: err })
      this.close()
      this.emit('error', e)
    }
  }

  /** Reads every queued event, updates the switches, emits, and settles waiters. */
  private drain(): void {
    let events: ReturnType<ReturnType<typeof hw>['rfkillRead']>
    try {
      events = hw().rfkillRead(this.fd)
    } catch (err) {
      throw new RfkillError(`rfkill ${this.path}: read failed (${messageOf(err)})`, { path: this.path, errno: errnoOf(err), cause: err })
    }
    if (events.length === 0) return
    for (const e of events) {
      if (e.op === OP_ADD || e.op === OP_CHANGE || e.op === OP_CHANGE_ALL) {
        const known = this.devices.get(e.index)
        // A switch's type never changes: keep the one its add event gave.
        const d: RfkillDevice = { index: e.index, type: known?.type ?? typeName(e.type), name: known?.name || readName(e.index), soft: e.soft, hard: e.hard }
        this.devices.set(e.index, d)
        this.emit(known === undefined ? 'add' : 'change', { ...d })
      } else if (e.op === OP_DEL) {
        const known = this.devices.get(e.index)
        this.devices.delete(e.index)
        this.emit('remove', known ?? { index: e.index, type: typeName(e.type), name: '', soft: e.soft, hard: e.hard })
      }
    }
    for (const w of [...this.waiters]) {
      try {
        const done = this.check(w.sel, w.blocked)
        if (done !== undefined) this.settle(w, done)
      } catch (err) {
        this.settle(w, err as Error)
      }
    }
  }
}
