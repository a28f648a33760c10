import t from 'tap'
import fc from 'fast-check'
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Journal, RECORD_HEADER_BYTES, encodeRecord, scanJournal, type JournalFile } from '../../appliance/store/journal.js'
import { FileSpy, tempDir } from './helpers.js'

const b = (s: string): Buffer => Buffer.from(s)
const texts = (bufs: readonly Buffer[]): string[] => bufs.map((x) => x.toString('hex'))

/** The file image of `bodies` and each record's start offset. */
function image(bodies: readonly Buffer[]): { bytes: Buffer; starts: number[] } {
  const starts: number[] = []
  let off = 0
  for (const body of bodies) {
    starts.push(off)
    off += RECORD_HEADER_BYTES + body.length
  }
  return { bytes: Buffer.concat(bodies.map((x) => encodeRecord(x))), starts }
}

t.test('round trip: append, close, reopen, replay in order', async (t) => {
  const dir = join(tempDir(t), 'sub', 'state')
  const path = join(dir, 'x.journal')
  const j = await Journal.open(path)
  t.same(j.replayed, [])
  t.same(j.recovered, [])
  t.equal(statSync(dir).mode & 0o777, 0o700, 'directory created 0700')
  t.equal(statSync(path).mode & 0o777, 0o600, 'file created 0600')
  await j.append([b('one'), b('two')])
  await j.append([b('three')])
  await j.append([]) // nothing to write: resolves anyway
  t.equal(j.records, 3)
  t.equal(j.size, 3 * RECORD_HEADER_BYTES + 11)
  t.equal(statSync(path).size, j.size)
  await j.close()
  await t.rejects(j.append([b('late')]), /journal is closed/)

  const seen: string[] = []
  const k = await Journal.open(path, { onRecord: (body) => seen.push(body.toString()) })
  t.same(seen, ['one', 'two', 'three'], 'callback gets every record in order')
  t.same(k.replayed, [], 'no array when a callback is given')
  t.equal(k.records, 3)
  await k.append([b('four')])
  await k.close()
  const l = await Journal.open(path)
  t.same(l.replayed.map(String), ['one', 'two', 'three', 'four'])
  t.same(l.recovered, [])
  await l.close()
})

t.test('bodies: empty and oversized are refused, bytes are copied at append', async (t) => {
  const path = join(tempDir(t), 'x.journal')
  const j = await Journal.open(path, { maxRecordBytes: 16 })
  await t.rejects(j.append([Buffer.alloc(0)]), TypeError)
  await t.rejects(j.append([Buffer.alloc(17)]), /over the limit of 16/)
  const body = b('mutable')
  const p = j.append([body])
  body.fill(0x21)
  await p
  await j.close()
  const k = await Journal.open(path)
  t.same(k.replayed.map(String), ['mutable'])
  await k.close()
})

