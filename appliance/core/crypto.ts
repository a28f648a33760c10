/**
 * The crypto layer: every primitive AI-TCP uses, on libsodium through sodium-native.
 *
 * Functions write into caller-supplied buffers so that the packet hot path allocates nothing;
 * the convenience forms that return new buffers are for handshakes, identities and tests.
 * Verification and decryption return `false` rather than throwing, so callers decide which typed
 * error to raise; malformed arguments (wrong key or nonce length) throw `TypeError`.
 */
import sodium from 'sodium-native'

/** ChaCha20-Poly1305 (IETF, RFC 8439) key length, bytes. */
export const AEAD_KEY_BYTES = 32
/** ChaCha20-Poly1305 (IETF) nonce length, bytes. */
export const AEAD_NONCE_BYTES = 12
/** Poly1305 tag length, bytes. */
export const AEAD_TAG_BYTES = 16
/** XChaCha20-Poly1305 nonce length, bytes (used for data at rest, never on the wire). */
export const XAEAD_NONCE_BYTES = 24
/** X25519 key and shared-secret length, bytes (RFC 7748). */
export const DH_BYTES = 32
/** Ed25519 public key, seed and signature lengths, bytes (RFC 8032). */
export const SIGN_PUBLIC_BYTES = 32
export const SIGN_SEED_BYTES = 32
export const SIGN_SECRET_BYTES = 64
export const SIGN_BYTES = 64
/** BLAKE2b-512 output length, bytes (Noise HASHLEN for BLAKE2b). */
export const HASH_BYTES = 64
/** BLAKE2b block length, bytes (Noise BLOCKLEN, used by HMAC). */
export const HASH_BLOCK_BYTES = 128

