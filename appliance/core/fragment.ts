/**
 * Hop-by-hop fragmentation and reassembly of frames for links whose MTU is smaller than the frame
 * (LoRa: 255 bytes).
 *
 * Wire format (struct FragmentHeader in schemas/aitcp.fbs, 8 bytes, little-endian):
 *
 *   offset 0  u8   vk        version << 4 | FrameKind.Fragment = 0x13 for version 1
 *   offset 1  u8   index     0-based index of this fragment, < count
 *   offset 2  u8   count     number of fragments of the frame, 1..64
 *   offset 3  u8   reserved  0
 *   offset 4  u32  frag_id   chosen by the fragmenting hop, little-endian
 *   offset 8  ...  chunk     at least one byte
 *
 * Every chunk but the last has the same length (mtu - 8 of the fragmenting hop); the last chunk
 * is 1..that length. A frame is the concatenation of its chunks in index order. Fragmentation is
 * hop by hop: the receiving hop reassembles before it routes, and fragments are never forwarded as
 * fragments. Fragments carry no authentication of their own; whatever the reassembled frame
 * carries (AEAD tag, signature) is checked as for any other frame.
 *
 * Callers send a frame that fits the link MTU as it is and only call `fragment()` for a larger
 * one; `fragment()` still works (count 1) for a frame that fits.
 *
 * The `Reassembler` keys reassemblies by (link source, frag_id). It is bounded in memory, never
 * sends anything, never returns more bytes than it was given, and drops a whole reassembly when
 * fragments contradict each other (as RFC 5722 does for overlapping IPv6 fragments).
 */
import { MalformedPacketError, ResourceLimitError } from './errors.js'

/** Protocol version in the high nibble of `vk` (schemas/aitcp.fbs). */
export const FRAGMENT_PROTOCOL_VERSION = 1
/** FrameKind.Fragment, the low nibble of `vk` (schemas/aitcp.fbs, enum FrameKind). */
export const FRAME_KIND_FRAGMENT = 3
/** First byte of every fragment: FRAGMENT_PROTOCOL_VERSION << 4 | FRAME_KIND_FRAGMENT = 0x13. */
export const FRAGMENT_VK = (FRAGMENT_PROTOCOL_VERSION << 4) | FRAME_KIND_FRAGMENT
/** Size of the FragmentHeader struct, bytes (schemas/aitcp.fbs; FragmentHeader.sizeOf()). */
export const FRAGMENT_HEADER_BYTES = 8
/** Most fragments a frame may be cut into: the `count` field's range is 1..64 (schemas/aitcp.fbs). */
export const MAX_FRAGMENTS = 64
/** Smallest MTU `fragment()` accepts, bytes: the header plus one byte of chunk. */
export const MIN_FRAGMENT_MTU = FRAGMENT_HEADER_BYTES + 1

/** Default reassembly timeout, ms, counted from the first fragment of a frame (not refreshed). */
export const REASSEMBLY_TIMEOUT_MS = 30_000
/** Default cap on bytes buffered for one link source, bytes (chunks plus per-fragment overhead). */
export const REASSEMBLY_MAX_BYTES_PER_SOURCE = 65_536
/** Default cap on bytes buffered for all sources together, bytes. */
export const REASSEMBLY_MAX_BYTES_TOTAL = 1_048_576
/** Default cap on reassemblies in progress for one link source, frames. */
export const REASSEMBLY_MAX_PENDING_PER_SOURCE = 8
/** Default cap on a frame's size as announced by its fragments (count x chunk length), bytes. */
export const REASSEMBLY_MAX_FRAME_BYTES = 16_384
/**
 * Bytes charged per buffered fragment on top of its chunk, for the bookkeeping object and buffer
 * that hold it (like Linux charging an skb's truesize, not its payload, to the fragment memory
 * limit). Without it, a flood of 1-byte chunks would use far more memory than the limits say.
 */
export const REASSEMBLY_FRAGMENT_OVERHEAD_BYTES = 64

/** The variable fields of a FragmentHeader (`vk` and `reserved` are constants). */
export interface FragmentHeaderFields {
  index: number
  count: number
  fragId: number
}

/** Largest frame that `fragment()` can cut for `mtu`: 64 x (mtu - 8) bytes (15808 at MTU 255). */
export function maxFragmentableBytes(mtu: number): number {
  checkMtu(mtu)
  return MAX_FRAGMENTS * (mtu - FRAGMENT_HEADER_BYTES)
}

