/**
 * Child process of crash.test.ts: appends to a VoV log in a loop until it is killed, and reports
 * on stdout, one line each, after the fact:
 *   ready       the log is open
 *   F <seq>     flush() resolved: every entry up to <seq> is on disk
 * The log key lives 150 ms and files hold 48 KiB, so kills land in key rotations (key file
 * written, certificate not yet) and file rotations as well as in plain appends.
 * Usage: node --import=tsx test/vov/crash-child.ts <dir> <identity seed hex>
 */
import { Identity } from '../../appliance/core/identity.js'
import { VovLog } from '../../appliance/vov/index.js'

const [dir, seedHex] = process.argv.slice(2)
if (!dir || !seedHex) throw new Error('usage: crash-child.ts <dir> <identity seed hex>')
const log = await VovLog.open({ dir, identity: Identity.fromSeed(Buffer.from(seedHex, 'hex')), keyLifetimeMs: 150, maxFileBytes: 48 * 1024, writeDelayMs: 2 })
const say = (line: string): void => void process.stdout.write(`${line}\n`)
say('ready')
for (let i = 0; ; i++) {
  const { seq } = log.append('tick', { i, pid: process.pid, pad: 'x'.repeat(i % 200) })
  if (i % 64 === 63) {
    await log.flush()
    say(`F ${seq}`)
  } else if (i % 8 === 0) {
    await new Promise((r) => setImmediate(r))
  }
}
