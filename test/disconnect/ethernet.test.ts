/**
 * Force disconnect on the host's real parts: a raw Ethernet link on one end of a veth pair inside
 * a network namespace, a second gateway on the other end.
 *
 * - `kairo-gw disconnect` sets the interface down through rtnetlink: seen from outside the
 *   namespace (`ip -n NS link`: no UP flag) and from the far end (no carrier, operstate down); the answer and the VoV entry list the action, what was observed, who asked
 *   and the latency.
 * - Latched across kill -9 and a "reboot" (the interface brought up again behind the gateway's
 *   back, as a boot would): the next start sets it down again before any link opens, recorded as
 *   link_cut_reasserted.
 * - `kairo-gw reconnect` sets it up, the link reopens and the far gateway is reachable again.
 * - A wedged driver: a LoRa link whose companion MCU (the emulator in its own process) is
 *   stopped with SIGSTOP. radio_off cannot be confirmed and fails after its own timeout; the
 *   interface after it in the cut list is still set down, the command answers (exit 5, naming
 *   the action that failed), and the link is latched.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Lab, operstate, requireEthernetLab } from '../ethernet/lab.js'
import { cli, json, routeTo, shortDir, startGateway, ROOT } from '../lib/gateway.js'
import { freeUdpPorts } from '../lib/ports.js'
import { until, untilAsync } from '../lib/until.js'
import { vovEntries } from '../lib/vov-lines.js'

/** Whether `ifname` in namespace `ns` has IFF_UP (`ip -o link`: the flags between < and >). */
function flagsUp(ns: string, ifname: string): boolean {
  const out = spawnSync('ip', ['-n', ns, '-o', 'link', 'show', 'dev', ifname], { encoding: 'utf8' }).stdout
  const flags = /<([^>]*)>/.exec(out)?.[1]
  if (flags === undefined) throw new Error(`no interface ${ifname} in ${ns}: ${out}`)
  return flags.split(',').includes('UP')
}

/** A veth pair, `va` up inside a new namespace (with its loopback), `vb` here and down. */
function vethInNamespace(t: Parameters<typeof requireEthernetLab>[0]): { lab: Lab; ns: string; va: string; vb: string } {
  const lab = new Lab(t)
  const ns = lab.netns()
  const [va, vb] = lab.veth()
  lab.moveTo(va, ns)
  lab.ipIn(ns, 'link', 'set', 'lo', 'up')
  lab.ipIn(ns, 'link', 'set', va, 'up')
  return { lab, ns, va, vb }
}

interface Action {
  kind: string
  action: string
  ok: boolean
  observed: string
  error?: string
  ms: number
  started_ms: number
  skipped?: boolean
}

t.test('raw Ethernet link in a namespace: cut by interface down, latched across kill -9 and a reboot, reconnected', async (t) => {
  if (!(await requireEthernetLab(t, { cap: true }))) return
  const { lab, ns, va, vb } = vethInNamespace(t)
  await lab.up(vb, [vb])
  const ports = await freeUdpPorts(2)
  const dir = join(shortDir(t), 'a')
  const eth = (ifname: string) => ['  - name: eth0', '    ethernet:', `      interface: ${ifname}`]
  const optsA = { name: 'ethcut', dir, netns: ns, udp: { port: ports[0]!, peers: [] }, links: eth(va) }
  const a = await startGateway(t, optsA)
  const b = await startGateway(t, { name: 'ethfar', udp: { port: ports[1]!, peers: [] }, links: eth(vb) })
  await routeTo(a, b)

  const r = await cli(['disconnect', 'eth0', '--reason', 'interference on the segment', '--json', '--socket', a.socket])
  t.equal(r.code, 0, r.stderr)
  const d = json(r) as { state: string; latched: boolean; ok: boolean; physical: boolean; latency_ms: number; actions: Action[]; by: { uid: number } }
  t.equal(d.state, 'disconnected')
  t.equal(d.latched, true)
  t.equal(d.ok, true, 'every action observed')
  t.equal(d.physical, true)
  t.equal(d.actions.length, 1, 'the default for an Ethernet link: its interface down')
  t.equal(d.actions[0]!.kind, 'netdev')
  t.equal(d.actions[0]!.ok, true)
  t.match(d.actions[0]!.action, va)
  t.type(d.latency_ms, 'number')
  t.ok(d.latency_ms >= d.actions[0]!.ms, 'latency runs from the trigger to the observation, so it covers the action')
  t.equal(d.by.uid, process.getuid!())
  t.equal(flagsUp(ns, va), false, 'ip -n NS link: the interface is down')
  await until(`${vb} (far end) loses its carrier`, 5000, () => operstate(vb) === 'down' && readFileSync(`/sys/class/net/${vb}/carrier`, 'utf8').trim() === '0')

  // The table form names the action and what was observed.
  const again = await cli(['disconnect', 'eth0', '--reason', 'twice', '--socket', a.socket])
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, /^eth0: already disconnected since .*: interference on the segment$/m, 'a second disconnect says it is already cut, and why')

  // kill -9, then the interface comes up again as it would at boot; the restart cuts it again.
  await a.kill9()
  lab.ipIn(ns, 'link', 'set', va, 'up')
  t.equal(flagsUp(ns, va), true)
  const a2 = await startGateway(t, optsA)
  t.equal(flagsUp(ns, va), false, 'down again by the time the restarted gateway is ready')
  const links = json(await cli(['links', '--json', '--socket', a2.socket])).links as Array<{ name: string; state: string }>
  t.equal(links.find((l) => l.name === 'eth0')?.state, 'disconnected', 'still latched')

  const rc = await cli(['reconnect', 'eth0', '--socket', a2.socket])
  t.equal(rc.code, 0, rc.stderr)
  t.match(rc.stdout, new RegExp(`^  1\\. .*${va}.*  ok  `, 'm'), 'reconnect lists the interface set up')
  t.equal(flagsUp(ns, va), true, 'up again')
  await routeTo(a2, b)
  await a2.stop()

  const e = vovEntries(a2.stateDir)
  const cut = e.find((x) => x.type === 'link_disconnected')!
  t.equal(cut.data.link, 'eth0')
  t.equal(cut.data.reason, 'interference on the segment')
  t.equal((cut.data.by as { uid: number }).uid, process.getuid!())
  t.equal((cut.data.actions as Action[])[0]!.kind, 'netdev')
  t.type(cut.data.latency_ms, 'number')
  const re = e.find((x) => x.type === 'link_cut_reasserted')!
  t.equal(re.data.link, 'eth0')
  t.equal(re.data.ok, true, 'the restart observed the interface down')
  t.equal(re.data.reason, 'interference on the segment', 'with the original reason')
  const back = e.find((x) => x.type === 'link_reconnected')!
  t.equal((back.data.actions as Action[])[0]!.ok, true)
  t.ok(e.findIndex((x) => x.type === 'link_cut_reasserted') < e.findIndex((x) => x.type === 'link_reconnected'))
})

