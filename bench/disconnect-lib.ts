/**
 * What the disconnect bench (bench/suites/disconnect.ts) shares with its guest script in the
 * virtual-hardware rig (test/vhw/guest/bench-disconnect.ts): a real gateway daemon as a child
 * process, and the disconnect/reconnect cycle over its control socket.
 *
 * The latency is the daemon's own `latency_ms` (request received → the last cut action observed
 * in its new state: a GPIO line read back, the rfkill event, the interface's flags), not the
 * round trip of the control call: what the issue asks for is how fast the hardware is cut once
 * the gateway knows it must, and the socket's round trip is the caller's.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ControlClient } from '../appliance/control/client.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) throw new RangeError('percentile of nothing')
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export interface Daemon {
  proc: ChildProcess
  socket: string
  /** The last few KB of stderr and of the JSON lines after `ready`, for error messages. */
  tail(): string
  stop(): Promise<void>
}

/**
 * Starts `kairo-gw run --config FILE --json` (inside `netns` when given, through `ip netns exec`,
 * which execs, so signals reach the daemon) and resolves when its `ready` line names the control
 * socket. The caller's KAIRO_* variables do not leak in.
 */
export async function startDaemon(config: string, opts: { netns?: string; readyTimeoutMs?: number } = {}): Promise<Daemon> {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KAIRO_')) env[k] = v
  const argv = [process.execPath, BIN, 'run', '--config', config, '--json']
  const [cmd, ...args] = opts.netns !== undefined ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv
  const proc = spawn(cmd!, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  // Bounded: the daemon logs every cut (a warning) and every reconnect, hundreds in a run.
  let out = ''
  let err = ''
  const keep = (s: string, c: Buffer) => (s + c.toString()).slice(-8192)
  proc.stdout!.on('data', (c: Buffer) => (out = keep(out, c)))
  proc.stderr!.on('data', (c: Buffer) => (err = keep(err, c)))
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  const tail = () => `${proc.exitCode !== null || proc.signalCode !== null ? `the daemon exited with ${proc.exitCode ?? proc.signalCode}\n` : ''}stderr: ${err.trim().split('\n').slice(-10).join('\n')}\nstdout: ${out.trim().split('\n').slice(-10).join('\n')}`
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
    }
  }
  const limit = Date.now() + (opts.readyTimeoutMs ?? 30_000)
  for (;;) {
    const line = out.split('\n').find((l) => l.startsWith('{') && l.includes('"event":"ready"'))
    if (line !== undefined) {
      const ready = JSON.parse(line) as { control_socket?: unknown }
      if (typeof ready.control_socket !== 'string') throw new Error(`the daemon's ready line names no control socket: ${line}`)
      return { proc, socket: ready.control_socket, tail, stop }
    }
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`the gateway daemon (${config}) exited with ${proc.exitCode ?? proc.signalCode} before it was ready\n${tail()}`)
    if (Date.now() > limit) {
      await stop()
      throw new Error(`the gateway daemon (${config}) was not ready within ${opts.readyTimeoutMs ?? 30_000} ms\n${tail()}`)
    }
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** One action of a cut or restore as the daemon reports it (appliance/daemon/cut.ts). */
export interface ReportedAction {
  kind: string
  action: string
  ok: boolean
  observed: string
  error?: string
  ms: number
  started_ms: number
}

interface CutAnswer {
  state: string
  already: boolean
  ok: boolean
  latency_ms: number | null
  actions: ReportedAction[]
}

export interface Cycle {
  /** The daemon's latency_ms of the disconnect: trigger → last action observed. */
  latencyMs: number
  /** Each cut action's own ms (call → observed). */
  actionMs: number[]
  /** Trigger → the first action started, ms: what the daemon does before it touches hardware. */
  startMs: number
  /** The control call's round trip as the caller saw it, ms. */
  callMs: number
  /** How the daemon describes each cut action ("gpio kairo-bench:lora-power=0"). */
  actions: string[]
}

/**
 * One disconnect of `link`, then (after `between`, which checks the hardware independently) its
 * reconnect. Throws naming the link and the action when the daemon did not observe every action
 * of either, or answered `already` (the previous cycle did not end as expected).
 */
export async function cycle(client: ControlClient, link: string, between?: () => void | Promise<void>, after?: () => void | Promise<void>): Promise<Cycle> {
  const t0 = performance.now()
  const d = await client.call<CutAnswer>('disconnect', { link, reason: 'bench: force-disconnect latency' })
  const callMs = performance.now() - t0
  const failed = (a: CutAnswer) =>
    a.actions
      .filter((x) => !x.ok)
      .map((x) => `${x.action}: ${x.error ?? x.observed}`)
      .join('; ')
  if (d.already) throw new Error(`disconnect ${link}: the link was already disconnected (the previous reconnect did not bring it back)`)
  if (!d.ok || d.latency_ms === null) throw new Error(`disconnect ${link}: not every action was observed: ${failed(d) || 'no physical action reported'}`)
  await between?.()
  const r = await client.call<CutAnswer>('reconnect', { link })
  if (!r.ok) throw new Error(`reconnect ${link}: not every action was observed: ${failed(r)}`)
  await after?.()
  return { latencyMs: d.latency_ms, actionMs: d.actions.map((a) => a.ms), startMs: d.actions[0]?.started_ms ?? 0, callMs, actions: d.actions.map((a) => a.action) }
}

/** p50/p99 and extremes of a latency list, ms, rounded to µs. */
export function summary(xs: readonly number[]): { n: number; p50: number; p99: number; min: number; max: number } {
  const r = (v: number) => Math.round(v * 1000) / 1000
  return { n: xs.length, p50: r(percentile(xs, 50)), p99: r(percentile(xs, 99)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) }
}

/** What test/vhw/guest/bench-disconnect.ts writes to $KAIRO_VHW_RESULTS/disconnect.json. */
export interface GuestReport {
  kernel: string
  cycles: number
  links: Record<'gpio' | 'rfkill', { link: string; action: string; latency_ms: number[]; action_ms: number[]; start_ms: number[]; warmup_ms: number; checked: number }>
  /** Guest script start → the daemon ready, and the cycles' wall time, ms. */
  ready_ms: number
  cycles_ms: number
  error?: string
}
