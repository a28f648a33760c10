/**
 * A Configure the host's generic checks accept but the firmware's chip cannot do: the device
 * answers Error{BadConfig, field}, and configure() rejects with a ConfigRejectedError whose
 * `field` is the RadioConfig key and whose message names field, value and chip. The previous
 * configuration stays in force.
 */
import t from 'tap'
import fc from 'fast-check'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import { BANDWIDTHS_HZ, DEFAULT_RADIO, radioConfigProblems, type RadioConfig } from '../../drivers/lora/radio.js'
import { CHIP_LIMITS, CHIP_NAMES, chipConfigProblems, type ChipName } from '../../firmware-bridge/chips.js'
import { decodeFrame, ErrorCode, RadioChip, wireFieldOf, type LinkFrame } from '../../firmware-bridge/codec.js'
import { createFirmwareBridgeDevice } from '../../firmware-bridge/device.js'
import { DeviceConfigRejectedError } from '../../firmware-bridge/host.js'
import { drive, readyPair, type PipeFilter } from './helpers.js'

const cfg = (o: Partial<RadioConfig>): RadioConfig => ({ ...DEFAULT_RADIO, ...o })

async function configureOn(chip: ChipName | undefined, config: RadioConfig) {
  const up: LinkFrame[] = []
  const upFilter: PipeFilter = (b) => {
    try {
      up.push(decodeFrame(b))
    } catch {
      /* partial */
    }
    return [b]
  }
  const p = await readyPair(chip === undefined ? { upFilter } : { device: { chip }, upFilter })
  p.radio.permissive = true // only the firmware's checks stand between the host and the radio
  const err = await drive(p.clock, p.host.configure(config)).then(
    () => null,
    (e: unknown) => e,
  )
  const wireError = up.map((f) => f.message).find((m) => m?.type === 'Error')
  return { p, err, wireError }
}

t.test('SX1276 refuses SF5 although radioConfigProblems accepts it', async (t) => {
  const bad = cfg({ spreadingFactor: 5 })
  t.same(radioConfigProblems(bad), [], 'the host-side generic check accepts SF5')
  const { p, err, wireError } = await configureOn('SX1276', bad)
  t.type(err, ConfigRejectedError)
  t.type(err, DeviceConfigRejectedError)
  const e = err as DeviceConfigRejectedError
  t.equal(e.field, 'spreadingFactor', 'field is the RadioConfig key')
  t.equal(e.wireField, 'spreading_factor')
  t.equal(e.value, 5)
  t.equal(e.chip, 'SX1276')
  t.match(e.message, /spreadingFactor = 5/)
  t.match(e.message, /SX1276/)
  t.match(wireError, { type: 'Error', code: ErrorCode.BadConfig, field: 'spreading_factor' }, 'on the wire: Error BadConfig naming the schema field')
  t.same({ ...p.radio.config }, { ...DEFAULT_RADIO }, 'the radio was not touched')
  const st = await drive(p.clock, p.host.status())
  t.same(st.config, { ...DEFAULT_RADIO }, 'the previous configuration stays in force')
  t.equal(p.host.state, 'ready', 'a refusal does not end the session')
  await drive(p.clock, p.host.configure(cfg({ spreadingFactor: 7 })))
  t.equal(p.radio.config.spreadingFactor, 7, 'a config the chip can do is applied')
  p.close()
})

t.test('the same configurations on an SX1262 are accepted', async (t) => {
  for (const c of [cfg({ spreadingFactor: 5 }), cfg({ txPowerDbm: 22 }), cfg({ txPowerDbm: -9 })]) {
    const { p, err } = await configureOn('SX1262', c)
    t.equal(err, null, JSON.stringify(c))
    p.close()
  }
})

t.test('each chip limit is enforced, naming field, value and chip', async (t) => {
  const cases: [ChipName, Partial<RadioConfig>, keyof RadioConfig][] = [
    ['SX1276', { txPowerDbm: 22 }, 'txPowerDbm'],
    ['SX1276', { txPowerDbm: 0 }, 'txPowerDbm'],
    ['SX1276', { spreadingFactor: 6 }, 'spreadingFactor'],
    ['SX1278', { frequencyHz: 868_000_000 }, 'frequencyHz'],
    ['SX1262', { frequencyHz: 140_000_000 }, 'frequencyHz'],
    ['SX1262', { txPowerDbm: 23 }, 'txPowerDbm'],
    ['SX1261', { txPowerDbm: 16 }, 'txPowerDbm'],
    ['LLCC68', { bandwidthHz: 62_500 }, 'bandwidthHz'],
    ['LLCC68', { bandwidthHz: 125_000, spreadingFactor: 10 }, 'spreadingFactor'],
    ['LLCC68', { bandwidthHz: 500_000, spreadingFactor: 12 }, 'spreadingFactor'],
  ]
  for (const [chip, o, field] of cases) {
    const c = cfg(o)
    const { p, err } = await configureOn(chip, c)
    const e = err as DeviceConfigRejectedError
    t.type(e, DeviceConfigRejectedError, `${chip} ${JSON.stringify(o)}`)
    t.equal(e?.field, field)
    t.equal(e?.chip, chip)
    t.match(e?.message, new RegExp(`${field} = ${c[field]}\\b`))
    p.close()
  }
  // LLCC68 at 250 kHz does go to SF10, and the SX1276 to 1 GHz on a radio that can.
  for (const [chip, o] of [['LLCC68', { bandwidthHz: 250_000, spreadingFactor: 10 }], ['SX1276', { frequencyHz: 1_000_000_000 }]] as const) {
    const { p, err } = await configureOn(chip, cfg(o))
    t.equal(err, null, `${chip} ${JSON.stringify(o)} is within the chip`)
    p.close()
  }
})

