/**
 * `kairo-gw lora` as a user runs it: the CLI process against the emulator on a socat PTY.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEFAULT_RADIO, timeOnAirMs } from '../../drivers/lora/radio.js'
import { startEmulator } from '../../firmware-bridge/emulator/main.js'
import { ptyPair, requireSocat, tempDir } from '../lib/pty.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('lora airtime: the Semtech figure, the bit rate and the duty-cycle budget', async (t) => {
  const r = await cli(['lora', 'airtime', '--sf', '12', '--bw', '125', '--bytes', '51', '--freq', '868.1', '--json'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { airtime_ms: number; frames_per_hour: number; region: string; region_problems: string[] }
  const ms = timeOnAirMs({ ...DEFAULT_RADIO, spreadingFactor: 12 }, 51)
  t.equal(out.airtime_ms, Number(ms.toFixed(3)))
  t.equal(out.frames_per_hour, Math.floor(36_000 / ms), 'EU868: 36 s of airtime per hour')
  t.same(out.region_problems, [])
  const text = await cli(['lora', 'airtime', '--sf', '7'])
  t.match(text.stdout, /airtime\s+399\.6 ms for 255 bytes/)
  const bad = await cli(['lora', 'airtime', '--sf', '13'])
  t.equal(bad.code, 2, 'a bad option is a usage error')
  t.match(bad.stderr, /--sf.*13.*5-12/)
  const region = await cli(['lora', 'airtime', '--region', 'MARS'])
  t.equal(region.code, 2)
  t.match(region.stderr, /MARS.*EU868/)
})

for (const backend of ['firmware-bridge', 'rnode'] as const) {
  t.test(`lora probe (${backend}) against the emulator on a PTY`, async (t) => {
    if (!requireSocat(t)) return
    const dir = await tempDir(t)
    const pair = await ptyPair(dir, 'gw')
    t.teardown(() => pair.close())
    const emu = await startEmulator({ seed: 1, radios: [{ name: 'gw', tty: pair.mcu, protocol: backend }] })
    t.teardown(() => emu.stop())
    const r = await cli(['lora', 'probe', pair.host, '--backend', backend, '--json'])
    t.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { ok: boolean; device: { firmware: string; mtu: number }; configured: unknown }
    t.equal(out.ok, true)
    t.match(out.device.firmware, backend === 'rnode' ? /^RNode$/ : /^kairo-fb-emulator$/, `firmware ${out.device.firmware}`)
    t.ok(out.device.mtu >= 254, `MTU ${out.device.mtu}`)
    t.equal(out.configured, null, 'nothing configured without radio options')
    const text = await cli(['lora', 'probe', pair.host, '--backend', backend, '--sf', '7', '--freq', '868.1'])
    t.equal(text.code, 0, text.stderr)
    t.match(text.stdout, /config\s+accepted: 868\.100 MHz, BW 125 kHz, SF7/)
    t.equal(emu.device('gw').radio.config.spreadingFactor, 7, 'the emulated radio took the configuration')
  })
}

t.test('lora probe: nothing answers → exit 3 naming the device; no such device → exit 1', async (t) => {
  if (!requireSocat(t)) return
  const dir = await tempDir(t)
  const pair = await ptyPair(dir, 'mute')
  t.teardown(() => pair.close())
  const r = await cli(['lora', 'probe', pair.host, '--timeout', '1500'])
  t.equal(r.code, 3, 'timeout exit code')
  t.match(r.stderr, `no firmware-bridge firmware answered on ${pair.host}`)
  const json = await cli(['lora', 'probe', join(dir, 'nope'), '--json'])
  t.equal(json.code, 1)
  t.match(JSON.parse(json.stdout), { ok: false, error: { message: /cannot open .*nope/ } })
})
