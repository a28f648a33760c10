/**
 * Loading the gateway config file: YAML (JSON is YAML too) parsed with line numbers, then a
 * handwritten validator that collects every problem, not just the first, each with its key path
 * and line. A file with any problem throws ConfigFileError listing all of them; a good file gives
 * the normalised GatewayConfig (schema.ts): defaults filled, paths absolute, units converted.
 *
 * The validator walks the YAML node tree (never `toJS()`), so aliases are looked at where they
 * are used and cannot blow up, and only the keys the format knows are ever descended into.
 */
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { LineCounter, Scalar, isMap, isScalar, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml'
import { BANDWIDTHS_HZ, DEFAULT_RADIO, REGIONS, radioConfigProblems, regionProblems, type ConfigProblem, type RadioConfig } from '../../drivers/lora/radio.js'
import { ConfigFileError, type ConfigFileProblem } from './errors.js'
import { DocChecker, DocSection, UNRESOLVED, childPath, describe, isNull, quoted, readCapped, sortProblems, yamlMessage, type MapEntry, type Val } from './file.js'
import {
  CONTROL_SOCKET_NAME,
  DEFAULTS,
  IFNAME_MAX_BYTES,
  LIMITS,
  LINK_DRIVERS,
  LINK_NAME_RE,
  CUT_ACTION_KINDS,
  RFKILL_TYPE_NAMES,
  type CutActionConfig,
  LOG_LEVELS,
  LORA_BACKENDS,
  NODE_NAME_RE,
  PEER_MODES,
  type PeersConfig,
  UNIX_SOCKET_PATH_MAX_BYTES,
  type EthernetLinkConfig,
  type GatewayConfig,
  type LinkConfig,
  type LinkDriver,
  type LoraLinkConfig,
  type RawIpLinkConfig,
  type UdpLinkConfig,
} from './schema.js'

export { suggestKey } from './file.js'

/** Largest config file read, bytes. */
export const MAX_CONFIG_BYTES = 1024 * 1024

const TOP_KEYS = ['node', 'state_dir', 'runtime_dir', 'links', 'mesh', 'store', 'logging', 'peers', 'audit', 'policy_file'] as const
const NODE_KEYS = ['name'] as const
const LINK_KEYS = ['name', 'enabled', 'budget_bytes_per_s', 'cut', ...LINK_DRIVERS] as const
const CUT_ITEM_KEYS = ['timeout_ms', ...CUT_ACTION_KINDS] as const
const CUT_GPIO_KEYS = ['chip', 'line', 'value'] as const
const CUT_RFKILL_KEYS = ['type', 'index', 'name'] as const
const CUT_NETDEV_KEYS = ['interface'] as const
const UDP_KEYS = ['host', 'port', 'interface', 'group', 'discovery', 'peers', 'mtu'] as const
const ETHERNET_KEYS = ['interface'] as const
const RAW_IP_KEYS = ['interface', 'address', 'peers', 'broadcast'] as const
const LORA_KEYS = ['port', 'backend', 'region', 'frequency_mhz', 'spreading_factor', 'bandwidth_khz', 'coding_rate', 'tx_power_dbm', 'sync_word', 'preamble_symbols', 'time_scale', 'baud_rate', 'emulated'] as const
const MESH_KEYS = ['announce_interval_s', 'hop_limit'] as const
const STORE_KEYS = ['max_messages', 'max_bytes', 'ttl_s'] as const
const LOGGING_KEYS = ['level', 'time_zone'] as const
const PEERS_KEYS = ['mode', 'allow'] as const
const ALLOW_KEYS = ['node_id', 'key', 'name'] as const
const AUDIT_KEYS = ['max_file_mb', 'max_file_age_h', 'key_lifetime_h'] as const

/** The file key of each RadioConfig field (the driver names problems by field). */
const RADIO_KEYS: Readonly<Record<keyof RadioConfig, string>> = {
  frequencyHz: 'frequency_mhz',
  bandwidthHz: 'bandwidth_khz',
  spreadingFactor: 'spreading_factor',
  codingRate: 'coding_rate',
  txPowerDbm: 'tx_power_dbm',
  syncWord: 'sync_word',
  preambleSymbols: 'preamble_symbols',
}

// ---------------------------------------------------------------------------------------------
// Problems and key paths

/** The config file's checker: relative paths in it are relative to `baseDir`, its directory. */
class Checker extends DocChecker {
  constructor(doc: Document, lc: LineCounter, file: string, readonly baseDir: string) {
    super(doc, lc, file)
  }
}

/** Most mappings one mapping may merge in (`<<`), nested merges included. */
const MAX_MERGES = 64

/** One mapping of the file with the keys it may have (DocSection), merge keys (`<<: *anchor`) taken in. */
class Section extends DocSection<Checker> {
  protected entries(map: YAMLMap): MapEntry[] {
    const out: MapEntry[] = []
    this.collect(map, new Set(), out, { visits: 0 })
    return out
  }

  /**
   * The entries of `map` in order, then those its merge keys (`<<: *anchor`, `<<: [*a, *b]`)
   * bring in: a key written in the mapping wins over a merged one, an earlier merge over a later.
   */
  private collect(map: YAMLMap, seen: Set<string>, out: MapEntry[], budget: { visits: number }): void {
    const merges: unknown[] = []
    for (const pair of map.items) {
      const k = this.keyName(pair.key)
      if (k === undefined) continue
      const { name } = k
      if (name === '<<' && k.node.type === Scalar.PLAIN) {
        merges.push(pair.value ?? pair.key)
        continue
      }
      if (seen.has(name)) continue
      seen.add(name)
      out.push({ name, key: pair.key, value: pair.value })
    }
    const mergePath = childPath(this.path, '<<')
    for (const m of merges) {
      const v = this.c.deref(m, mergePath)
      const sources = isSeq(v) ? v.items.map((item) => ({ node: this.c.deref(item, mergePath), at: item })) : [{ node: v, at: m }]
      for (const src of sources) {
        if (src.node === UNRESOLVED) continue
        if (!isMap(src.node)) {
          this.c.add(mergePath, `a merge takes a mapping or a list of them (usually *anchor), got ${describe(src.node)}`, src.at)
          continue
        }
        if (++budget.visits > MAX_MERGES) {
          this.c.add(mergePath, `more than ${MAX_MERGES} merged mappings here`, src.at)
          return
        }
        this.collect(src.node, seen, out, budget)
      }
    }
  }

  /** A filesystem path, absolute: relative ones are relative to the config file's directory. */
  fsPath(key: string, opts: { required?: boolean } = {}): string | undefined {
    const s = this.string(key, {
      ...opts,
      check: (p) => {
        if (p.includes('\0')) return 'must not contain a NUL character'
        if (p.startsWith('~')) return `${JSON.stringify(p)} starts with ~, which is not expanded: write the full path`
        return null
      },
    })
    return s === undefined ? undefined : resolve(this.c.baseDir, s)
  }

  /** A list of strings, each checked; duplicates are problems. */
  stringList(key: string, check: (s: string) => string | null): string[] | undefined {
    const items = this.list(key)
    if (items === undefined) return undefined
    const out: string[] = []
    const seen = new Map<string, string>()
    for (const item of items) {
      const v = isScalar(item.node) ? item.node.value : undefined
      if (typeof v !== 'string') {
        this.c.add(item.path, `must be text, got ${describe(item.node)}`, item.at)
        continue
      }
      const bad = check(v)
      if (bad) {
        this.c.add(item.path, bad, item.at)
        continue
      }
      const first = seen.get(v)
      if (first !== undefined) {
        this.c.add(item.path, `${JSON.stringify(v)} is already listed as ${first}`, item.at)
        continue
      }
      seen.set(v, item.path)
      out.push(v)
    }
    return out
  }
}

// ---------------------------------------------------------------------------------------------
// Value checks: a message, or null when the value is good

/** Linux dev_valid_name(): 1..15 bytes, not . or .., no /, : or whitespace. */
export function ifnameProblem(s: string): string | null {
  if (Buffer.byteLength(s) > IFNAME_MAX_BYTES) return `${quoted(s)} is ${Buffer.byteLength(s)} bytes; an interface name has at most ${IFNAME_MAX_BYTES} (IFNAMSIZ)`
  if (s === '.' || s === '..' || /[/:\s\u0000-\u001f\u007f]/.test(s)) return `${quoted(s)} is not an interface name (no "/", ":", spaces or control characters)`
  return null
}

function ipProblem(s: string): string | null {
  return isIP(s) === 0 ? `${quoted(s)} is not an IP address (e.g. 0.0.0.0, 127.0.0.1 or ::)` : null
}

function ipv4Problem(s: string): string | null {
  return isIP(s) === 4 ? null : `${quoted(s)} is not an IPv4 address`
}

export function isMulticast(s: string): boolean {
  const family = isIP(s)
  if (family === 4) {
    const first = Number(s.split('.')[0])
    return first >= 224 && first <= 239
  }
  return family === 6 && /^ff/i.test(s)
}

function multicastProblem(s: string): string | null {
  if (isIP(s) === 0) return `${quoted(s)} is not an IP address (a multicast group, e.g. 239.77.71.1)`
  return isMulticast(s) ? null : `${s} is not a multicast address (224.0.0.0..239.255.255.255 or ff00::/8)`
}

/** 'host:port' with an IP address, '[v6]:port' for IPv6. */
export function parseHostPort(s: string): { host: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s)
  if (m === null) return null
  const host = m[1]!
  const family = isIP(host)
  if (family === 0 || (family === 6) !== s.startsWith('[')) return null
  return { host, port: Number(m[2]) }
}

