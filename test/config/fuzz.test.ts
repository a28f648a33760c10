/**
 * Property tests (fast-check) of the config file parser, which reads files people write by hand.
 *
 *  1. Robustness: random YAML-ish text, random JSON documents, random mutations of the valid
 *     example (values, keys, lines) never make parseConfig throw anything but ConfigFileError,
 *     and every problem is well formed: a path (a key path, or '' for a whole-file problem), a
 *     one-line message, a line inside the file, the file as named; the error's message is the
 *     problems one per line and its field the first problem's path.
 *  2. Accepted means valid: whatever parseConfig returns satisfies every rule (names, ranges,
 *     one driver block per link, the LoRa driver's own checks).
 *  3. Wrong kind, right place: replacing any value of the example by one of another kind (text
 *     for a number, a mapping for text, ...) is reported at exactly that key path.
 *
 * fast-check picks the seed; a failure prints it together with the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import { isAbsolute } from 'node:path'
import { isIP } from 'node:net'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { ConfigFileError, formatProblem } from '../../appliance/config/errors.js'
import { EXAMPLE_CONFIG } from '../../appliance/config/example.js'
import { parseConfig } from '../../appliance/config/load.js'
import { LIMITS, LINK_NAME_RE, LOG_LEVELS, NODE_NAME_RE, type GatewayConfig } from '../../appliance/config/schema.js'
import { radioConfigProblems, regionProblems, REGIONS } from '../../drivers/lora/radio.js'

const FILE = 'fuzz.yaml'
const RUNS = 1500
/** Longest one parse may take, ms (a 1 MiB file is the most loadConfig reads; these are small). */
const MAX_MS = 250

type Outcome = { ok: true; cfg: GatewayConfig } | { ok: false; err: ConfigFileError }

/** parseConfig, checking everything that must hold of any outcome. */
function run(text: string): Outcome {
  const started = performance.now()
  let out: Outcome
  try {
    out = { ok: true, cfg: parseConfig(text, FILE) }
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw new Error(`threw ${String(err)} for ${JSON.stringify(text.slice(0, 200))}`, { cause: err })
    out = { ok: false, err }
  }
  const ms = performance.now() - started
  if (ms > MAX_MS) {
    // A busy machine (GC, other test files) can stall one call: slow twice in a row is the parser.
    const again = performance.now()
    try {
      parseConfig(text, FILE)
    } catch {}
    const ms2 = performance.now() - again
    if (ms2 > MAX_MS) throw new Error(`took ${ms.toFixed(0)} ms, then ${ms2.toFixed(0)} ms`)
  }
  if (out.ok) checkAccepted(out.cfg)
  else checkProblems(out.err, text)
  return out
}

const PATH_RE = /^(?:[A-Za-z_][A-Za-z0-9_-]*|\[".*"\])(?:\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\]|\[".*"\])*$/

function checkProblems(err: ConfigFileError, text: string): void {
  const lines = text.split('\n').length
  if (err.problems.length === 0) throw new Error('no problems')
  for (const p of err.problems) {
    if (typeof p.path !== 'string' || (p.path !== '' && !PATH_RE.test(p.path))) throw new Error(`bad path ${JSON.stringify(p.path)}`)
    if (typeof p.message !== 'string' || p.message.length === 0 || p.message.includes('\n')) throw new Error(`bad message ${JSON.stringify(p.message)}`)
    if (p.line !== null && !(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines)) throw new Error(`line ${p.line} of ${lines}: ${formatProblem(p)}`)
    if (p.file !== FILE) throw new Error(`file ${p.file}`)
    const f = formatProblem(p)
    if (p.path !== '' && !f.endsWith(` (${FILE}:${p.line})`)) throw new Error(`format ${f}`)
  }
  if (err.message !== err.problems.map(formatProblem).join('\n')) throw new Error('message is not the problems, one per line')
  if (err.field !== err.problems[0]!.path) throw new Error('field is not the first path')
  if (err.code !== 'ECONFIG') throw new Error(`code ${err.code}`)
}

