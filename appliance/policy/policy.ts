/**
 * `.klp-policy` files: the federation policy a gateway enforces on its relay path (docs/policy.md).
 *
 * A policy file is YAML or JSON (JSON is YAML too, so one parser reads both; which one it is only
 * changes how a syntax error is introduced). Like the config file (appliance/config/load.ts), the
 * text is parsed with a LineCounter and the validator walks the YAML node tree, never `toJS()`:
 * aliases are looked at where they are used, only known keys are descended into, and every
 * problem is collected, each with its key path and line. A file with any problem throws
 * PolicyError (a ConfigFileError: the CLI and daemon already print those one problem per line);
 * a good file gives the normalised Policy: names turned into numbers, seconds into ms, defaults
 * filled.
 *
 * Validating completely before returning is what makes a hot reload safe: the daemon parses the
 * new file, and only a Policy that parsed replaces the one in force.
 */
import { createHash } from 'node:crypto'
import { basename } from 'node:path'
import { LineCounter, Scalar, isMap, isScalar, isSeq, parseDocument, stringify, type Document, type YAMLMap } from 'yaml'
import { ConfigFileError, type ConfigFileProblem } from '../config/errors.js'
import { DocChecker, DocSection, UNRESOLVED, childPath, describe, quoted, readCapped, sortProblems, suggestKey, yamlMessage, type MapEntry, type Val } from '../config/file.js'
import { KNOWN_TYPES, packetTypeName } from '../core/wire/constants.js'
import type { KairoErrorOptions } from '../core/errors.js'

// ---------------------------------------------------------------------------------------------
// The normalised policy

/** How far a peer is trusted, lowest first (identity/peers.ts: TOFU pin, or the operator's allowlist). */
export const TRUSTS = ['unknown', 'tofu', 'allowlisted'] as const
export type Trust = (typeof TRUSTS)[number]

/** What a packet did wrong, in the order the engine checks (quota_* last). */
export const VIOLATIONS = ['peer_temporarily_blocked', 'peer_blocked', 'peer_not_allowed', 'trust_below_minimum', 'type_not_allowed', 'quota_messages', 'quota_bytes'] as const
export type Violation = (typeof VIOLATIONS)[number]

/** What a violation does besides dropping the packet (a violation always drops it). */
export interface PolicyAction {
  /** Block the peer for this long (ms); null: no block. */
  blockPeerMs: number | null
  /** Ask for a force disconnect of the link the packet came on. */
  disconnectLink: boolean
}

export const QUOTA_SCOPES = ['peer', 'type', 'peer_type'] as const
export type QuotaScope = (typeof QUOTA_SCOPES)[number]

export interface QuotaRule {
  /** Unique in the policy; the `rule` of its verdicts. Default `quotas[i]`. */
  name: string
  /** One budget per peer, per message type, or per (peer, type). */
  per: QuotaScope
  windowMs: number
  /** Most messages in one window; null: not limited. */
  messages: number | null
  /** Most bytes in one window; null: not limited. */
  bytes: number | null
  /** Packet types the quota counts; null: every agent type (0x10..0x3F), no control type. */
  types: number[] | null
  /** Its own action; null: the policy's action for quota_messages / quota_bytes. */
  action: PolicyAction | null
}

export interface Policy {
  /** The file, as the caller named it. */
  file: string
  /** `name:`, else the file name without `.klp-policy`. */
  name: string
  /** SHA-256 of the file's text (UTF-8), hex: tells which version is in force. */
  sha256: string
  description: string | null
  types: {
    /** Agent types (0x10..0x3F) allowed; null: all of them. */
    agent: number[] | null
    /** Control types (0x01..0x0F) allowed; null: all of them. */
    control: number[] | null
  }
  peers: {
    /** Node IDs (32 lower-case hex digits) allowed as originators; null: any. */
    allow: string[] | null
    /** Node IDs refused as originator or as the neighbour handing the packet over. */
    block: string[]
    minTrust: Trust
  }
  quotas: QuotaRule[]
  /** The action of each kind of violation (quota rules may have their own). */
  actions: Record<Violation, PolicyAction>
}

