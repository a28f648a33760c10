/**
 * The RNode serial protocol's constants: KISS framing bytes, the command set, error codes and
 * the platform / MCU identifiers, with where each one comes from.
 *
 * Sources (read, not copied):
 * - markqvist/RNode_Firmware `Framing.h` (2024): every `#define` below marked "Framing.h".
 * - markqvist/RNode_Firmware `Config.h`: `MTU`, `SINGLE_MTU`, `HEADER_L`, `CMD_L`, `rssi_offset`,
 *   `MAJ_VERS`/`MIN_VERS`, the `LORA_*`/`CSMA_*` PHY parameters (see ./phy.ts).
 * - markqvist/RNode_Firmware `Boards.h`: `PLATFORM_*`, `MCU_*`, `BOARD_*`.
 * - markqvist/RNode_Firmware `RNode_Firmware.ino` `serial_callback()`: how each command is parsed
 *   and answered; `Utilities.h` `kiss_indicate_*()`: the exact answer frames.
 * - markqvist/Reticulum `RNS/Interfaces/RNodeInterface.py` (class `KISS`, `RNodeInterface`):
 *   the host side, `RSSI_OFFSET = 157`, `REQUIRED_FW_VER_MAJ/MIN = 1/52`, `HW_MTU = 508`,
 *   `validateRadioState()`.
 */

// ---------------------------------------------------------------------------------------------
// KISS framing (Framing.h; RNodeInterface.py class KISS). Same values as the original KISS TNC
// protocol (Chepponis & Karn, 1987).

/** Frame end: delimits frames (Framing.h `FEND`). */
export const FEND = 0xc0
/** Frame escape (Framing.h `FESC`). */
export const FESC = 0xdb
/** Transposed frame end: `FESC TFEND` stands for a data byte 0xC0 (Framing.h `TFEND`). */
export const TFEND = 0xdc
/** Transposed frame escape: `FESC TFESC` stands for a data byte 0xDB (Framing.h `TFESC`). */
export const TFESC = 0xdd

// ---------------------------------------------------------------------------------------------
// Commands (Framing.h). The first byte of a frame is the command; RNode does not use the KISS
// port nibble (RNodeInterface.py keeps the whole byte as the command).

/** Placeholder the parsers use before the command byte arrives (Framing.h `CMD_UNKNOWN`). */
export const CMD_UNKNOWN = 0xfe
/** A packet: host→device to transmit, device→host a received packet (Framing.h `CMD_DATA`). */
export const CMD_DATA = 0x00
/** Carrier frequency, Hz, 4 bytes big-endian; 0 reads it back (Framing.h `CMD_FREQUENCY`). */
export const CMD_FREQUENCY = 0x01
/** Bandwidth, Hz, 4 bytes big-endian; 0 reads it back (Framing.h `CMD_BANDWIDTH`). */
export const CMD_BANDWIDTH = 0x02
/** TX power, dBm, 1 unsigned byte; 0xFF reads it back (Framing.h `CMD_TXPOWER`). */
export const CMD_TXPOWER = 0x03
/** Spreading factor, 1 byte; 0xFF reads it back (Framing.h `CMD_SF`). */
export const CMD_SF = 0x04
/** Coding rate denominator 5..8, 1 byte; 0xFF reads it back (Framing.h `CMD_CR`). */
export const CMD_CR = 0x05
/** Radio state: 0x00 off, 0x01 on, 0xFF reads it back (Framing.h `CMD_RADIO_STATE`). */
export const CMD_RADIO_STATE = 0x06
/** Radio lock: answers whether freq/bw/txp/sf are all set (Framing.h `CMD_RADIO_LOCK`). */
export const CMD_RADIO_LOCK = 0x07
/** Detect: host sends DETECT_REQ, device answers DETECT_RESP (Framing.h `CMD_DETECT`). */
export const CMD_DETECT = 0x08
/** Implicit header length (Framing.h `CMD_IMPLICIT`); not used by kairo-gw. */
export const CMD_IMPLICIT = 0x09
/** Host leaves: payload 0xFF (Framing.h `CMD_LEAVE`, RNodeInterface.py `leave()`). */
export const CMD_LEAVE = 0x0a
/** Short-term airtime limit, 2 bytes big-endian, units of 0.01 % (Framing.h `CMD_ST_ALOCK`). */
export const CMD_ST_ALOCK = 0x0b
/** Long-term airtime limit, 2 bytes big-endian, units of 0.01 % (Framing.h `CMD_LT_ALOCK`). */
export const CMD_LT_ALOCK = 0x0c
/** Promiscuous mode (Framing.h `CMD_PROMISC`); not used by kairo-gw. */
export const CMD_PROMISC = 0x0e
/**
 * Ready query (Framing.h `CMD_READY`). In RNode_Firmware 1.5x–1.8x the device answers a host
 * `CMD_READY` with `0x01` when its TX queue is not full and `0x00` when it is
 * (`serial_callback()`: `if (!queue_full()) kiss_indicate_ready(); else kiss_indicate_not_ready();`).
 * It never sends it unsolicited; only the 2018-era firmware did (after `enqueuePacket()` and
 * `processQueue()`), which kairo-gw does not support (older than REQUIRED_FIRMWARE).
 */
