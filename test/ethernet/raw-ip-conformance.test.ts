/**
 * RawIpLink (raw IPv4 sockets, protocol 253) against a real veth pair. Two addresses in one
 * namespace would be delivered locally, never crossing the veth, so end B lives in a network
 * namespace of its own, driven by a child process (peer.ts via RemoteLink). The veth counters
 * show that the datagrams cross the wire.
 */
import t from 'tap'
import { RawIpLink } from '../../drivers/ethernet/raw-ip-link.js'
import type { ReceivedFrame } from '../../drivers/link.js'
import { linkConformance } from '../conformance/link.js'
import { until } from '../lib/until.js'
import { ifStats, Lab, requireEthernetLab, testSubnet } from './lab.js'
import { RemoteLink } from './remote.js'

const FAST = { pollMs: 50, backoffInitialMs: 20, backoffMaxMs: 200 }

/** veth A here with address `a`, veth B in a new namespace with address `b` (a /30 or /29). */
async function segment(lab: Lab, prefix = 30): Promise<{ ia: string; ib: string; ns: string; a: string; b: string; net: ReturnType<typeof testSubnet> }> {
  const net = testSubnet()
  const [ia, ib] = lab.veth()
  const ns = lab.netns()
  lab.moveTo(ib, ns)
  lab.ip('addr', 'add', `${net.a}/${prefix}`, 'dev', ia)
  lab.ipIn(ns, 'addr', 'add', `${net.b}/${prefix}`, 'dev', ib)
  lab.ipIn(ns, 'link', 'set', ib, 'up')
  await lab.up(ia)
  return { ia, ib, ns, a: net.a, b: net.b, net }
}

if (await requireEthernetLab(t, { rawSocket: true })) {
  const lab = new Lab(t)

  linkConformance(t, 'RawIpLink (protocol 253) over a veth pair, peer in a network namespace', async () => {
    const s = await segment(lab)
    const a = new RawIpLink({ interface: s.ia, peers: [s.b], ...FAST, highWater: 8, queueLimit: 64 })
    const b = await RemoteLink.start(s.ns, { driver: 'raw-ip', options: { interface: s.ib, peers: [s.a], ...FAST } })
    lab.onCleanup(() => void b.kill())
    return {
      a,
      b,
      sizes: [1, 2, 20, 100, 1000, 1479, a.mtu],
      unplug: async () => {
        lab.ip('link', 'set', s.ia, 'down')
      },
      replug: async () => {
        lab.ip('link', 'set', s.ia, 'up')
      },
      close: async () => {
        await a.close()
        await b.close()
        await b.kill()
      },
    }
  })

  t.test('RawIpLink: crosses the wire, from = source IP, broadcast address and peer lists, unicast replies', async (t) => {
    // A /29: room for a peer that does not exist (a second copy of each broadcast goes there).
    const s = await segment(lab, 29)
    const ghost = s.b.replace(/\d+$/, (d) => String(Number(d) + 1))
    const bcast = s.a.replace(/\d+$/, (d) => String((Number(d) & ~7) | 7))
    const a = new RawIpLink({ interface: s.ia, broadcast: bcast, ...FAST })
    const viaPeers = new RawIpLink({ name: 'via-peers', address: s.a, peers: [s.b, ghost], ...FAST })
    const b = await RemoteLink.start(s.ns, { driver: 'raw-ip', options: { interface: s.ib, peers: [s.a], broadcast: bcast, ...FAST } })
    t.teardown(async () => {
      await a.close()
      await viaPeers.close()
      await b.kill()
    })
    t.equal(a.kind, 'ethernet')
    t.equal(a.transport, 'raw-ip')
    t.equal(a.mtu, 1480, 'MTU 1500 - 20')
    t.equal(a.protocol, 253)
    await Promise.all([a.open(), b.open(), viaPeers.open()])
    t.equal(a.address, s.a, 'our address is the interface address')
    t.equal(viaPeers.interfaceName, s.ia, 'the interface is found from the address')
    await b.echo('echo:')
    const atB: ReceivedFrame[] = []
    const atA: ReceivedFrame[] = []
    b.on('frame', (f) => atB.push(f))
    a.on('frame', (f) => atA.push(f))

    const tx = ifStats(s.ia).txPackets
    a.send(Buffer.from('to the broadcast address'))
    await until('the echo', 5000, () => atA.some((f) => f.data.toString() === 'echo:to the broadcast address'))
    t.same(atB.map((f) => [f.data.toString(), f.from]), [['to the broadcast address', s.a]], 'b got it once, from our IP')
    t.equal(atA.find((f) => f.data.toString().startsWith('echo:'))!.from, s.b, 'the unicast reply comes from b')
    t.ok(ifStats(s.ia).txPackets > tx, 'the datagram left through the veth')

    atB.length = 0
    viaPeers.send(Buffer.from('to each peer'))
    viaPeers.send(Buffer.from('unicast'), { to: s.b })
    await until('both at b', 5000, () => atB.length >= 2)
    await new Promise((r) => setTimeout(r, 100))
    t.same(
      atB.map((f) => f.data.toString()),
      ['to each peer', 'unicast'],
      'a peer list broadcast reaches the real peer once',
    )
    t.equal(viaPeers.stats().framesOut, 2)
    t.throws(() => a.send(Buffer.from('x'), { to: 'aa:bb:cc:dd:ee:ff' }), TypeError, "'to' must be an IPv4 address")
  })

  t.test('RawIpLink open() errors name the interface or address', async (t) => {
    const missing = lab.name('x')
    await t.rejects(new RawIpLink({ interface: missing, peers: ['198.18.0.1'] }).open(), new RegExp(`network interface ${missing} does not exist`))
    await t.rejects(new RawIpLink({ address: '198.18.255.254', peers: ['198.18.0.1'] }).open(), /no network interface has address 198\.18\.255\.254/)
    const [ia] = lab.veth()
    await t.rejects(new RawIpLink({ interface: ia, peers: ['198.18.0.1'] }).open(), new RegExp(`${ia} is not running \\(admin-down\\)`))
  })
}
