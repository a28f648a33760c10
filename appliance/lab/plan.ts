/**
 * What a lab run builds, computed from a topology before anything is touched: namespace and
 * interface names, addresses, PTY paths, emulator configs and every gateway's config file.
 * Pure (no I/O), so that names, addresses and configs are unit-tested.
 *
 * Naming, for a run prefix `kl1234` (`kl` + up to 4 digits):
 *   namespace of gateway g1     kl1234-g1
 *   veth pair of segment #2     kl1234-s2a (first gateway's end) / kl1234-s2b (second's): ≤ 11 characters
 *   run directory               <tmp>/kairo-lab-kl1234-XXXXXX
 * `kairo-gw lab clean` finds what a crashed run left by these patterns.
 */
import { join } from 'node:path'
import { stringify } from 'yaml'
import type { EmulatorConfig } from '../../firmware-bridge/emulator/main.js'
import { VETH_KINDS, type Segment, type Topology } from './topology.js'

/** A run prefix: `kl` and 1-4 digits. */
export const PREFIX = /^kl\d{1,4}$/
/** Any lab namespace or root-namespace interface: `kl<digits>-...`. */
export const LAB_NAME = /^(kl\d{1,4})-/
/** Run directories: `kairo-lab-<prefix>-XXXXXX` under the OS temp dir. */
export const RUN_DIR_PREFIX = 'kairo-lab-'
/** Linux IFNAMSIZ - 1. */
export const MAX_IFNAME = 15
/** Address block of veth segments: 10.77.<n>.0/24, the first gateway .1, the second .2. */
export const SUBNET_BASE = '10.77'

export function defaultPrefix(pid: number): string {
  return `kl${pid % 10_000}`
}

export function nsName(prefix: string, node: string): string {
  return `${prefix}-${node}`
}

export function ifName(prefix: string, segmentIndex: number, end: 'a' | 'b'): string {
  const n = `${prefix}-s${segmentIndex}${end}`
  if (n.length > MAX_IFNAME) throw new TypeError(`interface name ${n} is longer than ${MAX_IFNAME} characters`)
  return n
}

export interface VethEnd {
  node: string
  ns: string
  ifname: string
  /** IPv4 address without the prefix length. */
  address: string
  /** 24 */
  prefixLength: number
}

export interface VethPlan {
  segment: string
  kind: 'ethernet' | 'udp' | 'raw_ip'
  index: number
  a: VethEnd
  b: VethEnd
  broadcast: string
  netem?: { loss_pct?: number; delay_ms?: number; jitter_ms?: number }
}

export interface PtyPlan {
  segment: string
  node: string
  /** What the gateway opens (config `lora.port`). */
  host: string
  /** What the emulator opens. */
  mcu: string
}

export interface EmulatorPlan {
  segment: string
  nodes: string[]
  config: EmulatorConfig
}

export interface GatewayPlan {
  node: string
  ns: string
  dir: string
  configPath: string
  stateDir: string
  runtimeDir: string
  controlSocket: string
  stdoutLog: string
  stderrLog: string
  config: GatewayConfig
  yaml: string
}

/** The gateway config file of the contract (the parts the lab writes). */
export interface GatewayConfig {
  node: { name: string }
  state_dir: string
  runtime_dir: string
  links: Array<Record<string, unknown> & { name: string }>
  mesh: { announce_interval_s: number; hop_limit: number }
  logging: { level: 'debug' | 'info' | 'warn' }
}

export interface LabPlan {
  prefix: string
  runDir: string
  topology: Topology
  namespaces: Array<{ node: string; ns: string }>
  veths: VethPlan[]
  ptys: PtyPlan[]
  emulators: EmulatorPlan[]
  /** Where the emulator host listens (only with lora segments). */
  emulatorSocket: string
  gateways: GatewayPlan[]
}

export interface PlanOptions {
  prefix: string
  runDir: string
  logLevel?: 'debug' | 'info' | 'warn'
}

