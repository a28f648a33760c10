/**
 * Real gateways for the daemon, SDK and admin CLI tests: `kairo-gw run` as a child process in temporary
 * state and runtime dirs, ready when its `ready` JSON line names the control socket; and the CLI
 * itself as a child process.
 *
 *   const a = await startGateway(t, { name: 'a' })                       // the embedded default, --port 0
 *   const [pa, pb] = await freeUdpPorts(2)
 *   const b = await startGateway(t, { name: 'b', udp: { port: pb, peers: [pa] } })   // --config FILE
 *   const r = await cli(['status', '--socket', a.socket, '--json'])
 */
import type { Test } from 'tap'
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { until } from './until.js'
import { ControlClient } from '../../appliance/control/client.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

/** A short directory (a control socket path holds 107 bytes), removed after the test. */
export function shortDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'kd-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface Gateway {
  name: string
  dir: string
  stateDir: string
  runtimeDir: string
  proc: ChildProcess
  nodeId: string
  socket: string
  ready: Record<string, unknown>
  /** stdout and stderr so far. */
  out(): string
  err(): string
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>
  /** SIGKILL and wait for the exit. */
  kill9(): Promise<void>
  /** The config file (config mode). */
  config?: string
}

export interface GatewayOptions {
  name: string
  /** With this, a config file with one UDP link on 127.0.0.1:port and static peers on loopback; else the embedded default on port 0. */
  udp?: { port: number; peers: number[] }
  /** Extra top-level YAML (e.g. 'store: { max_messages: 2 }'); config mode only. */
  yaml?: string
  announceIntervalS?: number
  /** Reuse this directory (a restart keeps identity, queues and socket path); default a new one. */
  dir?: string
  /** Extra environment (KAIRO_NODE_ID, NOTIFY_SOCKET, ...); the caller's KAIRO_* never leak in. */
  env?: Record<string, string>
  /** Extra YAML list items under links: (each a string of lines, indented as a list item). */
  links?: string[]
  /** Run the gateway inside this network namespace (`ip netns exec`, which execs: signals reach it). */
  netns?: string
}

function writeConfig(dir: string, o: GatewayOptions): string {
  const file = join(dir, 'config.yaml')
  const udp = o.udp!
  writeFileSync(
    file,
    [
      `node: { name: ${o.name} }`,
      `state_dir: ${join(dir, 'state')}`,
      `runtime_dir: ${join(dir, 'run')}`,
      'links:',
      '  - name: udp0',
      '    udp:',
      '      host: 127.0.0.1',
      `      port: ${udp.port}`,
      '      discovery: false',
      `      peers: [${udp.peers.map((p) => `"127.0.0.1:${p}"`).join(', ')}]`,
      ...(o.links ?? []),
      `mesh: { announce_interval_s: ${o.announceIntervalS ?? 1} }`,
      ...(o.yaml !== undefined ? [o.yaml] : []),
      '',
    ].join('\n'),
  )
  return file
}

/** Clean environment: the tests say where everything is; the caller's KAIRO_* must not leak in. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KAIRO_')) env[k] = v
  return { ...env, ...extra }
}

export async function startGateway(t: Test, o: GatewayOptions): Promise<Gateway> {
  const dir = o.dir ?? join(shortDir(t), o.name)
  mkdirSync(dir, { recursive: true })
  const stateDir = join(dir, 'state')
  const runtimeDir = join(dir, 'run')
  const config = o.udp !== undefined ? writeConfig(dir, o) : undefined
  const args =
    config !== undefined
      ? ['run', '--config', config, '--json']
      : ['run', '--port', '0', '--state-dir', stateDir, '--runtime-dir', runtimeDir, '--json']
  const argv = [process.execPath, BIN, ...args]
  const [cmd, ...rest] = o.netns !== undefined ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv
  const proc = spawn(cmd!, rest, { cwd: ROOT, env: cleanEnv(o.env), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await exited
    }
  })
  let ready: Record<string, unknown>
  try {
    ready = await until(`gateway ${o.name} ready`, 30_000, () => {
      if (proc.exitCode !== null) throw new Error(`gateway ${o.name} exited ${proc.exitCode}: ${err.trim()}`)
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue
        const e = JSON.parse(line) as Record<string, unknown>
        if (e.event === 'ready') return e
      }
      return undefined
    })
  } catch (e) {
    throw new Error(`${(e as Error).message}\nstdout: ${out}\nstderr: ${err}`)
  }
  return {
    name: o.name,
    dir,
    stateDir,
    runtimeDir,
    proc,
    nodeId: String(ready.node_id),
    socket: String(ready.control_socket),
    ready,
    out: () => out,
    err: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      return exited
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await exited
    },
    ...(config !== undefined ? { config } : {}),
  }
}

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The real kairo-gw binary as a child process. */
export function cli(args: string[], opts: { env?: Record<string, string>; uid?: number; gid?: number; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = { cwd: opts.cwd ?? ROOT, env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] }
    if (opts.uid !== undefined) spawnOpts.uid = opts.uid
    if (opts.gid !== undefined) spawnOpts.gid = opts.gid
    const p = spawn(process.execPath, [BIN, ...args], spawnOpts)
    let stdout = ''
    let stderr = ''
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** The one JSON object a `--json` command printed on stdout. */
export function json<T = Record<string, unknown>>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`not one JSON object on stdout (exit ${r.code}):\n${r.stdout}\nstderr: ${r.stderr}`)
  }
}

/** Two gateways on loopback UDP that know each other as static peers; resolves once each has a route to the other. */
export async function gatewayPair(t: Test, ports: [number, number], yaml?: string): Promise<[Gateway, Gateway]> {
  const [pa, pb] = ports
  const [a, b] = await Promise.all([
    startGateway(t, { name: 'a', udp: { port: pa, peers: [pb] }, ...(yaml !== undefined ? { yaml } : {}) }),
    startGateway(t, { name: 'b', udp: { port: pb, peers: [pa] }, ...(yaml !== undefined ? { yaml } : {}) }),
  ])
  await Promise.all([routeTo(a, b), routeTo(b, a)])
  return [a, b]
}

/** Resolves once `from` has a route to `to` (announces every second on loopback: a few seconds at most). */
export async function routeTo(from: Gateway, to: Gateway, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  const c = await ControlClient.connect(from.socket, { timeoutMs: 5000 })
  try {
    for (;;) {
      const r = await c.call<{ routes: Array<{ dst: string }> }>('routes')
      if (r.routes.some((x) => x.dst === to.nodeId)) return
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for a route from ${from.name} to ${to.name}`)
      await new Promise((res) => setTimeout(res, 100))
    }
  } finally {
    await c.close()
  }
}

/** One control-socket call to a gateway (a connection per call). */
export async function call<T = Record<string, unknown>>(gw: { socket: string }, method: string, params: Record<string, unknown> = {}): Promise<T> {
  const c = await ControlClient.connect(gw.socket, { timeoutMs: 10_000 })
  try {
    return await c.call<T>(method, params)
  } finally {
    await c.close()
  }
}
