/**
 * Physical actions: what a link's `cut:` list becomes. Each action cuts (and restores) one piece
 * of hardware and OBSERVES the result the way the kernel reports it:
 *
 *   gpio      drive a line (radio power enable, reset, an RF relay) to `value`, read it back;
 *             the request is HELD while cut (a released line goes back to the board's pull)
 *   rfkill    soft-block the switch(es), wait for the kernel's change event
 *   netdev    clear IFF_UP (rtnetlink, acknowledged), read the flags back
 *   radio_off switch a LoRa radio off through its firmware (a RadioSwitch from the LoRa link)
 *
 * cut() and restore() never throw: a failure is an Observation with ok=false and `error`, so the
 * caller can run the next action anyway (a wedged firmware must not keep the power line up).
 * `ms` runs from the call to the observed state. GPIO and netdev are synchronous (one ioctl or
 * one netlink round trip each way: microseconds); rfkill waits for the kernel's event; radio_off
 * for the firmware's answer, bounded by timeoutMs.
 *
 * Hardware is touched only in cut()/restore(), never in buildActions(): a link whose GPIO chip is
 * missing still starts, and its cut reports the missing chip by name.
 */
import { performance } from 'node:perf_hooks'
import { GpioError, GpioLines, resolveLine } from '../gpio/index.js'
import { linkState, setLinkUp, ifnameProblem } from '../netdev/index.js'
import { RFKILL_TYPES, Rfkill, describeSelector, type RfkillDevice, type RfkillSelector, type RfkillType } from '../rfkill/index.js'

export type CutActionConfig =
  | { gpio: { chip: string; line: string | number; value: 0 | 1 } }
  | { rfkill: { type?: RfkillType; index?: number; name?: string } }
  | { netdev: { interface: string } }
  | { radio_off: Record<string, never> }

/** Switches a LoRa radio on or off through its firmware; resolves when the firmware confirmed. */
export interface RadioSwitch {
  radio(on: boolean, timeoutMs: number): Promise<void>
}

export interface Observation {
  /** The action as done: `describe` for a cut, its inverse for a restore ("netdev eth1 up"). */
  action: string
  /** The wanted state was observed. */
  ok: boolean
  /** What was seen, e.g. "gpiochip1 line 3 (lora-power) reads 0", "phy0 (index 0, wlan) soft-blocked". */
  observed: string
  /** From the call to the observation (or the failure), ms. */
  ms: number
  error?: string
}

export interface PhysicalAction {
  readonly kind: 'gpio' | 'rfkill' | 'netdev' | 'radio_off'
  /** e.g. "gpio gpio-sim.0-node0:lora-power=0", "rfkill phy0 block", "netdev eth1 down". */
  readonly describe: string
  /** Extra: the restore as it reads in its Observation ("netdev eth1 up"). */
  readonly describeRestore: string
  cut(timeoutMs: number): Promise<Observation>
  restore(timeoutMs: number): Promise<Observation>
  /** Drops held GPIO requests and the rfkill fd (daemon stop). Idempotent; a later cut() takes them again. */
  release(): void
}

/** Configs buildActions() refuses: every problem, each with its path. `code` is 'ECONFIG'. */
export class PhysicalConfigError extends Error {
  readonly code = 'ECONFIG'
  constructor(readonly problems: Array<{ path: string; message: string }>) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('\n'))
    this.name = 'PhysicalConfigError'
  }
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err))
const since = (t0: number): number => performance.now() - t0

// ---------------------------------------------------------------------------------------------
// GPIO

class GpioAction implements PhysicalAction {
  readonly kind = 'gpio' as const
  readonly describe: string
  readonly describeRestore: string
  private held: GpioLines | undefined
  private resolved: { path: string; offset: number; name: string } | undefined

  constructor(
    private readonly cfg: { chip: string; line: string | number; value: 0 | 1 },
    private readonly consumer: string,
  ) {
    this.describe = `gpio ${cfg.chip}:${cfg.line}=${cfg.value}`
    this.describeRestore = `gpio ${cfg.chip}:${cfg.line}=${1 - cfg.value}`
  }

  cut(): Promise<Observation> {
    return Promise.resolve(this.drive(this.cfg.value, this.describe))
  }

  restore(): Promise<Observation> {
    return Promise.resolve(this.drive((1 - this.cfg.value) as 0 | 1, this.describeRestore))
  }

