/**
 * The UDP link on a real segment, run by test/udp/discovery.test.ts inside the lab's namespace a
 * (`ip netns exec <ns a> node --import=tsx test/udp/lab/side-a.ts`, KT_UDP_LAB = the lab as JSON).
 * Link a lives in this process on ifA; link b is a UdpLink in a child process in namespace b on
 * ifB (lab/peer.ts, driven through RemoteLink). Between them: two veths and a bridge.
 */
import t, { type Test } from 'tap'
import { ConfigRejectedError } from '../../../appliance/core/errors.js'
import type { ReceivedFrame } from '../../../drivers/link.js'
import { UDP_DEFAULT_GROUP_V4, UDP_DEFAULT_GROUP_V6, UdpLink, type UdpLinkOptions, type UdpNeighbour } from '../../../drivers/udp/link.js'
import { linkConformance } from '../../conformance/link.js'
import { until } from '../../lib/until.js'
import { ip, setPortA, type Lab } from './netns.js'
import { RemoteCallError, RemoteLink } from './remote.js'

const labJson = process.env.KT_UDP_LAB

function collect(link: { on(e: 'frame', f: (f: ReceivedFrame) => void): unknown }): ReceivedFrame[] {
  const got: ReceivedFrame[] = []
  link.on('frame', (f) => got.push(f))
  return got
}

function collectNeighbours(link: { on(e: 'neighbour', f: (n: UdpNeighbour) => void): unknown }): UdpNeighbour[] {
  const got: UdpNeighbour[] = []
  link.on('neighbour', (n) => got.push(n))
  return got
}

async function peerB(t: Test, lab: Lab, opts: Omit<UdpLinkOptions, 'name'>): Promise<RemoteLink> {
  const b = await RemoteLink.start(lab.nsB, { name: 'udp-b', interface: lab.ifB, ...opts })
  t.teardown(() => b.stop())
  return b
}

function linkA(t: Test, lab: Lab, opts: Omit<UdpLinkOptions, 'name'>): UdpLink {
  const a = new UdpLink({ name: 'udp-a', interface: lab.ifA, watchMs: 20, ...opts })
  t.teardown(() => a.close())
  return a
}

