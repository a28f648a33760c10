/**
 * The CLI's side of the control socket: where it is, the options that move it, and one call
 * wrapper that turns every way of failing into an error saying what to do.
 *
 *   await withControl(opts, (c) => c.call('status'))
 *
 * Where the socket is (controlSocketPath, rules in appliance/sdk/socket.ts): --socket, else
 * <--runtime-dir>/control.sock, else $KAIRO_RUNTIME_DIR/control.sock, else <--state-dir>/run/
 * control.sock, else /run/kairo-gw/control.sock when it exists (systemd), else
 * <$KAIRO_STATE_DIR or ./var/state>/run/control.sock (`npm start`).
 *
 * Errors, with exit codes of errors.ts:
 *   no socket (ENOENT), permission denied (EACCES), stale socket (ECONNREFUSED), not a socket,
 *   connection lost                                → CliError, exit 1
 *   no answer in time                              → TimeoutError, exit 3
 *   the gateway refused the params (-32602)        → UsageError naming the field, exit 2
 *   any other gateway error (-32000, -32601, ...)  → CliError with the gateway's message, its
 *                                                    kairo_code and transaction ID, exit 1
 */
import type { Command } from 'commander'
import { ConnectionLostError, TimeoutError } from '../core/errors.js'
import { ControlClient, ControlConnectError, ControlError } from '../control/client.js'
import { findControlSocket } from '../sdk/socket.js'
import { CliError, UsageError } from './errors.js'
import { parsePositiveMs } from './options.js'

export interface ControlOptions {
  socket?: string | undefined
  runtimeDir?: string | undefined
  stateDir?: string | undefined
  /** Connect and call timeout, ms. */
  timeout?: number | undefined
}

/** The control socket path for these options (see the module comment); absolute. */
export function controlSocketPath(opts: ControlOptions): string {
  return findControlSocket({ socket: opts.socket, runtimeDir: opts.runtimeDir, stateDir: opts.stateDir })
}

/** Where the CLI looks for the socket, for --help. */
export const SOCKET_HELP = `The gateway's control socket: --socket PATH, else <--runtime-dir>/control.sock, else
$KAIRO_RUNTIME_DIR/control.sock, else <--state-dir>/run/control.sock, else
/run/kairo-gw/control.sock (systemd) when it exists, else ./var/state/run/control.sock
(npm start; $KAIRO_STATE_DIR moves it). Root or group kairo may use it.`

/** Adds --socket, --runtime-dir, --state-dir and --timeout to a command that talks to the gateway. */
export function controlOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'the gateway control socket (default: see below)')
    .option('--runtime-dir <dir>', "the gateway's runtime dir: the socket is <dir>/control.sock")
    .option('--state-dir <dir>', "a development gateway's state dir: the socket is <dir>/run/control.sock")
    .option('--timeout <ms>', 'how long to wait for the gateway', parsePositiveMs, 10_000)
}

/** Connects, runs `fn`, closes; errors mapped as the module comment says. */
export async function withControl<T>(opts: ControlOptions, fn: (client: ControlClient, path: string) => Promise<T>): Promise<T> {
  const path = controlSocketPath(opts)
  let client: ControlClient
  try {
    client = await ControlClient.connect(path, opts.timeout === undefined ? {} : { timeoutMs: opts.timeout })
  } catch (err) {
    throw controlFailure(err, path)
  }
  try {
    return await fn(client, path)
  } catch (err) {
    throw controlFailure(err, path)
  } finally {
    await client.close()
  }
}

/** One call on its own connection. */
export function callGateway<T>(opts: ControlOptions, method: string, params: Record<string, unknown> = {}): Promise<T> {
  return withControl(opts, (c) => c.call<T>(method, params))
}

/** What the user sees for a failure of the control socket or an error the gateway answered. */
export function controlFailure(err: unknown, path: string): Error {
  if (err instanceof ControlConnectError) return new CliError(connectMessage(err.code, path, err.message))
  if (err instanceof ControlError) return gatewayError(err)
  if (err instanceof TimeoutError) return err
  if (err instanceof ConnectionLostError) return new CliError(`${err.message}: the gateway closed the connection (did kairo-gw stop or restart? \`systemctl status kairo-gw\`)`)
  return err instanceof Error ? err : new Error(String(err))
}

function connectMessage(code: string, path: string, fallback: string): string {
  switch (code) {
    case 'ENOENT':
      return `no gateway control socket at ${path}: is kairo-gw running? (npm start / systemctl status kairo-gw; or give --socket)`
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${path}: add yourself to group kairo (sudo usermod -aG kairo $USER, then log in again) or use sudo`
    case 'ECONNREFUSED':
      return `gateway control socket ${path} refuses connections: it is stale, kairo-gw is not running there (npm start / systemctl start kairo-gw; or give --socket)`
    case 'ENOTSOCK':
      return `${path} is not a socket: give the gateway's control socket with --socket`
    default:
      return fallback
  }
}

/** A gateway error as the CLI reports it: message, field, kairo_code, transaction ID. */
export function gatewayError(err: ControlError): Error {
  if (err.code === -32602) {
    const field = err.field
    return new UsageError(field !== undefined && !err.message.includes(field) ? `${field}: ${err.message}` : err.message)
  }
  if (err.code === -32601) return new CliError(`the gateway does not support ${err.method ?? 'this method'} (is it an older kairo-gw than this CLI?): ${err.message}`)
  const extra: string[] = []
  if (err.kairo_code !== undefined) extra.push(err.kairo_code)
  if (err.field !== undefined) extra.push(`field ${err.field}`)
  if (err.transaction_id !== undefined) extra.push(`transaction ${err.transaction_id}`)
  return new CliError(`gateway: ${err.message}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`)
}
