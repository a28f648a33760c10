// Fetches and caches the Debian sid kernel the virtual-hardware rig boots. Only sid's kernel has
// CONFIG_GPIO_SIM=m (bookworm, backports and trixie do not), so the rig cannot use the host's.
//
// The host's apt state is never touched: apt-get runs with a configuration file of its own
// (sources list, lists, cache, status all under the cache dir) layered on the host's apt.conf.d,
// so the host's proxy and validity settings still apply. The version is resolved from
// linux-image-amd64 each time the cache is refreshed, never hard-coded: sid moves.
//
// Cache layout ($KAIRO_VHW_CACHE, default ~/.cache/kairo-gw/vhw):
//   apt/                      private apt configuration and state
//   kernels/<abi>/vmlinuz     the kernel image
//   kernels/<abi>/modules/    what /lib/modules/<abi> holds in the guest (depmod run)
//   kernels/<abi>/meta.json   packages and versions it came from
//   current                   the abi in use (one line)
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

export class VhwError extends Error {
  constructor(message) {
    super(message)
    this.name = 'VhwError'
  }
}

export function cacheDir() {
  const dir = process.env.KAIRO_VHW_CACHE
  if (dir !== undefined && dir !== '') return dir
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kairo-gw', 'vhw')
}

const MIRROR = () => process.env.KAIRO_VHW_MIRROR || 'http://deb.debian.org/debian'
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
const FLAVOUR = 'amd64'

