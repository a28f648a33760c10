/**
 * Property tests (fast-check) of everything serial bytes reach. Properties:
 *
 *  1. FrameDecoder on arbitrary bytes in arbitrary chunks: never throws, never buffers more than
 *     MAX_ENCODED_BYTES, and what it delivers re-encodes to a frame that decodes the same.
 *  2. decodeMessage / decodeFrameBytes on arbitrary bytes and on mutants of every valid message
 *     (FlatBuffers words, lengths and offsets corrupted, CRC recomputed so that the verifier is
 *     what stands in the way): a value or a MalformedPacketError, nothing else, quickly.
 *  3. Mutated valid streams (bits flipped, bytes inserted, deleted, segments repeated) followed
 *     by clean frames: only counted errors; every frame delivered is one that was sent; the
 *     decoder resynchronises (every clean frame after the first is decoded, in order).
 *  4. Host and device take any garbage in receive() without throwing and keep their session.
 *  5. Over a line that loses, duplicates and splits writes at random, every transmission is
 *     executed exactly once, in order, and every transmit() resolves.
 *
 * fast-check picks the seed; a failure prints it with the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import { MalformedPacketError } from '../../appliance/core/errors.js'
import { crc32c } from '../../firmware-bridge/crc.js'
import { decodeFrameBytes, decodeMessage, encodeFrame, encodeMessage, FrameDecoder, frameBytes, MAX_ENCODED_BYTES, type LinkFrame } from '../../firmware-bridge/codec.js'
import { drive, elapse, readyPair, sampleFrames } from './helpers.js'

const RUNS = 1000
const MAX_MS = 50
const samples = sampleFrames()
const sampleWires = samples.map((f) => encodeFrame(f))

/** Calls fn; a value or a MalformedPacketError is fine, anything else (or slowness) is not. */
function onlyMalformed(fn: () => unknown): boolean {
  const t0 = performance.now()
  try {
    fn()
  } catch (err) {
    if (!(err instanceof MalformedPacketError)) throw err
  }
  const ms = performance.now() - t0
  if (ms > MAX_MS) {
    const t1 = performance.now()
    try {
      fn()
    } catch {
      /* timed again */
    }
    if (performance.now() - t1 > MAX_MS) throw new Error(`decode took ${ms.toFixed(1)} ms`)
  }
  return true
}

/** Splits `bytes` at the given (sorted, deduplicated) cut points. */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let prev = 0
  for (const p of points) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  out.push(bytes.subarray(prev))
  return out
}

t.test('1. arbitrary bytes in arbitrary chunks: no throw, bounded buffer, consistent frames', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
      const frames: LinkFrame[] = []
      const d = new FrameDecoder({ frame: (f) => frames.push(f) })
      for (const c of chunk(bytes, cuts)) {
        d.push(c)
        if (d.buffered > MAX_ENCODED_BYTES) return false
      }
      for (const f of frames) if (JSON.stringify(decodeFrameBytes(frameBytes(f))) !== JSON.stringify(f)) return false
      return d.frames === frames.length
    }),
    { numRuns: RUNS },
  )
})

t.test('2a. arbitrary bytes to decodeMessage and decodeFrameBytes: only MalformedPacketError', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      onlyMalformed(() => decodeMessage(bytes))
      const framed = Buffer.concat([Buffer.from([1, 0, 0, 0]), bytes, Buffer.alloc(4)])
      framed.writeUInt32LE(crc32c(framed, 0, 0, framed.length - 4), framed.length - 4)
      return onlyMalformed(() => decodeFrameBytes(framed))
    }),
    { numRuns: RUNS },
  )
})

const messages = samples.filter((f) => f.message !== null).map((f) => encodeMessage(f.message!))

/** A mutation of a FlatBuffers buffer: overwrite a 1/2/4-byte word with a chosen value. */
const fbMutant = fc
  .record({
    which: fc.nat(messages.length - 1),
    pos: fc.nat(),
    size: fc.constantFrom(1, 2, 4),
    value: fc.oneof(fc.constantFrom(0, 1, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 0x80000000, 4, 8, 12), fc.nat()),
    truncate: fc.option(fc.nat(), { nil: undefined }),
  })
  .map(({ which, pos, size, value, truncate }) => {
    const b = Buffer.from(messages[which]!)
    const at = pos % Math.max(1, b.length - size + 1)
    if (size === 1) b[at] = value & 0xff
    else if (size === 2) b.writeUInt16LE(value & 0xffff, at)
    else b.writeUInt32LE(value >>> 0, at)
    return truncate === undefined ? b : b.subarray(0, truncate % (b.length + 1))
  })

t.test('2b. mutants of every valid message: only MalformedPacketError (the verifier holds)', async () => {
  fc.assert(
    fc.property(fbMutant, (fb) => onlyMalformed(() => decodeMessage(fb))),
    { numRuns: RUNS * 3 },
  )
})

