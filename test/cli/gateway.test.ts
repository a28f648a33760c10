import t, { type Test } from 'tap'
import dgram from 'node:dgram'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Identity } from '../../appliance/core/identity.js'
import { TimeoutError } from '../../appliance/core/errors.js'
import { UdpGateway, AGENT_TYPE_NAMES, parseAgentType, type GatewayMessage, type UdpAddress } from '../../appliance/gateway/udp-gateway.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

function inbox(gw: UdpGateway) {
  const got: GatewayMessage[] = []
  gw.on('message', (m: GatewayMessage) => got.push(m))
  return got
}

async function waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = 3000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = probe()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function gateway(t: Test, seed: number, opts: { timeoutMs?: number } = {}) {
  const gw = new UdpGateway({ identity: Identity.fromSeed(Buffer.alloc(32, seed)), port: 0, ...opts })
  const address = await gw.start()
  t.teardown(() => gw.stop())
  return { gw, address, got: inbox(gw) }
}

/** Sends every agent type from `a` to `b` and checks what `b` received. */
async function exchange(t: Test, a: { gw: UdpGateway; address: UdpAddress }, b: { gw: UdpGateway; address: UdpAddress; got: GatewayMessage[] }, tag: string) {
  const start = b.got.length
  for (const type of AGENT_TYPE_NAMES) {
    const payload = Buffer.from(`${tag} ${type}`)
    await a.gw.send(b.address, b.gw.nodeIdHex, type, payload)
  }
  await waitFor(`${AGENT_TYPE_NAMES.length} messages at ${tag}`, () => b.got.length - start >= AGENT_TYPE_NAMES.length)
  const got = b.got.slice(start)
  t.same(got.map((m) => m.type), AGENT_TYPE_NAMES, `${tag}: all five agent types arrive, in order`)
  t.ok(got.every((m) => m.from === a.gw.nodeIdHex), `${tag}: the sender is authenticated as ${a.gw.nodeIdHex}`)
  t.same(got.map((m) => m.payload.toString()), AGENT_TYPE_NAMES.map((ty) => `${tag} ${ty}`), `${tag}: payloads intact`)
  t.equal(got[0]!.address.port, a.address.port, `${tag}: the sender's UDP address is reported`)
}

t.test('agent type names parse case-insensitively; others are refused with the list', async (t) => {
  t.equal(parseAgentType('task_request'), parseAgentType('TASK_REQUEST'))
  t.equal(parseAgentType('Vector-Sync'), parseAgentType('VECTOR_SYNC'))
  t.throws(() => parseAgentType('HANDSHAKE'), /valid types: TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC/)
})

t.test('two gateways: XX on first contact, all five types both ways; IK after an announce', async (t) => {
  const a = await gateway(t, 1)
  const b = await gateway(t, 2)
  const patterns: string[] = []
  a.gw.on('session', (ev: { pattern: string }) => patterns.push(ev.pattern))

  const first = await a.gw.send(b.address, b.gw.nodeIdHex, 'TASK_REQUEST', Buffer.from('first'))
  t.equal(first.pattern, 'XX', 'no announce seen: XX')
  t.equal(first.frameBytes, 5 + 48, 'Data frame = payload + 48 B')
  await waitFor('first message', () => b.got.length === 1)
  b.got.length = 0
  await exchange(t, a, b, 'a->b')
  await exchange(t, b, a, 'b->a')
  t.same(patterns, ['XX'], 'one handshake served all ten messages')

  // A third gateway hears B's signed announce, so it knows B's static key: IK.
  const c = await gateway(t, 3)
  await b.gw.announce(c.address)
  await waitFor('announce at C', () => c.gw.stats().announcesIn === 1)
  const ik = await c.gw.send(b.address, b.gw.nodeIdHex, 'VECTOR_SYNC', Buffer.from('ik'))
  t.equal(ik.pattern, 'IK', 'announce learned: IK')
  await waitFor('the IK message', () => b.got.some((m) => m.payload.toString() === 'ik'))
  await exchange(t, c, b, 'c->b')
  await exchange(t, b, c, 'b->c')

  // Address only: the peer's node ID comes from its announce (asked for with AckRequested).
  const d = await gateway(t, 4)
  const disc = await d.gw.send(`127.0.0.1:${b.address.port}`, null, 'reputation_delta', Buffer.from([0, 1, 2]))
  t.equal(disc.peer, b.gw.nodeIdHex, 'discovered the node ID at that address')
  t.equal(disc.discovered, true)
  t.equal(disc.pattern, 'IK')
  const last = await waitFor('discovered message', () => b.got.find((m) => m.from === d.gw.nodeIdHex))
  t.same([...last.payload], [0, 1, 2], 'binary payload intact')
})

