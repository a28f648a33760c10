/**
 * The peer registry: which gateways this node admits, keyed by their Ed25519 identity keys, with
 * trust on first use (TOFU) or an operator's allowlist. Kept in `<state-dir>/peers.json`.
 *
 * A peer presents (node ID, identity key) from an authenticated handshake, and claims a UUID, a
 * name and a mesh IP. `consider()` decides, in this order:
 *
 *  1. `node_id_mismatch`: the node ID is not the one derived from the key (nodeIdFromPublicKey).
 *  2. `invalid_uuid` / `invalid_name` / `invalid_mesh_ip`: a claim that is not well formed (UUID:
 *     node-info.ts uuidProblem; name: 1..64 characters, no control or bidi-override characters;
 *     mesh IP: a dotted quad in 100.64.0.0/16).
 *  3. `not_allowlisted` (allowlist mode): neither the key nor the node ID is listed.
 *  4. `key_changed`: the claimed UUID, or the claimed name (compared case-insensitively), is pinned
 *     to another key: held by an admitted peer, or (names) given to another key by the policy's
 *     allow list. The first key seen for a UUID or a name keeps it, in both modes.
 *  5. `registry_full`: a new peer when `maxPeers` peers are admitted already.
 *  Otherwise: `new` (first admission of this key; written at once) or `known` (already admitted;
 *  a changed UUID, name or mesh IP is updated and written at once, else only last_seen and count).
 *
 * Names are pinned as UUIDs are: a name is what an operator reads in `kairo-gw peers`, and a new
 * key taking over "gw-tokyo-1" is exactly what TOFU exists to stop. To accept a legitimately
 * replaced key, the operator removes the old peer (`remove()`), and the next key is pinned.
 *
 * Allow entries ({node_id?, key?, name?}) need a key or a node ID; a name alone authenticates
 * nothing. An entry's name is the operator's label: it is what the registry records for that peer,
 * whatever the peer claims, and no other key may use it. In TOFU mode the entries are labels and
 * pins only (everyone is admitted, as TOFU does); in allowlist mode they are also the only peers
 * admitted. `setPolicy()` (config reload) turns admitted peers that a new allowlist leaves out into
 * refused records (`not_allowlisted`) and returns them.
 *
 * Refused claims are recorded: one refused record per claimed node ID with the claimed UUID,
 * name and key, the reason, for `key_changed` the pinned peer's node ID and key and which claim
 * collided (`conflict`), first and last seen, and a count. A node can have an admitted record and
 * a refused one (an admitted peer that once claimed another peer's UUID); a refused record goes
 * when its node is admitted anew. At most `maxRefused` refused records are kept (least recently
 * seen dropped first); each refusal also goes to the coordination and VoV logs.
 *
 * Writes: admissions, removals, claim changes of admitted peers and policy demotions are written
 * at once (atomically, files.ts, mode 0600), before consider()/remove() returns. last_seen and
 * count updates and refused records only mark the registry dirty: `flush()`, which the daemon
 * calls periodically (every 60 s) and at shutdown, writes them. A crash loses at most that
 * interval of last_seen times and refusal counts, and an unauthenticated flood of made-up keys
 * cannot force a disk write per key.
 *
 * The file is JSON, one record per line: {"version":1,"peers":[ {record}, ... ]}. It is checked
 * completely at open; every problem is an error naming the file and the field
 * (`peers.json: peers[3].identity_key: ...`). A file writable by other users is refused, as the
 * pins are security decisions.
 */
import { nodeIdFromPublicKey } from '../core/identity.js'
import { IdentityFileError, describe, isIsoUtc, isoUtc, modeText, parseJsonObject, readSmallFileSync, writeFileAtomicSync } from './files.js'
import { isMeshIp } from './mesh-ip.js'
import { uuidProblem } from './node-info.js'

export const PEERS_FILE = 'peers.json'
/** Default bound on admitted peers. */
export const DEFAULT_MAX_PEERS = 4096
/** Default bound on refused records kept. */
export const DEFAULT_MAX_REFUSED = 1024
/** Largest registry file read. */
const MAX_FILE_BYTES = 16 * 1024 * 1024
/** Longest peer name, characters. */
export const MAX_NAME_LENGTH = 64