function checkMtu(mtu: number): void {
  if (!Number.isSafeInteger(mtu) || mtu < MIN_FRAGMENT_MTU) {
    throw new TypeError(`MTU must be an integer of at least ${MIN_FRAGMENT_MTU} bytes, got ${String(mtu)}`)
  }
}

function checkFragId(fragId: number): void {
  if (!Number.isInteger(fragId) || fragId < 0 || fragId > 0xffffffff) {
    throw new TypeError(`frag_id must be an integer in [0, 2^32), got ${String(fragId)}`)
  }
}

/**
 * Writes a FragmentHeader at `out[offset..offset+8)` and returns `offset + 8`. Bad arguments
 * (out of range, no room) throw TypeError. Allocates nothing.
 */
export function encodeFragmentHeader(out: Uint8Array, offset: number, index: number, count: number, fragId: number): number {
  if (!(out instanceof Uint8Array)) throw new TypeError('out must be a Uint8Array')
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + FRAGMENT_HEADER_BYTES > out.length) {
    throw new TypeError(`no room for an ${FRAGMENT_HEADER_BYTES}-byte fragment header at offset ${String(offset)} of ${out.length} bytes`)
  }
  if (!Number.isInteger(count) || count < 1 || count > MAX_FRAGMENTS) throw new TypeError(`count must be 1..${MAX_FRAGMENTS}, got ${String(count)}`)
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new TypeError(`index must be 0..${count - 1}, got ${String(index)}`)
  checkFragId(fragId)
  out[offset] = FRAGMENT_VK
  out[offset + 1] = index
  out[offset + 2] = count
  out[offset + 3] = 0
  out[offset + 4] = fragId & 0xff
  out[offset + 5] = (fragId >>> 8) & 0xff
  out[offset + 6] = (fragId >>> 16) & 0xff
  out[offset + 7] = (fragId >>> 24) & 0xff
  return offset + FRAGMENT_HEADER_BYTES
}

/**
 * Parses the header of a whole fragment (header and chunk) into `out` (a new object if not
 * given; pass one to allocate nothing). Throws MalformedPacketError, with `field` set, for:
 * fewer than 8 bytes (`length`), a wrong version or kind (`vk`), count 0 or above 64 (`count`),
 * index >= count (`index`), reserved != 0 (`reserved`), no chunk after the header (`chunk`).
 */
export function decodeFragmentHeader(buf: Uint8Array, out: FragmentHeaderFields = { index: 0, count: 0, fragId: 0 }): FragmentHeaderFields {
  if (!(buf instanceof Uint8Array)) throw new TypeError('fragment must be a Uint8Array')
  if (buf.length < FRAGMENT_HEADER_BYTES) {
    throw new MalformedPacketError(`fragment of ${buf.length} bytes is shorter than its ${FRAGMENT_HEADER_BYTES}-byte header`, { field: 'length' })
  }
  const vk = buf[0] ?? 0
  if (vk !== FRAGMENT_VK) {
    throw new MalformedPacketError(`fragment vk 0x${vk.toString(16).padStart(2, '0')} is not 0x${FRAGMENT_VK.toString(16)} (version ${FRAGMENT_PROTOCOL_VERSION}, Fragment)`, { field: 'vk' })
  }
  const index = buf[1] ?? 0
  const count = buf[2] ?? 0
  if (count < 1 || count > MAX_FRAGMENTS) throw new MalformedPacketError(`fragment count ${count} is not 1..${MAX_FRAGMENTS}`, { field: 'count' })
  if (index >= count) throw new MalformedPacketError(`fragment index ${index} is not below count ${count}`, { field: 'index' })
  if (buf[3] !== 0) throw new MalformedPacketError(`fragment reserved byte is ${buf[3] ?? 0}, not 0`, { field: 'reserved' })
  if (buf.length === FRAGMENT_HEADER_BYTES) throw new MalformedPacketError('fragment has an empty chunk', { field: 'chunk' })
  out.index = index
  out.count = count
  out.fragId = ((buf[4] ?? 0) | ((buf[5] ?? 0) << 8) | ((buf[6] ?? 0) << 16) | ((buf[7] ?? 0) << 24)) >>> 0
  return out
}

/**
 * Cuts `frame` into fragments of at most `mtu` bytes each (8-byte header + chunk); every chunk
 * but the last is `mtu - 8` bytes. The fragments are views into one new buffer.
 *
 * Throws TypeError for an empty frame, an MTU below 9 or a frag_id outside u32, and
 * ResourceLimitError when more than 64 fragments would be needed (see `maxFragmentableBytes`).
 * `fragId` should be random per frame (it must not repeat towards the same next hop within the
 * reassembly timeout).
 */
