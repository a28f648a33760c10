/**
 * Network interfaces set up or down, and their state read, over rtnetlink (kairo-hw).
 *
 *   setLinkUp('eth1', false)    // RTM_NEWLINK clearing IFF_UP; returns when the kernel has ACKed
 *   linkState('eth1')           // { up: false, running: false, operstate: 'down', ... }
 *
 * Why rtnetlink and not `ip link set`: spawning iproute2 costs milliseconds and a process; one
 * request and its ACK on a netlink socket cost microseconds, and the ACK means the change is done:
 * the kernel clears IFF_UP (and with it IFF_RUNNING) under the RTNL lock before it answers. The
 * operstate follows through the kernel's link watcher, a little later and asynchronously.
 *
 * Both calls act on the caller's network namespace. They need CAP_NET_ADMIN to change a link
 * (EPERM otherwise); reading needs nothing.
 */
import { errnoOf, hw, messageOf } from '../physical/native.js'

export interface NetdevState {
  name: string
  index: number
  /** IFF_UP: administratively up. */
  up: boolean
  /** IFF_RUNNING: up and the link is operational (carrier, RFC 2863 operstate up or unknown). */
  running: boolean
  /** RFC 2863 operstate as the kernel names it: up, down, lowerlayerdown, dormant, testing, notpresent, unknown. */
  operstate: string
  /** Extra: IFF_LOWER_UP (the driver sees a carrier). */
  lowerUp: boolean
  /** Extra: the raw IFF_* flags. */
  flags: number
  /** Extra: MTU in bytes. */
  mtu: number
}

const IFF_UP = 0x1
const IFF_RUNNING = 0x40
const IFF_LOWER_UP = 0x10000
/** IF_OPER_* in order (linux/if.h), named as /sys/class/net/<if>/operstate names them. */
const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up']

/** An interface could not be set or read. `ifname` is the interface, `errno` the kernel's errno name. */
export class NetdevError extends Error {
  /** The errno name, 'ENATIVE' (addon not built) or 'EINVAL' for a bad name. */
  readonly code: string
  readonly errno: string

  constructor(
    readonly ifname: string,
    errno: string,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? `netdev ${ifname}: ${errno}`, options)
    this.name = 'NetdevError'
    this.errno = errno
    this.code = errno
  }
}

function explain(errno: string | undefined): string {
  switch (errno) {
    case 'ENODEV':
      return 'no such interface (in this network namespace)'
    case 'EPERM':
    case 'EACCES':
      return 'not permitted (needs root or CAP_NET_ADMIN)'
    case 'ETIMEDOUT':
      return 'the kernel did not answer within 1 s'
    case 'EBUSY':
      return 'the interface is busy'
    case 'ENATIVE':
      return 'the kairo-hw addon is not built'
    default:
      return 'failed'
  }
}

/** Linux dev_valid_name(): 1..15 bytes, not . or .., no /, : or whitespace. Null when good. */
export function ifnameProblem(ifname: unknown): string | null {
  if (typeof ifname !== 'string' || ifname === '') return 'an interface name must be a non-empty string'
  const bytes = Buffer.byteLength(ifname)
  if (bytes > 15) return `"${ifname.slice(0, 40)}" is ${bytes} bytes; an interface name has at most 15 (IFNAMSIZ)`
  if (ifname === '.' || ifname === '..' || /[/:\s\u0000-\u001f\u007f]/.test(ifname)) return `${JSON.stringify(ifname)} is not an interface name (no "/", ":", spaces or control characters)`
  return null
}

function checkName(ifname: string): void {
  const p = ifnameProblem(ifname)
  if (p !== null) throw new NetdevError(String(ifname), 'EINVAL', `netdev: ${p}`)
}

function wrap(err: unknown, ifname: string, what: string): NetdevError {
  const errno = errnoOf(err) ?? 'EIO'
  return new NetdevError(ifname, errno, `netdev ${ifname}: ${what}: ${explain(errno)} (${messageOf(err)})`, { cause: err })
}

/**
 * Sets `ifname` administratively up or down (RTM_NEWLINK, IFF_UP) and returns once the kernel
 * has acknowledged it. Setting it to the state it is in is no error. Throws NetdevError: ENODEV
 * (no such interface), EPERM (no CAP_NET_ADMIN), EINVAL (not an interface name), ENATIVE.
 */
export function setLinkUp(ifname: string, up: boolean): void {
  checkName(ifname)
  try {
    hw().linkSetUp(ifname, up === true)
  } catch (err) {
    throw wrap(err, ifname, `set ${up ? 'up' : 'down'}`)
  }
}

/** The interface's flags and operstate (RTM_GETLINK). Throws NetdevError: ENODEV, EINVAL, ENATIVE. */
export function linkState(ifname: string): NetdevState {
  checkName(ifname)
  let l: ReturnType<ReturnType<typeof hw>['linkGet']>
  try {
    l = hw().linkGet(ifname)
  } catch (err) {
    throw wrap(err, ifname, 'read state')
  }
  return {
    name: l.name,
    index: l.index,
    up: (l.flags & IFF_UP) !== 0,
    running: (l.flags & IFF_RUNNING) !== 0,
    operstate: OPERSTATES[l.operstate] ?? `operstate ${l.operstate}`,
    lowerUp: (l.flags & IFF_LOWER_UP) !== 0,
    flags: l.flags,
    mtu: l.mtu,
  }
}
