/**
 * The gateway config file: a full valid file for every driver, normalised; each class of
 * problem with its exact message and line; several problems in one report; reading files.
 */
import t from 'tap'
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { mkdtempSync, rmSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { ConfigRejectedError, KairoError } from '../../appliance/core/errors.js'
import { ConfigFileError, formatProblem, type ConfigFileProblem } from '../../appliance/config/errors.js'
import { EXAMPLE_CONFIG } from '../../appliance/config/example.js'
import { defaultNodeName, embeddedDefaultConfig, loadConfig, parseConfig, suggestKey } from '../../appliance/config/load.js'
import type { GatewayConfig } from '../../appliance/config/schema.js'
import { DEFAULT_RADIO, REGIONS } from '../../drivers/lora/radio.js'

const FILE = 'config.yaml'

/** 1-based line of the `n`th (1-based) line of `text` containing `needle`. */
function lineOf(text: string, needle: string, n = 1): number {
  let seen = 0
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.includes(needle) && ++seen === n) return i + 1
  }
  throw new Error(`${JSON.stringify(needle)} not in the text (${n})`)
}

/** The problems of `text` (none: the test fails). */
function problemsOf(text: string, file = FILE): ConfigFileProblem[] {
  try {
    parseConfig(text, file)
  } catch (err) {
    if (err instanceof ConfigFileError) return [...err.problems]
    throw err
  }
  throw new Error('the config was accepted')
}

function linesOf(text: string, file = FILE): string[] {
  return problemsOf(text, file).map(formatProblem)
}

/** A file with one UDP link plus `extra` lines under the link, or top-level text. */
const udpLink = (linkExtra = '', top = '') => `links:
  - name: udp0
    udp:
      port: 47800
${linkExtra}${top}`

t.test('the annotated example (every driver, every key) is valid and normalised', async (t) => {
  const cfg = parseConfig(EXAMPLE_CONFIG, '/etc/kairo-gw/config.yaml')
  const expected: GatewayConfig = {
    node: { name: 'gw1' },
    stateDir: '/var/lib/kairo-gw',
    runtimeDir: '/run/kairo-gw',
    links: [
      {
        name: 'udp0',
        enabled: true,
        budgetBytesPerS: 0,
        cut: { actions: [], configured: false },
        driver: 'udp',
        udp: { host: '0.0.0.0', port: 47800, interface: 'veth0', group: '239.77.71.1', discovery: true, peers: ['10.1.0.2:47800'], mtu: 1200 },
      },
      { name: 'eth0', enabled: true, budgetBytesPerS: 0, cut: { actions: [{ netdev: { interface: 'veth1' }, timeoutMs: 1000 }], configured: false }, driver: 'ethernet', ethernet: { interface: 'veth1' } },
      { name: 'rip0', enabled: true, budgetBytesPerS: 0, cut: { actions: [{ netdev: { interface: 'veth2' }, timeoutMs: 1000 }], configured: false }, driver: 'raw_ip', rawIp: { interface: 'veth2', peers: ['10.2.0.2'], broadcast: '10.2.0.255' } },
      {
        name: 'lora0',
        enabled: true,
        budgetBytesPerS: 0,
        cut: {
          actions: [
            { radio_off: {}, timeoutMs: 250 },
            { gpio: { chip: 'gpiochip0', line: 'lora-power', value: 0 }, timeoutMs: 100 },
            { gpio: { chip: 'gpiochip0', line: 'lora-reset', value: 0 }, timeoutMs: 100 },
          ],
          configured: true,
        },
        driver: 'lora',
        lora: {
          port: '/dev/ttyACM0',
          emulated: false,
          backend: 'firmware-bridge',
          region: 'EU868',
          radio: { frequencyHz: 869_525_000, spreadingFactor: 9, bandwidthHz: 125_000, codingRate: 5, txPowerDbm: 14, syncWord: 0x12, preambleSymbols: 8 },
          timeScale: 1,
          baudRate: 115_200,
        },
      },
    ],
    mesh: { announceIntervalMs: 10_000, hopLimit: 16 },
    store: { maxMessages: 10_000, maxBytes: 16_777_216, ttlMs: 86_400_000 },
    logging: { level: 'info', timeZone: 'Asia/Tokyo' },
    peers: {
      mode: 'tofu',
      allow: [{ nodeId: '5f0c6a1e9d2b4c7a8e3f1b2c3d4e5f60', name: 'gw2' }, { key: '3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29' }],
    },
    audit: { maxFileBytes: 16 * 1024 * 1024, maxFileAgeMs: 86_400_000, keyLifetimeMs: 86_400_000 },
  }
  t.strictSame(cfg, expected)
  // The same settings written as JSON (JSON is YAML) give the same configuration.
  const json = JSON.stringify(parseYaml(EXAMPLE_CONFIG), null, 2)
  t.strictSame(parseConfig(json, '/etc/kairo-gw/config.json'), expected, 'the JSON form')
})

