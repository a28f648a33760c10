/**
 * Real parts a test may need (socat, tshark, network namespaces, ...). A test that lacks one
 * skips with the reason; with KAIRO_REQUIRE_ALL=1 (CI) the same situation fails instead, so a
 * missing install step cannot pass unseen.
 */
import { spawnSync } from 'node:child_process'

export const REQUIRE_ALL = process.env.KAIRO_REQUIRE_ALL === '1'

/** True when `cmd` runs (exit status 0 for `args`). */
export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' })
  return r.error === undefined && r.status === 0
}

interface Skippable {
  skip(message: string): void
  fail(message: string): void
}

/**
 * Returns true when the part is there. Otherwise skips `t` with the reason, or fails it when
 * KAIRO_REQUIRE_ALL=1, and returns false so the test can return early.
 */
export function requirePart(t: Skippable, available: boolean, reason: string): boolean {
  if (available) return true
  if (REQUIRE_ALL) t.fail(`missing real part (KAIRO_REQUIRE_ALL=1): ${reason}`)
  else t.skip(`missing real part: ${reason}`)
  return false
}
