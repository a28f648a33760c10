/**
 * An append-only journal of checksummed records, the durable substrate of the Outbox and Inbox.
 *
 * Format: the file is a plain sequence of records, each
 *
 *     [u32 LE body length][u32 LE CRC-32C of the body][body bytes]
 *
 * with no file header. The CRC is the Castagnoli CRC of firmware-bridge/crc.ts. A body is 1 to
 * MAX_RECORD_BYTES long: a zero length is never written, so a run of zero bytes (what a file
 * system may leave after a power cut in space allocated to a file but never written) is never
 * mistaken for records.
 *
 * Why a journal and not SQLite: no extra native module to build on the Pi (SQLite through Node
 * means better-sqlite3 or similar, a native build per Node ABI and architecture); an accepted
 * message needs one write and one fdatasync per group of accepted messages, which is the
 * minimum durable work and what this does (SQLite in WAL mode does the same fsync plus its own
 * page bookkeeping); the format is trivial to verify and recover by hand (length, CRC, body);
 * and the queue is small (bounded by the store limits, read whole into memory at start).
 *
 * Durability:
 *  - `append()` resolves only after its records were written and fdatasync'ed. Appends issued
 *    while a write is in flight are group-committed: the next round writes all of them with one
 *    write and one fdatasync, and each promise resolves after the round holding its records.
 *  - `rewrite()` (compaction) writes `<path>.tmp`, fsyncs it, renames it over `<path>` and fsyncs
 *    the directory, so the file is at every moment either the old or the new content.
 *  - Creating the file (and its directory, mode 0700) fsyncs the directory. Files are mode 0600.
 *
 * Recovery at open:
 *  - A torn tail (the last record incomplete or failing its CRC, as a crash mid-append leaves
 *    it, or bytes too few for a header) is truncated away and reported in `recovered`; it never
 *    throws. Nothing that was acknowledged is lost by this: an append is acknowledged only after
 *    its fdatasync, and the tail is only ever the one write in flight at the crash.
 *  - A bad record in the middle (followed by at least one valid record) is not a crash artefact
 *    but damage. The damaged file is kept as `<path>.corrupt-<timestamp>` (hard link, or copy
 *    where links are not supported), and the journal is rewritten with every good record: the
 *    records after the damage are found by scanning forward, byte by byte, for the next offset
 *    where a plausible length and a matching CRC-32C start. Each damaged region is reported in
 *    `recovered` with the file, the byte offset and the reason.
 *  - The resynchronising scan can in principle take a record-shaped byte string inside a damaged
 *    record's body for a record (one chance in 2^32 per candidate offset for random bytes, more
 *    if a body deliberately embeds a framed record). The layers above validate what they decode.
 *
 * One process at a time: nothing locks the file against a second opener.
 */
