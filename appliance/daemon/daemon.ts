/**
 * The gateway daemon: the configuration's links under one MeshNode, the durable outbox and
 * inbox in the state directory, and the control socket in the runtime directory.
 *
 *   state dir:   identity.key (0600), mesh/outbox.journal, mesh/inbox.journal
 *   runtime dir: control.sock (0660, group kairo where it exists)
 *
 * A link that fails to open is retried with backoff and reported; it never stops the daemon or
 * the other links. SIGTERM/SIGINT close the control socket, stop the mesh (links closed, queues
 * flushed or left durable in the outbox) and exit 0.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { GatewayConfig } from '../config/schema.js'
import type { Link } from '../../drivers/link.js'
import { ControlServer, type ControlHandler } from '../control/server.js'
import { InvalidParamsError, param, rejectUnknownParams } from '../control/protocol.js'
import { MeshNode, type MeshLogger, type MeshMessage } from '../mesh/node.js'
import { openStores } from '../mesh/stores.js'
import { loadOrCreateIdentity, type LoadedIdentity } from '../cli/state.js'
import { packageVersion } from '../cli/version.js'
import { AGENT_TYPE_NAMES, packetTypeName } from '../core/wire/constants.js'
import { createLink } from './links.js'

export interface DaemonOptions {
  stateDir: string
  runtimeDir: string
  log: MeshLogger
  /** Called for every event the daemon reports (ready, message, delivered, ...). */
  onEvent?: (event: string, fields: Record<string, unknown>) => void
}

export interface Daemon {
  node: MeshNode
  links: Link[]
  identity: LoadedIdentity
  controlSocket: string
  stop(): Promise<void>
}

export async function startDaemon(cfg: GatewayConfig, opts: DaemonOptions): Promise<Daemon> {
  const emit = opts.onEvent ?? (() => {})
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 })
  const identity = loadOrCreateIdentity(opts.stateDir)
  const stores = await openStores(join(opts.stateDir, 'mesh'), cfg.store)
  const links = []
  for (const lc of cfg.links) {
    if (!lc.enabled) continue
    links.push({ link: await createLink(lc), budgetBytesPerS: lc.budgetBytesPerS })
  }
  const node = new MeshNode({
    identity: identity.identity,
    links,
    outbox: stores.outbox,
    inbox: stores.inbox,
    announceIntervalMs: cfg.mesh.announceIntervalMs,
    hopLimit: cfg.mesh.hopLimit,
    log: opts.log,
  })
  const started = Date.now()
  node.on('message', (m: MeshMessage) => emit('message', { id: m.id, from: m.from, type: m.type, bytes: m.payload.length, cursor: m.cursor, broadcast: m.broadcast, payload: m.payload }))
  node.on('delivered', (d: Record<string, unknown>) => emit('delivered', d))
  node.on('expired', (d: Record<string, unknown>) => emit('expired', d))
  node.on('delivery_error', (d: Record<string, unknown>) => emit('delivery_error', d))
  node.on('link', (d: Record<string, unknown>) => emit('link', d))
  node.on('neighbour', (d: Record<string, unknown>) => emit('neighbour', d))

  const handlers: Record<string, ControlHandler> = {
    status: () => ({
      node_id: node.nodeId,
      name: cfg.node.name,
      version: packageVersion(),
      pid: process.pid,
      uptime_s: Math.round((Date.now() - started) / 1000),
      links: node.linkTable().map((l) => ({ name: l.name, kind: l.kind, state: l.state, mtu: l.mtu, bitrate: l.bitrate, budget_bytes_per_s: l.budgetBytesPerS, last_error: l.lastError, stats: l.stats, mesh: l.mesh })),
      neighbours: node.neighbourTable().length,
      routes: node.routeTable().length,
      mesh: node.stats(),
      store: { outbox: stores.outbox.stats(), inbox: stores.inbox.stats() },
    }),
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
      return { id: r.id, accepted_at: r.acceptedAt, durable: !r.broadcast && reliable !== false, broadcast: r.broadcast }
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
  }
  const controlSocket = join(opts.runtimeDir, 'control.sock')
  const control = new ControlServer({ path: controlSocket, handlers, log: opts.log })
  await node.start()
  try {
    await control.listen()
  } catch (err) {
    await node.stop()
    await stores.close()
    throw err
  }
  let stopped = false
  return {
    node,
    links: links.map((l) => l.link),
    identity,
    controlSocket,
    async stop() {
      if (stopped) return
      stopped = true
      await control.close()
      await node.stop()
      await stores.close()
    },
  }
}
