/**
 * The one contract every link driver implements (LoRa, UDP, raw Ethernet, BLE, Wi-Fi Direct).
 * The mesh core imports this file, never a driver's hardware library.
 *
 * A link carries opaque frames (AI-TCP frames, see docs/protocol.md) to and from neighbours on
 * one medium. It does no crypto and never looks inside a frame.
 *
 * State machine:
 *
 *     closed --open()--> opening --> up <--> down --close()--> closing --> closed
 *                                     \_________abort()_________________/
 *
 * - `open()` resolves when the link is `up` for the first time; it rejects (and the link is
 *   `closed`) if the medium cannot be reached at all, or when its AbortSignal fires.
 * - `down`: the medium went away after being up (device unplugged, interface down). The link
 *   retries by itself with backoff and returns to `up` with its configuration re-applied. Frames
 *   queued while down wait (within the queue bounds) and go out when it is up again. A frame
 *   that was in flight when the medium went (handed to the device, not yet confirmed sent) is
 *   sent again: delivery across an outage is at least once, and the mesh drops duplicates.
 * - `close()` stops accepting frames, flushes or fails what is queued, releases the medium and
 *   resolves in `closed`. `abort(reason)` does the same at once, failing what is queued.
 *   Both are idempotent. A closed link may be opened again.
 *
 * Sending:
 * - `send(frame, opts)` queues one frame of at most `mtu` bytes (TypeError otherwise, or when
 *   the link is closing/closed). It returns true while the link can take more, false when the
 *   caller should wait for `drain` (backpressure). A frame that cannot be queued at all (the
 *   queue is at its hard bound) throws ResourceLimitError: nothing is ever dropped silently.
 *   send() copies the frame before it returns: the caller may reuse or change its buffer at once.
 *   Frames a link must drop later (expired in the queue, medium refused them) are counted in
 *   `stats().dropped` by reason and reported with a `dropped` event.
 * - Priorities: 0 control, 1 interactive (default), 2 bulk. Higher priority frames leave first.
 *
 * Receiving: every frame that arrives is emitted as `frame` with link-level metadata; its `data`
 * is a buffer the link never touches again (a relay may change it in place and send it on). A link
 * never emits a frame it knows to be corrupt (bad CRC at the PHY); it counts it instead.
 *
 * Capture (taps): `tapInterfaces()` lists what the link can show a packet capture, one pcapng
 * interface each (a LoRa link shows its air and its serial line); `startTap(sink)` hands the sink
 * a copy of every frame that crosses the link from then on, as bytes of that interface's link
 * type (docs/pcap.md). A tap never blocks or slows the link: the sink is called synchronously
 * with a fresh buffer and must return at once (pcap/capture.ts queues and writes elsewhere).
 * Raw NIC links capture through a second libpcap handle with a BPF filter; the others tap
 * inside the driver, where what was sent and what was received are known with their metadata.
 */
import type { EventEmitter } from 'node:events'

export type LinkState = 'closed' | 'opening' | 'up' | 'down' | 'closing'

export type LinkKind = 'lora' | 'udp' | 'ethernet' | 'ble' | 'wifi-direct' | 'nats' | 'fake'

/** 0 control, 1 interactive, 2 bulk. */
export type Priority = 0 | 1 | 2

export interface SendOptions {
  priority?: Priority
  /** Link-level destination (MAC, UDP address); omitted on broadcast media such as LoRa. */
  to?: string
}

export interface LinkQuality {
  /** Last received signal strength, dBm (radio links). */
  rssi?: number
  /** Last signal-to-noise ratio, dB (radio links). */
  snr?: number
  /** Share of frames lost, 0..1, when the link can tell. */
  loss?: number
  /** Share of the airtime budget still available, 0..1 (duty-cycled radio links). */
  airtimeAvailable?: number
}

export interface ReceivedFrame {
  data: Buffer
  /** Link-level source, when the medium has one. */
  from?: string
  rssi?: number
  snr?: number
  /** Local receive time, ms since the epoch. */
  at: number
}

export interface LinkStats {
  state: LinkState
  framesIn: number
  framesOut: number
  bytesIn: number
  bytesOut: number
  /** Frames queued now. */
  queued: number
  /** Frames dropped after being accepted, by reason. */
  dropped: Record<string, number>
  /** Errors seen on the medium (bad frames, device errors), by code. */
  errors: Record<string, number>
  /** Times the link went down after being up. */
  downs: number
}

export interface LinkEvents {
  frame: [ReceivedFrame]
  state: [LinkState]
  drain: []
  dropped: [{ reason: string; bytes: number }]
  error: [Error]
}

export interface TapInterface {
  /** tcpdump.org LINKTYPE_* of the bytes this interface's packets hold (pcap/pcapng.ts). */
  linktype: number
  /** Interface name in the capture: the link's name, or `<link>/<layer>` for a second layer. */
  name: string
  description?: string
  /** The BPF filter packets were captured with, when captured through libpcap. */
  filter?: string
}

export interface TapPacket {
  /** Index into `tapInterfaces()`. */
  iface: number
  dir: 'in' | 'out'
  /**
   * Link-layer bytes of the interface's link type (after `head`). Valid only during the call:
   * it may be the very buffer the link hands on (a relay changes the hop limit in place), so a
   * sink that keeps it copies it.
   */
  data: Buffer
  /** Bytes of the link type that come before `data` (a header built for the capture). */
  head?: Buffer
  /** Microseconds since the Unix epoch (the tap's clock when omitted). */
  tsUs?: bigint
  comment?: string
}

export type TapSink = (p: TapPacket) => void

export interface TapHandle {
  stop(): Promise<void>
}

export interface Link extends EventEmitter<LinkEvents> {
  readonly name: string
  readonly kind: LinkKind
  /** Largest frame `send()` takes, bytes. */
  readonly mtu: number
  /** Nominal bit rate, bit/s. */
  readonly bitrate: number
  readonly state: LinkState
  open(signal?: AbortSignal): Promise<void>
  send(frame: Uint8Array, opts?: SendOptions): boolean
  close(): Promise<void>
  abort(reason?: Error): void
  quality(): LinkQuality
  stats(): LinkStats
  /**
   * Radios only: switch the transmitter off (or on again) through the device's own firmware, and
   * resolve when the firmware confirms it. Rejects when the device does not confirm within
   * `timeoutMs` or the link is not open: a force disconnect uses it as its first, gentlest action
   * and does not wait longer than that on a driver that may be wedged.
   */
  setRadio?(on: boolean, timeoutMs: number): Promise<void>
  /** What a capture of this link shows; empty (or absent, for proxies) when it cannot be captured. */
  tapInterfaces?(): TapInterface[]
  /** Starts copying what crosses the link to `sink` (see Capture above). */
  startTap?(sink: TapSink): Promise<TapHandle>
}
