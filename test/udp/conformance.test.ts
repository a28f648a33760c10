/**
 * The Link conformance suite on loopback: two UdpLinks with static peers to each other and
 * discovery off (loopback has no multicast), over IPv4 and IPv6.
 *
 * No unplug here: loopback cannot be pulled out from under a link honestly, and a test hook that
 * pretends would test the hook. The suite's unplug runs on a real segment instead, with the cable
 * pulled at a bridge (test/udp/discovery.test.ts, lab/side-a.ts); a socket failing under the link
 * is tested in link.test.ts.
 */
import t from 'tap'
import { UdpLink } from '../../drivers/udp/link.js'
import { linkConformance } from '../conformance/link.js'
import { freeUdpPorts } from '../lib/ports.js'

for (const host of ['127.0.0.1', '::1']) {
  linkConformance(t, `UdpLink on loopback ${host}`, async () => {
    const [pa, pb] = (await freeUdpPorts(2, host)) as [number, number]
    const at = (port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)
    const common = { host, discovery: false, highWater: 8, queueLimit: 64 }
    const a = new UdpLink({ name: 'udp-a', port: pa, peers: [at(pb)], ...common })
    const b = new UdpLink({ name: 'udp-b', port: pb, peers: [at(pa)], ...common })
    return {
      a,
      b,
      sizes: [1, 100, 600, 1200],
      close: async () => {
        await a.close()
        await b.close()
      },
    }
  })
}
