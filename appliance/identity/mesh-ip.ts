/**
 * The node's mesh IP address in 100.64.0.0/16, derived from its identity key, and the rule by
 * which two nodes that derive the same address settle it without any external service.
 *
 * Derivation (docs/identity.md has the same, precisely):
 *
 *     h     = BLAKE2b-256("kairo/mesh-ip/v1" || identity public key (32 bytes) || attempt (u32 BE))
 *     n     = (first 6 bytes of h, big-endian unsigned) mod space
 *     index = 256 + n                      (space = 65279 by default)
 *     IP    = 100.64.(index >> 8).(index & 255)
 *
 * so addresses run 100.64.1.0 .. 100.64.255.254. Reserved, never derived: 100.64.0.0/24 (the
 * network address 100.64.0.0 and 255 addresses kept for fixed, well-known services such as an
 * anycast gateway or resolver a deployment may add) and 100.64.255.255 (the broadcast address).
 * The 48-bit modulo bias is below 2^-32. `attempt` starts at 0 and only grows.
 *
 * Conflicts: every node announces (node ID, mesh IP) to its peers; each node feeds what it
 * hears to `observe()`. When a peer claims my address, the node with the lower node ID (the
 * 16-byte BLAKE2b hash of its key, compared as unsigned bytes, i.e. as lower-case hex strings)
 * keeps it; the other moves to the next attempt whose address no peer it has heard claims. Both
 * apply the same rule to the same two node IDs, so they agree on who moves without talking about
 * it. Convergence: the lowest node ID never moves; each other node moves only on conflicts with
 * lower node IDs, and once those have settled and been heard, its next move avoids them.
 *
 * Persistence: `<stateDir>/mesh-ip.json` {"version":1,"node_id","mesh_ip","attempt","assigned_at"}
 * is written atomically on every change (files.ts), before `observe()` returns, so a restart or a
 * kill -9 keeps the address a node last announced. A file written for another node ID (the
 * identity was replaced) is superseded by a fresh derivation at attempt 0; a damaged file is an
 * error naming it (delete it to derive the address again).
 */
import { blake2b } from '../core/crypto.js'
import { nodeIdFromPublicKey } from '../core/identity.js'
import { IdentityFileError, describe, isIsoUtc, isoUtc, parseJsonObject, readSmallFileSync, writeFileAtomicSync } from './files.js'

export const MESH_IP_FILE = 'mesh-ip.json'
/** Domain separation of the address hash. */
export const MESH_IP_CONTEXT = Buffer.from('kairo/mesh-ip/v1')
/** The first index (offset in 100.64.0.0/16) that may be derived: 100.64.1.0. */
export const MESH_IP_FIRST_INDEX = 256
/** Addresses a key can derive: 100.64.1.0 .. 100.64.255.254. */
export const MESH_IP_SPACE = 65535 - MESH_IP_FIRST_INDEX
/** The largest attempt (u32). */
export const MESH_IP_MAX_ATTEMPT = 0xffff_ffff
/** How many attempts a move tries for an address nobody claims before it takes the next one anyway. */
export const MESH_IP_SEARCH_LIMIT = 1 << 16

const MAX_FILE_BYTES = 64 * 1024
const DOTTED = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/
const NODE_ID = /^[0-9a-f]{32}$/

function checkSpace(space: number): void {
  if (!Number.isInteger(space) || space < 1 || space > MESH_IP_SPACE) throw new RangeError(`mesh IP space must be an integer 1..${MESH_IP_SPACE}, got ${space}`)
}

/** The index (0..65535 in 100.64.0.0/16) of a dotted-quad address in 100.64.0.0/16; undefined otherwise. */
export function meshIpIndex(ip: string): number | undefined {
  const m = DOTTED.exec(ip)
  if (m === null) return undefined
  const [a, b, c, d] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]
  if (a !== 100 || b !== 64 || c > 255 || d > 255) return undefined
  return (c << 8) | d
}

/** True for an address in 100.64.0.0/16 written as a canonical dotted quad. */
export function isMeshIp(ip: string): boolean {
  return meshIpIndex(ip) !== undefined
}

/** True for an address a key can derive (not in 100.64.0.0/24, not 100.64.255.255). */
export function isAssignableMeshIp(ip: string): boolean {
  const i = meshIpIndex(ip)
  return i !== undefined && i >= MESH_IP_FIRST_INDEX && i < MESH_IP_FIRST_INDEX + MESH_IP_SPACE
}

function ipOfIndex(index: number): string {
  return `100.64.${index >> 8}.${index & 255}`
}

/**
 * The mesh IP of `identityKey` at `attempt` (0, 1, ...). `space` (tests) narrows the addresses
 * to the first `space` ones (100.64.1.0 upwards) so that collisions are easy to cause.
 */
