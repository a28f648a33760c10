/** Helpers for the control socket tests: temp dirs, a recording logger, a raw line-level connection. */
import net from 'node:net'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { ControlServer, type ControlServerOptions } from '../../appliance/control/server.js'

/** A fresh dir under the system temp dir (short, so socket paths stay under 107 bytes), removed at teardown. */
export async function tempDir(t: Test): Promise<string> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'kctl-'))
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }))
  return dir
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn'
  msg: string
  fields: Record<string, unknown> | undefined
}

export function recordingLog(): { entries: LogEntry[]; debug: (m: string, f?: Record<string, unknown>) => void; info: (m: string, f?: Record<string, unknown>) => void; warn: (m: string, f?: Record<string, unknown>) => void } {
  const entries: LogEntry[] = []
  return {
    entries,
    debug: (msg, fields) => entries.push({ level: 'debug', msg, fields }),
    info: (msg, fields) => entries.push({ level: 'info', msg, fields }),
    warn: (msg, fields) => entries.push({ level: 'warn', msg, fields }),
  }
}

/** A listening ControlServer at <dir>/control.sock, closed at teardown. */
export async function startServer(t: Test, dir: string, options: Omit<ControlServerOptions, 'path'> & { path?: string }): Promise<ControlServer> {
  const server = new ControlServer({ path: join(dir, 'control.sock'), groupFile: join(dir, 'no-group-file'), ...options })
  await server.listen()
  t.teardown(() => server.close())
  return server
}

/** A raw connection speaking bytes and reading '\n'-terminated lines as JSON. */
export class RawConn {
  private buf = ''
  private readonly lines: unknown[] = []
  private waiters: Array<() => void> = []
  ended = false
  readonly closed: Promise<void>

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (s: string) => {
      this.buf += s
      let nl: number
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        const line = this.buf.slice(0, nl)
        this.buf = this.buf.slice(nl + 1)
        this.lines.push(JSON.parse(line))
      }
      this.wake()
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.ended = true
        this.wake()
        resolve()
      }),
    )
  }

  static connect(path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path)
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new RawConn(s))
      })
    })
  }

  send(data: string | Buffer): void {
    this.socket.write(data)
  }

  /** The next response line (parsed), or rejects after `ms` / when the connection closes first. */
  async next(ms = 5000): Promise<any> {
    const end = Date.now() + ms
    while (this.lines.length === 0) {
      if (this.ended) throw new Error('connection closed with no further line')
      const left = end - Date.now()
      if (left <= 0) throw new Error(`no line within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.lines.shift()
  }

  /** Lines received and not yet taken. */
  get buffered(): number {
    return this.lines.length
  }

  destroy(): void {
    this.socket.destroy()
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
