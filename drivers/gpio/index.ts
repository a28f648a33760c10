/**
 * GPIO through the Linux GPIO character device, uAPI v2 (/dev/gpiochipN), on kairo-hw's ioctls.
 *
 *   const { path, offset } = resolveLine('gpio-sim.0-node0', 'lora-power')
 *   const lines = GpioLines.request(path, [offset], { consumer: 'kairo-gw', output: true, values: [1] })
 *   lines.set([0]); lines.get()          // [0]: the value read back from the kernel
 *   lines.close()                        // the kernel releases the line
 *
 * Why v2 and not sysfs or v1: /sys/class/gpio is gone from current kernels and the v1 ioctls are
 * compiled out of many (Debian sid's, which gpio-sim needs); v2 is what libgpiod 2 uses.
 *
 * A request holds its lines until close(): while held nobody else can drive them, and the kernel
 * keeps an output at the value last set. Values are logical (active-low lines inverted by the
 * kernel). get() and set() are one ioctl each, no allocation beyond the result array. Edge events
 * are read from the request's fd when it is readable (kairo-hw's uv_poll watcher on Node's own
 * loop: no thread, no timer) and emitted as 'edge'.
 */
import { EventEmitter } from 'node:events'
import { readdirSync } from 'node:fs'
import { errnoOf, hw, messageOf } from '../physical/native.js'

/** GPIO_V2_LINE_FLAG_* (linux/gpio.h). */
export const LINE_FLAG = {
  USED: 1 << 0,
  ACTIVE_LOW: 1 << 1,
  INPUT: 1 << 2,
  OUTPUT: 1 << 3,
  EDGE_RISING: 1 << 4,
  EDGE_FALLING: 1 << 5,
  OPEN_DRAIN: 1 << 6,
  OPEN_SOURCE: 1 << 7,
  BIAS_PULL_UP: 1 << 8,
  BIAS_PULL_DOWN: 1 << 9,
  BIAS_DISABLED: 1 << 10,
  EVENT_CLOCK_REALTIME: 1 << 11,
} as const

/** At most this many lines in one request (GPIO_V2_LINES_MAX). */
export const MAX_LINES_PER_REQUEST = 64

export interface GpioChipInfo {
  /** '/dev/gpiochipN' */
  path: string
  /** Kernel name, 'gpiochipN'. */
  name: string
  /** The driver's label, e.g. 'pinctrl-bcm2711' or 'gpio-sim.0-node0'. */
  label: string
  lines: number
}

export interface GpioLineInfo {
  offset: number
  /** '' when the chip names no line there. */
  name: string
  /** Who holds the line ('' when nobody, or a holder that gave no label). */
  consumer: string
  used: boolean
  output: boolean
  activeLow: boolean
  /** Extra: 'rising' | 'falling' | 'both' when the holder watches edges. */
  edge?: 'rising' | 'falling' | 'both'
  /** Extra: the bias the holder set. */
  bias?: 'pull-up' | 'pull-down' | 'disabled'
  /** Extra: the raw GPIO_V2_LINE_FLAG_* bits. */
  flags: number
}

export interface GpioRequestOptions {
  /** Who holds the lines (shown by gpioinfo and in lineInfo().consumer); cut at 31 bytes. */
  consumer: string
  /** Output (driven) lines; default input. */
  output?: boolean
  /** Output values, one 0/1 per offset, driven from the moment of the request (default 0s). */
  values?: number[]
  activeLow?: boolean
  /** Edge detection (inputs only): 'edge' events. */
  edge?: 'rising' | 'falling' | 'both'
  bias?: 'pull-up' | 'pull-down' | 'disabled'
  /** Extra: output drive (default push-pull). */
  drive?: 'push-pull' | 'open-drain' | 'open-source'
  /** Extra: debounce period of inputs, µs. */
  debounceUs?: number
  /** Extra: edge timestamps from CLOCK_REALTIME instead of CLOCK_MONOTONIC. */
  realtimeClock?: boolean
}

export interface GpioEdgeEvent {
  /** Offset on the chip of the line that changed. */
  offset: number
  /** Inactive → active (of the logical value). */
  rising: boolean
  /** Kernel timestamp (CLOCK_MONOTONIC unless realtimeClock). */
  timestampNs: bigint
  /** Sequence number across the request's lines (gaps: events the kernel's buffer dropped). */
  seqno: number
  /** Extra: sequence number on this line. */
  lineSeqno: number
}

