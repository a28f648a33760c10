/**
 * Crashes and damage at the end of the log: the chain goes on after kill -9 (a child process
 * appending in a loop, SIGKILLed at random moments, five times on the same directory), and open
 * repairs what a crash or power cut leaves at the end of the newest file (an incomplete line,
 * complete lines that do not verify, an empty or torn new file, a torn genesis) by cutting it,
 * keeping the bytes in a side file and recording a log_recovered entry; a log key file that is
 * missing, readable by others or ahead of the log gets a fresh certified key. Damage before the
 * last valid line is not repaired but left for verify to report.
 */
import t, { type Test } from 'tap'
import { randomInt } from 'node:crypto'
import { appendFileSync, chmodSync, existsSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KEY_FILE, VovLog, fileNameFor, parseLine, verifyLog } from '../../appliance/vov/index.js'
import { clock, editLine, identity, logFiles, readLines, tempDir, writeLog } from './helpers.js'
import { runUntilKilled } from '../lib/kill-child.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')
const SEED = Buffer.alloc(32, 9)
const ROUNDS = 5

function entriesOf(dir: string) {
  return logFiles(dir).flatMap((f) =>
    readLines(f).flatMap((l) => {
      const p = parseLine(Buffer.from(l))
      return p.ok ? [p.entry] : []
    }),
  )
}

/** Runs the child until `killAfterMs` after it is ready; resolves with the last seq it flushed. */
async function runChild(dir: string, killAfterMs: number): Promise<number> {
  let flushed = -1
  await runUntilKilled(join(HERE, 'crash-child.ts'), [dir, SEED.toString('hex')], { cwd: ROOT, killAfterMs }, (tag, arg) => {
    if (tag === 'F') flushed = Number(arg)
  })
  return flushed
}

t.test('kill -9 while appending, five times: the chain goes on, nothing flushed is lost', async (t) => {
  const dir = join(tempDir(t, 'kv-crash-'), 'vov')
  const id = identityFromSeed()
  let recoveries = 0
  let keyRepairs = 0
  for (let round = 0; round < ROUNDS; round++) {
    const flushed = await runChild(dir, randomInt(80, 400))
    const log = await VovLog.open({ dir, identity: id })
    t.ok(log.entries > flushed, `round ${round}: ${log.entries} entries on disk, child flushed through seq ${flushed}`)
    const { seq } = log.append('parent_check', { round })
    await log.close()
    const r = await verifyLog(dir, { identityKey: id.identityKey, requireGenesis: true })
    if (!r.ok) t.fail(`round ${round}: ${JSON.stringify(r.error)}`)
    t.equal(r.last_seq, seq, `round ${round}: verifies from genesis to the parent's entry`)
    recoveries = r.recoveries.length
    keyRepairs = entriesOf(dir).filter((e) => e.type === 'key_rotated' && /key file|log-key\.json/.test(String(e.data.reason))).length
  }
  const all = entriesOf(dir)
  t.equal(all.filter((e) => e.type === 'parent_check').length, ROUNDS)
  t.ok(logFiles(dir).length > 1, `${logFiles(dir).length} files`)
  t.comment(`${all.length} entries, ${recoveries} tails cut, ${keyRepairs} keys re-certified at open`)
})

function identityFromSeed() {
  return identity(9)
}

/** A closed log of n entries and its newest file. */
async function small(t: Test, n = 5) {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const c = clock()
  await writeLog(dir, n, { id, clock: c })
  const files = logFiles(dir)
  return { dir, id, c, files, last: files[files.length - 1]! }
}

t.test('an incomplete last line is cut, kept in a side file and recorded', async (t) => {
  const { dir, id, c, last } = await small(t)
  const size = statSync(last).size
  const torn = readLines(last)[2]!.slice(0, 77) // a prefix of a real line, no newline
  appendFileSync(last, torn)
  t.match(await verifyLog(dir), { ok: true, torn_tail: { file: last, line: 7, bytes: 77 } }, 'verify reports it before repair')
  const log = await VovLog.open({ dir, identity: id, now: c.now })
  t.equal(log.entries, 7, '6 entries kept + log_recovered')
  await log.close()
  const rec = entriesOf(dir).find((e) => e.type === 'log_recovered')!
  t.match(rec.data, { file: 'vov-0000000000000000.jsonl', offset: size, bytes: 77, lines: 0, reason: /incomplete last line/, saved_as: `vov-0000000000000000.jsonl.cut-${size}`, last_seq_kept: 5, removed_file: false })
  t.equal(Buffer.from(String(rec.data.head_b64), 'base64').toString(), torn, 'the cut bytes are in the entry')
  t.equal(readFileSync(join(dir, String(rec.data.saved_as)), 'utf8'), torn, 'and in the side file')
  t.equal(statSync(join(dir, String(rec.data.saved_as))).mode & 0o777, 0o600)
  const r = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(r, { ok: true, torn_tail: null, recoveries: [{ seq: 6, line: 7, data: { bytes: 77 } }] })
})

