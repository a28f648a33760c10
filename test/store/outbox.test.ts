import t from 'tap'
import fc from 'fast-check'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ResourceLimitError } from '../../appliance/core/errors.js'
import { Journal } from '../../appliance/store/journal.js'
import { decodeOutboxRecord, Outbox, OUTBOX_FILE, type OutboxLimits } from '../../appliance/store/outbox.js'
import { FileSpy, tempDir } from './helpers.js'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)
const LIMITS: OutboxLimits = { maxMessages: 1000, maxBytes: 1 << 20, defaultTtlMs: 60_000 }

function clock(start = 1_700_000_000_000): { now: () => number; advance(ms: number): void } {
  let t = start
  return { now: () => t, advance: (ms) => void (t += ms) }
}

t.test('accept is durable: pending, get, stats, and the same after reopen', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const ob = await Outbox.open(dir, LIMITS, { now: c.now })
  t.equal(statSync(join(dir, OUTBOX_FILE)).mode & 0o777, 0o600)
  const m1 = await ob.accept({ to: A.toUpperCase(), type: 3, flags: 1, payload: Buffer.from('hello') })
  c.advance(5)
  const m2 = await ob.accept({ to: B, type: 4, payload: Buffer.from('world'), ttlMs: 1000 })
  const m3 = await ob.accept({ to: A, type: 5, payload: Buffer.alloc(0) })
  t.match(m1.id, /^[0-9a-f]{32}$/)
  t.not(m1.id, m2.id)
  t.match(m1, { to: A, type: 3, flags: 1, acceptedAt: c.now() - 5, expiresAt: c.now() - 5 + 60_000, attempts: 0 })
  t.match(m2, { flags: 0, expiresAt: c.now() + 1000 })
  t.same(ob.pending().map((m) => m.id), [m1.id, m2.id, m3.id], 'acceptance order')
  t.same(ob.pending(A).map((m) => m.id), [m1.id, m3.id])
  t.same(ob.pending(B.toUpperCase()).map((m) => m.id), [m2.id])
  ob.attempted(m1.id)
  ob.attempted(m1.id)
  ob.attempted('nope')
  t.equal(ob.get(m1.id)?.attempts, 2)
  t.match(ob.stats(), { messages: 3, bytes: 10, limits: LIMITS, accepted: 3, delivered: 0, expired: 0, refused: 0 })
  await ob.close()

  const again = await Outbox.open(dir, LIMITS, { now: c.now })
  t.same(again.pending().map((m) => [m.id, m.to, m.type, m.flags, m.payload.toString(), m.acceptedAt, m.expiresAt, m.attempts]), [
    [m1.id, A, 3, 1, 'hello', m1.acceptedAt, m1.expiresAt, 0],
    [m2.id, B, 4, 0, 'world', m2.acceptedAt, m2.expiresAt, 0],
    [m3.id, A, 5, 0, '', m3.acceptedAt, m3.expiresAt, 0],
  ])
  t.same(again.recovered, [])
  t.match(again.stats(), { messages: 3, bytes: 10, accepted: 0 })
  await again.close()
})

t.test('bad arguments are TypeErrors', async (t) => {
  const ob = await Outbox.open(tempDir(t), LIMITS)
  await t.rejects(ob.accept({ to: 'gw2', type: 1, payload: Buffer.alloc(1) }), TypeError)
  await t.rejects(ob.accept({ to: A, type: 70000, payload: Buffer.alloc(1) }), TypeError)
  await t.rejects(ob.accept({ to: A, type: 1, payload: Buffer.alloc(1), ttlMs: 0 }), TypeError)
  await t.rejects(ob.accept({ to: A, type: 1, payload: 'text' as unknown as Buffer }), TypeError)
  await t.rejects(Outbox.open(tempDir(t), { maxMessages: 0, maxBytes: 1, defaultTtlMs: 1 }), TypeError)
  await ob.close()
})

