/**
 * The real daemon (`kairo-gw run --config`), three of them as processes on loopback UDP in a line
 * (a - r - b), driven through their control sockets: messages accepted by a survive kill -9 of
 * the relay, of the receiver and of the sender itself, and each is delivered to b's application
 * exactly once.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ControlClient } from '../../appliance/control/client.js'
import { until } from '../lib/until.js'
import { freeUdpPorts } from '../lib/ports.js'


const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

/** A short directory: control socket paths must fit in 107 bytes. */
function shortDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'kd-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Gw {
  name: string
  config: string
  proc: ChildProcess | null
  nodeId: string
  socket: string
  out: string
}

function writeConfig(dir: string, name: string, port: number, peers: number[]): string {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'config.yaml')
  writeFileSync(
    file,
    [
      `node: { name: ${name} }`,
      `state_dir: ${join(dir, 'state')}`,
      `runtime_dir: ${join(dir, 'run')}`,
      'links:',
      '  - name: udp0',
      '    udp:',
      '      host: 127.0.0.1',
      `      port: ${port}`,
      '      discovery: false',
      `      peers: [${peers.map((p) => `"127.0.0.1:${p}"`).join(', ')}]`,
      'mesh: { announce_interval_s: 1 }',
      'store: { ttl_s: 600 }',
      '',
    ].join('\n'),
  )
  return file
}

