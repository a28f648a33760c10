/**
 * drivers/physical: the actions of a `cut:` list. A netdev cut and restore on a real veth (the
 * peer in a namespace), each Observation checked against what iproute2 sees; radio_off against a
 * stand-in RadioSwitch (answering, refusing, never answering); GPIO and rfkill actions on this
 * host, where their device is missing: no throw, ok=false, the error naming the chip or the
 * device. The GPIO and rfkill success paths run in the VM (test/vhw/).
 */
import t, { type Test } from 'tap'
import { PhysicalConfigError, buildActions, type Observation, type RadioSwitch } from '../../drivers/physical/index.js'
import { Lab, requireEthernetLab, run } from '../ethernet/lab.js'
import { until } from '../lib/until.js'
import { requireHw } from './lib.js'

const ctx = { consumer: 'kairo-test:link0' }

function ipFlags(ifname: string, ns?: string): string[] {
  const out = run('ip', [...(ns !== undefined ? ['-n', ns] : []), '-j', 'link', 'show', 'dev', ifname])
  return (JSON.parse(out) as Array<{ flags: string[] }>)[0]!.flags
}

function checkShape(t: Test, o: Observation, action: string): void {
  t.equal(o.action, action)
  t.ok(Number.isFinite(o.ms) && o.ms >= 0, `ms is a measured duration (${o.ms})`)
  t.type(o.observed, 'string')
}

