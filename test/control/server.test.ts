/**
 * ControlServer over real Unix sockets in a temp dir: round trips, concurrency, notifications,
 * every error code, the socket file's life (mode, group, stale/live socket, close), limits
 * (request size, connections, in-flight), and hostile input that must not take it down.
 */
import t from 'tap'
import fc from 'fast-check'
import net from 'node:net'
import { spawn } from 'node:child_process'
import { promises as fsp, statSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigRejectedError, ResourceLimitError } from '../../appliance/core/errors.js'
import { ControlClient, ControlError } from '../../appliance/control/client.js'
import { ControlServer, MAX_IN_FLIGHT, lookupGroup, probeSocket, type ControlHandler } from '../../appliance/control/server.js'
import { param, rejectUnknownParams, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, KAIRO_ERROR, METHOD_NOT_FOUND, PARSE_ERROR } from '../../appliance/control/protocol.js'
import { RawConn, recordingLog, sleep, startServer, tempDir } from './helpers.js'
import { until } from '../lib/until.js'

const isRoot = process.getuid?.() === 0

function handlers(record: { pokes: unknown[] } = { pokes: [] }): Record<string, ControlHandler> {
  return {
    echo: (p) => p,
    add: (p) => {
      rejectUnknownParams(p, ['a', 'b'])
      return param(p, 'a', 'number', { required: true }) + param(p, 'b', 'number', { required: true })
    },
    slow: async (p) => {
      const ms = param(p, 'ms', 'integer', { required: true, min: 0 })
      await sleep(ms)
      return ms
    },
    hang: () => new Promise(() => {}),
    kairo: () => {
      throw new ConfigRejectedError('radio.spreading_factor: 13 is out of range 5..12', { field: 'radio.spreading_factor', transaction_id: '0123456789abcdef' })
    },
    kairoAsync: async () => {
      await sleep(1)
      throw new ResourceLimitError('outbox full (10000 messages)', { transaction_id: 'fedcba9876543210' })
    },
    boom: () => {
      throw new Error('cannot open /etc/kairo/secret.key')
    },
    boomString: () => {
      // eslint-disable-next-line no-throw-literal
      throw 'a thrown string'
    },
    bigint: () => 10n,
    nothing: () => undefined,
    peer: (_p, ctx) => ctx.peer,
    poke: (p) => {
      record.pokes.push(p)
    },
    big: (p) => 'x'.repeat(param(p, 'n', 'integer', { required: true })),
  }
}

t.test('round trip through ControlClient', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  const client = await ControlClient.connect(server.path, { timeoutMs: 5000 })
  t.teardown(() => client.close())
  t.same(await client.call('echo', { a: [1, 'two', { three: null }], s: 'héllo 🚀\n' }), { a: [1, 'two', { three: null }], s: 'héllo 🚀\n' })
  t.equal(await client.call<number>('add', { a: 2, b: 40 }), 42)
  t.same(await client.call('echo'), {}, 'params default to {}')
  t.equal(await client.call('nothing'), null, 'undefined result → null')
  t.match(await client.call('peer'), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }, 'ctx.peer: this process, by SO_PEERCRED')
  t.equal((await client.call<string>('big', { n: 3_000_000 })).length, 3_000_000, 'a 3 MB result arrives whole')
  t.equal(server.connectionCount, 1)
})

t.test('concurrent calls: pipelined on one connection, matched by id, across connections', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  const clients = await Promise.all([0, 1, 2].map(() => ControlClient.connect(server.path)))
  t.teardown(() => Promise.all(clients.map((c) => c.close())))
  const delays = Array.from({ length: 150 }, (_, i) => (i * 37) % 40)
  const started = Date.now()
  const results = await Promise.all(delays.map((ms, i) => clients[i % 3]!.call<number>('slow', { ms })))
  t.same(results, delays, 'each call got its own answer although they finished out of order')
  t.ok(Date.now() - started < 2000, `concurrent, not serial (${Date.now() - started} ms for ${delays.reduce((a, b) => a + b, 0)} ms of sleeps)`)

  // the same on one raw connection, checking the out-of-order answers
  const raw = await RawConn.connect(server.path)
  t.teardown(() => raw.destroy())
  raw.send('{"jsonrpc":"2.0","id":"slow","method":"slow","params":{"ms":80}}\n{"jsonrpc":"2.0","id":"fast","method":"slow","params":{"ms":0}}\n')
  t.equal((await raw.next()).id, 'fast')
  t.equal((await raw.next()).id, 'slow')
})