async function start(gw: Gw): Promise<void> {
  const proc = spawn(process.execPath, [BIN, 'run', '--config', gw.config, '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  gw.proc = proc
  gw.out = ''
  proc.stdout!.on('data', (c: Buffer) => (gw.out += c.toString()))
  proc.stderr!.resume()
  const ready = await until(`${gw.name} ready`, 20_000, () => gw.out.split('\n').map((l) => (l.startsWith('{') ? (JSON.parse(l) as Record<string, unknown>) : null)).find((e) => e?.event === 'ready'))
  gw.nodeId = String(ready.node_id)
  gw.socket = String(ready.control_socket)
}

function kill9(gw: Gw): Promise<void> {
  const p = gw.proc!
  gw.proc = null
  return new Promise((resolve) => {
    p.once('exit', () => resolve())
    p.kill('SIGKILL')
  })
}

async function call<T>(gw: Gw, method: string, params: Record<string, unknown> = {}): Promise<T> {
  const c = await ControlClient.connect(gw.socket, { timeoutMs: 5000 })
  try {
    return await c.call<T>(method, params)
  } finally {
    await c.close()
  }
}

async function received(gw: Gw): Promise<Array<{ id: string; from: string; payload_b64: string }>> {
  const r = await call<{ messages: Array<{ id: string; from: string; payload_b64: string }> }>(gw, 'messages', { since: 0, limit: 10_000 })
  return r.messages
}

t.test('kill -9 of the relay, the receiver and the sender: nothing accepted is lost, nothing is delivered twice', async (t) => {
  const dir = shortDir(t)
  const [pa, pr, pb] = (await freeUdpPorts(3)) as [number, number, number]
  const gws: Gw[] = [
    { name: 'a', config: writeConfig(join(dir, 'a'), 'a', pa, [pr]), proc: null, nodeId: '', socket: '', out: '' },
    { name: 'r', config: writeConfig(join(dir, 'r'), 'r', pr, [pa, pb]), proc: null, nodeId: '', socket: '', out: '' },
    { name: 'b', config: writeConfig(join(dir, 'b'), 'b', pb, [pr]), proc: null, nodeId: '', socket: '', out: '' },
  ]
  t.teardown(() => {
    for (const g of gws) g.proc?.kill('SIGKILL')
  })
  const [a, r, b] = gws as [Gw, Gw, Gw]
  await Promise.all(gws.map(start))
  const routeTo = async (from: Gw, to: Gw) => (await call<{ routes: Array<{ dst: string; hops: number }> }>(from, 'routes')).routes.find((x) => x.dst === to.nodeId)
  for (let i = 0; i < 150; i++) {
    if ((await routeTo(a, b)) && (await routeTo(b, a))) break
    await new Promise((res) => setTimeout(res, 100))
  }
  t.equal((await routeTo(a, b))?.hops, 2, 'a reaches b in two hops, through r')

  const ids: string[] = []
  const send = async (i: number) => {
    const res = await call<{ id: string; durable: boolean }>(a, 'send', { to: b.nodeId, type: 'TASK_REQUEST', text: `m${i}` })
    t.ok(res.durable, `m${i} accepted durably`)
    ids.push(res.id)
  }
  for (let i = 0; i < 5; i++) await send(i)
  // Relay killed and restarted mid-run.
  await kill9(r)
  for (let i = 5; i < 10; i++) await send(i)
  await start(r)
  // Receiver killed and restarted.
  await new Promise((res) => setTimeout(res, 300))
  await kill9(b)
  for (let i = 10; i < 15; i++) await send(i)
  await start(b)
  // Sender killed right after accepting, restarted: its outbox carries on.
  for (let i = 15; i < 20; i++) await send(i)
  await kill9(a)
  await start(a)

  let got: Awaited<ReturnType<typeof received>> = []
  for (let i = 0; i < 600; i++) {
    got = await received(b)
    if (new Set(got.map((m) => m.id)).size >= 20) break
    await new Promise((res) => setTimeout(res, 100))
  }
  const gotIds = got.map((m) => m.id)
  t.same(new Set(gotIds), new Set(ids), 'all 20 accepted messages reached b')
  t.equal(gotIds.length, new Set(gotIds).size, 'none was delivered twice')
  t.ok(got.every((m) => m.from === a.nodeId), 'all from a')
  for (let i = 0; i < 100; i++) {
    if ((await call<{ messages: unknown[] }>(a, 'outbox')).messages.length === 0) break
    await new Promise((res) => setTimeout(res, 100))
  }
  t.equal((await call<{ messages: unknown[] }>(a, 'outbox')).messages.length, 0, "a's outbox empties once b acknowledged everything")
  // After another kill -9 of b, its inbox (the application's view) still holds each message once.
  await kill9(b)
  await start(b)
  const again = await received(b)
  t.equal(again.length, 20, 'the inbox survived kill -9 with 20 messages')
  t.same(again.map((m) => Buffer.from(m.payload_b64, 'base64').toString()).sort(), ids.map((_, i) => `m${i}`).sort(), 'payloads intact')
})

t.test('control socket: bad requests get clear errors and the daemon carries on', async (t) => {
  const dir = shortDir(t)
  const gw: Gw = { name: 'x', config: writeConfig(join(dir, 'x'), 'x', (await freeUdpPorts(1))[0]!, []), proc: null, nodeId: '', socket: '', out: '' }
  t.teardown(() => gw.proc?.kill('SIGKILL'))
  await start(gw)
  const err = (p: Promise<unknown>) => p.then(() => null, (e: Error & { code?: number; data?: { field?: string } }) => e)
  const e1 = await err(call(gw, 'send', { to: 'nope', type: 'TASK_REQUEST', text: 'x' }))
  t.equal(e1?.code, -32602, 'bad destination: invalid params')
  t.match(e1?.message, /to/, 'names the param')
  const e2 = await err(call(gw, 'send', { to: '0'.repeat(32), type: 'PING', text: 'x' }))
  t.match(e2?.message, /TASK_REQUEST/, 'bad type: lists the valid ones')
  const e3 = await err(call(gw, 'send', { to: gw.nodeId, type: 'TASK_REQUEST', text: 'x' }))
  t.match(e3?.message, /itself/, 'to itself: refused, saying why')
  const e4 = await err(call(gw, 'frobnicate'))
  t.equal(e4?.code, -32601, 'unknown method')
  const st = await call<{ node_id: string; links: Array<{ name: string; state: string }> }>(gw, 'status')
  t.equal(st.node_id, gw.nodeId, 'still answering')
  t.same(st.links.map((l) => [l.name, l.state]), [['udp0', 'up']], 'status shows the link')
})
