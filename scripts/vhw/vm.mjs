// Boots the rig: qemu (TCG: this machine's /dev/kvm is unusable, and CI runners rarely have one)
// with the cached sid kernel, the initramfs, the host's root shared read-only and a results
// directory shared read-write, both over virtio-9p. The guest runs one script (named on the
// kernel command line) with cwd = the repo root and powers off; its exit status comes back in
// results/exit-code.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { VhwError, cacheDir, ensureKernel } from './kernel.mjs'
import { ensureInitramfs, findBusybox } from './initramfs.mjs'

const here = dirname(fileURLToPath(import.meta.url))
/** The repo this rig belongs to (any path: a CI clone may be anywhere). */
export const REPO_ROOT = resolve(here, '..', '..')
export const QEMU = 'qemu-system-x86_64'
export const GUEST_RESULTS = '/run/kairo-vhw/results'

/** What is missing on this host for the rig, one line each (empty: it can run). */
export function vhwProblems() {
  const problems = []
  if (process.platform !== 'linux' || process.arch !== 'x64') problems.push(`the rig boots an amd64 kernel with the host's root: needs linux/x64, this is ${process.platform}/${process.arch}`)
  const has = (cmd, args) => {
    const r = spawnSync(cmd, args, { stdio: 'ignore' })
    return r.error === undefined && r.status === 0
  }
  if (!has(QEMU, ['--version'])) problems.push(`${QEMU} (apt-get install qemu-system-x86)`)
  if (findBusybox() === undefined) problems.push('a static busybox (apt-get install busybox-static)')
  if (!has('depmod', ['--version'])) problems.push('depmod (apt-get install kmod)')
  const cached = existsSync(join(cacheDir(), 'current'))
  if (!cached) {
    if (!has('apt-get', ['--version']) || !has('dpkg-deb', ['--version'])) problems.push('apt-get and dpkg-deb, to fetch the sid kernel (a Debian host)')
    if (!existsSync('/usr/share/keyrings/debian-archive-keyring.gpg')) problems.push('/usr/share/keyrings/debian-archive-keyring.gpg (apt-get install debian-archive-keyring)')
  }
  return problems
}

