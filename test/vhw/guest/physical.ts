/**
 * Guest side of test/vhw/physical.test.ts: drivers/physical cut and restore lists on real kernel
 * drivers — GPIO lines of gpio-sim (radio power and reset), the rfkill switches of a hwsim phy and
 * of a vhci controller, a hwsim Wi-Fi interface — each Observation recorded beside what the
 * kernel shows independently (sim_gpioN/value, GPIO line info, /sys/class/rfkill, rtnetlink).
 */
import { GpioLines, lineInfo } from '../../../drivers/gpio/index.js'
import { linkState, setLinkUp } from '../../../drivers/netdev/index.js'
import { buildActions, type CutActionConfig, type Observation, type PhysicalAction } from '../../../drivers/physical/index.js'
import { GpioSim, Recorder, hwsim, sysfsRfkill, vhciController } from './lib.js'

const rec = new Recorder()
const sim = await GpioSim.create('phys', { lines: 4, names: { 0: 'lora-power', 1: 'lora-reset', 2: 'rf-relay' }, label: 'kairo-phys' })
const wlans = await hwsim(2)
const [wlan0, wlan1] = Object.keys(wlans).sort()
const phy0 = wlans[wlan0!]!
const vhci = await vhciController()
rec.set('devices', { chip: sim.chip, wlan1, phy0, hci: vhci.hci })

// The board's resting state: power enable pulled up (radio on), reset pulled down; Wi-Fi up.
sim.pull(0, 'pull-up')
sim.pull(1, 'pull-down')
setLinkUp(wlan1!, true)

/** What the kernel shows, read without drivers/physical. */
function truth() {
  const info = lineInfo(sim.path)
  const rf = sysfsRfkill()
  const l = linkState(wlan1!)
  return {
    gpio: [0, 1].map((o) => ({ offset: o, sim: sim.value(o), used: info[o]!.used, consumer: info[o]!.consumer })),
    rfkill: { [phy0]: rf[phy0]!.soft, [vhci.hci]: rf[vhci.hci]!.soft },
    netdev: { up: l.up },
  }
}
const shown = (o: Observation) => ({ action: o.action, ok: o.ok, observed: o.observed, error: o.error ?? null, msIsNumber: Number.isFinite(o.ms) && o.ms >= 0 })
const ms: Record<string, number[]> = {}
async function each(name: string, actions: PhysicalAction[], op: 'cut' | 'restore') {
  await rec.step(name, async () => {
    const out = []
    for (const a of actions) {
      const o = await a[op](3000)
      ;(ms[`${a.kind} ${op}`] ??= []).push(o.ms)
      out.push(shown(o))
    }
    return out
  })
}

const cfg: CutActionConfig[] = [
  { gpio: { chip: 'kairo-phys', line: 'lora-power', value: 0 } },
  { gpio: { chip: sim.chip, line: 1, value: 1 } },
  { rfkill: { name: phy0 } },
  { rfkill: { type: 'bluetooth' } },
  { netdev: { interface: wlan1! } },
]
const actions = buildActions(cfg, { consumer: 'kairo-gw test' })
rec.set('describe', actions.map((a) => ({ kind: a.kind, describe: a.describe })))
await rec.step('before', truth)
await each('cut', actions, 'cut')
await rec.step('after cut', truth)
await rec.step('a cut line is held', () => {
  try {
    GpioLines.request(sim.path, [0], { consumer: 'intruder', output: true, values: [1] }).close()
    return { noError: true }
  } catch (e) {
    return { errno: (e as { errno?: string }).errno, error: (e as Error).message }
  }
})
await each('cut again', actions, 'cut')
await rec.step('after cut again', truth)
await each('restore', [...actions].reverse(), 'restore')
await rec.step('after restore', truth)
await rec.step('release', () => {
  for (const a of actions) a.release()
  return truth()
})
// After release the next cut takes the line (and opens /dev/rfkill) again.
await each('cut after release', actions, 'cut')
await rec.step('after cut after release', truth)
await each('restore after release', actions, 'restore')
for (const a of actions) a.release()
await rec.step('after final release', truth)

// Failures: an Observation with ok false naming the part, never a throw.
const bad = buildActions(
  [
    { gpio: { chip: 'no-such-chip', line: 'lora-power', value: 0 } },
    { gpio: { chip: 'kairo-phys', line: 'no-such-line', value: 0 } },
    { rfkill: { name: 'nosuch' } },
    { netdev: { interface: 'nosuch0' } },
  ],
  { consumer: 'kairo-gw test' },
)
await each('cut of missing parts', bad, 'cut')
const intruder = GpioLines.request(sim.path, [2], { consumer: 'intruder', output: true, values: [1] })
const busy = buildActions([{ gpio: { chip: 'kairo-phys', line: 'rf-relay', value: 0 } }], { consumer: 'kairo-gw test' })
await each('cut of a line held by another', busy, 'cut')
await rec.step('the other holder still drives it', () => ({ sim: sim.value(2), consumer: lineInfo(sim.path)[2]!.consumer }))
intruder.close()
rec.set('ms', ms)
vhci.child.kill('SIGTERM')
rec.done()
