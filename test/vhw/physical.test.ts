/**
 * drivers/physical cut and restore lists on real kernel drivers, in one boot of the rig
 * (test/vhw/guest/physical.ts): GPIO lines of gpio-sim (radio power driven low, reset high), the
 * rfkill switches of a hwsim phy (by name) and of a vhci controller (by type), a hwsim Wi-Fi
 * interface. Each Observation is checked against what the kernel shows independently: the
 * simulator's sim_gpioN/value and line info, /sys/class/rfkill, the interface's flags.
 */
import t, { type Test } from 'tap'
import { readObservations, requireVhw, runVm } from '../lib/vhw.js'

t.setTimeout(10 * 60_000)

interface Truth {
  gpio: Array<{ offset: number; sim: number; used: boolean; consumer: string }>
  rfkill: Record<string, number>
  netdev: { up: boolean }
}

/** t.match on a list, and exactly as many items (t.match alone lets extra items through). */
function matchList(t: Test, actual: unknown, pattern: unknown[], msg?: string): void {
  t.equal(Array.isArray(actual) ? actual.length : -1, pattern.length, `${msg ?? 'list'}: ${pattern.length} observations`)
  t.match(actual, pattern, msg ?? 'list matches')
}

t.test('physical cut and restore in the rig', async (t) => {
  if (!requireVhw(t, { bluetooth: true })) return
  const vm = await runVm(t, { script: 'test/vhw/guest/physical.ts' })
  t.equal(vm.code, 0, 'the guest script ran to the end')
  const o = readObservations(t, vm)
  const dev = o.devices as { chip: string; wlan1: string; phy0: string; hci: string }
  const { chip, wlan1, phy0, hci } = dev
  const truth = (power: number, reset: number, held: boolean, blocked: number, up: boolean): Truth => ({
    gpio: [
      { offset: 0, sim: power, used: held, consumer: held ? 'kairo-gw test' : '' },
      { offset: 1, sim: reset, used: held, consumer: held ? 'kairo-gw test' : '' },
    ],
    rfkill: { [phy0]: blocked, [hci]: blocked },
    netdev: { up },
  })
  const ok = (action: string, observed: string | RegExp) => ({ action, ok: true, observed, error: null, msIsNumber: true })
  const cuts = [
    ok('gpio kairo-phys:lora-power=0', `${chip} line 0 (lora-power) reads 0`),
    ok(`gpio ${chip}:1=1`, `${chip} line 1 (lora-reset) reads 1`),
    ok(`rfkill ${phy0} block`, new RegExp(`^${phy0} \\(index \\d+, wlan\\) soft-blocked$`)),
    ok('rfkill bluetooth block', new RegExp(`^${hci} \\(index \\d+, bluetooth\\) soft-blocked$`)),
    ok(`netdev ${wlan1} down`, `${wlan1} down (operstate down)`),
  ]
  const restores = [
    ok('gpio kairo-phys:lora-power=1', `${chip} line 0 (lora-power) reads 1`),
    ok(`gpio ${chip}:1=0`, `${chip} line 1 (lora-reset) reads 0`),
    ok(`rfkill ${phy0} unblock`, new RegExp(`^${phy0} \\(index \\d+, wlan\\) unblocked$`)),
    ok('rfkill bluetooth unblock', new RegExp(`^${hci} \\(index \\d+, bluetooth\\) unblocked$`)),
    ok(`netdev ${wlan1} up`, `${wlan1} up (operstate down)`),
  ]

  t.same(
    o.describe,
    [
      { kind: 'gpio', describe: 'gpio kairo-phys:lora-power=0' },
      { kind: 'gpio', describe: `gpio ${chip}:1=1` },
      { kind: 'rfkill', describe: `rfkill ${phy0} block` },
      { kind: 'rfkill', describe: 'rfkill bluetooth block' },
      { kind: 'netdev', describe: `netdev ${wlan1} down` },
    ],
    'each action describes itself as configured',
  )
  t.same(o.before, truth(1, 0, false, 0, true), 'before: power pulled up, reset down, radios unblocked, Wi-Fi up')

  t.test('cut: every action observed, the kernel agrees', async (t) => {
    matchList(t, o.cut, cuts)
    t.same(o['after cut'], truth(0, 1, true, 1, false), 'power low and reset high and both held by the gateway, phy and controller soft-blocked, Wi-Fi down')
    t.match(o['a cut line is held'], { errno: 'EBUSY', error: /held line 0 by "kairo-gw test"/ }, 'nobody else can drive a cut line back up')
    matchList(t, o['cut again'], cuts, 'cutting a cut link again is fine')
    t.same(o['after cut again'], truth(0, 1, true, 1, false))
  })

  t.test('restore: in reverse order, every action observed', async (t) => {
    matchList(t, o.restore, [...restores].reverse())
    t.same(o['after restore'], truth(1, 0, true, 0, true), 'power high, reset low (still held: the gateway keeps driving them), radios unblocked, Wi-Fi up')
    t.same(o.release, truth(1, 0, false, 0, true), 'release gives the lines back; the board pulls keep the same levels')
  })

  t.test('after release the next cut takes the parts again', async (t) => {
    matchList(t, o['cut after release'], cuts)
    t.same(o['after cut after release'], truth(0, 1, true, 1, false))
    matchList(t, o['restore after release'], restores)
    t.same(o['after final release'], truth(1, 0, false, 0, true))
  })

  t.test('failures are observations naming the part, not throws', async (t) => {
    matchList(t, o['cut of missing parts'], [
      { action: 'gpio no-such-chip:lora-power=0', ok: false, error: /no-such-chip/ },
      { action: 'gpio kairo-phys:no-such-line=0', ok: false, error: /no-such-line/ },
      { action: 'rfkill nosuch block', ok: false, error: /nosuch/ },
      { action: 'netdev nosuch0 down', ok: false, error: /nosuch0/ },
    ])
    matchList(t, o['cut of a line held by another'], [{ action: 'gpio kairo-phys:rf-relay=0', ok: false, error: /busy.*"intruder"/ }], 'a line held by another consumer: not ok, the holder named')
    t.same(o['the other holder still drives it'], { sim: 1, consumer: 'intruder' })
  })

  // For information only (the benchmark measures latency): the rig is TCG-emulated and loaded.
  const ms = o.ms as Record<string, number[]>
  for (const [k, v] of Object.entries(ms)) t.comment(`${k}: ${v.map((x) => x.toFixed(2)).join(' ')} ms`)
})
