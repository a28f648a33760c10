/**
 * Tampered logs are caught at the right file and line. One log of several files with log keys
 * rotating inside and across files is written once; each case copies it, damages the copy the way
 * an attacker or a bad copy would, and checks verifyLog's error: the file, the 1-based line and
 * the reason. Cases: a changed byte (data, header, an identity-signed entry), a deleted line,
 * swapped lines, a blank line, a middle file cut short (at a line boundary and mid-line), a file
 * deleted, renamed files, a duplicated file, a forged signature, entries signed by an uncertified
 * key or by a key already replaced (stolen old key), a rewrite with the current key (caught only
 * with an anchor), and a cut at the end (caught only with an anchor).
 */
import t, { type Test } from 'tap'
import { copyFileSync, readFileSync, readdirSync, renameSync, truncateSync, unlinkSync, writeFileSync, mkdirSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { signDetached, signFromSeed } from '../../appliance/core/crypto.js'
import { KEY_FILE, VovLog, entryHash, keyIdOf, parseLine, signedBytes, verifyFiles, verifyLog, type VerifyReport } from '../../appliance/vov/index.js'
import { clock, editLine, identity, logFiles, readLines, tempDir, writeLines } from './helpers.js'

const id = identity(3)
const base = join(tempDir(t), 'vov')
/** Seeds of every log key used, by key id (read from the key file as the log runs). */
const seeds = new Map<string, Buffer>()
let baseFiles: string[] = []
let clean: VerifyReport

t.before(async () => {
  const c = clock()
  const log = await VovLog.open({ dir: base, identity: id, now: c.now, maxFileBytes: 4096, keyLifetimeMs: 20_000 })
  const grab = () => {
    const k = JSON.parse(readFileSync(join(base, KEY_FILE), 'utf8')) as { key_id: string; seed: string }
    seeds.set(k.key_id, Buffer.from(k.seed, 'hex'))
  }
  grab()
  for (let i = 0; i < 70; i++) {
    c.advance(1000)
    log.append('link_up', { link: `udp${i}`, kind: 'udp', n: i })
    grab()
  }
  await log.close()
  baseFiles = logFiles(base).map((f) => basename(f))
  clean = await verifyLog(base, { identityKey: id.identityKey })
})

t.test('the log as written verifies', async (t) => {
  t.ok(baseFiles.length >= 5, `${baseFiles.length} files`)
  t.match(clean, { ok: true, key_rotations: 3, entries: 70 + baseFiles.length + 3 })
})

/** A fresh copy of the log; returns its dir and files. */
function copy(t: Test): { dir: string; files: string[] } {
  const dir = join(tempDir(t), 'vov')
  mkdirSync(dir)
  for (const n of readdirSync(base)) copyFileSync(join(base, n), join(dir, n))
  return { dir, files: logFiles(dir) }
}

function expectError(t: Test, r: VerifyReport, file: string, line: number, reason: RegExp): void {
  t.equal(r.ok, false, 'does not verify')
  t.equal(r.error?.file, file, 'names the file')
  t.equal(r.error?.line, line, 'names the line')
  t.match(r.error?.reason, reason)
}

/** Lines of a file as parsed entries. */
function parsed(file: string) {
  return readLines(file).map((l) => {
    const p = parseLine(Buffer.from(l))
    if (!p.ok) throw new Error(p.reason)
    return p.entry
  })
}

t.test('a changed byte in data', async (t) => {
  const { dir, files } = copy(t)
  editLine(files[2]!, 4, (l) => l.replace(/"link":"udp(\d+)"/, (_m, n: string) => `"link":"udp${Number(n) + 1}"`))
  expectError(t, await verifyLog(dir), files[2]!, 4, /signature by log key [0-9a-f]{16} does not verify/)
})

t.test('a changed byte anywhere in a line (each position of one line)', async (t) => {
  const { dir, files } = copy(t)
  const original = readFileSync(files[1]!)
  const lines = readLines(files[1]!)
  const start = Buffer.byteLength(lines.slice(0, 2).map((l) => l + '\n').join('')) // line 3
  const len = Buffer.byteLength(lines[2]!)
  for (let i = 0; i < len; i += 7) {
    const buf = Buffer.from(original)
    buf[start + i] = buf[start + i]! ^ 0x01
    writeFileSync(files[1]!, buf)
    const r = await verifyLog(dir)
    if (r.ok || r.error?.file !== files[1] || r.error?.line !== 3) {
      t.fail(`byte ${i} of line 3 flipped: ${JSON.stringify(r.error)}`)
      return
    }
  }
  t.pass('every flipped byte caught at line 3')
})

t.test('a changed identity-signed entry (file_opened)', async (t) => {
  const { dir, files } = copy(t)
  editLine(files[3]!, 1, (l) => l.replace('"previous_file":"vov-', '"previous_file":"VOV-'))
  expectError(t, await verifyLog(dir), files[3]!, 1, /signature by the identity key does not verify/)
})

t.test('a deleted line', async (t) => {
  const { dir, files } = copy(t)
  const lines = readLines(files[2]!)
  const seq5 = parsed(files[2]!)[4]!.seq
  lines.splice(4, 1)
  writeLines(files[2]!, lines)
  expectError(t, await verifyLog(dir), files[2]!, 5, new RegExp(`seq ${seq5 + 1} follows seq ${seq5 - 1}: entry ${seq5} is missing`))
})

t.test('swapped lines', async (t) => {
  const { dir, files } = copy(t)
  const lines = readLines(files[1]!)
  ;[lines[3], lines[4]] = [lines[4]!, lines[3]!]
  writeLines(files[1]!, lines)
  expectError(t, await verifyLog(dir), files[1]!, 4, /missing \(deleted, or lines reordered\)/)
})

t.test('a line moved to the end of the file', async (t) => {
  const { dir, files } = copy(t)
  const lines = readLines(files[1]!)
  const [moved] = lines.splice(2, 1)
  lines.push(moved!)
  writeLines(files[1]!, lines)
  expectError(t, await verifyLog(dir), files[1]!, 3, /missing/)
})

t.test('a blank line inserted', async (t) => {
  const { dir, files } = copy(t)
  const lines = readLines(files[0]!)
  lines.splice(3, 0, '')
  writeLines(files[0]!, lines)
  expectError(t, await verifyLog(dir), files[0]!, 4, /empty line/)
})

t.test('a middle file cut short at a line boundary: caught at the next file', async (t) => {
  const { dir, files } = copy(t)
  const lines = readLines(files[2]!)
  writeLines(files[2]!, lines.slice(0, lines.length - 2))
  expectError(t, await verifyLog(dir), files[3]!, 1, /entries \d+\.\.\d+ are missing \(deleted, or a file is missing/)
})

t.test('a middle file cut short mid-line', async (t) => {
  const { dir, files } = copy(t)
  const size = statSync(files[1]!).size
  truncateSync(files[1]!, size - 40)
  const n = readLines(files[1]!).length
  expectError(t, await verifyLog(dir), files[1]!, n, /incomplete line .* not the newest: the file was cut short/)
})

t.test('a middle file cut in the middle: lines removed from inside a line onwards, glued to later bytes', async (t) => {
  const { dir, files } = copy(t)
  const buf = readFileSync(files[1]!)
  const lines = readLines(files[1]!)
  const cutFrom = Buffer.byteLength(lines.slice(0, 3).join('\n')) + 1 + 50 // 50 bytes into line 4
  const cutTo = Buffer.byteLength(lines.slice(0, 5).join('\n')) + 1 + 80 // 80 bytes into line 6
  writeFileSync(files[1]!, Buffer.concat([buf.subarray(0, cutFrom), buf.subarray(cutTo)]))
  const r = await verifyLog(dir)
  expectError(t, r, files[1]!, 4, /./)
})

t.test('a deleted middle file', async (t) => {
  const { dir, files } = copy(t)
  unlinkSync(files[2]!)
  expectError(t, await verifyLog(dir), files[3]!, 1, /are missing \(deleted, or a file is missing/)
})

t.test('renamed files (file order changed)', async (t) => {
  const { dir, files } = copy(t)
  const [a, b] = [files[1]!, files[2]!]
  renameSync(a, join(dir, 'tmp.x'))
  renameSync(b, a)
  renameSync(join(dir, 'tmp.x'), b)
  // Content order puts a's content (now named b) first: its name does not match its first seq.
  expectError(t, await verifyLog(dir), b, 1, /the file name says its first entry is seq \d+, but line 1 holds seq \d+ \(the file was renamed\)/)
})

t.test('files given in any order, under other names, verify by content', async (t) => {
  const { files } = copy(t)
  const other = tempDir(t)
  const renamed = files.map((f, i) => {
    const to = join(other, `gw1-part-${String.fromCharCode(122 - i)}.jsonl`) // reverse alphabetical
    copyFileSync(f, to)
    return to
  })
  const r = await verifyFiles([...renamed].reverse(), { identityKey: id.identityKey })
  t.match(r, { ok: true, entries: clean.entries, last_hash: clean.last_hash })
  t.same(r.files.map((f) => f.file), renamed, 'put in chain order')
})

t.test('a duplicated file', async (t) => {
  const { dir, files } = copy(t)
  copyFileSync(files[1]!, join(dir, 'vov-copy.jsonl'))
  const r = await verifyLog(dir)
  t.equal(r.ok, false)
  t.match(r.error, { line: 1, reason: /the seq goes back \(lines reordered or repeated, or files overlap\)/ })
  t.ok([files[1], join(dir, 'vov-copy.jsonl')].includes(r.error?.file), 'at line 1 of one of the two copies')
})

t.test('a forged signature (another line\'s signature, or random bytes)', async (t) => {
  const { dir, files } = copy(t)
  const lines = readLines(files[2]!)
  const other = /"sig":"([0-9a-f]{128})"/.exec(lines[5]!)![1]!
  editLine(files[2]!, 6, (l) => l.replace(/"sig":"[0-9a-f]{128}"/, `"sig":"${/"sig":"([0-9a-f]{128})"/.exec(lines[4]!)![1]}"`))
  expectError(t, await verifyLog(dir), files[2]!, 6, /does not verify/)
  editLine(files[2]!, 6, (l) => l.replace(/"sig":"[0-9a-f]{128}"/, `"sig":"${'ab'.repeat(64)}"`))
  expectError(t, await verifyLog(dir), files[2]!, 6, /does not verify/)
  t.ok(other.length === 128)
})

/** Re-signs a line with `seed` as key `keyId`, keeping seq/prev; returns the new line. */
function resign(line: string, seed: Buffer, keyId: string, edit: (l: string) => string = (l) => l): string {
  const body = edit(line.replace(/"key":"[0-9a-f]{16}"/, `"key":"${keyId}"`)).replace(/,"sig":"[0-9a-f]{128}"\}$/, ',"sig":"' + '0'.repeat(128) + '"}')
  const sig = signDetached(signedBytes(Buffer.from(body)), signFromSeed(seed).secretKey)
  return body.replace(/"sig":"0{128}"/, `"sig":"${sig.toString('hex')}"`)
}

t.test('an entry signed by a key never certified in the log', async (t) => {
  const { dir, files } = copy(t)
  const seed = Buffer.alloc(32, 0x42)
  const kid = keyIdOf(signFromSeed(seed).publicKey)
  editLine(files[2]!, 3, (l) => resign(l, seed, kid))
  expectError(t, await verifyLog(dir), files[2]!, 3, new RegExp(`signed by log key ${kid}, but the key in force is [0-9a-f]{16} \\(a key never certified in this log\\)`))
})

t.test('a stolen old key cannot sign entries after its replacement', async (t) => {
  const { dir, files } = copy(t)
  // The last file: its entries are signed by the newest key; forge one with the first key.
  const last = files[files.length - 1]!
  const entries = parsed(last)
  const n = entries.findIndex((e) => e.key !== 'identity' && e.key !== clean.keys[0]) + 1
  t.ok(n > 1)
  const oldId = clean.keys[0]!
  editLine(last, n, (l) => resign(l, seeds.get(oldId)!, oldId, (x) => x.replace(/"n":\d+/, '"n":999')))
  expectError(t, await verifyLog(dir), last, n, new RegExp(`signed by log key ${oldId}, but the key in force is [0-9a-f]{16} \\(${oldId} was replaced earlier\\)`))
})

t.test('a removed key_rotated entry: the next entry is caught', async (t) => {
  const { dir, files } = copy(t)
  for (const f of files) {
    const entries = parsed(f)
    const i = entries.findIndex((e) => e.type === 'key_rotated')
    if (i < 0) continue
    const lines = readLines(f)
    lines.splice(i, 1)
    writeLines(f, lines)
    expectError(t, await verifyLog(dir), f, i + 1, /missing/)
    return
  }
  t.fail('no key_rotated entry found')
})

t.test('a rewrite of the end with the current log key: undetectable alone, caught with an anchor', async (t) => {
  const { dir, files } = copy(t)
  const last = files[files.length - 1]!
  const lines = readLines(last)
  const entries = parsed(last)
  const currentKey = clean.keys[clean.keys.length - 1]!
  const seed = seeds.get(currentKey)!
  // Delete the third-last entry and rewrite the two after it, re-chained and re-signed.
  const k = lines.length - 3
  const kept = lines.slice(0, k)
  let prev = entries[k - 1]!.hash
  let seq = entries[k - 1]!.seq + 1
  for (const l of lines.slice(k + 1)) {
    const nl = resign(l, seed, currentKey, (x) => x.replace(/"seq":\d+/, `"seq":${seq}`).replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${prev}"`))
    kept.push(nl)
    prev = entryHash(Buffer.from(nl))
    seq++
  }
  writeLines(last, kept)
  const alone = await verifyLog(dir)
  t.equal(alone.ok, true, 'an attacker holding the current key can rewrite what that key signed')
  const anchored = await verifyLog(dir, { anchor: { seq: clean.last_seq!, hash: clean.last_hash! } })
  t.equal(anchored.ok, false)
  t.match(anchored.error, { file: last, line: kept.length + 1, reason: /the log ends at seq \d+, but the anchor names seq \d+: the end of the log was cut/ })
  const mid = entries[k + 1]! // rewritten: its seq now holds other content
  const anchoredMid = await verifyLog(dir, { anchor: { seq: mid.seq - 1, hash: mid.hash } })
  t.match(anchoredMid, { ok: false, error: { file: last, line: k + 1, reason: /the anchor says seq \d+ hashes to/ } })
})

t.test('a cut at the very end: not detectable without an anchor, caught with one', async (t) => {
  const { dir, files } = copy(t)
  const last = files[files.length - 1]!
  const lines = readLines(last)
  writeLines(last, lines.slice(0, lines.length - 3))
  const r = await verifyLog(dir)
  t.match(r, { ok: true, last_seq: clean.last_seq! - 3 })
  const anchored = await verifyLog(dir, { anchor: { seq: clean.last_seq!, hash: clean.last_hash! } })
  t.match(anchored, { ok: false, error: { file: last, line: lines.length - 2, reason: new RegExp(`ends at seq ${clean.last_seq! - 3}, but the anchor names seq ${clean.last_seq}`) } })
  const good = await verifyLog(base, { anchor: { seq: clean.last_seq!, hash: clean.last_hash! } })
  t.match(good, { ok: true, anchor: { ok: true } })
})

t.test('an incomplete last line of the newest file is reported, not an error', async (t) => {
  const { dir, files } = copy(t)
  const last = files[files.length - 1]!
  truncateSync(last, statSync(last).size - 30)
  const r = await verifyLog(dir)
  const n = readLines(last).length
  t.match(r, { ok: true, torn_tail: { file: last, line: n }, last_seq: clean.last_seq! - 1 })
})

t.test('the wrong identity, and a whole log of another node', async (t) => {
  const r = await verifyLog(base, { identityKey: identity(4).identityKey })
  expectError(t, r, join(base, baseFiles[0]!), 1, /names identity key [0-9a-f]{64}, but the expected identity key is/)
})

t.test('a missing directory, an empty directory, an empty file', async (t) => {
  const dir = tempDir(t)
  t.match(await verifyLog(join(dir, 'nope')), { ok: false, error: { line: 0, reason: /cannot read/ } })
  t.match(await verifyLog(dir), { ok: false, error: { file: dir, line: 0, reason: /no VoV log files/ } })
  writeFileSync(join(dir, 'vov-0000000000000000.jsonl'), '')
  t.match(await verifyLog(dir), { ok: false, error: { reason: /no complete entries/ } })
})