t.test('limits: a full outbox refuses with the numbers, and drops nothing', async (t) => {
  const dir = tempDir(t)
  const limits = { maxMessages: 3, maxBytes: 100, defaultTtlMs: 60_000 }
  const ob = await Outbox.open(dir, limits)
  for (let i = 0; i < 3; i++) await ob.accept({ to: A, type: 1, payload: Buffer.alloc(10, i) })
  const err = await ob.accept({ to: B, type: 1, payload: Buffer.alloc(1) }).catch((e: unknown) => e)
  t.type(err, ResourceLimitError)
  t.equal((err as ResourceLimitError).code, 'ELIMIT')
  t.equal((err as Error).message, `outbox full: 3 messages / 30 bytes queued (limit 3 messages, 100 bytes); message to ${B} refused`)
  t.equal(ob.pending().length, 3)
  t.equal(ob.stats().refused, 1)

  // Bytes: 30 queued + 71 > 100.
  const d = await ob.delivered(ob.pending()[0]!.id)
  t.ok(d)
  await t.rejects(ob.accept({ to: B, type: 1, payload: Buffer.alloc(81) }), { name: 'ResourceLimitError', message: `outbox full: 2 messages / 20 bytes queued (limit 3 messages, 100 bytes); message to ${B} refused` })
  await ob.accept({ to: B, type: 1, payload: Buffer.alloc(80) })
  t.match(ob.stats(), { messages: 3, bytes: 100, refused: 2 })
  await t.rejects(ob.accept({ to: A, type: 1, payload: Buffer.alloc(101) }), { name: 'ResourceLimitError', message: /a 101-byte message to a+: larger than the limit of 100 bytes/ })
  await ob.close()

  // Lowered limits at reopen keep every queued message (and refuse new ones).
  const small = await Outbox.open(dir, { maxMessages: 1, maxBytes: 10, defaultTtlMs: 1 })
  t.equal(small.pending().length, 3)
  await t.rejects(small.accept({ to: A, type: 1, payload: Buffer.alloc(1) }), ResourceLimitError)
  await small.close()
})

t.test('limits hold under concurrent accepts (in-flight ones count)', async (t) => {
  const dir = tempDir(t)
  const ob = await Outbox.open(dir, { maxMessages: 5, maxBytes: 1 << 20, defaultTtlMs: 60_000 })
  const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => ob.accept({ to: A, type: 1, payload: Buffer.from([i]) })))
  const ok = results.filter((r) => r.status === 'fulfilled')
  const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof ResourceLimitError)
  t.equal(ok.length, 5)
  t.equal(refused.length, 7)
  t.equal(ob.stats().refused, 7)
  await ob.close()
  const again = await Outbox.open(dir, LIMITS)
  t.equal(again.pending().length, 5)
  await again.close()
})

t.test('TTL: expired messages leave pending, expire() removes and returns them durably', async (t) => {
  const dir = tempDir(t)
  const c = clock()
  const ob = await Outbox.open(dir, LIMITS, { now: c.now })
  const short = await ob.accept({ to: A, type: 1, payload: Buffer.from('short'), ttlMs: 1000 })
  const long = await ob.accept({ to: A, type: 1, payload: Buffer.from('long') })
  c.advance(999)
  t.same(await ob.expire(), [])
  t.equal(ob.pending().length, 2)
  c.advance(1)
  t.same(ob.pending().map((m) => m.id), [long.id], 'expired: no longer pending')
  t.equal(ob.get(short.id)?.id, short.id, 'but still there until expire()')
  const gone = await ob.expire()
  t.same(gone.map((m) => m.id), [short.id])
  t.same(await ob.expire(), [], 'once')
  t.equal(ob.get(short.id), undefined)
  t.match(ob.stats(), { messages: 1, bytes: 4, expired: 1 })
  t.equal(await ob.delivered(short.id), false, 'an expired message cannot be delivered')
  await ob.close()
  const again = await Outbox.open(dir, LIMITS, { now: c.now })
  t.same(again.pending().map((m) => m.id), [long.id])
  c.advance(60_000)
  t.same((await again.expire()).map((m) => m.id), [long.id], 'expiry after a restart')
  await again.close()
})

