/**
 * The gateway daemon: the configuration's links under one MeshNode, the node's identity and
 * coordination state, the VoV audit log, the durable outbox and inbox, and the control socket.
 *
 *   state dir:   identity.key (0600)        the Ed25519 seed: the node
 *                node.json                  the UUID (KAIRO_NODE_ID, or generated once)
 *                mesh-ip.json               the mesh IP in 100.64.0.0/16 and the attempt that derived it
 *                peers.json                 the peer registry (tofu pins, refusals)
 *                disconnected.json          links latched down by `kairo-gw disconnect`
 *                vov/                       the VoV audit log (docs/vov-log.md)
 *                coordination/              CoordinationNode_YYYYMMDD.log
 *                mesh/                      outbox and inbox journals
 *   runtime dir: control.sock (0660, group kairo where it exists); PTYs of emulated radios
 *
 * A link that fails to open is retried with backoff and reported; it never stops the daemon or
 * the other links. reload() (SIGHUP) applies a new config's links without touching the others.
 * stop() closes the control socket, stops the mesh (links closed, accepted messages left durable
 * in the outbox) and closes the audit log with a daemon_stopped entry.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { GatewayConfig, LinkConfig } from '../config/schema.js'
import type { Link } from '../../drivers/link.js'
import { ControlServer, type ControlContext, type ControlHandler } from '../control/server.js'
import { InvalidParamsError, param, rejectUnknownParams } from '../control/protocol.js'
import { MeshNode, type AnnouncedPeer, type MeshLogger, type MeshMessage } from '../mesh/node.js'
import { openStores } from '../mesh/stores.js'
import { loadOrCreateIdentity, type LoadedIdentity } from '../cli/state.js'
import { packageVersion } from '../cli/version.js'
import { AGENT_TYPE_NAMES, packetTypeName } from '../core/wire/constants.js'
import { loadOrCreateNodeInfo, type NodeInfo } from '../identity/node-info.js'
import { MeshIpAllocator } from '../identity/mesh-ip.js'
import { PeerRegistry } from '../identity/peers.js'
import { CoordinationLog } from '../identity/coordination-log.js'
import { VovLog } from '../vov/index.js'
import { createLink } from './links.js'
import { CaptureManager } from './captures.js'
import { DisconnectLatch, LATCH_FILE } from './latch.js'
import { LinkCutter, type CutReport } from './cut.js'
import { watchRfkill, type RfkillWatch } from './rfkill-watch.js'
import { PolicyEngine, ViolationRecorder, formatPolicy, loadPolicy, violationEntry, type Policy, type PolicySubject, type Verdict } from '../policy/index.js'
import { ipToInt, intToIp, uuidFromBytes, uuidToBytes } from './addr.js'

export interface DaemonOptions {
  stateDir: string
  runtimeDir: string
  log: MeshLogger
  /** The config file (absolute) reload() reads; absent: the embedded default, which has nothing to reload. */
  configFile?: string
  /** KAIRO_NODE_ID: the node's UUID (default: process.env.KAIRO_NODE_ID). */
  envUuid?: string
  /** Called for every event the daemon reports (ready, message, delivered, ...). */
  onEvent?: (event: string, fields: Record<string, unknown>) => void
  /** Wall clock, ms (audit and coordination timestamps). Default Date.now. */
  now?: () => number
}

export interface ReloadResult {
  added: string[]
  removed: string[]
  changed: string[]
  unchanged: string[]
  /** Other sections applied without a restart (peers). */
  applied: string[]
  /** Settings that changed but take a restart (listed, not applied). */
  restart_needed: string[]
}

export interface Daemon {
  node: MeshNode
  identity: LoadedIdentity
  nodeInfo: NodeInfo
  meshIp: () => string
  vov: VovLog
  controlSocket: string
  /** The links running now (disconnected ones are not). */
  links(): Link[]
  reload(cfg?: GatewayConfig): Promise<ReloadResult>
  stop(signal?: string): Promise<void>
}

interface Outcome {
  state: 'delivered' | 'expired'
  to: string
  attempts: number
  at: number
}

/** Outcomes of messages kept for message_status, newest last. */
const MAX_OUTCOMES = 10_000

/** Who called, for the audit log: the control client's SO_PEERCRED credentials. */
function by(ctx: ControlContext): Record<string, unknown> {
  const p = ctx.peer
  if (p.uid === undefined) return { via: 'control socket', credentials: 'unknown' }
  return { uid: p.uid, gid: p.gid, pid: p.pid, ...(p.user !== undefined ? { user: p.user } : {}) }
}