export function fragment(frame: Uint8Array, mtu: number, fragId: number): Buffer[] {
  if (!(frame instanceof Uint8Array)) throw new TypeError('frame must be a Uint8Array')
  checkMtu(mtu)
  checkFragId(fragId)
  if (frame.length === 0) throw new TypeError('cannot fragment an empty frame')
  const chunk = mtu - FRAGMENT_HEADER_BYTES
  const count = Math.ceil(frame.length / chunk)
  if (count > MAX_FRAGMENTS) {
    throw new ResourceLimitError(`frame of ${frame.length} bytes needs ${count} fragments at MTU ${mtu}; at most ${MAX_FRAGMENTS} are allowed`)
  }
  const backing = Buffer.allocUnsafe(frame.length + count * FRAGMENT_HEADER_BYTES)
  const fragments: Buffer[] = []
  let from = 0
  let pos = 0
  for (let index = 0; index < count; index++) {
    const len = Math.min(chunk, frame.length - from)
    encodeFragmentHeader(backing, pos, index, count, fragId)
    backing.set(frame.subarray(from, from + len), pos + FRAGMENT_HEADER_BYTES)
    fragments.push(backing.subarray(pos, pos + FRAGMENT_HEADER_BYTES + len))
    from += len
    pos += FRAGMENT_HEADER_BYTES + len
  }
  return fragments
}

export interface ReassemblerOptions {
  /** Clock in ms; default `performance.now()` (monotonic). */
  now?: () => number
  /** A reassembly not complete this many ms after its first fragment is dropped. Default 30000. */
  timeoutMs?: number
  /** Cap on bytes buffered for one source. Default 65536. */
  maxBytesPerSource?: number
  /** Cap on bytes buffered for all sources. Default 1048576. */
  maxBytesTotal?: number
  /** Cap on reassemblies in progress for one source. Default 8. */
  maxPendingPerSource?: number
  /** Cap on count x chunk length of one frame. Default 16384. */
  maxFrameBytes?: number
  /** Bytes charged per buffered fragment on top of its chunk. Default 64; 0 counts chunks only. */
  fragmentOverheadBytes?: number
}

export interface ReassemblerStats {
  /** Reassemblies in progress. */
  pending: number
  /** Bytes buffered (chunks plus per-fragment overhead), all sources. */
  bytes: number
  /** Frames returned whole. */
  completed: number
  /** Fragments ignored because the same bytes were already buffered. */
  duplicates: number
  /** Reassemblies discarded because fragments contradicted each other. */
  overlaps: number
  /** Fragments (and frames) refused for a limit. */
  refused: number
  /** Reassemblies dropped because they were not complete in time. */
  timeouts: number
  /** Fragments whose header did not parse (push threw MalformedPacketError). */
  malformed: number
}

interface SourceState {
  readonly name: string
  bytes: number
  readonly pending: Map<number, Reassembly>
}

interface Reassembly {
  readonly source: SourceState
  readonly fragId: number
  readonly count: number
  /** Length of every chunk but the last; -1 until a non-last fragment arrived. */
  chunkLen: number
  /** Length of the last chunk; -1 until it arrived. */
  lastLen: number
  readonly chunks: Array<Buffer | undefined>
  received: number
  /** Bytes charged for this reassembly. */
  bytes: number
  readonly created: number
  prev: Reassembly | null
  next: Reassembly | null
}