t.test('a minimal file: defaults filled in, relative paths against the file, units converted', async (t) => {
  const text = `state_dir: state
runtime_dir: ../run
links:
  - name: u
    udp:
  - name: e
    ethernet: { interface: eth0 }
    enabled: false
    budget_bytes_per_s: 2000
  - name: r
    raw_ip: { address: 10.9.0.1, broadcast: 10.9.0.255 }
  - name: l
    lora:
      port: tty/lora
      backend: rnode
      region: US915
      frequency_mhz: 915.2
      bandwidth_khz: 7.8
      spreading_factor: 12
      coding_rate: "4/8"
      tx_power_dbm: 22
      sync_word: 0x34
      preamble_symbols: 16
      time_scale: 0.01
      baud_rate: 9600
mesh: { announce_interval_s: 0.5e1, hop_limit: 64 }
store: { max_messages: 1, max_bytes: 1024, ttl_s: 1.5 }
logging: { level: debug }
`
  const cfg = parseConfig(text, '/srv/gw/conf/gw.yaml')
  t.equal(cfg.node.name, defaultNodeName())
  t.equal(cfg.stateDir, '/srv/gw/conf/state')
  t.equal(cfg.runtimeDir, '/srv/gw/run')
  t.strictSame(cfg.links[0], { name: 'u', enabled: true, budgetBytesPerS: 0, cut: { actions: [], configured: false }, driver: 'udp', udp: { host: '0.0.0.0', port: 47800, discovery: true, peers: [] } })
  t.strictSame(cfg.links[1], { name: 'e', enabled: false, budgetBytesPerS: 2000, cut: { actions: [{ netdev: { interface: 'eth0' }, timeoutMs: 1000 }], configured: false }, driver: 'ethernet', ethernet: { interface: 'eth0' } })
  t.strictSame(cfg.links[2], { name: 'r', enabled: true, budgetBytesPerS: 0, cut: { actions: [], configured: false }, driver: 'raw_ip', rawIp: { peers: [], address: '10.9.0.1', broadcast: '10.9.0.255' } })
  t.strictSame(cfg.links[3]!.lora, {
    port: '/srv/gw/conf/tty/lora',
    emulated: false,
    backend: 'rnode',
    region: 'US915',
    radio: { frequencyHz: 915_200_000, bandwidthHz: 7_800, spreadingFactor: 12, codingRate: 8, txPowerDbm: 22, syncWord: 0x34, preambleSymbols: 16 },
    timeScale: 0.01,
    baudRate: 9600,
  })
  t.strictSame(cfg.mesh, { announceIntervalMs: 5000, hopLimit: 64 })
  t.strictSame(cfg.store, { maxMessages: 1, maxBytes: 1024, ttlMs: 1500 })
  t.strictSame(cfg.logging, { level: 'debug', timeZone: 'Asia/Tokyo' })
  t.strictSame(cfg.peers, { mode: 'tofu', allow: [] })
  const lora = parseConfig('links: [{name: l, lora: {port: /dev/ttyUSB0}}]', FILE).links[0]!
  t.equal(lora.driver, 'lora')
  t.strictSame(lora.lora?.radio, { ...DEFAULT_RADIO }, 'the driver defaults')
  t.equal(lora.lora?.region, 'EU868')
  t.equal(lora.lora?.backend, 'firmware-bridge')
  // The discriminated union narrows on driver.
  if (lora.driver === 'lora') t.equal(lora.lora.baudRate, 115_200)
})

t.test('the message format of the contract, line included', async (t) => {
  const text = `# kairo-gw
node:
  name: gw1
links:
  - name: udp0
    udp:
      host: 0.0.0.0
      port: 47800
      discovery: true
      peers:
        - 10.1.0.2:47800
        - 10.1.0.3:47800
      mtu: 1200
    budget_bytes_per_s: 0
    enabled: true
  - name: eth0
    ethernet:
      interface: veth1
  - name: lora0
    lora:
      # the device
      port: /dev/ttyACM0
      # firmware
      backend: firmware-bridge
      # where
      region: EU868
      # channel
      frequency_mhz: 869.525
      bandwidth_khz: 125
      # too much
      spreading_factor: 13
`
  t.equal(lineOf(text, 'spreading_factor'), 31)
  t.strictSame(linesOf(text), ['links[2].lora.spreading_factor: 13 is out of range 5..12 (config.yaml:31)'])
  const err = t.throws(() => parseConfig(text, FILE)) as ConfigFileError
  t.ok(err instanceof ConfigFileError && err instanceof ConfigRejectedError && err instanceof KairoError, 'a ConfigRejectedError, a KairoError')
  t.equal(err.code, 'ECONFIG')
  t.equal(err.field, 'links[2].lora.spreading_factor')
  t.equal(err.message, 'links[2].lora.spreading_factor: 13 is out of range 5..12 (config.yaml:31)')
  t.strictSame(err.problems, [{ path: 'links[2].lora.spreading_factor', message: '13 is out of range 5..12', line: 31, file: FILE }])
  t.match(err.toJSON(), { code: 'ECONFIG', field: 'links[2].lora.spreading_factor', file: FILE, problems: err.problems })
  // The file as the caller names it.
  t.match(linesOf(text, '/etc/kairo-gw/gw.yaml'), ['links[2].lora.spreading_factor: 13 is out of range 5..12 (/etc/kairo-gw/gw.yaml:31)'])
})

