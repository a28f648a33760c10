/**
 * Guest side of test/vhw/disconnect.test.ts: the real gateway daemon in the rig, force
 * disconnecting links whose cut lists name real kernel devices.
 *
 * - lora0 (the emulated LoRa radio on a socat PTY): radio_off through its firmware, then its
 *   power and reset lines on gpio-sim driven low and held. The board pulls both lines up (radio
 *   powered, out of reset), so the simulator shows exactly what the daemon does.
 * - wifi0 (a UDP link; its cut list names the hwsim phy's rfkill switch and the wlan interface):
 *   rfkill blocked and the interface set down. An `rfkill unblock` by someone else while it is
 *   latched is undone by the daemon (it watches /dev/rfkill).
 * - The daemon is killed (SIGKILL, lines released: the pulls bring the radio back up, as a
 *   reboot would) and started again: the latched cut is applied again before it is ready.
 * - reconnect restores each in reverse order.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ControlClient } from '../../../appliance/control/client.js'
import { linkState, setLinkUp } from '../../../drivers/netdev/index.js'
import { GpioSim, Recorder, hwsim, sleep, sysfsRfkill, waitFor } from './lib.js'

const rec = new Recorder()
const sim = await GpioSim.create('lora', { lines: 4, names: { 0: 'lora-power', 1: 'lora-reset' }, label: 'kairo-lora' })
sim.pull(0, 'pull-up')
sim.pull(1, 'pull-up')
const wlans = await hwsim(1)
const wlan = Object.keys(wlans)[0]!
const phy = wlans[wlan]!
setLinkUp(wlan, true)
const dir = mkdtempSync('/tmp/kd-')
const config = join(dir, 'config.yaml')
writeFileSync(
  config,
  `node: { name: vhw }
state_dir: ${dir}/state
runtime_dir: ${dir}/run
links:
  - name: lora0
    lora: { emulated: true }
    cut:
      - radio_off: {}
      - gpio: { chip: kairo-lora, line: lora-power, value: 0 }
      - gpio: { chip: kairo-lora, line: lora-reset, value: 0 }
  - name: wifi0
    udp: { host: 127.0.0.1, port: 47911, discovery: false }
    cut:
      - rfkill: { name: ${phy} }
      - netdev: { interface: ${wlan} }
`,
)
rec.set('devices', { chip: sim.chip, wlan, phy })

function truth() {
  const rf = sysfsRfkill()[phy]!
  return { power: sim.value(0), reset: sim.value(1), rfkillSoft: rf.soft, wlanUp: linkState(wlan).up }
}

let gw: ChildProcess | null = null
let out = ''
async function start(): Promise<ControlClient> {
  out = ''
  gw = spawn(process.execPath, ['appliance/bin/kairo-gw.mjs', 'run', '--config', config, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  gw.stdout!.on('data', (d: Buffer) => void (out += d.toString()))
  gw.stderr!.on('data', (d: Buffer) => void (out += d.toString()))
  await waitFor('the daemon ready', 120_000, () => {
    if (gw!.exitCode !== null) throw new Error(`the daemon exited ${gw!.exitCode}: ${out}`)
    return out.includes('"event":"ready"')
  })
  return ControlClient.connect(join(dir, 'run', 'control.sock'), { timeoutMs: 30_000 })
}
const linkStateOf = async (c: ControlClient, name: string) => (await c.call<{ links: Array<{ name: string; state: string }> }>('links')).links.find((l) => l.name === name)?.state
const shown = (r: Record<string, unknown>) => ({
  ok: r.ok,
  latched: r.latched ?? null,
  latencyIsNumber: typeof r.latency_ms === 'number',
  actions: (r.actions as Array<Record<string, unknown>>).map((a) => ({ kind: a.kind, ok: a.ok, skipped: a.skipped ?? false, retried: a.retried ?? false, observed: a.observed, error: a.error ?? null, firstError: a.first_error ?? null })),
})
function vov(): Array<{ type: string; data: Record<string, unknown> }> {
  const d = join(dir, 'state', 'vov')
  return readdirSync(d)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .flatMap((f) => readFileSync(join(d, f), 'utf8').split('\n').filter((l) => l.startsWith('{')))
    .map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> })
}

/** waitFor with an async probe. */
async function until(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

rec.set('before start', truth())
let c = await start()
await until('lora0 up', 60_000, async () => (await linkStateOf(c, 'lora0')) === 'up')
await rec.step('lora0 up: lines as the board pulls them', () => truth())

await rec.step('disconnect lora0', async () => shown(await c.call('disconnect', { link: 'lora0', reason: 'antenna work' })))
await rec.step('after disconnect lora0', () => truth())
await rec.step('disconnect wifi0', async () => shown(await c.call('disconnect', { link: 'wifi0', reason: 'rf silence' })))
await rec.step('after disconnect wifi0', () => truth())

// Someone unblocks the switch behind the gateway's back: it is blocked again.
const rfIndex = sysfsRfkill()[phy]!.index
writeFileSync(`/sys/class/rfkill/rfkill${rfIndex}/soft`, '0')
await rec.step('rfkill unblocked by someone else, then', async () => {
  await waitFor('the switch blocked again and recorded', 30_000, () => sysfsRfkill()[phy]!.soft === 1 && vov().some((e) => e.type === 'link_cut_reasserted' && e.data.link === 'wifi0'))
  return { soft: sysfsRfkill()[phy]!.soft, recorded: vov().some((e) => e.type === 'link_cut_reasserted' && e.data.link === 'wifi0' && String(e.data.cause).includes('unblocked outside kairo-gw')) }
})

// A crash and a "reboot": the lines are released, the pulls bring the radio back; Wi-Fi unblocked and up.
await c.close()
gw!.kill('SIGKILL')
await new Promise((r) => gw!.once('exit', r))
writeFileSync(`/sys/class/rfkill/rfkill${rfIndex}/soft`, '0')
setLinkUp(wlan, true)
await rec.step('after kill -9 (nothing held)', () => truth())
c = await start()
await rec.step('after restart (latched: cut again)', () => truth())
await rec.step('links after restart', async () => ({ lora0: await linkStateOf(c, 'lora0'), wifi0: await linkStateOf(c, 'wifi0') }))

await rec.step('reconnect lora0', async () => shown(await c.call('reconnect', { link: 'lora0' })))
await rec.step('after reconnect lora0', async () => {
  await until('lora0 up again', 60_000, async () => (await linkStateOf(c, 'lora0')) === 'up')
  return truth()
})
await rec.step('reconnect wifi0', async () => shown(await c.call('reconnect', { link: 'wifi0' })))
await rec.step('after reconnect wifi0', () => truth())
await c.close()
gw!.kill('SIGTERM')
await new Promise((r) => gw!.once('exit', r))
await rec.step('vov', () => {
  const e = vov()
  const types = e.map((x) => x.type)
  const cut = e.find((x) => x.type === 'link_disconnected' && x.data.link === 'lora0')
  return {
    disconnected: types.filter((x) => x === 'link_disconnected').length,
    reasserted: e.filter((x) => x.type === 'link_cut_reasserted').map((x) => x.data.link).sort(),
    reconnected: types.filter((x) => x === 'link_reconnected').length,
    loraCut: cut === undefined ? null : { reason: cut.data.reason, kinds: (cut.data.actions as Array<{ kind: string }>).map((a) => a.kind), latencyIsNumber: typeof cut.data.latency_ms === 'number', uid: (cut.data.by as { uid?: number }).uid },
  }
})
rec.done()
