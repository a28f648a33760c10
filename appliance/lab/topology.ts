/**
 * Lab topology files: which gateways a lab runs and which segments (veth pairs, emulated LoRa
 * media) join them. Pure: parsing and validation only, no I/O beyond reading the file in
 * loadTopology(). The format is documented in appliance/lab/README.md.
 *
 *   nodes:    [{name: g1}, {name: g2}]
 *   segments: [{name: u12, kind: udp, nodes: [g1, g2], options: {port: 47800}}]
 *   traffic:  {pairs: [{from: g1, to: g2}], size: 64}
 *   mesh:     {announce_interval_s: 1}
 *
 * Every error is a ConfigRejectedError whose message names the file, the field path and the
 * line: `pair.yaml: segments[0].kind: "wifi" is not one of ethernet, udp, raw_ip, lora (line 7)`.
 */
import { existsSync, promises as fsp, readdirSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LineCounter, parseDocument, type Document } from 'yaml'
import { BANDWIDTHS_HZ, REGIONS } from '../../drivers/lora/radio.js'
import { ConfigRejectedError } from '../core/errors.js'

export const SEGMENT_KINDS = ['ethernet', 'udp', 'raw_ip', 'lora'] as const
export type SegmentKind = (typeof SEGMENT_KINDS)[number]

/** Kinds carried by a veth pair between two namespaces (the others are emulated radio media). */
export const VETH_KINDS: ReadonlySet<SegmentKind> = new Set(['ethernet', 'udp', 'raw_ip'])

export const MESSAGE_TYPES = ['TASK_REQUEST', 'AGENT_MIGRATION', 'REPUTATION_DELTA', 'BROADCAST_ANNOUNCE', 'VECTOR_SYNC'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

/** Node names become namespace names, config `node.name` and emulator radio names. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/
/** Segment names become link names in the gateway configs (`[a-z0-9_-]{1,15}`). */
export const SEGMENT_NAME = /^[a-z0-9][a-z0-9_-]{0,14}$/

/** Most segments of one topology: interface names are `<prefix>-s<index><a|b>`, ≤ 15 characters. */
export const MAX_SEGMENTS = 99
/** Most veth segments: each gets a /24 out of 10.77.0.0/16. */
export const MAX_VETH_SEGMENTS = 250
export const MAX_NODES = 64

/** netem figures applied to both ends of a veth segment (tc qdisc ... netem). */
export interface Netem {
  loss_pct?: number
  delay_ms?: number
  jitter_ms?: number
}

export interface VethOptions {
  netem?: Netem
}

export interface UdpOptions extends VethOptions {
  /** UDP port of every gateway on the segment (default 47800). */
  port: number
  /** Multicast group for link-local discovery (default 239.77.71.1). */
  group: string
  /** Multicast discovery (default true); without it each end lists the other as a static peer. */
  discovery: boolean
}

export interface LoraOptions {
  backend: 'firmware-bridge' | 'rnode'
  /** REGIONS key (default LAB: no duty cycle). */
  region: string
  frequency_mhz: number
  spreading_factor: number
  bandwidth_khz: number
  coding_rate: number
  tx_power_dbm: number
  /** Radio time runs 1/time_scale faster in the emulator; the gateways are told the same. */
  time_scale: number
  /** Share of frames the emulated medium loses between any two radios of the segment, 0..1. */
  loss: number
}

interface SegmentBase {
  name: string
  nodes: string[]
  /** Position in `segments` (names the interfaces and the address block). */
  index: number
}
export type Segment =
  | (SegmentBase & { kind: 'ethernet'; options: VethOptions })
  | (SegmentBase & { kind: 'raw_ip'; options: VethOptions })
  | (SegmentBase & { kind: 'udp'; options: UdpOptions })
  | (SegmentBase & { kind: 'lora'; options: LoraOptions })

export interface TrafficPair {
  from: string
  to: string
}

export interface Topology {
  name: string
  description: string
  /** The file it came from (or the name given to parseTopology). */
  file: string
  nodes: Array<{ name: string }>
  segments: Segment[]
  traffic: { pairs: TrafficPair[]; size: number; type: MessageType }
  mesh: { announce_interval_s: number; hop_limit: number }
}

export const DEFAULT_UDP: Readonly<UdpOptions> = Object.freeze({ port: 47800, group: '239.77.71.1', discovery: true })
export const DEFAULT_LORA: Readonly<LoraOptions> = Object.freeze({
  backend: 'firmware-bridge',
  region: 'LAB',
  frequency_mhz: 869.525,
  spreading_factor: 7,
  bandwidth_khz: 500,
  coding_rate: 5,
  tx_power_dbm: 14,
  time_scale: 1,
  loss: 0,
})
/** Payload bytes of a lab message unless the topology or --size says otherwise. */
export const DEFAULT_SIZE = 64
export const MAX_SIZE = 65_536
/** Announce every second so that a lab's routes converge in a few seconds. */
export const DEFAULT_ANNOUNCE_S = 1

/** Directory of the topologies shipped with kairo-gw. */
export const TOPOLOGY_DIR = join(dirname(fileURLToPath(import.meta.url)), 'topologies')

/** Names of the shipped topologies (file names without .yaml). */
export function shippedTopologies(): string[] {
  try {
    return readdirSync(TOPOLOGY_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -5))
      .sort()
  } catch {
    return []
  }
}

