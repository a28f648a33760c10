/**
 * A LoRa test rig on real serial lines: one socat PTY pair per gateway, the companion-MCU
 * emulator (in this process) on the MCU ends, and a LoRaLink on each host end.
 *
 *   const rig = await loraRig({ backend: 'firmware-bridge', names: ['a', 'b'] })
 *   t.teardown(() => rig.close())
 *   await Promise.all(rig.links.map((l) => l.open()))
 *
 * Also used by bench/suites/lora.ts.
 */
import type { DeviceProtocolFactory } from '../../drivers/lora/device.js'
import { LoRaLink, type LoRaLinkOptions } from '../../drivers/lora/link.js'
import type { RadioConfig } from '../../drivers/lora/radio.js'
import { startEmulator, type Emulator, type EmulatorConfig, type EmulatorEvent } from '../../firmware-bridge/emulator/main.js'
import { SerialPort } from 'serialport'
import type { ChipName } from '../../firmware-bridge/chips.js'
import { SeededRandom } from '../../firmware-bridge/emulator/random.js'
import { ptyPair, tempDir, type PtyPair } from '../lib/pty.js'
import { until } from '../lib/until.js'

export interface LoRaRigOptions {
  backend: 'firmware-bridge' | 'rnode'
  /** One gateway per name (default a, b). */
  names?: string[]
  /** Radio time per real time, for the emulator and the links alike (default 0.01). */
  timeScale?: number
  radio?: Partial<RadioConfig>
  /** Region for the links and the medium (default LAB: no duty cycle). */
  region?: string
  seed?: number
  /** Rolling duty-cycle window, radio ms, for the links and the medium alike (default 1 h). */
  dutyWindowMs?: number
  /** Emulator topology (default: everyone hears everyone). */
  links?: EmulatorConfig['links']
  /** The radio chip of every emulated MCU (its firmware refuses what the chip cannot do). */
  chip?: ChipName
  /** Protocol of the emulated MCU (default: the backend's own). */
  factory?: DeviceProtocolFactory
  /** Extra LoRaLink options for every link. */
  link?: Partial<LoRaLinkOptions>
  onEvent?: (e: EmulatorEvent) => void
  /** Put a noisy serial line between the link and the MCU of these gateways. */
  noisy?: Record<string, NoiseOptions>
}

export interface NoiseOptions {
  seed?: number
  /** Chance that a chunk read from either side is preceded by a burst of 1..64 random bytes. */
  garbage?: number
  /** Chance that one byte of a chunk is replaced by a random one. */
  corrupt?: number
  /** Chance that a chunk is cut short (its tail never arrives). */
  truncate?: number
}

export interface NoiseStats {
  chunks: number
  garbageBursts: number
  corrupted: number
  truncated: number
}

/**
 * A noisy serial line: two socat PTY pairs with this process relaying between their inner ends,
 * mangling what passes as `opts` says. `host` is what the link opens, `mcu` what the emulator
 * opens. `quiet()` stops the noise (the relay keeps relaying).
 */
export async function noisyLine(dir: string, name: string, opts: NoiseOptions): Promise<{ host: string; mcu: string; stats: NoiseStats; quiet(): void; close(): Promise<void> }> {
  const near = await ptyPair(dir, `${name}-near`)
  const far = await ptyPair(dir, `${name}-far`)
  const rng = new SeededRandom(opts.seed ?? 7)
  const stats: NoiseStats = { chunks: 0, garbageBursts: 0, corrupted: 0, truncated: 0 }
  let noisy = true
  const open = async (path: string) => {
    const p = new SerialPort({ path, baudRate: 115_200, autoOpen: false })
    await new Promise<void>((res, rej) => p.open((e) => (e ? rej(e) : res())))
    p.on('error', () => undefined)
    return p
  }
  const a = await open(near.mcu)
  const b = await open(far.host)
  const mangle = (chunk: Buffer): Buffer => {
    stats.chunks++
    if (!noisy) return chunk
    const parts: Buffer[] = []
    if (rng.chance(opts.garbage ?? 0)) {
      stats.garbageBursts++
      const g = Buffer.alloc(1 + (rng.nextUint32() % 64))
      for (let i = 0; i < g.length; i++) g[i] = rng.nextUint32() & 0xff
      parts.push(g)
    }
    let c = Buffer.from(chunk)
    if (rng.chance(opts.corrupt ?? 0)) {
      stats.corrupted++
      const i = rng.nextUint32() % c.length
      c[i] = c[i]! ^ (1 + (rng.nextUint32() % 255))
    }
    if (rng.chance(opts.truncate ?? 0) && c.length > 1) {
      stats.truncated++
      c = c.subarray(0, rng.nextUint32() % c.length)
    }
    parts.push(c)
    return Buffer.concat(parts)
  }
  a.on('data', (d: Buffer) => void b.write(mangle(d)))
  b.on('data', (d: Buffer) => void a.write(mangle(d)))
  return {
    host: near.host,
    mcu: far.mcu,
    stats,
    quiet() {
      noisy = false
    },
    async close() {
      for (const p of [a, b]) if (p.isOpen) await new Promise<void>((r) => p.close(() => r()))
      await near.close()
      await far.close()
    },
  }
}

