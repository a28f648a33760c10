/**
 * Shared parts of the systemd/ tests: the tools (systemd-analyze, systemd-sysusers,
 * systemd-tmpfiles, udevadm: Debian's systemd and udev packages, installed by
 * `scripts/setup.mjs test`), temp dirs, a compiled dist/ and an install tree made by
 * systemd/install.sh exactly as the docs say.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { hasCommand, requirePart } from '../lib/parts.js'
import { REPO_ROOT } from '../lib/pty.js'

export { REPO_ROOT }
export const SYSTEMD_DIR = join(REPO_ROOT, 'systemd')
export const UNIT = join(SYSTEMD_DIR, 'kairo-gw.service')
export const SYSUSERS = join(SYSTEMD_DIR, 'sysusers.d', 'kairo-gw.conf')
export const TMPFILES = join(SYSTEMD_DIR, 'tmpfiles.d', 'kairo-gw.conf')
export const UDEV_RULES = join(SYSTEMD_DIR, 'udev', '60-kairo-gw.rules')
export const INSTALL_SH = join(SYSTEMD_DIR, 'install.sh')

type Part = Parameters<typeof requirePart>[0]

const TOOL_PROBE: Record<string, string[]> = {
  'systemd-analyze': ['--version'],
  'systemd-sysusers': ['--version'],
  'systemd-tmpfiles': ['--version'],
  udevadm: ['--version'],
  unshare: ['--version'],
  setpriv: ['--version'],
  python3: ['--version'],
}

/** requirePart for a command-line tool (the Debian package that brings it, for the message). */
export function requireTool(t: Test, cmd: keyof typeof TOOL_PROBE, pkg: string): boolean {
  return requirePart(t as unknown as Part, hasCommand(cmd, TOOL_PROBE[cmd]), `${cmd} (Debian package ${pkg})`)
}

export function requireRoot(t: Test, why: string): boolean {
  return requirePart(t as unknown as Part, process.getuid?.() === 0, `root (${why})`)
}

/** A mkdtemp('/tmp/kd-') dir, mode 0755 (other uids may need to get in), removed at teardown. */
export async function tempDir(t: Test): Promise<string> {
  const dir = await fsp.mkdtemp('/tmp/kd-')
  await fsp.chmod(dir, 0o755)
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

export interface Ran {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs a command to completion (no shell). */
export function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}): Ran {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts })
  if (r.error) throw r.error
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) }
}

/** Compiles the appliance with tsconfig.build.json (what `npm run build` does) into <dir>/dist. */
export function buildDist(dir: string): string {
  const out = join(dir, 'dist')
  const r = sh(join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: REPO_ROOT })
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed:\n${r.stdout}${r.stderr}`)
  return out
}

/** Runs systemd/install.sh --destdir <root> --dist <dist>: the documented install, into a tree. */
export function installInto(root: string, dist: string): Ran {
  return sh('sh', [INSTALL_SH, '--destdir', root, '--dist', dist], { cwd: REPO_ROOT })
}

/**
 * The [Service] (or other section's) assignments of a unit file, in order: key → values.
 * Comments, blank lines and line continuations as systemd.syntax(7) has them.
 */
export function unitSettings(text: string, section = 'Service'): Map<string, string[]> {
  const out = new Map<string, string[]>()
  let current = ''
  const lines = text.replace(/\\\n/g, ' ').split('\n')
  for (const raw of lines) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const sec = /^\[(.+)\]$/.exec(line)
    if (sec) {
      current = sec[1]!
      continue
    }
    if (current !== section) continue
    const eq = line.indexOf('=')
    if (eq <= 0) continue
    const key = line.slice(0, eq).trim()
    const list = out.get(key) ?? []
    list.push(line.slice(eq + 1).trim())
    out.set(key, list)
  }
  return out
}
