/**
 * The read-only admin commands against a real gateway (`kairo-gw run`, child process), driven as
 * child processes: status, links, peers, routes, neighbours, keys show; human tables and --json;
 * the three ways to find the socket; --help with examples.
 */
import t from 'tap'
import { cli, json, startGateway } from '../lib/gateway.js'

// One gateway for the read-only commands; each command in its own subtest so one that the gateway
// lacks does not hide the others.
const gw = await startGateway(t, { name: 'gw' })
const sock = ['--socket', gw.socket]

t.test('status: identity, uptime, links with counters; --json; the socket found three ways', async (t) => {
  const human = await cli(['status', ...sock])
  t.equal(human.code, 0, `status exits 0 (${human.stderr.trim()})`)
  t.match(human.stdout, new RegExp(`node ID\\s+${gw.nodeId}`), 'node ID')
  t.match(human.stdout, /^kairo-gw \d+\.\d+\.\d+ on \S+: up (\d+[dhm] )*\d+s/m, 'version and uptime, human-readable')
  t.match(human.stdout, /UUID\s+\S+/)
  t.match(human.stdout, /mesh IP\s+\S+/)
  t.match(human.stdout, /^LINK\s+KIND\s+STATE\s+MTU\s+FRAMES IN\s+FRAMES OUT\s+BYTES IN\s+BYTES OUT/m, 'the link table header')
  t.match(human.stdout, /^udp0\s+udp\s+up\s+\d+\s+\d+\s+\d+/m, 'udp0 is up, with counters')
  t.match(human.stdout, /neighbours\s+0/)
  t.match(human.stdout, /routes\s+0/)

  const st = json<{ node_id: string; version: string; uptime_s: number; links: Array<{ name: string; state: string; stats: Record<string, unknown> }> }>(await cli(['status', ...sock, '--json']))
  t.equal(st.node_id, gw.nodeId, '--json: the raw answer')
  t.equal(st.version, gw.ready.version)
  t.type(st.uptime_s, 'number')
  t.equal(st.links.find((l) => l.name === 'udp0')?.state, 'up')
  t.type(st.links[0]?.stats.framesIn, 'number', 'link counters')

  // The socket found from --runtime-dir, from $KAIRO_RUNTIME_DIR, from --state-dir (dev layout: <state>/run).
  for (const [how, args, env] of [
    ['--runtime-dir', ['--runtime-dir', gw.runtimeDir], {}],
    ['$KAIRO_RUNTIME_DIR', [], { KAIRO_RUNTIME_DIR: gw.runtimeDir }],
  ] as const) {
    const r = await cli(['status', '--json', ...args], { env })
    t.equal(r.code, 0, `${how}: found the socket (${r.stderr.trim()})`)
    t.equal(json<{ node_id: string }>(r).node_id, gw.nodeId)
  }

})

t.test('links', async (t) => {
  const links = await cli(['links', ...sock])
  t.equal(links.code, 0, `links exits 0 (${links.stderr.trim()})`)
  t.match(links.stdout, /^LINK\s+KIND\s+STATE\s+MTU\s+BITRATE/m)
  t.match(links.stdout, /^udp0\s+udp\s+up\s/m)
  const lj = json<{ links: Array<{ name: string }> }>(await cli(['links', ...sock, '--json']))
  t.ok(lj.links.some((l) => l.name === 'udp0'), 'links --json: {links: [...]}')

})

t.test('routes and neighbours (no other node: empty)', async (t) => {
  const routes = await cli(['routes', ...sock])
  t.equal(routes.code, 0)
  t.match(routes.stdout, /no routes/, 'no routes yet: said so')
  t.same(json(await cli(['routes', ...sock, '--json'])), { routes: [] })
  const both = json<{ routes: unknown[]; neighbours: unknown[] }>(await cli(['routes', '--neighbours', ...sock, '--json']))
  t.same(both, { routes: [], neighbours: [] }, 'routes --neighbours --json: both lists')
  const nb = await cli(['neighbours', ...sock])
  t.equal(nb.code, 0)
  t.match(nb.stdout, /no neighbours/)

})

t.test('peers', async (t) => {
  const peers = await cli(['peers', ...sock])
  t.equal(peers.code, 0, `peers exits 0 (${peers.stderr.trim()})`)
  t.match(peers.stdout, /no peers|^NODE ID/m)
  t.type(json<{ peers: unknown[] }>(await cli(['peers', ...sock, '--json'])).peers, Array)

})

t.test('keys show: public keys only', async (t) => {
  const keys = await cli(['keys', 'show', ...sock])
  t.equal(keys.code, 0, `keys show exits 0 (${keys.stderr.trim()})`)
  t.match(keys.stdout, new RegExp(`node ID\\s+${gw.nodeId}`))
  t.match(keys.stdout, /identity key\s+[0-9a-f]{64}/)
  t.match(keys.stdout, /log key\s+\S+\s+[0-9a-f]{64}/)
  const kj = json<{ node_id: string; identity_key: string; log_key: { key_id: string } }>(await cli(['keys', 'show', ...sock, '--json']))
  t.equal(kj.node_id, gw.nodeId)
  t.match(kj.identity_key, /^[0-9a-f]{64}$/)
  t.notMatch(JSON.stringify(kj), /secret|seed/i, 'no secret in the answer')
})

t.test('--help of every admin command: description, examples, where the socket is', async (t) => {
  for (const cmd of [['status'], ['links'], ['peers'], ['routes'], ['neighbours'], ['disconnect'], ['reconnect'], ['keys', 'show'], ['keys', 'rotate'], ['send']]) {
    const r = await cli([...cmd, '--help'])
    t.equal(r.code, 0, `${cmd.join(' ')} --help exits 0`)
    t.match(r.stdout, /Examples:\n\s+\$ /, `${cmd.join(' ')}: examples`)
    t.match(r.stdout, /--socket/, `${cmd.join(' ')}: --socket`)
    t.match(r.stdout, /control\.sock/, `${cmd.join(' ')}: where the socket is`)
  }
  const rotate = await cli(['keys', 'rotate', '--help'])
  t.match(rotate.stdout, /log-signing key/, 'keys rotate: says what rotates')
  t.match(rotate.stdout, /identity[\s\S]*new node/, 'and that the node identity cannot rotate without becoming a new node')
  const top = await cli(['--help'])
  for (const c of ['status', 'links', 'peers', 'routes', 'disconnect', 'reconnect', 'keys']) t.match(top.stdout, new RegExp(`^\\s+${c}\\b`, 'm'), `kairo-gw --help lists ${c}`)
})