import { constants as fsConstants } from 'node:fs'
import { copyFile, link, mkdir, open as openFile, rename, unlink, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { crc32c } from '../../firmware-bridge/crc.js'

/** Bytes of a record header: length and CRC. */
export const RECORD_HEADER_BYTES = 8
/** The largest body a record may have (a sanity bound for the resynchronising scan). */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024
/** Mode of journal files. */
export const JOURNAL_FILE_MODE = 0o600
/** Mode of a journal directory created by `Journal.open`. */
export const JOURNAL_DIR_MODE = 0o700

/** The file operations the journal uses on an open file; a FileHandle is one. Tests may wrap it. */
export interface JournalFile {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>
  datasync(): Promise<void>
  sync(): Promise<void>
  truncate(length: number): Promise<void>
  close(): Promise<void>
}

/** Something found wrong in the file at open, and what was done about it. */
export interface JournalRecovery {
  /** 'torn-tail': the end of the file was truncated; 'corrupt': a damaged region was skipped. */
  kind: 'torn-tail' | 'corrupt'
  /** The journal file. */
  file: string
  /** Byte offset in the file as found where the bad record starts. */
  offset: number
  /** Bytes dropped (torn tail) or skipped (corrupt region). */
  bytes: number
  /** What was wrong with the record at `offset`. */
  reason: string
  /** Where the damaged file was kept (corrupt only, and a torn tail found in the same file). */
  movedTo?: string
  /** One line for the log, naming the file and the offset. */
  message: string
}

export interface JournalOptions {
  /** Receives every good record body, in file order, during open. Without it they go to `replayed`. */
  onRecord?: (body: Buffer) => void
  /** Upper bound for one body (default MAX_RECORD_BYTES). */
  maxRecordBytes?: number
  /** Wraps each file the journal opens for writing: 'journal' (the file) or 'tmp' (a rewrite). */
  wrapFile?: (file: JournalFile, role: 'journal' | 'tmp') => JournalFile
  /** Clock for the `.corrupt-<timestamp>` name (default Date.now). */
  now?: () => number
}

/** Counters of the I/O a journal did since open. */
export interface JournalCounters {
  /** write rounds (each one or more records, one write call unless short writes) */
  writes: number
  /** fdatasync/fsync calls on the journal file (not counting rewrites and directories) */
  syncs: number
  /** directory fsyncs */
  dirSyncs: number
  /** records appended */
  records: number
  /** bytes appended */
  bytes: number
  /** rewrites done */
  rewrites: number
}

/** One record found by `scanJournal`. */
export interface ScannedRecord {
  offset: number
  body: Buffer
}

/** A stretch of bad bytes found by `scanJournal`. */
export interface ScannedDamage {
  offset: number
  bytes: number
  reason: string
}

/**
 * Checks whether a valid record starts at `off`: returns its total length (header included), or
 * the reason it is not one.
 */
function frameAt(buf: Buffer, off: number, maxRecord: number): number | string {
  const left = buf.length - off
  if (left < RECORD_HEADER_BYTES) return `${left} byte${left === 1 ? '' : 's'} at the end, too few for a record header`
  const len = buf.readUInt32LE(off)
  if (len === 0) return 'zero length'
  if (len > maxRecord) return `length ${len} is over the limit of ${maxRecord}`
  if (len > left - RECORD_HEADER_BYTES) return `length ${len} runs past the end of the file (${left - RECORD_HEADER_BYTES} bytes follow the header)`
  const stored = buf.readUInt32LE(off + 4)
  const actual = crc32c(buf, 0, off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + len)
  if (stored !== actual) return `CRC-32C mismatch (stored 0x${hex32(stored)}, computed 0x${hex32(actual)} over ${len} bytes)`
  return RECORD_HEADER_BYTES + len
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0')
}

/**
 * Parses a journal image: the good records, the damaged regions in the middle (each followed by
 * a good record), and the torn tail (bad bytes with no good record after them), if any. Pure.
 */
export function scanJournal(buf: Buffer, maxRecord = MAX_RECORD_BYTES): { records: ScannedRecord[]; damage: ScannedDamage[]; tail: ScannedDamage | undefined } {
  const records: ScannedRecord[] = []
  const damage: ScannedDamage[] = []
  let tail: ScannedDamage | undefined
  let off = 0
  while (off < buf.length) {
    const r = frameAt(buf, off, maxRecord)
    if (typeof r === 'number') {
      records.push({ offset: off, body: buf.subarray(off + RECORD_HEADER_BYTES, off + r) })
      off += r
      continue
    }
    let next = -1
    for (let p = off + 1; p <= buf.length - RECORD_HEADER_BYTES - 1; p++) {
      if (typeof frameAt(buf, p, maxRecord) === 'number') {
        next = p
        break
      }
    }
    if (next < 0) {
      tail = { offset: off, bytes: buf.length - off, reason: r }
      break
    }
    damage.push({ offset: off, bytes: next - off, reason: r })
    off = next
  }
  return { records, damage, tail }
}

/** Frames one body: header and a copy of the bytes. */
export function encodeRecord(body: Uint8Array, maxRecord = MAX_RECORD_BYTES): Buffer {
  if (!(body instanceof Uint8Array)) throw new TypeError('a journal record body must be a Buffer or Uint8Array')
  if (body.length === 0) throw new TypeError('a journal record body must not be empty')
  if (body.length > maxRecord) throw new TypeError(`a journal record body of ${body.length} bytes is over the limit of ${maxRecord}`)
  const frame = Buffer.allocUnsafe(RECORD_HEADER_BYTES + body.length)
  frame.writeUInt32LE(body.length, 0)
  frame.writeUInt32LE(crc32c(body), 4)
  frame.set(body, RECORD_HEADER_BYTES)
  return frame
}

type AppendOp = { kind: 'append'; frames: Buffer[]; applied: (() => void) | undefined; resolve: () => void; reject: (e: unknown) => void }
type RewriteOp = { kind: 'rewrite'; bodies: readonly Uint8Array[] | (() => readonly Uint8Array[]); applied: (() => void) | undefined; resolve: () => void; reject: (e: unknown) => void }
type Op = AppendOp | RewriteOp

/** An I/O error that names the file and the operation, keeping the system `code`. */
function ioError(path: string, what: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException
  const out = new Error(`${path}: ${what} failed: ${e?.message ?? String(err)}`, { cause: err }) as NodeJS.ErrnoException
  if (e?.code !== undefined) out.code = e.code
  return out
}

async function writeAll(file: JournalFile, buf: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < buf.length) {
    const { bytesWritten } = await file.write(buf, done, buf.length - done, position + done)
    if (bytesWritten <= 0) throw new Error(`short write (${done} of ${buf.length} bytes)`)
    done += bytesWritten
  }
}

