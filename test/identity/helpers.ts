/** Shared bits of the identity tests: temporary directories and identities from seeds. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Identity } from '../../appliance/core/identity.js'

/** A fresh temporary directory, removed when the test `t` ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix = 'kairo-id-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The identity of a seed byte, repeated (cheap distinct identities for examples). */
export function identityOf(n: number): Identity {
  return Identity.fromSeed(Buffer.alloc(32, n))
}

/** Arbitrary identities (from random 32-byte seeds). */
export const arbIdentity = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((seed) => Identity.fromSeed(seed))

/** A random version 4 UUID built from fast-check bytes (lower case). */
export const arbUuid = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => {
  const x = Buffer.from(b)
  x[6] = (x[6]! & 0x0f) | 0x40
  x[8] = (x[8]! & 0x3f) | 0x80
  const h = x.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
})
