/**
 * What each radio chip can do, as the firmware checks a Configure against it before touching
 * the radio. The host's radioConfigProblems() (drivers/lora/radio.ts) is the generic SX126x
 * envelope; a firmware on a particular chip refuses more, and answers Error{BadConfig, field}
 * (docs/firmware-bridge.md, "Configure").
 *
 * Figures, from the Semtech datasheets:
 * - SX1261/SX1262 ("SX1261/2 Long Range, Low Power, sub-GHz RF Transceiver", rev 2.1): continuous
 *   frequency coverage 150..960 MHz; LoRa SF5..SF12; bandwidths 7.8..500 kHz; output power
 *   SX1261 -17..+15 dBm, SX1262 -9..+22 dBm.
 * - LLCC68 ("LLCC68 Long Range, Low Power, sub-GHz RF Transceiver", rev 1.0): 150..960 MHz,
 *   -9..+22 dBm, bandwidths 125/250/500 kHz only, and SF5..SF9 at 125 kHz, SF5..SF10 at 250 kHz,
 *   SF5..SF11 at 500 kHz.
 * - SX1276/77/78/79 ("137 MHz to 1020 MHz Low Power Long Range Transceiver", rev 4): SX1276
 *   137..1020 MHz, SX1278 137..525 MHz; SF6..SF12, no SF5; bandwidths 7.8..500 kHz; PA_BOOST
 *   output +2..+17 dBm, +20 dBm with the high-power PA_DAC setting (RegPaConfig/RegPaDac; boards
 *   wire PA_BOOST, the RFO pin's -4..+14 dBm is not used here). "With SF = 6 selected, implicit
 *   header mode is the only mode of operation possible" (rev 4, March 2015, p. 30): firmware-bridge
 *   packets have variable length and need the explicit header, so SF6 is refused as well.
 * Chips without an entry (Unknown, SX1268, LR1110, Emulated) are held to radioConfigProblems()
 * only.
 */
import { BANDWIDTHS_HZ, radioConfigProblems, type ConfigProblem, type RadioConfig } from '../drivers/lora/radio.js'
import { RadioChip } from './codec.js'

/** Chips with limits of their own. */
export type ChipName = 'SX1261' | 'SX1262' | 'LLCC68' | 'SX1276' | 'SX1278'

export interface ChipLimits {
  name: ChipName
  /** HelloAck.radio_chip. */
  code: number
  /** Carrier frequency, Hz, inclusive. */
  frequencyHz: readonly [number, number]
  /** LoRa bandwidths, Hz. */
  bandwidthsHz: readonly number[]
  /** Spreading factors usable with firmware-bridge (explicit header), inclusive. */
  spreadingFactor: readonly [number, number]
  /** Highest spreading factor per bandwidth, where lower than spreadingFactor[1]. */
  maxSfByBandwidth?: Readonly<Record<number, number>>
  /** Why some spreading factors are missing; appended to the problem. */
  spreadingFactorNote?: string
  /** Transmit power, dBm, inclusive. */
  txPowerDbm: readonly [number, number]
}

const SX126X_FREQ = [150_000_000, 960_000_000] as const
const SX127X_NOTE = 'SF6 needs implicit header mode, SF5 does not exist'

export const CHIP_LIMITS: Readonly<Record<ChipName, ChipLimits>> = Object.freeze({
  SX1261: { name: 'SX1261', code: RadioChip.SX1261, frequencyHz: SX126X_FREQ, bandwidthsHz: BANDWIDTHS_HZ, spreadingFactor: [5, 12], txPowerDbm: [-17, 15] },
  SX1262: { name: 'SX1262', code: RadioChip.SX1262, frequencyHz: SX126X_FREQ, bandwidthsHz: BANDWIDTHS_HZ, spreadingFactor: [5, 12], txPowerDbm: [-9, 22] },
  LLCC68: {
    name: 'LLCC68',
    code: RadioChip.LLCC68,
    frequencyHz: SX126X_FREQ,
    bandwidthsHz: [125_000, 250_000, 500_000],
    spreadingFactor: [5, 11],
    maxSfByBandwidth: { 125_000: 9, 250_000: 10, 500_000: 11 },
    txPowerDbm: [-9, 22],
  },
  SX1276: { name: 'SX1276', code: RadioChip.SX1276, frequencyHz: [137_000_000, 1_020_000_000], bandwidthsHz: BANDWIDTHS_HZ, spreadingFactor: [7, 12], spreadingFactorNote: SX127X_NOTE, txPowerDbm: [2, 20] },
  SX1278: { name: 'SX1278', code: RadioChip.SX1278, frequencyHz: [137_000_000, 525_000_000], bandwidthsHz: BANDWIDTHS_HZ, spreadingFactor: [7, 12], spreadingFactorNote: SX127X_NOTE, txPowerDbm: [2, 20] },
})

export const CHIP_NAMES = Object.keys(CHIP_LIMITS) as ChipName[]

/** The limits of the chip with this HelloAck.radio_chip code, or undefined (generic rules). */
export function chipLimitsOf(code: number): ChipLimits | undefined {
  for (const name of CHIP_NAMES) if (CHIP_LIMITS[name].code === code) return CHIP_LIMITS[name]
  return undefined
}

/**
 * Every problem of `cfg` on `chip`, in Configure field order, each naming its field, the value
 * and the chip. Without limits (undefined): radioConfigProblems(cfg).
 */
export function chipConfigProblems(cfg: RadioConfig, chip: ChipLimits | undefined): ConfigProblem[] {
  const generic = radioConfigProblems(cfg)
  if (chip === undefined) return generic
  const out: ConfigProblem[] = []
  const range = (field: keyof RadioConfig, [lo, hi]: readonly [number, number], unit: string, note?: string) => {
    const v = cfg[field]
    if (!Number.isInteger(v) || v < lo || v > hi) out.push({ field, message: `${field}: ${String(v)} is outside the ${chip.name} range ${lo}..${hi}${unit}${note ? ` (${note})` : ''}` })
  }
  range('frequencyHz', chip.frequencyHz, ' Hz')
  const bwOk = chip.bandwidthsHz.includes(cfg.bandwidthHz)
  if (!bwOk) out.push({ field: 'bandwidthHz', message: `bandwidthHz: ${String(cfg.bandwidthHz)} is not a ${chip.name} bandwidth (${chip.bandwidthsHz.join(', ')} Hz)` })
  const sfMax = bwOk ? chip.maxSfByBandwidth?.[cfg.bandwidthHz] : undefined
  if (sfMax !== undefined && Number.isInteger(cfg.spreadingFactor) && cfg.spreadingFactor > sfMax && cfg.spreadingFactor <= chip.spreadingFactor[1]) {
    out.push({ field: 'spreadingFactor', message: `spreadingFactor: ${cfg.spreadingFactor} is above SF${sfMax}, the ${chip.name} limit at ${cfg.bandwidthHz} Hz` })
  } else range('spreadingFactor', chip.spreadingFactor, '', chip.spreadingFactorNote)
  for (const p of generic) if (p.field === 'codingRate') out.push(p)
  range('txPowerDbm', chip.txPowerDbm, ' dBm')
  for (const p of generic) if (p.field === 'syncWord' || p.field === 'preambleSymbols') out.push(p)
  return out
}
