import t from 'tap'
import fc from 'fast-check'
import { REPLAY_WINDOW_DEFAULT_BITS, REPLAY_WINDOW_MIN_BITS, REPLAY_WORD_BITS, ReplayWindow } from '../../appliance/core/replay.js'

const MAX = Number.MAX_SAFE_INTEGER // 2^53 - 1, the largest valid sequence number

/**
 * Runs (seq, expected) steps against `w`, numbered like the wireguard-go / Linux selftests so a
 * failure names its step. For every step, check() must predict update() and must not change state.
 */
function runTable(t: Reporter, w: ReplayWindow, name: string, steps: ReadonlyArray<readonly [number, boolean]>): void {
  let n = 0
  let failures = 0
  for (const [seq, expected] of steps) {
    n++
    const predicted = w.check(seq)
    const again = w.check(seq)
    const got = w.update(seq)
    if (predicted !== expected || again !== expected || got !== expected) {
      failures++
      t.fail(`${name} step ${n}: seq ${seq} expected ${expected}, check ${predicted}/${again}, update ${got}`)
    }
  }
  if (failures === 0) t.pass(`${name}: ${n} steps`)
}

interface Reporter {
  pass(message: string): unknown
  fail(message: string): unknown
}

t.test('constants', async (t) => {
  t.equal(REPLAY_WINDOW_DEFAULT_BITS, 8192)
  t.equal(REPLAY_WINDOW_MIN_BITS, 2080)
  t.throws(() => new ReplayWindow(2048), TypeError, "2048 bits would track only 2016 packets")
  t.equal(REPLAY_WORD_BITS, 32)
  const w = new ReplayWindow()
  t.equal(w.sizeBits, 8192)
  t.equal(w.window, 8192 - 32)
  t.equal(w.highest, -1)
})

t.test('table test after wireguard-go / Linux (window W = 8160, T_LIM = W + 1)', async (t) => {
  const w = new ReplayWindow()
  const W = w.window
  const T = W + 1
  const steps: Array<readonly [number, boolean]> = [
    /*  1 */ [0, true],
    /*  2 */ [1, true],
    /*  3 */ [1, false], // duplicate
    /*  4 */ [9, true],
    /*  5 */ [8, true], // out of order within the window
    /*  6 */ [7, true],
    /*  7 */ [7, false],
    /*  8 */ [T, true],
    /*  9 */ [T - 1, true],
    /* 10 */ [T - 1, false],
    /* 11 */ [T - 2, true],
    /* 12 */ [2, true], // highest - 2 = W - 1: the oldest number still inside
    /* 13 */ [2, false],
    /* 14 */ [T + 16, true],
    /* 15 */ [3, false], // now too old
    /* 16 */ [T + 16, false],
    /* 17 */ [T * 4, true], // jump
    /* 18 */ [T * 4 - (T - 1), false], // highest - seq = W: just outside (wireguard-go accepts it)
    /* 19 */ [10, false],
    /* 20 */ [T * 4 - T, false],
    /* 21 */ [T * 4 - (T + 1), false],
    /* 22 */ [T * 4 - (T - 2), true], // highest - seq = W - 1: just inside
    /* 23 */ [T * 4 + 1 - T, false], // the same number as step 18
    /* 24 */ [0, false],
    /* 25 */ [MAX, true], // jump to the largest valid number clears the whole ring
    /* 26 */ [MAX, false],
    /* 27 */ [MAX - 1, true],
    /* 28 */ [MAX - 1, false],
    /* 29 */ [MAX - W, false],
    /* 30 */ [MAX - W + 1, true],
    /* 31 */ [MAX - W + 1, false],
    /* 32 */ [MAX - 2, true],
    /* 33 */ [0, false],
    /* 34 */ [T * 4, false],
  ]
  runTable(t, w, 'main', steps)
  t.equal(w.highest, MAX)
})

t.test('bulk tests (in order, reverse order, window edges)', async (t) => {
  const w = new ReplayWindow()
  const W = w.window

  // Bulk 1: 1..W in order; 0 is then exactly W behind, outside.
  w.reset()
  const b1: Array<readonly [number, boolean]> = []
  for (let i = 1; i <= W; i++) b1.push([i, true])
  b1.push([0, false], [1, false], [W, false])
  runTable(t, w, 'bulk 1', b1)

  // Bulk 1b: 1..W-1 in order; 0 is W - 1 behind, inside.
  w.reset()
  const b1b: Array<readonly [number, boolean]> = []
  for (let i = 1; i < W; i++) b1b.push([i, true])
  b1b.push([0, true], [0, false])
  runTable(t, w, 'bulk 1b', b1b)

  // Bulk 2: 2..W; then 1 (inside) and 0 (outside).
  w.reset()
  const b2: Array<readonly [number, boolean]> = []
  for (let i = 2; i <= W; i++) b2.push([i, true])
  b2.push([1, true], [0, false])
  runTable(t, w, 'bulk 2', b2)

  // Bulk 3: W+1 down to 2 (reverse order, every one inside); 1 and 0 outside.
  w.reset()
  const b3: Array<readonly [number, boolean]> = []
  for (let i = W + 1; i >= 2; i--) b3.push([i, true])
  b3.push([1, false], [0, false])
  runTable(t, w, 'bulk 3', b3)

  // Bulk 4: W+2 down to 3; then 2, 1, 0 outside; W+3 new.
  w.reset()
  const b4: Array<readonly [number, boolean]> = []
  for (let i = W + 2; i >= 3; i--) b4.push([i, true])
  b4.push([2, false], [1, false], [0, false], [W + 3, true])
  runTable(t, w, 'bulk 4', b4)

  // Bulk 5: in order through three full turns of the ring; after each, the oldest number inside
  // is a replay and the one before it is too old.
  w.reset()
  const b5: Array<readonly [number, boolean]> = []
  for (let i = 0; i < 3 * w.sizeBits; i++) {
    b5.push([i, true])
    if (i >= W) b5.push([i - W + 1, false], [i - W, false])
  }
  runTable(t, w, 'bulk 5', b5)
})

