/**
 * UdpLink on loopback, in this process: options and destinations refused with errors that name
 * the value, bind errors, addresses and the neighbour table, self-filtering, beacons, drops, and
 * a socket failing under an open link. Discovery over multicast and the cable pulled at a switch
 * are in discovery.test.ts (network namespaces); the Link conformance suite in conformance.test.ts.
 */
import dgram, { type Socket, type SocketOptions } from 'node:dgram'
import t, { type Test } from 'tap'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import type { ReceivedFrame } from '../../drivers/link.js'
import { UDP_BEACON, UDP_DEFAULT_GROUP_PORT, UDP_DEFAULT_GROUP_V4, UDP_DEFAULT_MTU, UdpLink, formatUdpAddress, parseUdpAddress, type UdpLinkOptions, type UdpNeighbour } from '../../drivers/udp/link.js'
import { until } from '../lib/until.js'
import { freeUdpPorts } from '../lib/ports.js'

function collect(link: UdpLink): ReceivedFrame[] {
  const got: ReceivedFrame[] = []
  link.on('frame', (f) => got.push(f))
  return got
}

function make(t: Test, opts: Omit<UdpLinkOptions, 'name'> & { name?: string }): UdpLink {
  const link = new UdpLink({ name: 'udp-test', host: '127.0.0.1', discovery: false, ...opts })
  t.teardown(() => link.close())
  return link
}

/** A plain socket on loopback, to send raw datagrams at a link. */
async function rawSocket(t: Test, host = '127.0.0.1'): Promise<Socket> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  await new Promise<void>((r) => s.bind(0, host, () => r()))
  t.teardown(() => new Promise<void>((r) => s.close(() => r())))
  return s
}

t.test('addresses: parse and format', async (t) => {
  t.same(parseUdpAddress('10.0.0.1:4747'), { address: '10.0.0.1', port: 4747, family: 4 })
  t.same(parseUdpAddress('[::1]:9'), { address: '::1', port: 9, family: 6 })
  t.same(parseUdpAddress('[fe80::1%eth0]:4747'), { address: 'fe80::1%eth0', port: 4747, family: 6 })
  for (const bad of ['', 'x', '10.0.0.1', '10.0.0.1:', '10.0.0.1:0', '10.0.0.1:65536', '::1:5', '[10.0.0.1]:5', 'host.example:5', '[::1]5', 42, null]) {
    t.equal(parseUdpAddress(bad), null, `${JSON.stringify(bad)} is refused`)
  }
  t.equal(formatUdpAddress('10.0.0.1', 5), '10.0.0.1:5')
  t.equal(formatUdpAddress('fe80::1%eth0', 5), '[fe80::1%eth0]:5')
})

t.test('defaults', async (t) => {
  const l = new UdpLink({ name: 'd' })
  t.equal(l.kind, 'udp')
  t.equal(l.mtu, UDP_DEFAULT_MTU)
  t.equal(l.mtu, 1200)
  t.equal(l.bitrate, 100e6)
  t.equal(l.host, '0.0.0.0')
  t.equal(l.group, UDP_DEFAULT_GROUP_V4)
  t.equal(l.groupPort, UDP_DEFAULT_GROUP_PORT, 'an ephemeral port takes the default group port')
  t.equal(new UdpLink({ name: 'd', port: 5000 }).groupPort, 5000, 'else the group port is the port')
  t.equal(new UdpLink({ name: 'd', discovery: false }).group, null)
  t.equal(new UdpLink({ name: 'd', host: '::', interface: 'eth9' }).group, 'ff02::4b47')
  t.same(new UdpLink({ name: 'd', host: '::', discovery: false, peers: ['[::1]:5'] }).peers, ['[::1]:5'])
  t.same(l.quality(), {}, 'loss unknown')
  t.equal(l.address(), null, 'no address until open')
})

