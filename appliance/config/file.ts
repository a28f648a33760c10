/**
 * What the config file (load.ts) and policy files (../policy/policy.ts) share: reading a file
 * with a size cap, the words of their problems, and the walk of their YAML validators
 * (DocChecker, DocSection: each file's Section only says which entries a mapping has). One copy,
 * so that both kinds of file are read and reported on alike.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Scalar, type YAMLError, type YAMLMap } from 'yaml'
import type { KairoErrorOptions } from '../core/errors.js'
import type { ConfigFileProblem } from './errors.js'

// ---------------------------------------------------------------------------------------------
// Reading

/** Why a file could not be read, in one line. */
export function readProblem(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
      return 'cannot read: no such file (ENOENT)'
    case 'EACCES':
    case 'EPERM':
      return `cannot read: permission denied (${err.code})`
    case 'EISDIR':
      return 'cannot read: it is a directory (EISDIR)'
    default:
      return `cannot read: ${err.message}`
  }
}

/** Reads at most `maxBytes` + 1 bytes (a device such as /dev/zero never ends). */
export function readBounded(file: string, maxBytes: number): Buffer {
  const fd = openSync(file, 'r')
  try {
    const buf = Buffer.alloc(maxBytes + 1)
    let n = 0
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null)
      if (got === 0) break
      n += got
      if (n === buf.length) break
    }
    return buf.subarray(0, n)
  } finally {
    closeSync(fd)
  }
}

/** ConfigFileError, or a subclass of it such as PolicyError. */
type FileErrorClass = new (file: string, problems: readonly ConfigFileProblem[], options?: KairoErrorOptions) => Error

/**
 * The bytes of a file of at most `maxBytes`. A file that cannot be read, or is larger, is thrown
 * as a `FileError` naming it: `is larger than 1048576 bytes; is it really <what>?`.
 */
export function readCapped(file: string, maxBytes: number, what: string, FileError: FileErrorClass): Buffer {
  let bytes: Buffer
  try {
    bytes = readBounded(file, maxBytes)
  } catch (err) {
    throw new FileError(file, [{ path: '', message: readProblem(err as NodeJS.ErrnoException), line: null, file }], { cause: err })
  }
  if (bytes.length > maxBytes) throw new FileError(file, [{ path: '', message: `is larger than ${maxBytes} bytes; is it really ${what}?`, line: null, file }])
  return bytes
}

// ---------------------------------------------------------------------------------------------
// Problems, key paths and values in messages

/** Names people write for keys (the CLI's option names among them) and the key they mean. */
const KEY_ALIASES: Readonly<Record<string, string>> = {
  sf: 'spreading_factor',
  bw: 'bandwidth_khz',
  cr: 'coding_rate',
  freq: 'frequency_mhz',
  power: 'tx_power_dbm',
  sync: 'sync_word',
  preamble: 'preamble_symbols',
  baud: 'baud_rate',
  bind: 'host',
  address: 'host',
  iface: 'interface',
  dev: 'port',
  device: 'port',
  path: 'port',
  neighbours: 'peers',
  neighbors: 'peers',
  multicast: 'group',
  budget: 'budget_bytes_per_s',
  ttl: 'ttl_s',
  interval: 'announce_interval_s',
  announce_interval: 'announce_interval_s',
  announce_interval_ms: 'announce_interval_s',
  hops: 'hop_limit',
  ttl_ms: 'ttl_s',
  log_level: 'level',
  statedir: 'state_dir',
  runtimedir: 'runtime_dir',
  timezone: 'time_zone',
  tz: 'time_zone',
  policy: 'policy_file',
  allowlist: 'allow',
  id: 'node_id',
  public_key: 'key',
}

/** Edit distance with transpositions (optimal string alignment): `prot` is 1 from `port`. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** The known key `name` was probably meant to be, if any. */
export function suggestKey(name: string, keys: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '')
  const alias = KEY_ALIASES[name.toLowerCase()]
  if (alias !== undefined && keys.includes(alias)) return alias
  const n = norm(name)
  if (n.length === 0 || n.length > 64) return undefined
  let best: string | undefined
  let bestScore = Infinity
  for (const k of keys) {
    const kn = norm(k)
    if (kn === n) return k
    let score = editDistance(n, kn)
    if (score > Math.max(1, Math.floor(kn.length / 3))) score = Infinity
    // `frequency` for frequency_mhz, `peers_list` for peers.
    if (n.length >= 3 && (kn.startsWith(n) || n.startsWith(kn))) score = Math.min(score, 0.5)
    if (score < bestScore) {
      bestScore = score
      best = k
    }
  }
  return bestScore === Infinity ? undefined : best
}