function positiveInteger(value: number | undefined, fallback: number, name: string, allowZero = false): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v < (allowZero ? 0 : 1)) throw new TypeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(v)}`)
  return v
}

function sameChunk(stored: Uint8Array, fragmentBytes: Uint8Array): boolean {
  if (stored.length !== fragmentBytes.length - FRAGMENT_HEADER_BYTES) return false
  for (let i = 0; i < stored.length; i++) if (stored[i] !== fragmentBytes[i + FRAGMENT_HEADER_BYTES]) return false
  return true
}

/**
 * Reassembles fragments into frames, per (source, frag_id), within fixed memory bounds.
 *
 * Rules, in order, for each pushed fragment:
 *  1. A header that does not parse throws MalformedPacketError (`malformed`); nothing changes.
 *  2. Reassemblies older than `timeoutMs` (from their first fragment) are dropped (`timeouts`).
 *  3. A fragment with count 1 is a whole frame and is returned at once (if within maxFrameBytes).
 *  4. Contradictions discard the whole reassembly and return null (`overlaps`): a count different
 *     from the first fragment's; an index already held with different bytes; a non-last chunk
 *     whose length differs from the established chunk length; a last chunk longer than it.
 *     The same index with the same bytes is ignored (`duplicates`).
 *  5. Limits refuse the new fragment and return null (`refused`): a new reassembly beyond
 *     maxPendingPerSource; bytes beyond maxBytesPerSource or maxBytesTotal; a frame whose
 *     count x chunk length exceeds maxFrameBytes (that discards its reassembly, which could never
 *     complete). A fragment that completes its frame is never refused for bytes (it is not
 *     buffered), so reassemblies in progress can always finish. Only expired reassemblies are
 *     ever evicted to make room: one source never pushes out another's data. maxBytesTotal is
 *     shared, so a flood from many sources can still fill it for new frames; size it for the
 *     number of sources a link can have.
 *  6. When the last missing fragment arrives the frame is returned, a new Buffer owned by the
 *     caller, no longer than the chunks pushed; the reassembly is forgotten. A fragment arriving
 *     after its frame completed starts a new reassembly (duplicate frames are for the end-to-end
 *     replay window to drop).
 * Nothing is ever sent in response to a fragment.
 */
export class Reassembler {
  private readonly now: () => number
  private readonly timeoutMs: number
  private readonly maxBytesPerSource: number
  private readonly maxBytesTotal: number
  private readonly maxPendingPerSource: number
  private readonly maxFrameBytes: number
  private readonly overhead: number

  private readonly sources = new Map<string, SourceState>()
  /** Reassemblies in order of `created` (oldest first), so expiry only looks at the head. */
  private head: Reassembly | null = null
  private tail: Reassembly | null = null
  private readonly header: FragmentHeaderFields = { index: 0, count: 0, fragId: 0 }

  private pending = 0
  private bytes = 0
  private completed = 0
  private duplicates = 0
  private overlaps = 0
  private refused = 0
  private timeouts = 0
  private malformed = 0

  constructor(options: ReassemblerOptions = {}) {
    const now = options.now ?? (() => performance.now())
    if (typeof now !== 'function') throw new TypeError('now must be a function')
    this.now = now
    const timeoutMs = options.timeoutMs ?? REASSEMBLY_TIMEOUT_MS
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError(`timeoutMs must be a positive number, got ${String(timeoutMs)}`)
    this.timeoutMs = timeoutMs
    this.maxBytesPerSource = positiveInteger(options.maxBytesPerSource, REASSEMBLY_MAX_BYTES_PER_SOURCE, 'maxBytesPerSource')
    this.maxBytesTotal = positiveInteger(options.maxBytesTotal, REASSEMBLY_MAX_BYTES_TOTAL, 'maxBytesTotal')
    this.maxPendingPerSource = positiveInteger(options.maxPendingPerSource, REASSEMBLY_MAX_PENDING_PER_SOURCE, 'maxPendingPerSource')
    this.maxFrameBytes = positiveInteger(options.maxFrameBytes, REASSEMBLY_MAX_FRAME_BYTES, 'maxFrameBytes')
    this.overhead = positiveInteger(options.fragmentOverheadBytes, REASSEMBLY_FRAGMENT_OVERHEAD_BYTES, 'fragmentOverheadBytes', true)
  }

  /**
   * Takes one fragment received from link source `source` (e.g. the link-layer address). Returns
   * the whole frame when this fragment completes it, else null. Throws MalformedPacketError for a
   * header that does not parse, TypeError for arguments of the wrong type.
   */
  push(source: string, fragment: Uint8Array): Buffer | null {
    if (typeof source !== 'string') throw new TypeError('source must be a string')
    const h = this.header
    try {
      decodeFragmentHeader(fragment, h)
    } catch (err) {
      if (err instanceof MalformedPacketError) this.malformed++
      throw err
    }
    const now = this.now()
    this.expire(now)

    const len = fragment.length - FRAGMENT_HEADER_BYTES
    const isLast = h.index === h.count - 1
    const cost = len + this.overhead
    let src = this.sources.get(source)
    let r = src?.pending.get(h.fragId)

    if (r === undefined) {
      if (h.count === 1) {
        if (len > this.maxFrameBytes) {
          this.refused++
          return null
        }
        this.completed++
        return Buffer.from(fragment.subarray(FRAGMENT_HEADER_BYTES))
      }
      // For a last chunk, len is a lower bound of the chunk length.
      if (h.count * len > this.maxFrameBytes || (src !== undefined && src.pending.size >= this.maxPendingPerSource) || !this.fits(src, cost)) {
        this.refused++
        return null
      }
      if (src === undefined) {
        src = { name: source, bytes: 0, pending: new Map() }
        this.sources.set(source, src)
      }
      r = this.open(src, h.fragId, h.count, now)
    } else {
      if (h.count !== r.count) return this.overlap(r)
      const held = r.chunks[h.index]
      if (held !== undefined) {
        if (sameChunk(held, fragment)) {
          this.duplicates++
          return null
        }
        return this.overlap(r)
      }
      if (!isLast) {
        if (r.chunkLen >= 0) {
          if (len !== r.chunkLen) return this.overlap(r)
        } else {
          if (r.lastLen > len) return this.overlap(r)
          if (h.count * len > this.maxFrameBytes) {
            this.remove(r)
            this.refused++
            return null
          }
        }
      } else if (r.chunkLen >= 0 && len > r.chunkLen) {
        return this.overlap(r)
      }
      // A fragment that completes its frame is not buffered, so it is never refused for bytes:
      // reassemblies in progress can always finish and free their memory.
      if (r.received + 1 < r.count && !this.fits(r.source, cost)) {
        this.refused++
        return null
      }
    }

    if (isLast) r.lastLen = len
    else r.chunkLen = len

    if (r.received + 1 === r.count) {
      const frame = Buffer.allocUnsafe((r.count - 1) * r.chunkLen + r.lastLen)
      for (let i = 0; i < r.count; i++) {
        const c = r.chunks[i]
        if (c === undefined) frame.set(fragment.subarray(FRAGMENT_HEADER_BYTES), i * r.chunkLen)
        else frame.set(c, i * r.chunkLen)
      }
      this.remove(r)
      this.completed++
      return frame
    }

    const chunk = Buffer.allocUnsafeSlow(len)
    chunk.set(fragment.subarray(FRAGMENT_HEADER_BYTES))
    r.chunks[h.index] = chunk
    r.received++
    r.bytes += cost
    r.source.bytes += cost
    this.bytes += cost
    return null
  }

  /** Drops reassemblies that have timed out; returns how many. Call it from a timer if pushes are rare. */
  sweep(): number {
    return this.expire(this.now())
  }

  /** Bytes buffered for `source` (chunks plus per-fragment overhead). */
  bytesFor(source: string): number {
    return this.sources.get(source)?.bytes ?? 0
  }

  stats(): ReassemblerStats {
    return {
      pending: this.pending,
      bytes: this.bytes,
      completed: this.completed,
      duplicates: this.duplicates,
      overlaps: this.overlaps,
      refused: this.refused,
      timeouts: this.timeouts,
      malformed: this.malformed,
    }
  }

  private fits(src: SourceState | undefined, cost: number): boolean {
    return (src?.bytes ?? 0) + cost <= this.maxBytesPerSource && this.bytes + cost <= this.maxBytesTotal
  }

  private open(src: SourceState, fragId: number, count: number, now: number): Reassembly {
    // Keep the list sorted by `created` even if the clock steps back.
    const created = this.tail !== null && this.tail.created > now ? this.tail.created : now
    const r: Reassembly = {
      source: src,
      fragId,
      count,
      chunkLen: -1,
      lastLen: -1,
      chunks: new Array<Buffer | undefined>(count),
      received: 0,
      bytes: 0,
      created,
      prev: this.tail,
      next: null,
    }
    if (this.tail === null) this.head = r
    else this.tail.next = r
    this.tail = r
    src.pending.set(fragId, r)
    this.pending++
    return r
  }

  private overlap(r: Reassembly): null {
    this.remove(r)
    this.overlaps++
    return null
  }

  private remove(r: Reassembly): void {
    if (r.prev === null) this.head = r.next
    else r.prev.next = r.next
    if (r.next === null) this.tail = r.prev
    else r.next.prev = r.prev
    r.prev = null
    r.next = null
    const src = r.source
    src.pending.delete(r.fragId)
    src.bytes -= r.bytes
    this.bytes -= r.bytes
    this.pending--
    if (src.pending.size === 0) this.sources.delete(src.name)
  }

  private expire(now: number): number {
    let dropped = 0
    while (this.head !== null && now - this.head.created >= this.timeoutMs) {
      this.remove(this.head)
      this.timeouts++
      dropped++
    }
    return dropped
  }
}
