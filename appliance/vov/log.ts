/**
 * The VoV audit log writer: a hash-chained, signed JSON Lines log in <stateDir>/vov/, the
 * gateway's record for auditors (docs/vov-log.md is the format; verify.ts the checker).
 *
 * Entries: `append(type, data)` builds the line, signs it with the current log key (Ed25519,
 * libsodium), hashes it (SHA-256) into the next entry's `prev`, and queues it. It is synchronous
 * and cheap (one signature, one hash, no I/O), so the daemon can log from any code path.
 *
 * Writes: queued lines are written by a background round started by a timer (`writeDelayMs`
 * after the first queued line) or at once when 1 MiB is queued. A round writes everything queued
 * (positional writes, one per file) and fdatasyncs; lines queued meanwhile go in the next round,
 * so under load rounds run back to back with growing batches (group commit). `flush()` resolves
 * once every line appended before the call is on disk. A line still queued when the process dies
 * is lost: that is the price of a synchronous append; call flush() where an event must be durable.
 * A failed write keeps the lines queued and retries every second; flush() rejects meanwhile and
 * `onError` hears about it.
 *
 * Keys: the log key (Ed25519) is replaced when it is `keyLifetimeMs` old (checked at each append
 * against `now()`) and on `rotateKey()`. The new key's seed is written first (log-key.json, 0600,
 * tmp + fsync + rename + directory fsync), then a key_rotated entry signed by the node identity
 * certifies it (public key, validity, previous key id) and the old secret is wiped. Genesis and
 * every file's first entry (file_opened) certify the key in force too, so each file can be
 * checked on its own given the identity key.
 *
 * Files: vov-<seq of first entry, 16 digits>.jsonl, 0600. A new file is started when the next
 * line would take the current one over `maxFileBytes` or when it is `maxFileAgeMs` old; its first
 * entry (file_opened) links to the last entry of the previous file like any other entry.
 *
 * Open: resumes the chain from the newest file. An end of that file that is not a valid
 * continuation of the chain (the incomplete line a crash leaves, or complete lines that do not
 * verify) is cut off: the bytes are saved next to the file as <file>.cut-<offset>, the file is
 * truncated, and a log_recovered entry records file, offset, length, SHA-256, the first 4 KiB and
 * where the rest was saved, so an auditor sees what was removed and why. A newest file with no
 * valid entry at all (a crash right after it was created) is cut whole and removed. If the key
 * file does not hold the key in force in the log (missing, unreadable, readable by others, or
 * written for a rotation whose certificate never reached the disk), a fresh key is certified.
 *
 * One writer per directory: nothing locks against a second process.
 */
