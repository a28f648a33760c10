/**
 * Latched disconnects: the links an operator (or, later, policy) cut, kept in
 * `<stateDir>/disconnected.json` so that a restart or a reboot does not bring them back. Only
 * `kairo-gw reconnect LINK` clears one.
 *
 *   {"version":1,"links":{"lora0":{"at":"2026-11-23T09:00:00.000Z","reason":"tower work","by":{"uid":0,"pid":812,"user":"root"}}}}
 *
 * Written atomically (temporary file, fsync, rename, directory fsync) before the link is taken
 * down: a crash right after a disconnect leaves it latched, never half-written. A file that is not
 * this format is an error naming the file and the field; it is never silently reset, since that
 * would bring a cut link back.
 */
import { writeFileAtomicSync, readSmallFileSync, parseJsonObject, IdentityFileError, describe } from '../identity/files.js'

export const LATCH_FILE = 'disconnected.json'

export interface LatchEntry {
  at: string
  reason: string
  by: Record<string, unknown>
}

const MAX_BYTES = 1024 * 1024

export class DisconnectLatch {
  readonly file: string
  private readonly links = new Map<string, LatchEntry>()

  constructor(file: string) {
    this.file = file
    const got = readSmallFileSync(file, MAX_BYTES)
    if (got === undefined) return
    const o = parseJsonObject(file, got.text)
    if (o.version !== 1) throw new IdentityFileError(file, 'version', `is ${o.version === undefined ? 'missing' : describe(o.version)}; expected 1`)
    const links = o.links
    if (typeof links !== 'object' || links === null || Array.isArray(links)) throw new IdentityFileError(file, 'links', `is ${describe(links)}; expected an object of link name → entry`)
    for (const [name, e] of Object.entries(links as Record<string, unknown>)) {
      const entry = e as Partial<LatchEntry> | null
      if (typeof entry !== 'object' || entry === null || typeof entry.at !== 'string' || typeof entry.reason !== 'string') {
        throw new IdentityFileError(file, `links.${name}`, `is ${describe(e)}; expected {"at": ISO time, "reason": text, "by": {...}}`)
      }
      this.links.set(name, { at: entry.at, reason: entry.reason, by: typeof entry.by === 'object' && entry.by !== null ? entry.by : {} })
    }
  }

  get(link: string): LatchEntry | undefined {
    return this.links.get(link)
  }

  has(link: string): boolean {
    return this.links.has(link)
  }

  entries(): Array<[string, LatchEntry]> {
    return [...this.links.entries()]
  }

  set(link: string, entry: LatchEntry): void {
    this.links.set(link, entry)
    this.save()
  }

  clear(link: string): boolean {
    if (!this.links.delete(link)) return false
    this.save()
    return true
  }

  private save(): void {
    writeFileAtomicSync(this.file, `${JSON.stringify({ version: 1, links: Object.fromEntries(this.links) })}\n`)
  }
}
