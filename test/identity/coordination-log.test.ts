import t from 'tap'
import fc from 'fast-check'
import { appendFileSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import {
  COORDINATION_EVENTS,
  CoordinationLog,
  coordinationFileName,
  dayInZone,
  formatCoordinationLine,
  formatIsoInZone,
  parseCoordinationLine,
  parseCoordinationLog,
} from '../../appliance/identity/coordination-log.js'
import { tempDir } from './helpers.js'

const ISO_LOCAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$/

t.test('formatIsoInZone: JST, with milliseconds and the offset', async (t) => {
  const ms = Date.UTC(2026, 10, 23, 9, 4, 5, 123)
  t.equal(formatIsoInZone(ms, 'Asia/Tokyo'), '2026-11-23T18:04:05.123+09:00')
  t.equal(formatIsoInZone(ms, 'UTC'), '2026-11-23T09:04:05.123+00:00')
  t.equal(formatIsoInZone(ms, 'America/St_Johns'), '2026-11-23T05:34:05.123-03:30')
  t.equal(formatIsoInZone(ms, 'Asia/Kathmandu'), '2026-11-23T14:49:05.123+05:45')
  t.equal(formatIsoInZone(0, 'Asia/Tokyo'), '1970-01-01T09:00:00.000+09:00')
  t.equal(formatIsoInZone(-1, 'UTC'), '1969-12-31T23:59:59.999+00:00', 'negative times round down')
})

t.test('the day boundary in JST is 15:00 UTC', async (t) => {
  const before = Date.UTC(2026, 10, 23, 14, 59, 59, 999)
  const after = before + 1
  t.equal(formatIsoInZone(before, 'Asia/Tokyo'), '2026-11-23T23:59:59.999+09:00')
  t.equal(formatIsoInZone(after, 'Asia/Tokyo'), '2026-11-24T00:00:00.000+09:00')
  t.equal(coordinationFileName(before, 'Asia/Tokyo'), 'CoordinationNode_20261123.log')
  t.equal(coordinationFileName(after, 'Asia/Tokyo'), 'CoordinationNode_20261124.log')
  t.equal(dayInZone(after, 'UTC'), '20261123', 'still the 23rd in UTC')
  // New year in JST.
  t.equal(coordinationFileName(Date.UTC(2026, 11, 31, 15), 'Asia/Tokyo'), 'CoordinationNode_20270101.log')
})

t.test('DST in Europe/Berlin: the offset changes with the clock, instants stay exact', async (t) => {
  // Spring forward 2026-03-29 01:00 UTC: 02:00 CET becomes 03:00 CEST.
  t.equal(formatIsoInZone(Date.UTC(2026, 2, 29, 0, 59, 59, 999), 'Europe/Berlin'), '2026-03-29T01:59:59.999+01:00')
  t.equal(formatIsoInZone(Date.UTC(2026, 2, 29, 1, 0, 0, 0), 'Europe/Berlin'), '2026-03-29T03:00:00.000+02:00')
  // Fall back 2026-10-25 01:00 UTC: 02:30 local happens twice, with different offsets.
  const first = Date.UTC(2026, 9, 25, 0, 30)
  const second = Date.UTC(2026, 9, 25, 1, 30)
  t.equal(formatIsoInZone(first, 'Europe/Berlin'), '2026-10-25T02:30:00.000+02:00')
  t.equal(formatIsoInZone(second, 'Europe/Berlin'), '2026-10-25T02:30:00.000+01:00')
  t.equal(Date.parse(formatIsoInZone(first, 'Europe/Berlin')), first)
  t.equal(Date.parse(formatIsoInZone(second, 'Europe/Berlin')), second)
  // The local midnight after a DST change is still the day boundary of the file.
  t.equal(coordinationFileName(Date.UTC(2026, 2, 28, 22, 59, 59, 999), 'Europe/Berlin'), 'CoordinationNode_20260328.log')
  t.equal(coordinationFileName(Date.UTC(2026, 2, 28, 23), 'Europe/Berlin'), 'CoordinationNode_20260329.log')
  t.equal(coordinationFileName(Date.UTC(2026, 2, 29, 21, 59, 59, 999), 'Europe/Berlin'), 'CoordinationNode_20260329.log')
  t.equal(coordinationFileName(Date.UTC(2026, 2, 29, 22), 'Europe/Berlin'), 'CoordinationNode_20260330.log')
})

t.test('property: the text parses back to the same instant, and its date is the file day', async (t) => {
  const zones = ['Asia/Tokyo', 'Europe/Berlin', 'America/New_York', 'UTC', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham', 'America/Santiago']
  fc.assert(
    fc.property(fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2200, 0, 1) }), fc.constantFrom(...zones), (ms, zone) => {
      const text = formatIsoInZone(ms, zone)
      return ISO_LOCAL.test(text) && Date.parse(text) === ms && dayInZone(ms, zone) === text.slice(0, 10).replace(/-/g, '')
    }),
    { numRuns: 2000 },
  )
  t.pass()
})

t.test('time zone names are checked; the error names the zone', async (t) => {
  for (const zone of ['Mars/Olympus', '', '+09:00', 'Asia/Tokio']) {
    t.throws(() => formatIsoInZone(0, zone), { name: 'RangeError', message: `unknown time zone ${JSON.stringify(zone)}: expected an IANA name such as Asia/Tokyo, Europe/Berlin or UTC` })
    t.throws(() => new CoordinationLog({ dir: '/nonexistent', timeZone: zone }), new RegExp(`unknown time zone ${JSON.stringify(zone).replace(/[+]/g, '\\+')}`))
  }
  t.throws(() => formatIsoInZone(Number.NaN, 'UTC'), /outside the years 0001\.\.9999/)
  t.throws(() => formatIsoInZone(Date.UTC(10000, 0, 1), 'UTC'), /outside the years 0001\.\.9999/)
})

