/**
 * KISS framing as RNode uses it: table tests of escaping and decoding, streaming at every split
 * point, and properties over arbitrary bytes (never throws, bounded, resynchronises, counts what it drops).
 */
import t from 'tap'
import fc from 'fast-check'
import { FEND, FESC, TFEND, TFESC } from '../../drivers/lora/rnode/commands.js'
import { KissDecoder, KISS_MAX_FRAME, kissEncode, kissEscape, type KissFrame } from '../../drivers/lora/rnode/kiss.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const show = (fs: KissFrame[]): Array<[number, string]> => fs.map((f) => [f.command, f.data.toString('hex')])

t.test('constants are the Framing.h values', async (t) => {
  t.same([FEND, FESC, TFEND, TFESC], [0xc0, 0xdb, 0xdc, 0xdd])
})

t.test('encode table', async (t) => {
  const cases: Array<[string, number, string, string]> = [
    ['empty data frame', 0x00, '', 'c0 00 c0'],
    ['plain bytes', 0x00, '01 02 03', 'c0 00 010203 c0'],
    ['FEND in data', 0x00, 'c0', 'c0 00 dbdc c0'],
    ['FESC in data', 0x00, 'db', 'c0 00 dbdd c0'],
    ['FEND FESC pair', 0x00, 'c0db', 'c0 00 dbdc dbdd c0'],
    ['TFEND/TFESC are not escaped', 0x00, 'dcdd', 'c0 00 dcdd c0'],
    ['escaped frequency 0xC0DBC0DB', 0x01, 'c0dbc0db', 'c0 01 dbdc dbdd dbdc dbdd c0'],
    ['detect request', 0x08, '73', 'c0 08 73 c0'],
  ]
  for (const [name, cmd, data, wire] of cases) {
    t.equal(kissEncode(cmd, hex(data)).toString('hex'), hex(wire).toString('hex'), name)
    t.same(show(new KissDecoder().push(hex(wire))), [[cmd, hex(data).toString('hex')]], `${name} decodes back`)
  }
  t.equal(kissEscape(hex('00c0dbff')).toString('hex'), '00dbdcdbddff')
  t.throws(() => kissEncode(FEND), TypeError, 'a command byte of FEND cannot be framed')
  t.throws(() => kissEncode(FESC), TypeError)
  t.throws(() => kissEncode(256), TypeError)
  t.throws(() => kissEncode(-1), TypeError)
})

t.test('decode table', async (t) => {
  const cases: Array<[string, string, Array<[number, string]>, Partial<Record<'badEscape' | 'oversize' | 'outOfFrame', number>>]> = [
    ['back-to-back FENDs are empty frames, skipped', 'c0 c0 c0', [], {}],
    ['command only', 'c0 0f c0', [[0x0f, '']], {}],
    ['frames as RNode sends them: each with its own FENDs', 'c0 08 46 c0 c0 50 01 55 c0', [[0x08, '46'], [0x50, '0155']], {}],
    ['runs of FENDs between frames are harmless', 'c0 c0 08 46 c0 c0 c0 50 01 55 c0 c0', [[0x08, '46'], [0x50, '0155']], {}],
    ['noise before the first FEND is counted', '41 42 43 c0 08 46 c0', [[0x08, '46']], { outOfFrame: 3 }],
    ['text between frames is counted, not a frame', 'c0 55 f8 c0 45 72 72 0d 0a c0 08 46 c0', [[0x55, 'f8'], [0x08, '46']], { outOfFrame: 5 }],
    ['a FEND closing a frame does not open the next', 'c0 08 46 c0 50 01 55 c0', [[0x08, '46']], { outOfFrame: 3 }],
    ['bad escape drops that frame only', 'c0 00 db 41 c0 c0 08 46 c0', [[0x08, '46']], { badEscape: 1 }],
    ['FESC right before FEND drops the frame', 'c0 00 01 db c0 c0 08 46 c0', [[0x08, '46']], { badEscape: 1 }],
    ['bytes after a dropped frame are outside any frame', 'c0 00 db 41 c0 08 46 c0 c0 0f c0', [[0x0f, '']], { badEscape: 1, outOfFrame: 2 }],
    ['unterminated frame stays pending', 'c0 00 01 02', [], {}],
    ['escape split over bytes', 'c0 00 db dc db dd c0', [[0x00, 'c0db']], {}],
  ]
  for (const [name, wire, frames, errs] of cases) {
    const d = new KissDecoder()
    t.same(show(d.push(hex(wire))), frames, name)
    t.same(d.errors, { badEscape: 0, oversize: 0, outOfFrame: 0, ...errs }, `${name}: counters`)
  }
})

t.test('oversize frames are dropped up to the next FEND', async (t) => {
  const d = new KissDecoder({ maxFrameBytes: 8 })
  const big = kissEncode(0x00, Buffer.alloc(20, 1))
  const ok = kissEncode(0x00, Buffer.alloc(7, 2))
  t.same(show(d.push(Buffer.concat([big, ok]))), [[0, '02'.repeat(7)]])
  t.equal(d.errors.oversize, 1)
  t.equal(d.pendingBytes, 0)
  t.throws(() => new KissDecoder({ maxFrameBytes: 0 }), TypeError)
  t.equal(new KissDecoder().maxFrameBytes, KISS_MAX_FRAME)
  // An RNode MTU packet full of FEND bytes (twice as long on the wire) still fits the default bound.
  t.same(show(new KissDecoder().push(kissEncode(0, Buffer.alloc(508, 0xc0)))), [[0, 'c0'.repeat(508)]])
})