/** A mutation of a byte stream. */
type StreamOp = { op: 'flip'; at: number; bit: number } | { op: 'insert'; at: number; bytes: Uint8Array } | { op: 'delete' | 'repeat'; at: number; n: number }
const streamOp: fc.Arbitrary<StreamOp> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 120 }) }),
)


function mutate(bytes: Buffer, ops: StreamOp[]): Buffer {
  let b = bytes
  for (const o of ops) {
    const at = b.length === 0 ? 0 : o.at % b.length
    if (o.op === 'flip') {
      if (b.length === 0) continue
      b = Buffer.from(b)
      b[at]! ^= 1 << o.bit
    } else if (o.op === 'insert') b = Buffer.concat([b.subarray(0, at), o.bytes, b.subarray(at)])
    else if (o.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + o.n)])
    else b = Buffer.concat([b.subarray(0, at + o.n), b.subarray(at)])
  }
  return b
}

t.test('3. mutated valid streams: counted errors, only sent frames delivered, resynchronisation', async () => {
  const key = (f: LinkFrame) => JSON.stringify(f)
  const known = new Set(samples.map(key))
  fc.assert(
    fc.property(
      fc.array(fc.nat(samples.length - 1), { minLength: 1, maxLength: 12 }),
      fc.array(streamOp, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(samples.length - 1), { minLength: 2, maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (prefix, ops, tail, cuts) => {
        const dirty = mutate(Buffer.concat(prefix.map((i) => sampleWires[i]!)), ops)
        const clean = tail.map((i) => sampleWires[i]!)
        const frames: LinkFrame[] = []
        const d = new FrameDecoder({ frame: (f) => frames.push(f) })
        for (const c of chunk(Buffer.concat([dirty, ...clean]), cuts)) {
          d.push(c)
          if (d.buffered > MAX_ENCODED_BYTES) return false
        }
        if (!frames.every((f) => known.has(key(f)))) return false
        const want = tail.slice(1).map((i) => key(samples[i]!))
        const got = frames.slice(frames.length - want.length).map(key)
        return JSON.stringify(got) === JSON.stringify(want) && d.buffered === 0
      },
    ),
    { numRuns: RUNS },
  )
})

t.test('4. host and device swallow garbage and keep their session', async (t) => {
  const p = await readyPair()
  let threw: unknown = null
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 700 }), (bytes) => {
      try {
        p.host.receive(bytes)
        p.device.receive(bytes)
      } catch (err) {
        threw = err
        return false
      }
      return true
    }),
    { numRuns: 300 },
  )
  t.equal(threw, null)
  // Garbage may end in a half frame: a delimiter closes it, then the session still works.
  p.host.receive(Buffer.from([0]))
  p.device.receive(Buffer.from([0]))
  t.equal(p.host.state, 'ready')
  await drive(p.clock, p.host.transmit(Buffer.from('still here')))
  t.same(p.radio.sent.at(-1), Buffer.from('still here'))
  const errs = p.host.stats().errors
  t.ok(Object.values(errs).reduce((a, b) => a + b, 0) > 0, 'garbage was counted')
  t.ok(p.device.stats().linkErrors! > 0, 'the device counted garbage too')
  p.close()
})

t.test('5. over a lossy, duplicating, splitting line every transmission happens exactly once, in order', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 0x7fffffff }), fc.integer({ min: 3, max: 12 }), async (seed, count) => {
      let s = seed
      const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff), s / 0x80000000)
      const filter = (bytes: Uint8Array): Uint8Array[] => {
        const r = rand()
        if (r < 0.15) return []
        if (r < 0.25) return [bytes, bytes]
        if (r < 0.35 && bytes.length > 2) {
          const k = 1 + Math.floor(rand() * (bytes.length - 1))
          return [bytes.subarray(0, k), bytes.subarray(k)]
        }
        return [bytes]
      }
      const p = await readyPair({ host: { maxRetries: 50, helloTimeoutMs: 5000 }, device: { maxRetries: 50 } })
      p.down.filter = filter
      p.up.filter = filter
      const payloads = Array.from({ length: count }, (_, i) => Buffer.from(`frame ${seed} ${i}`))
      const results: Promise<void>[] = []
      for (const pl of payloads) {
        while (p.host.credits === 0) await elapse(p.clock, 1)
        results.push(p.host.transmit(pl))
      }
      await drive(p.clock, Promise.all(results), 120_000)
      const ok = p.radio.sent.length === count && p.radio.sent.every((b, i) => b.equals(payloads[i]!))
      p.close()
      return ok
    }),
    { numRuns: 25 },
  )
  t.pass('all runs delivered exactly once, in order')
})
