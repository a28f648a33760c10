/**
 * The hex examples of docs/firmware-bridge.md, computed by the real codec from fixed inputs. The
 * test suite (test/firmware-bridge/doc-vectors.test.ts) recomputes them and compares them with
 * the document, so the spec cannot drift from the implementation. They use the ```vector NAME
 * blocks of docs/protocol.md (appliance/core/vectors.ts parses and renders both).
 *
 *   node --import=tsx scripts/firmware-bridge-vectors.ts [--write]   prints (or writes into the
 *   document) the example section
 */
import { fileURLToPath } from 'node:url'
import { renderVectors, type Vector } from '../appliance/core/vectors.js'
import { DEFAULT_RADIO, radioConfigProblems, timeOnAirMs } from '../drivers/lora/radio.js'
import { crc32c } from './crc.js'
import { cobsEncode } from './cobs.js'
import { Capabilities, encodeFrame, encodeMessage, ErrorCode, Flags, frameBytes, PROTOCOL_VERSION, RadioChip, wireFieldOf, type LinkFrame } from './codec.js'

export type { Vector }

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const h8 = (n: number) => n.toString(16).padStart(2, '0')

/** The session nonce of the examples. */
export const EXAMPLE_SESSION = 0x5eed_c0de

/** The example frames, in the order a session would carry them. */
export function exampleFrames(): { name: string; title: string; frame: LinkFrame }[] {
  const v = PROTOCOL_VERSION
  const sf13 = { ...DEFAULT_RADIO, spreadingFactor: 13 }
  const problem = radioConfigProblems(sf13)[0]!
  const payload = Buffer.from('hello mesh')
  return [
    {
      name: 'hello',
      title: 'Hello (host → MCU, SYN): version 1, session 0x5eedc0de, heartbeat 1000 ms, host "kairo-gw"',
      frame: { version: v, flags: Flags.SYN, seq: 0, ack: 0, message: { type: 'Hello', protocolVersion: v, session: EXAMPLE_SESSION, heartbeatMs: 1000, hostName: 'kairo-gw' } },
    },
    {
      name: 'hello_ack',
      title: 'HelloAck (MCU → host, SYN): "kairo-fb" 1.0.0 on an SX1262, MTU 255, queue depth 4, 4 credits, all capabilities',
      frame: {
        version: v,
        flags: Flags.SYN,
        seq: 0,
        ack: 0,
        message: {
          type: 'HelloAck',
          protocolVersion: v,
          session: EXAMPLE_SESSION,
          firmwareName: 'kairo-fb',
          firmwareVersion: '1.0.0',
          radioChip: RadioChip.SX1262,
          mtu: 255,
          queueDepth: 4,
          credits: 4,
          capabilities: Capabilities.ChannelActivity | Capabilities.FrequencyError | Capabilities.RxTimestamp,
        },
      },
    },
    {
      name: 'configure',
      title: 'Configure (host → MCU, NEEDS_ACK, seq 0): 869.525 MHz, BW 125 kHz, SF9, CR 4/5, 14 dBm, sync 0x12, preamble 8',
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 0, ack: 0, message: { type: 'Configure', config: { ...DEFAULT_RADIO } } },
    },
    {
      name: 'configure_ack',
      title: 'ConfigureAck (MCU → host, NEEDS_ACK, seq 0, acknowledging host seq 0)',
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 0, ack: 1, message: { type: 'ConfigureAck' } },
    },
    {
      name: 'ack_only',
      title: 'ACK_ONLY (host → MCU): acknowledges MCU seq 0',
      frame: { version: v, flags: Flags.ACK_ONLY, seq: 1, ack: 1, message: null },
    },
    {
      name: 'transmit',
      title: 'Transmit (host → MCU, NEEDS_ACK, seq 1): token 1, payload "hello mesh"',
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 1, ack: 1, message: { type: 'Transmit', token: 1, payload } },
    },
    {
      name: 'tx_done',
      title: `TxDone (MCU → host, NEEDS_ACK, seq 1): token 1, ${Math.round(timeOnAirMs(DEFAULT_RADIO, payload.length) * 1000)} µs on air (SF9/BW125, 10 bytes)`,
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 1, ack: 2, message: { type: 'TxDone', token: 1, airtimeUs: Math.round(timeOnAirMs(DEFAULT_RADIO, payload.length) * 1000) } },
    },
    {
      name: 'receive',
      title: 'Receive (MCU → host, NEEDS_ACK, seq 2): payload "hi", RSSI -87.5 dBm, SNR 7.25 dB, frequency error -1200 Hz, at 5 s after boot',
      frame: { version: v, flags: Flags.NEEDS_ACK, seq: 2, ack: 2, message: { type: 'Receive', payload: Buffer.from('hi'), rssiDbmX4: -350, snrDbX4: 29, frequencyErrorHz: -1200, timestampUs: 5_000_000 } },
    },
    {
      name: 'status',
      title: 'Status (MCU → host, NEEDS_ACK, seq 3, answering the GetStatus of host seq 2): 1 received, 1 sent, 4 queue slots free, up 5 s, radio on, the example configuration in force',
      frame: {
        version: v,
        flags: Flags.NEEDS_ACK,
        seq: 3,
        ack: 3,
        message: { type: 'Status', rxOk: 1, rxCrcError: 0, txOk: 1, txFail: 0, queueFree: 4, uptimeMs: 5_000, radioOn: true, linkErrors: 0, retransmits: 0, config: { ...DEFAULT_RADIO } },
      },
    },
    {
      name: 'heartbeat',
      title: 'Heartbeat (host → MCU, unreliable: flags 0, seq = its next seq 3, ack 4)',
      frame: { version: v, flags: 0, seq: 3, ack: 4, message: { type: 'Heartbeat' } },
    },
    {
      name: 'error_bad_config',
      title: 'Error BadConfig (MCU → host, NEEDS_ACK, seq 4): the Configure of host seq 3 asked for spreading factor 13',
      frame: {
        version: v,
        flags: Flags.NEEDS_ACK,
        seq: 4,
        ack: 4,
        message: { type: 'Error', code: ErrorCode.BadConfig, refSeq: 3, token: 0, field: wireFieldOf(problem.field), message: problem.message },
      },
    },
    {
      name: 'error_no_session',
      title: 'Error NoSession (MCU → host, unreliable, outside any session): the MCU rebooted and got host seq 5',
      frame: { version: v, flags: 0, seq: 0, ack: 0, message: { type: 'Error', code: ErrorCode.NoSession, refSeq: 5, token: 0, field: '', message: 'no session: send Hello' } },
    },
  ]
}

