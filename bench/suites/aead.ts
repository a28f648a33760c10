/**
 * ChaCha20-Poly1305 (IETF) seal/open throughput for packet-sized payloads (64, 255, 1024 bytes,
 * 32-byte AD), through four implementations:
 *
 *   sodium       sodium-native via appliance/core/crypto.ts (aeadSealInto / aeadOpenInto), into
 *                preallocated buffers: the production hot path
 *   nodecrypto   node:crypto createCipheriv/createDecipheriv('chacha20-poly1305'), one cipher
 *                object per message as the API requires; seal copies ciphertext and tag into one
 *                preallocated packet buffer like the wire path would
 *   noble        @noble/ciphers chacha20poly1305 (pure JS), one instance per message (noble
 *                refuses to encrypt twice with one instance), output into preallocated buffers
 *   libsodium_c  bench/c/aead.c: libsodium called from C, the native ceiling
 *
 * For each (op, size) the four are measured with interleaved rounds (lib.ts measureInterleaved;
 * the C program runs as a child in --serve mode, timing one round per request), so that load from
 * other processes on a busy machine disturbs all four alike and the ratios stay meaningful.
 *
 * Ids: aead_<seal|open>_<64|255|1k>_<impl>. JS results carry vs.libsodium_c and vs.noble; the C
 * results carry vs.noble. Anchors: libsodium_c_<op>_<size> and noble_<op>_<size>.
 *
 * The nonce is fixed: every implementation does the same work per message whatever the nonce,
 * and open needs a ciphertext made under a known nonce.
 */
import { spawn } from 'node:child_process'
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto'
import { createInterface } from 'node:readline'
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, aeadOpenInto, aeadSealInto } from '../../appliance/core/crypto.js'
import { buildC, defaultMinMs, jsContender, measureInterleaved, type BenchResult, type Contender, type Suite } from '../lib.js'

const AD_BYTES = 32
const SIZES = [
  { label: '64', bytes: 64 },
  { label: '255', bytes: 255 },
  { label: '1k', bytes: 1024 },
] as const
const OPS = ['seal', 'open'] as const
type Op = (typeof OPS)[number]

const JS_IMPLS = [
  { id: 'sodium', name: 'sodium-native' },
  { id: 'nodecrypto', name: 'node:crypto' },
  { id: 'noble', name: '@noble/ciphers' },
] as const
type JsImpl = (typeof JS_IMPLS)[number]['id']

/** Fresh zeroed buffers with their own ArrayBuffer (offset 0, so aligned for noble). */
function buf(n: number): Buffer {
  return Buffer.alloc(n)
}

interface Fixture {
  key: Buffer
  nonce: Buffer
  ad: Buffer
  plain: Buffer
  /** plain sealed under (key, nonce, ad): ciphertext || tag. */
  sealed: Buffer
  sealedCt: Buffer
  sealedTag: Buffer
  outSealed: Buffer
  outPlain: Buffer
}

function fixture(bytes: number): Fixture {
  const key = randomFillSync(buf(AEAD_KEY_BYTES))
  const nonce = randomFillSync(buf(AEAD_NONCE_BYTES))
  const ad = randomFillSync(buf(AD_BYTES))
  const plain = randomFillSync(buf(bytes))
  const sealed = buf(bytes + AEAD_TAG_BYTES)
  aeadSealInto(sealed, plain, ad, nonce, key)
  return {
    key,
    nonce,
    ad,
    plain,
    sealed,
    sealedCt: sealed.subarray(0, bytes),
    sealedTag: sealed.subarray(bytes),
    outSealed: buf(bytes + AEAD_TAG_BYTES),
    outPlain: buf(bytes),
  }
}

/** One seal or open of the fixture's message; throws if an open does not verify. */
function operation(impl: JsImpl, op: Op, f: Fixture): () => void {
  const len = f.plain.length
  const { key, nonce, ad, plain, sealed, sealedCt, sealedTag, outSealed, outPlain } = f
  switch (`${impl}/${op}` as const) {
    case 'sodium/seal':
      return () => aeadSealInto(outSealed, plain, ad, nonce, key)
    case 'sodium/open':
      return () => {
        if (!aeadOpenInto(outPlain, sealed, ad, nonce, key)) throw new Error('sodium-native open failed')
      }
    case 'nodecrypto/seal':
      return () => {
        const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES })
        c.setAAD(ad, { plaintextLength: len })
        c.update(plain).copy(outSealed, 0)
        c.final()
        c.getAuthTag().copy(outSealed, len)
      }
    case 'nodecrypto/open':
      return () => {
        const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES })
        d.setAAD(ad, { plaintextLength: len })
        d.setAuthTag(sealedTag)
        d.update(sealedCt)
        d.final() // throws if the tag does not verify
      }
    case 'noble/seal':
      return () => {
        chacha20poly1305(key, nonce, ad).encrypt(plain, outSealed)
      }
    case 'noble/open':
      return () => {
        chacha20poly1305(key, nonce, ad).decrypt(sealed, outPlain) // throws if the tag does not verify
      }
  }
  throw new Error(`unknown case ${impl}/${op}`)
}

