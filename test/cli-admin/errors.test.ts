/**
 * How the admin CLI fails, as a child process: no socket, a stale one, a file that is not a
 * socket, permission denied, a gateway that does not answer, a gateway that refuses; bad node IDs
 * and option mixes for send. Each with its exit code (errors.ts: 1 failure, 2 usage, 3 timeout)
 * and a message that says what to do.
 */
import t from 'tap'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ResourceLimitError } from '../../appliance/core/errors.js'
import { ControlServer } from '../../appliance/control/server.js'
import { until } from '../lib/until.js'
import { cli, json, shortDir, startGateway } from '../lib/gateway.js'

t.test('no gateway: exit 1, the socket path and how to start one', async (t) => {
  const dir = shortDir(t)
  const sock = join(dir, 'control.sock')
  const r = await cli(['status', '--socket', sock])
  t.equal(r.code, 1)
  t.equal(r.stdout, '', 'nothing on stdout')
  t.match(r.stderr, `kairo-gw: no gateway control socket at ${sock}: is kairo-gw running? (npm start / systemctl status kairo-gw; or give --socket)`)
  const j = await cli(['links', '--socket', sock, '--json'])
  t.equal(j.code, 1)
  const o = json<{ ok: boolean; error: { message: string }; exit_code: number }>(j)
  t.same([o.ok, o.exit_code], [false, 1], '--json: {ok: false, exit_code} on stdout')
  t.match(o.error.message, /no gateway control socket/)

  // No option at all: the dev default under $KAIRO_STATE_DIR is where it looked.
  const state = join(dir, 'state')
  const d = await cli(['routes'], { env: { KAIRO_STATE_DIR: state } })
  t.equal(d.code, 1)
  const looked = existsSync('/run/kairo-gw/control.sock') ? '/run/kairo-gw/control.sock' : join(state, 'run', 'control.sock')
  t.match(d.stderr, `no gateway control socket at ${looked}`, 'names the default it tried')
})

t.test('a stale socket (its gateway was killed): exit 1, says it is stale', async (t) => {
  const dir = shortDir(t)
  const sock = join(dir, 'control.sock')
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  await until('the listener', 10_000, () => out.includes('up'))
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
  t.ok(existsSync(sock), 'the socket file is left behind')
  const r = await cli(['status', '--socket', sock])
  t.equal(r.code, 1)
  t.match(r.stderr, new RegExp(`gateway control socket ${sock} refuses connections: it is stale`))
})

t.test('a path that is not a socket: exit 1', async (t) => {
  const file = join(shortDir(t), 'control.sock')
  writeFileSync(file, 'not a socket\n')
  const r = await cli(['status', '--socket', file])
  t.equal(r.code, 1)
  t.match(r.stderr, /is not a socket|refuses connections/, `says so: ${r.stderr.trim()}`)
})

t.test('permission denied: exit 1, says to join group kairo or use sudo', async (t) => {
  const gw = await startGateway(t, { name: 'perm' })
  let r
  if (process.getuid?.() === 0) {
    // Root passes every permission check: ask as nobody, as an operator outside group kairo
    // would. Group root (0) so that it can read a checkout made by root with a umask of 027; the
    // gateway's runtime dir is under a 0700 directory of root's, which that group cannot enter.
    r = await cli(['status', '--socket', gw.socket], { uid: 65534, gid: 0, env: { TMPDIR: '/tmp', HOME: '/tmp' } })
  } else {
    const { chmodSync } = await import('node:fs')
    chmodSync(gw.socket, 0o000)
    t.teardown(() => chmodSync(gw.socket, 0o660))
    r = await cli(['status', '--socket', gw.socket])
  }
  t.equal(r.code, 1, r.stderr.trim())
  t.match(r.stderr, `kairo-gw: permission denied on ${gw.socket}: add yourself to group kairo (sudo usermod -aG kairo $USER`)
  t.match(r.stderr, /or use sudo/)
})

t.test('a gateway that does not answer: exit 3 after --timeout', async (t) => {
  const sock = join(shortDir(t), 'control.sock')
  const conns: net.Socket[] = []
  const server = net.createServer((c) => conns.push(c)) // accepts, never answers
  await new Promise<void>((r) => server.listen(sock, () => r()))
  t.teardown(async () => {
    for (const c of conns) c.destroy()
    await new Promise<void>((r) => server.close(() => r()))
  })
  const started = Date.now()
  const r = await cli(['status', '--socket', sock, '--timeout', '300'])
  t.equal(r.code, 3, `timeout: exit 3 (${r.stderr.trim()})`)
  t.match(r.stderr, /"status".*300 ms/)
  t.ok(Date.now() - started < 15_000)
})

