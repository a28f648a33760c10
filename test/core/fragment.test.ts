import t from 'tap'
import fc from 'fast-check'
import * as flatbuffers from 'flatbuffers'
import { MalformedPacketError, ResourceLimitError } from '../../appliance/core/errors.js'
import {
  FRAGMENT_HEADER_BYTES,
  FRAGMENT_VK,
  MAX_FRAGMENTS,
  MIN_FRAGMENT_MTU,
  REASSEMBLY_FRAGMENT_OVERHEAD_BYTES,
  Reassembler,
  decodeFragmentHeader,
  encodeFragmentHeader,
  fragment,
  maxFragmentableBytes,
} from '../../appliance/core/fragment.js'
import { FragmentHeader } from '../../appliance/generated/kairo/aitcp/fragment-header.js'
import { FrameKind } from '../../appliance/generated/kairo/aitcp/frame-kind.js'

const OVH = REASSEMBLY_FRAGMENT_OVERHEAD_BYTES

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values)
}

function frameOf(len: number, seed = 1): Buffer {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff
  return b
}

/** A fragment built by hand: header fields as given, then `chunk`. */
function raw(index: number, count: number, fragId: number, chunk: Uint8Array, vk = FRAGMENT_VK, reserved = 0): Buffer {
  const b = Buffer.alloc(FRAGMENT_HEADER_BYTES + chunk.length)
  b[0] = vk
  b[1] = index
  b[2] = count
  b[3] = reserved
  b.writeUInt32LE(fragId >>> 0, 4)
  b.set(chunk, FRAGMENT_HEADER_BYTES)
  return b
}

t.test('protocol constants match the schema', async (t) => {
  t.equal(FRAGMENT_VK, 0x13)
  t.equal(FRAGMENT_VK, (1 << 4) | FrameKind.Fragment)
  t.equal(FRAGMENT_HEADER_BYTES, FragmentHeader.sizeOf())
  t.equal(MAX_FRAGMENTS, 64)
  t.equal(MIN_FRAGMENT_MTU, 9)
  t.equal(maxFragmentableBytes(255), 64 * 247)
  t.equal(maxFragmentableBytes(64), 64 * 56)
})

t.test('decodeFragmentHeader: numbered table', async (t) => {
  type Case = readonly [string, Uint8Array, { index: number; count: number; fragId: number } | string]
  const cases: Case[] = [
    /*  1 */ ['minimal', bytes(0x13, 0, 1, 0, 0, 0, 0, 0, 0xaa), { index: 0, count: 1, fragId: 0 }],
    /*  2 */ ['last of 64, frag_id max', bytes(0x13, 63, 64, 0, 0xff, 0xff, 0xff, 0xff, 1, 2), { index: 63, count: 64, fragId: 0xffffffff }],
    /*  3 */ ['frag_id little-endian', bytes(0x13, 2, 5, 0, 0x78, 0x56, 0x34, 0x12, 9), { index: 2, count: 5, fragId: 0x12345678 }],
    /*  4 */ ['frag_id high bit', bytes(0x13, 0, 2, 0, 0, 0, 0, 0x80, 9), { index: 0, count: 2, fragId: 0x80000000 }],
    /*  5 */ ['empty', bytes(), 'length'],
    /*  6 */ ['7 bytes', bytes(0x13, 0, 1, 0, 0, 0, 0), 'length'],
    /*  7 */ ['header only, empty chunk', bytes(0x13, 0, 1, 0, 0, 0, 0, 0), 'chunk'],
    /*  8 */ ['vk Packet kind', bytes(0x12, 0, 1, 0, 0, 0, 0, 0, 1), 'vk'],
    /*  9 */ ['vk Data kind', bytes(0x11, 0, 1, 0, 0, 0, 0, 0, 1), 'vk'],
    /* 10 */ ['vk version 2', bytes(0x23, 0, 1, 0, 0, 0, 0, 0, 1), 'vk'],
    /* 11 */ ['vk version 0', bytes(0x03, 0, 1, 0, 0, 0, 0, 0, 1), 'vk'],
    /* 12 */ ['vk 0xff', bytes(0xff, 0, 1, 0, 0, 0, 0, 0, 1), 'vk'],
    /* 13 */ ['count 0', bytes(0x13, 0, 0, 0, 0, 0, 0, 0, 1), 'count'],
    /* 14 */ ['count 65', bytes(0x13, 0, 65, 0, 0, 0, 0, 0, 1), 'count'],
    /* 15 */ ['count 255', bytes(0x13, 0, 255, 0, 0, 0, 0, 0, 1), 'count'],
    /* 16 */ ['index = count', bytes(0x13, 1, 1, 0, 0, 0, 0, 0, 1), 'index'],
    /* 17 */ ['index 64 of 64', bytes(0x13, 64, 64, 0, 0, 0, 0, 0, 1), 'index'],
    /* 18 */ ['index 255 of 3', bytes(0x13, 255, 3, 0, 0, 0, 0, 0, 1), 'index'],
    /* 19 */ ['reserved 1', bytes(0x13, 0, 1, 1, 0, 0, 0, 0, 1), 'reserved'],
    /* 20 */ ['reserved 0x80', bytes(0x13, 0, 1, 0x80, 0, 0, 0, 0, 1), 'reserved'],
  ]
  let n = 0
  for (const [name, input, expected] of cases) {
    n++
    const label = `${n} ${name}`
    if (typeof expected === 'string') {
      try {
        decodeFragmentHeader(input)
        t.fail(`${label}: did not throw`)
      } catch (err) {
        t.ok(err instanceof MalformedPacketError, `${label}: MalformedPacketError`)
        t.equal((err as MalformedPacketError).field, expected, `${label}: field ${expected}`)
        t.equal((err as MalformedPacketError).code, 'EMALFORMED')
      }
    } else {
      t.same({ ...decodeFragmentHeader(input) }, expected, label)
    }
  }
  const out = { index: -1, count: -1, fragId: -1 }
  t.equal(decodeFragmentHeader(bytes(0x13, 1, 2, 0, 7, 0, 0, 0, 5), out), out, 'decodes into the given object')
  t.same(out, { index: 1, count: 2, fragId: 7 })
  t.throws(() => decodeFragmentHeader('nope' as unknown as Uint8Array), TypeError)
})

