/**
 * Guest side of the disconnect bench (bench/suites/disconnect.ts, rig part): a real kairo-gw
 * daemon in the guest with two UDP links on 127.0.0.1, one cut by driving the gpio-sim line
 * lora-power low, the other by soft-blocking the rfkill switch of a mac80211_hwsim phy. Each
 * link is disconnected and reconnected KAIRO_BENCH_CYCLES + 1 times through the control socket
 * (the links alternate, so a disturbance of the emulated machine falls on both alike); the first
 * cut of each is the warm-up (first GPIO request, /dev/rfkill opened) and kept apart.
 *
 * The daemon's own latency_ms is recorded (request received → the action observed). Every tenth
 * cut, and the first, the simulator is read independently of the daemon: sim_gpioN/value 0 and
 * /sys/class/rfkill/…/soft 1 while cut, 1 and 0 after the reconnect. A disagreement ends the
 * run with `error` in the report, which fails the bench.
 *
 * Writes $KAIRO_VHW_RESULTS/disconnect.json (GuestReport in bench/disconnect-lib.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ControlClient } from '../../../appliance/control/client.js'
import { cycle, startDaemon, type Daemon, type GuestReport } from '../../../bench/disconnect-lib.js'
import { GpioSim, RESULTS, hwsim, readTrim, sysfsRfkill } from './lib.js'

const cycles = Number(process.env.KAIRO_BENCH_CYCLES ?? '200')
const out: GuestReport = {
  kernel: readTrim('/proc/sys/kernel/osrelease'),
  cycles,
  ready_ms: 0,
  cycles_ms: 0,
  links: {
    gpio: { link: 'gpio0', action: '', latency_ms: [], action_ms: [], start_ms: [], warmup_ms: 0, checked: 0 },
    rfkill: { link: 'rf0', action: '', latency_ms: [], action_ms: [], start_ms: [], warmup_ms: 0, checked: 0 },
  },
}
const write = () => writeFileSync(join(RESULTS, 'disconnect.json'), `${JSON.stringify(out)}\n`)

const t0 = performance.now()
let daemon: Daemon | undefined
let client: ControlClient | undefined
let code = 0
try {
  if (!Number.isInteger(cycles) || cycles < 1) throw new Error(`KAIRO_BENCH_CYCLES must be a positive integer, got ${process.env.KAIRO_BENCH_CYCLES}`)
  const sim = await GpioSim.create('bench', { lines: 2, names: { 0: 'lora-power', 1: 'lora-reset' }, label: 'kairo-bench' })
  // A released line rests at its pull: pulled up, "radio powered" is also where it rests.
  sim.pull(0, 'pull-up')
  const wlans = await hwsim(1)
  const phy = Object.values(wlans)[0]!
  const rfSoft = () => {
    const r = sysfsRfkill()[phy]
    if (r === undefined) throw new Error(`no rfkill switch named ${phy} in /sys/class/rfkill`)
    return r.soft
  }

  // On the guest's tmpfs: the latch file's fsync is free here (see bench/suites/disconnect.ts).
  const dir = '/tmp/kairo-bench'
  const config = join(dir, 'config.yaml')
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    config,
    [
      'node: { name: bench-vhw }',
      `state_dir: ${dir}/state`,
      `runtime_dir: ${dir}/run`,
      'links:',
      '  - name: gpio0',
      '    udp: { host: 127.0.0.1, port: 0, discovery: false }',
      '    cut:',
      '      - gpio: { chip: kairo-bench, line: lora-power, value: 0 }',
      '  - name: rf0',
      '    udp: { host: 127.0.0.1, port: 0, discovery: false }',
      '    cut:',
      `      - rfkill: { name: ${phy} }`,
      'logging: { level: warn }',
      '',
    ].join('\n'),
  )
  // Under TCG the daemon's start (tsx compiling the sources it has not cached) takes a while.
  daemon = await startDaemon(config, { readyTimeoutMs: 240_000 })
  client = await ControlClient.connect(daemon.socket, { timeoutMs: 60_000 })
  out.ready_ms = Math.round(performance.now() - t0)
  console.log(`bench-disconnect: daemon ready after ${(out.ready_ms / 1000).toFixed(1)} s; ${cycles} + 1 cycles per link`)
  const c0 = performance.now()

  const checks = {
    gpio: { cut: () => sim.value(0) === 0, restored: () => sim.value(0) === 1, what: `${sim.device}/${sim.chip}/sim_gpio0/value (lora-power)` },
    rfkill: { cut: () => rfSoft() === 1, restored: () => rfSoft() === 0, what: `/sys/class/rfkill (${phy}) soft` },
  }
  for (let i = 0; i <= cycles; i++) {
    for (const kind of ['gpio', 'rfkill'] as const) {
      const l = out.links[kind]
      const chk = checks[kind]
      const sample = i % 10 === 0
      const c = await cycle(
        client,
        l.link,
        () => {
          if (!sample) return
          if (!chk.cut()) throw new Error(`cut ${i} of ${l.link}: the daemon observed it cut, but ${chk.what} disagrees`)
          l.checked++
        },
        () => {
          if (sample && !chk.restored()) throw new Error(`reconnect ${i} of ${l.link}: the daemon observed it restored, but ${chk.what} disagrees`)
        },
      )
      if (i === 0) {
        l.warmup_ms = c.latencyMs
        l.action = c.actions.join(', ')
      } else {
        l.latency_ms.push(c.latencyMs)
        l.action_ms.push(c.actionMs[0]!)
        l.start_ms.push(c.startMs)
      }
    }
  }
  out.cycles_ms = Math.round(performance.now() - c0)
  const links = (await client.call<{ links: Array<{ name: string; state: string }> }>('links')).links
  for (const l of Object.values(out.links)) {
    const st = links.find((x) => x.name === l.link)?.state
    if (st === 'disconnected') throw new Error(`${l.link} is still disconnected after its last reconnect`)
  }
} catch (err) {
  out.error = (err as Error).message
  code = 1
}
write()
await client?.close().catch(() => undefined)
await daemon?.stop()
process.exit(code)
