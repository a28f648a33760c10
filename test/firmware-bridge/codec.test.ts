/**
 * The firmware-bridge codec: every message round-trips, the encoder refuses what the wire cannot
 * hold (TypeError), the decoder names the field at fault (MalformedPacketError), and the streaming
 * decoder gives the same frames whatever the chunking: whole, byte by byte, split at every offset.
 */
import t from 'tap'
import * as flatbuffers from 'flatbuffers'
import { MalformedPacketError } from '../../appliance/core/errors.js'
import { cobsDecode, cobsEncode } from '../../firmware-bridge/cobs.js'
import { crc32c } from '../../firmware-bridge/crc.js'
import {
  Body,
  decodeFrame,
  decodeFrameBytes,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  encodeWire,
  errorKind,
  Flags,
  FrameDecoder,
  frameBytes,
  MAX_ENCODED_BYTES,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  type DecodeErrorKind,
  type LinkFrame,
  type Message,
} from '../../firmware-bridge/codec.js'
import { DEFAULT_RADIO } from '../../drivers/lora/radio.js'
import { sampleFrames } from './helpers.js'

const samples = sampleFrames()

/** A decoded frame built by hand: header bytes, body, correct CRC. */
function rawFrame(header: number[], body: Uint8Array = Buffer.alloc(0)): Buffer {
  const b = Buffer.concat([Buffer.from(header), body, Buffer.alloc(4)])
  b.writeUInt32LE(crc32c(b, 0, 0, b.length - 4), b.length - 4)
  return b
}

const wire = (decoded: Uint8Array) => Buffer.concat([cobsEncode(decoded), Buffer.from([0])])

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof MalformedPacketError) return err.field
    throw err
  }
  return '(no error)'
}

t.test('every message type round-trips through the wire encoding', async (t) => {
  const seen = new Set<string>()
  for (const f of samples) {
    const name = f.message?.type ?? 'ACK_ONLY'
    seen.add(name)
    const w = encodeFrame(f)
    t.equal(w[w.length - 1], 0, `${name}: ends with the delimiter`)
    t.equal(w.indexOf(0), w.length - 1, `${name}: no other zero byte`)
    t.same(decodeFrame(w), f, `${name}: decodeFrame(encodeFrame)`)
    t.same(cobsDecode(w.subarray(0, -1)), frameBytes(f), `${name}: frameBytes is the unstuffed wire`)
    t.same(decodeFrameBytes(frameBytes(f)), f, `${name}: decodeFrameBytes(frameBytes)`)
    if (f.message) t.same(decodeMessage(encodeMessage(f.message)), f.message, `${name}: message alone`)
  }
  const all = Object.keys(Body).filter((k) => Number.isNaN(Number(k)) && k !== 'NONE')
  for (const k of all) t.ok(seen.has(k), `sample of ${k}`)
})

t.test('the largest frames fit the 512-byte bound with room', async (t) => {
  const tx = samples.find((f) => f.message?.type === 'Transmit')!
  const n = frameBytes(tx).length
  t.ok(n <= MAX_FRAME_BYTES, `Transmit of 255 bytes: ${n}-byte frame`)
  t.ok(encodeFrame(tx).length <= MAX_ENCODED_BYTES + 1)
  const rx = { version: 1, flags: Flags.NEEDS_ACK, seq: 0, ack: 0, message: { type: 'Receive', payload: Buffer.alloc(255, 1), rssiDbmX4: -1, snrDbX4: -1, frequencyErrorHz: -1, timestampUs: 1 } } as LinkFrame
  t.ok(frameBytes(rx).length <= MAX_FRAME_BYTES, `Receive of 255 bytes: ${frameBytes(rx).length}-byte frame`)
  const ack = frameBytes({ version: 1, flags: Flags.ACK_ONLY, seq: 1, ack: 2, message: null })
  t.equal(ack.length, 8, 'ACK_ONLY: header and CRC')
})