t.test('encodeFragmentHeader: numbered table', async (t) => {
  const cases: Array<readonly [number, number, number, number[]]> = [
    /* 1 */ [0, 1, 0, [0x13, 0, 1, 0, 0, 0, 0, 0]],
    /* 2 */ [63, 64, 0xffffffff, [0x13, 63, 64, 0, 0xff, 0xff, 0xff, 0xff]],
    /* 3 */ [2, 5, 0x12345678, [0x13, 2, 5, 0, 0x78, 0x56, 0x34, 0x12]],
    /* 4 */ [0, 2, 0x80000001, [0x13, 0, 2, 0, 0x01, 0, 0, 0x80]],
  ]
  let n = 0
  for (const [index, count, fragId, expected] of cases) {
    n++
    const out = Buffer.alloc(12, 0xee)
    t.equal(encodeFragmentHeader(out, 2, index, count, fragId), 10, `${n}: returns the next offset`)
    t.same([...out.subarray(2, 10)], expected, `${n}: bytes`)
    t.same([...out.subarray(0, 2), ...out.subarray(10)], [0xee, 0xee, 0xee, 0xee], `${n}: nothing else written`)
  }
  const bad: Array<readonly [string, () => unknown]> = [
    ['count 0', () => encodeFragmentHeader(Buffer.alloc(8), 0, 0, 0, 0)],
    ['count 65', () => encodeFragmentHeader(Buffer.alloc(8), 0, 0, 65, 0)],
    ['index = count', () => encodeFragmentHeader(Buffer.alloc(8), 0, 3, 3, 0)],
    ['index -1', () => encodeFragmentHeader(Buffer.alloc(8), 0, -1, 3, 0)],
    ['index 1.5', () => encodeFragmentHeader(Buffer.alloc(8), 0, 1.5, 3, 0)],
    ['frag_id -1', () => encodeFragmentHeader(Buffer.alloc(8), 0, 0, 1, -1)],
    ['frag_id 2^32', () => encodeFragmentHeader(Buffer.alloc(8), 0, 0, 1, 2 ** 32)],
    ['frag_id 0.5', () => encodeFragmentHeader(Buffer.alloc(8), 0, 0, 1, 0.5)],
    ['no room', () => encodeFragmentHeader(Buffer.alloc(7), 0, 0, 1, 0)],
    ['no room at offset', () => encodeFragmentHeader(Buffer.alloc(10), 3, 0, 1, 0)],
    ['negative offset', () => encodeFragmentHeader(Buffer.alloc(10), -1, 0, 1, 0)],
  ]
  for (const [name, fn] of bad) t.throws(fn, TypeError, name)
})

