/**
 * EthernetLink with its peer in another network namespace (a child process under
 * `ip netns exec`): broadcast out, unicast answer back to the MAC learnt from it; a wire that
 * drops everything (tc) and a peer that pulls its cable, each seen in the link's stats and state,
 * and healed.
 */
import t from 'tap'
import { decodeEthernetFrame } from '../../drivers/ethernet/frame.js'
import { EthernetLink } from '../../drivers/ethernet/pcap-link.js'
import type { ReceivedFrame } from '../../drivers/link.js'
import { until } from '../lib/until.js'
import { Lab, requireEthernetLab, run } from './lab.js'
import { RemoteLink } from './remote.js'

const FAST = { pollMs: 50, backoffInitialMs: 20, backoffMaxMs: 200 }
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const texts = (fs: ReceivedFrame[]) => fs.map((f) => f.data.toString())

if (await requireEthernetLab(t, { cap: true })) {
  const lab = new Lab(t)

  t.test('EthernetLink and a peer in another network namespace', async (t) => {
    const [ia, ib] = lab.veth()
    const ns = lab.netns()
    lab.moveTo(ib, ns)
    lab.ipIn(ns, 'link', 'set', ib, 'up')
    await lab.up(ia)
    const a = new EthernetLink({ interface: ia, ...FAST })
    const peer = await RemoteLink.start(ns, { driver: 'ethernet', options: { interface: ib, ...FAST } })
    lab.onCleanup(() => void peer.kill())
    t.teardown(async () => {
      await a.close()
      await peer.kill()
    })
    await Promise.all([a.open(), peer.open()])
    await peer.echo('echo:')
    const atA: ReceivedFrame[] = []
    const atPeer: ReceivedFrame[] = []
    a.on('frame', (f) => atA.push(f))
    peer.on('frame', (f) => atPeer.push(f))

    await t.test('a broadcast from here is heard there; the unicast answer to the learnt MAC comes back', async (t) => {
      // A second capture on our veth end shows the frames as they are on the wire.
      const { default: cap } = await import('cap')
      const wire: Buffer[] = []
      const buf = Buffer.alloc(65_536)
      const tap = new cap.Cap()
      tap.open(ia, 'ether proto 0x88b5', 1 << 20, buf)
      tap.on('packet', (n) => wire.push(Buffer.from(buf.subarray(0, n))))
      t.teardown(() => tap.close())

      a.send(Buffer.from('hello, anyone'))
      await until('the echo', 5000, () => texts(atA).includes('echo:hello, anyone'))
      t.same(texts(atPeer), ['hello, anyone'])
      t.equal(atPeer[0]!.from, a.mac, "the peer learnt our MAC from the frame's source")
      t.equal(atA[0]!.from, peer.mac, 'the answer comes from the peer')
      t.not(peer.mac, a.mac)
      await until('both frames on the wire', 2000, () => wire.length >= 2)
      const seen = wire.map((w) => decodeEthernetFrame(w)).flatMap((d) => (d.ok ? [{ dst: d.dst.toString('hex'), text: d.payload.toString() }] : []))
      t.same(
        seen.find((s) => s.text === 'hello, anyone')?.dst,
        'ffffffffffff',
        'ours went out as a broadcast',
      )
      t.same(seen.find((s) => s.text === 'echo:hello, anyone')?.dst, a.mac!.replaceAll(':', ''), 'the answer came back unicast, to our MAC')
    })

    await t.test('a wire that drops everything: frames stop and the stats show it; healed, they flow again', async (t) => {
      // netem where the kernel has it; else a zero-length FIFO, which drops every frame too.
      let how = 'netem loss 100%'
      try {
        run('tc', ['qdisc', 'add', 'dev', ia, 'root', 'netem', 'loss', '100%'])
      } catch {
        how = 'pfifo limit 0'
        run('tc', ['qdisc', 'add', 'dev', ia, 'root', 'pfifo', 'limit', '0'])
      }
      let healed = false
      const heal = () => {
        if (!healed) run('tc', ['qdisc', 'del', 'dev', ia, 'root'])
        healed = true
      }
      t.teardown(heal)
      t.comment(`dropping with: tc qdisc ... ${how}`)
      const peerIn = (await peer.freshStats()).framesIn
      const out = a.stats().framesOut
      for (let i = 0; i < 5; i++) a.send(Buffer.from(`into the void ${i}`))
      await sleep(500)
      t.equal((await peer.freshStats()).framesIn, peerIn, 'nothing arrives at the peer')
      const dropped = Number(/dropped (\d+)/.exec(run('tc', ['-s', 'qdisc', 'show', 'dev', ia]))?.[1] ?? 0)
      t.ok(dropped >= 5, `the qdisc dropped them (${dropped})`)
      t.equal(a.state, 'up', 'the carrier is still there: the link stays up')
      if (how.startsWith('netem')) {
        // netem reports success to the sender: no Ethernet acknowledgement can tell the loss.
        t.equal(a.stats().framesOut - out, 5, 'the link put them on the wire; only the receiver can tell')
      } else {
        t.equal(a.stats().framesOut, out, 'none counted as sent')
        t.ok((a.stats().errors['tx:ENOBUFS'] ?? 0) >= 1, `the kernel refused them and the link counts it (${JSON.stringify(a.stats().errors)})`)
        t.equal(a.stats().queued, 5, 'they wait in the queue (backpressure, not loss)')
      }
      heal()
      a.send(Buffer.from('after the heal'))
      await until('the frame after the heal', 5000, () => texts(atPeer).includes('after the heal'))
      if (!how.startsWith('netem')) t.ok([0, 1, 2, 3, 4].every((i) => texts(atPeer).includes(`into the void ${i}`)), 'the refused frames went out after the heal')
      await until('its echo', 5000, () => texts(atA).includes('echo:after the heal'))
      t.pass('the answer comes back too')
    })

    await t.test("the peer pulls its cable: our link goes down (no carrier) and comes back up with what waited", async (t) => {
      const downs = a.stats().downs
      lab.ipIn(ns, 'link', 'set', ib, 'down')
      await until('both down', 5000, () => a.state === 'down' && peer.state === 'down')
      t.equal(a.stats().downs, downs + 1, 'the outage is counted')
      t.ok((a.stats().errors['down:no-carrier'] ?? 0) >= 1, `reason: no carrier (${JSON.stringify(a.stats().errors)})`)
      const queued = a.stats().queued
      a.send(Buffer.from('waited for the peer'))
      t.equal(a.stats().queued, queued + 1, `queued while down (with ${queued} sent just before the cut, to be sent again)`)
      lab.ipIn(ns, 'link', 'set', ib, 'up')
      await until('both up', 10_000, () => a.state === 'up' && peer.state === 'up')
      await until('the frame that waited, and its echo', 5000, () => texts(atA).includes('echo:waited for the peer'))
      t.ok(texts(atPeer).includes('waited for the peer'))
    })
  })
}
