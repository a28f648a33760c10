/**
 * `kairo-gw lab run`: builds a topology out of network namespaces, veth pairs, socat PTYs and
 * the LoRa emulator, runs one real gateway daemon per node, sends messages through their control
 * sockets, and reports what arrived. Optionally cuts a segment (--partition) or SIGKILLs and
 * restarts a gateway (--kill) half way through. Everything it made is removed at the end,
 * whatever the end (see Lab.cleanup and clean.ts), unless --keep.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TimeoutError } from '../core/errors.js'
import { cleanLab, MANIFEST, prefixInUse, type Manifest } from './clean.js'
import type { EmulatorHostPlan } from './emulator-host.js'
import { buildPlan, defaultPrefix, netemArgs, networkCommands, PREFIX, RUN_DIR_PREFIX, type GatewayPlan, type LabPlan, type VethPlan } from './plan.js'
import { AbortedError, checkAbort, EMULATOR_HOST, KAIRO_GW_BIN, TSX_IMPORT, pause, spawnLogged, startSocat, stopProcess, waitForLine, type Spawned } from './procs.js'
import { airStats, computeDelivery, problemsOf, type InboxMessage, type KillReport, type LabReport, type PartitionReport, type Phase, type SentMessage } from './report.js'
import { Control } from './rpc.js'
import { ip, LabError, run } from './sys.js'
import { loadTopology, resolveTopology, shippedTopologies, trafficPlan, VETH_KINDS, type Topology } from './topology.js'

export type PartitionMethod = 'link-down' | 'netem'

export interface LabRunOptions {
  /** Shipped topology name or a file. */
  topology: string
  messages: number
  /** Payload bytes per message (default: the topology's traffic.size). */
  size?: number
  partition?: string
  partitionMethod?: PartitionMethod
  /** How long the partition lasts at least, s (default 4). */
  partitionS?: number
  kill?: string
  /** How long the killed gateway stays down, s (default 2). */
  downS?: number
  keep?: boolean
  /** Limit of each wait (daemon ready, routes, delivery), s (default 60). */
  timeoutS?: number
  /** Pause between two sends, ms (default 50). */
  intervalMs?: number
  /** Wait after the last delivery before counting duplicates, ms (default 1500). */
  settleMs?: number
  /** Run prefix `kl<digits>` (default kl<pid % 10000>, the next free one if taken). */
  prefix?: string
  logLevel?: 'debug' | 'info' | 'warn'
  /** Progress lines (stderr). */
  progress?: (line: string) => void
  signal?: AbortSignal
  /** Called once the run directory and prefix are chosen (tests, the CLI's forced exit). */
  onStart?: (info: { prefix: string; runDir: string; pids: () => number[] }) => void
}

export interface KeptLab {
  prefix: string
  run_dir: string
  gateways: Array<{ name: string; namespace: string; control_socket: string; pid: number; config: string; logs: string }>
  emulator_socket?: string
  clean: string
}

export interface LabRunResult {
  report: LabReport
  kept?: KeptLab
}

interface Running {
  plan: GatewayPlan
  proc: Spawned
  nodeId: string
  control: Control
}

const DEFAULT_TIMEOUT_S = 60

/** Chooses a free prefix: `wanted` (must be free) or kl<pid%10000> and onwards. */
async function choosePrefix(wanted: string | undefined): Promise<string> {
  if (wanted !== undefined) {
    if (!PREFIX.test(wanted)) throw new LabError(`--prefix ${JSON.stringify(wanted)} is not kl followed by 1-4 digits`)
    const used = await prefixInUse(wanted)
    if (used.length > 0) throw new LabError(`prefix ${wanted} is in use (${used.slice(0, 3).join(', ')}); remove it with: kairo-gw lab clean --prefix ${wanted}`)
    return wanted
  }
  for (let k = 0; k < 50; k++) {
    const p = defaultPrefix(process.pid + k * 7919)
    if ((await prefixInUse(p)).length === 0) return p
  }
  throw new LabError('no free lab prefix among 50 tried: clean old runs with kairo-gw lab clean')
}