function hostPortProblem(s: string): string | null {
  const hp = parseHostPort(s)
  if (hp === null) return `${quoted(s)} is not address:port (e.g. "10.1.0.2:47800" or "[fd00::2]:47800")`
  const [lo, hi] = LIMITS.peerPort
  if (hp.port < lo || hp.port > hi) return `${quoted(s)}: port ${hp.port} is out of range ${lo}..${hi}`
  return null
}

function linkNameProblem(s: string): string | null {
  return LINK_NAME_RE.test(s) ? null : `${quoted(s)} is not a link name: 1 to 15 of a-z 0-9 _ -`
}

function nodeNameProblem(s: string): string | null {
  return NODE_NAME_RE.test(s) ? null : `${quoted(s)} is not a node name: 1 to 32 of A-Z a-z 0-9 _ . -`
}

/** The host name, made a valid node name. */
export function defaultNodeName(host = hostname()): string {
  const name = host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 32)
  return name === '' ? 'kairo-gw' : name
}

// ---------------------------------------------------------------------------------------------
// Sections

/** What links claim (names, UDP ports, serial devices, interfaces), so that no two claim the same. */
interface Claims {
  names: Map<string, string>
  devices: Map<string, { path: string; name: string }>
}

function udpBlock(s: Section): UdpLinkConfig {
  const host = s.string('host', { check: ipProblem }) ?? DEFAULTS.udp.host
  const port = s.int('port', LIMITS.port) ?? DEFAULTS.udp.port
  const iface = s.string('interface', { check: ifnameProblem })
  const group = s.string('group', { check: multicastProblem })
  if (group !== undefined && !s.bad.has('host') && isIP(group) !== isIP(host)) {
    s.problem('group', `${group} is IPv${isIP(group)} but host ${host} is IPv${isIP(host)}${s.present('host') ? '' : ' (the default)'}`)
  }
  const discovery = s.bool('discovery') ?? DEFAULTS.udp.discovery
  const peers = s.stringList('peers', hostPortProblem) ?? []
  const mtu = s.int('mtu', LIMITS.udpMtu)
  return { host, port, discovery, peers, ...(iface !== undefined && { interface: iface }), ...(group !== undefined && { group }), ...(mtu !== undefined && { mtu }) }
}

