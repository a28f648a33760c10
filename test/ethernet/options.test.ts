/**
 * The raw Ethernet links' options (ConfigRejectedError naming the field) and the lazy loading of
 * their native modules. Needs no root and no interface.
 */
import t from 'tap'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import { loadNative, NativeModuleError } from '../../drivers/ethernet/native.js'
import { EthernetLink, type EthernetLinkOptions } from '../../drivers/ethernet/pcap-link.js'
import { RawIpLink, subnetBroadcast, type RawIpLinkOptions } from '../../drivers/ethernet/raw-ip-link.js'

function rejectedField(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigRejectedError) return err.field
    throw err
  }
  return undefined
}

t.test('EthernetLink options', async (t) => {
  const bad: Array<[Partial<EthernetLinkOptions>, string]> = [
    [{}, 'interface'],
    [{ interface: '' }, 'interface'],
    [{ interface: 'a/b' }, 'interface'],
    [{ interface: 'eth0:1' }, 'interface'],
    [{ interface: 'sixteen-chars-xx' }, 'interface'],
    [{ interface: '..' }, 'interface'],
    [{ interface: 'eth0', mtu: 0 }, 'mtu'],
    [{ interface: 'eth0', mtu: 70_000 }, 'mtu'],
    [{ interface: 'eth0', pollMs: 0 }, 'pollMs'],
    [{ interface: 'eth0', burst: 1.5 }, 'burst'],
    [{ interface: 'eth0', captureBufferBytes: 10 }, 'captureBufferBytes'],
  ]
  for (const [opts, field] of bad) t.equal(rejectedField(() => new EthernetLink(opts as EthernetLinkOptions)), field, `${JSON.stringify(opts)} → ${field}`)
  const err = (() => {
    try {
      new EthernetLink({ interface: 'a/b' })
    } catch (e) {
      return e as ConfigRejectedError
    }
    return undefined
  })()
  t.equal(err?.code, 'ECONFIG')
  t.match(err?.message, /interface must be a network interface name/)

  const l = new EthernetLink({ interface: 'kte-no-such' })
  t.equal(l.kind, 'ethernet')
  t.equal(l.transport, 'pcap')
  t.equal(l.name, 'ethernet:kte-no-such')
  t.equal(l.mtu, 1498, 'before open, without the interface: 1500 - 2')
  t.equal(new EthernetLink({ interface: 'kte-no-such', mtu: 1000 }).mtu, 1000, 'mtu caps it')
  t.equal(l.state, 'closed')
  t.throws(() => l.send(Buffer.from('x'), { to: 'not-a-mac' }), TypeError)
})

t.test('RawIpLink options', async (t) => {
  const bad: Array<[Partial<RawIpLinkOptions>, string]> = [
    [{ peers: ['198.18.0.2'] }, 'interface'],
    [{ interface: 'eth0' }, 'peers'],
    [{ interface: 'eth0', peers: [] }, 'peers'],
    [{ interface: 'eth0', peers: ['198.18.0.2', 'nope'] }, 'peers[1]'],
    [{ interface: 'eth0', peers: ['198.18.0.2', '::1'] }, 'peers[1]'],
    [{ interface: 'eth0', peers: '198.18.0.2' as unknown as string[] }, 'peers'],
    [{ address: '198.18.0.1', peers: ['198.18.0.1'] }, 'peers[0]'],
    [{ interface: 'eth0', broadcast: '198.18.0.256' }, 'broadcast'],
    [{ address: '198.18.0', peers: ['198.18.0.2'] }, 'address'],
    [{ interface: 'a b', peers: ['198.18.0.2'] }, 'interface'],
    [{ interface: 'eth0', peers: ['198.18.0.2'], protocol: 256 }, 'protocol'],
    [{ interface: 'eth0', peers: ['198.18.0.2'], protocol: 0 }, 'protocol'],
    [{ interface: 'eth0', peers: ['198.18.0.2'], mtu: 65_516 }, 'mtu'],
    [{ interface: 'eth0', peers: ['198.18.0.2'], ttl: 0 }, 'ttl'],
  ]
  for (const [opts, field] of bad) t.equal(rejectedField(() => new RawIpLink(opts as RawIpLinkOptions)), field, `${JSON.stringify(opts)} → ${field}`)
  const l = new RawIpLink({ interface: 'eth9', broadcast: '198.18.0.7' })
  t.equal(l.kind, 'ethernet')
  t.equal(l.transport, 'raw-ip')
  t.equal(l.mtu, 1480, '1500 - 20 by default')
  t.equal(l.protocol, 253)
  t.equal(new RawIpLink({ interface: 'eth9', peers: ['198.18.0.2'], mtu: 1400 }).mtu, 1400)
  t.throws(() => l.send(Buffer.from('x'), { to: 'aa:bb:cc:dd:ee:ff' }), TypeError)
  t.equal(subnetBroadcast('198.18.0.1', '255.255.255.248'), '198.18.0.7')
  t.equal(subnetBroadcast('10.1.2.3', '255.0.0.0'), '10.255.255.255')
  t.equal(subnetBroadcast('198.18.0.1', '255.255.255.255'), '198.18.0.1')
})

t.test('a missing native module is a clear error naming the package', async (t) => {
  const err = await loadNative('kairo-no-such-native-module', 'the test link', 'Install it with npm ci.').then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(err, NativeModuleError)
  const e = err as NativeModuleError
  t.equal(e.code, 'ENATIVE')
  t.equal(e.pkg, 'kairo-no-such-native-module')
  t.match(e.message, /^the test link needs the npm package 'kairo-no-such-native-module', which could not be loaded \(.+\)\. Install it with npm ci\.$/)
})

t.test('importing the drivers loads no native module (only open() does)', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const script = `
    import { createRequire } from 'node:module'
    await import('./drivers/ethernet/pcap-link.ts')
    await import('./drivers/ethernet/raw-ip-link.ts')
    const cache = createRequire(import.meta.url).cache
    console.log(JSON.stringify(Object.keys(cache).filter((k) => /[\\\\/](cap|raw-socket)[\\\\/]|\\.node$/.test(k))))
  `
  const r = spawnSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.same(JSON.parse(r.stdout.trim() || 'null'), [], 'no cap, no raw-socket, no .node file loaded')
})
