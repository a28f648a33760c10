/**
 * Force disconnect on real kernel drivers (the rig: gpio-sim, mac80211_hwsim, rfkill), through
 * the real daemon and its control socket (test/vhw/guest/disconnect.ts): the LoRa radio's power
 * and reset lines pulled low and held, seen by the simulator; a Wi-Fi phy's rfkill switch
 * blocked and its interface down; an unblock by someone else undone; the cut applied again after
 * kill -9 and a restart; reconnect restoring all of it.
 */
import t from 'tap'
import { readObservations, requireVhw, runVm } from '../lib/vhw.js'

t.setTimeout(10 * 60_000)

t.test('the daemon cuts a LoRa radio by its GPIO lines and a Wi-Fi phy by rfkill, latched across kill -9', async (t) => {
  if (!requireVhw(t)) return
  const vm = await runVm(t, { script: 'test/vhw/guest/disconnect.ts', timeoutMs: 480_000 })
  t.equal(vm.code, 0, 'the guest script ran to the end')
  const o = readObservations(t, vm)
  const chip = (o.devices as { chip: string }).chip
  const up = { power: 1, reset: 1, rfkillSoft: 0, wlanUp: true }
  t.same(o['before start'], up, 'the board: radio powered, out of reset; Wi-Fi unblocked and up')
  t.same(o['lora0 up: lines as the board pulls them'], up, 'nothing driven while the link runs')
  const radioOff = (o['disconnect lora0'] as { actions: Array<{ observed: string }> } | undefined)?.actions[0]?.observed
  t.same(
    o['disconnect lora0'],
    {
      ok: true,
      latched: true,
      latencyIsNumber: true,
      actions: [
        { kind: 'radio_off', ok: true, skipped: false, retried: false, observed: radioOff, error: null, firstError: null },
        { kind: 'gpio', ok: true, skipped: false, retried: false, observed: `${chip} line 0 (lora-power) reads 0`, error: null, firstError: null },
        { kind: 'gpio', ok: true, skipped: false, retried: false, observed: `${chip} line 1 (lora-reset) reads 0`, error: null, firstError: null },
      ],
    },
    'radio off by the firmware, then both lines driven low and read back',
  )
  t.match(radioOff, /radio off/, 'the firmware confirmed the radio off')
  t.match(o['after disconnect lora0'], { power: 0, reset: 0 }, 'the simulator sees the power and reset lines low')
  t.match(o['disconnect wifi0'], { ok: true, latched: true, actions: [{ kind: 'rfkill', ok: true }, { kind: 'netdev', ok: true }] })
  t.same(o['after disconnect wifi0'], { power: 0, reset: 0, rfkillSoft: 1, wlanUp: false }, 'rfkill blocked in sysfs, interface down; the LoRa lines still held')
  t.same(o['rfkill unblocked by someone else, then'], { soft: 1, recorded: true }, 'blocked again by the daemon, and recorded')

  t.same(o['after kill -9 (nothing held)'], up, 'with the daemon gone the lines follow the board again, and Wi-Fi is back up (as after a reboot)')
  t.same(o['after restart (latched: cut again)'], { power: 0, reset: 0, rfkillSoft: 1, wlanUp: false }, 'the restarted daemon cut both links again before it was ready')
  t.same(o['links after restart'], { lora0: 'disconnected', wifi0: 'disconnected' })

  t.match(o['reconnect lora0'], { ok: true, actions: [{ kind: 'gpio', ok: true }, { kind: 'gpio', ok: true }, { kind: 'radio_off', skipped: true }] }, 'restored in reverse order; the radio comes on when the link opens')
  t.match(o['after reconnect lora0'], { power: 1, reset: 1 }, 'power and reset back, and the link up again')
  t.match(
    o['reconnect wifi0'],
    { ok: true, actions: [{ kind: 'netdev', ok: true, retried: true, firstError: /ERFKILL/ }, { kind: 'rfkill', ok: true, retried: false }] },
    'the interface could not come up before its switch was unblocked (ERFKILL): tried again after it, and up',
  )
  t.same(o['after reconnect wifi0'], { power: 1, reset: 1, rfkillSoft: 0, wlanUp: true })
  t.match(o.vov, { disconnected: 2, reconnected: 2, loraCut: { reason: 'antenna work', kinds: ['radio_off', 'gpio', 'gpio'], latencyIsNumber: true, uid: 0 } })
  t.ok(((o.vov as { reasserted: string[] }).reasserted ?? []).filter((l) => l === 'wifi0').length >= 2, 'wifi0 cut again twice: after the outside unblock and at the restart')
  t.ok(((o.vov as { reasserted: string[] }).reasserted ?? []).includes('lora0'), 'lora0 cut again at the restart')
})