t.test('the encoder refuses what the wire cannot hold (TypeError)', async (t) => {
  const hb: Message = { type: 'Heartbeat' }
  const body = encodeMessage(hb)
  const cases: [string, () => unknown][] = [
    ['seq 256', () => encodeWire({ version: 1, flags: 0, seq: 256, ack: 0 }, body)],
    ['ack -1', () => encodeWire({ version: 1, flags: 0, seq: 0, ack: -1 }, body)],
    ['reserved flag', () => encodeWire({ version: 1, flags: 0x08, seq: 0, ack: 0 }, body)],
    ['ACK_ONLY with NEEDS_ACK', () => encodeWire({ version: 1, flags: Flags.ACK_ONLY | Flags.NEEDS_ACK, seq: 0, ack: 0 }, null)],
    ['ACK_ONLY with a body', () => encodeWire({ version: 1, flags: Flags.ACK_ONLY, seq: 0, ack: 0 }, body)],
    ['no body without ACK_ONLY', () => encodeWire({ version: 1, flags: 0, seq: 0, ack: 0 }, null)],
    ['frame over 512 bytes', () => encodeWire({ version: 1, flags: 0, seq: 0, ack: 0 }, Buffer.alloc(505, 1))],
    ['payload of 256 bytes', () => encodeMessage({ type: 'Transmit', token: 1, payload: Buffer.alloc(256) })],
    ['payload not bytes', () => encodeMessage({ type: 'Transmit', token: 1, payload: [1, 2] as unknown as Uint8Array })],
    ['host name of 33 bytes', () => encodeMessage({ type: 'Hello', protocolVersion: 1, session: 1, heartbeatMs: 1, hostName: 'h'.repeat(33) })],
    ['tx power 200 dBm', () => encodeMessage({ type: 'Configure', config: { ...DEFAULT_RADIO, txPowerDbm: 200 } })],
    ['frequency 2.5 Hz', () => encodeMessage({ type: 'Configure', config: { ...DEFAULT_RADIO, frequencyHz: 2.5 } })],
    ['token -1', () => encodeMessage({ type: 'TxDone', token: -1, airtimeUs: 0 })],
    ['ref_seq 256', () => encodeMessage({ type: 'Error', code: 1, refSeq: 256, token: 0, field: '', message: '' })],
    ['message of 129 bytes', () => encodeMessage({ type: 'Error', code: 1, refSeq: 0, token: 0, field: '', message: 'm'.repeat(129) })],
    ['an Unknown message', () => encodeMessage({ type: 'Unknown', bodyType: 99 })],
  ]
  for (const [what, fn] of cases) t.throws(fn, TypeError, what)
})

/** A FlatBuffers Frame whose body is built by `fill` (raw builder calls, no required checks). */
function craftFrame(bodyType: number, fill: ((b: flatbuffers.Builder) => number) | null): Uint8Array {
  const b = new flatbuffers.Builder(64)
  const body = fill ? fill(b) : 0
  b.startObject(2)
  if (bodyType !== 0) b.addFieldInt8(0, bodyType, 0)
  if (body) b.addFieldOffset(1, body, 0)
  b.finish(b.endObject())
  return b.asUint8Array()
}

