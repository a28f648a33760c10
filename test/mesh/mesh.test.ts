/**
 * The mesh core on networks of fake links: routing over several hops, failover, a partition and
 * its heal, managed flooding, hop limits, what a relay checks, and that nothing a neighbour sends
 * can crash a node. The same core runs over real UDP/Ethernet/LoRa links in the lab tests.
 */
import t from 'tap'
import fc from 'fast-check'
import { FakeLink, FakeWire } from '../../drivers/fake/link.js'
import { Identity } from '../../appliance/core/identity.js'
import { MeshNode } from '../../appliance/mesh/node.js'
import { until } from '../lib/until.js'
import { meshNet, type TestNet } from './net.js'
import { openStores } from '../../appliance/mesh/stores.js'

function routeTo(net: TestNet, from: string, to: string) {
  return net.get(from).node.routeTable().find((r) => r.dst === net.get(to).node.nodeId)
}

async function converge(net: TestNet, names: string[], ms = 5000): Promise<void> {
  await until(`routes between ${names.join(', ')}`, ms, () => names.every((a) => names.every((b) => a === b || routeTo(net, a, b) !== undefined)))
}

t.test('a line of four: routes over three hops, messages delivered once each, relays never read them', async (t) => {
  const net = await meshNet(['a', 'b', 'c', 'd'], ['a-b', 'b-c', 'c-d'])
  t.teardown(() => net.close())
  await converge(net, ['a', 'b', 'c', 'd'])
  const r = routeTo(net, 'a', 'd')!
  t.equal(r.hops, 3, 'a reaches d in three hops')
  t.equal(r.link, 'to-b', 'through b')
  t.ok(r.cost > routeTo(net, 'a', 'c')!.cost, 'a longer path costs more')
  const d = net.get('d').node.nodeId
  const ids: string[] = []
  for (let i = 0; i < 30; i++) ids.push((await net.get('a').node.send(d, 'TASK_REQUEST', Buffer.from(`msg ${i}`))).id)
  await until('30 messages at d', 10_000, () => net.get('d').messages.length >= 30 && net.get('a').delivered.length >= 30)
  t.same(net.get('d').messages.map((m) => m.payload.toString()), ids.map((_, i) => `msg ${i}`), 'all 30, in order, once')
  t.same(new Set(net.get('d').messages.map((m) => m.id)), new Set(ids), 'the IDs the sender was given')
  t.ok(net.get('d').messages.every((m) => m.from === net.get('a').node.nodeId && m.type === 'TASK_REQUEST'), 'authenticated source and type')
  t.equal(net.get('a').node.pendingMessages().length, 0, 'the outbox is empty once acknowledged')
  t.ok(net.get('b').node.stats().relayed >= 30 && net.get('c').node.stats().relayed >= 30, 'b and c relayed')
  t.equal(net.get('b').messages.length + net.get('c').messages.length, 0, 'relays delivered nothing')
  t.equal(net.get('b').node.sessions.sessionFor(Buffer.from(d, 'hex')), null, 'b has no session with d: it forwarded what it could not read')
})

t.test('failover: when the cheap path dies, traffic moves to the other at once', async (t) => {
  // a-b-d is fast; a-c-d is slow. Cut a-b.
  const net = await meshNet(['a', 'b', 'c', 'd'], ['a-b:10000000', 'b-d:10000000', 'a-c:20000', 'c-d:20000'])
  t.teardown(() => net.close())
  await converge(net, ['a', 'd'])
  await until('the fast path', 3000, () => routeTo(net, 'a', 'd')?.link === 'to-b' && routeTo(net, 'a', 'd'))
  const d = net.get('d').node.nodeId
  for (let i = 0; i < 5; i++) await net.get('a').node.send(d, 'TASK_REQUEST', Buffer.from(`before ${i}`))
  await until('5 before the cut', 5000, () => net.get('d').messages.length >= 5)
  net.wires.get('a-b')!.unplug()
  await until('failover to c', 3000, () => routeTo(net, 'a', 'd')?.link === 'to-c')
  t.pass('route moved to the slow path when the link went down')
  for (let i = 0; i < 5; i++) await net.get('a').node.send(d, 'TASK_REQUEST', Buffer.from(`after ${i}`))
  await until('5 after the cut', 10_000, () => net.get('d').messages.length >= 10)
  t.equal(new Set(net.get('d').messages.map((m) => m.id)).size, 10, 'ten distinct messages, none twice')
  net.wires.get('a-b')!.replug()
  await until('back on the fast path', 5000, () => routeTo(net, 'a', 'd')?.link === 'to-b')
  t.pass('the fast path returns after the heal')
})