export const CMD_READY = 0x0f

/** RX packet counter, 4 bytes (Framing.h `CMD_STAT_RX`). */
export const CMD_STAT_RX = 0x21
/** TX packet counter, 4 bytes (Framing.h `CMD_STAT_TX`). */
export const CMD_STAT_TX = 0x22
/** RSSI of the next CMD_DATA, 1 byte = dBm + RSSI_OFFSET (Framing.h `CMD_STAT_RSSI`). */
export const CMD_STAT_RSSI = 0x23
/** SNR of the next CMD_DATA, 1 signed byte, quarter dB (Framing.h `CMD_STAT_SNR`). */
export const CMD_STAT_SNR = 0x24
/**
 * Channel statistics (Framing.h `CMD_STAT_CHTM`; `Utilities.h kiss_indicate_channel_stats()`):
 * short-term airtime, long-term airtime, short-term and long-term channel load, each a
 * big-endian uint16 in units of 0.01 %; newer firmware appends current RSSI, noise floor and
 * interference (each dBm + RSSI_OFFSET, 0xFF = none). ESP32/nRF52 only.
 */
export const CMD_STAT_CHTM = 0x25
/**
 * PHY parameters (Framing.h `CMD_STAT_PHYPRM`; `Utilities.h kiss_indicate_phy_stats()`): symbol
 * time (µs), symbol rate (baud), preamble (symbols), preamble time (ms), CSMA slot (ms) and, in
 * newer firmware, DIFS (ms); each a big-endian uint16. ESP32/nRF52 only.
 */
export const CMD_STAT_PHYPRM = 0x26
/** Battery state and percent (Framing.h `CMD_STAT_BAT`). */
export const CMD_STAT_BAT = 0x27
/** CSMA contention window: band, cw_min, cw_max (Framing.h `CMD_STAT_CSMA`). */
export const CMD_STAT_CSMA = 0x28
/** Temperature (Framing.h `CMD_STAT_TEMP`). */
export const CMD_STAT_TEMP = 0x29
/** LED blink (Framing.h `CMD_BLINK`). */
export const CMD_BLINK = 0x30
/** A random byte (Framing.h `CMD_RANDOM`). */
export const CMD_RANDOM = 0x40
/** Board model byte (Framing.h `CMD_BOARD`). */
export const CMD_BOARD = 0x47
/** Platform byte (Framing.h `CMD_PLATFORM`). */
export const CMD_PLATFORM = 0x48
/** MCU byte (Framing.h `CMD_MCU`). */
export const CMD_MCU = 0x49
/** Firmware version: major, minor (newer forks append a 4-byte build number) (Framing.h `CMD_FW_VERSION`). */
export const CMD_FW_VERSION = 0x50
/** Device reset; device→host `0xF8` at boot on ESP32/nRF52 (Framing.h `CMD_RESET`, `CMD_RESET_BYTE`). */
export const CMD_RESET = 0x55
/** Payload of CMD_RESET (Framing.h `CMD_RESET_BYTE`). */
export const CMD_RESET_BYTE = 0xf8

/** Detect request byte (Framing.h `DETECT_REQ`). */
export const DETECT_REQ = 0x73
/** Detect response byte (Framing.h `DETECT_RESP`). */
export const DETECT_RESP = 0x46