t.test('each class of problem: exact message and line', async (t) => {
  const cases: Array<{ what: string; text: string; expect: Array<[string, string, string, number?]> }> = [
    {
      what: 'unknown key, close to a known one',
      text: udpLink('      prot: 1\n'),
      expect: [['links[0].udp.prot', 'unknown key (did you mean "port"?)', 'prot']],
    },
    {
      what: 'unknown key, a CLI option name',
      text: `links:\n  - name: l\n    lora:\n      port: /dev/ttyACM0\n      sf: 7\n`,
      expect: [['links[0].lora.sf', 'unknown key (did you mean "spreading_factor"?)', 'sf:']],
    },
    {
      what: 'unknown key, nothing close',
      text: udpLink('', 'colour: blue\n'),
      expect: [['colour', 'unknown key (known keys here: node, state_dir, runtime_dir, links, mesh, store, logging, peers, audit, policy_file)', 'colour']],
    },
    {
      what: 'unknown key with an odd name',
      text: udpLink('', '"a b": 1\n'),
      expect: [['["a b"]', 'unknown key (known keys here: node, state_dir, runtime_dir, links, mesh, store, logging, peers, audit, policy_file)', 'a b']],
    },
    {
      what: 'a number where text belongs',
      text: udpLink('', 'node:\n  name: 2024\n'),
      expect: [['node.name', 'must be text, got 2024 (quote it if it is meant as text: "2024")', 'name: 2024']],
    },
    {
      what: 'text where a number belongs',
      text: `links:\n  - name: u\n    udp:\n      port: "47800"\n`,
      expect: [['links[0].udp.port', 'must be a whole number, got "47800"', 'port']],
    },
    {
      what: 'a fraction where a whole number belongs',
      text: udpLink('', 'mesh:\n  hop_limit: 2.5\n'),
      expect: [['mesh.hop_limit', 'must be a whole number, got 2.5', 'hop_limit']],
    },
    {
      what: 'yes is not a boolean in YAML 1.2',
      text: udpLink('      discovery: yes\n'),
      expect: [['links[0].udp.discovery', 'must be true or false, got "yes"', 'discovery']],
    },
    {
      what: 'a list where a mapping belongs',
      text: udpLink('', 'mesh: [1, 2]\n'),
      expect: [['mesh', 'must be a mapping (announce_interval_s, hop_limit), got a list', 'mesh']],
    },
    {
      what: 'out of range',
      text: udpLink('', 'mesh:\n  announce_interval_s: 0\nstore:\n  max_bytes: 10\n'),
      expect: [
        ['mesh.announce_interval_s', '0 is out of range 1..3600', 'announce_interval_s'],
        ['store.max_bytes', '10 is out of range 1024..1099511627776', 'max_bytes'],
      ],
    },
    {
      what: 'a port out of range',
      text: `links:\n  - name: u\n    udp:\n      port: 65536\n`,
      expect: [['links[0].udp.port', '65536 is out of range 0..65535', 'port']],
    },
    {
      what: 'bad enum values list the valid ones',
      text: udpLink('', 'logging:\n  level: trace\n'),
      expect: [['logging.level', '"trace" is not one of debug, info, warn', 'level']],
    },
    {
      what: 'enum with a near miss',
      text: `links:\n  - name: l\n    lora:\n      port: /dev/ttyACM0\n      region: eu868\n      backend: rnod\n`,
      expect: [
        ['links[0].lora.region', `"eu868" is not one of ${Object.keys(REGIONS).join(', ')} (did you mean "EU868"?)`, 'region'],
        ['links[0].lora.backend', '"rnod" is not one of firmware-bridge, rnode (did you mean "rnode"?)', 'backend'],
      ],
    },
    {
      what: 'duplicate link names',
      text: `links:\n  - name: a\n    udp: { port: 1 }\n  - name: a\n    udp: { port: 2 }\n`,
      expect: [['links[1].name', '"a" is already the name of links[0]', 'name: a', 2]],
    },
    {
      what: 'bad link names',
      text: `links:\n  - name: Udp0\n    udp: {}\n  - name: a-very-long-link-name\n    ethernet: { interface: x }\n  - udp: { port: 3 }\n`,
      expect: [
        ['links[0].name', '"Udp0" is not a link name: 1 to 15 of a-z 0-9 _ -', 'Udp0'],
        ['links[1].name', '"a-very-long-link-name" is not a link name: 1 to 15 of a-z 0-9 _ -', 'a-very'],
        ['links[2].name', 'is required', 'udp: { port: 3 }'],
      ],
    },
    {
      what: 'a link with no driver block',
      text: `links:\n  - name: a\n    enabled: true\n`,
      expect: [['links[0]', 'needs one driver block: udp, ethernet, raw_ip, lora', 'name: a']],
    },
    {
      what: 'a link with two driver blocks',
      text: `links:\n  - name: a\n    udp: { port: 1 }\n    lora: { port: /dev/ttyACM0 }\n`,
      expect: [['links[0]', 'has 2 driver blocks (udp, lora); a link has exactly one: make each its own link', 'lora:']],
    },
    {
      what: 'links missing, empty, or not a list; a link that is not a mapping',
      text: `mesh: {}\n`,
      expect: [['links', 'is required', 'mesh']],
    },
    {
      what: 'an empty links list',
      text: `links: []\n`,
      expect: [['links', 'needs at least one link', 'links']],
    },
    {
      what: 'a link that is not a mapping',
      text: `links:\n  - udp0\n`,
      expect: [['links[0]', 'must be a mapping with name: and one driver block (udp, ethernet, raw_ip, lora), got "udp0"', '- udp0']],
    },
    {
      what: 'addresses',
      text: `links:
  - name: u
    udp:
      host: localhost
      group: 10.0.0.1
      peers: ["10.1.0.2", "10.1.0.3:0", "[fd00::1]:47800", "fd00::1:47800", "10.1.0.4:1", "10.1.0.4:1"]
  - name: r
    raw_ip: { address: 10.2.0.1/24, peers: [10.2.0.2, nope], broadcast: "ff02::1" }
`,
      expect: [
        ['links[0].udp.host', '"localhost" is not an IP address (e.g. 0.0.0.0, 127.0.0.1 or ::)', 'host'],
        ['links[0].udp.group', '10.0.0.1 is not a multicast address (224.0.0.0..239.255.255.255 or ff00::/8)', 'group'],
        ['links[0].udp.peers[0]', '"10.1.0.2" is not address:port (e.g. "10.1.0.2:47800" or "[fd00::2]:47800")', 'peers'],
        ['links[0].udp.peers[1]', '"10.1.0.3:0": port 0 is out of range 1..65535', 'peers'],
        ['links[0].udp.peers[3]', '"fd00::1:47800" is not address:port (e.g. "10.1.0.2:47800" or "[fd00::2]:47800")', 'peers'],
        ['links[0].udp.peers[5]', '"10.1.0.4:1" is already listed as links[0].udp.peers[4]', 'peers'],
        ['links[1].raw_ip.address', '"10.2.0.1/24" is not an IPv4 address', 'raw_ip'],
        ['links[1].raw_ip.peers[1]', '"nope" is not an IPv4 address', 'raw_ip'],
        ['links[1].raw_ip.broadcast', '"ff02::1" is not an IPv4 address', 'raw_ip'],
      ],
    },
    {
      what: 'raw IP: the rules of its driver (an interface or address; peers or broadcast; not our own address)',
      text: `links:\n  - name: r\n    raw_ip:\n  - name: s\n    raw_ip: { address: 10.0.0.1, peers: [10.0.0.2, 10.0.0.1] }\n`,
      expect: [
        ['links[0].raw_ip.interface', 'is required, or address (the interface to bind to)', 'raw_ip:'],
        ['links[0].raw_ip.peers', 'are required, or broadcast: raw IP has no multicast to find neighbours with', 'raw_ip:'],
        ['links[1].raw_ip.peers[1]', '10.0.0.1 is our own address', 'peers'],
      ],
    },
    {
      what: 'raw IP: keys given no value count as absent (found by the fuzz test)',
      text: `links:\n  - name: r\n    raw_ip: { interface: null, peers: [10.0.0.2] }\n  - name: s\n    raw_ip: { interface: veth0, peers: }\n`,
      expect: [
        ['links[0].raw_ip.interface', 'is required, or address (the interface to bind to)', 'interface'],
        ['links[1].raw_ip.peers', 'are required, or broadcast: raw IP has no multicast to find neighbours with', 'peers: }'],
      ],
    },
    {
      what: 'a multicast group of the other family',
      text: `links:\n  - name: u\n    udp:\n      group: ff02::1\n`,
      expect: [['links[0].udp.group', 'ff02::1 is IPv6 but host 0.0.0.0 is IPv4 (the default)', 'group']],
    },
    {
      what: 'interface names (IFNAMSIZ)',
      text: `links:\n  - name: e\n    ethernet: { interface: veth0123456789ab }\n  - name: f\n    ethernet: { interface: "eth0:1" }\n  - name: g\n    ethernet: {}\n  - name: h\n    raw_ip: { interface: "", broadcast: 10.0.0.255 }\n`,
      expect: [
        ['links[0].ethernet.interface', '"veth0123456789ab" is 16 bytes; an interface name has at most 15 (IFNAMSIZ)', 'veth0123'],
        ['links[1].ethernet.interface', '"eth0:1" is not an interface name (no "/", ":", spaces or control characters)', 'eth0:1'],
        ['links[2].ethernet.interface', 'is required', 'ethernet: {}'],
        ['links[3].raw_ip.interface', 'must not be empty', 'raw_ip'],
      ],
    },
    {
      what: 'two links on one UDP port, one serial device, one interface',
      text: `links:
  - name: a
    udp: { port: 47800 }
  - name: b
    udp: { host: 10.1.0.1, port: 47800 }
  - name: c
    udp: { host: 127.0.0.1, port: 0 }
  - name: d
    udp: { host: 127.0.0.1, port: 0 }
  - name: l1
    lora: { port: /dev/ttyACM0 }
  - name: l2
    lora: { port: /dev/../dev/ttyACM0 }
  - name: e1
    ethernet: { interface: veth1 }
  - name: e2
    ethernet: { interface: veth1 }
  - name: r1
    raw_ip: { interface: veth1, broadcast: 10.0.0.255 }
`,
      expect: [
        ['links[1].udp.port', 'port 47800 is already used by links[0] (a): two UDP links on one host need different ports', 'host: 10.1.0.1'],
        ['links[5].lora.port', '/dev/ttyACM0 is already used by links[4] (l1)', '/dev/../dev'],
        ['links[7].ethernet.interface', 'interface veth1 is already used by links[6] (e1)', 'veth1', 2],
      ],
    },
    {
      what: 'LoRa: frequency outside the region, power over its limit, bandwidth not in the driver table',
      text: `links:
  - name: l
    lora:
      port: /dev/ttyACM0
      region: EU868
      frequency_mhz: 915
      tx_power_dbm: 20
      bandwidth_khz: 100
      coding_rate: 4
      sync_word: 256
      preamble_symbols: 5
`,
      expect: [
        ['links[0].lora.frequency_mhz', '915 MHz is outside EU868 (863..870 MHz)', 'frequency_mhz'],
        ['links[0].lora.tx_power_dbm', '20 exceeds the EU868 limit of 14 dBm', 'tx_power_dbm'],
        ['links[0].lora.bandwidth_khz', '100 kHz is not one of 7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500', 'bandwidth_khz'],
        ['links[0].lora.coding_rate', '4 is out of range 5..8 (4/5..4/8)', 'coding_rate'],
        ['links[0].lora.sync_word', '256 is out of range 0..255', 'sync_word'],
        ['links[0].lora.preamble_symbols', '5 is out of range 6..65535 symbols', 'preamble_symbols'],
      ],
    },
    {
      what: 'LoRa: the default frequency outside the chosen region; the driver power range',
      text: `links:\n  - name: l\n    lora:\n      port: /dev/ttyACM0\n      region: US915\n      tx_power_dbm: 25\n      time_scale: 0\n      coding_rate: 4/9\n`,
      expect: [
        ['links[0].lora.frequency_mhz', 'the default 869.525 MHz is outside US915 (902..928 MHz); set frequency_mhz', 'lora:'],
        ['links[0].lora.tx_power_dbm', '25 is out of range -9..22 dBm', 'tx_power_dbm'],
        ['links[0].lora.time_scale', '0 is out of range: more than 0, at most 1', 'time_scale'],
        ['links[0].lora.coding_rate', '9 is out of range 5..8 (4/5..4/8)', 'coding_rate'],
      ],
    },
    {
      what: 'LoRa: the LAB region takes the driver range; a missing port',
      text: `links:\n  - name: l\n    lora:\n      region: LAB\n      frequency_mhz: 2400\n`,
      expect: [
        ['links[0].lora.port', 'is required', 'lora:'],
        ['links[0].lora.frequency_mhz', '2400 MHz is outside LAB (150..960 MHz)', 'frequency_mhz'],
      ],
    },
    {
      what: 'paths: ~ is not expanded; the control socket must fit sun_path',
      text: udpLink('', `state_dir: ~/kairo\nruntime_dir: /${'r'.repeat(100)}\n`),
      expect: [
        ['state_dir', '"~/kairo" starts with ~, which is not expanded: write the full path', 'state_dir'],
        ['runtime_dir', `the control socket /${'r'.repeat(100)}/control.sock would be 114 bytes long; a Unix socket path has at most 107`, 'runtime_dir'],
      ],
    },
    {
      what: 'node name',
      text: udpLink('', 'node: { name: "gw 1" }\n'),
      expect: [['node.name', '"gw 1" is not a node name: 1 to 32 of A-Z a-z 0-9 _ . -', 'node']],
    },
    {
      what: 'a key that is not a name',
      text: udpLink('', '? [a, b]\n: 1\n'),
      expect: [['', 'keys must be plain names, got a list as a key', '? [a, b]']],
    },
  ]
  for (const c of cases) {
    const got = problemsOf(c.text)
    const want = c.expect.map(([path, message, needle, n]) => ({ path, message, line: lineOf(c.text, needle, n), file: FILE }))
    t.strictSame(got, want, c.what)
  }
})

