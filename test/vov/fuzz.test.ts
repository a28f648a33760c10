/**
 * Property tests (fast-check) of the VoV line parser and verifier, which read files that come
 * from disks, copies and attackers:
 *
 *  1. parseLine never throws, for arbitrary bytes and for mutations of real lines; a failure is
 *     one line of text (a mutation that still parses is caught by the signature: property 2).
 *  2. Any mutation of a log file (flipped or set bytes, deleted or inserted ranges, lines deleted,
 *     duplicated, swapped or moved, truncation, garbage appended) never makes verifyFiles throw,
 *     and the outcome is exactly the model: with p the first byte where the mutated file differs
 *     from the original, the error is at line 1 + (newlines before p) — except that a mutated
 *     file that is a prefix of the original, or differs only inside an incomplete last line,
 *     verifies (a cut at the end cannot be detected without an anchor) and reports the torn tail.
 *  3. The same in a log of several files: a mutation past line 1 of a middle file is caught in
 *     that file at the model's line, or at line 1 of the next file when lines were cut off its end.
 *  4. collectLogs over arbitrary files never throws and never reports ok for garbage.
 *  5. The writer's recovery at open: any mutation of the newest file, and any bytes in the key
 *     file, never make VovLog.open throw; what it appends after continues a chain that verifies
 *     up to the end, or verify fails at a line that was already there (damage before the last
 *     valid line is left for verify to report, never hidden).
 *
 * fast-check picks the seed; a failure prints it with the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { KEY_FILE, VovLog, collectLogs, parseLine, verifyFiles, verifyLog, type VerifyReport } from '../../appliance/vov/index.js'
import { clock, identity, logFiles, tempDir, writeLog } from './helpers.js'

const RUNS = Number(process.env.VOV_FUZZ_RUNS ?? 400)
const work = tempDir(t, 'kv-fuzz-')
let single: Buffer = Buffer.alloc(0)
let singleName = ''
let multiDir = ''
let multiFiles: string[] = []
let realLines: Buffer[] = []

t.before(async () => {
  const one = join(work, 'one')
  const c = clock()
  const files = await writeLog(one, 24, { id: identity(5), clock: c, keyLifetimeMs: 10_000 })
  t.equal(files.length, 1)
  single = readFileSync(files[0]!)
  singleName = basename(files[0]!)
  realLines = single
    .toString()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => Buffer.from(l))
  multiDir = join(work, 'multi')
  multiFiles = await writeLog(multiDir, 40, { id: identity(6), maxFileBytes: 3000, keyLifetimeMs: 15_000 })
})

/** A mutation of a byte string, described so that fast-check can shrink it. */
type Mutation =
  | { k: 'flip'; at: number; x: number }
  | { k: 'set'; at: number; v: number }
  | { k: 'del'; at: number; n: number }
  | { k: 'ins'; at: number; bytes: Uint8Array }
  | { k: 'trunc'; at: number }
  | { k: 'garbage'; bytes: Uint8Array }
  | { k: 'dupLine'; a: number; b: number }
  | { k: 'delLine'; a: number }
  | { k: 'swapLines'; a: number; b: number }
  | { k: 'moveLine'; a: number; b: number }

const frac = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true })
const someBytes = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.constantFrom(Buffer.from('\n'), Buffer.from('{}\n'), Buffer.from('"'), Buffer.from(',"sig":"')))
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: frac, x: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ k: fc.constant('set' as const), at: frac, v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ k: fc.constant('del' as const), at: frac, n: fc.integer({ min: 1, max: 400 }) }),
  fc.record({ k: fc.constant('ins' as const), at: frac, bytes: someBytes }),
  fc.record({ k: fc.constant('trunc' as const), at: frac }),
  fc.record({ k: fc.constant('garbage' as const), bytes: someBytes }),
  fc.record({ k: fc.constant('dupLine' as const), a: frac, b: frac }),
  fc.record({ k: fc.constant('delLine' as const), a: frac }),
  fc.record({ k: fc.constant('swapLines' as const), a: frac, b: frac }),
  fc.record({ k: fc.constant('moveLine' as const), a: frac, b: frac }),
)

function splitLines(buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let s = 0
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0x0a) {
      out.push(buf.subarray(s, i + 1))
      s = i + 1
    }
  }
  if (s < buf.length) out.push(buf.subarray(s))
  return out
}

