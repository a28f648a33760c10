/**
 * The VoV log writer on real files: a new chain (genesis, modes), appends and their checks,
 * buffering and flush, reopening (same chain, same key), key rotation by age (clock driven by the
 * test) and on demand, file rotation by size and by age with the chain crossing files, a write
 * failure that is retried, and a directory that belongs to another node.
 */
import t from 'tap'
import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { VovLog, verifyLog, KEY_FILE, parseLine, keyIdOf } from '../../appliance/vov/index.js'
import { clock, identity, logFiles, readLines, tempDir, writeLog, T0 } from './helpers.js'

const HOUR = 3600_000

function entries(dir: string) {
  return logFiles(dir).flatMap((f) =>
    readLines(f).map((l) => {
      const p = parseLine(Buffer.from(l))
      if (!p.ok) throw new Error(`${f}: ${p.reason}`)
      return p.entry
    }),
  )
}

t.test('a new log: genesis names the node, key and files are private, appends chain up', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const c = clock()
  const log = await VovLog.open({ dir, identity: id, now: c.now })
  t.equal(statSync(dir).mode & 0o777, 0o700, 'dir 0700')
  t.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600, 'key file 0600')
  t.equal(log.entries, 1, 'genesis only')
  t.equal(log.file, join(dir, 'vov-0000000000000000.jsonl'))
  c.advance(1500)
  const a = log.append('link_up', { link: 'udp0', kind: 'udp' })
  const b = log.append('peer_admitted', { node_id: 'ab'.repeat(16), key: 'cd'.repeat(32), text: 'ünïcode ✓ "quoted" \n newline' })
  t.match(a, { seq: 1, ts: '2025-03-01T00:00:01.500Z' })
  t.match(a.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  t.equal(b.seq, 2)
  t.not(a.id, b.id)
  t.equal(log.entries, 3)
  await log.close()
  t.equal(statSync(log.file).mode & 0o777, 0o600, 'log file 0600')

  const [g, e1, e2] = entries(dir)
  t.match(g, { seq: 0, type: 'genesis', key: 'identity', prev: '0'.repeat(64) })
  t.same(g!.data, { node_id: id.nodeIdHex, identity_key: id.identityKey.toString('hex'), file: 'vov-0000000000000000.jsonl', log_key: log.keyInfo() })
  t.equal(e1!.prev, g!.hash)
  t.equal(e2!.prev, e1!.hash)
  t.equal(e1!.key, log.keyInfo().key_id)
  t.equal(e2!.data.text, 'ünïcode ✓ "quoted" \n newline', 'data round-trips; the newline is escaped inside the line')
  t.equal(readLines(log.file).length, 3, 'one line per entry')

  const keyFile = JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')) as Record<string, string>
  t.equal(keyFile.key_id, log.keyInfo().key_id)
  t.equal(keyIdOf(Buffer.from(keyFile.public_key!, 'hex')), keyFile.key_id)

  const r = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(r, { ok: true, entries: 3, first_seq: 0, last_seq: 2, node_id: id.nodeIdHex, identity_pinned: true, starts_at_genesis: true, key_rotations: 0, torn_tail: null })
  t.equal(r.last_hash, e2!.hash)
  t.equal(r.first_ts, '2025-03-01T00:00:00.000Z')
  t.equal(r.last_ts, '2025-03-01T00:00:01.500Z')
})