t.test('a wedged LoRa driver does not hold up the cut: radio_off times out, the interface after it is still set down', async (t) => {
  if (!(await requireEthernetLab(t, { cap: true }))) return
  const { lab, ns, va, vb } = vethInNamespace(t)
  const dir = shortDir(t)
  // The companion MCU in a process of its own, on a socat PTY pair.
  const host = join(dir, 'host')
  const mcu = join(dir, 'mcu')
  const socat = spawn('socat', [`pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${mcu}`], { stdio: 'ignore' })
  t.teardown(() => socat.kill('SIGKILL'))
  await until('the PTY pair', 5000, () => spawnSync('test', ['-e', host]).status === 0 && spawnSync('test', ['-e', mcu]).status === 0)
  const emuCfg = join(dir, 'emu.json')
  writeFileSync(emuCfg, JSON.stringify({ radios: [{ name: 'lora0', tty: mcu, protocol: 'firmware-bridge' }] }))
  const emu = spawn(process.execPath, ['--import=tsx', join(ROOT, 'firmware-bridge/emulator/main.ts'), '--config', emuCfg, '--log', 'none'], { cwd: ROOT, stdio: 'ignore' })
  t.teardown(() => {
    emu.kill('SIGCONT')
    emu.kill('SIGKILL')
  })
  const ports = await freeUdpPorts(1)
  const g = await startGateway(t, {
    name: 'wedge',
    netns: ns,
    udp: { port: ports[0]!, peers: [] },
    links: ['  - name: lora0', `    lora: { port: ${host} }`, '    cut:', '      - radio_off: {}', '        timeout_ms: 300', `      - netdev: { interface: ${va} }`],
  })
  await untilAsync('lora0 up', 30_000, async () => {
    const l = json(await cli(['links', '--json', '--socket', g.socket])).links as Array<{ name: string; state: string }>
    return l.find((x) => x.name === 'lora0')?.state === 'up' ? true : undefined
  })
  emu.kill('SIGSTOP')
  const r = await cli(['disconnect', 'lora0', '--reason', 'mcu hung', '--socket', g.socket])
  t.equal(r.code, 5, `exit 5: cut and latched, but an action was not observed (${r.stderr})`)
  t.match(r.stdout, /^  1\. .*  FAILED  .*did not confirm radio off within 300 ms/m, 'the radio_off action names its timeout')
  t.match(r.stdout, new RegExp(`^  2\\. .*${va}.*  ok  `, 'm'), 'the interface after it was set down')
  t.equal(flagsUp(ns, va), false)
  const rj = json(await cli(['links', '--json', '--socket', g.socket])).links as Array<{ name: string; state: string }>
  t.equal(rj.find((x) => x.name === 'lora0')?.state, 'disconnected', 'latched')
})