t.test('a device without chip limits still refuses what no SX126x can do', async (t) => {
  const { p, err } = await configureOn(undefined, cfg({ codingRate: 9 }))
  t.equal((err as ConfigRejectedError).field, 'codingRate')
  t.match((err as Error).message, /Emulated/)
  t.match((err as Error).message, /codingRate = 9/)
  p.close()
})

t.test('the chip option sets radio_chip, and contradictions are refused', async (t) => {
  const p = await readyPair({ device: { chip: 'LLCC68' } })
  t.equal(p.host.info?.radioChip, 'LLCC68')
  p.close()
  const { p: q, err } = await configureOn(undefined, cfg({}))
  t.equal(err, null)
  q.close()
  t.throws(() => createFirmwareBridgeDevice(q.radio, () => undefined, { chip: 'SX1276', radioChip: RadioChip.SX1262 }), TypeError)
  t.throws(() => createFirmwareBridgeDevice(q.radio, () => undefined, { chip: 'SX9999' as ChipName }), TypeError)
  // radio_chip alone brings the chip's limits
  const r = await readyPair({ device: { radioChip: RadioChip.SX1276 } })
  r.radio.permissive = true
  const e = await drive(r.clock, r.host.configure(cfg({ spreadingFactor: 5 }))).catch((x: unknown) => x)
  t.equal((e as ConfigRejectedError).field, 'spreadingFactor')
  r.close()
})

/** Configs over the whole wire range of the fields that chips differ on, plus the generic ones. */
const anyConfig: fc.Arbitrary<RadioConfig> = fc.record({
  frequencyHz: fc.oneof(fc.integer({ min: 100_000_000, max: 1_100_000_000 }), fc.constantFrom(137_000_000, 150_000_000, 525_000_000, 960_000_000, 1_020_000_000)),
  bandwidthHz: fc.oneof(fc.constantFrom(...BANDWIDTHS_HZ), fc.integer({ min: 0, max: 600_000 })),
  spreadingFactor: fc.integer({ min: 0, max: 14 }),
  codingRate: fc.integer({ min: 4, max: 9 }),
  txPowerDbm: fc.integer({ min: -20, max: 25 }),
  syncWord: fc.integer({ min: 0, max: 255 }),
  preambleSymbols: fc.integer({ min: 0, max: 65535 }),
})

t.test('property: the device refuses exactly what its chip cannot do, naming the first field at fault', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...CHIP_NAMES), anyConfig, async (chip, c) => {
      const problems = chipConfigProblems(c, CHIP_LIMITS[chip])
      const { p, err, wireError } = await configureOn(chip, c)
      p.close()
      if (problems.length === 0) return err === null && wireError === undefined && JSON.stringify(p.radio.config) === JSON.stringify(c)
      const e = err as DeviceConfigRejectedError
      return (
        e instanceof DeviceConfigRejectedError &&
        e.field === problems[0]!.field &&
        e.value === c[problems[0]!.field] &&
        e.chip === chip &&
        e.message.includes(`${e.field} = ${e.value}`) &&
        wireError?.type === 'Error' &&
        wireError.field === wireFieldOf(problems[0]!.field) &&
        JSON.stringify(p.radio.config) === JSON.stringify(DEFAULT_RADIO)
      )
    }),
    { numRuns: 150 },
  )
  t.pass('150 random configurations on random chips')
})

t.test('property: every chip is stricter than or equal to the generic rules on what they share', async (t) => {
  // A config a chip accepts is never one the generic SX126x rules reject for coding rate, sync
  // word or preamble: those are not chip-specific.
  fc.assert(
    fc.property(fc.constantFrom(...CHIP_NAMES), anyConfig, (chip, c) => {
      const ok = chipConfigProblems(c, CHIP_LIMITS[chip]).length === 0
      const shared = radioConfigProblems(c).filter((x) => x.field === 'codingRate' || x.field === 'syncWord' || x.field === 'preambleSymbols')
      return !ok || shared.length === 0
    }),
    { numRuns: 2000 },
  )
  t.pass()
})
