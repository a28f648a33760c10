/**
 * The emulator as its own process (`node --import=tsx firmware-bridge/emulator/main.ts`), on real
 * socat PTYs, with the test protocol loaded through the config's `factories`.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_RADIO, timeOnAirMs } from '../../drivers/lora/radio.js'
import type { EmulatorEvent } from '../../firmware-bridge/emulator/main.js'
import { EMULATOR_MAIN, REPO_ROOT, openHostPort, ptyPair, requireSocat, startEmulatorProcess, tempDir, type PtyPair } from '../lib/pty.js'

const ECHO = join(REPO_ROOT, 'test', 'emulator', 'fixtures', 'echo-device.ts')

t.test('command line errors', async (t) => {
  const run = (args: string[]) => spawnSync(process.execPath, ['--import=tsx', EMULATOR_MAIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8' })
  const none = run([])
  t.equal(none.status, 2)
  t.match(none.stderr, /--config is required/)
  const dir = await tempDir(t)
  const bad = join(dir, 'bad.json')
  await writeFile(bad, JSON.stringify({ radios: [{ name: 'a', tty: '/x', protocol: 'nope' }] }))
  const r = run(['--config', bad])
  t.equal(r.status, 1)
  t.match(r.stderr, /radios\[0\]\.protocol: "nope" is not/)
})

t.test('three gateways over the emulated medium, collisions, unplug/replug, SIGTERM', async (t) => {
  if (!requireSocat(t)) return
  const dir = await tempDir(t)
  const pairs: Record<string, PtyPair> = {}
  for (const n of ['a', 'b', 'c']) {
    pairs[n] = await ptyPair(dir, n)
    t.teardown(() => pairs[n]!.close())
  }
  const configPath = join(dir, 'emulator.json')
  await writeFile(
    configPath,
    JSON.stringify({
      seed: 3,
      timeScale: 0.05,
      region: 'EU868',
      reopen: { minMs: 20, maxMs: 200 },
      radios: ['a', 'b', 'c'].map((n) => ({ name: n, tty: `${n}-mcu`, protocol: 'echo', config: { spreadingFactor: 12 } })),
      links: [
        { from: 'a', to: 'b', rssi: -80, snr: 5, both: true },
        { from: 'a', to: 'c', rssi: -95, snr: -2, both: true },
        { from: 'b', to: 'c', rssi: -97, snr: -4, both: true },
      ],
      factories: { echo: `${ECHO}#createEchoDevice` },
    }),
  )
  const emu = await startEmulatorProcess(configPath)
  t.teardown(() => emu.close())
  t.match(emu.ready, {
    event: 'ready',
    seed: 3,
    timeScale: 0.05,
    region: 'EU868',
    radios: [
      { name: 'a', tty: pairs.a!.mcu, protocol: 'echo', connected: true },
      { name: 'b', tty: pairs.b!.mcu, connected: true },
      { name: 'c', tty: pairs.c!.mcu, connected: true },
    ],
  })
  const a = await openHostPort(pairs.a!.host)
  const b = await openHostPort(pairs.b!.host)
  const c = await openHostPort(pairs.c!.host)
  t.teardown(() => Promise.all([a.close(), b.close(), c.close()]))

  // One packet, heard by b and c with their links' RSSI/SNR.
  await a.write('HELLO\nTX 68656c6c6f\n')
  await b.waitFor(/RX 68656c6c6f -80 5\n/)
  await c.waitFor(/RX 68656c6c6f -95 -2\n/)
  const tx = await emu.waitFor<Extract<EmulatorEvent, { event: 'tx' }>>((e) => e.event === 'tx')
  t.match(tx, { radio: 'a', bytes: 5 })
  t.equal(tx.airtimeMs, timeOnAirMs({ ...DEFAULT_RADIO, spreadingFactor: 12 }, 5), `SF12, 5 bytes: ${tx.airtimeMs} ms of radio time`)
  await emu.waitFor((e) => e.event === 'rx' && e.radio === 'c' && e.id === tx.id)

  // a and b at once: c hears both overlap (collision); a and b are half duplex.
  await b.write('HELLO\n')
  await b.waitFor(/OK HELLO/)
  const mark = emu.mark()
  // 40 bytes at SF12: 2.3 s of radio time, 115 ms of real time to overlap in.
  await Promise.all([a.write(`TX ${'01'.repeat(40)}\n`), b.write(`TX ${'02'.repeat(40)}\n`)])
  const collisions = [
    await emu.waitFor((e) => e.event === 'collision' && e.radio === 'c' && e.from === 'a', { after: mark }),
    await emu.waitFor((e) => e.event === 'collision' && e.radio === 'c' && e.from === 'b', { after: mark }),
  ]
  t.equal(collisions.length, 2, 'c lost both packets to the collision')
  await emu.waitFor((e) => e.event === 'lost' && e.radio === 'a' && e.reason === 'half-duplex', { after: mark })

  // Unplug a: the emulator keeps going; b and c still talk.
  const before = emu.mark()
  await pairs.a!.kill()
  const unplug = await emu.waitFor((e) => e.event === 'unplug', { after: before })
  t.match(unplug, { radio: 'a', tty: pairs.a!.mcu })
  await a.close()
  await c.write('HELLO\nTX cc\n')
  await b.waitFor(/RX cc -97 -4\n/)
  t.notOk(emu.events.slice(before).some((e) => e.event === 'rx' && e.radio === 'a'), 'an unplugged MCU hears nothing')

  // Replug: same paths, the MCU has rebooted (no session).
  await pairs.a!.restart()
  await emu.waitFor((e) => e.event === 'replug' && e.radio === 'a', { after: before })
  const a2 = await openHostPort(pairs.a!.host)
  t.teardown(() => a2.close())
  await a2.write('STATE\nTX 01\nHELLO\nTX a2\n')
  await a2.waitFor(/STATE session=0 on=1 sf=12 resets=2\nERR NOSESSION\nOK HELLO\nOK TX/)
  await b.waitFor(/RX a2 -80 5\n/)

  // SIGTERM: a clean stop.
  const exit = await emu.stop('SIGTERM')
  t.same(exit, { code: 0, signal: null })
  t.match(emu.events.at(-1), { event: 'stopped' })
})