export const REFUSAL_REASONS = ['node_id_mismatch', 'invalid_uuid', 'invalid_name', 'invalid_mesh_ip', 'not_allowlisted', 'key_changed', 'registry_full'] as const
export type RefusalReason = (typeof REFUSAL_REASONS)[number]

export interface PeerRecord {
  /** 32 lower-case hex digits. For a `node_id_mismatch` refusal, the node ID the peer claimed. */
  node_id: string
  uuid: string | null
  name: string | null
  mesh_ip: string | null
  /** Ed25519 public key, 64 lower-case hex digits. */
  identity_key: string
  state: 'admitted' | 'refused'
  /** null when admitted; the refusal reason otherwise. */
  reason: RefusalReason | null
  /** ISO 8601 UTC. */
  first_seen: string
  last_seen: string
  /** Times consider() reached this record's decision. */
  count: number
  /** key_changed: the admitted peer (or allow entry) that holds the UUID or name. */
  pinned_node_id?: string
  /** key_changed: that peer's key (hex), when known. */
  pinned_key?: string
  /** key_changed: which claim collided. */
  conflict?: 'uuid' | 'name'
}

export interface PeerAllowEntry {
  node_id?: string
  /** Ed25519 public key, 64 hex digits. */
  key?: string
  name?: string
}

export interface PeerPolicy {
  mode: 'tofu' | 'allowlist'
  allow: PeerAllowEntry[]
}

export interface PeerRegistryOptions {
  /** Most admitted peers (default 4096); beyond, new peers are refused `registry_full`. */
  maxPeers?: number
  /** Most refused records kept (default 1024); the least recently seen goes first. */
  maxRefused?: number
  /** Clock (ms) where consider() is given no `now`, and for remove(); default Date.now. */
  now?: () => number
}

export interface PeerClaim {
  nodeId: string
  identityKey: Uint8Array
  uuid?: string
  name?: string
  meshIp?: string
  /** ms; default the registry's clock. */
  now?: number
}

export interface PeerDecision {
  decision: 'new' | 'known' | 'refused'
  /** The refusal reason (refused only). */
  reason?: RefusalReason
  /** A copy of the record as it is now. */
  peer: PeerRecord
  /** known: the claims that changed (and were written). */
  changed?: Array<'uuid' | 'name' | 'mesh_ip'>
}

const HEX32 = /^[0-9a-f]{32}$/
const HEX64 = /^[0-9a-f]{64}$/
// C0, DEL, C1, and the bidirectional overrides and isolates (which reorder what a terminal shows).
// eslint-disable-next-line no-control-regex
const BAD_NAME_CHAR = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/

/** Why `name` cannot be a peer name, or undefined when it can. */
export function peerNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty'
  if (name.length > MAX_NAME_LENGTH) return `is ${name.length} characters, over the limit of ${MAX_NAME_LENGTH}`
  if (BAD_NAME_CHAR.test(name)) return 'contains a control or bidirectional-override character'
  if (name.trim() === '') return 'is only white space'
  return undefined
}

interface NormalEntry {
  node_id: string
  key: string | undefined
  name: string | undefined
}