import { randomUUID } from 'node:crypto'
import { chmodSync, closeSync, constants, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs'
import { mkdir, open as openFile, readFile, readdir, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { SIGN_BYTES, signDetachedInto, signFromSeed, signVerify, wipe, type SignKeyPair } from '../core/crypto.js'
import type { Identity } from '../core/identity.js'
import { fsyncDirectory } from '../store/journal.js'
import {
  FILE_NAME_RE,
  IDENTITY_KEY_ID,
  MAX_DATA_BYTES,
  RESERVED_TYPES,
  SIGN_CONTEXT,
  SIG_SUFFIX_BYTES,
  TYPE_RE,
  ZERO_HASH,
  entryHash,
  fileNameFor,
  headerText,
  keyIdOf,
  logKeyProblem,
  parseLine,
  signedBytes,
  type LogKeyCert,
  type VovEntry,
} from './format.js'

export interface VovLogOptions {
  /** <stateDir>/vov; created 0700. */
  dir: string
  /** The node identity: names the node in genesis and certifies each log key. */
  identity: Identity
  /** Clock, ms since the epoch (default Date.now); tests drive time with it. */
  now?: () => number
  /** Age at which append() replaces the log key (default 24 h). */
  keyLifetimeMs?: number
  /** A file is closed before a line would take it over this size (default 16 MiB). */
  maxFileBytes?: number
  /** A file is closed once it is this old (default 24 h). */
  maxFileAgeMs?: number
  /** Delay between the first queued line and the background write (default 20 ms). */
  writeDelayMs?: number
  /** Hears about background write failures (the lines stay queued and are retried). */
  onError?: (err: Error) => void
}

export interface LogKeyInfo {
  key_id: string
  public_key: string
  created_at: string
  expires_at: string
}

/** The file holding the current log key's seed, in the log directory, mode 0600. */
export const KEY_FILE = 'log-key.json'
export const DEFAULT_KEY_LIFETIME_MS = 24 * 3600 * 1000
export const DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
export const DEFAULT_MAX_FILE_AGE_MS = 24 * 3600 * 1000
const DEFAULT_WRITE_DELAY_MS = 20
/** Queued bytes that start a write round at once. */
const HIGH_WATER_BYTES = 1024 * 1024
/** Retry delay after a failed write round. */
const RETRY_MS = 1000
/** How much of a cut-off tail a log_recovered entry carries itself (the rest is in the .cut file). */
const CUT_HEAD_BYTES = 4096

interface LogKey {
  keyId: string
  pair: SignKeyPair
  createdMs: number
  expiresMs: number
}

interface Segment {
  /** File base name. */
  name: string
  /** Byte offset in the file where this segment's first line goes. */
  position: number
  lines: Buffer[]
  bytes: number
  /** The joined lines, once a round took the segment, and how much of it is written. */
  buf?: Buffer
  done: number
}

function iso(ms: number): string {
  const s = new Date(ms).toISOString()
  if (!/^\d{4}-/.test(s)) throw new RangeError(`the clock says ${s}, outside the years 0000-9999 a VoV timestamp can hold`)
  return s
}

function certOf(k: LogKey): LogKeyCert {
  return { key_id: k.keyId, public_key: k.pair.publicKey.toString('hex'), created_at: iso(k.createdMs), expires_at: iso(k.expiresMs) }
}

function newKey(createdMs: number, lifetimeMs: number): { key: LogKey; seed: Buffer } {
  const seed = Buffer.alloc(32)
  crypto.getRandomValues(seed)
  const pair = signFromSeed(seed)
  return { key: { keyId: keyIdOf(pair.publicKey), pair, createdMs, expiresMs: createdMs + lifetimeMs }, seed }
}

/** Writes the key file atomically: tmp (0600) + fsync, rename, directory fsync. Synchronous. */
function writeKeyFile(dir: string, nodeId: string, key: LogKey, seed: Buffer): void {
  const file = join(dir, KEY_FILE)
  const tmp = `${file}.tmp`
  const body = Buffer.from(
    JSON.stringify({ v: 1, node_id: nodeId, ...certOf(key), seed: seed.toString('hex') }) + '\n',
  )
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600)
  try {
    // fchmod-free: the file is created 0600; an existing tmp is truncated and its mode fixed below.
    writeSync(fd, body)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
    wipe(body)
  }
  chmodSync(tmp, 0o600)
  renameSync(tmp, file)
  const d = openSync(dir, 'r')
  try {
    fsyncSync(d)
  } finally {
    closeSync(d)
  }
}

/** The key in the key file if it is the one with `keyId`; otherwise why not. */
function readKeyFile(dir: string, keyId: string): { key: Omit<LogKey, 'createdMs' | 'expiresMs'> } | { reason: string } {
  const file = join(dir, KEY_FILE)
  let text: string
  try {
    const st = statSync(file)
    if ((st.mode & 0o077) !== 0) return { reason: `${KEY_FILE} was accessible by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}), so its key is no longer trusted` }
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return { reason: code === 'ENOENT' ? `${KEY_FILE} is missing` : `${KEY_FILE} cannot be read (${(err as Error).message})` }
  }
  let j: Record<string, unknown>
  try {
    j = JSON.parse(text) as Record<string, unknown>
  } catch {
    return { reason: `${KEY_FILE} is not valid JSON` }
  }
  if (typeof j.seed !== 'string' || !/^[0-9a-f]{64}$/.test(j.seed)) return { reason: `${KEY_FILE} holds no seed` }
  const seed = Buffer.from(j.seed, 'hex')
  const pair = signFromSeed(seed)
  wipe(seed)
  const id = keyIdOf(pair.publicKey)
  if (id !== keyId) {
    wipe(pair.secretKey)
    return { reason: `${KEY_FILE} holds key ${id}, but the key in force in the log is ${keyId} (the process stopped between writing a new key and logging its certificate, or the file was replaced)` }
  }
  return { key: { keyId: id, pair } }
}

/** What open found at the end of the newest file. */
interface TailScan {
  /** Bytes of the file up to the end of the last valid entry. */
  keep: number
  /** Complete lines kept. */
  lines: number
  last: VovEntry | null
  first: VovEntry | null
  /** The log key in force after the last kept entry. */
  cert: LogKeyCert | null
  /** Complete lines cut (after `keep`), and why the first of them was not valid. */
  cutLines: number
  cutReason: string
  size: number
  image: Buffer
}

/**
 * Scans the newest file for where the chain goes on: the last line that parses and carries a
 * valid signature by the key in force (line 1 must be the file's genesis or file_opened entry,
 * signed by this node's identity). Everything after that line is cut; a bad line before it is
 * left in place for `log verify` to report, since it is damage, not a crash artefact.
 * Throws when line 1 is a valid entry of another node's log.
 */
function scanTail(path: string, image: Buffer, identity: Identity): TailScan {
  const lines: { end: number; entry: VovEntry | null; reason: string | null; cert: LogKeyCert | null }[] = []
  const idKey = identity.signing.publicKey
  let cert: LogKeyCert | null = null
  let start = 0
  for (;;) {
    const nl = image.indexOf(0x0a, start)
    if (nl < 0) break
    const p = parseLine(image.subarray(start, nl))
    const first = lines.length === 0
    let reason: string | null = p.ok ? null : p.reason
    if (p.ok) {
      const e = p.entry
      const opener = e.type === 'genesis' || e.type === 'file_opened'
      if (first !== opener) reason = first ? `line 1 is a ${e.type} entry, not genesis or file_opened` : `a ${e.type} entry after line 1`
      else if (e.key === IDENTITY_KEY_ID) {
        const named = e.data.identity_key
        if (first && typeof named === 'string' && /^[0-9a-f]{64}$/.test(named) && named !== idKey.toString('hex') && signVerify(e.sig, signedBytes(e.raw), Buffer.from(named, 'hex'))) {
          throw new Error(`${path} belongs to the VoV log of another node (identity key ${named}); this node's identity key is ${idKey.toString('hex')}: move the directory away or use another state directory`)
        }
        if (!signVerify(e.sig, signedBytes(e.raw), idKey)) reason = 'the identity signature does not verify'
        else if (logKeyProblem(e.data.log_key) !== null) reason = logKeyProblem(e.data.log_key)
        else cert = e.data.log_key as LogKeyCert
      } else if (cert === null || e.key !== cert.key_id) reason = `signed by key ${e.key}, not the key in force`
      else if (!signVerify(e.sig, signedBytes(e.raw), Buffer.from(cert.public_key, 'hex'))) reason = 'the signature does not verify'
    }
    lines.push({ end: nl + 1, entry: p.ok ? p.entry : null, reason, cert })
    if (first && reason !== null) break // without a good line 1 nothing in the file can be checked
    start = nl + 1
  }
  let k = lines.length
  while (k > 0 && lines[k - 1]!.reason !== null) k--
  const keep = k === 0 ? 0 : lines[k - 1]!.end
  return {
    keep,
    lines: k,
    last: k === 0 ? null : lines[k - 1]!.entry,
    first: k === 0 ? null : lines[0]!.entry,
    cert: k === 0 ? null : lines[k - 1]!.cert,
    cutLines: image.subarray(keep).reduce((n, b) => (b === 0x0a ? n + 1 : n), 0),
    cutReason: k < lines.length ? `line ${k + 1}: ${lines[k]!.reason}` : 'an incomplete last line (the process was killed or the power lost mid-write)',
    size: image.length,
    image,
  }
}

/** A cut made at open, for the log_recovered entry. */
interface Cut {
  file: string
  offset: number
  bytes: number
  lines: number
  sha256: string
  reason: string
  saved_as: string
  head_b64: string
  removed_file: boolean
}

/** Saves bytes [offset, end) of a file as <file>.cut-<offset>[.<n>] (0600, fsynced). */
async function saveCut(dir: string, name: string, image: Buffer, offset: number, lines: number, reason: string, removed: boolean): Promise<Cut> {
  const bytes = image.subarray(offset)
  const existing = new Set(await readdir(dir))
  let saved = `${name}.cut-${offset}`
  for (let n = 1; existing.has(saved); n++) saved = `${name}.cut-${offset}.${n}`
  await writeFile(join(dir, saved), bytes, { mode: 0o600, flag: 'wx' })
  const fh = await openFile(join(dir, saved), 'r')
  await fh.sync().finally(() => fh.close())
  return {
    file: name,
    offset,
    bytes: bytes.length,
    lines,
    sha256: entryHash(bytes),
    reason,
    saved_as: saved,
    head_b64: bytes.subarray(0, CUT_HEAD_BYTES).toString('base64'),
    removed_file: removed,
  }
}

export class VovLog {
  readonly dir: string
  private readonly identity: Identity
  private readonly nodeId: string
  private readonly now: () => number
  private readonly keyLifetimeMs: number
  private readonly maxFileBytes: number
  private readonly maxFileAgeMs: number
  private readonly writeDelayMs: number
  private readonly onError: ((err: Error) => void) | undefined

  private key!: LogKey
  private seq = 0
  private prevHash = ZERO_HASH
  private curName = ''
  private curBytes = 0
  private curEntries = 0
  private curStartMs = 0

  private pending: Segment[] = []
  private pendingBytes = 0
  private assigned = 0
  private synced = 0
  private fh: FileHandle | null = null
  private fhName = ''
  private inflight: Promise<Error | null> | null = null
  private timer: NodeJS.Timeout | null = null
  private lastError: Error | null = null
  private closed = false
  private readonly sigBuf = Buffer.alloc(SIGN_BYTES)

  private constructor(opts: VovLogOptions) {
    this.dir = opts.dir
    this.identity = opts.identity
    this.nodeId = opts.identity.nodeIdHex
    this.now = opts.now ?? Date.now
    this.keyLifetimeMs = opts.keyLifetimeMs ?? DEFAULT_KEY_LIFETIME_MS
    this.maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES
    this.maxFileAgeMs = opts.maxFileAgeMs ?? DEFAULT_MAX_FILE_AGE_MS
    this.writeDelayMs = opts.writeDelayMs ?? DEFAULT_WRITE_DELAY_MS
    this.onError = opts.onError
    for (const [name, v] of [
      ['keyLifetimeMs', this.keyLifetimeMs],
      ['maxFileBytes', this.maxFileBytes],
      ['maxFileAgeMs', this.maxFileAgeMs],
    ] as const) {
      if (!Number.isFinite(v) || v <= 0) throw new TypeError(`VovLog: ${name} must be a positive number, got ${v}`)
    }
    if (!Number.isFinite(this.writeDelayMs) || this.writeDelayMs < 0) throw new TypeError(`VovLog: writeDelayMs must be 0 or more, got ${this.writeDelayMs}`)
  }

  /**
   * Opens the log in `opts.dir`, creating it (genesis) or resuming its chain; repairs the end of
   * the newest file as the module comment says. Everything it wrote is on disk when it resolves.
   */
  static async open(opts: VovLogOptions): Promise<VovLog> {
    const log = new VovLog(opts)
    await log.init()
    return log
  }

  private async init(): Promise<void> {
    const dir = this.dir
    const made = await mkdir(dir, { recursive: true, mode: 0o700 })
    if (made !== undefined) {
      chmodSync(dir, 0o700)
      await fsyncDirectory(join(dir, '..'))
    }
    const names = (await readdir(dir)).filter((n) => FILE_NAME_RE.test(n)).sort()
    const cuts: Cut[] = []
    let scan: TailScan | null = null
    while (names.length > 0) {
      const name = names[names.length - 1]!
      const path = join(dir, name)
      const image = await readFile(path)
      const s = scanTail(path, image, this.identity)
      if (s.lines > 0) {
        if (s.keep < s.size) {
          cuts.push(await saveCut(dir, name, image, s.keep, s.cutLines, s.cutReason, false))
          const fh = await openFile(path, 'r+')
          try {
            await fh.truncate(s.keep)
            await fh.sync()
          } finally {
            await fh.close()
          }
        }
        scan = s
        break
      }
      // No valid entry at all: cut the whole file and resume from the one before.
      if (s.size > 0) cuts.push(await saveCut(dir, name, image, 0, s.cutLines, s.cutReason, true))
      else cuts.push({ file: name, offset: 0, bytes: 0, lines: 0, sha256: entryHash(Buffer.alloc(0)), reason: 'an empty file (the process stopped right after creating it)', saved_as: '', head_b64: '', removed_file: true })
      await unlink(path)
      await fsyncDirectory(dir)
      names.pop()
    }

    const t = this.now()
    if (scan === null) {
      // A new chain: the first key, then genesis.
      const { key, seed } = newKey(t, this.keyLifetimeMs)
      writeKeyFile(dir, this.nodeId, key, seed)
      wipe(seed)
      this.key = key
      this.startFile(fileNameFor(0), t)
      const name = this.curName
      this.emit('genesis', JSON.stringify({ node_id: this.nodeId, identity_key: this.identity.identityKey.toString('hex'), file: name, log_key: certOf(key) }), true, t)
    } else {
      const last = scan.last!
      this.seq = last.seq + 1
      this.prevHash = last.hash
      this.curName = names[names.length - 1]!
      this.curBytes = scan.keep
      this.curEntries = scan.lines
      this.curStartMs = scan.first!.tsMs
      this.fhName = ''
      const cert = scan.cert!
      const found = readKeyFile(dir, cert.key_id)
      if ('key' in found) {
        this.key = { ...found.key, createdMs: Date.parse(cert.created_at), expiresMs: Date.parse(cert.expires_at) }
      } else {
        // The chain names a key we do not hold: certify a fresh one (previous_key_id is the chain's).
        this.key = { keyId: cert.key_id, pair: { publicKey: Buffer.from(cert.public_key, 'hex'), secretKey: Buffer.alloc(0) }, createdMs: Date.parse(cert.created_at), expiresMs: Date.parse(cert.expires_at) }
        this.rotateAt(t, found.reason)
      }
    }
    for (const c of cuts) {
      this.appendAt(t, 'log_recovered', {
        ...c,
        last_seq_kept: this.seq - 1,
        note: 'bytes cut off the end of the newest log file at open, as found; lines the process had queued but not written when it stopped are not in the log',
      })
    }
    await this.flush()
  }

  /** The current file. */
  get file(): string {
    return join(this.dir, this.curName)
  }

  /** Entries in the chain: the seq of the last entry + 1. */
  get entries(): number {
    return this.seq
  }

  /** Bytes appended but not yet on disk. */
  get pendingBytesCount(): number {
    return this.assigned - this.synced
  }

  keyInfo(): LogKeyInfo {
    return certOf(this.key)
  }

  /**
   * Appends one event. Synchronous: the entry is signed, chained and queued; it is written by the
   * next background round (flush() to wait for it). Throws TypeError for a bad type or data that
   * is not a plain object; data whose JSON is over 64 KiB, or that JSON cannot represent, is
   * replaced by a summary (so the event is never dropped).
   */
  append(type: string, data: Record<string, unknown>): { id: string; seq: number; ts: string } {
    this.assertOpen()
    if (typeof type !== 'string' || !TYPE_RE.test(type)) throw new TypeError(`VoV event type must match ${TYPE_RE}, got ${JSON.stringify(type)}`)
    if (RESERVED_TYPES.has(type)) throw new TypeError(`VoV event type ${type} is written by the log itself`)
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new TypeError(`VoV event data must be an object, got ${data === null ? 'null' : Array.isArray(data) ? 'an array' : typeof data}`)
    return this.appendAt(this.now(), type, data)
  }

  /** Replaces the log key now (`keys rotate`); `reason` is recorded in the key_rotated entry. */
  rotateKey(reason: string): LogKeyInfo & { previous_key_id: string | null } {
    this.assertOpen()
    const previous = this.key.keyId
    this.rotateAt(this.now(), String(reason))
    return { ...certOf(this.key), previous_key_id: previous }
  }

  /** Resolves once every entry appended before the call is written and fdatasync'ed. */
  async flush(): Promise<void> {
    if (this.closed && this.synced < this.assigned) throw new Error(`VoV log ${this.dir} is closed with ${this.assigned - this.synced} bytes unwritten (${this.lastError?.message ?? 'write failed'})`)
    const target = this.assigned
    while (this.synced < target) {
      const err = await this.startRound()
      if (err !== null) throw err
    }
  }

  /** Flushes, closes the file and wipes the log key. Later appends throw. */
  async close(): Promise<void> {
    if (this.closed) return
    let err: unknown = null
    try {
      await this.flush()
    } catch (e) {
      err = e
    }
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    if (this.inflight) await this.inflight
    if (this.fh) await this.fh.close().catch(() => undefined)
    this.fh = null
    wipe(this.key.pair.secretKey)
    if (err !== null) throw err
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`VoV log ${this.dir} is closed`)
  }

  private appendAt(t: number, type: string, data: Record<string, unknown>): { id: string; seq: number; ts: string } {
    // The certificate's expires_at, or the lifetime configured now if that is shorter.
    if (t >= Math.min(this.key.expiresMs, this.key.createdMs + this.keyLifetimeMs)) this.rotateAt(t, `the key is ${Math.floor((t - this.key.createdMs) / 1000)} s old (lifetime ${Math.floor(this.keyLifetimeMs / 1000)} s)`)
    return this.emit(type, dataJson(data), false, t)
  }

  private rotateAt(t: number, reason: string): void {
    const previous = this.key
    const { key, seed } = newKey(t, this.keyLifetimeMs)
    writeKeyFile(this.dir, this.nodeId, key, seed)
    wipe(seed)
    // Emitted while the old key is still in force: a file_opened entry that this entry may cause
    // (a new file) certifies the key in force before the rotation, as the verifier expects.
    this.emit('key_rotated', JSON.stringify({ log_key: certOf(key), previous_key_id: previous.keyId, reason }), true, t)
    this.key = key
    if (previous.pair.secretKey.length > 0) wipe(previous.pair.secretKey)
  }

  private startFile(name: string, t: number): void {
    this.curName = name
    this.curBytes = 0
    this.curEntries = 0
    this.curStartMs = t
  }

  /**
   * Builds, signs, chains and queues one line, opening a new file first when the line would not
   * fit or the file is too old (the new file's file_opened entry is emitted before it).
   */
  private emit(type: string, dataText: string, byIdentity: boolean, t: number): { id: string; seq: number; ts: string } {
    const ts = iso(t)
    const opensFile = type === 'genesis' || type === 'file_opened'
    // A file holding more than its opening entry is closed when it is too old, or when this line
    // would take it over the size limit.
    const canClose = !opensFile && this.curEntries > 1
    if (canClose && t - this.curStartMs >= this.maxFileAgeMs) this.nextFile(t)
    let line = this.build(type, dataText, byIdentity, ts)
    if (canClose && this.curEntries > 1 && this.curBytes + line.buf.length > this.maxFileBytes) {
      this.nextFile(t)
      line = this.build(type, dataText, byIdentity, ts)
    }
    this.queue(line.buf)
    const out = { id: line.id, seq: this.seq, ts }
    this.prevHash = line.hash
    this.seq++
    this.curEntries++
    return out
  }

  /** Starts the next file with its file_opened entry (identity-signed, certifying the key in force). */
  private nextFile(t: number): void {
    const previous = this.curName
    this.startFile(fileNameFor(this.seq), t)
    this.emit('file_opened', JSON.stringify({ node_id: this.nodeId, identity_key: this.identity.identityKey.toString('hex'), file: this.curName, previous_file: previous, log_key: certOf(this.key) }), true, t)
  }

  private build(type: string, dataText: string, byIdentity: boolean, ts: string): { buf: Buffer; hash: string; id: string } {
    const id = randomUUID()
    const head = headerText(this.seq, id, ts, type, this.prevHash, byIdentity ? IDENTITY_KEY_ID : this.key.keyId) + dataText
    // msg = context || head || "}"; the line is head || ,"sig":"<hex>"} || "\n", from the same bytes.
    const msg = Buffer.from(CONTEXT_TEXT + head + '}')
    const headBytes = msg.length - SIGN_CONTEXT.length - 1
    let sig: Buffer
    if (byIdentity) sig = this.identity.sign(msg)
    else {
      signDetachedInto(this.sigBuf, msg, this.key.pair.secretKey)
      sig = this.sigBuf
    }
    const buf = Buffer.allocUnsafe(headBytes + SIG_SUFFIX_BYTES + 1)
    msg.copy(buf, 0, SIGN_CONTEXT.length, SIGN_CONTEXT.length + headBytes)
    let at = headBytes + buf.write(',"sig":"', headBytes, 'latin1')
    at += buf.write(sig.toString('hex'), at, 'latin1')
    buf.write('"}\n', at, 'latin1')
    return { buf, hash: entryHash(buf.subarray(0, buf.length - 1)), id }
  }

  private queue(buf: Buffer): void {
    let seg = this.pending[this.pending.length - 1]
    if (seg === undefined || seg.name !== this.curName || seg.buf !== undefined) {
      seg = { name: this.curName, position: this.curBytes, lines: [], bytes: 0, done: 0 }
      this.pending.push(seg)
    }
    seg.lines.push(buf)
    seg.bytes += buf.length
    this.curBytes += buf.length
    this.pendingBytes += buf.length
    this.assigned += buf.length
    if (this.inflight) return
    if (this.pendingBytes >= HIGH_WATER_BYTES) {
      if (this.timer) clearTimeout(this.timer)
      this.timer = setTimeout(() => void this.startRound(), 0)
    } else if (this.timer === null) {
      this.timer = setTimeout(() => void this.startRound(), this.writeDelayMs)
    }
  }

  /** Starts a write round unless one is running; resolves with its error (null when ok). */
  private startRound(): Promise<Error | null> {
    if (this.inflight) return this.inflight
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const round = this.round().then(
      () => null,
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err))
        this.lastError = e
        this.onError?.(e)
        return e
      },
    )
    this.inflight = round
    void round.then((err) => {
      this.inflight = null
      if (this.closed) return
      if (err !== null) this.timer = setTimeout(() => void this.startRound(), RETRY_MS)
      else if (this.pending.length > 0) {
        this.timer = setTimeout(() => void this.startRound(), this.pendingBytes >= HIGH_WATER_BYTES ? 0 : this.writeDelayMs)
      }
    })
    return round
  }

  private async round(): Promise<void> {
    const segs = this.pending
    this.pending = []
    this.pendingBytes = 0
    let bytes = 0
    try {
      for (const seg of segs) {
        seg.buf ??= seg.lines.length === 1 ? seg.lines[0]! : Buffer.concat(seg.lines, seg.bytes)
        seg.lines = []
        await this.openFor(seg.name, seg.position === 0 && seg.done === 0)
        const fh = this.fh!
        while (seg.done < seg.buf.length) {
          const { bytesWritten } = await fh.write(seg.buf, seg.done, seg.buf.length - seg.done, seg.position + seg.done)
          if (bytesWritten <= 0) throw new Error(`${join(this.dir, seg.name)}: short write`)
          seg.done += bytesWritten
        }
        bytes += seg.buf.length
      }
      if (this.fh) await this.fh.datasync()
      this.synced += bytes
    } catch (err) {
      // Everything goes back in front of what was queued meanwhile and is written again at the
      // same positions: the segments written before the failure were not fdatasync'ed.
      for (const seg of segs) {
        seg.done = 0
        this.pendingBytes += seg.buf ? seg.buf.length : seg.bytes
      }
      this.pending = [...segs, ...this.pending]
      const e = err as NodeJS.ErrnoException
      throw new Error(`VoV log ${this.dir}: write failed: ${e?.message ?? String(err)}`, { cause: err })
    }
  }

  /** Makes `name` the open file (datasyncing and closing the one before). */
  private async openFor(name: string, creating: boolean): Promise<void> {
    if (this.fhName === name && this.fh) return
    if (this.fh) {
      await this.fh.datasync()
      await this.fh.close()
      this.fh = null
      this.fhName = ''
    }
    const path = join(this.dir, name)
    // Not O_APPEND: writes go to explicit positions (a retried round rewrites the same bytes).
    this.fh = await openFile(path, constants.O_WRONLY | constants.O_CREAT, 0o600)
    this.fhName = name
    if (creating) {
      await this.fh.chmod(0o600)
      await fsyncDirectory(this.dir)
    }
  }
}

const CONTEXT_TEXT = SIGN_CONTEXT.toString('ascii')

/** The JSON of `data`, or a summary when it is too large or not representable. */
function dataJson(data: Record<string, unknown>): string {
  let text: string | undefined
  try {
    text = JSON.stringify(data)
  } catch (err) {
    return JSON.stringify({ _unrepresentable: `the event data could not be written as JSON: ${(err as Error).message}` })
  }
  if (text === undefined || !text.startsWith('{')) return JSON.stringify({ _unrepresentable: 'the event data is not a JSON object' })
  const bytes = Buffer.byteLength(text)
  if (bytes > MAX_DATA_BYTES) {
    return JSON.stringify({ _truncated: { bytes, sha256: entryHash(Buffer.from(text)), head: Buffer.from(text).subarray(0, 1024).toString('utf8').replace(/\uFFFD$/, '') } })
  }
  return text
}
