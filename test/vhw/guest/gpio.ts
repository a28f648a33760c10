/**
 * Guest side of test/vhw/gpio.test.ts: drivers/gpio (kairo-hw's GPIO uAPI v2) against gpio-sim.
 * Outputs are checked with the simulator's sim_gpioN/value (what the line really puts out),
 * inputs are driven with sim_gpioN/pull (what the outside world does to the pin).
 */
import { GpioError, GpioLines, lineInfo, listChips, resolveLine, type GpioEdgeEvent } from '../../../drivers/gpio/index.js'
import { GpioSim, Recorder, sleep, waitFor } from './lib.js'

const rec = new Recorder()

function err(e: unknown): Record<string, unknown> {
  const g = e as GpioError
  return { error: g.message, name: g.name, errno: g.errno, chip: g.chip, line: g.line }
}

/** Runs fn expecting a throw; records the error's fields (or { noError: value }). */
async function refused(name: string, fn: () => unknown): Promise<void> {
  await rec.step(name, () => {
    try {
      return { noError: fn() ?? null }
    } catch (e) {
      return err(e)
    }
  })
}

const NAMES = { 0: 'lora-power', 1: 'lora-reset', 2: 'relay', 4: 'button', 5: 'door' }
const sim = await GpioSim.create('kairo', { lines: 8, names: NAMES, label: 'kairo-sim' })
rec.set('sim', { path: sim.path, chip: sim.chip, label: sim.label })

await rec.step('listChips', () => listChips())
await rec.step('lineInfo before', () => lineInfo(sim.path).map((l) => ({ offset: l.offset, name: l.name, used: l.used })))
await rec.step('resolve by label and name', () => resolveLine('kairo-sim', 'lora-power'))
await rec.step('resolve by chip name and offset', () => resolveLine(sim.chip, 2))
await rec.step('resolve by path and digits', () => resolveLine(sim.path, '3'))
await refused('resolve unknown line', () => resolveLine('kairo-sim', 'no-such-line'))
await refused('resolve unknown chip', () => resolveLine('no-such-chip', 'lora-power'))
await refused('resolve offset out of range', () => resolveLine('kairo-sim', 8))

// Outputs: the simulator sees what is driven, from the request on.
const out = await rec.step(
  'request outputs 0,1 = [1,0]',
  () => GpioLines.request(sim.path, [0, 1], { consumer: 'kairo-test', output: true, values: [1, 0] }),
  (l) => ({ offsets: l.offsets, chip: l.chip }),
)
if (out !== undefined) {
  await rec.step('sim after request', () => [sim.value(0), sim.value(1)])
  await rec.step('lineInfo while held', () => lineInfo(sim.path).slice(0, 2).map((l) => ({ offset: l.offset, used: l.used, consumer: l.consumer, output: l.output })))
  await rec.step('set [0,1]', () => {
    out.set([0, 1])
    return { sim: [sim.value(0), sim.value(1)], get: out.get() }
  })
  await rec.step('set [1,1]', () => {
    out.set([1, 1])
    return { sim: [sim.value(0), sim.value(1)], get: out.get() }
  })
  await refused('second request of a held line', () => GpioLines.request(sim.path, [1], { consumer: 'intruder', output: true }))
  await refused('set with a wrong count', () => out.set([1]))
  await rec.step('close releases', () => {
    out.close()
    return lineInfo(sim.path).slice(0, 2).map((l) => ({ offset: l.offset, used: l.used }))
  })
  await refused('set after close', () => out.set([0, 0]))
}

await rec.step('active-low output', () => {
  const l = GpioLines.request(sim.path, [2], { consumer: 'kairo-test', output: true, activeLow: true, values: [1] })
  const asked1 = { sim: sim.value(2), get: l.get() }
  l.set([0])
  const asked0 = { sim: sim.value(2), get: l.get() }
  const info = lineInfo(sim.path)[2]
  l.close()
  return { asked1, asked0, activeLow: info?.activeLow }
})

// Inputs follow the simulator's pull.
await rec.step('input follows pull', () => {
  const l = GpioLines.request(sim.path, [4], { consumer: 'kairo-test' })
  const seen: number[] = []
  for (const p of ['pull-up', 'pull-down', 'pull-up', 'pull-down'] as const) {
    sim.pull(4, p)
    seen.push(l.get()[0]!)
  }
  l.close()
  return seen
})
await rec.step('requested bias reaches the simulator', () => {
  const l = GpioLines.request(sim.path, [5], { consumer: 'kairo-test', bias: 'pull-up' })
  const up = { pull: sim.getPull(5), get: l.get() }
  l.reconfigure({ bias: 'pull-down' })
  const down = { pull: sim.getPull(5), get: l.get() }
  l.close()
  return { up, down }
})
await refused('set on an input', () => {
  const l = GpioLines.request(sim.path, [6], { consumer: 'kairo-test' })
  try {
    l.set([1])
  } finally {
    l.close()
  }
})
await refused('request offset out of range', () => GpioLines.request(sim.path, [99], { consumer: 'kairo-test' }))
await refused('edge on an output', () => GpioLines.request(sim.path, [6], { consumer: 'kairo-test', output: true, edge: 'both' }))

/** Toggles the pulls in `steps` and returns the edge events seen (waits for `expect` of them). */
async function edges(offsets: number[], opts: { edge: 'rising' | 'falling' | 'both'; activeLow?: boolean }, steps: Array<[number, 'pull-up' | 'pull-down']>, expect: number) {
  for (const o of offsets) sim.pull(o, 'pull-down')
  const l = GpioLines.request(sim.path, offsets, { consumer: 'kairo-test', ...opts })
  const events: GpioEdgeEvent[] = []
  l.on('edge', (e: GpioEdgeEvent) => events.push(e))
  for (const [o, p] of steps) {
    sim.pull(o, p)
    // Let the watcher run between changes, so each shows as its own edge.
    await sleep(20)
  }
  await waitFor(`${expect} edge events`, 5000, () => events.length >= expect)
  await sleep(100)
  l.close()
  const times = events.map((e) => e.timestampNs)
  return {
    events: events.map((e) => ({ offset: e.offset, rising: e.rising, seqno: e.seqno })),
    timestampsIncrease: times.every((t, i) => i === 0 || t > times[i - 1]!),
  }
}

const cycle = (o: number, n: number): Array<[number, 'pull-up' | 'pull-down']> => Array.from({ length: n }, (_, i) => [o, i % 2 === 0 ? 'pull-up' : 'pull-down'])
await rec.step('edges both', () => edges([4], { edge: 'both' }, cycle(4, 6), 6))
await rec.step('edges rising only', () => edges([4], { edge: 'rising' }, cycle(4, 6), 3))
await rec.step('edges falling, active-low', () => edges([4], { edge: 'falling', activeLow: true }, cycle(4, 4), 2))
await rec.step('edges on two lines', () => edges([4, 5], { edge: 'both' }, [[5, 'pull-up'], [4, 'pull-up'], [5, 'pull-down']], 3))
await rec.step('no edges after close', async () => {
  const l = GpioLines.request(sim.path, [4], { consumer: 'kairo-test', edge: 'both' })
  let n = 0
  l.on('edge', () => n++)
  l.close()
  sim.pull(4, 'pull-up')
  await sleep(300)
  return n
})
rec.done()