function validatePolicy(policy: PeerPolicy): { mode: 'tofu' | 'allowlist'; entries: NormalEntry[] } {
  if (typeof policy !== 'object' || policy === null) throw new TypeError('policy must be an object {mode, allow}')
  if (policy.mode !== 'tofu' && policy.mode !== 'allowlist') throw new TypeError(`policy.mode: ${describe(policy.mode)} is not "tofu" or "allowlist"`)
  if (!Array.isArray(policy.allow)) throw new TypeError(`policy.allow: ${describe(policy.allow)} is not an array`)
  const entries: NormalEntry[] = []
  const byNode = new Map<string, number>()
  const byName = new Map<string, number>()
  policy.allow.forEach((e, i) => {
    const at = `policy.allow[${i}]`
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new TypeError(`${at}: ${describe(e)} is not an object {node_id?, key?, name?}`)
    let key: string | undefined
    let nodeId: string | undefined
    if (e.key !== undefined) {
      if (typeof e.key !== 'string' || !/^[0-9a-fA-F]{64}$/.test(e.key)) throw new TypeError(`${at}.key: ${describe(e.key)} is not an Ed25519 public key (64 hex digits)`)
      key = e.key.toLowerCase()
    }
    if (e.node_id !== undefined) {
      if (typeof e.node_id !== 'string' || !/^[0-9a-fA-F]{32}$/.test(e.node_id)) throw new TypeError(`${at}.node_id: ${describe(e.node_id)} is not a node ID (32 hex digits)`)
      nodeId = e.node_id.toLowerCase()
    }
    if (key === undefined && nodeId === undefined) throw new TypeError(`${at}: needs key or node_id (a name alone authenticates nothing)`)
    if (key !== undefined) {
      const derived = nodeIdFromPublicKey(Buffer.from(key, 'hex')).toString('hex')
      if (nodeId !== undefined && nodeId !== derived) throw new TypeError(`${at}.node_id: ${nodeId} is not the node ID of key ${key} (that is ${derived})`)
      nodeId = derived
    }
    if (e.name !== undefined) {
      if (typeof e.name !== 'string') throw new TypeError(`${at}.name: ${describe(e.name)} is not a string`)
      const p = peerNameProblem(e.name)
      if (p !== undefined) throw new TypeError(`${at}.name: ${JSON.stringify(e.name)} ${p}`)
      const folded = e.name.toLowerCase()
      const prev = byName.get(folded)
      if (prev !== undefined) throw new TypeError(`${at}.name: ${JSON.stringify(e.name)} is also the name of policy.allow[${prev}]`)
      byName.set(folded, i)
    }
    const prev = byNode.get(nodeId!)
    if (prev !== undefined) throw new TypeError(`${at}: node ${nodeId} is also listed as policy.allow[${prev}]`)
    byNode.set(nodeId!, i)
    entries.push({ node_id: nodeId!, key, name: e.name })
  })
  return { mode: policy.mode, entries }
}

function copy(r: PeerRecord): PeerRecord {
  return { ...r }
}

