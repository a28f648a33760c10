/**
 * The small durable JSON files of node identity and coordination (node.json, mesh-ip.json,
 * peers.json): atomic replacement, exclusive creation, bounded reads, and the error that names
 * the file and the field at fault.
 *
 * These files change rarely (first start, an address conflict, a peer admitted), so the
 * operations are synchronous and each one is durable when it returns:
 *
 *  - `writeFileAtomicSync` writes `<file>.tmp`, fsyncs it, renames it over `<file>` and fsyncs the
 *    directory: at every moment the file is the old or the new content, never a mix, and a
 *    kill -9 or a power cut at any point leaves one of the two. A `<file>.tmp` left by a crash is
 *    overwritten by the next write; readers never look at it. One writer per file (one daemon
 *    per state directory).
 *  - `createFileExclusiveSync` writes a private temporary file and hard-links it to `<file>`,
 *    which fails when `<file>` exists: two processes creating the same file at once cannot
 *    overwrite each other, and the file appears complete or not at all.
 *
 * Files are mode 0600; a directory these functions create is mode 0700.
 */
import { closeSync, constants, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readSync, renameSync, unlinkSync, writeSync, chmodSync, fstatSync } from 'node:fs'
import { dirname } from 'node:path'

/** Mode of the identity and coordination files. */
export const FILE_MODE = 0o600
/** Mode of a directory created for them. */
export const DIR_MODE = 0o700

/**
 * A file that cannot be used: `file` names it, `field` the key path at fault ('' for the whole
 * file). The message reads `<file>: <field>: <what>` (or `<file>: <what>`).
 */
export class IdentityFileError extends Error {
  override readonly name = 'IdentityFileError'
  readonly file: string
  readonly field: string

  constructor(file: string, field: string, what: string, options?: { cause?: unknown }) {
    super(field === '' ? `${file}: ${what}` : `${file}: ${field}: ${what}`, options)
    this.file = file
    this.field = field
  }
}

/** Creates `dir` (and parents) mode 0700 when missing; an existing directory is left as it is. */
export function ensureDirSync(dir: string): void {
  try {
    const made = mkdirSync(dir, { recursive: true, mode: DIR_MODE })
    // The umask may have taken bits away; only directories this call created are set.
    if (made !== undefined) chmodSync(dir, DIR_MODE)
  } catch (err) {
    throw new Error(`cannot create the directory ${dir}: ${(err as Error).message}`, { cause: err })
  }
}

/** fsyncs a directory, so that a file created or renamed in it survives a power cut. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function writeAllSync(fd: number, data: Buffer): void {
  let done = 0
  while (done < data.length) {
    const n = writeSync(fd, data, done, data.length - done)
    if (n <= 0) throw new Error(`short write (${done} of ${data.length} bytes)`)
    done += n
  }
}

/** Writes `data` to a new file `tmp` (mode 0600, replacing a leftover) and fsyncs it. */
function writeTempSync(tmp: string, data: Buffer): void {
  try {
    unlinkSync(tmp)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE)
  try {
    fchmodSync(fd, FILE_MODE)
    writeAllSync(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function ioError(path: string, what: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException
  const out = new Error(`${path}: ${what} failed: ${e?.message ?? String(err)}`, { cause: err }) as NodeJS.ErrnoException
  if (e?.code !== undefined) out.code = e.code
  return out
}

/** Replaces `file` with `data` atomically and durably (tmp, fsync, rename, directory fsync). */
export function writeFileAtomicSync(file: string, data: string | Buffer): void {
  const dir = dirname(file)
  ensureDirSync(dir)
  const tmp = `${file}.tmp`
  const bytes = typeof data === 'string' ? Buffer.from(data) : data
  try {
    writeTempSync(tmp, bytes)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // nothing to clean
    }
    throw ioError(tmp, 'write', err)
  }
  try {
    renameSync(tmp, file)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // nothing to clean
    }
    throw ioError(file, 'rename', err)
  }
  fsyncDirSync(dir)
}

/**
 * Creates `file` with `data` unless it exists: true when this call created it, false when it
 * was there already (its content untouched). Durable when it returns true.
 */
export function createFileExclusiveSync(file: string, data: string | Buffer): boolean {
  const dir = dirname(file)
  ensureDirSync(dir)
  const tmp = `${file}.${process.pid}.tmp`
  const bytes = typeof data === 'string' ? Buffer.from(data) : data
  try {
    writeTempSync(tmp, bytes)
  } catch (err) {
    throw ioError(tmp, 'write', err)
  }
  try {
    linkSync(tmp, file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw ioError(file, 'create', err)
  } finally {
    try {
      unlinkSync(tmp)
    } catch {
      // already gone
    }
    fsyncDirSync(dir)
  }
}

/**
 * Reads a small text file: undefined when it does not exist; IdentityFileError naming it when
 * it is not a regular file, is larger than `maxBytes`, or is not UTF-8.
 */
export function readSmallFileSync(file: string, maxBytes: number): { text: string; mode: number } | undefined {
  let fd: number
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new IdentityFileError(file, '', 'is a symbolic link; expected a regular file', { cause: err })
    throw new IdentityFileError(file, '', `cannot be read: ${(err as Error).message}`, { cause: err })
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw new IdentityFileError(file, '', 'is not a regular file')
    if (st.size > maxBytes) throw new IdentityFileError(file, '', `is ${st.size} bytes, over the limit of ${maxBytes}`)
    const buf = Buffer.alloc(st.size)
    let got = 0
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got)
      if (n === 0) break
      got += n
    }
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, got))
    } catch {
      throw new IdentityFileError(file, '', 'is not UTF-8 text')
    }
    return { text, mode: st.mode }
  } finally {
    closeSync(fd)
  }
}

/** Parses `text` as one JSON object; IdentityFileError naming `file` otherwise. */
export function parseJsonObject(file: string, text: string): Record<string, unknown> {
  if (text.trim() === '') throw new IdentityFileError(file, '', 'is empty; expected a JSON object')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new IdentityFileError(file, '', `is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new IdentityFileError(file, '', `holds ${describe(value)}; expected a JSON object`)
  return value as Record<string, unknown>
}

/** A short description of a JSON value for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)}`
  return `${typeof value} ${String(value)}`
}

/** `ms` as ISO 8601 UTC with milliseconds; RangeError for a time outside what Date holds. */
export function isoUtc(ms: number): string {
  return new Date(ms).toISOString()
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** True for the text `isoUtc` produces (and that round-trips through Date). */
export function isIsoUtc(text: string): boolean {
  if (!ISO_UTC.test(text)) return false
  const ms = Date.parse(text)
  return Number.isFinite(ms) && new Date(ms).toISOString() === text
}

/** The file's mode bits as 4 octal digits, for messages. */
export function modeText(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0')
}