/** A shipped topology name, or a path to a file. Undefined when neither exists. */
export function resolveTopology(nameOrFile: string): string | undefined {
  if (/^[A-Za-z0-9_.-]+$/.test(nameOrFile) && !nameOrFile.includes('/')) {
    const shipped = join(TOPOLOGY_DIR, nameOrFile.endsWith('.yaml') ? nameOrFile : `${nameOrFile}.yaml`)
    if (existsSync(shipped)) return shipped
  }
  const p = resolve(nameOrFile)
  return existsSync(p) ? p : undefined
}

/** Reads and parses a topology file (ConfigRejectedError naming the file on any problem). */
export async function loadTopology(file: string): Promise<Topology> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (e) {
    throw new ConfigRejectedError(`${file}: cannot read the topology: ${(e as Error).message}`, { field: '(file)', cause: e })
  }
  return parseTopology(text, file)
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

type PathKey = string | number

function pathText(path: PathKey[]): string {
  let s = ''
  for (const k of path) s += typeof k === 'number' ? `[${k}]` : s === '' ? k : `.${k}`
  return s === '' ? '(root)' : s
}

/**
 * Parses and validates topology text (YAML; JSON is YAML). `file` names the source in errors.
 * Throws ConfigRejectedError with `field` = the offending path.
 */