function apply(o: Buffer, m: Mutation, from = 0): Buffer {
  // Positions are fractions of the part of the file after `from` (the multi-file case keeps line 1).
  const pos = (f: number) => from + Math.floor(f * (o.length - from))
  switch (m.k) {
    case 'flip': {
      const b = Buffer.from(o)
      const i = pos(m.at)
      b[i] = b[i]! ^ m.x
      return b
    }
    case 'set': {
      const b = Buffer.from(o)
      b[pos(m.at)] = m.v
      return b
    }
    case 'del': {
      const i = pos(m.at)
      return Buffer.concat([o.subarray(0, i), o.subarray(i + m.n)])
    }
    case 'ins': {
      const i = pos(m.at)
      return Buffer.concat([o.subarray(0, i), m.bytes, o.subarray(i)])
    }
    case 'trunc':
      return o.subarray(0, pos(m.at))
    case 'garbage':
      return Buffer.concat([o, m.bytes])
    default: {
      const head = splitLines(o.subarray(0, from))
      const lines = splitLines(o.subarray(from))
      const idx = (f: number) => Math.floor(f * lines.length)
      if (lines.length === 0) return o
      if (m.k === 'dupLine') lines.splice(idx(m.b), 0, lines[idx(m.a)]!)
      else if (m.k === 'delLine') lines.splice(idx(m.a), 1)
      else if (m.k === 'swapLines') {
        const [a, b] = [idx(m.a), idx(m.b)]
        ;[lines[a], lines[b]] = [lines[b]!, lines[a]!]
      } else {
        const [moved] = lines.splice(idx(m.a), 1)
        lines.splice(idx(m.b), 0, moved!)
      }
      return Buffer.concat([...head, ...lines])
    }
  }
}

/** What verify must say about `m`, a mutation of `o`, when it is the newest file (or not). */
function model(o: Buffer, m: Buffer, newest: boolean): { ok: true; torn: boolean } | { ok: false; line: number | 'next-file' | 'any' } {
  let p = 0
  while (p < m.length && p < o.length && m[p] === o[p]) p++
  const completeLines = m.subarray(0, m.lastIndexOf(0x0a) + 1).reduce((n, b) => (b === 0x0a ? n + 1 : n), 0)
  const linesBefore = m.subarray(0, p).reduce((n, b) => (b === 0x0a ? n + 1 : n), 0)
  const isPrefix = p === m.length
  if (isPrefix && m.length === o.length) return { ok: true, torn: false }
  if (!newest) {
    if (m.length === 0) return { ok: false, line: 'any' }
    if (isPrefix && m[m.length - 1] === 0x0a) return { ok: false, line: 'next-file' }
    return { ok: false, line: linesBefore + 1 }
  }
  const onlyInTail = m.indexOf(0x0a, p) < 0
  if (isPrefix || onlyInTail) {
    if (completeLines === 0) return { ok: false, line: 'any' }
    return { ok: true, torn: m[m.length - 1] !== 0x0a }
  }
  return { ok: false, line: linesBefore + 1 }
}

function describe(r: VerifyReport): string {
  return JSON.stringify({ ok: r.ok, error: r.error, torn: r.torn_tail })
}

t.test('parseLine never throws: arbitrary bytes and text', async (t) => {
  const check = (buf: Buffer) => {
    const r = parseLine(buf)
    if (!r.ok && (typeof r.reason !== 'string' || r.reason === '' || r.reason.includes('\n'))) throw new Error(`bad reason ${JSON.stringify(r.reason)}`)
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) => check(Buffer.from(b))), { numRuns: 2000 })
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => check(Buffer.from(s))), { numRuns: 1000 })
  fc.assert(fc.property(fc.json(), (s) => check(Buffer.from(s))), { numRuns: 1000 })
  t.pass('no throw')
})

t.test('parseLine never throws on mutations of real lines', async (t) => {
  fc.assert(
    fc.property(fc.nat(), fc.array(mutation.filter((m) => !m.k.endsWith('Line')), { minLength: 1, maxLength: 3 }), (i, ms) => {
      const line = realLines[i % realLines.length]!
      let b: Buffer = line
      for (const m of ms) b = apply(b, m)
      const nl = b.indexOf(0x0a)
      if (nl >= 0) b = b.subarray(0, nl)
      const r = parseLine(b)
      if (!r.ok && r.reason.includes('\n')) throw new Error('multi-line reason')
    }),
    { numRuns: 2000 },
  )
  t.pass('no throw')
})