if (labJson === undefined) {
  t.fail('side-a.ts runs inside the lab made by test/udp/discovery.test.ts (KT_UDP_LAB is not set)')
} else {
  const lab = JSON.parse(labJson) as Lab

  t.test('IPv4: neighbours found by multicast alone, then unicast to the learnt address', async (t) => {
    const port = 4747
    const b = await peerB(t, lab, { port })
    const a = linkA(t, lab, { port })
    t.same(a.peers, [], 'no static peers')
    t.equal(a.group, UDP_DEFAULT_GROUP_V4)
    const gotA = collect(a)
    const gotB = collect(b)
    const heardByA = collectNeighbours(a)
    const heardByB = collectNeighbours(b)
    await Promise.all([a.open(), b.open()])
    t.equal(a.address(), `0.0.0.0:${port}`)

    a.send(Buffer.from('hello from a'))
    await until('b hears a', 3000, () => gotB.length >= 1)
    t.equal(gotB[0]!.data.toString(), 'hello from a')
    t.equal(gotB[0]!.from, `${lab.ipA}:${port}`, "b sees a's address")
    t.same(heardByB.map((n) => n.address), [`${lab.ipA}:${port}`], 'b learnt a (neighbour event)')
    const nb = await b.neighbours()
    t.match(nb, [{ address: `${lab.ipA}:${port}`, framesIn: 1, lastSeen: Number }], "a is in b's table")

    b.send(Buffer.from('hello from b'))
    await until('a hears b', 3000, () => gotA.length >= 1)
    t.equal(gotA[0]!.from, `${lab.ipB}:${port}`)
    t.same(heardByA.map((n) => n.address), [`${lab.ipB}:${port}`], 'a learnt b')
    t.match(a.neighbours(), [{ address: `${lab.ipB}:${port}`, framesIn: 1 }])
    t.equal(a.stats().framesIn, 1, 'a never emits its own multicast')
    t.ok(a.stats().selfHeard >= 1, 'a heard its own multicast come back, and ignored it')
    t.notOk(a.neighbours().some((n) => n.address.startsWith(`${lab.ipA}:`)), 'a is not its own neighbour')

    // Unicast to the learnt address: it does not come back to a over the group.
    const selfBefore = a.stats().selfHeard
    a.send(Buffer.from('unicast a->b'), { to: heardByA[0]!.address })
    await until('unicast at b', 3000, () => gotB.length >= 2)
    t.equal(gotB[1]!.data.toString(), 'unicast a->b')
    t.equal(a.stats().selfHeard, selfBefore, 'a unicast, not a multicast')
    await b.sendThere(Buffer.from('unicast b->a'), { to: gotB[0]!.from! })
    await until('unicast at a', 3000, () => gotA.length >= 2)
    t.equal(gotA[1]!.data.toString(), 'unicast b->a')

    // A full 1200-byte frame, both ways; one byte more is refused on both ends.
    t.equal(a.mtu, 1200)
    const big = Buffer.alloc(1200, 0x5a)
    big[0] = 0x11
    a.send(big)
    a.send(big, { to: heardByA[0]!.address })
    await until('two 1200-byte frames at b', 3000, () => gotB.length >= 4)
    t.ok(gotB.slice(2).every((f) => f.data.equals(big)), '1200 bytes arrive intact (multicast and unicast)')
    await b.sendThere(big, { to: gotB[0]!.from! })
    await until('1200 bytes at a', 3000, () => gotA.length >= 3)
    t.ok(gotA[2]!.data.equals(big))
    t.throws(() => a.send(Buffer.alloc(1201)), TypeError, 'MTU + 1 throws')
    const there = await b.sendThere(Buffer.alloc(1201)).then(
      () => null,
      (e: unknown) => e,
    )
    t.type(there, RemoteCallError, 'MTU + 1 is refused on b too')
    t.equal((there as RemoteCallError).remote.name, 'TypeError', 'with a TypeError')
    t.same(a.stats().dropped, {}, 'nothing dropped')
    t.same(a.stats().errors, {}, 'no errors')
  })

  t.test('IPv6: link-local addresses with their scope, group ff02::4b47 on the interface', async (t) => {
    const port = 4748
    const b = await peerB(t, lab, { host: '::', port })
    const a = linkA(t, lab, { host: '::', port })
    t.equal(a.group, UDP_DEFAULT_GROUP_V6)
    const gotA = collect(a)
    const gotB = collect(b)
    await Promise.all([a.open(), b.open()])
    a.send(Buffer.from('v6 hello'))
    await until('b hears a', 3000, () => gotB.length >= 1)
    t.match(gotB[0]!.from, new RegExp(`^\\[fe80::[0-9a-f:]+%${lab.ifB}\\]:${port}$`), 'from is [fe80::...%ifB]:port')
    b.send(Buffer.from('v6 hello back'))
    await until('a hears b', 3000, () => gotA.length >= 1)
    const bAddr = gotA[0]!.from!
    t.match(bAddr, new RegExp(`^\\[fe80::[0-9a-f:]+%${lab.ifA}\\]:${port}$`))
    t.same(a.neighbours().map((n) => n.address), [bAddr])
    a.send(Buffer.from('v6 unicast'), { to: bAddr })
    // Without the scope, the link adds its interface's.
    a.send(Buffer.from('v6 unicast, no scope'), { to: bAddr.replace(/%[^\]]+/, '') })
    await until('unicasts at b', 3000, () => gotB.length >= 3)
    t.same(gotB.slice(1).map((f) => f.data.toString()), ['v6 unicast', 'v6 unicast, no scope'])
    t.throws(() => a.send(Buffer.from('x'), { to: `${lab.ipB}:${port}` }), TypeError, 'an IPv4 destination on an IPv6 link is a caller error')
  })

  t.test('the group on a socket of its own: ephemeral ports, or a link bound to its address', async (t) => {
    // Ephemeral unicast ports: the group is on the default group port, on a second socket.
    const b = await peerB(t, lab, { port: 0 })
    const a = linkA(t, lab, { port: 0 })
    t.equal(a.groupPort, 4747)
    const gotA = collect(a)
    const gotB = collect(b)
    await Promise.all([a.open(), b.open()])
    const aPort = Number(a.address()!.split(':')[1])
    t.not(aPort, 4747, 'a has an ephemeral port')
    a.send(Buffer.from('from an ephemeral port'))
    await until('b hears a', 3000, () => gotB.length === 1)
    t.equal(gotB[0]!.from, `${lab.ipA}:${aPort}`, 'from is the unicast address, not the group port')
    await b.sendThere(Buffer.from('unicast to the ephemeral port'), { to: gotB[0]!.from! })
    await until('a hears b', 3000, () => gotA.length === 1)
    t.equal(gotA[0]!.data.toString(), 'unicast to the ephemeral port')
    t.equal(a.stats().framesIn, 1, 'its own multicast is still ignored')

    // Bound to the interface's address, group port = port: both sockets share the port.
    const c = linkA(t, lab, { host: lab.ipA, port: 4760 })
    const d = await peerB(t, lab, { host: lab.ipB, port: 4760 })
    const gotC = collect(c)
    const gotD = collect(d)
    await Promise.all([c.open(), d.open()])
    c.send(Buffer.from('c to the group'))
    await until('d hears c', 3000, () => gotD.length === 1)
    t.equal(gotD[0]!.from, `${lab.ipA}:4760`)
    c.send(Buffer.from('c unicast'), { to: `${lab.ipB}:4760` })
    d.send(Buffer.from('d to the group'))
    await until('both', 3000, () => gotD.length === 2 && gotC.length === 1)
    t.equal(gotD[1]!.data.toString(), 'c unicast')
    t.equal(gotC[0]!.from, `${lab.ipB}:4760`)
    t.equal(c.stats().framesIn, 1, 'c does not hear itself either')
  })

  t.test('beacons: silent neighbours are learnt, and beacons are not frames', async (t) => {
    const port = 4749
    const b = await peerB(t, lab, { port, beaconMs: 50 })
    const a = linkA(t, lab, { port, beaconMs: 50 })
    const gotA = collect(a)
    const gotB = collect(b)
    const heardByB = collectNeighbours(b)
    await Promise.all([a.open(), b.open()])
    await until('a learns b', 3000, () => a.neighbours().length === 1)
    await until('b learns a', 3000, () => heardByB.length === 1)
    t.match(a.neighbours(), [{ address: `${lab.ipB}:${port}`, framesIn: 0 }], 'b learnt from its beacons only')
    t.equal(heardByB[0]!.address, `${lab.ipA}:${port}`)
    await new Promise((r) => setTimeout(r, 200))
    t.equal(gotA.length + gotB.length, 0, 'no beacon was emitted as a frame')
    t.ok(a.stats().beaconsIn >= 2 && a.stats().beaconsOut >= 2, `beacons counted (in ${a.stats().beaconsIn}, out ${a.stats().beaconsOut})`)
    t.equal(a.stats().framesOut, 0, 'beacons are not frames sent')
    const first = a.neighbours()[0]!.lastSeen
    await until('lastSeen refreshed', 2000, () => a.neighbours()[0]!.lastSeen > first)
    t.pass('every beacon refreshes lastSeen')
  })

  t.test('an interface with multicast off: open() rejects naming the interface and the group', async (t) => {
    ip('-n', lab.nsA, 'link', 'set', lab.ifA, 'multicast', 'off')
    t.teardown(() => void ip('-n', lab.nsA, 'link', 'set', lab.ifA, 'multicast', 'on'))
    const a = linkA(t, lab, { port: 4751 })
    const err = await a.open().then(
      () => null,
      (e: unknown) => e,
    )
    t.type(err, ConfigRejectedError)
    t.equal((err as ConfigRejectedError).field, 'interface')
    t.match((err as Error).message, lab.ifA)
    t.match((err as Error).message, UDP_DEFAULT_GROUP_V4)
    t.equal(a.state, 'closed')
    // Static peers only, discovery off: the same interface carries unicast.
    const b = await peerB(t, lab, { port: 4751, discovery: false, peers: [`${lab.ipA}:4751`] })
    const a2 = linkA(t, lab, { port: 4751, discovery: false, peers: [`${lab.ipB}:4751`] })
    const gotB = collect(b)
    await Promise.all([a2.open(), b.open()])
    a2.send(Buffer.from('to the static peer'))
    await until('b gets it', 3000, () => gotB.length === 1)
    t.equal(gotB[0]!.from, `${lab.ipA}:4751`)
  })

  t.test('cable pulled at the switch: a goes down and back up, b stays up', async (t) => {
    const port = 4752
    const b = await peerB(t, lab, { port })
    const a = linkA(t, lab, { port, backoffInitialMs: 20, backoffMaxMs: 100 })
    const gotB = collect(b)
    await Promise.all([a.open(), b.open()])
    t.teardown(() => setPortA(lab, true))
    setPortA(lab, false)
    await until('a down', 3000, () => a.state === 'down')
    t.match(a.stats().errors, { [`down:interface ${lab.ifA} went away`]: 1 })
    a.send(Buffer.from('queued while the cable was out'))
    t.equal(a.stats().queued, 1)
    await new Promise((r) => setTimeout(r, 300))
    t.equal(a.state, 'down', 'stays down while the cable is out (reconnects fail)')
    t.ok(Object.keys(a.stats().errors).some((k) => k.startsWith('reconnect:')), 'failed reconnects are counted')
    t.equal(b.state, 'up', 'the other end stays up')
    setPortA(lab, true)
    await until('a up', 5000, () => a.state === 'up')
    await until('the queued frame at b', 3000, () => gotB.length === 1)
    t.equal(gotB[0]!.data.toString(), 'queued while the cable was out')
    t.equal(a.stats().downs, 1)
  })

  t.test('over the lab segment', async (t) => {
    linkConformance(t, 'UdpLink on veth + bridge, multicast broadcasts', async () => {
      const port = 4753
      const a = new UdpLink({ name: 'udp-a', port, interface: lab.ifA, watchMs: 20, backoffInitialMs: 20, backoffMaxMs: 200, highWater: 8, queueLimit: 64 })
      const b = await RemoteLink.start(lab.nsB, { name: 'udp-b', port, interface: lab.ifB, watchMs: 20 })
      return {
        a,
        b,
        sizes: [1, 100, 600, 1200],
        unplug: async () => setPortA(lab, false),
        replug: async () => setPortA(lab, true),
        close: async () => {
          setPortA(lab, true)
          await a.close()
          await b.stop()
        },
      }
    })
  })
}