export function parseTopology(text: string, file = 'topology'): Topology {
  const shown = file
  const lines = new LineCounter()
  let doc: Document
  try {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  } catch (e) {
    throw new ConfigRejectedError(`${shown}: not YAML: ${(e as Error).message}`, { field: '(root)', cause: e })
  }
  const lineOf = (path: PathKey[]): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      try {
        const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined
        if (node !== undefined && node !== null && typeof node === 'object' && Array.isArray(node.range)) return lines.linePos(node.range[0]).line
      } catch {
        // a scalar on the way: try the parent
      }
    }
    return undefined
  }
  const fail = (path: PathKey[], msg: string): never => {
    const line = lineOf(path)
    throw new ConfigRejectedError(`${shown}: ${pathText(path)}: ${msg}${line === undefined ? '' : ` (line ${line})`}`, { field: pathText(path) })
  }
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const line = e.linePos?.[0]?.line
    throw new ConfigRejectedError(`${shown}: not valid YAML: ${e.message.split('\n')[0]}${line === undefined ? '' : ` (line ${line})`}`, { field: '(root)' })
  }
  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    throw new ConfigRejectedError(`${shown}: not usable YAML: ${(e as Error).message}`, { field: '(root)', cause: e })
  }
  if (!isObj(raw)) return fail([], 'a topology is a mapping with nodes and segments')

  const only = (path: PathKey[], o: Record<string, unknown>, keys: readonly string[]) => {
    for (const k of Object.keys(o)) if (!keys.includes(k)) fail([...path, k], `unknown field (expected ${keys.join(', ')})`)
  }
  const str = (path: PathKey[], v: unknown, re?: RegExp, what = 'a string'): string => {
    if (typeof v !== 'string' || (re !== undefined && !re.test(v))) return fail(path, `${JSON.stringify(v) ?? String(v)} is not ${what}`)
    return v
  }
  const num = (path: PathKey[], v: unknown, lo: number, hi: number, integer: boolean, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < lo || v > hi) return fail(path, `${JSON.stringify(v) ?? String(v)} is not ${what} (${lo}..${hi})`)
    return v
  }
  const bool = (path: PathKey[], v: unknown): boolean => {
    if (typeof v !== 'boolean') return fail(path, `${JSON.stringify(v) ?? String(v)} is not true or false`)
    return v
  }
  const arr = (path: PathKey[], v: unknown, what: string): unknown[] => {
    if (!Array.isArray(v)) return fail(path, `must be a list of ${what}`)
    return v
  }
  const obj = (path: PathKey[], v: unknown, what: string): Record<string, unknown> => {
    if (!isObj(v)) return fail(path, `must be a mapping (${what})`)
    return v
  }

  only([], raw, ['name', 'description', 'nodes', 'segments', 'traffic', 'mesh'])
  const name = raw.name === undefined ? basename(file).replace(/\.ya?ml$/, '') : str(['name'], raw.name, /^[A-Za-z0-9_.-]{1,64}$/, 'a topology name ([A-Za-z0-9_.-], at most 64)')
  const description = raw.description === undefined ? '' : str(['description'], raw.description)

  if (raw.nodes === undefined) fail(['nodes'], 'is required: the gateways, e.g. [{name: g1}, {name: g2}]')
  const nodesRaw = arr(['nodes'], raw.nodes, 'gateways ({name})')
  if (nodesRaw.length < 2) fail(['nodes'], `a lab needs at least 2 gateways, got ${nodesRaw.length}`)
  if (nodesRaw.length > MAX_NODES) fail(['nodes'], `at most ${MAX_NODES} gateways, got ${nodesRaw.length}`)
  const nodes: Array<{ name: string }> = []
  const nodeNames = new Set<string>()
  nodesRaw.forEach((n, i) => {
    const o = typeof n === 'string' ? { name: n } : obj(['nodes', i], n, '{name}')
    only(['nodes', i], o, ['name'])
    const nm = str(['nodes', i, 'name'], o.name, NODE_NAME, 'a gateway name ([A-Za-z0-9_.-], at most 32, starting with a letter or digit)')
    if (nodeNames.has(nm)) fail(['nodes', i, 'name'], `"${nm}" is used twice`)
    nodeNames.add(nm)
    nodes.push({ name: nm })
  })

  if (raw.segments === undefined) fail(['segments'], 'is required: the links between gateways, e.g. [{name: u12, kind: udp, nodes: [g1, g2]}]')
  const segsRaw = arr(['segments'], raw.segments, 'segments ({name, kind, nodes, options})')
  if (segsRaw.length === 0) fail(['segments'], 'needs at least one segment')
  if (segsRaw.length > MAX_SEGMENTS) fail(['segments'], `at most ${MAX_SEGMENTS} segments, got ${segsRaw.length}`)
  const segments: Segment[] = []
  const segNames = new Set<string>()
  let vethCount = 0
  segsRaw.forEach((s, i) => {
    const p: PathKey[] = ['segments', i]
    const o = obj(p, s, '{name, kind, nodes, options}')
    only(p, o, ['name', 'kind', 'nodes', 'options'])
    const sn = str([...p, 'name'], o.name, SEGMENT_NAME, 'a segment name ([a-z0-9_-], at most 15, starting with a letter or digit)')
    if (segNames.has(sn)) fail([...p, 'name'], `"${sn}" is used twice`)
    segNames.add(sn)
    if (typeof o.kind !== 'string' || !(SEGMENT_KINDS as readonly string[]).includes(o.kind)) fail([...p, 'kind'], `${JSON.stringify(o.kind) ?? String(o.kind)} is not one of ${SEGMENT_KINDS.join(', ')}`)
    const kind = o.kind as SegmentKind
    const members = arr([...p, 'nodes'], o.nodes, 'gateway names').map((m, j) => {
      const nm = str([...p, 'nodes', j], m, NODE_NAME, 'a gateway name')
      if (!nodeNames.has(nm)) fail([...p, 'nodes', j], `"${nm}" is not one of the nodes (${[...nodeNames].join(', ')})`)
      return nm
    })
    if (new Set(members).size !== members.length) fail([...p, 'nodes'], 'lists a gateway twice')
    if (VETH_KINDS.has(kind)) {
      if (members.length !== 2) fail([...p, 'nodes'], `a ${kind} segment is a veth pair: exactly 2 gateways, got ${members.length}`)
      vethCount++
      if (vethCount > MAX_VETH_SEGMENTS) fail(p, `at most ${MAX_VETH_SEGMENTS} veth segments`)
    } else if (members.length < 2) fail([...p, 'nodes'], `a lora segment needs at least 2 gateways, got ${members.length}`)
    const op: PathKey[] = [...p, 'options']
    const opts = o.options === undefined ? {} : obj(op, o.options, `options of a ${kind} segment`)
    const netem = (): Netem | undefined => {
      if (opts.netem === undefined) return undefined
      const n = obj([...op, 'netem'], opts.netem, '{loss_pct, delay_ms, jitter_ms}')
      only([...op, 'netem'], n, ['loss_pct', 'delay_ms', 'jitter_ms'])
      const out: Netem = {}
      if (n.loss_pct !== undefined) out.loss_pct = num([...op, 'netem', 'loss_pct'], n.loss_pct, 0, 100, false, 'a loss percentage')
      if (n.delay_ms !== undefined) out.delay_ms = num([...op, 'netem', 'delay_ms'], n.delay_ms, 0, 60_000, false, 'a delay in ms')
      if (n.jitter_ms !== undefined) out.jitter_ms = num([...op, 'netem', 'jitter_ms'], n.jitter_ms, 0, 60_000, false, 'a jitter in ms')
      return out
    }
    const base = { name: sn, nodes: members, index: i }
    if (kind === 'ethernet' || kind === 'raw_ip') {
      only(op, opts, ['netem'])
      const n = netem()
      segments.push({ ...base, kind, options: n === undefined ? {} : { netem: n } })
    } else if (kind === 'udp') {
      only(op, opts, ['port', 'group', 'discovery', 'netem'])
      const u: UdpOptions = { ...DEFAULT_UDP }
      if (opts.port !== undefined) u.port = num([...op, 'port'], opts.port, 1, 65535, true, 'a UDP port')
      if (opts.group !== undefined) {
        u.group = str([...op, 'group'], opts.group, /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, 'an IPv4 multicast group')
        const parts = u.group.split('.').map(Number)
        if (parts.some((x) => x > 255) || parts[0]! < 224 || parts[0]! > 239) fail([...op, 'group'], `"${u.group}" is not an IPv4 multicast group (224.0.0.0..239.255.255.255)`)
      }
      if (opts.discovery !== undefined) u.discovery = bool([...op, 'discovery'], opts.discovery)
      const n = netem()
      if (n !== undefined) u.netem = n
      segments.push({ ...base, kind, options: u })
    } else {
      only(op, opts, Object.keys(DEFAULT_LORA))
      const l: LoraOptions = { ...DEFAULT_LORA }
      if (opts.backend !== undefined) {
        if (opts.backend !== 'firmware-bridge' && opts.backend !== 'rnode') fail([...op, 'backend'], `${JSON.stringify(opts.backend)} is not firmware-bridge or rnode`)
        l.backend = opts.backend as LoraOptions['backend']
      }
      if (opts.region !== undefined) {
        if (typeof opts.region !== 'string' || REGIONS[opts.region] === undefined) fail([...op, 'region'], `${JSON.stringify(opts.region)} is not one of ${Object.keys(REGIONS).join(', ')}`)
        l.region = opts.region as string
      }
      if (opts.frequency_mhz !== undefined) l.frequency_mhz = num([...op, 'frequency_mhz'], opts.frequency_mhz, 150, 960, false, 'a frequency in MHz')
      if (opts.spreading_factor !== undefined) l.spreading_factor = num([...op, 'spreading_factor'], opts.spreading_factor, 5, 12, true, 'a spreading factor')
      if (opts.bandwidth_khz !== undefined) {
        const bw = opts.bandwidth_khz
        if (typeof bw !== 'number' || !BANDWIDTHS_HZ.includes(Math.round(bw * 1000))) fail([...op, 'bandwidth_khz'], `${JSON.stringify(bw) ?? String(bw)} is not one of ${BANDWIDTHS_HZ.map((h) => h / 1000).join(', ')} kHz`)
        l.bandwidth_khz = bw as number
      }
      if (opts.coding_rate !== undefined) l.coding_rate = num([...op, 'coding_rate'], opts.coding_rate, 5, 8, true, 'a coding rate denominator (4/5..4/8)')
      if (opts.tx_power_dbm !== undefined) l.tx_power_dbm = num([...op, 'tx_power_dbm'], opts.tx_power_dbm, -9, 22, true, 'a TX power in dBm')
      if (opts.time_scale !== undefined) {
        l.time_scale = num([...op, 'time_scale'], opts.time_scale, 0, 1, false, 'a time scale')
        if (l.time_scale === 0) fail([...op, 'time_scale'], '0 is not a time scale (0 < time_scale <= 1)')
      }
      if (opts.loss !== undefined) l.loss = num([...op, 'loss'], opts.loss, 0, 1, false, 'a loss probability')
      const region = REGIONS[l.region]!
      const hz = Math.round(l.frequency_mhz * 1e6)
      if (hz < region.minHz || hz > region.maxHz) fail([...op, 'frequency_mhz'], `${l.frequency_mhz} MHz is outside ${region.name} (${region.minHz / 1e6}..${region.maxHz / 1e6} MHz)`)
      if (l.tx_power_dbm > region.maxTxPowerDbm) fail([...op, 'tx_power_dbm'], `${l.tx_power_dbm} dBm exceeds the ${region.name} limit of ${region.maxTxPowerDbm} dBm`)
      segments.push({ ...base, kind: 'lora', options: l })
    }
  })
  nodes.forEach((n, i) => {
    if (!segments.some((s) => s.nodes.includes(n.name))) fail(['nodes', i, 'name'], `"${n.name}" is on no segment`)
  })

  let type: MessageType = 'TASK_REQUEST'
  let size = DEFAULT_SIZE
  let pairs: TrafficPair[] = [
    { from: nodes[0]!.name, to: nodes[nodes.length - 1]!.name },
    { from: nodes[nodes.length - 1]!.name, to: nodes[0]!.name },
  ]
  if (raw.traffic !== undefined) {
    const tr = obj(['traffic'], raw.traffic, '{pairs, size, type}')
    only(['traffic'], tr, ['pairs', 'size', 'type'])
    if (tr.size !== undefined) size = num(['traffic', 'size'], tr.size, 1, MAX_SIZE, true, 'a payload size in bytes')
    if (tr.type !== undefined) {
      if (typeof tr.type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(tr.type)) fail(['traffic', 'type'], `${JSON.stringify(tr.type) ?? String(tr.type)} is not one of ${MESSAGE_TYPES.join(', ')}`)
      type = tr.type as MessageType
    }
    if (tr.pairs !== undefined) {
      const pr = arr(['traffic', 'pairs'], tr.pairs, '{from, to}')
      if (pr.length === 0) fail(['traffic', 'pairs'], 'needs at least one {from, to}')
      pairs = pr.map((x, i) => {
        const q: PathKey[] = ['traffic', 'pairs', i]
        const o = obj(q, x, '{from, to}')
        only(q, o, ['from', 'to'])
        const from = str([...q, 'from'], o.from, NODE_NAME, 'a gateway name')
        const to = str([...q, 'to'], o.to, NODE_NAME, 'a gateway name')
        if (!nodeNames.has(from)) fail([...q, 'from'], `"${from}" is not one of the nodes`)
        if (!nodeNames.has(to)) fail([...q, 'to'], `"${to}" is not one of the nodes`)
        if (from === to) fail(q, `from and to are both "${from}"`)
        return { from, to }
      })
    }
  }
  const component = components(nodes.map((n) => n.name), segments)
  pairs.forEach((pair, i) => {
    if (component.get(pair.from) !== component.get(pair.to)) fail(raw.traffic === undefined ? ['segments'] : ['traffic', 'pairs', i], `no path between ${pair.from} and ${pair.to}: the segments leave them apart`)
  })

  let announce = DEFAULT_ANNOUNCE_S
  let hopLimit = 16
  if (raw.mesh !== undefined) {
    const m = obj(['mesh'], raw.mesh, '{announce_interval_s, hop_limit}')
    only(['mesh'], m, ['announce_interval_s', 'hop_limit'])
    if (m.announce_interval_s !== undefined) announce = num(['mesh', 'announce_interval_s'], m.announce_interval_s, 1, 3600, true, 'an announce interval in seconds')
    if (m.hop_limit !== undefined) hopLimit = num(['mesh', 'hop_limit'], m.hop_limit, 1, 64, true, 'a hop limit')
  }
  return { name, description, file, nodes, segments, traffic: { pairs, size, type }, mesh: { announce_interval_s: announce, hop_limit: hopLimit } }
}

/** Connected component id of every node (union-find over the segments). */
export function components(nodes: string[], segments: Array<{ nodes: string[] }>): Map<string, number> {
  const parent = new Map(nodes.map((n) => [n, n]))
  const find = (x: string): string => {
    let r = x
    while (parent.get(r) !== r) r = parent.get(r)!
    parent.set(x, r)
    return r
  }
  for (const s of segments) for (const n of s.nodes.slice(1)) parent.set(find(n), find(s.nodes[0]!))
  const ids = new Map<string, number>()
  const out = new Map<string, number>()
  for (const n of nodes) {
    const r = find(n)
    if (!ids.has(r)) ids.set(r, ids.size)
    out.set(n, ids.get(r)!)
  }
  return out
}

/** The default traffic of a run: `count` messages alternating over the pairs. */
export function trafficPlan(pairs: TrafficPair[], count: number): TrafficPair[] {
  return Array.from({ length: count }, (_, i) => pairs[i % pairs.length]!)
}
