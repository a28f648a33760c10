/**
 * The lab's contact with the host: `ip`/`tc` commands, the process table, signals. Every
 * command that fails throws a LabError naming the command line and what it printed.
 */
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { basename } from 'node:path'

/** A host command failed, or the lab cannot go on; the message says which and why. */
export class LabError extends Error {
  override readonly name = 'LabError'
}

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

export function commandLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

/** Runs `cmd args` to completion; throws LabError on a non-zero exit unless `check` is false. */
export function run(cmd: string, args: readonly string[], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(new LabError(`${commandLine(cmd, args)}: ${e.message}`))
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      if (code !== 0 && opts.check !== false) reject(new LabError(`${commandLine(cmd, args)} failed (exit ${String(code)}): ${(stderr || stdout).trim()}`))
      else resolve({ code, stdout, stderr })
    })
  })
}

export const ip = (args: readonly string[], opts: { check?: boolean } = {}) => run('ip', args, opts)

/** Synchronous variant for the forced exit path (second Ctrl-C): never throws. */
export function runSync(cmd: string, args: readonly string[]): CommandResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 })
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** Names of the network namespaces (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await ip(['netns', 'list'], { check: false })
  return parseNetnsList(r.stdout)
}

export function parseNetnsList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '')
}

/** Interface names in the root namespace (`ip -o link show`), without the `@peer` suffix. */
export async function listRootLinks(): Promise<string[]> {
  const r = await ip(['-o', 'link', 'show'], { check: false })
  return parseLinkList(r.stdout)
}

export function parseLinkList(text: string): string[] {
  const out: string[] = []
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+([^:\s@]+)(?:@[^:\s]+)?:/.exec(line)
    if (m !== null) out.push(m[1]!)
  }
  return out
}

/** PIDs of the processes in namespace `ns` (`ip netns pids`). */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await ip(['netns', 'pids', ns], { check: false })
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** argv of a running process, or undefined when it is gone. */
export function processArgv(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return raw.split('\0').filter((s, i, a) => !(s === '' && i === a.length - 1))
  } catch {
    return undefined
  }
}

/**
 * Processes the lab starts: node (gateways, emulator host) or socat whose command line contains
 * `needle` (a run directory). Other programs (an editor, `tail -f` on a log) are left alone.
 */
export function labProcesses(match: (cmdline: string) => boolean): Array<{ pid: number; cmd: string }> {
  const out: Array<{ pid: number; cmd: string }> = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    const pid = Number(e)
    if (pid === process.pid) continue
    const argv = processArgv(pid)
    if (argv === undefined || argv.length === 0) continue
    const prog = basename(argv[0]!)
    if (!/^(node|nodejs|socat|ip)$/.test(prog) && argv[0] !== process.execPath) continue
    const cmd = argv.join(' ')
    if (match(cmd)) out.push({ pid, cmd })
  }
  return out
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** SIGTERM (or `signal`), then SIGKILL after `graceMs` for whatever is left; resolves when all are gone. */
export async function terminate(pids: readonly number[], opts: { graceMs?: number; signal?: NodeJS.Signals } = {}): Promise<number[]> {
  const targets = pids.filter(alive)
  for (const pid of targets) signal(pid, opts.signal ?? 'SIGTERM')
  const deadline = Date.now() + (opts.graceMs ?? 3000)
  while (targets.some(alive) && Date.now() < deadline) await sleep(25)
  for (const pid of targets.filter(alive)) signal(pid, 'SIGKILL')
  const hard = Date.now() + 2000
  while (targets.some(alive) && Date.now() < hard) await sleep(25)
  return targets
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}
