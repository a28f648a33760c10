/**
 * kill -9 durability: a child process accepts messages into an outbox in a loop and prints each
 * id only after accept() resolved; it is SIGKILLed at a random moment; the parent reopens the
 * outbox and finds every printed id (unless the child had started to deliver it). Repeated on
 * the same directory, so each round also recovers from the previous kill.
 *
 * This covers a process crash, not a power cut: after SIGKILL the kernel still holds whatever
 * was written, synced or not. fdatasync is what makes the same hold across a power cut, and
 * that cannot be simulated here.
 */
import t from 'tap'
import { randomInt } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Outbox } from '../../appliance/store/outbox.js'
import { tempDir } from './helpers.js'
import { runUntilKilled } from '../lib/kill-child.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = join(HERE, '..', '..')
const ROUNDS = 5

interface Round {
  accepted: string[]
  delivering: Set<string>
  delivered: Set<string>
  rewrites: number
  lines: number
}

async function runChild(dir: string, killAfterMs: number): Promise<Round> {
  const round: Round = { accepted: [], delivering: new Set(), delivered: new Set(), rewrites: 0, lines: 0 }
  await runUntilKilled(join(HERE, 'kill-child.ts'), [dir], { cwd: ROOT, killAfterMs }, (tag, arg) => {
    round.lines++
    if (tag === 'A') round.accepted.push(arg)
    else if (tag === 'd') round.delivering.add(arg)
    else if (tag === 'D') round.delivered.add(arg)
    else if (tag === 'R') round.rewrites = Number(arg)
  })
  return round
}

t.test(`kill -9 at a random moment, ${ROUNDS} times: every acknowledged accept is in the outbox`, async (t) => {
  const dir = tempDir(t)
  const accepted: string[] = []
  const delivering = new Set<string>()
  const delivered = new Set<string>()
  for (let r = 1; r <= ROUNDS; r++) {
    const killAfter = randomInt(50, 700)
    const round = await runChild(dir, killAfter)
    accepted.push(...round.accepted)
    for (const id of round.delivering) delivering.add(id)
    for (const id of round.delivered) delivered.add(id)
    const ob = await Outbox.open(dir, { maxMessages: 1_000_000, maxBytes: 1 << 30, defaultTtlMs: 3_600_000 })
    const missing = accepted.filter((id) => !delivering.has(id) && ob.get(id) === undefined)
    const resurrected = [...delivered].filter((id) => ob.get(id) !== undefined)
    t.same(missing, [], `round ${r} (killed ${killAfter} ms after start, ${round.accepted.length} accepts acknowledged, ${round.rewrites} compactions): no acknowledged message lost`)
    t.same(resurrected, [], `round ${r}: no delivered message back`)
    t.same(
      ob.recovered.filter((x) => x.kind !== 'torn-tail'),
      [],
      `round ${r}: at most a torn tail${ob.recovered.length ? ` (${ob.recovered[0]!.message})` : ''}`,
    )
    t.same(ob.undecodable, [])
    await ob.close()
  }
  t.ok(accepted.length > 0, `${accepted.length} acknowledged accepts over ${ROUNDS} kills`)
})
