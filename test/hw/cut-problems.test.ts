/**
 * cutActionProblems(): the schema check of a `cut:` list. Properties (fast-check): it never throws
 * whatever it is given (it is reached from config files people write); every problem's path lies
 * under the path given; valid lists have none; a list with one field spoilt has a problem at that
 * field's path. Then the messages for the mistakes people make.
 */
import fc from 'fast-check'
import t from 'tap'
import { RFKILL_TYPES } from '../../drivers/rfkill/index.js'
import { cutActionProblems, type CutActionConfig } from '../../drivers/physical/index.js'

const PATH = 'links[2].cut'

const ifname = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,14}$/).filter((s) => s !== '..' && s !== '.')
const lineName = fc.stringMatching(/^[a-zA-Z0-9_-]{1,31}$/)
const chip = fc.oneof(fc.constant('gpiochip0'), fc.nat({ max: 64 }).map((n) => `/dev/gpiochip${n}`), fc.constant('gpio-sim.0-node0'), fc.stringMatching(/^[a-z0-9_-]{1,40}$/))
const timeout = fc.option(fc.record({ k: fc.constantFrom('timeout_ms', 'timeoutMs'), v: fc.integer({ min: 1, max: 60_000 }) }), { nil: undefined })

const gpio = fc.record({ chip, line: fc.oneof(lineName, fc.nat({ max: 0xffff })), value: fc.constantFrom(0 as const, 1 as const) }).map((g) => ({ gpio: g }))
const rfkill = fc
  .record(
    { type: fc.constantFrom(...RFKILL_TYPES), index: fc.nat({ max: 0xffff_ffff }), name: fc.stringMatching(/^[\x21-\x7e]{1,64}$/) },
    { requiredKeys: [] },
  )
  .filter((r) => Object.keys(r).length > 0)
  .map((r) => ({ rfkill: r }))
const netdev = ifname.map((i) => ({ netdev: { interface: i } }))
const radioOff = fc.constant({ radio_off: {} as Record<string, never> })
const item = fc.tuple(fc.oneof(gpio, rfkill, netdev, radioOff), timeout).map(([a, to]) => (to === undefined ? a : { ...a, [to.k]: to.v }) as CutActionConfig)

const anything = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withNullPrototype: true,
  withObjectString: true,
  withSet: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
})

const underPath = (problems: Array<{ path: string; message: string }>) => problems.every((p) => (p.path === PATH || p.path.startsWith(`${PATH}[`) || p.path.startsWith(`${PATH}.`)) && typeof p.message === 'string' && p.message.length > 0)

t.test('valid lists have no problems', async () => {
  fc.assert(fc.property(fc.array(item, { maxLength: 6 }), (list) => cutActionProblems(list, PATH).length === 0))
})

t.test('never throws; every problem is under the given path', async () => {
  fc.assert(fc.property(anything, (v) => underPath(cutActionProblems(v, PATH))))
  fc.assert(fc.property(fc.array(anything, { maxLength: 4 }), (v) => underPath(cutActionProblems(v, PATH))))
  // Each action's body, and the items' extra keys, spoilt with anything at all.
  const spoilt = fc.tuple(fc.constantFrom('gpio', 'rfkill', 'netdev', 'radio_off', 'timeout_ms', 'timeoutMs'), anything, fc.option(item, { nil: undefined }))
  fc.assert(
    fc.property(fc.array(spoilt, { maxLength: 4 }), (parts) => {
      const list = parts.map(([k, v, base]) => ({ ...(base ?? {}), [k]: v }))
      return underPath(cutActionProblems(list, PATH))
    }),
  )
  // Bodies with anything in each field.
  const fields = fc.dictionary(fc.constantFrom('chip', 'line', 'value', 'type', 'index', 'name', 'interface', 'other'), anything)
  fc.assert(
    fc.property(fc.constantFrom('gpio', 'rfkill', 'netdev', 'radio_off'), fields, (k, body) => underPath(cutActionProblems([{ [k]: body }], PATH))),
  )
})

t.test('hostile objects (throwing getters, revoked proxies) are a problem, not a throw', async (t) => {
  const throwing = Object.defineProperty({}, 'gpio', {
    enumerable: true,
    get() {
      throw new Error('boom')
    },
  })
  const { proxy, revoke } = Proxy.revocable({}, {})
  revoke()
  for (const v of [throwing, [throwing], proxy, [proxy], [{ gpio: proxy }]]) {
    const p = cutActionProblems(v, PATH)
    t.ok(p.length > 0 && underPath(p), JSON.stringify(p))
  }
})

/** Linux's dev_valid_name(), written out again here. */
const validIfname = (v: unknown) => typeof v === 'string' && v !== '' && Buffer.byteLength(v) <= 15 && v !== '.' && v !== '..' && !/[/:\s\u0000-\u001f\u007f]/.test(v)

type Spoil = { make: (base: Record<string, unknown>) => unknown; path: string }
const bad = <T>(arb: fc.Arbitrary<T>, ok: (v: T) => boolean) => arb.filter((v) => !ok(v))

