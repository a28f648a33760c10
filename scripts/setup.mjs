#!/usr/bin/env node
// Installs what kairo-gw needs on a fresh Debian / Raspberry Pi OS machine, then generates the
// wire code from schemas/. Idempotent and quick when nothing is missing.
//
//   node scripts/setup.mjs [start|test|bench]   (default: start)
//
// Debian packages are installed with apt-get when running as root; otherwise the exact
// apt-get line is printed and the script exits with status 2.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const mode = process.argv[2] ?? 'start'

/** Debian package → a file whose presence shows it is installed. */
/**
 * The virtual-hardware rig (scripts/vhw): qemu boots Debian sid's kernel (fetched by the rig
 * itself into ~/.cache/kairo-gw/vhw) with this host's root; the guest runs these programs.
 */
const VHW = {
  'qemu-system-x86': '/usr/bin/qemu-system-x86_64',
  'busybox-static': '/bin/busybox',
  kmod: '/sbin/depmod',
  'debian-archive-keyring': '/usr/share/keyrings/debian-archive-keyring.gpg',
  wpasupplicant: '/usr/sbin/wpa_supplicant',
  iw: '/usr/sbin/iw',
  bluez: '/usr/sbin/bluetoothd',
  'bluez-test-tools': '/usr/bin/btvirt',
  dbus: '/usr/bin/dbus-daemon',
}

const DEB = {
  start: { 'flatbuffers-compiler': '/usr/bin/flatc', socat: '/usr/bin/socat', 'libpcap-dev': '/usr/include/pcap/pcap.h', iproute2: '/sbin/ip' },
  test: {
    'flatbuffers-compiler': '/usr/bin/flatc',
    socat: '/usr/bin/socat',
    'libpcap-dev': '/usr/include/pcap/pcap.h',
    iproute2: '/sbin/ip',
    systemd: '/usr/bin/systemd-analyze',
    udev: '/usr/bin/udevadm',
    procps: '/bin/kill',
    tshark: '/usr/bin/tshark',
    ...VHW,
  },
  bench: {
    'flatbuffers-compiler': '/usr/bin/flatc',
    'libsodium-dev': '/usr/include/sodium.h',
    gcc: '/usr/bin/gcc',
    'pkg-config': '/usr/bin/pkg-config',
    socat: '/usr/bin/socat',
    'libpcap-dev': '/usr/include/pcap/pcap.h',
    iproute2: '/sbin/ip',
    ...VHW,
  },
}

function log(msg) {
  process.stderr.write(`setup: ${msg}\n`)
}

function ensureDebian(wanted) {
  const missing = Object.entries(wanted)
    .filter(([, probe]) => !existsSync(probe))
    .map(([pkg]) => pkg)
  if (missing.length === 0) return
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`
  if (process.getuid?.() !== 0) {
    log(`missing Debian packages: ${missing.join(', ')}`)
    log(`run as root:  sudo apt-get update && sudo ${line}`)
    process.exit(2)
  }
  log(`installing Debian packages: ${missing.join(', ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  let r = spawnSync('apt-get', line.split(' ').slice(1), { stdio: 'inherit', env })
  if (r.status !== 0) {
    log('apt-get install failed; refreshing package lists and trying again')
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env })
    r = spawnSync('apt-get', line.split(' ').slice(1), { stdio: 'inherit', env })
    if (r.status !== 0) {
      log(`could not install ${missing.join(', ')} (apt-get exit ${r.status})`)
      process.exit(2)
    }
  }
}

function mtime(p) {
  try {
    return statSync(p).mtimeMs
  } catch {
    return 0
  }
}

function ensureNpm() {
  const stamp = join(root, 'node_modules', '.package-lock.json')
  const lock = join(root, 'package-lock.json')
  const pkg = join(root, 'package.json')
  if (existsSync(stamp) && mtime(stamp) >= mtime(lock) && mtime(stamp) >= mtime(pkg)) return
  log('installing npm packages (npm ci)')
  const args = existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']
  const r = spawnSync('npm', args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) {
    log(`npm ${args[0]} failed with exit ${r.status}`)
    process.exit(2)
  }
}

ensureDebian(DEB[mode] ?? DEB.start)
ensureNpm()
execFileSync(process.execPath, [join(root, 'scripts', 'gen-schemas.mjs')], { stdio: 'inherit' })