function ethernetBlock(s: Section): EthernetLinkConfig {
  return { interface: s.string('interface', { required: true, check: ifnameProblem }) ?? '' }
}

/** The rules of RawIpLink's own option check (drivers/ethernet/raw-ip-link.ts): IPv4 only. */
function rawIpBlock(s: Section): RawIpLinkConfig {
  const iface = s.string('interface', { check: ifnameProblem })
  const address = s.string('address', { check: ipv4Problem })
  // A key given no value (`interface:` or `interface: null`) counts as absent.
  if (iface === undefined && address === undefined && !s.bad.has('interface') && !s.bad.has('address')) s.missing('interface', 'is required, or address (the interface to bind to)')
  const peerList = s.stringList('peers', (p) => ipv4Problem(p) ?? (p === address ? `${p} is our own address` : null))
  const broadcast = s.string('broadcast', { check: ipv4Problem })
  if (peerList === undefined && broadcast === undefined && !s.bad.has('peers') && !s.bad.has('broadcast')) s.missing('peers', 'are required, or broadcast: raw IP has no multicast to find neighbours with')
  const peers = peerList ?? []
  return { peers, ...(iface !== undefined && { interface: iface }), ...(address !== undefined && { address }), ...(broadcast !== undefined && { broadcast }) }
}

