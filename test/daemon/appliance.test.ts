/**
 * The appliance end to end: real `kairo-gw run` daemons (temporary state and runtime dirs, UDP
 * on loopback) driven through the real CLI and their control sockets.
 *
 * - first start: identity (0600), UUID from KAIRO_NODE_ID, mesh IP in 100.64/16, socket 0660;
 *   kill -9 and restart keep identity, UUID, mesh IP and the audit chain; a byte changed in the
 *   middle of the daemon's own VoV log is caught at its file and line;
 * - peers: two gateways admit each other (tofu), recorded in the VoV log and in the JST
 *   coordination log; a third claiming one's UUID with another key is refused and recorded;
 * - a mesh IP conflict (one gateway's file set to the other's address) is settled by the two
 *   gateways alone, and both agree;
 * - disconnect is latched across kill -9 and restart and recorded with the caller's uid; reconnect;
 * - SIGHUP: a link added, then removed, the other link untouched; a bad file changes nothing;
 * - sd_notify: READY, WATCHDOG, RELOADING, STOPPING on a real notify socket;
 * - bad config, bad and oversized requests: clear errors, the daemon lives on.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { createConnection } from 'node:net'
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes, randomUUID } from 'node:crypto'
import { ControlClient } from '../../appliance/control/client.js'
import { Identity } from '../../appliance/core/identity.js'
import { meshIpFor, conflictWinner } from '../../appliance/identity/mesh-ip.js'
import { freeUdpPorts } from '../lib/ports.js'
import { until, untilAsync } from '../lib/until.js'
import { call, cli, json, routeTo, shortDir, startGateway, type Gateway } from '../lib/gateway.js'
import { vovEntries } from '../lib/vov-lines.js'


t.test('first start, kill -9 and restart: identity, UUID, mesh IP and the audit chain are kept; tampering is caught at its line', async (t) => {
  const [port] = await freeUdpPorts(1)
  const uuid = randomUUID()
  const dir = join(shortDir(t), 'g1')
  const opts = { name: 'g1', dir, udp: { port: port!, peers: [] as number[] }, env: { KAIRO_NODE_ID: uuid.toUpperCase() } }
  const g = await startGateway(t, opts)
  t.equal(g.ready.uuid, uuid, 'KAIRO_NODE_ID is the UUID (lower case)')
  t.match(String(g.ready.mesh_ip), /^100\.64\.\d{1,3}\.\d{1,3}$/)
  t.equal(statSync(join(g.stateDir, 'identity.key')).mode & 0o777, 0o600, 'identity key 0600')
  t.equal(statSync(g.socket).mode & 0o777, 0o660, 'control socket 0660')
  for (const f of readdirSync(join(g.stateDir, 'vov'))) t.equal(statSync(join(g.stateDir, 'vov', f)).mode & 0o077, 0, `vov/${f} is not readable by others`)

  const st = await cli(['status', '--socket', g.socket, '--json'])
  t.equal(st.code, 0, st.stderr)
  const s = json(st)
  t.equal(s.node_id, g.nodeId)
  t.equal(s.uuid, uuid)
  t.equal(s.mesh_ip, g.ready.mesh_ip)
  t.equal(typeof s.uptime_s, 'number')
  t.match(s.version, /^\d+\.\d+\.\d+/)
  const links = s.links as Array<{ name: string; state: string; stats: Record<string, unknown> }>
  t.same(links.map((l) => [l.name, l.state]), [['udp0', 'up']])
  t.type(links[0]!.stats.framesOut, 'number')

  await g.kill9()
  const g2 = await startGateway(t, opts)
  t.equal(g2.nodeId, g.nodeId, 'same node ID after kill -9')
  t.equal(g2.ready.uuid, uuid, 'same UUID')
  t.equal(g2.ready.mesh_ip, g.ready.mesh_ip, 'same mesh IP')
  t.equal(await g2.stop(), 0, 'SIGTERM: exit 0')

  const v = await cli(['log', 'verify', '--state-dir', g2.stateDir, '--json'])
  t.equal(v.code, 0, `the chain verifies across the kill: ${v.stdout}${v.stderr}`)
  const entries = vovEntries(g2.stateDir)
  t.equal(entries.filter((e) => e.type === 'daemon_started').length, 2, 'two starts recorded')
  t.equal(entries.filter((e) => e.type === 'daemon_stopped').length, 1, 'one clean stop recorded (the kill -9 left none)')
  t.ok(entries.some((e) => e.type === 'mesh_ip_assigned'), 'the mesh IP assignment is recorded')

  // One byte of one entry's data changed in the middle of the file: named by file and line.
  const vdir = join(g2.stateDir, 'vov')
  const file = readdirSync(vdir).filter((n) => n.endsWith('.jsonl')).sort()[0]!
  const lines = readFileSync(join(vdir, file), 'utf8').split('\n')
  const target = lines.findIndex((l) => l.includes('"daemon_stopped"'))
  t.ok(target > 0)
  lines[target] = lines[target]!.replace('"signal":"SIGTERM"', '"signal":"SIGTERX"')
  writeFileSync(join(vdir, file), lines.join('\n'))
  const bad = await cli(['log', 'verify', '--state-dir', g2.stateDir])
  t.not(bad.code, 0, 'a tampered log does not verify')
  t.match(bad.stdout + bad.stderr, new RegExp(`${file}:${target + 1}\\b`), `names ${file}:${target + 1}`)
})

t.test('peers: admitted on first use and recorded (VoV and the JST coordination log); a key change for a UUID is refused and recorded', async (t) => {
  const [pa, pb, pc] = await freeUdpPorts(3)
  const ua = randomUUID()
  const ub = randomUUID()
  const [a, b] = await Promise.all([
    startGateway(t, { name: 'a', udp: { port: pa!, peers: [pb!, pc!] }, env: { KAIRO_NODE_ID: ua } }),
    startGateway(t, { name: 'b', udp: { port: pb!, peers: [pa!] }, env: { KAIRO_NODE_ID: ub } }),
  ])
  await Promise.all([routeTo(a, b), routeTo(b, a)])
  const peersA = await cli(['peers', '--socket', a.socket, '--json'])
  t.equal(peersA.code, 0, peersA.stderr)
  const rows = (json(peersA).peers as Array<Record<string, unknown>>)
  const pbRow = rows.find((r) => r.node_id === b.nodeId)
  t.ok(pbRow, 'b is in a\'s registry')
  t.equal(pbRow?.state, 'admitted')
  t.equal(pbRow?.uuid, ub)
  t.equal(pbRow?.mesh_ip, b.ready.mesh_ip)
  t.ok(await until('peer_admitted on disk', 5000, () => vovEntries(a.stateDir).some((e) => e.type === 'peer_admitted' && e.data.node_id === b.nodeId)), 'peer_admitted in a\'s VoV log')
  const coordDir = join(a.stateDir, 'coordination')
  const coordFiles = readdirSync(coordDir)
  t.ok(coordFiles.every((f) => /^CoordinationNode_\d{8}\.log$/.test(f)), coordFiles.join(', '))
  const coordText = coordFiles.map((f) => readFileSync(join(coordDir, f), 'utf8')).join('')
  t.match(coordText, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\+09:00 peer_admitted .*${b.nodeId}`, 'm'), 'coordination line in JST')

  // c claims b's UUID with a key of its own.
  const c = await startGateway(t, { name: 'c', udp: { port: pc!, peers: [pa!] }, env: { KAIRO_NODE_ID: ub } })
  const refused = await untilAsync('a refuses c', 20_000, async () => {
    const r = (await call<{ peers: Array<Record<string, unknown>> }>(a, 'peers')).peers.find((p) => p.node_id === c.nodeId)
    return r?.state === 'refused' ? r : undefined
  })
  t.equal(refused!.reason, 'key_changed')
  await until('peer_refused on disk', 5000, () => vovEntries(a.stateDir).some((e) => e.type === 'peer_refused' && e.data.node_id === c.nodeId))
  const rec = vovEntries(a.stateDir).filter((e) => e.type === 'peer_refused' && e.data.node_id === c.nodeId)
  t.equal(rec.length, 1, 'recorded once, however often c announces')
  t.equal(rec[0]!.data.reason, 'key_changed')
  t.match(readdirSync(coordDir).map((f) => readFileSync(join(coordDir, f), 'utf8')).join(''), new RegExp(`peer_refused .*${c.nodeId}`))
  // c's announces change nothing at a: no route to it, while b's route stays.
  await new Promise((r) => setTimeout(r, 2500))
  const routes = (await call<{ routes: Array<{ dst: string }> }>(a, 'routes')).routes.map((r) => r.dst)
  t.notOk(routes.includes(c.nodeId), 'no route to the refused peer')
  t.ok(routes.includes(b.nodeId), 'the admitted peer keeps its route')
})

t.test('a mesh IP conflict is settled by the two gateways alone, and both agree', async (t) => {
  const [pa, pb] = await freeUdpPorts(2)
  const root = shortDir(t)
  // Two identities; b's mesh-ip.json is set to the attempt whose address is a's first address.
  const seeds = [randomBytes(32), randomBytes(32)]
  const ids = seeds.map((s) => Identity.fromSeed(s))
  const target = meshIpFor(ids[0]!.identityKey, 0)
  let attempt = 1
  while (meshIpFor(ids[1]!.identityKey, attempt) !== target) attempt++
  for (const [i, name] of ['a', 'b'].entries()) {
    const state = join(root, name, 'state')
    mkdirSync(state, { recursive: true, mode: 0o700 })
    writeFileSync(join(state, 'identity.key'), seeds[i]!.toString('hex') + '\n', { mode: 0o600 })
  }
  writeFileSync(join(root, 'b', 'state', 'mesh-ip.json'), JSON.stringify({ version: 1, node_id: ids[1]!.nodeIdHex, mesh_ip: target, attempt, assigned_at: new Date().toISOString() }) + '\n', { mode: 0o600 })
  const [a, b] = await Promise.all([
    startGateway(t, { name: 'a', dir: join(root, 'a'), udp: { port: pa!, peers: [pb!] } }),
    startGateway(t, { name: 'b', dir: join(root, 'b'), udp: { port: pb!, peers: [pa!] } }),
  ])
  // Both start on `target` (a by attempt 0, b by its file); which one reports ready first is a race,
  // so the start is checked from the loser's record of the conflict below.
  const winner = conflictWinner(a.nodeId, b.nodeId)
  const [ipA, ipB] = await untilAsync('the conflict is settled', 20_000, async () => {
    const [sa, sb] = await Promise.all([call<{ mesh_ip: string }>(a, 'status'), call<{ mesh_ip: string }>(b, 'status')])
    return sa.mesh_ip !== sb.mesh_ip ? [sa.mesh_ip, sb.mesh_ip] : undefined
  })
  t.equal(winner === a.nodeId ? ipA : ipB, target, 'the winner by the rule keeps the address')
  t.match(winner === a.nodeId ? ipB : ipA, /^100\.64\./, 'the other moved inside 100.64/16')
  const loser = winner === a.nodeId ? b : a
  await until('the conflict on disk', 5000, () => vovEntries(loser.stateDir).some((e) => e.type === 'mesh_ip_conflict'))
  const conflicts = vovEntries(loser.stateDir).filter((e) => e.type === 'mesh_ip_conflict')
  t.ok(conflicts.length >= 1, 'the loser records the conflict')
  t.equal(conflicts[0]!.data.kept, 'theirs')
  t.equal(conflicts[0]!.data.mesh_ip, target, 'the conflict was over the address both started on')
  // Both agree: each sees the other's new address in its peer registry.
  await untilAsync('each knows the other\'s address', 20_000, async () => {
    const pa2 = (await call<{ peers: Array<{ node_id: string; mesh_ip: string }> }>(a, 'peers')).peers.find((p) => p.node_id === b.nodeId)
    const pb2 = (await call<{ peers: Array<{ node_id: string; mesh_ip: string }> }>(b, 'peers')).peers.find((p) => p.node_id === a.nodeId)
    return pa2?.mesh_ip === ipB && pb2?.mesh_ip === ipA ? true : undefined
  })
  // A restart keeps the settled address.
  await loser.kill9()
  const again = await startGateway(t, { name: loser.name, dir: loser.dir, udp: { port: loser === a ? pa! : pb!, peers: [loser === a ? pb! : pa!] } })
  t.equal(again.ready.mesh_ip, loser === a ? ipA : ipB, 'the moved address survives kill -9')
})

t.test('disconnect is latched across kill -9 and a restart, and recorded with who asked; reconnect brings the link back', async (t) => {
  const [p0, p1] = await freeUdpPorts(2)
  const dir = join(shortDir(t), 'd')
  const opts = { name: 'd', dir, udp: { port: p0!, peers: [] as number[] }, links: ['  - name: udp1', `    udp: { host: 127.0.0.1, port: ${p1}, discovery: false }`] }
  const g = await startGateway(t, opts)
  const d = await cli(['disconnect', 'udp1', '--reason', 'tower work', '--socket', g.socket, '--json'])
  t.equal(d.code, 0, d.stderr)
  const dr = json(d)
  t.equal(dr.state, 'disconnected')
  t.equal(dr.latched, true)
  t.equal((dr.by as Record<string, unknown>).uid, process.getuid!(), 'who: the caller\'s uid from SO_PEERCRED')
  const unknown = await cli(['disconnect', 'nope', '--reason', 'x', '--socket', g.socket])
  t.not(unknown.code, 0)
  t.match(unknown.stderr, /no link named "nope"; the links are: udp0, udp1/)

  await g.kill9()
  const g2 = await startGateway(t, opts)
  const l = json(await cli(['links', '--socket', g2.socket, '--json'])).links as Array<{ name: string; state: string; disconnected: { reason: string } | null }>
  t.same(l.map((x) => [x.name, x.state]).sort(), [['udp0', 'up'], ['udp1', 'disconnected']], 'still cut after kill -9 and restart')
  t.equal(l.find((x) => x.name === 'udp1')!.disconnected!.reason, 'tower work')
  const r = await cli(['reconnect', 'udp1', '--socket', g2.socket, '--json'])
  t.equal(r.code, 0, r.stderr)
  await untilAsync('udp1 up', 10_000, async () => ((await call<{ links: Array<{ name: string; state: string }> }>(g2, 'links')).links.find((x) => x.name === 'udp1')?.state === 'up' ? true : undefined))
  await g2.stop()
  const e = vovEntries(g2.stateDir)
  const cut = e.find((x) => x.type === 'link_disconnected')!
  t.equal(cut.data.link, 'udp1')
  t.equal(cut.data.reason, 'tower work')
  t.equal((cut.data.by as Record<string, unknown>).uid, process.getuid!())
  t.equal(cut.data.physical, false, 'a UDP link has no physical action by default: its driver is closed')
  t.equal(cut.data.latency_ms, null, 'so no latency to a physical state is claimed')
  t.ok(e.some((x) => x.type === 'link_reconnected' && x.data.link === 'udp1'), 'reconnect recorded')
  t.ok(e.some((x) => x.type === 'admin_command' && x.data.method === 'disconnect'), 'the admin command recorded')
})

t.test('SIGHUP reload: a link added, then removed, the other untouched; a bad file changes nothing', async (t) => {
  const [pa, pb, p1] = await freeUdpPorts(3)
  const [a, b] = await Promise.all([startGateway(t, { name: 'a', udp: { port: pa!, peers: [pb!] } }), startGateway(t, { name: 'b', udp: { port: pb!, peers: [pa!] } })])
  await routeTo(a, b)
  const before = (await call<{ links: Array<{ name: string; stats: { downs: number } }> }>(a, 'links')).links.find((l) => l.name === 'udp0')!
  const original = readFileSync(a.config!, 'utf8')
  const withUdp1 = original.replace('mesh:', `  - name: udp1\n    udp: { host: 127.0.0.1, port: ${p1}, discovery: false }\nmesh:`)
  writeFileSync(a.config!, withUdp1)
  a.proc.kill('SIGHUP')
  const reloaded = await until('reloaded', 10_000, () => a.out().split('\n').filter((l) => l.includes('"reloaded"')).map((l) => JSON.parse(l) as Record<string, unknown>)[0])
  t.same(reloaded.added, ['udp1'])
  t.same(reloaded.unchanged, ['udp0'])
  await untilAsync('udp1 up', 10_000, async () => ((await call<{ links: Array<{ name: string; state: string }> }>(a, 'links')).links.find((l) => l.name === 'udp1')?.state === 'up' ? true : undefined))

  writeFileSync(a.config!, original.replace('links:', 'links: 7\nx:'))
  a.proc.kill('SIGHUP')
  const failed = await until('reload failed', 10_000, () => a.out().split('\n').filter((l) => l.includes('"reload_failed"')).map((l) => JSON.parse(l) as Record<string, unknown>)[0])
  t.match(String(failed.error), /config\.yaml/, 'the error names the file')
  t.equal((await call<{ links: unknown[] }>(a, 'links')).links.length, 2, 'a bad file changes nothing')

  writeFileSync(a.config!, original)
  const r = await call<{ removed: string[]; unchanged: string[] }>(a, 'reload')
  t.same(r.removed, ['udp1'])
  t.same(r.unchanged, ['udp0'])
  const after = (await call<{ links: Array<{ name: string; state: string; stats: { downs: number } }> }>(a, 'links')).links
  t.same(after.map((l) => l.name), ['udp0'])
  t.equal(after[0]!.state, 'up')
  t.equal(after[0]!.stats.downs, before.stats.downs, 'udp0 never went down')
  t.ok((await call<{ routes: Array<{ dst: string }> }>(a, 'routes')).routes.some((x) => x.dst === b.nodeId), 'the route through udp0 stayed')
  await until('the reloads on disk', 5000, () => vovEntries(a.stateDir).filter((e) => e.type === 'config_reloaded').length === 2)
  const kinds = vovEntries(a.stateDir).map((e) => e.type)
  t.equal(kinds.filter((k) => k === 'config_reloaded').length, 2)
  t.equal(kinds.filter((k) => k === 'config_reload_failed').length, 1)
})

t.test('sd_notify: READY once the socket listens, WATCHDOG pings, RELOADING on SIGHUP, STOPPING on SIGTERM', async (t) => {
  const dir = shortDir(t)
  const sock = join(dir, 'notify.sock')
  const log = join(dir, 'notify.log')
  const py = spawn('python3', ['-u', '-c', `import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); print('ready', flush=True)
f=open(sys.argv[2],'a')
while True:
    d=s.recv(4096); f.write(d.decode()+'\\n---\\n'); f.flush()`, sock, log], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => py.kill('SIGKILL'))
  await new Promise<void>((r) => py.stdout!.once('data', () => r()))
  const [port] = await freeUdpPorts(1)
  const g = await startGateway(t, { name: 'n', udp: { port: port!, peers: [] }, env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' } })
  const text = () => readFileSync(log, 'utf8')
  await until('READY=1', 10_000, () => (text().includes('READY=1') ? true : undefined))
  await until('three WATCHDOG=1', 10_000, () => ((text().match(/WATCHDOG=1/g) ?? []).length >= 3 ? true : undefined))
  g.proc.kill('SIGHUP')
  await until('RELOADING=1', 10_000, () => (text().includes('RELOADING=1') ? true : undefined))
  t.match(text(), /RELOADING=1\nMONOTONIC_USEC=\d+/)
  t.equal(await g.stop(), 0)
  t.match(text(), /STOPPING=1/)
  const order = ['READY=1', 'RELOADING=1', 'STOPPING=1'].map((k) => text().indexOf(k))
  t.ok(order[0]! < order[1]! && order[1]! < order[2]!, 'in order')
})

t.test('bad config, bad and oversized requests: clear errors, and the daemon lives on', async (t) => {
  const dir = shortDir(t)
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'links:\n  - name: l\n    lora: { port: /dev/x, spreading_factor: 13 }\n')
  const r = await cli(['run', '--config', bad])
  t.not(r.code, 0)
  t.match(r.stderr, /links\[0\]\.lora\.spreading_factor: 13 is out of range 5\.\.12 \(.*bad\.yaml:3\)/)

  const [port] = await freeUdpPorts(1)
  const g = await startGateway(t, { name: 'r', udp: { port: port!, peers: [] } })
  const raw = (payload: string) =>
    new Promise<string>((resolve) => {
      const s = createConnection(g.socket)
      let got = ''
      s.on('data', (d) => {
        got += d.toString()
        if (got.includes('\n')) s.end()
      })
      s.on('close', () => resolve(got))
      s.on('error', () => resolve(got))
      s.write(payload)
    })
  t.match(JSON.parse(await raw('{nope\n')), { error: { code: -32700 } })
  t.match(JSON.parse(await raw('{"jsonrpc":"2.0","id":1,"method":"format_disk"}\n')), { id: 1, error: { code: -32601 } })
  t.match(JSON.parse(await raw('{"jsonrpc":"2.0","id":2,"method":"disconnect","params":{"link":"udp0"}}\n')), { id: 2, error: { code: -32602, data: { field: 'reason' } } })
  t.match(JSON.parse(await raw('{"jsonrpc":"2.0","id":3,"method":"send","params":{"to":"zz","type":"TASK_REQUEST"}}\n')), { id: 3, error: { code: -32602, data: { field: 'to' } } })
  t.match(JSON.parse(await raw(`{"jsonrpc":"2.0","id":4,"method":"status","params":{"x":"${'a'.repeat(2 * 1024 * 1024)}"}}\n`)), { error: { code: -32600, message: /larger than/ } })
  const st = await call<{ node_id: string }>(g, 'status')
  t.equal(st.node_id, g.nodeId, 'still answering')
  t.equal(g.proc.exitCode, null, 'still running')
})