  /** Drives the line to `value` (requesting it if not held) and reads it back. */
  private drive(value: 0 | 1, action: string): Observation {
    const t0 = performance.now()
    try {
      const lines = this.lines(value)
      try {
        lines.set([value])
      } catch (err) {
        // The held request went bad (the chip was unplugged and came back): request it afresh once.
        if (!(err instanceof GpioError) || err.errno === 'EBADF' || err.errno === 'EGPIO') throw err
        this.drop()
        this.lines(value)
      }
      const got = this.held!.get()[0]
      const where = `${this.resolved!.path.replace('/dev/', '')} line ${this.resolved!.offset}${this.resolved!.name !== '' ? ` (${this.resolved!.name})` : ''}`
      const ms = since(t0)
      if (got !== value) return { action, ok: false, observed: `${where} reads ${got}`, ms, error: `drove ${value} but ${where} reads ${got}` }
      return { action, ok: true, observed: `${where} reads ${got}`, ms }
    } catch (err) {
      return { action, ok: false, observed: 'not driven', ms: since(t0), error: errorText(err) }
    }
  }

  private lines(value: 0 | 1): GpioLines {
    if (this.held !== undefined && !this.held.closed) return this.held
    this.resolved ??= resolveLine(this.cfg.chip, this.cfg.line)
    try {
      // Requested as an output at `value`: the line never shows another level on the way.
      this.held = GpioLines.request(this.resolved.path, [this.resolved.offset], { consumer: this.consumer, output: true, values: [value] })
    } catch (err) {
      // The chip may have been renumbered (a USB expander replugged): resolve again next time.
      this.resolved = undefined
      throw err
    }
    return this.held
  }

  private drop(): void {
    this.held?.close()
    this.held = undefined
  }

  release(): void {
    this.drop()
  }
}

// ---------------------------------------------------------------------------------------------
// rfkill

class RfkillAction implements PhysicalAction {
  readonly kind = 'rfkill' as const
  readonly describe: string
  readonly describeRestore: string
  private dev: Rfkill | undefined
  private readonly sel: RfkillSelector

  constructor(
    cfg: { type?: RfkillType; index?: number; name?: string },
    private readonly path = '/dev/rfkill',
  ) {
    this.sel = { ...(cfg.index !== undefined && { index: cfg.index }), ...(cfg.type !== undefined && { type: cfg.type }), ...(cfg.name !== undefined && { name: cfg.name }) }
    const what = [cfg.name, cfg.index !== undefined ? `#${cfg.index}` : undefined, cfg.type].filter((x) => x !== undefined).join(' ')
    this.describe = `rfkill ${what} block`
    this.describeRestore = `rfkill ${what} unblock`
  }

  cut(timeoutMs: number): Promise<Observation> {
    return this.set(true, this.describe, timeoutMs)
  }

  restore(timeoutMs: number): Promise<Observation> {
    return this.set(false, this.describeRestore, timeoutMs)
  }

  private async set(blocked: boolean, action: string, timeoutMs: number): Promise<Observation> {
    const t0 = performance.now()
    try {
      if (this.dev === undefined || this.dev.closed) {
        const dev = await Rfkill.open(this.path)
        // Held for the daemon's life: it must not keep a stopping process alive.
        dev.unref()
        // A read error closes it; the next cut opens it again.
        dev.on('error', () => undefined)
        this.dev = dev
      }
      this.dev.block(this.sel, blocked)
      const seen = await this.dev.waitFor(this.sel, blocked, Math.max(0, timeoutMs - since(t0)))
      return { action, ok: true, observed: seen.map((d) => describeState(d)).join(', '), ms: since(t0) }
    } catch (err) {
      const now = this.dev !== undefined && !this.dev.closed ? this.dev.select(this.sel) : []
      return { action, ok: false, observed: now.length > 0 ? now.map((d) => describeState(d)).join(', ') : `no switch seen for ${describeSelector(this.sel)}`, ms: since(t0), error: errorText(err) }
    }
  }

  release(): void {
    this.dev?.close()
    this.dev = undefined
  }
}

function describeState(d: RfkillDevice): string {
  const state = d.soft ? 'soft-blocked' : 'unblocked'
  return `${d.name || `rfkill${d.index}`} (index ${d.index}, ${d.type}) ${state}${d.hard ? ', hard-blocked by its switch' : ''}`
}

// ---------------------------------------------------------------------------------------------
// netdev

class NetdevAction implements PhysicalAction {
  readonly kind = 'netdev' as const
  readonly describe: string
  readonly describeRestore: string

  constructor(private readonly ifname: string) {
    this.describe = `netdev ${ifname} down`
    this.describeRestore = `netdev ${ifname} up`
  }

  cut(): Promise<Observation> {
    return Promise.resolve(this.set(false, this.describe))
  }

  restore(): Promise<Observation> {
    return Promise.resolve(this.set(true, this.describeRestore))
  }

