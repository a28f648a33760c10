/**
 * appliance/core/crypto.ts against the Wycheproof vectors: ChaCha20-Poly1305, XChaCha20-Poly1305,
 * Ed25519 verification and X25519. Every `valid` case must be accepted with exactly the expected
 * output, every `invalid` one rejected. `acceptable` cases are counted; for X25519 the policy is
 * that an all-zero shared secret is rejected and every other result must match.
 *
 * One assertion per file (plus one per mismatch, naming the tcId), so the counts stay readable.
 */
import t from 'tap'
import type { Test } from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  AEAD_TAG_BYTES,
  DH_BYTES,
  aeadOpen,
  aeadOpenInto,
  aeadSeal,
  aeadSealInto,
  dhInto,
  signVerify,
  xaeadOpen,
  xaeadSeal,
} from '../../appliance/core/crypto.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const sharedDir = process.env.KAIRO_SHARED_DIR ?? join(repoRoot, '..', 'shared')

type Result = 'valid' | 'invalid' | 'acceptable'

interface WycheproofFile<G> {
  algorithm: string
  numberOfTests: number
  testGroups: G[]
}

interface AeadTest {
  tcId: number
  comment: string
  flags: string[]
  key: string
  iv: string
  aad: string
  msg: string
  ct: string
  tag: string
  result: Result
}

interface EddsaGroup {
  publicKey: { pk: string }
  tests: { tcId: number; comment: string; flags: string[]; msg: string; sig: string; result: Result }[]
}

interface XdhTest {
  tcId: number
  comment: string
  flags: string[]
  public: string
  private: string
  shared: string
  result: Result
}

const hex = (s: string): Buffer => Buffer.from(s, 'hex')

function load<G>(name: string): WycheproofFile<G> {
  return JSON.parse(readFileSync(join(sharedDir, 'vectors', name), 'utf8')) as WycheproofFile<G>
}

/** Runs `fn`, turning a thrown TypeError (wrong key or nonce size) into `null`. */
function orRejected<T>(fn: () => T): T | null {
  try {
    return fn()
  } catch (err) {
    if (err instanceof TypeError) return null
    throw err
  }
}

class Tally {
  readonly counts: Record<Result, number> = { valid: 0, invalid: 0, acceptable: 0 }
  readonly failures: string[] = []
  constructor(readonly label: string) {}

  fail(tcId: number, why: string): void {
    this.failures.push(`tcId ${tcId}: ${why}`)
  }

  report(tt: Test, expectedTotal: number, acceptableNote = ''): void {
    const c = this.counts
    const total = c.valid + c.invalid + c.acceptable
    tt.equal(total, expectedTotal, `${this.label}: all ${expectedTotal} tests run`)
    const summary = `${this.label}: ${c.valid} valid accepted, ${c.invalid} invalid rejected` + (c.acceptable > 0 ? `, ${c.acceptable} acceptable${acceptableNote}` : '')
    if (this.failures.length === 0) tt.pass(summary)
    else tt.fail(`${this.label}: ${this.failures.length} mismatches`, { failures: this.failures })
  }
}

type AeadApi = {
  seal(pt: Buffer, ad: Buffer, nonce: Buffer, key: Buffer): Buffer
  open(ct: Buffer, ad: Buffer, nonce: Buffer, key: Buffer): Buffer | null
  /** Optional in-place round trip with the *Into forms. */
  inPlace?(pt: Buffer, ad: Buffer, nonce: Buffer, key: Buffer, sealed: Buffer): string | null
}

function runAead(tt: Test, file: string, label: string, api: AeadApi): void {
  const doc = load<{ ivSize: number; keySize: number; tagSize: number; tests: AeadTest[] }>(file)
  const tally = new Tally(label)
  for (const g of doc.testGroups) {
    for (const tc of g.tests) {
      tally.counts[tc.result]++
      const key = hex(tc.key)
      const nonce = hex(tc.iv)
      const aad = hex(tc.aad)
      const msg = hex(tc.msg)
      const sealed = Buffer.concat([hex(tc.ct), hex(tc.tag)])
      const opened = orRejected(() => api.open(sealed, aad, nonce, key))
      if (tc.result === 'valid') {
        const ours = orRejected(() => api.seal(msg, aad, nonce, key))
        if (ours === null) tally.fail(tc.tcId, 'seal refused a valid case')
        else if (!ours.equals(sealed)) tally.fail(tc.tcId, `seal gave ${ours.toString('hex')}`)
        if (opened === null) tally.fail(tc.tcId, 'open rejected a valid case')
        else if (!opened.equals(msg)) tally.fail(tc.tcId, `open gave ${opened.toString('hex')}`)
        const inPlace = api.inPlace?.(msg, aad, nonce, key, sealed) ?? null
        if (inPlace !== null) tally.fail(tc.tcId, inPlace)
      } else if (opened !== null) {
        tally.fail(tc.tcId, `${tc.result} case opened (${tc.comment}, flags ${tc.flags.join(',')})`)
      }
    }
  }
  tally.report(tt, doc.numberOfTests)
}