/** A GPIO operation failed; names the chip and line, and the errno when the kernel refused. */
export class GpioError extends Error {
  /** The errno name, 'ENATIVE' (addon not built), or 'EGPIO' (our own check). */
  readonly code: string
  readonly chip?: string
  readonly line?: string | number
  readonly errno?: string

  constructor(message: string, opts: { chip?: string; line?: string | number; errno?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'GpioError'
    this.chip = opts.chip
    this.line = opts.line
    this.errno = opts.errno
    this.code = opts.errno ?? 'EGPIO'
  }
}

const CHIP_DIR = '/dev'
const CHIP_NAME = /^gpiochip(\d+)$/

/** What the kernel's errno means for a chip or line, in words an operator can act on. */
function explain(errno: string | undefined): string {
  switch (errno) {
    case 'ENOENT':
      return 'no such GPIO chip'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied (root, or a udev rule for the gpio group)'
    case 'ENOTTY':
      return 'not a GPIO chip (no GPIO uAPI ioctls)'
    case 'EBUSY':
      return 'line busy: held by another consumer'
    case 'EINVAL':
      return 'the kernel refused the request (offset out of range, or a configuration the chip cannot do)'
    case 'ENODEV':
      return 'the GPIO chip is gone'
    case 'ENATIVE':
      return 'the kairo-hw addon is not built'
    default:
      return 'failed'
  }
}

function wrap(err: unknown, what: string, chip: string, line?: string | number): GpioError {
  if (err instanceof GpioError) return err
  const errno = errnoOf(err)
  return new GpioError(`gpio ${what}: ${explain(errno)} (${messageOf(err)})`, { chip, line, errno, cause: err })
}

function chipPaths(): string[] {
  let names: string[]
  try {
    names = readdirSync(CHIP_DIR)
  } catch {
    return []
  }
  return names
    .filter((n) => CHIP_NAME.test(n))
    .sort((a, b) => Number(CHIP_NAME.exec(a)![1]) - Number(CHIP_NAME.exec(b)![1]))
    .map((n) => `${CHIP_DIR}/${n}`)
}

function scanChips(): { chips: GpioChipInfo[]; failures: Array<{ path: string; error: string }> } {
  const chips: GpioChipInfo[] = []
  const failures: Array<{ path: string; error: string }> = []
  for (const path of chipPaths()) {
    try {
      const ci = hw().gpioChipInfo(path)
      chips.push({ path, name: ci.name, label: ci.label, lines: ci.lines })
    } catch (err) {
      failures.push({ path, error: errnoOf(err) ?? messageOf(err) })
    }
  }
  return { chips, failures }
}

/** The GPIO chips of this machine (/dev/gpiochip*, by number); [] when there are none. Chips that cannot be opened are left out. */
export function listChips(): GpioChipInfo[] {
  return scanChips().chips
}

function lineFromRaw(l: { offset: number; name: string; consumer: string; flags: number }): GpioLineInfo {
  const f = l.flags
  const rising = (f & LINE_FLAG.EDGE_RISING) !== 0
  const falling = (f & LINE_FLAG.EDGE_FALLING) !== 0
  const out: GpioLineInfo = {
    offset: l.offset,
    name: l.name,
    consumer: l.consumer,
    used: (f & LINE_FLAG.USED) !== 0,
    output: (f & LINE_FLAG.OUTPUT) !== 0,
    activeLow: (f & LINE_FLAG.ACTIVE_LOW) !== 0,
    flags: f,
  }
  if (rising || falling) out.edge = rising && falling ? 'both' : rising ? 'rising' : 'falling'
  if (f & LINE_FLAG.BIAS_PULL_UP) out.bias = 'pull-up'
  else if (f & LINE_FLAG.BIAS_PULL_DOWN) out.bias = 'pull-down'
  else if (f & LINE_FLAG.BIAS_DISABLED) out.bias = 'disabled'
  return out
}

/** Every line of a chip ('/dev/gpiochipN', 'gpiochipN' or a label). */
export function lineInfo(chipPath: string): GpioLineInfo[] {
  const path = chipPathOf(chipPath)
  try {
    return hw().gpioLineInfo(path).map(lineFromRaw)
  } catch (err) {
    throw wrap(err, `chip ${chipPath}`, chipPath)
  }
}

/**
 * The device path of a chip named as '/dev/gpiochipN', 'gpiochipN' or its label (or kernel
 * name) as listChips() shows it. Throws GpioError naming the chip when no chip has that label.
 */
export function chipPathOf(chip: string): string {
  if (typeof chip !== 'string' || chip === '' || chip.includes('\0')) throw new GpioError(`gpio chip ${JSON.stringify(chip)}: not a chip name (gpiochipN, /dev/gpiochipN or a label)`, { chip: String(chip) })
  if (chip.startsWith('/')) return chip
  if (CHIP_NAME.test(chip)) return `${CHIP_DIR}/${chip}`
  const { chips, failures } = scanChips()
  const hit = chips.find((c) => c.label === chip) ?? chips.find((c) => c.name === chip)
  if (hit !== undefined) return hit.path
  const have = chips.map((c) => `${c.name} "${c.label}"`)
  const bad = failures.map((f) => `${f.path}: ${f.error}`)
  const seen = have.length + bad.length === 0 ? `no /dev/gpiochip* on this machine` : [have.length > 0 ? `chips: ${have.join(', ')}` : '', bad.length > 0 ? `unreadable: ${bad.join(', ')}` : ''].filter(Boolean).join('; ')
  throw new GpioError(`gpio chip "${chip}": no chip with that label (${seen})`, { chip, errno: 'ENOENT' })
}

/**
 * Finds a line: chip as '/dev/gpiochipN', 'gpiochipN' or a chip label (e.g. 'gpio-sim.0-node0');
 * line as its name or its offset (a number, or a string of digits when no line has that name).
 * GpioError names the chip or line when it is not there.
 */
export function resolveLine(chip: string, line: string | number): { path: string; offset: number; name: string } {
  const path = chipPathOf(chip)
  let lines: GpioLineInfo[]
  try {
    lines = hw().gpioLineInfo(path).map(lineFromRaw)
  } catch (err) {
    throw wrap(err, `chip ${chip}`, chip, line)
  }
  if (typeof line === 'number') {
    if (!Number.isInteger(line) || line < 0 || line >= lines.length) throw new GpioError(`gpio ${chip} line ${line}: no such offset (the chip has ${lines.length} lines, 0..${lines.length - 1})`, { chip, line, errno: 'EINVAL' })
    return { path, offset: line, name: lines[line]!.name }
  }
  const named = lines.find((l) => l.name === line)
  if (named !== undefined) return { path, offset: named.offset, name: named.name }
  if (/^\d+$/.test(line) && Number(line) < lines.length) return { path, offset: Number(line), name: lines[Number(line)]!.name }
  const names = lines.filter((l) => l.name !== '').map((l) => l.name)
  const shown = names.length === 0 ? 'its lines have no names; give an offset' : `lines: ${names.slice(0, 16).join(', ')}${names.length > 16 ? ', …' : ''}`
  throw new GpioError(`gpio ${chip} line "${line}": no line with that name (${shown})`, { chip, line, errno: 'ENOENT' })
}

function flagsOf(opts: GpioRequestOptions, where: string, chip: string): number {
  let f: number = opts.output === true ? LINE_FLAG.OUTPUT : LINE_FLAG.INPUT
  if (opts.activeLow === true) f |= LINE_FLAG.ACTIVE_LOW
  if (opts.edge !== undefined) {
    if (opts.output === true) throw new GpioError(`gpio ${where}: edge detection needs an input line, not an output`, { chip })
    if (opts.edge === 'rising') f |= LINE_FLAG.EDGE_RISING
    else if (opts.edge === 'falling') f |= LINE_FLAG.EDGE_FALLING
    else if (opts.edge === 'both') f |= LINE_FLAG.EDGE_RISING | LINE_FLAG.EDGE_FALLING
    else throw new GpioError(`gpio ${where}: edge must be rising, falling or both, not ${JSON.stringify(opts.edge)}`, { chip })
  }
  if (opts.bias !== undefined) {
    if (opts.bias === 'pull-up') f |= LINE_FLAG.BIAS_PULL_UP
    else if (opts.bias === 'pull-down') f |= LINE_FLAG.BIAS_PULL_DOWN
    else if (opts.bias === 'disabled') f |= LINE_FLAG.BIAS_DISABLED
    else throw new GpioError(`gpio ${where}: bias must be pull-up, pull-down or disabled, not ${JSON.stringify(opts.bias)}`, { chip })
  }
  if (opts.drive !== undefined && opts.drive !== 'push-pull') {
    if (opts.output !== true) throw new GpioError(`gpio ${where}: drive ${opts.drive} needs an output line`, { chip })
    if (opts.drive === 'open-drain') f |= LINE_FLAG.OPEN_DRAIN
    else if (opts.drive === 'open-source') f |= LINE_FLAG.OPEN_SOURCE
    else throw new GpioError(`gpio ${where}: drive must be push-pull, open-drain or open-source, not ${JSON.stringify(opts.drive)}`, { chip })
  }
  if (opts.realtimeClock === true) f |= LINE_FLAG.EVENT_CLOCK_REALTIME
  return f
}

function checkValues(values: unknown, n: number, where: string, chip: string): number[] {
  if (!Array.isArray(values) || values.length !== n || !values.every((v) => v === 0 || v === 1))
    throw new GpioError(`gpio ${where}: values must be ${n} of 0 or 1 (one per line), got ${JSON.stringify(values)}`, { chip })
  return values as number[]
}

/**
 * Lines of one chip held by this process. 'edge' (GpioEdgeEvent) when requested with `edge`;
 * 'error' (GpioError) when the request's fd fails (the chip was removed), after which no more
 * edges come.
 */
export class GpioLines extends EventEmitter {
  readonly offsets: number[]
  /** The chip's device path. */
  readonly chip: string
  private fd: number
  private watcher: ReturnType<ReturnType<typeof hw>['watch']> | undefined
  private readonly where: string