function inRange(v: number, [lo, hi]: readonly [number, number]): boolean {
  return v >= lo && v <= hi
}

/** Every rule of the format holds of an accepted configuration. */
function checkAccepted(cfg: GatewayConfig): void {
  const fail = (why: string) => {
    throw new Error(`accepted but ${why}: ${JSON.stringify(cfg)}`)
  }
  if (!NODE_NAME_RE.test(cfg.node.name)) fail('bad node name')
  for (const dir of [cfg.stateDir, cfg.runtimeDir]) if (dir !== undefined && !isAbsolute(dir)) fail('a relative directory')
  if (cfg.links.length === 0) fail('no links')
  const names = new Set<string>()
  for (const l of cfg.links) {
    if (!LINK_NAME_RE.test(l.name) || names.has(l.name)) fail(`link name ${l.name}`)
    names.add(l.name)
    if (typeof l.enabled !== 'boolean' || !Number.isSafeInteger(l.budgetBytesPerS) || !inRange(l.budgetBytesPerS, LIMITS.budgetBytesPerS)) fail('link basics')
    const blocks = [l.udp, l.ethernet, l.rawIp, l.lora].filter((b) => b !== undefined)
    if (blocks.length !== 1) fail('not exactly one driver block')
    switch (l.driver) {
      case 'udp':
        if (!isIP(l.udp.host) || !Number.isInteger(l.udp.port) || !inRange(l.udp.port, LIMITS.port)) fail('udp host/port')
        if (l.udp.mtu !== undefined && !inRange(l.udp.mtu, LIMITS.udpMtu)) fail('udp mtu')
        if (l.udp.interface !== undefined && Buffer.byteLength(l.udp.interface) > 15) fail('ifname')
        break
      case 'ethernet':
        if (l.ethernet.interface.length === 0 || Buffer.byteLength(l.ethernet.interface) > 15) fail('ifname')
        break
      case 'raw_ip':
        if (l.rawIp.peers.some((p) => isIP(p) !== 4)) fail('raw_ip peers')
        if (l.rawIp.interface === undefined && l.rawIp.address === undefined) fail('raw_ip with neither interface nor address')
        if (l.rawIp.peers.length === 0 && l.rawIp.broadcast === undefined) fail('raw_ip with neither peers nor broadcast')
        break
      case 'lora': {
        const { radio, region, timeScale, port } = l.lora
        if (radioConfigProblems(radio).length > 0) fail('radio config the driver refuses')
        const r = REGIONS[region]
        if (r === undefined || regionProblems(radio, r).length > 0) fail('radio outside its region')
        if (!(timeScale > 0 && timeScale <= 1) || !isAbsolute(port)) fail('lora timeScale/port')
        break
      }
      default:
        fail('unknown driver')
    }
  }
  const ports = cfg.links.flatMap((l) => (l.udp !== undefined && l.udp.port !== 0 ? [l.udp.port] : []))
  if (new Set(ports).size !== ports.length) fail('two UDP links on one port')
  const { mesh, store, logging } = cfg
  if (!inRange(mesh.announceIntervalMs / 1000, LIMITS.announceIntervalS) || !inRange(mesh.hopLimit, LIMITS.hopLimit)) fail('mesh')
  if (!inRange(store.maxMessages, LIMITS.maxMessages) || !inRange(store.maxBytes, LIMITS.maxBytes) || !inRange(store.ttlMs / 1000, LIMITS.ttlS)) fail('store')
  if (!LOG_LEVELS.includes(logging.level)) fail('logging')
}

// ---------------------------------------------------------------------------------------------
// Generators

