/**
 * Peer credentials of real Unix-socket connections: a net.Server in this process, clients in
 * child processes (socat), some run under another uid/gid with setpriv, so the uid, gid and pid
 * are shown to be read from the kernel and not assumed. Also: what peerCredentials gives for
 * sockets without credentials, kairo-native's own errors, and the /etc/passwd parser (fuzzed).
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import net from 'node:net'
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, openSync, promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { peerCred } from 'kairo-native'
import { parsePasswd, peerCredentials, userName, type PeerCredentials } from '../../appliance/system/peer-cred.js'
import { requireCommand, requireRoot, tempDir } from './helpers.js'
import { until } from '../lib/until.js'

interface Seen {
  cred: PeerCredentials | undefined
}

/** A Unix-socket server anyone may connect to; records peerCredentials() of each connection. */
async function credServer(t: Test): Promise<{ path: string; seen: Seen[] }> {
  const dir = await tempDir(t)
  await fsp.chmod(dir, 0o755)
  const path = join(dir, 'ctl.sock')
  const seen: Seen[] = []
  const server = net.createServer((sock) => {
    sock.on('error', () => {})
    seen.push({ cred: peerCredentials(sock) })
    sock.end('ok\n')
  })
  await new Promise<void>((r) => server.listen(path, r))
  await fsp.chmod(path, 0o666)
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { path, seen }
}

/** Runs `argv` (a connecting client) to completion; resolves with its pid. */
function client(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 && out === 'ok\n' ? resolve(child.pid!) : reject(new Error(`${argv.join(' ')}: exit ${code}, said ${JSON.stringify(out)}`))))
  })
}