t.test('streaming: byte by byte and at every split point', async (t) => {
  const frames: Array<[number, Buffer]> = [
    [0x08, hex('46')],
    [0x00, hex('c0 db 00 ff c0')],
    [0x01, hex('33 d3 c0 db')],
    [0x90, hex('02')],
    [0x00, Buffer.alloc(0)],
    [0x0f, hex('01')],
  ]
  const wire = Buffer.concat([hex('ff fe'), ...frames.map(([c, d]) => kissEncode(c, d))])
  const expected = frames.map(([c, d]) => [c, d.toString('hex')])
  const whole = new KissDecoder()
  t.same(show(whole.push(wire)), expected, 'whole stream')
  const bytewise = new KissDecoder()
  const got: KissFrame[] = []
  for (const b of wire) got.push(...bytewise.push(Buffer.from([b])))
  t.same(show(got), expected, 'byte by byte')
  let failures = 0
  for (let i = 0; i <= wire.length; i++) {
    for (let j = i; j <= wire.length; j++) {
      const d = new KissDecoder()
      const out = [...d.push(wire.subarray(0, i)), ...d.push(wire.subarray(i, j)), ...d.push(wire.subarray(j))]
      if (JSON.stringify(show(out)) !== JSON.stringify(expected)) failures++
    }
  }
  t.equal(failures, 0, `all ${((wire.length + 1) * (wire.length + 2)) / 2} two-cut splits decode the same`)
})

const cmdArb = fc.integer({ min: 0, max: 255 }).filter((c) => c !== FEND && c !== FESC)
const frameArb = fc.tuple(cmdArb, fc.uint8Array({ maxLength: 80 }))

t.test('property: arbitrary bytes never throw, stay bounded, are all accounted for', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), fc.integer({ min: 1, max: 64 }), (chunks, max) => {
      const d = new KissDecoder({ maxFrameBytes: max })
      for (const c of chunks) {
        for (const f of d.push(c)) {
          if (f.data.length + 1 > max) return false
          if (f.command === FEND) return false
        }
        if (d.pendingBytes > max) return false
      }
      return true
    }),
    { numRuns: 500 },
  )
  t.pass('bounded')
})

t.test('property: after any garbage, at most one frame is lost and the lost bytes are counted', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), frameArb, frameArb, (garbage, [c1, d1], [c2, d2]) => {
      const d = new KissDecoder()
      d.push(garbage)
      const before = d.errorCount
      const first = kissEncode(c1, d1)
      const out = d.push(Buffer.concat([first, kissEncode(c2, d2)]))
      const last = out[out.length - 1]
      if (last === undefined || last.command !== c2 || !last.data.equals(Buffer.from(d2))) return false
      // The first frame is either decoded or its bytes (all but the FEND that closed the garbage) counted,
      // plus a bad escape when the garbage ended on FESC.
      const firstDecoded = out.length >= 2 && out[out.length - 2]!.command === c1 && out[out.length - 2]!.data.equals(Buffer.from(d1))
      const lost = d.errorCount - before
      return firstDecoded ? lost === 0 : lost === first.length - 2 || lost === first.length - 1
    }),
    { numRuns: 500 },
  )
  t.pass('resyncs')
})

t.test('property: a frame after garbage that ends outside a frame always decodes', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), frameArb, (garbage, [cmd, data]) => {
      const d = new KissDecoder()
      d.push(garbage)
      d.push(Buffer.from([FEND])) // e.g. the FEND of a truncated frame, or a sender's leading FEND
      const out = d.push(kissEncode(cmd, data))
      const last = out[out.length - 1]
      return last !== undefined && last.command === cmd && last.data.equals(Buffer.from(data))
    }),
    { numRuns: 500 },
  )
  t.pass('resyncs')
})

t.test('property: encode then decode in any chunking is the identity', async (t) => {
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 8 }), (frames, cuts) => {
      const wire = Buffer.concat(frames.map(([c, d]) => kissEncode(c, d)))
      const d = new KissDecoder()
      const out: KissFrame[] = []
      let i = 0
      let k = 0
      while (i < wire.length) {
        const n = cuts[k++ % cuts.length]!
        out.push(...d.push(wire.subarray(i, i + n)))
        i += n
      }
      if (d.errorCount !== 0 || out.length !== frames.length) return false
      return frames.every(([c, data], j) => out[j]!.command === c && out[j]!.data.equals(Buffer.from(data)))
    }),
    { numRuns: 500 },
  )
  t.pass('round trip')
})

t.test('property: escaped data never contains FEND', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (data) => !kissEscape(data).includes(FEND)),
    { numRuns: 300 },
  )
  t.pass('no FEND inside frames')
})
