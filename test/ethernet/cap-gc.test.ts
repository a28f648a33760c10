/**
 * The vendored libpcap binding (drivers/ethernet/vendor/cap) survives closed handles being
 * garbage-collected: an Ethernet link reconnected again and again (force disconnect, reconnect)
 * used to crash the daemon with SIGSEGV in ~Pcap → AsyncResource's destructor during
 * collection. Three child processes each open and close 200 handles under allocation pressure.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { requireEthernetLab } from './lab.js'

const CHILD = fileURLToPath(new URL('./cap-gc-child.mjs', import.meta.url))

t.test('open/close of libpcap handles under GC pressure does not crash', async (t) => {
  if (!(await requireEthernetLab(t, { cap: true }))) return
  for (let run = 0; run < 3; run++) {
    const r = spawnSync(process.execPath, [CHILD, '200'], { encoding: 'utf8', timeout: 100_000 })
    t.same({ status: r.status, signal: r.signal, out: r.stdout.trim() }, { status: 0, signal: null, out: 'survived' }, `run ${run + 1}: no crash (${r.stderr.trim().slice(-300)})`)
  }
})
