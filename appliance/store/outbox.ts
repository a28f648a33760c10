/**
 * The outbox: the durable store-and-forward queue of messages this gateway accepted from local
 * senders, for destinations that may be out of reach for hours.
 *
 * `accept()` resolves only when the message is on disk (one record in `<dir>/outbox.journal`,
 * fdatasync'ed, group-committed with every accept waiting at the same time); from then on it
 * survives a crash or a kill -9 until `delivered()` or `expire()` records its end. A full outbox
 * refuses with a ResourceLimitError naming the numbers: nothing is ever dropped silently.
 *
 * Journal records (see journal.ts for the framing):
 *   accept: [u8 1][u8 version 1][16 id][16 to][u16 type][u16 flags][f64 acceptedAt][f64 expiresAt][payload]
 *   done:   [u8 2][u8 reason: 1 delivered, 2 expired][16 id]
 * Attempt counts live in memory only (a restart starts them again at 0).
 *
 * Compaction: when the done records and the accepts they end outnumber the live messages and the
 * file is larger than both `compactMinBytes` (default 1 MiB) and twice what the live messages
 * need, the journal is rewritten with only the live messages (at open, and after `delivered()` or
 * `expire()`). Why a journal and not SQLite: see journal.ts and README.md.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { ResourceLimitError } from '../core/errors.js'
import { Journal, RECORD_HEADER_BYTES, backgroundRewrite, type JournalOptions, type JournalRecovery } from './journal.js'

export interface OutboxMessage {
  /** 32 hex digits, random. */
  id: string
  /** Destination node id, 32 hex digits (lower case). */
  to: string
  type: number
  flags: number
  payload: Buffer
  /** ms since the epoch */
  acceptedAt: number
  /** ms since the epoch; the message is dropped (and reported by expire()) from then on. */
  expiresAt: number
  /** Delivery attempts counted by `attempted()` since this process opened the outbox. */
  attempts: number
}

export interface OutboxLimits {
  maxMessages: number
  /** Payload bytes of all queued messages. */
  maxBytes: number
  defaultTtlMs: number
}

export interface OutboxOptions {
  /** Clock, ms since the epoch (default Date.now). */
  now?: () => number
  /** Compaction is never done for a journal smaller than this (default 1 MiB). */
  compactMinBytes?: number
  /** Passed to the journal (tests count its syncs or inject failures). */
  journal?: Pick<JournalOptions, 'wrapFile'>
}

export interface OutboxStats {
  messages: number
  bytes: number
  limits: OutboxLimits
  /** Counters since open. */
  accepted: number
  delivered: number
  expired: number
  refused: number
}

/** The outbox journal's file name inside its directory. */
export const OUTBOX_FILE = 'outbox.journal'
export const DEFAULT_COMPACT_MIN_BYTES = 1024 * 1024

const KIND_ACCEPT = 1
const KIND_DONE = 2
const ACCEPT_VERSION = 1
const DONE_DELIVERED = 1
const DONE_EXPIRED = 2
/** Bytes of an accept record before the payload. */
export const ACCEPT_HEADER_BYTES = 1 + 1 + 16 + 16 + 2 + 2 + 8 + 8
const DONE_BYTES = 1 + 1 + 16
/** The largest payload one message may carry (whatever the limits say). */
export const MAX_OUTBOX_PAYLOAD = 16 * 1024 * 1024

const HEX32 = /^[0-9a-fA-F]{32}$/

function encodeAccept(m: OutboxMessage): Buffer {
  const b = Buffer.allocUnsafe(ACCEPT_HEADER_BYTES + m.payload.length)
  let o = 0
  b[o++] = KIND_ACCEPT
  b[o++] = ACCEPT_VERSION
  o += b.write(m.id, o, 16, 'hex')
  o += b.write(m.to, o, 16, 'hex')
  o = b.writeUInt16LE(m.type, o)
  o = b.writeUInt16LE(m.flags, o)
  o = b.writeDoubleLE(m.acceptedAt, o)
  o = b.writeDoubleLE(m.expiresAt, o)
  m.payload.copy(b, o)
  return b
}

