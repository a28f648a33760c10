/**
 * A packet capture of one or more links, written as pcapng (docs/pcap.md): one interface block
 * per link (two for a LoRa link: its air and its serial line), packets both ways with their
 * direction, and at the end one statistics block per interface with what was seen and dropped.
 *
 * The relay path never waits on a capture. A tap (drivers/link.ts) hands each frame over
 * synchronously; here it becomes an Enhanced Packet Block in a memory queue at once, and the
 * queue is written by one asynchronous writer. When the disk falls behind and the queue holds
 * `maxQueueBytes`, further packets are counted as dropped (isb_ifdrop) instead of waiting.
 *
 * Ring buffer: with `ring` the capture goes to numbered files of at most `ring.bytes` each
 * (`<stem>_00001_<UTC time><ext>`, as dumpcap names them) and only the newest `ring.files` are
 * kept. Every file starts with the section and interface blocks, so each opens on its own.
 */
import { open, rm, type FileHandle } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import type { Link, TapHandle, TapInterface, TapPacket } from '../drivers/link.js'
import { enhancedPacketBlock, fileHeader, interfaceStatisticsBlock, nowUs, type InterfaceDescription, type SectionOptions } from './pcapng.js'

export interface CaptureOptions {
  id: string
  links: Link[]
  /** The file (or, with `ring`, the name the ring files are derived from). Never overwritten. */
  out: string
  ring?: { files: number; bytes: number }
  /** Stop after this long, ms. */
  durationMs?: number
  /** Stop after this many packets. */
  count?: number
  section: SectionOptions
  /** Comment on every interface block, e.g. "node 1a2b…". */
  interfaceComment?: string
  /** Memory the queue may hold before packets are dropped, bytes. Default 8 MiB. */
  maxQueueBytes?: number
  /** Mode of the files created. Default 0o640. */
  mode?: number
}

export type CaptureState = 'running' | 'stopping' | 'done' | 'failed'

export interface CaptureStatus {
  id: string
  state: CaptureState
  links: string[]
  interfaces: { name: string; linktype: number; packets: number; dropped: number }[]
  out: string
  files: string[]
  packets: number
  bytes: number
  dropped: number
  started_at: string
  ended_at: string | null
  /** Why it ended: 'count', 'duration', 'stopped', or the error. */
  reason: string | null
  error: string | null
  duration_ms: number | null
  count: number | null
  ring: { files: number; bytes: number } | null
}

const utcStamp = (d: Date): string => d.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '')

export class CaptureError extends Error {
  constructor(
    message: string,
    readonly field: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'CaptureError'
  }
}

export class Capture {
  readonly id: string
  readonly done: Promise<CaptureStatus>
  private resolveDone!: (s: CaptureStatus) => void
  private readonly o: CaptureOptions
  private readonly ifaces: (InterfaceDescription & { packets: number; dropped: number })[] = []
  private readonly header: Buffer
  private readonly taps: TapHandle[] = []
  private state: CaptureState = 'running'
  private queue: Buffer[] = []
  private queuedBytes = 0
  private writing = false
  private fh: FileHandle | null = null
  private fileBytes = 0
  private fileSeq = 0
  private readonly files: string[] = []
  private packets = 0
  private bytes = 0
  private readonly startedUs = nowUs()
  private readonly startedAt = new Date()
  private endedAt: Date | null = null
  private reason: string | null = null
  private error: string | null = null
  private timer: NodeJS.Timeout | null = null
  private stopping: Promise<CaptureStatus> | null = null
  private readonly maxQueue: number

  private constructor(o: CaptureOptions) {
    this.o = o
    this.id = o.id
    this.maxQueue = o.maxQueueBytes ?? 8 * 1024 * 1024
    this.done = new Promise((r) => (this.resolveDone = r))
    for (const link of o.links) {
      const list: TapInterface[] = link.tapInterfaces?.() ?? []
      if (list.length === 0 || link.startTap === undefined) throw new CaptureError(`link ${link.name} (${link.kind}) cannot be captured`, 'links')
      for (const i of list) {
        this.ifaces.push({
          ...i,
          ...(o.interfaceComment === undefined ? {} : { comment: o.interfaceComment }),
          packets: 0,
          dropped: 0,
        })
      }
    }
    this.header = fileHeader(o.section, this.ifaces)
  }

  /** Creates the file, starts every tap; rejects (leaving no file behind) when either fails. */
  static async start(o: CaptureOptions): Promise<Capture> {
    if (o.ring !== undefined && (!(o.ring.files >= 1) || !(o.ring.bytes >= 1024))) throw new CaptureError('ring: at least 1 file of at least 1 KiB', 'ring')
    const c = new Capture(o)
    await c.openNext()
    let base = 0
    try {
      for (const link of o.links) {
        const n = link.tapInterfaces!().length
        const offset = base
        base += n
        try {
          c.taps.push(await link.startTap!((p) => c.onPacket(offset, p)))
        } catch (err) {
          throw new CaptureError(`link ${link.name}: ${err instanceof Error ? err.message : String(err)}`, 'links', { cause: err })
        }
      }
    } catch (err) {
      c.state = 'failed'
      await Promise.all(c.taps.map((t) => t.stop()))
      await c.fh?.close()
      await Promise.all(c.files.map((f) => rm(f, { force: true })))
      throw err
    }
    if (o.durationMs !== undefined) c.timer = setTimeout(() => void c.stop('duration'), o.durationMs)
    return c
  }

