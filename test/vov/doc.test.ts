/**
 * docs/vov-log.md against the code: the worked example's lines verify and say what the text
 * says (key ids, hashes, the anchor); its shell recipe verifies a signature with OpenSSL; the
 * independent Python verifier printed in the document agrees with verifyLog on a multi-file log
 * with key rotations and on tampered copies (same file and line); the report fields and the
 * event types the log writes itself are all documented.
 */
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Identity } from '../../appliance/core/identity.js'
import { RESERVED_TYPES, entryHash, verifyLog } from '../../appliance/vov/index.js'
import { editLine, identity, logFiles, readLines, tempDir, writeLines, writeLog } from './helpers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const DOC = readFileSync(join(ROOT, 'docs', 'vov-log.md'), 'utf8')

/** The fenced block after `<!-- marker -->`. */
function block(marker: string): string {
  const at = DOC.indexOf(`<!-- ${marker} -->`)
  if (at < 0) throw new Error(`docs/vov-log.md has no <!-- ${marker} --> block`)
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(DOC.slice(at))
  if (m === null) throw new Error(`no fenced block after ${marker}`)
  return m[1]!
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

const exampleId = Identity.fromSeed(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))

t.test('the worked example verifies and matches its description', async (t) => {
  const dir = tempDir(t)
  const text = block('example-log')
  writeFileSync(join(dir, 'vov-0000000000000000.jsonl'), text)
  const r = await verifyLog(dir, { identityKey: exampleId.identityKey })
  t.match(r, { ok: true, entries: 5, node_id: exampleId.nodeIdHex, key_rotations: 1, keys: ['bfe63d43ee189685', '723991a04b5e16cb'] })
  t.ok(DOC.includes(`node ID \`${exampleId.nodeIdHex}\``))
  t.ok(DOC.includes(exampleId.identityKey.toString('hex')))
  t.ok(DOC.includes(`\`4:${r.last_hash}\``), 'the anchor in the text')
  const lines = text.trimEnd().split('\n')
  const h1 = entryHash(Buffer.from(lines[0]!))
  t.ok(DOC.includes(`${h1}  -`), 'the sha256sum output in the text is line 1\'s hash')
  t.match(lines[1], `"prev":"${h1}"`)
})

t.test('the shell recipe verifies line 2 with OpenSSL', { skip: !(has('openssl') && has('xxd') && has('bash')) && 'needs openssl, xxd and bash' }, async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'vov-0000000000000000.jsonl'), block('example-log'))
  const out = execFileSync('bash', ['-e', '-c', block('example-shell')], { cwd: dir, encoding: 'utf8' })
  t.match(out, /Signature Verified Successfully/)
  const msg = readFileSync(join(dir, 'msg.bin'))
  t.equal(msg.length, 311)
  t.ok(DOC.includes(entryHash(msg)), 'the signed bytes\' SHA-256 in the text')
})

t.test('the Python verifier in the document agrees with verifyLog', { skip: !has('python3') && 'needs python3' }, async (t) => {
  const work = tempDir(t)
  const script = join(work, 'verify_vov.py')
  writeFileSync(script, block('verify-vov-py'))
  const py = (...paths: string[]) => spawnSync('python3', [script, ...paths], { encoding: 'utf8' })

  const ex = join(work, 'example')
  mkdirSync(ex)
  writeFileSync(join(ex, 'vov-0000000000000000.jsonl'), block('example-log'))
  const e = py(ex)
  t.equal(e.status, 0, e.stdout + e.stderr)
  t.equal(e.stdout.trim(), 'ok 5 entries, last seq 4, hash 603837615f6b1bbbf7afd6bcd6094049732aca3eb1ccfe8982a9fc4e583d150e')

  const base = join(work, 'base')
  await writeLog(base, 30, { id: identity(21), maxFileBytes: 2500, keyLifetimeMs: 7000 })
  const good = await verifyLog(base)
  t.ok(good.ok && good.files.length > 3 && good.key_rotations > 2, `${good.files.length} files, ${good.key_rotations} rotations`)
  const g = py(base)
  t.equal(g.stdout.trim(), `ok ${good.entries} entries, last seq ${good.last_seq}, hash ${good.last_hash}`)

  const tampers: [string, (files: string[]) => void][] = [
    ['changed data', (f) => editLine(f[1]!, 3, (l) => l.replace(/"n":(\d+)/, '"n":1$1'))],
    ['deleted line', (f) => writeLines(f[2]!, readLines(f[2]!).filter((_, i) => i !== 2))],
    ['swapped lines', (f) => {
      const l = readLines(f[1]!)
      ;[l[1], l[2]] = [l[2]!, l[1]!]
      writeLines(f[1]!, l)
    }],
    ['changed certificate', (f) => editLine(f[3]!, 1, (l) => l.replace('"previous_file":"', '"previous_file":"x'))],
    ['missing middle file', (f) => writeFileSync(f[2]!, '')],
  ]
  for (const [what, damage] of tampers) {
    const dir = join(work, what.replace(/ /g, '-'))
    mkdirSync(dir)
    for (const n of readdirSync(base)) copyFileSync(join(base, n), join(dir, n))
    damage(logFiles(dir))
    const r = await verifyLog(dir)
    t.equal(r.ok, false, `${what}: verifyLog fails`)
    const p = py(dir)
    t.equal(p.status, 1, `${what}: python fails`)
    if (r.error!.line > 0) t.match(p.stdout, `${r.error!.file}:${r.error!.line}:`, `${what}: same file and line (${r.error!.file}:${r.error!.line})`)
  }
})

t.test('every report field and every type the log writes itself is documented', async (t) => {
  const dir = tempDir(t)
  await writeLog(dir, 1)
  const r = await verifyLog(dir)
  for (const k of Object.keys(r)) t.ok(DOC.includes(k), `report field ${k}`)
  for (const ty of RESERVED_TYPES) t.ok(DOC.includes(`\`${ty}\``), `type ${ty}`)
})