t.test('torn tail: a cut at every byte offset of the last record is truncated, never thrown', async (t) => {
  const dir = tempDir(t)
  const bodies = [b('first record'), b('second'), b('the last record, torn somewhere')]
  const { bytes, starts } = image(bodies)
  const last = starts[2]!
  for (let cut = last; cut < bytes.length; cut++) {
    const path = join(dir, `cut-${cut}.journal`)
    writeFileSync(path, bytes.subarray(0, cut))
    const j = await Journal.open(path)
    t.same(texts(j.replayed), texts(bodies.slice(0, 2)), `cut at ${cut}: the complete records are kept`)
    if (cut === last) t.same(j.recovered, [], 'a cut on a record boundary is a clean file')
    else {
      t.equal(j.recovered.length, 1)
      const r = j.recovered[0]!
      t.match(r, { kind: 'torn-tail', file: path, offset: last, bytes: cut - last })
      t.match(r.message, new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: torn tail at byte ${last}`))
    }
    t.equal(statSync(path).size, last, 'the torn bytes are gone')
    await j.append([b('after')])
    await j.close()
    const k = await Journal.open(path)
    t.same(k.replayed.map(String), ['first record', 'second', 'after'])
    t.same(k.recovered, [])
    await k.close()
  }
})

t.test('torn tail: a complete last record failing its CRC, and zero-filled space after the end', async (t) => {
  const dir = tempDir(t)
  const bodies = [b('aaaa'), b('bbbb'), b('cccc')]
  const { bytes, starts } = image(bodies)
  const bad = Buffer.from(bytes)
  bad[bad.length - 1]! ^= 0x01
  const p1 = join(dir, 'crc.journal')
  writeFileSync(p1, bad)
  const j = await Journal.open(p1)
  t.same(j.replayed.map(String), ['aaaa', 'bbbb'])
  t.match(j.recovered, [{ kind: 'torn-tail', offset: starts[2], reason: /CRC-32C mismatch/ }])
  await j.close()

  const p2 = join(dir, 'zeros.journal')
  writeFileSync(p2, Buffer.concat([bytes, Buffer.alloc(4096)]))
  const k = await Journal.open(p2)
  t.same(k.replayed.map(String), ['aaaa', 'bbbb', 'cccc'], 'zero bytes are not empty records')
  t.match(k.recovered, [{ kind: 'torn-tail', offset: bytes.length, bytes: 4096, reason: 'zero length' }])
  t.equal(statSync(p2).size, bytes.length)
  await k.close()
  t.same(readdirSync(dir).filter((f) => f.includes('.corrupt-')), [], 'a torn tail leaves no .corrupt copy')
})

const bodyArb = fc.uint8Array({ minLength: 1, maxLength: 40 })

t.test('property: a file cut at any offset opens, keeping every complete record', async (t) => {
  const dir = tempDir(t)
  let n = 0
  await fc.assert(
    fc.asyncProperty(fc.array(bodyArb, { minLength: 1, maxLength: 12 }), fc.double({ min: 0, max: 1, noNaN: true }), async (raw, frac) => {
      const bodies = raw.map((x, i) => Buffer.concat([Buffer.from([i]), x])) // distinct
      const { bytes, starts } = image(bodies)
      const cut = Math.floor(frac * bytes.length)
      const path = join(dir, `p${n++}.journal`)
      writeFileSync(path, bytes.subarray(0, cut))
      const j = await Journal.open(path)
      await j.close()
      const complete = bodies.filter((x, i) => starts[i]! + RECORD_HEADER_BYTES + x.length <= cut)
      if (texts(j.replayed).join() !== texts(complete).join()) throw new Error(`cut ${cut}: replayed ${j.replayed.length} of ${complete.length} complete records`)
      if (j.recovered.some((r) => r.kind !== 'torn-tail')) throw new Error(`cut ${cut}: ${j.recovered[0]?.message}`)
      const lastEnd = complete.length === 0 ? 0 : starts[complete.length - 1]! + RECORD_HEADER_BYTES + complete[complete.length - 1]!.length
      if (statSync(path).size !== lastEnd) throw new Error(`cut ${cut}: file is ${statSync(path).size} bytes, expected ${lastEnd}`)
    }),
    { numRuns: 200 },
  )
  t.pass('200 random cuts')
})

t.test('corruption in the middle: file kept aside, every good record kept, file and offset named', async (t) => {
  const dir = tempDir(t)
  const bodies = [b('alpha'), b('bravo'), b('charlie'), b('delta'), b('echo')]
  const { bytes, starts } = image(bodies)
  const bad = Buffer.from(bytes)
  bad[starts[1]! + RECORD_HEADER_BYTES + 2]! ^= 0x40 // inside bravo's body
  bad.writeUInt32LE(0x7fffffff, starts[3]!) // delta's length
  const path = join(dir, 'm.journal')
  writeFileSync(path, bad)
  const j = await Journal.open(path, { now: () => Date.UTC(2025, 0, 2, 3, 4, 5, 678) })
  t.same(j.replayed.map(String), ['alpha', 'charlie', 'echo'])
  t.equal(j.recovered.length, 2)
  const moved = `${path}.corrupt-2025-01-02T03-04-05-678Z`
  t.match(j.recovered[0], { kind: 'corrupt', file: path, offset: starts[1], bytes: starts[2]! - starts[1]!, reason: /CRC-32C mismatch/, movedTo: moved })
  t.match(j.recovered[1], { kind: 'corrupt', file: path, offset: starts[3], reason: /length 2147483647/ })
  t.match(j.recovered[0]!.message, `${path}: bad record at byte ${starts[1]}`)
  t.ok(existsSync(moved), 'the damaged file is kept')
  t.same(readFileSync(moved), bad, 'byte for byte')
  t.equal(statSync(moved).mode & 0o777, 0o600)
  await j.append([b('foxtrot')])
  await j.close()
  const k = await Journal.open(path)
  t.same(k.replayed.map(String), ['alpha', 'charlie', 'echo', 'foxtrot'], 'the rewritten journal is clean')
  t.same(k.recovered, [])
  await k.close()
})

t.test('property: flipped bytes anywhere → never throws, good records kept, first bad offset named', async (t) => {
  const dir = tempDir(t)
  let n = 0
  await fc.assert(
    fc.asyncProperty(
      fc.array(bodyArb, { minLength: 2, maxLength: 10 }),
      fc.uniqueArray(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4, selector: ([f]) => f }),
      async (raw, flips) => {
        const bodies = raw.map((x, i) => Buffer.concat([Buffer.from([i]), x]))
        const { bytes, starts } = image(bodies)
        const bad = Buffer.from(bytes)
        const positions = new Set<number>()
        for (const [f, mask] of flips) {
          const pos = Math.floor(f * bytes.length)
          if (positions.has(pos)) continue
          positions.add(pos)
          bad[pos]! ^= mask
        }
        const recordOf = (pos: number): number => {
          let i = starts.length - 1
          while (starts[i]! > pos) i--
          return i
        }
        const modified = new Set([...positions].map(recordOf))
        const firstBad = Math.min(...modified)
        const intactAfter = bodies.some((_, i) => i > firstBad && !modified.has(i))
        const path = join(dir, `f${n++}.journal`)
        writeFileSync(path, bad)
        const before = new Set(readdirSync(dir))
        const j = await Journal.open(path)
        await j.close()
        const intact = bodies.filter((_, i) => !modified.has(i))
        const got = texts(j.replayed)
        if (got.join() !== texts(intact).join()) throw new Error(`replayed ${got.length} records, expected the ${intact.length} intact ones`)
        const first = j.recovered[0]
        if (!first || first.file !== path || first.offset !== starts[firstBad]) throw new Error(`expected a report of ${path} at byte ${starts[firstBad]}, got ${JSON.stringify(first)}`)
        const copies = readdirSync(dir).filter((f) => !before.has(f))
        if (intactAfter) {
          if (first.kind !== 'corrupt' || copies.length !== 1 || first.movedTo !== join(dir, copies[0]!)) throw new Error(`expected a corrupt report and one copy, got ${first.kind}, ${copies}`)
          if (!readFileSync(first.movedTo).equals(bad)) throw new Error('the .corrupt copy differs from the damaged file')
        } else if (first.kind !== 'torn-tail' || copies.length !== 0) throw new Error(`expected a torn tail, got ${first.kind}, ${copies}`)
        const k = await Journal.open(path)
        await k.close()
        if (k.recovered.length !== 0 || texts(k.replayed).join() !== got.join()) throw new Error('the repaired file does not reopen clean')
      },
    ),
    { numRuns: 150 },
  )
  t.pass('150 damaged files')
})

t.test('scanJournal is pure and reports the tail', async (t) => {
  const { bytes } = image([b('x'), b('y')])
  const s = scanJournal(Buffer.concat([bytes, Buffer.from([1, 2, 3])]))
  t.equal(s.records.length, 2)
  t.same(s.damage, [])
  t.match(s.tail, { offset: bytes.length, bytes: 3, reason: /too few for a record header/ })
})

t.test('group commit: concurrent appends share writes and fdatasyncs; each resolves after its own sync', async (t) => {
  const path = join(tempDir(t), 'g.journal')
  const spy = new FileSpy()
  const j = await Journal.open(path, { wrapFile: spy.wrap })
  const N = 200
  const frames: Buffer[] = []
  const checks: Promise<void>[] = []
  let early = 0
  for (let i = 0; i < N; i++) {
    const body = b(`message ${i}`)
    frames.push(encodeRecord(body))
    checks.push(
      j.append([body]).then(() => {
        if (!spy.synced.includes(encodeRecord(body))) early++
      }),
    )
    // Spread the calls over a few turns of the event loop, as independent senders would.
    if (i % 50 === 49) await new Promise((r) => setImmediate(r))
  }
  await Promise.all(checks)
  t.equal(early, 0, 'no append resolved before its bytes were fdatasynced')
  t.ok(spy.datasyncs < N / 10, `${N} concurrent appends took ${spy.datasyncs} fdatasyncs`)
  t.equal(j.counters.syncs, spy.datasyncs)
  t.equal(j.counters.records, N)
  t.same(spy.synced, Buffer.concat(frames), 'all in call order')

  const seq0 = spy.datasyncs
  for (let i = 0; i < 10; i++) await j.append([b(`seq ${i}`)])
  t.equal(spy.datasyncs - seq0, 10, 'sequential appends: one fdatasync each')
  await j.close()
})

t.test('a failed write rejects its round, is taken back, and later appends work', async (t) => {
  const path = join(tempDir(t), 'w.journal')
  const spy = new FileSpy()
  const j = await Journal.open(path, { wrapFile: spy.wrap })
  await j.append([b('kept')])
  const size = j.size
  spy.failNextWriteAfter = 5
  const a = j.append([b('lost 1')])
  const c = j.append([b('lost 2')])
  await t.rejects(a, { code: 'ENOSPC', message: new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: append of 2 records at byte ${size} failed`) })
  await t.rejects(c, { code: 'ENOSPC' })
  t.equal(statSync(path).size, size, 'partial write truncated')
  await j.append([b('next')])
  await j.close()
  const k = await Journal.open(path)
  t.same(k.replayed.map(String), ['kept', 'next'])
  t.same(k.recovered, [])
  await k.close()
})

