/**
 * An in-memory link pair that follows the Link contract (drivers/link.ts) exactly, for tests of
 * code above the links. The same conformance suite (test/conformance/link.ts) runs against it
 * and against every real driver.
 *
 * The "wire" between the two ends carries at most `inFlight` frames at a time, each taking
 * `latencyMs`; it can be unplugged and replugged like a cable.
 */
import { BaseLink } from '../base-link.js'
import type { LinkKind, LinkQuality, ReceivedFrame, TapInterface } from '../link.js'
import { LINKTYPE } from '../../pcap/pcapng.js'

export interface FakeWireOptions {
  mtu?: number
  bitrate?: number
  latencyMs?: number
  inFlight?: number
  queueLimit?: number
  highWater?: number
}

export class FakeWire {
  plugged = true
  readonly ends: FakeLink[] = []
  constructor(readonly opts: Required<Pick<FakeWireOptions, 'mtu' | 'bitrate' | 'latencyMs' | 'inFlight'>>) {}

  unplug(): void {
    this.plugged = false
    for (const e of this.ends) e.wireChanged()
  }

  replug(): void {
    this.plugged = true
  }
}

export class FakeLink extends BaseLink {
  readonly kind: LinkKind = 'fake'
  readonly mtu: number
  readonly bitrate: number
  private inFlight = 0
  private connected = false

  constructor(name: string, private readonly wire: FakeWire, opts: FakeWireOptions) {
    super({ name, backoffInitialMs: 20, backoffMaxMs: 200, ...(opts.queueLimit ? { queueLimit: opts.queueLimit } : {}), ...(opts.highWater ? { highWater: opts.highWater } : {}) })
    this.mtu = wire.opts.mtu
    this.bitrate = wire.opts.bitrate
    wire.ends.push(this)
  }

  private get peer(): FakeLink | undefined {
    return this.wire.ends.find((e) => e !== this)
  }

  protected async connect(): Promise<void> {
    if (!this.wire.plugged) throw Object.assign(new Error(`fake link ${this.name}: unplugged`), { code: 'ENOENT' })
    this.connected = true
  }

  protected async disconnect(): Promise<void> {
    this.connected = false
  }

  /** The wire was pulled: an `up` end goes down and starts retrying. */
  wireChanged(): void {
    if (!this.wire.plugged && this.connected) {
      this.connected = false
      this.mediumLost('unplugged')
    }
  }

  protected pump(): void {
    while (this.connected && this.inFlight < this.wire.opts.inFlight) {
      const f = this.dequeue()
      if (f === undefined) return
      this.inFlight++
      setTimeout(() => {
        this.inFlight--
        const peer = this.peer
        if (this.wire.plugged && peer !== undefined && peer.connected) {
          this.sent(f.data.length)
          if (this.tapping) this.tap({ iface: 0, dir: 'out', data: f.data })
          peer.deliver({ data: f.data, from: this.name, at: Date.now() })
        } else if (this.connected) {
          this.requeue(f)
        } else {
          this.requeue(f)
        }
        this.kick()
        if (this.state === 'closing') this.pump()
      }, this.wire.opts.latencyMs)
    }
  }

  override quality(): LinkQuality {
    return { loss: 0 }
  }

  override tapInterfaces(): TapInterface[] {
    return [{ linktype: LINKTYPE.AITCP, name: this.name, description: `kairo-gw fake link ${this.name}: bare AI-TCP frames` }]
  }

  protected override deliver(f: ReceivedFrame): void {
    if (this.tapping) this.tap({ iface: 0, dir: 'in', data: f.data })
    super.deliver(f)
  }
}

/** Two fake links joined by one wire. */
export function createFakeLinkPair(opts: FakeWireOptions = {}): { a: FakeLink; b: FakeLink; wire: FakeWire } {
  const wire = new FakeWire({ mtu: opts.mtu ?? 1500, bitrate: opts.bitrate ?? 1_000_000, latencyMs: opts.latencyMs ?? 1, inFlight: opts.inFlight ?? 4 })
  return { a: new FakeLink('fake-a', wire, opts), b: new FakeLink('fake-b', wire, opts), wire }
}
