import t from 'tap'
import fc from 'fast-check'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { ResourceLimitError } from '../../appliance/core/errors.js'
import { decodeInboxRecord, Inbox, INBOX_FILE } from '../../appliance/store/inbox.js'
import { FileSpy, tempDir } from './helpers.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const id = (n: number): string => n.toString(16).padStart(32, '0')
const HOUR = 3_600_000

function clock(start = 1_700_000_000_000): { now: () => number; advance(ms: number): void } {
  let t = start
  return { now: () => t, advance: (ms) => void (t += ms) }
}

t.test('exactly once: fresh, then duplicates; cursors ascend; list by cursor', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const ib = await Inbox.open(dir, { retainMs: HOUR, maxMessages: 100, now: c.now })
  t.equal(statSync(join(dir, INBOX_FILE)).mode & 0o777, 0o600)
  const r1 = await ib.accept({ id: id(1), from: A, type: 3, payload: Buffer.from('one') })
  const r2 = await ib.accept({ id: id(1), from: B, type: 3, payload: Buffer.from('same id, other sender') })
  const dup = await ib.accept({ id: id(1), from: A, type: 3, payload: Buffer.from('one again') })
  c.advance(10)
  const r3 = await ib.accept({ id: id(2), from: A, type: 4, payload: Buffer.from('two') })
  t.equal(r1.fresh, true)
  t.equal(r2.fresh, true)
  t.equal(dup.fresh, false)
  t.equal(dup.message, r1.message, 'a duplicate returns the stored message')
  t.equal(dup.message.payload.toString(), 'one')
  t.same([r1.message.cursor, r2.message.cursor, r3.message.cursor], [1, 2, 3])
  t.match(r3.message, { id: id(2), from: A, type: 4, receivedAt: c.now() })
  t.same(ib.list(0, 10).map((m) => m.cursor), [1, 2, 3])
  t.same(ib.list(1, 10).map((m) => m.cursor), [2, 3])
  t.same(ib.list(1, 1).map((m) => m.cursor), [2])
  t.same(ib.list(3, 10), [])
  t.same(ib.list(0.5, 0), [])
  t.same(ib.stats(), { messages: 3, duplicates: 1, accepted: 3, evicted: 0, remembered: 3 })
  t.throws(() => ib.list(0, -1), TypeError)
  await t.rejects(ib.accept({ id: '', from: A, type: 1, payload: Buffer.alloc(0) }), TypeError)
  await ib.close()
})

t.test('concurrent accepts of one (from, id) yield exactly one fresh', async (t) => {
  const dir = tempDir(t)
  const spy = new FileSpy()
  const ib = await Inbox.open(dir, { retainMs: HOUR, maxMessages: 100, journal: { wrapFile: spy.wrap } })
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => ib.accept({ id: id(i % 4), from: A, type: 1, payload: Buffer.from([i]) })))
  t.equal(results.filter((r) => r.fresh).length, 4, 'one fresh per distinct id')
  for (let k = 0; k < 4; k++) {
    const same = results.filter((r) => r.message.id === id(k))
    t.equal(new Set(same.map((r) => r.message.cursor)).size, 1, `id ${k}: one cursor for all 5 answers`)
  }
  t.equal(ib.stats().duplicates, 16)
  t.same(ib.list(0, 100).map((m) => m.payload[0]), [0, 1, 2, 3], 'the first payload of each is kept')
  t.ok(spy.datasyncs <= 2, `${spy.datasyncs} fdatasyncs for 4 messages accepted together`)
  await ib.close()
  const again = await Inbox.open(dir, { retainMs: HOUR, maxMessages: 100 })
  t.equal(again.journal.records, 4, 'duplicates wrote nothing')
  await again.close()
})

t.test('across reopen: duplicates still caught, cursors continue, list unchanged', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const opts = { retainMs: HOUR, maxMessages: 100, now: c.now }
  const ib = await Inbox.open(dir, opts)
  for (let i = 0; i < 5; i++) await ib.accept({ id: id(i), from: A, type: 1, payload: Buffer.from(`m${i}`) })
  const before = ib.list(0, 100)
  await ib.close()
  const again = await Inbox.open(dir, opts)
  t.same(again.list(0, 100), before)
  const dup = await again.accept({ id: id(3), from: A, type: 1, payload: Buffer.from('retry') })
  t.equal(dup.fresh, false)
  t.equal(dup.message.payload.toString(), 'm3')
  const next = await again.accept({ id: id(9), from: A, type: 1, payload: Buffer.from('new') })
  t.equal(next.message.cursor, 6)
  await again.close()
})

t.test('cursors survive a compaction that drops every message', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const opts = { retainMs: 1000, maxMessages: 100, now: c.now, compactMinBytes: 0 }
  const ib = await Inbox.open(dir, { ...opts, compactMinBytes: 1 << 30 })
  for (let i = 0; i < 5; i++) await ib.accept({ id: id(i), from: A, type: 1, payload: Buffer.alloc(100) })
  await ib.close()
  c.advance(1000)
  const again = await Inbox.open(dir, opts)
  t.equal(again.journal.counters.rewrites, 1, 'compacted at open')
  t.equal(again.journal.records, 1, 'only the head record is left')
  t.same(again.list(0, 10), [])
  await again.close()
  const third = await Inbox.open(dir, opts)
  const r = await third.accept({ id: id(0), from: A, type: 1, payload: Buffer.from('retry after the window') })
  t.equal(r.fresh, true, 'the window is over: the id is new again')
  t.equal(r.message.cursor, 6, 'cursor continues after 5')
  await third.close()
})