/** Parses and checks a registry file's text. */
function parseRegistry(file: string, text: string): { admitted: PeerRecord[]; refused: PeerRecord[] } {
  const o = parseJsonObject(file, text)
  if (o.version !== 1) throw new IdentityFileError(file, 'version', `is ${o.version === undefined ? 'missing' : describe(o.version)}; expected 1`)
  if (!Array.isArray(o.peers)) throw new IdentityFileError(file, 'peers', `is ${o.peers === undefined ? 'missing' : describe(o.peers)}; expected an array`)
  const admitted: PeerRecord[] = []
  const refused: PeerRecord[] = []
  const seen = { admitted: new Map<string, number>(), refused: new Map<string, number>() }
  const uuids = new Map<string, number>()
  const names = new Map<string, number>()
  o.peers.forEach((raw: unknown, i: number) => {
    const at = `peers[${i}]`
    const bad = (field: string, what: string): never => {
      throw new IdentityFileError(file, field === '' ? at : `${at}.${field}`, what)
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('', `is ${describe(raw)}; expected an object`)
    const r = raw as Record<string, unknown>
    const str = (field: string, re: RegExp, what: string): string => {
      const v = r[field]
      if (typeof v !== 'string' || !re.test(v)) return bad(field, `is ${v === undefined ? 'missing' : describe(v)}; expected ${what}`)
      return v
    }
    const nodeId = str('node_id', HEX32, '32 lower-case hex digits')
    const key = str('identity_key', HEX64, '64 lower-case hex digits')
    const state = r.state
    if (state !== 'admitted' && state !== 'refused') bad('state', `is ${state === undefined ? 'missing' : describe(state)}; expected "admitted" or "refused"`)
    let reason: RefusalReason | null = null
    if (state === 'admitted') {
      if (r.reason !== null && r.reason !== undefined) bad('reason', `is ${describe(r.reason)}; an admitted peer has reason null`)
    } else {
      if (typeof r.reason !== 'string' || !(REFUSAL_REASONS as readonly string[]).includes(r.reason)) bad('reason', `is ${r.reason === undefined ? 'missing' : describe(r.reason)}; expected one of ${REFUSAL_REASONS.join(', ')}`)
      reason = r.reason as RefusalReason
    }
    if (reason !== 'node_id_mismatch') {
      const derived = nodeIdFromPublicKey(Buffer.from(key, 'hex')).toString('hex')
      if (derived !== nodeId) bad('node_id', `${nodeId} is not the node ID of identity_key (that is ${derived})`)
    }
    const nullable = (field: string, check: (v: string) => string | undefined): string | null => {
      const v = r[field]
      if (v === null || v === undefined) return null
      if (typeof v !== 'string') return bad(field, `is ${describe(v)}; expected a string or null`)
      const p = check(v)
      if (p !== undefined) bad(field, `${JSON.stringify(v)} ${p}`)
      return v
    }
    const uuid = nullable('uuid', (v) => (v !== v.toLowerCase() ? 'is not lower case' : uuidProblem(v)))
    const name = nullable('name', peerNameProblem)
    const meshIp = nullable('mesh_ip', (v) => (isMeshIp(v) ? undefined : 'is not an address in 100.64.0.0/16'))
    const firstSeen = str('first_seen', /./, 'an ISO 8601 UTC timestamp')
    if (!isIsoUtc(firstSeen)) bad('first_seen', `${JSON.stringify(firstSeen)} is not an ISO 8601 UTC timestamp (YYYY-MM-DDThh:mm:ss.sssZ)`)
    const lastSeen = str('last_seen', /./, 'an ISO 8601 UTC timestamp')
    if (!isIsoUtc(lastSeen)) bad('last_seen', `${JSON.stringify(lastSeen)} is not an ISO 8601 UTC timestamp (YYYY-MM-DDThh:mm:ss.sssZ)`)
    if (lastSeen < firstSeen) bad('last_seen', `${lastSeen} is before first_seen ${firstSeen}`)
    const count = r.count
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) bad('count', `is ${count === undefined ? 'missing' : describe(count)}; expected an integer >= 1`)
    const rec: PeerRecord = { node_id: nodeId, uuid, name, mesh_ip: meshIp, identity_key: key, state: state as 'admitted' | 'refused', reason, first_seen: firstSeen, last_seen: lastSeen, count: count as number }
    if (r.pinned_node_id !== undefined) rec.pinned_node_id = str('pinned_node_id', HEX32, '32 lower-case hex digits')
    if (r.pinned_key !== undefined) rec.pinned_key = str('pinned_key', HEX64, '64 lower-case hex digits')
    if (r.conflict !== undefined) {
      if (r.conflict !== 'uuid' && r.conflict !== 'name') bad('conflict', `is ${describe(r.conflict)}; expected "uuid" or "name"`)
      rec.conflict = r.conflict as 'uuid' | 'name'
    }
    if (state === 'admitted' && (rec.pinned_node_id !== undefined || rec.pinned_key !== undefined || rec.conflict !== undefined)) bad('', 'an admitted peer has no pinned_node_id, pinned_key or conflict')
    const dup = seen[rec.state].get(nodeId)
    if (dup !== undefined) bad('node_id', `${nodeId} has another ${rec.state} record at peers[${dup}]`)
    seen[rec.state].set(nodeId, i)
    if (rec.state === 'admitted') {
      if (uuid !== null) {
        const u = uuids.get(uuid)
        if (u !== undefined) bad('uuid', `${uuid} is also the UUID of the admitted peer at peers[${u}]`)
        uuids.set(uuid, i)
      }
      if (name !== null) {
        const n = names.get(name.toLowerCase())
        if (n !== undefined) bad('name', `${JSON.stringify(name)} is also the name of the admitted peer at peers[${n}] (names compare case-insensitively)`)
        names.set(name.toLowerCase(), i)
      }
      admitted.push(rec)
    } else {
      refused.push(rec)
    }
  })
  return { admitted, refused }
}

function renderRegistry(records: PeerRecord[]): string {
  if (records.length === 0) return '{"version":1,"peers":[]}\n'
  return `{"version":1,"peers":[\n${records.map((r) => JSON.stringify(r)).join(',\n')}\n]}\n`
}

