/**
 * The firmware-bridge codec: messages (schemas/firmware_bridge.fbs) to FlatBuffers and back, link
 * frames (header, message, CRC-32C) to COBS-framed wire bytes and back, and `FrameDecoder`, the
 * streaming decoder that turns whatever the serial port delivers into frames and counted errors.
 * No I/O, no timers: docs/firmware-bridge.md is the specification this implements.
 */
import * as flatbuffers from 'flatbuffers'
import { MalformedPacketError } from '../appliance/core/errors.js'
import { verifyRoot, type TableSpec } from '../appliance/core/wire/verify.js'
import type { RadioConfig } from '../drivers/lora/radio.js'
import { Body } from '../appliance/generated/kairo/fb/body.js'
import { Frame } from '../appliance/generated/kairo/fb/frame.js'
import { Hello } from '../appliance/generated/kairo/fb/hello.js'
import { HelloAck } from '../appliance/generated/kairo/fb/hello-ack.js'
import { Configure } from '../appliance/generated/kairo/fb/configure.js'
import { ConfigureAck } from '../appliance/generated/kairo/fb/configure-ack.js'
import { Transmit } from '../appliance/generated/kairo/fb/transmit.js'
import { TxDone } from '../appliance/generated/kairo/fb/tx-done.js'
import { Receive } from '../appliance/generated/kairo/fb/receive.js'
import { ChannelActivity } from '../appliance/generated/kairo/fb/channel-activity.js'
import { GetStatus } from '../appliance/generated/kairo/fb/get-status.js'
import { Status } from '../appliance/generated/kairo/fb/status.js'
import { Heartbeat } from '../appliance/generated/kairo/fb/heartbeat.js'
import { RadioOnOff } from '../appliance/generated/kairo/fb/radio-on-off.js'
import { RadioOnOffAck } from '../appliance/generated/kairo/fb/radio-on-off-ack.js'
import { Reset } from '../appliance/generated/kairo/fb/reset.js'
import { Error as ErrorMsg } from '../appliance/generated/kairo/fb/error.js'
import { Credits } from '../appliance/generated/kairo/fb/credits.js'
import { ErrorCode } from '../appliance/generated/kairo/fb/error-code.js'
import { RadioChip } from '../appliance/generated/kairo/fb/radio-chip.js'
import { Capabilities } from '../appliance/generated/kairo/fb/capabilities.js'
import { cobsDecodeInto, cobsEncodeInto, cobsMaxEncodedLength } from './cobs.js'
import { crc32c } from './crc.js'

export { Body, ErrorCode, RadioChip, Capabilities }

// ---------------------------------------------------------------------------------------------
// Protocol constants (docs/firmware-bridge.md, "Framing")

/** firmware-bridge protocol version: header byte 0 and Hello/HelloAck.protocol_version. */
export const PROTOCOL_VERSION = 1
/** Link header: version, flags, seq, ack; bytes. */
export const HEADER_BYTES = 4
/** CRC-32C trailer, little-endian; bytes. */
export const CRC_BYTES = 4
/** Largest decoded link frame (header + FlatBuffers Frame + CRC), bytes. Bounds every buffer. */
export const MAX_FRAME_BYTES = 512
/** Largest COBS-encoded frame without its 0x00 delimiter, bytes (512 + 1 + 2). */
export const MAX_ENCODED_BYTES = cobsMaxEncodedLength(MAX_FRAME_BYTES)
/** Smallest decoded frame: an ACK_ONLY frame, header + CRC; bytes. */
export const MIN_FRAME_BYTES = HEADER_BYTES + CRC_BYTES
/** The frame delimiter on the line. */
export const DELIMITER = 0x00
/** Largest radio payload in Transmit and Receive, bytes (the SX126x FIFO). */
export const MAX_PAYLOAD_BYTES = 255
/** Longest Hello.host_name, HelloAck.firmware_name/firmware_version and Error.field, bytes. */
export const MAX_NAME_BYTES = 32
/** Longest Error.message, bytes. */
export const MAX_MESSAGE_BYTES = 128

/** Bits of the header's flags byte. */
export const Flags = Object.freeze({
  /** A reliable frame: it takes the next sequence number and must be acknowledged. */
  NEEDS_ACK: 0x01,
  /** Header and CRC only, no Frame: carries an acknowledgement and nothing else. */
  ACK_ONLY: 0x02,
  /** A handshake frame (Hello or HelloAck): outside the sequence space, seq and ack are 0. */
  SYN: 0x04,
})
/** Every defined flag bit; the others must be zero. */
export const FLAGS_MASK = Flags.NEEDS_ACK | Flags.ACK_ONLY | Flags.SYN