export function meshIpFor(identityKey: Uint8Array, attempt: number, space: number = MESH_IP_SPACE): string {
  if (identityKey.length !== 32) throw new TypeError(`identity key must be 32 bytes, got ${identityKey.length}`)
  if (!Number.isInteger(attempt) || attempt < 0 || attempt > MESH_IP_MAX_ATTEMPT) throw new RangeError(`mesh IP attempt must be an integer 0..${MESH_IP_MAX_ATTEMPT}, got ${attempt}`)
  checkSpace(space)
  const a = Buffer.alloc(4)
  a.writeUInt32BE(attempt)
  const h = blake2b(32, [MESH_IP_CONTEXT, identityKey, a])
  return ipOfIndex(MESH_IP_FIRST_INDEX + (h.readUIntBE(0, 6) % space))
}

/** Who keeps an address two nodes claim: the lower node ID (lower-case hex). The same on both sides. */
export function conflictWinner(nodeIdA: string, nodeIdB: string): string {
  return nodeIdA < nodeIdB ? nodeIdA : nodeIdB
}

export interface MeshIpAllocatorOptions {
  /** This node's Ed25519 public key (32 bytes). */
  identityKey: Uint8Array
  /** This node's ID (32 hex digits); must be the one derived from identityKey. */
  nodeId: string
  /** Where the address is kept: <stateDir>/mesh-ip.json. */
  file: string
  /** Clock (ms) for assigned_at; default Date.now. */
  now?: () => number
  /** Narrower address space, for tests (see meshIpFor). */
  space?: number
}

/** A conflict settled by observe(). */
export interface MeshIpConflict {
  /** The address both claimed. */
  from: string
  /** My address after the decision: `from` when I kept it, the new one when I moved. */
  to: string
  /** My attempt after the decision. */
  attempt: number
  /** The peer's node ID. */
  with: string
  /** 'mine': I kept the address (the peer moves); 'theirs': the peer keeps it and I moved. */
  kept: 'mine' | 'theirs'
}

/** How the allocator started: restored from its file or freshly derived (to record in the logs). */
export interface MeshIpOpened {
  ip: string
  attempt: number
  /** True when the address was derived now (no file, or a file of another node ID) and written. */
  assigned: boolean
  /** Set when the file held another node ID's address (the identity was replaced). */
  replacedNodeId?: string
}

export class MeshIpAllocator {
  readonly file: string
  readonly nodeId: string
  readonly opened: MeshIpOpened
  private readonly key: Buffer
  private readonly space: number
  private readonly now: () => number
  private ip: string
  private attempt: number
  /** Latest claim heard from each peer: node ID -> address. */
  private readonly claims = new Map<string, string>()
  /** Address -> node IDs claiming it (latest claims only). */
  private readonly byIp = new Map<string, Set<string>>()
  /** Conflicts I won and reported already: `${peer} ${ip}`; a repeated claim is not reported again. */
  private readonly reported = new Set<string>()

  constructor(opts: MeshIpAllocatorOptions) {
    if (!NODE_ID.test(opts.nodeId)) throw new TypeError(`nodeId must be 32 lower-case hex digits, got ${JSON.stringify(opts.nodeId)}`)
    const derived = nodeIdFromPublicKey(opts.identityKey).toString('hex')
    if (derived !== opts.nodeId) throw new TypeError(`nodeId ${opts.nodeId} is not the node ID of the identity key (${derived})`)
    this.key = Buffer.from(opts.identityKey)
    this.nodeId = opts.nodeId
    this.file = opts.file
    this.space = opts.space ?? MESH_IP_SPACE
    checkSpace(this.space)
    this.now = opts.now ?? Date.now

    const stored = this.read()
    if (stored !== undefined && stored.node_id === this.nodeId) {
      this.ip = stored.mesh_ip
      this.attempt = stored.attempt
      this.opened = { ip: this.ip, attempt: this.attempt, assigned: false }
    } else {
      this.attempt = 0
      this.ip = meshIpFor(this.key, 0, this.space)
      this.persist()
      this.opened = stored === undefined ? { ip: this.ip, attempt: 0, assigned: true } : { ip: this.ip, attempt: 0, assigned: true, replacedNodeId: stored.node_id }
    }
  }

  private read(): { node_id: string; mesh_ip: string; attempt: number } | undefined {
    const got = readSmallFileSync(this.file, MAX_FILE_BYTES)
    if (got === undefined) return undefined
    const f = this.file
    const o = parseJsonObject(f, got.text)
    if (o.version !== 1) throw new IdentityFileError(f, 'version', `is ${o.version === undefined ? 'missing' : describe(o.version)}; expected 1`)
    if (typeof o.node_id !== 'string' || !NODE_ID.test(o.node_id)) throw new IdentityFileError(f, 'node_id', `is ${o.node_id === undefined ? 'missing' : describe(o.node_id)}; expected 32 lower-case hex digits`)
    if (typeof o.attempt !== 'number' || !Number.isInteger(o.attempt) || o.attempt < 0 || o.attempt > MESH_IP_MAX_ATTEMPT) {
      throw new IdentityFileError(f, 'attempt', `is ${o.attempt === undefined ? 'missing' : describe(o.attempt)}; expected an integer 0..${MESH_IP_MAX_ATTEMPT}`)
    }
    if (typeof o.mesh_ip !== 'string' || !isMeshIp(o.mesh_ip)) throw new IdentityFileError(f, 'mesh_ip', `is ${o.mesh_ip === undefined ? 'missing' : describe(o.mesh_ip)}; expected an address in 100.64.0.0/16`)
    if (o.assigned_at !== undefined && (typeof o.assigned_at !== 'string' || !isIsoUtc(o.assigned_at))) throw new IdentityFileError(f, 'assigned_at', `is ${describe(o.assigned_at)}; expected an ISO 8601 UTC timestamp`)
    if (o.node_id === this.nodeId) {
      const expected = meshIpFor(this.key, o.attempt, this.space)
      if (o.mesh_ip !== expected) {
        throw new IdentityFileError(f, 'mesh_ip', `${o.mesh_ip} is not this node's address for attempt ${o.attempt} (that is ${expected}); the file was edited or damaged. Delete it to derive the address again`)
      }
    }
    return { node_id: o.node_id, mesh_ip: o.mesh_ip, attempt: o.attempt }
  }