export class PeerRegistry {
  readonly file: string
  /** Admitted peers that the policy given at open no longer allows, now refused (written). */
  readonly demotedAtOpen: PeerRecord[]
  private mode: 'tofu' | 'allowlist' = 'tofu'
  private entries: NormalEntry[] = []
  /** Node IDs of the allowlist entries (those given by key included). */
  private listed = new Set<string>()
  private readonly admitted = new Map<string, PeerRecord>()
  private readonly refused = new Map<string, PeerRecord>()
  private readonly maxPeers: number
  private readonly maxRefused: number
  private readonly clock: () => number
  private unsaved = false

  private constructor(file: string, opts: PeerRegistryOptions) {
    this.file = file
    this.maxPeers = opts.maxPeers ?? DEFAULT_MAX_PEERS
    this.maxRefused = opts.maxRefused ?? DEFAULT_MAX_REFUSED
    if (!Number.isSafeInteger(this.maxPeers) || this.maxPeers < 1) throw new RangeError(`maxPeers must be a positive integer, got ${this.maxPeers}`)
    if (!Number.isSafeInteger(this.maxRefused) || this.maxRefused < 0) throw new RangeError(`maxRefused must be an integer >= 0, got ${this.maxRefused}`)
    this.clock = opts.now ?? Date.now
    this.demotedAtOpen = []
  }

  /**
   * Reads `file` (a missing file is an empty registry; nothing is written until something
   * changes) and applies `policy`. IdentityFileError naming the file and field for a bad file;
   * TypeError naming the policy field for a bad policy.
   */
  static open(file: string, policy: PeerPolicy, opts: PeerRegistryOptions = {}): PeerRegistry {
    const reg = new PeerRegistry(file, opts)
    const checked = validatePolicy(policy)
    const got = readSmallFileSync(file, MAX_FILE_BYTES)
    if (got !== undefined) {
      if ((got.mode & 0o022) !== 0) throw new IdentityFileError(file, '', `is writable by other users (mode ${modeText(got.mode)}); it pins peer keys. Fix it with: chmod 600 ${file}`)
      const { admitted, refused } = parseRegistry(file, got.text)
      for (const r of admitted) reg.admitted.set(r.node_id, r)
      for (const r of refused) reg.refused.set(r.node_id, r)
    }
    reg.demotedAtOpen.push(...reg.applyPolicy(checked))
    return reg
  }

  /**
   * Replaces the policy (config reload). In allowlist mode, admitted peers the new list leaves
   * out become refused `not_allowlisted`; those are returned (copies) and the file is written.
   */
  setPolicy(policy: PeerPolicy): PeerRecord[] {
    return this.applyPolicy(validatePolicy(policy))
  }

  private applyPolicy(checked: { mode: 'tofu' | 'allowlist'; entries: NormalEntry[] }): PeerRecord[] {
    this.mode = checked.mode
    this.entries = checked.entries
    this.listed = new Set(checked.entries.map((e) => e.node_id))
    const demoted: PeerRecord[] = []
    for (const r of [...this.admitted.values()]) {
      const entry = this.entryFor(r.node_id)
      if (this.mode === 'allowlist' && entry === undefined) {
        this.admitted.delete(r.node_id)
        const d: PeerRecord = { ...r, state: 'refused', reason: 'not_allowlisted' }
        this.refused.set(r.node_id, d)
        demoted.push(copy(d))
      } else if (entry?.name !== undefined && r.name !== entry.name) {
        r.name = entry.name
        this.unsaved = true
      }
    }
    // A label may now collide with a name an admitted peer claimed: the label's owner wins.
    for (const r of this.admitted.values()) {
      if (r.name === null) continue
      const owner = this.labelOwner(r.name)
      if (owner !== undefined && owner.node_id !== r.node_id) {
        r.name = null
        this.unsaved = true
      }
    }
    this.trimRefused()
    if (demoted.length > 0 || this.unsaved) this.save()
    return demoted
  }

  private entryFor(nodeId: string): NormalEntry | undefined {
    return this.entries.find((e) => e.node_id === nodeId)
  }

