/**
 * Who is at the other end of a control-socket connection: the pid, uid and gid the kernel
 * recorded when the client connected (SO_PEERCRED, through kairo-native), and the user name of
 * that uid from /etc/passwd. The daemon puts this in the VoV log's admin_command.by and in
 * link_disconnected.by, so an auditor sees which account ran a command.
 *
 * The credentials are the kernel's, not the client's word: a client cannot claim another uid.
 * They are those of the process that called connect() (a sudo'ed CLI shows uid 0).
 *
 * The user name comes from /etc/passwd only, not NSS: reading a local file is fast and cannot
 * hang the daemon on a directory server. Accounts that exist only in LDAP or systemd-userdb get
 * no `user` (the uid is still there). The file is parsed once and again only when its mtime or
 * size changes.
 */
import type net from 'node:net'
import { readFileSync, statSync } from 'node:fs'
import { loadNative } from './native.js'

export interface PeerCredentials {
  pid: number
  uid: number
  gid: number
  /** The uid's name in /etc/passwd, when it has one there. */
  user?: string
}

export const PASSWD_FILE = '/etc/passwd'

/**
 * Parses passwd(5) text into uid → name. The first entry of a uid wins (as getpwuid does);
 * lines that are not seven ':'-separated fields with a decimal uid (comments, blanks, NIS '+'
 * lines, junk) are skipped. Never throws.
 */
export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>()
  for (const line of text.split('\n')) {
    const fields = line.split(':')
    if (fields.length !== 7) continue
    const [name, , uidText] = fields as [string, string, string]
    if (name === '' || name.startsWith('+') || name.startsWith('-') || name.startsWith('#')) continue
    if (!/^[0-9]{1,10}$/.test(uidText)) continue
    const uid = Number(uidText)
    if (uid > 0xffffffff) continue
    if (!users.has(uid)) users.set(uid, name)
  }
  return users
}

let cache: { file: string; mtimeMs: number; size: number; users: Map<number, string> } | undefined

/** The name of `uid` in `file` (default /etc/passwd), or undefined. Never throws. */
export function userName(uid: number, file: string = PASSWD_FILE): string | undefined {
  try {
    const st = statSync(file)
    if (cache === undefined || cache.file !== file || cache.mtimeMs !== st.mtimeMs || cache.size !== st.size) {
      cache = { file, mtimeMs: st.mtimeMs, size: st.size, users: parsePasswd(readFileSync(file, 'utf8')) }
    }
    return cache.users.get(uid)
  } catch {
    return undefined
  }
}

/**
 * The credentials of the process at the other end of `socket`, an accepted (server-side) or
 * connected Unix-socket net.Socket. Undefined when they cannot be had: the socket is not a Unix
 * socket (a TCP one has no peer credentials), it is closed or has no file descriptor, or
 * kairo-native is not built. Never throws.
 *
 * Reads the fd from `socket._handle.fd`: Node's Pipe handle has it on Unix, but it is not a
 * public API; if a Node release drops it, this returns undefined rather than failing.
 */
export function peerCredentials(socket: net.Socket): PeerCredentials | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle
  const fd = handle?.fd
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) return undefined
  let cred
  try {
    cred = loadNative().peerCred(fd)
  } catch {
    return undefined
  }
  const user = userName(cred.uid)
  return user === undefined ? { pid: cred.pid, uid: cred.uid, gid: cred.gid } : { pid: cred.pid, uid: cred.uid, gid: cred.gid, user }
}