/** fsyncs a directory, so that a file created or renamed in it survives a power cut. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const d = await openFile(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT'
}

function stamp(ms: number): string {
  // 2025-01-02T03-04-05-678Z: ISO 8601 with the colons and the dot made file-name safe.
  return new Date(ms).toISOString().replace(/[:.]/g, '-')
}

export class Journal {
  /** The journal file. */
  readonly path: string
  /** What open found wrong and repaired; empty for a clean file. */
  readonly recovered: JournalRecovery[]
  /** The record bodies found at open, when no `onRecord` was given (the caller may clear it). */
  replayed: Buffer[]
  readonly counters: JournalCounters = { writes: 0, syncs: 0, dirSyncs: 0, records: 0, bytes: 0, rewrites: 0 }

  private file: JournalFile
  private readonly maxRecord: number
  private readonly wrap: (file: JournalFile, role: 'journal' | 'tmp') => JournalFile
  private fileSize: number
  private recordCount: number
  private readonly queue: Op[] = []
  private pumping = false
  private closing = false
  private broken: Error | undefined

  private constructor(path: string, file: JournalFile, size: number, records: number, recovered: JournalRecovery[], replayed: Buffer[], maxRecord: number, wrap: (file: JournalFile, role: 'journal' | 'tmp') => JournalFile) {
    this.path = path
    this.file = file
    this.fileSize = size
    this.recordCount = records
    this.recovered = recovered
    this.replayed = replayed
    this.maxRecord = maxRecord
    this.wrap = wrap
  }

  /** Bytes in the file (all acknowledged appends included). */
  get size(): number {
    return this.fileSize
  }

  /** Records in the file. */
  get records(): number {
    return this.recordCount
  }

  /** Operations queued or in flight. */
  get backlog(): number {
    return this.queue.length
  }

  /**
   * Opens (creating it and its directory if needed) and replays the journal at `path`, repairing
   * a torn tail or a damaged region as described in the module comment. Throws only for I/O
   * errors (and whatever `onRecord` throws).
   */
  static async open(path: string, opts: JournalOptions = {}): Promise<Journal> {
    const maxRecord = opts.maxRecordBytes ?? MAX_RECORD_BYTES
    if (!Number.isInteger(maxRecord) || maxRecord < 1 || maxRecord > 0xffffffff) throw new TypeError(`maxRecordBytes must be an integer in 1..2^32-1, got ${maxRecord}`)
    const wrap = opts.wrapFile ?? ((f: JournalFile) => f)
    const now = opts.now ?? Date.now
    const dir = dirname(path)
    const created = await mkdir(dir, { recursive: true, mode: JOURNAL_DIR_MODE })
    if (created !== undefined) await fsyncDirectory(dirname(created))
    // A leftover from a rewrite cut short: the rename did not happen, so the journal is the old one.
    await unlink(`${path}.tmp`).catch((err: unknown) => {
      if (!isNotFound(err)) throw ioError(`${path}.tmp`, 'unlink', err)
    })

    let fh: FileHandle
    try {
      fh = await openFile(path, 'r+')
    } catch (err) {
      if (!isNotFound(err)) throw ioError(path, 'open', err)
      fh = await openFile(path, 'wx+', JOURNAL_FILE_MODE)
      await fh.sync()
      await fsyncDirectory(dir)
    }
    let journal: Journal | undefined
    try {
      const image = await fh.readFile()
      const { records, damage, tail } = scanJournal(image, maxRecord)
      const recovered: JournalRecovery[] = []
      let size = image.length
      let file: JournalFile = wrap(fh, 'journal')
      if (damage.length > 0) {
        const movedTo = await keepDamaged(path, now())
        for (const d of damage) {
          recovered.push({ kind: 'corrupt', file: path, ...d, movedTo, message: `${path}: bad record at byte ${d.offset} (${d.reason}); ${d.bytes} bytes skipped, ${records.length} good records kept, damaged file kept as ${movedTo}` })
        }
        if (tail) recovered.push({ kind: 'torn-tail', file: path, ...tail, movedTo, message: `${path}: torn tail at byte ${tail.offset} (${tail.reason}); ${tail.bytes} bytes dropped, damaged file kept as ${movedTo}` })
        size = await writeReplacement(path, records.map((r) => encodeRecord(r.body, maxRecord)), wrap)
        await fh.close()
        file = wrap(await openFile(path, 'r+'), 'journal')
      } else if (tail) {
        await fh.truncate(tail.offset)
        await fh.datasync()
        size = tail.offset
        recovered.push({ kind: 'torn-tail', file: path, ...tail, message: `${path}: torn tail at byte ${tail.offset} (${tail.reason}); ${tail.bytes} bytes truncated` })
      }
      const replayed: Buffer[] = []
      journal = new Journal(path, file, size, records.length, recovered, replayed, maxRecord, wrap)
      for (const r of records) {
        if (opts.onRecord) opts.onRecord(r.body)
        else replayed.push(r.body)
      }
      return journal
    } catch (err) {
      if (journal) await journal.file.close().catch(() => undefined)
      else await fh.close().catch(() => undefined)
      throw err
    }
  }

  /**
   * Appends `bodies` as records; resolves once they are on disk (fdatasync'ed). `applied`, if
   * given, is called synchronously right after that and before any later operation of this
   * journal starts, so a caller can keep in-memory state in exact step with the file.
   */
  append(bodies: readonly Uint8Array[], applied?: () => void): Promise<void> {
    let frames: Buffer[]
    try {
      frames = bodies.map((b) => encodeRecord(b, this.maxRecord))
    } catch (err) {
      return Promise.reject(err)
    }
    return this.enqueue({ kind: 'append', frames, applied })
  }

  /**
   * Replaces the whole content with `bodies` (compaction), after every operation queued before
   * it. `bodies` may be a function, called when the rewrite starts (all earlier operations done
   * and their `applied` run). Atomic: tmp file, fsync, rename, directory fsync.
   */
  rewrite(bodies: readonly Uint8Array[] | (() => readonly Uint8Array[]), applied?: () => void): Promise<void> {
    return this.enqueue({ kind: 'rewrite', bodies, applied })
  }

  /** Waits for every queued operation, then closes the file. Later operations reject. */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    await new Promise<void>((resolve) => {
      this.queue.push({ kind: 'append', frames: [], applied: undefined, resolve, reject: () => resolve() })
      this.kick()
    })
    await this.file.close()
  }

  private enqueue(op: Omit<AppendOp, 'resolve' | 'reject'> | Omit<RewriteOp, 'resolve' | 'reject'>): Promise<void> {
    if (this.closing) return Promise.reject(new Error(`${this.path}: journal is closed`))
    if (this.broken) return Promise.reject(this.broken)
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ...op, resolve, reject } as Op)
      this.kick()
    })
  }

  private kick(): void {
    if (this.pumping) return
    this.pumping = true
    // Deferred to a microtask so that appends issued in the same tick share the first round.
    queueMicrotask(() => void this.pump())
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        if (this.queue[0]!.kind === 'rewrite') {
          await this.doRewrite(this.queue.shift() as RewriteOp)
          continue
        }
        let n = 0
        while (n < this.queue.length && this.queue[n]!.kind === 'append') n++
        await this.doAppend(this.queue.splice(0, n) as AppendOp[])
      }
    } finally {
      this.pumping = false
    }
  }

  private async doAppend(batch: AppendOp[]): Promise<void> {
    if (this.broken) {
      for (const op of batch) op.reject(this.broken)
      return
    }
    let count = 0
    for (const op of batch) count += op.frames.length
    const buf = count === 0 ? Buffer.alloc(0) : Buffer.concat(batch.flatMap((op) => op.frames))
    if (buf.length > 0) {
      const start = this.fileSize
      try {
        this.counters.writes++
        await writeAll(this.file, buf, start)
        this.counters.syncs++
        await this.file.datasync()
      } catch (err) {
        const e = ioError(this.path, `append of ${count} records at byte ${start}`, err)
        // Take the partial write back; if even that fails, the next round overwrites it anyway
        // (writes are positional, at the acknowledged size).
        await this.file.truncate(start).catch(() => undefined)
        for (const op of batch) op.reject(e)
        return
      }
      this.fileSize += buf.length
      this.recordCount += count
      this.counters.records += count
      this.counters.bytes += buf.length
    }
    for (const op of batch) settle(op)
  }

  private async doRewrite(op: RewriteOp): Promise<void> {
    if (this.broken) return op.reject(this.broken)
    let frames: Buffer[]
    try {
      const bodies = typeof op.bodies === 'function' ? op.bodies() : op.bodies
      frames = bodies.map((b) => encodeRecord(b, this.maxRecord))
    } catch (err) {
      return op.reject(err)
    }
    let size: number
    try {
      size = await writeReplacement(this.path, frames, this.wrap)
    } catch (err) {
      return op.reject(err)
    }
    // The file now at `path` is the new one; the old handle points at the unlinked old inode.
    try {
      const fresh = this.wrap(await openFile(this.path, 'r+'), 'journal')
      await this.file.close().catch(() => undefined)
      this.file = fresh
    } catch (err) {
      // Appending to the old inode would lose data silently: refuse everything from now on.
      this.broken = ioError(this.path, 'reopen after rewrite', err)
      return op.reject(this.broken)
    }
    this.fileSize = size
    this.recordCount = frames.length
    this.counters.rewrites++
    settle(op)
  }
}

