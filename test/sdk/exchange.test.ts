/**
 * The SDK against two real gateways (child processes, loopback UDP, static peers): an agent on
 * each sends and receives all five agent types, text and binary, unicast and broadcast; waits
 * for delivery; resumes from a cursor.
 */
import t from 'tap'
import { AGENT_TYPES, KairoClient, ReceivedMessage, type AgentType } from '../../appliance/sdk/index.js'
import { freeUdpPorts } from '../lib/ports.js'
import { until } from '../lib/until.js'
import { gatewayPair } from '../lib/gateway.js'

/** Collects what messages() yields until stopped. */
function collect(client: KairoClient, since = 0) {
  const ac = new AbortController()
  const got: ReceivedMessage[] = []
  let error: unknown
  const done = (async () => {
    try {
      for await (const m of client.messages({ since, pollMs: 50, signal: ac.signal })) got.push(m)
    } catch (err) {
      error = err
    }
  })()
  return {
    got,
    error: () => error,
    stop: async () => {
      ac.abort()
      await done
    },
  }
}

t.test('two gateways: agents exchange all five types, text and binary, both ways, and a broadcast', async (t) => {
  const [a, b] = await gatewayPair(t, (await freeUdpPorts(2)) as [number, number])
  const ka = await KairoClient.connect({ socket: a.socket })
  const kb = await KairoClient.connect({ socket: b.socket })
  t.teardown(() => Promise.all([ka.close(), kb.close()]))
  t.equal(ka.socket, a.socket)

  const atB = collect(kb)
  const atA = collect(ka)
  const sent: Array<{ id: string; type: AgentType; text: string }> = []
  for (const type of AGENT_TYPES) {
    const text = `from a: ${type} ✓`
    const r = await ka.send(b.nodeId, type, text)
    t.match(r.id, /^[0-9a-f]{32}$/, `${type}: a message ID`)
    t.ok(r.durable, `${type}: accepted durably`)
    t.notOk(r.broadcast)
    t.ok(r.acceptedAt instanceof Date && Math.abs(r.acceptedAt.getTime() - Date.now()) < 60_000, `${type}: acceptedAt is a Date, now`)
    sent.push({ id: r.id, type, text })
  }
  const binary = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x0a])
  const rb = await ka.send(b.nodeId.toUpperCase(), 'VECTOR_SYNC', binary)
  const fromB = await kb.send(a.nodeId, 'REPUTATION_DELTA', new Uint8Array([1, 2, 3]))

  await until('6 messages at b', 20_000, () => atB.got.length >= 6)
  await until('1 message at a', 20_000, () => atA.got.length >= 1)
  const got = atB.got.slice(0, 6)
  t.same(got.map((m) => m.id), [...sent.map((s) => s.id), rb.id], 'b received every message, in order, with the IDs send() returned')
  t.same(got.slice(0, 5).map((m) => m.type), AGENT_TYPES, 'typed: all five agent types')
  t.same(got.slice(0, 5).map((m) => m.text()), sent.map((s) => s.text), 'text() decodes UTF-8')
  t.ok(got.every((m) => m.from === a.nodeId), 'the sender is a')
  t.ok(Buffer.isBuffer(got[5]!.payload) && got[5]!.payload.equals(binary), 'binary payload intact as a Buffer')
  t.ok(got.every((m, i) => i === 0 || m.cursor > got[i - 1]!.cursor), 'cursors ascend')
  t.ok(got.every((m) => m.receivedAt instanceof Date), 'receivedAt is a Date')
  t.same(atA.got[0]!.payload, Buffer.from([1, 2, 3]), 'b -> a too')
  t.equal(atA.got[0]!.id, fromB.id)
  t.equal(atA.got[0]!.type, 'REPUTATION_DELTA')

  // A second reader from the third message's cursor sees only what came after it.
  const resumed = collect(kb, got[2]!.cursor)
  await until('resumed reader', 10_000, () => resumed.got.length >= 3)
  await resumed.stop()
  t.same(resumed.got.slice(0, 3).map((m) => m.id), got.slice(3, 6).map((m) => m.id), 'since: resumes after the given cursor')

  const bc = await ka.send('*', 'BROADCAST_ANNOUNCE', 'to everyone')
  t.ok(bc.broadcast, 'a broadcast')
  t.notOk(bc.durable, 'not queued durably')
  const m = await until('the broadcast at b', 20_000, () => atB.got.find((x) => x.id === bc.id))
  t.equal(m.type, 'BROADCAST_ANNOUNCE')
  t.equal(m.text(), 'to everyone')
  t.equal(m.from, a.nodeId)

  await atB.stop()
  await atA.stop()
  t.equal(atB.error(), undefined, 'the iterator ended on abort, without an error')
})

t.test('sendAndWait resolves once the destination acknowledged; status() follows a message', async (t) => {
  const [a, b] = await gatewayPair(t, (await freeUdpPorts(2)) as [number, number])
  const ka = await KairoClient.connect({ socket: a.socket, timeoutMs: 5000 })
  t.teardown(() => ka.close())
  const st = await ka.sendAndWait(b.nodeId, 'TASK_REQUEST', 'ack me', { pollMs: 50, timeoutMs: 20_000 })
  t.equal(st.state, 'delivered')
  t.equal(st.to, b.nodeId)
  t.ok(st.attempts >= 1, 'at least one attempt')
  t.ok(st.deliveredAt instanceof Date, 'deliveredAt is a Date')
  t.equal(st.lastError, null)

  const r = await ka.send(b.nodeId, 'AGENT_MIGRATION', 'later')
  const again = await ka.waitDelivered(r.id, { pollMs: 50, timeoutMs: 20_000 })
  t.equal(again.id, r.id)
  t.equal((await ka.status(r.id)).state, 'delivered', 'status() of a delivered message')
})
