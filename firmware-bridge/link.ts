/**
 * The reliable half of the firmware-bridge link layer, shared by the host (host.ts) and the MCU
 * side (device.ts): sequence numbers, cumulative acknowledgements, go-back-N retransmission,
 * heartbeats and liveness. It knows nothing of what messages mean, and does no I/O except
 * through the `write` function and the injected clock.
 *
 * Rules (docs/firmware-bridge.md, "Reliability"):
 * - A NEEDS_ACK frame takes the next sequence number (mod 256). At most `window` of them are
 *   unacknowledged; more wait in a local queue.
 * - Every non-SYN frame carries `ack`: the next seq its sender expects. It acknowledges every
 *   frame before it (cumulative).
 * - A receiver delivers a NEEDS_ACK frame only when its seq is the one expected; an older seq is
 *   a duplicate (acknowledged again, never delivered twice); a newer one follows a loss and is
 *   dropped (and the expected seq acknowledged again).
 * - If the oldest unacknowledged frame is not acknowledged within `ackTimeoutMs`, every
 *   unacknowledged frame is sent again, in order, with the current ack. After `maxRetries`
 *   such rounds without progress the peer is lost.
 * - A side that sent nothing for `heartbeatMs` sends a Heartbeat; a side that received no valid
 *   frame for `deadAfterHeartbeats` intervals declares the peer lost.
 */
import { ConnectionLostError } from '../appliance/core/errors.js'
import { encodeMessage, encodeWire, Flags, PROTOCOL_VERSION, type LinkFrame, type Message } from './codec.js'

/** A clock with one-shot timers. Structurally the emulator's Scheduler (firmware-bridge/emulator/scheduler.ts). */
export interface Clock {
  /** Monotonic time, ms. */
  now(): number
  /** Calls `fn` once after `ms`; the handle cancels it. */
  setTimeout(fn: () => void, ms: number): { cancel(): void }
}

/** Real time: performance.now() and the event loop's timers. */
export const realClock: Clock = Object.freeze({
  now: () => performance.now(),
  setTimeout(fn: () => void, ms: number) {
    const h = setTimeout(fn, Math.max(0, ms))
    return { cancel: () => clearTimeout(h) }
  },
})

/** Default acknowledgement timeout, ms: a 512-byte frame takes 44 ms at 115200 baud, each way. */
export const DEFAULT_ACK_TIMEOUT_MS = 200
/** Default retransmission rounds before the peer is declared lost. */
export const DEFAULT_MAX_RETRIES = 5
/** Default heartbeat interval, ms (Hello.heartbeat_ms). */
export const DEFAULT_HEARTBEAT_MS = 1000
/** Heartbeat intervals of silence after which the peer is lost. */
export const DEFAULT_DEAD_AFTER_HEARTBEATS = 3
/** Unacknowledged NEEDS_ACK frames a sender keeps in flight (the protocol allows up to 127). */
export const DEFAULT_WINDOW = 16
/** Largest window the 8-bit sequence space allows: a receiver must tell old from new. */
export const MAX_WINDOW = 127

/** A reliable message on its way: `seq` is -1 until it is first sent. */
export interface OutFrame {
  readonly message: Message
  readonly body: Buffer
  seq: number
  /** Called once when the peer acknowledges the frame. */
  onAck?: () => void
}

export interface ReliableLinkOptions {
  write(bytes: Uint8Array): void
  clock: Clock
  ackTimeoutMs: number
  maxRetries: number
  deadAfterHeartbeats: number
  window: number
  /** Longest local queue of reliable messages waiting for the window; more are refused. */
  maxQueue: number
  /** A message from the peer, in order, each exactly once (reliable) or as it came (unreliable). */
  onMessage(message: Message, frame: LinkFrame): void
  /** The peer is gone: the link has closed itself. */
  onLost(err: ConnectionLostError): void
}