t.test('header bytes equal what flatc-generated FragmentHeader.createFragmentHeader writes', async (t) => {
  const cases: Array<readonly [number, number, number]> = [
    [0, 1, 0],
    [0, 2, 1],
    [1, 2, 0xdeadbeef],
    [63, 64, 0xffffffff],
    [17, 40, 0x80000000],
    [5, 9, 0x01020304],
  ]
  for (const [index, count, fragId] of cases) {
    const builder = new flatbuffers.Builder(16)
    const off = FragmentHeader.createFragmentHeader(builder, FRAGMENT_VK, index, count, 0, fragId)
    const ours = Buffer.alloc(FRAGMENT_HEADER_BYTES)
    encodeFragmentHeader(ours, 0, index, count, fragId)
    // The builder writes back to front and asUint8Array() only means something after finish():
    // before it, the struct is the last `off` bytes of dataBuffer(). Find our 8 bytes there.
    const data = builder.dataBuffer().bytes()
    let at = -1
    for (let i = 0; i + 8 <= data.length; i++) {
      if (Buffer.compare(Buffer.from(data.subarray(i, i + 8)), ours) === 0) {
        at = i
        break
      }
    }
    t.equal(at, data.length - off, `${index}/${count} frag_id ${fragId}: flatc wrote ${Buffer.from(data.subarray(data.length - off)).toString('hex')}, ours ${ours.toString('hex')}`)
    // After finish() the buffer is a root offset (u32 LE) pointing at the struct.
    builder.finish(off)
    const fin = Buffer.from(builder.asUint8Array())
    const root = fin.readUInt32LE(0)
    t.same(fin.subarray(root, root + 8), ours, 'finished buffer: struct at the root offset')
    // And the generated reader reads our bytes back.
    const chunked = Buffer.concat([ours, Buffer.from([1])])
    const view = new FragmentHeader().__init(0, new flatbuffers.ByteBuffer(chunked))
    t.same([view.vk(), view.index(), view.count(), view.reserved(), view.fragId() >>> 0], [FRAGMENT_VK, index, count, 0, fragId])
    t.same({ ...decodeFragmentHeader(chunked) }, { index, count, fragId })
  }
})

t.test('fragment(): shapes, limits and errors', async (t) => {
  const f = frameOf(600)
  const frags = fragment(f, 255, 42)
  t.equal(frags.length, 3)
  t.same(frags.map((x) => x.length), [255, 255, 600 - 2 * 247 + 8])
  t.same(frags.map((x) => [...x.subarray(0, 8)]), [0, 1, 2].map((i) => [0x13, i, 3, 0, 42, 0, 0, 0]))
  t.same(Buffer.concat(frags.map((x) => x.subarray(8))), f)

  t.equal(fragment(frameOf(10), 255, 1).length, 1, 'a frame that fits gives one fragment')
  t.equal(fragment(frameOf(247), 255, 1).length, 1, 'exactly one chunk')
  t.equal(fragment(frameOf(248), 255, 1).length, 2, 'one byte more')

  t.equal(fragment(frameOf(maxFragmentableBytes(255)), 255, 1).length, 64)
  t.throws(() => fragment(frameOf(maxFragmentableBytes(255) + 1), 255, 1), ResourceLimitError)
  t.equal(fragment(frameOf(64), 9, 1).length, 64, 'mtu 9: one byte per fragment')
  t.throws(() => fragment(frameOf(65), 9, 1), ResourceLimitError)

  for (const mtu of [8, 0, -1, 9.5, NaN, Infinity]) t.throws(() => fragment(frameOf(10), mtu, 1), TypeError, `mtu ${mtu}`)
  for (const id of [-1, 2 ** 32, 1.5, NaN]) t.throws(() => fragment(frameOf(10), 255, id), TypeError, `frag_id ${id}`)
  t.throws(() => fragment(new Uint8Array(0), 255, 1), TypeError, 'an empty frame has no chunk to carry')
  t.throws(() => fragment([1, 2] as unknown as Uint8Array, 255, 1), TypeError)
})

