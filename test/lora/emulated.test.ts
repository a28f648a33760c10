/**
 * The emulated LoRa link (drivers/lora/emulated.ts) on its real parts: socat makes a PTY pair in
 * the given dir, the real LoRaLink driver handshakes with the in-process MCU emulator, frames go
 * on the emulated air; close() stops socat and removes the PTY links; a process killed with
 * SIGKILL leaves no socat behind.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { EmulatedLoRaLink } from '../../drivers/lora/emulated.js'
import { until } from '../lib/until.js'

const HERE = fileURLToPath(new URL('.', import.meta.url))

/** PIDs of the socat processes whose command line names `dir`. */
function socatsIn(dir: string): number[] {
  const r = spawnSync('pgrep', ['-f', `socat pty,raw,echo=0,link=${dir}/`], { encoding: 'utf8' })
  return r.stdout.split('\n').filter(Boolean).map(Number)
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kd-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('open, send, close, open again', async (t) => {
  const dir = tempDir()
  const link = new EmulatedLoRaLink({ name: 'lora0', dir, contention: true })
  t.teardown(() => link.close())
  await link.open()
  t.equal(link.state, 'up')
  t.ok(existsSync(link.hostTty) && existsSync(link.mcuTty), 'the PTY pair is in the dir')
  t.equal(socatsIn(dir).length, 1, 'one socat')
  const stats = link.stats()
  t.equal(stats.device?.firmware, 'kairo-fb-emulator', 'the driver handshook with the emulated firmware')
  await link.send(Buffer.alloc(40, 7))
  // The frame waits for its backoff slot and its airtime; then the emulated radio has sent it.
  await until('the frame on the emulated air', 15_000, () => (link.emulatorStats()?.radios.lora0?.txFrames ?? 0) >= 1)
  await until('the driver counts it', 5000, () => link.stats().framesOut === 1)
  t.equal(link.stats().framesOut, 1, 'the driver counted it')

  await link.close()
  t.equal(link.emulatorStats(), null, 'the emulator stopped')
  await until('socat gone', 5000, () => socatsIn(dir).length === 0)
  t.notOk(existsSync(link.hostTty), 'the PTY links are gone with socat')

  await link.open()
  t.equal(link.state, 'up', 'a closed link opens again (a new socat and emulator)')
  t.equal(socatsIn(dir).length, 1)
})

t.test('a process killed with SIGKILL leaves no socat behind', async (t) => {
  const dir = tempDir()
  const child = spawn(process.execPath, ['--import=tsx', join(HERE, 'emulated-child.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => (d.toString().includes('up') ? resolve() : undefined))
    child.once('exit', (code) => reject(new Error(`child exited ${String(code)} before its link was up`)))
  })
  t.equal(socatsIn(dir).length, 1, 'socat runs while its parent does')
  child.kill('SIGKILL')
  await exited
  await until('socat gone with its parent', 5000, () => socatsIn(dir).length === 0)
  t.pass('no socat left')
})

t.test('setRadio: the firmware switches the radio off and confirms; the link takes no more frames; a closed link refuses', async (t) => {
  const dir = tempDir()
  const link = new EmulatedLoRaLink({ name: 'lora0', dir, contention: true })
  t.teardown(() => link.close())
  await link.open()
  t.equal(link.emulatorStats()?.radios.lora0?.on, 1, 'on after open')
  await link.setRadio(false, 2000)
  t.equal(link.emulatorStats()?.radios.lora0?.on, 0, 'the emulated radio is off once setRadio resolves')
  await link.close()
  await t.rejects(link.setRadio(false, 100), { name: 'RadioError', message: /link lora0: the radio cannot be switched off: the link is not open/ })
  await link.open()
  t.equal(link.emulatorStats()?.radios.lora0?.on, 1, 'opening the link switches it on again')
})
