/**
 * `kairo-gw log verify | tail | collect`, run as the real binary (appliance/bin/kairo-gw.mjs) in
 * child processes against logs written by VovLog in temp state directories: exit codes (0 ok,
 * 1 nothing to verify, 2 usage, 4 does not verify), the first bad file:line on stderr, --json
 * reports, --anchor, tail's table, filters and raw JSON lines, --follow across a file rotation,
 * collect's summary, timeline and --out file, and --help.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadOrCreateIdentity } from '../../appliance/cli/state.js'
import { Identity } from '../../appliance/core/identity.js'
import { VovLog, type VerifyReport } from '../../appliance/vov/index.js'
import { until } from '../lib/until.js'
import { clock, editLine, identity, logFiles, readLines, tempDir, writeLines, writeLog } from './helpers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

interface Run {
  code: number
  stdout: string
  stderr: string
}

function bin(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** A state dir with an identity and a log of n entries (its own, as the daemon would write it). */
async function gateway(t: Test, n = 8, maxFileBytes?: number): Promise<{ stateDir: string; dir: string; id: Identity }> {
  const stateDir = tempDir(t, 'kv-cli-')
  const { identity: id } = loadOrCreateIdentity(stateDir)
  const dir = join(stateDir, 'vov')
  await writeLog(dir, n, { id, ...(maxFileBytes ? { maxFileBytes } : {}) })
  return { stateDir, dir, id }
}

t.test('log verify: the gateway\'s own log, ok, human and JSON', async (t) => {
  const { stateDir, id } = await gateway(t)
  const r = await bin(['log', 'verify'], { KAIRO_STATE_DIR: stateDir })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, new RegExp(`^${join(stateDir, 'vov')}: ok — 9 entries \\(seq 0\\.\\.8\\) in 1 file, from its genesis`))
  t.match(r.stdout, new RegExp(`identity key +${id.identityKey.toString('hex')} +\\(expected: this gateway's `))
  t.match(r.stdout, /anchor +--anchor 8:[0-9a-f]{64}/)
  const j = await bin(['log', 'verify', '--json', '--state-dir', stateDir])
  t.equal(j.code, 0)
  const rep = JSON.parse(j.stdout) as VerifyReport
  t.match(rep, { ok: true, entries: 9, node_id: id.nodeIdHex, identity_pinned: true })
})

t.test('log verify: a tampered log exits 4 naming the first bad file:line; --anchor catches a cut end', async (t) => {
  const { stateDir, dir } = await gateway(t)
  const [file] = logFiles(dir)
  const lines = readLines(file!)
  const r0 = await bin(['log', 'verify', '--json'], { KAIRO_STATE_DIR: stateDir })
  const anchor = JSON.parse(r0.stdout) as VerifyReport
  editLine(file!, 5, (l) => l.replace('"kind":"udp"', '"kind":"UDP"'))
  const r = await bin(['log', 'verify', dir])
  t.equal(r.code, 4)
  t.match(r.stderr, new RegExp(`^kairo-gw: log does not verify: ${file}:5: signature by log key [0-9a-f]{16} does not verify`))
  t.match(r.stdout, /DOES NOT VERIFY — 4 entries \(seq 0\.\.3\) verified before the error/)
  const j = await bin(['log', 'verify', dir, '--json'])
  t.equal(j.code, 4)
  t.match(JSON.parse(j.stdout), { ok: false, error: { file, line: 5, seq: 4 } })

  writeLines(file!, lines.slice(0, -2)) // untampered, but the last two entries cut
  const cut = await bin(['log', 'verify', dir])
  t.equal(cut.code, 0, 'a cut end alone is not visible')
  const anchored = await bin(['log', 'verify', dir, '--anchor', `${anchor.last_seq}:${anchor.last_hash}`])
  t.equal(anchored.code, 4)
  t.match(anchored.stderr, /the log ends at seq 6, but the anchor names seq 8: the end of the log was cut/)
})

t.test('log verify: the wrong identity, nothing to verify, bad options', async (t) => {
  const { dir } = await gateway(t)
  const other = await bin(['log', 'verify', dir, '--identity-key', identity(42).identityKey.toString('hex')])
  t.equal(other.code, 4)
  t.match(other.stderr, /:1: genesis: names identity key .* but the expected identity key is/)
  const missing = await bin(['log', 'verify', join(dir, 'nope')])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /nope: no such file or directory/)
  const empty = await bin(['log', 'verify', tempDir(t)])
  t.equal(empty.code, 1)
  t.match(empty.stderr, /no VoV log files/)
  const badAnchor = await bin(['log', 'verify', dir, '--anchor', '12:xyz'])
  t.equal(badAnchor.code, 2)
  t.match(badAnchor.stderr, /must be SEQ:HASH/)
})