t.test('a mutated single-file log: never throws, error at exactly the model\'s line', async (t) => {
  const dir = join(work, 'single-run')
  mkdirSync(dir, { recursive: true })
  const path = join(dir, singleName)
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 2 }), async (ms) => {
      let m: Buffer = single
      for (const mu of ms) m = apply(m, mu)
      writeFileSync(path, m)
      const r = await verifyFiles([path])
      const want = model(single, m, true)
      if (want.ok) {
        if (!r.ok) throw new Error(`expected ok, got ${describe(r)}`)
        if (want.torn !== (r.torn_tail !== null)) throw new Error(`torn tail: expected ${want.torn}, got ${describe(r)}`)
        if (r.error !== undefined) throw new Error('ok with an error')
      } else {
        if (r.ok || r.error === undefined) throw new Error(`expected an error at line ${want.line}, got ok`)
        if (typeof r.error.reason !== 'string' || r.error.reason === '') throw new Error('error without a reason')
        if (typeof want.line === 'number' && (r.error.file !== path || r.error.line !== want.line)) throw new Error(`expected ${path}:${want.line}, got ${describe(r)}`)
      }
    }),
    { numRuns: RUNS },
  )
  t.pass('model holds')
})

t.test('a mutated middle or newest file of a multi-file log: caught at the model\'s file and line', async (t) => {
  const dir = join(work, 'multi-run')
  mkdirSync(dir, { recursive: true })
  const names = multiFiles.map((f) => basename(f))
  const originals = multiFiles.map((f) => readFileSync(f))
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: names.length - 1 }), mutation, async (j, mu) => {
      names.forEach((n, i) => writeFileSync(join(dir, n), originals[i]!))
      const o = originals[j]!
      const line1 = o.indexOf(0x0a) + 1
      const m = apply(o, mu, line1) // line 1 kept: file order is by line 1
      writeFileSync(join(dir, names[j]!), m)
      const r = await verifyLog(dir)
      const newest = j === names.length - 1
      const want = model(o, m, newest)
      const file = join(dir, names[j]!)
      if (want.ok) {
        if (!r.ok) throw new Error(`expected ok, got ${describe(r)}`)
        return
      }
      if (r.ok || r.error === undefined) throw new Error(`expected an error (${want.line}), got ok`)
      if (want.line === 'next-file') {
        if (r.error.file !== join(dir, names[j + 1]!) || r.error.line !== 1) throw new Error(`expected ${names[j + 1]}:1, got ${describe(r)}`)
      } else if (want.line !== 'any' && (r.error.file !== file || r.error.line !== want.line)) {
        throw new Error(`expected ${file}:${want.line}, got ${describe(r)}`)
      }
    }),
    { numRuns: RUNS },
  )
  t.pass('model holds')
})

t.test('collectLogs over arbitrary files never throws and never calls garbage ok', async (t) => {
  const dir = join(work, 'collect-run')
  mkdirSync(dir, { recursive: true })
  let n = 0
  await fc.assert(
    fc.asyncProperty(fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constant(null)), { minLength: 1, maxLength: 4 }), async (contents) => {
      const sub = join(dir, String(n++))
      mkdirSync(sub)
      const paths = contents.map((c, i) => {
        const p = join(sub, `vov-x${i}.jsonl`)
        if (c === null) copyFileSync(multiFiles[i % multiFiles.length]!, p)
        else writeFileSync(p, c)
        return p
      })
      const r = await collectLogs([...paths, join(sub, 'missing')])
      if (r.ok) throw new Error('ok with a missing path')
      for (const g of r.gateways) if (!g.ok && g.error === undefined) throw new Error('failed without an error')
    }),
    { numRuns: 150 },
  )
  t.ok(logFiles(multiDir).length > 1)
})

t.test('open after any damage to the newest file or the key file: never throws, never hides damage', async (t) => {
  const dir = join(work, 'open-run')
  const id = identity(5)
  const keyText = readFileSync(join(work, 'one', KEY_FILE))
  let n = 0
  await fc.assert(
    fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 2 }), fc.option(fc.uint8Array({ maxLength: 200 }), { nil: undefined }), async (ms, keyBytes) => {
      const sub = join(dir, String(n++))
      mkdirSync(sub, { recursive: true })
      let m: Buffer = single
      for (const mu of ms) m = apply(m, mu)
      writeFileSync(join(sub, singleName), m)
      writeFileSync(join(sub, KEY_FILE), keyBytes ?? keyText, { mode: 0o600 })
      const before = m.subarray(0, m.lastIndexOf(0x0a) + 1).reduce((k, b) => (b === 0x0a ? k + 1 : k), 0)
      const log = await VovLog.open({ dir: sub, identity: id, now: () => Date.parse('2025-03-02T00:00:00Z') })
      log.append('after_open', {})
      await log.close()
      const r = await verifyLog(sub, { identityKey: id.identityKey })
      if (!r.ok && (r.error!.line === 0 || r.error!.line > before)) throw new Error(`the writer's own lines do not verify: ${describe(r)}`)
      const lines = readFileSync(log.file, 'utf8').trimEnd().split('\n')
      if (!lines[lines.length - 1]!.includes('"type":"after_open"')) throw new Error('the appended entry is not last')
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  )
  t.pass('open never throws')
})
