/**
 * The state directory and the node identity stored in it.
 *
 * `<state-dir>/identity.key` holds the 32-byte identity seed as 64 hex digits and a newline,
 * mode 0600, in a directory created 0700. The whole identity (Ed25519 key pair, node ID, X25519
 * static key) derives from the seed (Identity.fromSeed). A key file that others can read is
 * refused, as ssh refuses such a private key.
 */
import { closeSync, constants, fchmodSync, mkdirSync, openSync, readFileSync, statSync, writeSync, chmodSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Identity } from '../core/identity.js'
import { wipe } from '../core/crypto.js'
import { CliError } from './errors.js'

export const IDENTITY_FILE = 'identity.key'

/** --state-dir, else $KAIRO_STATE_DIR, else ./var/state under the current directory; absolute. */
export function resolveStateDir(option: string | undefined): string {
  const env = process.env.KAIRO_STATE_DIR
  return resolve(option ?? (env !== undefined && env !== '' ? env : join(process.cwd(), 'var', 'state')))
}

export interface LoadedIdentity {
  identity: Identity
  file: string
  /** True when this call created the key file. */
  created: boolean
}

function readIdentity(file: string): Identity {
  const st = statSync(file)
  if (!st.isFile()) throw new CliError(`${file} is not a regular file`)
  if ((st.mode & 0o077) !== 0) {
    throw new CliError(`${file} is accessible by other users (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); it holds the node's secret key. Fix it with: chmod 600 ${file}`)
  }
  const text = readFileSync(file, 'utf8').trim()
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new CliError(`${file} does not hold an identity seed (expected 64 hex digits)`)
  const seed = Buffer.from(text, 'hex')
  try {
    return Identity.fromSeed(seed)
  } finally {
    wipe(seed)
  }
}

/** Loads the identity of `stateDir`; CliError naming the file when there is none. */
export function loadIdentity(stateDir: string): LoadedIdentity {
  const file = join(stateDir, IDENTITY_FILE)
  try {
    return { identity: readIdentity(file), file, created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError(`no identity in ${stateDir} (${IDENTITY_FILE} is missing); \`kairo-gw run --state-dir ${stateDir}\` creates one`)
    throw err
  }
}

/** Loads the identity of `stateDir`, creating the directory (0700) and a new seed (0600) if needed. */
export function loadOrCreateIdentity(stateDir: string): LoadedIdentity {
  const file = join(stateDir, IDENTITY_FILE)
  try {
    return { identity: readIdentity(file), file, created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  try {
    const made = mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    // Only directories this call created are tightened: --state-dir may name an existing one.
    if (made !== undefined) chmodSync(stateDir, 0o700)
  } catch (err) {
    throw new CliError(`cannot create the state directory ${stateDir}: ${(err as Error).message}`)
  }
  const seed = randomBytes(32)
  let fd: number
  try {
    // O_EXCL: two processes starting at once cannot overwrite each other's key.
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  } catch (err) {
    wipe(seed)
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { identity: readIdentity(file), file, created: false }
    throw new CliError(`cannot create ${file}: ${(err as Error).message}`)
  }
  try {
    fchmodSync(fd, 0o600)
    const text = Buffer.from(seed.toString('hex') + '\n')
    writeSync(fd, text)
    wipe(text)
  } finally {
    closeSync(fd)
  }
  const identity = Identity.fromSeed(seed)
  wipe(seed)
  return { identity, file, created: true }
}