t.test('the decoder names the field at fault (MalformedPacketError)', async (t) => {
  const hb = encodeMessage({ type: 'Heartbeat' })
  const good = rawFrame([1, 0, 0, 0], hb)
  const badCrc = Buffer.from(good)
  badCrc[5]! ^= 0x40
  const cases: [string, Uint8Array, string][] = [
    ['7 bytes', Buffer.alloc(7, 1), 'length'],
    ['513 bytes', Buffer.alloc(513, 1), 'size'],
    ['flipped bit', badCrc, 'crc'],
    ['reserved flag bit', rawFrame([1, 0x10, 0, 0], hb), 'header.flags'],
    ['ACK_ONLY + NEEDS_ACK', rawFrame([1, Flags.ACK_ONLY | Flags.NEEDS_ACK, 0, 0]), 'header.flags'],
    ['SYN + NEEDS_ACK', rawFrame([1, Flags.SYN | Flags.NEEDS_ACK, 0, 0], encodeMessage(samples[0]!.message!)), 'header.flags'],
    ['version 2 outside SYN', rawFrame([2, 0, 0, 0], hb), 'header.version'],
    ['ACK_ONLY with a body', rawFrame([1, Flags.ACK_ONLY, 0, 0], hb), 'body'],
    ['no body, no ACK_ONLY', rawFrame([1, 0, 0, 0]), 'body'],
    ['SYN carrying a Heartbeat', rawFrame([1, Flags.SYN, 0, 0], hb), 'body'],
    ['Hello without SYN', rawFrame([1, 0, 0, 0], encodeMessage(samples[0]!.message!)), 'body'],
    ['FlatBuffers garbage', rawFrame([1, 0, 0, 0], Buffer.from('ffffffff00000000', 'hex')), 'Frame'],
    ['no body union', rawFrame([1, 0, 0, 0], craftFrame(0, null)), 'Frame.body'],
    ['a body type without a body', rawFrame([1, 0, 0, 0], craftFrame(Body.Transmit, null)), 'Frame.body'],
    [
      'Transmit without its required payload',
      rawFrame([1, 0, 0, 0], craftFrame(Body.Transmit, (b) => (b.startObject(2), b.addFieldInt32(0, 5, 0), b.endObject()))),
      'Frame.body.payload',
    ],
    [
      'a host name of 40 bytes',
      rawFrame([1, Flags.SYN, 0, 0], craftFrame(Body.Hello, (b) => {
        const s = b.createString('n'.repeat(40))
        b.startObject(4)
        b.addFieldOffset(3, s, 0)
        return b.endObject()
      })),
      'Frame.body.host_name',
    ],
    ['Error.ref_seq 300', rawFrame([1, 0, 0, 0], craftFrame(Body.Error, (b) => (b.startObject(5), b.addFieldInt16(1, 300, -1), b.endObject()))), 'Frame.body.ref_seq'],
  ]
  for (const [what, bytes, field] of cases) {
    const got = fieldOf(() => decodeFrameBytes(bytes))
    t.ok(got === field || (field === 'Frame' && got?.startsWith('Frame')), `${what}: field ${got}`)
  }
})

t.test('a SYN frame of another version still decodes (so versions can be told apart)', async (t) => {
  const f = decodeFrameBytes(rawFrame([7, Flags.SYN, 0, 0], encodeMessage({ ...(samples[1]!.message as Message & { type: 'HelloAck' }), protocolVersion: 7 })))
  t.equal(f.version, 7)
  t.equal(f.message?.type === 'HelloAck' && f.message.protocolVersion, 7)
})

t.test('an unknown Body type decodes as Unknown (answered as Unsupported, not dropped)', async (t) => {
  const f = decodeFrameBytes(rawFrame([1, Flags.NEEDS_ACK, 4, 0], craftFrame(99, (b) => (b.startObject(1), b.addFieldInt32(0, 7, 0), b.endObject()))))
  t.same(f.message, { type: 'Unknown', bodyType: 99 })
  t.equal(f.seq, 4)
})

// ---------------------------------------------------------------------------------------------
// Streaming

/** The sample frames on the wire with idle fill and garbage between them; what must come out. */
function stream(): { bytes: Buffer; frames: LinkFrame[]; errors: Partial<Record<DecodeErrorKind, number>> } {
  const parts: Buffer[] = [Buffer.from([0, 0])]
  for (const f of samples) parts.push(encodeFrame(f), Buffer.from([0]))
  parts.push(Buffer.from('0511220000', 'hex')) // bad COBS (code past the end... then an idle 00)
  parts.push(wire(Buffer.from([1, 2, 3]))) // too short
  parts.push(encodeFrame(samples[3]!))
  return { bytes: Buffer.concat(parts), frames: [...samples, samples[3]!], errors: { cobs: 1, short: 1 } }
}

function decodeAll(chunks: Uint8Array[]): { frames: LinkFrame[]; decoder: FrameDecoder } {
  const frames: LinkFrame[] = []
  const decoder = new FrameDecoder({ frame: (f) => frames.push(f) })
  for (const c of chunks) decoder.push(c)
  return { frames, decoder }
}

t.test('streaming: whole, byte by byte and split at every offset give the same frames', async (t) => {
  const { bytes, frames, errors } = stream()
  const whole = decodeAll([bytes])
  t.same(whole.frames, frames, 'whole')
  t.match(whole.decoder.errors, errors, 'errors counted')
  t.equal(whole.decoder.errorCount, 2)
  t.equal(whole.decoder.buffered, 0)

  const bytewise = decodeAll([...bytes].map((b) => Uint8Array.of(b)))
  t.same(bytewise.frames, frames, 'byte by byte')
  t.match(bytewise.decoder.errors, errors)

  let bad = 0
  for (let k = 0; k <= bytes.length; k++) {
    const r = decodeAll([bytes.subarray(0, k), bytes.subarray(k)])
    if (r.frames.length !== frames.length || r.decoder.errorCount !== 2) bad++
    else if (k % 97 === 0) t.same(r.frames, frames, `split at ${k}`)
  }
  t.equal(bad, 0, `every one of ${bytes.length + 1} split points`)

  for (const step of [2, 3, 7, 64, 255]) {
    const chunks: Uint8Array[] = []
    for (let i = 0; i < bytes.length; i += step) chunks.push(bytes.subarray(i, i + step))
    t.same(decodeAll(chunks).frames, frames, `chunks of ${step}`)
  }
})