  /**
   * The ACK means the kernel changed IFF_UP already; the flags read back are the observation.
   * Up is observed as IFF_UP: whether the link then runs (carrier, association) is the medium's
   * business and is shown in `observed`, not waited for.
   */
  private set(up: boolean, action: string): Observation {
    const t0 = performance.now()
    try {
      setLinkUp(this.ifname, up)
      const s = linkState(this.ifname)
      const ms = since(t0)
      const observed = `${s.name} ${s.up ? 'up' : 'down'}${s.running ? ', running' : ''} (operstate ${s.operstate})`
      if (s.up !== up) return { action, ok: false, observed, ms, error: `set ${up ? 'up' : 'down'} was acknowledged but ${s.name} reads ${s.up ? 'up' : 'down'}` }
      return { action, ok: true, observed, ms }
    } catch (err) {
      return { action, ok: false, observed: 'not changed', ms: since(t0), error: errorText(err) }
    }
  }

  release(): void {
    // nothing held
  }
}

// ---------------------------------------------------------------------------------------------
// radio_off

class RadioOffAction implements PhysicalAction {
  readonly kind = 'radio_off' as const
  readonly describe = 'radio_off'
  readonly describeRestore = 'radio_on'

  constructor(private readonly radio: RadioSwitch) {}

  cut(timeoutMs: number): Promise<Observation> {
    return this.set(false, this.describe, timeoutMs)
  }

  restore(timeoutMs: number): Promise<Observation> {
    return this.set(true, this.describeRestore, timeoutMs)
  }