/** Runs a command; throws a VhwError naming it and quoting its stderr when it fails. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts })
  if (r.error !== undefined) {
    const hint = r.error.code === 'ENOENT' ? ` (${cmd} is not installed)` : ''
    throw new VhwError(`vhw: cannot run ${cmd}${hint}: ${r.error.message}`)
  }
  if (r.status !== 0) {
    const err = (r.stderr || r.stdout || '').trim().split('\n').slice(-8).join('\n')
    throw new VhwError(`vhw: ${cmd} ${args.join(' ')} exited with ${r.status}:\n${err}`)
  }
  return r.stdout
}

function aptConfig(cache) {
  const apt = join(cache, 'apt')
  for (const d of ['parts', 'prefs', 'lists/partial', 'cache/archives/partial', 'state']) mkdirSync(join(apt, d), { recursive: true })
  if (!existsSync(join(apt, 'state', 'status'))) writeFileSync(join(apt, 'state', 'status'), '')
  if (!existsSync(KEYRING)) throw new VhwError(`vhw: ${KEYRING} is missing (apt-get install debian-archive-keyring): it verifies the sid kernel packages`)
  writeFileSync(join(apt, 'sources.list'), `deb [signed-by=${KEYRING}] ${MIRROR()} sid main\n`)
  const q = (p) => JSON.stringify(p)
  // Read after the host's configuration (apt-get -c), so every directory and hook below wins;
  // the hooks are cleared because they belong to the host's package state (appstream refresh,
  // docker cleanup), not to this private download.
  const conf = [
    `Dir::Etc::SourceList ${q(join(apt, 'sources.list'))};`,
    `Dir::Etc::SourceParts ${q(join(apt, 'parts'))};`,
    `Dir::Etc::Preferences ${q(join(apt, 'prefs', 'none'))};`,
    `Dir::Etc::PreferencesParts ${q(join(apt, 'prefs'))};`,
    `Dir::State ${q(join(apt, 'state'))};`,
    `Dir::State::Lists ${q(join(apt, 'lists'))};`,
    `Dir::State::status ${q(join(apt, 'state', 'status'))};`,
    `Dir::Cache ${q(join(apt, 'cache'))};`,
    'Dir::Cache::pkgcache "";',
    'Dir::Cache::srcpkgcache "";',
    `APT::Architecture "${FLAVOUR}";`,
    '#clear APT::Architectures;',
    `APT::Architectures { "${FLAVOUR}"; };`,
    // root's home is not readable by the _apt sandbox user; downloading as root is fine here.
    'APT::Sandbox::User "root";',
    '#clear APT::Update::Pre-Invoke;',
    '#clear APT::Update::Post-Invoke;',
    '#clear APT::Update::Post-Invoke-Success;',
    '#clear DPkg::Pre-Invoke;',
    '#clear DPkg::Post-Invoke;',
    '#clear Acquire::IndexTargets::deb::DEP-11;',
    '#clear Acquire::IndexTargets::deb::DEP-11-icons;',
    '#clear Acquire::IndexTargets::deb::DEP-11-icons-small;',
    '#clear Acquire::IndexTargets::deb::DEP-11-icons-large;',
    '#clear Acquire::IndexTargets::deb::DEP-11-icons-hidpi;',
    '#clear Acquire::IndexTargets::deb::DEP-11-icons-large-hidpi;',
    'Acquire::Languages "none";',
    '',
  ].join('\n')
  const file = join(apt, 'apt.conf')
  writeFileSync(file, conf)
  return file
}

/** Depends of `pkg` in the private sid lists: names only, alternatives flattened. */
function depends(conf, pkg) {
  const out = run('apt-cache', ['-c', conf, 'show', '--no-all-versions', pkg])
  const line = /^Depends: (.*)$/m.exec(out)?.[1] ?? ''
  return line
    .split(/[,|]/)
    .map((d) => d.trim().split(/[\s(]/)[0])
    .filter(Boolean)
}

/**
 * Resolves the kernel sid ships today: linux-image-amd64 → linux-image-<abi> → the packages of
 * that abi (linux-binary-, linux-modules-, linux-base-<abi> in the split layout; older layouts
 * put everything in linux-image-<abi>, which is downloaded either way).
 */
function resolve(conf, progress) {
  progress('vhw: updating the private sid package list')
  run('apt-get', ['-c', conf, '-q', 'update'])
  const meta = `linux-image-${FLAVOUR}`
  const image = depends(conf, meta).find((d) => d.startsWith('linux-image-') && d !== meta)
  if (image === undefined) throw new VhwError(`vhw: ${meta} in sid depends on no linux-image-<version> package`)
  const abi = image.slice('linux-image-'.length)
  const pkgs = [image, ...depends(conf, image).filter((d) => d.endsWith(`-${abi}`) && /^linux-(binary|modules|base)-/.test(d))]
  return { abi, pkgs: [...new Set(pkgs)] }
}

function findFile(root, name) {
  const stack = [root]
  while (stack.length > 0) {
    const dir = stack.pop()
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) stack.push(p)
      else if (e.name === name || e.name.startsWith(`${name}-`)) return p
    }
  }
  return undefined
}