t.test('notifications are run and never answered', async (t) => {
  const dir = await tempDir(t)
  const record = { pokes: [] as unknown[] }
  const server = await startServer(t, dir, { handlers: handlers(record) })
  const raw = await RawConn.connect(server.path)
  t.teardown(() => raw.destroy())
  raw.send('{"jsonrpc":"2.0","method":"poke","params":{"n":1}}\n')
  raw.send('{"jsonrpc":"2.0","method":"no-such-method"}\n')
  raw.send('{"jsonrpc":"2.0","method":"boom"}\n')
  raw.send('{"jsonrpc":"2.0","method":"kairo"}\n')
  raw.send('{"jsonrpc":"2.0","method":"add","params":{"a":"x"}}\n')
  raw.send('\n   \r\n') // blank lines: ignored
  raw.send('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"after":true}}\n')
  const r = await raw.next()
  t.same(r, { jsonrpc: '2.0', id: 1, result: { after: true } }, 'the only line is the answer to the request')
  await sleep(50)
  t.equal(raw.buffered, 0, 'nothing else was sent')
  t.same(record.pokes, [{ n: 1 }])

  const client = await ControlClient.connect(server.path)
  t.teardown(() => client.close())
  client.notify('poke', { n: 2 })
  await until('second poke', 2000, () => record.pokes.length === 2)
  t.same(record.pokes[1], { n: 2 })

  // a notification that cannot be read as a request is answered (id null), as JSON-RPC 2.0 says
  raw.send('{"method":"poke"}\n')
  const e = await raw.next()
  t.equal(e.error.code, INVALID_REQUEST)
  t.equal(e.id, null)
})

t.test('every error code over the socket', async (t) => {
  const dir = await tempDir(t)
  const log = recordingLog()
  const server = await startServer(t, dir, { handlers: handlers(), log })
  const raw = await RawConn.connect(server.path)
  t.teardown(() => raw.destroy())

  raw.send('{"jsonrpc":"2.0","id":1,"method":\n')
  let r = await raw.next()
  t.equal(r.error.code, PARSE_ERROR)
  t.equal(r.id, null)
  t.match(r.error.message, /^parse error: /)

  raw.send(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"s":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}\n')]))
  r = await raw.next()
  t.equal(r.error.code, PARSE_ERROR)
  t.equal(r.error.message, 'parse error: invalid UTF-8 at byte 55')

  raw.send('{"jsonrpc":"2.0","id":2,"method":"echo","parms":{}}\n')
  r = await raw.next()
  t.same(r, { jsonrpc: '2.0', id: 2, error: { code: INVALID_REQUEST, message: 'invalid request: unexpected member "parms" (a request has jsonrpc, id, method, params)' } })

  raw.send('{"jsonrpc":"2.0","id":3,"method":"stauts"}\n')
  r = await raw.next()
  t.equal(r.error.code, METHOD_NOT_FOUND)
  t.equal(r.id, 3)
  t.equal(r.error.message, 'unknown method "stauts" (available: add, big, bigint, boom, boomString, echo, hang, kairo, kairoAsync, nothing, peer, poke, slow)')

  for (const inherited of ['toString', '__proto__', 'constructor', 'hasOwnProperty']) {
    raw.send(JSON.stringify({ jsonrpc: '2.0', id: inherited, method: inherited }) + '\n')
    r = await raw.next()
    t.equal(r.error.code, METHOD_NOT_FOUND, `${inherited} is not a method`)
  }

  raw.send('{"jsonrpc":"2.0","id":4,"method":"add","params":{"a":1}}\n')
  r = await raw.next()
  t.same(r.error, { code: INVALID_PARAMS, message: 'param "b" is required (a finite number)', data: { field: 'b' } })
  raw.send('{"jsonrpc":"2.0","id":5,"method":"add","params":{"a":1,"b":2,"c":3}}\n')
  r = await raw.next()
  t.same(r.error, { code: INVALID_PARAMS, message: 'unknown param "c" (expected: a, b)', data: { field: 'c' } })
  raw.send('{"jsonrpc":"2.0","id":6,"method":"add","params":[1,2]}\n')
  r = await raw.next()
  t.equal(r.error.code, INVALID_PARAMS)

  raw.send('{"jsonrpc":"2.0","id":7,"method":"kairo"}\n')
  r = await raw.next()
  t.same(r, {
    jsonrpc: '2.0',
    id: 7,
    error: { code: KAIRO_ERROR, message: 'radio.spreading_factor: 13 is out of range 5..12', data: { kairo_code: 'ECONFIG', transaction_id: '0123456789abcdef', field: 'radio.spreading_factor' } },
  })

  raw.send('{"jsonrpc":"2.0","id":8,"method":"boom"}\n')
  r = await raw.next()
  t.equal(r.error.code, INTERNAL_ERROR)
  t.equal(r.error.message, 'internal error')
  t.notMatch(JSON.stringify(r), /secret|Error|at /, 'no message, no stack trace')
  const tid = r.error.data.transaction_id as string
  const logged = log.entries.find((e) => e.level === 'warn' && e.fields?.transaction_id === tid)
  t.ok(logged, 'the failure is in the log under the transaction id the client got')
  t.match(logged?.fields?.error, /secret\.key/)
  t.match(logged?.fields?.stack, /server\.test\.ts/)

  raw.send('{"jsonrpc":"2.0","id":9,"method":"boomString"}\n{"jsonrpc":"2.0","id":10,"method":"bigint"}\n')
  const two = [await raw.next(), await raw.next()].sort((a, b) => a.id - b.id)
  t.equal(two[0].error.code, INTERNAL_ERROR, 'a thrown non-Error → -32603')
  t.equal(two[1].error.code, INTERNAL_ERROR, 'a result JSON cannot encode → -32603')

  raw.send('{"jsonrpc":"2.0","id":11,"method":"echo","params":{"still":"alive"}}\n')
  t.same((await raw.next()).result, { still: 'alive' })
})

