/**
 * The emulator in-process (startEmulator) on real socat PTYs, with a test protocol
 * (fixtures/echo-device.ts) in place of firmware-bridge / RNode.
 */
import t, { type Test } from 'tap'
import { readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseEmulatorConfig, startEmulator, type Emulator, type EmulatorEvent } from '../../firmware-bridge/emulator/main.js'
import { openHostPort, ptyPair, requireSocat, tempDir, type HostPort, type PtyPair } from '../lib/pty.js'
import { createEchoDevice } from './fixtures/echo-device.js'

const FAST_REOPEN = { minMs: 20, maxMs: 100 }

async function until(ok: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

t.test('config validation names the offending field', async (t) => {
  const radio = { name: 'a', tty: '/tmp/x', protocol: 'rnode' }
  const bad: Array<[unknown, RegExp]> = [
    [null, /\(root\): must be an object/],
    [{ radios: [] }, /radios: must be a non-empty array/],
    [{ radios: [{ ...radio, name: '' }] }, /radios\[0\]\.name/],
    [{ radios: [radio, { ...radio, tty: '/tmp/y' }] }, /radios\[1\]\.name: "a" is used twice/],
    [{ radios: [radio, { ...radio, name: 'b' }] }, /radios\[1\]\.tty: \/tmp\/x is used twice/],
    [{ radios: [{ ...radio, protocol: 'kiss' }] }, /radios\[0\]\.protocol: "kiss" is not/],
    [{ radios: [radio], timeScale: 0 }, /timeScale: 0 is not a positive number/],
    [{ radios: [radio], seed: 1.5 }, /seed/],
    [{ radios: [radio], region: 'MARS' }, /region: "MARS" is not one of/],
    [{ radios: [radio], links: [{ from: 'a', to: 'z' }] }, /links\[0\]\.to: "z" is not a radio name/],
    [{ radios: [radio], links: [{ from: 'a', to: 'a' }] }, /links\[0\]: from and to are the same radio/],
    [{ radios: [radio, { ...radio, name: 'b', tty: '/tmp/y' }], links: [{ from: 'a', to: 'b', loss: 1.5 }] }, /links\[0\]\.loss: 1\.5 is not a probability/],
    [{ radios: [{ ...radio, config: 7 }] }, /radios\[0\]\.config: must be an object/],
  ]
  for (const [raw, re] of bad) t.throws(() => parseEmulatorConfig(raw), re, re.source)
  const ok = parseEmulatorConfig({ radios: [{ ...radio, tty: 'a-mcu', protocol: 'echo' }], factories: { echo: './e.ts#createEchoDevice' } }, '/base')
  t.same(ok.radios[0], { name: 'a', tty: '/base/a-mcu', protocol: 'echo' }, 'relative paths resolved against the config dir')
  t.equal(ok.factories?.echo, '/base/e.ts#createEchoDevice')
  // A radio config the medium rejects names the field too.
  const rejected = await startEmulator({ radios: [{ ...radio, config: { spreadingFactor: 4 } }] }, { factories: { rnode: createEchoDevice } }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.match(rejected, { name: 'ConfigRejectedError', field: 'spreadingFactor' })
})

t.test('protocol modules: clear errors when missing or wrong', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'nothing.ts'), 'export const x = 1\n')
  await t.rejects(startEmulator({ radios: [{ name: 'a', tty: join(dir, 'tty'), protocol: 'p' }], factories: { p: join(dir, 'absent.ts') } }), /protocol "p": cannot load/)
  await t.rejects(startEmulator({ radios: [{ name: 'a', tty: join(dir, 'tty'), protocol: 'p' }], factories: { p: join(dir, 'nothing.ts') } }), /exports no function createDevice or default/)
  await t.rejects(startEmulator({ radios: [{ name: 'a', tty: join(dir, 'tty'), protocol: 'p' }], factories: { p: `${join(dir, 'nothing.ts')}#make` } }), /exports no function make/)
})

interface Rig {
  emu: Emulator
  events: EmulatorEvent[]
  pairs: Record<string, PtyPair>
  hosts: Record<string, HostPort>
}

async function rig(t: Test, names: string[], extra: Record<string, unknown> = {}): Promise<Rig> {
  const dir = await tempDir(t)
  const pairs: Record<string, PtyPair> = {}
  for (const n of names) {
    const p = await ptyPair(dir, n)
    t.teardown(() => p.close())
    pairs[n] = p
  }
  const events: EmulatorEvent[] = []
  const emu = await startEmulator(
    { seed: 7, timeScale: 0.01, reopen: FAST_REOPEN, watchMs: 50, radios: names.map((n) => ({ name: n, tty: pairs[n]!.mcu, protocol: 'echo' })), ...extra },
    { factories: { echo: createEchoDevice }, onEvent: (e) => events.push(e) },
  )
  t.teardown(() => emu.stop())
  const hosts: Record<string, HostPort> = {}
  for (const n of names) {
    const h = await openHostPort(pairs[n]!.host)
    t.teardown(() => h.close())
    hosts[n] = h
  }
  return { emu, events, pairs, hosts }
}

