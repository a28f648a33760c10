/**
 * Real serial lines for tests: socat PTY pairs (plug, unplug, replug), a host-side port reader,
 * and the companion-MCU emulator as a child process.
 *
 *   if (!requireSocat(t)) return
 *   const dir = await tempDir(t)
 *   const pair = await ptyPair(dir, 'gw-a'); t.teardown(() => pair.close())
 *   // pair.host: what the gateway opens; pair.mcu: what the emulator opens
 *   await pair.kill()     // unplug (socat gone: both PTYs vanish)
 *   await pair.restart()  // replug (same link paths)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { SerialPort } from 'serialport'
import type { Test } from 'tap'
import type { EmulatorEvent } from '../../firmware-bridge/emulator/main.js'
import { hasCommand, requirePart } from './parts.js'

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const EMULATOR_MAIN = join(REPO_ROOT, 'firmware-bridge', 'emulator', 'main.ts')

let socat: boolean | undefined
/** True when socat runs here (checked once). */
export function socatAvailable(): boolean {
  socat ??= hasCommand('socat', ['-V'])
  return socat
}

/**
 * requirePart for socat: skips `t` without it (fails under KAIRO_REQUIRE_ALL=1). Takes a tap
 * Test (whose overloaded skip() does not match parts.ts's narrow interface, though it behaves so).
 */
export function requireSocat(t: Test): boolean {
  return requirePart(t as unknown as Parameters<typeof requirePart>[0], socatAvailable(), 'socat')
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A fresh directory under the OS temp dir (short paths for PTY links), removed at teardown. */
export async function tempDir(t?: Teardown, prefix = 'kairo-pty-'): Promise<string> {
  const dir = await fsp.mkdtemp(join(tmpdir(), prefix))
  t?.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

async function until(what: string, ok: () => boolean, timeoutMs: number, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail() === '' ? '' : `: ${detail()}`}`)
    await sleep(10)
  }
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })))
}

export interface PtyPair {
  /** The host end (the gateway's serial device). */
  readonly host: string
  /** The MCU end (the emulator's serial device). */
  readonly mcu: string
  /** True while socat runs (plugged in). */
  readonly plugged: boolean
  /** socat's process ID while plugged. */
  readonly pid: number | undefined
  /**
   * Unplug: stops socat and waits for it to exit. With SIGTERM (default) socat removes its links;
   * SIGKILL leaves them dangling, and the harness then removes them unless `keepLinks`: a
   * dangling link names a /dev/pts number that another PTY pair (a parallel test) may be given
   * next, and whoever reopens the path would then be talking to someone else's line.
   */
  kill(signal?: 'SIGTERM' | 'SIGKILL', opts?: { keepLinks?: boolean }): Promise<void>
  /** Replug: (stops socat if needed and) starts it again on the same link paths. */
  restart(): Promise<void>
  /** Unplugs and removes the links. For t.teardown. */
  close(): Promise<void>
}

/**
 * Starts `socat -d -d pty,raw,echo=0,link=<dir>/<name>-host pty,raw,echo=0,link=<dir>/<name>-mcu`
 * and resolves once socat is moving data and both links resolve.
 */
export async function ptyPair(dir: string, name: string, opts: { timeoutMs?: number } = {}): Promise<PtyPair> {
  const host = join(dir, `${name}-host`)
  const mcu = join(dir, `${name}-mcu`)
  const timeoutMs = opts.timeoutMs ?? 5000
  let child: ChildProcess | undefined
  let stderr = ''

  const start = async () => {
    stderr = ''
    const c = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${mcu}`], { stdio: ['ignore', 'ignore', 'pipe'] })
    child = c
    c.stderr!.setEncoding('utf8')
    c.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-8192)
    })
    const spawnError = new Promise<never>((_, rej) => c.once('error', rej))
    spawnError.catch(() => undefined)
    await Promise.race([
      until(`socat ${name} to start`, () => c.exitCode !== null || (stderr.includes('starting data transfer loop') && existsSync(host) && existsSync(mcu)), timeoutMs, () => stderr),
      spawnError,
    ])
    if (c.exitCode !== null) throw new Error(`socat ${name} exited with ${c.exitCode}: ${stderr}`)
  }

  const stop = async (signal: 'SIGTERM' | 'SIGKILL') => {
    const c = child
    child = undefined
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const done = exited(c)
    c.kill(signal)
    const timer = setTimeout(() => c.kill('SIGKILL'), 3000)
    await done
    clearTimeout(timer)
  }

  await start()
  const plugged = () => child !== undefined && child.exitCode === null && child.signalCode === null
  return {
    host,
    mcu,
    get plugged() {
      return plugged()
    },
    get pid() {
      return plugged() ? child?.pid : undefined
    },
    async kill(signal = 'SIGTERM', o = {}) {
      await stop(signal)
      if (o.keepLinks !== true) await Promise.all([fsp.rm(host, { force: true }), fsp.rm(mcu, { force: true })])
    },
    async restart() {
      await stop('SIGTERM')
      await start()
    },
    async close() {
      await stop('SIGTERM')
      await Promise.all([fsp.rm(host, { force: true }), fsp.rm(mcu, { force: true })])
    },
  }
}

