/**
 * The .klp-policy on a real relay: three gateways in a line on loopback UDP, A — R — B, R with
 * one UDP link towards each side and a policy_file.
 *
 * - Types: R relays TASK_REQUEST and refuses VECTOR_SYNC: B receives only the first. R's status
 *   counts the refusal, and its VoV log has a message_refused entry naming the violation, the
 *   neighbour it came from (A) and the link.
 * - Reload: a bad file is refused by `kairo-gw policy reload` (exit 1, the key path and line)
 *   and the policy in force stays; a good one is put in force (policy_loaded, changed).
 * - Quota with disconnect_link: a fourth TASK_REQUEST in the window makes R cut the link it came
 *   on; the cut is latched and recorded with the policy rule as "who".
 * - Rate limit: a flood of refused frames writes at most the recorder's share per minute to the
 *   audit log, the rest summarised with their count.
 * - SIGHUP reloads the policy with the config.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ControlClient } from '../../appliance/control/client.js'
import { call, cli, json, routeTo, shortDir, startGateway, type Gateway } from '../lib/gateway.js'
import { freeUdpPorts } from '../lib/ports.js'
import { untilAsync } from '../lib/until.js'
import { vovEntries } from '../lib/vov-lines.js'


interface Inbox {
  messages: Array<{ type: string; from: string; payload_b64: string }>
}

const TYPES_ONLY_TASKS = `version: 1
name: tasks-only
types:
  agent: [TASK_REQUEST]
`

t.test('a relay enforcing a policy: types, reload, a quota that cuts the link, rate-limited records, SIGHUP', async (t) => {
  const [pA, pR0, pR1, pB] = await freeUdpPorts(4)
  const dir = shortDir(t)
  const policyFile = join(dir, 'relay.klp-policy')
  writeFileSync(policyFile, TYPES_ONLY_TASKS)
  const a = await startGateway(t, { name: 'pa', udp: { port: pA!, peers: [pR0!] } })
  const r = await startGateway(t, {
    name: 'pr',
    udp: { port: pR0!, peers: [pA!] },
    links: ['  - name: udp1', `    udp: { host: 127.0.0.1, port: ${pR1}, discovery: false, peers: ["127.0.0.1:${pB}"] }`],
    yaml: `policy_file: ${policyFile}`,
  })
  const b = await startGateway(t, { name: 'pb', udp: { port: pB!, peers: [pR1!] } })
  await Promise.all([routeTo(a, b), routeTo(b, a)])

  // ---- types ------------------------------------------------------------------------------
  const refused = await cli(['send', '--to', b.nodeId, 'VECTOR_SYNC', 'not through this relay', '--socket', a.socket])
  t.equal(refused.code, 0, 'A accepted it into its outbox (the relay decides later)')
  const ok = await cli(['send', '--to', b.nodeId, 'TASK_REQUEST', 'through', '--wait', '--timeout', '20000', '--socket', a.socket])
  t.equal(ok.code, 0, `TASK_REQUEST delivered through R (${ok.stderr.trim()})`)
  await untilAsync('R counts the refused VECTOR_SYNC', 15_000, async () => ((await call<{ policy: { counters: { by_violation: Record<string, number> } } }>(r, 'status')).policy.counters.by_violation.type_not_allowed ?? 0) >= 1 || undefined)
  const inbox = await call<Inbox>(b, 'messages')
  t.same(
    inbox.messages.map((m) => m.type),
    ['TASK_REQUEST'],
    'B received the task and not the refused type',
  )
  const st = json(await cli(['status', '--json', '--socket', r.socket])) as { policy: { name: string; enforcing: boolean; counters: { refused: number } } }
  t.equal(st.policy.name, 'tasks-only')
  t.equal(st.policy.enforcing, true)
  t.ok(st.policy.counters.refused >= 1)
  const shown = await cli(['policy', 'show', '--socket', r.socket])
  t.equal(shown.code, 0, shown.stderr)
  t.match(shown.stdout, /^policy: tasks-only from .*relay\.klp-policy/m)
  t.match(shown.stdout, /type_not_allowed\s+\d+/)
  const rec = vovEntries(r.stateDir).find((e) => e.type === 'message_refused')
  t.ok(rec, 'message_refused in the VoV log')
  t.match(rec?.data, { violation: 'type_not_allowed', type: 'VECTOR_SYNC', path: 'relay', via: a.nodeId, peer: a.nodeId, link: 'udp0', action: 'drop' })

  // ---- reload: bad then good ------------------------------------------------------------------
  const shaBefore = st.policy as unknown as { sha256: string }
  writeFileSync(policyFile, 'version: 1\nquotas:\n  - per: node\n    window_s: 60\n    messages: 3\n')
  const bad = await cli(['policy', 'reload', '--socket', r.socket])
  t.equal(bad.code, 1, 'a bad policy file: exit 1')
  t.match(bad.stderr, /quotas\[0\]\.per: "node" is not one of peer, type, peer_type \(.*relay\.klp-policy:3\)/)
  const still = await call<{ policy: { sha256: string; name: string } }>(r, 'status')
  t.equal(still.policy.name, 'tasks-only', 'the old policy stays in force')
  t.equal(still.policy.sha256, shaBefore.sha256)

  writeFileSync(
    policyFile,
    `version: 1
name: task-quota
quotas:
  - name: three-tasks
    per: peer
    types: [TASK_REQUEST]
    window_s: 600
    messages: 3
    action: disconnect_link
`,
  )
  const good = json(await cli(['policy', 'reload', '--json', '--socket', r.socket])) as { name: string; changed: boolean }
  t.equal(good.name, 'task-quota')
  t.equal(good.changed, true)

  // ---- quota → disconnect_link ------------------------------------------------------------------
  for (let i = 0; i < 5; i++) await cli(['send', '--to', b.nodeId, 'TASK_REQUEST', `task ${i}`, '--socket', a.socket])
  await untilAsync('R cuts udp0 on the quota', 30_000, async () => ((await call<{ links: Array<{ name: string; state: string }> }>(r, 'links')).links.find((l) => l.name === 'udp0')?.state === 'disconnected' ? true : undefined))
  const links = (await call<{ links: Array<{ name: string; state: string; disconnected: { reason: string; by: Record<string, unknown> } | null }> }>(r, 'links')).links
  const cut = links.find((l) => l.name === 'udp0')!
  t.match(cut.disconnected?.by, { policy: 'task-quota', rule: 'three-tasks', violation: 'quota_messages', peer: a.nodeId })
  t.match(cut.disconnected?.reason, /^policy task-quota: three-tasks/)
  t.equal(links.find((l) => l.name === 'udp1')?.state, 'up', 'the other link is untouched')
  const table = await cli(['links', '--socket', r.socket])
  t.match(table.stdout, /^udp0: disconnected by policy task-quota \(rule three-tasks\) at .*: policy task-quota: three-tasks/m, 'links says which policy rule cut it')
  const e = vovEntries(r.stateDir)
  const d = e.find((x) => x.type === 'link_disconnected')
  t.match(d?.data, { link: 'udp0', by: { policy: 'task-quota', rule: 'three-tasks' } })
  t.ok(e.some((x) => x.type === 'message_refused' && x.data.violation === 'quota_messages' && x.data.action === 'drop+disconnect_link'))

  // ---- SIGHUP reloads the policy too ----------------------------------------------------------
  writeFileSync(policyFile, TYPES_ONLY_TASKS.replace('tasks-only', 'after-hup'))
  r.proc.kill('SIGHUP')
  await untilAsync('the policy reloaded by SIGHUP', 15_000, async () => ((await call<{ policy: { name: string } }>(r, 'status')).policy.name === 'after-hup' ? true : undefined))
  await untilAsync('policy_loaded after-hup in the VoV log', 10_000, async () => (vovEntries(r.stateDir).some((x) => x.type === 'policy_loaded' && x.data.name === 'after-hup') ? true : undefined))
  t.pass('the SIGHUP reload recorded')
})

t.test('a flood of refusals: at most 60 message_refused entries a minute, the rest summarised', async (t) => {
  const [pA, pR] = await freeUdpPorts(2)
  const dir = shortDir(t)
  const policyFile = join(dir, 'deny.klp-policy')
  // Nothing from A is delivered: its agent messages are all of a type the policy refuses.
  writeFileSync(policyFile, 'version: 1\nname: deny-vectors\ntypes:\n  agent: [TASK_REQUEST]\n')
  const a = await startGateway(t, { name: 'fa', udp: { port: pA!, peers: [pR!] } })
  const r = await startGateway(t, { name: 'fr', udp: { port: pR!, peers: [pA!] }, yaml: `policy_file: ${policyFile}` })
  await routeTo(a, r)
  // Unreliable broadcasts: each is a new frame (no retransmission), refused at R.
  const c = await ControlClient.connect(a.socket, { timeoutMs: 10_000 })
  for (let i = 0; i < 150; i++) await c.call('send', { to: '*', type: 'VECTOR_SYNC', text: `v${i}` })
  await c.close()
  await untilAsync('R refused them all', 30_000, async () => ((await call<{ policy: { counters: { refused: number } } }>(r, 'status')).policy.counters.refused >= 150 ? true : undefined))
  await r.stop()
  const recs = vovEntries(r.stateDir).filter((x) => x.type === 'message_refused')
  const single = recs.filter((x) => x.data.event === 'policy_violation')
  const summaries = recs.filter((x) => x.data.event !== 'policy_violation')
  t.ok(single.length <= 60, `at most 60 written one by one (${single.length})`)
  t.ok(single.length >= 1)
  t.ok(summaries.length >= 1 && summaries.every((x) => x.data.event === 'policy_violations_suppressed'), 'the rest summarised')
  // A summary rides on the next entry written, or is an entry of its own (at stop).
  const suppressed = recs.reduce((n, x) => n + Number((x.data.suppressed as { count?: number } | undefined)?.count ?? 0), 0)
  t.ok(single.length + suppressed >= 150, `every refusal is either written or counted in a summary (${single.length} + ${suppressed})`)
})
