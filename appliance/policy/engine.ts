/**
 * The policy engine: decides, for each packet on the relay path, whether a `.klp-policy` lets it
 * through (docs/policy.md). The mesh node asks `check()` before anything is forwarded, delivered
 * or stored; a refused packet is dropped, and the verdict says what else to do (the engine has
 * already applied a temporary block; a force disconnect of the link is the caller's to start).
 *
 * Checks, in order, the first failing one deciding the verdict:
 *   1. temporary blocks (set by earlier violations, or by block()): the originator or the
 *      neighbour handing the packet over is blocked → peer_temporarily_blocked
 *   2. peers.block, same two node IDs → peer_blocked
 *   3. peers.allow: the originator is not listed (or unknown) → peer_not_allowed
 *   4. peers.min_trust → trust_below_minimum
 *   5. types.agent / types.control → type_not_allowed
 *   6. quotas, in file order → quota_messages / quota_bytes. A packet is charged to every quota
 *      that counts it only when it passes all of them, so a refused packet costs no budget.
 *
 * Quota windows are fixed windows per bucket (a peer, a type, or a peer and a type): a window
 * opens with the first packet that reaches the quota for that bucket and lasts window_s; the
 * first packet at or after its end opens the next one. Within a window at most `messages`
 * packets and `bytes` bytes pass. The clock is injected so that tests can sit exactly on a
 * boundary.
 *
 * check() is on the hot path of every relayed packet. The allowed path allocates nothing: the
 * verdict is one shared frozen object, lookups are Maps keyed by the node ID strings the caller
 * already holds, per-type state is indexed by the type byte, and the buckets a packet is charged
 * to are remembered in a scratch array kept per policy. Only a refusal builds a verdict (and its
 * detail text), and only the first packet of a new bucket allocates the bucket.
 *
 * Memory is bounded whatever peers send: each quota tracks at most `maxTrackedPerQuota` buckets.
 * When full, buckets whose window has ended are swept (at most once per window of the oldest
 * remaining one, so a flood of new node IDs cannot make every check a sweep); when still full,
 * a packet that would need a new bucket is refused as over quota — failing closed, since only
 * traffic claiming that many originators in one window gets there. Temporary blocks are bounded
 * by `maxBlocks` the same way (beyond it, no new block is set; the packet is still dropped).
 */
import { packetTypeName } from '../core/wire/constants.js'
import { VIOLATIONS, isAgentType, isControlType, type Policy, type PolicyAction, type QuotaRule, type Trust, type Violation } from './policy.js'

/** What check() is asked about: one packet, as the relay path sees it. */
export interface PolicySubject {
  /** relay: forwarded for others; deliver: addressed to this node; broadcast: a flood this node delivers and repeats. */
  path: 'relay' | 'deliver' | 'broadcast'
  /** Packet type byte (PacketType). */
  type: number
  /** Originating node ID (32 lower-case hex) if known, else the neighbour's; null if neither is. */
  peer: string | null
  /** The neighbour that handed the packet over (node ID), if known. */
  via: string | null
  /** Name of the link it came on. */
  link: string
  /** Size counted against byte quotas (the frame as received). */
  bytes: number
  /** How far `peer` is trusted. */
  trust: Trust
}

export type { Violation, Trust }

export interface Verdict {
  ok: boolean
  violation?: Violation
  /** The rule that refused: `peers.block`, `types.agent`, a quota's name, ...; for a temporary block, the rule that set it. */
  rule?: string
  /** One line for people: what was wrong. */
  detail?: string
  /** The peer (`subject.peer`, else `via`) was blocked for this long (ms) by this verdict. */
  blockPeerMs?: number
  /** The action asks for a force disconnect of `subject.link`. */
  disconnectLink?: boolean
}

/** The verdict of every allowed packet: shared, so never to be changed. */
export const ALLOWED: Readonly<Verdict> = Object.freeze({ ok: true })