t.test('complete lines at the end that do not verify are cut too (power cut: zeros, a damaged last line)', async (t) => {
  const { dir, id, c, last } = await small(t)
  const lines = readLines(last)
  const size = statSync(last).size
  editLine(last, lines.length, (l) => l.replace('"link":"udp4"', '"link":"udpX"'))
  appendFileSync(last, Buffer.concat([Buffer.alloc(300), Buffer.from('\n'), Buffer.alloc(100)]))
  const log = await VovLog.open({ dir, identity: id, now: c.now })
  await log.close()
  const rec = entriesOf(dir).find((e) => e.type === 'log_recovered')!
  const cutAt = size - Buffer.byteLength(lines[lines.length - 1]!) - 1
  t.match(rec.data, { offset: cutAt, bytes: size - cutAt + 401, lines: 2, reason: /^line 6: the signature does not verify/ })
  t.ok((await verifyLog(dir, { identityKey: id.identityKey })).ok)
})

t.test('damage before the last valid line is left in place for verify to report', async (t) => {
  const { dir, id, c, last } = await small(t)
  editLine(last, 3, (l) => l.replace('"link":"udp1"', '"link":"udp9"'))
  const before = readFileSync(last)
  const log = await VovLog.open({ dir, identity: id, now: c.now })
  log.append('after', {})
  await log.close()
  t.same(readFileSync(last).subarray(0, before.length), before, 'nothing cut')
  t.notOk(entriesOf(dir).some((e) => e.type === 'log_recovered'))
  t.match(await verifyLog(dir), { ok: false, error: { file: last, line: 3, reason: /does not verify/ } })
})

t.test('a new file left empty or torn by a crash is removed and recorded; the chain goes on in the file before', async (t) => {
  for (const content of ['', '{"v":1,"seq":6,"id":"']) {
    const { dir, id, c, last } = await small(t)
    const next = join(dir, fileNameFor(6))
    writeFileSync(next, content)
    const log = await VovLog.open({ dir, identity: id, now: c.now })
    t.equal(log.file, last)
    await log.close()
    t.notOk(existsSync(next), 'removed')
    const rec = entriesOf(dir).find((e) => e.type === 'log_recovered')!
    t.match(rec.data, { file: fileNameFor(6), offset: 0, bytes: content.length, removed_file: true, saved_as: content === '' ? '' : `${fileNameFor(6)}.cut-0` })
    t.ok((await verifyLog(dir, { identityKey: id.identityKey, requireGenesis: true })).ok)
  }
})

t.test('a torn genesis: a new chain, recording what was cut', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  await writeLog(dir, 0, { id })
  const first = logFiles(dir)[0]!
  truncateSync(first, 100)
  const log = await VovLog.open({ dir, identity: id })
  await log.close()
  const all = entriesOf(dir)
  t.same(all.map((e) => e.type), ['genesis', 'log_recovered'])
  t.match(all[1]!.data, { bytes: 100, removed_file: true })
  t.ok((await verifyLog(dir)).ok)
})

t.test('a log key file that is missing, readable by others, or ahead of the log: a fresh key is certified', async (t) => {
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['missing', (dir) => unlinkSync(join(dir, KEY_FILE)), /log-key\.json is missing/],
    ['mode 0644', (dir) => chmodSync(join(dir, KEY_FILE), 0o644), /accessible by other users \(mode 0644\)/],
    ['not JSON', (dir) => writeFileSync(join(dir, KEY_FILE), 'garbage', { mode: 0o600 }), /not valid JSON/],
    [
      'ahead of the log',
      (dir) => {
        const k = JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')) as Record<string, string>
        writeFileSync(join(dir, KEY_FILE), JSON.stringify({ ...k, seed: 'ee'.repeat(32) }), { mode: 0o600 })
      },
      /holds key [0-9a-f]{16}, but the key in force in the log is/,
    ],
  ]
  for (const [what, damage, reason] of cases) {
    const { dir, id, c } = await small(t)
    const before = JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')).key_id as string
    damage(dir)
    const log = await VovLog.open({ dir, identity: id, now: c.now })
    t.not(log.keyInfo().key_id, before, `${what}: a new key`)
    log.append('after', {})
    await log.close()
    t.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600)
    const rot = entriesOf(dir).find((e) => e.type === 'key_rotated')!
    t.match(rot.data, { previous_key_id: before, reason })
    t.match(await verifyLog(dir, { identityKey: id.identityKey }), { ok: true, key_rotations: 1 })
  }
})
