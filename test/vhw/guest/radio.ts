/**
 * Guest side of test/vhw/radio.test.ts: drivers/rfkill on the switches cfg80211 registers for two
 * mac80211_hwsim phys and Bluetooth registers for a hci_vhci controller (btvirt), checked against
 * /sys/class/rfkill; drivers/netdev setting a hwsim Wi-Fi interface down and up, and what an
 * rfkill block does to it.
 */
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { linkState, setLinkUp } from '../../../drivers/netdev/index.js'
import { Rfkill, type RfkillDevice } from '../../../drivers/rfkill/index.js'
import { Recorder, hwsim, sleep, sysfsRfkill, vhciController, waitFor } from './lib.js'

const rec = new Recorder()
const wlans = await hwsim(2)
const [wlan0, wlan1] = Object.keys(wlans).sort()
const phy0 = wlans[wlan0!]!
const phy1 = wlans[wlan1!]!
let vhci = await vhciController()
rec.set('devices', { wlan0, wlan1, phy0, phy1, hci: vhci.hci })

const rf = await Rfkill.open()
const events: Array<{ event: string; name: string; type: string; soft: boolean; hard: boolean }> = []
for (const event of ['add', 'change', 'remove'] as const) rf.on(event, (d: RfkillDevice) => events.push({ event, name: d.name, type: d.type, soft: d.soft, hard: d.hard }))

/** Soft state by name, as sysfs tells it. */
const soft = () => Object.fromEntries(Object.entries(sysfsRfkill()).map(([n, s]) => [n, s.soft]))
const err = (e: unknown) => {
  const x = e as { message: string; name: string; errno?: string; device?: string; ifname?: string }
  return { error: x.message, name: x.name, errno: x.errno, device: x.device, ifname: x.ifname }
}
/** Runs `fn` (a block and its waitFor); records what waitFor returned, the events it caused and sysfs after. */
async function step(name: string, fn: () => Promise<RfkillDevice[]>): Promise<void> {
  events.length = 0
  await rec.step(name, async () => {
    const seen = await fn()
    return { waitFor: seen.map((d) => ({ name: d.name, soft: d.soft })), events: events.map((e) => ({ ...e })), sysfs: soft() }
  })
}

await rec.step('list at open', () => rf.list())
await rec.step('sysfs at open', () => sysfsRfkill())

// Wi-Fi interface down and up through rtnetlink, and what rfkill does to it.
const link = (n: string) => {
  const s = linkState(n)
  return { up: s.up, running: s.running, operstate: s.operstate, sysfsUp: (Number(spawnSync('cat', [`/sys/class/net/${n}/flags`], { encoding: 'utf8' }).stdout.trim()) & 1) === 1 }
}
await rec.step('wlan0 at start', () => link(wlan0!))
await rec.step('wlan0 set up', () => {
  setLinkUp(wlan0!, true)
  return link(wlan0!)
})
await rec.step('wlan0 set down', () => {
  setLinkUp(wlan0!, false)
  return link(wlan0!)
})
await rec.step('wlan0 set down again', () => {
  setLinkUp(wlan0!, false)
  return link(wlan0!)
})
await rec.step('set up an interface that is not there', () => {
  try {
    setLinkUp('nosuch0', true)
    return { noError: true }
  } catch (e) {
    return err(e)
  }
})
await rec.step('wlan0 up again', () => {
  setLinkUp(wlan0!, true)
  return link(wlan0!)
})

await step(`block ${phy0} by name`, async () => {
  rf.block({ name: phy0 }, true)
  return rf.waitFor({ name: phy0 }, true, 5000)
})
// cfg80211 closes the interfaces of a blocked phy (from a work item: wait for it).
await rec.step('wlan0 after the block', async () => {
  await waitFor('wlan0 down after the rfkill block', 5000, () => !linkState(wlan0!).up)
  return link(wlan0!)
})
await rec.step('wlan0 set up while blocked', () => {
  try {
    setLinkUp(wlan0!, true)
    return { noError: link(wlan0!) }
  } catch (e) {
    return err(e)
  }
})
await step(`unblock ${phy0} by name`, async () => {
  rf.block({ name: phy0 }, false)
  return rf.waitFor({ name: phy0 }, false, 5000)
})
await rec.step('wlan0 set up after the unblock', () => {
  setLinkUp(wlan0!, true)
  return link(wlan0!)
})

await step(`block ${vhci.hci} by type bluetooth`, async () => {
  rf.block({ type: 'bluetooth' }, true)
  return rf.waitFor({ name: vhci.hci }, true, 5000)
})
await step(`unblock ${vhci.hci} by name`, async () => {
  rf.block({ name: vhci.hci }, false)
  return rf.waitFor({ type: 'bluetooth' }, false, 5000)
})
const idx1 = sysfsRfkill()[phy1]!.index
await step(`block ${phy1} by index`, async () => {
  rf.block({ index: idx1 }, true)
  return rf.waitFor({ index: idx1 }, true, 5000)
})
await step('block all', async () => {
  rf.block({ type: 'all' }, true)
  return rf.waitFor({ type: 'all' }, true, 5000)
})
await step('unblock all', async () => {
  rf.block({ type: 'all' }, false)
  return rf.waitFor({ type: 'all' }, false, 5000)
})
await step('block already unblocked: nothing changes', async () => {
  rf.block({ name: phy0 }, false)
  const r = await rf.waitFor({ name: phy0 }, false, 5000)
  await sleep(200)
  return r
})
// Another program (rfkill(8), a desktop's key handler) writes sysfs: the change is seen here.
await step(`${phy1} blocked by another program`, async () => {
  writeFileSync(`/sys/class/rfkill/rfkill${idx1}/soft`, '1')
  return rf.waitFor({ name: phy1 }, true, 5000)
})
await step(`${phy1} unblocked by another program`, async () => {
  writeFileSync(`/sys/class/rfkill/rfkill${idx1}/soft`, '0')
  return rf.waitFor({ name: phy1 }, false, 5000)
})
await rec.step('waitFor times out naming the switch', async () => {
  try {
    return { noError: await rf.waitFor({ name: phy0 }, true, 300) }
  } catch (e) {
    return err(e)
  }
})
await rec.step('block an unknown switch', () => {
  try {
    rf.block({ name: 'nosuch' }, true)
    return { noError: true }
  } catch (e) {
    return err(e)
  }
})

// The controller goes away and another comes: 'remove' and 'add'.
events.length = 0
await rec.step('controller removed', async () => {
  vhci.child.kill('SIGTERM')
  await waitFor('the remove event', 10_000, () => events.some((e) => e.event === 'remove'))
  return { events: events.map((e) => ({ ...e })), list: rf.list().map((d) => d.name) }
})
events.length = 0
await rec.step('controller added', async () => {
  vhci = await vhciController()
  await waitFor('the add event', 10_000, () => events.some((e) => e.event === 'add'))
  return { hci: vhci.hci, events: events.map((e) => ({ ...e })), list: rf.list().map((d) => d.name) }
})
rf.close()
vhci.child.kill('SIGTERM')
rec.done()
