/**
 * The mesh (issue 4):
 *
 * - relay_throughput_1k: one gateway, the real daemon (`kairo-gw run --config`) in its own
 *   process, relaying end-to-end encrypted 1 KiB Data frames from one UDP neighbour to another
 *   on loopback: frames/s that reach the far side. The relay never decrypts, so its share of the
 *   crypto limit (`vs.libsodium_c`: libsodium in C sealing 1 KiB, the aead suite) says how much
 *   headroom forwarding leaves compared with what any node spends on crypto per packet.
 * - gateway_rss_idle_mb / gateway_rss_load_mb: resident memory of that daemon, idle (routes up,
 *   nothing flowing) and at its peak during the relay run; `vs.goal` = value / 80 MB (below 1 is
 *   good). The daemon runs compiled (dist/, as the appliance runs it): from a checkout through
 *   tsx it carries about 33 MB more, the TypeScript loader.
 * - lab_latency_p50_ms / lab_latency_p99_ms: delivery latency over the lab's line5-mixed
 *   topology (Ethernet - LoRa - UDP - LoRa, five daemons in network namespaces), when this
 *   machine can run the lab (root, iproute2, socat). BENCH_NO_LAB=1 leaves it out.
 */
import { execFileSync, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ControlClient } from '../../appliance/control/client.js'
import { Identity } from '../../appliance/core/identity.js'
import { PacketType } from '../../appliance/core/wire/constants.js'
import { MeshNode } from '../../appliance/mesh/node.js'
import { openStores } from '../../appliance/mesh/stores.js'
import { UdpLink } from '../../drivers/udp/link.js'
import { ratios, type BenchContext, type BenchResult, type Suite } from '../lib.js'
import { freeUdpPorts } from '../../test/lib/ports.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')
/** The daemon as the appliance runs it: compiled to JavaScript (npm run build), no tsx loader. */
const DIST_MAIN = join(ROOT, 'dist', 'appliance', 'cli', 'main.js')

/** V8 flags the appliance runs with (systemd/kairo-gw.service): a small young generation. */
const RELAY_NODE_FLAGS = (process.env['BENCH_RELAY_FLAGS'] ?? '--max-semi-space-size=2').split(' ').filter(Boolean)

