import t from 'tap'
import fc from 'fast-check'
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync, existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { IdentityFileError } from '../../appliance/identity/files.js'
import { NODE_INFO_FILE, isUuid, loadOrCreateNodeInfo, parseUuid, readNodeInfo, uuidProblem } from '../../appliance/identity/node-info.js'
import { arbUuid, tempDir } from './helpers.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')

t.test('first start generates a v4 UUID and keeps it; the file is 0600 in a 0700 directory', async (t) => {
  const dir = join(tempDir(t), 'state')
  const a = loadOrCreateNodeInfo(dir, {})
  t.equal(a.created, true)
  t.equal(a.source, 'generated')
  t.equal(a.file, join(dir, NODE_INFO_FILE))
  t.match(a.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.equal(a.changedFrom, undefined)
  t.equal(statSync(a.file).mode & 0o777, 0o600)
  t.equal(statSync(dir).mode & 0o777, 0o700)
  const stored = JSON.parse(readFileSync(a.file, 'utf8'))
  t.equal(stored.version, 1)
  t.equal(stored.uuid, a.uuid)
  t.equal(stored.source, 'generated')
  t.match(stored.created_at, /^\d{4}-\d\d-\d\dT/)
  const b = loadOrCreateNodeInfo(dir, {})
  t.same(b, { uuid: a.uuid, created: false, file: a.file, source: 'generated' })
  t.same(readdirSync(dir), [NODE_INFO_FILE], 'no temporary file left behind')
  t.same(readNodeInfo(dir), { uuid: a.uuid, source: 'generated', file: a.file })
  t.equal(readNodeInfo(join(dir, 'nothing')), undefined)
})

t.test('KAIRO_NODE_ID is the UUID (lower-cased), kept when the variable goes away', async (t) => {
  const dir = tempDir(t)
  const env = '6BA7B810-9DAD-11D1-80B4-00C04FD430C8'
  const a = loadOrCreateNodeInfo(dir, { envUuid: env, now: () => Date.UTC(2026, 0, 2) })
  t.same(a, { uuid: env.toLowerCase(), created: true, file: join(dir, NODE_INFO_FILE), source: 'KAIRO_NODE_ID' })
  t.equal(JSON.parse(readFileSync(a.file, 'utf8')).created_at, '2026-01-02T00:00:00.000Z')
  t.same(loadOrCreateNodeInfo(dir, {}), { uuid: env.toLowerCase(), created: false, file: a.file, source: 'KAIRO_NODE_ID' })
  t.same(loadOrCreateNodeInfo(dir, { envUuid: '' }), { uuid: env.toLowerCase(), created: false, file: a.file, source: 'KAIRO_NODE_ID' }, "'' is unset")
  t.same(loadOrCreateNodeInfo(dir, { envUuid: env.toLowerCase() }).changedFrom, undefined, 'the same UUID in another case is no change')
})

t.test('a different KAIRO_NODE_ID wins and says what it replaced', async (t) => {
  const dir = tempDir(t)
  const first = loadOrCreateNodeInfo(dir, {})
  const env = '0f8fad5b-d9cb-469f-a165-70867728950e'
  const b = loadOrCreateNodeInfo(dir, { envUuid: env, now: () => Date.UTC(2026, 5, 1) })
  t.same(b, { uuid: env, created: false, file: first.file, changedFrom: first.uuid, source: 'KAIRO_NODE_ID' })
  const stored = JSON.parse(readFileSync(first.file, 'utf8'))
  t.equal(stored.uuid, env)
  t.equal(stored.changed_from, first.uuid)
  t.equal(stored.changed_at, '2026-06-01T00:00:00.000Z')
  t.equal(stored.created_at, JSON.parse(JSON.stringify(stored)).created_at)
  t.equal(statSync(first.file).mode & 0o777, 0o600)
  t.same(loadOrCreateNodeInfo(dir, {}).uuid, env, 'the new one is kept')
  t.same(readdirSync(dir), [NODE_INFO_FILE])
})

t.test('a bad KAIRO_NODE_ID is an error naming the variable and the value; nothing is written', async (t) => {
  const dir = join(tempDir(t), 's')
  for (const bad of ['not-a-uuid', '{0f8fad5b-d9cb-469f-a165-70867728950e}', ' 0f8fad5b-d9cb-469f-a165-70867728950e', '00000000-0000-0000-0000-000000000000', '0f8fad5b-d9cb-069f-a165-70867728950e']) {
    t.throws(() => loadOrCreateNodeInfo(dir, { envUuid: bad }), { name: 'TypeError', message: new RegExp(`^KAIRO_NODE_ID=${JSON.stringify(bad).replace(/[{}]/g, '\\$&')} `) }, bad)
  }
  t.notOk(existsSync(dir), 'no state directory was created')
})

t.test('uuidProblem: RFC 4122/9562 text, versions 1..8, variant 10', async (t) => {
  const good = [
    '6ba7b810-9dad-11d1-80b4-00c04fd430c8', // v1
    '0f8fad5b-d9cb-469f-a165-70867728950e', // v4
    '0F8FAD5B-D9CB-469F-A165-70867728950E',
    '017f22e2-79b0-7cc3-98c4-dc0c0c07398f', // v7
    '886313e1-3b8a-5372-9b90-0c9aee199e5d', // v5
    '320c3d4d-cc00-875b-8ec9-32d5f69181c0', // v8
  ]
  for (const u of good) t.equal(uuidProblem(u), undefined, u)
  const bad: Array<[string, RegExp]> = [
    ['', /not a UUID/],
    ['0f8fad5bd9cb469fa16570867728950e', /not a UUID/],
    ['urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e', /not a UUID/],
    ['0f8fad5b-d9cb-469f-a165-70867728950', /not a UUID/],
    ['0f8fad5g-d9cb-469f-a165-70867728950e', /not a UUID/],
    ['00000000-0000-0000-0000-000000000000', /nil UUID/],
    ['FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', /max UUID/],
    ['0f8fad5b-d9cb-069f-a165-70867728950e', /version 0/],
    ['0f8fad5b-d9cb-969f-a165-70867728950e', /version 9/],
    ['0f8fad5b-d9cb-469f-7165-70867728950e', /variant digit 7/],
    ['0f8fad5b-d9cb-469f-c165-70867728950e', /variant digit c/],
  ]
  for (const [u, re] of bad) t.match(uuidProblem(u), re, u)
  t.equal(parseUuid('0F8FAD5B-D9CB-469F-A165-70867728950E'), '0f8fad5b-d9cb-469f-a165-70867728950e')
  t.throws(() => parseUuid('x', 'uuid'), /^uuid="x" is not a UUID/)
  fc.assert(fc.property(fc.uuid(), (u) => isUuid(u)))
  fc.assert(fc.property(arbUuid, (u) => isUuid(u) && isUuid(u.toUpperCase())))
})

t.test('a damaged node.json is an error naming the file and what is wrong, and is left as it was', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /node\.json: is empty; expected a JSON object$/],
    ['{"version":1,"uuid":"0f8fad5b-d9cb-469f-a165-7086772895', /node\.json: is not valid JSON: /],
    ['[1,2]', /node\.json: holds an array; expected a JSON object$/],
    ['"x"', /node\.json: holds the string "x"; expected a JSON object$/],
    ['{"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}', /node\.json: version: is missing; expected 1$/],
    ['{"version":2,"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}', /node\.json: version: is number 2; expected 1$/],
    ['{"version":1}', /node\.json: uuid: is missing$/],
    ['{"version":1,"uuid":42}', /node\.json: uuid: is number 42; expected a UUID string$/],
    ['{"version":1,"uuid":"0f8fad5b"}', /node\.json: uuid: "0f8fad5b" is not a UUID/],
    ['{"version":1,"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e","source":"me"}', /node\.json: source: is the string "me"; expected "KAIRO_NODE_ID" or "generated"$/],
    ['{"version":1,"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e","created_at":"yesterday"}', /node\.json: created_at: is the string "yesterday"; expected an ISO 8601 UTC timestamp$/],
  ]
  for (const [text, re] of cases) {
    const dir = tempDir(t)
    const file = join(dir, NODE_INFO_FILE)
    writeFileSync(file, text)
    const err = t.throws(() => loadOrCreateNodeInfo(dir, {}), IdentityFileError, text) as unknown as IdentityFileError
    t.match(err.message, re, text)
    t.ok(err.message.startsWith(file), 'names the file by its path')
    t.throws(() => loadOrCreateNodeInfo(dir, { envUuid: '0f8fad5b-d9cb-469f-a165-70867728950e' }), IdentityFileError, 'KAIRO_NODE_ID does not paper over a damaged file')
    t.equal(readFileSync(file, 'utf8'), text, 'untouched')
  }
  const dir = tempDir(t)
  writeFileSync(join(dir, NODE_INFO_FILE), Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))
  t.throws(() => loadOrCreateNodeInfo(dir, {}), /node\.json: is not UTF-8 text$/)
  const d2 = tempDir(t)
  mkdirSync(join(d2, NODE_INFO_FILE))
  t.throws(() => loadOrCreateNodeInfo(d2, {}), /node\.json: is not a regular file$/)
  const d3 = tempDir(t)
  writeFileSync(join(d3, 'elsewhere.json'), '{"version":1,"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}')
  symlinkSync(join(d3, 'elsewhere.json'), join(d3, NODE_INFO_FILE))
  t.throws(() => loadOrCreateNodeInfo(d3, {}), /node\.json: is a symbolic link; expected a regular file$/)
  const d4 = tempDir(t)
  writeFileSync(join(d4, NODE_INFO_FILE), `{"version":1,"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e","pad":"${'x'.repeat(70_000)}"}`)
  t.throws(() => loadOrCreateNodeInfo(d4, {}), /node\.json: is \d+ bytes, over the limit of 65536$/)
})

