/**
 * Where the gateway's control socket is, found the way the daemon places it
 * (appliance/cli/commands/run.ts), so that a client given nothing finds the gateway that
 * `npm start` or systemd started:
 *
 *   1. an explicit socket path;
 *   2. <runtimeDir>/control.sock for an explicit runtime dir;
 *   3. $KAIRO_RUNTIME_DIR/control.sock;
 *   4. <stateDir>/run/control.sock for an explicit state dir (a development gateway);
 *   5. /run/kairo-gw/control.sock when it exists (the systemd unit's RuntimeDirectory);
 *   6. <$KAIRO_STATE_DIR, else ./var/state>/run/control.sock (what `npm start` uses).
 *
 * In 4 and 6 a path longer than a Unix socket address holds (107 bytes) is replaced, as the
 * daemon does, by $TMPDIR/kairo-gw-<first 12 hex digits of sha256(state dir)>/control.sock.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const SOCKET_NAME = 'control.sock'
/** The systemd unit's RuntimeDirectory=kairo-gw. */
export const SYSTEM_RUNTIME_DIR = '/run/kairo-gw'
/** Longest path a Unix socket address takes (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH_BYTES = 107

export interface SocketLookup {
  socket?: string | undefined
  runtimeDir?: string | undefined
  /** An explicit state dir (a command line option), already chosen by the caller. */
  stateDir?: string | undefined
  /** Default process.env. */
  env?: NodeJS.ProcessEnv
  /** Default fs.existsSync; tests replace it. */
  exists?: (path: string) => boolean
}

/** The runtime dir a development gateway with state dir `stateDir` uses (run.ts). */
export function devRuntimeDir(stateDir: string): string {
  const beside = join(stateDir, 'run')
  if (Buffer.byteLength(join(beside, SOCKET_NAME)) <= MAX_SOCKET_PATH_BYTES) return beside
  return join(tmpdir(), `kairo-gw-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`)
}

/** The control socket path, by the rules in the module comment; absolute. */
export function findControlSocket(opts: SocketLookup = {}): string {
  const env = opts.env ?? process.env
  const exists = opts.exists ?? existsSync
  if (nonEmpty(opts.socket)) return resolve(opts.socket)
  if (nonEmpty(opts.runtimeDir)) return join(resolve(opts.runtimeDir), SOCKET_NAME)
  if (nonEmpty(env.KAIRO_RUNTIME_DIR)) return join(resolve(env.KAIRO_RUNTIME_DIR), SOCKET_NAME)
  if (nonEmpty(opts.stateDir)) return join(devRuntimeDir(resolve(opts.stateDir)), SOCKET_NAME)
  const system = join(SYSTEM_RUNTIME_DIR, SOCKET_NAME)
  if (exists(system)) return system
  const stateDir = resolve(nonEmpty(env.KAIRO_STATE_DIR) ? env.KAIRO_STATE_DIR : join(process.cwd(), 'var', 'state'))
  return join(devRuntimeDir(stateDir), SOCKET_NAME)
}

function nonEmpty(s: string | undefined): s is string {
  return s !== undefined && s !== ''
}