  private persist(): void {
    writeFileAtomicSync(this.file, `${JSON.stringify({ version: 1, node_id: this.nodeId, mesh_ip: this.ip, attempt: this.attempt, assigned_at: isoUtc(this.now()) })}\n`)
  }

  /** My address and the attempt that derived it. */
  current(): { ip: string; attempt: number } {
    return { ip: this.ip, attempt: this.attempt }
  }

  /** The peers (node IDs, sorted) whose latest claim is `ip`; empty when none. */
  claimedBy(ip: string): string[] {
    return [...(this.byIp.get(ip) ?? [])].sort()
  }

  /** Every peer's latest claim, by node ID. */
  claimsHeard(): Array<{ nodeId: string; meshIp: string }> {
    return [...this.claims].sort(([a], [b]) => (a < b ? -1 : 1)).map(([nodeId, meshIp]) => ({ nodeId, meshIp }))
  }

  /** Drops what was heard from a peer (it was removed, or left): its address stops being avoided. */
  forget(nodeId: string): void {
    const old = this.claims.get(nodeId)
    if (old === undefined) return
    this.claims.delete(nodeId)
    this.unindex(nodeId, old)
    this.reported.delete(`${nodeId} ${old}`)
  }

  private unindex(nodeId: string, ip: string): void {
    const set = this.byIp.get(ip)
    if (set === undefined) return
    set.delete(nodeId)
    if (set.size === 0) this.byIp.delete(ip)
  }

  /**
   * Records a peer's claim and settles a conflict with mine: null when there is none (or it was
   * reported already), else what was decided. When I lose, the new address is on disk before this
   * returns. TypeError for a node ID that is not 32 hex digits or an address outside 100.64.0.0/16;
   * a claim carrying my own node ID is ignored (null).
   */
  observe(peer: { nodeId: string; meshIp: string }): MeshIpConflict | null {
    if (typeof peer.nodeId !== 'string' || !/^[0-9a-fA-F]{32}$/.test(peer.nodeId)) throw new TypeError(`peer nodeId must be 32 hex digits, got ${JSON.stringify(peer.nodeId)}`)
    if (typeof peer.meshIp !== 'string' || !isMeshIp(peer.meshIp)) throw new TypeError(`peer meshIp must be an address in 100.64.0.0/16, got ${JSON.stringify(peer.meshIp)}`)
    const nodeId = peer.nodeId.toLowerCase()
    if (nodeId === this.nodeId) return null
    const old = this.claims.get(nodeId)
    if (old !== peer.meshIp) {
      if (old !== undefined) {
        this.unindex(nodeId, old)
        this.reported.delete(`${nodeId} ${old}`)
      }
      this.claims.set(nodeId, peer.meshIp)
      let set = this.byIp.get(peer.meshIp)
      if (set === undefined) this.byIp.set(peer.meshIp, (set = new Set()))
      set.add(nodeId)
    }
    if (peer.meshIp !== this.ip) return null
    const from = this.ip
    if (conflictWinner(this.nodeId, nodeId) === this.nodeId) {
      const k = `${nodeId} ${from}`
      if (this.reported.has(k)) return null
      this.reported.add(k)
      return { from, to: from, attempt: this.attempt, with: nodeId, kept: 'mine' }
    }
    this.moveOn()
    return { from, to: this.ip, attempt: this.attempt, with: nodeId, kept: 'theirs' }
  }

  /** Takes the next attempt whose address no peer claims (or, past the search limit, the next attempt). */
  private moveOn(): void {
    let next = this.attempt + 1
    for (let a = next, tried = 0; a <= MESH_IP_MAX_ATTEMPT && tried < MESH_IP_SEARCH_LIMIT; a++, tried++) {
      const ip = meshIpFor(this.key, a, this.space)
      if (ip !== this.ip && !this.byIp.has(ip)) {
        next = a
        break
      }
    }
    if (next > MESH_IP_MAX_ATTEMPT) throw new RangeError('mesh IP attempts exhausted')
    this.attempt = next
    this.ip = meshIpFor(this.key, next, this.space)
    this.persist()
  }
}