t.test('a handler throwing a KairoError gives -32000 with kairo_code and transaction_id (client side)', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  const client = await ControlClient.connect(server.path)
  t.teardown(() => client.close())
  for (const [method, kairo_code, transaction_id, field] of [
    ['kairo', 'ECONFIG', '0123456789abcdef', 'radio.spreading_factor'],
    ['kairoAsync', 'ELIMIT', 'fedcba9876543210', undefined],
  ] as const) {
    const err = await client.call(method).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err instanceof ControlError, `${method}: ControlError`)
    const ce = err as ControlError
    t.equal(ce.code, KAIRO_ERROR)
    t.equal(ce.kairo_code, kairo_code)
    t.equal(ce.transaction_id, transaction_id)
    t.equal(ce.field, field)
    t.equal(ce.method, method)
    t.same(ce.data, field === undefined ? { kairo_code, transaction_id } : { kairo_code, transaction_id, field })
  }
  const e = (await client.call('add', { a: 'x', b: 1 }).catch((err: unknown) => err)) as ControlError
  t.equal(e.code, INVALID_PARAMS)
  t.equal(e.field, 'a')
  t.equal(e.message, 'param "a" must be a finite number, not the string "x"')
  const nf = (await client.call('nope').catch((err: unknown) => err)) as ControlError
  t.equal(nf.code, METHOD_NOT_FOUND)
  t.equal(await client.call<number>('add', { a: 1, b: 1 }), 2, 'the connection is fine after errors')
})

t.test('socket file: mode 0660, runtime dir created 0750, group kairo when it exists', async (t) => {
  const dir = await tempDir(t)
  const log = recordingLog()
  const runtime = join(dir, 'run', 'kairo-gw')
  const server = await startServer(t, dir, { path: join(runtime, 'control.sock'), handlers: handlers(), log })
  const st = statSync(server.path)
  t.ok(st.isSocket(), 'a socket')
  t.equal(st.mode & 0o777, 0o660, 'mode 0660')
  t.equal(statSync(runtime).mode & 0o777, 0o750, 'runtime dir created 0750')
  t.equal(st.gid, process.getgid?.(), 'no group kairo: the owner group stays')
  t.ok(
    log.entries.some((e) => e.level === 'debug' && /owner group/.test(e.msg) && /no group kairo/.test(String(e.fields?.reason))),
    'said so at debug',
  )

  // an existing runtime dir is left as it is
  const existing = join(dir, 'existing')
  await fsp.mkdir(existing, { mode: 0o755 })
  await fsp.chmod(existing, 0o755)
  await startServer(t, existing, { handlers: handlers() })
  t.equal(statSync(existing).mode & 0o777, 0o755, 'existing dir keeps its mode')

  await t.test('with a group kairo', { skip: isRoot ? false : 'chgrp to an arbitrary gid needs root' }, async (t) => {
    const groupFile = join(dir, 'group')
    await fsp.writeFile(groupFile, 'root:x:0:\nkairoish:x:4241:\nkairo:x:4242:alice,bob\n')
    t.equal(await lookupGroup(groupFile, 'kairo'), 4242)
    t.equal(await lookupGroup(groupFile, 'nobody-here'), undefined)
    t.equal(await lookupGroup(join(dir, 'missing'), 'kairo'), undefined)
    const rt = join(dir, 'rt2')
    const s = new ControlServer({ path: join(rt, 'control.sock'), handlers: handlers(), groupFile })
    await s.listen()
    t.teardown(() => s.close())
    t.equal(statSync(s.path).gid, 4242, 'socket group kairo')
    t.equal(statSync(s.path).mode & 0o777, 0o660)
    t.equal(statSync(rt).gid, 4242, 'runtime dir group kairo')
    t.equal(statSync(rt).mode & 0o777, 0o750)
  })
})