  private constructor(chip: string, offsets: number[], fd: number, where: string) {
    super()
    this.chip = chip
    this.offsets = offsets
    this.fd = fd
    this.where = where
  }

  /**
   * Requests `offsets` of the chip ('/dev/gpiochipN', 'gpiochipN' or a label) with one
   * configuration for all. Outputs are driven to `values` (default 0) from the request on: no
   * glitch through another value. Throws GpioError naming the chip and lines: ENOENT (no chip),
   * EBUSY (held by another consumer, named), EINVAL (offset out of range or a configuration the
   * chip refuses), EACCES.
   */
  static request(chipPath: string, offsets: number[], opts: GpioRequestOptions): GpioLines {
    const where = `${chipPath} line${offsets.length === 1 ? '' : 's'} ${offsets.join(',')}`
    if (!Array.isArray(offsets) || offsets.length === 0 || offsets.length > MAX_LINES_PER_REQUEST || !offsets.every((o) => Number.isInteger(o) && o >= 0 && o <= 0xffff_ffff))
      throw new GpioError(`gpio ${chipPath}: offsets must be 1..${MAX_LINES_PER_REQUEST} line offsets, got ${JSON.stringify(offsets)}`, { chip: chipPath })
    if (new Set(offsets).size !== offsets.length) throw new GpioError(`gpio ${where}: an offset is listed twice`, { chip: chipPath })
    if (typeof opts?.consumer !== 'string') throw new GpioError(`gpio ${where}: consumer (a label for who holds the lines) is required`, { chip: chipPath })
    const flags = flagsOf(opts, where, chipPath)
    let values: number[] | null = null
    if (opts.values !== undefined) {
      if (opts.output !== true) throw new GpioError(`gpio ${where}: values are for output lines`, { chip: chipPath })
      values = checkValues(opts.values, offsets.length, where, chipPath)
    }
    const debounce = opts.debounceUs ?? 0
    if (!Number.isInteger(debounce) || debounce < 0 || debounce > 0xffff_ffff) throw new GpioError(`gpio ${where}: debounceUs must be a whole number of µs`, { chip: chipPath })
    const path = chipPathOf(chipPath)
    let fd: number
    try {
      fd = hw().gpioRequest(path, [...offsets], opts.consumer, flags, values, debounce, 0)
    } catch (err) {
      const e = wrap(err, where, chipPath, offsets.length === 1 ? offsets[0] : undefined)
      if (e.errno === 'EBUSY') {
        // Who holds it: worth one more ioctl on the error path.
        try {
          const holders = offsets.map((o) => hw().gpioLineInfo(path, o)).filter((l) => (l.flags & LINE_FLAG.USED) !== 0)
          const named = holders.map((l) => `line ${l.offset} by "${l.consumer || '(no label)'}"`).join(', ')
          if (named !== '') throw new GpioError(`gpio ${where}: line busy: held ${named}`, { chip: chipPath, line: e.line, errno: 'EBUSY', cause: err })
        } catch (err2) {
          if (err2 instanceof GpioError) throw err2
        }
      }
      throw e
    }
    const lines = new GpioLines(path, [...offsets], fd, where)
    if (opts.edge !== undefined) lines.watchEdges()
    return lines
  }

