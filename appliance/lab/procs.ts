/**
 * The processes a lab run starts: gateways (`ip netns exec <ns> node kairo-gw.mjs run --config
 * ... --json`), socat PTY pairs, the emulator host. Each runs in its own process group with its
 * stdout and stderr in files of the run directory (not pipes), so that Ctrl-C reaches only the
 * lab (which then stops them in order) and so that they outlive the lab with --keep.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, promises as fsp, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { TimeoutError } from '../core/errors.js'
import { alive, commandLine, LabError, signal, terminate } from './sys.js'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const KAIRO_GW_BIN = join(REPO_ROOT, 'appliance', 'bin', 'kairo-gw.mjs')
export const EMULATOR_HOST = join(REPO_ROOT, 'appliance', 'lab', 'emulator-host.ts')
/** `--import=<tsx>` for TypeScript entry points, absolute so that it works from any cwd. */
export const TSX_IMPORT = `--import=${import.meta.resolve('tsx')}`

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Thrown by waits when the run is being aborted (Ctrl-C, SIGTERM). */
export class AbortedError extends Error {
  override readonly name = 'AbortedError'
}

export function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted === true) throw new AbortedError(`interrupted (${String(signal.reason ?? 'abort')})`)
}

/** Waits `ms`, waking early (and throwing) on abort. */
export async function pause(ms: number, abort?: AbortSignal): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    checkAbort(abort)
    await sleep(Math.min(50, end - Date.now()))
  }
  checkAbort(abort)
}

async function tail(file: string, bytes = 4000): Promise<string> {
  try {
    const text = await fsp.readFile(file, 'utf8')
    return text.slice(-bytes).trim()
  } catch {
    return ''
  }
}

export interface Spawned {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  readonly stdoutLog: string
  readonly stderrLog: string
  /** Offset of stdoutLog when this process started (earlier runs of it appended before). */
  readonly stdoutFrom: number
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly running: boolean
}

/** Spawns `cmd args` detached with stdout/stderr appended to files. */
export function spawnLogged(name: string, cmd: string, args: string[], opts: { stdoutLog: string; stderrLog: string; cwd?: string; env?: NodeJS.ProcessEnv }): Spawned {
  const stdoutFrom = existsSync(opts.stdoutLog) ? statSync(opts.stdoutLog).size : 0
  const out = openSync(opts.stdoutLog, 'a')
  const err = openSync(opts.stderrLog, 'a')
  let child: ChildProcess
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', out, err], cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env })
  } finally {
    closeSync(out)
    closeSync(err)
  }
  let running = true
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('exit', (code, sig) => {
      running = false
      res({ code, signal: sig })
    })
    child.once('error', (e) => {
      running = false
      void fsp.appendFile(opts.stderrLog, `spawn ${commandLine(cmd, args)}: ${e.message}\n`).catch(() => undefined)
      res({ code: -1, signal: null })
    })
  })
  if (child.pid === undefined) throw new LabError(`${name}: cannot start ${commandLine(cmd, args)}`)
  return {
    name,
    child,
    pid: child.pid,
    stdoutLog: opts.stdoutLog,
    stderrLog: opts.stderrLog,
    stdoutFrom,
    exit,
    get running() {
      return running
    },
  }
}

/** JSON lines of `p`'s stdout so far (its own run only). */
export async function jsonLines(p: Spawned): Promise<Array<Record<string, unknown>>> {
  let text: string
  try {
    const buf = await fsp.readFile(p.stdoutLog)
    text = buf.subarray(p.stdoutFrom).toString('utf8')
  } catch {
    return []
  }
  const out: Array<Record<string, unknown>> = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const v = JSON.parse(line) as unknown
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) out.push(v as Record<string, unknown>)
    } catch {
      // a partial last line, or not JSON
    }
  }
  return out
}

/** Waits for the first stdout JSON line `pred` accepts; fails if `p` exits first or on timeout. */
export async function waitForLine(p: Spawned, what: string, pred: (e: Record<string, unknown>) => boolean, timeoutMs: number, abort?: AbortSignal): Promise<Record<string, unknown>> {
  const end = Date.now() + timeoutMs
  for (;;) {
    checkAbort(abort)
    const lines = await jsonLines(p)
    const found = lines.find(pred)
    if (found !== undefined) return found
    // The CLI's --json error object: the daemon refused to start (and may not have exited yet).
    const refused = lines.find((e) => e.ok === false && e.error !== undefined)
    if (refused !== undefined) {
      const err = refused.error as { message?: unknown }
      throw new LabError(`${p.name} failed before ${what}: ${String(err.message ?? JSON.stringify(refused.error))}${p.running ? ' (and is still running)' : ''} [logs: ${p.stderrLog}]`)
    }
    if (!p.running) {
      const { code, signal: sig } = await p.exit
      throw new LabError(`${p.name} exited (${sig ?? `code ${String(code)}`}) before ${what}: ${(await tail(p.stderrLog, 2000)) || '(nothing on stderr)'} [logs: ${p.stderrLog}]`)
    }
    if (Date.now() > end) throw new TimeoutError(`${p.name}: no ${what} within ${Math.round(timeoutMs / 1000)} s; stderr: ${(await tail(p.stderrLog, 1500)) || '(empty)'} [logs: ${p.stderrLog}]`)
    await sleep(50)
  }
}

/** Stops `p`: SIGTERM to its process group, SIGKILL after `graceMs`. */
export async function stopProcess(p: Spawned, graceMs = 3000): Promise<void> {
  if (!p.running) return
  // One signal only: a daemon may take a second SIGTERM as "stop now, skip the clean shutdown".
  groupSignal(p.pid, 'SIGTERM')
  const done = await Promise.race([p.exit.then(() => true), sleep(graceMs).then(() => false)])
  if (!done) {
    groupSignal(p.pid, 'SIGKILL')
    await Promise.race([p.exit, sleep(2000)])
  }
  if (alive(p.pid)) await terminate([p.pid], { graceMs: 0, signal: 'SIGKILL' })
}

/** `sig` to the process group of `pid` (each lab process leads its own), else to `pid` alone. */
function groupSignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig)
  } catch {
    signal(pid, sig)
  }
}

/** One socat PTY pair: `host` for the gateway, `mcu` for the emulator. */
export async function startSocat(name: string, host: string, mcu: string, logBase: string, timeoutMs = 5000, abort?: AbortSignal): Promise<Spawned> {
  const p = spawnLogged(`socat ${name}`, 'socat', ['-d', '-d', `pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${mcu}`], { stdoutLog: `${logBase}.out`, stderrLog: `${logBase}.log` })
  const end = Date.now() + timeoutMs
  for (;;) {
    checkAbort(abort)
    const log = await tail(p.stderrLog, 8000)
    if (log.includes('starting data transfer loop') && existsSync(host) && existsSync(mcu)) return p
    if (!p.running) throw new LabError(`socat ${name} exited: ${log}`)
    if (Date.now() > end) {
      await stopProcess(p)
      throw new TimeoutError(`socat ${name} did not start within ${timeoutMs} ms: ${log}`)
    }
    await sleep(20)
  }
}
