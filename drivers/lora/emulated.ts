/**
 * A LoRa link with no hardware: the real LoRaLink driver, on the host end of a socat PTY pair
 * whose other end is driven by the companion-MCU emulator (firmware-bridge/emulator) running in
 * this process, alone on its own emulated air.
 *
 * It is what `npm start` runs as `lora0`, so a new user sees a LoRa link come up (handshake with
 * the firmware, radio configured, duty cycle counted) without a board. Nothing is heard on an
 * air with one radio; to hear other gateways over LoRa, use the lab (appliance/lab), whose
 * emulator puts the radios of a segment on one medium.
 *
 * The PTY pair lives in `dir` (the daemon's runtime dir): `<name>.tty` (the link's end) and
 * `<name>.mcu` (the emulator's). socat and the emulator are started by the first open() and
 * stopped by close(); a socat that dies takes the link down and the next open starts a new one.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startEmulator, type Emulator } from '../../firmware-bridge/emulator/main.js'
import { LoRaLink, type LoRaLinkOptions } from './link.js'

const SETPRIV = '/usr/bin/setpriv'

export interface EmulatedLoRaLinkOptions extends Omit<LoRaLinkOptions, 'path' | 'backend'> {
  /** Where the PTY pair's links go (must exist). */
  dir: string
  /** The emulated firmware (default firmware-bridge). */
  backend?: 'firmware-bridge' | 'rnode'
  /** How long socat may take to make the pair, ms (default 5000). */
  startTimeoutMs?: number
}

export class EmulatedLoRaLink extends LoRaLink {
  readonly hostTty: string
  readonly mcuTty: string
  private readonly emu: { dir: string; protocol: string; startTimeoutMs: number; options: EmulatedLoRaLinkOptions }
  private socat: ChildProcess | null = null
  private emulator: Emulator | null = null
  private starting: Promise<void> | null = null

  constructor(opts: EmulatedLoRaLinkOptions) {
    const hostTty = join(opts.dir, `${opts.name}.tty`)
    super({ ...opts, path: hostTty, backend: opts.backend ?? 'firmware-bridge' })
    this.hostTty = hostTty
    this.mcuTty = join(opts.dir, `${opts.name}.mcu`)
    this.emu = { dir: opts.dir, protocol: opts.backend ?? 'firmware-bridge', startTimeoutMs: opts.startTimeoutMs ?? 5000, options: opts }
  }

  protected override async connect(signal: AbortSignal): Promise<void> {
    await this.ensureEmulator()
    await super.connect(signal)
  }

  override async close(): Promise<void> {
    await super.close()
    await this.stopEmulator()
  }

  /** The emulator's counters (radio and device), or null when it is not running. */
  emulatorStats(): ReturnType<Emulator['stats']> | null {
    return this.emulator?.stats() ?? null
  }

  private ensureEmulator(): Promise<void> {
    if (this.socat !== null && this.socat.exitCode === null && this.socat.signalCode === null && this.emulator !== null) return Promise.resolve()
    this.starting ??= this.startEmulator().finally(() => {
      this.starting = null
    })
    return this.starting
  }

  private async startEmulator(): Promise<void> {
    await this.stopEmulator()
    for (const p of [this.hostTty, this.mcuTty]) rmSync(p, { force: true })
    const socatArgs = [`pty,raw,echo=0,link=${this.hostTty}`, `pty,raw,echo=0,link=${this.mcuTty}`]
    // socat outlives a daemon killed with SIGKILL unless the kernel ends it with its parent
    // (PR_SET_PDEATHSIG, through util-linux's setpriv; under systemd the cgroup ends it anyway).
    const child = existsSync(SETPRIV) ? spawn(SETPRIV, ['--pdeathsig', 'SIGKILL', '--', 'socat', ...socatArgs], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn('socat', socatArgs, { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4000) stderr += d
    })
    const spawned = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null))
      child.once('error', (err) => resolve(err))
    })
    if (spawned !== null) {
      const hint = (spawned as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install socat: apt-get install socat)' : ''
      throw new Error(`link ${this.name}: cannot start socat for the emulated radio: ${spawned.message}${hint}`)
    }
    this.socat = child
    // socat makes both links before it starts copying; wait for them.
    const end = Date.now() + this.emu.startTimeoutMs
    while (!(existsSync(this.hostTty) && existsSync(this.mcuTty))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`link ${this.name}: socat exited before making the PTY pair: ${stderr.trim() || `exit ${String(child.exitCode ?? child.signalCode)}`}`)
      if (Date.now() > end) {
        child.kill('SIGKILL')
        throw new Error(`link ${this.name}: socat made no PTY pair within ${this.emu.startTimeoutMs} ms in ${this.emu.dir}`)
      }
      await sleep(5)
    }
    const o = this.emu.options
    this.emulator = await startEmulator({
      ...(o.timeScale !== undefined ? { timeScale: o.timeScale } : {}),
      ...(o.region !== undefined ? { region: o.region } : {}),
      radios: [{ name: this.name, tty: this.mcuTty, protocol: this.emu.protocol, ...(o.radio !== undefined ? { config: o.radio } : {}) }],
    })
  }

  private async stopEmulator(): Promise<void> {
    const emulator = this.emulator
    this.emulator = null
    await emulator?.stop().catch(() => undefined)
    const socat = this.socat
    this.socat = null
    if (socat !== null && socat.exitCode === null && socat.signalCode === null) {
      const gone = new Promise<void>((r) => socat.once('exit', () => r()))
      socat.kill('SIGTERM')
      await Promise.race([gone, sleep(1000)])
      if (socat.exitCode === null && socat.signalCode === null) socat.kill('SIGKILL')
    }
  }
}