t.test('talks to the host over a real PTY, and radios hear each other', async (t) => {
  if (!requireSocat(t)) return
  const { emu, events, hosts } = await rig(t, ['a', 'b'])
  t.match(events[0], { event: 'ready', radios: [{ name: 'a', connected: true }, { name: 'b', connected: true }] })
  const a = hosts.a!
  const b = hosts.b!
  await a.write('PING 1\n')
  await a.waitFor(/PONG 1\n/)
  await a.write('TX 0102\n')
  await a.waitFor(/ERR NOSESSION\n/)
  await a.write('HELLO\nTX c0ffee\n')
  await a.waitFor(/OK TX [\d.]+\nTXDONE [\d.]+\n/)
  await b.waitFor(/RX c0ffee -60 10\n/)
  t.match(events.map((e) => e.event), ['ready', 'tx', 'rx', 'txDone'])
  t.match(events[1], { event: 'tx', radio: 'a', bytes: 3 })
  t.match(events[2], { event: 'rx', radio: 'b', from: 'a', rssi: -60, snr: 10 })
  t.match(emu.stats().devices.a, { connected: true, unplugs: 0, protocol: { lines: 4, resets: 0 } })
  await a.write('CFG spreadingFactor=13\n')
  await a.waitFor(/ERR CONFIG spreadingFactor\n/)
})

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  t.test(`unplug (socat ${signal}) and replug: the emulator keeps running and the MCU reboots`, async (t) => {
    if (!requireSocat(t)) return
    const { emu, events, pairs, hosts } = await rig(t, ['a', 'b'])
    const a = emu.device('a')
    await hosts.a!.write('HELLO\nCFG spreadingFactor=7\nSTATE\n')
    await hosts.a!.waitFor(/STATE session=1 on=1 sf=7 resets=0\n/)

    await pairs.a!.kill(signal)
    await until(() => !a.connected, 'unplug')
    const unplug = events.find((e) => e.event === 'unplug')
    t.match(unplug, { event: 'unplug', radio: 'a', tty: pairs.a!.mcu })
    t.comment(`detected as ${(unplug as { reason: string }).reason}`)
    t.notOk(a.radio.isOn, 'an unplugged MCU is unpowered: its radio is off')
    await until(() => hosts.a!.closed, 'the host side to see it too')
    await hosts.a!.close()

    // b is unaffected, and a hears nothing while unplugged.
    await hosts.b!.write('HELLO\nTX 0b\n')
    await hosts.b!.waitFor(/TXDONE/)
    t.equal(emu.medium.radio('a')!.stats().rxFrames, 0)
    // Let the reopen backoff fail a few times.
    await new Promise((r) => setTimeout(r, 200))
    t.ok(a.stats().openFailures >= 1, `${a.stats().openFailures} reopen attempts failed while unplugged`)

    await pairs.a!.restart()
    await until(() => a.connected, 'replug')
    t.match(events.find((e) => e.event === 'replug'), { event: 'replug', radio: 'a', tty: pairs.a!.mcu })
    t.ok(a.radio.isOn)
    t.equal(a.radio.config.spreadingFactor, 9, 'radio back at its power-on config')
    const host = await openHostPort(pairs.a!.host)
    t.teardown(() => host.close())
    await host.write('STATE\n')
    await host.waitFor(/STATE session=0 on=1 sf=9 resets=2\n/) // reset at unplug and at boot
    await host.write('TX 01\n')
    await host.waitFor(/ERR NOSESSION\n/)
    await host.write('HELLO\nTX 0a0b\n')
    await hosts.b!.waitFor(/RX 0a0b -60 10\n/)
    t.match(a.stats(), { connected: true, unplugs: 1, replugs: 1 })
  })
}

t.test('the watchdog sees a device path vanish while the line itself stays up', async (t) => {
  if (!requireSocat(t)) return
  const { emu, events, pairs } = await rig(t, ['a'])
  const target = await readlink(pairs.a!.mcu)
  await rm(pairs.a!.mcu) // like udev removing /dev/ttyACM0 while socat keeps the PTY
  await until(() => !emu.device('a').connected, 'unplug by the watchdog')
  t.match(events.find((e) => e.event === 'unplug'), { radio: 'a', reason: 'path-gone' })
  await symlink(target, pairs.a!.mcu)
  await until(() => emu.device('a').connected, 'replug')
  t.match(events.find((e) => e.event === 'replug'), { radio: 'a' })
})

t.test('a tty that is not there at start is picked up when it appears', async (t) => {
  if (!requireSocat(t)) return
  const dir = await tempDir(t)
  const events: EmulatorEvent[] = []
  const emu = await startEmulator(
    { timeScale: 0.01, reopen: FAST_REOPEN, radios: [{ name: 'late', tty: join(dir, 'late-mcu'), protocol: 'echo' }] },
    { factories: { echo: createEchoDevice }, onEvent: (e) => events.push(e) },
  )
  t.teardown(() => emu.stop())
  t.match(events[0], { event: 'ready', radios: [{ name: 'late', connected: false }] })
  t.notOk(emu.device('late').radio.isOn)
  const pair = await ptyPair(dir, 'late')
  t.teardown(() => pair.close())
  await until(() => emu.device('late').connected, 'the late tty')
  const h = await openHostPort(pair.host)
  t.teardown(() => h.close())
  await h.write('PING late\n')
  await h.waitFor(/PONG late\n/)
})

t.test('stop() closes the ttys and reports stopped', async (t) => {
  if (!requireSocat(t)) return
  const { emu, events, hosts } = await rig(t, ['a'])
  await emu.stop()
  await emu.stop()
  t.equal(events.filter((e) => e.event === 'stopped').length, 1)
  t.notOk(emu.device('a').connected)
  t.ok(emu.medium.closed)
  await hosts.a!.write('PING x\n')
  await new Promise((r) => setTimeout(r, 100))
  t.notMatch(hosts.a!.received.toString(), /PONG/, 'nobody answers any more')
})