t.test('log tail: a table, a type filter, the raw lines with --json', async (t) => {
  const { stateDir, dir } = await gateway(t, 12, 2500)
  const r = await bin(['log', 'tail', '-n', '3'], { KAIRO_STATE_DIR: stateDir })
  t.equal(r.code, 0, r.stderr)
  const rows = r.stdout.trimEnd().split('\n')
  t.match(rows[0], /^TIME +SEQ +TYPE +DATA$/)
  t.equal(rows.length, 4)
  t.match(rows[3], /^\d{4}-\d\d-\d\dT[\d:.]+Z +\d+ +link_up +link=udp11 kind=udp n=11$/)
  const files = logFiles(dir)
  t.ok(files.length > 1, 'several files')
  const all = files.flatMap((f) => readLines(f))
  const j = await bin(['log', 'tail', '-n', '100', '--json', '--state-dir', stateDir])
  t.same(j.stdout.trimEnd().split('\n'), all, 'every line, as stored, across files')
  const typed = await bin(['log', 'tail', '--type', 'genesis,file_opened', '--json'], { KAIRO_STATE_DIR: stateDir })
  const types = typed.stdout.trimEnd().split('\n').map((l) => (JSON.parse(l) as { type: string }).type)
  t.same(types, ['genesis', ...Array(files.length - 1).fill('file_opened')])
  const bad = await bin(['log', 'tail', '--type', 'Link-Up'], { KAIRO_STATE_DIR: stateDir })
  t.equal(bad.code, 2)
})

t.test('log tail --follow: prints entries as they are written, across a new file', async (t) => {
  const { stateDir, dir, id } = await gateway(t, 3)
  const child: ChildProcess = spawn(process.execPath, [BIN, 'log', 'tail', '-n', '1', '--follow', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KAIRO_STATE_DIR: stateDir } })
  t.teardown(() => void child.kill('SIGKILL'))
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  await until('the first line', 30_000, () => out.includes('"n":2'))
  const c = clock(Date.parse('2025-04-01T00:00:00Z'))
  const log = await VovLog.open({ dir, identity: id, now: c.now, maxFileBytes: 2000 })
  for (let i = 0; i < 12; i++) {
    c.advance(1000)
    log.append('followed', { i })
  }
  await log.close()
  t.ok(logFiles(dir).length > 1, 'the log moved on to a new file')
  await until('the last followed entry', 30_000, () => out.includes('"data":{"i":11}'))
  const types = out.trimEnd().split('\n').map((l) => (JSON.parse(l) as { type: string; seq: number }))
  const seqs = types.map((e) => e.seq)
  t.same(seqs, Array.from({ length: seqs.length }, (_, k) => seqs[0]! + k), 'every entry once, in order')
  t.ok(types.some((e) => e.type === 'file_opened'))
})

t.test('log collect: two gateways, summary and timeline, --out, --json, a bad one exits 4', async (t) => {
  const a = await gateway(t, 5)
  const b = await gateway(t, 5)
  const r = await bin(['log', 'collect', a.dir, ...logFiles(b.dir)])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, new RegExp(`${a.id.nodeIdHex}: ok — 6 entries`))
  t.match(r.stdout, new RegExp(`${b.id.nodeIdHex}: ok — 6 entries`))
  t.match(r.stdout, /TIME +NODE +SEQ +TYPE +DATA/)
  t.equal(r.stdout.split('\n').filter((l) => / link_up /.test(l)).length, 10)
  const out = join(tempDir(t), 'timeline.jsonl')
  const w = await bin(['log', 'collect', a.dir, b.dir, '--out', out, '--json'])
  t.equal(w.code, 0)
  t.match(JSON.parse(w.stdout), { ok: true, out, written: 12 })
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { node_id: string; ts: string })
  t.equal(lines.length, 12)
  t.same(new Set(lines.map((l) => l.node_id)), new Set([a.id.nodeIdHex, b.id.nodeIdHex]))
  t.equal(statSync(out).mode & 0o777, 0o600)
  editLine(logFiles(b.dir)[0]!, 2, (l) => l.replace('udp0', 'udp9'))
  const bad = await bin(['log', 'collect', a.dir, b.dir])
  t.equal(bad.code, 4)
  t.match(bad.stdout, new RegExp(`${b.id.nodeIdHex}: DOES NOT VERIFY at ${logFiles(b.dir)[0]}:2`))
  t.match(bad.stderr, /log does not verify/)
})

t.test('--help: examples and the exit codes', async (t) => {
  const v = await bin(['log', 'verify', '--help'])
  t.equal(v.code, 0)
  t.match(v.stdout, /Examples:/)
  t.match(v.stdout, /4 +the log does not verify/)
  const top = await bin(['log', '--help'])
  t.match(top.stdout, /verify/)
  t.match(top.stdout, /tail/)
  t.match(top.stdout, /collect/)
})