t.test('whole-file problems: YAML syntax, empty, not a mapping, several documents, tags', async (t) => {
  t.strictSame(linesOf('links:\n  - name: a\n    udp: {port: 1\nmesh: {}\n'), ['config.yaml:4: YAML: Flow map in block collection must be sufficiently indented and end with a }'])
  t.strictSame(linesOf('a: [1\nb: : c\n'), [
    'config.yaml:2: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    'config.yaml:2: YAML: Nested mappings are not allowed in compact mappings',
  ])
  t.strictSame(linesOf('links:\n\t- x\n'), ['config.yaml:2: YAML: Tabs are not allowed as indentation'])
  t.strictSame(linesOf('a: 1\nlinks: []\na: 2\n'), ['config.yaml:3: YAML: the key "a" appears twice in the same mapping'])
  t.strictSame(linesOf('{"links": [], "links": 1}'), ['config.yaml:1: YAML: the key "links" appears twice in the same mapping'])
  t.strictSame(linesOf('links: []\n---\nlinks: []\n'), ['config.yaml:2: YAML: the file holds more than one document (a --- line); a config file is one document'])
  t.strictSame(linesOf('links: !udp []\n'), ['config.yaml:1: YAML: Unresolved tag: !udp'])
  t.strictSame(linesOf('links: *nowhere\n'), ['links: *nowhere names no anchor: &nowhere must come before it (config.yaml:1)'])
  t.strictSame(linesOf('links:\n  - *a\n  - &a {name: x, udp: {}}\n'), ['links[0]: *a names no anchor: &a must come before it (config.yaml:2)'])
  t.strictSame(linesOf(''), ['config.yaml:1: the file has no settings; it needs at least a links: list (kairo-gw config check --help shows an example)'])
  t.strictSame(linesOf('# only a comment\n'), ['config.yaml:1: the file has no settings; it needs at least a links: list (kairo-gw config check --help shows an example)'])
  t.strictSame(linesOf('\n\n- a\n'), ['config.yaml:3: the top level must be a mapping of keys (node, state_dir, runtime_dir, links, mesh, store, logging, peers, audit, policy_file), got a list'])
  t.strictSame(linesOf('42'), ['config.yaml:1: the top level must be a mapping of keys (node, state_dir, runtime_dir, links, mesh, store, logging, peers, audit, policy_file), got 42'])
  t.strictSame(linesOf('\uFEFFlinks: [{name: a, udp: {port: 70000}}]'), ['links[0].udp.port: 70000 is out of range 0..65535 (config.yaml:1)'], 'a BOM is skipped')
})