  private async set(on: boolean, action: string, timeoutMs: number): Promise<Observation> {
    const t0 = performance.now()
    let timer: NodeJS.Timeout | undefined
    try {
      // Our own bound as well as the switch's: a wedged link driver must not hold the cut up.
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the firmware did not confirm radio ${on ? 'on' : 'off'} within ${timeoutMs} ms`)), Math.max(0, timeoutMs))
      })
      await Promise.race([Promise.resolve().then(() => this.radio.radio(on, timeoutMs)), late])
      return { action, ok: true, observed: `radio ${on ? 'on' : 'off'} (confirmed by the firmware)`, ms: since(t0) }
    } catch (err) {
      return { action, ok: false, observed: 'no confirmation', ms: since(t0), error: errorText(err) }
    } finally {
      clearTimeout(timer)
    }
  }

  release(): void {
    // nothing held
  }
}

// ---------------------------------------------------------------------------------------------
// Building and checking

/**
 * The actions of one `cut:` list, in order. Throws PhysicalConfigError listing every problem
 * (cutActionProblems, and radio_off without a RadioSwitch). Touches no hardware.
 * `rfkillPath` (extra) is for tests: another device than /dev/rfkill.
 */
export function buildActions(cfg: CutActionConfig[], ctx: { consumer: string; radio?: RadioSwitch; rfkillPath?: string }): PhysicalAction[] {
  const problems = cutActionProblems(cfg, 'cut')
  if (problems.length === 0)
    cfg.forEach((c, i) => {
      if ('radio_off' in c && ctx.radio === undefined) problems.push({ path: `cut[${i}].radio_off`, message: 'needs the LoRa link to switch its radio (no RadioSwitch given)' })
    })
  if (problems.length > 0) throw new PhysicalConfigError(problems)
  return cfg.map((c): PhysicalAction => {
    if ('gpio' in c) return new GpioAction(c.gpio, ctx.consumer)
    if ('rfkill' in c) return new RfkillAction(c.rfkill, ctx.rfkillPath)
    if ('netdev' in c) return new NetdevAction(c.netdev.interface)
    return new RadioOffAction(ctx.radio!)
  })
}

const KINDS = ['gpio', 'rfkill', 'netdev', 'radio_off'] as const
/** Keys an item may have beside its action: the config file's timeout (as written, or as the loader names it). */
const ITEM_EXTRA = ['timeout_ms', 'timeoutMs']
const TIMEOUT_MAX_MS = 60_000

/** A short, safe rendering of any value for a message (never throws: BigInt, cycles, proxies). */
function show(v: unknown): string {
  try {
    if (v === null) return 'null'
    if (Array.isArray(v)) return 'a list'
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
      case 'number':
      case 'boolean':
        return String(v)
      case 'bigint':
        return `${v}n`
      case 'object':
        return 'a mapping'
      default:
        return typeof v
    }
  } catch {
    return 'a value'
  }
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

/**
 * Every problem of a `cut:` list (or one item) in CutActionConfig's shape, each with its key path
 * under `path` (e.g. `links[0].cut[1].gpio.line`). Never throws; [] when good. Items may carry a
 * timeout (`timeout_ms` or `timeoutMs`, 1..60000 ms).
 */
export function cutActionProblems(cfg: unknown, path: string): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = []
  const add = (p: string, message: string) => out.push({ path: p, message })
  try {
    if (Array.isArray(cfg)) cfg.forEach((item, i) => itemProblems(item, `${path}[${i}]`, add))
    else if (isMapping(cfg)) itemProblems(cfg, path, add)
    else add(path, `must be a list of actions (${KINDS.join(', ')}), got ${show(cfg)}`)
  } catch (err) {
    // Reached only by hostile objects (throwing getters, revoked proxies).
    add(path, `cannot be read: ${err instanceof Error ? err.message : 'unreadable value'}`)
  }
  return out
}

function itemProblems(item: unknown, p: string, add: (p: string, m: string) => void): void {
  if (!isMapping(item)) return add(p, `must be a mapping with one action (${KINDS.join(', ')}), e.g. {gpio: {chip: gpiochip0, line: lora-power, value: 0}}, got ${show(item)}`)
  const keys = Object.keys(item)
  const kinds = keys.filter((k): k is (typeof KINDS)[number] => (KINDS as readonly string[]).includes(k))
  for (const k of keys) if (!(KINDS as readonly string[]).includes(k) && !ITEM_EXTRA.includes(k)) add(`${p}.${k}`, `unknown key (an item has one of ${KINDS.join(', ')}, and optionally timeout_ms)`)
  for (const k of ITEM_EXTRA)
    if (k in item && !isInt(item[k], 1, TIMEOUT_MAX_MS)) add(`${p}.${k}`, `must be a whole number of ms from 1 to ${TIMEOUT_MAX_MS}, got ${show(item[k])}`)
  if (kinds.length !== 1) return add(p, kinds.length === 0 ? `needs one action: ${KINDS.join(', ')}` : `has ${kinds.length} actions (${kinds.join(', ')}); one per item, in the order they should run`)
  const kind = kinds[0]!
  const body = item[kind]
  const bp = `${p}.${kind}`
  if (!isMapping(body)) return add(bp, `must be a mapping, got ${show(body)}`)
  const allowed: Record<(typeof KINDS)[number], string[]> = { gpio: ['chip', 'line', 'value'], rfkill: ['type', 'index', 'name'], netdev: ['interface'], radio_off: [] }
  for (const k of Object.keys(body)) if (!allowed[kind].includes(k)) add(`${bp}.${k}`, allowed[kind].length === 0 ? 'radio_off takes no settings: write radio_off: {}' : `unknown key (${kind} takes ${allowed[kind].join(', ')})`)
  switch (kind) {
    case 'gpio': {
      const { chip, line, value } = body
      if (typeof chip !== 'string' || chip === '' || chip.includes('\0') || chip.includes('..') || Buffer.byteLength(chip) > 255)
        add(`${bp}.chip`, `must be a chip: gpiochipN, /dev/gpiochipN or the chip's label, got ${show(chip)}`)
      if (typeof line === 'number') {
        if (!isInt(line, 0, 0xffff)) add(`${bp}.line`, `an offset must be a whole number from 0 to 65535, got ${show(line)}`)
      } else if (typeof line !== 'string' || line === '' || line.includes('\0') || Buffer.byteLength(line) > 31) {
        add(`${bp}.line`, `must be the line's name (1..31 bytes, as gpioinfo shows it) or its offset, got ${show(line)}`)
      }
      if (value !== 0 && value !== 1) add(`${bp}.value`, `must be 0 or 1 (the level that cuts), got ${show(value)}`)
      break
    }
    case 'rfkill': {
      const { type, index, name } = body
      if (type === undefined && index === undefined && name === undefined) add(bp, 'needs type, index or name: which switch to block')
      if (type !== undefined && !(typeof type === 'string' && (RFKILL_TYPES as readonly string[]).includes(type))) add(`${bp}.type`, `must be one of ${RFKILL_TYPES.join(', ')}, got ${show(type)}`)
      if (index !== undefined && !isInt(index, 0, 0xffff_ffff)) add(`${bp}.index`, `must be a whole number (rfkillN), got ${show(index)}`)
      if (name !== undefined && !(typeof name === 'string' && /^[\x21-\x7e]{1,64}$/.test(name))) add(`${bp}.name`, `must be a switch name as in /sys/class/rfkill/rfkillN/name (e.g. phy0, hci0), got ${show(name)}`)
      break
    }
    case 'netdev': {
      const iface = body.interface
      const problem = ifnameProblem(iface)
      if (problem !== null) add(`${bp}.interface`, iface === undefined ? 'is required: the interface to set down' : problem)
      break
    }
    case 'radio_off':
      break
  }
}
