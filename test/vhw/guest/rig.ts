/**
 * Guest side of test/vhw/rig.test.ts: what the rig promises a guest script — the sid kernel, the
 * repo as cwd, the test's environment, a writable overlay that never reaches the host, the
 * kernel's module autoloader working (the reason for switch_root), and gpio-sim configured
 * through configfs and observed through its sysfs attributes (no addon involved).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GpioSim, Recorder, readTrim, sh } from './lib.js'

const rec = new Recorder()
await rec.step('kernel', () => sh('uname', '-r').trim())
await rec.step('cwd', () => process.cwd())
await rec.step('echo', () => process.env.KAIRO_RIG_ECHO)
await rec.step('root filesystem', () => readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === '/')?.split(' ')[2])
await rec.step('overlay write', () => {
  // Written inside the guest's view of the repo: the tmpfs overlay takes it, the host must not see it.
  const p = join(process.cwd(), process.env.KAIRO_RIG_PROBE ?? 'missing-probe-name')
  writeFileSync(p, 'guest')
  return readFileSync(p, 'utf8')
})
await rec.step('gpiochips before gpio-sim', () => readdirSync('/dev').filter((n) => n.startsWith('gpiochip')))
await rec.step('dummy module loaded before', () => existsSync('/sys/module/dummy'))
await rec.step('autoload dummy', () => {
  // The kernel asks /sbin/modprobe for rtnl-link-dummy: the host's modprobe, the guest's modules.
  sh('ip', 'link', 'add', 'vhwdummy0', 'type', 'dummy')
  return existsSync('/sys/module/dummy') && existsSync('/sys/class/net/vhwdummy0')
})

const sim = await rec.step('gpio-sim', async () => {
  const s = await GpioSim.create('rig', { lines: 4, names: { 0: 'lora-power', 2: 'button' }, label: 'rig-sim' })
  return s
})
if (sim !== undefined) {
  await rec.step('gpio-sim chip', () => ({ path: sim.path, exists: existsSync(sim.path), chardev: readTrim(`/sys/bus/gpio/devices/${sim.chip}/dev`) !== '' }))
  await rec.step('line 2 pull default', () => ({ pull: sim.getPull(2), value: sim.value(2) }))
  await rec.step('line 2 pulled up', () => {
    sim.pull(2, 'pull-up')
    return { pull: sim.getPull(2), value: sim.value(2) }
  })
  await rec.step('line 2 pulled down', () => {
    sim.pull(2, 'pull-down')
    return { pull: sim.getPull(2), value: sim.value(2) }
  })
}
rec.done(Number(process.env.KAIRO_RIG_EXIT ?? '0'))