t.test('stale socket is removed, a live one is refused, a non-socket is left alone', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'control.sock')

  // a gateway that died without cleaning up: its socket file remains, nothing listens
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' })
  await new Promise((resolve) => child.on('exit', resolve))
  t.ok(statSync(path).isSocket(), 'stale socket file left by a killed process')
  t.equal(await probeSocket(path), 'stale')

  const log = recordingLog()
  const a = new ControlServer({ path, handlers: handlers(), log, groupFile: join(dir, 'none') })
  await a.listen()
  t.teardown(() => a.close())
  t.ok(log.entries.some((e) => /stale/.test(e.msg)), 'logged the removal')
  t.equal(await probeSocket(path), 'answers')

  const b = new ControlServer({ path, handlers: handlers(), groupFile: join(dir, 'none') })
  await t.rejects(b.listen(), { message: `another kairo-gw is running (control socket ${path} answers)` })
  const client = await ControlClient.connect(path)
  t.teardown(() => client.close())
  t.equal(await client.call<number>('add', { a: 1, b: 2 }), 3, 'the running server is untouched')
  await b.close() // never listened: a no-op that does not remove the live socket
  t.ok(statSync(path).isSocket(), 'the live socket is still there')
  t.equal(await client.call<number>('add', { a: 2, b: 2 }), 4)

  const file = join(dir, 'not-a-socket')
  await fsp.writeFile(file, 'precious')
  await t.rejects(new ControlServer({ path: file, handlers: {} }).listen(), { message: `${file} exists and is not a socket: not removing it (remove it or choose another runtime_dir)` })
  t.equal(await fsp.readFile(file, 'utf8'), 'precious')

  const long = join(dir, 'x'.repeat(120), 'control.sock')
  await t.rejects(new ControlServer({ path: long, handlers: {} }).listen(), { message: /longer than the 107 a Unix socket address holds/ })
})

t.test('close() removes the socket file and fails outstanding calls', async (t) => {
  const dir = await tempDir(t)
  const server = new ControlServer({ path: join(dir, 'control.sock'), handlers: handlers(), groupFile: join(dir, 'none') })
  await server.listen()
  const client = await ControlClient.connect(server.path)
  const pending = client.call('hang').then(
    () => undefined,
    (e: unknown) => e,
  )
  await sleep(20)
  await server.close()
  t.match(await pending, { name: 'ConnectionLostError', message: `control socket ${server.path} closed before answering "hang"` })
  await t.rejects(fsp.stat(server.path), { code: 'ENOENT' }, 'socket file removed')
  await server.close()
  t.pass('close() twice is fine')
  // and it can be started again on the same path
  const again = new ControlServer({ path: server.path, handlers: handlers(), groupFile: join(dir, 'none') })
  await again.listen()
  t.teardown(() => again.close())
  const c2 = await ControlClient.connect(again.path)
  t.teardown(() => c2.close())
  t.equal(await c2.call<number>('add', { a: 5, b: 5 }), 10)
})

