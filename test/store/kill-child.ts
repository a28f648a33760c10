/**
 * Child process of kill.test.ts: accepts messages into an outbox in a loop from several
 * concurrent workers and reports on stdout, one line each, after the fact:
 *   A <id>  accept() resolved (the message is durable)
 *   d <id>  about to call delivered()
 *   D <id>  delivered() resolved
 *   R <n>   the journal has been compacted n times
 * Writes to a pipe are synchronous on Linux, so a line the parent reads was written before the
 * kill. Usage: node --import=tsx test/store/kill-child.ts <dir> [workers]
 */
import { randomBytes, randomInt } from 'node:crypto'
import { Outbox } from '../../appliance/store/outbox.js'

const dir = process.argv[2]
if (!dir) throw new Error('usage: kill-child.ts <dir> [workers]')
const workers = Number(process.argv[3] ?? 8)
const to = 'cd'.repeat(16)
const ob = await Outbox.open(dir, { maxMessages: 1_000_000, maxBytes: 1 << 30, defaultTtlMs: 3_600_000 }, { compactMinBytes: 32 * 1024 })
const say = (line: string): void => void process.stdout.write(`${line}\n`)
say('ready')
let rewrites = 0
await Promise.all(
  Array.from({ length: workers }, async (_, w) => {
    let previous: string | undefined
    for (;;) {
      const m = await ob.accept({ to, type: w, payload: randomBytes(randomInt(1, 600)) })
      say(`A ${m.id}`)
      if (previous !== undefined && randomInt(10) < 7) {
        say(`d ${previous}`)
        await ob.delivered(previous)
        say(`D ${previous}`)
        if (ob.journal.counters.rewrites !== rewrites) say(`R ${(rewrites = ob.journal.counters.rewrites)}`)
      }
      previous = m.id
    }
  }),
)