t.test('round trip for sizes 1..3000 at mtu 255 and 64', async (t) => {
  for (const mtu of [255, 64]) {
    const r = new Reassembler()
    let bad = 0
    let fragId = 0
    for (let size = 1; size <= 3000; size++) {
      const frame = frameOf(size, size)
      const frags = fragment(frame, mtu, fragId++)
      const chunk = mtu - 8
      if (frags.length !== Math.ceil(size / chunk)) bad++
      for (let i = 0; i < frags.length; i++) {
        const fr = frags[i]!
        if (fr.length > mtu) bad++
        if (i < frags.length - 1 && fr.length !== mtu) bad++
      }
      let out: Buffer | null = null
      for (let i = 0; i < frags.length; i++) {
        const got = r.push('peer', frags[i]!)
        if (i < frags.length - 1 ? got !== null : got === null) bad++
        out = got
      }
      if (out === null || !out.equals(frame)) bad++
    }
    t.equal(bad, 0, `mtu ${mtu}: every size reassembles exactly`)
    const s = r.stats()
    t.equal(s.completed, 3000)
    t.equal(s.pending, 0)
    t.equal(s.bytes, 0)
    t.equal(r.bytesFor('peer'), 0)
  }
})

t.test('property: any permutation with duplicates reassembles exactly the original', async (t) => {
  fc.assert(
    fc.property(
      fc.record({ count: fc.integer({ min: 1, max: MAX_FRAGMENTS }), chunk: fc.integer({ min: 1, max: 200 }), last: fc.nat(), seed: fc.nat() }),
      fc.nat({ max: 0xffffffff }),
      fc.array(fc.nat(), { maxLength: 40 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 120, maxLength: 120 }),
      ({ count, chunk, last, seed }, fragId, dupSeeds, keys) => {
        const frame = frameOf((count - 1) * chunk + 1 + (last % chunk), seed)
        const mtu = chunk + FRAGMENT_HEADER_BYTES
        const frags = fragment(frame, mtu, fragId)
        if (frags.length !== count) return false
        const list = [...frags, ...dupSeeds.map((d) => frags[d % frags.length]!)]
        const order = list.map((f, i) => ({ f, k: keys[i % keys.length]! + i * 1e-9 })).sort((a, b) => a.k - b.k)
        const r = new Reassembler({ maxFrameBytes: 1 << 20, maxBytesPerSource: 1 << 22, maxBytesTotal: 1 << 22 })
        const seen = new Set<number>()
        let first = -1
        for (let i = 0; i < order.length; i++) {
          const f = order[i]!.f
          if (first < 0) seen.add(f[1]!)
          const got = r.push('src', f)
          if (got !== null) {
            if (!got.equals(frame)) return false
            if (first < 0) {
              first = i
              if (seen.size !== frags.length) return false
            }
          } else if (first < 0 && seen.size === frags.length) {
            return false
          }
        }
        return first >= 0 && r.stats().overlaps === 0
      },
    ),
    { numRuns: 300 },
  )
  t.pass('reassembled exactly')
})

/** Fragments that are valid or nearly so, so that random input gets past the header checks. */
const nearFragment = fc
  .record({
    vk: fc.oneof({ weight: 9, arbitrary: fc.constant(FRAGMENT_VK) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    index: fc.integer({ min: 0, max: 5 }),
    count: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 5 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    reserved: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    fragId: fc.integer({ min: 0, max: 3 }),
    chunk: fc.uint8Array({ minLength: 0, maxLength: 300 }),
  })
  .map(({ vk, index, count, reserved, fragId, chunk }) => raw(index, count, fragId, chunk, vk, reserved))

const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 64 }), nearFragment)

t.test('property: push() returns null or a Buffer, or throws MalformedPacketError, and never amplifies', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), anyBytes), { minLength: 20, maxLength: 200 }), (pushes) => {
      const r = new Reassembler({ maxBytesPerSource: 4096, maxBytesTotal: 8192, maxFrameBytes: 2048 })
      let inBytes = 0
      let outBytes = 0
      for (const [src, b] of pushes) {
        inBytes += Math.max(0, b.length - FRAGMENT_HEADER_BYTES)
        try {
          const got = r.push(src, b)
          if (got !== null) {
            if (!Buffer.isBuffer(got)) return false
            outBytes += got.length
          }
        } catch (err) {
          if (!(err instanceof MalformedPacketError)) return false
        }
        if (outBytes > inBytes) return false
      }
      return true
    }),
    { numRuns: 300 },
  )
  t.pass('only null, Buffer or MalformedPacketError')
})

