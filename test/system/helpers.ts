/**
 * Real parts for the appliance/system tests: an sd_notify receiver (python3, fixtures/
 * dgram-recv.py: a Unix datagram socket with SO_PASSCRED, like systemd's), and temp dirs with
 * short paths (a Unix socket path holds 107 bytes).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'
import { hasCommand, requirePart } from '../lib/parts.js'
import { REPO_ROOT } from '../lib/pty.js'
import { until } from '../lib/until.js'

export { REPO_ROOT }
export const RECEIVER = join(REPO_ROOT, 'test', 'system', 'fixtures', 'dgram-recv.py')
export const NOTIFY_CHILD = join(REPO_ROOT, 'test', 'system', 'fixtures', 'notify-child.ts')

type Part = Parameters<typeof requirePart>[0]

let python: boolean | undefined
export function requirePython(t: Test): boolean {
  python ??= hasCommand('python3', ['-c', 'import socket; socket.SO_PASSCRED'])
  return requirePart(t as unknown as Part, python, 'python3 (the sd_notify receiver)')
}

export function requireCommand(t: Test, cmd: string, args: string[], why: string): boolean {
  return requirePart(t as unknown as Part, hasCommand(cmd, args), `${cmd} (${why})`)
}

export function requireRoot(t: Test, why: string): boolean {
  return requirePart(t as unknown as Part, process.getuid?.() === 0, `root (${why})`)
}

/** A mkdtemp('/tmp/kd-') dir removed at teardown. */
export async function tempDir(t: Test): Promise<string> {
  const dir = await fsp.mkdtemp('/tmp/kd-')
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

export interface Datagram {
  /** CLOCK_MONOTONIC at arrival, µs. */
  t_us: number
  /** The sender, from SCM_CREDENTIALS. */
  pid: number
  uid: number
  gid: number
  data: string
}

export interface Receiver {
  address: string
  datagrams: Datagram[]
  proc: ChildProcess
  waitFor(what: string, pred: (d: Datagram[]) => boolean, ms?: number): Promise<void>
  close(): Promise<void>
}

/** Starts fixtures/dgram-recv.py on `address` (a path or '@abstract'); resolves once it is bound. */
export async function startReceiver(t: Test, address: string, opts: { read?: boolean } = {}): Promise<Receiver> {
  const proc = spawn('python3', [RECEIVER, address, ...(opts.read === false ? ['--no-read'] : [])], { stdio: ['pipe', 'pipe', 'inherit'] })
  const datagrams: Datagram[] = []
  let bound = false
  let exited = false
  proc.on('exit', () => {
    exited = true
  })
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as Datagram | { bound: string }
    if ('bound' in msg) bound = true
    else datagrams.push(msg)
  })
  const close = async () => {
    if (exited) return
    proc.stdin!.end()
    proc.kill('SIGTERM')
    await until('the receiver to exit', 5000, () => exited)
  }
  t.teardown(close)
  await until(`the receiver to bind ${address}`, 10_000, () => bound || exited)
  if (!bound) throw new Error(`dgram-recv.py could not bind ${address}`)
  return {
    address,
    datagrams,
    proc,
    close,
    waitFor: (what, pred, ms = 10_000) => until(what, ms, () => pred(datagrams)).then(() => undefined),
  }
}

/** Runs `cmd args` to completion; resolves with its exit code, stdout and pid. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! }))
  })
}
