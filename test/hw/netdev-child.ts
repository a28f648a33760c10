/**
 * Runs inside another network namespace (`ip netns exec NS node --import=tsx netdev-child.ts`):
 * sets each named interface as asked through drivers/netdev and prints one JSON line per step
 * with the state read back, or the error's name, ifname and errno.
 *
 *   netdev-child.ts IF=down IF=up OTHER=read
 */
import { NetdevError, linkState, setLinkUp } from '../../drivers/netdev/index.js'

for (const arg of process.argv.slice(2)) {
  const [ifname, what] = arg.split('=') as [string, string]
  try {
    if (what !== 'read') setLinkUp(ifname, what === 'up')
    process.stdout.write(`${JSON.stringify({ arg, state: linkState(ifname) })}\n`)
  } catch (err) {
    const e = err as NetdevError
    process.stdout.write(`${JSON.stringify({ arg, error: { name: e.name, ifname: e.ifname, errno: e.errno, message: e.message } })}\n`)
  }
}
