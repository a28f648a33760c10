/**
 * The inbox: what the receiving application gets from the mesh, each message exactly once, in
 * arrival order, surviving restarts.
 *
 * `accept()` stores a message durably (one record in `<dir>/inbox.journal`, fdatasync'ed, group
 * committed) and gives it a cursor; cursors strictly increase for the life of the directory
 * (compaction keeps the next cursor in a head record). A message whose (from, id) was accepted
 * before is a duplicate (a sender retrying after a lost acknowledgement): nothing new is stored,
 * and `fresh` is false. Two concurrent accepts of the same (from, id) yield exactly one fresh.
 *
 * Retention: a message stays listable for `retainMs` after receipt, and at most `maxMessages` are
 * kept (beyond that the oldest payloads are dropped: the inbox is a log read by cursor, with no
 * acknowledgement, so a full inbox cannot wait for a reader; stats().evicted counts them). The
 * (from, id) of a message is remembered for `retainMs` after receipt whether or not its payload
 * is still kept, so `retainMs` must cover the longest time a sender may retry (its TTL). At most
 * `maxRemembered` ids are remembered: past that a new message is refused with a
 * ResourceLimitError (the sender retries later) rather than risking a duplicate.
 *
 * Journal records (framing in journal.ts); id and from are UTF-8, 1..255 bytes:
 *   message:    [u8 1][u8 version 1][f64 cursor][f64 receivedAt][u16 type][u8 n][id][u8 m][from][payload]
 *   remembered: [u8 2][u8 version 1][f64 cursor][f64 receivedAt][u16 type][u8 n][id][u8 m][from]
 *   head:       [u8 3][u8 version 1][f64 next cursor]   (first record after a compaction)
 */
import { join } from 'node:path'
import { ResourceLimitError } from '../core/errors.js'
import { Journal, backgroundRewrite, type JournalOptions, type JournalRecovery } from './journal.js'

export interface InboxMessage {
  cursor: number
  id: string
  from: string
  type: number
  payload: Buffer
  /** ms since the epoch */
  receivedAt: number
}

export interface InboxOptions {
  /** How long a message stays listable and its (from, id) is remembered, ms after receipt. */
  retainMs: number
  /** Messages kept; beyond that the oldest payloads are dropped (ids still remembered). */
  maxMessages: number
  /** Clock, ms since the epoch (default Date.now). */
  now?: () => number
  /** Most (from, id) pairs remembered at once (default max(100000, 10 * maxMessages)). */
  maxRemembered?: number
  /** Compaction is never done for a journal smaller than this (default 1 MiB). */
  compactMinBytes?: number
  /** Passed to the journal (tests count its syncs or inject failures). */
  journal?: Pick<JournalOptions, 'wrapFile'>
}

export interface InboxStats {
  /** Messages listable now. */
  messages: number
  /** Counters since open. */
  duplicates: number
  accepted: number
  /** Payloads dropped (since open) because more than maxMessages were kept. */
  evicted: number
  /** (from, id) pairs remembered for deduplication. */
  remembered: number
}

export const INBOX_FILE = 'inbox.journal'

const KIND_MESSAGE = 1
const KIND_REMEMBERED = 2
const KIND_HEAD = 3
const VERSION = 1
const FIXED = 1 + 1 + 8 + 8 + 2
const HEAD_BYTES = 1 + 1 + 8
/** Rough bytes one remembered id costs in the file, for the compaction heuristic. */
const KEY_FILE_BYTES = 8 + FIXED + 2 + 64
const MAX_INBOX_PAYLOAD = 16 * 1024 * 1024

interface Remembered {
  cursor: number
  receivedAt: number
  type: number
  id: string
  from: string
  /** The message while its payload is kept. */
  message: InboxMessage | undefined
}

type Decoded =
  | { kind: 'message' | 'remembered'; cursor: number; receivedAt: number; type: number; id: string; from: string; payload: Buffer }
  | { kind: 'head'; next: number }
  | { kind: 'unknown'; why: string }