t.test('property: memory stays within bounds under a random flood from many sources', async (t) => {
  const sources = Array.from({ length: 12 }, (_, i) => `src${i}`)
  const opts = { maxBytesPerSource: 1500, maxBytesTotal: 5000, maxPendingPerSource: 3, maxFrameBytes: 1200, timeoutMs: 30_000 }
  // One heavy source and eleven others. Mostly consistent fragments (count and chunk length fixed per frag_id, so that reassemblies
  // grow and complete), some with arbitrary shapes.
  const consistent = fc.record({ fragId: fc.integer({ min: 0, max: 30 }), index: fc.nat(), lastLen: fc.integer({ min: 1, max: 150 }) }).map(({ fragId, index, lastLen }) => {
    const count = 2 + (fragId % 7)
    const chunk = 30 + ((fragId * 37) % 120)
    const i = index % count
    return raw(i, count, fragId, frameOf(i === count - 1 ? Math.min(chunk, lastLen) : chunk, fragId))
  })
  const arbitrary = fc
    .record({ index: fc.nat({ max: 63 }), count: fc.integer({ min: 1, max: 64 }), fragId: fc.integer({ min: 0, max: 30 }), len: fc.integer({ min: 1, max: 250 }) })
    .map(({ index, count, fragId, len }) => raw(index % count, count, fragId, frameOf(len, fragId)))
  const flood = fc.array(
    fc.tuple(fc.oneof({ weight: 8, arbitrary: fc.constant('src0') }, { weight: 4, arbitrary: fc.constantFrom(...sources) }), fc.oneof({ weight: 4, arbitrary: consistent }, { weight: 1, arbitrary: arbitrary }), fc.integer({ min: 0, max: 600 })),
    { minLength: 100, maxLength: 400 },
  )
  let peakTotal = 0
  let peakSource = 0
  fc.assert(
    fc.property(flood, (pushes) => {
      let clock = 0
      const r = new Reassembler({ ...opts, now: () => clock })
      for (const [src, f, dt] of pushes) {
        clock += dt
        r.push(src, f)
        const s = r.stats()
        if (s.bytes > opts.maxBytesTotal) return false
        peakTotal = Math.max(peakTotal, s.bytes)
        let sum = 0
        for (const name of sources) {
          const b = r.bytesFor(name)
          if (b > opts.maxBytesPerSource) return false
          peakSource = Math.max(peakSource, b)
          sum += b
        }
        if (sum !== s.bytes) return false
        if (s.pending > sources.length * opts.maxPendingPerSource) return false
      }
      return true
    }),
    { numRuns: 300 },
  )
  t.pass('within bounds after every push')
  t.ok(peakTotal > opts.maxBytesTotal * 0.8, `the flood came near the total limit (peak ${peakTotal})`)
  t.ok(peakSource > opts.maxBytesPerSource * 0.8, `and near the per-source limit (peak ${peakSource})`)
})