const TOKENS = [
  ...['links', 'name', 'udp', 'lora', 'ethernet', 'raw_ip', 'port', 'host', 'peers', 'mesh', 'hop_limit', 'node', 'spreading_factor', 'region', 'EU868', 'a', 'udp0'],
  ...[':', ': ', '-', '- ', ' ', '  ', '\n', '\n  ', '\n    ', '\t', '[', ']', '{', '}', ',', '#', '"', "'", '|', '>', '?', '&a ', '*a', '&b ', '*b', '<<: ', 'x-a: ', '!!str ', '!!int ', '!x ', '---', '...', '%YAML 1.2\n', '\\', '\r\n', '\u00e9', '\uFEFF'],
  ...['0', '1', '-1', '13', '47800', '65536', '0x12', '1e3', '.inf', '.nan', 'true', 'yes', 'null', '~', '""', '10.0.0.1:1', '/dev/x'],
]

const yamlish = fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }).map((ts) => ts.join(''))

const EXAMPLE = parseYaml(EXAMPLE_CONFIG) as Record<string, unknown>

type Path = Array<string | number>

/** Every value in `v` below the root, with its path. */
function allPaths(v: unknown, prefix: Path = []): Array<{ path: Path; value: unknown }> {
  const out: Array<{ path: Path; value: unknown }> = []
  if (Array.isArray(v)) v.forEach((x, i) => out.push({ path: [...prefix, i], value: x }, ...allPaths(x, [...prefix, i])))
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push({ path: [...prefix, k], value: x }, ...allPaths(x, [...prefix, k]))
  return out
}

const PATHS = allPaths(EXAMPLE)

function formatPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('')
}

function getParent(root: unknown, path: Path): Record<string | number, unknown> {
  let cur = root as Record<string | number, unknown>
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>
  return cur
}

/** A value of another kind than `v`: text for numbers and booleans, a mapping for text and lists, text for mappings. */
function otherKind(v: unknown): unknown {
  if (typeof v === 'number' || typeof v === 'boolean') return 'x!'
  if (typeof v === 'string' || Array.isArray(v)) return { a: 1 }
  return 'x!'
}

const edgeValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('', ' ', '0', 'x'.repeat(300), -1, 0, 1, 2 ** 53, -(2 ** 31), 0.5, 1e308, Number.NaN, Infinity, null, true, false, [], {}, 'EU868', 'rnode', 'udp0', '10.0.0.1:47800', '239.1.1.1', 'ff02::1', '/dev/ttyACM0'),
  fc.double(),
  fc.integer(),
)

type Mutation =
  | { op: 'set'; at: number; value: unknown }
  | { op: 'delete'; at: number }
  | { op: 'addKey'; at: number; key: string; value: unknown }
  | { op: 'renameKey'; at: number; key: string }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(PATHS.length - 1), value: edgeValue }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(PATHS.length - 1) }),
  fc.record({ op: fc.constant('addKey' as const), at: fc.nat(PATHS.length - 1), key: fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('udp', 'lora', 'name', 'port', 'sf', 'links')), value: edgeValue }),
  fc.record({ op: fc.constant('renameKey' as const), at: fc.nat(PATHS.length - 1), key: fc.string({ maxLength: 20 }) }),
)

/** Applies `m` to `root` in place: `m.at` picks among the values `root` has now. */
function mutate(root: unknown, m: Mutation): void {
  const paths = allPaths(root)
  if (paths.length === 0) return
  const { path } = paths[m.at % paths.length]!
  const parent = getParent(root, path)
  const last = path[path.length - 1]!
  switch (m.op) {
    case 'set':
      parent[last] = m.value
      break
    case 'delete':
      if (Array.isArray(parent)) parent.splice(last as number, 1)
      else delete parent[last]
      break
    case 'addKey': {
      const target = parent[last]
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[m.key] = m.value
      else parent[last] = { [m.key]: m.value }
      break
    }
    case 'renameKey':
      if (!Array.isArray(parent) && m.key !== last) {
        parent[m.key] = parent[last]
        delete parent[last]
      }
      break
  }
}

// ---------------------------------------------------------------------------------------------

t.test('the example is accepted and passes the oracle', async (t) => {
  const out = run(EXAMPLE_CONFIG)
  t.equal(out.ok, true)
  t.ok(PATHS.length > 50, `${PATHS.length} values to mutate`)
})

