/**
 * drivers/gpio on a machine without the device: every failure names the chip (and the line),
 * carries the errno, and bad requests are refused before the kernel is asked. The real chip
 * (gpio-sim) is driven in the VM tests (test/vhw/).
 */
import { existsSync, readdirSync } from 'node:fs'
import t from 'tap'
import { GpioError, GpioLines, chipPathOf, lineInfo, listChips, resolveLine } from '../../drivers/gpio/index.js'
import { requireHw } from './lib.js'

const hostHasChips = existsSync('/dev') && readdirSync('/dev').some((n) => /^gpiochip\d+$/.test(n))

if (requireHw(t) !== undefined) {
  t.test('listChips: the /dev/gpiochip* there are', async (t) => {
    const chips = listChips()
    if (!hostHasChips) t.same(chips, [], 'none on this machine')
    else for (const c of chips) t.match(c, { path: /^\/dev\/gpiochip\d+$/, name: /^gpiochip\d+$/, lines: Number })
  })

  t.test('a chip that is not there: GpioError naming it, with its errno', async (t) => {
    const byName = (() => {
      try {
        resolveLine('gpiochip97', 'lora-power')
      } catch (err) {
        return err
      }
    })()
    t.type(byName, GpioError)
    t.match(byName, { chip: 'gpiochip97', line: 'lora-power', errno: 'ENOENT', code: 'ENOENT', message: /gpiochip97.*no such GPIO chip.*\/dev\/gpiochip97/ })

    const byLabel = (() => {
      try {
        resolveLine('gpio-sim.0-node0', 3)
      } catch (err) {
        return err
      }
    })()
    t.type(byLabel, GpioError)
    t.match(byLabel, { chip: 'gpio-sim.0-node0', errno: 'ENOENT', message: /"gpio-sim\.0-node0": no chip with that label/ })
    if (!hostHasChips) t.match((byLabel as Error).message, /no \/dev\/gpiochip\* on this machine/, 'says there are no chips at all')

    t.throws(() => lineInfo('/dev/gpiochip97'), { name: 'GpioError', chip: '/dev/gpiochip97', errno: 'ENOENT' })
    t.throws(() => GpioLines.request('/dev/gpiochip97', [3], { consumer: 'kairo-test', output: true, values: [0] }), {
      name: 'GpioError',
      chip: '/dev/gpiochip97',
      line: 3,
      errno: 'ENOENT',
      message: /gpio \/dev\/gpiochip97 line 3: no such GPIO chip/,
    })
  })

  t.test('a device that is no GPIO chip: ENOTTY, "not a GPIO chip"', async (t) => {
    t.throws(() => lineInfo('/dev/null'), { name: 'GpioError', chip: '/dev/null', errno: 'ENOTTY', message: /not a GPIO chip/ })
    t.throws(() => resolveLine('/dev/null', 'x'), { name: 'GpioError', chip: '/dev/null', line: 'x', errno: 'ENOTTY' })
    t.throws(() => GpioLines.request('/dev/null', [0, 1], { consumer: 'kairo-test' }), { name: 'GpioError', errno: 'ENOTTY', message: /\/dev\/null lines 0,1/ })
  })

  t.test('chip names: /dev paths and gpiochipN are taken as they are; nonsense is refused', async (t) => {
    t.equal(chipPathOf('/dev/gpiochip4'), '/dev/gpiochip4')
    t.equal(chipPathOf('gpiochip4'), '/dev/gpiochip4')
    t.throws(() => chipPathOf(''), { name: 'GpioError', message: /not a chip name/ })
    t.throws(() => chipPathOf('a\0b'), { name: 'GpioError' })
  })

  t.test('bad requests are refused before the kernel is asked, naming the chip', async (t) => {
    const chip = '/dev/gpiochip97' // absent: any check that reached the kernel would say ENOENT
    const refused = (opts: Parameters<typeof GpioLines.request>[2], offsets: number[], msg: RegExp) =>
      t.throws(() => GpioLines.request(chip, offsets, opts), { name: 'GpioError', chip, code: 'EGPIO', message: msg }, msg.source)
    refused({ consumer: 'k' }, [], /offsets must be 1\.\.64/)
    refused({ consumer: 'k' }, new Array(65).fill(0).map((_, i) => i), /offsets must be 1\.\.64/)
    refused({ consumer: 'k' }, [1.5], /offsets/)
    refused({ consumer: 'k' }, [2, 2], /listed twice/)
    refused({ consumer: 'k', output: true, edge: 'both' }, [0], /edge detection needs an input/)
    refused({ consumer: 'k', values: [1] }, [0], /values are for output lines/)
    refused({ consumer: 'k', output: true, values: [1] }, [0, 1], /values must be 2 of 0 or 1/)
    refused({ consumer: 'k', output: true, values: [2] }, [0], /values must be 1 of 0 or 1/)
    refused({ consumer: 'k', edge: 'up' as never }, [0], /edge must be rising, falling or both/)
    refused({ consumer: 'k', bias: 'strong' as never }, [0], /bias must be/)
    refused({ consumer: 'k', drive: 'open-drain' }, [0], /drive open-drain needs an output/)
    refused({ consumer: 'k', debounceUs: -1 }, [0], /debounceUs/)
    refused({} as never, [0], /consumer/)
  })
}