export interface LoRaRig {
  dir: string
  pairs: Map<string, PtyPair>
  /** The noisy lines (`noisy` option), by gateway. */
  noise: Map<string, Awaited<ReturnType<typeof noisyLine>>>
  emulator: Emulator
  links: LoRaLink[]
  link(name: string): LoRaLink
  close(): Promise<void>
}

export async function loraRig(o: LoRaRigOptions): Promise<LoRaRig> {
  const names = o.names ?? ['a', 'b']
  const timeScale = o.timeScale ?? 0.01
  const region = o.region ?? 'LAB'
  const dir = await tempDir(undefined, 'kairo-lora-')
  const pairs = new Map<string, PtyPair>()
  const cleanups: Array<() => Promise<unknown>> = []
  const noiseLines = new Map<string, Awaited<ReturnType<typeof noisyLine>>>()
  const { rm } = await import('node:fs/promises')
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  try {
    const ends = new Map<string, { host: string; mcu: string }>()
    for (const n of names) {
      const noise = o.noisy?.[n]
      if (noise !== undefined) {
        const line = await noisyLine(dir, n, noise)
        noiseLines.set(n, line)
        ends.set(n, line)
        cleanups.unshift(() => line.close())
        continue
      }
      const p = await ptyPair(dir, n)
      pairs.set(n, p)
      ends.set(n, p)
      cleanups.unshift(() => p.close())
    }
    const protocol = o.factory !== undefined ? 'custom' : o.backend
    const emulator = await startEmulator(
      {
        seed: o.seed ?? 1,
        timeScale,
        region,
        ...(o.dutyWindowMs !== undefined && { dutyWindowMs: o.dutyWindowMs }),
        ...(o.links !== undefined && { links: o.links }),
        radios: names.map((n) => ({ name: n, tty: ends.get(n)!.mcu, protocol, ...(o.chip !== undefined && { chip: o.chip }) })),
        reopen: { minMs: 20, maxMs: 200 },
        watchMs: 50,
      },
      { ...(o.factory !== undefined && { factories: { custom: o.factory } }), ...(o.onEvent !== undefined && { onEvent: o.onEvent }) },
    )
    cleanups.unshift(() => emulator.stop())
    const links = names.map(
      (n) =>
        new LoRaLink({
          name: `lora-${n}`,
          path: ends.get(n)!.host,
          backend: o.backend,
          region,
          timeScale,
          backoffInitialMs: 50,
          backoffMaxMs: 500,
          ...(o.radio !== undefined && { radio: o.radio }),
          ...(o.dutyWindowMs !== undefined && { dutyWindowMs: o.dutyWindowMs }),
          ...o.link,
        }),
    )
    cleanups.unshift(() => Promise.all(links.map((l) => l.close())))
    return {
      dir,
      pairs,
      noise: noiseLines,
      emulator,
      links,
      link(name) {
        const i = names.indexOf(name)
        if (i < 0) throw new TypeError(`no gateway ${name}`)
        return links[i]!
      },
      async close() {
        for (const c of cleanups.splice(0)) await c().catch(() => undefined)
      },
    }
  } catch (err) {
    for (const c of cleanups.splice(0)) await c().catch(() => undefined)
    throw err
  }
}

export { until }