/** The driver's message for `p` without its `field: ` prefix. */
function driverMessage(p: ConfigProblem): string {
  const prefix = `${p.field}: `
  return p.message.startsWith(prefix) ? p.message.slice(prefix.length) : p.message
}

const mhz = (hz: number) => String(hz / 1e6)

function loraBlock(s: Section): LoraLinkConfig {
  const emulated = s.bool('emulated') ?? false
  if (emulated && s.present('port')) s.problem('port', 'an emulated radio has no serial port: remove port, or emulated: true')
  const port = emulated ? '' : (s.fsPath('port', { required: true }) ?? '')
  const backend = s.choice('backend', LORA_BACKENDS) ?? DEFAULTS.lora.backend
  const regionName = s.choice('region', Object.keys(REGIONS)) ?? DEFAULTS.lora.region
  const region = s.bad.has('region') ? undefined : REGIONS[regionName]
  const freqMhz = s.number('frequency_mhz')
  const bwKhz = s.number('bandwidth_khz')
  const sf = s.int('spreading_factor')
  const cr = codingRate(s)
  const power = s.int('tx_power_dbm')
  const sync = s.int('sync_word')
  const preamble = s.int('preamble_symbols')
  const timeScale = s.number('time_scale', [0, 1], { minExclusive: true }) ?? DEFAULTS.lora.timeScale
  const baudRate = s.int('baud_rate', LIMITS.baudRate) ?? DEFAULTS.lora.baudRate

  const bandwidthHz = bwKhz === undefined ? DEFAULT_RADIO.bandwidthHz : (BANDWIDTHS_HZ.find((hz) => Math.abs(hz - bwKhz * 1000) < 0.5) ?? bwKhz * 1000)
  const radio: RadioConfig = {
    frequencyHz: freqMhz === undefined ? DEFAULT_RADIO.frequencyHz : Math.round(freqMhz * 1e6),
    bandwidthHz,
    spreadingFactor: sf ?? DEFAULT_RADIO.spreadingFactor,
    codingRate: cr ?? DEFAULT_RADIO.codingRate,
    txPowerDbm: power ?? DEFAULT_RADIO.txPowerDbm,
    syncWord: sync ?? DEFAULT_RADIO.syncWord,
    preambleSymbols: preamble ?? DEFAULT_RADIO.preambleSymbols,
  }
  // The driver's own checks, in the file's words and units; one problem per key, the region's first.
  const problems = [...(region === undefined ? [] : regionProblems(radio, region)), ...radioConfigProblems(radio)]
  const reported = new Set<string>()
  for (const p of problems) {
    const key = RADIO_KEYS[p.field]
    if (s.bad.has(key) || reported.has(key)) continue
    reported.add(key)
    let message = driverMessage(p)
    if (p.field === 'frequencyHz') {
      const f = mhz(radio.frequencyHz)
      const range = /(-?\d+)\.\.(-?\d+)/.exec(p.message)
      if (region !== undefined && (radio.frequencyHz < region.minHz || radio.frequencyHz > region.maxHz)) message = `${f} MHz is outside ${region.name} (${mhz(region.minHz)}..${mhz(region.maxHz)} MHz)`
      else if (range !== null) message = `${f} MHz is out of range ${mhz(Number(range[1]))}..${mhz(Number(range[2]))} MHz`
    } else if (p.field === 'bandwidthHz') {
      message = `${radio.bandwidthHz / 1000} kHz is not one of ${BANDWIDTHS_HZ.map((hz) => hz / 1000).join(', ')}`
    }
    s.problem(key, s.present(key) ? message : `the default ${message}; set ${key}`)
  }
  return { port, emulated, backend, region: regionName, radio, timeScale, baudRate }
}

/** coding_rate: 5..8, or "4/5".."4/8" as text. */
function codingRate(s: Section): number | undefined {
  const val = s.get('coding_rate')
  if (val !== undefined && isScalar(val.node) && typeof val.node.value === 'string') {
    const m = /^4\/(\d+)$/.exec(val.node.value.trim())
    if (m === null) return s.problem('coding_rate', `must be 5..8 or "4/5".."4/8", got ${describe(val.node)}`)
    return Number(m[1])
  }
  return s.int('coding_rate')
}