/** Radio off (Framing.h `RADIO_STATE_OFF`). */
export const RADIO_STATE_OFF = 0x00
/** Radio on (Framing.h `RADIO_STATE_ON`). */
export const RADIO_STATE_ON = 0x01
/** Read the radio state back (RNodeInterface.py `RADIO_STATE_ASK`; firmware: any 0xFF). */
export const RADIO_STATE_ASK = 0xff

/** Packet header: sequence nibble (Framing.h `NIBBLE_SEQ`). */
export const NIBBLE_SEQ = 0xf0
/** Packet header: split flag, the packet continues in a second LoRa frame (Framing.h `FLAG_SPLIT`). */
export const FLAG_SPLIT = 0x01

/** Error indication, 1 byte code (Framing.h `CMD_ERROR`). */
export const CMD_ERROR = 0x90
/** `startRadio()`: `LoRa->begin()` failed (Framing.h `ERROR_INITRADIO`). */
export const ERROR_INITRADIO = 0x01
/** `transmit()` with the radio offline, or after a modem timeout (Framing.h `ERROR_TXFAILED`). */
export const ERROR_TXFAILED = 0x02
/** `eeprom_write()` on a locked EEPROM (Framing.h `ERROR_EEPROM_LOCKED`). */
export const ERROR_EEPROM_LOCKED = 0x03
/** TX queue full (Framing.h `ERROR_QUEUE_FULL`; sent by 2018-era firmware only). */
export const ERROR_QUEUE_FULL = 0x04
/** Out of memory for a received packet (Framing.h `ERROR_MEMORY_LOW`). */
export const ERROR_MEMORY_LOW = 0x05
/** `LoRa->endPacket()` timed out; the device then resets itself (Framing.h `ERROR_MODEM_TIMEOUT`). */
export const ERROR_MODEM_TIMEOUT = 0x06

/**
 * The RadioError `reason` kairo-gw gives each RNode error code. `radio-off`/`queue-full` match
 * the reasons the LoRa link (drivers/lora/link.ts) requeues on.
 */
export const ERROR_REASONS: Readonly<Record<number, string>> = Object.freeze({
  [ERROR_INITRADIO]: 'init-failed',
  [ERROR_TXFAILED]: 'tx-failed',
  [ERROR_EEPROM_LOCKED]: 'eeprom-locked',
  [ERROR_QUEUE_FULL]: 'queue-full',
  [ERROR_MEMORY_LOW]: 'memory-low',
  [ERROR_MODEM_TIMEOUT]: 'modem-timeout',
})

/** Names of the error codes as Framing.h spells them. */
export const ERROR_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [ERROR_INITRADIO]: 'ERROR_INITRADIO',
  [ERROR_TXFAILED]: 'ERROR_TXFAILED',
  [ERROR_EEPROM_LOCKED]: 'ERROR_EEPROM_LOCKED',
  [ERROR_QUEUE_FULL]: 'ERROR_QUEUE_FULL',
  [ERROR_MEMORY_LOW]: 'ERROR_MEMORY_LOW',
  [ERROR_MODEM_TIMEOUT]: 'ERROR_MODEM_TIMEOUT',
})

/** RadioError reason for an RNode error code (unknown codes: `device-error-0xNN`). */
export function errorReason(code: number): string {
  return ERROR_REASONS[code] ?? `device-error-0x${hex(code)}`
}

// ---------------------------------------------------------------------------------------------
// Platforms, MCUs, boards (Boards.h; RNodeInterface.py class KISS PLATFORM_*).

/** AVR (ATmega1284P/2560) (Boards.h `PLATFORM_AVR`). */
export const PLATFORM_AVR = 0x90
/** ESP32 (Boards.h `PLATFORM_ESP32`). */
export const PLATFORM_ESP32 = 0x80
/** nRF52 (Boards.h `PLATFORM_NRF52`). */
export const PLATFORM_NRF52 = 0x70

/** Boards.h `MCU_1284P`. */
export const MCU_1284P = 0x91
/** Boards.h `MCU_2560`. */
export const MCU_2560 = 0x92
/** Boards.h `MCU_ESP32`. */
export const MCU_ESP32 = 0x81
/** Boards.h `MCU_NRF52`. */
export const MCU_NRF52 = 0x71