export interface PolicyEngineOptions {
  /** Clock, ms (default Date.now). */
  now?: () => number
  /** Most buckets one quota tracks (default 16384). */
  maxTrackedPerQuota?: number
  /** Most temporary blocks held (default 65536). */
  maxBlocks?: number
}

export interface BlockedPeer {
  peer: string
  /** ms on the engine's clock. */
  until: number
  rule: string
}

export interface PolicyCounters {
  checked: number
  allowed: number
  refused: number
  /** Refusals per violation, every violation listed (0 included). */
  byViolation: Record<string, number>
  /** Refusals per rule (`peers.block`, a quota's name, ...); only rules that refused something. */
  byRule: Record<string, number>
  /** Temporary blocks in force, soonest to end first. */
  blockedPeers: BlockedPeer[]
}

const DROP: PolicyAction = Object.freeze({ blockPeerMs: null, disconnectLink: false })
const DEFAULT_MAX_TRACKED = 16_384
const DEFAULT_MAX_BLOCKS = 65_536

class Bucket {
  messages = 0
  bytes = 0
  constructor(public start: number) {}
}

/** One quota rule and its buckets. */
class QuotaState {
  readonly windowMs: number
  readonly maxMessages: number
  readonly maxBytes: number
  /** 1 at the type bytes the quota counts. */
  readonly counts = new Uint8Array(256)
  /** What its buckets depend on: a rule whose key is unchanged keeps them across replace(). */
  readonly key: string
  private byPeer = new Map<string, Bucket>()
  private byType: Array<Bucket | undefined> = []
  private byPeerType = new Map<string, Map<number, Bucket>>()
  private tracked = 0
  /** No bucket can have expired before this (ms); 0: unknown. */
  private nextSweepAt = 0

  constructor(
    readonly rule: QuotaRule,
    private readonly maxTracked: number,
  ) {
    this.windowMs = rule.windowMs
    this.maxMessages = rule.messages ?? Infinity
    this.maxBytes = rule.bytes ?? Infinity
    if (rule.types === null) {
      for (let t = 0; t < 256; t++) if (isAgentType(t)) this.counts[t] = 1
    } else for (const t of rule.types) this.counts[t] = 1
    this.key = JSON.stringify([rule.per, rule.windowMs, rule.messages, rule.bytes, rule.types])
  }

  /** Takes over the buckets of the same rule in the policy being replaced. */
  adopt(old: QuotaState): void {
    this.byPeer = old.byPeer
    this.byType = old.byType
    this.byPeerType = old.byPeerType
    this.tracked = old.tracked
    this.nextSweepAt = old.nextSweepAt
  }

  /** The bucket of (peer, type), created if new; null when the quota tracks as many as it may. */
  bucket(peer: string, type: number, now: number): Bucket | null {
    switch (this.rule.per) {
      case 'type': {
        const b = this.byType[type]
        if (b !== undefined) return b
        // At most 256 buckets: no bound needed.
        return (this.byType[type] = new Bucket(now))
      }
      case 'peer': {
        const b = this.byPeer.get(peer)
        if (b !== undefined) return b
        if (!this.room(now)) return null
        const nb = new Bucket(now)
        this.byPeer.set(peer, nb)
        this.tracked++
        return nb
      }
      case 'peer_type': {
        let inner = this.byPeerType.get(peer)
        const b = inner?.get(type)
        if (b !== undefined) return b
        if (!this.room(now)) return null
        if (inner === undefined) {
          inner = new Map()
          this.byPeerType.set(peer, inner)
        }
        const nb = new Bucket(now)
        inner.set(type, nb)
        this.tracked++
        return nb
      }
    }
  }

  private room(now: number): boolean {
    if (this.tracked < this.maxTracked) return true
    if (now < this.nextSweepAt) return false
    this.sweep(now)
    return this.tracked < this.maxTracked
  }

