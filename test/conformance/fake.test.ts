import t from 'tap'
import { createFakeLinkPair } from '../../drivers/fake/link.js'
import { linkConformance } from './link.js'

linkConformance(t, 'fake link pair', async () => {
  const { a, b, wire } = createFakeLinkPair({ mtu: 1500, latencyMs: 1, inFlight: 2, highWater: 8, queueLimit: 64 })
  return {
    a,
    b,
    sizes: [1, 100, 1500],
    unplug: async () => wire.unplug(),
    replug: async () => wire.replug(),
    close: async () => {
      await a.close()
      await b.close()
    },
  }
})