  private labelOwner(name: string): NormalEntry | undefined {
    const folded = name.toLowerCase()
    return this.entries.find((e) => e.name !== undefined && e.name.toLowerCase() === folded)
  }

  /** Decides on a peer's claims; see the module comment for the rules and what is written when. */
  consider(p: PeerClaim): PeerDecision {
    if (typeof p.nodeId !== 'string' || !/^[0-9a-fA-F]{32}$/.test(p.nodeId)) throw new TypeError(`nodeId must be 32 hex digits, got ${JSON.stringify(p.nodeId)}`)
    if (!(p.identityKey instanceof Uint8Array) || p.identityKey.length !== 32) throw new TypeError('identityKey must be a 32-byte Ed25519 public key')
    const ms = p.now ?? this.clock()
    const at = isoUtc(ms)
    const nodeId = p.nodeId.toLowerCase()
    const key = Buffer.from(p.identityKey).toString('hex')
    const claim = { uuid: p.uuid, name: p.name, meshIp: p.meshIp }

    const refuse = (reason: RefusalReason, pin?: { node_id: string; key: string | undefined; conflict: 'uuid' | 'name' }): PeerDecision => {
      // Only well-formed claims are recorded (a malformed one is what the reason says, or is left out).
      const uuid = typeof claim.uuid === 'string' && uuidProblem(claim.uuid) === undefined ? claim.uuid.toLowerCase() : null
      const name = typeof claim.name === 'string' && peerNameProblem(claim.name) === undefined ? claim.name : null
      const meshIp = typeof claim.meshIp === 'string' && isMeshIp(claim.meshIp) ? claim.meshIp : null
      let r = this.refused.get(nodeId)
      if (r === undefined) {
        r = { node_id: nodeId, uuid, name, mesh_ip: meshIp, identity_key: key, state: 'refused', reason, first_seen: at, last_seen: at, count: 1 }
        this.refused.set(nodeId, r)
      } else {
        this.refused.delete(nodeId) // re-inserted last: the map stays in last-seen order for trimming
        this.refused.set(nodeId, r)
        Object.assign(r, { uuid, name, mesh_ip: meshIp, identity_key: key, reason, count: r.count + 1 })
        if (at > r.last_seen) r.last_seen = at
        delete r.pinned_node_id
        delete r.pinned_key
        delete r.conflict
      }
      if (pin !== undefined) {
        r.pinned_node_id = pin.node_id
        if (pin.key !== undefined) r.pinned_key = pin.key
        r.conflict = pin.conflict
      }
      this.unsaved = true
      this.trimRefused()
      return { decision: 'refused', reason, peer: copy(r) }
    }

    const derived = nodeIdFromPublicKey(p.identityKey).toString('hex')
    if (derived !== nodeId) return refuse('node_id_mismatch')
    if (claim.uuid !== undefined && (typeof claim.uuid !== 'string' || uuidProblem(claim.uuid) !== undefined)) return refuse('invalid_uuid')
    if (claim.name !== undefined && (typeof claim.name !== 'string' || peerNameProblem(claim.name) !== undefined)) return refuse('invalid_name')
    if (claim.meshIp !== undefined && (typeof claim.meshIp !== 'string' || !isMeshIp(claim.meshIp))) return refuse('invalid_mesh_ip')
    const entry = this.entryFor(nodeId)
    if (this.mode === 'allowlist' && entry === undefined) return refuse('not_allowlisted')

    const uuid = claim.uuid?.toLowerCase()
    const name = entry?.name ?? claim.name
    if (uuid !== undefined) {
      for (const r of this.admitted.values()) {
        if (r.uuid === uuid && r.node_id !== nodeId) return refuse('key_changed', { node_id: r.node_id, key: r.identity_key, conflict: 'uuid' })
      }
    }
    if (name !== undefined) {
      const owner = this.labelOwner(name)
      if (owner !== undefined && owner.node_id !== nodeId) return refuse('key_changed', { node_id: owner.node_id, key: owner.key, conflict: 'name' })
      const folded = name.toLowerCase()
      for (const r of this.admitted.values()) {
        if (r.name !== null && r.name.toLowerCase() === folded && r.node_id !== nodeId) return refuse('key_changed', { node_id: r.node_id, key: r.identity_key, conflict: 'name' })
      }
    }

    const known = this.admitted.get(nodeId)
    if (known !== undefined) {
      const changed: Array<'uuid' | 'name' | 'mesh_ip'> = []
      if (uuid !== undefined && known.uuid !== uuid) {
        known.uuid = uuid
        changed.push('uuid')
      }
      if (name !== undefined && known.name !== name) {
        known.name = name
        changed.push('name')
      }
      if (claim.meshIp !== undefined && known.mesh_ip !== claim.meshIp) {
        known.mesh_ip = claim.meshIp
        changed.push('mesh_ip')
      }
      known.count++
      if (at > known.last_seen) known.last_seen = at
      this.unsaved = true
      if (changed.length > 0) this.save()
      return changed.length > 0 ? { decision: 'known', peer: copy(known), changed } : { decision: 'known', peer: copy(known) }
    }

    if (this.admitted.size >= this.maxPeers) return refuse('registry_full')
    const rec: PeerRecord = { node_id: nodeId, uuid: uuid ?? null, name: name ?? null, mesh_ip: claim.meshIp ?? null, identity_key: key, state: 'admitted', reason: null, first_seen: at, last_seen: at, count: 1 }
    this.admitted.set(nodeId, rec)
    this.refused.delete(nodeId)
    this.save()
    return { decision: 'new', peer: copy(rec) }
  }