t.test('streaming: each kind of bad frame is counted once and the next frame still decodes', async (t) => {
  const hb = encodeMessage({ type: 'Heartbeat' })
  const good = encodeFrame({ version: 1, flags: 0, seq: 0, ack: 0, message: { type: 'Heartbeat' } })
  const badCrc = rawFrame([1, 0, 0, 0], hb)
  badCrc[4]! ^= 1
  const cases: [DecodeErrorKind, Buffer][] = [
    ['cobs', Buffer.from('051122330000', 'hex')],
    ['short', wire(Buffer.from([1, 0, 0]))],
    ['crc', wire(badCrc)],
    ['header', wire(rawFrame([1, 0x80, 0, 0], hb))],
    ['version', wire(rawFrame([9, 0, 0, 0], hb))],
    ['flatbuffers', wire(rawFrame([1, 0, 0, 0], Buffer.from('0100000000000000', 'hex')))],
    ['oversize', Buffer.concat([Buffer.alloc(MAX_ENCODED_BYTES + 1, 0x41), Buffer.from([0])])],
  ]
  for (const [kind, bad] of cases) {
    const seen: string[] = []
    const frames: LinkFrame[] = []
    const d = new FrameDecoder({ frame: (f) => frames.push(f), error: (k, e) => seen.push(`${k}:${e.field}`) })
    d.push(Buffer.concat([bad, good]))
    t.equal(d.errors[kind], 1, `${kind} counted`)
    t.equal(d.errorCount, 1, `${kind}: nothing else counted`)
    t.equal(frames.length, 1, `${kind}: the following frame decodes`)
    t.equal(seen.length, 1, `${kind}: reported to the error handler (${seen[0]})`)
    if (kind !== 'oversize') t.equal(errorKind(new MalformedPacketError('x', { field: seen[0]!.split(':')[1]! })), kind)
  }
})

t.test('streaming: a flood without delimiters is buffered up to the bound only, and counted once', async (t) => {
  const frames: LinkFrame[] = []
  const d = new FrameDecoder({ frame: (f) => frames.push(f) })
  let peak = 0
  for (let i = 0; i < 200; i++) {
    d.push(Buffer.alloc(997, 0x55))
    peak = Math.max(peak, d.buffered)
  }
  t.ok(peak <= MAX_ENCODED_BYTES, `peak ${peak} <= ${MAX_ENCODED_BYTES}`)
  t.equal(d.errors.oversize, 1)
  d.push(Buffer.concat([Buffer.from([0]), encodeFrame(samples[5]!)]))
  t.same(frames, [samples[5]], 'resynchronised on the next 0x00')
  t.equal(d.buffered, 0)
})

t.test('streaming: idle 0x00 fill is not an error; a frame of exactly the maximum size passes', async (t) => {
  const d = decodeAll([Buffer.alloc(1000, 0)])
  t.equal(d.decoder.errorCount, 0)
  t.equal(d.frames.length, 0)
  // A Heartbeat padded to exactly 512 decoded bytes is not valid FlatBuffers-wise only if the
  // padding breaks it: FlatBuffers allows trailing bytes, so it decodes.
  const hb = encodeMessage({ type: 'Heartbeat' })
  const padded = Buffer.concat([hb, Buffer.alloc(MAX_FRAME_BYTES - 8 - hb.length, 0xee)])
  const big = rawFrame([PROTOCOL_VERSION, 0, 0, 0], padded)
  t.equal(big.length, MAX_FRAME_BYTES)
  const r = decodeAll([wire(big)])
  t.equal(r.frames.length, 1, '512-byte frame decoded')
  t.equal(r.frames[0]!.message?.type, 'Heartbeat')
})