// ---------------------------------------------------------------------------------------------
// Messages

/** Every message, one variant per Body member; `type` is the table name in the schema. */
export type Message =
  | { type: 'Hello'; protocolVersion: number; session: number; heartbeatMs: number; hostName: string }
  | {
      type: 'HelloAck'
      protocolVersion: number
      session: number
      firmwareName: string
      firmwareVersion: string
      radioChip: number
      mtu: number
      queueDepth: number
      credits: number
      capabilities: number
    }
  | { type: 'Configure'; config: RadioConfig }
  | { type: 'ConfigureAck' }
  | { type: 'Transmit'; token: number; payload: Uint8Array }
  | { type: 'TxDone'; token: number; airtimeUs: number }
  | { type: 'Receive'; payload: Uint8Array; rssiDbmX4: number; snrDbX4: number; frequencyErrorHz: number; timestampUs: number }
  | { type: 'ChannelActivity'; busy: boolean }
  | { type: 'GetStatus' }
  | {
      type: 'Status'
      rxOk: number
      rxCrcError: number
      txOk: number
      txFail: number
      queueFree: number
      uptimeMs: number
      radioOn: boolean
      linkErrors: number
      retransmits: number
      /** The radio configuration in force. */
      config: RadioConfig
    }
  | { type: 'Heartbeat' }
  | { type: 'RadioOnOff'; on: boolean }
  | { type: 'RadioOnOffAck'; on: boolean }
  | { type: 'Reset' }
  | { type: 'Error'; code: number; refSeq: number; token: number; field: string; message: string }
  | { type: 'Credits'; grant: number }
  /** A Body type this version does not know (from a newer peer); only decoded, never encoded. */
  | { type: 'Unknown'; bodyType: number }

export type MessageType = Message['type']
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>

/** RadioConfig keys and the Configure field names of the schema, in schema order. */
export const CONFIG_FIELDS: readonly (readonly [keyof RadioConfig, string])[] = [
  ['frequencyHz', 'frequency_hz'],
  ['bandwidthHz', 'bandwidth_hz'],
  ['spreadingFactor', 'spreading_factor'],
  ['codingRate', 'coding_rate'],
  ['txPowerDbm', 'tx_power_dbm'],
  ['syncWord', 'sync_word'],
  ['preambleSymbols', 'preamble_symbols'],
]

/** The wire range of each Configure field: what a RadioConfig value must fit to be sent at all. */
export const CONFIG_WIRE_RANGE: Readonly<Record<keyof RadioConfig, readonly [number, number]>> = {
  frequencyHz: [0, 0xffff_ffff],
  bandwidthHz: [0, 0xffff_ffff],
  spreadingFactor: [0, 0xff],
  codingRate: [0, 0xff],
  txPowerDbm: [-128, 127],
  syncWord: [0, 0xff],
  preambleSymbols: [0, 0xffff],
}

/** Configure field name (schema) → RadioConfig key; undefined for a name that is neither. */
export function configKeyOf(wireField: string): keyof RadioConfig | undefined {
  for (const [key, wire] of CONFIG_FIELDS) if (wire === wireField || key === wireField) return key
  return undefined
}

/** RadioConfig key → Configure field name (schema). */
export function wireFieldOf(key: keyof RadioConfig): string {
  for (const [k, wire] of CONFIG_FIELDS) if (k === key) return wire
  return key
}

const str = (name: string, maxLength: number) => ({ name, kind: 'string', maxLength }) as const
const sc = (name: string, size: 1 | 2 | 4 | 8) => ({ name, kind: 'scalar', size }) as const
const empty = (name: string): TableSpec => ({ name, fields: [] })

/** The Configure fields, in schema order; Status ends with the same fields. */
const CONFIGURE_FIELDS = [sc('frequency_hz', 4), sc('bandwidth_hz', 4), sc('spreading_factor', 1), sc('coding_rate', 1), sc('tx_power_dbm', 1), sc('sync_word', 1), sc('preamble_symbols', 2)] as const

/** Checks that every field of `c` fits its Configure wire field; TypeError naming it otherwise. */
function wireConfig(c: RadioConfig, what: string): RadioConfig {
  if (c === null || typeof c !== 'object') throw new TypeError(`${what} must be a RadioConfig`)
  const out = {} as RadioConfig
  for (const [k] of CONFIG_FIELDS) out[k] = int(c[k], CONFIG_WIRE_RANGE[k][0], CONFIG_WIRE_RANGE[k][1], `${what}.${k}`)
  return out
}

