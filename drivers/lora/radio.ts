/**
 * LoRa radio facts shared by the link driver, its backends and the emulator: the configuration a
 * radio takes and its validation, regional rules, and time on air.
 */

/** Configuration of a LoRa radio (SX126x class). */
export interface RadioConfig {
  /** Carrier frequency, Hz. */
  frequencyHz: number
  /** Bandwidth, Hz: one of BANDWIDTHS_HZ. */
  bandwidthHz: number
  /** Spreading factor, 5..12. */
  spreadingFactor: number
  /** Coding rate denominator: 5..8 for 4/5..4/8. */
  codingRate: number
  /** Transmit power, dBm (SX1262: -9..22). */
  txPowerDbm: number
  /** LoRa sync word, one byte (0x12 private networks, 0x34 LoRaWAN public). */
  syncWord: number
  /** Preamble length, symbols (6..65535). */
  preambleSymbols: number
}

/** LoRa bandwidths an SX126x supports, Hz (datasheet table 13-47). */
export const BANDWIDTHS_HZ: readonly number[] = [7_800, 10_400, 15_600, 20_800, 31_250, 41_700, 62_500, 125_000, 250_000, 500_000]

/** Largest LoRa PHY payload, bytes (the SX126x/SX127x FIFO). */
export const LORA_PHY_MTU = 255

export const DEFAULT_RADIO: Readonly<RadioConfig> = Object.freeze({
  frequencyHz: 869_525_000,
  bandwidthHz: 125_000,
  spreadingFactor: 9,
  codingRate: 5,
  txPowerDbm: 14,
  syncWord: 0x12,
  preambleSymbols: 8,
})

/** One problem with a radio configuration: the field and what is wrong with it. */
export interface ConfigProblem {
  field: keyof RadioConfig
  message: string
}

/** Every problem with `cfg` (empty when it is valid), each naming its field. */
export function radioConfigProblems(cfg: RadioConfig): ConfigProblem[] {
  const out: ConfigProblem[] = []
  const int = (field: keyof RadioConfig, lo: number, hi: number, unit = '') => {
    const v = cfg[field]
    if (!Number.isInteger(v) || v < lo || v > hi) out.push({ field, message: `${field}: ${String(v)} is out of range ${lo}..${hi}${unit}` })
  }
  int('frequencyHz', 150_000_000, 960_000_000, ' Hz')
  if (!BANDWIDTHS_HZ.includes(cfg.bandwidthHz)) out.push({ field: 'bandwidthHz', message: `bandwidthHz: ${String(cfg.bandwidthHz)} is not one of ${BANDWIDTHS_HZ.join(', ')}` })
  int('spreadingFactor', 5, 12)
  int('codingRate', 5, 8, ' (4/5..4/8)')
  int('txPowerDbm', -9, 22, ' dBm')
  int('syncWord', 0, 255)
  int('preambleSymbols', 6, 65_535, ' symbols')
  return out
}

/** Regional rules (ETSI EN 300 220 for EU868, FCC part 15.247 for US915, ...). */
export interface Region {
  name: string
  minHz: number
  maxHz: number
  /** Largest share of time a transmitter may be on air, 0..1 (EU868 g3 sub-band: 0.1). null: none. */
  dutyCycle: number | null
  /** Longest single transmission, ms (US915: 400). null: none. */
  maxDwellMs: number | null
  maxTxPowerDbm: number
}

export const REGIONS: Readonly<Record<string, Region>> = Object.freeze({
  EU868: { name: 'EU868', minHz: 863_000_000, maxHz: 870_000_000, dutyCycle: 0.01, maxDwellMs: null, maxTxPowerDbm: 14 },
  US915: { name: 'US915', minHz: 902_000_000, maxHz: 928_000_000, dutyCycle: null, maxDwellMs: 400, maxTxPowerDbm: 30 },
  AU915: { name: 'AU915', minHz: 915_000_000, maxHz: 928_000_000, dutyCycle: null, maxDwellMs: 400, maxTxPowerDbm: 30 },
  AS923: { name: 'AS923', minHz: 915_000_000, maxHz: 928_000_000, dutyCycle: 0.01, maxDwellMs: 400, maxTxPowerDbm: 16 },
  IN865: { name: 'IN865', minHz: 865_000_000, maxHz: 867_000_000, dutyCycle: null, maxDwellMs: null, maxTxPowerDbm: 30 },
  /** A lab with no regulator: for emulators and benchmarks only. */
  LAB: { name: 'LAB', minHz: 150_000_000, maxHz: 960_000_000, dutyCycle: null, maxDwellMs: null, maxTxPowerDbm: 22 },
})

/** Problems of `cfg` under `region` (frequency band, power). */
export function regionProblems(cfg: RadioConfig, region: Region): ConfigProblem[] {
  const out: ConfigProblem[] = []
  if (cfg.frequencyHz < region.minHz || cfg.frequencyHz > region.maxHz) out.push({ field: 'frequencyHz', message: `frequencyHz: ${cfg.frequencyHz} is outside ${region.name} (${region.minHz}..${region.maxHz} Hz)` })
  if (cfg.txPowerDbm > region.maxTxPowerDbm) out.push({ field: 'txPowerDbm', message: `txPowerDbm: ${cfg.txPowerDbm} exceeds the ${region.name} limit of ${region.maxTxPowerDbm} dBm` })
  return out
}

/** Symbol time, ms: 2^SF / BW. */
export function symbolMs(cfg: Pick<RadioConfig, 'spreadingFactor' | 'bandwidthHz'>): number {
  return (2 ** cfg.spreadingFactor / cfg.bandwidthHz) * 1000
}

/**
 * Time on air of one LoRa packet, ms, by Semtech's formula (SX1276 datasheet section 4.1.1.7,
 * AN1200.13): explicit header, CRC on, low data rate optimisation when the symbol time exceeds
 * 16 ms.
 *
 *   T_preamble = (n_preamble + 4.25) * T_sym
 *   n_payload  = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) * CR, 0)
 *
 * with CR the coding-rate denominator (5..8).
 */
export function timeOnAirMs(cfg: Pick<RadioConfig, 'spreadingFactor' | 'bandwidthHz' | 'codingRate' | 'preambleSymbols'>, payloadBytes: number): number {
  const tSym = symbolMs(cfg)
  const de = tSym > 16 ? 1 : 0
  const sf = cfg.spreadingFactor
  const num = 8 * payloadBytes - 4 * sf + 28 + 16
  const nPayload = 8 + Math.max(Math.ceil(num / (4 * (sf - 2 * de))) * cfg.codingRate, 0)
  return (cfg.preambleSymbols + 4.25) * tSym + nPayload * tSym
}

/** The PHY limit: payload bytes per second with back-to-back full frames. */
export function phyLimitBytesPerSecond(cfg: Pick<RadioConfig, 'spreadingFactor' | 'bandwidthHz' | 'codingRate' | 'preambleSymbols'>): number {
  return LORA_PHY_MTU / (timeOnAirMs(cfg, LORA_PHY_MTU) / 1000)
}
