/**
 * Test networks of MeshNodes joined by fake link pairs (drivers/fake/link.ts, which passes the
 * same conformance suite as the real drivers): fast, deterministic topologies for routing,
 * failover and flooding. The same mesh runs over real UDP, Ethernet and LoRa links in
 * test/mesh/udp-mesh.test.ts and in the lab (test/lab/).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FakeLink, FakeWire } from '../../drivers/fake/link.js'
import { Identity } from '../../appliance/core/identity.js'
import { MeshNode, type MeshMessage } from '../../appliance/mesh/node.js'
import { openStores } from '../../appliance/mesh/stores.js'

export interface TestNode {
  name: string
  node: MeshNode
  messages: MeshMessage[]
  delivered: string[]
  dir: string
  links: FakeLink[]
}

export interface TestNet {
  nodes: Map<string, TestNode>
  wires: Map<string, FakeWire>
  get(name: string): TestNode
  close(): Promise<void>
}

/** edges: ['a-b', 'b-c', ...], optionally 'a-b:100000' for a bit rate. */
export async function meshNet(names: string[], edges: string[], opts: { announceIntervalMs?: number; hopLimit?: number; latencyMs?: number; initialRtoMs?: number; handshakeTimeoutMs?: number; budgets?: Record<string, number> } = {}): Promise<TestNet> {
  const root = mkdtempSync(join(tmpdir(), 'kairo-mesh-'))
  const linksOf = new Map<string, FakeLink[]>(names.map((n) => [n, []]))
  const wires = new Map<string, FakeWire>()
  for (const e of edges) {
    const [pair, rate] = e.split(':')
    const [x, y] = pair!.split('-') as [string, string]
    const wire = new FakeWire({ mtu: 1500, bitrate: rate ? Number(rate) : 10_000_000, latencyMs: opts.latencyMs ?? 1, inFlight: 8 })
    linksOf.get(x)!.push(new FakeLink(`to-${y}`, wire, {}))
    linksOf.get(y)!.push(new FakeLink(`to-${x}`, wire, {}))
    wires.set(pair!, wire)
  }
  const nodes = new Map<string, TestNode>()
  const closers: Array<() => Promise<void>> = []
  for (const name of names) {
    const dir = join(root, name)
    const stores = await openStores(dir, { maxMessages: 1000, maxBytes: 1 << 20, ttlMs: 60_000 })
    closers.push(() => stores.close())
    const node = new MeshNode({
      identity: Identity.generate(),
      links: linksOf.get(name)!.map((link) => ({ link, budgetBytesPerS: opts.budgets?.[`${name}:${link.name}`] ?? 0 })),
      ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
      ...stores,
      announceIntervalMs: opts.announceIntervalMs ?? 300,
      hopLimit: opts.hopLimit ?? 16,
      initialRtoMs: opts.initialRtoMs ?? 300,
      floodJitterMs: 5,
    })
    const t: TestNode = { name, node, messages: [], delivered: [], dir, links: linksOf.get(name)! }
    node.on('message', (m: MeshMessage) => t.messages.push(m))
    node.on('delivered', (d: { id: string }) => t.delivered.push(d.id))
    nodes.set(name, t)
  }
  await Promise.all([...nodes.values()].map((n) => n.node.start()))
  return {
    nodes,
    wires,
    get(name) {
      const n = nodes.get(name)
      if (!n) throw new Error(`no node ${name}`)
      return n
    },
    async close() {
      await Promise.all([...nodes.values()].map((n) => n.node.stop()))
      for (const c of closers) await c()
      rmSync(root, { recursive: true, force: true })
    },
  }
}
