/**
 * Removing what lab runs made, by name pattern, so that it also works after a crash:
 *   - processes (node gateways and emulator host, socat) whose command line names a run
 *     directory `<tmp>/kairo-lab-<prefix>-*`, and every process inside a lab namespace;
 *   - network namespaces `<prefix>-*` (their veth ends go with them);
 *   - root-namespace interfaces `<prefix>-*` (veth pairs made but not yet moved);
 *   - the run directories (unless kept).
 * Without a prefix every `kl<digits>` prefix is cleaned, except runs whose lab process is still
 * running (its manifest's lab_pid is alive) unless `force`.
 */
import { existsSync, promises as fsp, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LAB_NAME, PREFIX, RUN_DIR_PREFIX } from './plan.js'
import { alive, ip, labProcesses, listNamespaces, listRootLinks, namespacePids, processArgv, runSync, signal, terminate } from './sys.js'

/** Written first thing into every run directory. */
export interface Manifest {
  prefix: string
  lab_pid: number
  started_at: string
  topology: string
  run_dir: string
  /** Set when the run ended with --keep: the lab is up on purpose, its lab process gone. */
  kept?: boolean
}

export const MANIFEST = 'lab.json'

export interface CleanReport {
  prefixes: string[]
  processes: Array<{ pid: number; cmd: string }>
  namespaces: string[]
  links: string[]
  run_dirs: string[]
  skipped: Array<{ prefix: string; reason: string }>
  errors: string[]
}

export interface CleanOptions {
  /** Only this prefix (`kl1234`); default every lab prefix. */
  prefix?: string
  /** Also runs whose lab process is still alive. */
  force?: boolean
  /** Leave the run directories (logs) in place. */
  keepRunDirs?: boolean
  /** Where run directories live (default the OS temp dir). */
  tmp?: string
}

/** Run directories under `tmp` with their prefix and manifest (when readable). */
export function runDirs(tmp = tmpdir()): Array<{ dir: string; prefix: string; manifest: Manifest | undefined }> {
  let entries: string[]
  try {
    entries = readdirSync(tmp)
  } catch {
    return []
  }
  const out: Array<{ dir: string; prefix: string; manifest: Manifest | undefined }> = []
  for (const e of entries) {
    const m = new RegExp(`^${RUN_DIR_PREFIX}(kl\\d{1,4})-`).exec(e)
    if (m === null) continue
    const dir = join(tmp, e)
    let manifest: Manifest | undefined
    try {
      manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest
    } catch {
      manifest = undefined
    }
    out.push({ dir, prefix: m[1]!, manifest })
  }
  return out
}

/** True while the lab process of a run is alive (not a recycled pid: its argv mentions `lab`). */
export function labRunning(m: Manifest | undefined): boolean {
  if (m === undefined || m.kept === true || m.lab_pid === process.pid) return false
  if (!alive(m.lab_pid)) return false
  const argv = processArgv(m.lab_pid)
  return argv !== undefined && argv.some((a) => a === 'lab' || a.includes('lab'))
}

/** What of `prefix` exists now (namespaces, root links, run dirs): for choosing a free prefix. */
export async function prefixInUse(prefix: string, tmp = tmpdir()): Promise<string[]> {
  const [nss, links] = await Promise.all([listNamespaces(), listRootLinks()])
  return [
    ...nss.filter((n) => n.startsWith(`${prefix}-`)).map((n) => `namespace ${n}`),
    ...links.filter((n) => n.startsWith(`${prefix}-`)).map((n) => `interface ${n}`),
    ...runDirs(tmp)
      .filter((r) => r.prefix === prefix)
      .map((r) => `directory ${r.dir}`),
  ]
}