/** A host-side serial port that keeps what it reads, for request/answer tests. */
export interface HostPort {
  readonly port: SerialPort
  /** Everything read so far (since the last clear()). */
  readonly received: Buffer
  /** True once the port closed (e.g. socat killed). */
  readonly closed: boolean
  write(bytes: Uint8Array | string): Promise<void>
  /** Resolves with `received` once `test` accepts it (a RegExp is matched against it as latin1 text). */
  waitFor(test: RegExp | ((received: Buffer) => boolean), timeoutMs?: number): Promise<Buffer>
  clear(): void
  close(): Promise<void>
}

/** Opens `path` with serialport (raw, 115200) and collects what arrives. */
export async function openHostPort(path: string, opts: { baudRate?: number } = {}): Promise<HostPort> {
  const port = new SerialPort({ path, baudRate: opts.baudRate ?? 115_200, autoOpen: false })
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())))
  let received = Buffer.alloc(0)
  let closed = false
  port.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d])
  })
  port.on('close', () => {
    closed = true
  })
  port.on('error', () => undefined)
  return {
    port,
    get received() {
      return received
    },
    get closed() {
      return closed
    },
    write: (bytes) =>
      new Promise<void>((res, rej) => {
        port.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes), (e) => (e ? rej(e) : port.drain(() => res())))
      }),
    async waitFor(test, timeoutMs = 5000) {
      const ok = typeof test === 'function' ? () => test(received) : () => test.test(received.toString('latin1'))
      await until(`serial data matching ${String(test)}`, ok, timeoutMs, () => JSON.stringify(received.toString('latin1').slice(-400)))
      return received
    },
    clear() {
      received = Buffer.alloc(0)
    },
    async close() {
      if (port.isOpen) await new Promise<void>((res) => port.close(() => res()))
    },
  }
}

export type ReadyEvent = Extract<EmulatorEvent, { event: 'ready' }>

export interface EmulatorProcess {
  readonly pid: number
  readonly ready: ReadyEvent
  /** Every JSON event line so far, in order. */
  readonly events: readonly EmulatorEvent[]
  /** stderr so far (last 16 KiB). */
  readonly stderr: string
  /** Resolves when the process exits. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Index to pass as `after` to waitFor: only events from now on count. */
  mark(): number
  /** The first event (at index >= after, default 0) that `pred` accepts. */
  waitFor<E extends EmulatorEvent = EmulatorEvent>(pred: (e: EmulatorEvent) => boolean, opts?: { after?: number; timeoutMs?: number }): Promise<E>
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** stop(), with SIGKILL after 3 s. For t.teardown. */
  close(): Promise<void>
}

/**
 * Spawns `node --import=tsx firmware-bridge/emulator/main.ts --config <configPath> --log json`
 * and resolves once it printed its `ready` line.
 */
export async function startEmulatorProcess(configPath: string, opts: { timeoutMs?: number; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<EmulatorProcess> {
  const child = spawn(process.execPath, ['--import=tsx', EMULATOR_MAIN, '--config', configPath, '--log', 'json', ...(opts.args ?? [])], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
  })
  const events: EmulatorEvent[] = []
  let stderr = ''
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (s: string) => {
    stderr = (stderr + s).slice(-16_384)
  })
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as EmulatorEvent)
    } catch {
      stderr = (stderr + `[stdout] ${line}\n`).slice(-16_384)
    }
  })
  const exit = exited(child)
  const waitFor = async <E extends EmulatorEvent>(pred: (e: EmulatorEvent) => boolean, o: { after?: number; timeoutMs?: number } = {}): Promise<E> => {
    const after = o.after ?? 0
    let found: EmulatorEvent | undefined
    let gone = false
    void exit.then(() => {
      gone = true
    })
    await until(
      'an emulator event',
      () => {
        found = events.slice(after).find(pred)
        return found !== undefined || gone
      },
      o.timeoutMs ?? 10_000,
      () => `events ${JSON.stringify(events.slice(after).slice(-10))} stderr ${stderr}`,
    )
    if (found === undefined) {
      await sleep(50) // the last lines may still be in the pipe
      found = events.slice(after).find(pred)
    }
    if (found === undefined) throw new Error(`emulator exited (${JSON.stringify(await exit)}) before the event: ${stderr}`)
    return found as E
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exit
  }
  let ready: ReadyEvent
  try {
    ready = await waitFor<ReadyEvent>((e) => e.event === 'ready', { timeoutMs: opts.timeoutMs ?? 20_000 })
  } catch (e) {
    child.kill('SIGKILL')
    throw e
  }
  return {
    pid: child.pid!,
    ready,
    events,
    get stderr() {
      return stderr
    },
    exit,
    mark: () => events.length,
    waitFor,
    stop,
    async close() {
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await stop('SIGTERM')
      clearTimeout(timer)
    },
  }
}