  private onPacket(offset: number, p: TapPacket): void {
    if (this.state !== 'running') return
    const iface = this.ifaces[offset + p.iface]
    if (iface === undefined) return
    if (this.o.count !== undefined && this.packets >= this.o.count) return
    const len = p.data.length + (p.head?.length ?? 0)
    if (this.queuedBytes + len + 64 > this.maxQueue) {
      iface.dropped++
      return
    }
    const block = enhancedPacketBlock({ interfaceId: offset + p.iface, tsUs: p.tsUs ?? nowUs(), data: p.data, ...(p.head === undefined ? {} : { head: p.head }), dir: p.dir, ...(p.comment === undefined ? {} : { comment: p.comment }) })
    this.queue.push(block)
    this.queuedBytes += block.length
    this.packets++
    this.bytes += len
    iface.packets++
    if (!this.writing) void this.drain()
    if (this.o.count !== undefined && this.packets >= this.o.count) void this.stop('count')
  }

  private ringPath(seq: number): string {
    const ext = extname(this.o.out) || '.pcapng'
    const stem = basename(this.o.out, extname(this.o.out))
    return join(dirname(this.o.out), `${stem}_${String(seq).padStart(5, '0')}_${utcStamp(new Date())}${ext}`)
  }

  private async openNext(): Promise<void> {
    if (this.fh !== null) await this.fh.close()
    this.fh = null
    this.fileSeq++
    const path = this.o.ring === undefined ? this.o.out : this.ringPath(this.fileSeq)
    try {
      this.fh = await open(path, 'wx', this.o.mode ?? 0o640)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      const why = code === 'EEXIST' ? 'it exists already (captures never overwrite a file; choose another name or remove it)' : code === 'ENOENT' ? 'its directory does not exist' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? `the gateway may not write there (${code}); captures can always go to the gateway's state directory, pcap/` : (err as Error).message
      throw new CaptureError(`cannot create capture file ${path}: ${why}`, 'out', { cause: err })
    }
    this.files.push(path)
    await this.fh.write(this.header)
    this.fileBytes = this.header.length
    if (this.o.ring !== undefined && this.files.length > this.o.ring.files) {
      const old = this.files.shift()!
      await rm(old, { force: true })
    }
  }

  /** The one writer: takes what is queued and appends it, rotating ring files on the way. */
  private async drain(): Promise<void> {
    this.writing = true
    try {
      while (this.queue.length > 0 && this.fh !== null) {
        const blocks = this.queue
        this.queue = []
        let batch: Buffer[] = []
        let batchBytes = 0
        for (const b of blocks) {
          const limit = this.o.ring?.bytes
          if (limit !== undefined && this.fileBytes + batchBytes > this.header.length && this.fileBytes + batchBytes + b.length > limit) {
            await this.writeAll(batch)
            this.fileBytes += batchBytes
            batch = []
            batchBytes = 0
            await this.openNext()
          }
          batch.push(b)
          batchBytes += b.length
        }
        if (batch.length > 0) {
          await this.writeAll(batch)
          this.fileBytes += batchBytes
        }
        this.queuedBytes -= blocks.reduce((n, b) => n + b.length, 0)
      }
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err)
      void this.stop(`write failed: ${this.error}`, true)
    } finally {
      this.writing = false
    }
  }

  /** Appends the blocks with as few system calls as it takes (writev of up to 1024 at a time). */
  private async writeAll(blocks: Buffer[]): Promise<void> {
    for (let i = 0; i < blocks.length; i += 1024) await this.fh!.writev(blocks.slice(i, i + 1024))
  }

  /** Stops the taps, writes what is queued and the statistics blocks, closes the file. */
  stop(reason = 'stopped', failed = false): Promise<CaptureStatus> {
    this.stopping ??= this.finish(reason, failed)
    return this.stopping
  }

  private async finish(reason: string, failed: boolean): Promise<CaptureStatus> {
    this.state = 'stopping'
    this.reason = reason
    if (this.timer !== null) clearTimeout(this.timer)
    await Promise.all(this.taps.map((t) => t.stop().catch(() => {})))
    while (this.writing) await new Promise((r) => setImmediate(r))
    if (!failed && this.fh !== null) {
      try {
        if (this.queue.length > 0) await this.drain()
        const end = nowUs()
        const isbs = this.ifaces.map((i, n) => interfaceStatisticsBlock({ interfaceId: n, tsUs: end, startUs: this.startedUs, endUs: end, received: BigInt(i.packets + i.dropped), dropped: BigInt(i.dropped) }))
        await this.fh!.write(Buffer.concat(isbs))
        await this.fh!.sync()
      } catch (err) {
        this.error = err instanceof Error ? err.message : String(err)
        failed = true
      }
    }
    await this.fh?.close().catch(() => {})
    this.fh = null
    this.queue = []
    this.endedAt = new Date()
    this.state = failed || this.error !== null ? 'failed' : 'done'
    const s = this.status()
    this.resolveDone(s)
    return s
  }

  status(): CaptureStatus {
    return {
      id: this.id,
      state: this.state,
      links: this.o.links.map((l) => l.name),
      interfaces: this.ifaces.map((i) => ({ name: i.name, linktype: i.linktype, packets: i.packets, dropped: i.dropped })),
      out: this.o.out,
      files: [...this.files],
      packets: this.packets,
      bytes: this.bytes,
      dropped: this.ifaces.reduce((n, i) => n + i.dropped, 0),
      started_at: this.startedAt.toISOString(),
      ended_at: this.endedAt?.toISOString() ?? null,
      reason: this.reason,
      error: this.error,
      duration_ms: this.o.durationMs ?? null,
      count: this.o.count ?? null,
      ring: this.o.ring ?? null,
    }
  }
}
