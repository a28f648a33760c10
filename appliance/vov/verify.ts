/**
 * Verifying a VoV log: a whole directory, one file, or a set of files (copied from a gateway over
 * SSH). The checks are those of docs/vov-log.md ("What verify checks"):
 *
 *  - every line parses (format.ts) and the files end with a newline (only the newest file may end
 *    in an incomplete line: a writer mid-write or killed, reported as `torn_tail`, not an error);
 *  - seq counts up by one from entry to entry, across files; `prev` is the SHA-256 of the line
 *    before it (the first line of a file links to the last line of the file before);
 *  - line 1 of each file is its genesis (seq 0) or file_opened entry, signed by the node identity,
 *    naming the node ID (derived from the identity key) and the log key in force; file names of
 *    the form vov-<16 digits>.jsonl carry the seq of their first entry;
 *  - every other entry is signed by the log key in force: the one certified last, by genesis,
 *    file_opened or key_rotated (identity-signed, `previous_key_id` naming the key it replaces);
 *  - optionally, the identity key is the expected one (`identityKey`) and the entry at an anchor
 *    seq has the recorded hash (`anchor`), which is what detects a cut at the end of the log.
 *
 * Files are put in order by the seq of their first line, not by name, so files renamed in transit
 * still verify; a file named vov-<seq>.jsonl whose first line holds another seq is an error (a
 * rename inside a log directory). Verification stops at the first bad line and reports its file
 * and 1-based line; `line` 0 means a problem with a file or the log as a whole. Nothing here
 * throws for bad content: unreadable files are reported the same way.
 */
import { open, readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { signVerify } from '../core/crypto.js'
import { nodeIdFromPublicKey, nodeIdToString } from '../core/identity.js'
import {
  FILE_NAME_RE,
  IDENTITY_KEY_ID,
  IDENTITY_TYPES,
  MAX_LINE_BYTES,
  ZERO_HASH,
  logKeyProblem,
  parseLine,
  signedBytes,
  type LogKeyCert,
  type VovEntry,
} from './format.js'

export interface VerifyError {
  file: string
  /** 1-based line; 0 for the file or the log as a whole. */
  line: number
  seq?: number
  reason: string
}

export interface VerifyWarning {
  file: string
  line: number
  seq: number
  reason: string
}

export interface VerifyFileReport {
  file: string
  /** Complete, verified entries in the file (up to the error, if it is in this file). */
  entries: number
  first_seq: number | null
  last_seq: number | null
}

/** An entry the log wrote after cutting an incomplete or bad end of a file at open. */
export interface RecoveryNote {
  file: string
  line: number
  seq: number
  ts: string
  data: Record<string, unknown>
}

export interface VerifyReport {
  ok: boolean
  files: VerifyFileReport[]
  /** Entries verified (all of them when ok). */
  entries: number
  first_seq: number | null
  last_seq: number | null
  first_ts: string | null
  last_ts: string | null
  /** Entry hash of the last verified entry: record it with last_seq as an anchor for a later verify. */
  last_hash: string | null
  node_id: string | null
  identity_key: string | null
  /** True when the identity key was given (opts.identityKey) and matched. */
  identity_pinned: boolean
  /** True when the first entry is the chain's genesis (seq 0); false when earlier files are absent. */
  starts_at_genesis: boolean
  /** key_rotated entries verified. */
  key_rotations: number
  /** Log keys in force over the verified range, oldest first. */
  keys: string[]
  recoveries: RecoveryNote[]
  /** The incomplete last line of the newest file, if any (not an error: see the module comment). */
  torn_tail: { file: string; line: number; bytes: number } | null
  /** The anchor given, and whether it was checked ok. */
  anchor: { seq: number; hash: string; ok: boolean } | null
  /** Oddities that do not break the chain (time going back, a key used outside its validity). */
  warnings: VerifyWarning[]
  /** Warnings found, including those not listed (at most MAX_WARNINGS are). */
  warning_count: number
  error?: VerifyError
}

export interface VerifyOptions {
  /** The node identity public key (32 bytes) the log must be signed by. */
  identityKey?: Uint8Array
  /** A (seq, hash) pair recorded earlier: the log must still contain that entry with that hash. */
  anchor?: { seq: number; hash: string }
  /** Fail when the log does not start at its genesis entry (earlier files missing or archived). */
  requireGenesis?: boolean
}

/** At most this many warnings are listed in a report. */
export const MAX_WARNINGS = 100

/** The log files of a directory: vov-*.jsonl, by name. Other files (key, cut-off tails) are not log files. */
export async function listLogFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir)
  return names
    .filter((n) => n.startsWith('vov-') && n.endsWith('.jsonl'))
    .sort()
    .map((n) => join(dir, n))
}

