/**
 * The UDP link on a real Ethernet segment: two network namespaces joined through a bridge by
 * veths (test/udp/lab/netns.ts). A Node process cannot enter a namespace, so the tests run in
 * lab/side-a.ts, started inside namespace a with `ip netns exec` and read as a tap subtest; link b
 * runs in a child process in namespace b. Needs root and iproute2: skipped with the reason
 * otherwise (a failure under KAIRO_REQUIRE_ALL=1).
 */
import { join } from 'node:path'
import t from 'tap'
import { requirePart } from '../lib/parts.js'
import { createLab, destroyLab, labUnavailable } from './lab/netns.js'
import { REPO_ROOT } from './lab/remote.js'

type Skippable = Parameters<typeof requirePart>[0]

t.test('UDP link on veth + bridge in network namespaces', async (t) => {
  const missing = labUnavailable()
  if (!requirePart(t as unknown as Skippable, missing === null, missing ?? '')) return
  let lab
  try {
    lab = await createLab()
  } catch (err) {
    // The kernel lacks veth or bridges: a missing part, not a failure of the link.
    requirePart(t as unknown as Skippable, false, `network namespaces with veth and a bridge: ${(err as Error).message}`)
    return
  }
  const made = lab
  t.teardown(() => destroyLab(made))
  await t.spawn('ip', ['netns', 'exec', lab.nsA, process.execPath, '--import=tsx', join(REPO_ROOT, 'test', 'udp', 'lab', 'side-a.ts')], { cwd: REPO_ROOT, env: { ...process.env, KT_UDP_LAB: JSON.stringify(lab) } }, 'link a in namespace a, link b in namespace b')
})