  get closed(): boolean {
    return this.fd < 0
  }

  private live(op: string): number {
    if (this.fd < 0) throw new GpioError(`gpio ${this.where}: ${op} after close()`, { chip: this.chip, errno: 'EBADF' })
    return this.fd
  }

  /** The logical values (0/1) of the lines, in offsets order: for outputs, what is driven. */
  get(): number[] {
    const fd = this.live('get')
    try {
      return hw().gpioGet(fd, this.offsets.length)
    } catch (err) {
      throw wrap(err, `${this.where}: get`, this.chip)
    }
  }

  /** Drives the lines (outputs only) to `values`, one 0/1 per offset. */
  set(values: number[]): void {
    const fd = this.live('set')
    checkValues(values, this.offsets.length, this.where, this.chip)
    try {
      hw().gpioSet(fd, values)
    } catch (err) {
      // The kernel says EPERM for a set on input lines: not a matter of privileges.
      if (errnoOf(err) === 'EPERM') throw new GpioError(`gpio ${this.where}: set: the lines are inputs (request them with output: true) (${messageOf(err)})`, { chip: this.chip, errno: 'EPERM', cause: err })
      throw wrap(err, `${this.where}: set`, this.chip)
    }
  }

  /** Changes the lines' configuration without releasing them (GPIO_V2_LINE_SET_CONFIG_IOCTL). */
  reconfigure(opts: Omit<GpioRequestOptions, 'consumer'>): void {
    const fd = this.live('reconfigure')
    const flags = flagsOf({ ...opts, consumer: '' }, this.where, this.chip)
    const values = opts.values !== undefined ? checkValues(opts.values, this.offsets.length, this.where, this.chip) : null
    try {
      hw().gpioSetConfig(fd, this.offsets.length, flags, values, opts.debounceUs ?? 0)
    } catch (err) {
      throw wrap(err, `${this.where}: reconfigure`, this.chip)
    }
    if (opts.edge !== undefined && this.watcher === undefined) this.watchEdges()
    else if (opts.edge === undefined && this.watcher !== undefined) this.unwatch()
  }