t.test('wycheproof ChaCha20-Poly1305 (IETF, 12-byte nonce)', async (t) => {
  runAead(t, 'wycheproof-chacha20_poly1305_test.json', 'chacha20-poly1305', {
    seal: (pt, ad, nonce, key) => aeadSeal(pt, ad, nonce, key),
    open: (ct, ad, nonce, key) => aeadOpen(ct, ad, nonce, key),
    inPlace(pt, ad, nonce, key, sealed) {
      const buf = Buffer.alloc(pt.length + AEAD_TAG_BYTES)
      pt.copy(buf)
      aeadSealInto(buf, buf.subarray(0, pt.length), ad, nonce, key)
      if (!buf.equals(sealed)) return 'in-place seal differs'
      if (!aeadOpenInto(buf.subarray(0, pt.length), buf, ad, nonce, key)) return 'in-place open rejected'
      if (!buf.subarray(0, pt.length).equals(pt)) return 'in-place open differs'
      return null
    },
  })
})

t.test('wycheproof XChaCha20-Poly1305', async (t) => {
  runAead(t, 'wycheproof-xchacha20_poly1305_test.json', 'xchacha20-poly1305', {
    seal: (pt, ad, nonce, key) => xaeadSeal(pt, ad, nonce, key),
    open: (ct, ad, nonce, key) => xaeadOpen(ct, ad, nonce, key),
  })
})

t.test('wycheproof Ed25519 verification', async (t) => {
  const doc = load<EddsaGroup>('wycheproof-ed25519_test.json')
  const tally = new Tally('ed25519')
  for (const g of doc.testGroups) {
    const pk = hex(g.publicKey.pk)
    for (const tc of g.tests) {
      tally.counts[tc.result]++
      let ok: boolean
      try {
        ok = signVerify(hex(tc.sig), hex(tc.msg), pk)
      } catch (err) {
        tally.fail(tc.tcId, `signVerify threw ${String(err)}`)
        continue
      }
      if (tc.result === 'valid' && !ok) tally.fail(tc.tcId, `valid signature rejected (${tc.comment})`)
      if (tc.result === 'invalid' && ok) tally.fail(tc.tcId, `invalid signature accepted (${tc.comment}, flags ${tc.flags.join(',')})`)
    }
  }
  tally.report(t, doc.numberOfTests)
})

t.test('wycheproof X25519', async (t) => {
  const doc = load<{ curve: string; tests: XdhTest[] }>('wycheproof-x25519_test.json')
  const tally = new Tally('x25519')
  let zeroRejected = 0
  let acceptableMatched = 0
  const out = Buffer.alloc(DH_BYTES)
  for (const g of doc.testGroups) {
    for (const tc of g.tests) {
      tally.counts[tc.result]++
      const expected = hex(tc.shared)
      const zero = expected.every((b) => b === 0)
      const ok = orRejected(() => dhInto(out, hex(tc.private), hex(tc.public))) ?? false
      if (tc.result === 'invalid') {
        if (ok) tally.fail(tc.tcId, 'invalid case accepted')
      } else if (zero) {
        // Policy: an all-zero shared secret (low-order public key) is always rejected.
        if (ok) tally.fail(tc.tcId, 'all-zero shared secret accepted')
        else if (!out.every((b) => b === 0)) tally.fail(tc.tcId, 'rejected, but the output buffer was not zeroed')
        else zeroRejected++
      } else if (!ok) {
        tally.fail(tc.tcId, `${tc.result} case rejected (${tc.comment}, flags ${tc.flags.join(',')})`)
      } else if (!out.equals(expected)) {
        tally.fail(tc.tcId, `shared secret ${out.toString('hex')}, expected ${tc.shared}`)
      } else if (tc.result === 'acceptable') {
        acceptableMatched++
      }
    }
  }
  tally.report(t, doc.numberOfTests, ` (${acceptableMatched} matched the expected secret, ${zeroRejected} all-zero secrets rejected by policy)`)
})