export interface FileLine {
  line: number
  buf: Buffer
  /** False for the last line of a file when it does not end with a newline. */
  complete: boolean
  /** True when the line is longer than MAX_LINE_BYTES (buf holds its start only). */
  oversize: boolean
  /** Byte offset of the line in the file. */
  offset: number
}

const CHUNK = 1024 * 1024

/** The lines of a file, streamed (1 MiB reads), split at "\n" (the newline is not part of buf). */
export async function* fileLines(path: string): AsyncGenerator<FileLine> {
  const fh = await open(path, 'r')
  try {
    const chunk = Buffer.allocUnsafe(CHUNK)
    let carry: Buffer[] = []
    let carryLen = 0
    let carryStart = 0
    let pos = 0
    let line = 0
    let skipping = false
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, CHUNK, pos)
      if (bytesRead === 0) break
      const buf = chunk.subarray(0, bytesRead)
      let start = 0
      for (;;) {
        const nl = buf.indexOf(0x0a, start)
        if (nl < 0) break
        if (skipping) {
          skipping = false
        } else {
          const piece = buf.subarray(start, nl)
          const whole = carryLen === 0 ? Buffer.from(piece) : Buffer.concat([...carry, piece])
          yield { line: ++line, buf: whole, complete: true, oversize: whole.length > MAX_LINE_BYTES, offset: carryLen === 0 ? pos + start : carryStart }
        }
        carry = []
        carryLen = 0
        start = nl + 1
      }
      if (start < bytesRead && !skipping) {
        if (carryLen === 0) carryStart = pos + start
        carry.push(Buffer.from(buf.subarray(start)))
        carryLen += bytesRead - start
        if (carryLen > MAX_LINE_BYTES) {
          yield { line: ++line, buf: Buffer.concat(carry).subarray(0, MAX_LINE_BYTES + 1), complete: false, oversize: true, offset: carryStart }
          carry = []
          carryLen = 0
          skipping = true
        }
      }
      pos += bytesRead
    }
    if (carryLen > 0) yield { line: ++line, buf: Buffer.concat(carry), complete: false, oversize: false, offset: carryStart }
  } finally {
    await fh.close()
  }
}

interface KeyState {
  keyId: string
  publicKey: Buffer
  createdMs: number
  expiresMs: number
}

/** Where a line is, for messages and callbacks. */
export interface LineContext {
  file: string
  line: number
}

/**
 * The chain rules, one line at a time. `line()` returns null when the line is good (and advances
 * the state) or the reason it is not. Callers stop at the first reason.
 */
export class ChainVerifier {
  nodeId: string | null = null
  identityKey: Buffer | null = null
  readonly pinned: boolean
  expectedSeq: number | null = null
  prevHash: string | null = null
  prevWhere: LineContext | null = null
  prevTsMs: number | null = null
  current: KeyState | null = null
  startsAtGenesis = false
  firstSeq: number | null = null
  firstTs: string | null = null
  lastTs: string | null = null
  entries = 0
  keyRotations = 0
  keys: string[] = []
  recoveries: RecoveryNote[] = []
  warnings: VerifyWarning[] = []
  warningCount = 0
  private readonly anchor: { seq: number; hash: string } | undefined
  anchorChecked = false
  private readonly requireGenesis: boolean

