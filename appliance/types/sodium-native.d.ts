// The part of sodium-native (libsodium bindings) that kairo-gw uses. Written here because the
// published @types lag the library (no _ietf AEAD, no generichash instance API).
declare module 'sodium-native' {
  type B = Uint8Array
  const sodium: {
    crypto_aead_chacha20poly1305_ietf_encrypt(c: B, m: B, ad: B | null, nsec: null, npub: B, k: B): number
    crypto_aead_chacha20poly1305_ietf_decrypt(m: B, nsec: null, c: B, ad: B | null, npub: B, k: B): number
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(c: B, mac: B, m: B, ad: B | null, nsec: null, npub: B, k: B): number
    crypto_aead_chacha20poly1305_ietf_decrypt_detached(m: B, nsec: null, c: B, mac: B, ad: B | null, npub: B, k: B): void
    crypto_aead_xchacha20poly1305_ietf_encrypt(c: B, m: B, ad: B | null, nsec: null, npub: B, k: B): number
    crypto_aead_xchacha20poly1305_ietf_decrypt(m: B, nsec: null, c: B, ad: B | null, npub: B, k: B): number
    crypto_stream_chacha20_ietf_xor_ic(c: B, m: B, n: B, ic: number, k: B): void
    crypto_scalarmult_base(q: B, n: B): void
    crypto_scalarmult(q: B, n: B, p: B): void
    crypto_sign_keypair(pk: B, sk: B): void
    crypto_sign_seed_keypair(pk: B, sk: B, seed: B): void
    crypto_sign_detached(sig: B, m: B, sk: B): void
    crypto_sign_verify_detached(sig: B, m: B, pk: B): boolean
    crypto_sign_ed25519_pk_to_curve25519(x: B, ed: B): void
    crypto_sign_ed25519_sk_to_curve25519(x: B, ed: B): void
    crypto_generichash(out: B, m: B, key?: B | null): void
    crypto_generichash_init(state: B, key: B | null, outlen: number): void
    crypto_generichash_update(state: B, m: B): void
    crypto_generichash_final(state: B, out: B): void
    crypto_generichash_STATEBYTES: number
    randombytes_buf(b: B): void
    sodium_malloc(n: number): Buffer
    sodium_memzero(b: B): void
    sodium_memcmp(a: B, b: B): boolean
    sodium_is_zero(b: B, len?: number): boolean
  }
  export default sodium
}
