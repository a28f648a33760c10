/**
 * The virtual-hardware rig itself (scripts/vhw/, test/lib/vhw.ts), in one boot: the guest runs
 * Debian sid's kernel, in the repo, with the test's environment byte for byte, on a writable
 * overlay the host never sees, with the kernel's module autoloader working; gpio-sim comes up
 * through configfs and its sysfs attributes follow a pull; the guest's exit status comes back.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { REPO_ROOT, ensureKernel } from '../../scripts/vhw/index.mjs'
import { readObservations, requireVhw, runVm } from '../lib/vhw.js'

t.setTimeout(10 * 60_000)

t.test('a guest script in the rig', async (t) => {
  if (!requireVhw(t)) return
  // Quotes, a newline, shell syntax: the environment travels through a shell file.
  const echo = `it's "quoted" $HOME \`id\` \\ ; & | *\nsecond line`
  const probe = `.vhw-probe-${process.pid}-${Date.now()}`
  const vm = await runVm(t, { script: 'test/vhw/guest/rig.ts', env: { KAIRO_RIG_ECHO: echo, KAIRO_RIG_PROBE: probe, KAIRO_RIG_EXIT: '7' } })
  t.comment(`boot + guest script: ${(vm.ms / 1000).toFixed(1)} s`)
  t.equal(vm.code, 7, "the guest script's exit status comes back")
  const o = readObservations(t, vm)
  const kernel = await ensureKernel()
  t.equal(o.kernel, kernel.abi, `the guest runs the cached sid kernel (${kernel.abi})`)
  t.equal(o.cwd, REPO_ROOT, 'cwd is the repo root')
  t.equal(o.echo, echo, 'the environment arrives byte for byte')
  t.equal(o['root filesystem'], 'overlay', '/ is the overlay on the host root')
  t.equal(o['overlay write'], 'guest', 'the guest can write in its view of the repo')
  t.notOk(existsSync(join(REPO_ROOT, probe)), 'what the guest wrote never reaches the host')
  t.same(o['gpiochips before gpio-sim'], [], 'no GPIO chip until gpio-sim is configured')
  t.equal(o['dummy module loaded before'], false)
  t.equal(o['autoload dummy'], true, "the kernel's module autoloader runs the host's modprobe on the sid modules")
  t.match(o['gpio-sim'], { device: /^gpio-sim\.\d+$/, chip: /^gpiochip\d+$/, label: 'rig-sim' })
  t.match(o['gpio-sim chip'], { path: /^\/dev\/gpiochip\d+$/, exists: true, chardev: true })
  t.same(o['line 2 pull default'], { pull: 'pull-down', value: 0 }, 'an unrequested line follows its pull: down by default')
  t.same(o['line 2 pulled up'], { pull: 'pull-up', value: 1 })
  t.same(o['line 2 pulled down'], { pull: 'pull-down', value: 0 })
  t.match(vm.console, /vhw: guest \S+ running test\/vhw\/guest\/rig\.ts/, 'the console carries the guest banner')
})
