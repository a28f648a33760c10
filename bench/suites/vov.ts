/**
 * The VoV audit log (appliance/vov): how fast the gateway can record events and an auditor can
 * check them.
 *
 * - vov_appends_per_s: VovLog.append() of a typical admin_command event (~200 B of data), each
 *   signed (Ed25519), hashed (SHA-256) and chained, written by the log's background rounds to a
 *   real file in a temp dir; each timed round appends for the round length, yielding to the event
 *   loop every 1024 appends as a daemon does (so writes overlap with appending), and ends with
 *   flush() (write + fdatasync), whose time is counted. `vs.goal` = value / 20,000 (1 or more:
 *   met); `vs.ed25519_sign` = value / the bare signing rate (when the sign suite ran).
 * - vov_verify_per_s: verifyLog() of that log (every line parsed, hashed and its signature
 *   checked), entries per second; the median of three runs.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Identity } from '../../appliance/core/identity.js'
import { VovLog, verifyLog } from '../../appliance/vov/index.js'
import { defaultMinMs, median, ratios, warmupMs, type Suite } from '../lib.js'

const GOAL_APPENDS_PER_S = 20_000

const DATA = {
  method: 'disconnect',
  params: { link: 'lora0', reason: 'policy: quota exceeded for TASK_REQUEST' },
  by: { uid: 1000, gid: 1000, pid: 4242, user: 'operator' },
  transaction_id: '5f0c2a9e7b3d4c1f8a6e0b2d9c7f1e3a',
}

/** Appends for `ms`, then flushes; ops/s over the whole time. */
async function appendRound(log: VovLog, ms: number): Promise<number> {
  const t0 = performance.now()
  let n = 0
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 1024; i++) log.append('admin_command', DATA)
    n += 1024
    await new Promise((r) => setImmediate(r))
  }
  await log.flush()
  return n / ((performance.now() - t0) / 1000)
}

export const suite: Suite = {
  name: 'vov',
  async run(ctx) {
    const root = mkdtempSync(join(tmpdir(), 'kairo-bench-vov-'))
    try {
      const dir = join(root, 'vov')
      const log = await VovLog.open({ dir, identity: Identity.fromSeed(Buffer.alloc(32, 1)) })
      const minMs = defaultMinMs()
      ctx.progress('vov: appends (sign + hash + chain + write + fdatasync)…')
      await appendRound(log, warmupMs(minMs))
      const rounds: number[] = []
      for (let r = 0; r < 5; r++) rounds.push(await appendRound(log, minMs))
      await log.close()
      const appends = median(rounds)

      ctx.progress(`vov: verify (${log.entries} entries)…`)
      const verifyRates: number[] = []
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now()
        const report = await verifyLog(dir)
        const s = (performance.now() - t0) / 1000
        if (!report.ok) throw new Error(`vov: the benchmark's own log does not verify: ${JSON.stringify(report.error)}`)
        verifyRates.push(report.entries / s)
      }
      const verify = median(verifyRates)
      return [
        { id: 'vov_appends_per_s', value: appends, unit: 'appends/s', vs: { goal: appends / GOAL_APPENDS_PER_S, ...ratios(ctx, appends, { ed25519_sign: 'ed25519_sign' }) } },
        { id: 'vov_verify_per_s', value: verify, unit: 'entries/s', vs: ratios(ctx, verify, { ed25519_verify: 'ed25519_verify' }) },
      ]
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  },
}