  /** Drops buckets whose window has ended (they would be reset by their next packet anyway). */
  sweep(now: number): void {
    let oldest = Infinity
    const keep = (b: Bucket) => {
      if (now - b.start >= this.windowMs) return false
      if (b.start < oldest) oldest = b.start
      return true
    }
    for (const [peer, b] of this.byPeer) if (!keep(b)) this.byPeer.delete(peer)
    for (const [peer, inner] of this.byPeerType) {
      for (const [type, b] of inner) if (!keep(b)) inner.delete(type)
      if (inner.size === 0) this.byPeerType.delete(peer)
    }
    let n = this.byPeer.size
    for (const inner of this.byPeerType.values()) n += inner.size
    this.tracked = n
    this.nextSweepAt = oldest === Infinity ? 0 : oldest + this.windowMs
  }
}

/** A policy made ready for check(). */
interface Compiled {
  policy: Policy
  /** 1 at the type bytes the policy lets through. */
  typeOk: Uint8Array
  allow: Set<string> | null
  block: Set<string> | null
  minTrust: number
  quotas: QuotaState[]
  /** The buckets the packet being checked will be charged to, one per quota (reused). */
  scratch: Array<Bucket | null>
  actions: Record<Violation, PolicyAction>
}

function trustRank(t: Trust): number {
  return t === 'allowlisted' ? 2 : t === 'tofu' ? 1 : 0
}

const seconds = (ms: number) => `${ms / 1000} s`

export class PolicyEngine {
  private compiled: Compiled | null = null
  private readonly now: () => number
  private readonly maxTracked: number
  private readonly maxBlocks: number
  private readonly blocks = new Map<string, { until: number; rule: string }>()
  private nChecked = 0
  private nAllowed = 0
  private nRefused = 0
  private readonly byViolation = Object.fromEntries(VIOLATIONS.map((v) => [v, 0])) as Record<Violation, number>
  private readonly byRule = new Map<string, number>()

  /** `policy` null: everything passes, except peers blocked with block(). */
  constructor(policy: Policy | null, opts: PolicyEngineOptions = {}) {
    this.now = opts.now ?? Date.now
    this.maxTracked = opts.maxTrackedPerQuota ?? DEFAULT_MAX_TRACKED
    this.maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS
    if (!(Number.isSafeInteger(this.maxTracked) && this.maxTracked >= 1)) throw new TypeError(`maxTrackedPerQuota must be a whole number >= 1, got ${String(opts.maxTrackedPerQuota)}`)
    if (!(Number.isSafeInteger(this.maxBlocks) && this.maxBlocks >= 1)) throw new TypeError(`maxBlocks must be a whole number >= 1, got ${String(opts.maxBlocks)}`)
    this.replace(policy)
  }

  /** The policy in force (null: none). */
  get policy(): Policy | null {
    return this.compiled?.policy ?? null
  }

  /**
   * Puts `policy` in force (a hot reload: the caller has parsed it, so it is valid). Temporary
   * blocks stay until they end. A quota rule with the same name and the same definition (per,
   * window, limits, types) keeps its windows; a new or changed one starts empty.
   */
  replace(policy: Policy | null): void {
    if (policy === null) {
      this.compiled = null
      return
    }
    const typeOk = new Uint8Array(256)
    for (let t = 0; t < 256; t++) {
      if (isControlType(t)) typeOk[t] = policy.types.control === null ? 1 : 0
      else if (isAgentType(t)) typeOk[t] = policy.types.agent === null ? 1 : 0
    }
    for (const t of policy.types.control ?? []) typeOk[t] = 1
    for (const t of policy.types.agent ?? []) typeOk[t] = 1
    const old = new Map((this.compiled?.quotas ?? []).map((q) => [q.rule.name, q]))
    const quotas = policy.quotas.map((rule) => {
      const q = new QuotaState(rule, this.maxTracked)
      const was = old.get(rule.name)
      if (was !== undefined && was.key === q.key) q.adopt(was)
      return q
    })
    this.compiled = {
      policy,
      typeOk,
      allow: policy.peers.allow === null ? null : new Set(policy.peers.allow),
      block: policy.peers.block.length === 0 ? null : new Set(policy.peers.block),
      minTrust: trustRank(policy.peers.minTrust),
      quotas,
      scratch: quotas.map(() => null),
      actions: policy.actions,
    }
  }

