/**
 * kairo-native: kairo-gw's own N-API addon (src/kairo_native.c). Linux only.
 *
 * Errors thrown by both functions are `Error`s with Node's errno conventions:
 * `code` (the errno name, e.g. 'EBADF'), `errno` (the negated errno number, as Node's own
 * errors have it) and `syscall` (e.g. 'getsockopt(SO_PEERCRED)'). Wrong argument types throw
 * a TypeError.
 */

/** Credentials of the process at the other end of a connected AF_UNIX socket. */
export interface PeerCred {
  /** Process ID of the peer (in this process's PID namespace; 0 if it is in none of ours). */
  pid: number
  /** Effective user ID of the peer when it connected (or called listen/socketpair). */
  uid: number
  /** Effective group ID of the peer when it connected. */
  gid: number
}

/**
 * getsockopt(fd, SOL_SOCKET, SO_PEERCRED) on a connected AF_UNIX socket. Throws EBADF for a
 * closed fd, ENOTSOCK for a non-socket, EAFNOSUPPORT for a socket that is not AF_UNIX, ENOTCONN
 * for an AF_UNIX socket with no peer.
 */
export function peerCred(fd: number): PeerCred

/**
 * Sends `message` as one datagram on a new AF_UNIX SOCK_DGRAM socket to `socketPath`: a file
 * system path (absolute) or, with a leading '@', an abstract address. This is sd_notify(3)'s
 * transport. Blocks for at most 1 s when the receiver's queue is full (then EAGAIN).
 * Throws EINVAL for an empty or relative path, ENAMETOOLONG when it does not fit a sockaddr_un,
 * and whatever connect/sendto report (ENOENT, ECONNREFUSED, EACCES, EMSGSIZE...).
 */
export function notify(socketPath: string, message: string): void
