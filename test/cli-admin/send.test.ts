/**
 * `kairo-gw send --to NODE_ID|*` through a real gateway's control socket, and the route and
 * neighbour tables of two gateways that hear each other (child processes, loopback UDP).
 */
import t from 'tap'
import { ControlClient } from '../../appliance/control/client.js'
import { freeUdpPorts } from '../lib/ports.js'
import { cli, gatewayPair, json, startGateway, type Gateway } from '../lib/gateway.js'

async function inbox(gw: Gateway): Promise<Array<{ id: string; from: string; type: string; payload_b64: string }>> {
  const c = await ControlClient.connect(gw.socket, { timeoutMs: 5000 })
  try {
    return (await c.call<{ messages: Array<{ id: string; from: string; type: string; payload_b64: string }> }>('messages', { since: 0 })).messages
  } finally {
    await c.close()
  }
}

type Msg = Awaited<ReturnType<typeof inbox>>[number]

/** The first message of gw's inbox that `pred` accepts, waiting up to 20 s for it. */
async function waitInbox(gw: Gateway, pred: (m: Msg) => boolean): Promise<Msg | undefined> {
  const end = Date.now() + 20_000
  for (;;) {
    const m = (await inbox(gw)).find(pred)
    if (m !== undefined || Date.now() > end) return m
    await new Promise((r) => setTimeout(r, 100))
  }
}

t.test('two gateways: routes and neighbours tables; send by node ID, --wait, broadcast, --hex', async (t) => {
  const [a, b] = await gatewayPair(t, (await freeUdpPorts(2)) as [number, number])
  const sa = ['--socket', a.socket]

  const routes = await cli(['routes', ...sa])
  t.equal(routes.code, 0)
  t.match(routes.stdout, /^DESTINATION\s+HOPS\s+COST\s+LINK\s+NEXT HOP/m, 'route table header')
  t.match(routes.stdout, new RegExp(`^${b.nodeId}\\s+1\\s+[\\d.]+\\s+udp0\\s+${b.nodeId}`, 'm'), "b: one hop over udp0")
  const rj = json<{ routes: Array<{ dst: string; hops: number; link: string }> }>(await cli(['routes', ...sa, '--json']))
  t.same(rj.routes.map((r) => [r.dst, r.hops, r.link]), [[b.nodeId, 1, 'udp0']])
  const nb = await cli(['routes', '--neighbours', ...sa])
  t.match(nb.stdout, /Neighbours:\nNODE ID\s+LINK\s+ADDRESS\s+ETX/, 'routes --neighbours adds the neighbour table')
  t.match(nb.stdout, new RegExp(`^${b.nodeId}\\s+udp0\\s+127\\.0\\.0\\.1:\\d+\\s+[\\d.]+\\s+every`, 'm'))
  const st = await cli(['status', ...sa])
  t.match(st.stdout, /neighbours\s+1/)
  t.match(st.stdout, /routes\s+1/)

  // Plain send: the message ID, then the message at b.
  const sent = await cli(['send', '--to', b.nodeId, 'TASK_REQUEST', 'hello b', ...sa])
  t.equal(sent.code, 0, `send exits 0 (${sent.stderr.trim()})`)
  const id = /^accepted ([0-9a-f]{32}) for [0-9a-f]{32}: TASK_REQUEST, 7 B, queued durably/m.exec(sent.stdout)?.[1]
  t.ok(id, `prints the message ID: ${sent.stdout.trim()}`)
  const got = await waitInbox(b, (m) => m.id === id)
  t.equal(got?.from, a.nodeId, 'b received it from a')
  t.equal(Buffer.from(got?.payload_b64 ?? '', 'base64').toString(), 'hello b')

  // --json, --hex
  const hx = json<{ ok: boolean; id: string; to: string; type: string; bytes: number; durable: boolean }>(await cli(['send', '--to', b.nodeId.toUpperCase(), 'vector_sync', '00ff10', '--hex', '--json', ...sa]))
  t.same([hx.ok, hx.to, hx.type, hx.bytes, hx.durable], [true, b.nodeId, 'VECTOR_SYNC', 3, true], 'send --json: the accepted message; any-case type and node ID')

  // --wait: delivered, exit 0, progress on stderr only.
  const w = await cli(['send', '--to', b.nodeId, 'AGENT_MIGRATION', 'wait for me', '--wait', '--poll', '50', ...sa])
  t.equal(w.code, 0, `--wait exits 0 once delivered (${w.stderr.trim()})`)
  t.match(w.stdout, /^accepted [0-9a-f]{32} for/m)
  t.match(w.stdout, /^delivered [0-9a-f]{32} to [0-9a-f]{32}: \d+ attempt\(s\)/m)
  const wj = json<{ ok: boolean; state: string; id: string }>(await cli(['send', '--to', b.nodeId, 'TASK_REQUEST', 'x', '--wait', '--json', ...sa]))
  t.same([wj.ok, wj.state], [true, 'delivered'], '--wait --json: one object with the final state')

  // Broadcast.
  const bc = json<{ ok: boolean; broadcast: boolean; id: string }>(await cli(['send', '--to', '*', 'BROADCAST_ANNOUNCE', 'all of you', '--json', ...sa]))
  t.ok(bc.ok && bc.broadcast, "--to '*': a broadcast")
  const seen = await waitInbox(b, (m) => m.id === bc.id && m.type === 'BROADCAST_ANNOUNCE')
  t.ok(seen, 'b received the broadcast')
})

t.test('send --wait to a node nobody reaches: exit 3 when it expires, with the transaction ID', async (t) => {
  const gw = await startGateway(t, { name: 'lonely' })
  const nobody = 'ab'.repeat(16)
  const r = await cli(['send', '--to', nobody, 'TASK_REQUEST', 'anyone?', '--ttl', '1', '--wait', '--poll', '50', '--socket', gw.socket])
  t.equal(r.code, 3, `expired: exit 3 (${r.stderr.trim()})`)
  t.match(r.stdout, /^accepted [0-9a-f]{32}/m)
  t.match(r.stderr, /waiting: pending/, 'progress on stderr')
  t.match(r.stderr, new RegExp(`^kairo-gw: message [0-9a-f]{32} to ${nobody} expired undelivered after \\d+ attempt\\(s\\).*\\(transaction [0-9a-f]+\\)$`, 'm'), 'names the message and the transaction')
  const j = await cli(['send', '--to', nobody, 'TASK_REQUEST', 'anyone?', '--ttl', '1', '--wait', '--poll', '50', '--json', '--socket', gw.socket])
  t.equal(j.code, 3)
  const o = json<{ ok: boolean; state: string; transaction_id: string; exit_code: number }>(j)
  t.same([o.ok, o.state, o.exit_code], [false, 'expired', 3])
  t.match(o.transaction_id, /^[0-9a-f]+$/)
})