// ---------------------------------------------------------------------------------------------
// Errors

export type PolicyProblem = ConfigFileProblem

/**
 * A policy file that cannot be used. Every problem names the file, the key path and the line:
 * `quotas[1].window_s: 0 is out of range: more than 0, at most 86400 (field-relay.klp-policy:23)`.
 * A ConfigFileError (code ECONFIG), so code that reports config problems reports these too.
 */
export class PolicyError extends ConfigFileError {
  constructor(file: string, problems: readonly PolicyProblem[], options: KairoErrorOptions = {}) {
    super(file, problems, options)
  }
}

// ---------------------------------------------------------------------------------------------
// Limits

/** Largest policy file read, bytes. */
export const MAX_POLICY_BYTES = 1024 * 1024
export const POLICY_LIMITS = {
  /** window_s: more than 0, at most a day. */
  windowS: [0, 86_400] as const,
  /** block_peer.for_s: more than 0, at most 30 days. */
  blockForS: [0, 30 * 86_400] as const,
  messages: [1, 1_000_000_000] as const,
  bytes: [1, 1_000_000_000_000] as const,
  quotas: 64,
  /** Entries of peers.allow, and of peers.block. */
  peers: 65_536,
  description: 1000,
}
/** Problems listed in one PolicyError; the rest are counted in a last line. */
const MAX_PROBLEMS = 100

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const NODE_ID_RE = /^[0-9a-fA-F]{32}$/

const TOP_KEYS = ['version', 'name', 'description', 'types', 'peers', 'quotas', 'actions'] as const
const TYPES_KEYS = ['agent', 'control'] as const
const PEERS_KEYS = ['allow', 'block', 'min_trust'] as const
const QUOTA_KEYS = ['name', 'per', 'window_s', 'messages', 'bytes', 'types', 'action'] as const
const ACTION_WORDS = ['drop', 'disconnect_link'] as const
const BLOCK_KEYS = ['for_s'] as const

const CONTROL_MAX = 0x0f
const AGENT_MIN = 0x10
const AGENT_MAX = 0x3f

export function isControlType(t: number): boolean {
  return t >= 1 && t <= CONTROL_MAX
}

export function isAgentType(t: number): boolean {
  return t >= AGENT_MIN && t <= AGENT_MAX
}

/** Every named type with its spelling (HANDSHAKE, TASK_REQUEST, ...), control types first. */
const TYPE_NAMES: ReadonlyArray<{ name: string; type: number }> = [...KNOWN_TYPES].sort((a, b) => a - b).map((type) => ({ name: packetTypeName(type), type }))

/** A type name in any case, `-` or `_` → its number; undefined when there is none. */
export function typeByName(name: string): number | undefined {
  const wanted = name.trim().toUpperCase().replace(/-/g, '_')
  return TYPE_NAMES.find((t) => t.name === wanted)?.type
}

// ---------------------------------------------------------------------------------------------
// The validator

/**
 * Walks the document. Aliases cannot make the walk explode: every list the format has is checked
 * against its maximum length before its items are looked at, and only known keys are descended
 * into, so the values looked at are bounded by those maxima whatever the aliases point at. A
 * problem whose node has no line is put at line 1.
 */
class Checker extends DocChecker {
  constructor(doc: Document, lc: LineCounter, file: string) {
    super(doc, lc, file, 1)
  }
}

/** One mapping of the file and the keys it may have (DocSection); merge keys (<<) are problems. */
class Section extends DocSection<Checker> {
  protected *entries(map: YAMLMap): Iterable<MapEntry> {
    for (const pair of map.items) {
      const name = this.keyName(pair.key)?.name
      if (name === undefined) continue
      if (name === '<<') {
        this.c.add(childPath(this.path, name), 'merge keys (<<) are not supported in a policy file; write the keys out (anchors and *aliases work for values)', pair.key)
        continue
      }
      yield { name, key: pair.key, value: pair.value }
    }
  }
}