t.test('duplicates and overlaps (RFC 5722 style): numbered cases', async (t) => {
  const frame = frameOf(50)
  const [f0, f1, f2] = fragment(frame, 28, 7) as [Buffer, Buffer, Buffer] // chunks 20, 20, 10
  const tamper = (f: Buffer): Buffer => {
    const c = Buffer.from(f)
    c[c.length - 1] = (c[c.length - 1] ?? 0) ^ 1
    return c
  }

  // 1: identical duplicate is ignored and the frame still completes
  {
    const r = new Reassembler()
    t.equal(r.push('s', f0), null)
    t.equal(r.push('s', f0), null)
    t.equal(r.push('s', f2), null)
    t.equal(r.push('s', f2), null)
    t.same(r.push('s', f1), frame, '1: completes')
    t.match(r.stats(), { duplicates: 2, overlaps: 0, completed: 1, pending: 0, bytes: 0 })
  }
  // 2: same index, different bytes: the whole reassembly is discarded
  {
    const r = new Reassembler()
    r.push('s', f0)
    r.push('s', f2)
    t.equal(r.push('s', tamper(f0)), null)
    t.match(r.stats(), { overlaps: 1, pending: 0, bytes: 0 }, '2: discarded')
    t.equal(r.push('s', f1), null, '2: the rest starts a new reassembly')
    t.equal(r.stats().completed, 0)
  }
  // 3: a different count than the first fragment
  {
    const r = new Reassembler()
    r.push('s', f0)
    t.equal(r.push('s', raw(1, 4, 7, frameOf(20))), null)
    t.match(r.stats(), { overlaps: 1, pending: 0, bytes: 0 }, '3: discarded')
  }
  // 4: count 1 under a frag_id that is being reassembled with count 3
  {
    const r = new Reassembler()
    r.push('s', f0)
    t.equal(r.push('s', raw(0, 1, 7, frameOf(5))), null)
    t.match(r.stats(), { overlaps: 1, pending: 0, completed: 0 }, '4: discarded')
  }
  // 5: a non-last chunk of another length than the established one
  {
    const r = new Reassembler()
    r.push('s', f0)
    t.equal(r.push('s', raw(1, 3, 7, frameOf(19))), null)
    t.match(r.stats(), { overlaps: 1, pending: 0 }, '5: discarded')
  }
  // 6: a last chunk longer than the chunk length
  {
    const r = new Reassembler()
    r.push('s', f1)
    t.equal(r.push('s', raw(2, 3, 7, frameOf(21))), null)
    t.match(r.stats(), { overlaps: 1, pending: 0 }, '6: discarded')
  }
  // 7: the last chunk first, then a non-last chunk shorter than it
  {
    const r = new Reassembler()
    r.push('s', raw(2, 3, 7, frameOf(15)))
    t.equal(r.push('s', raw(0, 3, 7, frameOf(14))), null)
    t.match(r.stats(), { overlaps: 1, pending: 0, bytes: 0 }, '7: discarded')
  }
  // 8: the last chunk first, as long as the chunk length: fine
  {
    const r = new Reassembler()
    const g = fragment(frameOf(60), 28, 9)
    t.equal(r.push('s', g[2]!), null)
    t.equal(r.push('s', g[0]!), null)
    t.same(r.push('s', g[1]!), frameOf(60), '8: completes')
  }
  // 9: the same frag_id from two sources is two reassemblies
  {
    const r = new Reassembler()
    r.push('a', f0)
    r.push('b', tamper(f0))
    r.push('a', f1)
    t.same(r.push('a', f2), frame, '9: a completes')
    t.equal(r.stats().overlaps, 0)
    t.equal(r.stats().pending, 1)
  }
})