function link(c: Checker, item: Val, claims: Claims): LinkConfig | undefined {
  const { path } = item
  if (!isMap(item.node)) {
    c.add(path, `must be a mapping with name: and one driver block (${LINK_DRIVERS.join(', ')}), got ${describe(item.node)}`, item.at)
    return undefined
  }
  const s = new Section(c, path, item.node, item.at, LINK_KEYS)
  const name = s.string('name', { required: true, check: linkNameProblem })
  if (name !== undefined) {
    const first = claims.names.get(name)
    if (first !== undefined) s.problem('name', `${quoted(name)} is already the name of ${first}`)
    else claims.names.set(name, path)
  }
  const label = name === undefined ? path : `${path} (${name})`
  const enabled = s.bool('enabled') ?? DEFAULTS.link.enabled
  const budgetBytesPerS = s.int('budget_bytes_per_s', LIMITS.budgetBytesPerS) ?? DEFAULTS.link.budgetBytesPerS
  const blocks = LINK_DRIVERS.filter((d) => s.present(d))
  if (blocks.length === 0) c.add(path, `needs one driver block: ${LINK_DRIVERS.join(', ')}`, item.at)
  if (blocks.length > 1) c.add(path, `has ${blocks.length} driver blocks (${blocks.join(', ')}); a link has exactly one: make each its own link`, s.keyNode(blocks[1]!))

  const cutItems: Array<Val> = []
  const explicitCut = s.present('cut') ? cutList(c, s, cutItems) : undefined
  const common = { name: name ?? '', enabled, budgetBytesPerS, cut: { actions: explicitCut ?? [], configured: explicitCut !== undefined } }
  let out: LinkConfig | undefined
  for (const driver of blocks) {
    const b = s.section(driver, driver === 'udp' ? UDP_KEYS : driver === 'ethernet' ? ETHERNET_KEYS : driver === 'raw_ip' ? RAW_IP_KEYS : LORA_KEYS)
    const claim = (key: string, what: string, taken: string, why = '') => {
      const first = claims.devices.get(what)
      if (first !== undefined) b.problem(key, `${taken} is already used by ${first.name}${why}`)
      else claims.devices.set(what, { path: b.pathOf(key), name: label })
    }
    const one = ((): LinkConfig => {
      switch (driver as LinkDriver) {
        case 'udp': {
          const udp = udpBlock(b)
          // The UDP link tells its own multicast from a neighbour's by its port (drivers/udp/link.ts).
          if (!b.bad.has('port') && udp.port !== 0) claim('port', `udp ${udp.port}`, `port ${udp.port}`, ': two UDP links on one host need different ports')
          return { ...common, driver: 'udp', udp }
        }
        case 'ethernet': {
          const ethernet = ethernetBlock(b)
          if (!b.bad.has('interface')) claim('interface', `ethernet ${ethernet.interface}`, `interface ${ethernet.interface}`)
          return { ...common, driver: 'ethernet', ethernet }
        }
        case 'raw_ip': {
          const rawIp = rawIpBlock(b)
          if (rawIp.interface !== undefined) claim('interface', `raw_ip ${rawIp.interface}`, `interface ${rawIp.interface}`)
          return { ...common, driver: 'raw_ip', rawIp }
        }
        case 'lora': {
          const lora = loraBlock(b)
          if (!b.bad.has('port') && !lora.emulated) claim('port', `serial ${lora.port}`, lora.port)
          return { ...common, driver: 'lora', lora }
        }
      }
    })()
    out ??= one
  }
  if (out !== undefined && explicitCut === undefined) out.cut = { actions: defaultCut(out), configured: false }
  if (out !== undefined && out.driver !== 'lora') {
    for (const item of cutItems) {
      if (isMap(item.node) && item.node.items.some((p) => isScalar(p.key) && p.key.value === 'radio_off')) c.add(item.path, `radio_off switches a LoRa radio off through its firmware; ${label} uses the ${out.driver} driver`, item.at)
    }
  }
  return out
}

/**
 * What cuts a link when its config has no `cut:` list: the interface set down for a NIC, the
 * radio switched off through its firmware for LoRa. Nothing physical for UDP: its interface is
 * usually the one the operator's SSH session comes in on.
 */
export function defaultCut(l: LinkConfig): CutActionConfig[] {
  const t = DEFAULTS.cutTimeoutMs
  switch (l.driver) {
    case 'ethernet':
      return [{ netdev: { interface: l.ethernet.interface }, timeoutMs: t.netdev }]
    case 'raw_ip':
      return l.rawIp.interface !== undefined ? [{ netdev: { interface: l.rawIp.interface }, timeoutMs: t.netdev }] : []
    case 'lora':
      return [{ radio_off: {}, timeoutMs: t.radio_off }]
    case 'udp':
      return []
  }
}