/** A text as a message shows it: in double quotes, cut at 60 characters. */
export const quoted = (s: string) => JSON.stringify(s.length > 60 ? s.slice(0, 60) + '…' : s)

/** The key path of `key` in the mapping at `path`: `links[0].lora`, `peers["odd key"]`. */
export function childPath(path: string, key: string): string {
  const shown = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key.length > 40 ? key.slice(0, 40) + '…' : key)
  if (!/^[A-Za-z_]/.test(shown)) return `${path}[${shown}]`
  return path === '' ? shown : `${path}.${shown}`
}

/** How a value reads in a message: `"abc"`, `12`, `true`, `a list`, `a mapping`, `nothing`. */
export function describe(node: unknown): string {
  if (isMap(node)) return 'a mapping'
  if (isSeq(node)) return 'a list'
  if (isScalar(node)) {
    const v = node.value
    if (v === null || v === undefined) return 'nothing'
    if (typeof v === 'string') return quoted(v)
    return String(v)
  }
  return 'nothing'
}

/** No value: absent, `key:` or `key: null`. */
export function isNull(node: unknown): boolean {
  return node === null || node === undefined || (isScalar(node) && (node.value === null || node.value === undefined))
}

/**
 * A YAML parser error or warning in one line, `<kind>: ...`. `document` names the kind of file
 * (`a config file`); with `nesting`, running out of stack reads as nesting too deep.
 */
