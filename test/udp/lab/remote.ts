/**
 * The test side of lab/peer.ts: a UdpLink running in another network namespace, driven over the
 * child's stdio. `RemoteLink` puts the Link contract in front of it so that the conformance suite
 * can use it as its `b` end: state, frames and counters are mirrored from the child's events;
 * send() checks what it can here and returns true (the far end's backpressure is not mirrored,
 * and the suite only measures backpressure on `a`).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Link, LinkEvents, LinkKind, LinkQuality, LinkState, LinkStats, ReceivedFrame, SendOptions } from '../../../drivers/link.js'
import type { UdpLinkOptions, UdpNeighbour } from '../../../drivers/udp/link.js'

const HERE = dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = resolve(HERE, '..', '..', '..')
const PEER = join(HERE, 'peer.ts')

export interface RemoteError {
  name?: string
  message?: string
  code?: string
  field?: string
}

interface Answer {
  id: number
  ok: boolean
  result?: unknown
  error?: RemoteError
}

type PeerEvent =
  | { ev: 'ready'; name: string; mtu: number; bitrate: number; stats: LinkStats }
  | { ev: 'state'; state: LinkState; stats: LinkStats }
  | { ev: 'frame'; data: string; from?: string; at: number; stats: LinkStats }
  | { ev: 'neighbour'; neighbour: UdpNeighbour }
  | { ev: 'dropped'; reason: string; bytes: number; stats: LinkStats }
  | { ev: 'error' | 'fatal'; error: RemoteError }

/** A failed remote call, carrying what the far end threw. */
export class RemoteCallError extends Error {
  constructor(
    op: string,
    readonly remote: RemoteError,
  ) {
    super(`remote ${op} failed: ${remote.name ?? 'Error'}: ${remote.message ?? ''}`)
    this.name = 'RemoteCallError'
  }
}

export interface RemoteLink {
  on(event: 'neighbour', listener: (n: UdpNeighbour) => void): this
  on<K extends keyof LinkEvents>(event: K, listener: (...args: LinkEvents[K]) => void): this
}

export class RemoteLink extends EventEmitter<LinkEvents> implements Link {
  readonly kind: LinkKind = 'udp'
  name = ''
  mtu = 0
  bitrate = 0
  private _state: LinkState = 'closed'
  private lastStats: LinkStats | null = null
  private nextId = 1
  private readonly pending = new Map<number, { op: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private stderr = ''
  private exited = false
  private exitP: Promise<void> = Promise.resolve()
  private onReady: () => void = () => {}
  /** Answers to fire-and-forget sends that failed on the far end. */
  readonly sendErrors: RemoteError[] = []

  private constructor(private readonly child: ChildProcess) {
    super()
  }

  /** Starts `peer.ts` in network namespace `ns` (or here, when ns is null) with `opts`. */
  static async start(ns: string | null, opts: UdpLinkOptions, timeoutMs = 20_000): Promise<RemoteLink> {
    const argv = [process.execPath, '--import=tsx', PEER, JSON.stringify(opts)]
    const [cmd, ...args] = ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv]
    const child = spawn(cmd!, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
    const r = new RemoteLink(child)
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (s: string) => {
      r.stderr = (r.stderr + s).slice(-8192)
    })
    const ready = new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`peer in ${ns ?? 'this namespace'} did not start in ${timeoutMs} ms: ${r.stderr}`)), timeoutMs)
      r.onReady = () => {
        clearTimeout(timer)
        res()
      }
      child.once('exit', (code) => {
        clearTimeout(timer)
        rej(new Error(`peer in ${ns ?? 'this namespace'} exited (${code}) before it was ready: ${r.stderr}`))
      })
    })
    r.exitP = new Promise<void>((res) => child.once('exit', () => res()))
    child.once('exit', () => {
      r.exited = true
      for (const p of r.pending.values()) p.reject(new Error(`peer exited during ${p.op}: ${r.stderr}`))
      r.pending.clear()
    })
    createInterface({ input: child.stdout! }).on('line', (line) => r.onLine(line))
    await ready
    return r
  }

  private onLine(line: string): void {
    let m: Answer | PeerEvent
    try {
      m = JSON.parse(line) as Answer | PeerEvent
    } catch {
      this.stderr += `[stdout] ${line}\n`
      return
    }
    if ('id' in m) {
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (m.ok) p?.resolve(m.result)
      else p?.reject(new RemoteCallError(p.op, m.error ?? {}))
      return
    }
    if ('stats' in m) this.lastStats = m.stats
    switch (m.ev) {
      case 'ready':
        this.name = m.name
        this.mtu = m.mtu
        this.bitrate = m.bitrate
        this.onReady()
        break
      case 'state':
        this._state = m.state
        this.emit('state', m.state)
        break
      case 'frame': {
        const f: ReceivedFrame = { data: Buffer.from(m.data, 'hex'), at: m.at, ...(m.from === undefined ? {} : { from: m.from }) }
        this.emit('frame', f)
        break
      }
      case 'neighbour':
        ;(this as EventEmitter).emit('neighbour', m.neighbour)
        break
      case 'dropped':
        this.emit('dropped', { reason: m.reason, bytes: m.bytes })
        break
      case 'error':
      case 'fatal':
        this.stderr += `[${m.ev}] ${JSON.stringify(m.error)}\n`
        break
    }
  }

  /** Runs one command on the far end. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`peer has exited: ${this.stderr}`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { op, resolve: resolve as (v: unknown) => void, reject })
      this.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`)
    })
  }

  get state(): LinkState {
    return this._state
  }

  async open(): Promise<void> {
    if (this._state !== 'closed') throw new TypeError(`link ${this.name} is already ${this._state}`)
    await this.call('open')
  }

  send(frame: Uint8Array, opts: SendOptions = {}): boolean {
    if (frame.length === 0 || frame.length > this.mtu) throw new TypeError(`frame of ${frame.length} bytes is outside 1..${this.mtu} (MTU of link ${this.name})`)
    if (this._state === 'closed' || this._state === 'closing') throw new TypeError(`link ${this.name} is ${this._state}`)
    this.call('send', { data: Buffer.from(frame).toString('hex'), ...opts }).catch((err: unknown) => {
      this.sendErrors.push(err instanceof RemoteCallError ? err.remote : { message: String(err) })
    })
    return true
  }

  /** send() on the far end, answering with what it returned or threw. */
  sendThere(frame: Uint8Array, opts: SendOptions = {}): Promise<boolean> {
    return this.call<boolean>('send', { data: Buffer.from(frame).toString('hex'), ...opts })
  }

  neighbours(): Promise<UdpNeighbour[]> {
    return this.call<UdpNeighbour[]>('neighbours')
  }

  async close(): Promise<void> {
    if (!this.exited) await this.call('close')
  }

  abort(): void {
    void this.call('abort').catch(() => undefined)
  }

  quality(): LinkQuality {
    return {}
  }

  stats(): LinkStats {
    return this.lastStats ?? { state: this._state, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, queued: 0, dropped: {}, errors: {}, downs: 0 }
  }

  /** Closes the link there and ends the process (SIGKILL after 3 s). */
  async stop(): Promise<void> {
    if (this.exited) return
    const gone = this.exitP
    await this.close().catch(() => undefined)
    this.child.stdin!.end()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(timer)
  }
}