/**
 * A list of texts, each turned into a value by `parse` (a string: the problem); duplicates are
 * problems. With `plainText`, an unquoted item is taken as written even where YAML reads a number:
 * a node ID such as 12345678901234567890123456789012 or 1234e567... needs no quotes.
 */
function textList<T>(s: Section, key: string, parse: (text: string) => { value: T } | string, max: number, plainText = false): T[] | undefined {
  const items = s.list(key, { max })
  if (items === undefined) return undefined
  const out: T[] = []
  const seen = new Map<T, string>()
  let ok = true
  for (const item of items) {
    const scalar = isScalar(item.node) ? item.node : undefined
    const v = plainText && scalar?.type === Scalar.PLAIN && typeof scalar.source === 'string' ? scalar.source : scalar?.value
    if (typeof v !== 'string') {
      s.c.add(item.path, `must be text, got ${describe(item.node)}`, item.at)
      ok = false
      continue
    }
    const r = parse(v)
    if (typeof r === 'string') {
      s.c.add(item.path, r, item.at)
      ok = false
      continue
    }
    const first = seen.get(r.value)
    if (first !== undefined) {
      s.c.add(item.path, `${quoted(v)} is already listed as ${first}`, item.at)
      ok = false
      continue
    }
    seen.set(r.value, item.path)
    out.push(r.value)
  }
  if (!ok) s.bad.add(key)
  return out
}

function nodeIdProblem(v: string): { value: string } | string {
  if (NODE_ID_RE.test(v)) return { value: v.toLowerCase() }
  return `${quoted(v)} is not a node ID (32 hex digits, as kairo-gw peers shows them); peers are named by node ID because a name is only what a peer claims`
}

/** A type name allowed in `which` (control or agent types), as its number. */
function typeParser(which: 'agent' | 'control' | 'any'): (v: string) => { value: number } | string {
  const names = TYPE_NAMES.filter((t) => which === 'any' || (which === 'agent' ? isAgentType(t.type) : isControlType(t.type))).map((t) => t.name)
  return (v) => {
    const type = typeByName(v)
    if (type === undefined) {
      const hint = suggestKey(v.trim().toUpperCase().replace(/-/g, '_'), names)
      return `${quoted(v)} is not a message type (${names.join(', ')})${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`
    }
    if (which === 'agent' && isControlType(type)) return `${packetTypeName(type)} is a control type: list it under types.control`
    if (which === 'control' && isAgentType(type)) return `${packetTypeName(type)} is an agent type: list it under types.agent`
    return { value: type }
  }
}

