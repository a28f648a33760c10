/**
 * Child process of crash.test.ts: saves node identity and coordination state in a loop, as fast
 * as it can, and reports on stdout, one line each:
 *   n <uuid>     about to store this UUID (KAIRO_NODE_ID changed)
 *   N <uuid>     stored
 *   M <attempt>  the mesh IP moved to this attempt (stored)
 *   p <node_id>  about to admit this peer
 *   P <node_id>  admitted (stored)
 *   C <n>        n coordination lines written
 * Writes to a pipe are synchronous on Linux, so a line the parent reads was written before the
 * kill. Usage: node --import=tsx test/identity/crash-child.ts <stateDir>
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { Identity } from '../../appliance/core/identity.js'
import { CoordinationLog } from '../../appliance/identity/coordination-log.js'
import { MeshIpAllocator } from '../../appliance/identity/mesh-ip.js'
import { loadOrCreateNodeInfo } from '../../appliance/identity/node-info.js'
import { PeerRegistry } from '../../appliance/identity/peers.js'

const dir = process.argv[2]
if (!dir) throw new Error('usage: crash-child.ts <stateDir>')
const say = (line: string): void => void process.stdout.write(`${line}\n`)
const me = Identity.fromSeed(Buffer.alloc(32, 50))
const mesh = new MeshIpAllocator({ identityKey: me.identityKey, nodeId: me.nodeIdHex, file: join(dir, 'mesh-ip.json') })
const peers = PeerRegistry.open(join(dir, 'peers.json'), { mode: 'tofu', allow: [] })
const log = new CoordinationLog({ dir: join(dir, 'log') })
const lowest = '0'.repeat(32)
let lines = 0
say('ready')
for (let i = 0; ; i++) {
  const uuid = randomUUID()
  say(`n ${uuid}`)
  loadOrCreateNodeInfo(dir, { envUuid: uuid })
  say(`N ${uuid}`)
  const moved = mesh.observe({ nodeId: lowest, meshIp: mesh.current().ip })
  if (moved !== null) say(`M ${moved.attempt}`)
  const peer = Identity.generate()
  say(`p ${peer.nodeIdHex}`)
  peers.consider({ nodeId: peer.nodeIdHex, identityKey: peer.identityKey, uuid: randomUUID(), name: `peer-${peer.nodeIdHex.slice(0, 8)}` })
  say(`P ${peer.nodeIdHex}`)
  if (i % 3 === 0) peers.flush()
  log.write('peer_admitted', { node_id: peer.nodeIdHex, n: ++lines, pad: 'x'.repeat(i % 200) })
  say(`C ${lines}`)
}