t.test('every problem at once, in line order; the error lists them one per line', async (t) => {
  const text = `node:
  name: "gw 1"
lnks: []
links:
  - name: udp0
    udp:
      port: 70000
      interface: averyveryverylongname
      discovery: yes
  - name: udp0
    ethernet: { interface: veth1 }
    lora: { port: /dev/ttyACM0 }
  - name: lora1
    lora:
      region: US915
      spreading_factr: 7
      bandwidth_khz: 300
mesh: { hop_limit: 0, announce_interval_s: "10" }
logging: { level: trace }
`
  const lines = linesOf(text)
  t.strictSame(lines, [
    'node.name: "gw 1" is not a node name: 1 to 32 of A-Z a-z 0-9 _ . - (config.yaml:2)',
    'lnks: unknown key (did you mean "links"?) (config.yaml:3)',
    'links[0].udp.port: 70000 is out of range 0..65535 (config.yaml:7)',
    'links[0].udp.interface: "averyveryverylongname" is 21 bytes; an interface name has at most 15 (IFNAMSIZ) (config.yaml:8)',
    'links[0].udp.discovery: must be true or false, got "yes" (config.yaml:9)',
    'links[1].name: "udp0" is already the name of links[0] (config.yaml:10)',
    'links[1]: has 2 driver blocks (ethernet, lora); a link has exactly one: make each its own link (config.yaml:12)',
    'links[2].lora.port: is required (config.yaml:14)',
    'links[2].lora.frequency_mhz: the default 869.525 MHz is outside US915 (902..928 MHz); set frequency_mhz (config.yaml:14)',
    'links[2].lora.spreading_factr: unknown key (did you mean "spreading_factor"?) (config.yaml:16)',
    'links[2].lora.bandwidth_khz: 300 kHz is not one of 7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500 (config.yaml:17)',
    'mesh.announce_interval_s: must be a number, got "10" (config.yaml:18)',
    'mesh.hop_limit: 0 is out of range 1..64 (config.yaml:18)',
    'logging.level: "trace" is not one of debug, info, warn (config.yaml:19)',
  ])
  const err = t.throws(() => parseConfig(text, FILE)) as ConfigFileError
  t.equal(err.message, lines.join('\n'))
  t.equal(err.field, 'node.name', 'field: the first problem')
})

