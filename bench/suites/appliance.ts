/**
 * The appliance (issue 5), the daemon as systemd runs it (compiled dist/, --max-semi-space-size=2)
 * on the embedded default (UDP on loopback and an emulated LoRa radio: socat and the MCU emulator
 * in-process), in fresh temporary state:
 *
 * - daemon_start_ready_first_ms: process spawn to its `ready` line on a first start (identity,
 *   UUID, mesh IP, VoV genesis and log key created). `vs.goal` = value / 1000 ms (below 1: met).
 * - daemon_start_ready_ms: the same on a restart with that state (the usual case after a reboot),
 *   median of 5.
 * - daemon_rss_idle_mb: resident memory 3 s after ready, nothing flowing; `vs.goal` = value / 80 MB.
 *
 * "ready" is when the control socket listens and READY=1 would be sent to systemd: the links have
 * been opened (the emulated radio answered its handshake), so this includes their start.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, type BenchContext, type BenchResult, type Suite } from '../lib.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DIST_MAIN = join(ROOT, 'dist', 'appliance', 'cli', 'main.js')
const NODE_FLAGS = ['--max-semi-space-size=2']

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

interface Started {
  ms: number
  pid: number
  stop(): Promise<void>
}

function startDaemon(stateDir: string): Promise<Started> {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KAIRO_') && k !== 'NOTIFY_SOCKET') env[k] = v
  const t0 = performance.now()
  const p = spawn(process.execPath, [...NODE_FLAGS, DIST_MAIN, 'run', '--embedded', '--port', '0', '--state-dir', stateDir, '--json'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<void>((r) => p.once('exit', () => r()))
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => {
      p.kill('SIGKILL')
      reject(new Error(`the daemon was not ready within 30 s: ${err}`))
    }, 30_000)
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (!out.includes('"event":"ready"')) return
      clearTimeout(timer)
      const ms = performance.now() - t0
      p.stdout!.removeAllListeners('data')
      p.stdout!.resume()
      resolve({
        ms,
        pid: p.pid!,
        async stop() {
          p.kill('SIGTERM')
          await exited
        },
      })
    })
    p.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`the daemon exited (${String(code)}) before ready: ${err}`))
    })
  })
}

export const suite: Suite = {
  name: 'appliance',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    ctx.progress('appliance: compiling the daemon (tsc -p tsconfig.build.json)')
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
    const dir = mkdtempSync(join(tmpdir(), 'kb-'))
    try {
      const state = join(dir, 'state')
      ctx.progress('appliance: first start (keys and logs created)')
      const first = await startDaemon(state)
      await new Promise((r) => setTimeout(r, 3000))
      const rss = rssMb(first.pid)
      await first.stop()
      const warm: number[] = []
      for (let i = 0; i < 5; i++) {
        ctx.progress(`appliance: restart ${i + 1}/5`)
        const d = await startDaemon(state)
        warm.push(d.ms)
        await d.stop()
      }
      const warmMs = median(warm)
      return [
        { id: 'daemon_start_ready_first_ms', value: first.ms, unit: 'ms', vs: { goal: first.ms / 1000 } },
        { id: 'daemon_start_ready_ms', value: warmMs, unit: 'ms', vs: { goal: warmMs / 1000 } },
        { id: 'daemon_rss_idle_mb', value: rss, unit: 'MB', vs: { goal: rss / 80 } },
      ]
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  },
}
