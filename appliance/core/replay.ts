/**
 * Anti-replay sliding window over per-session sequence numbers (RFC 6479, as used by WireGuard).
 *
 * The bitmap is a ring of 32-bit words. Moving the window forward clears only the words that
 * slide into view, never shifts the whole bitmap, so both operations are O(1) amortised and
 * allocate nothing. One word of the ring is always the partly filled "current" word, so of a
 * bitmap of `sizeBits` bits only `sizeBits - 32` sequence numbers are guaranteed to be tracked:
 * that is the effective window.
 *
 * Contract:
 *  - A sequence number `seq` is accepted iff it was not accepted before and
 *    `seq > highest - (sizeBits - 32)`, i.e. it lies among the `sizeBits - 32` most recent
 *    numbers `[highest - window + 1, highest]` or above `highest`. Before anything is accepted
 *    (`highest === -1`) every valid number is accepted.
 *  - `check()` is side-effect free and cheap: call it before authenticating a packet to drop
 *    replays and stale packets without spending a decryption on them.
 *  - `update()` marks the number; call it only AFTER the packet authenticated, otherwise a forged
 *    packet could advance the window and make genuine packets look stale.
 *  - Sequence numbers are non-negative integers below 2^53 (`Number.isSafeInteger`); anything
 *    else is a local programming error and throws `TypeError`. Rejection of a replay is reported
 *    as `false`; raising `ReplayError` is the caller's choice.
 *
 * Note on the edge: the window holds exactly `window` numbers (RFC 4303 semantics). wireguard-go
 * and Linux accept one more (`highest - seq <= window`); this window rejects that number.
 */

/** Default bitmap size, bits (packets); effective window 8160 packets. Same as Linux WireGuard. */
export const REPLAY_WINDOW_DEFAULT_BITS = 8192
/** Smallest allowed bitmap size, bits: an effective window of 2048 packets, the protocol minimum. */
export const REPLAY_WINDOW_MIN_BITS = 2080
/** Bits per bitmap word, the granularity of the ring (RFC 6479 uses the machine word). */
export const REPLAY_WORD_BITS = 32

function assertSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new TypeError(`sequence number must be an integer in [0, 2^53), got ${String(seq)}`)
  }
}

export class ReplayWindow {
  /** Bitmap size in bits, as given to the constructor. */
  readonly sizeBits: number
  /** Effective window in packets: `sizeBits - 32`. */
  readonly window: number
  private readonly ring: Uint32Array
  private readonly words: number
  private last = -1

  /**
   * @param sizeBits bitmap size in bits (packets): an integer multiple of 32, at least 2080 (an effective window of 2048 packets)
   *   (TypeError otherwise). Default 8192.
   */
  constructor(sizeBits: number = REPLAY_WINDOW_DEFAULT_BITS) {
    if (!Number.isSafeInteger(sizeBits) || sizeBits < REPLAY_WINDOW_MIN_BITS || sizeBits % REPLAY_WORD_BITS !== 0) {
      throw new TypeError(`replay window size must be a multiple of ${REPLAY_WORD_BITS} and at least ${REPLAY_WINDOW_MIN_BITS} bits, got ${String(sizeBits)}`)
    }
    this.sizeBits = sizeBits
    this.window = sizeBits - REPLAY_WORD_BITS
    this.words = sizeBits / REPLAY_WORD_BITS
    this.ring = new Uint32Array(this.words)
  }

  /** Highest sequence number accepted so far, -1 before any. */
  get highest(): number {
    return this.last
  }

  /** True if `seq` would be accepted now (not seen and not too old). Changes nothing. */
  check(seq: number): boolean {
    assertSeq(seq)
    if (seq > this.last) return true
    if (this.last - seq >= this.window) return false
    const word = this.ring[Math.floor(seq / REPLAY_WORD_BITS) % this.words] ?? 0
    return (word & (1 << (seq % REPLAY_WORD_BITS))) === 0
  }

  /**
   * Accepts and marks `seq`. Returns false, changing nothing, if `seq` is a replay or older than
   * the window. Call only after the packet carrying `seq` authenticated.
   */
  update(seq: number): boolean {
    assertSeq(seq)
    const block = Math.floor(seq / REPLAY_WORD_BITS)
    if (seq > this.last) {
      // Clear the words that slide into the window, at most the whole ring once.
      const current = this.last < 0 ? -1 : Math.floor(this.last / REPLAY_WORD_BITS)
      let diff = block - current
      if (diff > this.words) diff = this.words
      for (let i = 1; i <= diff; i++) this.ring[(current + i) % this.words] = 0
      this.last = seq
    } else if (this.last - seq >= this.window) {
      return false
    }
    const index = block % this.words
    const bit = 1 << (seq % REPLAY_WORD_BITS)
    const word = this.ring[index] ?? 0
    if ((word & bit) !== 0) return false
    this.ring[index] = word | bit
    return true
  }

  /** Forgets everything: back to the state of a new window (`highest === -1`). */
  reset(): void {
    this.ring.fill(0)
    this.last = -1
  }
}
