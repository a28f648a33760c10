/**
 * Properties of the raw Ethernet links' pure codecs (drivers/ethernet/frame.ts): any bytes give
 * either a frame or a reason that the links count, never a throw and never a payload of the
 * wrong length; what the encoders build decodes to what went in.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { KairoError } from '../../appliance/core/errors.js'
import {
  decodeEthernetFrame,
  encodeEthernetFrame,
  encodeIpv4Datagram,
  ETH_MIN_FRAME_BYTES,
  ETHERTYPE_KAIRO,
  formatMac,
  isGroupMac,
  normalizeMac,
  parseMac,
  stripIpv4Header,
} from '../../drivers/ethernet/frame.js'

const RUNS = { numRuns: 2000 }
const mac = fc.uint8Array({ minLength: 6, maxLength: 6 })
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'))
const ETH_REASONS = ['short', 'ethertype', 'length']
const IP_REASONS = ['short', 'version', 'ihl', 'length', 'protocol', 'fragment']

/** Checks a property over RUNS random cases: one assertion, with fast-check's counterexample on failure. */
function holds(t: Test, name: string, prop: fc.IPropertyWithHooks<unknown[]> | fc.IProperty<unknown[]>): void {
  try {
    fc.assert(prop as fc.IProperty<unknown[]>, RUNS)
    t.pass(`${name} (${RUNS.numRuns} cases)`)
  } catch (err) {
    t.fail(`${name}: ${(err as Error).message}`)
  }
}

/** Runs `fn`; a throw is only acceptable as a KairoError (and the codecs should not throw at all). */
function noForeignThrow<T>(fn: () => T): T | 'threw' {
  try {
    return fn()
  } catch (err) {
    if (!(err instanceof KairoError)) throw err
    return 'threw'
  }
}

t.test('decodeEthernetFrame: any bytes give a frame of the declared length or a counted reason', async (t) => {
  holds(
    t,
    'any bytes: a frame of the declared length, or short/ethertype/length',
    fc.property(fc.uint8Array({ maxLength: 1600 }), (bytes) => {
      const d = noForeignThrow(() => decodeEthernetFrame(bytes))
      if (d === 'threw') return true
      if (!d.ok) return ETH_REASONS.includes(d.reason)
      const declared = (bytes[14]! << 8) | bytes[15]!
      return d.payload.length === declared && 16 + declared <= bytes.length && d.src.length === 6 && d.dst.length === 6 && d.etherType === ETHERTYPE_KAIRO
    }),
  )
  // Frames that do carry our EtherType: the length field is the only thing between ok and 'length'.
  holds(
    t,
    'our EtherType: the length field alone decides ok or length',
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 1600 }), fc.nat(0xffff), (bytes, len) => {
      const b = Buffer.from(bytes)
      b.writeUInt16BE(ETHERTYPE_KAIRO, 12)
      b.writeUInt16BE(len, 14)
      const d = decodeEthernetFrame(b)
      if (16 + len <= b.length) return d.ok && d.payload.length === len && d.payload.equals(b.subarray(16, 16 + len))
      return !d.ok && d.reason === 'length'
    }),
  )
  t.same(decodeEthernetFrame(new Uint8Array(15)), { ok: false, reason: 'short' })
  t.same(decodeEthernetFrame(new Uint8Array(60)), { ok: false, reason: 'ethertype' })
})

t.test('encodeEthernetFrame → decodeEthernetFrame is the identity; short frames are padded to 60 bytes', async (t) => {
  holds(
    t,
    'encode then decode gives back dst, src and payload; padding is zeros up to 60 bytes',
    fc.property(mac, mac, fc.uint8Array({ maxLength: 1498 }), (dst, src, payload) => {
      const wire = encodeEthernetFrame({ dst, src, payload })
      const d = decodeEthernetFrame(wire)
      return (
        wire.length === Math.max(ETH_MIN_FRAME_BYTES, 16 + payload.length) &&
        d.ok &&
        d.dst.equals(dst) &&
        d.src.equals(src) &&
        Buffer.from(payload).equals(d.payload) &&
        wire.subarray(16 + payload.length).every((x) => x === 0)
      )
    }),
  )
  // Padding the NIC or a switch adds after our bytes changes nothing.
  holds(
    t,
    'bytes after the frame (NIC padding) change nothing',
    fc.property(mac, mac, fc.uint8Array({ minLength: 1, maxLength: 100 }), fc.uint8Array({ maxLength: 64 }), (dst, src, payload, junk) => {
      const d = decodeEthernetFrame(Buffer.concat([encodeEthernetFrame({ dst, src, payload }), junk]))
      return d.ok && Buffer.from(payload).equals(d.payload)
    }),
  )
  t.throws(() => encodeEthernetFrame({ dst: 'nope', src: new Uint8Array(6), payload: new Uint8Array(1) }), TypeError)
  t.throws(() => encodeEthernetFrame({ dst: new Uint8Array(6), src: new Uint8Array(6), payload: new Uint8Array(0x10000) }), TypeError)
})

