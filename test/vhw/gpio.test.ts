/**
 * drivers/gpio on a real GPIO character device: gpio-sim in the rig (one boot,
 * test/vhw/guest/gpio.ts). What the driver drives is read from the simulator's sim_gpioN/value,
 * what it reads is set with sim_gpioN/pull; edge events come from the kernel through the request
 * fd and kairo-hw's watcher.
 */
import t from 'tap'
import { readObservations, requireVhw, runVm } from '../lib/vhw.js'

t.setTimeout(10 * 60_000)

t.test('drivers/gpio against gpio-sim', async (t) => {
  if (!requireVhw(t)) return
  const vm = await runVm(t, { script: 'test/vhw/guest/gpio.ts' })
  t.equal(vm.code, 0, 'the guest script ran to the end')
  const o = readObservations(t, vm)
  const sim = o.sim as { path: string; chip: string; label: string }
  t.match(sim, { path: /^\/dev\/gpiochip\d+$/, label: 'kairo-sim' })

  t.test('chips and lines', async (t) => {
    t.same(o.listChips, [{ path: sim.path, name: sim.chip, label: 'kairo-sim', lines: 8 }], 'listChips shows the simulator with its label')
    t.same(
      o['lineInfo before'],
      ['lora-power', 'lora-reset', 'relay', '', 'button', 'door', '', ''].map((name, offset) => ({ offset, name, used: false })),
      'lineInfo: the names configured in configfs, nothing held',
    )
    t.same(o['resolve by label and name'], { path: sim.path, offset: 0, name: 'lora-power' })
    t.same(o['resolve by chip name and offset'], { path: sim.path, offset: 2, name: 'relay' })
    t.same(o['resolve by path and digits'], { path: sim.path, offset: 3, name: '' })
    t.match(o['resolve unknown line'], { name: 'GpioError', errno: 'ENOENT', chip: 'kairo-sim', line: 'no-such-line', error: /no-such-line.*lora-power/ }, 'an unknown line is named, with the lines there are')
    t.match(o['resolve unknown chip'], { name: 'GpioError', errno: 'ENOENT', chip: 'no-such-chip', error: /no-such-chip.*kairo-sim/ }, 'an unknown chip is named, with the chips there are')
    t.match(o['resolve offset out of range'], { name: 'GpioError', chip: 'kairo-sim', line: 8, error: /line 8/ })
  })

  t.test('outputs: the simulator sees what is driven', async (t) => {
    t.same(o['request outputs 0,1 = [1,0]'], { offsets: [0, 1], chip: sim.path })
    t.same(o['sim after request'], [1, 0], 'driven to the requested values from the request on')
    t.same(o['lineInfo while held'], [0, 1].map((offset) => ({ offset, used: true, consumer: 'kairo-test', output: true })), 'held lines show our consumer')
    t.same(o['set [0,1]'], { sim: [0, 1], get: [0, 1] })
    t.same(o['set [1,1]'], { sim: [1, 1], get: [1, 1] })
    t.match(o['second request of a held line'], { name: 'GpioError', errno: 'EBUSY', error: /busy.*"kairo-test"/ }, 'a second request of a held line fails naming the holder')
    t.match(o['set with a wrong count'], { name: 'GpioError', error: /values must be 2/ })
    t.same(o['close releases'], [0, 1].map((offset) => ({ offset, used: false })), 'close() gives the lines back to the kernel')
    t.match(o['set after close'], { name: 'GpioError', errno: 'EBADF' })
    t.same(o['active-low output'], { asked1: { sim: 0, get: [1] }, asked0: { sim: 1, get: [0] }, activeLow: true }, 'active-low: logical 1 is a low pin')
    t.match(o['set on an input'], { name: 'GpioError', errno: 'EPERM' }, 'the kernel refuses to drive an input')
    t.match(o['request offset out of range'], { name: 'GpioError', errno: 'EINVAL', line: 99 })
    t.match(o['edge on an output'], { name: 'GpioError', error: /edge detection needs an input/ })
  })

  t.test('inputs: what the outside world does to the pin', async (t) => {
    t.same(o['input follows pull'], [1, 0, 1, 0], 'get() follows the simulated pull')
    t.same(o['requested bias reaches the simulator'], { up: { pull: 'pull-up', get: [1] }, down: { pull: 'pull-down', get: [0] } }, "the request's bias (and a reconfigure) set the simulator's pull")
  })

  t.test('edge events', async (t) => {
    const ev = (offset: number, rising: boolean, seqno: number) => ({ offset, rising, seqno })
    t.same(o['edges both'], { events: [ev(4, true, 1), ev(4, false, 2), ev(4, true, 3), ev(4, false, 4), ev(4, true, 5), ev(4, false, 6)], timestampsIncrease: true }, 'both edges, in order, numbered, timestamps rising')
    t.same(o['edges rising only'], { events: [ev(4, true, 1), ev(4, true, 2), ev(4, true, 3)], timestampsIncrease: true }, 'rising only')
    t.same(o['edges falling, active-low'], { events: [ev(4, false, 1), ev(4, false, 2)], timestampsIncrease: true }, 'active-low: the pin going high is a logical falling edge')
    t.same(o['edges on two lines'], { events: [ev(5, true, 1), ev(4, true, 2), ev(5, false, 3)], timestampsIncrease: true }, 'one request, two lines: each event names its line')
    t.equal(o['no edges after close'], 0, 'no edge is emitted after close()')
  })
})