/** Every vector of docs/firmware-bridge.md. */
export function computeVectors(): Vector[] {
  const check = Buffer.from('123456789')
  const crcLe = Buffer.alloc(4)
  crcLe.writeUInt32LE(crc32c(check))
  const cobsIn = Buffer.from('1122003300', 'hex')
  const out: Vector[] = [
    { name: 'crc32c', title: 'CRC-32C check value', fields: [['input', hex(check)], ['crc', crc32c(check).toString(16).padStart(8, '0')], ['crc_le', hex(crcLe)]] },
    { name: 'cobs', title: 'COBS', fields: [['input', hex(cobsIn)], ['encoded', hex(cobsEncode(cobsIn))]] },
  ]
  for (const ex of exampleFrames()) {
    const f = ex.frame
    const bytes = frameBytes(f)
    const fields: [string, string][] = [['header', h8(f.version) + h8(f.flags) + h8(f.seq) + h8(f.ack)]]
    if (f.message) fields.push(['flatbuffers', hex(encodeMessage(f.message))])
    fields.push(['crc_le', hex(bytes.subarray(bytes.length - 4))], ['frame', hex(bytes)], ['wire', hex(encodeFrame(f))])
    out.push({ name: ex.name, title: ex.title, fields })
  }
  return out
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(renderVectors(computeVectors()))
}