  /** Releases the lines (the kernel then decides what an output does; many chips keep the level). Idempotent. */
  close(): void {
    if (this.fd < 0) return
    this.unwatch()
    const fd = this.fd
    this.fd = -1
    try {
      hw().closeFd(fd)
    } catch {
      // close(2) releases the fd even when it reports an error: nothing left to do
    }
  }

  /** Whether watching edges keeps the process alive (it does by default). */
  ref(): this {
    if (this.watcher !== undefined) hw().watchRef(this.watcher, true)
    return this
  }

  unref(): this {
    if (this.watcher !== undefined) hw().watchRef(this.watcher, false)
    return this
  }

  private watchEdges(): void {
    const n = hw()
    const fd = this.fd
    this.watcher = n.watch(fd, (pollError) => {
      if (this.fd !== fd) return
      let events: ReturnType<typeof n.gpioReadEvents>
      try {
        if (pollError !== null) throw Object.assign(new Error(`poll on fd ${fd}: ${pollError}`), { code: pollError })
        events = n.gpioReadEvents(fd)
      } catch (err) {
        this.unwatch()
        this.emit('error', wrap(err, `${this.where}: edge events`, this.chip))
        return
      }
      for (const e of events) this.emit('edge', e satisfies GpioEdgeEvent)
    })
  }

  private unwatch(): void {
    if (this.watcher === undefined) return
    hw().unwatch(this.watcher)
    this.watcher = undefined
  }
}