export async function cleanLab(opts: CleanOptions = {}): Promise<CleanReport> {
  if (opts.prefix !== undefined && !PREFIX.test(opts.prefix)) throw new TypeError(`--prefix ${JSON.stringify(opts.prefix)} is not a lab prefix (kl followed by 1-4 digits)`)
  const tmp = opts.tmp ?? tmpdir()
  const report: CleanReport = { prefixes: [], processes: [], namespaces: [], links: [], run_dirs: [], skipped: [], errors: [] }
  const dirs = runDirs(tmp)
  const skip = new Set<string>()
  if (opts.force !== true) {
    for (const d of dirs) {
      if ((opts.prefix === undefined || d.prefix === opts.prefix) && labRunning(d.manifest)) {
        skip.add(d.prefix)
        report.skipped.push({ prefix: d.prefix, reason: `its lab process ${d.manifest!.lab_pid} is still running (stop it, or clean with --force)` })
      }
    }
  }
  const wanted = (prefix: string | undefined) => prefix !== undefined && (opts.prefix === undefined || prefix === opts.prefix) && !skip.has(prefix)
  const prefixOf = (name: string) => LAB_NAME.exec(name)?.[1]
  const nss = (await listNamespaces()).filter((n) => wanted(prefixOf(n)))
  const prefixes = new Set<string>([...nss.map((n) => prefixOf(n)!), ...dirs.filter((d) => wanted(d.prefix)).map((d) => d.prefix)])

  const runDirRe = new RegExp(`/${RUN_DIR_PREFIX}(kl\\d{1,4})-`)
  const procs = new Map<number, string>()
  for (const p of labProcesses((cmd) => wanted(runDirRe.exec(cmd)?.[1]))) procs.set(p.pid, p.cmd)
  for (const ns of nss) for (const pid of await namespacePids(ns)) if (pid !== process.pid && !procs.has(pid)) procs.set(pid, (processArgv(pid) ?? []).join(' '))
  for (const [pid, cmd] of procs) {
    report.processes.push({ pid, cmd })
    const m = runDirRe.exec(cmd)
    if (m !== null) prefixes.add(m[1]!)
  }
  await terminate([...procs.keys()], { graceMs: 2000 })

  for (const ns of nss) {
    const r = await ip(['netns', 'del', ns], { check: false })
    if (r.code === 0) report.namespaces.push(ns)
    else report.errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`)
  }
  for (const l of (await listRootLinks()).filter((n) => wanted(prefixOf(n)))) {
    prefixes.add(prefixOf(l)!)
    const r = await ip(['link', 'del', l], { check: false })
    if (r.code === 0) report.links.push(l)
    else if (/Cannot find device/.test(r.stderr)) report.links.push(l) // its peer's deletion took it along
    else report.errors.push(`ip link del ${l}: ${r.stderr.trim()}`)
  }
  if (opts.keepRunDirs !== true) {
    for (const d of dirs.filter((x) => wanted(x.prefix))) {
      try {
        await fsp.rm(d.dir, { recursive: true, force: true })
        report.run_dirs.push(d.dir)
      } catch (e) {
        report.errors.push(`rm -r ${d.dir}: ${(e as Error).message}`)
      }
    }
  }
  report.prefixes = [...prefixes].sort()
  return report
}

/**
 * Last resort on a forced exit (a second Ctrl-C): SIGKILL `pids` and everything of `prefix`,
 * delete its namespaces and interfaces, synchronously. Never throws.
 */
export function forceCleanSync(prefix: string, pids: readonly number[], runDir?: string): void {
  for (const pid of pids) signal(pid, 'SIGKILL')
  const needle = `/${RUN_DIR_PREFIX}${prefix}-`
  for (const p of labProcesses((cmd) => cmd.includes(needle))) signal(p.pid, 'SIGKILL')
  const nss = runSync('ip', ['netns', 'list']).stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '')
  for (const ns of nss.filter((n) => n.startsWith(`${prefix}-`))) {
    for (const pid of runSync('ip', ['netns', 'pids', ns]).stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) signal(Number(pid), 'SIGKILL')
    runSync('ip', ['netns', 'del', ns])
  }
  const links = runSync('ip', ['-o', 'link', 'show']).stdout
  for (const m of links.matchAll(/^\d+:\s+([^:\s@]+)/gm)) if (m[1]!.startsWith(`${prefix}-`)) runSync('ip', ['link', 'del', m[1]!])
  if (runDir !== undefined && existsSync(runDir)) {
    try {
      rmSync(runDir, { recursive: true, force: true })
    } catch {
      // left for kairo-gw lab clean
    }
  }
}
