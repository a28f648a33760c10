import t from 'tap'
import { DEFAULT_RADIO, phyLimitBytesPerSecond, radioConfigProblems, regionProblems, REGIONS, timeOnAirMs } from '../../drivers/lora/radio.js'
import { DutyCycle } from '../../drivers/lora/duty-cycle.js'

t.test('time on air matches Semtech reference values', async (t) => {
  // (SF, BW, CR, preamble, payload bytes) → ms, from the SX1276 formula as the TTN/Semtech
  // calculators print it (LoRaWAN 51-byte payload + 13 bytes of MAC = 64).
  const table: [number, number, number, number, number, number][] = [
    [7, 125_000, 5, 8, 20, 56.576],
    [7, 125_000, 5, 8, 255, 399.616],
    [12, 125_000, 5, 8, 64, 2793.472],
    [9, 125_000, 5, 8, 64, 390.144],
    [7, 125_000, 5, 8, 64, 118.016],
    [7, 250_000, 5, 8, 64, 59.008],
  ]
  for (const [sf, bw, cr, pre, pl, ms] of table) {
    t.equal(Number(timeOnAirMs({ spreadingFactor: sf, bandwidthHz: bw, codingRate: cr, preambleSymbols: pre }, pl).toFixed(3)), ms, `SF${sf} BW${bw / 1000} ${pl} B`)
  }
  t.ok(phyLimitBytesPerSecond({ spreadingFactor: 7, bandwidthHz: 125_000, codingRate: 5, preambleSymbols: 8 }) > 600)
})

t.test('config problems name their field', async (t) => {
  t.same(radioConfigProblems(DEFAULT_RADIO), [])
  const p = radioConfigProblems({ ...DEFAULT_RADIO, spreadingFactor: 13, bandwidthHz: 100_000 })
  t.same(p.map((x) => x.field), ['bandwidthHz', 'spreadingFactor'])
  t.match(p[1]!.message, /spreadingFactor: 13 is out of range 5\.\.12/)
  t.same(regionProblems({ ...DEFAULT_RADIO, frequencyHz: 915_000_000 }, REGIONS.EU868!).map((x) => x.field), ['frequencyHz'])
})

t.test('duty cycle: 1 % of an hour is 36 s of airtime, freed as the window slides', async (t) => {
  const d = new DutyCycle(0.01, 3_600_000)
  t.equal(d.budgetMs, 36_000)
  t.equal(d.waitMs(400, 0), 0)
  for (let i = 0; i < 90; i++) d.record(400, i * 1000)
  t.equal(d.usedMs(90_000), 36_000)
  t.equal(d.waitMs(400, 90_000), 3_600_000 - 90_000, 'the first 400 ms leave the window at 1 h')
  t.equal(d.waitMs(400, 3_600_000), 0)
  t.equal(d.waitMs(40_000, 0), Infinity, 'more than the whole budget never fits')
  t.equal(new DutyCycle(null).waitMs(1e9, 0), 0)
  t.throws(() => new DutyCycle(2), TypeError)
})

t.test('duty cycle: a transmission restamped to its real start stays in the window longer; a refused one is forgotten', async (t) => {
  const d = new DutyCycle(0.01, 100_000) // 1 000 ms of airtime per 100 s
  const first = d.record(600, 0)!
  d.restamp(first, 50) // it really went on air 50 ms later
  d.restamp(first, 10) // never earlier
  t.equal(first.at, 50)
  t.equal(d.waitMs(600, 1000), 50 + 100_000 - 1000, 'the budget frees when the real start leaves the window')
  const refused = d.record(300, 2000)!
  t.equal(d.usedMs(2000), 900)
  d.forget(refused)
  t.equal(d.usedMs(2000), 600, 'a frame the device refused uses no airtime')
  d.forget(refused)
  t.equal(d.usedMs(2000), 600, 'forgetting twice changes nothing')
  t.equal(new DutyCycle(null).record(600, 0), null, 'without a limit nothing is recorded')
})