t.test('anchors, aliases and merge keys: checked where they are used', async (t) => {
  const text = `x-radio: &radio { port: /dev/ttyACM0, spreading_factor: 14 }
links:
  - name: a
    lora: *radio
`
  // x- keys at the top level are a place for anchors; the bad value is reported where it was written.
  t.strictSame(linesOf(text), ['links[0].lora.spreading_factor: 14 is out of range 5..12 (config.yaml:1)'])
  const ok = parseConfig('links:\n  - name: a\n    udp: &u { port: 1 }\n  - name: b\n    udp: { port: 2, peers: &p ["10.0.0.1:1"] }\n  - name: c\n    raw_ip: { interface: eth1, peers: [10.0.0.2] }\n', FILE)
  t.equal(ok.links.length, 3)

  const merged = `x-lab: &lab
  region: LAB
  frequency_mhz: 433.5
  spreading_factor: 7
x-emu: &emu
  time_scale: 0.01
  spreading_factor: 8
links:
  - name: l1
    lora:
      <<: *lab
      port: /tmp/a
  - name: l2
    lora:
      <<: [*emu, *lab]
      port: /tmp/b
      frequency_mhz: 434
`
  const cfg = parseConfig(merged, FILE)
  t.match(cfg.links[0]!.lora, { port: '/tmp/a', region: 'LAB', timeScale: 1, radio: { frequencyHz: 433_500_000, spreadingFactor: 7 } })
  t.match(cfg.links[1]!.lora, { port: '/tmp/b', region: 'LAB', timeScale: 0.01, radio: { frequencyHz: 434_000_000, spreadingFactor: 8 } }, 'written keys win; the first merge wins')

  const badMerge = `x-base: &base { prot: 1 }
links:
  - name: u
    udp:
      <<: *base
  - name: v
    udp:
      <<: 5
      port: 2
`
  t.strictSame(linesOf(badMerge), [
    'links[0].udp.prot: unknown key (did you mean "port"?) (config.yaml:1)',
    'links[1].udp["<<"]: a merge takes a mapping or a list of them (usually *anchor), got 5 (config.yaml:8)',
  ])
  t.strictSame(linesOf('x-a: &a { <<: *a }\nlinks:\n  - name: u\n    udp: *a\n').length >= 0, true, 'a merge of itself ends')
  t.strictSame(linesOf('"<<": 1\nlinks: [{name: u, udp: {}}]\n'), ['["<<"]: unknown key (known keys here: node, state_dir, runtime_dir, links, mesh, store, logging, peers, audit, policy_file) (config.yaml:1)'], 'a quoted << is a plain key')
})