/** Heltec LoRa32 v3 (ESP32-S3 + SX1262) (Boards.h `BOARD_HELTEC32_V3`). */
export const BOARD_HELTEC32_V3 = 0x3a
/** LilyGO LoRa32 v2.1 (ESP32 + SX1276) (Boards.h `BOARD_LORA32_V2_1`). */
export const BOARD_LORA32_V2_1 = 0x37

export const PLATFORM_NAMES: Readonly<Record<number, string>> = Object.freeze({ [PLATFORM_AVR]: 'AVR', [PLATFORM_ESP32]: 'ESP32', [PLATFORM_NRF52]: 'nRF52' })
export const MCU_NAMES: Readonly<Record<number, string>> = Object.freeze({ [MCU_1284P]: 'ATmega1284P', [MCU_2560]: 'ATmega2560', [MCU_ESP32]: 'ESP32', [MCU_NRF52]: 'nRF52' })

// ---------------------------------------------------------------------------------------------
// Sizes and conversions.

/**
 * Largest packet the host may hand over in one CMD_DATA, bytes (Config.h `MTU 508`;
 * RNodeInterface.py `HW_MTU = 508`). The firmware prepends a 1-byte header and splits anything
 * over SINGLE_MTU - HEADER_L = 254 bytes into two LoRa frames.
 */
export const RNODE_MTU = 508
/** Largest LoRa frame, bytes (Config.h `SINGLE_MTU`). */
export const SINGLE_MTU = 255
/** The RNode packet header prepended on air, bytes (Config.h `HEADER_L`). */
export const HEADER_L = 1
/** Command buffer of the firmware parser, bytes (Config.h `CMD_L`). */
export const CMD_L = 64

/**
 * RSSI offset: the device sends `dBm + 157` as an unsigned byte (Config.h `rssi_offset = 157`,
 * Utilities.h `kiss_indicate_stat_rssi()`; RNodeInterface.py `RSSI_OFFSET = 157`,
 * `r_stat_rssi = byte - RSSI_OFFSET`).
 */
export const RSSI_OFFSET = 157

/** SNR step: the byte is a signed quarter-dB count (RNodeInterface.py `int.from_bytes(..., signed=True) * 0.25`). */
export const SNR_STEP_DB = 0.25

/**
 * Oldest firmware kairo-gw drives, [major, minor] (RNodeInterface.py `REQUIRED_FW_VER_MAJ = 1`,
 * `REQUIRED_FW_VER_MIN = 52`).
 */
export const REQUIRED_FIRMWARE: readonly [number, number] = Object.freeze([1, 52]) as unknown as readonly [number, number]

/**
 * The LoRa sync word RNode firmware uses: 0x12 ("private network"); sx127x.cpp sets it,
 * sx126x.cpp sets the equivalent SX126x register value `SYNC_WORD_6X = 0x1424`. There is no
 * command to change it.
 */
export const RNODE_SYNC_WORD = 0x12

/**
 * Frequency tolerance of the configuration check, Hz: RNodeInterface.py `validateRadioState()`
 * accepts `abs(frequency - r_frequency) <= 100` (an SX127x reads its frequency back in steps of
 * 32 MHz / 2^19 = 61 Hz).
 */
export const FREQUENCY_TOLERANCE_HZ = 100

/** Serial line speed RNode uses, baud (Config.h `serial_baudrate = 115200`). */
export const RNODE_BAUD = 115_200

