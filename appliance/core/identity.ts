/**
 * Node identity: an Ed25519 signing key pair, the 128-bit node ID (KLP-ID) derived from its
 * public key, and the X25519 static key used by Noise, bound to the identity by a signature.
 */
import {
  blake2b,
  dhFromSecret,
  signDetached,
  signFromSeed,
  signVerify,
  type DhKeyPair,
  type SignKeyPair,
  SIGN_PUBLIC_BYTES,
  DH_BYTES,
  wipe,
} from './crypto.js'

/** Length of a node ID, bytes (128 bits). */
export const NODE_ID_BYTES = 16
/** Domain separation for the node ID hash. */
export const NODE_ID_CONTEXT = Buffer.from('kairo/klp-id/v1')
/** Domain separation for the signature that binds a Noise static key to an identity. */
export const STATIC_BINDING_CONTEXT = Buffer.from('kairo/noise-static/v1')
/** Domain separation for deriving the static X25519 secret from an identity seed. */
const STATIC_DERIVE_CONTEXT = Buffer.from('kairo/static-derive/v1')

/** node ID = first 16 bytes of BLAKE2b-256("kairo/klp-id/v1" || Ed25519 public key). */
export function nodeIdFromPublicKey(identityKey: Uint8Array): Buffer {
  if (identityKey.length !== SIGN_PUBLIC_BYTES) throw new TypeError(`identity key must be ${SIGN_PUBLIC_BYTES} bytes, got ${identityKey.length}`)
  return blake2b(32, [NODE_ID_CONTEXT, identityKey]).subarray(0, NODE_ID_BYTES)
}

/** The bytes an identity signs to bind a Noise static key to itself. */
export function staticBindingMessage(staticKey: Uint8Array): Buffer {
  return Buffer.concat([STATIC_BINDING_CONTEXT, staticKey])
}

/** True when `signature` by `identityKey` binds `staticKey`. */
export function verifyStaticBinding(identityKey: Uint8Array, staticKey: Uint8Array, signature: Uint8Array): boolean {
  if (staticKey.length !== DH_BYTES) return false
  return signVerify(signature, staticBindingMessage(staticKey), identityKey)
}

/** Lower-case hex, 32 digits. */
export function nodeIdToString(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex')
}

export function parseNodeId(text: string): Buffer {
  if (!/^[0-9a-fA-F]{32}$/.test(text)) throw new TypeError(`node ID must be 32 hex digits, got ${JSON.stringify(text)}`)
  return Buffer.from(text, 'hex')
}

export class Identity {
  readonly signing: SignKeyPair
  readonly static: DhKeyPair
  readonly nodeId: Buffer
  /** Signature by the identity over STATIC_BINDING_CONTEXT || static public key. */
  readonly staticBinding: Buffer

  constructor(signing: SignKeyPair, staticKey: DhKeyPair) {
    this.signing = signing
    this.static = staticKey
    this.nodeId = nodeIdFromPublicKey(signing.publicKey)
    this.staticBinding = signDetached(staticBindingMessage(staticKey.publicKey), signing.secretKey)
  }

  /**
   * The identity for a 32-byte seed: Ed25519 from the seed (RFC 8032), the X25519 static secret
   * as BLAKE2b-256 keyed by the seed over "kairo/static-derive/v1". Deterministic, so one secret
   * file holds a whole identity.
   */
  static fromSeed(seed: Uint8Array): Identity {
    const signing = signFromSeed(seed)
    const staticSecret = blake2b(32, [STATIC_DERIVE_CONTEXT], seed)
    const id = new Identity(signing, dhFromSecret(staticSecret))
    return id
  }

  static generate(): Identity {
    const seed = Buffer.alloc(32)
    crypto.getRandomValues(seed)
    const id = Identity.fromSeed(seed)
    wipe(seed)
    return id
  }

  get identityKey(): Buffer {
    return this.signing.publicKey
  }

  get nodeIdHex(): string {
    return nodeIdToString(this.nodeId)
  }

  sign(message: Uint8Array): Buffer {
    return signDetached(message, this.signing.secretKey)
  }

  /** What a log line may show: never a secret. */
  toJSON(): { node_id: string; identity_key: string; static_key: string } {
    return { node_id: this.nodeIdHex, identity_key: this.identityKey.toString('hex'), static_key: this.static.publicKey.toString('hex') }
  }
}