t.test('write: one line per event, in the file of its JST day; 0600 in a 0700 directory', async (t) => {
  const dir = join(tempDir(t), 'coord')
  let now = Date.UTC(2026, 10, 23, 14, 59, 59, 500)
  const log = new CoordinationLog({ dir, now: () => now })
  t.equal(log.timeZone, 'Asia/Tokyo', 'JST by default')
  const key = Buffer.alloc(32, 0xab)
  const l1 = log.write('peer_admitted', { node_id: 'ab'.repeat(16), uuid: null, mesh_ip: '100.64.7.12', key })
  t.equal(l1, `2026-11-23T23:59:59.500+09:00 peer_admitted {"node_id":"${'ab'.repeat(16)}","uuid":null,"mesh_ip":"100.64.7.12","key":"${'ab'.repeat(32)}"}`)
  now += 250
  const l2 = log.write('peer_refused', { node_id: 'cd'.repeat(16), reason: 'key_changed', note: 'two\nlines', skipped: undefined, n: 10n })
  now += 250
  const l3 = log.write('ip_assigned', { mesh_ip: '100.64.9.9', attempt: 0 })
  t.same(readdirSync(dir).sort(), ['CoordinationNode_20261123.log', 'CoordinationNode_20261124.log'])
  t.equal(statSync(dir).mode & 0o777, 0o700)
  const f23 = join(dir, 'CoordinationNode_20261123.log')
  const f24 = join(dir, 'CoordinationNode_20261124.log')
  t.equal(statSync(f23).mode & 0o777, 0o600)
  t.equal(readFileSync(f23, 'utf8'), `${l1}\n${l2}\n`)
  t.equal(readFileSync(f24, 'utf8'), `${l3}\n`)
  t.equal(l2, `2026-11-23T23:59:59.750+09:00 peer_refused {"node_id":"${'cd'.repeat(16)}","reason":"key_changed","note":"two\\nlines","n":"10"}`)
  t.equal(log.fileFor(), f24)
  const parsed = parseCoordinationLog(f23, readFileSync(f23, 'utf8'))
  t.same(parsed.bad, [])
  t.same(parsed.lines.map((l) => [l.event, l.ms]), [['peer_admitted', Date.UTC(2026, 10, 23, 14, 59, 59, 500)], ['peer_refused', Date.UTC(2026, 10, 23, 14, 59, 59, 750)]])
  t.equal(parsed.lines[1]!.fields.note, 'two\nlines')
  for (const e of COORDINATION_EVENTS) log.write(e, {})
  t.equal(readFileSync(f24, 'utf8').trim().split('\n').length, 1 + COORDINATION_EVENTS.length)
})

t.test('a torn last line (crash mid-write) is closed off by the next writer', async (t) => {
  const dir = tempDir(t)
  const now = Date.UTC(2026, 0, 1, 3)
  const file = join(dir, 'CoordinationNode_20260101.log')
  appendFileSync(file, '2026-01-01T12:00:00.000+09:00 peer_admitted {"node_id":"ab"}\n2026-01-01T12:00:01.000+09:00 peer_rem')
  const log = new CoordinationLog({ dir, now: () => now })
  log.write('peer_removed', { node_id: 'ab' })
  log.write('peer_removed', { node_id: 'cd' })
  const { lines, bad } = parseCoordinationLog(file, readFileSync(file, 'utf8'))
  t.same(lines.map((l) => l.fields.node_id), ['ab', 'ab', 'cd'])
  t.same(bad, [{ file, line: 2, reason: 'not a coordination line (expected "<ISO timestamp> <event> <JSON object>")' }])
})

t.test('bad events and fields are TypeErrors', async (t) => {
  const log = new CoordinationLog({ dir: tempDir(t), timeZone: 'Europe/Berlin' })
  t.throws(() => log.write('Peer Admitted', {}), /coordination event must match \[a-z\]\[a-z0-9_\]\*/)
  t.throws(() => log.write('', {}), TypeError)
  t.throws(() => log.write('x', null as unknown as Record<string, unknown>), /fields must be an object/)
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  t.throws(() => log.write('x', cyclic), /coordination event x: fields cannot be written as JSON/)
})

t.test('property: lines round-trip; fuzz: the parser throws only SyntaxError', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2200, 0, 1) }),
      fc.constantFrom('Asia/Tokyo', 'Europe/Berlin', 'UTC'),
      fc.constantFrom(...COORDINATION_EVENTS),
      fc.dictionary(fc.string(), fc.jsonValue()),
      (ms, zone, event, fields) => {
        const line = formatCoordinationLine(ms, zone, event, fields)
        const p = parseCoordinationLine(line)
        return !line.includes('\n') && p.ms === ms && p.event === event && JSON.stringify(p.fields) === JSON.stringify(JSON.parse(JSON.stringify(fields)))
      },
    ),
  )
  const valid = '2026-11-23T18:04:05.123+09:00 peer_admitted {"node_id":"ab"}'
  const mutated = fc.tuple(fc.nat(valid.length), fc.nat(3), fc.string({ maxLength: 3 })).map(([at, del, ins]) => valid.slice(0, at) + ins + valid.slice(at + del))
  fc.assert(
    fc.property(fc.oneof(mutated, fc.string()), (line) => {
      try {
        const p = parseCoordinationLine(line)
        return Number.isFinite(p.ms) && typeof p.fields === 'object'
      } catch (err) {
        return err instanceof SyntaxError
      }
    }),
    { numRuns: 2000 },
  )
  t.pass()
})