t.test('garbage datagrams are counted by code, never fatal', async (t) => {
  const a = await gateway(t, 5)
  const b = await gateway(t, 6)
  const raw = dgram.createSocket('udp4')
  t.teardown(() => raw.close())
  const junk = [Buffer.alloc(0), Buffer.from([0xff, 1, 2, 3]), Buffer.from([0x12, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9]), Buffer.alloc(80, 0x11)]
  junk[3]![1] = 0x10 // a Data frame shape with an unknown session index
  for (const j of junk) await new Promise<void>((r, e) => raw.send(j, b.address.port, '127.0.0.1', (err) => (err ? e(err) : r())))
  const dropped = await waitFor('4 drops', () => {
    const d = b.gw.stats().dropped
    return Object.values(d).reduce((x, y) => x + y, 0) >= 4 ? d : null
  })
  t.equal(dropped.EMALFORMED, 3, 'empty, unknown first byte, bad Packet: malformed')
  t.equal(dropped.ESESSIONEXPIRED, 1, 'Data frame for no session')
  await a.gw.send(b.address, b.gw.nodeIdHex, 'TASK_REQUEST', Buffer.from('still alive'))
  await waitFor('message after garbage', () => b.got.length === 1)
  t.equal(b.got[0]!.payload.toString(), 'still alive')
})

t.test('no answer: TimeoutError with a transaction ID, naming the address', async (t) => {
  const a = await gateway(t, 7)
  const silent = dgram.createSocket('udp4')
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => silent.close())
  const port = silent.address().port
  const err = await a.gw.send(`127.0.0.1:${port}`, null, 'TASK_REQUEST', Buffer.from('x'), { timeoutMs: 300 }).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof TimeoutError, 'TimeoutError')
  t.match((err as TimeoutError).transaction_id, /^[0-9a-f]{16}$/)
  t.match((err as TimeoutError).message, `127.0.0.1:${port}`)
  const err2 = await a.gw.send(`127.0.0.1:${port}`, Identity.fromSeed(Buffer.alloc(32, 8)).nodeIdHex, 'TASK_REQUEST', Buffer.from('x'), { timeoutMs: 300 }).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err2 instanceof TimeoutError, 'handshake timeout is a TimeoutError too')
})