t.test('delivered(): durable, idempotent, also when concurrent', async (t) => {
  const dir = tempDir(t)
  const ob = await Outbox.open(dir, LIMITS)
  const m = await ob.accept({ to: A, type: 1, payload: Buffer.from('x') })
  const n = await ob.accept({ to: A, type: 1, payload: Buffer.from('y') })
  t.same(await Promise.all([ob.delivered(m.id), ob.delivered(m.id)]), [true, false])
  t.equal(await ob.delivered(m.id), false)
  t.equal(await ob.delivered('00'.repeat(16)), false)
  t.same(ob.pending().map((x) => x.id), [n.id])
  t.match(ob.stats(), { messages: 1, bytes: 1, delivered: 1 })
  const p = ob.delivered(n.id)
  t.same(ob.pending(), [], 'a message being ended is no longer pending')
  t.equal(await p, true)
  await ob.close()
  const again = await Outbox.open(dir, LIMITS)
  t.same(again.pending(), [])
  t.equal(await again.delivered(m.id), false)
  await again.close()
})

t.test('concurrent accepts are group-committed', async (t) => {
  const spy = new FileSpy()
  const ob = await Outbox.open(tempDir(t), LIMITS, { journal: { wrapFile: spy.wrap } })
  await Promise.all(Array.from({ length: 64 }, () => ob.accept({ to: A, type: 1, payload: Buffer.alloc(32) })))
  t.ok(spy.datasyncs <= 2, `64 concurrent accepts: ${spy.datasyncs} fdatasyncs`)
  t.equal(ob.pending().length, 64)
  await ob.close()
})

t.test('compaction keeps exactly the live messages, in order', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, OUTBOX_FILE)
  const ob = await Outbox.open(dir, LIMITS, { compactMinBytes: 4096 })
  const ids: string[] = []
  for (let i = 0; i < 60; i++) ids.push((await ob.accept({ to: i % 2 ? A : B, type: i, payload: Buffer.alloc(200, i) })).id)
  const big = statSync(path).size
  for (let i = 0; i < 60; i++) if (i % 6 !== 0) await ob.delivered(ids[i]!)
  await ob.close() // waits for a compaction started by delivered()
  t.ok(ob.journal.counters.rewrites >= 1, `${ob.journal.counters.rewrites} rewrites`)
  const live = ids.filter((_, i) => i % 6 === 0)
  t.ok(statSync(path).size < big / 3, `journal ${big} → ${statSync(path).size} bytes`)
  t.equal(statSync(path).mode & 0o777, 0o600)
  const again = await Outbox.open(dir, LIMITS)
  t.same(again.pending().map((m) => m.id), live)
  t.same(
    again.pending().map((m) => m.payload.equals(Buffer.alloc(200, m.type))),
    live.map(() => true),
  )
  t.ok(again.journal.records < 110 / 3, `${again.journal.records} records left of the 110 written`)
  await again.close()
})

t.test('compaction at open', async (t) => {
  const dir = tempDir(t)
  const ob = await Outbox.open(dir, LIMITS) // default 1 MiB threshold: no compaction while it runs
  const keep = await ob.accept({ to: A, type: 1, payload: Buffer.from('keep') })
  for (let i = 0; i < 30; i++) {
    const m = await ob.accept({ to: B, type: 2, payload: Buffer.alloc(1000) })
    await ob.delivered(m.id)
  }
  await ob.close()
  t.equal(ob.journal.counters.rewrites, 0)
  const before = statSync(join(dir, OUTBOX_FILE)).size
  const again = await Outbox.open(dir, LIMITS, { compactMinBytes: 1000 })
  t.equal(again.journal.counters.rewrites, 1)
  t.ok(again.journal.size < before / 10)
  t.same(again.pending().map((m) => m.id), [keep.id])
  await again.close()
})