  constructor(opts: VerifyOptions = {}) {
    this.identityKey = opts.identityKey ? Buffer.from(opts.identityKey) : null
    if (this.identityKey) this.nodeId = nodeIdToString(nodeIdFromPublicKey(this.identityKey))
    this.pinned = this.identityKey !== null
    this.anchor = opts.anchor
    this.requireGenesis = opts.requireGenesis ?? false
  }

  private warn(where: LineContext, seq: number, reason: string): void {
    this.warningCount++
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push({ file: where.file, line: where.line, seq, reason })
  }

  /** Checks one complete line; `fileName` is the file's base name (for the first-seq check). */
  line(where: LineContext, raw: Buffer, fileName: string): { entry: VovEntry; reason: null } | { entry: VovEntry | null; reason: string } {
    const p = parseLine(raw)
    if (!p.ok) return { entry: null, reason: p.reason }
    const e = p.entry
    const bad = (reason: string) => ({ entry: e, reason })
    const first = where.line === 1

    // Position: line 1 of a file opens it (genesis or file_opened); nothing else may.
    if (first && e.type !== 'genesis' && e.type !== 'file_opened') return bad(`line 1 of a log file must be its genesis or file_opened entry, found ${e.type} (the start of the file was cut or lines were moved)`)
    if (!first && (e.type === 'genesis' || e.type === 'file_opened')) return bad(`a ${e.type} entry may only be line 1 of a file (lines were moved or files joined)`)
    if (first) {
      const m = FILE_NAME_RE.exec(fileName)
      if (m !== null && Number(m[1]) !== e.seq) return bad(`the file name says its first entry is seq ${Number(m[1])}, but line 1 holds seq ${e.seq} (the file was renamed)`)
    }

    // Sequence and hash chain.
    if (this.expectedSeq === null) {
      if (e.type === 'genesis') {
        if (e.seq !== 0) return bad(`genesis entry with seq ${e.seq}, not 0`)
        if (e.prev !== ZERO_HASH) return bad('genesis entry whose prev is not 64 zeros')
        this.startsAtGenesis = true
      } else if (this.requireGenesis) {
        return bad(`the log starts at seq ${e.seq}, not at its genesis entry (earlier files are missing)`)
      }
    } else {
      if (e.seq !== this.expectedSeq) {
        if (e.seq > this.expectedSeq) {
          const gap = e.seq - this.expectedSeq
          return bad(`seq ${e.seq} follows seq ${this.expectedSeq - 1}: ${gap === 1 ? `entry ${this.expectedSeq} is` : `entries ${this.expectedSeq}..${e.seq - 1} are`} missing (deleted${first ? ', or a file is missing' : ''}, or lines reordered)`)
        }
        return bad(`seq ${e.seq} follows seq ${this.expectedSeq - 1}: the seq goes back (lines reordered or repeated${first ? ', or files overlap' : ''})`)
      }
      if (e.prev !== this.prevHash) {
        const at = this.prevWhere ? `${this.prevWhere.file}:${this.prevWhere.line}` : 'the entry before'
        return bad(`prev does not match the hash of the entry before it (${at}): that entry was changed after this one was written, or this one was moved`)
      }
    }

    // Signature.
    if (e.key === IDENTITY_KEY_ID) {
      if (!IDENTITY_TYPES.has(e.type)) return bad(`a ${e.type} entry signed by the identity key: only genesis, file_opened and key_rotated are`)
      let idKey = this.identityKey
      if (e.type !== 'key_rotated') {
        const k = e.data.identity_key
        if (typeof k !== 'string' || !/^[0-9a-f]{64}$/.test(k)) return bad(`${e.type}: data.identity_key is not 64 lower-case hex digits`)
        const named = Buffer.from(k, 'hex')
        if (idKey === null) idKey = named
        else if (!idKey.equals(named)) {
          return bad(`${e.type}: names identity key ${k}, but ${this.pinned ? 'the expected identity key is' : 'the log was signed so far by'} ${idKey.toString('hex')} (a log of another node)`)
        }
      }
      if (idKey === null) return bad(`${e.type} entry before any entry naming the identity key`)
      if (!signVerify(e.sig, signedBytes(e.raw), idKey)) return bad(`signature by the identity key does not verify: the entry was changed after it was signed, or forged`)
      const problem = this.identityEntry(e, idKey, fileName)
      if (problem !== null) return bad(problem)
    } else {
      if (this.current === null) return bad(`signed by log key ${e.key}, but no log key is certified before this line`)
      if (e.key !== this.current.keyId) {
        const known = this.keys.includes(e.key)
        return bad(`signed by log key ${e.key}, but the key in force is ${this.current.keyId}${known ? ` (${e.key} was replaced earlier)` : ' (a key never certified in this log)'}`)
      }
      if (!signVerify(e.sig, signedBytes(e.raw), this.current.publicKey)) return bad(`signature by log key ${e.key} does not verify: the entry was changed after it was signed, or forged`)
      if (e.tsMs < this.current.createdMs || e.tsMs >= this.current.expiresMs) {
        this.warn(where, e.seq, `signed by log key ${e.key} at ${e.ts}, outside its validity ${new Date(this.current.createdMs).toISOString()} .. ${new Date(this.current.expiresMs).toISOString()} (the clock was stepped?)`)
      }
      if (e.type === 'log_recovered') this.recoveries.push({ file: where.file, line: where.line, seq: e.seq, ts: e.ts, data: e.data })
    }

    // Anchor.
    if (this.anchor && e.seq === this.anchor.seq) {
      if (e.hash !== this.anchor.hash) return bad(`the anchor says seq ${e.seq} hashes to ${this.anchor.hash}, this entry hashes to ${e.hash}: the log was rewritten at or before this entry`)
      this.anchorChecked = true
    }

    if (this.prevTsMs !== null && e.tsMs < this.prevTsMs) this.warn(where, e.seq, `time goes back: ${e.ts} is before the previous entry's ${new Date(this.prevTsMs).toISOString()} (the clock was stepped?)`)
    this.prevTsMs = e.tsMs
    if (this.firstSeq === null) {
      this.firstSeq = e.seq
      this.firstTs = e.ts
    }
    this.lastTs = e.ts
    this.expectedSeq = e.seq + 1
    this.prevHash = e.hash
    this.prevWhere = where
    this.entries++
    return { entry: e, reason: null }
  }