/** Checks that all JS implementations agree byte for byte before timing them. */
function crossCheck(f: Fixture): void {
  for (const { id, name } of JS_IMPLS) {
    f.outSealed.fill(0)
    f.outPlain.fill(0)
    operation(id, 'seal', f)()
    if (!f.outSealed.equals(f.sealed)) throw new Error(`aead: ${name} seal of ${f.plain.length} bytes differs from sodium-native`)
    operation(id, 'open', f)()
    // node:crypto's open returns a fresh buffer instead of filling outPlain; check it separately.
    if (id === 'nodecrypto') {
      const d = createDecipheriv('chacha20-poly1305', f.key, f.nonce, { authTagLength: AEAD_TAG_BYTES })
      d.setAAD(f.ad, { plaintextLength: f.plain.length })
      d.setAuthTag(f.sealedTag)
      const pt = Buffer.concat([d.update(f.sealedCt), d.final()])
      if (!pt.equals(f.plain)) throw new Error(`aead: node:crypto open of ${f.plain.length} bytes returned the wrong plaintext`)
    } else if (!f.outPlain.equals(f.plain)) {
      throw new Error(`aead: ${name} open of ${f.plain.length} bytes returned the wrong plaintext`)
    }
  }
  // A forged tag must be rejected by every implementation.
  f.sealed[f.sealed.length - 1]! ^= 1
  try {
    for (const { id, name } of JS_IMPLS) {
      let rejected = false
      try {
        operation(id, 'open', f)()
      } catch {
        rejected = true
      }
      if (!rejected) throw new Error(`aead: ${name} accepted a forged tag`)
    }
  } finally {
    f.sealed[f.sealed.length - 1]! ^= 1
  }
}

const C_NAME = 'libsodium C'

interface CServer {
  /** A contender timing `op` on `bytes`-byte payloads inside the C program. */
  contender(op: Op, bytes: number): Contender
  close(): Promise<void>
}

/** Starts bench/.build/aead --serve: one request line, one reply line (ops/s or "error: ..."). */
function startCServer(bin: string): CServer {
  const child = spawn(bin, ['--serve'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const waiters: { resolve(line: string): void; reject(err: Error): void }[] = []
  let dead: Error | null = null
  const fail = (err: Error) => {
    dead ??= err
    for (const w of waiters.splice(0)) w.reject(dead)
  }
  createInterface({ input: child.stdout }).on('line', (line) => waiters.shift()?.resolve(line))
  child.on('error', (err) => fail(new Error(`cannot run ${bin}: ${err.message}`)))
  child.on('close', (code, signal) => fail(new Error(`bench/.build/aead --serve exited (${signal ?? code})`)))
  child.stdin.on('error', () => {}) // a dead child is reported through 'close'

  const request = async (line: string): Promise<number> => {
    if (dead) throw dead
    const reply = new Promise<string>((resolve, reject) => waiters.push({ resolve, reject }))
    child.stdin.write(`${line}\n`)
    const text = await reply
    const v = Number(text)
    if (!(v > 0)) throw new Error(`bench/.build/aead --serve: ${text}`)
    return v
  }
  return {
    contender: (op, bytes) => ({
      name: C_NAME,
      warmup: (ms) => request(`warm ${op} ${bytes} ${ms}`),
      round: (ms) => request(`run ${op} ${bytes} ${ms}`),
    }),
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null || dead) return resolve()
        child.once('close', () => resolve())
        child.stdin.end()
      }),
  }
}

export const suite: Suite = {
  name: 'aead',
  async run(ctx) {
    const minMs = defaultMinMs()
    const fixtures = new Map(SIZES.map((s) => [s.label, fixture(s.bytes)]))
    for (const f of fixtures.values()) crossCheck(f)

    const bin = buildC('aead', [{ pkgConfig: 'libsodium', debian: 'libsodium-dev' }], (msg) => ctx.progress(`aead: ${msg}`))
    const c = startCServer(bin)
    const values = new Map<string, number>() // `${op}_${size}_${impl}` → ops/s
    try {
      for (const s of SIZES) {
        const f = fixtures.get(s.label)!
        for (const op of OPS) {
          ctx.progress(`aead: ${op} ${s.label} ${JS_IMPLS.map((i) => i.name).join(', ')}, ${C_NAME} (interleaved)…`)
          const contenders = [...JS_IMPLS.map((i) => jsContender(i.name, operation(i.id, op, f))), c.contender(op, s.bytes)]
          const medians = await measureInterleaved(contenders, { minMs })
          for (const i of JS_IMPLS) values.set(`${op}_${s.label}_${i.id}`, medians.get(i.name)!)
          values.set(`${op}_${s.label}_libsodium_c`, medians.get(C_NAME)!)
        }
      }
    } finally {
      await c.close()
    }

    const results: BenchResult[] = []
    for (const s of SIZES) {
      for (const op of OPS) {
        const cValue = values.get(`${op}_${s.label}_libsodium_c`)!
        const nobleValue = values.get(`${op}_${s.label}_noble`)!
        ctx.anchors.set(`libsodium_c_${op}_${s.label}`, cValue)
        ctx.anchors.set(`noble_${op}_${s.label}`, nobleValue)
        for (const impl of JS_IMPLS) {
          const value = values.get(`${op}_${s.label}_${impl.id}`)!
          results.push({
            id: `aead_${op}_${s.label}_${impl.id}`,
            value,
            unit: 'ops/s',
            vs: { libsodium_c: value / cValue, noble: value / nobleValue },
          })
        }
        results.push({ id: `aead_${op}_${s.label}_libsodium_c`, value: cValue, unit: 'ops/s', vs: { noble: cValue / nobleValue } })
      }
    }
    return results
  },
}