t.test('MAC strings', async (t) => {
  holds(
    t,
    'formatMac/parseMac/normalizeMac round trip',
    fc.property(mac, (m) => {
      const s = formatMac(m)
      return /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(s) && parseMac(s)!.equals(m) && normalizeMac(s.toUpperCase().replaceAll(':', '-')) === s
    }),
  )
  holds(
    t,
    'parseMac of any string: a MAC or undefined',
    fc.property(fc.string({ maxLength: 20 }), (s) => {
      const m = noForeignThrow(() => parseMac(s))
      return m === undefined || (m !== 'threw' && m.length === 6)
    }),
  )
  t.equal(parseMac('aa:bb:cc:dd:ee'), undefined)
  t.equal(parseMac('aa:bb:cc:dd:ee:fg'), undefined)
  t.ok(isGroupMac(parseMac('ff:ff:ff:ff:ff:ff')!))
  t.ok(isGroupMac(parseMac('01:00:5e:00:00:01')!))
  t.notOk(isGroupMac(parseMac('02:00:00:00:00:01')!))
})

t.test('stripIpv4Header: any bytes give a payload of the declared length or a counted reason', async (t) => {
  holds(
    t,
    'any bytes: a payload of total length - header length, or a reason',
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.option(fc.nat(255), { nil: undefined }), (bytes, proto) => {
      const d = noForeignThrow(() => stripIpv4Header(bytes, proto))
      if (d === 'threw') return true
      if (!d.ok) return IP_REASONS.includes(d.reason)
      const b = Buffer.from(bytes)
      const ihl = (b[0]! & 0x0f) * 4
      const total = b.readUInt16BE(2)
      return d.payload.length === total - ihl && total <= b.length && ihl >= 20 && (proto === undefined || d.protocol === proto)
    }),
  )
  // Mostly-valid headers, so that every branch is taken, not only 'version'.
  const reasons = new Set<string>()
  holds(
    t,
    'mostly valid headers: lengths right when ok, a known reason otherwise',
    fc.property(
      fc.uint8Array({ minLength: 20, maxLength: 200 }),
      fc.integer({ min: 0, max: 15 }),
      fc.oneof(fc.constant('fits' as const), fc.integer({ min: 0, max: 220 })),
      fc.nat(),
      fc.constantFrom('none', 'df', 'mf', 'offset'),
      fc.boolean(),
      fc.boolean(),
      (bytes, ihlWords, totalPick, seed, frag, v4, ours) => {
        const b = Buffer.from(bytes)
        b[0] = (v4 ? 0x40 : b[0]! & 0xf0) | ihlWords
        const ihl = ihlWords * 4
        const total = totalPick === 'fits' ? (ihl <= b.length ? ihl + (seed % (b.length - ihl + 1)) : b.length) : totalPick
        b.writeUInt16BE(total, 2)
        b.writeUInt16BE({ none: 0, df: 0x4000, mf: 0x2000, offset: 1 + (seed % 0x1fff) }[frag], 6)
        if (ours) b[9] = 253
        const d = stripIpv4Header(b, 253)
        reasons.add(d.ok ? 'ok' : d.reason)
        if (!d.ok) return IP_REASONS.includes(d.reason)
        return d.payload.length === total - ihl && ihlWords >= 5 && total <= b.length
      },
    ),
  )
  t.same([...reasons].sort(), ['ok', ...IP_REASONS.filter((r) => r !== 'short')].sort(), 'every outcome was reached')
})

t.test('encodeIpv4Datagram → stripIpv4Header is the identity (addresses, protocol, payload)', async (t) => {
  holds(
    t,
    'encodeIpv4Datagram then stripIpv4Header gives back addresses, protocol and payload',
    fc.property(ipv4, ipv4, fc.uint8Array({ maxLength: 1480 }), fc.nat(10), fc.uint8Array({ maxLength: 64 }), (src, dst, payload, optWords, pad) => {
      const dg = encodeIpv4Datagram({ src, dst, payload, options: new Uint8Array(optWords * 4) })
      const d = stripIpv4Header(Buffer.concat([dg, pad]), 253)
      return d.ok && d.src === src && d.dst === dst && d.protocol === 253 && Buffer.from(payload).equals(d.payload)
    }),
  )
  const dg = encodeIpv4Datagram({ src: '198.18.0.1', dst: '198.18.0.2', payload: Buffer.from('x') })
  t.same(stripIpv4Header(dg, 17), { ok: false, reason: 'protocol' })
  const frag = Buffer.from(dg)
  frag.writeUInt16BE(0x2000, 6)
  t.same(stripIpv4Header(frag), { ok: false, reason: 'fragment' })
  t.same(stripIpv4Header(dg.subarray(0, 20)), { ok: false, reason: 'length' })
  t.throws(() => encodeIpv4Datagram({ src: '1.2.3', dst: '1.2.3.4', payload: Buffer.alloc(1) }), TypeError)
})
