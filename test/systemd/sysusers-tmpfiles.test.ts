/**
 * systemd/sysusers.d/kairo-gw.conf and systemd/tmpfiles.d/kairo-gw.conf applied for real by
 * systemd's own tools (systemd 252, Debian 12) to a temporary root (--root=): the user, groups
 * and memberships they create, that a second run changes nothing, that an existing gpio group
 * (Raspberry Pi OS has one) is joined rather than duplicated, and the directories and modes
 * tmpfiles makes with the owner it resolves in that root's /etc/passwd.
 */
import t, { type Test } from 'tap'
import { promises as fsp, statSync } from 'node:fs'
import { join } from 'node:path'
import { SYSUSERS, TMPFILES, requireRoot, requireTool, sh, tempDir } from './helpers.js'

interface PasswdEntry {
  name: string
  uid: number
  gid: number
  gecos: string
  home: string
  shell: string
}

async function readPasswd(root: string): Promise<PasswdEntry[]> {
  const text = await fsp.readFile(join(root, 'etc', 'passwd'), 'utf8')
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [name, , uid, gid, gecos, home, shell] = l.split(':')
      return { name: name!, uid: Number(uid), gid: Number(gid), gecos: gecos!, home: home!, shell: shell! }
    })
}

async function readGroups(root: string): Promise<Map<string, { gid: number; members: string[] }>> {
  const text = await fsp.readFile(join(root, 'etc', 'group'), 'utf8')
  const out = new Map<string, { gid: number; members: string[] }>()
  for (const l of text.split('\n')) {
    if (l === '') continue
    const [name, , gid, members] = l.split(':')
    out.set(name!, { gid: Number(gid), members: members ? members.split(',') : [] })
  }
  return out
}

/**
 * A minimal root: Debian's base accounts (root, dialout 20, nogroup), and system ids 990..999
 * taken, so what sysusers allocates cannot coincide with an id this host resolves by chance.
 */