/** The payload of message `index`: a readable tag padded (or cut) to `size` bytes. */
export function payloadFor(prefix: string, index: number, from: string, to: string, size: number): Buffer {
  const tag = Buffer.from(`kairo-lab ${prefix} #${index} ${from}->${to} `)
  const out = Buffer.alloc(size, 0x2e)
  tag.copy(out, 0, 0, Math.min(tag.length, size))
  return out
}

export async function runLab(opts: LabRunOptions): Promise<LabRunResult> {
  const started = Date.now()
  const say = (line: string) => opts.progress?.(`lab [${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`)
  const abort = opts.signal
  const timeoutMs = (opts.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000
  if (!Number.isInteger(opts.messages) || opts.messages < 0) throw new TypeError(`--messages ${opts.messages} is not a whole number`)

  const file = resolveTopology(opts.topology)
  if (file === undefined) throw new LabError(`no topology ${JSON.stringify(opts.topology)}: neither a file nor one of the shipped topologies (${shippedTopologies().join(', ')})`)
  const topology = await loadTopology(file)
  if (opts.partition !== undefined && !topology.segments.some((s) => s.name === opts.partition)) throw new LabError(`--partition ${opts.partition}: ${topology.name} has no such segment (it has ${topology.segments.map((s) => s.name).join(', ')})`)
  if (opts.kill !== undefined && !topology.nodes.some((n) => n.name === opts.kill)) throw new LabError(`--kill ${opts.kill}: ${topology.name} has no such gateway (it has ${topology.nodes.map((n) => n.name).join(', ')})`)
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new LabError('kairo-gw lab needs root: it creates network namespaces and veth pairs')
  const hasLora = topology.segments.some((s) => s.kind === 'lora')
  if ((await run('ip', ['-V'], { check: false }).catch(() => ({ code: 1 }))).code !== 0) throw new LabError('kairo-gw lab needs iproute2 (`ip`)')
  if (hasLora && (await run('socat', ['-V'], { check: false }).catch(() => ({ code: 1 }))).code !== 0) throw new LabError(`kairo-gw lab needs socat for the lora segments of ${topology.name} (apt-get install socat)`)

  const prefix = await choosePrefix(opts.prefix)
  checkAbort(abort)
  const runDir = await fsp.mkdtemp(join(tmpdir(), `${RUN_DIR_PREFIX}${prefix}-`))
  const manifest: Manifest = { prefix, lab_pid: process.pid, started_at: new Date().toISOString(), topology: topology.name, run_dir: runDir }
  await fsp.writeFile(join(runDir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n')
  const plan = buildPlan(topology, { prefix, runDir, ...(opts.logLevel !== undefined && { logLevel: opts.logLevel }) })
  const lab = new Lab(plan, say, abort)
  opts.onStart?.({ prefix, runDir, pids: () => lab.pids() })
  say(`run ${prefix}: topology ${topology.name} (${topology.nodes.length} gateways, ${topology.segments.length} segments), run dir ${runDir}`)

  let ok = false
  let interrupted = false
  try {
    const result = await lab.go(opts, timeoutMs, started)
    ok = result.report.ok
    if (opts.keep === true) {
      manifest.kept = true
      await fsp.writeFile(join(runDir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n')
      lab.release()
      return { ...result, kept: lab.kept() }
    }
    return result
  } catch (e) {
    interrupted = e instanceof AbortedError
    if (opts.keep === true && !interrupted && lab.releasedAt === undefined) {
      // --keep after a failure: leave it up for a look, and say how to reach and remove it.
      manifest.kept = true
      await fsp.writeFile(join(runDir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n').catch(() => undefined)
      lab.release()
      say(`the run failed; kept as asked:\n${keptText(lab.kept())}`)
    }
    throw e
  } finally {
    if (opts.keep !== true || lab.releasedAt === undefined) {
      const keepLogs = !ok && !interrupted
      say(`cleaning up ${prefix}${keepLogs ? ` (logs kept in ${runDir}; kairo-gw lab clean --prefix ${prefix} removes them)` : ''}`)
      await lab.cleanup(keepLogs)
    }
  }
}

/** `tc ... netem` in a namespace; a kernel without sch_netem gets an error that says so. */
async function tcNetem(ns: string, args: string[]): Promise<void> {
  const r = await run('ip', ['netns', 'exec', ns, 'tc', ...args], { check: false })
  if (r.code === 0) return
  if (/qdisc kind is unknown/i.test(r.stderr)) throw new LabError(`this kernel has no netem qdisc (sch_netem): segment netem options and --partition-method netem cannot work here; use --partition-method link-down (tc said: ${r.stderr.trim()})`)
  throw new LabError(`ip netns exec ${ns} tc ${args.join(' ')} failed (exit ${String(r.code)}): ${r.stderr.trim()}`)
}

class Lab {
  readonly plan: LabPlan
  readonly say: (line: string) => void
  readonly abort: AbortSignal | undefined
  readonly gateways = new Map<string, Running>()
  readonly socats: Spawned[] = []
  emulatorHost: Spawned | undefined
  emulatorControl: Control | undefined
  /** Set when --keep hands the lab over (no cleanup). */
  releasedAt: number | undefined
  /** Gateways whose exit is expected (being killed on purpose). */
  readonly expectedExit = new Set<string>()

  constructor(plan: LabPlan, say: (line: string) => void, abort: AbortSignal | undefined) {
    this.plan = plan
    this.say = say
    this.abort = abort
  }

  pids(): number[] {
    return [...[...this.gateways.values()].map((g) => g.proc.pid), ...this.socats.map((s) => s.pid), ...(this.emulatorHost === undefined ? [] : [this.emulatorHost.pid])]
  }

  async go(opts: LabRunOptions, timeoutMs: number, started: number): Promise<LabRunResult> {
    const { plan } = this
    await this.network()
    await this.lora(timeoutMs)
    for (const g of plan.gateways) {
      await fsp.mkdir(g.stateDir, { recursive: true })
      await fsp.mkdir(g.runtimeDir, { recursive: true })
      await fsp.writeFile(g.configPath, g.yaml)
    }
    this.say(`starting ${plan.gateways.length} gateways: ${plan.gateways.map((g) => `${g.node} in ${g.ns}`).join(', ')}`)
    await Promise.all(plan.gateways.map((g) => this.startGateway(g, timeoutMs)))
    const readyAt = Date.now()
    await this.converge(timeoutMs)
    const convergeMs = Date.now() - readyAt
    this.say(`routes converged in ${convergeMs} ms`)

    const traffic = await this.traffic(opts, timeoutMs)
    const { sent } = traffic
    const destinations = [...new Set(sent.map((m) => m.to))]
    await this.awaitDelivery(sent, destinations, timeoutMs)
    await pause(opts.settleMs ?? 1500, this.abort)
    const inboxes = new Map<string, InboxMessage[]>()
    for (const name of this.gateways.keys()) inboxes.set(name, await this.inbox(name))
    const delivery = computeDelivery(sent, inboxes)
    const problems = problemsOf(delivery.messages)
    const links: Record<string, Record<string, unknown>> = {}
    for (const [name, g] of this.gateways) {
      try {
        const st = await g.control.call<{ links?: Array<Record<string, unknown>> }>('status')
        for (const l of st.links ?? []) {
          const { name: ln, stats, ...rest } = l
          links[`${name}/${String(ln)}`] = { ...rest, ...(stats !== null && typeof stats === 'object' ? (stats as Record<string, unknown>) : {}) }
        }
      } catch (e) {
        links[`${name}/?`] = { error: (e as Error).message }
      }
    }
    const report: LabReport = {
      ok: problems.length === 0,
      problems,
      topology: plan.topology.name,
      prefix: plan.prefix,
      gateways: [...this.gateways.values()].map((g) => ({ name: g.plan.node, node_id: g.nodeId, pid: g.proc.pid, namespace: g.plan.ns, control_socket: g.plan.controlSocket })),
      messages: delivery.messages,
      latency_ms: delivery.latency_ms,
      converge_ms: convergeMs,
      links,
      duration_ms: 0,
    }
    if (traffic.partition !== undefined) {
      const p = traffic.partition
      const during = sent.filter((m) => m.cut === true && m.id !== undefined)
      const arrived = during.map((m) => delivery.receivedAt.get(m.id!)).filter((x): x is number => x !== undefined)
      const undelivered = during.filter((m) => !delivery.receivedAt.has(m.id!)).map((m) => m.index)
      const part: PartitionReport = {
        ...p,
        sent_during: during.map((m) => m.index),
        delivered_after_heal: arrived.filter((at) => at >= p.healed_at).length,
        delivered_before_heal: arrived.filter((at) => at < p.healed_at).length,
        undelivered,
        recovered_ms: arrived.length === 0 ? null : Math.max(...arrived) - p.healed_at,
      }
      if (undelivered.length > 0) report.problems.push(`${undelivered.length} messages sent during the partition of ${p.segment} never arrived`)
      report.partition = part
    }
    if (traffic.kill !== undefined) {
      const k = traffic.kill
      const down = sent.filter((m) => m.down === true && m.id !== undefined)
      const undelivered = down.filter((m) => !delivery.receivedAt.has(m.id!)).map((m) => m.index)
      report.kill = { ...k, sent_while_down: down.map((m) => m.index), delivered: down.length - undelivered.length, undelivered }
      if (k.same_node_id === false) report.problems.push(`${k.node} came back with another node_id`)
      if (undelivered.length > 0) report.problems.push(`${undelivered.length} messages sent while ${k.node} was down never arrived`)
    }
    if (this.emulatorControl !== undefined) {
      try {
        const st = await this.emulatorControl.call<Record<string, { radios?: Record<string, Record<string, number>> }>>('stats')
        report.air = Object.fromEntries(Object.entries(st).map(([seg, v]) => [seg, Object.fromEntries(Object.entries(v.radios ?? {}).map(([node, r]) => [node, airStats(r)]))]))
      } catch (e) {
        this.say(`emulator stats: ${(e as Error).message}`)
      }
    }
    if (delivery.missing.length > 0) report.missing = delivery.missing.slice(0, 50)
    report.ok = report.problems.length === 0
    report.duration_ms = Date.now() - started
    this.say(`${delivery.messages.delivered}/${delivery.messages.sent} delivered, ${delivery.messages.duplicates} duplicated; p50 ${String(delivery.latency_ms.p50)} ms, p99 ${String(delivery.latency_ms.p99)} ms`)
    return { report }
  }

  // ---- setup ---------------------------------------------------------------------------------

  async network(): Promise<void> {
    const { plan } = this
    this.say(`namespaces ${plan.namespaces.map((n) => n.ns).join(', ')}; veth pairs ${plan.veths.map((v) => `${v.a.ifname}/${v.b.ifname} (${v.segment}, ${v.kind})`).join(', ') || 'none'}`)
    for (const args of networkCommands(plan)) {
      checkAbort(this.abort)
      await ip(args)
    }
    for (const v of plan.veths) {
      for (const e of [v.a, v.b]) {
        const tc = netemArgs(e.ifname, v.netem)
        if (tc !== undefined) await tcNetem(e.ns, tc)
      }
    }
  }

  async lora(timeoutMs: number): Promise<void> {
    const { plan } = this
    if (plan.emulators.length === 0) return
    await fsp.mkdir(join(plan.runDir, 'pty'), { recursive: true })
    this.say(`socat PTY pairs for ${plan.ptys.map((p) => `${p.segment}/${p.node}`).join(', ')}`)
    for (const p of plan.ptys) {
      checkAbort(this.abort)
      const s = await startSocat(`${p.segment}/${p.node}`, p.host, p.mcu, join(plan.runDir, 'pty', `${p.segment}-${p.node}.socat`), 5000, this.abort)
      this.socats.push(s)
    }
    const hostPlan: EmulatorHostPlan = { segments: plan.emulators.map((e) => ({ segment: e.segment, nodes: e.nodes, config: e.config })) }
    const planFile = join(plan.runDir, 'emulators.json')
    await fsp.writeFile(planFile, JSON.stringify(hostPlan, null, 2) + '\n')
    this.say(`LoRa emulator: ${plan.emulators.map((e) => `${e.segment} (${e.nodes.join(', ')})`).join('; ')}`)
    this.emulatorHost = spawnLogged('emulator host', process.execPath, [TSX_IMPORT, EMULATOR_HOST, '--plan', planFile, '--socket', plan.emulatorSocket], {
      stdoutLog: join(plan.runDir, 'emulator.out'),
      stderrLog: join(plan.runDir, 'emulator.log'),
    })
    await waitForLine(this.emulatorHost, 'its ready line', (e) => e.event === 'ready', timeoutMs, this.abort)
    this.emulatorControl = new Control(plan.emulatorSocket)
  }

  async startGateway(g: GatewayPlan, timeoutMs: number): Promise<Running> {
    // KAIRO_LAB_GATEWAY_BIN: another program taking `run --config FILE --json` (the lab's own tests use a stand-in).
    const bin = process.env.KAIRO_LAB_GATEWAY_BIN ?? KAIRO_GW_BIN
    const node = bin.endsWith('.ts') ? [process.execPath, TSX_IMPORT, bin] : [process.execPath, bin]
    const proc = spawnLogged(`gateway ${g.node}`, 'ip', ['netns', 'exec', g.ns, ...node, 'run', '--config', g.configPath, '--json'], {
      stdoutLog: g.stdoutLog,
      stderrLog: g.stderrLog,
      cwd: g.dir,
    })
    const previous = this.gateways.get(g.node)
    const running: Running = { plan: g, proc, nodeId: previous?.nodeId ?? '', control: previous?.control ?? new Control(g.controlSocket) }
    this.gateways.set(g.node, running)
    const ready = await waitForLine(proc, 'its ready line', (e) => e.event === 'ready', timeoutMs, this.abort)
    const nodeId = typeof ready.node_id === 'string' ? ready.node_id : ''
    if (!/^[0-9a-f]{32}$/.test(nodeId)) throw new LabError(`gateway ${g.node}: ready line without a node_id: ${JSON.stringify(ready)}`)
    running.nodeId = nodeId
    if (typeof ready.control_socket === 'string' && ready.control_socket !== g.controlSocket) {
      running.control.close()
      running.control = new Control(ready.control_socket)
    }
    running.control.close() // a restarted daemon: connect afresh
    this.say(`gateway ${g.node} ready: node ${nodeId.slice(0, 8)}…, pid ${proc.pid}`)
    return running
  }

  /** Throws when a gateway exited that should not have. */
  checkGateways(): void {
    for (const [name, g] of this.gateways) {
      if (!g.proc.running && !this.expectedExit.has(name)) throw new LabError(`gateway ${name} (pid ${g.proc.pid}) exited unexpectedly; see ${g.plan.stderrLog}`)
    }
  }

  async converge(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs
    const names = new Map([...this.gateways.values()].map((g) => [g.nodeId, g.plan.node]))
    let missing: string[] = []
    for (;;) {
      checkAbort(this.abort)
      this.checkGateways()
      missing = []
      for (const [name, g] of this.gateways) {
        let have = new Set<string>()
        try {
          const r = await g.control.call<{ routes: Array<{ dst: string }> }>('routes', {}, 5000)
          have = new Set(r.routes.map((x) => x.dst))
        } catch (e) {
          missing.push(`${name}: routes call failed: ${(e as Error).message}`)
          continue
        }
        const lack = [...names].filter(([id, n]) => n !== name && !have.has(id)).map(([, n]) => n)
        if (lack.length > 0) missing.push(`${name} has no route to ${lack.join(', ')}`)
      }
      if (missing.length === 0) return
      if (Date.now() > end) throw new TimeoutError(`routes did not converge within ${Math.round(timeoutMs / 1000)} s: ${missing.join('; ')}`)
      await pause(250, this.abort)
    }
  }

  // ---- traffic -------------------------------------------------------------------------------

  async traffic(opts: LabRunOptions, timeoutMs: number): Promise<{ sent: SentMessage[]; partition?: Omit<PartitionReport, 'sent_during' | 'delivered_after_heal' | 'delivered_before_heal' | 'undelivered' | 'recovered_ms'>; kill?: Omit<KillReport, 'sent_while_down' | 'delivered' | 'undelivered'> }> {
    const { plan } = this
    const n = opts.messages
    const pairs = trafficPlan(plan.topology.traffic.pairs, n)
    const size = opts.size ?? plan.topology.traffic.size
    const interval = opts.intervalMs ?? 50
    const mid = Math.floor(n / 2)
    const disruptEnd = mid + Math.max(1, Math.floor(n / 4))
    const sent: SentMessage[] = []
    let phase: Phase = 'steady'
    let cut: { segment: string; kind: string; method: string; cut_at: number } | undefined
    let partition: { segment: string; kind: string; method: string; cut_at: number; healed_at: number; duration_ms: number } | undefined
    let killed: { node: string; pid_before: number; killed_at: number } | undefined
    let kill: Omit<KillReport, 'sent_while_down' | 'delivered' | 'undelivered'> | undefined
    const deferred: number[] = []
    const partitionMs = (opts.partitionS ?? 4) * 1000
    const downMs = (opts.downS ?? 2) * 1000

    const heal = async () => {
      if (cut === undefined) return
      await pause(Math.max(0, cut.cut_at + partitionMs - Date.now()), this.abort)
      await this.setCut(opts.partition!, false, opts.partitionMethod ?? 'link-down')
      const healedAt = Date.now()
      partition = { ...cut, healed_at: healedAt, duration_ms: healedAt - cut.cut_at }
      this.say(`healed ${cut.segment} after ${partition.duration_ms} ms`)
      cut = undefined
      phase = 'healed'
    }
    const restart = async () => {
      if (killed === undefined) return
      await pause(Math.max(0, killed.killed_at + downMs - Date.now()), this.abort)
      const g = this.gateways.get(killed.node)!
      const oldId = g.nodeId
      const restartedAt = Date.now()
      this.say(`restarting ${killed.node} with the same config and state dir`)
      const r = await this.startGateway(g.plan, timeoutMs)
      this.expectedExit.delete(killed.node)
      kill = {
        node: killed.node,
        pid_before: killed.pid_before,
        pid_after: r.proc.pid,
        killed_at: killed.killed_at,
        restarted_at: restartedAt,
        down_ms: restartedAt - killed.killed_at,
        ready_ms: Date.now() - restartedAt,
        same_node_id: r.nodeId === oldId,
      }
      killed = undefined
      phase = 'restarted'
      for (const i of deferred.splice(0)) await this.sendOne(sent, i, pairs[i]!, size, 'restarted', { down: true, cut: cut !== undefined })
    }

    this.say(`sending ${n} messages of ${size} bytes (${plan.topology.traffic.pairs.map((p) => `${p.from}->${p.to}`).join(', ')}), one every ${interval} ms`)
    for (let i = 0; i < n; i++) {
      checkAbort(this.abort)
      this.checkGateways()
      if (i === mid && opts.partition !== undefined) {
        const seg = plan.topology.segments.find((s) => s.name === opts.partition)!
        const method = await this.setCut(seg.name, true, opts.partitionMethod ?? 'link-down')
        cut = { segment: seg.name, kind: seg.kind, method, cut_at: Date.now() }
        phase = 'partition'
        this.say(`partition: ${seg.name} (${seg.kind}) cut by ${method}; sending ${disruptEnd - mid} messages during the cut, healing after ${partitionMs / 1000} s`)
      }
      if (i === mid && opts.kill !== undefined) {
        const g = this.gateways.get(opts.kill)!
        this.expectedExit.add(opts.kill)
        const killedAt = Date.now()
        process.kill(g.proc.pid, 'SIGKILL')
        await g.proc.exit
        g.control.close()
        killed = { node: opts.kill, pid_before: g.proc.pid, killed_at: killedAt }
        phase = 'down'
        this.say(`kill: ${opts.kill} (pid ${g.proc.pid}) SIGKILLed; restarting it in ${downMs / 1000} s`)
      }
      if (i === disruptEnd) {
        await heal()
        await restart()
      }
      const pair = pairs[i]!
      if (killed !== undefined && pair.from === killed.node) deferred.push(i)
      else await this.sendOne(sent, i, pair, size, phase, { cut: cut !== undefined, down: killed !== undefined })
      if (i < n - 1) await pause(interval, this.abort)
    }
    await heal()
    await restart()
    const refused = sent.filter((m) => m.id === undefined)
    this.say(`sent ${sent.length - refused.length} messages${refused.length > 0 ? `, ${refused.length} refused: ${refused[0]!.error ?? ''}` : ''}`)
    sent.sort((a, b) => a.index - b.index)
    return { sent, ...(partition !== undefined && { partition }), ...(kill !== undefined && { kill }) }
  }

  async sendOne(sent: SentMessage[], index: number, pair: { from: string; to: string }, size: number, phase: Phase, flags: { cut: boolean; down: boolean }): Promise<void> {
    const src = this.gateways.get(pair.from)!
    const dst = this.gateways.get(pair.to)!
    const payload = payloadFor(this.plan.prefix, index, pair.from, pair.to, size)
    const m: SentMessage = { index, from: pair.from, to: pair.to, sent_at: Date.now(), phase, ...(flags.cut && { cut: true }), ...(flags.down && { down: true }) }
    try {
      const r = await src.control.call<{ id: string; accepted_at: number }>('send', { to: dst.nodeId, type: this.plan.topology.traffic.type, payload_b64: payload.toString('base64'), reliable: true })
      m.id = r.id
      m.accepted_at = r.accepted_at
    } catch (e) {
      m.error = (e as Error).message
    }
    sent.push(m)
  }

  /** Cuts (`on`) or heals a segment; returns the method used. */
  async setCut(segment: string, on: boolean, method: PartitionMethod): Promise<string> {
    const seg = this.plan.topology.segments.find((s) => s.name === segment)!
    if (seg.kind === 'lora') {
      await this.emulatorControl!.call(on ? 'cut' : 'heal', { segment })
      return 'radio-out-of-range'
    }
    if (!VETH_KINDS.has(seg.kind)) throw new LabError(`cannot cut ${segment}`)
    const v = this.plan.veths.find((x) => x.segment === segment)!
    for (const e of [v.a, v.b]) {
      if (method === 'link-down') await ip(['-n', e.ns, 'link', 'set', e.ifname, on ? 'down' : 'up'])
      else await this.netem(e.ns, e.ifname, v, on)
    }
    return method === 'link-down' ? 'link-down' : 'netem-loss'
  }

  async netem(ns: string, ifname: string, v: VethPlan, loss100: boolean): Promise<void> {
    const args = netemArgs(ifname, v.netem, loss100)
    if (args !== undefined) await tcNetem(ns, args)
    else await run('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', ifname, 'root'], { check: false })
  }

  async inbox(name: string): Promise<InboxMessage[]> {
    const g = this.gateways.get(name)!
    const out: InboxMessage[] = []
    let since = 0
    for (;;) {
      const r = await g.control.call<{ messages: InboxMessage[]; next: number }>('messages', { since, limit: 1000 })
      out.push(...r.messages)
      if (r.messages.length === 0 || r.next === since) return out
      since = r.next
    }
  }

  async awaitDelivery(sent: SentMessage[], destinations: string[], timeoutMs: number): Promise<void> {
    const want = new Map<string, Set<string>>(destinations.map((d) => [d, new Set(sent.filter((m) => m.to === d && m.id !== undefined).map((m) => m.id!))]))
    const cursor = new Map<string, number>(destinations.map((d) => [d, 0]))
    const total = [...want.values()].reduce((a, s) => a + s.size, 0)
    const end = Date.now() + timeoutMs
    let lastSay = 0
    for (;;) {
      checkAbort(this.abort)
      this.checkGateways()
      for (const d of destinations) {
        const set = want.get(d)!
        if (set.size === 0) continue
        try {
          const r = await this.gateways.get(d)!.control.call<{ messages: InboxMessage[]; next: number }>('messages', { since: cursor.get(d)!, limit: 1000 })
          for (const m of r.messages) set.delete(m.id)
          cursor.set(d, r.next)
        } catch {
          // retried next round
        }
      }
      const left = [...want.values()].reduce((a, s) => a + s.size, 0)
      if (left === 0) return
      if (Date.now() > end) {
        this.say(`delivery timed out after ${Math.round(timeoutMs / 1000)} s with ${left} of ${total} outstanding`)
        return
      }
      if (Date.now() - lastSay > 5000) {
        lastSay = Date.now()
        this.say(`waiting for ${left} of ${total} messages`)
      }
      await pause(200, this.abort)
    }
  }

  // ---- the end -------------------------------------------------------------------------------

  /** --keep: hand everything over (no cleanup). */
  release(): void {
    this.releasedAt = Date.now()
    for (const g of this.gateways.values()) {
      g.control.close()
      g.proc.child.unref()
    }
    this.emulatorControl?.close()
    this.emulatorHost?.child.unref()
    for (const s of this.socats) s.child.unref()
  }

  kept(): KeptLab {
    const k: KeptLab = {
      prefix: this.plan.prefix,
      run_dir: this.plan.runDir,
      gateways: [...this.gateways.values()].map((g) => ({ name: g.plan.node, namespace: g.plan.ns, control_socket: g.plan.controlSocket, pid: g.proc.pid, config: g.plan.configPath, logs: g.plan.stderrLog })),
      clean: `kairo-gw lab clean --prefix ${this.plan.prefix}`,
    }
    if (this.emulatorHost !== undefined) k.emulator_socket = this.plan.emulatorSocket
    return k
  }

  async cleanup(keepLogs: boolean): Promise<void> {
    for (const g of this.gateways.values()) g.control.close()
    this.emulatorControl?.close()
    await Promise.all([...this.gateways.values()].map((g) => stopProcess(g.proc, 3000)))
    if (this.emulatorHost !== undefined) await stopProcess(this.emulatorHost, 3000)
    await Promise.all(this.socats.map((s) => stopProcess(s, 2000)))
    const r = await cleanLab({ prefix: this.plan.prefix, force: true, keepRunDirs: keepLogs })
    if (r.errors.length > 0) this.say(`cleanup problems: ${r.errors.join('; ')}`)
  }
}

/** How to reach a kept lab, and how to remove it (printed with --keep). */
export function keptText(k: KeptLab): string {
  const w = Math.max(...k.gateways.map((g) => g.name.length))
  const lines = [`kept: lab ${k.prefix} is still up (run dir ${k.run_dir})`]
  for (const g of k.gateways) lines.push(`  ${g.name.padEnd(w)}  pid ${g.pid}, namespace ${g.namespace}, control socket ${g.control_socket}`)
  const first = k.gateways[0]
  if (first !== undefined) {
    lines.push('ask a gateway (JSON-RPC, one line per request):')
    lines.push(`  echo '{"jsonrpc":"2.0","id":1,"method":"status"}' | socat - UNIX-CONNECT:${first.control_socket}`)
    lines.push(`  ip netns exec ${first.namespace} ip addr        # its network`)
  }
  if (k.emulator_socket !== undefined) lines.push(`LoRa emulator (methods cut, heal, stats {segment}): ${k.emulator_socket}`)
  lines.push(`remove it: ${k.clean}`)
  return lines.join('\n')
}
