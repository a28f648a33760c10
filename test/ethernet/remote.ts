/**
 * A Link whose driver runs in another network namespace: test/ethernet/peer.ts under
 * `ip netns exec`, spoken to over stdio. It mirrors the remote link's state, frames, stats and
 * events, so the shared conformance suite can use it as one end of a pair.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { EthernetLinkOptions } from '../../drivers/ethernet/pcap-link.js'
import type { RawIpLinkOptions } from '../../drivers/ethernet/raw-ip-link.js'
import type { Link, LinkEvents, LinkKind, LinkQuality, LinkState, LinkStats, SendOptions } from '../../drivers/link.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const REPO_ROOT = resolve(HERE, '..', '..')
const PEER = join(HERE, 'peer.ts')

interface Info {
  name: string
  kind: LinkKind
  mtu: number
  bitrate: number
  mac?: string
  address?: string
  transport?: string
}

interface Reply {
  id: number
  ok: boolean
  result?: unknown
  error?: { name: string; message: string; code?: string; field?: string }
}

interface Event {
  ev: string
  stats?: LinkStats
  state?: LinkState
  data?: string
  from?: string
  reason?: string
  bytes?: number
  message?: string
}

export type RemoteDriver = { driver: 'ethernet'; options: EthernetLinkOptions } | { driver: 'raw-ip'; options: RawIpLinkOptions }

export class RemoteLink extends EventEmitter<LinkEvents> implements Link {
  name = 'remote'
  kind: LinkKind = 'ethernet'
  mtu = 0
  bitrate = 0
  mac: string | undefined
  address: string | undefined
  private _state: LinkState = 'closed'
  private last: LinkStats = { state: 'closed', framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, queued: 0, dropped: {}, errors: {}, downs: 0 }
  private nextId = 1
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  private stderr = ''
  /** Errors the remote end reported (send refused, ...). */
  readonly remoteErrors: string[] = []
  private readonly exited: Promise<void>
  private onReady: () => void = () => undefined
  private readonly ready = new Promise<void>((r) => {
    this.onReady = r
  })

  private constructor(private readonly child: ChildProcess) {
    super()
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (s: string) => {
      this.stderr = (this.stderr + s).slice(-8192)
    })
    this.exited = new Promise((r) => child.once('exit', () => r()))
    void this.exited.then(() => {
      for (const p of this.pending.values()) p.reject(new Error(`peer exited: ${this.stderr}`))
      this.pending.clear()
    })
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line))
  }

  /** Starts the peer in namespace `ns` and creates its link. */
  static async start(ns: string, what: RemoteDriver): Promise<RemoteLink> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import=tsx', PEER], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
    const r = new RemoteLink(child)
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    try {
      await Promise.race([r.ready, r.exited.then(() => Promise.reject(new Error(`peer in ${ns} exited before it was ready: ${r.stderr}`)))])
    } finally {
      clearTimeout(timer)
    }
    const info = (await r.request({ op: 'create', ...what })) as Info
    r.apply(info)
    return r
  }

  private apply(info: Info): void {
    this.name = `remote:${info.name}`
    this.kind = info.kind
    this.mtu = info.mtu
    this.bitrate = info.bitrate
    this.mac = info.mac
    this.address = info.address
  }

  private onLine(line: string): void {
    let msg: Reply | Event
    try {
      msg = JSON.parse(line) as Reply | Event
    } catch {
      this.stderr += `[stdout] ${line}\n`
      return
    }
    if ('id' in msg) {
      const p = this.pending.get(msg.id)
      this.pending.delete(msg.id)
      if (p === undefined) return
      if (msg.ok) p.resolve(msg.result)
      else p.reject(Object.assign(new Error(msg.error?.message ?? 'remote error'), msg.error ?? {}))
      return
    }
    if (msg.stats !== undefined) this.last = msg.stats
    switch (msg.ev) {
      case 'ready':
        this.onReady()
        break
      case 'state':
        this._state = msg.state!
        this.emit('state', msg.state!)
        break
      case 'frame':
        this.emit('frame', { data: Buffer.from(msg.data!, 'base64'), ...(msg.from === undefined ? {} : { from: msg.from }), at: Date.now() })
        break
      case 'drain':
        this.emit('drain')
        break
      case 'dropped':
        this.emit('dropped', { reason: msg.reason!, bytes: msg.bytes! })
        break
      case 'error':
        this.remoteErrors.push(msg.message ?? '')
        break
    }
  }

  request(req: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++
    return new Promise((res, rej) => {
      this.pending.set(id, { resolve: res, reject: rej })
      this.child.stdin!.write(`${JSON.stringify({ id, ...req })}\n`)
    })
  }

  get state(): LinkState {
    return this._state
  }

  async open(): Promise<void> {
    if (this._state !== 'closed') throw new TypeError(`link ${this.name} is already ${this._state}`)
    this.apply((await this.request({ op: 'open' })) as Info)
  }

  /** Checks what the contract makes caller errors here, then sends through the peer. */
  send(frame: Uint8Array, opts: SendOptions = {}): boolean {
    if (frame.length === 0 || frame.length > this.mtu) throw new TypeError(`frame of ${frame.length} bytes is outside 1..${this.mtu}`)
    if (this._state === 'closed' || this._state === 'closing') throw new TypeError(`link ${this.name} is ${this._state}`)
    this.request({ op: 'send', data: Buffer.from(frame).toString('base64'), ...(opts.to === undefined ? {} : { to: opts.to }) }).catch((e: Error) => this.remoteErrors.push(e.message))
    return true
  }

  /** Makes the peer answer every frame to its sender, unicast, with `prefix` + the frame (null: stop). */
  async echo(prefix: string | null): Promise<void> {
    await this.request({ op: 'echo', prefix })
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return
    await this.request({ op: 'close' })
  }

  abort(): void {
    void this.request({ op: 'abort' }).catch(() => undefined)
  }

  /** The remote link's stats as of its last event. */
  stats(): LinkStats {
    return { ...this.last, state: this._state }
  }

  /** Asks the peer for its stats now. */
  async freshStats(): Promise<LinkStats> {
    this.last = (await this.request({ op: 'stats' })) as LinkStats
    return this.stats()
  }

  quality(): LinkQuality {
    return {}
  }

  /** Ends the peer: stdin closed (it closes its link), SIGKILL after 3 s. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.stdin!.end()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await this.exited
    clearTimeout(timer)
  }
}