export interface ReliableLinkStats {
  framesOut: number
  retransmits: number
  duplicates: number
  outOfOrder: number
  badAck: number
  acksSent: number
  heartbeatsSent: number
  dropped: number
}

export class ReliableLink {
  private readonly o: ReliableLinkOptions
  private open_ = false
  private txNext = 0
  private rxNext = 0
  private readonly inflight: OutFrame[] = []
  private readonly queue: OutFrame[] = []
  private retries = 0
  private ackOwed = false
  private heartbeatMs = DEFAULT_HEARTBEAT_MS
  private lastRx = 0
  private sentSinceTick = false
  private retransmitTimer: { cancel(): void } | null = null
  private tickTimer: { cancel(): void } | null = null
  readonly stats: ReliableLinkStats = { framesOut: 0, retransmits: 0, duplicates: 0, outOfOrder: 0, badAck: 0, acksSent: 0, heartbeatsSent: 0, dropped: 0 }

  constructor(options: ReliableLinkOptions) {
    if (!Number.isInteger(options.window) || options.window < 1 || options.window > MAX_WINDOW) throw new TypeError(`window must be 1..${MAX_WINDOW}`)
    this.o = options
  }

  get isOpen(): boolean {
    return this.open_
  }

  /** Reliable frames sent and not yet acknowledged. */
  get unacked(): number {
    return this.inflight.length
  }

  /** Reliable messages waiting for the window. */
  get queued(): number {
    return this.queue.length
  }

  /** Starts a session: both sequence spaces at 0, heartbeats every `heartbeatMs`. */
  open(heartbeatMs: number): void {
    this.close()
    this.open_ = true
    this.heartbeatMs = heartbeatMs
    this.lastRx = this.o.clock.now()
    this.sentSinceTick = false
    this.armTick()
  }

  /** Ends the session: timers stop, unsent and unacknowledged frames are forgotten. */
  close(): void {
    this.open_ = false
    this.txNext = 0
    this.rxNext = 0
    this.inflight.length = 0
    this.queue.length = 0
    this.retries = 0
    this.ackOwed = false
    this.retransmitTimer?.cancel()
    this.retransmitTimer = null
    this.tickTimer?.cancel()
    this.tickTimer = null
  }

  /** Prepares a reliable message without queueing it, so that the caller can record it first. */
  frame(message: Message, onAck?: () => void): OutFrame {
    const out: OutFrame = { message, body: encodeMessage(message), seq: -1 }
    if (onAck) out.onAck = onAck
    return out
  }

  /**
   * Queues a prepared message for reliable delivery (it is sent at once when the window allows;
   * `out.seq` is set then). False when the link is closed or the local queue is full.
   */
  enqueue(out: OutFrame): boolean {
    if (!this.open_) return false
    if (this.queue.length >= this.o.maxQueue) {
      this.stats.dropped++
      return false
    }
    this.queue.push(out)
    this.pump()
    return true
  }

  /** frame() and enqueue() in one: the OutFrame, or null when it could not be queued. */
  send(message: Message, onAck?: () => void): OutFrame | null {
    if (!this.open_) return null
    const out = this.frame(message, onAck)
    return this.enqueue(out) ? out : null
  }

  /** Withdraws a message still waiting for the window; false once it was sent. */
  cancel(out: OutFrame): boolean {
    const i = this.queue.indexOf(out)
    if (i < 0) return false
    this.queue.splice(i, 1)
    return true
  }

  /** Sends a message once, unacknowledged (Heartbeat; Error NoSession). */
  sendUnreliable(message: Message): void {
    if (!this.open_) return
    this.emit(0, this.txNext, encodeMessage(message))
  }

  /** Sends an ACK_ONLY frame now (also used right before a Reset takes effect). */
  sendAck(): void {
    if (!this.open_) return
    this.stats.acksSent++
    this.emit(Flags.ACK_ONLY, this.txNext, null)
  }

  /** Sends the acknowledgement owed for frames delivered since the last frame sent, if any. */
  flushAck(): void {
    if (this.ackOwed) this.sendAck()
  }