t.test('rewrite: atomic replacement, ordered with appends around it', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'r.journal')
  const spy = new FileSpy()
  const j = await Journal.open(path, { wrapFile: spy.wrap })
  await j.append([b('old 1'), b('old 2'), b('old 3')])
  const order: string[] = []
  const a = j.append([b('A')], () => order.push('A applied'))
  const r = j.rewrite(
    () => {
      order.push('snapshot')
      return [b('compacted'), b('A')]
    },
    () => order.push('rewrite applied'),
  )
  const c = j.append([b('B')], () => order.push('B applied'))
  await Promise.all([a, r, c])
  t.same(order, ['A applied', 'snapshot', 'rewrite applied', 'B applied'])
  t.equal(j.records, 3)
  t.equal(j.counters.rewrites, 1)
  t.notOk(existsSync(`${path}.tmp`))
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(statSync(path).size, j.size)
  await j.close()
  const k = await Journal.open(path)
  t.same(k.replayed.map(String), ['compacted', 'A', 'B'])
  await k.close()

  writeFileSync(`${path}.tmp`, 'half a rewrite')
  const l = await Journal.open(path)
  t.same(l.replayed.map(String), ['compacted', 'A', 'B'], 'a leftover .tmp is ignored')
  t.notOk(existsSync(`${path}.tmp`), 'and removed')
  await l.close()
})

t.test('a rewrite whose snapshot throws rejects alone', async (t) => {
  const path = join(tempDir(t), 's.journal')
  const j = await Journal.open(path)
  await j.append([b('x')])
  await t.rejects(
    j.rewrite(() => {
      throw new Error('boom')
    }),
    /boom/,
  )
  await j.append([b('y')])
  await j.close()
  const k = await Journal.open(path)
  t.same(k.replayed.map(String), ['x', 'y'])
  await k.close()
})

t.test('wrapFile sees the journal file and rewrite tmp files', async (t) => {
  const path = join(tempDir(t), 'roles.journal')
  const roles: string[] = []
  const j = await Journal.open(path, {
    wrapFile: (f: JournalFile, role) => {
      roles.push(role)
      return f
    },
  })
  await j.rewrite([b('z')])
  await j.close()
  t.same(roles, ['journal', 'tmp', 'journal'])
})