export async function startDaemon(cfgIn: GatewayConfig, opts: DaemonOptions): Promise<Daemon> {
  let cfg = cfgIn
  const emit = opts.onEvent ?? (() => {})
  const now = opts.now ?? Date.now
  const log = opts.log
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 })
  mkdirSync(opts.runtimeDir, { recursive: true, mode: 0o750 })

  // ---- identity and coordination ----------------------------------------------------------
  const identity = loadOrCreateIdentity(opts.stateDir)
  const id = identity.identity
  const nodeId = id.nodeIdHex
  const envUuid = opts.envUuid ?? process.env.KAIRO_NODE_ID
  const nodeInfo = loadOrCreateNodeInfo(opts.stateDir, envUuid !== undefined && envUuid !== '' ? { envUuid } : {})
  const vov = await VovLog.open({ dir: join(opts.stateDir, 'vov'), identity: id, now, keyLifetimeMs: cfg.audit.keyLifetimeMs, maxFileBytes: cfg.audit.maxFileBytes, maxFileAgeMs: cfg.audit.maxFileAgeMs })
  const coordination = new CoordinationLog({ dir: join(opts.stateDir, 'coordination'), timeZone: cfg.logging.timeZone, now })
  const coord = (event: string, fields: Record<string, unknown>) => {
    try {
      coordination.write(event, fields)
    } catch (err) {
      log.warn('coordination log write failed', { error: (err as Error).message })
    }
  }
  const allocator = new MeshIpAllocator({ identityKey: id.identityKey, nodeId, file: join(opts.stateDir, 'mesh-ip.json'), now })
  const registry = PeerRegistry.open(join(opts.stateDir, 'peers.json'), cfg.peers.mode === 'allowlist' ? { mode: 'allowlist', allow: cfg.peers.allow.map(allowEntry) } : { mode: 'tofu', allow: cfg.peers.allow.map(allowEntry) })
  const latch = new DisconnectLatch(join(opts.stateDir, LATCH_FILE))
  // last_seen, counts and refusals are batched by the registry: written every minute and at stop.
  const flushTimer = setInterval(() => {
    try {
      registry.flush()
    } catch (err) {
      log.warn('peer registry flush failed', { error: (err as Error).message })
    }
  }, 60_000)
  flushTimer.unref()

  const started = now()
  vov.append('daemon_started', { version: packageVersion(), pid: process.pid, node_id: nodeId, uuid: nodeInfo.uuid, config_file: opts.configFile ?? null, links: cfg.links.filter((l) => l.enabled).map((l) => l.name) })
  if (nodeInfo.created || nodeInfo.changedFrom !== undefined) vov.append('node_uuid', { uuid: nodeInfo.uuid, source: nodeInfo.source, ...(nodeInfo.changedFrom !== undefined ? { changed_from: nodeInfo.changedFrom } : {}) })
  if (allocator.opened.assigned) {
    const ip = allocator.opened.ip
    vov.append('mesh_ip_assigned', { mesh_ip: ip, attempt: allocator.opened.attempt, reason: allocator.opened.replacedNodeId !== undefined ? 'identity replaced' : 'first start' })
    coord('ip_assigned', { node_id: nodeId, mesh_ip: ip, attempt: allocator.opened.attempt })
  }

  /** Refusals already recorded, per node and reason: a refused peer announces every interval. */
  const refusalsLogged = new Set<string>()
  const refusedNodes = new Set(registry.list().filter((p) => p.state === 'refused').map((p) => p.node_id))
  const admit = (a: AnnouncedPeer): boolean => {
    const uuid = a.uuid !== undefined ? uuidFromBytes(a.uuid) : undefined
    const meshIp = a.meshIp !== undefined ? intToIp(a.meshIp) : undefined
    const r = registry.consider({ nodeId: a.nodeId, identityKey: a.identityKey, ...(uuid !== undefined && { uuid }), ...(a.name !== undefined && { name: a.name }), ...(meshIp !== undefined && { meshIp }), now: now() })
    if (r.decision === 'refused') {
      refusedNodes.add(a.nodeId)
      const key = `${a.nodeId}|${r.reason ?? ''}`
      if (!refusalsLogged.has(key)) {
        refusalsLogged.add(key)
        const fields = { node_id: a.nodeId, uuid: uuid ?? null, name: a.name ?? null, key: a.identityKey.toString('hex'), reason: r.reason ?? 'refused', link: a.link }
        vov.append('peer_refused', fields)
        coord('peer_refused', fields)
        log.warn('peer refused', fields)
      }
      return false
    }
    refusedNodes.delete(a.nodeId)
    if (r.decision === 'new') {
      const fields = { node_id: a.nodeId, uuid: uuid ?? null, name: a.name ?? null, mesh_ip: meshIp ?? null, key: a.identityKey.toString('hex'), link: a.link, mode: cfg.peers.mode }
      vov.append('peer_admitted', fields)
      coord('peer_admitted', fields)
      log.info('peer admitted', { node_id: a.nodeId, name: a.name, mesh_ip: meshIp })
    }
    if (meshIp !== undefined) {
      const c = allocator.observe({ nodeId: a.nodeId, meshIp })
      if (c !== null) {
        const fields = { mesh_ip: c.from, with: c.with, kept: c.kept, now: c.to, attempt: c.attempt }
        vov.append('mesh_ip_conflict', fields)
        coord('conflict_resolved', fields)
        log.warn('mesh IP conflict resolved', fields)
        if (c.kept === 'theirs') {
          vov.append('mesh_ip_assigned', { mesh_ip: c.to, attempt: c.attempt, reason: `conflict with ${c.with}` })
          coord('ip_assigned', { node_id: nodeId, mesh_ip: c.to, attempt: c.attempt })
        }
      }
    }
    return true
  }

  // ---- policy -----------------------------------------------------------------------------
  // A gateway told to enforce a policy does not start without it: a bad file stops the start
  // with every problem named (file, key path, line).
  let policyFile = cfg.policyFile
  let policyLoadedAt = policyFile !== undefined ? now() : null
  const engine = new PolicyEngine(policyFile !== undefined ? loadPolicy(policyFile) : null, { now })
  // Violations go to the audit log, at most POLICY_RECORDS_PER_MINUTE a minute: the rest are
  // counted and summarised in the next entry, so a flood cannot fill the disk.
  const recorder = new ViolationRecorder({ perMinute: POLICY_RECORDS_PER_MINUTE, now, sink: (entry) => vov.append('message_refused', entry) })
  const recorderFlush = setInterval(() => recorder.flush(), 60_000)
  recorderFlush.unref()
  if (engine.policy !== null) vov.append('policy_loaded', policySummary(engine.policy))

  // ---- links and mesh ---------------------------------------------------------------------
  const stores = await openStores(join(opts.stateDir, 'mesh'), cfg.store)
  const uuidBytes = uuidToBytes(nodeInfo.uuid)
  const node = new MeshNode({
    identity: id,
    links: [],
    outbox: stores.outbox,
    inbox: stores.inbox,
    announceIntervalMs: cfg.mesh.announceIntervalMs,
    hopLimit: cfg.mesh.hopLimit,
    log,
    announceInfo: () => ({ uuid: uuidBytes, meshIp: ipToInt(allocator.current().ip), name: cfg.node.name }),
    admit,
    refused: (n) => refusedNodes.has(n),
    policy: (sub) => engine.check(sub),
    trust: (n) => registry.trust(n),
  })
  const linkConfigs = new Map<string, LinkConfig>()
  const addLink = async (lc: LinkConfig) => {
    const link = await createLink(lc, { runtimeDir: opts.runtimeDir })
    node.addLink({ link, budgetBytesPerS: lc.budgetBytesPerS })
  }
  const cutter = new LinkCutter({
    consumer: 'kairo-gw',
    // Looked up when the action runs: the driver of the link as it is then, if it is open.
    radio: (name) => ({
      radio: (on, timeoutMs) => {
        const l = node.linkDrivers().find((d) => d.name === name)
        if (l?.setRadio === undefined) return Promise.reject(new Error(l === undefined ? `link ${name} is not open` : `link ${name} has no radio to switch`))
        return l.setRadio(on, timeoutMs)
      },
    }),
  })
  for (const lc of cfg.links) {
    if (!lc.enabled) continue
    linkConfigs.set(lc.name, lc)
    const latched = latch.get(lc.name)
    if (latched !== undefined) {
      // Cut again before anything opens: after a reboot GPIO lines, rfkill and interfaces are in
      // their power-on state, which is not "cut".
      const report = await cutter.cut(lc.name, lc.cut, performance.now(), { skipRadio: true })
      vov.append('link_cut_reasserted', { link: lc.name, since: latched.at, reason: latched.reason, ...reportFields(report) })
      log.warn('link stays disconnected (latched); `kairo-gw reconnect` brings it back', { link: lc.name, since: latched.at, reason: latched.reason, ok: report.ok })
      continue
    }
    await addLink(lc)
  }

  // Link transitions go to the audit log: up, down, failed (once per outage), removed.
  const linkState = new Map<string, string>()
  node.on('link', (d: { link: string; state: string; error?: string }) => {
    emit('link', d)
    const prev = linkState.get(d.link)
    if (prev === d.state) return
    linkState.set(d.link, d.state)
    if (d.state === 'up') vov.append('link_up', { link: d.link })
    else if (d.state === 'down' || (d.state === 'failed' && prev !== 'down')) vov.append('link_down', { link: d.link, state: d.state, error: d.error ?? null })
  })
  node.on('message', (m: MeshMessage) => emit('message', { id: m.id, from: m.from, type: m.type, bytes: m.payload.length, cursor: m.cursor, broadcast: m.broadcast, payload: m.payload }))
  node.on('policy_refused', ({ subject, verdict }: { subject: PolicySubject; verdict: Verdict }) => {
    const t0 = performance.now()
    recorder.record({ subject, verdict, policy: engine.policy?.name ?? null })
    emit('policy_refused', violationEntry({ subject, verdict }))
    if (verdict.disconnectLink === true && node.hasLink(subject.link)) {
      const who = { policy: engine.policy?.name ?? null, rule: verdict.rule ?? null, violation: verdict.violation ?? null, peer: subject.peer, via: subject.via }
      void forceDisconnect(subject.link, `policy ${engine.policy?.name ?? ''}: ${verdict.rule ?? verdict.violation ?? 'violation'}${verdict.detail !== undefined ? ` (${verdict.detail})` : ''}`, who, t0).catch((err: Error) =>
        log.warn('policy could not disconnect the link', { link: subject.link, error: err.message }),
      )
    }
  })
  const outcomes = new Map<string, Outcome>()
  /** Messages accepted (this run, or pending at start): where to and when their TTL ends (wall clock). */
  const accepted = new Map<string, { to: string; expiresAt: number }>()
  for (const m of node.pendingMessages()) accepted.set(m.id, { to: m.to, expiresAt: m.expiresAt })
  const remember = (mid: string, o: Outcome) => {
    outcomes.set(mid, o)
    if (outcomes.size > MAX_OUTCOMES) outcomes.delete(outcomes.keys().next().value!)
  }
  node.on('delivered', (d: { id: string; to: string; attempts: number }) => {
    remember(d.id, { state: 'delivered', to: d.to, attempts: d.attempts, at: now() })
    emit('delivered', d)
  })
  node.on('expired', (d: { id: string; to: string; attempts?: number }) => {
    remember(d.id, { state: 'expired', to: d.to, attempts: d.attempts ?? 0, at: now() })
    emit('expired', d)
  })
  node.on('delivery_error', (d: Record<string, unknown>) => emit('delivery_error', d))
  node.on('neighbour', (d: Record<string, unknown>) => emit('neighbour', d))

  // ---- control socket ---------------------------------------------------------------------
  const linkRows = () => {
    const rows: Array<Record<string, unknown>> = node.linkTable().map((l) => ({ name: l.name, kind: l.kind, state: l.state, mtu: l.mtu, bitrate: l.bitrate, budget_bytes_per_s: l.budgetBytesPerS, last_error: l.lastError, disconnected: null, stats: l.stats, mesh: l.mesh }))
    for (const [name, e] of latch.entries()) {
      const lc = linkConfigs.get(name)
      if (lc === undefined || node.hasLink(name)) continue
      rows.push({ name, kind: lc.driver, state: 'disconnected', mtu: 0, bitrate: 0, budget_bytes_per_s: lc.budgetBytesPerS, last_error: null, disconnected: e, stats: null, mesh: null })
    }
    return rows
  }
  const peerRows = () => registry.list()
  const keyInfo = () => ({
    node_id: nodeId,
    uuid: nodeInfo.uuid,
    mesh_ip: allocator.current().ip,
    identity_key: id.identityKey.toString('hex'),
    static_key: Buffer.from(id.static.publicKey).toString('hex'),
    identity_file: identity.file,
    log_key: vov.keyInfo(),
  })
  const admin = (method: string, ctx: ControlContext, params: Record<string, unknown>) => vov.append('admin_command', { method, params, by: by(ctx) })

  /**
   * Cuts a link and latches it: the physical actions of its `cut:` list (drivers/physical), then
   * the driver is closed without being waited for. `by` is the caller's credentials or the policy
   * rule; `t0` the trigger. Used by `kairo-gw disconnect` and by policy.
   */
  const cutting = new Map<string, Promise<Record<string, unknown>>>()
  /** Links being restored by `reconnect`: their rfkill unblock is ours, not someone else's. */
  const reconnecting = new Set<string>()
  const forceDisconnect = (link: string, reason: string, who: Record<string, unknown>, t0: number): Promise<Record<string, unknown>> => {
    const existing = latch.get(link)
    if (existing !== undefined && !node.hasLink(link) && !cutting.has(link)) {
      return Promise.resolve({ link, state: 'disconnected', latched: true, already: true, at: existing.at, by: existing.by, reason: existing.reason, actions: [], latency_ms: null, ok: true, physical: linkConfigs.get(link)!.cut.actions.length > 0 })
    }
    const pending = cutting.get(link)
    if (pending !== undefined) return pending.then((r) => ({ ...r, already: true }))
    const lc = linkConfigs.get(link)!
    const run = (async () => {
      const entry = { at: new Date(now()).toISOString(), reason, by: who }
      // Actions start first (a GPIO line is driven before the first await), then the latch is
      // written (fsync): the cut is not delayed by the disk, and a crash after it leaves it latched.
      const cutRun = cutter.cut(link, lc.cut, t0)
      latch.set(link, entry)
      const report = await cutRun
      // Out of the mesh at once; the driver closes in the background (a wedged one is left behind).
      void node.removeLink(link).catch((err: Error) => log.warn('link driver close failed after disconnect', { link, error: err.message }))
      const fields = { link, reason, by: who, ...reportFields(report) }
      vov.append('link_disconnected', fields)
      log.warn('link disconnected', { link, reason, ok: report.ok, latency_ms: report.latency_ms, actions: report.actions.map((a) => `${a.action}: ${a.ok ? a.observed : a.error}`) })
      return { ...fields, state: 'disconnected', latched: true, already: false, at: entry.at }
    })().finally(() => cutting.delete(link))
    cutting.set(link, run)
    return run
  }

  const policyStatus = () => {
    const p = engine.policy
    const c = engine.counters()
    return {
      file: policyFile ?? null,
      name: p?.name ?? null,
      sha256: p?.sha256 ?? null,
      loaded_at: policyLoadedAt !== null ? new Date(policyLoadedAt).toISOString() : null,
      enforcing: p !== null,
      counters: { checked: c.checked, allowed: c.allowed, refused: c.refused, by_violation: c.byViolation, by_rule: c.byRule },
      blocked_peers: c.blockedPeers.map((b) => ({ peer: b.peer, until: new Date(b.until).toISOString(), rule: b.rule })),
      recorded: recorder.stats,
    }
  }
  /** Reads and checks `file`, then puts it in force; a bad file changes nothing and is recorded. */
  const readPolicy = (file: string, who: Record<string, unknown>): Policy => {
    try {
      return loadPolicy(file)
    } catch (err) {
      vov.append('policy_reload_failed', { file, error: (err as Error).message, by: who })
      log.warn('policy reload failed; the policy in force is unchanged', { file, error: (err as Error).message })
      throw err
    }
  }
  const reloadPolicy = (file: string | undefined, who: Record<string, unknown>, loaded?: Policy): Record<string, unknown> => {
    if (file === undefined) throw new InvalidParamsError('', 'this gateway has no policy_file in its config: add one (docs/policy.md) and reload the config')
    const before = engine.policy
    const next = loaded ?? readPolicy(file, who)
    engine.replace(next)
    policyFile = file
    policyLoadedAt = now()
    const changed = before?.sha256 !== next.sha256
    vov.append('policy_loaded', { ...policySummary(next), previous_sha256: before?.sha256 ?? null, changed, by: who })
    log.info('policy loaded', { file, name: next.name, changed })
    return { ...policyStatus(), changed, previous_sha256: before?.sha256 ?? null }
  }

  const captures = new CaptureManager({
    stateDir: opts.stateDir,
    nodeId,
    version: packageVersion(),
    link: (name) => node.linkDrivers().find((l) => l.name === name),
    linkNames: () => node.linkDrivers().map((l) => l.name),
    record: (type, data) => vov.append(type, data),
  })

  const linkParam = (params: Record<string, unknown>): string => {
    const name = param(params, 'link', 'string', { required: true })
    if (!linkConfigs.has(name)) {
      const known = [...linkConfigs.keys()]
      throw new InvalidParamsError('link', `no link named ${JSON.stringify(name)}; the links are: ${known.length > 0 ? known.join(', ') : '(none)'}`)
    }
    return name
  }

  const handlers: Record<string, ControlHandler> = {
    status: () => ({
      node_id: nodeId,
      uuid: nodeInfo.uuid,
      mesh_ip: allocator.current().ip,
      name: cfg.node.name,
      version: packageVersion(),
      pid: process.pid,
      uptime_s: Math.round((now() - started) / 1000),
      started_at: new Date(started).toISOString(),
      state_dir: opts.stateDir,
      config_file: opts.configFile ?? null,
      control_socket: controlSocket,
      links: linkRows(),
      neighbours: node.neighbourTable().length,
      routes: node.routeTable().length,
      peers: peerRows().length,
      mesh: node.stats(),
      store: { outbox: stores.outbox.stats(), inbox: stores.inbox.stats() },
      vov: { file: vov.file, entries: vov.entries, key_id: vov.keyInfo().key_id },
      policy: policyStatus(),
    }),
    links: () => ({ links: linkRows() }),
    peers: () => ({ peers: peerRows() }),
    send: async (params) => {
      rejectUnknownParams(params, ['to', 'type', 'text', 'payload_b64', 'reliable', 'ttl_s'])
      const to = param(params, 'to', 'string', { required: true, pattern: /^([0-9a-fA-F]{32}|\*)$/, expected: "a node ID of 32 hex digits, or '*' for a broadcast" })
      const type = param(params, 'type', 'string', { required: true, oneOf: AGENT_TYPE_NAMES })
      const text = param(params, 'text', 'string')
      const b64 = param(params, 'payload_b64', 'string', { pattern: /^[A-Za-z0-9+/]*={0,2}$/, expected: 'base64' })
      const reliable = param(params, 'reliable', 'boolean')
      const ttl = param(params, 'ttl_s', 'integer', { min: 1, max: 31_536_000 })
      if (text !== undefined && b64 !== undefined) throw new InvalidParamsError('payload_b64', "give either 'text' or 'payload_b64', not both")
      const payload = b64 !== undefined ? Buffer.from(b64, 'base64') : Buffer.from(text ?? '', 'utf8')
      let r
      try {
        r = await node.send(to.toLowerCase(), type, payload, { reliable: reliable ?? true, ...(ttl !== undefined ? { ttlMs: ttl * 1000 } : {}) })
      } catch (err) {
        if (err instanceof TypeError) throw new InvalidParamsError('to', err.message)
        throw err
      }
      if (!r.broadcast && reliable !== false) {
        accepted.set(r.id, { to: to.toLowerCase(), expiresAt: r.acceptedAt + (ttl !== undefined ? ttl * 1000 : cfg.store.ttlMs) })
        if (accepted.size > MAX_OUTCOMES) accepted.delete(accepted.keys().next().value!)
      }
      return { id: r.id, accepted_at: r.acceptedAt, durable: !r.broadcast && reliable !== false, broadcast: r.broadcast }
    },
    message_status: (params) => {
      rejectUnknownParams(params, ['id'])
      const mid = param(params, 'id', 'string', { required: true, pattern: /^[0-9a-fA-F]{1,64}$/, expected: 'a message ID (hex), as send returned it' }).toLowerCase()
      const done = outcomes.get(mid)
      if (done !== undefined) return { id: mid, state: done.state, to: done.to, attempts: done.attempts, delivered_at: done.state === 'delivered' ? new Date(done.at).toISOString() : null, last_error: null }
      const pending = node.pendingMessages().find((m) => m.id === mid)
      if (pending !== undefined) {
        accepted.set(mid, { to: pending.to, expiresAt: pending.expiresAt })
        return { id: mid, state: 'pending', to: pending.to, attempts: pending.attempts, delivered_at: null, last_error: node.lastErrorFor(pending.to) }
      }
      // Between the node's decision and its event (the journal write, the next sweep), a message
      // has left the pending list but has no outcome yet: past its TTL it expired; otherwise its
      // acknowledgement arrived.
      const known = accepted.get(mid)
      if (known !== undefined) {
        const expired = Date.now() >= known.expiresAt
        return { id: mid, state: expired ? 'expired' : 'delivered', to: known.to, attempts: 0, delivered_at: expired ? null : new Date(now()).toISOString(), last_error: null }
      }
      return { id: mid, state: 'unknown', to: null, attempts: 0, delivered_at: null, last_error: null }
    },
    messages: (params) => {
      rejectUnknownParams(params, ['since', 'limit'])
      const since = param(params, 'since', 'integer', { default: 0, min: 0 })
      const limit = param(params, 'limit', 'integer', { default: 1000, min: 1, max: 10_000 })
      const list = node.inboxSince(since, limit)
      return {
        messages: list.map((m) => ({ cursor: m.cursor, id: m.id, from: m.from, type: packetTypeName(m.type), bytes: m.payload.length, payload_b64: m.payload.toString('base64'), received_at: m.receivedAt })),
        next: list.length > 0 ? list[list.length - 1]!.cursor : since,
      }
    },
    routes: () => ({ routes: node.routeTable().map((r) => ({ dst: r.dst, link: r.link, next_hop: r.nextHop, via: r.via, cost: r.cost, hops: r.hops, age_ms: r.ageMs })) }),
    neighbours: () => ({ neighbours: node.neighbourTable().map((n) => ({ node_id: n.nodeId, link: n.link, address: n.address, etx: n.etx, interval_ms: n.intervalMs, last_seen_ms: n.lastSeenMs })) }),
    outbox: () => {
      const reachable = new Set(node.routeTable().map((r) => r.dst))
      return { messages: node.pendingMessages().map((m) => ({ id: m.id, to: m.to, type: packetTypeName(m.type), bytes: m.payload.length, accepted_at: m.acceptedAt, attempts: m.attempts, expires_at: m.expiresAt, route: reachable.has(m.to), last_error: node.lastErrorFor(m.to) })) }
    },
    disconnect: async (params, ctx) => {
      const t0 = performance.now()
      rejectUnknownParams(params, ['link', 'reason'])
      const link = linkParam(params)
      const reason = param(params, 'reason', 'string', { required: true, pattern: /\S/, expected: 'a reason: what an auditor reads later' })
      // The cut starts first; the admin entry is signed and written while it runs.
      const done = forceDisconnect(link, reason, by(ctx), t0)
      admin('disconnect', ctx, { link, reason })
      return done
    },
    reconnect: async (params, ctx) => {
      const t0 = performance.now()
      rejectUnknownParams(params, ['link'])
      const link = linkParam(params)
      admin('reconnect', ctx, { link })
      const was = latch.get(link)
      if (node.hasLink(link)) return { link, state: node.linkTable().find((l) => l.name === link)?.state ?? 'up', already: true, actions: [], latency_ms: null }
      const lc = linkConfigs.get(link)!
      reconnecting.add(link)
      let report: CutReport
      try {
        report = await cutter.restore(link, lc.cut, t0)
        latch.clear(link)
      } finally {
        reconnecting.delete(link)
      }
      try {
        await addLink(lc)
      } catch (err) {
        log.warn('link could not be created on reconnect', { link, error: (err as Error).message })
      }
      const fields = { link, by: by(ctx), was_disconnected: was ?? null, ...reportFields(report) }
      vov.append('link_reconnected', fields)
      log.info('link reconnected', { link, ok: report.ok, latency_ms: report.latency_ms })
      return { link, state: node.linkTable().find((l) => l.name === link)?.state ?? 'opening', already: false, by: fields.by, ...reportFields(report) }
    },
    policy_show: () => ({ ...policyStatus(), policy: engine.policy === null ? null : policyDocument(engine.policy) }),
    policy_reload: async (params, ctx) => {
      rejectUnknownParams(params, [])
      admin('policy_reload', ctx, {})
      return reloadPolicy(policyFile, by(ctx))
    },
    keys_show: () => keyInfo(),
    keys_rotate: (_params, ctx) => {
      admin('keys_rotate', ctx, {})
      const r = vov.rotateKey('admin')
      return { log_key: { key_id: r.key_id, public_key: r.public_key, created_at: r.created_at, expires_at: r.expires_at }, previous_key_id: r.previous_key_id }
    },
    reload: async (_params, ctx) => {
      admin('reload', ctx, {})
      return reload()
    },
    ...captures.handlers(by),
  }

  // ---- reload -----------------------------------------------------------------------------
  let reloading: Promise<ReloadResult> | null = null
  const reload = (next?: GatewayConfig): Promise<ReloadResult> => {
    reloading ??= doReload(next).finally(() => {
      reloading = null
    })
    return reloading
  }
  const doReload = async (given?: GatewayConfig): Promise<ReloadResult> => {
    let next = given
    if (next === undefined) {
      if (opts.configFile === undefined) throw new InvalidParamsError('', 'nothing to reload: this gateway runs the embedded default (start it with --config FILE)')
      const { loadConfig } = await import('../config/load.js')
      try {
        next = loadConfig(opts.configFile)
      } catch (err) {
        vov.append('config_reload_failed', { file: opts.configFile, error: (err as Error).message })
        throw err
      }
    }
    // The new policy is read and checked before anything changes: a bad one fails the whole reload.
    const nextPolicy = next.policyFile !== undefined ? readPolicy(next.policyFile, { via: 'reload' }) : null
    const result: ReloadResult = { added: [], removed: [], changed: [], unchanged: [], applied: [], restart_needed: [] }
    const want = new Map(next.links.filter((l) => l.enabled).map((l) => [l.name, l]))
    for (const name of [...linkConfigs.keys()]) {
      if (want.has(name)) continue
      linkConfigs.delete(name)
      await node.removeLink(name)
      cutter.forget(name)
      result.removed.push(name)
    }
    for (const [name, lc] of want) {
      const old = linkConfigs.get(name)
      if (old !== undefined && JSON.stringify(old) === JSON.stringify(lc)) {
        result.unchanged.push(name)
        continue
      }
      linkConfigs.set(name, lc)
      if (old !== undefined) {
        await node.removeLink(name)
        result.changed.push(name)
      } else result.added.push(name)
      const latched = latch.get(name)
      if (latched === undefined) {
        try {
          await addLink(lc)
        } catch (err) {
          log.warn('link could not be created on reload', { link: name, error: (err as Error).message })
        }
      } else if (old === undefined || JSON.stringify(old.cut) !== JSON.stringify(lc.cut)) {
        // A latched link with new cut actions: cut with those (the old ones are released).
        const report = await cutter.cut(name, lc.cut, performance.now(), { skipRadio: true })
        vov.append('link_cut_reasserted', { link: name, since: latched.at, reason: latched.reason, ...reportFields(report) })
      }
    }
    if (JSON.stringify(cfg.peers) !== JSON.stringify(next.peers)) {
      // Applied now: a peer the new allowlist leaves out is refused from here on, and recorded.
      const demoted = registry.setPolicy({ mode: next.peers.mode, allow: next.peers.allow.map(allowEntry) })
      for (const p of demoted) {
        refusedNodes.add(p.node_id)
        const fields = { node_id: p.node_id, uuid: p.uuid, name: p.name, key: p.identity_key, reason: p.reason ?? 'not_allowlisted', link: null }
        vov.append('peer_refused', fields)
        coord('peer_removed', fields)
      }
      result.applied.push('peers')
    }
    // The policy is read again on every reload: its file may have changed when the config did not.
    if (next.policyFile !== undefined && nextPolicy !== null) {
      reloadPolicy(next.policyFile, { via: 'reload' }, nextPolicy)
      result.applied.push('policy')
    } else if (engine.policy !== null) {
      engine.replace(null)
      vov.append('policy_unloaded', { file: policyFile ?? null, by: { via: 'reload' } })
      policyFile = undefined
      policyLoadedAt = null
      result.applied.push('policy')
    }
    for (const key of ['mesh', 'store', 'audit', 'stateDir', 'runtimeDir', 'node', 'logging'] as const) {
      if (JSON.stringify(cfg[key]) !== JSON.stringify(next[key])) result.restart_needed.push(key)
    }
    cfg = { ...cfg, links: next.links, peers: next.peers, ...(next.policyFile !== undefined ? { policyFile: next.policyFile } : { policyFile: undefined }) }
    vov.append('config_reloaded', { file: opts.configFile ?? null, ...result })
    log.info('config reloaded', { ...result })
    return result
  }

  // rfkill switches named by a link's cut list are watched: a hardware kill switch is recorded,
  // and a latched link's switch unblocked by someone else is blocked again at once.
  let rfkillWatch: RfkillWatch | null = null
  if (cfg.links.some((l) => l.cut.actions.some((a) => 'rfkill' in a))) {
    rfkillWatch = await watchRfkill({
      links: () => [...linkConfigs.values()],
      log,
      onHard: (link, d) => {
        vov.append('rfkill_changed', { link, switch: d.name, index: d.index, type: d.type, hard: d.hard, soft: d.soft })
        log.warn(d.hard ? 'rfkill: hardware kill switch on' : 'rfkill: hardware kill switch off', { link, switch: d.name })
      },
      onSoftUnblocked: (link, d) => {
        const latched = latch.get(link)
        if (latched === undefined || reconnecting.has(link) || cutting.has(link)) return
        const lc = linkConfigs.get(link)
        if (lc === undefined) return
        void cutter.cut(link, lc.cut, performance.now(), { skipRadio: true }).then((report) => {
          vov.append('link_cut_reasserted', { link, since: latched.at, reason: latched.reason, cause: `rfkill switch ${d.name || d.index} unblocked outside kairo-gw`, ...reportFields(report) })
          log.warn('rfkill switch of a latched link unblocked outside kairo-gw: blocked again', { link, switch: d.name, ok: report.ok })
        })
      },
    })
  }

  const controlSocket = join(opts.runtimeDir, 'control.sock')
  const control = new ControlServer({ path: controlSocket, handlers, log })
  await node.start()
  try {
    await control.listen()
  } catch (err) {
    await node.stop()
    await stores.close()
    await vov.close()
    throw err
  }
  let stopped: Promise<void> | null = null
  return {
    node,
    identity,
    nodeInfo,
    meshIp: () => allocator.current().ip,
    vov,
    controlSocket,
    links: () => node.linkDrivers(),
    reload,
    stop(signal?: string) {
      stopped ??= (async () => {
        clearInterval(flushTimer)
        clearInterval(recorderFlush)
        recorder.flush(true)
        await control.close()
        await captures.stopAll(`gateway stopping${signal !== undefined ? ` (${signal})` : ''}`)
        await node.stop()
        rfkillWatch?.close()
        cutter.releaseAll()
        await stores.close()
        registry.flush()
        vov.append('daemon_stopped', { signal: signal ?? null, uptime_s: Math.round((now() - started) / 1000) })
        await vov.close()
      })()
      return stopped
    },
  }
}

/** Violations written to the VoV log per minute at most (then summarised). */
const POLICY_RECORDS_PER_MINUTE = 60

function policySummary(p: Policy): Record<string, unknown> {
  return { file: p.file, name: p.name, sha256: p.sha256, quotas: p.quotas.length, allow: p.peers.allow?.length ?? null, block: p.peers.block.length, min_trust: p.peers.minTrust }
}

/** The policy in force, written out in the file's format with every default (for `kairo-gw policy show`). */
function policyDocument(p: Policy): { text: string } {
  return { text: formatPolicy(p) }
}

/** The report's fields as the VoV log and `--json` show them. */
function reportFields(r: CutReport): { actions: CutReport['actions']; latency_ms: number | null; ok: boolean; physical: boolean } {
  return { actions: r.actions, latency_ms: r.latency_ms, ok: r.ok, physical: r.physical }
}

function allowEntry(e: { nodeId?: string; key?: string; name?: string }): { node_id?: string; key?: string; name?: string } {
  return { ...(e.nodeId !== undefined && { node_id: e.nodeId }), ...(e.key !== undefined && { key: e.key }), ...(e.name !== undefined && { name: e.name }) }
}
