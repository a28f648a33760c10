/**
 * Helpers for the lab tests: run `kairo-gw lab ...` as a process, watch its progress lines,
 * and check that nothing of a run prefix is left (namespaces, interfaces, processes, run dirs).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runDirs, prefixInUse } from '../../appliance/lab/clean.js'
import { labProcesses, listNamespaces, listRootLinks } from '../../appliance/lab/sys.js'
import type { Test } from 'tap'
import { hasCommand, requirePart } from '../lib/parts.js'
import { until } from '../lib/until.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const STAND_IN = join(ROOT, 'test', 'lab', 'stand-in-gateway.ts')
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')
const LOCAL_CLI = join(ROOT, 'test', 'lab', 'cli.ts')

/** Root, iproute2 with namespaces, and socat: what `lab run` needs. */
export function requireLabParts(test: Test): boolean {
  const t = test as unknown as Parameters<typeof requirePart>[0]
  const root = process.getuid?.() === 0
  return requirePart(t, root, 'root (network namespaces)') && requirePart(t, hasCommand('ip', ['netns', 'list']), 'iproute2 (ip netns)') && requirePart(t, hasCommand('socat', ['-V']), 'socat')
}

let cliArgs: string[] | undefined
/** The real CLI once program.ts registers `lab`, else the lab-only program of test/lab/cli.ts. */
async function cli(): Promise<string[]> {
  if (cliArgs === undefined) {
    const { buildProgram } = await import('../../appliance/cli/program.js')
    const registered = buildProgram().commands.some((c) => c.name() === 'lab')
    cliArgs = registered ? [BIN] : ['--import=tsx', LOCAL_CLI]
  }
  return cliArgs
}

let next = 0
/** A prefix no one uses now (kl9xxx: away from kl<pid%10000> of interactive runs, mostly). */
export async function freePrefix(): Promise<string> {
  for (let k = 0; k < 200; k++) {
    const p = `kl${9000 + ((process.pid * 7 + next++ * 13) % 1000)}`
    if ((await prefixInUse(p)).length === 0) return p
  }
  throw new Error('no free lab prefix')
}

export interface LabProc {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves once stderr matches `re`. */
  waitFor(re: RegExp, ms?: number): Promise<void>
}

export async function startLab(args: string[], env: NodeJS.ProcessEnv = {}): Promise<LabProc> {
  const child = spawn(process.execPath, [...(await cli()), 'lab', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s))
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s))
  let done = false
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('close', (code, signal) => {
      done = true
      res({ code, signal })
    }),
  )
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    async waitFor(re, ms = 60_000) {
      await until(`lab stderr to match ${String(re)} (stderr so far: ${err.slice(-2000)})`, ms, () => re.test(err) || done)
      if (!re.test(err)) throw new Error(`lab exited before ${String(re)}: ${err.slice(-3000)}`)
    },
  }
}

export async function runLabCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = await startLab(args, env)
  const { code } = await p.exit
  return { code, stdout: p.stdout(), stderr: p.stderr() }
}

/** Everything of `prefix` that still exists; empty when the run cleaned up after itself. */
export async function leftovers(prefix: string, opts: { ignoreRunDirs?: boolean } = {}): Promise<string[]> {
  const needle = `/kairo-lab-${prefix}-`
  const [nss, links] = await Promise.all([listNamespaces(), listRootLinks()])
  return [
    ...nss.filter((n) => n.startsWith(`${prefix}-`)).map((n) => `namespace ${n}`),
    ...links.filter((n) => n.startsWith(`${prefix}-`)).map((n) => `interface ${n}`),
    ...labProcesses((cmd) => cmd.includes(needle)).map((p) => `process ${p.pid}: ${p.cmd}`),
    ...(opts.ignoreRunDirs === true
      ? []
      : runDirs()
          .filter((r) => r.prefix === prefix && existsSync(r.dir))
          .map((r) => `run dir ${r.dir}`)),
  ]
}

/** Polls leftovers() until empty (processes take a moment to be reaped) or `ms`. */
export async function settledLeftovers(prefix: string, ms = 5000, opts: { ignoreRunDirs?: boolean } = {}): Promise<string[]> {
  const end = Date.now() + ms
  for (;;) {
    const l = await leftovers(prefix, opts)
    if (l.length === 0 || Date.now() > end) return l
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Asserts the exit code; on a mismatch the lab's stderr goes into the test output. */
export function exitCode(t: Test, code: number | null, wanted: number, stderr: string): boolean {
  const ok = t.equal(code, wanted, `exit ${wanted}`)
  if (!ok) t.comment(`lab stderr:\n${stderr}`)
  return ok
}