/** An action: `drop`, `disconnect_link`, `{block_peer: {for_s: N}}`, or a list of those. */
function action(c: Checker, val: Val, forViolation: Violation | null): PolicyAction | undefined {
  const out: PolicyAction = { blockPeerMs: null, disconnectLink: false }
  const forms = `drop, disconnect_link, {block_peer: {for_s: N}} or a list of them`
  const items: Val[] = []
  if (isSeq(val.node)) {
    if (val.node.items.length === 0) {
      c.add(val.path, `is an empty list; write drop (a violation always drops the packet)`, val.at)
      return undefined
    }
    if (val.node.items.length > 8) {
      c.add(val.path, `has ${val.node.items.length} entries; an action has at most 3 (drop, disconnect_link, block_peer)`, val.at)
      return undefined
    }
    for (const [i, item] of val.node.items.entries()) {
      const path = `${val.path}[${i}]`
      const node = c.deref(item, path)
      if (node === UNRESOLVED) return undefined
      items.push({ node, at: item ?? val.at, path })
    }
  } else items.push(val)
  let ok = true
  const seen = new Set<string>()
  for (const item of items) {
    const once = (what: string) => {
      if (seen.has(what)) {
        c.add(item.path, `${what} is already in this action`, item.at)
        ok = false
        return false
      }
      seen.add(what)
      return true
    }
    if (isScalar(item.node) && typeof item.node.value === 'string') {
      const word = item.node.value
      if (word === 'drop') {
        if (once('drop')) continue
      } else if (word === 'disconnect_link') {
        if (once('disconnect_link')) out.disconnectLink = true
      } else if (word === 'block_peer') {
        c.add(item.path, 'block_peer needs a time: {block_peer: {for_s: 600}}', item.at)
        ok = false
      } else {
        const hint = suggestKey(word, [...ACTION_WORDS, 'block_peer'])
        c.add(item.path, `${describe(item.node)} is not an action (${forms})${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`, item.at)
        ok = false
      }
      continue
    }
    if (isMap(item.node)) {
      const s = new Section(c, item.path, item.node, item.at, ['block_peer', ...ACTION_WORDS])
      for (const word of ACTION_WORDS) {
        if (s.present(word)) {
          s.problem(word, `${word} is a word, not a key: write several actions as a list, e.g. [{block_peer: {for_s: 600}}, disconnect_link]`)
          ok = false
        }
      }
      if (!s.present('block_peer')) {
        if (item.node.items.length === 0) c.add(item.path, `is an empty mapping; an action is ${forms}`, item.at)
        ok = false
        continue
      }
      if (forViolation === 'peer_temporarily_blocked') {
        s.problem('block_peer', 'a packet from a peer that is blocked already cannot block it again (the block would never end while it sends); use drop or disconnect_link')
        ok = false
        continue
      }
      const b = s.section('block_peer', BLOCK_KEYS)
      if (s.bad.has('block_peer')) {
        ok = false
        continue
      }
      if (!once('block_peer')) continue
      const forS = b.number('for_s', POLICY_LIMITS.blockForS, { required: true, minExclusive: true })
      if (forS === undefined) {
        ok = false
        continue
      }
      out.blockPeerMs = Math.max(1, Math.round(forS * 1000))
      continue
    }
    c.add(item.path, `must be ${forms}, got ${describe(item.node)}`, item.at)
    ok = false
  }
  return ok ? out : undefined
}

const DROP: PolicyAction = Object.freeze({ blockPeerMs: null, disconnectLink: false })