t.test('accepts and deliveries racing a compaction lose nothing', async (t) => {
  const dir = tempDir(t)
  const ob = await Outbox.open(dir, { maxMessages: 100_000, maxBytes: 1 << 26, defaultTtlMs: 60_000 }, { compactMinBytes: 2048 })
  const live = new Set<string>()
  let delivered = 0
  await Promise.all(
    Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 60; i++) {
        const m = await ob.accept({ to: A, type: w, payload: Buffer.alloc(100, i) })
        live.add(m.id)
        if (i % 3 !== 0) {
          const victim = [...live][0]!
          live.delete(victim)
          if (await ob.delivered(victim)) delivered++
        }
      }
    }),
  )
  await ob.close()
  t.ok(ob.journal.counters.rewrites >= 1, `${ob.journal.counters.rewrites} compactions ran`)
  const again = await Outbox.open(dir, LIMITS)
  t.same(new Set(again.pending().map((m) => m.id)), live)
  t.equal(delivered, 8 * 60 - live.size)
  await again.close()
})

t.test('damage in the outbox journal is reported and good messages are kept', async (t) => {
  const dir = tempDir(t)
  const ob = await Outbox.open(dir, LIMITS)
  const ms = []
  for (let i = 0; i < 5; i++) ms.push(await ob.accept({ to: A, type: i, payload: Buffer.alloc(20, i) }))
  await ob.close()
  const path = join(dir, OUTBOX_FILE)
  const bytes = readFileSync(path)
  const recordLen = bytes.length / 5
  bytes[recordLen + 30]! ^= 0xff // inside the second record
  writeFileSync(path, bytes)
  const again = await Outbox.open(dir, LIMITS)
  t.same(again.pending().map((m) => m.id), [ms[0]!.id, ms[2]!.id, ms[3]!.id, ms[4]!.id])
  t.match(again.recovered, [{ kind: 'corrupt', file: path, offset: recordLen }])
  t.match(again.recovered[0]!.message, `bad record at byte ${recordLen}`)
  await again.close()
})

t.test('records the journal frames but the outbox cannot decode are skipped and listed', async (t) => {
  const dir = tempDir(t)
  const j = await Journal.open(join(dir, OUTBOX_FILE))
  await j.append([Buffer.from([9, 9, 9])])
  await j.close()
  const ob = await Outbox.open(dir, LIMITS)
  t.same(ob.undecodable, ['record kind 9'])
  t.equal(ob.pending().length, 0)
  await ob.close()
})

t.test('property: decodeOutboxRecord never throws, and round-trips accept records', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      const r = decodeOutboxRecord(Buffer.from(bytes))
      if (!['accept', 'done', 'unknown'].includes(r.kind)) throw new Error(`kind ${r.kind}`)
    }),
    { numRuns: 2000 },
  )
  const dir = tempDir(t)
  const ob = await Outbox.open(dir, LIMITS)
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 64 }), async (type, flags, payload) => {
      const m = await ob.accept({ to: B, type, flags, payload: Buffer.from(payload) })
      const r = decodeOutboxRecord(Buffer.concat([Buffer.from([1, 1]), Buffer.from(m.id, 'hex'), Buffer.from(m.to, 'hex'), u16(type), u16(flags), f64(m.acceptedAt), f64(m.expiresAt), Buffer.from(payload)]))
      if (r.kind !== 'accept' || r.message.id !== m.id || r.message.type !== type || r.message.flags !== flags || !r.message.payload.equals(Buffer.from(payload))) throw new Error('round trip')
      await ob.delivered(m.id)
    }),
    { numRuns: 100 },
  )
  await ob.close()
  t.pass('decoder total on random bytes; accept records round-trip')
})

function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16LE(n)
  return b
}
function f64(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeDoubleLE(n)
  return b
}