/** Single-quoted for sh (dash in the guest, busybox ash in the initramfs). */
function shq(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`
}

/** qemu's option syntax doubles a comma inside a value. */
function qv(s) {
  return s.replace(/,/g, ',,')
}

/**
 * Boots once. opts: { script?: repo-relative guest script, command?: shell command (instead of
 * a script), env?, timeoutMs? (default 300000), results?: dir (default: a new temp dir),
 * memoryMb?, cpus?, progress?(line), onConsole?(chunk), interactive? (mon:stdio: ctrl-a x) }.
 * Resolves { dir, console, code, ms } when the guest reports its exit status; rejects with a
 * VhwError naming what went wrong (with the console's tail) otherwise.
 */
export async function bootVm(opts) {
  const progress = opts.progress ?? (() => {})
  const timeoutMs = opts.timeoutMs ?? 300_000
  let script
  if (opts.command !== undefined) {
    script = '-'
  } else {
    if (typeof opts.script !== 'string' || opts.script === '') throw new VhwError('vhw: no guest script given')
    const abs = resolve(REPO_ROOT, opts.script)
    const rel = relative(REPO_ROOT, abs)
    if (rel.startsWith('..') || isAbsolute(rel)) throw new VhwError(`vhw: the guest script ${opts.script} is outside the repo ${REPO_ROOT}`)
    if (!existsSync(abs)) throw new VhwError(`vhw: the guest script ${opts.script} does not exist (looked for ${abs})`)
    // It travels on the kernel command line, which splits at blanks.
    if (!/^[A-Za-z0-9._/+@=:-]+$/.test(rel)) throw new VhwError(`vhw: the guest script path ${rel} has characters the kernel command line cannot carry`)
    script = rel
  }
  const env = opts.env ?? {}
  for (const k of Object.keys(env)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VhwError(`vhw: env name ${JSON.stringify(k)} is not a shell variable name`)

  const kernel = await ensureKernel({ progress })
  const initrd = ensureInitramfs(kernel, { progress })
  const dir = opts.results ?? mkdtempSync(join(tmpdir(), 'kairo-vhw-'))
  const job = {
    KAIRO_VHW_ROOT: REPO_ROOT,
    KAIRO_VHW_NODE: process.execPath,
    KAIRO_VHW_MODULES: kernel.modules,
    KAIRO_VHW_STAGE2: join(here, 'stage2.sh'),
    ...env,
  }
  writeFileSync(join(dir, 'job.env'), Object.entries(job).map(([k, v]) => `export ${k}=${shq(v)}\n`).join(''))
  if (opts.command !== undefined) writeFileSync(join(dir, 'command.sh'), `${opts.command}\n`)

  const args = [
    '-accel', 'tcg,thread=multi',
    '-cpu', 'max',
    '-m', String(opts.memoryMb ?? 2048),
    '-smp', String(opts.cpus ?? 2),
    '-nographic', '-no-reboot', '-nodefaults', '-nic', 'none',
    '-serial', opts.interactive ? 'mon:stdio' : 'stdio',
    // SeaBIOS would print its banner and clear the screen on the serial console.
    '-fw_cfg', 'name=etc/sercon-port,string=0',
    '-kernel', kernel.vmlinuz,
    '-initrd', initrd,
    '-append', `console=ttyS0 quiet panic=-1 rdinit=/init kairo.script=${script}`,
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${qv(dir)},mount_tag=results,security_model=none,multidevs=remap`,
  ]
  function bootOnce() {
    progress(`vhw: booting ${kernel.abi} (qemu TCG) for ${script === '-' ? 'a shell command' : script}`)
    const started = Date.now()
    const child = spawn(QEMU, args, { stdio: [opts.interactive ? 'inherit' : 'ignore', 'pipe', 'pipe'] })
    let consoleText = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      const s = d.toString()
      consoleText += s
      opts.onConsole?.(s)
    })
    child.stderr.on('data', (d) => void (stderr += d.toString()))
    const tail = () => consoleText.replace(/\r/g, '').split('\n').slice(-40).join('\n')
    return new Promise((resolvePromise, reject) => {
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        child.kill('SIGKILL')
      }, timeoutMs)
      child.on('error', (err) => {
        clearTimeout(timer)
        reject(new VhwError(`vhw: cannot start ${QEMU}: ${err.message}`))
      })
      child.on('close', (status, signal) => {
        clearTimeout(timer)
        const ms = Date.now() - started
        // SeaBIOS clears the screen with escape sequences; they only garble a log.
        const console = consoleText.replace(/\r\n?/g, '\n').replace(/\x1b(\[[0-9;?]*[A-Za-z]|c)/g, '')
        if (timedOut) return reject(new VhwError(`vhw: the guest (${script}) did not power off within ${timeoutMs} ms; killed. Results in ${dir}. Console tail:\n${tail()}`))
        if (status !== 0) return reject(new VhwError(`vhw: ${QEMU} exited with ${status ?? signal}: ${stderr.trim()}\nConsole tail:\n${tail()}`))
        const codeFile = join(dir, 'exit-code')
        if (!existsSync(codeFile)) {
          const why = existsSync(join(dir, 'stage2-error')) ? `stage 2 failed: ${readFileSync(join(dir, 'stage2-error'), 'utf8').trim()}` : 'no exit status from the guest (init failure or kernel panic?)'
          const e = new VhwError(`vhw: ${why}. Console tail:\n${tail()}`)
          e.earlyPanic = !console.includes('vhw: guest ') && /Kernel panic/.test(console)
          return reject(e)
        }
        const code = Number(readFileSync(codeFile, 'utf8').trim())
        resolvePromise({ dir, console, code, ms })
      })
    })
  }
  // The guest kernel, under multi-threaded TCG, now and then dies in early boot before anything
  // of ours runs (seen here: an int3 oops in sched_clock_cpu while the kernel patches its own
  // code, once in some thirty boots here). Such a boot says nothing about the test: it is booted again,
  // once. A panic after the guest script started is the test's to judge and is never retried.
  let result
  for (let attempt = 1; ; attempt++) {
    try {
      result = await bootOnce()
      break
    } catch (err) {
      if (attempt >= 2 || !(err instanceof VhwError) || !err.earlyPanic) throw err
      progress('vhw: the guest kernel panicked in early boot, before the guest script started (a TCG hazard): booting again')
    }
  }
  progress(`vhw: powered off after ${(result.ms / 1000).toFixed(1)} s, guest exit ${result.code}`)
  return result
}
