/**
 * COBS and CRC-32C against published vectors (numbered tables), plus round trips.
 *  - COBS: the examples of Cheshire & Baker's encoding as listed on Wikipedia ("Consistent
 *    Overhead Byte Stuffing", encoding examples 1..11).
 *  - CRC-32C: the check value of the CRC catalogue (CRC-32/ISCSI) and RFC 3720 appendix B.4.
 */
import t from 'tap'
import fc from 'fast-check'
import { cobsDecode, cobsDecodeInto, cobsEncode, cobsMaxEncodedLength } from '../../firmware-bridge/cobs.js'
import { crc32c, CRC32C_CHECK } from '../../firmware-bridge/crc.js'
import { MalformedPacketError } from '../../appliance/core/errors.js'

const H = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const range = (from: number, to: number) => Buffer.from(Array.from({ length: to - from + 1 }, (_, i) => from + i))

const COBS: [number, Buffer, Buffer][] = [
  [0, Buffer.alloc(0), H('01')],
  [1, H('00'), H('01 01')],
  [2, H('00 00'), H('01 01 01')],
  [3, H('00 11 00'), H('01 02 11 01')],
  [4, H('11 22 00 33'), H('03 11 22 02 33')],
  [5, H('11 22 33 44'), H('05 11 22 33 44')],
  [6, H('11 00 00 00'), H('02 11 01 01 01')],
  [7, range(0x01, 0xfe), Buffer.concat([H('ff'), range(0x01, 0xfe)])],
  [8, range(0x00, 0xfe), Buffer.concat([H('01 ff'), range(0x01, 0xfe)])],
  [9, range(0x01, 0xff), Buffer.concat([H('ff'), range(0x01, 0xfe), H('02 ff')])],
  [10, Buffer.concat([range(0x02, 0xff), H('00')]), Buffer.concat([H('ff'), range(0x02, 0xff), H('01 01')])],
  [11, Buffer.concat([range(0x03, 0xff), H('00 01')]), Buffer.concat([H('fe'), range(0x03, 0xff), H('02 01')])],
]

t.test('COBS encodes and decodes the published examples', async (t) => {
  for (const [n, plain, encoded] of COBS) {
    t.same(cobsEncode(plain), encoded, `example ${n}: encode`)
    t.same(cobsDecode(encoded), plain, `example ${n}: decode`)
    t.ok(encoded.length <= cobsMaxEncodedLength(plain.length), `example ${n}: within the bound`)
    t.notOk(encoded.includes(0), `example ${n}: no zero byte`)
  }
})

t.test('COBS rejects what no encoder produces', async (t) => {
  const bad: [string, Buffer][] = [
    ['code 0', H('00')],
    ['a zero inside', H('03 11 00')],
    ['code runs past the end', H('05 11 22')],
    ['last code runs past the end', H('02 11 04 22')],
  ]
  for (const [what, b] of bad) {
    t.equal(cobsDecodeInto(b, b.length, Buffer.alloc(b.length)), -1, what)
    t.throws(() => cobsDecode(b), MalformedPacketError, what)
  }
})

t.test('COBS round-trips arbitrary bytes, in place too, within the overhead bound', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1200 }), (plain) => {
      const enc = cobsEncode(plain)
      if (enc.includes(0)) return false
      if (enc.length > cobsMaxEncodedLength(plain.length)) return false
      const inPlace = Buffer.from(enc)
      const n = cobsDecodeInto(inPlace, inPlace.length, inPlace)
      return n === plain.length && Buffer.compare(inPlace.subarray(0, n), Buffer.from(plain)) === 0
    }),
    { numRuns: 500 },
  )
})

const CRC: [number, string, Buffer, number][] = [
  [1, 'check "123456789"', Buffer.from('123456789'), 0xe3069283],
  [2, 'empty', Buffer.alloc(0), 0x00000000],
  [3, 'RFC 3720 B.4: 32 bytes of zeros', Buffer.alloc(32, 0x00), 0x8a9136aa],
  [4, 'RFC 3720 B.4: 32 bytes of ones', Buffer.alloc(32, 0xff), 0x62a8ab43],
  [5, 'RFC 3720 B.4: 32 incrementing bytes', range(0x00, 0x1f), 0x46dd794e],
  [6, 'RFC 3720 B.4: 32 decrementing bytes', Buffer.from(range(0x00, 0x1f).reverse()), 0x113fdb5c],
  [7, 'RFC 3720 B.4: an iSCSI read command PDU', H('01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018 28000000 00000000 02000000 00000000'), 0xd9963a56],
]

t.test('CRC-32C matches the catalogue check value and RFC 3720 B.4', async (t) => {
  t.equal(CRC32C_CHECK, 0xe3069283)
  for (const [n, what, data, want] of CRC) t.equal(crc32c(data), want, `${n}: ${what}`)
})

t.test('CRC-32C continues across pieces and honours start/end', async () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(), (data, cut) => {
      const k = data.length === 0 ? 0 : cut % (data.length + 1)
      const whole = crc32c(data)
      return crc32c(data.subarray(k), crc32c(data.subarray(0, k))) === whole && crc32c(data, 0, 0, k) === crc32c(data.subarray(0, k))
    }),
    { numRuns: 500 },
  )
})