function getentName(uid: number): string | undefined {
  const r = spawnSync('getent', ['passwd', String(uid)], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.split(':')[0] : undefined
}

t.test('a client of our own uid: its pid, uid and gid', async (t) => {
  if (!requireCommand(t, 'socat', ['-V'], 'a Unix-socket client in another process')) return
  const { path, seen } = await credServer(t)
  const pid = await client(['socat', '-', `UNIX-CONNECT:${path}`])
  await until('the connection', 5000, () => seen.length === 1)
  const cred = seen[0]!.cred
  t.same(cred && { pid: cred.pid, uid: cred.uid, gid: cred.gid }, { pid, uid: process.getuid!(), gid: process.getgid!() })
  t.equal(cred?.user, getentName(process.getuid!()), 'the user name, as getent(1) finds it')
})

t.test('clients under other uids and gids (setpriv): the kernel\'s word, not an assumption', async (t) => {
  if (!requireRoot(t, 'to run a client as another uid')) return
  if (!requireCommand(t, 'socat', ['-V'], 'a Unix-socket client in another process')) return
  if (!requireCommand(t, 'setpriv', ['--version'], 'util-linux: run a client as another uid')) return
  const { path, seen } = await credServer(t)
  const cases = [
    { uid: 65534, gid: 65534 },
    { uid: 65534, gid: 100 },
    { uid: 54321, gid: 54320 }, // in no passwd file: no user name
  ]
  for (const [i, c] of cases.entries()) {
    const pid = await client(['setpriv', `--reuid=${c.uid}`, `--regid=${c.gid}`, '--clear-groups', 'socat', '-', `UNIX-CONNECT:${path}`])
    await until(`connection ${i + 1}`, 5000, () => seen.length === i + 1)
    const cred = seen[i]!.cred
    t.same(cred && { pid: cred.pid, uid: cred.uid, gid: cred.gid }, { pid, ...c }, `uid ${c.uid} gid ${c.gid}, pid ${pid} (setpriv execs the client)`)
    t.equal(cred?.user, getentName(c.uid), `user ${getentName(c.uid) ?? '(none)'}`)
  }
  t.equal(seen[2]!.cred && 'user' in seen[2]!.cred, false, 'no user key for a uid without a passwd entry')
})

t.test('sockets without peer credentials give undefined, never an exception', async (t) => {
  // TCP: the kernel has no credentials for it (kairo-native refuses it: EAFNOSUPPORT).
  let tcpCred: PeerCredentials | undefined | 'unset' = 'unset'
  let tcpServerSide: net.Socket | undefined
  const server = net.createServer((sock) => {
    tcpServerSide = sock
    tcpCred = peerCredentials(sock)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  await until('the TCP connection', 5000, () => tcpCred !== 'unset')
  t.equal(tcpCred, undefined, 'TCP socket')
  // The kernel's raw answer on TCP is pid 0 / uid -1: kairo-native says why it refuses instead.
  const fd = (tcpServerSide as unknown as { _handle: { fd: number } })._handle.fd
  t.throws(() => peerCred(fd), { code: 'EAFNOSUPPORT', syscall: 'getsockopt(SO_PEERCRED)', errno: -97 })
  c.destroy()
  tcpServerSide!.destroy()
  t.equal(peerCredentials(tcpServerSide!), undefined, 'a destroyed socket (no handle)')
  t.equal(peerCredentials(new net.Socket()), undefined, 'a socket never connected')
})

t.test('kairo-native peerCred errors carry the errno name', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'f')
  await fsp.writeFile(file, '')
  const fd = openSync(file, 'r')
  t.throws(() => peerCred(fd), { code: 'ENOTSOCK', errno: -88 }, 'a regular file')
  closeSync(fd)
  t.throws(() => peerCred(fd), { code: 'EBADF', errno: -9, message: new RegExp(`fd ${fd}: EBADF`) }, 'a closed fd')
  t.throws(() => peerCred(-1), RangeError)
  t.throws(() => peerCred(1.5), RangeError)
  t.throws(() => peerCred('3' as unknown as number), TypeError)
  // A Unix socket that neither connected nor listened: no peer.
  const lonely = net.createServer()
  await new Promise<void>((r) => lonely.listen(join(dir, 'l.sock'), r))
  const lfd = (lonely as unknown as { _handle: { fd: number } })._handle.fd
  t.match(peerCred(lfd), { pid: process.pid, uid: process.getuid!() }, 'a listening Unix socket has its own (listen-time) credentials')
  lonely.close()
})

t.test('userName reads /etc/passwd, and a changed file again', async (t) => {
  t.equal(userName(0), 'root')
  t.equal(userName(4_000_000_000), undefined)
  const dir = await tempDir(t)
  const file = join(dir, 'passwd')
  await fsp.writeFile(file, 'alice:x:1000:1000::/home/alice:/bin/sh\n')
  t.equal(userName(1000, file), 'alice')
  await fsp.writeFile(file, 'bob:x:1000:1000::/home/bob:/bin/sh\nbobby:x:1001:1000::/:/bin/sh\n')
  t.equal(userName(1000, file), 'bob', 'the new content (size or mtime changed)')
  t.equal(userName(1001, file), 'bobby')
  t.equal(userName(1000, join(dir, 'missing')), undefined, 'an unreadable file: no name, no exception')
})

t.test('parsePasswd', async (t) => {
  const text = [
    'root:x:0:0:root:/root:/bin/bash',
    '# comment:x:1:1:::',
    '',
    '+nisuser:x:2:2:::',
    'short:x:3',
    'toolong:x:4:4:::/bin/sh:extra',
    'neg:x:-5:5:::',
    'hex:x:0x6:6:::',
    'big:x:4294967296:7:::',
    'first:x:1000:1000::/home/first:/bin/sh',
    'second:x:1000:1000::/home/second:/bin/sh',
    ':x:9:9:::',
    'max:x:4294967295:1:::',
    'crlf:x:8:8:::\r',
  ].join('\n')
  const m = parsePasswd(text)
  t.same([...m.entries()].sort((a, b) => a[0] - b[0]), [
    [0, 'root'],
    [8, 'crlf'],
    [1000, 'first'],
    [4294967295, 'max'],
  ])

  t.test('property: never throws; generated entries come back, first name per uid, through junk', async (t) => {
    const name = fc.stringMatching(/^[a-z_][a-z0-9_-]{0,15}$/)
    const entry = fc.record({ name, uid: fc.integer({ min: 0, max: 0xffffffff }) })
    const junk = fc.string().filter((s) => !s.includes('\n') && s.split(':').length !== 7)
    fc.assert(
      fc.property(fc.array(fc.oneof(entry, junk)), (lines) => {
        const text = lines.map((l) => (typeof l === 'string' ? l : `${l.name}:x:${l.uid}:100:gecos:/home/${l.name}:/bin/sh`)).join('\n')
        const got = parsePasswd(text)
        const want = new Map<number, string>()
        for (const l of lines) if (typeof l !== 'string' && !want.has(l.uid)) want.set(l.uid, l.name)
        return JSON.stringify([...got]) === JSON.stringify([...want])
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const m = parsePasswd(s)
        for (const [uid, n] of m) if (!Number.isInteger(uid) || uid < 0 || uid > 0xffffffff || n === '') return false
        return true
      }),
      { numRuns: 2000 },
    )
    t.pass('500 generated passwd files and 2000 random texts')
  })
})