function encodeDone(id: string, reason: number): Buffer {
  const b = Buffer.allocUnsafe(DONE_BYTES)
  b[0] = KIND_DONE
  b[1] = reason
  b.write(id, 2, 16, 'hex')
  return b
}

type Decoded = { kind: 'accept'; message: OutboxMessage } | { kind: 'done'; id: string; reason: number } | { kind: 'unknown'; why: string }

/** Decodes one outbox record body (never throws: undecodable records are reported as such). */
export function decodeOutboxRecord(b: Buffer): Decoded {
  if (b.length < 2) return { kind: 'unknown', why: `${b.length}-byte record` }
  if (b[0] === KIND_ACCEPT) {
    if (b[1] !== ACCEPT_VERSION) return { kind: 'unknown', why: `accept record version ${b[1]}` }
    if (b.length < ACCEPT_HEADER_BYTES) return { kind: 'unknown', why: `accept record of ${b.length} bytes is shorter than its ${ACCEPT_HEADER_BYTES}-byte header` }
    const acceptedAt = b.readDoubleLE(38)
    const expiresAt = b.readDoubleLE(46)
    if (!Number.isFinite(acceptedAt) || !Number.isFinite(expiresAt)) return { kind: 'unknown', why: 'accept record with a non-finite time' }
    return {
      kind: 'accept',
      message: {
        id: b.toString('hex', 2, 18),
        to: b.toString('hex', 18, 34),
        type: b.readUInt16LE(34),
        flags: b.readUInt16LE(36),
        acceptedAt,
        expiresAt,
        payload: Buffer.from(b.subarray(ACCEPT_HEADER_BYTES)), // a copy: do not pin the whole file image
        attempts: 0,
      },
    }
  }
  if (b[0] === KIND_DONE) {
    if (b.length !== DONE_BYTES) return { kind: 'unknown', why: `done record of ${b.length} bytes (expected ${DONE_BYTES})` }
    if (b[1] !== DONE_DELIVERED && b[1] !== DONE_EXPIRED) return { kind: 'unknown', why: `done record with reason ${b[1]}` }
    return { kind: 'done', id: b.toString('hex', 2, 18), reason: b[1]! }
  }
  return { kind: 'unknown', why: `record kind ${b[0]}` }
}

function checkLimits(limits: OutboxLimits): OutboxLimits {
  const { maxMessages, maxBytes, defaultTtlMs } = limits ?? ({} as OutboxLimits)
  if (!Number.isSafeInteger(maxMessages) || maxMessages < 1) throw new TypeError(`outbox maxMessages must be a positive integer, got ${maxMessages}`)
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError(`outbox maxBytes must be a non-negative integer, got ${maxBytes}`)
  if (!Number.isFinite(defaultTtlMs) || defaultTtlMs <= 0) throw new TypeError(`outbox defaultTtlMs must be a positive number, got ${defaultTtlMs}`)
  return { maxMessages, maxBytes, defaultTtlMs }
}

export class Outbox {
  /** The journal under this outbox (for diagnostics and tests). */
  readonly journal: Journal
  /** Records the journal could frame but this outbox could not decode (skipped at open). */
  readonly undecodable: string[]

  private readonly limits: OutboxLimits
  private readonly now: () => number
  private readonly compactMinBytes: number
  /** Durable live messages, in acceptance order. */
  private readonly live: Map<string, OutboxMessage>
  private liveBytes: number
  /** Accepts written but not yet synced: they count against the limits already. */
  private reservedMessages = 0
  private reservedBytes = 0
  /** Ids with a done record in flight. */
  private readonly ending = new Set<string>()
  private compacting: Promise<void> | undefined
  private counts = { accepted: 0, delivered: 0, expired: 0, refused: 0 }
  /** The last compaction failure, if any (compaction is retried later). */
  compactionError: Error | undefined