/** Verifier specs of every Body member, by type code. */
export const MESSAGE_SPECS: Readonly<Record<number, TableSpec>> = {
  [Body.Hello]: { name: 'Hello', fields: [sc('protocol_version', 1), sc('session', 4), sc('heartbeat_ms', 2), str('host_name', MAX_NAME_BYTES)] },
  [Body.HelloAck]: {
    name: 'HelloAck',
    fields: [sc('protocol_version', 1), sc('session', 4), str('firmware_name', MAX_NAME_BYTES), str('firmware_version', MAX_NAME_BYTES), sc('radio_chip', 1), sc('mtu', 2), sc('queue_depth', 1), sc('credits', 1), sc('capabilities', 4)],
  },
  [Body.Configure]: { name: 'Configure', fields: CONFIGURE_FIELDS },
  [Body.ConfigureAck]: empty('ConfigureAck'),
  [Body.Transmit]: { name: 'Transmit', fields: [sc('token', 4), { name: 'payload', kind: 'bytes', required: true, maxLength: MAX_PAYLOAD_BYTES }] },
  [Body.TxDone]: { name: 'TxDone', fields: [sc('token', 4), sc('airtime_us', 4)] },
  [Body.Receive]: { name: 'Receive', fields: [{ name: 'payload', kind: 'bytes', required: true, maxLength: MAX_PAYLOAD_BYTES }, sc('rssi_dbm_x4', 2), sc('snr_db_x4', 2), sc('frequency_error_hz', 4), sc('timestamp_us', 8)] },
  [Body.ChannelActivity]: { name: 'ChannelActivity', fields: [sc('busy', 1)] },
  [Body.GetStatus]: empty('GetStatus'),
  [Body.Status]: {
    name: 'Status',
    fields: [sc('rx_ok', 4), sc('rx_crc_error', 4), sc('tx_ok', 4), sc('tx_fail', 4), sc('queue_free', 1), sc('uptime_ms', 8), sc('radio_on', 1), sc('link_errors', 4), sc('retransmits', 4), ...CONFIGURE_FIELDS],
  },
  [Body.Heartbeat]: empty('Heartbeat'),
  [Body.RadioOnOff]: { name: 'RadioOnOff', fields: [sc('on', 1)] },
  [Body.RadioOnOffAck]: { name: 'RadioOnOffAck', fields: [sc('on', 1)] },
  [Body.Reset]: empty('Reset'),
  [Body.Error]: { name: 'Error', fields: [sc('code', 1), sc('ref_seq', 2), sc('token', 4), str('field', MAX_NAME_BYTES), str('message', MAX_MESSAGE_BYTES)] },
  [Body.Credits]: { name: 'Credits', fields: [sc('grant', 1)] },
}

/** The verifier spec of the root table. Unknown Body types pass (answered as Unsupported). */
export const FRAME_SPEC: TableSpec = {
  name: 'Frame',
  fields: [{ name: 'body', kind: 'union', members: MESSAGE_SPECS, required: true, allowUnknown: true }],
}

function int(v: unknown, lo: number, hi: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new TypeError(`${what}: ${String(v)} is not an integer in ${lo}..${hi}`)
  return v
}

function utf8(s: unknown, max: number, what: string): Uint8Array {
  if (typeof s !== 'string') throw new TypeError(`${what} must be a string`)
  const b = Buffer.from(s, 'utf8')
  if (b.length > max) throw new TypeError(`${what}: ${b.length} bytes exceeds the limit of ${max}`)
  return b
}