t.test('large jumps clear the bits of ring words they reuse', async (t) => {
  for (const size of [2080, 2112, 8192]) {
    const w = new ReplayWindow(size)
    const steps: Array<readonly [number, boolean]> = []
    for (let i = 0; i < 64; i++) steps.push([i, true])
    // Jump by a whole ring: the words that held 0..63 now stand for size..size+63.
    const top = 64 + size - 1
    steps.push([top, true])
    // Same ring slots as 0..63, all inside the window: must be fresh.
    for (let i = size; i < size + 64; i++) if (i !== top) steps.push([i, true])
    steps.push([0, false], [63, false])
    // A jump of less than a whole ring keeps the words still in view.
    steps.push([top + 100, true], [top + 50, true], [top + 50, false], [size + 5, false])
    // A jump of many rings.
    steps.push([top + 10 * size, true], [top + 10 * size - 1, true], [top + 100, false])
    runTable(t, w, `size ${size}`, steps)
  }
})

t.test('check() does not change state', async (t) => {
  const w = new ReplayWindow(2080)
  t.equal(w.check(5), true)
  t.equal(w.highest, -1)
  t.equal(w.check(5), true)
  t.equal(w.update(5), true)
  t.equal(w.check(100000), true)
  t.equal(w.highest, 5)
  t.equal(w.check(5), false)
  t.equal(w.check(4), true)
})

t.test('reset() forgets everything', async (t) => {
  const w = new ReplayWindow(2080)
  for (let i = 0; i < 100; i++) w.update(i * 7)
  w.reset()
  t.equal(w.highest, -1)
  for (let i = 0; i < 100; i++) t.equal(w.update(i * 7), true)
})

t.test('property: agrees with a naive model (Set of accepted + highest)', async (t) => {
  const op = fc.record({
    update: fc.boolean(),
    // relative to the model's highest: mostly near the edge, sometimes far jumps
    delta: fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: -2200, max: 40 }) },
      { weight: 3, arbitrary: fc.integer({ min: -9000, max: 9000 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 100000 }) },
    ),
  })
  fc.assert(
    fc.property(fc.constantFrom(2080, 2112, 4096, 8192), fc.nat({ max: 2 ** 40 }), fc.array(op, { maxLength: 400 }), (size, base, ops) => {
      const w = new ReplayWindow(size)
      const W = size - 32
      const seen = new Set<number>()
      let highest = -1
      for (const { update, delta } of ops) {
        const seq = Math.max(0, (highest < 0 ? base : highest) + delta)
        const expected = !seen.has(seq) && seq > highest - W
        if (w.check(seq) !== expected) return false
        if (update) {
          if (w.update(seq) !== expected) return false
          if (expected) {
            seen.add(seq)
            if (seq > highest) highest = seq
          }
        }
        if (w.highest !== highest) return false
      }
      return true
    }),
    { numRuns: 300 },
  )
  t.pass('model agrees')
})

t.test('property: near 2^53', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: MAX - 20000, max: MAX }), { maxLength: 200 }), (seqs) => {
      const w = new ReplayWindow(2080)
      const seen = new Set<number>()
      let highest = -1
      for (const seq of seqs) {
        const expected = !seen.has(seq) && seq > highest - (2080 - 32)
        if (w.update(seq) !== expected) return false
        if (expected) {
          seen.add(seq)
          highest = Math.max(highest, seq)
        }
      }
      return true
    }),
  )
  t.pass('model agrees')
})

t.test('TypeError for bad sizes and sequence numbers', async (t) => {
  const badSizes: unknown[] = [0, 32, 2016, 2047, 2049, 2050, 8200, 8192.5, NaN, Infinity, -8192, '8192', null]
  for (const size of badSizes) {
    t.throws(() => new ReplayWindow(size as number), TypeError, `size ${typeof size} ${String(size)}`)
  }
  t.doesNotThrow(() => new ReplayWindow(2080))
  t.doesNotThrow(() => new ReplayWindow(2080))
  t.doesNotThrow(() => new ReplayWindow(65536))

  const w = new ReplayWindow()
  const badSeqs: unknown[] = [-1, 1.5, 2 ** 53, 2 ** 64, NaN, Infinity, -Infinity, '1', 1n, null, undefined]
  for (const seq of badSeqs) {
    t.throws(() => w.check(seq as number), TypeError, `check ${typeof seq} ${String(seq)}`)
    t.throws(() => w.update(seq as number), TypeError, `update ${typeof seq} ${String(seq)}`)
  }
  t.equal(w.highest, -1, 'bad input changed nothing')
  t.equal(w.update(MAX), true)
})