  /** The meaning of an identity-signed entry: its data, and the key it certifies. */
  private identityEntry(e: VovEntry, idKey: Buffer, fileName: string): string | null {
    const d = e.data
    if (e.type === 'genesis' || e.type === 'file_opened') {
      const nodeId = nodeIdToString(nodeIdFromPublicKey(idKey))
      if (d.node_id !== nodeId) return `${e.type}: data.node_id ${JSON.stringify(d.node_id)} is not the node ID of the identity key (${nodeId})`
      if (typeof d.file !== 'string') return `${e.type}: data.file is missing`
      if (FILE_NAME_RE.test(fileName) && d.file !== fileName) return `${e.type}: the entry says it opened ${d.file}, but it is in ${fileName} (the file was renamed)`
    }
    const problem = logKeyProblem(d.log_key)
    if (problem !== null) return `${e.type}: ${problem}`
    const cert = d.log_key as LogKeyCert
    if (e.type === 'file_opened' && this.current !== null && cert.key_id !== this.current.keyId) {
      return `file_opened names log key ${cert.key_id}, but the key in force at the end of the previous file is ${this.current.keyId}`
    }
    if (e.type === 'key_rotated') {
      if (this.current === null) return 'key_rotated before any log key was certified'
      if (d.previous_key_id !== this.current.keyId) return `key_rotated: previous_key_id ${JSON.stringify(d.previous_key_id)} is not the key in force (${this.current.keyId})`
      if (cert.key_id === this.current.keyId) return 'key_rotated certifies the key already in force'
      if (this.keys.includes(cert.key_id)) return `key_rotated certifies ${cert.key_id} again, a key used before`
      this.keyRotations++
    }
    if (this.identityKey === null) {
      this.identityKey = idKey
      this.nodeId = nodeIdToString(nodeIdFromPublicKey(idKey))
    }
    this.current = { keyId: cert.key_id, publicKey: Buffer.from(cert.public_key, 'hex'), createdMs: Date.parse(cert.created_at), expiresMs: Date.parse(cert.expires_at) }
    if (!this.keys.includes(cert.key_id)) this.keys.push(cert.key_id)
    return null
  }
}