function validate(c: Checker, root: unknown, file: string, text: string): Policy | undefined {
  const top = Section.top(c, root, TOP_KEYS, 'the file is empty; a policy needs at least version: 1')
  if (top === undefined) return undefined

  const versionVal = top.get('version')
  if (versionVal === undefined) top.missing('version', 'is required (version: 1)')
  else if (!isScalar(versionVal.node) || versionVal.node.value !== 1) {
    const v = isScalar(versionVal.node) ? versionVal.node.value : undefined
    top.problem('version', typeof v === 'number' && Number.isInteger(v) && v > 1 ? `${v} is newer than this gateway reads (version 1); update kairo-gw` : `must be 1, got ${describe(versionVal.node)}`)
  }

  const name = top.string('name', { check: (s) => (NAME_RE.test(s) ? null : `${quoted(s)} is not a policy name: 1 to 64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)`) })
  const description = top.string('description', {
    check: (s) => (s.length > POLICY_LIMITS.description ? `is ${s.length} characters; at most ${POLICY_LIMITS.description}` : /[\u0000-\u0008\u000b-\u001f\u007f]/.test(s) ? 'must not contain control characters' : null),
  })

  const typesSec = top.section('types', TYPES_KEYS)
  const agent = textList(typesSec, 'agent', typeParser('agent'), 256)
  const control = textList(typesSec, 'control', typeParser('control'), 256)

  const peersSec = top.section('peers', PEERS_KEYS)
  const allow = textList(peersSec, 'allow', nodeIdProblem, POLICY_LIMITS.peers, true)
  const block = textList(peersSec, 'block', nodeIdProblem, POLICY_LIMITS.peers, true) ?? []
  if (allow !== undefined && !peersSec.bad.has('allow') && !peersSec.bad.has('block')) {
    const allowed = new Set(allow)
    const both = block.filter((id) => allowed.has(id))
    if (both.length > 0) peersSec.problem('block', `${both.length === 1 ? both[0] : `${both.length} node IDs (${both[0]}, ...)`} ${both.length === 1 ? 'is' : 'are'} also in peers.allow; a peer is either allowed or blocked`)
  }
  if (allow !== undefined && allow.length === 0 && !peersSec.bad.has('allow')) peersSec.problem('allow', 'is an empty list, which would refuse every peer; leave allow out to allow any peer')
  const minTrust = peersSec.choice('min_trust', TRUSTS) ?? 'unknown'

  const quotas: QuotaRule[] = []
  const names = new Map<string, string>()
  for (const item of top.list('quotas', { max: POLICY_LIMITS.quotas }) ?? []) {
    if (!isMap(item.node)) {
      c.add(item.path, `must be a mapping (${QUOTA_KEYS.join(', ')}), got ${describe(item.node)}`, item.at)
      continue
    }
    const q = new Section(c, item.path, item.node, item.at, QUOTA_KEYS)
    const qname = q.string('name', { check: (s) => (NAME_RE.test(s) ? null : `${quoted(s)} is not a rule name: 1 to 64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)`) }) ?? item.path
    if (!q.bad.has('name')) {
      const first = names.get(qname)
      if (first !== undefined) q.problem('name', `${quoted(qname)} is already the name of ${first}`)
      else names.set(qname, item.path)
    }
    const per = q.choice('per', QUOTA_SCOPES, { required: true })
    const windowS = q.number('window_s', POLICY_LIMITS.windowS, { required: true, minExclusive: true })
    const messages = q.int('messages', POLICY_LIMITS.messages)
    const bytes = q.int('bytes', POLICY_LIMITS.bytes)
    // Absent and empty (`messages:`) alike: a quota with no limit would count for nothing.
    if (q.get('messages') === undefined && q.get('bytes') === undefined && !q.bad.has('messages') && !q.bad.has('bytes')) c.add(item.path, 'needs messages:, bytes: or both (the limits per window)', item.at)
    const types = textList(q, 'types', typeParser('any'), 256)
    if (types !== undefined && types.length === 0 && !q.bad.has('types')) q.problem('types', 'is an empty list: the quota would count nothing; leave types out to count every agent type')
    const av = q.get('action')
    const act = av === undefined ? null : action(c, av, null)
    if (per === undefined || windowS === undefined || act === undefined) continue
    quotas.push({
      name: qname,
      per,
      windowMs: Math.max(1, Math.round(windowS * 1000)),
      messages: messages ?? null,
      bytes: bytes ?? null,
      types: types ?? null,
      action: act,
    })
  }

  const actSec = top.section('actions', VIOLATIONS)
  const actions = {} as Record<Violation, PolicyAction>
  for (const v of VIOLATIONS) {
    const val = actSec.get(v)
    actions[v] = (val === undefined ? undefined : action(c, val, v)) ?? { ...DROP }
  }

  if (c.problems.length > 0) return undefined
  return {
    file,
    name: name ?? defaultName(file),
    sha256: createHash('sha256').update(text, 'utf8').digest('hex'),
    description: description ?? null,
    types: { agent: agent ?? null, control: control ?? null },
    peers: { allow: allow ?? null, block, minTrust },
    quotas,
    actions,
  }
}

/** The file name without its directory and `.klp-policy` / `.yaml` / `.json`, made a valid name. */
function defaultName(file: string): string {
  const n = basename(file)
    .replace(/\.(klp-policy|ya?ml|json)$/i, '')
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64)
  return n === '' ? 'policy' : n
}

