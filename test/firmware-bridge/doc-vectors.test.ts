/**
 * docs/firmware-bridge.md cannot drift from the code: its hex examples must equal what
 * computeVectors() produces (regenerate with `node --import=tsx scripts/firmware-bridge-vectors.ts
 * --write`), each wire example must decode to its documented parts, and the timer and size
 * figures of the text must be the ones the code uses.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseVectors } from '../../appliance/core/vectors.js'
import { cobsDecode } from '../../firmware-bridge/cobs.js'
import { decodeFrame, decodeFrameBytes, decodeMessage, MAX_ENCODED_BYTES, MAX_FRAME_BYTES, MAX_PAYLOAD_BYTES } from '../../firmware-bridge/codec.js'
import { DEFAULT_ACK_TIMEOUT_MS, DEFAULT_DEAD_AFTER_HEARTBEATS, DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_RETRIES, DEFAULT_WINDOW, MAX_WINDOW } from '../../firmware-bridge/link.js'
import { computeVectors, exampleFrames } from '../../firmware-bridge/vectors.js'

const doc = readFileSync(fileURLToPath(new URL('../../docs/firmware-bridge.md', import.meta.url)), 'utf8')
const inDoc = parseVectors(doc)
const h = (name: string, field: string) => {
  const v = inDoc.get(name)?.get(field)
  if (v === undefined) throw new Error(`docs/firmware-bridge.md: vector ${name} has no field ${field}`)
  return Buffer.from(v, 'hex')
}

t.test('every example in docs/firmware-bridge.md equals what the code computes', async (t) => {
  const computed = computeVectors()
  t.equal(inDoc.size, computed.length, 'same number of examples')
  for (const v of computed) {
    const fields = inDoc.get(v.name)
    t.ok(fields, `example ${v.name} is in the document`)
    t.equal(fields?.size, v.fields.length, `${v.name}: same fields`)
    for (const [k, val] of v.fields) t.equal(fields?.get(k), val, `${v.name}.${k}`)
  }
})

/** Bit-at-a-time CRC-32C straight from the parameters in the document (not the code's table). */
function crc32cBitwise(data: Uint8Array): number {
  let c = 0xffffffff
  for (const b of data) {
    c ^= b
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
  }
  return (c ^ 0xffffffff) >>> 0
}

t.test('each frame example is consistent on its own: wire = COBS(frame) 00, frame = header || flatbuffers || crc', async (t) => {
  t.equal(h('crc32c', 'crc').readUInt32BE(0), crc32cBitwise(h('crc32c', 'input')), 'the CRC example follows the documented parameters')
  t.same(cobsDecode(h('cobs', 'encoded')), h('cobs', 'input'))
  const examples = exampleFrames()
  for (const ex of examples) {
    const wire = h(ex.name, 'wire')
    const frame = h(ex.name, 'frame')
    t.equal(wire.at(-1), 0, `${ex.name}: the wire bytes end with the delimiter`)
    t.notOk(wire.subarray(0, -1).includes(0), `${ex.name}: no 0x00 inside`)
    t.same(cobsDecode(wire.subarray(0, -1)), frame, `${ex.name}: wire is COBS of the frame`)
    const fb = inDoc.get(ex.name)!.has('flatbuffers') ? h(ex.name, 'flatbuffers') : Buffer.alloc(0)
    t.same(frame, Buffer.concat([h(ex.name, 'header'), fb, h(ex.name, 'crc_le')]), `${ex.name}: frame = header || flatbuffers || crc`)
    t.equal(h(ex.name, 'crc_le').readUInt32LE(0), crc32cBitwise(frame.subarray(0, -4)), `${ex.name}: CRC-32C over header and Frame, little-endian`)
    t.same(decodeFrame(wire), ex.frame, `${ex.name}: decodes to what its title describes`)
    t.same(decodeFrameBytes(frame), ex.frame)
    if (ex.frame.message) t.same(decodeMessage(fb), ex.frame.message)
  }
})

t.test('the figures in the text are the ones the code uses', async (t) => {
  const row = (label: string) => {
    const m = new RegExp(`^\\| ${label.replace(/[()]/g, '\\$&')} \\| ([^|]+) \\|$`, 'm').exec(doc)
    if (!m) throw new Error(`docs/firmware-bridge.md: no table row "${label}"`)
    return m[1]!.trim()
  }
  t.equal(row('acknowledgement timeout'), `${DEFAULT_ACK_TIMEOUT_MS} ms`)
  t.equal(row('retransmission rounds before the peer is lost'), String(DEFAULT_MAX_RETRIES))
  t.equal(row('window (unacknowledged reliable frames)'), `${DEFAULT_WINDOW} (max ${MAX_WINDOW})`)
  t.equal(row('heartbeat interval'), `\`Hello.heartbeat_ms\`, default ${DEFAULT_HEARTBEAT_MS} ms`)
  t.equal(row('silence before the peer is lost'), `${DEFAULT_DEAD_AFTER_HEARTBEATS} heartbeat intervals`)
  t.equal(row('largest link frame / encoded frame'), `${MAX_FRAME_BYTES} / ${MAX_ENCODED_BYTES} bytes (+ delimiter)`)
  t.match(row('largest radio payload'), new RegExp(`^${MAX_PAYLOAD_BYTES} bytes`))
})