/** Reads the first line of a file (up to MAX_LINE_BYTES), for ordering; null when there is none. */
async function firstLine(path: string): Promise<Buffer | null> {
  for await (const l of fileLines(path)) {
    return l.complete && !l.oversize ? l.buf : null
  }
  return null
}

/** Files in chain order: by the seq of line 1, else by the seq in the name, else last; ties by name. */
export async function orderFiles(paths: readonly string[]): Promise<{ path: string; firstSeq: number | null; first: Buffer | null }[]> {
  const rows = await Promise.all(
    paths.map(async (path) => {
      let first: Buffer | null = null
      try {
        first = await firstLine(path)
      } catch {
        first = null
      }
      const p = first ? parseLine(first) : null
      const m = FILE_NAME_RE.exec(basename(path))
      const key = p?.ok ? p.entry.seq : m ? Number(m[1]) : Infinity
      return { path, firstSeq: p?.ok ? p.entry.seq : null, first, key }
    }),
  )
  rows.sort((a, b) => a.key - b.key || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return rows.map(({ path, firstSeq, first }) => ({ path, firstSeq, first }))
}

export interface ChainWalkOptions extends VerifyOptions {
  /** Receives every verified entry, in chain order. */
  onEntry?: (entry: VovEntry, where: LineContext) => void
}

/** Verifies `paths` (files) as one chain. */
export async function verifyFiles(paths: readonly string[], opts: ChainWalkOptions = {}): Promise<VerifyReport> {
  const v = new ChainVerifier(opts)
  const files: VerifyFileReport[] = []
  let error: VerifyError | undefined
  let torn: VerifyReport['torn_tail'] = null
  let lastWhere: LineContext | null = null
  const ordered = await orderFiles(paths)
  if (ordered.length === 0) error = { file: '', line: 0, reason: 'no log files given' }

  for (let i = 0; i < ordered.length && error === undefined; i++) {
    const path = ordered[i]!.path
    const name = basename(path)
    const isLast = i === ordered.length - 1
    const fr: VerifyFileReport = { file: path, entries: 0, first_seq: null, last_seq: null }
    files.push(fr)
    let lines = 0
    try {
      for await (const l of fileLines(path)) {
        lines = l.line
        const where = { file: path, line: l.line }
        if (l.oversize) {
          error = { file: path, line: l.line, reason: `line is longer than ${MAX_LINE_BYTES} bytes` }
          break
        }
        if (!l.complete) {
          if (isLast) {
            torn = { file: path, line: l.line, bytes: l.buf.length }
            break
          }
          error = { file: path, line: l.line, reason: `incomplete line (${l.buf.length} bytes without a newline) at the end of a file that is not the newest: the file was cut short` }
          break
        }
        const r = v.line(where, l.buf, name)
        if (r.reason !== null) {
          error = { file: path, line: l.line, reason: r.reason }
          if (r.entry) error.seq = r.entry.seq
          break
        }
        fr.entries++
        if (fr.first_seq === null) fr.first_seq = r.entry.seq
        fr.last_seq = r.entry.seq
        lastWhere = where
        opts.onEntry?.(r.entry, where)
      }
    } catch (err) {
      error = { file: path, line: 0, reason: `cannot read: ${(err as Error).message}` }
      break
    }
    if (error === undefined && lines === 0) {
      if (!isLast) error = { file: path, line: 0, reason: 'empty file in the middle of the log' }
      else torn = { file: path, line: 1, bytes: 0 }
    }
  }

  if (error === undefined && v.entries === 0) {
    const f = ordered[0]?.path ?? ''
    error = { file: f, line: torn?.line ?? 0, reason: 'no complete entries in the log' }
  }
  if (error === undefined && opts.anchor && !v.anchorChecked) {
    const a = opts.anchor
    const last = v.expectedSeq === null ? -1 : v.expectedSeq - 1
    if (a.seq > last) {
      error = { file: lastWhere?.file ?? '', line: lastWhere ? lastWhere.line + 1 : 0, reason: `the log ends at seq ${last}, but the anchor names seq ${a.seq}: the end of the log was cut (entries ${last + 1}..${a.seq} are missing)` }
    } else {
      error = { file: files[0]?.file ?? '', line: 0, reason: `the anchor names seq ${a.seq}, before the first entry present (seq ${v.firstSeq}): it cannot be checked` }
    }
  }

  const report: VerifyReport = {
    ok: error === undefined,
    files,
    entries: v.entries,
    first_seq: v.firstSeq,
    last_seq: v.expectedSeq === null ? null : v.expectedSeq - 1,
    first_ts: v.firstTs,
    last_ts: v.lastTs,
    last_hash: v.prevHash,
    node_id: v.nodeId,
    identity_key: v.identityKey ? v.identityKey.toString('hex') : null,
    identity_pinned: v.pinned,
    starts_at_genesis: v.startsAtGenesis,
    key_rotations: v.keyRotations,
    keys: v.keys,
    recoveries: v.recoveries,
    torn_tail: torn,
    anchor: opts.anchor ? { ...opts.anchor, ok: v.anchorChecked && error === undefined } : null,
    warnings: v.warnings,
    warning_count: v.warningCount,
  }
  if (error !== undefined) report.error = error
  return report
}

/** The log files a path stands for: a directory's vov-*.jsonl, or the file itself. */
export async function logFilesOf(path: string): Promise<string[]> {
  const st = await stat(path)
  return st.isDirectory() ? listLogFiles(path) : [path]
}

/**
 * Verifies a whole log: a directory (its vov-*.jsonl files) or one file. Never throws for bad or
 * missing content; the report's `error` names the first bad file and line.
 */
export async function verifyLog(pathOrDir: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  let paths: string[]
  try {
    paths = await logFilesOf(pathOrDir)
  } catch (err) {
    return verifyFailure(pathOrDir, `cannot read: ${(err as Error).message}`)
  }
  if (paths.length === 0) return verifyFailure(pathOrDir, 'no VoV log files (vov-*.jsonl) in this directory')
  return verifyFiles(paths, opts)
}

/** A report for a log that could not be read at all. */
export function verifyFailure(file: string, reason: string): VerifyReport {
  return {
    ok: false,
    files: [],
    entries: 0,
    first_seq: null,
    last_seq: null,
    first_ts: null,
    last_ts: null,
    last_hash: null,
    node_id: null,
    identity_key: null,
    identity_pinned: false,
    starts_at_genesis: false,
    key_rotations: 0,
    keys: [],
    recoveries: [],
    torn_tail: null,
    anchor: null,
    warnings: [],
    warning_count: 0,
    error: { file, line: 0, reason },
  }
}
