/**
 * drivers/netdev on real veth pairs: an interface set down and up over rtnetlink, the state read
 * back agreeing with iproute2's and sysfs's, the peer in another namespace losing and regaining
 * its carrier; the same from inside a network namespace (a child process there); errors naming
 * the interface and the errno (ENODEV, EPERM without CAP_NET_ADMIN, EINVAL for a bad name).
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { NetdevError, linkState, setLinkUp } from '../../drivers/netdev/index.js'
import { Lab, operstate, requireEthernetLab, run } from '../ethernet/lab.js'
import { hasCommand, requirePart } from '../lib/parts.js'
import { until } from '../lib/until.js'
import { requireHw } from './lib.js'

const ROOT = join(import.meta.dirname, '..', '..')

/** `ip -j link show` for one interface (optionally in a namespace). */
function ipLink(ifname: string, ns?: string): { flags: string[]; operstate: string; ifindex: number } {
  const out = run('ip', [...(ns !== undefined ? ['-n', ns] : []), '-j', 'link', 'show', 'dev', ifname])
  const [l] = JSON.parse(out) as Array<{ flags: string[]; operstate: string; ifindex: number }>
  return l!
}

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

if (requireHw(t) !== undefined && (await requireEthernetLab(t))) {
  const lab = new Lab(t)

  t.test('set down and up on a veth whose peer is in a namespace: flags, operstate and the peer carrier follow', async (t) => {
    const [a, b] = lab.veth()
    const ns = lab.netns()
    lab.moveTo(b, ns)
    lab.ipIn(ns, 'link', 'set', b, 'up')

    const s0 = linkState(a)
    t.match(s0, { name: a, up: false, running: false, operstate: 'down' }, 'a new veth is down')
    t.equal(s0.index, Number(readFileSync(`/sys/class/net/${a}/ifindex`, 'utf8')), 'the ifindex sysfs has')
    t.equal(s0.mtu, Number(readFileSync(`/sys/class/net/${a}/mtu`, 'utf8')))

    setLinkUp(a, true)
    t.equal(linkState(a).up, true, 'IFF_UP is set when the ACK is back')
    t.ok(ipLink(a).flags.includes('UP'), 'iproute2 sees it up')
    await until(`${a} to run`, 5000, () => linkState(a).running)
    const up = linkState(a)
    t.match(up, { up: true, running: true, lowerUp: true, operstate: 'up' })
    t.equal(up.operstate, operstate(a), 'operstate as sysfs names it')
    await until(`${b} (in ${ns}) to see the carrier`, 5000, () => ipLink(b, ns).flags.includes('LOWER_UP'))

    setLinkUp(a, false)
    const down = linkState(a)
    t.match(down, { up: false, running: false }, 'IFF_UP and IFF_RUNNING are clear when the ACK is back')
    t.notOk(ipLink(a).flags.includes('UP'), 'iproute2 sees it down')
    await until(`${a} operstate down`, 5000, () => linkState(a).operstate === 'down')
    t.equal(operstate(a), 'down')
    await until(`${b} (in ${ns}) to lose the carrier`, 5000, () => ipLink(b, ns).flags.includes('NO-CARRIER'))
    await until(`${b} (in ${ns}) to stop running`, 5000, () => ipLink(b, ns).operstate !== 'UP')

    setLinkUp(a, false)
    t.equal(linkState(a).up, false, 'down again is no error')
    setLinkUp(a, true)
    await until(`${b} (in ${ns}) to see the carrier again`, 5000, () => ipLink(b, ns).flags.includes('LOWER_UP'))
    t.equal(linkState(a).up, true)
  })

  t.test('inside a network namespace: the interface there is set, the one outside is not seen', async (t) => {
    const [a, b] = lab.veth()
    const ns = lab.netns()
    lab.moveTo(b, ns)
    run('ip', ['link', 'set', a, 'up'])
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--import=tsx', join(ROOT, 'test/hw/netdev-child.ts'), `${b}=up`, `${b}=down`, `${a}=read`], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    t.equal(r.status, 0, r.stderr)
    const steps = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { arg: string; state?: Record<string, unknown>; error?: Record<string, unknown> })
    t.match(steps[0], { arg: `${b}=up`, state: { name: b, up: true } })
    t.match(steps[1], { arg: `${b}=down`, state: { name: b, up: false, running: false } })
    t.match(steps[2], { arg: `${a}=read`, error: { name: 'NetdevError', ifname: a, errno: 'ENODEV', message: new RegExp(`netdev ${a}: read state: no such interface \\(in this network namespace\\)`) } })
    t.notOk(ipLink(b, ns).flags.includes('UP'), `${b} is down in ${ns}, as iproute2 there says`)
    t.ok(ipLink(a).flags.includes('UP'), `${a} out here was not touched`)
  })

  t.test('errors name the interface and the errno', async (t) => {
    const gone = thrown(() => setLinkUp('kte-none0', false))
    t.type(gone, NetdevError)
    t.match(gone, { ifname: 'kte-none0', errno: 'ENODEV', code: 'ENODEV', message: /netdev kte-none0: set down: no such interface/ })
    t.match(thrown(() => linkState('kte-none0')), { name: 'NetdevError', ifname: 'kte-none0', errno: 'ENODEV' })
    for (const bad of ['', 'a-name-of-16-chr', 'eth/0', 'eth 0', '..', 'eth:0']) {
      t.match(thrown(() => setLinkUp(bad, false)), { name: 'NetdevError', ifname: bad, errno: 'EINVAL' }, `refused: ${JSON.stringify(bad)}`)
      t.match(thrown(() => linkState(bad)), { name: 'NetdevError', errno: 'EINVAL' })
    }
  })

  t.test('without CAP_NET_ADMIN: EPERM naming the interface, and the link is not changed', async (t) => {
    const [a] = lab.veth()
    if (!requirePart(t as unknown as Parameters<typeof requirePart>[0], hasCommand('setpriv'), 'setpriv (util-linux)')) return
    const r = spawnSync('setpriv', ['--bounding-set=-net_admin', '--inh-caps=-net_admin', '--', process.execPath, '--import=tsx', join(ROOT, 'test/hw/netdev-child.ts'), `${a}=up`], {
      cwd: ROOT,
      encoding: 'utf8',
    })
    t.equal(r.status, 0, r.stderr)
    const step = JSON.parse(r.stdout.trim()) as { error?: Record<string, unknown> }
    t.match(step.error, { name: 'NetdevError', ifname: a, errno: 'EPERM', message: new RegExp(`netdev ${a}: set up: not permitted \\(needs root or CAP_NET_ADMIN\\)`) })
    t.equal(linkState(a).up, false, 'still down')
  })
}
