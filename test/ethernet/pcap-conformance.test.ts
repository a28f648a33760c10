/**
 * EthernetLink (libpcap) against real veth pairs: the shared Link conformance suite (both ends in
 * this namespace: pcap sends and captures on each veth end, so frames cross the pair), then what
 * is particular to the driver: MTU from the interface, unicast/broadcast addressing, malformed
 * frames counted, the interface deleted and recreated, and open() errors.
 */
import t from 'tap'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import { encodeEthernetFrame, ETHERTYPE_KAIRO } from '../../drivers/ethernet/frame.js'
import { EthernetLink } from '../../drivers/ethernet/pcap-link.js'
import type { ReceivedFrame } from '../../drivers/link.js'
import { linkConformance } from '../conformance/link.js'
import { until } from '../lib/until.js'
import { ifStats, Lab, operstate, requireEthernetLab, run } from './lab.js'

const FAST = { pollMs: 50, backoffInitialMs: 20, backoffMaxMs: 200 }

if (await requireEthernetLab(t, { cap: true })) {
  const lab = new Lab(t)

  linkConformance(t, 'EthernetLink (libpcap) over a veth pair', async () => {
    const [ia, ib] = lab.veth()
    await lab.up(ia, [])
    await lab.up(ib, [ia, ib])
    const a = new EthernetLink({ interface: ia, ...FAST, highWater: 8, queueLimit: 64 })
    const b = new EthernetLink({ interface: ib, ...FAST })
    t.equal(a.mtu, 1498, 'MTU = interface MTU (1500) - 2')
    return {
      a,
      b,
      // Around the 60-byte minimum frame (payloads of 43..45 bytes need padding or not), and the MTU.
      sizes: [1, 2, 43, 44, 45, 46, 100, 1000, 1497, a.mtu],
      unplug: async () => {
        lab.ip('link', 'set', ia, 'down')
      },
      replug: async () => {
        lab.ip('link', 'set', ia, 'up')
      },
      close: async () => {
        await a.close()
        await b.close()
      },
    }
  })

  t.test('EthernetLink on a veth pair: addressing, MTU, bad frames, a replaced interface', async (t) => {
    const [ia, ib] = lab.veth()
    await lab.up(ia, [])
    await lab.up(ib, [ia, ib])
    const a = new EthernetLink({ interface: ia, ...FAST })
    const b = new EthernetLink({ interface: ib, ...FAST })
    t.teardown(async () => {
      await a.close()
      await b.close()
    })
    t.equal(a.kind, 'ethernet')
    t.equal(a.transport, 'pcap')
    await Promise.all([a.open(), b.open()])
    t.match(a.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'our MAC is known once open')
    const gotB: ReceivedFrame[] = []
    const gotA: ReceivedFrame[] = []
    b.on('frame', (f) => gotB.push(f))
    a.on('frame', (f) => gotA.push(f))

    await t.test('broadcast and unicast arrive with from = the sender MAC; frames for another MAC do not', async (t) => {
      const txBefore = ifStats(ia).txPackets
      a.send(Buffer.from('to everyone'))
      a.send(Buffer.from('to b'), { to: b.mac!.toUpperCase() })
      a.send(Buffer.from('to a stranger'), { to: '02:00:00:00:00:01' })
      a.send(Buffer.from('last'), { to: b.mac! })
      await until('frames at b', 5000, () => gotB.some((f) => f.data.toString() === 'last'))
      t.same(
        gotB.map((f) => f.data.toString()),
        ['to everyone', 'to b', 'last'],
      )
      t.ok(
        gotB.every((f) => f.from === a.mac),
        'from is the MAC of the sending interface',
      )
      t.ok(ifStats(ia).txPackets - txBefore >= 4, 'the frames left through the veth (its counters say so)')
      t.equal(gotA.length, 0, 'a never hears its own frames')
      t.throws(() => a.send(Buffer.from('x'), { to: '10.0.0.1' }), TypeError, "'to' must be a MAC")
      gotB.length = 0
    })

    await t.test('a bad length field is counted, not emitted; other EtherTypes never reach the link', async (t) => {
      const { default: cap } = await import('cap')
      const raw = new cap.Cap()
      raw.open(ia, 'ether proto 0x88b6', 1 << 16, Buffer.alloc(65_536))
      t.teardown(() => raw.close())
      const good = encodeEthernetFrame({ dst: b.mac!, src: '02:00:00:00:00:02', payload: Buffer.from('fine') })
      const lying = Buffer.from(good)
      lying.writeUInt16BE(1000, 14) // claims 1000 bytes in a 60-byte frame
      const otherType = encodeEthernetFrame({ dst: b.mac!, src: '02:00:00:00:00:02', payload: Buffer.from('other'), etherType: ETHERTYPE_KAIRO + 1 })
      const before = b.stats().errors['rx:length'] ?? 0
      raw.send(lying)
      raw.send(otherType)
      raw.send(good)
      await until('the good frame', 5000, () => gotB.length >= 1)
      await new Promise((r) => setTimeout(r, 100))
      t.same(
        gotB.map((f) => [f.data.toString(), f.from]),
        [['fine', '02:00:00:00:00:02']],
      )
      t.equal((b.stats().errors['rx:length'] ?? 0) - before, 1, 'the lying frame is counted as rx:length')
      gotB.length = 0
    })

    await t.test('the MTU follows the interface MTU', async (t) => {
      lab.ip('link', 'set', ia, 'mtu', '1400')
      await until('MTU 1398', 5000, () => a.mtu === 1398)
      t.equal(a.mtu, 1398)
      t.throws(() => a.send(Buffer.alloc(1399)), TypeError, 'over the new MTU')
      lab.ip('link', 'set', ia, 'mtu', '1500')
      await until('MTU 1498', 5000, () => a.mtu === 1498)
      t.pass('back to 1498')
    })

    await t.test('interface deleted and created again: down, then up by itself', async (t) => {
      const downsBefore = a.stats().downs
      lab.ip('link', 'del', ia)
      await until('a down', 5000, () => a.state === 'down' && b.state !== 'up')
      t.equal(a.state, 'down')
      a.send(Buffer.from('waited for the new interface'))
      run('ip', ['link', 'add', ia, 'type', 'veth', 'peer', 'name', ib])
      run('ip', ['link', 'set', ia, 'up'])
      run('ip', ['link', 'set', ib, 'up'])
      await until('both up again', 15_000, () => a.state === 'up' && b.state === 'up')
      await until('the frame that waited', 5000, () => gotB.some((f) => f.data.toString() === 'waited for the new interface'))
      t.ok(a.stats().downs > downsBefore, 'the outage is counted')
      t.ok(Object.keys(a.stats().errors).some((k) => k.startsWith('down:')), `down reason recorded: ${JSON.stringify(a.stats().errors)}`)
      t.not(a.mac, undefined)
    })
  })

  t.test('open() errors name the interface', async (t) => {
    const missing = lab.name('x')
    const l = new EthernetLink({ interface: missing })
    await t.rejects(l.open(), new RegExp(`network interface ${missing} does not exist`))
    t.equal(l.state, 'closed')

    const [ia] = lab.veth()
    const down = new EthernetLink({ interface: ia })
    t.equal(operstate(ia), 'down')
    await t.rejects(down.open(), new RegExp(`${ia} is not running \\(admin-down\\)`))
    lab.ip('link', 'set', ia, 'up')
    await t.rejects(down.open(), new RegExp(`${ia} is not running \\(no-carrier\\)`), 'the other end is down: no carrier')

    const lo = new EthernetLink({ interface: 'lo' })
    await t.rejects(lo.open(), ConfigRejectedError, 'loopback is not an Ethernet interface')
  })
}
