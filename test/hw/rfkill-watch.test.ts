/**
 * The daemon's rfkill watch (appliance/daemon/rfkill-watch.ts) on a FIFO standing in for
 * /dev/rfkill (exact struct rfkill_event bytes): a hardware kill switch on and off is reported for
 * the link whose cut list names the switch (by name, index or type) and not for others; a soft
 * unblock of it is reported (the daemon then blocks a latched link's switch again); a missing
 * device is a warning, not a failure. On the real kernel device the watch is exercised in the rig
 * (test/vhw/disconnect.test.ts: an outside unblock undone).
 */
import { writeSync } from 'node:fs'
import t from 'tap'
import { watchRfkill } from '../../appliance/daemon/rfkill-watch.js'
import type { LinkConfig } from '../../appliance/config/schema.js'
import { until } from '../lib/until.js'
import { fifo, requireHw, rfkillEventBytes } from './lib.js'

const ADD = 0
const CHANGE = 2
const WLAN = 1
const BLUETOOTH = 2

function link(name: string, rfkill: { index?: number; type?: 'wlan' | 'bluetooth' | 'all'; name?: string }): LinkConfig {
  return { name, enabled: true, budgetBytesPerS: 0, cut: { actions: [{ rfkill, timeoutMs: 500 }], configured: true }, driver: 'udp', udp: { host: '127.0.0.1', port: 0, discovery: false, peers: [] } }
}

if (requireHw(t) !== undefined) {
  t.test('hard switch and outside unblocks are reported for the links that name the switch', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    // The kernel hands out one event per read(); a FIFO hands out what is written together in
    // one, so events are written a pause apart.
    const pause = () => new Promise((r) => setTimeout(r, 200))
    writeSync(w, rfkillEventBytes({ index: 7, type: WLAN, op: ADD, soft: true, hard: false }))
    const hard: string[] = []
    const unblocked: string[] = []
    const warnings: string[] = []
    const links = [link('wifi0', { index: 7 }), link('anywlan', { type: 'wlan' }), link('bt0', { type: 'bluetooth' })]
    const watch = await watchRfkill({
      links: () => links,
      log: { warn: (m) => warnings.push(m) },
      onHard: (l, d) => hard.push(`${l}:${d.index}:${d.hard ? 'on' : 'off'}`),
      onSoftUnblocked: (l, d) => unblocked.push(`${l}:${d.index}`),
      path: f.path,
    })
    t.ok(watch !== null, 'watching')
    t.teardown(() => watch?.close())
    writeSync(w, rfkillEventBytes({ index: 8, type: BLUETOOTH, op: ADD, soft: false, hard: false }))
    await pause()

    writeSync(w, rfkillEventBytes({ index: 7, type: WLAN, op: CHANGE, soft: true, hard: true }))
    await until('the hard switch reported', 5000, () => hard.length >= 2)
    t.same(hard.sort(), ['anywlan:7:on', 'wifi0:7:on'], 'both links that name switch 7 (by index, by type); not the Bluetooth one')

    writeSync(w, rfkillEventBytes({ index: 7, type: WLAN, op: CHANGE, soft: false, hard: false }))
    await until('the switch off and the unblock reported', 5000, () => hard.length >= 4 && unblocked.length >= 2)
    t.same(hard.slice(2).sort(), ['anywlan:7:off', 'wifi0:7:off'])
    t.same(unblocked.sort(), ['anywlan:7', 'wifi0:7'], 'soft 1 → 0 is an unblock by someone else')

    writeSync(w, rfkillEventBytes({ index: 8, type: BLUETOOTH, op: CHANGE, soft: true, hard: false }))
    await pause()
    writeSync(w, rfkillEventBytes({ index: 8, type: BLUETOOTH, op: CHANGE, soft: false, hard: false }))
    await until('the Bluetooth unblock reported', 5000, () => unblocked.length >= 3)
    t.same(unblocked.slice(2), ['bt0:8'], 'a block is not reported; its unblock is, for bt0 only')
    t.same(hard.length, 4, 'no hard-switch report for soft changes')
    t.same(warnings, [])
  })

  t.test('no rfkill device: a warning naming the path, and no watch', async (t) => {
    const warnings: Array<{ m: string; f?: Record<string, unknown> }> = []
    const watch = await watchRfkill({ links: () => [], log: { warn: (m, f) => warnings.push({ m, ...(f !== undefined && { f }) }) }, onHard: () => {}, onSoftUnblocked: () => {}, path: '/run/kairo-none/rfkill' })
    t.equal(watch, null)
    t.match(warnings, [{ m: /rfkill switches cannot be watched: a kill switch will not be noticed/, f: { error: /\/run\/kairo-none\/rfkill/ } }])
  })
}