  private constructor(journal: Journal, limits: OutboxLimits, live: Map<string, OutboxMessage>, undecodable: string[], opts: OutboxOptions) {
    this.journal = journal
    this.limits = limits
    this.live = live
    this.undecodable = undecodable
    this.now = opts.now ?? Date.now
    this.compactMinBytes = opts.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES
    let bytes = 0
    for (const m of live.values()) bytes += m.payload.length
    this.liveBytes = bytes
  }

  /** Opens (or creates) `<dir>/outbox.journal` and replays it. */
  static async open(dir: string, limits: OutboxLimits, opts: OutboxOptions = {}): Promise<Outbox> {
    const lim = checkLimits(limits)
    const live = new Map<string, OutboxMessage>()
    const undecodable: string[] = []
    const journal = await Journal.open(join(dir, OUTBOX_FILE), {
      ...opts.journal,
      onRecord: (body) => {
        const r = decodeOutboxRecord(body)
        if (r.kind === 'accept') {
          if (!live.has(r.message.id)) live.set(r.message.id, r.message)
        } else if (r.kind === 'done') {
          live.delete(r.id)
        } else {
          undecodable.push(r.why)
        }
      },
    })
    const outbox = new Outbox(journal, lim, live, undecodable, opts)
    if (outbox.shouldCompact()) await outbox.compact()
    return outbox
  }

  /** What the journal found wrong at open and repaired (torn tail, damaged regions). */
  get recovered(): readonly JournalRecovery[] {
    return this.journal.recovered
  }

