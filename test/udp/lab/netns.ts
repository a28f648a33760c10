/**
 * A real Ethernet segment for UDP link tests: two network namespaces (a, b), each with one end of
 * a veth pair whose other end is a port of a bridge in a third namespace (br), the switch.
 *
 *     [ns a] ifA <--veth--> portA [ns br: bridge] portB <--veth--> ifB [ns b]
 *
 * Pulling portA (`ip link set portA down` in br) is a cable pulled at the switch: ifA loses its
 * carrier, ifB does not. Nothing touches the root namespace; every name has the test's pid in it,
 * and destroy() removes it all (namespaces left by a test process that died are swept at the next
 * create()).
 */
import { spawnSync } from 'node:child_process'
import { hasCommand } from '../../lib/parts.js'

export interface Lab {
  nsA: string
  nsB: string
  nsBr: string
  /** The NICs the links use, in ns a and ns b. */
  ifA: string
  ifB: string
  /** Their cables' bridge ends, in ns br. */
  portA: string
  portB: string
  ipA: string
  ipB: string
}

const PREFIX = 'kt-udp-'

/** Runs `ip args`; throws with its stderr when it fails. */
export function ip(...args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' })
  if (r.error !== undefined) throw r.error
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`)
  return r.stdout
}

/** Why a lab cannot be made here, or null when it can (root and iproute2 with netns). */
export function labUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  if (!hasCommand('ip', ['netns', 'list'])) return 'iproute2 (ip netns)'
  return null
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'
  }
}

/** Removes namespaces of earlier lab runs whose test process is gone. */
function sweepStale(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const name = line.split(' ')[0] ?? ''
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name)
    if (m !== null && !alive(Number(m[1]))) deleteNamespace(name)
  }
}

/** Stops what still runs in `ns` (processes this test started there) and deletes it. */
function deleteNamespace(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? ''
  for (const p of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(p), 'SIGKILL')
    } catch {
      // gone already
    }
  }
  spawnSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' })
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export async function createLab(tag = 'l'): Promise<Lab> {
  sweepStale()
  const id = `${process.pid}`
  const base = `${PREFIX}${id}-${tag}`
  const lab: Lab = {
    nsA: `${base}-a`,
    nsB: `${base}-b`,
    nsBr: `${base}-br`,
    // Interface names are at most 15 bytes.
    ifA: `ku${id}${tag}a`,
    ifB: `ku${id}${tag}b`,
    portA: `ku${id}${tag}pa`,
    portB: `ku${id}${tag}pb`,
    ipA: '10.77.0.1',
    ipB: '10.77.0.2',
  }
  try {
    for (const ns of [lab.nsBr, lab.nsA, lab.nsB]) ip('netns', 'add', ns)
    ip('-n', lab.nsBr, 'link', 'add', 'br0', 'type', 'bridge')
    // No IGMP snooping: the bridge floods multicast like a plain switch.
    ip('-n', lab.nsBr, 'link', 'set', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    ip('-n', lab.nsBr, 'link', 'set', 'br0', 'up')
    for (const [ns, nic, port, addr] of [
      [lab.nsA, lab.ifA, lab.portA, lab.ipA],
      [lab.nsB, lab.ifB, lab.portB, lab.ipB],
    ] as const) {
      ip('-n', ns, 'link', 'add', nic, 'type', 'veth', 'peer', 'name', port, 'netns', lab.nsBr)
      ip('-n', lab.nsBr, 'link', 'set', port, 'master', 'br0')
      ip('-n', lab.nsBr, 'link', 'set', port, 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', nic)
      ip('-n', ns, 'link', 'set', nic, 'up')
    }
    // IPv6 link-local addresses are usable once duplicate address detection is over.
    const deadline = Date.now() + 10_000
    for (const [ns, nic] of [
      [lab.nsA, lab.ifA],
      [lab.nsB, lab.ifB],
    ] as const) {
      while (ip('-n', ns, '-6', 'addr', 'show', 'dev', nic, 'tentative').trim() !== '' || !ip('-n', ns, '-6', 'addr', 'show', 'dev', nic).includes('fe80::')) {
        if (Date.now() > deadline) throw new Error(`IPv6 link-local address of ${nic} still tentative after 10 s`)
        await sleep(50)
      }
    }
  } catch (err) {
    destroyLab(lab)
    throw err
  }
  return lab
}

export function destroyLab(lab: Lab): void {
  for (const ns of [lab.nsA, lab.nsB, lab.nsBr]) deleteNamespace(ns)
}

/** Pulls a's cable out of the switch, or puts it back. */
export function setPortA(lab: Lab, up: boolean): void {
  ip('-n', lab.nsBr, 'link', 'set', lab.portA, up ? 'up' : 'down')
}