t.test('random YAML-ish text: ConfigFileError or a valid config, nothing else', async (t) => {
  fc.assert(fc.property(yamlish, (text) => void run(text)), { numRuns: RUNS })
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => void run(text)), { numRuns: RUNS })
  t.pass()
})

t.test('random JSON documents, and random JSON under the top-level keys', async (t) => {
  fc.assert(fc.property(fc.jsonValue(), (v) => void run(JSON.stringify(v))), { numRuns: RUNS })
  const section = fc.record(
    {
      node: fc.jsonValue({ maxDepth: 2 }),
      links: fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.array(fc.dictionary(fc.constantFrom('name', 'udp', 'lora', 'ethernet', 'raw_ip', 'enabled'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 4 })),
      mesh: fc.jsonValue({ maxDepth: 2 }),
      store: fc.jsonValue({ maxDepth: 2 }),
      logging: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: [] },
  )
  fc.assert(fc.property(section, (v) => void run(stringifyYaml(v))), { numRuns: RUNS })
  t.pass()
})

t.test('mutations of the valid example: ConfigFileError with good problems, or a config that passes the oracle', async (t) => {
  let rejected = 0
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (ms) => {
      const doc = structuredClone(EXAMPLE)
      for (const m of ms) mutate(doc, m)
      const out = run(stringifyYaml(doc))
      if (!out.ok) rejected++
    }),
    { numRuns: RUNS },
  )
  t.ok(rejected > RUNS / 4, `${rejected} of ${RUNS} rejected`)
})

t.test('a value of the wrong kind is reported at exactly its key path', async (t) => {
  fc.assert(
    fc.property(fc.nat(PATHS.length - 1), (i) => {
      const { path, value } = PATHS[i]!
      const root = structuredClone(EXAMPLE)
      getParent(root, path)[path[path.length - 1]!] = otherKind(value)
      const out = run(stringifyYaml(root))
      if (out.ok) throw new Error(`${formatPath(path)} = ${JSON.stringify(otherKind(value))} was accepted`)
      const want = formatPath(path)
      if (!out.err.problems.some((p) => p.path === want)) throw new Error(`no problem at ${want}: ${out.err.message}`)
    }),
    { numRuns: Math.min(RUNS, PATHS.length * 4) },
  )
  // And every one of them, not just those fast-check picked.
  for (const { path, value } of PATHS) {
    const root = structuredClone(EXAMPLE)
    getParent(root, path)[path[path.length - 1]!] = otherKind(value)
    const out = run(stringifyYaml(root))
    t.ok(!out.ok && out.err.problems.some((p) => p.path === formatPath(path)), formatPath(path))
  }
})

t.test('text mutations of the example: lines dropped, doubled, swapped; characters inserted', async (t) => {
  const lines = EXAMPLE_CONFIG.split('\n')
  const op = fc.oneof(
    fc.record({ kind: fc.constant('drop' as const), i: fc.nat(lines.length - 1) }),
    fc.record({ kind: fc.constant('double' as const), i: fc.nat(lines.length - 1) }),
    fc.record({ kind: fc.constant('swap' as const), i: fc.nat(lines.length - 1), j: fc.nat(lines.length - 1) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(EXAMPLE_CONFIG.length), s: fc.constantFrom(...TOKENS) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(EXAMPLE_CONFIG.length) }),
  )
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 4 }), (ops) => {
      let text = EXAMPLE_CONFIG
      for (const o of ops) {
        const ls = text.split('\n')
        if (o.kind === 'drop') ls.splice(o.i % ls.length, 1)
        else if (o.kind === 'double') ls.splice(o.i % ls.length, 0, ls[o.i % ls.length]!)
        else if (o.kind === 'swap') [ls[o.i % ls.length], ls[o.j % ls.length]] = [ls[o.j % ls.length]!, ls[o.i % ls.length]!]
        if (o.kind === 'insert') text = text.slice(0, o.at) + o.s + text.slice(o.at)
        else if (o.kind === 'cut') text = text.slice(0, o.at)
        else text = ls.join('\n')
      }
      run(text)
    }),
    { numRuns: RUNS },
  )
  t.pass()
})
