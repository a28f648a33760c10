// Child of cap-gc.test.ts: opens and closes libpcap handles on lo under allocation pressure, so
// that the garbage collector frees closed Cap objects while the process runs. Before the fix in
// vendor/cap (the async resource deleted in cb_close, not in ~Pcap during collection) this died
// with SIGSEGV in about half the runs. Prints "survived" and exits 0.
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const { Cap } = require('../../drivers/ethernet/vendor/cap')
const rounds = Number(process.argv[2] ?? 200)
for (let i = 0; i < rounds; i++) {
  const c = new Cap()
  c.open('lo', '', 1024 * 1024, Buffer.alloc(65535))
  c.on('packet', () => {})
  c.close()
  await new Promise((r) => setTimeout(r, 2))
  const junk = []
  for (let k = 0; k < 200_000; k++) junk.push({ k })
}
process.stdout.write('survived\n')