function bytes(v: unknown, min: number, max: number, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`)
  if (v.length < min || v.length > max) throw new TypeError(`${what}: ${v.length} bytes is outside ${min}..${max}`)
  return v
}

const U8 = 0xff
const U16 = 0xffff
const U32 = 0xffff_ffff

/** Reused by every encode: messages are built one at a time. */
const builder = new flatbuffers.Builder(MAX_FRAME_BYTES)

/** Body type code of a message type name (0 for 'Unknown'). */
export function bodyTypeOf(type: MessageType): number {
  return type === 'Unknown' ? 0 : Body[type as Exclude<MessageType, 'Unknown'>]
}

/**
 * Encodes `msg` as a FlatBuffers Frame. The result is a view into a shared builder, valid until
 * the next call: copy it (encodeMessage) or consume it at once. Throws TypeError for a value
 * that does not fit its wire field.
 */
function buildMessage(msg: Message): Uint8Array {
  const b = builder
  b.clear()
  let body: number
  switch (msg.type) {
    case 'Hello': {
      const name = b.createString(utf8(msg.hostName, MAX_NAME_BYTES, 'Hello.hostName'))
      body = Hello.createHello(b, int(msg.protocolVersion, 0, U8, 'Hello.protocolVersion'), int(msg.session, 0, U32, 'Hello.session'), int(msg.heartbeatMs, 0, U16, 'Hello.heartbeatMs'), name)
      break
    }
    case 'HelloAck': {
      const fw = b.createString(utf8(msg.firmwareName, MAX_NAME_BYTES, 'HelloAck.firmwareName'))
      const ver = b.createString(utf8(msg.firmwareVersion, MAX_NAME_BYTES, 'HelloAck.firmwareVersion'))
      body = HelloAck.createHelloAck(
        b,
        int(msg.protocolVersion, 0, U8, 'HelloAck.protocolVersion'),
        int(msg.session, 0, U32, 'HelloAck.session'),
        fw,
        ver,
        int(msg.radioChip, 0, U8, 'HelloAck.radioChip'),
        int(msg.mtu, 0, U16, 'HelloAck.mtu'),
        int(msg.queueDepth, 0, U8, 'HelloAck.queueDepth'),
        int(msg.credits, 0, U8, 'HelloAck.credits'),
        int(msg.capabilities, 0, U32, 'HelloAck.capabilities'),
      )
      break
    }
    case 'Configure': {
      const c = wireConfig(msg.config, 'Configure')
      body = Configure.createConfigure(b, c.frequencyHz, c.bandwidthHz, c.spreadingFactor, c.codingRate, c.txPowerDbm, c.syncWord, c.preambleSymbols)
      break
    }
    case 'ConfigureAck':
      body = ConfigureAck.createConfigureAck(b)
      break
    case 'Transmit': {
      const payload = Transmit.createPayloadVector(b, bytes(msg.payload, 0, MAX_PAYLOAD_BYTES, 'Transmit.payload'))
      body = Transmit.createTransmit(b, int(msg.token, 0, U32, 'Transmit.token'), payload)
      break
    }
    case 'TxDone':
      body = TxDone.createTxDone(b, int(msg.token, 0, U32, 'TxDone.token'), int(msg.airtimeUs, 0, U32, 'TxDone.airtimeUs'))
      break
    case 'Receive': {
      const payload = Receive.createPayloadVector(b, bytes(msg.payload, 0, MAX_PAYLOAD_BYTES, 'Receive.payload'))
      body = Receive.createReceive(
        b,
        payload,
        int(msg.rssiDbmX4, -0x8000, 0x7fff, 'Receive.rssiDbmX4'),
        int(msg.snrDbX4, -0x8000, 0x7fff, 'Receive.snrDbX4'),
        int(msg.frequencyErrorHz, -0x8000_0000, 0x7fff_ffff, 'Receive.frequencyErrorHz'),
        BigInt(int(msg.timestampUs, 0, Number.MAX_SAFE_INTEGER, 'Receive.timestampUs')),
      )
      break
    }
    case 'ChannelActivity':
      body = ChannelActivity.createChannelActivity(b, msg.busy === true)
      break
    case 'GetStatus':
      body = GetStatus.createGetStatus(b)
      break
    case 'Status': {
      const c = wireConfig(msg.config, 'Status.config')
      body = Status.createStatus(
        b,
        int(msg.rxOk, 0, U32, 'Status.rxOk'),
        int(msg.rxCrcError, 0, U32, 'Status.rxCrcError'),
        int(msg.txOk, 0, U32, 'Status.txOk'),
        int(msg.txFail, 0, U32, 'Status.txFail'),
        int(msg.queueFree, 0, U8, 'Status.queueFree'),
        BigInt(int(msg.uptimeMs, 0, Number.MAX_SAFE_INTEGER, 'Status.uptimeMs')),
        msg.radioOn === true,
        int(msg.linkErrors, 0, U32, 'Status.linkErrors'),
        int(msg.retransmits, 0, U32, 'Status.retransmits'),
        c.frequencyHz,
        c.bandwidthHz,
        c.spreadingFactor,
        c.codingRate,
        c.txPowerDbm,
        c.syncWord,
        c.preambleSymbols,
      )
      break
    }
    case 'Heartbeat':
      body = Heartbeat.createHeartbeat(b)
      break
    case 'RadioOnOff':
      body = RadioOnOff.createRadioOnOff(b, msg.on === true)
      break
    case 'RadioOnOffAck':
      body = RadioOnOffAck.createRadioOnOffAck(b, msg.on === true)
      break
    case 'Reset':
      body = Reset.createReset(b)
      break
    case 'Error': {
      const field = msg.field === '' ? 0 : b.createString(utf8(msg.field, MAX_NAME_BYTES, 'Error.field'))
      const text = msg.message === '' ? 0 : b.createString(utf8(msg.message, MAX_MESSAGE_BYTES, 'Error.message'))
      body = ErrorMsg.createError(b, int(msg.code, 0, U8, 'Error.code'), int(msg.refSeq, -1, U8, 'Error.refSeq'), int(msg.token, 0, U32, 'Error.token'), field, text)
      break
    }
    case 'Credits':
      body = Credits.createCredits(b, int(msg.grant, 0, U8, 'Credits.grant'))
      break
    case 'Unknown':
      throw new TypeError('an Unknown message cannot be encoded')
    default:
      throw new TypeError(`unknown message type ${String((msg as { type: unknown }).type)}`)
  }
  Frame.finishFrameBuffer(b, Frame.createFrame(b, Body[msg.type as Exclude<MessageType, 'Unknown'>], body))
  return b.asUint8Array()
}

/** Encodes `msg` as a FlatBuffers Frame (a fresh copy). TypeError for unrepresentable values. */
export function encodeMessage(msg: Message): Buffer {
  return Buffer.from(buildMessage(msg))
}

const copy = (a: Uint8Array | null): Buffer => (a === null ? Buffer.alloc(0) : Buffer.from(a))

/**
 * Decodes a FlatBuffers Frame. The buffer is verified first (every offset, length and union
 * member), so MalformedPacketError, naming the field, is the only thing it throws. Payloads are
 * copies: `buf` may be reused afterwards.
 */
export function decodeMessage(buf: Uint8Array): Message {
  verifyRoot(buf, FRAME_SPEC)
  const frame = Frame.getRootAsFrame(new flatbuffers.ByteBuffer(buf))
  const type = frame.bodyType()
  switch (type) {
    case Body.Hello: {
      const m: Hello = frame.body(new Hello())
      return { type: 'Hello', protocolVersion: m.protocolVersion(), session: m.session(), heartbeatMs: m.heartbeatMs(), hostName: m.hostName() ?? '' }
    }
    case Body.HelloAck: {
      const m: HelloAck = frame.body(new HelloAck())
      return {
        type: 'HelloAck',
        protocolVersion: m.protocolVersion(),
        session: m.session(),
        firmwareName: m.firmwareName() ?? '',
        firmwareVersion: m.firmwareVersion() ?? '',
        radioChip: m.radioChip(),
        mtu: m.mtu(),
        queueDepth: m.queueDepth(),
        credits: m.credits(),
        capabilities: m.capabilities() >>> 0,
      }
    }
    case Body.Configure: {
      const m: Configure = frame.body(new Configure())
      return {
        type: 'Configure',
        config: {
          frequencyHz: m.frequencyHz(),
          bandwidthHz: m.bandwidthHz(),
          spreadingFactor: m.spreadingFactor(),
          codingRate: m.codingRate(),
          txPowerDbm: m.txPowerDbm(),
          syncWord: m.syncWord(),
          preambleSymbols: m.preambleSymbols(),
        },
      }
    }
    case Body.ConfigureAck:
      return { type: 'ConfigureAck' }
    case Body.Transmit: {
      const m: Transmit = frame.body(new Transmit())
      return { type: 'Transmit', token: m.token(), payload: copy(m.payloadArray()) }
    }
    case Body.TxDone: {
      const m: TxDone = frame.body(new TxDone())
      return { type: 'TxDone', token: m.token(), airtimeUs: m.airtimeUs() }
    }
    case Body.Receive: {
      const m: Receive = frame.body(new Receive())
      return { type: 'Receive', payload: copy(m.payloadArray()), rssiDbmX4: m.rssiDbmX4(), snrDbX4: m.snrDbX4(), frequencyErrorHz: m.frequencyErrorHz(), timestampUs: Number(m.timestampUs()) }
    }
    case Body.ChannelActivity:
      return { type: 'ChannelActivity', busy: (frame.body(new ChannelActivity()) as ChannelActivity).busy() }
    case Body.GetStatus:
      return { type: 'GetStatus' }
    case Body.Status: {
      const m: Status = frame.body(new Status())
      return {
        type: 'Status',
        rxOk: m.rxOk(),
        rxCrcError: m.rxCrcError(),
        txOk: m.txOk(),
        txFail: m.txFail(),
        queueFree: m.queueFree(),
        uptimeMs: Number(m.uptimeMs()),
        radioOn: m.radioOn(),
        linkErrors: m.linkErrors(),
        retransmits: m.retransmits(),
        config: {
          frequencyHz: m.frequencyHz(),
          bandwidthHz: m.bandwidthHz(),
          spreadingFactor: m.spreadingFactor(),
          codingRate: m.codingRate(),
          txPowerDbm: m.txPowerDbm(),
          syncWord: m.syncWord(),
          preambleSymbols: m.preambleSymbols(),
        },
      }
    }
    case Body.Heartbeat:
      return { type: 'Heartbeat' }
    case Body.RadioOnOff:
      return { type: 'RadioOnOff', on: (frame.body(new RadioOnOff()) as RadioOnOff).on() }
    case Body.RadioOnOffAck:
      return { type: 'RadioOnOffAck', on: (frame.body(new RadioOnOffAck()) as RadioOnOffAck).on() }
    case Body.Reset:
      return { type: 'Reset' }
    case Body.Error: {
      const m: ErrorMsg = frame.body(new ErrorMsg())
      const refSeq = m.refSeq()
      if (refSeq < -1 || refSeq > 255) throw new MalformedPacketError(`Frame.body.ref_seq ${refSeq} is outside -1..255`, { field: 'Frame.body.ref_seq' })
      return { type: 'Error', code: m.code(), refSeq, token: m.token(), field: m.field() ?? '', message: m.message() ?? '' }
    }
    case Body.Credits:
      return { type: 'Credits', grant: (frame.body(new Credits()) as Credits).grant() }
    default:
      return { type: 'Unknown', bodyType: type }
  }
}

// ---------------------------------------------------------------------------------------------
// Link frames

/** The four header bytes. */
export interface LinkHeader {
  /** Protocol version; PROTOCOL_VERSION except in a SYN frame from a peer of another version. */
  version: number
  /** Flags bits. */
  flags: number
  /** Sequence number of a NEEDS_ACK frame; otherwise the sender's next one (informational). */
  seq: number
  /** Cumulative acknowledgement: the seq the sender expects next from the other side. */
  ack: number
}

/** A decoded link frame: its header and message (null for ACK_ONLY). */
export interface LinkFrame extends LinkHeader {
  message: Message | null
}

/** Scratch for assembling one decoded frame before COBS. */
const scratch = Buffer.alloc(MAX_FRAME_BYTES + 8)

/**
 * Encodes a link frame for the wire from an already encoded FlatBuffers Frame (`body`, null for
 * ACK_ONLY): COBS(header || body || CRC-32C LE) followed by the 0x00 delimiter. Throws TypeError
 * for bad header values, a body with ACK_ONLY (or none without), or a frame over
 * MAX_FRAME_BYTES.
 */
export function encodeWire(header: LinkHeader, body: Uint8Array | null): Buffer {
  const version = int(header.version, 0, U8, 'header.version')
  const flags = int(header.flags, 0, U8, 'header.flags')
  if (flags & ~FLAGS_MASK) throw new TypeError(`header.flags 0x${flags.toString(16)} has undefined bits`)
  const ackOnly = (flags & Flags.ACK_ONLY) !== 0
  if (ackOnly && (flags & (Flags.NEEDS_ACK | Flags.SYN)) !== 0) throw new TypeError('ACK_ONLY cannot be combined with NEEDS_ACK or SYN')
  if (ackOnly !== (body === null || body.length === 0)) throw new TypeError(ackOnly ? 'an ACK_ONLY frame has no body' : 'a frame without ACK_ONLY needs a body')
  const bodyLength = body === null ? 0 : body.length
  const n = HEADER_BYTES + bodyLength + CRC_BYTES
  if (n > MAX_FRAME_BYTES) throw new TypeError(`link frame of ${n} bytes exceeds ${MAX_FRAME_BYTES}`)
  scratch[0] = version
  scratch[1] = flags
  scratch[2] = int(header.seq, 0, U8, 'header.seq')
  scratch[3] = int(header.ack, 0, U8, 'header.ack')
  if (body !== null) scratch.set(body, HEADER_BYTES)
  scratch.writeUInt32LE(crc32c(scratch, 0, 0, HEADER_BYTES + bodyLength), HEADER_BYTES + bodyLength)
  const out = Buffer.allocUnsafe(cobsMaxEncodedLength(n) + 1)
  const len = cobsEncodeInto(scratch.subarray(0, n), out)
  out[len] = DELIMITER
  return out.subarray(0, len + 1)
}

/** Encodes a whole link frame (header and message) for the wire, delimiter included. */
export function encodeFrame(frame: LinkFrame): Buffer {
  return encodeWire(frame, frame.message === null ? null : buildMessage(frame.message))
}

/** The decoded (unstuffed) bytes of a link frame: header || Frame || CRC. For docs and tests. */
export function frameBytes(frame: LinkFrame): Buffer {
  const body = frame.message === null ? null : Buffer.from(buildMessage(frame.message))
  const n = HEADER_BYTES + (body?.length ?? 0) + CRC_BYTES
  const out = Buffer.alloc(n)
  out[0] = frame.version
  out[1] = frame.flags
  out[2] = frame.seq
  out[3] = frame.ack
  if (body) body.copy(out, HEADER_BYTES)
  out.writeUInt32LE(crc32c(out, 0, 0, n - CRC_BYTES), n - CRC_BYTES)
  return out
}

/**
 * Decodes one unstuffed link frame (header || Frame || CRC). Checks, in order: length, CRC,
 * header (flags, version), then the FlatBuffers Frame. Throws MalformedPacketError whose `field`
 * is 'length' (too short), 'size' (too long), 'crc', 'header.flags', 'header.version', 'body' or a FlatBuffers field path
 * beginning with 'Frame'.
 */
export function decodeFrameBytes(bytes: Uint8Array): LinkFrame {
  const n = bytes.length
  if (n < MIN_FRAME_BYTES) throw new MalformedPacketError(`link frame of ${n} bytes is shorter than ${MIN_FRAME_BYTES}`, { field: 'length' })
  if (n > MAX_FRAME_BYTES) throw new MalformedPacketError(`link frame of ${n} bytes exceeds ${MAX_FRAME_BYTES}`, { field: 'size' })
  const want = (bytes[n - 4]! | (bytes[n - 3]! << 8) | (bytes[n - 2]! << 16) | (bytes[n - 1]! << 24)) >>> 0
  const got = crc32c(bytes, 0, 0, n - CRC_BYTES)
  if (want !== got) throw new MalformedPacketError(`link frame CRC-32C 0x${want.toString(16).padStart(8, '0')} does not match the computed 0x${got.toString(16).padStart(8, '0')}`, { field: 'crc' })
  const version = bytes[0]!
  const flags = bytes[1]!
  const seq = bytes[2]!
  const ack = bytes[3]!
  if (flags & ~FLAGS_MASK) throw new MalformedPacketError(`header.flags 0x${flags.toString(16)} has undefined bits`, { field: 'header.flags' })
  const syn = (flags & Flags.SYN) !== 0
  const ackOnly = (flags & Flags.ACK_ONLY) !== 0
  if (ackOnly && (flags & (Flags.NEEDS_ACK | Flags.SYN)) !== 0) throw new MalformedPacketError('header.flags: ACK_ONLY combined with NEEDS_ACK or SYN', { field: 'header.flags' })
  if (syn && (flags & Flags.NEEDS_ACK) !== 0) throw new MalformedPacketError('header.flags: SYN combined with NEEDS_ACK', { field: 'header.flags' })
  if (!syn && version !== PROTOCOL_VERSION) throw new MalformedPacketError(`header.version ${version} is not ${PROTOCOL_VERSION}`, { field: 'header.version' })
  const bodyLength = n - HEADER_BYTES - CRC_BYTES
  if (ackOnly) {
    if (bodyLength !== 0) throw new MalformedPacketError(`an ACK_ONLY frame carries ${bodyLength} body bytes`, { field: 'body' })
    return { version, flags, seq, ack, message: null }
  }
  if (bodyLength === 0) throw new MalformedPacketError('a frame without ACK_ONLY has no body', { field: 'body' })
  const message = decodeMessage(bytes.subarray(HEADER_BYTES, n - CRC_BYTES))
  if (syn && message.type !== 'Hello' && message.type !== 'HelloAck') throw new MalformedPacketError(`a SYN frame carries ${message.type}, not Hello or HelloAck`, { field: 'body' })
  if (!syn && (message.type === 'Hello' || message.type === 'HelloAck')) throw new MalformedPacketError(`${message.type} outside a SYN frame`, { field: 'body' })
  return { version, flags, seq, ack, message }
}

/** Decodes one wire frame (COBS, with or without its trailing 0x00). */
export function decodeFrame(wire: Uint8Array): LinkFrame {
  const end = wire.length > 0 && wire[wire.length - 1] === DELIMITER ? wire.length - 1 : wire.length
  if (end > MAX_ENCODED_BYTES) throw new MalformedPacketError(`encoded frame of ${end} bytes exceeds ${MAX_ENCODED_BYTES}`, { field: 'size' })
  const out = Buffer.allocUnsafe(end)
  const n = cobsDecodeInto(wire, end, out)
  if (n < 0) throw new MalformedPacketError('invalid COBS encoding', { field: 'cobs' })
  return decodeFrameBytes(out.subarray(0, n))
}

// ---------------------------------------------------------------------------------------------
// Streaming decoder

/** What the streaming decoder counts. */
export type DecodeErrorKind = 'cobs' | 'oversize' | 'short' | 'crc' | 'header' | 'version' | 'flatbuffers'

export const DECODE_ERROR_KINDS: readonly DecodeErrorKind[] = ['cobs', 'oversize', 'short', 'crc', 'header', 'version', 'flatbuffers']

/** The DecodeErrorKind of a MalformedPacketError thrown by decodeFrameBytes. */
export function errorKind(err: MalformedPacketError): DecodeErrorKind {
  const f = err.field ?? ''
  if (f === 'cobs') return 'cobs'
  if (f === 'length') return 'short'
  if (f === 'size') return 'oversize'
  if (f === 'crc') return 'crc'
  if (f === 'header.version') return 'version'
  if (f.startsWith('Frame')) return 'flatbuffers'
  return 'header'
}

export interface FrameDecoderHandlers {
  frame(frame: LinkFrame): void
  /** Optional: every dropped frame, with its kind and the error (for logs and captures). */
  error?(kind: DecodeErrorKind, err: MalformedPacketError): void
}

/**
 * The streaming decoder: an I/O-free state machine fed arbitrary chunks of the serial stream.
 * Bytes accumulate up to the next 0x00; then the frame is unstuffed, checked and handed to
 * `handlers.frame`, or dropped and counted. Empty frames (consecutive 0x00) are idle fill, not
 * errors. A frame longer than MAX_ENCODED_BYTES is counted once as 'oversize' and skipped to the
 * next 0x00, so at most MAX_ENCODED_BYTES are ever buffered whatever arrives. Never throws
 * (unless a handler does).
 */
export class FrameDecoder {
  /** Frames delivered. */
  frames = 0
  /** Frames dropped, by kind. */
  readonly errors: Record<DecodeErrorKind, number> = { cobs: 0, oversize: 0, short: 0, crc: 0, header: 0, version: 0, flatbuffers: 0 }
  private readonly buf = Buffer.alloc(MAX_ENCODED_BYTES)
  private len = 0
  private skipping = false

  constructor(private readonly handlers: FrameDecoderHandlers) {}

  /** Bytes held for the frame in progress (at most MAX_ENCODED_BYTES). */
  get buffered(): number {
    return this.len
  }

  /** All dropped frames. */
  get errorCount(): number {
    let n = 0
    for (const k of DECODE_ERROR_KINDS) n += this.errors[k]
    return n
  }

  /** Forgets the frame in progress (counters stay). */
  reset(): void {
    this.len = 0
    this.skipping = false
  }

  push(chunk: Uint8Array): void {
    let i = 0
    const n = chunk.length
    while (i < n) {
      const z = chunk.indexOf(DELIMITER, i)
      const end = z < 0 ? n : z
      if (!this.skipping && end > i) {
        const take = end - i
        if (this.len + take > MAX_ENCODED_BYTES) {
          this.skipping = true
          this.len = 0
          this.count('oversize', new MalformedPacketError(`frame exceeds ${MAX_ENCODED_BYTES} encoded bytes`, { field: 'size' }))
        } else {
          this.buf.set(chunk.subarray(i, end), this.len)
          this.len += take
        }
      }
      if (z < 0) return
      i = z + 1
      if (this.skipping) {
        this.skipping = false
        continue
      }
      this.finish()
    }
  }

  private finish(): void {
    const len = this.len
    this.len = 0
    if (len === 0) return
    const n = cobsDecodeInto(this.buf, len, this.buf)
    if (n < 0) {
      this.count('cobs', new MalformedPacketError('invalid COBS encoding', { field: 'cobs' }))
      return
    }
    let frame: LinkFrame
    try {
      frame = decodeFrameBytes(this.buf.subarray(0, n))
    } catch (err) {
      const e = err instanceof MalformedPacketError ? err : new MalformedPacketError(`undecodable frame: ${String(err)}`, { field: 'Frame', cause: err })
      this.count(errorKind(e), e)
      return
    }
    this.frames++
    this.handlers.frame(frame)
  }

  private count(kind: DecodeErrorKind, err: MalformedPacketError): void {
    this.errors[kind]++
    this.handlers.error?.(kind, err)
  }
}