t.test('limits refuse new fragments; only expired data is evicted', async (t) => {
  // 1: maxPendingPerSource
  {
    const r = new Reassembler({ maxPendingPerSource: 2 })
    t.equal(r.push('s', raw(0, 2, 1, frameOf(10))), null)
    t.equal(r.push('s', raw(0, 2, 2, frameOf(10))), null)
    t.equal(r.push('s', raw(0, 2, 3, frameOf(10))), null)
    t.match(r.stats(), { pending: 2, refused: 1 })
    t.same(r.push('s', raw(1, 2, 1, frameOf(3))), Buffer.concat([frameOf(10), frameOf(3)]), 'existing reassemblies still complete')
    t.equal(r.push('t', raw(0, 2, 3, frameOf(10))), null, 'another source is not affected')
    t.equal(r.stats().pending, 2)
  }
  // 2: maxBytesPerSource (chunk + overhead per fragment)
  {
    const r = new Reassembler({ maxBytesPerSource: 2 * (100 + OVH) })
    r.push('s', raw(0, 4, 1, frameOf(100)))
    r.push('s', raw(1, 4, 1, frameOf(100)))
    t.equal(r.bytesFor('s'), 2 * (100 + OVH))
    t.equal(r.push('s', raw(2, 4, 1, frameOf(100))), null)
    t.equal(r.stats().refused, 1)
    t.equal(r.bytesFor('s'), 2 * (100 + OVH), 'nothing buffered for the refused fragment')
    t.equal(r.push('u', raw(0, 4, 1, frameOf(100))), null)
    t.equal(r.bytesFor('u'), 100 + OVH, 'another source has its own budget')
  }
  // 3: maxBytesTotal refuses without evicting anyone
  {
    const r = new Reassembler({ maxBytesTotal: 3 * (100 + OVH) })
    r.push('a', raw(0, 2, 1, frameOf(100)))
    r.push('b', raw(0, 2, 1, frameOf(100)))
    r.push('c', raw(0, 2, 1, frameOf(100)))
    t.equal(r.push('d', raw(0, 2, 1, frameOf(100))), null)
    t.match(r.stats(), { refused: 1, pending: 3, bytes: 3 * (100 + OVH) })
    t.same(r.push('a', raw(1, 2, 1, frameOf(5))), Buffer.concat([frameOf(100), frameOf(5)]), 'a completes despite the pressure')
    t.equal(r.push('d', raw(0, 2, 1, frameOf(100))), null)
    t.match(r.stats(), { refused: 1, pending: 3 }, 'room again once a completed')
  }
  // 4: maxFrameBytes = count x chunk length
  {
    const r = new Reassembler({ maxFrameBytes: 1000 })
    t.equal(r.push('s', raw(0, 10, 1, frameOf(101))), null)
    t.match(r.stats(), { refused: 1, pending: 0 }, '10 x 101 > 1000')
    t.equal(r.push('s', raw(0, 10, 2, frameOf(100))), null)
    t.match(r.stats(), { refused: 1, pending: 1 }, '10 x 100 = 1000 is allowed')
    t.equal(r.push('s', raw(0, 1, 3, frameOf(1001))), null)
    t.match(r.stats(), { refused: 2, completed: 0 }, 'a single fragment over the limit')
    t.same(r.push('s', raw(0, 1, 3, frameOf(1000))), frameOf(1000), 'a single fragment at the limit')
    // last chunk first (a lower bound), then a non-last chunk that proves the frame too big
    t.equal(r.push('s', raw(9, 10, 4, frameOf(50))), null)
    t.equal(r.stats().pending, 2)
    t.equal(r.push('s', raw(0, 10, 4, frameOf(150))), null)
    t.match(r.stats(), { refused: 3, pending: 1 }, 'the doomed reassembly is dropped')
  }
  // 5: expired reassemblies are evicted first to make room
  {
    let clock = 0
    const r = new Reassembler({ now: () => clock, maxPendingPerSource: 1, timeoutMs: 1000 })
    r.push('s', raw(0, 2, 1, frameOf(10)))
    clock = 999
    t.equal(r.push('s', raw(0, 2, 2, frameOf(10))), null)
    t.match(r.stats(), { refused: 1, pending: 1, timeouts: 0 })
    clock = 1000
    t.equal(r.push('s', raw(0, 2, 2, frameOf(10))), null)
    t.match(r.stats(), { refused: 1, pending: 1, timeouts: 1 }, 'the expired one made room')
    t.same(r.push('s', raw(1, 2, 2, frameOf(1))), Buffer.concat([frameOf(10), frameOf(1)]))
  }
  // 6: a fragment that completes its frame is accepted even at the limit (it is not buffered)
  {
    const r = new Reassembler({ maxBytesPerSource: 2 * (100 + OVH), maxBytesTotal: 2 * (100 + OVH) })
    r.push('s', raw(0, 3, 1, frameOf(100)))
    r.push('s', raw(2, 3, 1, frameOf(100)))
    t.equal(r.push('t', raw(0, 2, 1, frameOf(1))), null)
    t.equal(r.stats().refused, 1, 'no room for a new fragment')
    t.same(r.push('s', raw(1, 3, 1, frameOf(100))), Buffer.concat([frameOf(100), frameOf(100), frameOf(100)]), 'the last missing one completes')
    t.match(r.stats(), { refused: 1, pending: 0, bytes: 0 })
  }
})