t.test('fuzz: any node.json content gives a valid UUID or an IdentityFileError naming the file', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, NODE_INFO_FILE)
  const valid = '{"version":1,"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e","source":"generated","created_at":"2026-01-01T00:00:00.000Z"}'
  const mutated = fc.tuple(fc.nat(valid.length), fc.nat(4), fc.string({ maxLength: 4 })).map(([at, del, ins]) => valid.slice(0, at) + ins + valid.slice(at + del))
  const anyJson = fc.jsonValue().map((v) => JSON.stringify(v))
  const objectish = fc.record({ version: fc.oneof(fc.constant(1), fc.jsonValue()), uuid: fc.oneof(arbUuid, fc.uuid(), fc.jsonValue()), source: fc.oneof(fc.constantFrom('generated', 'KAIRO_NODE_ID'), fc.jsonValue()) }, { requiredKeys: [] }).map((o) => JSON.stringify(o))
  let ok = 0
  let refused = 0
  fc.assert(
    fc.property(fc.oneof(mutated, anyJson, objectish, fc.string()), (text) => {
      writeFileSync(file, text)
      try {
        const got = loadOrCreateNodeInfo(dir, {})
        ok++
        return isUuid(got.uuid) && got.uuid === got.uuid.toLowerCase() && !got.created
      } catch (err) {
        refused++
        return err instanceof IdentityFileError && err.message.startsWith(`${file}: `) && readFileSync(file, 'utf8') === text
      }
    }),
    { numRuns: 600 },
  )
  t.ok(ok > 0 && refused > 0, `both outcomes seen (ok ${ok}, refused ${refused})`)
})

t.test('processes starting at once agree on one generated UUID', async (t) => {
  const dir = tempDir(t)
  const script = `import { loadOrCreateNodeInfo } from ${JSON.stringify(join(ROOT, 'appliance/identity/node-info.ts'))}; const r = loadOrCreateNodeInfo(process.argv[1], {}); process.stdout.write(JSON.stringify(r))`
  const run = (): Promise<{ uuid: string; created: boolean }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script, dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => void (out += d.toString()))
      child.stderr.on('data', (d: Buffer) => void (err += d.toString()))
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}: ${err}`))))
    })
  const results = await Promise.all([run(), run(), run(), run()])
  const uuids = new Set(results.map((r) => r.uuid))
  t.equal(uuids.size, 1, 'one UUID')
  t.equal(results.filter((r) => r.created).length, 1, 'created by exactly one')
  t.equal(loadOrCreateNodeInfo(dir, {}).uuid, results[0]!.uuid)
  t.same(readdirSync(dir), [NODE_INFO_FILE], 'no temporary files left')
})