function settle(op: Op): void {
  try {
    op.applied?.()
  } catch (err) {
    op.reject(err)
    return
  }
  op.resolve()
}

/** Writes `frames` to `<path>.tmp`, fsyncs it, renames it over `path`, fsyncs the directory. */
async function writeReplacement(path: string, frames: Buffer[], wrap: (file: JournalFile, role: 'journal' | 'tmp') => JournalFile): Promise<number> {
  const tmp = `${path}.tmp`
  const buf = Buffer.concat(frames)
  await unlink(tmp).catch(() => undefined)
  let fh: FileHandle
  try {
    fh = await openFile(tmp, 'wx', JOURNAL_FILE_MODE)
  } catch (err) {
    throw ioError(tmp, 'create', err)
  }
  const file = wrap(fh, 'tmp')
  try {
    await writeAll(file, buf, 0)
    await file.sync()
  } catch (err) {
    await file.close().catch(() => undefined)
    await unlink(tmp).catch(() => undefined)
    throw ioError(tmp, 'write', err)
  }
  await file.close()
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw ioError(path, 'rename', err)
  }
  await fsyncDirectory(dirname(path))
  return buf.length
}

/** Keeps the damaged file as `<path>.corrupt-<timestamp>` (a hard link, or a copy), mode 0600, fsynced. */
async function keepDamaged(path: string, now: number): Promise<string> {
  for (let i = 0; ; i++) {
    const target = `${path}.corrupt-${stamp(now)}${i === 0 ? '' : `-${i}`}`
    try {
      await link(path, target)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue
      try {
        await copyFile(path, target, fsConstants.COPYFILE_EXCL)
      } catch (err2) {
        if ((err2 as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw ioError(target, 'keep a copy of the damaged journal', err2)
      }
    }
    // A link shares the journal's inode, which the rewrite is about to replace: private like it.
    const c = await openFile(target, 'r')
    try {
      await c.chmod(JOURNAL_FILE_MODE)
      await c.sync()
    } finally {
      await c.close()
    }
    await fsyncDirectory(dirname(path))
    return target
  }
}

/**
 * A compaction in the background: rewrites `journal` with what `build` returns at that moment.
 * Resolves with the error it met (undefined when it worked) and never rejects, so a failed
 * compaction leaves the journal as it was and is reported, not thrown into nobody's hands.
 */
export function backgroundRewrite(journal: Journal, build: () => readonly Uint8Array[]): Promise<Error | undefined> {
  return journal.rewrite(build).then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  )
}