/** Everything a run of `topology` will create, under `runDir`, named after `prefix`. */
export function buildPlan(topology: Topology, opts: PlanOptions): LabPlan {
  if (!PREFIX.test(opts.prefix)) throw new TypeError(`lab prefix ${JSON.stringify(opts.prefix)} is not kl followed by 1-4 digits`)
  const { prefix, runDir } = opts
  const namespaces = topology.nodes.map((n) => ({ node: n.name, ns: nsName(prefix, n.name) }))
  const veths: VethPlan[] = []
  const ptys: PtyPlan[] = []
  const emulators: EmulatorPlan[] = []
  const links = new Map<string, GatewayConfig['links']>(topology.nodes.map((n) => [n.name, []]))
  let subnet = 0
  for (const seg of topology.segments) {
    if (VETH_KINDS.has(seg.kind)) {
      const v = vethPlan(prefix, seg, subnet++)
      veths.push(v)
      for (const [me, other] of [
        [v.a, v.b],
        [v.b, v.a],
      ] as const)
        links.get(me.node)!.push(vethLink(seg, v, me, other))
    } else if (seg.kind === 'lora') {
      const o = seg.options
      const radios: EmulatorConfig['radios'] = []
      for (const node of seg.nodes) {
        const base = join(runDir, 'pty', `${seg.name}-${node}`)
        const p: PtyPlan = { segment: seg.name, node, host: `${base}-host`, mcu: `${base}-mcu` }
        ptys.push(p)
        radios.push({
          name: node,
          tty: p.mcu,
          protocol: o.backend,
          config: {
            frequencyHz: Math.round(o.frequency_mhz * 1e6),
            bandwidthHz: Math.round(o.bandwidth_khz * 1000),
            spreadingFactor: o.spreading_factor,
            codingRate: o.coding_rate,
            txPowerDbm: o.tx_power_dbm,
          },
        })
        links.get(node)!.push({
          name: seg.name,
          lora: {
            port: p.host,
            backend: o.backend,
            region: o.region,
            frequency_mhz: o.frequency_mhz,
            spreading_factor: o.spreading_factor,
            bandwidth_khz: o.bandwidth_khz,
            coding_rate: o.coding_rate,
            tx_power_dbm: o.tx_power_dbm,
            time_scale: o.time_scale,
          },
        })
      }
      const config: EmulatorConfig = { seed: seg.index + 1, timeScale: o.time_scale, region: o.region, radios, reopen: { minMs: 50, maxMs: 500 } }
      if (o.loss > 0) {
        config.links = []
        for (const from of seg.nodes) for (const to of seg.nodes) if (from !== to) config.links.push({ from, to, loss: o.loss })
      }
      emulators.push({ segment: seg.name, nodes: [...seg.nodes], config })
    }
  }
  const gateways = topology.nodes.map((n): GatewayPlan => {
    const dir = join(runDir, n.name)
    const runtimeDir = join(dir, 'run')
    const config: GatewayConfig = {
      node: { name: n.name },
      state_dir: join(dir, 'state'),
      runtime_dir: runtimeDir,
      links: links.get(n.name)!,
      mesh: { ...topology.mesh },
      logging: { level: opts.logLevel ?? 'info' },
    }
    return {
      node: n.name,
      ns: nsName(prefix, n.name),
      dir,
      configPath: join(dir, 'config.yaml'),
      stateDir: config.state_dir,
      runtimeDir,
      controlSocket: join(runtimeDir, 'control.sock'),
      stdoutLog: join(dir, 'stdout.log'),
      stderrLog: join(dir, 'stderr.log'),
      config,
      yaml: gatewayYaml(config, topology.name, prefix),
    }
  })
  return { prefix, runDir, topology, namespaces, veths, ptys, emulators, emulatorSocket: join(runDir, 'emulator.sock'), gateways }
}

function vethPlan(prefix: string, seg: Segment, subnet: number): VethPlan {
  if (seg.kind === 'lora') throw new TypeError('a lora segment has no veth pair')
  const net = `${SUBNET_BASE}.${subnet}`
  const end = (i: 0 | 1): VethEnd => ({ node: seg.nodes[i]!, ns: nsName(prefix, seg.nodes[i]!), ifname: ifName(prefix, seg.index, i === 0 ? 'a' : 'b'), address: `${net}.${i + 1}`, prefixLength: 24 })
  const v: VethPlan = { segment: seg.name, kind: seg.kind, index: seg.index, a: end(0), b: end(1), broadcast: `${net}.255` }
  if (seg.options.netem !== undefined) v.netem = { ...seg.options.netem }
  return v
}

function vethLink(seg: Segment, v: VethPlan, me: VethEnd, other: VethEnd): GatewayConfig['links'][number] {
  switch (seg.kind) {
    case 'ethernet':
      return { name: seg.name, ethernet: { interface: me.ifname } }
    case 'raw_ip':
      return { name: seg.name, raw_ip: { interface: me.ifname, address: me.address, peers: [other.address], broadcast: v.broadcast } }
    case 'udp': {
      const o = seg.options
      const udp: Record<string, unknown> = { host: me.address, port: o.port, interface: me.ifname, group: o.group, discovery: o.discovery }
      if (!o.discovery) udp.peers = [`${other.address}:${o.port}`]
      return { name: seg.name, udp }
    }
    default:
      throw new TypeError(`segment ${seg.name}: ${seg.kind} is not a veth kind`)
  }
}

function gatewayYaml(config: GatewayConfig, topology: string, prefix: string): string {
  return `# written by kairo-gw lab run (topology ${topology}, run ${prefix})\n${stringify(config)}`
}

/** `ip` commands that build a plan's network (in order); each is an argv for `ip`. */
export function networkCommands(plan: LabPlan): string[][] {
  const cmds: string[][] = []
  for (const { ns } of plan.namespaces) {
    cmds.push(['netns', 'add', ns])
    cmds.push(['-n', ns, 'link', 'set', 'lo', 'up'])
  }
  for (const v of plan.veths) {
    cmds.push(['link', 'add', v.a.ifname, 'type', 'veth', 'peer', 'name', v.b.ifname])
    for (const e of [v.a, v.b]) {
      cmds.push(['link', 'set', e.ifname, 'netns', e.ns])
      cmds.push(['-n', e.ns, 'addr', 'add', `${e.address}/${e.prefixLength}`, 'broadcast', v.broadcast, 'dev', e.ifname])
      cmds.push(['-n', e.ns, 'link', 'set', e.ifname, 'up'])
    }
  }
  return cmds
}

/** `tc` argv (run inside the namespace) adding a segment's netem, or undefined without one. */
export function netemArgs(ifname: string, netem: VethPlan['netem'], loss100 = false): string[] | undefined {
  if (!loss100 && (netem === undefined || Object.keys(netem).length === 0)) return undefined
  const args = ['qdisc', 'replace', 'dev', ifname, 'root', 'netem']
  const loss = loss100 ? 100 : netem?.loss_pct
  if (netem?.delay_ms !== undefined) args.push('delay', `${netem.delay_ms}ms`, ...(netem.jitter_ms !== undefined ? [`${netem.jitter_ms}ms`] : []))
  if (loss !== undefined) args.push('loss', `${loss}%`)
  return args
}
