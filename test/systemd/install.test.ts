/**
 * The install the docs describe, done for real into a temporary root: compile the appliance
 * (tsconfig.build.json, as `npm run build`), run systemd/install.sh --destdir, and then
 *
 *  - check the tree: the app with production dependencies only (kairo-native and cap as plain
 *    directories with their built addons), the CLI wrapper, the unit and its companions;
 *  - `systemd-analyze verify --root=<tree>` on the installed unit, with systemd's own units, Node
 *    at /usr/bin/node and /bin/kill in the tree as on a Debian gateway (and the check bites: with
 *    no /usr/bin/node it fails);
 *  - start the installed daemon the way systemd starts the unit: ExecStart= and Environment=
 *    from the unit file (%S %t %E mapped into the temp dir), as an unprivileged user (setpriv,
 *    uid 65534 standing in for kairo) with its state and runtime directories made as
 *    StateDirectory=/RuntimeDirectory= make them, NOTIFY_SOCKET on a real datagram socket and
 *    WATCHDOG_USEC/WATCHDOG_PID set; then READY=1 from the main pid, watchdog pings, the control
 *    socket answering the installed CLI, ExecReload= (kill -HUP) giving RELOADING=1 and READY=1,
 *    and SIGTERM giving STOPPING=1 and exit 0 within TimeoutStopSec=.
 *
 * The sandboxing itself (seccomp, device policy, namespaces) needs a running systemd, which this
 * machine does not have; systemd-analyze security rates it in unit.test.ts.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { constants, existsSync, linkSync, promises as fsp, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { startReceiver } from '../system/helpers.js'
import { until } from '../lib/until.js'
import { REPO_ROOT, UNIT, buildDist, installInto, requireRoot, requireTool, sh, tempDir, unitSettings } from './helpers.js'

const NOBODY = 65534

t.test('systemd/install.sh, systemd-analyze verify, and the installed daemon started as the unit starts it', async (t) => {
  if (!requireTool(t, 'systemd-analyze', 'systemd')) return
  const dir = await tempDir(t)
  const dist = buildDist(dir)
  const root = join(dir, 'root')
  await fsp.mkdir(root)
  const inst = installInto(root, dist)
  t.equal(inst.status, 0, `install.sh: ${inst.stderr}`)
  const app = join(root, 'usr', 'lib', 'kairo-gw')

  t.test('the installed tree', async (t) => {
    for (const f of ['package.json', 'package-lock.json', 'dist/appliance/cli/main.js', 'dist/appliance/system/sd-notify.js']) {
      t.ok(existsSync(join(app, f)), `usr/lib/kairo-gw/${f}`)
    }
    for (const m of ['kairo-native', 'cap']) {
      t.ok((await fsp.lstat(join(app, 'node_modules', m))).isDirectory(), `node_modules/${m} is a directory, not a link into the checkout`)
    }
    t.ok(existsSync(join(app, 'node_modules/kairo-native/build/Release/kairo_native.node')), 'kairo-native built')
    t.ok(existsSync(join(app, 'node_modules/cap/build/Release/cap.node')), 'cap built')
    for (const m of ['commander', 'sodium-native', 'serialport', 'yaml', 'flatbuffers', 'raw-socket']) {
      t.ok(existsSync(join(app, 'node_modules', m, 'package.json')), `dependency ${m}`)
    }
    for (const m of ['tap', 'typescript', 'fast-check', '@types/node']) {
      t.notOk(existsSync(join(app, 'node_modules', m)), `no devDependency ${m}`)
    }
    const wrapper = join(root, 'usr', 'bin', 'kairo-gw')
    t.equal(statSync(wrapper).mode & 0o777, 0o755)
    t.match(readFileSync(wrapper, 'utf8'), /^exec \/usr\/bin\/node \/usr\/lib\/kairo-gw\/dist\/appliance\/cli\/main\.js "\$@"$/m)
    const same = (installed: string, source: string) => t.equal(readFileSync(join(root, installed), 'utf8'), readFileSync(join(REPO_ROOT, source), 'utf8'), installed)
    same('usr/lib/systemd/system/kairo-gw.service', 'systemd/kairo-gw.service')
    same('usr/lib/sysusers.d/kairo-gw.conf', 'systemd/sysusers.d/kairo-gw.conf')
    same('usr/lib/tmpfiles.d/kairo-gw.conf', 'systemd/tmpfiles.d/kairo-gw.conf')
    same('usr/lib/udev/rules.d/60-kairo-gw.rules', 'systemd/udev/60-kairo-gw.rules')
    same('usr/share/doc/kairo-gw/systemd.md', 'docs/systemd.md')
    const v = sh(process.execPath, [join(app, 'dist', 'appliance', 'cli', 'main.js'), '--version'])
    t.equal(v.stdout.trim(), JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version, 'the installed CLI runs and knows its version')
    // Installing again (an upgrade) replaces the tree.
    await fsp.writeFile(join(app, 'stale-file'), '')
    t.equal(installInto(root, dist).status, 0)
    t.notOk(existsSync(join(app, 'stale-file')), 'a reinstall leaves nothing of the old tree')
  })

  t.test('systemd-analyze verify --root on the installed unit', async (t) => {
    // What a Debian gateway has besides our files: systemd's units, Node, kill (merged /usr).
    await fsp.cp('/usr/lib/systemd/system', join(root, 'usr', 'lib', 'systemd', 'system'), { recursive: true, force: false, errorOnExist: false, verbatimSymlinks: true })
    try {
      linkSync(process.execPath, join(root, 'usr', 'bin', 'node'))
    } catch {
      await fsp.copyFile(process.execPath, join(root, 'usr', 'bin', 'node'))
      await fsp.chmod(join(root, 'usr', 'bin', 'node'), 0o755)
    }
    await fsp.copyFile('/bin/kill', join(root, 'usr', 'bin', 'kill'), constants.COPYFILE_FICLONE)
    await fsp.chmod(join(root, 'usr', 'bin', 'kill'), 0o755)
    await fsp.symlink('usr/bin', join(root, 'bin'))
    const r = sh('systemd-analyze', ['verify', `--root=${root}`, 'kairo-gw.service'])
    t.equal(r.status, 0, 'verify passes')
    t.equal(r.stdout + r.stderr, '', 'and has nothing to say')
    const script = unitSettings(readFileSync(UNIT, 'utf8')).get('ExecStart')![0]!.split(/\s+/)[2]!
    t.ok(existsSync(join(root, script)), `ExecStart's script ${script} is installed (verify checks only the binary)`)

    await fsp.rename(join(root, 'usr', 'bin', 'node'), join(root, 'usr', 'bin', 'node.away'))
    const missing = sh('systemd-analyze', ['verify', `--root=${root}`, 'kairo-gw.service'])
    await fsp.rename(join(root, 'usr', 'bin', 'node.away'), join(root, 'usr', 'bin', 'node'))
    t.not(missing.status, 0, 'without /usr/bin/node verify fails...')
    t.match(missing.stderr, /Command \/usr\/bin\/node is not executable/, '...and says why')
  })

  t.test('the installed daemon under the unit\'s command line and environment', async (t) => {
    if (!requireRoot(t, 'to run the daemon as another user, as User= does')) return
    if (!requireTool(t, 'setpriv', 'util-linux')) return
    if (!requireTool(t, 'python3', 'python3')) return
    const service = unitSettings(readFileSync(UNIT, 'utf8'))
    const sysroot = join(dir, 'sys')
    const spec = { '%S': join(sysroot, 'var/lib'), '%t': join(sysroot, 'run'), '%E': join(sysroot, 'etc') }
    const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' }
    for (const assignment of service.get('Environment')!.join(' ').split(/\s+/)) {
      const eq = assignment.indexOf('=')
      env[assignment.slice(0, eq)] = assignment.slice(eq + 1).replace(/%[StE]/g, (s) => spec[s as keyof typeof spec])
    }
    t.same(Object.keys(env).filter((k) => k.startsWith('KAIRO_')).sort(), ['KAIRO_CONFIG', 'KAIRO_RUNTIME_DIR', 'KAIRO_STATE_DIR'])
    // What StateDirectory=, RuntimeDirectory= (for User=) and the tmpfiles/operator steps make.
    for (const d of Object.values(spec)) await fsp.mkdir(d, { recursive: true, mode: 0o755 })
    await fsp.mkdir(env.KAIRO_STATE_DIR!, { mode: 0o700 })
    await fsp.chown(env.KAIRO_STATE_DIR!, NOBODY, NOBODY)
    await fsp.mkdir(env.KAIRO_RUNTIME_DIR!, { mode: 0o750 })
    await fsp.chown(env.KAIRO_RUNTIME_DIR!, NOBODY, NOBODY)
    await fsp.mkdir(join(spec['%E'], 'kairo-gw'), { mode: 0o755 })
    await fsp.writeFile(env.KAIRO_CONFIG!, 'node:\n  name: unit-test\nlinks:\n  - name: udp0\n    udp: { host: 127.0.0.1, port: 0, discovery: false }\n', { mode: 0o640 })
    await fsp.chown(env.KAIRO_CONFIG!, 0, NOBODY)

    const rx = await startReceiver(t, join(dir, 'notify'))
    env.NOTIFY_SOCKET = rx.address
    env.WATCHDOG_USEC = '1000000'
    const argv = service
      .get('ExecStart')![0]!
      .split(/\s+/)
      .map((w) => w.replace('${KAIRO_CONFIG}', env.KAIRO_CONFIG!).replace(/^\/usr\/lib\/kairo-gw\//, `${app}/`).replace(/^\/usr\/bin\/node$/, process.execPath))
    t.match(argv.slice(1, 2), ['--max-semi-space-size=2'])
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
    // Exactly the unit's environment (env -i: nothing of this test process, tap's hooks
    // included), WATCHDOG_PID naming the main process as systemd sets it: sh's pid, which env,
    // setpriv and finally node keep, since each execs the next.
    const assignments = Object.entries(env).map(([k, v]) => q(`${k}=${v}`))
    const cmd = `exec env -i WATCHDOG_PID=$$ ${assignments.join(' ')} setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups ${argv.map(q).join(' ')}`
    const child = spawn('/bin/sh', ['-c', cmd], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined
    child.on('exit', (code, signal) => (exit = { code, signal }))
    t.teardown(() => {
      if (exit === undefined) child.kill('SIGKILL')
    })
    const pid = child.pid!
    const data = () => rx.datagrams.filter((d) => d.pid === pid).map((d) => d.data)

    await rx.waitFor('READY=1', (ds) => ds.some((d) => d.data.startsWith('READY=1')) || exit !== undefined, 30_000)
    t.equal(exit, undefined, 'the daemon is running', { output })
    t.ok(rx.datagrams.every((d) => d.pid === pid), 'every notification comes from the main pid (NotifyAccess=main)')
    t.ok(rx.datagrams.every((d) => d.uid === NOBODY), 'sent by the unprivileged user')
    t.match(data().find((d) => d.startsWith('READY=1')), /^READY=1\nSTATUS=.+/, 'READY=1 with a status line')

    const sock = join(env.KAIRO_RUNTIME_DIR!, 'control.sock')
    const st = statSync(sock)
    t.ok(st.isSocket(), 'control socket in KAIRO_RUNTIME_DIR')
    t.equal(st.mode & 0o777, 0o660, 'mode 0660')
    t.equal(st.uid, NOBODY, 'owned by the service user')
    const status = sh(process.execPath, [join(app, 'dist', 'appliance', 'cli', 'main.js'), 'status', '--json', '--socket', sock])
    t.equal(status.status, 0, `the installed CLI asks the daemon: ${status.stderr}`)
    const s = JSON.parse(status.stdout) as { pid: number; state_dir: string; name: string }
    t.equal(s.pid, pid)
    t.equal(s.state_dir, env.KAIRO_STATE_DIR, 'state dir from KAIRO_STATE_DIR (%S/kairo-gw)')
    t.equal(s.name, 'unit-test', 'config from KAIRO_CONFIG (%E/kairo-gw/config.yaml)')
    const key = statSync(join(env.KAIRO_STATE_DIR!, 'identity.key'))
    t.same({ mode: key.mode & 0o777, uid: key.uid }, { mode: 0o600, uid: NOBODY }, 'identity key 0600, the service user\'s')

    await rx.waitFor('2 watchdog pings', () => data().filter((d) => d === 'WATCHDOG=1').length >= 2, 10_000)
    t.pass('WATCHDOG=1 at half of WATCHDOG_USEC')

    // ExecReload=/bin/kill -HUP $MAINPID
    const reload = sh('/bin/kill', ['-HUP', String(pid)])
    t.equal(reload.status, 0)
    await rx.waitFor('READY=1 after RELOADING=1', () => {
      const d = data()
      const i = d.findIndex((x) => x.startsWith('RELOADING=1'))
      return i >= 0 && d.slice(i + 1).some((x) => x.startsWith('READY=1'))
    })
    t.match(data().find((d) => d.startsWith('RELOADING=1')), /^RELOADING=1\nMONOTONIC_USEC=\d+/)

    // KillSignal=SIGTERM, within TimeoutStopSec=
    const stopSec = Number(/^(\d+)s$/.exec(service.get('TimeoutStopSec')![0]!)![1])
    const t0 = Date.now()
    child.kill('SIGTERM')
    await until('the daemon to exit', stopSec * 1000, () => exit !== undefined)
    t.ok(Date.now() - t0 < stopSec * 1000, `stopped in ${Date.now() - t0} ms (TimeoutStopSec=${stopSec}s)`)
    t.same(exit, { code: 0, signal: null }, 'exit 0', { output: output.slice(-2000) })
    t.ok(data().some((d) => d.startsWith('STOPPING=1')), 'STOPPING=1 sent')
    t.notOk(existsSync(sock), 'control socket removed')
  })
})
