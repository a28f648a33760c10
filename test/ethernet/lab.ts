/**
 * Real veth pairs and network namespaces for the raw Ethernet link tests (root + iproute2).
 *
 *   if (!(await requireEthernetLab(t, { cap: true }))) return
 *   const lab = new Lab(t)                    // removes all it made at t's teardown (and at exit)
 *   const [a, b] = lab.veth()                 // kte<pid><n>a / kte<pid><n>b, both in this namespace
 *   const ns = lab.netns(); lab.moveTo(b, ns) // b into a namespace of its own
 *   await lab.up(a); lab.ipIn(ns, 'link', 'set', b, 'up')
 *
 * Names carry the test process's pid, so parallel test files never collide, and a lab left over
 * by a killed run is removed by the next one (its pid is gone).
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Test } from 'tap'
import { hasCommand, requirePart } from '../lib/parts.js'
import { until } from '../lib/until.js'

const PREFIX = 'kte'

let ipOk: boolean | undefined
export function ipAvailable(): boolean {
  ipOk ??= hasCommand('ip', ['-V'])
  return ipOk
}

export function isRoot(): boolean {
  return process.getuid?.() === 0
}

async function loads(pkg: string): Promise<string | undefined> {
  try {
    await import(pkg)
    return undefined
  } catch (err) {
    return (err as Error).message.split('\n')[0]
  }
}

/**
 * requirePart for a veth lab: root, iproute2, and (when asked) the native modules. Skips `t`
 * with the reason, or fails it under KAIRO_REQUIRE_ALL=1.
 */
export async function requireEthernetLab(t: Test, need: { cap?: boolean; rawSocket?: boolean } = {}): Promise<boolean> {
  const p = t as unknown as Parameters<typeof requirePart>[0]
  if (!requirePart(p, isRoot(), 'root (veth pairs, network namespaces, packet capture)')) return false
  if (!requirePart(p, ipAvailable(), 'iproute2 (ip)')) return false
  if (need.cap === true) {
    const why = await loads('cap')
    if (!requirePart(p, why === undefined, `npm package cap built against libpcap (${why ?? ''})`)) return false
  }
  if (need.rawSocket === true) {
    const why = await loads('raw-socket')
    if (!requirePart(p, why === undefined, `npm package raw-socket built (${why ?? ''})`)) return false
  }
  return true
}

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.error !== undefined) throw r.error
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}: ${r.stderr.trim()}`)
  return r.stdout
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes veths and namespaces of earlier runs whose process is gone: those named
 * `<prefix><pid>…` (default this lab's; the bench uses its own).
 */
export function sweepStale(prefix = PREFIX): void {
  const mine = new RegExp(`^${prefix}(\\d+)`)
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? ''
  for (const line of links.split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1]
    const pid = name === undefined ? undefined : mine.exec(name)?.[1]
    if (name !== undefined && pid !== undefined && !pidAlive(Number(pid))) spawnSync('ip', ['link', 'del', name], { stdio: 'ignore' })
  }
  const nss = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? ''
  for (const line of nss.split('\n')) {
    const name = line.split(/\s/)[0]
    const pid = name === undefined ? undefined : mine.exec(name)?.[1]
    if (name !== undefined && pid !== undefined && !pidAlive(Number(pid))) spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' })
  }
}

let counter = 0
let swept = false
const live = new Set<Lab>()
process.once('exit', () => {
  for (const lab of live) lab.cleanupSync()
})

/** The second letter of a name: a..z, then aa.. (names stay within 15 characters). */
function tag(): string {
  const n = counter++
  return n < 26 ? String.fromCharCode(97 + n) : `${String.fromCharCode(97 + Math.floor(n / 26) - 1)}${String.fromCharCode(97 + (n % 26))}`
}

export class Lab {
  private readonly undo: Array<() => void> = []

  constructor(t: { teardown(fn: () => unknown): void }) {
    if (!swept) {
      swept = true
      sweepStale()
    }
    live.add(this)
    t.teardown(() => this.cleanupSync())
  }

  /** A fresh name kte<pid><tag><suffix> (at most 15 characters). */
  name(suffix: string): string {
    const n = `${PREFIX}${process.pid}${tag()}${suffix}`
    if (n.length > 15) throw new Error(`interface name ${n} is longer than 15 characters`)
    return n
  }

  /** A veth pair in this namespace (down). Deleting one end deletes both. */
  veth(): [string, string] {
    const base = `${PREFIX}${process.pid}${tag()}`
    const a = `${base}a`
    const b = `${base}b`
    run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b])
    this.undo.push(() => {
      spawnSync('ip', ['link', 'del', a], { stdio: 'ignore' })
    })
    return [a, b]
  }

  /** A new network namespace, deleted at teardown (with the interfaces in it). */
  netns(): string {
    const ns = this.name('n')
    run('ip', ['netns', 'add', ns])
    this.undo.push(() => {
      spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
    })
    return ns
  }

  /** Something else to undo at teardown (before what was made earlier). */
  onCleanup(fn: () => void): void {
    this.undo.push(fn)
  }

  ip(...args: string[]): string {
    return run('ip', args)
  }

  ipIn(ns: string, ...args: string[]): string {
    return run('ip', ['-n', ns, ...args])
  }

  moveTo(ifname: string, ns: string): void {
    run('ip', ['link', 'set', ifname, 'netns', ns])
  }

  /** Sets `ifname` (in this namespace) up and waits until it runs (operstate up). */
  async up(ifname: string, waitFor: string[] = [ifname]): Promise<void> {
    run('ip', ['link', 'set', ifname, 'up'])
    for (const n of waitFor) await until(`${n} to run`, 5000, () => operstate(n) === 'up')
  }

  cleanupSync(): void {
    live.delete(this)
    for (const fn of this.undo.splice(0).reverse()) {
      try {
        fn()
      } catch {
        // best effort: the rest must still go
      }
    }
  }
}

/** operstate of an interface in this namespace ('gone' when there is none). */
export function operstate(ifname: string): string {
  try {
    return readFileSync(`/sys/class/net/${ifname}/operstate`, 'utf8').trim()
  } catch {
    return 'gone'
  }
}

/** Interface counters from sysfs (this namespace). */
export function ifStats(ifname: string): { txPackets: number; rxPackets: number } {
  const read = (f: string) => Number(readFileSync(`/sys/class/net/${ifname}/statistics/${f}`, 'utf8'))
  return { txPackets: read('tx_packets'), rxPackets: read('rx_packets') }
}

/**
 * Addresses for one test segment: an 8-aligned block of 198.18.0.0/15 (RFC 2544, set aside for
 * benchmarking, so nothing real has it) picked from the pid; `a` = block + 1, `b` = block + 2.
 * Usable as a /30 or a /29 (block + 7 is then the broadcast address).
 */
export function testSubnet(): { a: string; b: string } {
  const block = ((process.pid * 7 + counter++) % 16_384) * 8
  const o2 = 18 + (block >> 16)
  const o3 = (block >> 8) & 0xff
  const o4 = block & 0xff
  return { a: `198.${o2}.${o3}.${o4 + 1}`, b: `198.${o2}.${o3}.${o4 + 2}` }
}