function need(buf: Uint8Array, len: number, what: string): void {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`)
  if (buf.length !== len) throw new TypeError(`${what} must be ${len} bytes, got ${buf.length}`)
}

// ---------------------------------------------------------------------------------------------
// AEAD: ChaCha20-Poly1305 (IETF)

/**
 * Seals `plaintext` into `out` (ciphertext then tag; `out.length` must be plaintext + 16).
 * `out` may be the same memory as `plaintext` shifted by zero bytes (in-place).
 */
export function aeadSealInto(out: Uint8Array, plaintext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): void {
  need(key, AEAD_KEY_BYTES, 'AEAD key')
  need(nonce, AEAD_NONCE_BYTES, 'AEAD nonce')
  if (out.length !== plaintext.length + AEAD_TAG_BYTES) throw new TypeError(`AEAD output must be ${plaintext.length + AEAD_TAG_BYTES} bytes, got ${out.length}`)
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key)
}

/** Opens `ciphertext` (with tag) into `out` (`ciphertext.length - 16` bytes). False if it does not verify. */
export function aeadOpenInto(out: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): boolean {
  need(key, AEAD_KEY_BYTES, 'AEAD key')
  need(nonce, AEAD_NONCE_BYTES, 'AEAD nonce')
  if (ciphertext.length < AEAD_TAG_BYTES) return false
  if (out.length !== ciphertext.length - AEAD_TAG_BYTES) throw new TypeError(`AEAD output must be ${ciphertext.length - AEAD_TAG_BYTES} bytes, got ${out.length}`)
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key)
    return true
  } catch {
    return false
  }
}

export function aeadSeal(plaintext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.length + AEAD_TAG_BYTES)
  aeadSealInto(out, plaintext, ad, nonce, key)
  return out
}

/** Returns the plaintext, or null if the ciphertext does not verify. */
export function aeadOpen(ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  if (ciphertext.length < AEAD_TAG_BYTES) return null
  const out = Buffer.alloc(ciphertext.length - AEAD_TAG_BYTES)
  return aeadOpenInto(out, ciphertext, ad, nonce, key) ? out : null
}

// ---------------------------------------------------------------------------------------------
// XChaCha20-Poly1305, for data at rest (store-and-forward queue, key files)

export function xaeadSeal(plaintext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): Buffer {
  need(key, AEAD_KEY_BYTES, 'XAEAD key')
  need(nonce, XAEAD_NONCE_BYTES, 'XAEAD nonce')
  const out = Buffer.alloc(plaintext.length + AEAD_TAG_BYTES)
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, ad, null, nonce, key)
  return out
}

export function xaeadOpen(ciphertext: Uint8Array, ad: Uint8Array | null, nonce: Uint8Array, key: Uint8Array): Buffer | null {
  need(key, AEAD_KEY_BYTES, 'XAEAD key')
  need(nonce, XAEAD_NONCE_BYTES, 'XAEAD nonce')
  if (ciphertext.length < AEAD_TAG_BYTES) return null
  const out = Buffer.alloc(ciphertext.length - AEAD_TAG_BYTES)
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ciphertext, ad, nonce, key)
    return out
  } catch {
    return null
  }
}

// ---------------------------------------------------------------------------------------------
// ChaCha20 keystream (header protection of sequence numbers)

/**
 * XORs `buf` in place with the ChaCha20 keystream for (key, nonce, block counter `ic`).
 */
export function chacha20XorInPlace(buf: Uint8Array, nonce: Uint8Array, ic: number, key: Uint8Array): void {
  sodium.crypto_stream_chacha20_ietf_xor_ic(buf, buf, nonce, ic, key)
}

// ---------------------------------------------------------------------------------------------
// X25519

export interface DhKeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

/** A new X25519 key pair from the system CSPRNG; the secret key lives in guarded memory. */
export function dhGenerate(): DhKeyPair {
  const secretKey = sodium.sodium_malloc(DH_BYTES) as Buffer
  sodium.randombytes_buf(secretKey)
  return dhFromSecret(secretKey)
}

/** The key pair for a given X25519 secret (scalar); the scalar is clamped by X25519 itself. */
export function dhFromSecret(secretKey: Uint8Array): DhKeyPair {
  need(secretKey, DH_BYTES, 'X25519 secret key')
  const publicKey = Buffer.alloc(DH_BYTES)
  sodium.crypto_scalarmult_base(publicKey, secretKey)
  return { publicKey, secretKey: Buffer.from(secretKey.buffer, secretKey.byteOffset, secretKey.length) }
}

/**
 * X25519(secret, public) into `out`. Returns false when the result is all zero (the peer sent a
 * low-order point), which every caller must treat as an authentication failure.
 */
export function dhInto(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): boolean {
  need(secretKey, DH_BYTES, 'X25519 secret key')
  need(publicKey, DH_BYTES, 'X25519 public key')
  need(out, DH_BYTES, 'X25519 output')
  try {
    sodium.crypto_scalarmult(out, secretKey, publicKey)
  } catch {
    out.fill(0)
    return false
  }
  return !sodium.sodium_is_zero(out)
}

// ---------------------------------------------------------------------------------------------
// Ed25519

export interface SignKeyPair {
  publicKey: Buffer
  /** libsodium's 64-byte form: seed || public key. */
  secretKey: Buffer
}

export function signGenerate(): SignKeyPair {
  const publicKey = Buffer.alloc(SIGN_PUBLIC_BYTES)
  const secretKey = sodium.sodium_malloc(SIGN_SECRET_BYTES) as Buffer
  sodium.crypto_sign_keypair(publicKey, secretKey)
  return { publicKey, secretKey }
}

export function signFromSeed(seed: Uint8Array): SignKeyPair {
  need(seed, SIGN_SEED_BYTES, 'Ed25519 seed')
  const publicKey = Buffer.alloc(SIGN_PUBLIC_BYTES)
  const secretKey = sodium.sodium_malloc(SIGN_SECRET_BYTES) as Buffer
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed)
  return { publicKey, secretKey }
}

export function signDetachedInto(out: Uint8Array, message: Uint8Array, secretKey: Uint8Array): void {
  need(secretKey, SIGN_SECRET_BYTES, 'Ed25519 secret key')
  need(out, SIGN_BYTES, 'Ed25519 signature output')
  sodium.crypto_sign_detached(out, message, secretKey)
}

export function signDetached(message: Uint8Array, secretKey: Uint8Array): Buffer {
  const out = Buffer.alloc(SIGN_BYTES)
  signDetachedInto(out, message, secretKey)
  return out
}

/**
 * Strict Ed25519 verification (libsodium: canonical S, canonical and non-small-order A and R).
 * Wrong lengths verify as false rather than throwing, since they come from the wire.
 */
export function signVerify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGN_BYTES || publicKey.length !== SIGN_PUBLIC_BYTES) return false
  try {
    return sodium.crypto_sign_verify_detached(signature, message, publicKey)
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// BLAKE2b, HMAC-BLAKE2b, HKDF (Noise, RFC 2104 / Noise spec section 4.3)

/** BLAKE2b of the concatenation of `parts`, `outLen` bytes (16..64), optionally keyed. */
export function blake2b(outLen: number, parts: readonly Uint8Array[], key?: Uint8Array): Buffer {
  const out = Buffer.alloc(outLen)
  blake2bInto(out, parts, key)
  return out
}

const hashState = Buffer.alloc(sodium.crypto_generichash_STATEBYTES)

export function blake2bInto(out: Uint8Array, parts: readonly Uint8Array[], key?: Uint8Array): void {
  sodium.crypto_generichash_init(hashState, key ?? null, out.length)
  for (const p of parts) sodium.crypto_generichash_update(hashState, p)
  sodium.crypto_generichash_final(hashState, out)
}

const hmacPad = Buffer.alloc(HASH_BLOCK_BYTES)
const hmacInner = Buffer.alloc(HASH_BYTES)
const hkdfTemp = Buffer.alloc(HASH_BYTES)
const HKDF_BYTE = [Buffer.from([0x01]), Buffer.from([0x02]), Buffer.from([0x03])] as const

/** HMAC-BLAKE2b-512 (block length 128, RFC 2104) into `out` (64 bytes), as Noise's HMAC-HASH. */
export function hmacBlake2bInto(out: Uint8Array, key: Uint8Array, parts: readonly Uint8Array[]): void {
  if (key.length > HASH_BLOCK_BYTES) {
    hmacPad.fill(0)
    blake2bInto(hmacPad.subarray(0, HASH_BYTES), [key])
  } else {
    hmacPad.set(key)
    hmacPad.fill(0, key.length)
  }
  for (let i = 0; i < HASH_BLOCK_BYTES; i++) hmacPad[i]! ^= 0x36
  sodium.crypto_generichash_init(hashState, null, HASH_BYTES)
  sodium.crypto_generichash_update(hashState, hmacPad)
  for (const p of parts) sodium.crypto_generichash_update(hashState, p)
  sodium.crypto_generichash_final(hashState, hmacInner)
  for (let i = 0; i < HASH_BLOCK_BYTES; i++) hmacPad[i]! ^= 0x36 ^ 0x5c
  sodium.crypto_generichash_init(hashState, null, HASH_BYTES)
  sodium.crypto_generichash_update(hashState, hmacPad)
  sodium.crypto_generichash_update(hashState, hmacInner)
  sodium.crypto_generichash_final(hashState, out)
  hmacPad.fill(0)
  hmacInner.fill(0)
}

export function hmacBlake2b(key: Uint8Array, parts: readonly Uint8Array[]): Buffer {
  const out = Buffer.alloc(HASH_BYTES)
  hmacBlake2bInto(out, key, parts)
  return out
}

/** Noise HKDF(chaining_key, input_key_material, num_outputs) with HMAC-BLAKE2b. */
export function hkdf(chainingKey: Uint8Array, ikm: Uint8Array, numOutputs: 2 | 3): Buffer[] {
  hmacBlake2bInto(hkdfTemp, chainingKey, [ikm])
  const out1 = hmacBlake2b(hkdfTemp, [HKDF_BYTE[0]])
  const out2 = hmacBlake2b(hkdfTemp, [out1, HKDF_BYTE[1]])
  const outs = [out1, out2]
  if (numOutputs === 3) outs.push(hmacBlake2b(hkdfTemp, [out2, HKDF_BYTE[2]]))
  hkdfTemp.fill(0)
  return outs
}

// ---------------------------------------------------------------------------------------------
// Misc

export function randomFill(buf: Uint8Array): void {
  sodium.randombytes_buf(buf)
}

/** Constant-time equality of two equal-length byte strings. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.sodium_memcmp(a, b)
}

/** Overwrites secret material. */
export function wipe(buf: Uint8Array): void {
  sodium.sodium_memzero(buf)
}
