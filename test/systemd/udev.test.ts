/**
 * systemd/udev/60-kairo-gw.rules run by udev itself (`udevadm test`, systemd 252) on devices as
 * the kernel shows them in sysfs: a CP210x and a CH340 LoRa board, an RP2040 (CDC-ACM), a
 * USB-UART that is not one of ours (Prolific), a GPIO chip and /dev/rfkill.
 *
 * There are no such devices here, so the test builds their sysfs directories (uevent files,
 * attributes, subsystem links, as on a real machine) and runs udevadm in a private mount
 * namespace (unshare -m) where that tree is /sys, /dev and /run/udev are empty tmpfs, the only
 * rules are ours, and /etc/passwd and /etc/group are the ones systemd-sysusers made from
 * systemd/sysusers.d/kairo-gw.conf. Nothing outside the namespace is touched.
 * SYSTEMD_DEVICE_VERIFY_SYSFS=0 lets sd-device accept a /sys that is not sysfs (as systemd's own
 * tests do). Checked: no rule udev refuses or ignores, the groups, modes and /dev/kairo links
 * udev applies to the device nodes, and that other devices are left alone.
 *
 * Debian 12 has udev 252: `udevadm verify` (a parse-only check) arrived in 254, and this test
 * does more than it would (it runs the rules), so it does not use it.
 */
import t from 'tap'
import { promises as fsp } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { SYSUSERS, UDEV_RULES, requireRoot, requireTool, sh, tempDir } from './helpers.js'

interface FakeDevice {
  /** Name for the output files. */
  id: string
  /** Path under /sys of the device udev handles. */
  syspath: string
  /** The device node: name under /dev, major, minor. */
  node: { name: string; major: number; minor: number }
}

async function write(file: string, content: string): Promise<void> {
  await fsp.mkdir(dirname(file), { recursive: true })
  await fsp.writeFile(file, content)
}

/** `<dir>/subsystem` → `<sys>/<target>`, as a relative link like sysfs has. */
async function subsystem(sys: string, dir: string, target: string): Promise<void> {
  await fsp.mkdir(join(sys, target), { recursive: true })
  await fsp.symlink(relative(dir, join(sys, target)), join(dir, 'subsystem'))
}

interface UsbSerial {
  id: string
  port: string // USB port path, e.g. 1-3
  vid: string
  pid: string
  serial?: string
  product: string
  driver: 'cp210x' | 'ch341' | 'pl2303' | 'cdc_acm'
  tty: string
  major: number
  minor: number
}

/** A USB serial adapter on an xHCI controller at PCI 0000:00:14.0, as sysfs shows it. */
async function usbSerial(sys: string, d: UsbSerial): Promise<FakeDevice> {
  const pci = join(sys, 'devices', 'pci0000:00', '0000:00:14.0')
  await fsp.mkdir(pci, { recursive: true })
  if (!(await fsp.lstat(join(pci, 'subsystem')).catch(() => undefined))) {
    await write(join(pci, 'uevent'), 'DRIVER=xhci_hcd\nPCI_CLASS=C0330\nPCI_SLOT_NAME=0000:00:14.0\n')
    await subsystem(sys, pci, 'bus/pci')
  }
  const usb = join(pci, 'usb1', d.port)
  const busdev = 2 + Number(d.port.split('-')[1])
  await write(join(usb, 'uevent'), `MAJOR=189\nMINOR=${busdev - 1}\nDEVNAME=bus/usb/001/00${busdev}\nDEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=${d.vid}/${d.pid}/100\nTYPE=0/0/0\nBUSNUM=001\nDEVNUM=00${busdev}\n`)
  for (const [k, v] of Object.entries({ idVendor: d.vid, idProduct: d.pid, product: d.product, manufacturer: 'Test', bcdDevice: '0100', bDeviceClass: '00', ...(d.serial ? { serial: d.serial } : {}) })) {
    await write(join(usb, k), `${v}\n`)
  }
  await subsystem(sys, usb, 'bus/usb')
  const iface = join(usb, `${d.port}:1.0`)
  await write(join(iface, 'uevent'), `DEVTYPE=usb_interface\nDRIVER=${d.driver}\nPRODUCT=${d.vid}/${d.pid}/100\nINTERFACE=${d.driver === 'cdc_acm' ? '2/2/1' : '255/0/0'}\n`)
  for (const [k, v] of Object.entries({ bInterfaceNumber: '00', bInterfaceClass: d.driver === 'cdc_acm' ? '02' : 'ff', bInterfaceSubClass: '00', bInterfaceProtocol: '00' })) {
    await write(join(iface, k), `${v}\n`)
  }
  await subsystem(sys, iface, 'bus/usb')
  // ttyUSB sits under a usb-serial port device; ttyACM directly under the interface.
  const tty = d.tty.startsWith('ttyACM') ? join(iface, 'tty', d.tty) : join(iface, d.tty, 'tty', d.tty)
  await write(join(tty, 'uevent'), `MAJOR=${d.major}\nMINOR=${d.minor}\nDEVNAME=${d.tty}\n`)
  await write(join(tty, 'dev'), `${d.major}:${d.minor}\n`)
  await subsystem(sys, tty, 'class/tty')
  return { id: d.id, syspath: '/' + relative(dirname(sys), tty).replace(/^[^/]+/, 'sys'), node: { name: d.tty, major: d.major, minor: d.minor } }
}