t.test('partition: messages sent while the destination is unreachable are delivered after the heal', async (t) => {
  const net = await meshNet(['a', 'b', 'c'], ['a-b', 'b-c'])
  t.teardown(() => net.close())
  await converge(net, ['a', 'b', 'c'])
  const c = net.get('c').node.nodeId
  net.wires.get('b-c')!.unplug()
  await until('b lost its route to c', 5000, () => routeTo(net, 'b', 'c') === undefined)
  const ids: string[] = []
  for (let i = 0; i < 10; i++) ids.push((await net.get('a').node.send(c, 'VECTOR_SYNC', Buffer.from(`during ${i}`))).id)
  await new Promise((r) => setTimeout(r, 500))
  t.equal(net.get('c').messages.length, 0, 'nothing crosses the partition')
  t.equal(net.get('a').node.pendingMessages().length, 10, 'all ten wait in the outbox')
  net.wires.get('b-c')!.replug()
  await until('ten after the heal', 10_000, () => net.get('c').messages.length >= 10 && net.get('a').delivered.length >= 10)
  t.same(new Set(net.get('c').messages.map((m) => m.id)), new Set(ids), 'every message sent during the partition arrived, once')
})

t.test('managed flooding: a broadcast in a dense mesh reaches everyone once, without a storm', async (t) => {
  const names = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']
  const edges: string[] = []
  for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) edges.push(`${names[i]}-${names[j]}`)
  const net = await meshNet(names, edges)
  t.teardown(() => net.close())
  await converge(net, names)
  // Count every frame on every link that carries this broadcast.
  let copies = 0
  const marker = Buffer.from('to all: 7f3a')
  for (const n of names) for (const l of net.get(n).links) l.on('frame', (f) => { if (f.data.includes(marker)) copies++ })
  const sent = await net.get('n0').node.send('*', 'BROADCAST_ANNOUNCE', marker)
  t.ok(sent.broadcast, 'a broadcast')
  await until('everyone heard it', 3000, () => names.slice(1).every((n) => net.get(n).messages.some((m) => m.id === sent.id)))
  await new Promise((r) => setTimeout(r, 300))
  for (const n of names.slice(1)) t.equal(net.get(n).messages.filter((m) => m.id === sent.id).length, 1, `${n} delivered it once`)
  t.equal(net.get('n0').messages.length, 0, 'the source does not deliver its own broadcast')
  // 6 nodes, 15 point-to-point links (30 directions). The source sends on its 5; every other node
  // rebroadcasts once, skipping neighbours that already sent it a copy. Naive flooding sends on
  // every direction (30); a storm would not stop.
  t.ok(copies >= 5 && copies < 30, `${copies} transmissions of the broadcast in all (naive flooding: 30)`)
  const suppressed = names.reduce((s, n) => s + net.get(n).node.linkTable().reduce((a, l) => a + l.mesh.floodsSuppressed, 0), 0)
  t.ok(suppressed > 0, `${suppressed} rebroadcasts suppressed`)
})

t.test('per-link budget: a relay spends no more than its budget on others, and reliable delivery still gets everything through', async (t) => {
  const net = await meshNet(['a', 'b', 'c'], ['a-b', 'b-c'], { budgets: { 'b:to-c': 4000 } })
  t.teardown(() => net.close())
  await converge(net, ['a', 'b', 'c'])
  const c = net.get('c').node.nodeId
  const started = Date.now()
  for (let i = 0; i < 20; i++) await net.get('a').node.send(c, 'VECTOR_SYNC', Buffer.alloc(1000, i))
  await until('20 messages through the budget', 30_000, () => net.get('c').messages.length >= 20)
  const secs = (Date.now() - started) / 1000
  const out = net.get('b').node.linkTable().find((l) => l.name === 'to-c')!
  t.ok(out.mesh.budgetRefused > 0, `b refused ${out.mesh.budgetRefused} frames over its budget (counted as 'budget': ${net.get('b').node.stats().dropped.budget})`)
  t.ok(out.mesh.relayedBytes <= 4000 * (secs + 2) + 1100, `b relayed ${out.mesh.relayedBytes} B in ${secs.toFixed(1)} s: within 4000 B/s plus a 2 s burst`)
  t.equal(new Set(net.get('c').messages.map((m) => m.id)).size, 20, 'all 20 arrived once')
})

