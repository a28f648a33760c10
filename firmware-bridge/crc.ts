/**
 * CRC-32C (Castagnoli), the checksum of every firmware-bridge link frame.
 *
 * Parameters (Rocksoft model, as catalogued by Greg Cook's "CRC RevEng" as CRC-32/ISCSI):
 * width 32, poly 0x1EDC6F41 (reflected 0x82F63B78), init 0xFFFFFFFF, refin true, refout true,
 * xorout 0xFFFFFFFF, check ("123456789") 0xE3069283, residue 0xB798B438.
 *
 * Why CRC-32C rather than CRC-16/CCITT-FALSE: frames are at most 512 bytes (4096 bits), where
 * the Castagnoli polynomial keeps Hamming distance 6 (Koopman, "32-Bit Cyclic Redundancy Codes
 * for Internet Applications", DSN 2002: HD 6 up to 5243 bits), so every 1..5-bit error is
 * caught; and a resynchronising decoder on a noisy line turns line noise into many candidate
 * frames, of which a 16-bit check would accept one in 65536, a 32-bit one one in 4.3e9. The cost
 * on an MCU is a 1 KiB table (or 64 bytes for a nibble table) and a few cycles per byte.
 */

/** Reflected CRC-32C polynomial. */
export const CRC32C_POLY_REFLECTED = 0x82f63b78
/** CRC-32C of the nine ASCII bytes "123456789". */
export const CRC32C_CHECK = 0xe3069283

const TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY_REFLECTED : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

/**
 * Continues a CRC-32C over `data[start..end)`. `crc` is a previous result (0 to begin); the
 * init and final xor are applied inside, so `crc32c(b, crc32c(a))` equals `crc32c(a || b)`.
 */
export function crc32c(data: Uint8Array, crc = 0, start = 0, end = data.length): number {
  let c = ~crc >>> 0
  for (let i = start; i < end; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}