t.test('retention: messages and ids are forgotten retainMs after receipt', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const ib = await Inbox.open(dir, { retainMs: 1000, maxMessages: 100, now: c.now })
  await ib.accept({ id: id(1), from: A, type: 1, payload: Buffer.from('old') })
  c.advance(600)
  await ib.accept({ id: id(2), from: A, type: 1, payload: Buffer.from('new') })
  c.advance(399)
  t.equal((await ib.accept({ id: id(1), from: A, type: 1, payload: Buffer.from('dup') })).fresh, false)
  t.equal(ib.list(0, 10).length, 2)
  c.advance(1)
  t.same(ib.list(0, 10).map((m) => m.id), [id(2)])
  t.match(ib.stats(), { messages: 1, remembered: 1 })
  const again = await ib.accept({ id: id(1), from: A, type: 1, payload: Buffer.from('late retry') })
  t.equal(again.fresh, true)
  t.equal(again.message.cursor, 3)
  await ib.close()
})

t.test('over maxMessages the oldest payloads go, their ids stay remembered (also across reopen and compaction)', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const ib = await Inbox.open(dir, { retainMs: HOUR, maxMessages: 3, now: c.now })
  for (let i = 1; i <= 5; i++) await ib.accept({ id: id(i), from: A, type: 7, payload: Buffer.from(`m${i}`) })
  t.same(ib.list(0, 10).map((m) => m.cursor), [3, 4, 5])
  t.match(ib.stats(), { messages: 3, evicted: 2, remembered: 5 })
  const dup = await ib.accept({ id: id(1), from: A, type: 7, payload: Buffer.from('retry') })
  t.equal(dup.fresh, false)
  t.match(dup.message, { cursor: 1, id: id(1), from: A, type: 7 })
  t.equal(dup.message.payload.length, 0, 'payload no longer kept')
  await ib.close()
  for (const compactMinBytes of [1 << 30, 0]) {
    const again = await Inbox.open(dir, { retainMs: HOUR, maxMessages: 3, now: c.now, compactMinBytes })
    t.same(again.list(0, 10).map((m) => m.payload.toString()), ['m3', 'm4', 'm5'])
    t.equal((await again.accept({ id: id(2), from: A, type: 7, payload: Buffer.alloc(1) })).fresh, false, `remembered (compactMinBytes ${compactMinBytes})`)
    await again.close()
  }
})

t.test('too many remembered ids: refused, not forgotten', async (t) => {
  const ib = await Inbox.open(tempDir(t), { retainMs: HOUR, maxMessages: 2, maxRemembered: 3 })
  for (let i = 0; i < 3; i++) await ib.accept({ id: id(i), from: A, type: 1, payload: Buffer.alloc(1) })
  await t.rejects(ib.accept({ id: id(9), from: A, type: 1, payload: Buffer.alloc(1) }), { name: 'ResourceLimitError', message: /3 message ids remembered \(limit 3/ })
  t.equal((await ib.accept({ id: id(0), from: A, type: 1, payload: Buffer.alloc(1) })).fresh, false, 'duplicates are still answered')
  await t.rejects(ib.accept({ id: id(9), from: A, type: 1, payload: Buffer.alloc(1) }), ResourceLimitError)
  await ib.close()
})

t.test('property: random accepts of a small id pool, with reopens and compactions → each id fresh once, cursors strictly increase', async (t) => {
  const root = tempDir(t)
  let n = 0
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.record({ op: fc.constant('accept' as const), keys: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 6 }) }), fc.constant({ op: 'reopen' as const })), { minLength: 1, maxLength: 15 }),
      fc.boolean(),
      async (steps, compactEagerly) => {
        const dir = join(root, `r${n++}`)
        const opts = { retainMs: HOUR, maxMessages: 4, compactMinBytes: compactEagerly ? 0 : 1 << 30 }
        let ib = await Inbox.open(dir, opts)
        const fresh = new Map<number, number>()
        let lastCursor = 0
        for (const s of steps) {
          if (s.op === 'reopen') {
            await ib.close()
            ib = await Inbox.open(dir, opts)
            continue
          }
          const rs = await Promise.all(s.keys.map((k) => ib.accept({ id: id(k), from: A, type: 1, payload: Buffer.from([k]) })))
          for (const r of rs) {
            const k = r.message.payload.length > 0 ? r.message.payload[0]! : Number.parseInt(r.message.id, 16)
            if (r.fresh) {
              fresh.set(k, (fresh.get(k) ?? 0) + 1)
              if (r.message.cursor <= lastCursor) throw new Error(`cursor ${r.message.cursor} after ${lastCursor}`)
              lastCursor = r.message.cursor
            }
          }
          const listed = ib.list(0, 100).map((m) => m.cursor)
          if (listed.some((c, i) => i > 0 && c <= listed[i - 1]!)) throw new Error(`list not ascending: ${listed}`)
        }
        await ib.close()
        for (const [k, count] of fresh) if (count !== 1) throw new Error(`id ${k} was fresh ${count} times`)
      },
    ),
    { numRuns: 60 },
  )
  t.pass('60 random histories')
})

t.test('property: decodeInboxRecord never throws', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.constantFrom(1, 2, 3), (bytes, kind) => {
      const b = Buffer.from(bytes)
      if (b.length > 1) {
        b[0] = kind
        b[1] = 1
      }
      const r = decodeInboxRecord(b)
      if (!['message', 'remembered', 'head', 'unknown'].includes(r.kind)) throw new Error(r.kind)
    }),
    { numRuns: 3000 },
  )
  t.pass()
})
