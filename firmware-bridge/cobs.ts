/**
 * Consistent Overhead Byte Stuffing (S. Cheshire, M. Baker, "Consistent Overhead Byte
 * Stuffing", IEEE/ACM Transactions on Networking 7(2), 1999): removes every 0x00 from a frame
 * so that 0x00 can delimit frames on the serial line. Overhead: one byte per 254 bytes, at
 * least one.
 *
 * Encoding: the input is cut after every 0x00 and after every run of 254 non-zero bytes; each
 * block is written as a code byte (1 + the number of non-zero bytes that follow, 0x01..0xFF)
 * and those bytes. A code below 0xFF stands for its bytes followed by a 0x00, except at the very
 * end of the frame; 0xFF stands for 254 bytes and no 0x00. Nothing is appended after a final
 * 0xFF block (the encoding of Cheshire and Baker's paper and of Wikipedia's reference code).
 */
import { MalformedPacketError } from '../appliance/core/errors.js'

/** Largest COBS encoding of `n` bytes (without the 0x00 delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + 1 + Math.floor(n / 254)
}

/**
 * Encodes `src` into `dst` at `offset` and returns the number of bytes written (no delimiter).
 * `dst` needs cobsMaxEncodedLength(src.length) bytes from `offset`.
 */
export function cobsEncodeInto(src: Uint8Array, dst: Uint8Array, offset = 0): number {
  let codeAt = offset
  let o = offset + 1
  let code = 1
  const n = src.length
  for (let i = 0; i < n; i++) {
    const b = src[i]!
    if (b !== 0) {
      dst[o++] = b
      code++
    }
    if (b === 0 || code === 0xff) {
      dst[codeAt] = code
      code = 1
      codeAt = o
      if (b === 0 || i + 1 < n) o++
    }
  }
  if (codeAt < o) dst[codeAt] = code
  return o - offset
}

/** The COBS encoding of `src` (no delimiter). */
export function cobsEncode(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(cobsMaxEncodedLength(src.length))
  return out.subarray(0, cobsEncodeInto(src, out))
}

/**
 * Decodes `src[0..length)` (one frame without its delimiter) into `dst`, which may be `src`
 * itself (decoding never writes ahead of reading). Returns the decoded length, or -1 when the
 * input is not valid COBS (a 0x00 inside, or a code byte running past the end).
 */
export function cobsDecodeInto(src: Uint8Array, length: number, dst: Uint8Array): number {
  let i = 0
  let o = 0
  while (i < length) {
    const code = src[i++]!
    if (code === 0) return -1
    const end = i + code - 1
    if (end > length) return -1
    while (i < end) {
      const b = src[i++]!
      if (b === 0) return -1
      dst[o++] = b
    }
    if (code !== 0xff && i < length) dst[o++] = 0
  }
  return o
}

/** Decodes one COBS frame (without its delimiter); MalformedPacketError when it is not valid. */
export function cobsDecode(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(src.length)
  const n = cobsDecodeInto(src, src.length, out)
  if (n < 0) throw new MalformedPacketError(`invalid COBS encoding in a ${src.length}-byte frame`, { field: 'cobs' })
  return out.subarray(0, n)
}