t.test('oversized request: -32600 and that connection closes; other clients keep working', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers(), maxRequestBytes: 1024 })
  const other = await ControlClient.connect(server.path)
  t.teardown(() => other.close())
  const slowCall = other.call<number>('slow', { ms: 100 })

  const raw = await RawConn.connect(server.path)
  t.teardown(() => raw.destroy())
  raw.send('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"s":"' + 'a'.repeat(600))
  await sleep(20)
  raw.send('a'.repeat(600)) // now past 1024 bytes, no newline yet
  const r = await raw.next()
  t.same(r, { jsonrpc: '2.0', id: null, error: { code: INVALID_REQUEST, message: 'request larger than 1024 bytes' } })
  await raw.closed
  t.pass('connection closed')

  t.equal(await slowCall, 100, 'a call in flight on another connection is answered')
  t.equal(await other.call<number>('add', { a: 1, b: 1 }), 2, 'and new calls still work')

  // exactly at the limit is fine; one byte more is not (complete lines too)
  const exact = (n: number) => {
    const head = '{"jsonrpc":"2.0","id":1,"method":"echo","params":{"s":"'
    const tail = '"}}'
    return head + 'b'.repeat(n - head.length - tail.length) + tail
  }
  const ok = await RawConn.connect(server.path)
  t.teardown(() => ok.destroy())
  ok.send(exact(1024) + '\n')
  t.equal((await ok.next()).result.s.length, 1024 - 58)
  ok.send(exact(1025) + '\n')
  t.equal((await ok.next()).error.message, 'request larger than 1024 bytes')
  await ok.closed

  // through the client: the call fails with the server's error
  const c = await ControlClient.connect(server.path)
  const err = (await c.call('echo', { s: 'z'.repeat(5000) }).catch((e: unknown) => e)) as ControlError
  t.ok(err instanceof ControlError)
  t.equal(err.code, INVALID_REQUEST)
  t.equal(err.message, 'request larger than 1024 bytes')
  await until('client sees the close', 2000, () => c.closed)
  await t.rejects(c.call('echo'), { name: 'ConnectionLostError' })
})

t.test('default limit is 1 MiB', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  t.equal(server.maxRequestBytes, 1024 * 1024)
  t.equal(server.maxConnections, 64)
  const raw = await RawConn.connect(server.path)
  t.teardown(() => raw.destroy())
  raw.send(Buffer.alloc(1024 * 1024 + 1, 0x20))
  t.equal((await raw.next()).error.message, `request larger than ${1024 * 1024} bytes`)
  await raw.closed
})

t.test('slow, idle and non-reading clients never block others', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  const idle = await RawConn.connect(server.path) // connects, says nothing
  const half = await RawConn.connect(server.path) // half a request, never finished
  half.send('{"jsonrpc":"2.0","id":1,"meth')
  const hanging = await RawConn.connect(server.path) // fills its in-flight slots with requests that never finish
  for (let i = 0; i < MAX_IN_FLIGHT + 10; i++) hanging.send(`{"jsonrpc":"2.0","id":${i},"method":"hang"}\n`)
  // a client that asks for 2 MB answers and never reads them
  const deaf = net.createConnection(server.path)
  deaf.on('error', () => {})
  await new Promise((resolve) => deaf.once('connect', resolve))
  deaf.pause()
  for (let i = 0; i < 50; i++) deaf.write(`{"jsonrpc":"2.0","id":${i},"method":"big","params":{"n":2000000}}\n`)
  t.teardown(() => {
    for (const c of [idle, half, hanging]) c.destroy()
    deaf.destroy()
  })
  await sleep(200)

  const client = await ControlClient.connect(server.path, { timeoutMs: 2000 })
  t.teardown(() => client.close())
  const started = Date.now()
  for (let i = 0; i < 20; i++) t.equal(await client.call<number>('add', { a: i, b: 1 }), i + 1)
  t.ok(Date.now() - started < 1000, `20 calls answered promptly (${Date.now() - started} ms)`)
  t.equal(server.connectionCount, 5)
})

t.test('connection limit: one more is told why and closed; a freed slot can be used again', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers(), maxConnections: 2 })
  const a = await ControlClient.connect(server.path)
  const b = await ControlClient.connect(server.path)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  await until('two connections', 2000, () => server.connectionCount === 2)
  const third = await RawConn.connect(server.path)
  const r = await third.next()
  t.equal(r.id, null)
  t.equal(r.error.code, KAIRO_ERROR)
  t.equal(r.error.data.kairo_code, 'ELIMIT')
  t.match(r.error.message, /too many control connections \(2\)/)
  await third.closed

  const c = await ControlClient.connect(server.path)
  const err = (await c.call('echo').catch((e: unknown) => e)) as ControlError
  t.equal(err.kairo_code, 'ELIMIT', 'the client reports the refusal as the call error')
  await c.close()

  await a.close()
  await until('a slot is free', 2000, () => server.connectionCount === 1)
  const d = await ControlClient.connect(server.path)
  t.teardown(() => d.close())
  t.equal(await d.call<number>('add', { a: 3, b: 4 }), 7)
  t.equal(await b.call<number>('add', { a: 1, b: 1 }), 2)
})