t.test('loadConfig: reads the file, names it in every error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kairo-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'gw.yaml')
  writeFileSync(file, 'state_dir: var\nlinks:\n  - name: u\n    udp: { port: 47801 }\n')
  const cfg = loadConfig(file)
  t.equal(cfg.stateDir, join(dir, 'var'))
  t.equal(cfg.links[0]!.udp!.port, 47801)
  // A relative file name: paths are relative to its directory, the name is shown as given.
  const rel = join('.', 'gw.yaml')
  const cwd = process.cwd()
  process.chdir(dir)
  try {
    t.equal(loadConfig(rel).stateDir, join(dir, 'var'))
  } finally {
    process.chdir(cwd)
  }

  const missing = join(dir, 'nope.yaml')
  const e1 = t.throws(() => loadConfig(missing)) as ConfigFileError
  t.ok(e1 instanceof ConfigFileError)
  t.equal(e1.message, `${missing}: cannot read: no such file (ENOENT)`)
  t.strictSame(e1.problems, [{ path: '', message: 'cannot read: no such file (ENOENT)', line: null, file: missing }])
  t.equal((e1.cause as NodeJS.ErrnoException).code, 'ENOENT')

  const e2 = t.throws(() => loadConfig(dir)) as ConfigFileError
  t.equal(e2.message, `${dir}: cannot read: it is a directory (EISDIR)`)

  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.yaml')
    writeFileSync(locked, 'links: []\n')
    chmodSync(locked, 0o000)
    const e3 = t.throws(() => loadConfig(locked)) as ConfigFileError
    t.equal(e3.message, `${locked}: cannot read: permission denied (EACCES)`)
  }

  const big = join(dir, 'big.yaml')
  writeFileSync(big, '#'.repeat(1024 * 1024 + 10))
  t.match((t.throws(() => loadConfig(big)) as ConfigFileError).message, /big\.yaml: is larger than 1048576 bytes/)
  const e4 = t.throws(() => loadConfig('/dev/zero')) as ConfigFileError
  t.match(e4.message, /^\/dev\/zero: is larger than/, 'a device that never ends is not read forever')

  mkdirSync(join(dir, 'sub'))
  const bad = join(dir, 'sub', 'bad.yaml')
  writeFileSync(bad, 'links:\n  - name: u\n    udp: { port: -1 }\n')
  t.equal((t.throws(() => loadConfig(bad)) as ConfigFileError).message, `links[0].udp.port: -1 is out of range 0..65535 (${bad}:3)`)
})