t.test('bad options are refused with ConfigRejectedError naming the field and the value', async (t) => {
  const cases: [Omit<UdpLinkOptions, 'name'>, string, RegExp][] = [
    [{ peers: ['127.0.0.1:1', 'nope:12'] }, 'peers[1]', /"nope:12"/],
    [{ peers: ['127.0.0.1:1', '127.0.0.1:0'] }, 'peers[1]', /"127\.0\.0\.1:0"/],
    [{ peers: ['::1:5'] }, 'peers[0]', /"::1:5"/],
    [{ peers: ['127.0.0.1:1', '127.0.0.1:2', '[::1]:5'] }, 'peers[2]', /"\[::1\]:5" is IPv6 but the link is bound to IPv4/],
    [{ host: '::', interface: 'eth0', peers: ['127.0.0.1:5'] }, 'peers[0]', /IPv4 but the link is bound to IPv6/],
    [{ peers: 'a:1' as unknown as string[] }, 'peers', /array/],
    [{ host: 'localhost' }, 'host', /"localhost"/],
    [{ port: 70000 }, 'port', /70000/],
    [{ port: 1.5 }, 'port', /1\.5/],
    [{ group: '10.0.0.1' }, 'group', /"10\.0\.0\.1" is not an IPv4 multicast/],
    [{ group: 'ff02::1' }, 'group', /"ff02::1"/],
    [{ host: '::' }, 'interface', /ff02::4b47/],
    [{ groupPort: 0 }, 'groupPort', /0/],
    [{ mtu: 0 }, 'mtu', /0/],
    [{ mtu: 65508 }, 'mtu', /65508/],
    [{ bitrate: -1 }, 'bitrate', /-1/],
    [{ beaconMs: 5 }, 'beaconMs', /5/],
    [{ beaconMs: 100, discovery: false }, 'beaconMs', /needs discovery/],
    [{ interface: 'has space' }, 'interface', /"has space"/],
    [{ watchMs: 0 }, 'watchMs', /0/],
  ]
  for (const [opts, field, message] of cases) {
    const err = (() => {
      try {
        new UdpLink({ name: 'bad', ...opts })
      } catch (e) {
        return e
      }
      return null
    })()
    t.type(err, ConfigRejectedError, `${JSON.stringify(opts)} is refused`)
    t.equal((err as ConfigRejectedError).field, field, `field ${field}`)
    t.match((err as Error).message, message)
    t.match((err as Error).message, /^link bad: /, 'the message names the link')
  }
})

t.test('bad destinations are TypeErrors naming the value', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const l = make(t, { port })
  await l.open()
  for (const to of ['nope', '127.0.0.1', '127.0.0.1:99999', 'fe80::1:5', '', 42]) {
    t.throws(() => l.send(Buffer.from('x'), { to: to as string }), { name: 'TypeError', message: new RegExp(`destination ${JSON.stringify(JSON.stringify(to)).slice(1, -1).replace(/[.[\]]/g, '\\$&')} is not an IP 'host:port'`) }, `to ${JSON.stringify(to)}`)
  }
  t.throws(() => l.send(Buffer.from('x'), { to: '[::1]:5' }), { name: 'TypeError', message: /"\[::1\]:5" is IPv6 but the link is bound to IPv4 host 127\.0\.0\.1/ })
  t.throws(() => l.send(Buffer.alloc(UDP_DEFAULT_MTU + 1)), TypeError, 'MTU + 1')
  t.equal(l.stats().queued, 0, 'nothing was queued')
})

t.test('bind errors reject open() naming host:port', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const a = make(t, { port })
  await a.open()
  t.equal(a.address(), `127.0.0.1:${port}`)
  const b = make(t, { port, name: 'second' })
  const err = await b.open().then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  )
  t.equal(err?.code, 'EADDRINUSE')
  t.match(err?.message, `link second: cannot bind UDP address 127.0.0.1:${port}: EADDRINUSE`)
  t.equal(b.state, 'closed')
  await a.close()
  await b.open()
  t.equal(b.state, 'up', 'opens once the port is free')

  const c = make(t, { host: '203.0.113.9', port: 0, name: 'elsewhere' })
  await t.rejects(c.open(), { code: 'EADDRNOTAVAIL', message: /cannot bind UDP address 203\.0\.113\.9:0: EADDRNOTAVAIL/ })
  t.equal(c.state, 'closed')
})

