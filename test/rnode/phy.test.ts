/**
 * RNode's on-air arithmetic (Utilities.h updateBitrate(), RNode_Firmware.ino transmit()) and the
 * protocol constants kairo-gw relies on.
 */
import t from 'tap'
import * as C from '../../drivers/lora/rnode/commands.js'
import { csmaGuardMs, rnodeAirFrames, rnodeAirtimeMs, rnodePhy } from '../../drivers/lora/rnode/phy.js'
import { timeOnAirMs } from '../../drivers/lora/radio.js'

t.test('command values (Framing.h)', async (t) => {
  const want: Record<string, number> = {
    CMD_DATA: 0x00, CMD_FREQUENCY: 0x01, CMD_BANDWIDTH: 0x02, CMD_TXPOWER: 0x03, CMD_SF: 0x04, CMD_CR: 0x05, CMD_RADIO_STATE: 0x06,
    CMD_RADIO_LOCK: 0x07, CMD_DETECT: 0x08, CMD_LEAVE: 0x0a, CMD_ST_ALOCK: 0x0b, CMD_LT_ALOCK: 0x0c, CMD_READY: 0x0f, CMD_STAT_RX: 0x21,
    CMD_STAT_TX: 0x22, CMD_STAT_RSSI: 0x23, CMD_STAT_SNR: 0x24, CMD_STAT_CHTM: 0x25, CMD_STAT_PHYPRM: 0x26, CMD_STAT_CSMA: 0x28,
    CMD_BOARD: 0x47, CMD_PLATFORM: 0x48, CMD_MCU: 0x49, CMD_FW_VERSION: 0x50, CMD_RESET: 0x55, CMD_ERROR: 0x90, DETECT_REQ: 0x73,
    DETECT_RESP: 0x46, ERROR_INITRADIO: 0x01, ERROR_TXFAILED: 0x02, ERROR_EEPROM_LOCKED: 0x03, ERROR_QUEUE_FULL: 0x04,
    ERROR_MEMORY_LOW: 0x05, ERROR_MODEM_TIMEOUT: 0x06, PLATFORM_AVR: 0x90, PLATFORM_ESP32: 0x80, PLATFORM_NRF52: 0x70,
    MCU_ESP32: 0x81, MCU_NRF52: 0x71, RSSI_OFFSET: 157, RNODE_MTU: 508, RNODE_SYNC_WORD: 0x12,
  }
  for (const [k, v] of Object.entries(want)) t.equal((C as unknown as Record<string, number>)[k], v, k)
  t.same(C.REQUIRED_FIRMWARE, [1, 52])
  t.equal(C.errorReason(0x02), 'tx-failed')
  t.equal(C.errorReason(0x77), 'device-error-0x77')
  t.equal(C.formatVersion(1, 5), '1.05')
  t.equal(C.commandName(0x04), 'CMD_SF (0x04)')
})

t.test('PHY parameters as updateBitrate() computes them', async (t) => {
  const sf7 = rnodePhy({ spreadingFactor: 7, bandwidthHz: 125_000, codingRate: 5 })
  t.equal(sf7.symbolTimeMs, 1.024)
  t.equal(sf7.bitrate, 5468)
  t.equal(sf7.preambleSymbols, 24, 'ceil(24 ms / 1.024 ms)')
  t.equal(sf7.csmaSlotMs, 24, '12 symbols = 12 ms, raised to the 24 ms minimum')
  t.equal(sf7.difsMs, 48)
  const sf12 = rnodePhy({ spreadingFactor: 12, bandwidthHz: 125_000, codingRate: 5 })
  t.equal(sf12.preambleSymbols, 18, 'never below 18 symbols')
  t.equal(sf12.csmaSlotMs, 100, 'capped at 100 ms')
  const fast = rnodePhy({ spreadingFactor: 5, bandwidthHz: 500_000, codingRate: 5 })
  t.ok(fast.bitrate > 60_000, 'SF5/BW500 is above the limit-rate threshold')
  t.equal(fast.csmaSlotMs, 6, 'fast rates use a 6 ms minimum slot')
  t.equal(fast.preambleSymbols, 94, 'ceil(6 ms / 0.064 ms)')
  t.ok(fast.limitRate)
  t.equal(csmaGuardMs(sf7), 48 + 15 * 24)
})

t.test('header byte and split (transmit())', async (t) => {
  t.same(rnodeAirFrames(1), [2])
  t.same(rnodeAirFrames(254), [255])
  t.same(rnodeAirFrames(255), [255, 2])
  t.same(rnodeAirFrames(508), [255, 255])
  const cfg = { spreadingFactor: 9, bandwidthHz: 125_000, codingRate: 5 }
  t.equal(rnodeAirtimeMs(cfg, 100), timeOnAirMs({ ...cfg, preambleSymbols: 18 }, 101))
  t.equal(rnodeAirtimeMs(cfg, 300), timeOnAirMs({ ...cfg, preambleSymbols: 18 }, 255) + timeOnAirMs({ ...cfg, preambleSymbols: 18 }, 47))
})