/** The link's `cut:` list: each item one action (gpio, rfkill, netdev or radio_off) and an optional timeout_ms. */
function cutList(c: Checker, s: Section, itemsOut: Array<Val>): CutActionConfig[] | undefined {
  const items = s.list('cut')
  if (items === undefined) return s.bad.has('cut') ? undefined : []
  itemsOut.push(...items)
  const out: CutActionConfig[] = []
  for (const item of items) {
    const e = new Section(c, item.path, item.node, item.at, CUT_ITEM_KEYS)
    if (e.broken || isNull(item.node)) {
      c.add(item.path, `must be a mapping with one action (${CUT_ACTION_KINDS.join(', ')}), e.g. {gpio: {chip: gpiochip0, line: lora-power, value: 0}}, got ${describe(item.node)}`, item.at)
      continue
    }
    const kinds = CUT_ACTION_KINDS.filter((k) => e.present(k))
    if (kinds.length !== 1) {
      c.add(item.path, kinds.length === 0 ? `needs one action: ${CUT_ACTION_KINDS.join(', ')}` : `has ${kinds.length} actions (${kinds.join(', ')}); write each as its own list item, in the order they should run`, item.at)
      continue
    }
    const kind = kinds[0]!
    const timeoutMs = e.int('timeout_ms', LIMITS.cutTimeoutMs) ?? DEFAULTS.cutTimeoutMs[kind]
    switch (kind) {
      case 'gpio': {
        const g = e.section('gpio', CUT_GPIO_KEYS)
        const chip = g.string('chip', { required: true, check: (v) => (v.includes('\0') || v.includes('..') ? `${JSON.stringify(v)} is not a chip name (gpiochip0, /dev/gpiochip0 or the chip's label)` : null) })
        const lineVal = g.get('line')
        let line: string | number | undefined
        if (lineVal === undefined) g.missing('line', 'is required: the line name (gpioinfo shows them) or its offset on the chip')
        else if (isScalar(lineVal.node) && typeof lineVal.node.value === 'number') line = g.int('line', LIMITS.gpioOffset)
        else line = g.string('line')
        const value = g.int('value', [0, 1]) ?? 0
        if (chip !== undefined && line !== undefined) out.push({ gpio: { chip, line, value: value as 0 | 1 }, timeoutMs })
        break
      }
      case 'rfkill': {
        const r = e.section('rfkill', CUT_RFKILL_KEYS)
        const type = r.choice('type', RFKILL_TYPE_NAMES)
        const index = r.int('index', LIMITS.rfkillIndex)
        const name = r.string('name', { check: (v) => (/^[\x21-\x7e]{1,64}$/.test(v) ? null : `${JSON.stringify(v)} is not an rfkill switch name (as in /sys/class/rfkill/rfkillN/name, e.g. phy0 or hci0)`) })
        // An empty value (index: with nothing after it) selects nothing either.
        if (type === undefined && index === undefined && name === undefined) {
          if (!r.broken && r.bad.size === 0) c.add(e.pathOf('rfkill'), 'needs type:, index: or name: (rfkill list shows them): which switch to block', e.atOf('rfkill'))
        } else out.push({ rfkill: { ...(type !== undefined && { type }), ...(index !== undefined && { index }), ...(name !== undefined && { name }) }, timeoutMs })
        break
      }
      case 'netdev': {
        const n = e.section('netdev', CUT_NETDEV_KEYS)
        const iface = n.string('interface', { required: true, check: ifnameProblem })
        if (iface !== undefined) out.push({ netdev: { interface: iface }, timeoutMs })
        break
      }
      case 'radio_off': {
        const v = e.get('radio_off')
        if (v !== undefined && !(isMap(v.node) && v.node.items.length === 0)) e.problem('radio_off', `takes no settings: write "radio_off: {}", got ${describe(v.node)}`)
        else out.push({ radio_off: {}, timeoutMs })
        break
      }
    }
  }
  return out
}