t.test('append checks its arguments; oversized or unrepresentable data is summarised, not dropped', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const log = await VovLog.open({ dir, identity: identity(), now: clock().now })
  t.throws(() => log.append('Bad-Type', {}), TypeError)
  t.throws(() => log.append('', {}), TypeError)
  t.throws(() => log.append('x'.repeat(65), {}), TypeError)
  for (const reserved of ['genesis', 'file_opened', 'key_rotated', 'log_recovered']) t.throws(() => log.append(reserved, {}), /written by the log itself/)
  t.throws(() => log.append('x', null as unknown as Record<string, unknown>), /must be an object, got null/)
  t.throws(() => log.append('x', [] as unknown as Record<string, unknown>), /an array/)
  const big = log.append('big', { blob: 'x'.repeat(100_000) })
  const odd = log.append('odd', { n: 10n } as unknown as Record<string, unknown>)
  const fine = log.append('fine', { n: 1.5, neg: -0, big: 1e21, nested: { a: [1, null, true] } })
  await log.close()
  t.throws(() => log.append('late', {}), /closed/)
  const byseq = new Map(entries(dir).map((e) => [e.seq, e]))
  t.match(byseq.get(big.seq)!.data, { _truncated: { bytes: 100_011, sha256: /^[0-9a-f]{64}$/, head: /^\{"blob":"x+$/ } })
  t.match(byseq.get(odd.seq)!.data, { _unrepresentable: /BigInt/ })
  t.same(byseq.get(fine.seq)!.data, { n: 1.5, neg: 0, big: 1e21, nested: { a: [1, null, true] } })
  t.ok((await verifyLog(dir)).ok)
})

t.test('appends are buffered: on disk after the write delay, or at once with flush()', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const log = await VovLog.open({ dir, identity: identity(), writeDelayMs: 200 })
  const before = readLines(log.file).length
  log.append('a', {})
  t.equal(readLines(log.file).length, before, 'not written yet')
  t.ok(log.pendingBytesCount > 0)
  await log.flush()
  t.equal(readLines(log.file).length, before + 1, 'written by flush')
  t.equal(log.pendingBytesCount, 0)
  log.append('b', {})
  await new Promise((r) => setTimeout(r, 400))
  t.equal(readLines(log.file).length, before + 2, 'written by the timer')
  // Many appends at once: group-committed in a few rounds, in order.
  for (let i = 0; i < 5000; i++) log.append('burst', { i })
  await log.flush()
  const lines = readLines(log.file)
  t.equal(lines.length, before + 2 + 5000)
  t.match(lines[lines.length - 1], /"data":\{"i":4999\}/)
  await log.close()
  t.ok((await verifyLog(dir)).ok)
})

t.test('reopening continues the same chain with the same key', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const c = clock()
  await writeLog(dir, 5, { id, clock: c })
  const log1Key = JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')).key_id
  const log = await VovLog.open({ dir, identity: id, now: c.now })
  t.equal(log.entries, 6)
  t.equal(log.keyInfo().key_id, log1Key, 'same log key')
  c.advance(1000)
  t.equal(log.append('again', {}).seq, 6)
  await log.close()
  const all = entries(dir)
  t.same(all.map((e) => e.seq), [0, 1, 2, 3, 4, 5, 6])
  t.equal(all.filter((e) => e.key === 'identity').length, 1, 'no new certification: only genesis')
  t.notOk(all.some((e) => e.type === 'log_recovered'), 'nothing to recover after a clean close')
  const r = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(r, { ok: true, entries: 7, key_rotations: 0 })
})

t.test('the log key rotates when it is 24 h old (clock driven by the test), certified by the identity', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const c = clock()
  const log = await VovLog.open({ dir, identity: id, now: c.now })
  const k0 = log.keyInfo()
  t.same(k0, { key_id: k0.key_id, public_key: k0.public_key, created_at: '2025-03-01T00:00:00.000Z', expires_at: '2025-03-02T00:00:00.000Z' })
  c.advance(24 * HOUR - 1)
  log.append('before', {})
  t.equal(log.keyInfo().key_id, k0.key_id, 'not yet: 1 ms short of 24 h')
  c.advance(1)
  const after = log.append('after', {})
  const k1 = log.keyInfo()
  t.not(k1.key_id, k0.key_id, 'rotated at 24 h')
  t.equal(k1.created_at, '2025-03-02T00:00:00.000Z')
  t.equal(after.seq, 4, 'the file is 24 h old too: file_opened took seq 2, key_rotated seq 3')
  // And again, after a restart, with the key resumed from the key file.
  await log.close()
  const log2 = await VovLog.open({ dir, identity: id, now: c.now })
  t.equal(log2.keyInfo().key_id, k1.key_id)
  c.advance(24 * HOUR)
  log2.append('next_day', {})
  t.not(log2.keyInfo().key_id, k1.key_id, 'rotated again 24 h later')
  await log2.close()
  const v = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(v, { ok: true, key_rotations: 2, warnings: [] })
  t.same(v.keys, [k0.key_id, k1.key_id, log2.keyInfo().key_id])
})

t.test('key rotation by age across a restart, and on demand', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const c = clock()
  let log = await VovLog.open({ dir, identity: id, now: c.now, keyLifetimeMs: 2 * HOUR })
  const k0 = log.keyInfo()
  c.advance(HOUR)
  log.append('one', {})
  await log.close()
  log = await VovLog.open({ dir, identity: id, now: c.now, keyLifetimeMs: 2 * HOUR })
  t.equal(log.keyInfo().key_id, k0.key_id, 'resumed key')
  c.advance(HOUR)
  log.append('two', {})
  const k1 = log.keyInfo()
  t.not(k1.key_id, k0.key_id, '2 h after its creation, across the restart')
  c.advance(10)
  const r = log.rotateKey('admin')
  t.equal(r.previous_key_id, k1.key_id)
  t.not(r.key_id, k1.key_id)
  t.same(log.keyInfo(), { key_id: r.key_id, public_key: r.public_key, created_at: r.created_at, expires_at: r.expires_at })
  t.equal(JSON.parse(readFileSync(join(dir, KEY_FILE), 'utf8')).key_id, r.key_id, 'the key file holds the new key')
  t.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600)
  c.advance(10)
  log.append('three', {})
  await log.close()
  const all = entries(dir)
  const rotations = all.filter((e) => e.type === 'key_rotated')
  t.equal(rotations.length, 2)
  t.match(rotations[0]!.data, { previous_key_id: k0.key_id, log_key: { key_id: k1.key_id }, reason: /old/ })
  t.match(rotations[1]!.data, { previous_key_id: k1.key_id, log_key: { key_id: r.key_id }, reason: 'admin' })
  t.ok(rotations.every((e) => e.key === 'identity'), 'certified by the identity')
  t.equal(all.find((e) => e.type === 'three')!.key, r.key_id, 'later entries signed by the new key')
  const v = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(v, { ok: true, key_rotations: 2, keys: [k0.key_id, k1.key_id, r.key_id] })
})