  /** The admitted peer with this node ID (a copy), if any. */
  get(nodeId: string): PeerRecord | undefined {
    const r = this.admitted.get(nodeId.toLowerCase())
    return r === undefined ? undefined : copy(r)
  }

  /**
   * How far a node is trusted (the .klp-policy's min_trust): admitted and on the config's
   * allowlist; admitted on first use; or not admitted. `nodeId` in lower case, as the mesh has it.
   */
  trust(nodeId: string): 'unknown' | 'tofu' | 'allowlisted' {
    if (!this.admitted.has(nodeId)) return 'unknown'
    return this.listed.has(nodeId) ? 'allowlisted' : 'tofu'
  }

  /** True when the node is admitted. */
  isAdmitted(nodeId: string): boolean {
    return this.admitted.has(nodeId.toLowerCase())
  }

  /** Admitted peers (in admission order), then refused records (least recently seen first); copies. */
  list(): PeerRecord[] {
    return [...this.admitted.values(), ...this.refused.values()].map(copy)
  }

  /**
   * Forgets a node: its admitted record (releasing its UUID and name pins, so the next key that
   * claims them is pinned) and its refused record. Returns what was removed; writes at once.
   */
  remove(nodeId: string): PeerRecord[] {
    const id = nodeId.toLowerCase()
    const out: PeerRecord[] = []
    const a = this.admitted.get(id)
    if (a !== undefined) out.push(a)
    const r = this.refused.get(id)
    if (r !== undefined) out.push(r)
    if (out.length === 0) return []
    this.admitted.delete(id)
    this.refused.delete(id)
    this.save()
    return out.map(copy)
  }

  /** True when something (last_seen, counts, refusals) is not on disk yet. */
  get dirty(): boolean {
    return this.unsaved
  }

  /** Writes pending changes, if any; true when it wrote. */
  flush(): boolean {
    if (!this.unsaved) return false
    this.save()
    return true
  }

  /** Counts for status output. */
  counts(): { admitted: number; refused: number } {
    return { admitted: this.admitted.size, refused: this.refused.size }
  }

  get policyMode(): 'tofu' | 'allowlist' {
    return this.mode
  }

  private trimRefused(): void {
    while (this.refused.size > this.maxRefused) {
      // Least recently seen first: refusals re-insert their record at the end.
      const oldest = this.refused.keys().next().value as string
      this.refused.delete(oldest)
      this.unsaved = true
    }
  }

  private save(): void {
    writeFileAtomicSync(this.file, renderRegistry([...this.admitted.values(), ...this.refused.values()]))
    this.unsaved = false
  }
}