if (requireHw(t) !== undefined) {
  t.test('netdev on a veth: cut = down, observed; restore = up, observed; the peer sees both', async (t) => {
    if (!(await requireEthernetLab(t))) return
    const lab = new Lab(t)
    const [a, b] = lab.veth()
    const ns = lab.netns()
    lab.moveTo(b, ns)
    lab.ipIn(ns, 'link', 'set', b, 'up')
    await lab.up(a)
    await until(`${b} carrier`, 5000, () => ipFlags(b, ns).includes('LOWER_UP'))

    const [act] = buildActions([{ netdev: { interface: a } }], ctx)
    t.equal(act!.kind, 'netdev')
    t.equal(act!.describe, `netdev ${a} down`)
    t.equal(act!.describeRestore, `netdev ${a} up`)

    const cut = await act!.cut(1000)
    checkShape(t, cut, `netdev ${a} down`)
    t.match(cut, { ok: true, observed: new RegExp(`^${a} down \\(operstate `) })
    t.equal(cut.error, undefined)
    t.notOk(ipFlags(a).includes('UP'), 'iproute2: down')
    await until(`${b} (in ${ns}) to lose the carrier`, 5000, () => ipFlags(b, ns).includes('NO-CARRIER'))

    const again = await act!.cut(1000)
    t.match(again, { ok: true }, 'cutting a cut link is fine')

    const restore = await act!.restore(1000)
    checkShape(t, restore, `netdev ${a} up`)
    t.match(restore, { ok: true, observed: new RegExp(`^${a} up`) })
    t.ok(ipFlags(a).includes('UP'), 'iproute2: up')
    await until(`${b} (in ${ns}) to see the carrier again`, 5000, () => ipFlags(b, ns).includes('LOWER_UP'))
    act!.release()
    act!.release()
  })

  t.test('netdev: an interface that is not there is ok=false naming it, never a throw', async (t) => {
    const [act] = buildActions([{ netdev: { interface: 'kte-none0' } }], ctx)
    for (const o of [await act!.cut(100), await act!.restore(100)]) {
      t.match(o, { ok: false, observed: 'not changed', error: /netdev kte-none0: set (down|up): no such interface/ })
      t.ok(o.ms >= 0)
    }
  })

  t.test('gpio without the chip: ok=false, the error names the chip and the line', async (t) => {
    const [byLabel, byPath] = buildActions(
      [{ gpio: { chip: 'gpio-sim.0-node0', line: 'lora-power', value: 0 } }, { gpio: { chip: '/dev/gpiochip97', line: 3, value: 1 } }],
      ctx,
    )
    t.equal(byLabel!.describe, 'gpio gpio-sim.0-node0:lora-power=0')
    t.equal(byLabel!.describeRestore, 'gpio gpio-sim.0-node0:lora-power=1')
    t.equal(byPath!.describe, 'gpio /dev/gpiochip97:3=1')
    const o1 = await byLabel!.cut(100)
    checkShape(t, o1, 'gpio gpio-sim.0-node0:lora-power=0')
    t.match(o1, { ok: false, observed: 'not driven', error: /gpio chip "gpio-sim\.0-node0": no chip with that label/ })
    const o2 = await byPath!.restore(100)
    checkShape(t, o2, 'gpio /dev/gpiochip97:3=0')
    t.match(o2, { ok: false, error: /\/dev\/gpiochip97.*no such GPIO chip/ })
    byLabel!.release()
    byPath!.release()
  })

  t.test('rfkill without the device: ok=false, the error names /dev/rfkill', async (t) => {
    const [byType, byName] = buildActions([{ rfkill: { type: 'wlan' } }, { rfkill: { name: 'hci0', index: 1 } }], { ...ctx, rfkillPath: '/run/kairo-none/rfkill' })
    t.equal(byType!.describe, 'rfkill wlan block')
    t.equal(byName!.describe, 'rfkill hci0 #1 block')
    t.equal(byName!.describeRestore, 'rfkill hci0 #1 unblock')
    const o = await byType!.cut(100)
    checkShape(t, o, 'rfkill wlan block')
    t.match(o, { ok: false, observed: 'no switch seen for type wlan', error: /rfkill \/run\/kairo-none\/rfkill: no such file/ })
    const [dflt] = buildActions([{ rfkill: { type: 'wlan' } }], ctx)
    const o2 = await dflt!.restore(100)
    t.match(o2, { ok: false, action: 'rfkill wlan unblock', error: /\/dev\/rfkill/ })
    byType!.release()
    byName!.release()
    dflt!.release()
  })

  t.test('radio_off: the firmware confirms, refuses, or never answers (bounded by timeoutMs)', async (t) => {
    const calls: Array<[boolean, number]> = []
    const answering: RadioSwitch = { radio: async (on, ms) => void calls.push([on, ms]) }
    const [act] = buildActions([{ radio_off: {} }], { ...ctx, radio: answering })
    t.equal(act!.kind, 'radio_off')
    const cut = await act!.cut(250)
    checkShape(t, cut, 'radio_off')
    t.match(cut, { ok: true, observed: 'radio off (confirmed by the firmware)' })
    const restore = await act!.restore(250)
    t.match(restore, { ok: true, action: 'radio_on', observed: 'radio on (confirmed by the firmware)' })
    t.same(calls, [
      [false, 250],
      [true, 250],
    ])

    const refusing: RadioSwitch = {
      radio: async () => {
        throw new Error('firmware: NACK')
      },
    }
    const [r] = buildActions([{ radio_off: {} }], { ...ctx, radio: refusing })
    t.match(await r!.cut(250), { ok: false, observed: 'no confirmation', error: 'firmware: NACK' })

    const throwingSync: RadioSwitch = {
      radio: () => {
        throw new Error('link closed')
      },
    }
    const [s] = buildActions([{ radio_off: {} }], { ...ctx, radio: throwingSync })
    t.match(await s!.cut(250), { ok: false, error: 'link closed' }, 'a synchronous throw is an observation too')

    const silent: RadioSwitch = { radio: () => new Promise(() => undefined) }
    const [q] = buildActions([{ radio_off: {} }], { ...ctx, radio: silent })
    t.match(await q!.cut(5), { ok: false, error: 'the firmware did not confirm radio off within 5 ms' })
  })

  t.test('buildActions refuses a bad list with every problem by path, and radio_off without a RadioSwitch', async (t) => {
    t.throws(
      () => buildActions([{ gpio: { chip: '', line: 'x', value: 2 } } as never, { netdev: { interface: 'eth/0' } }], ctx),
      { name: 'PhysicalConfigError', code: 'ECONFIG', message: /cut\[0\]\.gpio\.chip: .*\ncut\[0\]\.gpio\.value: .*\ncut\[1\]\.netdev\.interface: / },
    )
    const err = (() => {
      try {
        buildActions([{ netdev: { interface: 'eth0' } }, { radio_off: {} }], ctx)
      } catch (e) {
        return e
      }
    })()
    t.type(err, PhysicalConfigError)
    t.same((err as PhysicalConfigError).problems, [{ path: 'cut[1].radio_off', message: 'needs the LoRa link to switch its radio (no RadioSwitch given)' }])
    t.same(buildActions([], ctx), [], 'an empty list: no actions')
  })
}