function download(cache, conf, abi, pkgs, progress) {
  const tmp = join(cache, 'kernels', `.tmp-${process.pid}`)
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(join(tmp, 'debs'), { recursive: true })
  try {
    progress(`vhw: downloading ${pkgs.join(' ')} (about 130 MB, once)`)
    run('apt-get', ['-c', conf, '-q', 'download', ...pkgs], { cwd: join(tmp, 'debs') })
    const x = join(tmp, 'x')
    mkdirSync(x)
    for (const deb of readdirSync(join(tmp, 'debs'))) run('dpkg-deb', ['-x', join(tmp, 'debs', deb), x])
    // usr-merged packages ship usr/lib/modules; older ones lib/modules.
    const base = existsSync(join(x, 'usr', 'lib', 'modules', abi)) ? join(x, 'usr') : x
    const mods = join(base, 'lib', 'modules', abi)
    if (!existsSync(mods)) throw new VhwError(`vhw: the packages ${pkgs.join(' ')} hold no lib/modules/${abi}`)
    const vmlinuz = findFile(x, 'vmlinuz')
    if (vmlinuz === undefined) throw new VhwError(`vhw: the packages ${pkgs.join(' ')} hold no vmlinuz`)
    progress(`vhw: depmod for ${abi}`)
    run('depmod', ['-b', base, abi])
    const out = join(tmp, 'kernel')
    mkdirSync(out)
    renameSync(vmlinuz, join(out, 'vmlinuz'))
    renameSync(mods, join(out, 'modules'))
    rmSync(join(out, 'modules', 'vmlinuz'), { force: true })
    const versions = pkgs.map((p) => run('dpkg-deb', ['-f', join(tmp, 'debs', readdirSync(join(tmp, 'debs')).find((d) => d.startsWith(`${p}_`)) ?? ''), 'Version']).trim())
    writeFileSync(join(out, 'meta.json'), `${JSON.stringify({ abi, packages: pkgs.map((p, i) => ({ name: p, version: versions[i] })), mirror: MIRROR(), fetched: new Date().toISOString() }, null, 2)}\n`)
    const dest = join(cache, 'kernels', abi)
    rmSync(dest, { recursive: true, force: true })
    renameSync(out, dest)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

function complete(dir) {
  return existsSync(join(dir, 'vmlinuz')) && existsSync(join(dir, 'modules', 'modules.dep.bin')) && existsSync(join(dir, 'meta.json'))
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/**
 * One fetcher at a time per cache (parallel test files may all find it empty): a lock directory
 * holding the owner's pid; a lock whose owner is gone is taken over.
 */
async function withLock(cache, progress, fn) {
  const lock = join(cache, '.lock')
  let told = false
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, 'pid'), String(process.pid))
      break
    } catch (err) {
      if (err.code !== 'EEXIST') throw new VhwError(`vhw: cannot lock the cache ${cache}: ${err.message}`)
      let owner = NaN
      try {
        owner = Number(readFileSync(join(lock, 'pid'), 'utf8'))
      } catch {}
      const age = (() => {
        try {
          return Date.now() - statSync(lock).mtimeMs
        } catch {
          return 0
        }
      })()
      // No pid after a few seconds: its owner died between mkdir and writing it.
      if ((Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) || (Number.isNaN(owner) && age > 10_000)) {
        rmSync(lock, { recursive: true, force: true })
        continue
      }
      if (!told) progress(`vhw: waiting for another fetch of the kernel (pid ${owner}) to finish`)
      told = true
      await new Promise((r) => setTimeout(r, 500))
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/**
 * The cached kernel, fetched when there is none (or when `refresh` asks for sid's current one).
 * Returns { abi, vmlinuz, modules, meta }.
 */
export async function ensureKernel({ refresh = false, progress = () => {} } = {}) {
  const cache = cacheDir()
  mkdirSync(join(cache, 'kernels'), { recursive: true })
  const cached = () => {
    const abi = existsSync(join(cache, 'current')) ? readFileSync(join(cache, 'current'), 'utf8').trim() : ''
    const dir = join(cache, 'kernels', abi)
    return abi !== '' && complete(dir) ? { abi, dir } : undefined
  }
  let found = refresh ? undefined : cached()
  if (found === undefined) {
    found = await withLock(cache, progress, () => {
      const again = refresh ? undefined : cached()
      if (again !== undefined) return again
      const conf = aptConfig(cache)
      const { abi, pkgs } = resolve(conf, progress)
      const dir = join(cache, 'kernels', abi)
      if (complete(dir)) progress(`vhw: sid's kernel ${abi} is already cached`)
      else download(cache, conf, abi, pkgs, progress)
      writeFileSync(join(cache, `current.tmp-${process.pid}`), `${abi}\n`)
      renameSync(join(cache, `current.tmp-${process.pid}`), join(cache, 'current'))
      return { abi, dir }
    })
  }
  return {
    abi: found.abi,
    vmlinuz: join(found.dir, 'vmlinuz'),
    modules: join(found.dir, 'modules'),
    meta: JSON.parse(readFileSync(join(found.dir, 'meta.json'), 'utf8')),
  }
}