t.test('the medium must be there: a missing interface, an interface without multicast', async (t) => {
  const a = make(t, { interface: 'kt-nope0', port: 0 })
  await t.rejects(a.open(), { code: 'ENODEV', message: /interface kt-nope0 is not present/ })
  t.equal(a.state, 'closed')
  // Loopback has no multicast: discovery on it is refused before anything joins.
  const b = new UdpLink({ name: 'lo-disc', interface: 'lo', port: 0 })
  await t.rejects(b.open(), { name: 'ConfigRejectedError', field: 'interface', message: /interface lo has multicast off, so discovery cannot join group 239\.255\.75\.71/ })
  t.equal(b.state, 'closed')
})

for (const host of ['127.0.0.1', '::1']) {
  t.test(`frames carry the sender's host:port and teach the neighbour table (${host})`, async (t) => {
    const [pa, pb] = (await freeUdpPorts(2, host)) as [number, number]
    const at = (p: number) => formatUdpAddress(host, p)
    const a = make(t, { host, port: pa, name: 'a' })
    const b = make(t, { host, port: pb, name: 'b', peers: [at(pa)] })
    const order: string[] = []
    const heard: UdpNeighbour[] = []
    a.on('neighbour', (n) => {
      heard.push(n)
      order.push(`neighbour ${n.address}`)
    })
    a.on('frame', (f) => order.push(`frame ${f.from}`))
    const got = collect(a)
    await Promise.all([a.open(), b.open()])
    b.send(Buffer.from('broadcast to the static peer'))
    b.send(Buffer.from('unicast'), { to: at(pa) })
    await until('two frames', 2000, () => got.length === 2)
    t.same(got.map((f) => f.data.toString()), ['broadcast to the static peer', 'unicast'])
    t.ok(got.every((f) => f.from === at(pb)), `from is ${at(pb)}`)
    t.same(order, [`neighbour ${at(pb)}`, `frame ${at(pb)}`, `frame ${at(pb)}`], 'the neighbour event comes once, before its first frame')
    t.match(heard, [{ address: at(pb), framesIn: 0, lastSeen: Number }])
    t.match(a.neighbours(), [{ address: at(pb), framesIn: 2 }])
    t.same(b.neighbours(), [], 'b heard no one')
    t.match(b.stats(), { framesOut: 2, neighbours: 0, address: at(pb) })
    // Reply to `from`.
    const gotB = collect(b)
    a.send(Buffer.from('reply'), { to: got[0]!.from! })
    await until('reply', 2000, () => gotB.length === 1)
    t.equal(gotB[0]!.from, at(pa))
  })
}

t.test('a link ignores datagrams from itself; beacons and empty datagrams are not frames', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const a = make(t, { port })
  const got = collect(a)
  await a.open()
  a.send(Buffer.from('to myself'), { to: a.address()! })
  await until('it came back', 2000, () => a.stats().selfHeard === 1)
  t.equal(got.length, 0, 'not emitted')
  t.same(a.neighbours(), [], 'not a neighbour')

  const raw = await rawSocket(t)
  const rawAddr = `127.0.0.1:${raw.address().port}`
  raw.send(UDP_BEACON, port, '127.0.0.1')
  await until('the beacon', 2000, () => a.stats().beaconsIn === 1)
  t.match(a.neighbours(), [{ address: rawAddr, framesIn: 0 }], 'a beacon teaches a neighbour')
  raw.send(Buffer.alloc(0), port, '127.0.0.1')
  await until('the empty datagram', 2000, () => a.stats().errors['empty-datagram'] === 1)
  raw.send(Buffer.from([0x00, 0x4b, 0x47, 0x42, 0x00]), port, '127.0.0.1')
  await until('a 5-byte frame', 2000, () => got.length === 1)
  t.equal(got[0]!.data.length, 5, 'only the exact 4 beacon bytes are a beacon')
  t.equal(a.stats().framesIn, 1)
})

