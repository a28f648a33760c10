/**
 * collectLogs: the logs of two gateways (one as its log directory, one as loose files renamed in
 * transit, mixed in one directory with the first's files too) merged into one timeline ordered by
 * timestamp, each gateway's chain verified on its own; the same files collected twice count once;
 * a tampered gateway is reported at its file and line and only its verified entries are kept; the
 * expected identities can be pinned.
 */
import t, { type Test } from 'tap'
import { copyFileSync, mkdirSync } from 'node:fs'
import { basename, join } from 'node:path'
import { collectLogs, verifyLog } from '../../appliance/vov/index.js'
import { clock, editLine, identity, tempDir, writeLog, T0 } from './helpers.js'

const A = identity(11)
const B = identity(12)

async function twoGateways(t: Test) {
  const root = tempDir(t)
  const aDir = join(root, 'a', 'vov')
  const bDir = join(root, 'b', 'vov')
  // A logs at odd seconds, B at even seconds (both start at T0): the timeline alternates.
  const ca = clock(T0 + 1000)
  const cb = clock(T0 + 2000)
  const aFiles = await writeLog(aDir, 30, { id: A, clock: { ...ca, advance: (ms: number) => ca.advance(ms * 2) }, maxFileBytes: 3000 })
  const bFiles = await writeLog(bDir, 30, { id: B, clock: { ...cb, advance: (ms: number) => cb.advance(ms * 2) }, maxFileBytes: 3000 })
  return { root, aDir, bDir, aFiles, bFiles }
}

t.test('two gateways merge into one timeline, each chain verified', async (t) => {
  const { root, aDir, bFiles } = await twoGateways(t)
  // B's files copied over SSH under other names, into one folder.
  const loose = join(root, 'from-b')
  mkdirSync(loose)
  const renamed = bFiles.map((f, i) => {
    const to = join(loose, `b-${bFiles.length - i}.jsonl`)
    copyFileSync(f, to)
    return to
  })
  const r = await collectLogs([aDir, ...renamed])
  t.equal(r.ok, true)
  t.equal(r.gateways.length, 2)
  const byNode = new Map(r.gateways.map((g) => [g.node_id, g]))
  t.match(byNode.get(A.nodeIdHex), { ok: true, starts_at_genesis: true, node_id: A.nodeIdHex })
  t.match(byNode.get(B.nodeIdHex), { ok: true, starts_at_genesis: true, node_id: B.nodeIdHex })
  const va = await verifyLog(aDir)
  t.equal(byNode.get(A.nodeIdHex)!.last_hash, va.last_hash, 'same result as verifying A alone')
  const total = r.gateways.reduce((n, g) => n + g.entries, 0)
  t.equal(r.entries.length, total, 'every verified entry of both')
  for (let i = 1; i < r.entries.length; i++) {
    if (r.entries[i - 1]!.ts > r.entries[i]!.ts) return t.fail(`out of order at ${i}`)
  }
  const ticks = r.entries.filter((e) => e.type === 'link_up')
  t.ok(
    ticks.every((e, i) => e.node_id === (i % 2 === 0 ? A.nodeIdHex : B.nodeIdHex)),
    'A and B alternate, as their clocks say',
  )
  const bEntry = r.entries.find((e) => e.node_id === B.nodeIdHex && e.type === 'link_up')!
  t.ok(renamed.includes(bEntry.file), 'annotated with the file it came from')
  t.ok(bEntry.line >= 1)
  t.match(bEntry, { seq: Number, id: String, ts: String, key: /^[0-9a-f]{16}$/, hash: /^[0-9a-f]{64}$/, data: { kind: 'udp' } })
})

t.test('files of both gateways in one folder are told apart by the node in line 1', async (t) => {
  const { root, aFiles, bFiles } = await twoGateways(t)
  const mixed = join(root, 'mixed')
  mkdirSync(mixed)
  for (const [p, f] of [...aFiles.map((f) => ['a', f]), ...bFiles.map((f) => ['b', f])] as [string, string][]) copyFileSync(f, join(mixed, `${p}-${basename(f)}`))
  const r = await collectLogs([mixed])
  t.equal(r.ok, false, 'a directory is read as vov-*.jsonl only')
  const r2 = await collectLogs(
    [...aFiles.map((f) => join(mixed, `a-${basename(f)}`)), ...bFiles.map((f) => join(mixed, `b-${basename(f)}`))],
  )
  t.equal(r2.ok, true)
  t.same(r2.gateways.map((g) => g.node_id).sort(), [A.nodeIdHex, B.nodeIdHex].sort())
})

t.test('the same gateway collected twice counts once', async (t) => {
  const { aDir, bDir } = await twoGateways(t)
  const once = await collectLogs([aDir, bDir])
  const twice = await collectLogs([aDir, bDir, aDir])
  t.equal(twice.ok, true)
  t.equal(twice.entries.length, once.entries.length)
  t.ok(twice.duplicates.length > 0, 'the copies are listed')
})

t.test('a tampered gateway: reported at its file and line, its verified entries kept, the other whole', async (t) => {
  const { aDir, bDir, bFiles } = await twoGateways(t)
  editLine(bFiles[1]!, 3, (l) => l.replace('"kind":"udp"', '"kind":"tcp"'))
  const r = await collectLogs([aDir, bDir])
  t.equal(r.ok, false)
  const a = r.gateways.find((g) => g.node_id === A.nodeIdHex)!
  const b = r.gateways.find((g) => g.node_id === B.nodeIdHex)!
  t.equal(a.ok, true)
  t.match(b, { ok: false, error: { file: bFiles[1], line: 3, reason: /does not verify/ } })
  t.equal(r.entries.filter((e) => e.node_id === B.nodeIdHex).length, b.entries, 'only B entries before the bad line')
  t.equal(r.entries.filter((e) => e.node_id === A.nodeIdHex).length, a.entries)
})

t.test('expected identities, unreadable paths, unattributable files', async (t) => {
  const { root, aDir, bDir } = await twoGateways(t)
  const pinned = await collectLogs([aDir, bDir], { identityKeys: [A.identityKey] })
  t.equal(pinned.ok, false)
  t.match(pinned.gateways.find((g) => g.node_id === B.nodeIdHex), { ok: false, error: { line: 1, reason: /not one of the expected identities/ } })
  const missing = await collectLogs([aDir, join(root, 'nope')])
  t.equal(missing.ok, false)
  t.match(missing.gateways.find((g) => g.node_id === null), { error: { file: join(root, 'nope'), reason: /cannot read/ } })
  t.match(await collectLogs([]), { ok: false, gateways: [], entries: [] })
  const limited = await collectLogs([aDir, bDir], { maxEntries: 5 })
  t.equal(limited.entries.length, 5)
})