export function yamlMessage(e: YAMLError, text: string, opts: { document: string; kind?: 'YAML' | 'JSON'; nesting?: boolean }): string {
  const kind = opts.kind ?? 'YAML'
  if (e.code === 'MULTIPLE_DOCS') return `${kind}: the file holds more than one document (a --- line); ${opts.document} is one document`
  if (e.code === 'DUPLICATE_KEY') {
    const key = /^[^:\n]{0,60}/.exec(text.slice(e.pos[0]))![0].trim().replace(/^(["'])(.*)\1$/, '$2')
    return `${kind}: the key ${JSON.stringify(key)} appears twice in the same mapping`
  }
  // The parser is recursive; it reports running out of stack as an error of the document.
  if (opts.nesting && /call stack/i.test(e.message)) return `${kind}: the file nests too deeply (lists or mappings inside each other)`
  return `${kind}: ${e.message.split('\n')[0]!}`
}

/** In file order (those without a line last); beyond `max`, one line counts the rest. */
export function sortProblems(problems: ConfigFileProblem[], max = Infinity): ConfigFileProblem[] {
  const sorted = problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i)
    .map(({ p }) => p)
  if (sorted.length <= max) return sorted
  const next = sorted[max]!
  return [...sorted.slice(0, max), { path: '', message: `${sorted.length - max} more problems from here on are not listed`, line: next.line, file: next.file }]
}

// ---------------------------------------------------------------------------------------------
// Walking the document

/** What an alias whose anchor does not exist stands for (a problem where it is used). */
export const UNRESOLVED = Symbol('unresolved alias')

/** A value, the node to take its line from (the alias where one was used), and its key path. */
export interface Val {
  node: unknown
  at: unknown
  path: string
}

/** Collects the problems of one document, each with its key path and line. */
export class DocChecker {
  readonly problems: ConfigFileProblem[] = []

  constructor(
    readonly doc: Document,
    readonly lc: LineCounter,
    readonly file: string,
    /** The line of a problem whose node has none. */
    readonly noLine: number | null = null,
  ) {}

  lineOf(at: unknown): number | null {
    if (typeof at === 'number') return at
    const range = (at as { range?: unknown } | null | undefined)?.range
    if (!Array.isArray(range) || typeof range[0] !== 'number') return null
    return this.lc.linePos(range[0]).line
  }

  add(path: string, message: string, at: unknown): void {
    this.problems.push({ path, message, line: this.lineOf(at) ?? this.noLine, file: this.file })
  }

  /**
   * The node an alias stands for; other nodes as they are. An alias whose anchor does not exist
   * is a problem at `path`, and gives UNRESOLVED.
   */
  deref(node: unknown, path: string): unknown {
    if (!isAlias(node)) return node
    const target = node.resolve(this.doc)
    if (target !== undefined) return target
    this.add(path, `*${node.source} names no anchor: &${node.source} must come before it`, node)
    return UNRESOLVED
  }
}

/** A key of a mapping, as written, and its value node. */
export interface MapEntry {
  name: string
  key: unknown
  value: unknown
}

/**
 * One mapping of a document with the keys it may have. Its entries (a subclass's `entries()`)
 * are taken in when it is built, unknown keys reported; the typed readers report wrong types and
 * ranges and return undefined for a bad or absent value.
 */
export abstract class DocSection<C extends DocChecker = DocChecker> {
  /** Keys written, with the key node (also those with an empty value). */
  protected readonly keyNodes = new Map<string, unknown>()
  /** Keys with a value. */
  protected readonly values = new Map<string, Val>()
  /** Keys whose value was reported as bad. */
  readonly bad = new Set<string>()
  /** The section itself is not a mapping (reported): its keys are not "missing". */
  readonly broken: boolean

  constructor(
    readonly c: C,
    readonly path: string,
    node: unknown,
    /** Line of the section, for keys that are missing. */
    readonly at: unknown,
    readonly keys: readonly string[],
    /** Keys starting with x- are ignored (a place for &anchors), as in docker-compose files. */
    extensions = false,
  ) {
    this.broken = !isNull(node) && !isMap(node)
    if (!isMap(node)) return
    for (const { name, key, value: raw } of this.entries(node)) {
      if (extensions && name.startsWith('x-')) continue
      if (!keys.includes(name)) {
        const hint = suggestKey(name, keys)
        c.add(childPath(path, name), hint === undefined ? `unknown key (known keys here: ${keys.join(', ')})` : `unknown key (did you mean "${hint}"?)`, key)
        continue
      }
      this.keyNodes.set(name, key)
      const value = c.deref(raw, childPath(path, name))
      if (value === UNRESOLVED) this.bad.add(name)
      else if (!isNull(value)) this.values.set(name, { node: value, at: raw ?? key, path: childPath(path, name) })
    }
  }

  /**
   * The top-level mapping of a document, keys starting with x- allowed; undefined when the
   * document is empty (the problem `empty`, at line 1) or not a mapping (reported).
   */
  static top<C extends DocChecker, S extends DocSection<C>>(
    this: new (c: C, path: string, node: unknown, at: unknown, keys: readonly string[], extensions?: boolean) => S,
    c: C,
    root: unknown,
    keys: readonly string[],
    empty: string,
  ): S | undefined {
    if (isNull(root)) {
      c.add('', empty, 1)
      return undefined
    }
    if (!isMap(root)) {
      c.add('', `the top level must be a mapping of keys (${keys.join(', ')}), got ${describe(root)}`, root)
      return undefined
    }
    return new this(c, '', root, root, keys, true)
  }

  /** The entries of `map` to take in, in order (taken in as they come); keyName() gives their names. */
  protected abstract entries(map: YAMLMap): Iterable<MapEntry>

  /** The name of a key node (an alias resolved), or undefined when it has none (reported). */
  protected keyName(key: unknown): { name: string; node: Scalar } | undefined {
    const keyNode = this.c.deref(key, this.path)
    if (keyNode === UNRESOLVED) return undefined
    if (!isScalar(keyNode) || (keyNode.value !== null && typeof keyNode.value === 'object')) {
      this.c.add(this.path, `keys must be plain names, got ${describe(keyNode)} as a key`, key)
      return undefined
    }
    return { name: String(keyNode.value), node: keyNode }
  }

  /** The key is written (maybe with an empty value). */
  present(key: string): boolean {
    return this.keyNodes.has(key)
  }

  keyNode(key: string): unknown {
    return this.keyNodes.get(key)
  }

  get(key: string): Val | undefined {
    return this.values.get(key)
  }

  pathOf(key: string): string {
    return childPath(this.path, key)
  }

  /** Where a problem about `key` points: its value, its key, else the section. */
  atOf(key: string): unknown {
    return this.values.get(key)?.at ?? this.keyNodes.get(key) ?? this.at
  }

  problem(key: string, message: string): undefined {
    this.bad.add(key)
    this.c.add(this.pathOf(key), message, this.atOf(key))
    return undefined
  }

  missing(key: string, message = 'is required'): undefined {
    if (this.broken || this.bad.has(key)) return undefined
    return this.problem(key, message)
  }

  protected scalar(key: string): { v: unknown; node: unknown } | undefined {
    const val = this.values.get(key)
    if (val === undefined) return undefined
    return { v: isScalar(val.node) ? val.node.value : undefined, node: val.node }
  }

  string(key: string, opts: { required?: boolean; check?: (s: string) => string | null } = {}): string | undefined {
    const s = this.scalar(key)
    if (s === undefined) return opts.required ? this.missing(key) : undefined
    if (typeof s.v !== 'string') {
      const quote = typeof s.v === 'number' || typeof s.v === 'boolean' ? ` (quote it if it is meant as text: "${String(s.v)}")` : ''
      return this.problem(key, `must be text, got ${describe(s.node)}${quote}`)
    }
    if (s.v.length === 0) return this.problem(key, 'must not be empty')
    const bad = opts.check?.(s.v)
    if (bad) return this.problem(key, bad)
    return s.v
  }

  private numeric(key: string, whole: boolean, opts: { required?: boolean }): number | undefined {
    const s = this.scalar(key)
    if (s === undefined) return opts.required ? this.missing(key) : undefined
    const what = whole ? 'a whole number' : 'a number'
    if (typeof s.v !== 'number') return this.problem(key, `must be ${what}, got ${describe(s.node)}`)
    if (!Number.isFinite(s.v) || (whole && !Number.isSafeInteger(s.v))) return this.problem(key, `must be ${what}, got ${describe(s.node)}`)
    return s.v
  }

  /** A whole number; with `range`, within it (inclusive). */
  int(key: string, range?: readonly [number, number], opts: { required?: boolean } = {}): number | undefined {
    const v = this.numeric(key, true, opts)
    if (v === undefined || range === undefined) return v
    if (v < range[0] || v > range[1]) return this.problem(key, `${v} is out of range ${range[0]}..${range[1]}`)
    return v
  }

  /** A finite number; with `range`, within it (inclusive, or excluding the minimum). */
  number(key: string, range?: readonly [number, number], opts: { required?: boolean; minExclusive?: boolean } = {}): number | undefined {
    const v = this.numeric(key, false, opts)
    if (v === undefined || range === undefined) return v
    const low = opts.minExclusive ? v <= range[0] : v < range[0]
    if (opts.minExclusive && (low || v > range[1])) return this.problem(key, `${v} is out of range: more than ${range[0]}, at most ${range[1]}`)
    if (low || v > range[1]) return this.problem(key, `${v} is out of range ${range[0]}..${range[1]}`)
    return v
  }

  bool(key: string): boolean | undefined {
    const s = this.scalar(key)
    if (s === undefined) return undefined
    if (typeof s.v !== 'boolean') return this.problem(key, `must be true or false, got ${describe(s.node)}`)
    return s.v
  }

  choice<T extends string>(key: string, values: readonly T[], opts: { required?: boolean } = {}): T | undefined {
    const s = this.scalar(key)
    if (s === undefined) return opts.required ? this.missing(key, `is required (one of ${values.join(', ')})`) : undefined
    if (typeof s.v !== 'string') return this.problem(key, `must be one of ${values.join(', ')}, got ${describe(s.node)}`)
    const text = s.v
    if (!(values as readonly string[]).includes(text)) {
      const hint = values.find((v) => v.toLowerCase() === text.toLowerCase()) ?? suggestKey(text, values)
      return this.problem(key, `${describe(s.node)} is not one of ${values.join(', ')}${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`)
    }
    return text as T
  }

  /** A nested mapping, of the same class (absent or empty: a section with no keys). Subclasses keep this constructor. */
  section(key: string, keys: readonly string[]): this {
    const val = this.values.get(key)
    const Nested = this.constructor as new (c: C, path: string, node: unknown, at: unknown, keys: readonly string[]) => this
    // Keys missing from it are reported at its key (`lora:`), not at its first key.
    const sec = new Nested(this.c, this.pathOf(key), val?.node ?? null, this.keyNodes.get(key) ?? this.at, keys)
    if (sec.broken) this.problem(key, `must be a mapping (${keys.join(', ')}), got ${describe(val?.node)}`)
    return sec
  }

  /** A list: its items (aliases resolved) with their paths; undefined when absent or bad. */
  list(key: string, opts: { required?: boolean; max?: number } = {}): Val[] | undefined {
    const val = this.values.get(key)
    if (val === undefined) return opts.required ? this.missing(key) : undefined
    if (!isSeq(val.node)) return this.problem(key, `must be a list, got ${describe(val.node)}`)
    if (opts.max !== undefined && val.node.items.length > opts.max) return this.problem(key, `has ${val.node.items.length} entries; at most ${opts.max}`)
    const out: Val[] = []
    for (const [i, item] of val.node.items.entries()) {
      const path = `${this.pathOf(key)}[${i}]`
      const node = this.c.deref(item, path)
      if (node !== UNRESOLVED) out.push({ node, at: item ?? val.at, path })
    }
    return out
  }
}
