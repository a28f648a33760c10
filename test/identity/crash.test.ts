/**
 * kill -9 in the middle of saves: a child process rewrites node.json, mesh-ip.json and peers.json
 * and appends to the coordination log in a loop, and is SIGKILLed at a random moment. Every file
 * must then open cleanly and hold at least what the child had reported stored (and at most the
 * one change in flight). Repeated on the same directory, so each round starts from the last kill.
 *
 * This covers a process crash, not a power cut (the kernel keeps unsynced writes across SIGKILL);
 * the fsyncs are what extends the same to a power cut.
 */
import t from 'tap'
import { randomInt } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Identity } from '../../appliance/core/identity.js'
import { parseCoordinationLog } from '../../appliance/identity/coordination-log.js'
import { MeshIpAllocator } from '../../appliance/identity/mesh-ip.js'
import { loadOrCreateNodeInfo } from '../../appliance/identity/node-info.js'
import { PeerRegistry } from '../../appliance/identity/peers.js'
import { tempDir } from './helpers.js'
import { runUntilKilled } from '../lib/kill-child.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')
const ROUNDS = 6

interface Round {
  uuidStored?: string
  uuidInFlight?: string
  attempt: number
  admitted: Set<string>
  admitting?: string
  coordLines: number
  lines: number
}

async function runChild(dir: string, killAfterMs: number): Promise<Round> {
  const round: Round = { attempt: -1, admitted: new Set(), coordLines: 0, lines: 0 }
  await runUntilKilled(join(HERE, 'crash-child.ts'), [dir], { cwd: ROOT, killAfterMs }, (tag, arg) => {
    round.lines++
    if (tag === 'n') round.uuidInFlight = arg
    else if (tag === 'N') {
      round.uuidStored = arg
      round.uuidInFlight = undefined
    } else if (tag === 'M') round.attempt = Number(arg)
    else if (tag === 'p') round.admitting = arg
    else if (tag === 'P') {
      round.admitted.add(arg)
      round.admitting = undefined
    } else if (tag === 'C') round.coordLines = Number(arg)
  })
  return round
}

t.test(`kill -9 at a random moment, ${ROUNDS} times: every file opens and keeps what was stored`, async (t) => {
  const dir = tempDir(t)
  const me = Identity.fromSeed(Buffer.alloc(32, 50))
  const admitted = new Set<string>()
  let lastAttempt = 0
  let coordLines = 0
  for (let r = 1; r <= ROUNDS; r++) {
    const round = await runChild(dir, randomInt(100, 800))
    t.ok(round.lines > 1, `round ${r}: the child got going (${round.lines} lines)`)

    const info = loadOrCreateNodeInfo(dir, {})
    const allowed = [round.uuidStored, round.uuidInFlight].filter((u) => u !== undefined)
    if (allowed.length > 0) t.ok(allowed.includes(info.uuid), `round ${r}: node.json holds the stored UUID or the one in flight`)

    const mesh = new MeshIpAllocator({ identityKey: me.identityKey, nodeId: me.nodeIdHex, file: join(dir, 'mesh-ip.json') })
    t.ok(mesh.current().attempt >= Math.max(lastAttempt, round.attempt), `round ${r}: mesh attempt ${mesh.current().attempt} >= last reported ${round.attempt}`)
    t.ok(mesh.current().attempt <= Math.max(lastAttempt, round.attempt) + 1, `round ${r}: at most the move in flight beyond it`)
    lastAttempt = mesh.current().attempt

    for (const id of round.admitted) admitted.add(id)
    const reg = PeerRegistry.open(join(dir, 'peers.json'), { mode: 'tofu', allow: [] })
    const onDisk = new Set(reg.list().filter((p) => p.state === 'admitted').map((p) => p.node_id))
    const missing = [...admitted].filter((id) => !onDisk.has(id))
    t.same(missing, [], `round ${r}: every reported admission is in peers.json`)
    const extra = [...onDisk].filter((id) => !admitted.has(id))
    t.ok(extra.length === 0 || (extra.length === 1 && extra[0] === round.admitting), `round ${r}: nothing admitted beyond the one in flight`)
    for (const id of extra) admitted.add(id)

    const logDir = join(dir, 'log')
    let lines = 0
    for (const f of readdirSync(logDir)) {
      const parsed = parseCoordinationLog(f, readFileSync(join(logDir, f), 'utf8'))
      t.same(parsed.bad, [], `round ${r}: ${f} has no torn lines`)
      lines += parsed.lines.length
    }
    coordLines += round.coordLines
    t.ok(lines >= coordLines, `round ${r}: ${lines} coordination lines >= ${coordLines} reported`)
    coordLines = lines
  }
})