  /**
   * Queues a message durably: resolves once it is on disk. Refuses with a ResourceLimitError
   * when the outbox is full (messages or payload bytes, counting accepts still being written).
   */
  async accept(m: { to: string; type: number; flags?: number; payload: Buffer; ttlMs?: number }): Promise<OutboxMessage> {
    const to = typeof m?.to === 'string' ? m.to : ''
    if (!HEX32.test(to)) throw new TypeError(`outbox: destination must be a node id of 32 hex digits, got ${JSON.stringify(m?.to)}`)
    if (!Number.isInteger(m.type) || m.type < 0 || m.type > 0xffff) throw new TypeError(`outbox: message type must be an integer in 0..65535, got ${m.type}`)
    const flags = m.flags ?? 0
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) throw new TypeError(`outbox: message flags must be an integer in 0..65535, got ${flags}`)
    if (!(m.payload instanceof Uint8Array)) throw new TypeError('outbox: payload must be a Buffer')
    const ttl = m.ttlMs ?? this.limits.defaultTtlMs
    if (!Number.isFinite(ttl) || ttl <= 0) throw new TypeError(`outbox: ttlMs must be a positive number, got ${ttl}`)
    const dst = to.toLowerCase()
    const len = m.payload.length
    const queued = this.live.size + this.reservedMessages
    const queuedBytes = this.liveBytes + this.reservedBytes
    const { maxMessages, maxBytes } = this.limits
    const perMessage = Math.min(maxBytes, MAX_OUTBOX_PAYLOAD)
    if (len > perMessage) {
      this.counts.refused++
      throw new ResourceLimitError(`outbox refuses a ${len}-byte message to ${dst}: larger than the limit of ${perMessage} bytes (${queued} messages / ${queuedBytes} bytes queued, limit ${maxMessages} messages, ${maxBytes} bytes)`)
    }
    if (queued + 1 > maxMessages || queuedBytes + len > maxBytes) {
      this.counts.refused++
      throw new ResourceLimitError(`outbox full: ${queued} messages / ${queuedBytes} bytes queued (limit ${maxMessages} messages, ${maxBytes} bytes); message to ${dst} refused`)
    }
    const now = this.now()
    const msg: OutboxMessage = { id: randomBytes(16).toString('hex'), to: dst, type: m.type, flags, payload: Buffer.from(m.payload), acceptedAt: now, expiresAt: now + ttl, attempts: 0 }
    this.reservedMessages++
    this.reservedBytes += len
    let applied = false
    try {
      await this.journal.append([encodeAccept(msg)], () => {
        applied = true
        this.reservedMessages--
        this.reservedBytes -= len
        this.live.set(msg.id, msg)
        this.liveBytes += len
        this.counts.accepted++
      })
    } catch (err) {
      if (!applied) {
        this.reservedMessages--
        this.reservedBytes -= len
      }
      throw err
    }
    return msg
  }

  /** Live messages not yet expired and not being ended, in acceptance order (all, or those to `to`). */
  pending(to?: string): OutboxMessage[] {
    const now = this.now()
    const dst = to?.toLowerCase()
    const out: OutboxMessage[] = []
    for (const m of this.live.values()) {
      if (now >= m.expiresAt || this.ending.has(m.id)) continue
      if (dst === undefined || m.to === dst) out.push(m)
    }
    return out
  }

  /** The live message with this id (expired ones included until expire() ran). */
  get(id: string): OutboxMessage | undefined {
    return this.live.get(id)
  }

  /** Counts one delivery attempt (in memory only). */
  attempted(id: string): void {
    const m = this.live.get(id)
    if (m) m.attempts++
  }

  /**
   * Records durably that the message was delivered; resolves true once that is on disk, false if
   * the id is unknown or already ended (so a second call, even a concurrent one, is false).
   */
  async delivered(id: string): Promise<boolean> {
    const m = this.live.get(id)
    if (!m || this.ending.has(id)) return false
    await this.end([m], DONE_DELIVERED)
    return true
  }

  /** Removes the messages past their expiresAt, durably, and returns them (for the caller to report). */
  async expire(): Promise<OutboxMessage[]> {
    const now = this.now()
    const victims: OutboxMessage[] = []
    for (const m of this.live.values()) if (now >= m.expiresAt && !this.ending.has(m.id)) victims.push(m)
    if (victims.length === 0) return victims
    await this.end(victims, DONE_EXPIRED)
    return victims
  }

  stats(): OutboxStats {
    return { messages: this.live.size, bytes: this.liveBytes, limits: { ...this.limits }, ...this.counts }
  }

  /** Waits for pending writes (and a running compaction), then closes the journal. */
  async close(): Promise<void> {
    await this.compacting
    await this.journal.close()
  }

  private async end(msgs: OutboxMessage[], reason: number): Promise<void> {
    for (const m of msgs) this.ending.add(m.id)
    try {
      await this.journal.append(
        msgs.map((m) => encodeDone(m.id, reason)),
        () => {
          for (const m of msgs) {
            this.live.delete(m.id)
            this.liveBytes -= m.payload.length
            this.ending.delete(m.id)
          }
          if (reason === DONE_DELIVERED) this.counts.delivered += msgs.length
          else this.counts.expired += msgs.length
        },
      )
    } catch (err) {
      for (const m of msgs) this.ending.delete(m.id)
      throw err
    }
    if (this.shouldCompact()) void this.compact()
  }

  private shouldCompact(): boolean {
    if (this.compacting) return false
    const dead = this.journal.records - this.live.size
    const liveFileBytes = this.liveBytes + this.live.size * (RECORD_HEADER_BYTES + ACCEPT_HEADER_BYTES)
    return dead > this.live.size && this.journal.size > Math.max(this.compactMinBytes, 2 * liveFileBytes)
  }

  /** Rewrites the journal with only the live messages. Failures are kept in `compactionError`. */
  private compact(): Promise<void> {
    const run = backgroundRewrite(this.journal, () => [...this.live.values()].map(encodeAccept)).then((err) => {
      this.compactionError = err
      this.compacting = undefined
    })
    this.compacting = run
    return run
  }
}