t.test('a gateway that refuses, or is older than the CLI, or answers something odd', async (t) => {
  const dir = shortDir(t)
  const sock = join(dir, 'run', 'control.sock')
  mkdirSync(join(dir, 'run'))
  const txid = '0123456789abcdef'
  const server = new ControlServer({
    path: sock,
    handlers: {
      // A future or broken answer: everything the wrong shape. The CLI renders what it can.
      status: () => ({ node_id: 42, uptime_s: 'soon', links: 'none', store: null, name: 'weird\u001b[31mred\nline' }),
      routes: () => ({ routes: [{ dst: null }, 7, 'x', { dst: 'd'.repeat(32), hops: 2, cost: 1.23456, age_ms: 90_500 }] }),
      keys_rotate: () => {
        throw new ResourceLimitError('key rotation refused: too many rotations this hour', { transaction_id: txid })
      },
    },
  })
  await server.listen()
  t.teardown(() => server.close())
  const sk = ['--socket', sock]

  const st = await cli(['status', ...sk])
  t.equal(st.code, 0, `odd answer: still rendered (${st.stderr.trim()})`)
  t.match(st.stdout, /up -/, 'unknown uptime shown as -')
  t.match(st.stdout, /\(no links\)/)
  t.notMatch(st.stdout, /\u001b/, 'no terminal escape from the gateway reaches the terminal')
  t.match(st.stdout, /weird\\u001b\[31mred\\nline/, 'shown escaped instead')
  const rt = await cli(['routes', ...sk])
  t.equal(rt.code, 0)
  t.match(rt.stdout, new RegExp(`^${'d'.repeat(32)}\\s+2\\s+1\\.23\\s+-\\s+-\\s+-\\s+1m 30s$`, 'm'), 'a good row among bad ones')

  const old = await cli(['links', ...sk])
  t.equal(old.code, 1, 'a method the gateway lacks: exit 1')
  t.match(old.stderr, /the gateway does not support links \(is it an older kairo-gw than this CLI\?\)/)

  const refused = await cli(['keys', 'rotate', ...sk])
  t.equal(refused.code, 1, 'a KairoError from the gateway: exit 1')
  t.match(refused.stderr, `kairo-gw: gateway: key rotation refused: too many rotations this hour (ELIMIT, transaction ${txid})`, 'its message, code and transaction ID')
})

t.test('send: bad node IDs and option mixes are usage errors (exit 2); the gateway refusing too', async (t) => {
  const gw = await startGateway(t, { name: 'snd' })
  const sk = ['--socket', gw.socket]
  const id = 'ab'.repeat(16)
  const cases: Array<[string, string[], RegExp]> = [
    ['a short hex string', ['--to', '0123abcd', 'TASK_REQUEST', 'x', ...sk], /"0123abcd" is not a node ID \(32 hex digits\), '\*' \(broadcast\) or HOST:PORT/],
    ['31 hex digits', ['--to', 'a'.repeat(31), 'TASK_REQUEST', 'x', ...sk], /is not a node ID/],
    ['33 hex digits', ['--to', 'a'.repeat(33), 'TASK_REQUEST', 'x', ...sk], /is not a node ID/],
    ['a bad type', ['--to', id, 'PING', 'x', ...sk], /valid types: TASK_REQUEST/],
    ['--node with a node ID', ['--to', id, '--node', id, 'TASK_REQUEST', 'x', ...sk], /--node: only with --to HOST:PORT/],
    ['--wait with HOST:PORT', ['--to', '127.0.0.1:9', '--wait', 'TASK_REQUEST', 'x'], /--wait: only with --to NODE_ID/],
    ['--socket with HOST:PORT', ['--to', '127.0.0.1:9', 'TASK_REQUEST', 'x', ...sk], /--socket: only with --to NODE_ID/],
    ['--wait on a broadcast', ['--to', '*', '--wait', 'BROADCAST_ANNOUNCE', 'x', ...sk], /a broadcast .* is not acknowledged/],
    ['--wait --unreliable', ['--to', id, '--wait', '--unreliable', 'TASK_REQUEST', 'x', ...sk], /not acknowledged/],
    ['--ttl 0', ['--to', id, '--ttl', '0', 'TASK_REQUEST', 'x', ...sk], /--ttl/],
    ['odd --hex', ['--to', id, '--hex', 'TASK_REQUEST', 'abc', ...sk], /--hex: PAYLOAD must be an even number of hex digits/],
    ['to the gateway itself', ['--to', gw.nodeId, 'TASK_REQUEST', 'x', ...sk], /itself/],
  ]
  for (const [what, args, msg] of cases) {
    const r = await cli(['send', ...args])
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim().split('\n')[0]})`)
    t.match(r.stderr, msg, `${what}: says what is wrong`)
  }
  const out = await cli(['outbox-does-not-exist'])
  t.equal(out.code, 2, 'an unknown command: exit 2')
})