t.test('embeddedDefaultConfig: UDP on 127.0.0.1 (no discovery) and an emulated LoRa radio', async (t) => {
  const cfg = embeddedDefaultConfig({ stateDir: 'var/state', runtimeDir: '/tmp/kairo-run', udpPort: 47800 })
  t.strictSame(cfg, {
    node: { name: defaultNodeName() },
    stateDir: resolve('var/state'),
    runtimeDir: '/tmp/kairo-run',
    links: [
      { name: 'udp0', enabled: true, budgetBytesPerS: 0, cut: { actions: [], configured: false }, driver: 'udp', udp: { host: '127.0.0.1', port: 47800, discovery: false, peers: [] } },
      { name: 'lora0', enabled: true, budgetBytesPerS: 0, cut: { actions: [{ radio_off: {}, timeoutMs: 250 }], configured: false }, driver: 'lora', lora: { port: '', emulated: true, backend: 'firmware-bridge', region: 'EU868', radio: { ...DEFAULT_RADIO }, timeScale: 1, baudRate: 115_200 } },
    ],
    mesh: { announceIntervalMs: 10_000, hopLimit: 16 },
    store: { maxMessages: 10_000, maxBytes: 16_777_216, ttlMs: 86_400_000 },
    logging: { level: 'info', timeZone: 'Asia/Tokyo' },
    peers: { mode: 'tofu', allow: [] },
    audit: { maxFileBytes: 16 * 1024 * 1024, maxFileAgeMs: 86_400_000, keyLifetimeMs: 86_400_000 },
  })
  // The same thing written as a file gives the same configuration.
  const text = `node: { name: ${defaultNodeName()} }\nstate_dir: ${resolve('var/state')}\nruntime_dir: /tmp/kairo-run\nlinks:\n  - name: udp0\n    udp: { host: 127.0.0.1, port: 47800, discovery: false }\n  - name: lora0\n    lora: { emulated: true }\n`
  t.strictSame(parseConfig(text, FILE), cfg)
})

t.test('helpers: host names as node names, key suggestions', async (t) => {
  t.equal(defaultNodeName('gw-1.lab'), 'gw-1.lab')
  t.equal(defaultNodeName('weird host!'), 'weird-host-')
  t.equal(defaultNodeName(''), 'kairo-gw')
  t.equal(defaultNodeName('x'.repeat(40)), 'x'.repeat(32))
  t.equal(suggestKey('frequency', ['port', 'frequency_mhz']), 'frequency_mhz')
  t.equal(suggestKey('spreadingFactor', ['spreading_factor']), 'spreading_factor', 'camelCase')
  t.equal(suggestKey('hop-limit', ['hop_limit']), 'hop_limit')
  t.equal(suggestKey('bw', ['bandwidth_khz']), 'bandwidth_khz')
  t.equal(suggestKey('zzz', ['port', 'host']), undefined)
})

t.test('peers, audit, time zone and emulated radios: values and problems', async (t) => {
  const ok = parseConfig(
    `links: [{name: l, lora: {emulated: true}}]
logging: { time_zone: Europe/Berlin }
peers:
  mode: allowlist
  allow:
    - { node_id: 5F0C6A1E9D2B4C7A8E3F1B2C3D4E5F60, name: gw2 }
audit: { max_file_mb: 0.5e1, max_file_age_h: 6, key_lifetime_h: 1 }
policy_file: site.klp-policy
`,
    '/etc/kairo-gw/config.yaml',
  )
  t.equal(ok.logging.timeZone, 'Europe/Berlin')
  t.strictSame(ok.peers, { mode: 'allowlist', allow: [{ nodeId: '5f0c6a1e9d2b4c7a8e3f1b2c3d4e5f60', name: 'gw2' }] })
  t.strictSame(ok.audit, { maxFileBytes: 5 * 1024 * 1024, maxFileAgeMs: 6 * 3_600_000, keyLifetimeMs: 3_600_000 })
  t.equal(ok.policyFile, '/etc/kairo-gw/site.klp-policy')
  t.equal(ok.links[0]!.driver === 'lora' && ok.links[0]!.lora.emulated, true)

  const text = `links:
  - name: l
    lora: { emulated: true, port: /dev/ttyACM0 }
logging: { time_zone: Mars/Olympus }
peers:
  mode: allowlist
  allow:
    - { name: nobody }
    - { node_id: 12, key: zz }
    - just-a-string
audit: { key_lifetime_h: 0 }
`
  t.strictSame(
    problemsOf(text).map((p) => `${p.path}: ${p.message} (${p.line})`),
    [
      'links[0].lora.port: an emulated radio has no serial port: remove port, or emulated: true (3)',
      'logging.time_zone: "Mars/Olympus" is not a time zone this system knows (an IANA name such as Asia/Tokyo, Europe/Berlin or UTC) (4)',
      'peers.allow[0]: needs node_id: or key: (kairo-gw keys show prints both) (8)',
      'peers.allow[1].node_id: must be text, got 12 (quote it if it is meant as text: "12") (9)',
      'peers.allow[1].key: must be an Ed25519 public key of 64 hex digits, got "zz" (9)',
      'peers.allow[2]: must be a mapping with node_id: or key: (and an optional name:), got "just-a-string" (10)',
      'audit.key_lifetime_h: 0 is out of range 1..744 (11)',
    ],
  )
  t.strictSame(
    problemsOf('links: [{name: u, udp: {}}]\npeers: { mode: allowlist }\n').map((p) => `${p.path}: ${p.message}`),
    ['peers.mode: allowlist mode with no entries would refuse every peer; list them under peers.allow'],
  )
})