// ---------------------------------------------------------------------------------------------
// Entry points

/** 1-based line of character `pos`. */
function lineAt(text: string, pos: number): number {
  let line = 1
  for (let i = 0; i < pos && i < text.length; i++) if (text.charCodeAt(i) === 0x0a) line++
  return line
}

/**
 * Parses and validates the text of a policy file; `file` names it in problems and in the Policy.
 * Throws PolicyError listing every problem, and nothing else whatever the text.
 */
export function parsePolicy(text: string, file: string): Policy {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text
  const json = /^\s*[{[]/.test(body)
  if (json) {
    const bad = jsonSyntaxError(body)
    if (bad !== null) throw new PolicyError(file, [{ path: '', message: `JSON: ${bad.message}`, line: lineAt(body, bad.pos), file }])
  }
  const lc = new LineCounter()
  let doc: Document
  try {
    doc = parseDocument(body, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  } catch (err) {
    // The yaml package reports syntax as doc.errors; this is for anything it throws instead.
    throw new PolicyError(file, [{ path: '', message: `${json ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`, line: 1, file }], { cause: err })
  }
  // One line per distinct problem: a deep nesting is reported once per level it failed at.
  const seen = new Set<string>()
  const syntax: PolicyProblem[] = []
  for (const e of [...doc.errors, ...doc.warnings]) {
    const p: PolicyProblem = { path: '', message: yamlMessage(e, body, { document: 'a policy file', kind: json ? 'JSON' : 'YAML', nesting: true }), line: lc.linePos(e.pos[0]).line, file }
    if (seen.has(`${p.line} ${p.message}`)) continue
    seen.add(`${p.line} ${p.message}`)
    syntax.push(p)
  }
  if (syntax.length > 0) throw new PolicyError(file, sortProblems(syntax, MAX_PROBLEMS))
  const c = new Checker(doc, lc, file)
  const policy = validate(c, doc.contents, file, text)
  if (c.problems.length > 0 || policy === undefined) throw new PolicyError(file, sortProblems(c.problems, MAX_PROBLEMS))
  return policy
}

/**
 * The first syntax error of `text` as strict JSON (RFC 8259), or null. A file that starts with {
 * or [ is JSON, and YAML's leniencies (`{"a": }`, `{a: 1}`, trailing text) would give it a meaning
 * its author did not write; JSON.parse does not always say where it failed. Iterative, so any
 * nesting depth is fine.
 */
export function jsonSyntaxError(text: string): { pos: number; message: string } | null {
  const n = text.length
  const stack: string[] = []
  let i = 0
  let state: 'value' | 'key' | 'after' = 'value'
  const ws = () => {
    while (i < n) {
      const ch = text.charCodeAt(i)
      if (ch !== 0x20 && ch !== 0x09 && ch !== 0x0a && ch !== 0x0d) break
      i++
    }
  }
  const found = () => JSON.stringify(text.slice(i, i + 12))
  const end = (what: string) => ({ pos: n, message: `the file ends where ${what} should be` })
  /** Reads the string starting at i (a "); the error, or null. */
  const str = (): { pos: number; message: string } | null => {
    i++
    for (;;) {
      if (i >= n) return end('the closing " of a string')
      const ch = text.charCodeAt(i)
      if (ch === 0x22) {
        i++
        return null
      }
      if (ch < 0x20) return { pos: i, message: 'a control character inside a string (write it as \\n, \\t or \\u00XX)' }
      if (ch === 0x5c) {
        const e = text[i + 1]
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return { pos: i, message: 'a \\u escape needs 4 hex digits' }
          i += 6
          continue
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) return { pos: i, message: `\\${e ?? ''} is not an escape JSON has` }
        i += 2
        continue
      }
      i++
    }
  }
  for (;;) {
    ws()
    if (state === 'value') {
      if (i >= n) return end('a value')
      const ch = text[i]!
      if (ch === '{' || ch === '[') {
        stack.push(ch)
        i++
        ws()
        if (text[i] === (ch === '{' ? '}' : ']')) {
          stack.pop()
          i++
          state = 'after'
        } else state = ch === '{' ? 'key' : 'value'
        continue
      }
      if (ch === '"') {
        const e = str()
        if (e !== null) return e
        state = 'after'
        continue
      }
      const m = /^(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)/.exec(text.slice(i, i + 400))
      if (m === null) return { pos: i, message: `expected a value (text in double quotes, a number, true, false, null, { or [), found ${found()}` }
      i += m[0].length
      state = 'after'
      continue
    }
    if (state === 'key') {
      if (i >= n) return end('a property name')
      if (text[i] !== '"') return { pos: i, message: `expected a property name in double quotes, found ${found()}` }
      const e = str()
      if (e !== null) return e
      ws()
      if (i >= n) return end('a :')
      if (text[i] !== ':') return { pos: i, message: `expected : after the property name, found ${found()}` }
      i++
      state = 'value'
      continue
    }
    // After a value: the end, or a , or the closing bracket of the container it is in.
    const top = stack[stack.length - 1]
    if (top === undefined) return i >= n ? null : { pos: i, message: `text after the end of the JSON value: ${found()}` }
    const close = top === '{' ? '}' : ']'
    if (i >= n) return end(`, or ${close}`)
    if (text[i] === ',') {
      i++
      state = top === '{' ? 'key' : 'value'
    } else if (text[i] === close) {
      stack.pop()
      i++
    } else return { pos: i, message: `expected , or ${close} after a value, found ${found()}` }
  }
}

/** Reads (at most 1 MiB) and parses a policy file; an unreadable file is a PolicyError naming it too. */
export function loadPolicy(file: string): Policy {
  const bytes = readCapped(file, MAX_POLICY_BYTES, 'a policy file', PolicyError)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch (err) {
    throw new PolicyError(file, [{ path: '', message: 'is not UTF-8 text; is it really a policy file?', line: null, file }], { cause: err })
  }
  return parsePolicy(text, file)
}

// ---------------------------------------------------------------------------------------------
// Writing a policy back (kairo-gw policy show; the round-trip tests)

function actionValue(a: PolicyAction): unknown {
  const items: unknown[] = []
  if (a.blockPeerMs !== null) items.push({ block_peer: { for_s: a.blockPeerMs / 1000 } })
  if (a.disconnectLink) items.push('disconnect_link')
  if (items.length === 0) return 'drop'
  return items.length === 1 ? items[0] : items
}

/** The policy as a file in the format parsePolicy reads, every default written out. */
export function formatPolicy(p: Policy): string {
  const doc: Record<string, unknown> = { version: 1, name: p.name }
  if (p.description !== null) doc.description = p.description
  const types: Record<string, unknown> = {}
  if (p.types.agent !== null) types.agent = p.types.agent.map(packetTypeName)
  if (p.types.control !== null) types.control = p.types.control.map(packetTypeName)
  if (Object.keys(types).length > 0) doc.types = types
  doc.peers = { ...(p.peers.allow !== null && { allow: p.peers.allow }), block: p.peers.block, min_trust: p.peers.minTrust }
  doc.quotas = p.quotas.map((q, i) => ({
    // A rule without a name is named by its place, which is not a name the file may write.
    ...(q.name !== `quotas[${i}]` && { name: q.name }),
    per: q.per,
    window_s: q.windowMs / 1000,
    ...(q.messages !== null && { messages: q.messages }),
    ...(q.bytes !== null && { bytes: q.bytes }),
    ...(q.types !== null && { types: q.types.map(packetTypeName) }),
    ...(q.action !== null && { action: actionValue(q.action) }),
  }))
  doc.actions = Object.fromEntries(VIOLATIONS.map((v) => [v, actionValue(p.actions[v])]))
  return stringify(doc, { lineWidth: 0 })
}