  /** The verdict on one packet; charges it to its quotas when it passes. */
  check(s: PolicySubject): Verdict {
    this.nChecked++
    const c = this.compiled
    const now = this.blocks.size !== 0 || (c !== null && c.quotas.length !== 0) ? this.now() : 0

    if (this.blocks.size !== 0) {
      const who = this.blockedOne(s.peer, now) ? s.peer : s.via !== s.peer && this.blockedOne(s.via, now) ? s.via : null
      if (who !== null) {
        const b = this.blocks.get(who)!
        return this.refuse(s, 'peer_temporarily_blocked', b.rule, `${who}${who === s.peer ? '' : ' (the neighbour)'} is blocked for ${seconds(b.until - now)} more by ${b.rule}`, c?.actions.peer_temporarily_blocked ?? DROP)
      }
    }
    if (c === null) {
      this.nAllowed++
      return ALLOWED
    }

    if (c.block !== null) {
      if (s.peer !== null && c.block.has(s.peer)) return this.refuse(s, 'peer_blocked', 'peers.block', `${s.peer} is in peers.block`, c.actions.peer_blocked)
      if (s.via !== null && c.block.has(s.via)) return this.refuse(s, 'peer_blocked', 'peers.block', `the neighbour ${s.via} is in peers.block`, c.actions.peer_blocked)
    }
    if (c.allow !== null && (s.peer === null || !c.allow.has(s.peer))) {
      return this.refuse(s, 'peer_not_allowed', 'peers.allow', `${s.peer ?? 'an unknown originator'} is not in peers.allow`, c.actions.peer_not_allowed)
    }
    if (c.minTrust !== 0 && trustRank(s.trust) < c.minTrust) {
      return this.refuse(s, 'trust_below_minimum', 'peers.min_trust', `trust ${String(s.trust)} is below peers.min_trust ${c.policy.peers.minTrust}`, c.actions.trust_below_minimum)
    }
    if (c.typeOk[s.type] !== 1) {
      const where = isControlType(s.type) ? 'types.control' : isAgentType(s.type) ? 'types.agent' : 'types'
      const name = Number.isInteger(s.type) && s.type >= 0 && s.type <= 255 ? packetTypeName(s.type) : String(s.type)
      return this.refuse(s, 'type_not_allowed', where, where === 'types' ? `${name} is not a message type` : `${name} is not in ${where}`, c.actions.type_not_allowed)
    }

    const qs = c.quotas
    if (qs.length !== 0) {
      const scratch = c.scratch
      // NaN and negative sizes (a caller's bug) count as 0 rather than poison the bucket.
      const bytes = s.bytes > 0 ? s.bytes : 0
      const peer = s.peer ?? ''
      for (let i = 0; i < qs.length; i++) {
        const q = qs[i]!
        scratch[i] = null
        if (q.counts[s.type] !== 1) continue
        const b = q.bucket(peer, s.type, now)
        if (b === null) return this.refuse(s, 'quota_messages', q.rule.name, `${q.rule.name}: more than ${this.maxTracked} ${q.rule.per === 'peer_type' ? 'peer and type pairs' : 'peers'} in one window; new ones are refused until windows end`, q.rule.action ?? c.actions.quota_messages)
        if (now - b.start >= q.windowMs) {
          b.start = now
          b.messages = 0
          b.bytes = 0
        }
        if (b.messages >= q.maxMessages) return this.refuse(s, 'quota_messages', q.rule.name, `${q.rule.name}: ${q.maxMessages} messages per ${seconds(q.windowMs)} ${scopeText(q.rule, s)} used up; the window ends in ${seconds(b.start + q.windowMs - now)}`, q.rule.action ?? c.actions.quota_messages)
        if (b.bytes + bytes > q.maxBytes) return this.refuse(s, 'quota_bytes', q.rule.name, `${q.rule.name}: ${b.bytes} + ${bytes} bytes would pass ${q.maxBytes} bytes per ${seconds(q.windowMs)} ${scopeText(q.rule, s)}; the window ends in ${seconds(b.start + q.windowMs - now)}`, q.rule.action ?? c.actions.quota_bytes)
        scratch[i] = b
      }
      for (let i = 0; i < qs.length; i++) {
        const b = scratch[i]
        if (b != null) {
          b.messages++
          b.bytes += bytes
          scratch[i] = null
        }
      }
    }
    this.nAllowed++
    return ALLOWED
  }