t.test('timeouts with an injected clock', async (t) => {
  let clock = 5000
  const r = new Reassembler({ now: () => clock })
  const frame = frameOf(100)
  const [a, b] = fragment(frame, 60, 3) as [Buffer, Buffer]
  t.equal(r.push('s', a), null)
  clock += 29_999
  t.equal(r.sweep(), 0)
  t.same(r.push('s', b), frame, 'completes just before the timeout')

  t.equal(r.push('s', a), null)
  clock += 30_000
  t.equal(r.push('s', b), null, 'too late: the first half expired, this starts anew')
  t.match(r.stats(), { timeouts: 1, pending: 1, completed: 1 })
  clock += 30_000
  t.equal(r.sweep(), 1)
  t.match(r.stats(), { timeouts: 2, pending: 0, bytes: 0 })

  // timeouts count from the first fragment, not the latest
  t.equal(r.push('s', raw(0, 3, 9, frameOf(10))), null)
  clock += 20_000
  t.equal(r.push('s', raw(1, 3, 9, frameOf(10))), null)
  clock += 10_000
  t.equal(r.sweep(), 1)

  // a clock that steps back: reassemblies stay in arrival order, a later one never expires
  // before an earlier one (its timeout counts from the latest time seen)
  clock = 100_000
  r.push('s', raw(0, 2, 20, frameOf(10)))
  clock = 50_000
  r.push('s', raw(0, 2, 21, frameOf(10)))
  t.same(r.push('s', raw(1, 2, 20, frameOf(1))), Buffer.concat([frameOf(10), frameOf(1)]))
  clock = 85_000
  t.equal(r.sweep(), 0)
  clock = 130_000
  t.equal(r.sweep(), 1)
})

t.test('one source flooding cannot prevent another source from completing', async (t) => {
  const r = new Reassembler({ maxBytesPerSource: 4096, maxBytesTotal: 1 << 20, maxPendingPerSource: 4 })
  const good = frameOf(2000, 9)
  const goodFrags = fragment(good, 255, 77)
  let result: Buffer | null = null
  for (let i = 0; i < 5000; i++) {
    // the flooder uses every frag_id, including the good source's, from its own source
    r.push('evil', raw(i % 63, 64, i % 16 === 0 ? 77 : i, frameOf(247, i)))
    if (i % 500 === 0) {
      const f = goodFrags[i / 500]
      if (f !== undefined) result = r.push('good', f) ?? result
    }
    if (r.bytesFor('evil') > 4096) t.fail('flooder over its budget')
  }
  t.same(result, good, 'the good frame completed')
  t.ok(r.stats().refused > 4000, 'the flood was refused')
  t.ok(r.bytesFor('evil') <= 4096)
})

t.test('the returned frame is a copy owned by the caller', async (t) => {
  const r = new Reassembler()
  const single = raw(0, 1, 1, frameOf(10))
  const out = r.push('s', single)!
  single.fill(0)
  t.same(out, frameOf(10))
  const frags = fragment(frameOf(100), 40, 2)
  let whole: Buffer | null = null
  for (const f of frags) whole = r.push('s', f)
  for (const f of frags) f.fill(0)
  t.same(whole, frameOf(100))
})

t.test('malformed fragments are counted and change nothing', async (t) => {
  const r = new Reassembler()
  r.push('s', raw(0, 2, 1, frameOf(10)))
  const before = r.stats()
  for (const b of [bytes(), bytes(0x13, 0, 2, 0, 1, 0, 0, 0), raw(2, 2, 1, frameOf(3)), raw(0, 2, 1, frameOf(10), 0x12), raw(0, 2, 1, frameOf(10), 0x13, 1)]) {
    t.throws(() => r.push('s', b), MalformedPacketError)
  }
  t.same(r.stats(), { ...before, malformed: 5 })
  t.same(r.push('s', raw(1, 2, 1, frameOf(4))), Buffer.concat([frameOf(10), frameOf(4)]))
})

t.test('TypeError for bad options and arguments', async (t) => {
  const badOptions: unknown[] = [
    { timeoutMs: 0 },
    { timeoutMs: -1 },
    { timeoutMs: NaN },
    { maxBytesPerSource: 0 },
    { maxBytesTotal: 1.5 },
    { maxPendingPerSource: -1 },
    { maxFrameBytes: Infinity },
    { fragmentOverheadBytes: -1 },
    { now: 5 },
  ]
  for (const o of badOptions) t.throws(() => new Reassembler(o as object), TypeError, JSON.stringify(o))
  t.doesNotThrow(() => new Reassembler({ fragmentOverheadBytes: 0 }))
  const r = new Reassembler()
  t.throws(() => r.push(1 as unknown as string, raw(0, 1, 1, frameOf(1))), TypeError)
  t.throws(() => r.push('s', 'x' as unknown as Uint8Array), TypeError)
  t.equal(r.stats().malformed, 0)
})
