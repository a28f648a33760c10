/**
 * Helpers for guest scripts (run inside the rig by test/lib/vhw.ts runVm, as root, cwd = the
 * repo root). A guest script observes and records; the host test asserts on the record, so a
 * failure reads as a normal tap diff on the host.
 *
 *   const rec = new Recorder()
 *   const sim = await GpioSim.create('kairo', { lines: 8, names: { 0: 'lora-power' } })
 *   await rec.step('value after set', () => sim.value(0))
 *   rec.done()
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const RESULTS = process.env.KAIRO_VHW_RESULTS ?? ''
if (RESULTS === '' || process.env.KAIRO_VHW !== '1') {
  process.stderr.write('this is a guest script of the virtual-hardware rig: run it with node scripts/vhw/run.mjs <script>\n')
  process.exit(2)
}

function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)))
}

/** Observations by name, written to $KAIRO_VHW_RESULTS/<file> after every step (a hang still leaves the earlier ones). */
export class Recorder {
  readonly obs: Record<string, unknown> = {}
  constructor(readonly file = 'observations.json') {
    this.flush()
  }

  set(name: string, value: unknown): void {
    if (name in this.obs) throw new Error(`observation ${name} recorded twice`)
    this.obs[name] = plain(value === undefined ? null : value)
    this.flush()
  }

  /**
   * Runs `fn` and records its value (or what `show` makes of it), or { error, name, code } when
   * it throws. Returns the value (undefined on error).
   */
  async step<T>(name: string, fn: () => T | Promise<T>, show?: (v: T) => unknown): Promise<T | undefined> {
    try {
      const v = await fn()
      this.set(name, show === undefined ? v : show(v))
      return v
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      this.set(name, { error: e.message ?? String(err), name: e.name, ...(e.code !== undefined ? { code: e.code } : {}) })
      return undefined
    }
  }

  flush(): void {
    writeFileSync(join(RESULTS, this.file), `${JSON.stringify(this.obs, null, 2)}\n`)
  }

  /** Writes the record and ends the process (handles of drivers under test must not keep the guest up). */
  done(code = 0): never {
    this.flush()
    process.exit(code)
  }
}

/** Runs a command; throws naming it, with its stderr, when it fails. */
export function sh(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error !== undefined) throw new Error(`${cmd}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${r.stderr.trim()}`)
  return r.stdout
}

export function modprobe(module: string, ...params: string[]): void {
  sh('modprobe', module, ...params)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Polls `probe` every 10 ms until it returns a truthy value; rejects naming `what` after `ms`. */
export async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | false | null): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = probe()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(10)
  }
}

export function readTrim(path: string): string {
  return readFileSync(path, 'utf8').trim()
}

/**
 * A gpio-sim chip configured through configfs (/sys/kernel/config/gpio-sim/<name>): one bank
 * with named lines and a label. `value(offset)` is what userspace drives (sim_gpioN/value);
 * `pull(offset, ...)` drives an input as the outside world would.
 */
export class GpioSim {
  private constructor(
    readonly name: string,
    /** Platform device, e.g. gpio-sim.0. */
    readonly device: string,
    /** Kernel chip name, e.g. gpiochip0. */
    readonly chip: string,
    readonly label: string,
  ) {}

  get path(): string {
    return `/dev/${this.chip}`
  }

  private get sysfs(): string {
    return `/sys/devices/platform/${this.device}/${this.chip}`
  }

  static async create(name: string, opts: { lines: number; names?: Record<number, string>; label?: string }): Promise<GpioSim> {
    modprobe('gpio-sim')
    const dir = `/sys/kernel/config/gpio-sim/${name}`
    mkdirSync(dir)
    mkdirSync(`${dir}/bank0`)
    writeFileSync(`${dir}/bank0/num_lines`, String(opts.lines))
    const label = opts.label ?? `${name}-bank0`
    writeFileSync(`${dir}/bank0/label`, label)
    for (const [offset, lineName] of Object.entries(opts.names ?? {})) {
      mkdirSync(`${dir}/bank0/line${offset}`)
      writeFileSync(`${dir}/bank0/line${offset}/name`, lineName)
    }
    writeFileSync(`${dir}/live`, '1')
    const device = readTrim(`${dir}/dev_name`)
    const chip = readTrim(`${dir}/bank0/chip_name`)
    await waitFor(`/dev/${chip}`, 5000, () => existsSync(`/dev/${chip}`))
    return new GpioSim(name, device, chip, label)
  }

  /** The level the simulator sees on the line (what a driven output puts out). */
  value(offset: number): number {
    return Number(readTrim(`${this.sysfs}/sim_gpio${offset}/value`))
  }

  pull(offset: number, pull: 'pull-up' | 'pull-down'): void {
    writeFileSync(`${this.sysfs}/sim_gpio${offset}/pull`, pull)
  }

  getPull(offset: number): string {
    return readTrim(`${this.sysfs}/sim_gpio${offset}/pull`)
  }
}

/** /sys/class/rfkill as the kernel reports it, by name (phy0, hci0). */
export function sysfsRfkill(): Record<string, { index: number; type: string; soft: number; hard: number }> {
  const out: Record<string, { index: number; type: string; soft: number; hard: number }> = {}
  for (const e of readdirSync('/sys/class/rfkill')) {
    const d = `/sys/class/rfkill/${e}`
    out[readTrim(`${d}/name`)] = { index: Number(e.replace('rfkill', '')), type: readTrim(`${d}/type`), soft: Number(readTrim(`${d}/soft`)), hard: Number(readTrim(`${d}/hard`)) }
  }
  return out
}

/** mac80211_hwsim with `radios` phys; returns wlan interface → phy name. */
export async function hwsim(radios: number): Promise<Record<string, string>> {
  modprobe('mac80211_hwsim', `radios=${radios}`)
  return waitFor(`${radios} hwsim wlan interfaces`, 10_000, () => {
    const map: Record<string, string> = {}
    for (const n of readdirSync('/sys/class/net')) {
      if (existsSync(`/sys/class/net/${n}/phy80211/name`)) map[n] = readTrim(`/sys/class/net/${n}/phy80211/name`)
    }
    return Object.keys(map).length >= radios ? map : undefined
  })
}

/**
 * A virtual Bluetooth controller: hci_vhci driven by BlueZ's emulator (btvirt), so it answers
 * the kernel's HCI commands like a real one. Returns the controller name (hci0) and the child.
 */
export async function vhciController(): Promise<{ hci: string; child: ChildProcess }> {
  modprobe('hci_vhci')
  const child = spawn('btvirt', ['-l1'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => void (stderr += d.toString()))
  const hci = await waitFor('a vhci controller in /sys/class/bluetooth (btvirt -l1)', 15_000, () => {
    if (child.exitCode !== null) throw new Error(`btvirt exited with ${child.exitCode}: ${stderr.trim()}`)
    return existsSync('/sys/class/bluetooth') ? readdirSync('/sys/class/bluetooth').find((n) => /^hci\d+$/.test(n)) : undefined
  })
  await waitFor(`the rfkill switch of ${hci}`, 10_000, () => sysfsRfkill()[hci])
  return { hci, child }
}
