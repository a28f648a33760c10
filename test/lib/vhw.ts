/**
 * The virtual-hardware rig for tap tests (scripts/vhw/: a Debian sid kernel under qemu with the
 * host's root read-only, so a guest script meets real kernel drivers: gpio-sim, mac80211_hwsim,
 * hci_vhci, rfkill).
 *
 *   t.setTimeout(10 * 60_000)                  // a boot is ~10 s to a minute under TCG
 *   if (!requireVhw(t)) return
 *   const vm = await runVm(t, { script: 'test/vhw/guest/gpio.ts' })
 *   t.equal(vm.code, 0)
 *   const obs = readObservations(t, vm)        // what the guest recorded (test/vhw/guest/lib.ts)
 *
 * The kernel is fetched on first use (about 130 MB, cached in ~/.cache/kairo-gw/vhw or
 * $KAIRO_VHW_CACHE). KAIRO_VHW_VERBOSE=1 streams the guest's console to stderr;
 * KAIRO_VHW_KEEP=1 keeps the results directories.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { bootVm, vhwProblems } from '../../scripts/vhw/index.mjs'
import { hasCommand, requirePart } from './parts.js'

export interface VmRun {
  /** The results directory ($KAIRO_VHW_RESULTS in the guest); removed at t's teardown. */
  dir: string
  /** The serial console (kernel messages and the guest script's stdout/stderr). */
  console: string
  /** The guest script's exit status. */
  code: number
  /** qemu start → power-off. */
  ms: number
}

export interface RunVmOptions {
  /** Repo-relative guest script: .ts runs with node --import=tsx, .mjs/.js with node, else sh. */
  script: string
  env?: Record<string, string>
  /** Default 300000: a heavy boot under TCG on a loaded 2-core runner. */
  timeoutMs?: number
}

let problems: string[] | undefined

/**
 * requirePart for the rig: qemu, a static busybox, kmod, and apt/dpkg when the kernel must still
 * be fetched; `bluetooth` adds BlueZ's btvirt (bluez-test-tools), which the guest runs for a
 * virtual controller.
 */
export function requireVhw(t: Test, need: { bluetooth?: boolean } = {}): boolean {
  problems ??= vhwProblems()
  const p = t as unknown as Parameters<typeof requirePart>[0]
  if (!requirePart(p, problems.length === 0, `virtual-hardware rig: ${problems.join('; ')}`)) return false
  if (need.bluetooth === true && !requirePart(p, hasCommand('btvirt', ['--version']), 'btvirt for a virtual Bluetooth controller (apt-get install bluez-test-tools)')) return false
  return true
}

/**
 * Boots the rig once for `script`. Resolves with what came back (a non-zero `code` is the
 * test's to judge; the console tail is put in a comment then); rejects when the rig itself
 * failed (no power-off in time, init failure), the error carrying the console's tail.
 */
export async function runVm(t: Test, opts: RunVmOptions): Promise<VmRun> {
  const verbose = process.env.KAIRO_VHW_VERBOSE === '1'
  const r = await bootVm({
    script: opts.script,
    env: opts.env ?? {},
    timeoutMs: opts.timeoutMs ?? 300_000,
    progress: (line) => t.comment(line),
    ...(verbose ? { onConsole: (s: string) => void process.stderr.write(s) } : {}),
  })
  if (process.env.KAIRO_VHW_KEEP === '1') t.comment(`vhw: results kept in ${r.dir}`)
  else t.teardown(() => rmSync(r.dir, { recursive: true, force: true }))
  if (r.code !== 0) t.comment(`vhw: ${opts.script} exited with ${r.code}; console tail:\n${r.console.split('\n').slice(-60).join('\n')}`)
  return { dir: r.dir, console: r.console, code: r.code, ms: r.ms }
}

/**
 * The observations a guest script recorded (test/vhw/guest/lib.ts Recorder: name → value, or
 * { error } when the step threw). Fails `t` and returns {} when the guest wrote none.
 */
export function readObservations(t: Test, vm: VmRun, file = 'observations.json'): Record<string, unknown> {
  const p = join(vm.dir, file)
  if (!existsSync(p)) {
    t.fail(`the guest wrote no ${file}; console tail:\n${vm.console.split('\n').slice(-60).join('\n')}`)
    return {}
  }
  return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>
}