function validate(c: Checker, root: unknown): GatewayConfig | undefined {
  const top = Section.top(c, root, TOP_KEYS, 'the file has no settings; it needs at least a links: list (kairo-gw config check --help shows an example)')
  if (top === undefined) return undefined

  const nodeSec = top.section('node', NODE_KEYS)
  const name = nodeSec.string('name', { check: nodeNameProblem }) ?? defaultNodeName()

  const stateDir = top.fsPath('state_dir')
  const runtimeDir = top.fsPath('runtime_dir')
  if (runtimeDir !== undefined) {
    const sock = join(runtimeDir, CONTROL_SOCKET_NAME)
    const bytes = Buffer.byteLength(sock)
    if (bytes > UNIX_SOCKET_PATH_MAX_BYTES) top.problem('runtime_dir', `the control socket ${sock} would be ${bytes} bytes long; a Unix socket path has at most ${UNIX_SOCKET_PATH_MAX_BYTES}`)
  }

  const links: LinkConfig[] = []
  const items = top.list('links', { required: true })
  if (items !== undefined && items.length === 0) top.problem('links', 'needs at least one link')
  const claims: Claims = { names: new Map(), devices: new Map() }
  for (const item of items ?? []) {
    const l = link(c, item, claims)
    if (l !== undefined) links.push(l)
  }

  const meshSec = top.section('mesh', MESH_KEYS)
  const announceS = meshSec.number('announce_interval_s', LIMITS.announceIntervalS) ?? DEFAULTS.mesh.announceIntervalS
  const hopLimit = meshSec.int('hop_limit', LIMITS.hopLimit) ?? DEFAULTS.mesh.hopLimit

  const storeSec = top.section('store', STORE_KEYS)
  const maxMessages = storeSec.int('max_messages', LIMITS.maxMessages) ?? DEFAULTS.store.maxMessages
  const maxBytes = storeSec.int('max_bytes', LIMITS.maxBytes) ?? DEFAULTS.store.maxBytes
  const ttlS = storeSec.number('ttl_s', LIMITS.ttlS) ?? DEFAULTS.store.ttlS

  const logSec = top.section('logging', LOGGING_KEYS)
  const level = logSec.choice('level', LOG_LEVELS) ?? DEFAULTS.logging.level
  const timeZone = logSec.string('time_zone', { check: timeZoneProblem }) ?? DEFAULTS.logging.timeZone

  const peersSec = top.section('peers', PEERS_KEYS)
  const mode = peersSec.choice('mode', PEER_MODES) ?? DEFAULTS.peers.mode
  const allow: PeersConfig['allow'] = []
  for (const item of peersSec.list('allow') ?? []) {
    const e = new Section(c, item.path, item.node, item.at, ALLOW_KEYS)
    if (e.broken) {
      c.add(item.path, `must be a mapping with node_id: or key: (and an optional name:), got ${describe(item.node)}`, item.at)
      continue
    }
    const nodeId = e.string('node_id', { check: (v) => (/^[0-9a-fA-F]{32}$/.test(v) ? null : `must be a node ID of 32 hex digits, got ${JSON.stringify(v)}`) })
    const key = e.string('key', { check: (v) => (/^[0-9a-fA-F]{64}$/.test(v) ? null : `must be an Ed25519 public key of 64 hex digits, got ${JSON.stringify(v)}`) })
    const label = e.string('name', { check: nodeNameProblem })
    if (!e.present('node_id') && !e.present('key')) c.add(item.path, 'needs node_id: or key: (kairo-gw keys show prints both)', item.at)
    allow.push({ ...(nodeId !== undefined && { nodeId: nodeId.toLowerCase() }), ...(key !== undefined && { key: key.toLowerCase() }), ...(label !== undefined && { name: label }) })
  }
  if (mode === 'allowlist' && allow.length === 0 && !peersSec.bad.has('allow')) peersSec.problem(peersSec.present('allow') ? 'allow' : 'mode', 'allowlist mode with no entries would refuse every peer; list them under peers.allow')

  const auditSec = top.section('audit', AUDIT_KEYS)
  const maxFileMb = auditSec.number('max_file_mb', LIMITS.maxFileMb) ?? DEFAULTS.audit.maxFileMb
  const maxFileAgeH = auditSec.number('max_file_age_h', LIMITS.maxFileAgeH) ?? DEFAULTS.audit.maxFileAgeH
  const keyLifetimeH = auditSec.number('key_lifetime_h', LIMITS.keyLifetimeH) ?? DEFAULTS.audit.keyLifetimeH
  const policyFile = top.fsPath('policy_file')

  return {
    node: { name },
    ...(stateDir !== undefined && { stateDir }),
    ...(runtimeDir !== undefined && { runtimeDir }),
    links,
    mesh: { announceIntervalMs: Math.round(announceS * 1000), hopLimit },
    store: { maxMessages, maxBytes, ttlMs: Math.round(ttlS * 1000) },
    logging: { level, timeZone },
    peers: { mode, allow },
    audit: { maxFileBytes: Math.round(maxFileMb * 1024 * 1024), maxFileAgeMs: Math.round(maxFileAgeH * 3_600_000), keyLifetimeMs: Math.round(keyLifetimeH * 3_600_000) },
    ...(policyFile !== undefined && { policyFile }),
  }
}