t.test('the neighbour table is bounded: the least recently heard go first', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const a = make(t, { port, neighbourLimit: 2 })
  const events: string[] = []
  a.on('neighbour', (n) => events.push(n.address))
  await a.open()
  const raws = [await rawSocket(t), await rawSocket(t), await rawSocket(t)]
  const addr = (s: Socket) => `127.0.0.1:${s.address().port}`
  for (const s of [raws[0]!, raws[1]!, raws[0]!, raws[2]!]) {
    const before = a.stats().framesIn
    s.send(Buffer.from('hi'), port, '127.0.0.1')
    await until('frame', 2000, () => a.stats().framesIn === before + 1)
  }
  t.same(events, [addr(raws[0]!), addr(raws[1]!), addr(raws[2]!)])
  t.same(a.neighbours().map((n) => n.address), [addr(raws[0]!), addr(raws[2]!)], 'the one heard longest ago was forgotten')
  t.equal(a.neighbours()[0]!.framesIn, 2)
})

t.test('a broadcast with nowhere to go is dropped and counted', async (t) => {
  const a = make(t, { port: 0 })
  await a.open()
  const dropped: { reason: string; bytes: number }[] = []
  a.on('dropped', (d) => dropped.push(d))
  a.send(Buffer.from('nobody'))
  await until('dropped', 2000, () => dropped.length === 1)
  t.same(dropped, [{ reason: 'no-destination', bytes: 6 }])
  t.same(a.stats().dropped, { 'no-destination': 1 })
  t.equal(a.stats().framesOut, 0)
})

t.test('a socket failing under an open link: down, reconnected, working again', async (t) => {
  const [pa, pb] = (await freeUdpPorts(2)) as [number, number]
  const sockets: Socket[] = []
  const createSocket = (o: SocketOptions) => {
    const s = dgram.createSocket(o)
    sockets.push(s)
    return s
  }
  const a = make(t, { port: pa, name: 'a', peers: [`127.0.0.1:${pb}`], createSocket, backoffInitialMs: 20, backoffMaxMs: 100 })
  const b = make(t, { port: pb, name: 'b' })
  const got = collect(b)
  const states: string[] = []
  a.on('state', (s) => states.push(s))
  await Promise.all([a.open(), b.open()])
  t.equal(sockets.length, 1, 'one socket when discovery is off')

  sockets[0]!.emit('error', Object.assign(new Error('simulated'), { code: 'EIO' }))
  t.equal(a.state, 'down')
  t.equal(a.address(), null, 'the socket is released')
  a.send(Buffer.from('after the error'))
  await until('a up again', 3000, () => a.state === 'up')
  t.equal(sockets.length, 2, 'a new socket')
  t.equal(a.address(), `127.0.0.1:${pa}`, 'on the same port')
  await until('the queued frame', 2000, () => got.length === 1)
  t.equal(got[0]!.data.toString(), 'after the error')
  t.match(a.stats().errors, { EIO: 1, 'down:socket error EIO': 1 })

  // The socket closed by someone else.
  sockets[1]!.close()
  await until('a down', 2000, () => a.state === 'down')
  await until('a up', 3000, () => a.state === 'up')
  a.send(Buffer.from('after the close'))
  await until('frame', 2000, () => got.length === 2)
  t.match(a.stats(), { downs: 2, errors: { 'down:socket closed': 1 } })
  t.same(states, ['opening', 'up', 'down', 'up', 'down', 'up'])
})

t.test('close releases the port, reopen works; abort while opening', async (t) => {
  const [port] = (await freeUdpPorts(1)) as [number]
  const a = make(t, { port })
  await a.open()
  await a.close()
  t.equal(a.address(), null)
  const probe = dgram.createSocket('udp4')
  await new Promise<void>((r, j) => {
    probe.once('error', j)
    probe.bind(port, '127.0.0.1', () => r())
  })
  await new Promise<void>((r) => probe.close(() => r()))
  t.pass('the port is free after close')
  await a.open()
  t.equal(a.state, 'up')
  const opening = a.close().then(() => a.open())
  await opening
  t.equal(a.state, 'up')
  // An open aborted through its signal rejects and leaves the link closed.
  await a.close()
  const ac = new AbortController()
  const p = a.open(ac.signal)
  ac.abort(new Error('stop'))
  await t.rejects(p, { message: 'stop' })
  t.equal(a.state, 'closed')
  await a.open()
  t.equal(a.state, 'up', 'and it opens again')
})
