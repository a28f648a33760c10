// Builds the rig's initramfs: busybox (static), scripts/vhw/init.sh as /init, and the modules
// the init needs before the host's root is reachable (virtio-9p and overlay, decompressed: the
// kernel's own decompression needs finit_module, busybox's insmod uses init_module). Written as a
// newc cpio by hand (the format is a header and padded bytes), gzip-compressed, and cached by
// the hash of what went in.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { VhwError, cacheDir } from './kernel.mjs'

const here = dirname(fileURLToPath(import.meta.url))

/** What the init loads, in this order after their dependencies. */
export const INIT_MODULES = ['9pnet_virtio', '9p', 'overlay']

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox']

export function findBusybox() {
  for (const p of BUSYBOX_CANDIDATES) {
    if (!existsSync(p)) continue
    // A dynamically linked busybox would need the host's libc inside the initramfs.
    const head = readFileSync(p).subarray(0, 1 << 20)
    if (!head.includes(Buffer.from('/lib64/ld-linux')) && !head.includes(Buffer.from('ld-linux-x86-64.so'))) return p
  }
  return undefined
}

/** modules.dep: module file → dependency files (relative to the modules dir). */
function readDeps(modules) {
  const deps = new Map()
  for (const line of readFileSync(join(modules, 'modules.dep'), 'utf8').split('\n')) {
    const [file, rest] = line.split(':')
    if (file === undefined || rest === undefined) continue
    deps.set(file, rest.trim() === '' ? [] : rest.trim().split(/\s+/))
  }
  return deps
}

/** Module files to load for `names`, dependencies first, each once. */
export function loadOrder(modules, names) {
  const deps = readDeps(modules)
  const byName = new Map()
  for (const f of deps.keys()) byName.set(basename(f).replace(/\.ko(\.[a-z0-9]+)?$/, '').replace(/-/g, '_'), f)
  const order = []
  const visit = (file, chain) => {
    if (order.includes(file)) return
    if (chain.includes(file)) throw new VhwError(`vhw: module dependency loop at ${file}`)
    // modules.dep lists the deepest dependency last.
    for (const d of [...(deps.get(file) ?? [])].reverse()) visit(d, [...chain, file])
    order.push(file)
  }
  for (const n of names) {
    const f = byName.get(n.replace(/-/g, '_'))
    if (f === undefined) throw new VhwError(`vhw: module ${n} is not in ${join(modules, 'modules.dep')} (built in, or not built by this kernel?)`)
    visit(f, [])
  }
  return order
}

function decompress(busybox, file) {
  if (file.endsWith('.ko')) return readFileSync(file)
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : file.endsWith('.gz') ? 'gzip' : undefined
  if (tool === undefined) throw new VhwError(`vhw: ${file}: unknown module compression`)
  const [cmd, args] = tool === 'zstd' ? ['zstd', ['-dc', file]] : [busybox, [tool, '-dc', file]]
  const r = spawnSync(cmd, args, { maxBuffer: 256 * 1024 * 1024 })
  if (r.error !== undefined || r.status !== 0) throw new VhwError(`vhw: cannot decompress ${file} with ${cmd}: ${r.error?.message ?? r.stderr.toString().trim()}`)
  return r.stdout
}

/** A newc ("070701") cpio archive. Entries: { name, mode, data?, rdev? }. */
export function newc(entries) {
  const parts = []
  let ino = 1
  const pad = (n) => Buffer.alloc((4 - (n % 4)) % 4)
  const hex = (n) => n.toString(16).padStart(8, '0')
  const put = ({ name, mode, data = Buffer.alloc(0), rdev = [0, 0] }) => {
    const nameBuf = Buffer.from(`${name}\0`)
    const header =
      '070701' +
      [ino++, mode, 0, 0, (mode & 0o170000) === 0o040000 ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBuf.length, 0].map(hex).join('')
    parts.push(Buffer.from(header), nameBuf, pad(110 + nameBuf.length), data, pad(data.length))
  }
  for (const e of entries) put(e)
  put({ name: 'TRAILER!!!', mode: 0 })
  return Buffer.concat(parts)
}

const DIR = 0o040755
const FILE = 0o100644
const EXEC = 0o100755
const CHR = 0o020600

/** The initramfs for `kernel` (from ensureKernel), built when the cache has none for its inputs. */
export function ensureInitramfs(kernel, { progress = () => {} } = {}) {
  const busybox = findBusybox()
  if (busybox === undefined) throw new VhwError(`vhw: no static busybox at ${BUSYBOX_CANDIDATES.join(' or ')} (apt-get install busybox-static)`)
  const init = readFileSync(join(here, 'init.sh'))
  const bb = readFileSync(busybox)
  const files = loadOrder(kernel.modules, INIT_MODULES)
  const hash = createHash('sha256')
  hash.update(init).update(bb).update(kernel.abi)
  for (const f of files) hash.update(f).update(readFileSync(join(kernel.modules, f)))
  const key = hash.digest('hex').slice(0, 16)
  const dir = join(cacheDir(), 'initramfs')
  const out = join(dir, `${kernel.abi}-${key}.cpio.gz`)
  if (existsSync(out)) return out
  progress('vhw: building the initramfs')
  const names = files.map((f) => basename(f).replace(/\.ko\.[a-z0-9]+$/, '.ko'))
  const entries = [
    ...['bin', 'dev', 'proc', 'sys', 'modules'].map((name) => ({ name, mode: DIR })),
    // The kernel opens /dev/console for init's stdio before anything is mounted.
    { name: 'dev/console', mode: CHR, rdev: [5, 1] },
    { name: 'bin/busybox', mode: EXEC, data: bb },
    { name: 'init', mode: EXEC, data: init },
    { name: 'modules.list', mode: FILE, data: Buffer.from(`${names.join('\n')}\n`) },
    ...files.map((f, i) => ({ name: `modules/${names[i]}`, mode: FILE, data: decompress(busybox, join(kernel.modules, f)) })),
  ]
  mkdirSync(dir, { recursive: true })
  const tmp = `${out}.tmp-${process.pid}`
  writeFileSync(tmp, gzipSync(newc(entries)))
  renameSync(tmp, out)
  return out
}
