/**
 * What RNode firmware does on air, computed on the host: the PHY parameters it derives from the
 * configuration (preamble, CSMA slot, DIFS), the 1-byte packet header and split of long
 * packets, and from those the time a packet occupies the channel.
 *
 * Source: markqvist/RNode_Firmware `Utilities.h` `updateBitrate()` (ESP32/nRF52 builds), `Config.h`
 * (`LORA_PREAMBLE_SYMBOLS_MIN 18`, `LORA_PREAMBLE_TARGET_MS 24`, `LORA_PREAMBLE_FAST_DELTA 18`,
 * `LORA_FAST_THRESHOLD_BPS 30E3`, `LORA_LIMIT_THRESHOLD_BPS 60E3`, `CSMA_SLOT_SYMBOLS 12`,
 * `CSMA_SLOT_MIN_MS 24`, `CSMA_SLOT_MAX_MS 100`, `CSMA_SLOT_MIN_FAST_DELTA 18`, `CSMA_SIFS_MS 0`,
 * `CSMA_CW_PER_BAND_WINDOWS 15`), `RNode_Firmware.ino` `transmit()` (header + split) and
 * `tx_queue_handler()` (DIFS, then a contention window of random(cw_min, cw_max) slots).
 * AVR builds do not run updateBitrate(); there the numbers are an approximation.
 */
import type { RadioConfig } from '../radio.js'
import { timeOnAirMs } from '../radio.js'
import { HEADER_L, SINGLE_MTU } from './commands.js'

/** Config.h `LORA_PREAMBLE_SYMBOLS_MIN`. */
export const PREAMBLE_SYMBOLS_MIN = 18
/** Config.h `LORA_PREAMBLE_TARGET_MS`. */
export const PREAMBLE_TARGET_MS = 24
/** Config.h `LORA_PREAMBLE_FAST_DELTA` (and `CSMA_SLOT_MIN_FAST_DELTA`, same value). */
export const FAST_DELTA_MS = 18
/** Config.h `LORA_FAST_THRESHOLD_BPS`. */
export const FAST_THRESHOLD_BPS = 30_000
/** Config.h `LORA_LIMIT_THRESHOLD_BPS`: above it the firmware sends one queued packet per CSMA round. */
export const LIMIT_THRESHOLD_BPS = 60_000
/** Config.h `CSMA_SLOT_SYMBOLS`. */
export const CSMA_SLOT_SYMBOLS = 12
/** Config.h `CSMA_SLOT_MIN_MS`. */
export const CSMA_SLOT_MIN_MS = 24
/** Config.h `CSMA_SLOT_MAX_MS`. */
export const CSMA_SLOT_MAX_MS = 100
/** Config.h `CSMA_CW_PER_BAND_WINDOWS`: the contention window of band 1 is 0..15 slots. */
export const CSMA_CW_PER_BAND = 15

export type PhyInput = Pick<RadioConfig, 'spreadingFactor' | 'bandwidthHz' | 'codingRate'>

/** PHY parameters as RNode firmware computes them in updateBitrate(). */
export interface RNodePhy {
  /** LoRa symbol time, ms (1000 / (BW / 2^SF)). */
  symbolTimeMs: number
  /** Symbols per second. */
  symbolRate: number
  /** Nominal bit rate, bit/s: SF * (4/CR) / (2^SF / (BW/1000)) * 1000, truncated. */
  bitrate: number
  /** Preamble the firmware transmits, symbols: max(18, ceil(target / T_sym)), target 24 ms (6 ms above 30 kbit/s). */
  preambleSymbols: number
  /** ceil(preambleSymbols * T_sym), ms. */
  preambleTimeMs: number
  /** CSMA slot, ms: 12 symbols, truncated to whole ms, within 24..100 ms (6 ms minimum above 30 kbit/s). */
  csmaSlotMs: number
  /** DIFS, ms: SIFS (0) + 2 slots. */
  difsMs: number
  /** Above 60 kbit/s the firmware pops one packet per CSMA round instead of flushing its queue. */
  limitRate: boolean
}

/** RNode's PHY parameters for a configuration (updateBitrate() in Utilities.h). */
export function rnodePhy(cfg: PhyInput): RNodePhy {
  const sf = cfg.spreadingFactor
  const bw = cfg.bandwidthHz
  const symbolRate = bw / 2 ** sf
  const symbolTimeMs = 1000 / symbolRate
  const bitrate = Math.trunc(sf * (4 / cfg.codingRate / (2 ** sf / (bw / 1000))) * 1000)
  const fast = bitrate > FAST_THRESHOLD_BPS
  const slotMin = fast ? CSMA_SLOT_MIN_MS - FAST_DELTA_MS : CSMA_SLOT_MIN_MS
  const target = fast ? PREAMBLE_TARGET_MS - FAST_DELTA_MS : PREAMBLE_TARGET_MS
  let slot = Math.trunc(symbolTimeMs * CSMA_SLOT_SYMBOLS)
  if (slot > CSMA_SLOT_MAX_MS) slot = CSMA_SLOT_MAX_MS
  if (slot < CSMA_SLOT_MIN_MS) slot = slotMin
  const t = target / symbolTimeMs
  const preambleSymbols = t < PREAMBLE_SYMBOLS_MIN ? PREAMBLE_SYMBOLS_MIN : Math.ceil(t)
  return {
    symbolTimeMs,
    symbolRate,
    bitrate,
    preambleSymbols,
    preambleTimeMs: Math.ceil(preambleSymbols * symbolTimeMs),
    csmaSlotMs: slot,
    difsMs: 2 * slot,
    limitRate: bitrate > LIMIT_THRESHOLD_BPS,
  }
}

/**
 * Sizes of the LoRa frames a packet of `payloadBytes` becomes on air: the firmware prepends a
 * 1-byte header (random sequence nibble, FLAG_SPLIT) and, above SINGLE_MTU - HEADER_L = 254
 * bytes, sends 255 bytes and then a second frame with the header and the rest.
 */
export function rnodeAirFrames(payloadBytes: number): number[] {
  const maxSingle = SINGLE_MTU - HEADER_L
  if (payloadBytes <= maxSingle) return [payloadBytes + HEADER_L]
  return [SINGLE_MTU, payloadBytes - maxSingle + HEADER_L]
}

/**
 * Time on air of one RNode packet, ms: the sum over its LoRa frames of Semtech's formula
 * (drivers/lora/radio.ts timeOnAirMs) with the preamble the firmware uses.
 */
export function rnodeAirtimeMs(cfg: PhyInput, payloadBytes: number, preambleSymbols = rnodePhy(cfg).preambleSymbols): number {
  let ms = 0
  for (const n of rnodeAirFrames(payloadBytes)) ms += timeOnAirMs({ ...cfg, preambleSymbols }, n)
  return ms
}

/** Longest CSMA wait before a flush on a free channel, ms: DIFS + cwMax slots. */
export function csmaGuardMs(phy: Pick<RNodePhy, 'difsMs' | 'csmaSlotMs'>, cwMax = CSMA_CW_PER_BAND): number {
  return phy.difsMs + cwMax * phy.csmaSlotMs
}