const COMMAND_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [CMD_DATA]: 'CMD_DATA',
  [CMD_FREQUENCY]: 'CMD_FREQUENCY',
  [CMD_BANDWIDTH]: 'CMD_BANDWIDTH',
  [CMD_TXPOWER]: 'CMD_TXPOWER',
  [CMD_SF]: 'CMD_SF',
  [CMD_CR]: 'CMD_CR',
  [CMD_RADIO_STATE]: 'CMD_RADIO_STATE',
  [CMD_RADIO_LOCK]: 'CMD_RADIO_LOCK',
  [CMD_DETECT]: 'CMD_DETECT',
  [CMD_IMPLICIT]: 'CMD_IMPLICIT',
  [CMD_LEAVE]: 'CMD_LEAVE',
  [CMD_ST_ALOCK]: 'CMD_ST_ALOCK',
  [CMD_LT_ALOCK]: 'CMD_LT_ALOCK',
  [CMD_PROMISC]: 'CMD_PROMISC',
  [CMD_READY]: 'CMD_READY',
  [CMD_STAT_RX]: 'CMD_STAT_RX',
  [CMD_STAT_TX]: 'CMD_STAT_TX',
  [CMD_STAT_RSSI]: 'CMD_STAT_RSSI',
  [CMD_STAT_SNR]: 'CMD_STAT_SNR',
  [CMD_STAT_CHTM]: 'CMD_STAT_CHTM',
  [CMD_STAT_PHYPRM]: 'CMD_STAT_PHYPRM',
  [CMD_STAT_BAT]: 'CMD_STAT_BAT',
  [CMD_STAT_CSMA]: 'CMD_STAT_CSMA',
  [CMD_STAT_TEMP]: 'CMD_STAT_TEMP',
  [CMD_BLINK]: 'CMD_BLINK',
  [CMD_RANDOM]: 'CMD_RANDOM',
  [CMD_BOARD]: 'CMD_BOARD',
  [CMD_PLATFORM]: 'CMD_PLATFORM',
  [CMD_MCU]: 'CMD_MCU',
  [CMD_FW_VERSION]: 'CMD_FW_VERSION',
  [CMD_RESET]: 'CMD_RESET',
  [CMD_ERROR]: 'CMD_ERROR',
})

/**
 * Every command byte Framing.h defines (including the ones kairo-gw only tolerates: display,
 * Bluetooth, Wi-Fi, ROM, hashes, GPS, ...). A device→host frame with another command byte is
 * counted as an error.
 */
export const KNOWN_COMMANDS: ReadonlySet<number> = new Set([
  ...Object.keys(COMMAND_NAMES).map(Number),
  0x2a, 0x2b, 0x2c, // CMD_STAT_GPS, CMD_GPS_NMEA, CMD_DIAG
  0x41, 0x42, 0x43, 0x44, 0x45, 0x46, // CMD_FB_EXT, CMD_FB_READ, CMD_FB_WRITE, CMD_FB_READL, CMD_DISP_INT, CMD_BT_CTRL
  0x51, 0x52, 0x53, 0x54, 0x56, 0x57, 0x58, 0x59, // ROM_READ/WRITE, CONF_SAVE/DELETE, DEV_HASH, DEV_SIG, FW_HASH, UNLOCK_ROM
  0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, // HASHES, FW_UPD, BT_PIN, DISP_ADDR, DISP_BLNK, NP_INT, DISP_READ, DISP_ROT, DISP_RCND, DIS_IA
  0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x70, // WIFI_MODE, WIFI_SSID, WIFI_PSK, CFG_READ, WIFI_CHN, BT_UNPAIR
  0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, // LOG, TIME, MUX_CHAIN, MUX_DSCVR, WIFI_IP, WIFI_NM, BCN_KEY, LXMF_HASH, LXMF_TEST, IFAC_KEY, TRANSPORT_ID
])

/** "CMD_SF (0x04)" for messages. */
export function commandName(cmd: number): string {
  const name = COMMAND_NAMES[cmd]
  return name === undefined ? `command 0x${hex(cmd)}` : `${name} (0x${hex(cmd)})`
}

function hex(b: number): string {
  return (b & 0xff).toString(16).padStart(2, '0')
}

/** Big-endian uint32 (CMD_FREQUENCY, CMD_BANDWIDTH, CMD_STAT_RX/TX). */
export function u32be(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0)
  return b
}

/** Big-endian uint16 (CMD_ST_ALOCK, CMD_LT_ALOCK, CMD_STAT_CHTM, CMD_STAT_PHYPRM). */
export function u16be(v: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(v & 0xffff)
  return b
}

/**
 * "1.85" from [1, 85]: the minor version as two decimal digits (RNode releases are numbered
 * 1.52 ... 1.85; Config.h `MAJ_VERS 0x01`, `MIN_VERS 0x55` is release 1.85).
 */
export function formatVersion(major: number, minor: number): string {
  return `${major}.${String(minor).padStart(2, '0')}`
}