  /** True when `id` has a temporary block in force (one that has ended is removed). */
  private blockedOne(id: string | null, now: number): boolean {
    if (id === null) return false
    const b = this.blocks.get(id)
    if (b === undefined) return false
    if (b.until > now) return true
    this.blocks.delete(id)
    return false
  }

  private refuse(s: PolicySubject, violation: Violation, rule: string, detail: string, action: PolicyAction): Verdict {
    this.nRefused++
    this.byViolation[violation]++
    this.byRule.set(rule, (this.byRule.get(rule) ?? 0) + 1)
    const v: Verdict = { ok: false, violation, rule, detail }
    if (action.blockPeerMs !== null) {
      const target = s.peer ?? s.via
      if (target !== null) {
        if (this.block(target, action.blockPeerMs, rule)) v.blockPeerMs = action.blockPeerMs
        else v.detail = `${detail} (${target} not blocked: ${this.maxBlocks} blocks in force already)`
      }
    }
    if (action.disconnectLink) v.disconnectLink = true
    return v
  }

  /**
   * Blocks `peer` for `forMs` from now (an operator, or a violation's action); an existing
   * longer block is kept. False when `maxBlocks` blocks are in force and none has ended.
   */
  block(peer: string, forMs: number, rule: string): boolean {
    if (!(forMs > 0)) throw new TypeError(`forMs must be more than 0, got ${forMs}`)
    const now = this.now()
    const until = now + forMs
    const b = this.blocks.get(peer)
    if (b !== undefined && b.until > now) {
      if (until > b.until) {
        b.until = until
        b.rule = rule
      }
      return true
    }
    if (b === undefined && this.blocks.size >= this.maxBlocks) {
      this.pruneBlocks(now)
      if (this.blocks.size >= this.maxBlocks) return false
    }
    this.blocks.set(peer, { until, rule })
    return true
  }

  /** Ends `peer`'s temporary block; false when it had none. */
  unblock(peer: string): boolean {
    return this.blocks.delete(peer)
  }

  /** The block in force on `peer`, if any. */
  blocked(peer: string): BlockedPeer | null {
    const now = this.now()
    if (!this.blockedOne(peer, now)) return null
    const b = this.blocks.get(peer)!
    return { peer, until: b.until, rule: b.rule }
  }

  private pruneBlocks(now: number): void {
    for (const [peer, b] of this.blocks) if (b.until <= now) this.blocks.delete(peer)
  }

  counters(): PolicyCounters {
    this.pruneBlocks(this.now())
    return {
      checked: this.nChecked,
      allowed: this.nAllowed,
      refused: this.nRefused,
      byViolation: { ...this.byViolation },
      byRule: Object.fromEntries(this.byRule),
      blockedPeers: [...this.blocks].map(([peer, b]) => ({ peer, until: b.until, rule: b.rule })).sort((a, b) => a.until - b.until || (a.peer < b.peer ? -1 : 1)),
    }
  }
}

function scopeText(rule: QuotaRule, s: PolicySubject): string {
  const peer = s.peer ?? 'unknown originators'
  switch (rule.per) {
    case 'peer':
      return `for ${peer}`
    case 'type':
      return `for ${packetTypeName(s.type)}`
    case 'peer_type':
      return `for ${peer} ${packetTypeName(s.type)}`
  }
}
