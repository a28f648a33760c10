/**
 * Exit codes and the one-line error report of the kairo-gw CLI.
 *
 *   0 ok · 1 failure · 2 usage (bad command line) · 3 timeout (a peer did not answer)
 *   4 a log does not verify · 5 a link is cut (latched) but an action was not observed
 */
import { KairoError, TimeoutError } from '../core/errors.js'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
export const EXIT_TIMEOUT = 3
/** disconnect/reconnect: done and latched/cleared, but one of the link's physical actions was not observed. */
export const EXIT_PARTIAL = 5

/** Exit-code legend, as printed by --help. */
export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  failure (socket, state directory, peer refused, ...)
  2  usage error (unknown command or option, bad TYPE or address)
  3  timeout (the peer did not answer in time), or a message expired undelivered (send --wait)
  4  an audit log does not verify (log verify, log collect)
  5  disconnect/reconnect done, but a physical action was not observed (the output names it)`

/** A bad command line: reported like commander's own errors, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** A failure whose message already says what to do; exit 1. */
export class CliError extends Error {
  override readonly name = 'CliError'
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT_USAGE
  if (err instanceof TimeoutError) return EXIT_TIMEOUT
  return EXIT_FAILURE
}

/** `kairo-gw: <message> (transaction <id>)` for KairoError, `kairo-gw: <message>` otherwise. */
export function errorLine(err: unknown): string {
  if (err instanceof KairoError) return `kairo-gw: ${err.message} (transaction ${err.transaction_id})`
  if (err instanceof Error) return `kairo-gw: ${err.message}`
  return `kairo-gw: ${String(err)}`
}

/** The machine-readable form printed on stdout with --json. */
export function errorJson(err: unknown): Record<string, unknown> {
  if (err instanceof KairoError) return { ok: false, error: err.toJSON(), exit_code: exitCodeFor(err) }
  const e = err instanceof Error ? err : new Error(String(err))
  return { ok: false, error: { name: e.name, message: e.message }, exit_code: exitCodeFor(err) }
}