/** Runs the CLI to completion. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('the kairo-gw process: run, send, help, usage errors', async (t) => {
  const stateDir = join(t.testdir(), 'state')
  const daemon: ChildProcess = spawn(process.execPath, [BIN, 'run', '--port', '0', '--state-dir', stateDir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  daemon.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  daemon.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => daemon.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL')
  })

  const port = Number(await waitFor('the daemon to listen', () => /listening\s+udp:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1], 20_000))
  t.ok(port > 0, `daemon listens on ${port}`)
  const nodeId = /node ID\s+([0-9a-f]{32})/.exec(out)?.[1]
  t.ok(nodeId, 'start-up output shows the node ID')
  t.match(out, `npx kairo-gw send --to 127.0.0.1:${port} TASK_REQUEST 'hello'`, 'start-up output shows a ready-to-paste send')
  t.equal(statSync(join(stateDir, 'identity.key')).mode & 0o777, 0o600, 'identity.key is 0600')
  t.equal(statSync(stateDir).mode & 0o777, 0o700, 'state dir is 0700')

  const sent = await cli(['send', '--to', `127.0.0.1:${port}`, 'TASK_REQUEST', 'hello', '--json'])
  t.equal(sent.code, 0, `send exits 0 (${sent.stderr.trim()})`)
  const result = JSON.parse(sent.stdout) as Record<string, unknown>
  t.equal(result.ok, true)
  t.equal(result.to_node_id, nodeId, 'send reached the daemon')
  t.equal(result.payload_bytes, 5)
  t.equal(result.frame_bytes, 53)
  await waitFor('the daemon to log the message', () => /TASK_REQUEST\s+from [0-9a-f]{32}, 5 B: "hello"/.test(out))
  t.match(out, String(result.from_node_id), 'the log names the sender')

  const show = await cli(['identity', 'show', '--state-dir', stateDir, '--json'])
  t.equal(show.code, 0)
  t.equal((JSON.parse(show.stdout) as { node_id: string }).node_id, nodeId, 'identity show agrees with run')
  t.notMatch(show.stdout, readFileSync(join(stateDir, 'identity.key'), 'utf8').trim(), 'identity show never prints the seed')

  const help = await cli(['--help'])
  t.equal(help.code, 0, '--help exits 0')
  t.match(help.stdout, /\brun\b/)
  t.match(help.stdout, /\bsend\b/)
  t.match(help.stdout, /Exit codes/)

  const bad = await cli(['send', '--to', `127.0.0.1:${port}`, 'NOT_A_TYPE', 'x'])
  t.equal(bad.code, 2, 'a bad TYPE exits 2')
  t.match(bad.stderr, /TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC/, 'and lists the valid ones')

  daemon.kill('SIGTERM')
  const end = await exited
  t.equal(end.code, 0, `SIGTERM stops the daemon cleanly (stderr: ${err.trim()})`)
  t.match(out, /stopped \(SIGTERM\): 1 messages received/)
})

t.test('send to a silent address exits 3 with the address in the error', async (t) => {
  const silent = dgram.createSocket('udp4')
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()))
  t.teardown(() => silent.close())
  const port = silent.address().port
  const r = await cli(['send', '--to', `127.0.0.1:${port}`, '--timeout', '300', 'TASK_REQUEST', 'x'])
  t.equal(r.code, 3)
  t.match(r.stderr, new RegExp(`^kairo-gw: .*127\\.0\\.0\\.1:${port}.*\\(transaction [0-9a-f]{16}\\)$`, 'm'))
})

t.test('a frame that fails authentication is dropped silently: nothing goes back to the sender', async (t) => {
  const b = await gateway(t, 8)
  const { SessionManager } = await import('../../appliance/core/sessions.js')
  const { decodePacket } = await import('../../appliance/core/wire/packet.js')
  const { PacketType } = await import('../../appliance/core/wire/constants.js')
  const me = new SessionManager({ identity: Identity.fromSeed(Buffer.alloc(32, 9)) })
  const raw = dgram.createSocket('udp4')
  t.teardown(() => raw.close())
  const inbound: Buffer[] = []
  raw.on('message', (m) => inbound.push(m))
  await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()))
  const tx = (f: Buffer) => new Promise<void>((r, e) => raw.send(f, b.address.port, '127.0.0.1', (err) => (err ? e(err) : r())))
  const peer = Buffer.from(b.gw.nodeIdHex, 'hex')
  // XX by hand over the raw socket.
  await tx(me.connect(peer).frame)
  const m1 = await waitFor('handshake message 1', () => inbound.shift())
  const out = me.handleHandshake(decodePacket(m1))
  await tx(out.reply!)
  const good = Buffer.from(me.seal(peer, PacketType.TaskRequest, 0, Buffer.from('authentic')))
  await tx(good)
  await waitFor('the authentic message', () => b.got.some((m) => m.payload.toString() === 'authentic'))
  inbound.length = 0
  for (const at of [1, 10, 30, good.length - 1]) {
    const forged = Buffer.from(me.seal(peer, PacketType.TaskRequest, 0, Buffer.from('forged!!!')))
    forged[at]! ^= 0x40
    await tx(forged)
  }
  await tx(good)
  await waitFor('4 auth failures and a replay counted', () => {
    const d = b.gw.stats().dropped
    return (d.EAUTH ?? 0) + (d.EMALFORMED ?? 0) + (d.EREPLAY ?? 0) >= 5
  })
  await new Promise((r) => setTimeout(r, 300))
  t.equal(inbound.length, 0, 'no datagram came back for a forged or replayed frame')
  t.equal(b.got.filter((m) => m.payload.toString() === 'forged!!!').length, 0, 'nothing forged was delivered')
  t.equal(b.gw.stats().dropped.EREPLAY, 1, 'the replay was counted as such')
})
