/**
 * The commands that change the running gateway, against a real one (child process): disconnect
 * and reconnect a link, rotate the VoV log key; unknown links and bad arguments with exit 2.
 */
import t from 'tap'
import { cli, json, startGateway } from '../lib/gateway.js'

interface LinkRow {
  name: string
  state: string
  disconnected: null | { at: string; reason: string }
}

t.test('disconnect and reconnect a link: latched, shown in links and status, back after reconnect', async (t) => {
  const gw = await startGateway(t, { name: 'adm' })
  const sock = ['--socket', gw.socket]
  const links = async () => json<{ links: LinkRow[] }>(await cli(['links', ...sock, '--json'])).links

  const d = await cli(['disconnect', 'udp0', '--reason', 'maintenance window', ...sock])
  t.equal(d.code, 0, `disconnect exits 0 (${d.stderr.trim()})`)
  t.match(d.stdout, /^udp0: disconnected at \d{4}-\d\d-\d\dT[\d:]+Z \(latched until `kairo-gw reconnect udp0`\)/m)
  const row = (await links()).find((l) => l.name === 'udp0')
  t.equal(row?.disconnected?.reason, 'maintenance window', 'links --json: who/why recorded')
  const table = await cli(['links', ...sock])
  t.match(table.stdout, /^udp0\s+udp\s+disconnected\s/m, 'links: STATE disconnected')
  t.match(table.stdout, /^udp0: disconnected by an operator at .*: maintenance window; `kairo-gw reconnect udp0` brings it back$/m)
  const st = await cli(['status', ...sock])
  t.match(st.stdout, /^udp0\s+udp\s+disconnected\s/m, 'status shows it too')

  const again = json<{ link: string; state: string; latched: boolean }>(await cli(['disconnect', 'udp0', '--reason', 'twice', '--json', ...sock]))
  t.same([again.link, again.state, again.latched], ['udp0', 'disconnected', true], '--json: the raw answer')

  const r = await cli(['reconnect', 'udp0', ...sock])
  t.equal(r.code, 0, `reconnect exits 0 (${r.stderr.trim()})`)
  t.match(r.stdout, /^udp0: (up|opening)$/m)
  let state = ''
  for (let i = 0; i < 100 && state !== 'up'; i++) {
    const l = (await links()).find((x) => x.name === 'udp0')
    state = l?.disconnected ? 'disconnected' : (l?.state ?? '')
    if (state !== 'up') await new Promise((res) => setTimeout(res, 100))
  }
  t.equal(state, 'up', 'udp0 is up again')
})

t.test('disconnect: unknown link, bad name, no reason: exit 2 naming the problem', async (t) => {
  const gw = await startGateway(t, { name: 'adm2' })
  const sock = ['--socket', gw.socket]
  const unknown = await cli(['disconnect', 'nosuch0', '--reason', 'test', ...sock])
  t.equal(unknown.code, 2, `unknown link: exit 2 (${unknown.stderr.trim()})`)
  t.match(unknown.stderr, /nosuch0/, 'names the link')
  const ur = await cli(['reconnect', 'nosuch0', ...sock])
  t.equal(ur.code, 2, `reconnect of an unknown link: exit 2 (${ur.stderr.trim()})`)
  const bad = await cli(['disconnect', 'UDP 0', '--reason', 'x', ...sock])
  t.equal(bad.code, 2, 'a name no link can have: exit 2 before asking the gateway')
  t.match(bad.stderr, /link name/)
  const noReason = await cli(['disconnect', 'udp0', ...sock])
  t.equal(noReason.code, 2, 'no --reason: exit 2')
  t.match(noReason.stderr, /--reason/)
  const blank = await cli(['disconnect', 'udp0', '--reason', '  ', ...sock])
  t.equal(blank.code, 2, 'a blank reason: exit 2')
  const links = json<{ links: LinkRow[] }>(await cli(['links', ...sock, '--json'])).links
  t.equal(links.find((l) => l.name === 'udp0')?.disconnected ?? null, null, 'none of that disconnected anything')
})

t.test('keys rotate: a new log key; keys show follows; the node identity stays', async (t) => {
  const gw = await startGateway(t, { name: 'keys' })
  const sock = ['--socket', gw.socket]
  const before = json<{ node_id: string; identity_key: string; log_key: { key_id: string } }>(await cli(['keys', 'show', ...sock, '--json']))
  const rot = await cli(['keys', 'rotate', ...sock])
  t.equal(rot.code, 0, `keys rotate exits 0 (${rot.stderr.trim()})`)
  const m = /^log key rotated: (\S+) -> (\S+) \(expires \d{4}-/m.exec(rot.stdout)
  t.ok(m, `says from which key to which: ${rot.stdout.trim()}`)
  t.equal(m?.[1], before.log_key.key_id, 'from the key keys show gave')
  t.not(m?.[2], before.log_key.key_id, 'to a new one')
  const rj = json<{ log_key: { key_id: string; public_key: string }; previous_key_id: string }>(await cli(['keys', 'rotate', ...sock, '--json']))
  t.equal(rj.previous_key_id, m?.[2], '--json: previous_key_id is the last rotation')
  const after = json<{ node_id: string; identity_key: string; log_key: { key_id: string } }>(await cli(['keys', 'show', ...sock, '--json']))
  t.equal(after.log_key.key_id, rj.log_key.key_id, 'keys show: the current log key')
  t.equal(after.node_id, before.node_id, 'same node')
  t.equal(after.identity_key, before.identity_key, 'same identity key')
})
