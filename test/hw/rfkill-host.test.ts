/**
 * drivers/rfkill without a kernel rfkill device: open() errors name the path; and the event
 * handling — switches added, changed (soft and hard), removed, waitFor() resolving on the event or
 * timing out naming the switch — fed exact struct rfkill_event bytes through a FIFO that stands in
 * for /dev/rfkill. The real device (mac80211_hwsim phys, vhci controllers) is driven in the VM
 * tests (test/vhw/).
 */
import { existsSync, readSync, writeSync } from 'node:fs'
import { once } from 'node:events'
import t from 'tap'
import { Rfkill, RfkillError, type RfkillDevice } from '../../drivers/rfkill/index.js'
import { fifo, requireHw, rfkillEventBytes } from './lib.js'

const ADD = 0
const DEL = 1
const CHANGE = 2

if (requireHw(t) !== undefined) {
  t.test('open() of a device that is not there names the path', async (t) => {
    if (!existsSync('/dev/rfkill')) {
      const err = await Rfkill.open().catch((e: unknown) => e)
      t.type(err, RfkillError)
      t.match(err, { path: '/dev/rfkill', errno: 'ENOENT', message: /rfkill \/dev\/rfkill: no \/dev\/rfkill \(a kernel without rfkill/ })
    }
    const err2 = await Rfkill.open('/run/kairo-none/rfkill').catch((e: unknown) => e)
    t.match(err2, { name: 'RfkillError', path: '/run/kairo-none/rfkill', errno: 'ENOENT', message: /\/run\/kairo-none\/rfkill/ })
    const err3 = await Rfkill.open('/dev/null').catch((e: unknown) => e)
    t.match(err3, { name: 'RfkillError', path: '/dev/null', errno: 'EPERM', message: /rfkill \/dev\/null: cannot watch it/ })
  })

  t.test('switches from events: add (names from sysfs), change, hard switch, remove; blocks written', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    // What the kernel queues at open: one add per switch. (Written one per read, as the kernel hands them out.)
    writeSync(w, rfkillEventBytes({ index: 990, type: 1, op: ADD, soft: false, hard: false }))
    const rf = await Rfkill.open(f.path)
    t.teardown(() => rf.close())
    t.same(rf.list(), [{ index: 990, type: 'wlan', name: '', soft: false, hard: false }], 'the switch queued before open is listed at once')

    const added = once(rf, 'add')
    writeSync(w, rfkillEventBytes({ index: 991, type: 2, op: ADD, soft: true, hard: false, reasons: 0 }))
    t.same((await added)[0], { index: 991, type: 'bluetooth', name: '', soft: true, hard: false }, "'add' for a 9-byte event")

    const hard = once(rf, 'change')
    writeSync(w, rfkillEventBytes({ index: 990, type: 1, op: CHANGE, soft: false, hard: true, reasons: 1 }))
    t.same((await hard)[0], { index: 990, type: 'wlan', name: '', soft: false, hard: true }, "a hardware switch is a 'change' with hard set")

    // block() writes struct rfkill_event; on the FIFO our own write comes back to us, which is
    // how we read exactly what was written (on the kernel device, the change event comes instead).
    rf.block({ index: 990 }, true)
    const echoed = (await once(rf, 'change'))[0] as RfkillDevice
    t.same(echoed, { index: 990, type: 'wlan', name: '', soft: true, hard: false }, 'an index block is op CHANGE for that index, soft 1 (hard 0, as a write has it)')

    const removed = once(rf, 'remove')
    writeSync(w, rfkillEventBytes({ index: 991, type: 2, op: DEL, soft: true, hard: false }))
    t.same((await removed)[0], { index: 991, type: 'bluetooth', name: '', soft: true, hard: false })
    t.same(
      rf.list().map((d) => d.index),
      [990],
    )
  })

  t.test('block() by type is one change-all write; a switch nobody has, or a closed device, an error naming it', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const rf = await Rfkill.open(f.path) // nothing queued: no switches
    t.teardown(() => rf.close())
    t.throws(() => rf.block({ name: 'phy7' }, true), { name: 'RfkillError', device: 'phy7', errno: 'ENODEV', message: /rfkill phy7: no such switch \(no switches at all\)/ })
    t.throws(() => rf.block({ index: 4, type: 'wlan' }, true), { name: 'RfkillError', device: 'index 4 type wlan', errno: 'ENODEV' })
    t.throws(() => rf.block({} as never, true), { name: 'RfkillError', message: /select switches by index/ })
    t.throws(() => rf.block({ type: 'laser' as never }, true), { name: 'RfkillError' })

    // Read back in the same tick, before the watcher's turn comes: exactly what was written.
    rf.block({ type: 'bluetooth' }, true)
    const buf = Buffer.alloc(64)
    const got = readSync(w, buf)
    t.same([...buf.subarray(0, got)], [0, 0, 0, 0, 2, 3, 1, 0], 'idx 0, type bluetooth, op CHANGE_ALL, soft 1: one write for the type')

    rf.close()
    t.throws(() => rf.block({ type: 'wlan' }, true), { name: 'RfkillError', errno: 'EBADF', message: /block after close/ })
    await t.rejects(rf.waitFor({ type: 'wlan' }, true, 10), { name: 'RfkillError', errno: 'EBADF' })
  })

  t.test('waitFor: at once when already so, on the event otherwise, else a timeout naming the switch', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    writeSync(w, rfkillEventBytes({ index: 5, type: 1, op: ADD, soft: true, hard: false }))
    const rf = await Rfkill.open(f.path)
    t.teardown(() => rf.close())
    t.same(await rf.waitFor({ index: 5 }, true, 0), [{ index: 5, type: 'wlan', name: '', soft: true, hard: false }], 'already blocked: resolves without an event')

    const waiting = rf.waitFor({ type: 'wlan' }, false, 60_000)
    writeSync(w, rfkillEventBytes({ index: 5, type: 1, op: CHANGE, soft: false, hard: false }))
    t.same(await waiting, [{ index: 5, type: 'wlan', name: '', soft: false, hard: false }], 'resolves on the change event')

    const late = await rf.waitFor({ index: 5 }, true, 1).catch((e: unknown) => e)
    t.match(late, { name: 'RfkillError', errno: 'ETIMEDOUT', device: 'rfkill5', message: /rfkill index 5: still unblocked after 1 ms: rfkill5 \(index 5, wlan\)/ })

    await t.rejects(rf.waitFor({ name: 'hci0' }, true, 10), { name: 'RfkillError', errno: 'ENODEV', message: /hci0: no such switch \(switches: rfkill5/ })

    const pending = rf.waitFor({ index: 5 }, true, 60_000)
    rf.close()
    await t.rejects(pending, { name: 'RfkillError', errno: 'ECANCELED', message: /closed while waiting for index 5/ })
  })

  t.test('a read that fails (a short record) is an error event, and reading stops', async (t) => {
    const f = fifo(t)
    const w = f.writer()
    const rf = await Rfkill.open(f.path)
    const failed = once(rf, 'error')
    writeSync(w, Buffer.from([1, 2, 3]))
    const [err] = (await failed) as [RfkillError]
    t.match(err, { name: 'RfkillError', path: f.path, errno: 'EPROTO', message: /read failed.*3 bytes/ })
    t.ok(rf.closed, 'closed after the error')
  })
}
