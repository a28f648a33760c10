/**
 * Packet captures inside the daemon (control methods `pcap_start`, `pcap_status`, `pcap_stop`):
 * a capture taps running links without stopping or slowing them (pcap/capture.ts) and is
 * recorded in the VoV log with who started and stopped it, since it shows what crossed the
 * gateway.
 *
 *   pcap_start {links: [names], out?: absolute path, duration_s?, count?, ring?: {files, mb}}
 *   pcap_status {id?}     one capture, or all (finished ones are kept, newest 32)
 *   pcap_stop {id}        stops it, writes the statistics blocks, returns the final status
 *
 * Without `out` the file goes to <state>/pcap/<links>-<UTC time>.pcapng (the directory the unit
 * lets the gateway write). An existing file is never overwritten.
 */
import { mkdirSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Link } from '../../drivers/link.js'
import { Capture, CaptureError, type CaptureStatus } from '../../pcap/capture.js'
import { InvalidParamsError, param, rejectUnknownParams } from '../control/protocol.js'
import type { ControlHandler } from '../control/server.js'

export interface CaptureManagerOptions {
  stateDir: string
  nodeId: string
  version: string
  /** The running link of that name, or undefined. */
  link(name: string): Link | undefined
  linkNames(): string[]
  record(type: 'pcap_started' | 'pcap_stopped', data: Record<string, unknown>): void
}

const KEEP_FINISHED = 32
const MAX_RUNNING = 8

export class CaptureManager {
  private readonly running = new Map<string, Capture>()
  private readonly finished = new Map<string, CaptureStatus>()

  constructor(private readonly o: CaptureManagerOptions) {}

  private defaultOut(links: string[]): string {
    const dir = join(this.o.stateDir, 'pcap')
    mkdirSync(dir, { recursive: true, mode: 0o750 })
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')
    return join(dir, `${links.join('+').replace(/[^A-Za-z0-9_.+-]/g, '_')}-${stamp}.pcapng`)
  }

  handlers(by: (ctx: Parameters<ControlHandler>[1]) => Record<string, unknown>): Record<string, ControlHandler> {
    return {
      pcap_start: async (params, ctx) => {
        rejectUnknownParams(params, ['links', 'out', 'duration_s', 'count', 'ring'])
        const names = param(params, 'links', 'array', { required: true, min: 1, max: 16, expected: 'an array of 1..16 link names' })
        const links: Link[] = []
        for (const n of names) {
          if (typeof n !== 'string') throw new InvalidParamsError('links', `link names must be strings, not ${JSON.stringify(n)}`)
          const link = this.o.link(n)
          if (link === undefined) {
            const known = this.o.linkNames()
            throw new InvalidParamsError('links', `no running link named ${JSON.stringify(n)} (disconnected links cannot be captured); the links are: ${known.length > 0 ? known.join(', ') : '(none)'}`)
          }
          if ((link.tapInterfaces?.() ?? []).length === 0) throw new InvalidParamsError('links', `link ${n} (${link.kind}) cannot be captured`)
          if (links.includes(link)) throw new InvalidParamsError('links', `link ${n} is listed twice`)
          links.push(link)
        }
        let out = param(params, 'out', 'string', { min: 1, max: 4096 })
        if (out !== undefined && !isAbsolute(out)) throw new InvalidParamsError('out', `out must be an absolute path (the gateway does not share the caller's working directory), not ${JSON.stringify(out)}`)
        const durationS = param(params, 'duration_s', 'number', { min: 0.001, max: 31_536_000 })
        const count = param(params, 'count', 'integer', { min: 1, max: 1_000_000_000 })
        const ringP = param(params, 'ring', 'object')
        let ring: { files: number; bytes: number } | undefined
        if (ringP !== undefined) {
          rejectUnknownParams(ringP, ['files', 'mb'])
          const files = param(ringP, 'files', 'integer', { required: true, min: 1, max: 100_000 })
          const mb = param(ringP, 'mb', 'number', { required: true, min: 0.001, max: 1_000_000 })
          ring = { files, bytes: Math.max(1024, Math.round(mb * 1024 * 1024)) }
        }
        if (this.running.size >= MAX_RUNNING) throw new InvalidParamsError('', `${MAX_RUNNING} captures are running already; stop one first (kairo-gw pcap list)`)
        out ??= this.defaultOut(names as string[])
        const id = randomBytes(4).toString('hex')
        let cap: Capture
        try {
          cap = await Capture.start({
            id,
            links,
            out,
            ...(ring === undefined ? {} : { ring }),
            ...(durationS === undefined ? {} : { durationMs: Math.round(durationS * 1000) }),
            ...(count === undefined ? {} : { count }),
            section: { userappl: `kairo-gw ${this.o.version}`, comment: `kairo-gw capture ${id} on node ${this.o.nodeId}` },
            interfaceComment: `node ${this.o.nodeId}`,
          })
        } catch (err) {
          if (err instanceof CaptureError) throw new InvalidParamsError(err.field, err.message)
          throw err
        }
        this.running.set(id, cap)
        const who = by(ctx)
        this.o.record('pcap_started', { id, links: names, out, files: cap.status().files, duration_s: durationS ?? null, count: count ?? null, ring: ring ?? null, by: who })
        void cap.done.then((s) => {
          this.running.delete(id)
          this.finished.set(id, s)
          while (this.finished.size > KEEP_FINISHED) this.finished.delete(this.finished.keys().next().value!)
          this.o.record('pcap_stopped', { id, reason: s.reason, state: s.state, files: s.files, packets: s.packets, dropped: s.dropped, error: s.error })
        })
        return cap.status()
      },
      pcap_status: (params) => {
        rejectUnknownParams(params, ['id'])
        const id = param(params, 'id', 'string', { pattern: /^[0-9a-f]{8}$/, expected: 'a capture ID (8 hex digits), as pcap_start returned it' })
        if (id === undefined) return { captures: [...[...this.finished.values()], ...[...this.running.values()].map((c) => c.status())] }
        const s = this.running.get(id)?.status() ?? this.finished.get(id)
        if (s === undefined) throw new InvalidParamsError('id', `no capture ${id} (kairo-gw pcap list shows them)`)
        return s
      },
      pcap_stop: async (params) => {
        rejectUnknownParams(params, ['id'])
        const id = param(params, 'id', 'string', { required: true, pattern: /^[0-9a-f]{8}$/, expected: 'a capture ID (8 hex digits), as pcap_start returned it' })
        const cap = this.running.get(id)
        if (cap === undefined) {
          const s = this.finished.get(id)
          if (s !== undefined) return s
          throw new InvalidParamsError('id', `no capture ${id} (kairo-gw pcap list shows them)`)
        }
        return cap.stop('stopped')
      },
    }
  }

  /** Ends every running capture cleanly (daemon stop). */
  async stopAll(reason: string): Promise<void> {
    await Promise.all([...this.running.values()].map((c) => c.stop(reason)))
  }
}