t.test('one spoilt field: a problem at exactly its path', async () => {
  const spoils: fc.Arbitrary<Spoil>[] = [
    bad(anything, (v) => v === 0 || v === 1).map((v) => ({ make: (b) => ({ gpio: { chip: 'gpiochip0', line: 3, ...b, value: v } }), path: 'gpio.value' })),
    bad(anything, (v) => typeof v === 'string' && v !== '' && !v.includes('\0') && !v.includes('..') && Buffer.byteLength(v) <= 255).map((v) => ({
      make: () => ({ gpio: { chip: v, line: 3, value: 0 } }),
      path: 'gpio.chip',
    })),
    bad(anything, (v) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff) || (typeof v === 'string' && v !== '' && !v.includes('\0') && Buffer.byteLength(v) <= 31)).map((v) => ({
      make: () => ({ gpio: { chip: 'gpiochip0', line: v, value: 0 } }),
      path: 'gpio.line',
    })),
    bad(anything, (v) => typeof v === 'string' && (RFKILL_TYPES as readonly string[]).includes(v))
      .filter((v) => v !== undefined)
      .map((v) => ({ make: () => ({ rfkill: { type: v } }), path: 'rfkill.type' })),
    bad(anything, (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff)
      .filter((v) => v !== undefined)
      .map((v) => ({ make: () => ({ rfkill: { index: v } }), path: 'rfkill.index' })),
    bad(anything, validIfname).map((v) => ({ make: () => ({ netdev: { interface: v } }), path: 'netdev.interface' })),
    bad(anything, (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 60_000).map((v) => ({ make: () => ({ netdev: { interface: 'eth0' }, timeout_ms: v }), path: 'timeout_ms' })),
    fc.stringMatching(/^[a-z]{1,8}$/)
      .filter((k) => !['gpio', 'rfkill', 'netdev', 'radio_off'].includes(k))
      .map((k) => ({ make: () => ({ radio_off: {}, [k]: 1 }), path: k })),
    fc.stringMatching(/^[a-z]{1,8}$/).map((k) => ({ make: () => ({ radio_off: { [k]: true } }), path: `radio_off.${k}` })),
  ]
  fc.assert(
    fc.property(fc.array(item, { maxLength: 3 }), fc.oneof(...spoils), fc.nat(), (list, spoil, at) => {
      const i = list.length === 0 ? 0 : at % (list.length + 1)
      const withBad = [...list.slice(0, i), spoil.make({}), ...list.slice(i)]
      const ps = cutActionProblems(withBad, PATH)
      return ps.length > 0 && ps.every((p) => p.path.startsWith(`${PATH}[${i}]`)) && ps.some((p) => p.path === `${PATH}[${i}].${spoil.path}`)
    }),
  )
})

t.test('what people get wrong, in words', async (t) => {
  const one = (v: unknown) => cutActionProblems(v, PATH)
  t.same(one('gpio'), [{ path: PATH, message: 'must be a list of actions (gpio, rfkill, netdev, radio_off), got "gpio"' }])
  t.same(one([{}]), [{ path: `${PATH}[0]`, message: 'needs one action: gpio, rfkill, netdev, radio_off' }])
  t.match(one([{ gpio: { chip: 'gpiochip0', line: 1, value: 0 }, netdev: { interface: 'eth0' } }]), [{ path: `${PATH}[0]`, message: /has 2 actions \(gpio, netdev\); one per item/ }])
  t.match(one([{ gpio: { chip: 'gpiochip0', line: 'lora-power' } }]), [{ path: `${PATH}[0].gpio.value`, message: 'must be 0 or 1 (the level that cuts), got undefined' }])
  t.match(one([{ gpio: { chip: 'gpiochip0', line: 'a-line-name-longer-than-31-bytes', value: 1 } }]), [{ path: `${PATH}[0].gpio.line`, message: /the line's name \(1\.\.31 bytes/ }])
  t.match(one([{ gpio: { chip: 'gpiochip0', line: 1, value: 1, pin: 4 } }]), [{ path: `${PATH}[0].gpio.pin`, message: 'unknown key (gpio takes chip, line, value)' }])
  t.match(one([{ rfkill: {} }]), [{ path: `${PATH}[0].rfkill`, message: 'needs type, index or name: which switch to block' }])
  t.match(one([{ rfkill: { type: 'wifi' } }]), [{ path: `${PATH}[0].rfkill.type`, message: /must be one of all, wlan, bluetooth/ }])
  t.match(one([{ netdev: {} }]), [{ path: `${PATH}[0].netdev.interface`, message: 'is required: the interface to set down' }])
  t.match(one([{ netdev: { interface: 'wlan0-is-too-long' } }]), [{ path: `${PATH}[0].netdev.interface`, message: '"wlan0-is-too-long" is 17 bytes; an interface name has at most 15 (IFNAMSIZ)' }])
  t.match(one([{ radio_off: null }]), [{ path: `${PATH}[0].radio_off`, message: 'must be a mapping, got null' }])
  t.match(one([{ radio_off: { on: false } }]), [{ path: `${PATH}[0].radio_off.on`, message: 'radio_off takes no settings: write radio_off: {}' }])
  t.match(one([{ netdev: { interface: 'eth0' }, timeout_ms: 0 }]), [{ path: `${PATH}[0].timeout_ms`, message: 'must be a whole number of ms from 1 to 60000, got 0' }])
  t.same(one([{ netdev: { interface: 'eth0' }, timeout_ms: 10n }])[0]?.message, 'must be a whole number of ms from 1 to 60000, got 10n', 'a BigInt is shown, not a crash')
  t.same(one({ netdev: { interface: 'eth0' } }), [], 'one item on its own is checked as an item')
})
