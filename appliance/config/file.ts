/**
 * What the config file (load.ts) and policy files (../policy/policy.ts) share: reading a file
 * with a size cap, and the helpers of their YAML validators. One copy, so that both kinds of file
 * are read and reported on alike.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { isMap, isScalar, isSeq, type YAMLError } from 'yaml'
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