t.test('errors of the packet core reach the sender: a destination that does not answer its handshake', async (t) => {
  const net = await meshNet(['a', 'b'], ['a-b'], { handshakeTimeoutMs: 400 })
  t.teardown(() => net.close())
  await converge(net, ['a', 'b'])
  const b = net.get('b').node.nodeId
  // b still announces and relays, but its handshake code refuses everything (a node with a
  // broken or different key store): a's handshakes go unanswered.
  const errors: Array<{ to: string; code: string; transaction_id: string }> = []
  net.get('a').node.on('delivery_error', (e: { to: string; code: string; transaction_id: string }) => errors.push(e))
  net.get('b').node.sessions.handleHandshake = () => {
    throw new Error('handshakes refused')
  }
  const sent = await net.get('a').node.send(b, 'TASK_REQUEST', Buffer.from('anyone?'))
  await until('a delivery error', 5000, () => errors.length > 0)
  t.equal(errors[0]!.to, b, 'names the destination')
  t.equal(errors[0]!.code, 'ETIMEDOUT', 'a handshake timeout')
  t.match(errors[0]!.transaction_id, /^[0-9a-f]{16}$/, 'with the transaction ID')
  t.ok(net.get('a').node.pendingMessages().some((m) => m.id === sent.id), 'the message stays in the outbox for a later try')
  t.equal(net.get('a').node.lastErrorFor(b)?.code, 'ETIMEDOUT', 'and the outbox listing shows why')
})

t.test('hop limit: a destination farther than the hop limit gets no route', async (t) => {
  const names = ['h0', 'h1', 'h2', 'h3', 'h4']
  const net = await meshNet(names, ['h0-h1', 'h1-h2', 'h2-h3', 'h3-h4'], { hopLimit: 3 })
  t.teardown(() => net.close())
  await until('h0 hears h2', 3000, () => routeTo(net, 'h0', 'h2'))
  await new Promise((r) => setTimeout(r, 1000))
  t.ok(routeTo(net, 'h0', 'h2'), 'two hops away: reachable')
  t.equal(routeTo(net, 'h0', 'h4'), undefined, 'four hops away with hop limit 3: no route')
})

t.test('what a relay checks, and garbage from a neighbour never crashes a node', async (t) => {
  const wire = new FakeWire({ mtu: 1500, bitrate: 1e6, latencyMs: 1, inFlight: 8 })
  const evil = new FakeLink('evil', wire, {})
  const victimLink = new FakeLink('to-evil', wire, {})
  const stores = await openStores(t.testdir(), { maxMessages: 100, maxBytes: 1 << 20, ttlMs: 60_000 })
  const node = new MeshNode({ identity: Identity.generate(), links: [{ link: victimLink }], outbox: stores.outbox, inbox: stores.inbox, announceIntervalMs: 1000 })
  await node.start()
  await evil.open()
  t.teardown(async () => {
    await node.stop()
    await stores.close()
    await evil.close()
  })
  const errors: Error[] = []
  node.on('error', (e: Error) => errors.push(e))
  // A well-formed Data frame for a node nobody announced: no route, dropped and counted.
  const data = Buffer.alloc(80)
  data[0] = 0x11
  data[1] = 0x10
  data[3] = 5
  data.fill(0xab, 8, 24)
  evil.send(data)
  // The same frame again: the duplicate filter takes it first.
  evil.send(data)
  // A frame with hop limit 0 for the same destination.
  const spent = Buffer.from(data)
  spent[3] = 0
  spent[24] = 1
  evil.send(spent)
  // Garbage of every kind.
  let sentFrames = 3
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 300 }), async (bytes) => {
      if (bytes.length > 0) sentFrames++
      if (bytes.length > 0 && !evil.send(Buffer.from(bytes))) await new Promise<void>((r) => evil.once('drain', () => r()))
    }),
    { numRuns: 300 },
  )
  await until('frames processed', 5000, () => victimLink.stats().framesIn >= sentFrames)
  const dropped = node.stats().dropped
  t.ok((dropped.no_route ?? 0) >= 1, 'no route: counted')
  t.ok((dropped.duplicate ?? 0) >= 1, 'duplicate: counted')
  t.ok((dropped.EMALFORMED ?? 0) > 100, 'garbage: counted as malformed')
  t.equal(errors.length, 0, 'no error escaped')
  t.equal(node.stats().messagesIn, 0, 'nothing was delivered')
})