function buildDist(ctx: BenchContext): void {
  ctx.progress('mesh: compiling the daemon (tsc -p tsconfig.build.json)')
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface RelayRun {
  /** Frames/s that reached the far side. */
  pps: number
  deliveredShare: number
  idleRss: number
  loadRss: number
  /** With `capture`: what the relay's capture of its link wrote. */
  capture?: { packets: number; dropped: number; bytes: number }
}

async function relayBench(ctx: BenchContext): Promise<BenchResult[]> {
  const r = await relayRun(ctx)
  return [
    { id: 'relay_throughput_1k', value: r.pps, unit: 'packets/s', vs: { ...ratios(ctx, r.pps, { libsodium_c: 'libsodium_c_seal_1k' }), delivered_share: r.deliveredShare } },
    { id: 'gateway_rss_idle_mb', value: r.idleRss, unit: 'MB', vs: { goal: r.idleRss / 80 } },
    { id: 'gateway_rss_load_mb', value: r.loadRss, unit: 'MB', vs: { goal: r.loadRss / 80 } },
  ]
}

/**
 * One relay run (see the module comment). With `capture`, the relay daemon captures its UDP link
 * (control method pcap_start, as `kairo-gw pcap capture` does) for the whole offered load: the
 * pcap suite compares the two. `build: false` skips compiling dist/ (already done this run).
 */
export async function relayRun(ctx: BenchContext, opts: { capture?: boolean; build?: boolean } = {}): Promise<RelayRun> {
  const dir = mkdtempSync(join(tmpdir(), 'kb-'))
  const [pr, ps, pd] = (await freeUdpPorts(3)) as [number, number, number]
  writeFileSync(
    join(dir, 'relay.yaml'),
    `node: { name: relay }\nstate_dir: ${dir}/relay\nruntime_dir: ${dir}/run\nlinks:\n  - name: udp0\n    udp: { host: 127.0.0.1, port: ${pr}, discovery: false, peers: ["127.0.0.1:${ps}", "127.0.0.1:${pd}"] }\nmesh: { announce_interval_s: 1 }\n`,
  )
  if (opts.build !== false) buildDist(ctx)
  const relay = spawn(process.execPath, [...RELAY_NODE_FLAGS, DIST_MAIN, 'run', '--config', join(dir, 'relay.yaml'), '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  relay.stdout.on('data', (c: Buffer) => (out += c.toString()))
  const nodes: MeshNode[] = []
  const closers: Array<() => Promise<void>> = []
  try {
    for (let i = 0; i < 200 && !out.includes('"event":"ready"'); i++) await sleep(50)
    if (!out.includes('"event":"ready"')) throw new Error('the relay daemon did not start')
    const mk = async (name: string, port: number) => {
      const stores = await openStores(join(dir, name), { maxMessages: 100_000, maxBytes: 1 << 30, ttlMs: 600_000 })
      closers.push(() => stores.close())
      const link = new UdpLink({ name: 'udp0', host: '127.0.0.1', port, discovery: false, peers: [`127.0.0.1:${pr}`], queueLimit: 4096, highWater: 1024 })
      const node = new MeshNode({ identity: Identity.generate(), links: [{ link }], outbox: stores.outbox, inbox: stores.inbox, announceIntervalMs: 1000 })
      nodes.push(node)
      await node.start()
      return { node, link }
    }
    const src = await mk('src', ps)
    const dst = await mk('dst', pd)
    ctx.progress('mesh: waiting for routes through the relay')
    for (let i = 0; i < 200; i++) {
      if (src.node.routeTable().some((r) => r.dst === dst.node.nodeId)) break
      await sleep(50)
    }
    // One acknowledged message establishes the end-to-end session.
    await src.node.send(dst.node.nodeId, 'TASK_REQUEST', Buffer.from('hello'))
    for (let i = 0; i < 200 && src.node.pendingMessages().length > 0; i++) await sleep(50)
    await sleep(1500)
    const idleRss = rssMb(relay.pid!)
    let capId: string | undefined
    if (opts.capture === true) {
      const c = await ControlClient.connect(join(dir, 'run', 'control.sock'))
      capId = String((await c.call<{ id: string }>('pcap_start', { links: ['udp0'], out: join(dir, 'relay.pcapng') })).id)
      await c.close()
    }
    // Pre-seal the frames (the source's cost is not the relay's), then offer them as fast as the
    // kernel takes them, in bursts.
    const payload = Buffer.alloc(1024, 7)
    const dstId = Buffer.from(dst.node.nodeId, 'hex')
    const N = 40_000
    const frames: Buffer[] = []
    for (let i = 0; i < N; i++) frames.push(Buffer.from(src.node.sessions.seal(dstId, PacketType.VectorSync, 0, payload)))
    const sock = createSocket('udp4')
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()))
    sock.setSendBufferSize(4 << 20)
    const before = dst.link.stats().framesIn
    ctx.progress(`mesh: offering ${N} sealed 1 KiB frames to the relay`)
    const t0 = performance.now()
    let sent = 0
    let loadRss = idleRss
    while (sent < N) {
      const burst = Math.min(64, N - sent)
      await Promise.all(frames.slice(sent, sent + burst).map((f) => new Promise<void>((r) => sock.send(f, pr, '127.0.0.1', () => r()))))
      sent += burst
      if (sent % 8192 < 64) loadRss = Math.max(loadRss, rssMb(relay.pid!))
      await new Promise((r) => setImmediate(r))
    }
    // Wait until nothing more arrives.
    let last = -1
    let lastAt = performance.now()
    for (;;) {
      const got = dst.link.stats().framesIn - before
      if (got !== last) {
        last = got
        lastAt = performance.now()
      } else if (performance.now() - lastAt > 300) break
      await sleep(20)
    }
    const elapsed = (lastAt - t0) / 1000
    loadRss = Math.max(loadRss, rssMb(relay.pid!))
    sock.close()
    const pps = last / elapsed
    ctx.progress(`mesh: ${last} of ${N} frames relayed in ${elapsed.toFixed(2)} s${capId !== undefined ? ' (captured)' : ''}`)
    const run: RelayRun = { pps, deliveredShare: last / N, idleRss, loadRss }
    if (capId !== undefined) {
      const c = await ControlClient.connect(join(dir, 'run', 'control.sock'))
      const st = await c.call<{ packets: number; dropped: number; bytes: number }>('pcap_stop', { id: capId })
      await c.close()
      run.capture = { packets: st.packets, dropped: st.dropped, bytes: st.bytes }
    }
    return run
  } finally {
    for (const n of nodes) await n.stop()
    for (const c of closers) await c()
    relay.kill('SIGTERM')
    await new Promise((r) => relay.once('exit', r))
    rmSync(dir, { recursive: true, force: true })
  }
}

async function labBench(ctx: BenchContext): Promise<BenchResult[]> {
  if (process.getuid?.() !== 0) {
    ctx.progress('mesh: the lab needs root (network namespaces); lab latency skipped')
    return []
  }
  ctx.progress('mesh: running the lab (line5-mixed, 40 messages)')
  const res = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [BIN, 'lab', 'run', '--topology', 'line5-mixed', '--messages', '40', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
  if (res.code !== 0) throw new Error(`kairo-gw lab run failed (exit ${res.code}): ${res.stderr.trim().split('\n').slice(-3).join(' | ')}`)
  const report = JSON.parse(res.stdout) as { messages: { sent: number; delivered: number }; latency_ms: { p50: number; p99: number } }
  ctx.progress(`mesh: lab delivered ${report.messages.delivered} of ${report.messages.sent}`)
  return [
    { id: 'lab_latency_p50_ms', value: report.latency_ms.p50, unit: 'ms', vs: {} },
    { id: 'lab_latency_p99_ms', value: report.latency_ms.p99, unit: 'ms', vs: {} },
  ]
}

export const suite: Suite = {
  name: 'mesh',
  async run(ctx) {
    const relay = await relayBench(ctx)
    if (process.env['BENCH_NO_LAB'] === '1') return relay
    return [...relay, ...(await labBench(ctx))]
  },
}