async function plainDevice(sys: string, id: string, rel: string, sub: string, name: string, major: number, minor: number): Promise<FakeDevice> {
  const dir = join(sys, rel)
  await write(join(dir, 'uevent'), `MAJOR=${major}\nMINOR=${minor}\nDEVNAME=${name}\n`)
  await write(join(dir, 'dev'), `${major}:${minor}\n`)
  await subsystem(sys, dir, sub)
  return { id, syspath: `/sys/${rel}`, node: { name, major, minor } }
}

interface Result {
  rc: number
  props: Map<string, string>
  log: string
}

t.test('udev applies 60-kairo-gw.rules to radios, GPIO chips and rfkill, and to nothing else', async (t) => {
  if (!requireRoot(t, 'a private mount namespace for udevadm test')) return
  if (!requireTool(t, 'udevadm', 'udev')) return
  if (!requireTool(t, 'unshare', 'util-linux')) return
  if (!requireTool(t, 'systemd-sysusers', 'systemd')) return
  const dir = await tempDir(t)
  const sys = join(dir, 'sys')
  const out = join(dir, 'out')
  const rulesDir = join(dir, 'rules')
  const empty = join(dir, 'empty')
  const root = join(dir, 'root')
  for (const d of [sys, out, rulesDir, empty, join(root, 'etc')]) await fsp.mkdir(d, { recursive: true })
  await fsp.copyFile(UDEV_RULES, join(rulesDir, '60-kairo-gw.rules'))
  // The accounts: Debian's base plus what our sysusers file adds.
  await fsp.writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n')
  await fsp.writeFile(join(root, 'etc', 'group'), 'root:x:0:\ndialout:x:20:\n')
  const su = sh('systemd-sysusers', ['--root', root, SYSUSERS])
  t.equal(su.status, 0, su.stderr)
  const groupText = await fsp.readFile(join(root, 'etc', 'group'), 'utf8')
  const gid = (name: string) => Number(new RegExp(`^${name}:x:(\\d+):`, 'm').exec(groupText)![1])

  const devices = [
    await usbSerial(sys, { id: 'cp210x', port: '1-3', vid: '10c4', pid: 'ea60', serial: '0001ABCD', product: 'CP2102 USB to UART Bridge Controller', driver: 'cp210x', tty: 'ttyUSB0', major: 188, minor: 0 }),
    await usbSerial(sys, { id: 'ch340', port: '1-4', vid: '1a86', pid: '7523', product: 'USB Serial', driver: 'ch341', tty: 'ttyUSB1', major: 188, minor: 1 }),
    await usbSerial(sys, { id: 'rp2040', port: '1-5', vid: '2e8a', pid: '000a', serial: 'E6614C311B2A5F35', product: 'Pico', driver: 'cdc_acm', tty: 'ttyACM0', major: 166, minor: 0 }),
    await usbSerial(sys, { id: 'prolific', port: '1-6', vid: '067b', pid: '2303', serial: 'X1', product: 'USB-Serial Controller', driver: 'pl2303', tty: 'ttyUSB2', major: 188, minor: 2 }),
    await plainDevice(sys, 'gpiochip', 'devices/platform/soc/fe200000.gpio/gpiochip0', 'bus/gpio', 'gpiochip0', 254, 0),
    await plainDevice(sys, 'rfkill', 'devices/virtual/misc/rfkill', 'class/misc', 'rfkill', 10, 242),
  ]

  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const script = [
    'set -eu',
    `mount --bind ${q(sys)} /sys`,
    'mount -t tmpfs tmpfs /dev',
    'mkdir -p /run/udev && mount -t tmpfs tmpfs /run/udev',
    'test -d /etc/udev/rules.d',
    `mount --bind ${q(rulesDir)} /etc/udev/rules.d`,
    `for d in /usr/lib/udev/rules.d /lib/udev/rules.d; do if [ -d "$d" ]; then mount --bind ${q(empty)} "$d"; fi; done`,
    `mount --bind ${q(join(root, 'etc', 'passwd'))} /etc/passwd`,
    `mount --bind ${q(join(root, 'etc', 'group'))} /etc/group`,
    ...devices.map((d) => `mknod -m 0600 /dev/${d.node.name} c ${d.node.major} ${d.node.minor}`),
    ...devices.map(
      (d) =>
        `rc=0; SYSTEMD_DEVICE_VERIFY_SYSFS=0 SYSTEMD_LOG_LEVEL=debug udevadm test --action=add ${q(d.syspath)} >${q(join(out, `${d.id}.out`))} 2>${q(join(out, `${d.id}.err`))} || rc=$?; echo $rc >${q(join(out, `${d.id}.rc`))}`,
    ),
    `stat -c '%n %g %a' ${devices.map((d) => `/dev/${d.node.name}`).join(' ')} >${q(join(out, 'nodes'))}`,
    `if [ -d /dev/kairo ]; then find /dev/kairo -type l -printf '%P %l\\n' | sort >${q(join(out, 'links'))}; else : >${q(join(out, 'links'))}; fi`,
  ].join('\n')
  await fsp.writeFile(join(dir, 'ns.sh'), script + '\n')
  const r = sh('unshare', ['--mount', '--propagation', 'private', 'sh', join(dir, 'ns.sh')])
  t.equal(r.status, 0, `the namespace script ran: ${r.stderr}`)

  const results = new Map<string, Result>()
  for (const d of devices) {
    const stdout = await fsp.readFile(join(out, `${d.id}.out`), 'utf8')
    const props = new Map<string, string>()
    for (const line of stdout.split('\n')) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line)
      if (m) props.set(m[1]!, m[2]!)
    }
    results.set(d.id, { rc: Number(await fsp.readFile(join(out, `${d.id}.rc`), 'utf8')), props, log: await fsp.readFile(join(out, `${d.id}.err`), 'utf8') })
  }
  const nodes = new Map(
    (await fsp.readFile(join(out, 'nodes'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => {
        const [n, g, m] = l.split(' ')
        return [n!.replace('/dev/', ''), { gid: Number(g), mode: m }] as const
      }),
  )
  const links = (await fsp.readFile(join(out, 'links'), 'utf8')).trim().split('\n').filter((l) => l !== '')

  for (const [id, res] of results) {
    t.equal(res.rc, 0, `${id}: udevadm test exit 0`)
    t.equal(res.props.get('ACTION'), 'add', `${id}: udev handled the device`)
    const complaints = res.log.split('\n').filter((l) => /60-kairo-gw\.rules:\d+/.test(l) && /invalid|unknown|ignor|error|fail|not supported|deprecat/i.test(l))
    t.same(complaints, [], `${id}: udev takes every rule as written`)
  }

  const cp = results.get('cp210x')!
  t.equal(cp.props.get('KAIRO_GW_RADIO'), '1', 'CP210x: a radio')
  t.equal(cp.props.get('ID_SERIAL_SHORT'), '0001ABCD')
  t.same(cp.props.get('DEVLINKS')?.split(' ').sort(), ['/dev/kairo/lora-0001ABCD', '/dev/kairo/lora-port-pci-0000_00_14_0-usb-0_3_1_0'])
  t.same(nodes.get('ttyUSB0'), { gid: gid('dialout'), mode: '660' }, 'CP210x: dialout 0660 on the node')

  const ch = results.get('ch340')!
  t.equal(ch.props.get('KAIRO_GW_RADIO'), '1', 'CH340: a radio')
  t.equal(ch.props.get('DEVLINKS'), '/dev/kairo/lora-port-pci-0000_00_14_0-usb-0_4_1_0', 'CH340 (no serial number): the USB-port link only')
  t.same(nodes.get('ttyUSB1'), { gid: gid('dialout'), mode: '660' })

  const pico = results.get('rp2040')!
  t.equal(pico.props.get('KAIRO_GW_RADIO'), '1', 'RP2040 (any product ID of 2e8a): a radio')
  t.same(pico.props.get('DEVLINKS')?.split(' ').sort(), ['/dev/kairo/lora-E6614C311B2A5F35', '/dev/kairo/lora-port-pci-0000_00_14_0-usb-0_5_1_0'])
  t.same(nodes.get('ttyACM0'), { gid: gid('dialout'), mode: '660' })

  const pl = results.get('prolific')!
  t.equal(pl.props.get('KAIRO_GW_RADIO'), undefined, 'Prolific 067b:2303: not one of ours')
  t.equal(pl.props.get('DEVLINKS'), undefined, 'no /dev/kairo link')
  t.same(nodes.get('ttyUSB2'), { gid: 0, mode: '600' }, 'its node left as it was')

  t.same(nodes.get('gpiochip0'), { gid: gid('gpio'), mode: '660' }, `gpiochip0: group gpio (${gid('gpio')}, from sysusers) 0660`)
  t.same(nodes.get('rfkill'), { gid: gid('kairo'), mode: '660' }, `rfkill: group kairo (${gid('kairo')}) 0660`)

  t.same(links, [
    'lora-0001ABCD ../ttyUSB0',
    'lora-E6614C311B2A5F35 ../ttyACM0',
    'lora-port-pci-0000_00_14_0-usb-0_3_1_0 ../ttyUSB0',
    'lora-port-pci-0000_00_14_0-usb-0_4_1_0 ../ttyUSB1',
    'lora-port-pci-0000_00_14_0-usb-0_5_1_0 ../ttyACM0',
  ], 'the links udev made in /dev/kairo')
})
