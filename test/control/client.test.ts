/**
 * ControlClient: the errors it gives when there is no gateway, a stale socket, no permission, no
 * answer in time, or a gateway that speaks nonsense; late answers; calls after close.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { ControlClient, ControlConnectError, ControlError, connectError } from '../../appliance/control/client.js'
import { ControlServer } from '../../appliance/control/server.js'
import { REPO_ROOT } from '../lib/pty.js'
import { sleep, startServer, tempDir } from './helpers.js'

const isRoot = process.getuid?.() === 0

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a rejection')
}

/** A fake gateway that answers each request line with whatever `reply` returns (lines or nothing). */
async function fakeServer(t: Test, dir: string, reply: (req: { id: number; method: string }, sock: net.Socket) => void): Promise<string> {
  const path = join(dir, 'fake.sock')
  const server = net.createServer((sock) => {
    let buf = ''
    sock.on('error', () => {})
    sock.on('data', (d) => {
      buf += d.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        reply(JSON.parse(line) as { id: number; method: string }, sock)
      }
    })
  })
  const sockets = new Set<net.Socket>()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(path, resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return path
}

t.test('no socket: ENOENT says to start the gateway', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'control.sock')
  const err = await rejection(ControlClient.connect(path))
  t.ok(err instanceof ControlConnectError)
  t.equal((err as ControlConnectError).code, 'ENOENT')
  t.equal((err as ControlConnectError).path, path)
  t.equal(err.message, `no gateway control socket at ${path}: is kairo-gw running? (start it with \`npx kairo-gw run\`)`)
})

t.test('stale socket: ECONNREFUSED says the gateway is not running', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'control.sock')
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' })
  await new Promise((resolve) => child.on('exit', resolve))
  const err = (await rejection(ControlClient.connect(path))) as ControlConnectError
  t.equal(err.code, 'ECONNREFUSED')
  t.match(err.message, `gateway control socket ${path} refuses connections: kairo-gw is not running`)
})

t.test('permission denied: EACCES names the path and the group', async (t) => {
  const path = '/run/kairo-gw/control.sock'
  const e = connectError(path, Object.assign(new Error('connect EACCES'), { code: 'EACCES' }))
  t.equal(e.message, 'permission denied on gateway control socket /run/kairo-gw/control.sock: you must be root or in group kairo')
  t.equal(e.code, 'EACCES')
  t.equal(connectError(path, Object.assign(new Error('x'), { code: 'EPERM' })).code, 'EPERM')
  t.equal(
    connectError(path, Object.assign(new Error('x'), { code: 'EAGAIN' })).message,
    `gateway control socket ${path} is not accepting connections (its backlog is full): kairo-gw is busy or hung`,
  )
  t.match(connectError(path, Object.assign(new Error('connect EWHATEVER x'), { code: 'EWHATEVER' })).message, `cannot connect to gateway control socket ${path}: connect EWHATEVER x`)

  await t.test('for real: an unprivileged user, kept out by the runtime dir (0750) or by the socket (0660)', { skip: isRoot ? false : 'needs root to run a child as nobody' }, async (t) => {
    const dir = await tempDir(t)
    await fsp.chmod(dir, 0o755) // so that what keeps nobody out is ours, not mkdtemp's 0700
    const inDir = await startServer(t, dir, { path: join(dir, 'run', 'control.sock'), handlers: { ping: () => 'pong' } })
    const inOpenDir = await startServer(t, dir, { path: join(dir, 'open.sock'), handlers: { ping: () => 'pong' } })
    const script = `
      import { ControlClient } from ${JSON.stringify(join(REPO_ROOT, 'appliance/control/client.ts'))}
      const out = []
      for (const path of ${JSON.stringify([inDir.path, inOpenDir.path])}) {
        try { const c = await ControlClient.connect(path); out.push({ ok: true }); await c.close() }
        catch (e) { out.push({ code: e.code, message: e.message }) }
      }
      console.log(JSON.stringify(out))`
    const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      uid: 65534,
      gid: 65534,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let errOut = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (errOut += d))
    await new Promise((resolve) => child.on('exit', resolve))
    let got: Array<{ code?: string; message?: string }>
    try {
      got = JSON.parse(out.trim()) as typeof got
    } catch {
      t.fail(`child printed no result; stderr: ${errOut.slice(0, 500)}`)
      return
    }
    for (const [i, path] of [inDir.path, inOpenDir.path].entries()) {
      t.equal(got[i]?.code, 'EACCES', path)
      t.equal(got[i]?.message, `permission denied on gateway control socket ${path}: you must be root or in group kairo`)
    }
  })
})

t.test('timeout: TimeoutError naming the method and the socket; a late answer is dropped', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, {
    handlers: {
      slow: async (p) => {
        await sleep(Number(p.ms))
        return 'late'
      },
      quick: () => 'quick',
    },
  })
  const client = await ControlClient.connect(server.path, { timeoutMs: 100 })
  t.teardown(() => client.close())
  const err = await rejection(client.call('slow', { ms: 300 }))
  t.equal(err.name, 'TimeoutError')
  t.equal((err as Error & { code: string }).code, 'ETIMEDOUT')
  t.equal(err.message, `control call "slow" on ${server.path} got no answer within 100 ms`)
  const err2 = await rejection(client.call('slow', { ms: 300 }, { timeoutMs: 50 }))
  t.match(err2.message, /within 50 ms/, 'per-call timeout')
  t.equal(await client.call('slow', { ms: 10 }, { timeoutMs: 2000 }), 'late', 'a longer per-call timeout')
  await sleep(350) // the late answers arrive and are ignored
  t.equal(await client.call('quick'), 'quick', 'the connection is still in step')
  t.notOk(client.closed)
})

