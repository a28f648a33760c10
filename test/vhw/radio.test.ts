/**
 * drivers/rfkill and drivers/netdev on real kernel drivers, in one boot of the rig
 * (test/vhw/guest/radio.ts): the rfkill switches of two mac80211_hwsim phys and of a hci_vhci
 * controller (btvirt) blocked and unblocked by name, type, index and all, each change seen as the
 * kernel's event and in /sys/class/rfkill; changes by another program seen; switches coming and
 * going; a hwsim Wi-Fi interface set down and up over rtnetlink, taken down by an rfkill block
 * and refused up while blocked.
 */
import t from 'tap'
import { readObservations, requireVhw, runVm } from '../lib/vhw.js'

t.setTimeout(10 * 60_000)

t.test('rfkill and a Wi-Fi interface in the rig', async (t) => {
  if (!requireVhw(t, { bluetooth: true })) return
  const vm = await runVm(t, { script: 'test/vhw/guest/radio.ts' })
  t.equal(vm.code, 0, 'the guest script ran to the end')
  const o = readObservations(t, vm)
  const dev = o.devices as { wlan0: string; wlan1: string; phy0: string; phy1: string; hci: string }
  t.match(dev, { wlan0: /^wlan\d+$/, phy0: /^phy\d+$/, phy1: /^phy\d+$/, hci: /^hci\d+$/ })
  const { phy0, phy1, hci } = dev
  const change = (name: string, type: string, soft: boolean) => ({ event: 'change', name, type, soft, hard: false })
  const sysfs = (p0: number, p1: number, h: number) => ({ [phy0]: p0, [phy1]: p1, [hci]: h })

  t.test('the switches as the kernel lists them', async (t) => {
    const list = o['list at open'] as Array<{ index: number; type: string; name: string; soft: boolean; hard: boolean }>
    t.same(list.map((d) => [d.name, d.type, d.soft, d.hard]), [[phy0, 'wlan', false, false], [phy1, 'wlan', false, false], [hci, 'bluetooth', false, false]], 'two hwsim phys and the vhci controller, unblocked')
    const fromSysfs = o['sysfs at open'] as Record<string, { index: number; type: string; soft: number; hard: number }>
    t.same(
      list.map((d) => ({ index: d.index, type: d.type, soft: d.soft ? 1 : 0, hard: d.hard ? 1 : 0 })),
      list.map((d) => fromSysfs[d.name]),
      'index, type and state agree with /sys/class/rfkill',
    )
  })

  t.test('block and unblock, each change seen', async (t) => {
    t.same(o[`block ${phy0} by name`], { waitFor: [{ name: phy0, soft: true }], events: [change(phy0, 'wlan', true)], sysfs: sysfs(1, 0, 0) }, 'a hwsim phy blocked by name: its event, sysfs agrees, nothing else touched')
    t.same(o[`unblock ${phy0} by name`], { waitFor: [{ name: phy0, soft: false }], events: [change(phy0, 'wlan', false)], sysfs: sysfs(0, 0, 0) })
    t.same(o[`block ${hci} by type bluetooth`], { waitFor: [{ name: hci, soft: true }], events: [change(hci, 'bluetooth', true)], sysfs: sysfs(0, 0, 1) }, 'the vhci controller blocked by type')
    t.same(o[`unblock ${hci} by name`], { waitFor: [{ name: hci, soft: false }], events: [change(hci, 'bluetooth', false)], sysfs: sysfs(0, 0, 0) })
    t.same(o[`block ${phy1} by index`], { waitFor: [{ name: phy1, soft: true }], events: [change(phy1, 'wlan', true)], sysfs: sysfs(0, 1, 0) })
    t.same(o['block all'], { waitFor: [phy0, phy1, hci].map((name) => ({ name, soft: true })), events: [change(phy0, 'wlan', true), change(hci, 'bluetooth', true)], sysfs: sysfs(1, 1, 1) }, 'all: the two that changed send events, the one already blocked does not')
    t.same(o['unblock all'], { waitFor: [phy0, phy1, hci].map((name) => ({ name, soft: false })), events: [change(phy0, 'wlan', false), change(phy1, 'wlan', false), change(hci, 'bluetooth', false)], sysfs: sysfs(0, 0, 0) })
    t.same(o['block already unblocked: nothing changes'], { waitFor: [{ name: phy0, soft: false }], events: [], sysfs: sysfs(0, 0, 0) }, 'unblocking an unblocked switch changes nothing and sends nothing')
  })

  t.test('changes made by another program are seen', async (t) => {
    t.same(o[`${phy1} blocked by another program`], { waitFor: [{ name: phy1, soft: true }], events: [change(phy1, 'wlan', true)], sysfs: sysfs(0, 1, 0) })
    t.same(o[`${phy1} unblocked by another program`], { waitFor: [{ name: phy1, soft: false }], events: [change(phy1, 'wlan', false)], sysfs: sysfs(0, 0, 0) })
  })

  t.test('errors name the switch', async (t) => {
    t.match(o['waitFor times out naming the switch'], { name: 'RfkillError', errno: 'ETIMEDOUT', device: phy0, error: new RegExp(`${phy0}.*still unblocked`) })
    t.match(o['block an unknown switch'], { name: 'RfkillError', device: 'nosuch', error: new RegExp(`nosuch.*${phy0}`) })
  })

  t.test('switches come and go', async (t) => {
    t.same(o['controller removed'], { events: [{ event: 'remove', name: hci, type: 'bluetooth', soft: false, hard: false }], list: [phy0, phy1] }, 'the controller going away is a remove event')
    t.match(o['controller added'], { hci: /^hci\d+$/, events: [{ event: 'add', type: 'bluetooth', soft: false, hard: false }] }, 'a new controller is an add event')
    const added = o['controller added'] as { hci: string; events: Array<{ name: string }>; list: string[] }
    t.equal(added.events.length, 1, 'one add event')
    t.equal(added.events[0]?.name, added.hci)
    t.same(added.list, [phy0, phy1, added.hci])
  })

  t.test('a Wi-Fi interface down and up over rtnetlink', async (t) => {
    const state = (up: boolean) => ({ up, running: false, operstate: 'down', sysfsUp: up })
    // Up but not associated: no carrier, so not running and operstate down.
    t.same(o['wlan0 at start'], state(false))
    t.same(o['wlan0 set up'], state(true), 'set up: IFF_UP, in rtnetlink and in sysfs')
    t.same(o['wlan0 set down'], state(false), 'set down')
    t.same(o['wlan0 set down again'], state(false), 'setting the state it is in is no error')
    t.match(o['set up an interface that is not there'], { name: 'NetdevError', errno: 'ENODEV', ifname: 'nosuch0', error: /nosuch0/ })
    t.same(o['wlan0 up again'], state(true))
    t.same(o['wlan0 after the block'], state(false), 'an rfkill block of its phy takes the interface down')
    t.match(o['wlan0 set up while blocked'], { name: 'NetdevError', errno: 'ERFKILL', ifname: dev.wlan0 }, 'the kernel refuses to bring up a blocked radio, and says why')
    t.same(o['wlan0 set up after the unblock'], state(true), 'after the unblock it comes up again')
  })
})