function encodeEntry(kind: number, r: { cursor: number; receivedAt: number; type: number; id: string; from: string }, payload?: Buffer): Buffer {
  const id = Buffer.from(r.id, 'utf8')
  const from = Buffer.from(r.from, 'utf8')
  const b = Buffer.allocUnsafe(FIXED + 1 + id.length + 1 + from.length + (payload?.length ?? 0))
  let o = 0
  b[o++] = kind
  b[o++] = VERSION
  o = b.writeDoubleLE(r.cursor, o)
  o = b.writeDoubleLE(r.receivedAt, o)
  o = b.writeUInt16LE(r.type, o)
  b[o++] = id.length
  o += id.copy(b, o)
  b[o++] = from.length
  o += from.copy(b, o)
  if (payload) payload.copy(b, o)
  return b
}

function encodeHead(next: number): Buffer {
  const b = Buffer.allocUnsafe(HEAD_BYTES)
  b[0] = KIND_HEAD
  b[1] = VERSION
  b.writeDoubleLE(next, 2)
  return b
}

/** Decodes one inbox record body (never throws). */
export function decodeInboxRecord(b: Buffer): Decoded {
  if (b.length < 2) return { kind: 'unknown', why: `${b.length}-byte record` }
  if (b[1] !== VERSION) return { kind: 'unknown', why: `record version ${b[1]}` }
  if (b[0] === KIND_HEAD) {
    if (b.length !== HEAD_BYTES) return { kind: 'unknown', why: `head record of ${b.length} bytes` }
    const next = b.readDoubleLE(2)
    if (!Number.isSafeInteger(next) || next < 1) return { kind: 'unknown', why: `head record with next cursor ${next}` }
    return { kind: 'head', next }
  }
  if (b[0] !== KIND_MESSAGE && b[0] !== KIND_REMEMBERED) return { kind: 'unknown', why: `record kind ${b[0]}` }
  if (b.length < FIXED + 2) return { kind: 'unknown', why: `${b.length}-byte message record` }
  const cursor = b.readDoubleLE(2)
  const receivedAt = b.readDoubleLE(10)
  const type = b.readUInt16LE(18)
  if (!Number.isSafeInteger(cursor) || cursor < 1 || !Number.isFinite(receivedAt)) return { kind: 'unknown', why: `message record with cursor ${cursor}, receivedAt ${receivedAt}` }
  let o = FIXED
  const idLen = b[o++]!
  if (idLen === 0 || o + idLen + 1 > b.length) return { kind: 'unknown', why: 'message record with a bad id length' }
  const id = b.toString('utf8', o, o + idLen)
  o += idLen
  const fromLen = b[o++]!
  if (fromLen === 0 || o + fromLen > b.length) return { kind: 'unknown', why: 'message record with a bad sender length' }
  const from = b.toString('utf8', o, o + fromLen)
  o += fromLen
  if (b[0] === KIND_REMEMBERED && o !== b.length) return { kind: 'unknown', why: 'remembered-id record with trailing bytes' }
  return { kind: b[0] === KIND_MESSAGE ? 'message' : 'remembered', cursor, receivedAt, type, id, from, payload: Buffer.from(b.subarray(o)) }
}

function keyOf(from: string, id: string): string {
  return `${from.length}:${from}${id}`
}

function checkName(what: string, s: unknown): string {
  if (typeof s !== 'string' || s.length === 0 || Buffer.byteLength(s, 'utf8') > 255) throw new TypeError(`inbox: ${what} must be a string of 1..255 UTF-8 bytes, got ${JSON.stringify(s)}`)
  return s
}

export class Inbox {
  /** The journal under this inbox (for diagnostics and tests). */
  readonly journal: Journal
  /** Records the journal could frame but this inbox could not decode (skipped at open). */
  readonly undecodable: string[]

  private readonly retainMs: number
  private readonly maxMessages: number
  private readonly maxRemembered: number
  private readonly compactMinBytes: number
  private readonly now: () => number
  /** Kept messages, ascending cursor; those before `head` are dropped. */
  private msgs: InboxMessage[]
  private head = 0
  private keptBytes = 0
  /** Remembered (from, id), in cursor order. */
  private readonly keys: Map<string, Remembered>
  private readonly inflight = new Map<string, Promise<InboxMessage>>()
  private nextCursor: number
  private compacting: Promise<void> | undefined
  private counts = { duplicates: 0, accepted: 0, evicted: 0 }
  /** The last compaction failure, if any (compaction is retried later). */
  compactionError: Error | undefined