t.test('files rotate by size; the chain crosses files; each file opens with file_opened', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const files = await writeLog(dir, 60, { id, maxFileBytes: 4096 })
  t.ok(files.length >= 5, `${files.length} files`)
  let prevLast: ReturnType<typeof entries>[number] | null = null
  for (const [i, f] of files.entries()) {
    t.ok(statSync(f).size <= 4096, `${f} within the size limit`)
    t.equal(statSync(f).mode & 0o777, 0o600)
    const lines = readLines(f).map((l) => {
      const p = parseLine(Buffer.from(l))
      if (!p.ok) throw new Error(p.reason)
      return p.entry
    })
    const first = lines[0]!
    t.equal(f.endsWith(`vov-${String(first.seq).padStart(16, '0')}.jsonl`), true, 'named by its first seq')
    if (i === 0) t.equal(first.type, 'genesis')
    else {
      t.equal(first.type, 'file_opened')
      t.match(first.data, { node_id: id.nodeIdHex, file: f.split('/').pop(), previous_file: files[i - 1]!.split('/').pop() })
      t.equal(first.prev, prevLast!.hash, 'links to the last entry of the previous file')
      t.equal(first.seq, prevLast!.seq + 1)
    }
    prevLast = lines[lines.length - 1]!
  }
  const r = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(r, { ok: true, entries: 61 + files.length - 1 })
  t.equal(r.files.length, files.length)
  // Each file verifies on its own (its first line certifies the key in force), from mid-chain.
  const alone = await verifyLog(files[2]!, { identityKey: id.identityKey })
  t.match(alone, { ok: true, starts_at_genesis: false })
  const strict = await verifyLog(files[2]!, { requireGenesis: true })
  t.match(strict, { ok: false, error: { file: files[2], line: 1, reason: /not at its genesis/ } })
})

t.test('files rotate by age; key and file rotating at once still verify', async (t) => {
  const dir = join(tempDir(t), 'vov')
  const id = identity()
  const c = clock()
  const log = await VovLog.open({ dir, identity: id, now: c.now, maxFileAgeMs: HOUR, keyLifetimeMs: HOUR })
  for (let i = 0; i < 10; i++) {
    c.advance(20 * 60_000)
    log.append('tick', { i })
  }
  await log.close()
  const files = logFiles(dir)
  t.ok(files.length >= 3, `${files.length} files`)
  const all = entries(dir)
  t.ok(all.filter((e) => e.type === 'key_rotated').length >= 3)
  const r = await verifyLog(dir, { identityKey: id.identityKey })
  t.match(r, { ok: true, warnings: [] })
})

t.test('a failed write is kept and retried; flush() rejects until it succeeds', async (t) => {
  // Where the second file starts, found with a twin log fed the same entries.
  const fill = (log: VovLog, dir: string) => {
    while (log.file === join(dir, 'vov-0000000000000000.jsonl')) log.append('fill', { pad: 'p'.repeat(300) })
  }
  const twinDir = join(tempDir(t), 'vov')
  const twin = await VovLog.open({ dir: twinDir, identity: identity(), maxFileBytes: 2048 })
  fill(twin, twinDir)
  const nextName = twin.file.split('/').pop()!
  await twin.close()

  const dir = join(tempDir(t), 'vov')
  const errors: Error[] = []
  const log = await VovLog.open({ dir, identity: identity(), maxFileBytes: 2048, onError: (e) => errors.push(e) })
  mkdirSync(join(dir, nextName)) // the second file's name is taken by a directory: opening it fails
  fill(log, dir)
  t.equal(log.file, join(dir, nextName))
  await t.rejects(log.flush(), /write failed/)
  t.ok(errors.length >= 1, 'onError heard')
  rmdirSync(join(dir, nextName))
  await log.flush()
  await log.close()
  t.ok((await verifyLog(dir)).ok, 'nothing lost, nothing doubled')
})

t.test('a directory holding another node\'s log is refused', async (t) => {
  const dir = join(tempDir(t), 'vov')
  await writeLog(dir, 2, { id: identity(1) })
  await t.rejects(VovLog.open({ dir, identity: identity(2) }), /belongs to the VoV log of another node/)
  t.ok((await verifyLog(dir)).ok, 'left as it was')
  const r = await verifyLog(dir, { identityKey: identity(2).identityKey })
  t.match(r, { ok: false, error: { line: 1, reason: /names identity key .* but the expected identity key is/ } })
})

t.test('options are checked', async (t) => {
  const dir = join(tempDir(t), 'vov')
  await t.rejects(VovLog.open({ dir, identity: identity(), keyLifetimeMs: 0 }), TypeError)
  await t.rejects(VovLog.open({ dir, identity: identity(), maxFileBytes: -1 }), TypeError)
  t.equal(T0, Date.parse('2025-03-01T00:00:00Z'))
})