t.test('bad arguments and calls after close', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: { ping: () => 'pong' } })
  const client = await ControlClient.connect(server.path)
  await t.rejects(client.call(''), TypeError)
  await t.rejects(client.call('ping', [] as unknown as Record<string, unknown>), TypeError)
  await t.rejects(client.call('ping', { n: 1n }), { name: 'TypeError', message: /cannot be encoded as JSON/ })
  await t.rejects(client.call('ping', {}, { timeoutMs: 0 }), TypeError)
  await t.rejects(ControlClient.connect(server.path, { timeoutMs: -1 }), TypeError)
  t.equal(await client.call('ping'), 'pong')
  await client.close()
  t.ok(client.closed)
  await t.rejects(client.call('ping'), { name: 'ConnectionLostError', message: `control client for ${server.path} is closed; cannot call "ping"` })
  t.throws(() => client.notify('ping'), { name: 'ConnectionLostError' })
  await client.close()
  t.pass('close() twice is fine')
})

t.test('a gateway that goes away mid-call', async (t) => {
  const dir = await tempDir(t)
  const server = new ControlServer({ path: join(dir, 'control.sock'), handlers: { hang: () => new Promise(() => {}) }, groupFile: join(dir, 'none') })
  await server.listen()
  const client = await ControlClient.connect(server.path)
  const calls = [client.call('hang'), client.call('hang')].map((p) => rejection(p))
  await sleep(20)
  await server.close()
  for (const err of await Promise.all(calls)) {
    t.equal(err.name, 'ConnectionLostError')
    t.equal(err.message, `control socket ${server.path} closed before answering "hang"`)
  }
  t.ok(client.closed)
})

t.test('responses matched by id whatever their order; an id-null error fails every outstanding call', async (t) => {
  const dir = await tempDir(t)
  const held: Array<{ id: number; method: string }> = []
  const path = await fakeServer(t, dir, (req, sock) => {
    if (req.method === 'hold') {
      held.push(req)
      return
    }
    if (req.method === 'release') {
      // answer in reverse order, with a stray id and a trailing \r
      sock.write(JSON.stringify({ jsonrpc: '2.0', id: 9999, result: 'stray' }) + '\n')
      for (const h of held.reverse()) sock.write(JSON.stringify({ jsonrpc: '2.0', id: h.id, result: h.id }) + '\r\n')
      sock.write(JSON.stringify({ jsonrpc: '2.0', id: req.id, result: 'released' }) + '\n')
      held.length = 0
      return
    }
    if (req.method === 'fail-all') {
      sock.write(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'request larger than 10 bytes' } }) + '\n')
      return
    }
    if (req.method === 'error') {
      sock.write(JSON.stringify({ jsonrpc: '2.0', id: req.id, error: { code: -32000, message: 'nope', data: { kairo_code: 'ELIMIT', transaction_id: 'ab', field: 7, extra: 1 } } }) + '\n')
    }
  })
  const client = await ControlClient.connect(path)
  t.teardown(() => client.close())
  const a = client.call<number>('hold')
  const b = client.call<number>('hold')
  await sleep(20)
  t.equal(await client.call('release'), 'released')
  t.same(await Promise.all([a, b]), [1, 2])

  const e = (await rejection(client.call('error'))) as ControlError
  t.ok(e instanceof ControlError)
  t.same(e.data, { kairo_code: 'ELIMIT', transaction_id: 'ab' }, 'only the known data fields, of the right type')
  t.equal(e.field, undefined)

  const held1 = rejection(client.call('hold'))
  const held2 = rejection(client.call('hold'))
  await sleep(20)
  const third = rejection(client.call('fail-all'))
  for (const err of await Promise.all([held1, held2, third])) {
    t.ok(err instanceof ControlError)
    t.equal((err as ControlError).code, -32600)
    t.equal(err.message, 'request larger than 10 bytes')
  }
})

t.test('a gateway that speaks nonsense: the client closes and says so', async (t) => {
  const dir = await tempDir(t)
  const path = await fakeServer(t, dir, (_req, sock) => sock.write('this is not json\n'))
  const client = await ControlClient.connect(path)
  const err = await rejection(client.call('x'))
  t.equal(err.message, `gateway control socket ${path} sent a line that is not JSON; connection closed`)
  t.ok(client.closed)
  await client.close()

  const path2 = join(dir, 'fake2.sock')
  const s2 = net.createServer((sock) => sock.on('data', () => sock.write('[1,2]\n')))
  await new Promise<void>((resolve) => s2.listen(path2, resolve))
  t.teardown(() => new Promise<void>((resolve) => s2.close(() => resolve())))
  const c2 = await ControlClient.connect(path2)
  t.match((await rejection(c2.call('x'))).message, /not a JSON-RPC response/)
  await c2.close()

  const path3 = join(dir, 'fake3.sock')
  const s3 = net.createServer((sock) => sock.on('data', () => sock.write(Buffer.alloc(4096, 0x61))))
  await new Promise<void>((resolve) => s3.listen(path3, resolve))
  t.teardown(() => new Promise<void>((resolve) => s3.close(() => resolve())))
  const c3 = await ControlClient.connect(path3, { maxResponseBytes: 1000 })
  t.match((await rejection(c3.call('x'))).message, /a response longer than 1000 bytes/)
  await c3.close()
})

t.test('not a socket', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'plain')
  await fsp.writeFile(file, '')
  const err = (await rejection(ControlClient.connect(file))) as ControlConnectError
  t.ok(err instanceof ControlConnectError)
  t.ok(['ECONNREFUSED', 'ENOTSOCK'].includes(err.code), err.code)
  t.match(err.message, file)
})
