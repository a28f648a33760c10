/**
 * Captures (issue 6): what a running capture costs the relay path.
 *
 * - relay_throughput_1k_plain / relay_throughput_1k_captured: the mesh suite's relay run (the
 *   real daemon relaying 1 KiB Data frames between two UDP neighbours on loopback), without and
 *   with `kairo-gw pcap capture` of the relay's link running for the whole load. Runs alternate
 *   (plain, captured, three times) and each figure is the best of its three, so drift of this
 *   machine's load falls on both alike. `vs.plain` of the captured figure is the ratio within the
 *   run: 1.0 = no cost.
 * - pcap_capture_dropped_share: packets the capture counted as dropped (its queue full while the
 *   disk was behind) out of those it saw, during the captured runs: the relay was never made to
 *   wait for the disk, this is what that choice cost the capture.
 */
import type { BenchResult, Suite } from '../lib.js'
import { relayRun } from './mesh.js'

const ROUNDS = 3

export const suite: Suite = {
  name: 'pcap',
  async run(ctx) {
    const plain: number[] = []
    const captured: number[] = []
    let seen = 0
    let dropped = 0
    for (let round = 0; round < ROUNDS; round++) {
      ctx.progress(`pcap: relay round ${round + 1}/${ROUNDS} without a capture`)
      plain.push((await relayRun(ctx, { build: round === 0 })).pps)
      ctx.progress(`pcap: relay round ${round + 1}/${ROUNDS} with a capture of its link`)
      const r = await relayRun(ctx, { build: false, capture: true })
      captured.push(r.pps)
      seen += (r.capture?.packets ?? 0) + (r.capture?.dropped ?? 0)
      dropped += r.capture?.dropped ?? 0
    }
    const p = Math.max(...plain)
    const c = Math.max(...captured)
    const results: BenchResult[] = [
      { id: 'relay_throughput_1k_plain', value: p, unit: 'packets/s', vs: {} },
      { id: 'relay_throughput_1k_captured', value: c, unit: 'packets/s', vs: { plain: c / p } },
      { id: 'pcap_capture_dropped_share', value: seen > 0 ? dropped / seen : 0, unit: 'share', vs: {} },
    ]
    return results
  },
}