t.test('garbage, invalid UTF-8, huge numbers and deep nesting never crash the server', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  const raw = await RawConn.connect(server.path)
  t.teardown(() => raw.destroy())
  const hostile: Array<[string | Buffer, number]> = [
    [Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0xc0, 0xaf]), PARSE_ERROR],
    [Buffer.from([0xed, 0xa0, 0x80, 0x7b, 0x7d]), PARSE_ERROR], // a UTF-16 surrogate in UTF-8
    [Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), PARSE_ERROR], // BOM
    ['\u0000\u0001\u0002', PARSE_ERROR],
    ['{"jsonrpc":"2.0","id":1e400,"method":"echo"}', INVALID_REQUEST],
    ['{"jsonrpc":"2.0","id":-1e400,"method":"echo"}', INVALID_REQUEST],
    ['{"jsonrpc":"2.0","id":99999999999999999999999999999,"method":"echo"}', INVALID_REQUEST],
    ['{"jsonrpc":"2.0","id":1,"method":"echo","params":{"n":' + '9'.repeat(5000) + '}}', -1], // Infinity → encoded as null
    ['{"jsonrpc":"2.0","id":2,"method":"add","params":{"a":1e400,"b":1}}', INVALID_PARAMS],
    ['{"jsonrpc":"2.0","id":3,"method":"echo","params":{"x":' + '['.repeat(400_000) + ']'.repeat(400_000) + '}}', INVALID_REQUEST],
    ['{"jsonrpc":"2.0","id":4,"method":"echo","params":{"x":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}}', INVALID_REQUEST],
    ['['.repeat(500_000), PARSE_ERROR],
    ['{"jsonrpc":"2.0","id":5,"method":"echo","params":{"__proto__":{"polluted":true}}}', -1],
    ['"' + 'a'.repeat(100_000), PARSE_ERROR],
  ]
  for (const [line, code] of hostile) {
    raw.send(line)
    raw.send('\n')
    const r = await raw.next()
    const label = (typeof line === 'string' ? line : line.toString('hex')).slice(0, 60)
    if (code === -1) t.ok('result' in r, `${label}: answered`)
    else t.equal(r.error?.code, code, label)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')

  await t.test('property: random byte streams, then a normal call still works', async (t) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }).map((s) => Buffer.from(s)), fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? ''))), { maxLength: 8 }),
        async (chunks) => {
          const conn = await RawConn.connect(server.path)
          try {
            for (const c of chunks) conn.send(Buffer.concat([c, Buffer.from('\n')]))
            conn.send('{"jsonrpc":"2.0","id":"probe","method":"echo","params":{"ok":true}}\n')
            for (;;) {
              const r = await conn.next(3000)
              if (typeof r !== 'object' || r === null || r.jsonrpc !== '2.0') return false
              if (r.id === 'probe' && r.result?.ok === true) return true
            }
          } finally {
            conn.destroy()
          }
        },
      ),
      { numRuns: 150 },
    )
    t.pass('server answered every stream and stayed up')
  })

  const client = await ControlClient.connect(server.path)
  t.teardown(() => client.close())
  t.equal(await client.call<number>('add', { a: 20, b: 22 }), 42, 'alive at the end')
})

t.test('a client that disconnects mid-request does not disturb the server', async (t) => {
  const dir = await tempDir(t)
  const server = await startServer(t, dir, { handlers: handlers() })
  for (let i = 0; i < 20; i++) {
    const raw = await RawConn.connect(server.path)
    raw.send('{"jsonrpc":"2.0","id":1,"method":"slow","params":{"ms":20}}\n{"jsonrpc":"2.0","id":2,"method":"big","params":{"n":1000000}}\n')
    raw.destroy()
  }
  await sleep(60)
  const client = await ControlClient.connect(server.path)
  t.teardown(() => client.close())
  t.equal(await client.call<number>('add', { a: 1, b: 2 }), 3)
  await until('dropped connections forgotten', 2000, () => server.connectionCount === 1)
})
