/**
 * What every link driver shares: the state machine, the bounded priority queue with
 * backpressure, and the counters of the Link contract (drivers/link.ts). A driver extends it and
 * implements how frames reach the medium (`transmitNext`) and how the medium is opened and
 * closed; it calls `deliver()` for what arrives and `mediumLost()` when the medium goes away.
 */
import { EventEmitter } from 'node:events'
import { ResourceLimitError } from '../appliance/core/errors.js'
import type { Link, LinkEvents, LinkKind, LinkQuality, LinkState, LinkStats, Priority, ReceivedFrame, SendOptions, TapHandle, TapInterface, TapPacket, TapSink } from './link.js'

export interface QueuedFrame {
  data: Buffer
  priority: Priority
  to?: string
  enqueuedAt: number
}

export interface BaseLinkOptions {
  name: string
  /** Hard bound on queued frames: beyond it send() throws ResourceLimitError. */
  queueLimit?: number
  /** send() returns false at or above this many queued frames; `drain` fires below it. */
  highWater?: number
  /** Reconnect backoff after the medium is lost, ms. */
  backoffInitialMs?: number
  backoffMaxMs?: number
  now?: () => number
}

export abstract class BaseLink extends EventEmitter<LinkEvents> implements Link {
  readonly name: string
  abstract readonly kind: LinkKind
  abstract readonly mtu: number
  abstract readonly bitrate: number
  protected readonly now: () => number
  protected readonly queueLimit: number
  protected readonly highWater: number
  private readonly backoffInitialMs: number
  private readonly backoffMaxMs: number
  private readonly queues: [QueuedFrame[], QueuedFrame[], QueuedFrame[]] = [[], [], []]
  private queuedCount = 0
  private wantDrain = false
  private _state: LinkState = 'closed'
  private reconnectTimer: NodeJS.Timeout | null = null
  private backoffMs: number
  private openAbort: AbortController | null = null
  protected readonly counters = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, downs: 0 }
  protected readonly dropped: Record<string, number> = {}
  protected readonly errors: Record<string, number> = {}

  constructor(opts: BaseLinkOptions) {
    super()
    this.name = opts.name
    this.now = opts.now ?? Date.now
    this.queueLimit = opts.queueLimit ?? 256
    this.highWater = opts.highWater ?? 32
    if (this.highWater > this.queueLimit) throw new TypeError('highWater must not exceed queueLimit')
    this.backoffInitialMs = opts.backoffInitialMs ?? 250
    this.backoffMaxMs = opts.backoffMaxMs ?? 10_000
    this.backoffMs = this.backoffInitialMs
  }

  get state(): LinkState {
    return this._state
  }

  protected setState(s: LinkState): void {
    if (this._state === s) return
    this._state = s
    this.emit('state', s)
  }

  /** Opens the medium (device, socket, interface). Rejects if it cannot be reached. */
  protected abstract connect(signal: AbortSignal): Promise<void>
  /** Releases the medium. Must not throw. */
  protected abstract disconnect(): Promise<void>
  /**
   * Called whenever frames are queued and the link is up: take frames with `dequeue()` and put
   * them on the medium while the medium can take them. Must not throw.
   */
  protected abstract pump(): void
  /** How many queued frames one `send()` of `frame` becomes (fragmentation). */
  protected split(frame: Buffer): Buffer[] {
    return [frame]
  }
  /** Extra reason to report backpressure (e.g. an airtime budget that is spent). */
  protected congested(): boolean {
    return false
  }

  async open(signal?: AbortSignal): Promise<void> {
    if (this._state === 'up' || this._state === 'opening' || this._state === 'down') throw new TypeError(`link ${this.name} is already ${this._state}`)
    if (this._state === 'closing') throw new TypeError(`link ${this.name} is closing`)
    const ac = new AbortController()
    this.openAbort = ac
    const onAbort = () => ac.abort(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    this.setState('opening')
    try {
      await this.connect(ac.signal)
      if (ac.signal.aborted) throw ac.signal.reason ?? new Error('aborted')
    } catch (err) {
      await this.disconnect()
      this.setState('closed')
      throw err
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
    this.backoffMs = this.backoffInitialMs
    this.setState('up')
    this.kick()
  }

  send(frame: Uint8Array, opts: SendOptions = {}): boolean {
    if (!(frame instanceof Uint8Array)) throw new TypeError('frame must be a Uint8Array')
    if (frame.length === 0 || frame.length > this.mtu) throw new TypeError(`frame of ${frame.length} bytes is outside 1..${this.mtu} (MTU of link ${this.name})`)
    if (this._state === 'closed' || this._state === 'closing') throw new TypeError(`link ${this.name} is ${this._state}`)
    const priority = opts.priority ?? 1
    const parts = this.split(Buffer.from(frame))
    if (this.queuedCount + parts.length > this.queueLimit) {
      throw new ResourceLimitError(`link ${this.name}: queue full (${this.queuedCount} of ${this.queueLimit} frames); wait for 'drain'`)
    }
    const at = this.now()
    for (const data of parts) this.queues[priority].push({ data, priority, enqueuedAt: at, ...(opts.to === undefined ? {} : { to: opts.to }) })
    this.queuedCount += parts.length
    this.kick()
    const ok = this.queuedCount < this.highWater && !this.congested()
    if (!ok) this.wantDrain = true
    return ok
  }

  /** Next frame to transmit, highest priority first, or undefined. */
  protected dequeue(): QueuedFrame | undefined {
    for (const q of this.queues) {
      const f = q.shift()
      if (f !== undefined) {
        this.queuedCount--
        return f
      }
    }
    return undefined
  }

  /** Puts a frame back at the head of its queue (the medium could not take it after all). */
  protected requeue(f: QueuedFrame): void {
    this.queues[f.priority].unshift(f)
    this.queuedCount++
  }

  protected peek(): QueuedFrame | undefined {
    return this.queues[0][0] ?? this.queues[1][0] ?? this.queues[2][0]
  }

  protected get queued(): number {
    return this.queuedCount
  }

  /** Counts a frame that left on the medium, and fires `drain` when the queue is low again. */
  protected sent(bytes: number): void {
    this.counters.framesOut++
    this.counters.bytesOut += bytes
    this.maybeDrain()
  }

  protected maybeDrain(): void {
    if (this.wantDrain && this.queuedCount < this.highWater && !this.congested()) {
      this.wantDrain = false
      this.emit('drain')
    }
  }

  /** Counts and reports a frame dropped after it was accepted. */
  protected drop(reason: string, bytes: number): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
    this.emit('dropped', { reason, bytes })
    this.maybeDrain()
  }

  protected countError(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1
  }

  /** Emits a received frame. */
  protected deliver(f: ReceivedFrame): void {
    this.counters.framesIn++
    this.counters.bytesIn += f.data.length
    this.emit('frame', f)
  }

  protected kick(): void {
    if (this._state === 'up' && this.queuedCount > 0) this.pump()
  }

  /**
   * The medium went away while up: go `down`, release it, and retry `connect()` with
   * exponential backoff until it works or the link is closed.
   */
  protected mediumLost(reason: string): void {
    if (this._state !== 'up') return
    this.counters.downs++
    this.countError(`down:${reason}`)
    this.setState('down')
    void this.disconnect().then(() => this.scheduleReconnect())
  }

  private scheduleReconnect(): void {
    if (this._state !== 'down') return
    const delay = this.backoffMs
    this.backoffMs = Math.min(this.backoffMs * 2, this.backoffMaxMs)
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      if (this._state !== 'down') return
      const ac = new AbortController()
      this.openAbort = ac
      this.connect(ac.signal).then(
        () => {
          if (this._state !== 'down') return void this.disconnect()
          this.backoffMs = this.backoffInitialMs
          this.setState('up')
          this.kick()
        },
        (err: Error) => {
          this.countError(`reconnect:${(err as { code?: string }).code ?? err.name}`)
          void this.disconnect().then(() => this.scheduleReconnect())
        },
      )
    }, delay)
  }

  async close(): Promise<void> {
    if (this._state === 'closed') return
    if (this._state === 'closing') return new Promise((r) => this.once('state', () => r()))
    this.setState('closing')
    this.stopReconnect()
    await this.flush()
    this.failQueued('closed')
    await this.disconnect()
    this.setState('closed')
  }

  abort(reason?: Error): void {
    if (this._state === 'closed') return
    this.stopReconnect()
    this.openAbort?.abort(reason)
    this.failQueued('aborted')
    this.setState('closing')
    void this.disconnect().then(() => this.setState('closed'))
  }

  /** Waits (bounded) for queued frames to leave before close. Drivers may override. */
  protected async flush(): Promise<void> {
    const deadline = this.now() + 2000
    while (this.queuedCount > 0 && this.now() < deadline && this._state === 'closing') {
      this.pump()
      await new Promise((r) => setTimeout(r, 10))
    }
  }

  private failQueued(reason: string): void {
    for (const q of this.queues) {
      for (const f of q.splice(0)) this.drop(reason, f.data.length)
    }
    this.queuedCount = 0
  }

  private stopReconnect(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
  }

  quality(): LinkQuality {
    return {}
  }

  // ---- capture taps -------------------------------------------------------------------------
  private readonly taps = new Set<TapSink>()

  /** True while a capture taps this link: drivers build tap packets only then. */
  protected get tapping(): boolean {
    return this.taps.size > 0
  }

  /** Hands a packet to every tap. A failing sink is removed, never allowed to hurt the link. */
  protected tap(p: TapPacket): void {
    for (const sink of this.taps) {
      try {
        sink(p)
      } catch {
        this.taps.delete(sink)
        this.countError('tap-failed')
      }
    }
  }

  /** Drivers that can be captured override this (and call `tap()` where frames cross). */
  tapInterfaces(): TapInterface[] {
    return []
  }

  async startTap(sink: TapSink): Promise<TapHandle> {
    if (this.tapInterfaces().length === 0) throw new TypeError(`link ${this.name} (${this.kind}) cannot be captured`)
    this.taps.add(sink)
    return {
      stop: async () => {
        this.taps.delete(sink)
      },
    }
  }

  stats(): LinkStats {
    return { state: this._state, ...this.counters, queued: this.queuedCount, dropped: { ...this.dropped }, errors: { ...this.errors } }
  }
}