function timeZoneProblem(tz: string): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return null
  } catch {
    return `${JSON.stringify(tz)} is not a time zone this system knows (an IANA name such as Asia/Tokyo, Europe/Berlin or UTC)`
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * Parses and validates the text of a config file. `file` names it in problems (as given) and
 * anchors relative paths (its directory). Throws ConfigFileError listing every problem.
 */
export function parseConfig(text: string, file: string): GatewayConfig {
  const lc = new LineCounter()
  const doc = parseDocument(text.startsWith('\uFEFF') ? text.slice(1) : text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  const yamlProblems = [...doc.errors, ...doc.warnings].map((e): ConfigFileProblem => ({ path: '', message: yamlMessage(e, text, { document: 'a config file' }), line: lc.linePos(e.pos[0]).line, file }))
  if (yamlProblems.length > 0) throw new ConfigFileError(file, sortProblems(yamlProblems))
  const c = new Checker(doc, lc, file, dirname(resolve(file)))
  const cfg = validate(c, doc.contents)
  if (c.problems.length > 0 || cfg === undefined) throw new ConfigFileError(file, sortProblems(c.problems))
  return cfg
}

/** Reads and validates a config file; an unreadable file is a ConfigFileError naming it too. */
export function loadConfig(file: string): GatewayConfig {
  const bytes = readCapped(file, MAX_CONFIG_BYTES, 'a config file', ConfigFileError)
  return parseConfig(bytes.toString('utf8'), file)
}

/**
 * The configuration `npm start` / a bare `kairo-gw run` uses: no hardware, no root. A UDP link on
 * 127.0.0.1 (no discovery) and an emulated LoRa link (needs socat).
 */
export function embeddedDefaultConfig(opts: { stateDir: string; runtimeDir: string; udpPort: number }): GatewayConfig {
  return {
    node: { name: defaultNodeName() },
    stateDir: resolve(opts.stateDir),
    runtimeDir: resolve(opts.runtimeDir),
    links: [
      {
        name: 'udp0',
        enabled: DEFAULTS.link.enabled,
        budgetBytesPerS: DEFAULTS.link.budgetBytesPerS,
        cut: { actions: [], configured: false },
        driver: 'udp',
        udp: { host: '127.0.0.1', port: opts.udpPort, discovery: false, peers: [] },
      },
      {
        // A LoRa radio with no hardware: the MCU emulator on a PTY pair, alone on its own air.
        name: 'lora0',
        enabled: DEFAULTS.link.enabled,
        budgetBytesPerS: DEFAULTS.link.budgetBytesPerS,
        cut: { actions: [{ radio_off: {}, timeoutMs: DEFAULTS.cutTimeoutMs.radio_off }], configured: false },
        driver: 'lora',
        lora: { port: '', emulated: true, backend: DEFAULTS.lora.backend, region: DEFAULTS.lora.region, radio: { ...DEFAULT_RADIO }, timeScale: DEFAULTS.lora.timeScale, baudRate: DEFAULTS.lora.baudRate },
      },
    ],
    mesh: { announceIntervalMs: DEFAULTS.mesh.announceIntervalS * 1000, hopLimit: DEFAULTS.mesh.hopLimit },
    store: { maxMessages: DEFAULTS.store.maxMessages, maxBytes: DEFAULTS.store.maxBytes, ttlMs: DEFAULTS.store.ttlS * 1000 },
    logging: { level: DEFAULTS.logging.level, timeZone: DEFAULTS.logging.timeZone },
    peers: { mode: DEFAULTS.peers.mode, allow: [] },
    audit: { maxFileBytes: DEFAULTS.audit.maxFileMb * 1024 * 1024, maxFileAgeMs: DEFAULTS.audit.maxFileAgeH * 3_600_000, keyLifetimeMs: DEFAULTS.audit.keyLifetimeH * 3_600_000 },
  }
}
