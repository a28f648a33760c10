/**
 * Ed25519 detached signatures through appliance/core/crypto.ts (libsodium via sodium-native):
 * sign/s and verify/s of a 64-byte message. Ids: ed25519_sign, ed25519_verify.
 */
import { randomFillSync } from 'node:crypto'
import { SIGN_BYTES, signDetachedInto, signGenerate, signVerify } from '../../appliance/core/crypto.js'
import { measure, type Suite } from '../lib.js'

export const suite: Suite = {
  name: 'sign',
  async run(ctx) {
    const { publicKey, secretKey } = signGenerate()
    const message = randomFillSync(Buffer.alloc(64))
    const sig = Buffer.alloc(SIGN_BYTES)
    signDetachedInto(sig, message, secretKey)
    if (!signVerify(sig, message, publicKey)) throw new Error('sign: a fresh signature does not verify')
    const forged = Buffer.from(message)
    forged[0]! ^= 1
    if (signVerify(sig, forged, publicKey)) throw new Error('sign: a signature verified for the wrong message')

    ctx.progress('sign: ed25519 sign…')
    const scratch = Buffer.alloc(SIGN_BYTES)
    const sign = measure('ed25519 sign', () => signDetachedInto(scratch, message, secretKey))
    ctx.progress('sign: ed25519 verify…')
    const verify = measure('ed25519 verify', () => {
      if (!signVerify(sig, message, publicKey)) throw new Error('signature stopped verifying')
    })
    return [
      { id: 'ed25519_sign', value: sign, unit: 'ops/s', vs: {} },
      { id: 'ed25519_verify', value: verify, unit: 'ops/s', vs: {} },
    ]
  },
}
