/**
 * The mesh over LoRa on real serial lines (socat PTYs) to the companion-MCU emulator: three
 * gateways on one radio channel where a and c are out of each other's range and b hears both.
 * Radios have no addresses, so this is where the hop header earns its keep: a reaches c through
 * b, and frames meant for another radio are heard and left alone.
 */
import t from 'tap'
import { Identity } from '../../appliance/core/identity.js'
import { MeshNode, type MeshMessage } from '../../appliance/mesh/node.js'
import { openStores } from '../../appliance/mesh/stores.js'
import { requireSocat } from '../lib/pty.js'
import { until } from '../lib/until.js'
import { loraRig } from '../lora/rig.js'

t.test('a - b - c over one LoRa channel, a and c out of range: routed through b with hop headers', async (t) => {
  if (!requireSocat(t)) return
  const rig = await loraRig({
    backend: 'firmware-bridge',
    names: ['a', 'b', 'c'],
    timeScale: 0.25,
    radio: { spreadingFactor: 7, bandwidthHz: 500_000 },
    links: [
      { from: 'a', to: 'b', both: true },
      { from: 'b', to: 'c', both: true },
    ],
    link: { contention: true },
  })
  t.teardown(() => rig.close())
  const nodes = new Map<string, { node: MeshNode; got: MeshMessage[] }>()
  for (const name of ['a', 'b', 'c']) {
    const stores = await openStores(`${rig.dir}/${name}-store`, { maxMessages: 100, maxBytes: 1 << 20, ttlMs: 60_000 })
    const node = new MeshNode({ identity: Identity.generate(), links: [{ link: rig.link(name) }], outbox: stores.outbox, inbox: stores.inbox, announceIntervalMs: 2000, initialRtoMs: 2000 })
    const got: MeshMessage[] = []
    node.on('message', (m: MeshMessage) => got.push(m))
    nodes.set(name, { node, got })
    t.teardown(async () => {
      await node.stop()
      await stores.close()
    })
  }
  await Promise.all([...nodes.values()].map((n) => n.node.start()))
  const a = nodes.get('a')!.node
  const b = nodes.get('b')!.node
  const c = nodes.get('c')!.node
  const route = await until('a route from a to c', 90_000, () => a.routeTable().find((r) => r.dst === c.nodeId))
  t.equal(route.hops, 2, 'two hops')
  t.equal(route.via, b.nodeId, 'through b')
  t.match(route.nextHop, /^hop:[0-9a-f]{8}$/, 'the next hop is a hop-header address')
  t.notOk(a.neighbourTable().some((n) => n.nodeId === c.nodeId), 'a never heard c directly')
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await a.send(c.nodeId, 'TASK_REQUEST', Buffer.from(`over the air ${i}`))).id)
  await until('5 messages at c', 90_000, () => nodes.get('c')!.got.length >= 5)
  t.same(new Set(nodes.get('c')!.got.map((m) => m.id)), new Set(ids), 'all five, once each')
  t.ok(b.stats().relayed >= 5, `b relayed ${b.stats().relayed} frames`)
  t.equal(nodes.get('b')!.got.length, 0, 'b delivered none of them: it cannot read them')
})