  /** A valid non-SYN frame from the peer. */
  handle(frame: LinkFrame): void {
    if (!this.open_) return
    this.lastRx = this.o.clock.now()
    this.processAck(frame.ack)
    if (!this.open_) return
    if (frame.flags & Flags.NEEDS_ACK) {
      const d = (frame.seq - this.rxNext) & 0xff
      this.ackOwed = true
      if (d === 0) {
        this.rxNext = (this.rxNext + 1) & 0xff
        if (frame.message) this.o.onMessage(frame.message, frame)
      } else if (d >= 128) this.stats.duplicates++
      else this.stats.outOfOrder++
      return
    }
    if (frame.message) this.o.onMessage(frame.message, frame)
  }

  private processAck(ack: number): void {
    const base = this.inflight.length > 0 ? this.inflight[0]!.seq : this.txNext
    const n = (ack - base) & 0xff
    if (n === 0) return
    if (n > this.inflight.length) {
      this.stats.badAck++
      return
    }
    const done = this.inflight.splice(0, n)
    this.retries = 0
    this.retransmitTimer?.cancel()
    this.retransmitTimer = null
    for (const f of done) f.onAck?.()
    if (!this.open_) return
    if (this.inflight.length > 0) this.armRetransmit()
    this.pump()
  }

  private pump(): void {
    while (this.open_ && this.queue.length > 0 && this.inflight.length < this.o.window) {
      const out = this.queue.shift()!
      out.seq = this.txNext
      this.txNext = (this.txNext + 1) & 0xff
      this.inflight.push(out)
      if (this.retransmitTimer === null) this.armRetransmit()
      this.emit(Flags.NEEDS_ACK, out.seq, out.body)
    }
  }

  private emit(flags: number, seq: number, body: Buffer | null): void {
    this.ackOwed = false
    this.sentSinceTick = true
    this.stats.framesOut++
    this.o.write(encodeWire({ version: PROTOCOL_VERSION, flags, seq, ack: this.rxNext }, body))
  }

  private armRetransmit(): void {
    this.retransmitTimer?.cancel()
    this.retransmitTimer = this.o.clock.setTimeout(() => this.onRetransmitTimer(), this.o.ackTimeoutMs)
  }

  private onRetransmitTimer(): void {
    this.retransmitTimer = null
    if (!this.open_ || this.inflight.length === 0) return
    if (this.retries >= this.o.maxRetries) {
      const seq = this.inflight[0]!.seq
      this.lost(`no acknowledgement of seq ${seq} (${this.inflight[0]!.message.type}) after ${this.retries} retransmissions, ${this.o.ackTimeoutMs} ms apart`)
      return
    }
    this.retries++
    for (const f of [...this.inflight]) {
      this.stats.retransmits++
      this.emit(Flags.NEEDS_ACK, f.seq, f.body)
      if (!this.open_) return
    }
    this.armRetransmit()
  }

  private armTick(): void {
    this.tickTimer = this.o.clock.setTimeout(() => this.onTick(), this.heartbeatMs)
  }

  private onTick(): void {
    this.tickTimer = null
    if (!this.open_) return
    const silentMs = this.o.clock.now() - this.lastRx
    const deadMs = this.heartbeatMs * this.o.deadAfterHeartbeats
    if (silentMs >= deadMs) {
      this.lost(`peer silent for ${Math.round(silentMs)} ms (${this.o.deadAfterHeartbeats} heartbeat intervals of ${this.heartbeatMs} ms)`)
      return
    }
    if (!this.sentSinceTick) {
      this.stats.heartbeatsSent++
      this.sendUnreliable({ type: 'Heartbeat' })
    }
    this.sentSinceTick = false
    if (this.open_) this.armTick()
  }

  private lost(reason: string): void {
    this.close()
    this.o.onLost(new ConnectionLostError(`firmware-bridge: ${reason}`))
  }
}