async function baseRoot(t: Test, extraGroups = ''): Promise<string> {
  const root = await tempDir(t)
  await fsp.mkdir(join(root, 'etc'))
  const taken = Array.from({ length: 10 }, (_, i) => 990 + i)
  await fsp.writeFile(
    join(root, 'etc', 'passwd'),
    ['root:x:0:0:root:/root:/bin/bash', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin', ...taken.map((id) => `svc${id}:x:${id}:${id}::/:/usr/sbin/nologin`)].join('\n') + '\n',
  )
  await fsp.writeFile(
    join(root, 'etc', 'group'),
    ['root:x:0:', 'dialout:x:20:', 'nogroup:x:65534:', ...taken.map((id) => `svc${id}:x:${id}:`)].join('\n') + '\n' + extraGroups,
  )
  return root
}

t.test('sysusers: user kairo with its group, group gpio, member of dialout and gpio', async (t) => {
  if (!requireTool(t, 'systemd-sysusers', 'systemd')) return
  const root = await baseRoot(t)
  const dry = sh('systemd-sysusers', ['--root', root, '--dry-run', SYSUSERS])
  t.equal(dry.status, 0, dry.stderr)
  t.match(dry.stdout + dry.stderr, /Creating user 'kairo'/, '--dry-run says what it would do')
  t.equal((await readPasswd(root)).some((u) => u.name === 'kairo'), false, '--dry-run wrote nothing')

  const r = sh('systemd-sysusers', ['--root', root, SYSUSERS])
  t.equal(r.status, 0, r.stderr)
  const users = await readPasswd(root)
  const groups = await readGroups(root)
  const kairo = users.find((u) => u.name === 'kairo')
  t.ok(kairo, 'user kairo')
  t.ok(kairo!.uid > 0 && kairo!.uid < 1000, `a system uid (${kairo!.uid})`)
  t.notOk(users.some((u) => u.name !== 'kairo' && u.uid === kairo!.uid), 'a uid of its own')
  t.equal(kairo!.gid, groups.get('kairo')?.gid, 'primary group kairo')
  t.equal(kairo!.home, '/var/lib/kairo-gw')
  t.equal(kairo!.shell, '/usr/sbin/nologin')
  t.equal(kairo!.gecos, 'kairo-gw mesh gateway')
  t.ok(groups.get('gpio'), 'group gpio created')
  t.equal(groups.get('dialout')?.gid, 20, 'dialout kept its gid')
  t.same(groups.get('dialout')?.members, ['kairo'])
  t.same(groups.get('gpio')?.members, ['kairo'])
  const shadow = await fsp.readFile(join(root, 'etc', 'shadow'), 'utf8')
  t.match(shadow, /^kairo:!\*?:/m, 'no password: the account cannot log in')

  const before = await fsp.readFile(join(root, 'etc', 'passwd'), 'utf8')
  const beforeGroups = await fsp.readFile(join(root, 'etc', 'group'), 'utf8')
  const again = sh('systemd-sysusers', ['--root', root, SYSUSERS])
  t.equal(again.status, 0, again.stderr)
  t.equal(await fsp.readFile(join(root, 'etc', 'passwd'), 'utf8'), before, 'a second run (every boot) changes nothing')
  t.equal(await fsp.readFile(join(root, 'etc', 'group'), 'utf8'), beforeGroups)
})

t.test('sysusers on Raspberry Pi OS: the existing gpio group is joined, not duplicated', async (t) => {
  if (!requireTool(t, 'systemd-sysusers', 'systemd')) return
  const root = await baseRoot(t, 'gpio:x:986:pi\n')
  const r = sh('systemd-sysusers', ['--root', root, SYSUSERS])
  t.equal(r.status, 0, r.stderr)
  const groups = await readGroups(root)
  t.equal(groups.get('gpio')?.gid, 986)
  t.same(groups.get('gpio')?.members.sort(), ['kairo', 'pi'], 'pi stays, kairo joins')
  const text = await fsp.readFile(join(root, 'etc', 'group'), 'utf8')
  t.equal(text.match(/^gpio:/gm)?.length, 1)
})

t.test('tmpfiles: state dir 0700 kairo:kairo, /etc/kairo-gw, the config file made 0640 root:kairo', async (t) => {
  if (!requireTool(t, 'systemd-sysusers', 'systemd')) return
  if (!requireTool(t, 'systemd-tmpfiles', 'systemd')) return
  if (!requireRoot(t, 'tmpfiles chowns to the kairo user')) return
  const root = await baseRoot(t)
  t.equal(sh('systemd-sysusers', ['--root', root, SYSUSERS]).status, 0)
  const kairo = (await readPasswd(root)).find((u) => u.name === 'kairo')!
  const r = sh('systemd-tmpfiles', ['--root', root, '--create', TMPFILES])
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr, '', 'no warnings about the file')
  const mode = (p: string) => {
    const st = statSync(join(root, p))
    return { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, dir: st.isDirectory() }
  }
  t.same(mode('var/lib/kairo-gw'), { mode: '700', uid: kairo.uid, gid: kairo.gid, dir: true }, 'owner resolved in the root\'s own passwd')
  t.same(mode('etc/kairo-gw'), { mode: '755', uid: 0, gid: 0, dir: true })
  t.rejects(fsp.stat(join(root, 'etc', 'kairo-gw', 'config.yaml')), 'no config file is made up')
  t.rejects(fsp.stat(join(root, 'run', 'kairo-gw')), '/run/kairo-gw is RuntimeDirectory=\'s')

  // An operator writes the config as root with a plain umask; the next boot fixes it.
  await fsp.writeFile(join(root, 'etc', 'kairo-gw', 'config.yaml'), 'links: []\n', { mode: 0o644 })
  await fsp.chmod(join(root, 'var', 'lib', 'kairo-gw'), 0o755)
  const boot = sh('systemd-tmpfiles', ['--root', root, '--create', TMPFILES])
  t.equal(boot.status, 0, boot.stderr)
  t.same(mode('etc/kairo-gw/config.yaml'), { mode: '640', uid: 0, gid: kairo.gid, dir: false }, 'config: root writes, group kairo reads')
  t.same(mode('var/lib/kairo-gw'), { mode: '700', uid: kairo.uid, gid: kairo.gid, dir: true }, 'state dir mode restored')
  t.equal(await fsp.readFile(join(root, 'etc', 'kairo-gw', 'config.yaml'), 'utf8'), 'links: []\n', 'content untouched')
})