  private constructor(journal: Journal, keys: Map<string, Remembered>, msgs: InboxMessage[], nextCursor: number, undecodable: string[], opts: InboxOptions) {
    this.journal = journal
    this.keys = keys
    this.msgs = msgs
    this.nextCursor = nextCursor
    this.undecodable = undecodable
    this.retainMs = opts.retainMs
    this.maxMessages = opts.maxMessages
    this.maxRemembered = opts.maxRemembered ?? Math.max(100_000, 10 * opts.maxMessages)
    this.compactMinBytes = opts.compactMinBytes ?? 1024 * 1024
    this.now = opts.now ?? Date.now
    for (const m of msgs) this.keptBytes += m.payload.length
  }

  /** Opens (or creates) `<dir>/inbox.journal` and replays it. */
  static async open(dir: string, opts: InboxOptions): Promise<Inbox> {
    if (!Number.isFinite(opts?.retainMs) || opts.retainMs <= 0) throw new TypeError(`inbox retainMs must be a positive number, got ${opts?.retainMs}`)
    if (!Number.isSafeInteger(opts.maxMessages) || opts.maxMessages < 1) throw new TypeError(`inbox maxMessages must be a positive integer, got ${opts.maxMessages}`)
    if (opts.maxRemembered !== undefined && (!Number.isSafeInteger(opts.maxRemembered) || opts.maxRemembered < opts.maxMessages)) throw new TypeError(`inbox maxRemembered must be an integer >= maxMessages, got ${opts.maxRemembered}`)
    const now = (opts.now ?? Date.now)()
    const keys = new Map<string, Remembered>()
    const msgs: InboxMessage[] = []
    const undecodable: string[] = []
    let next = 1
    const journal = await Journal.open(join(dir, INBOX_FILE), {
      ...opts.journal,
      onRecord: (body) => {
        const r = decodeInboxRecord(body)
        if (r.kind === 'unknown') return void undecodable.push(r.why)
        if (r.kind === 'head') return void (next = Math.max(next, r.next))
        next = Math.max(next, r.cursor + 1)
        if (r.receivedAt + opts.retainMs <= now) return
        const k = keyOf(r.from, r.id)
        keys.delete(k)
        const entry: Remembered = { cursor: r.cursor, receivedAt: r.receivedAt, type: r.type, id: r.id, from: r.from, message: undefined }
        if (r.kind === 'message' && (msgs.length === 0 || msgs[msgs.length - 1]!.cursor < r.cursor)) {
          entry.message = { cursor: r.cursor, id: r.id, from: r.from, type: r.type, payload: r.payload, receivedAt: r.receivedAt }
          msgs.push(entry.message)
        }
        keys.set(k, entry)
      },
    })
    const inbox = new Inbox(journal, keys, msgs, next, undecodable, opts)
    inbox.evictOverLimit(false)
    if (inbox.shouldCompact()) await inbox.compact()
    return inbox
  }

  /** What the journal found wrong at open and repaired (torn tail, damaged regions). */
  get recovered(): readonly JournalRecovery[] {
    return this.journal.recovered
  }

  /**
   * Stores a received message durably, once: resolves when it is on disk with `fresh: true`, or
   * with `fresh: false` and the stored message (its payload empty if already dropped) when this
   * (from, id) was accepted before, including by a concurrent call still in flight.
   */
  async accept(m: { id: string; from: string; type: number; payload: Buffer }): Promise<{ fresh: boolean; message: InboxMessage }> {
    const id = checkName('message id', m?.id)
    const from = checkName('sender', m.from)
    if (!Number.isInteger(m.type) || m.type < 0 || m.type > 0xffff) throw new TypeError(`inbox: message type must be an integer in 0..65535, got ${m.type}`)
    if (!(m.payload instanceof Uint8Array)) throw new TypeError('inbox: payload must be a Buffer')
    if (m.payload.length > MAX_INBOX_PAYLOAD) throw new ResourceLimitError(`inbox refuses a ${m.payload.length}-byte message ${id} from ${from}: larger than ${MAX_INBOX_PAYLOAD} bytes`)
    const k = keyOf(from, id)
    const pending = this.inflight.get(k)
    if (pending) {
      const message = await pending
      this.counts.duplicates++
      return { fresh: false, message }
    }
    const now = this.now()
    this.prune(now)
    const known = this.keys.get(k)
    if (known) {
      if (known.receivedAt + this.retainMs > now) {
        this.counts.duplicates++
        return { fresh: false, message: known.message ?? { cursor: known.cursor, id, from, type: known.type, payload: Buffer.alloc(0), receivedAt: known.receivedAt } }
      }
      this.keys.delete(k) // out of the window (the clock went backwards at some point): new again
    }
    if (this.keys.size + this.inflight.size >= this.maxRemembered) {
      throw new ResourceLimitError(`inbox: ${this.keys.size + this.inflight.size} message ids remembered (limit ${this.maxRemembered}, for ${this.retainMs} ms each); message ${id} from ${from} refused`)
    }
    const message: InboxMessage = { cursor: this.nextCursor++, id, from, type: m.type, payload: Buffer.from(m.payload), receivedAt: now }
    const stored = this.journal
      .append([encodeEntry(KIND_MESSAGE, message, message.payload)], () => {
        this.keys.set(k, { cursor: message.cursor, receivedAt: now, type: message.type, id, from, message })
        this.msgs.push(message)
        this.keptBytes += message.payload.length
        this.counts.accepted++
        this.evictOverLimit(true)
      })
      .then(() => message)
    this.inflight.set(k, stored)
    try {
      await stored
    } finally {
      this.inflight.delete(k)
    }
    if (this.shouldCompact()) void this.compact()
    return { fresh: true, message }
  }

  /** Up to `limit` kept messages with cursor > `since`, ascending. */
  list(since: number, limit: number): InboxMessage[] {
    if (typeof since !== 'number' || Number.isNaN(since)) throw new TypeError(`inbox: since must be a number, got ${since}`)
    if (!Number.isInteger(limit) || limit < 0) throw new TypeError(`inbox: limit must be a non-negative integer, got ${limit}`)
    this.prune(this.now())
    // First kept message with cursor > since (binary search; msgs ascend by cursor).
    let lo = this.head
    let hi = this.msgs.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.msgs[mid]!.cursor > since) hi = mid
      else lo = mid + 1
    }
    return this.msgs.slice(lo, lo + limit)
  }

  stats(): InboxStats {
    this.prune(this.now())
    return { messages: this.msgs.length - this.head, duplicates: this.counts.duplicates, accepted: this.counts.accepted, evicted: this.counts.evicted, remembered: this.keys.size }
  }

  /** Waits for pending writes (and a running compaction), then closes the journal. */
  async close(): Promise<void> {
    await this.compacting
    await this.journal.close()
  }

  /** Drops messages and ids older than retainMs (from the front: they are in receipt order). */
  private prune(now: number): void {
    while (this.head < this.msgs.length && this.msgs[this.head]!.receivedAt + this.retainMs <= now) this.dropHead()
    for (const [k, r] of this.keys) {
      if (r.receivedAt + this.retainMs > now) break
      this.keys.delete(k)
    }
    if (this.head > 1024 && this.head * 2 > this.msgs.length) {
      this.msgs = this.msgs.slice(this.head)
      this.head = 0
    }
  }

  private dropHead(): InboxMessage {
    const m = this.msgs[this.head]!
    this.msgs[this.head] = undefined as unknown as InboxMessage
    this.head++
    this.keptBytes -= m.payload.length
    const r = this.keys.get(keyOf(m.from, m.id))
    if (r && r.message === m) r.message = undefined
    return m
  }

  private evictOverLimit(count: boolean): void {
    while (this.msgs.length - this.head > this.maxMessages) {
      this.dropHead()
      if (count) this.counts.evicted++
    }
  }

  private shouldCompact(): boolean {
    if (this.compacting) return false
    const liveRecords = this.keys.size + 1
    const liveBytes = this.keptBytes + this.keys.size * KEY_FILE_BYTES
    const size = this.journal.size
    return size > this.compactMinBytes && (this.journal.records > 2 * liveRecords || size > 2 * liveBytes)
  }

  /** Rewrites the journal with the head, the kept messages and the remembered ids. */
  private compact(): Promise<void> {
    const run = backgroundRewrite(this.journal, () => {
      const now = this.now()
      const bodies: Buffer[] = [encodeHead(this.nextCursor)]
      for (const r of this.keys.values()) {
        if (r.receivedAt + this.retainMs <= now) continue
        bodies.push(r.message ? encodeEntry(KIND_MESSAGE, r, r.message.payload) : encodeEntry(KIND_REMEMBERED, r))
      }
      return bodies
    }).then((err) => {
      this.compactionError = err
      this.compacting = undefined
    })
    this.compacting = run
    return run
  }
}
