/**
 * The `cut:` list of a link (what a force disconnect does to the hardware): each action parsed
 * into its normalised form, the driver's default when the list is absent, and every problem named
 * by key path and line.
 */
import t from 'tap'
import fc from 'fast-check'
import { ConfigFileError } from '../../appliance/config/errors.js'
import { parseConfig } from '../../appliance/config/load.js'
import { CUT_ACTION_KINDS } from '../../appliance/config/schema.js'

const FILE = '/etc/kairo-gw/config.yaml'

function problems(text: string): string[] {
  try {
    parseConfig(text, FILE)
  } catch (err) {
    if (err instanceof ConfigFileError) return err.problems.map((p) => `${p.path}: ${p.message} (line ${p.line})`)
    throw err
  }
  return []
}

const lora = (cut: string) => `links:\n  - name: lora0\n    lora: { port: /dev/ttyACM0 }\n${cut}`

t.test('each action kind, in order, with timeouts', async (t) => {
  const cfg = parseConfig(
    lora(`    cut:
      - radio_off: {}
      - gpio: { chip: gpio-sim.0-node0, line: lora-power }
      - gpio: { chip: /dev/gpiochip1, line: 3, value: 1, }
        timeout_ms: 20
      - rfkill: { type: wlan }
      - rfkill: { index: 4, name: hci0 }
      - netdev: { interface: wlan0 }
`),
    FILE,
  )
  t.strictSame(cfg.links[0]!.cut, {
    configured: true,
    actions: [
      { radio_off: {}, timeoutMs: 250 },
      { gpio: { chip: 'gpio-sim.0-node0', line: 'lora-power', value: 0 }, timeoutMs: 100 },
      { gpio: { chip: '/dev/gpiochip1', line: 3, value: 1 }, timeoutMs: 20 },
      { rfkill: { type: 'wlan' }, timeoutMs: 500 },
      { rfkill: { index: 4, name: 'hci0' }, timeoutMs: 500 },
      { netdev: { interface: 'wlan0' }, timeoutMs: 1000 },
    ],
  })
})

t.test('defaults per driver; an empty list means no physical action', async (t) => {
  const cfg = parseConfig(
    `links:
  - name: u
    udp: {}
  - name: e
    ethernet: { interface: eth1 }
  - name: r
    raw_ip: { address: 10.0.0.1, peers: [10.0.0.2] }
  - name: r2
    raw_ip: { interface: eth2, peers: [10.0.0.2] }
  - name: l
    lora: { port: /dev/ttyUSB0, backend: rnode }
  - name: e2
    ethernet: { interface: eth3 }
    cut: []
`,
    FILE,
  )
  const cuts = Object.fromEntries(cfg.links.map((l) => [l.name, l.cut]))
  t.strictSame(cuts.u, { actions: [], configured: false })
  t.strictSame(cuts.e, { actions: [{ netdev: { interface: 'eth1' }, timeoutMs: 1000 }], configured: false })
  t.strictSame(cuts.r, { actions: [], configured: false }, 'raw IP bound by address only: no interface to set down')
  t.strictSame(cuts.r2, { actions: [{ netdev: { interface: 'eth2' }, timeoutMs: 1000 }], configured: false })
  t.strictSame(cuts.l, { actions: [{ radio_off: {}, timeoutMs: 250 }], configured: false }, 'RNode radios switch off too (CMD_RADIO_STATE)')
  t.strictSame(cuts.e2, { actions: [], configured: true })
})

t.test('problems name the item, the key and the line', async (t) => {
  t.strictSame(
    problems(
      lora(`    cut:
      - gpio: { line: lora-power }
      - gpio: { chip: gpiochip0, line: 5000 }
      - gpio: { chip: gpiochip0, line: x, value: 2 }
      - rfkill: {}
      - rfkill: { index: }
      - rfkill: { type: wifi }
      - netdev: { interface: this-name-is-too-long }
      - { gpio: { chip: c, line: l }, netdev: { interface: eth0 } }
      - reboot: {}
      - radio_off: yes
      - gpio: { chip: c, line: l }
        timeout_ms: 0
      - 7
`),
    ),
    [
      'links[0].cut[0].gpio.chip: is required (line 5)',
      'links[0].cut[1].gpio.line: 5000 is out of range 0..1023 (line 6)',
      'links[0].cut[2].gpio.value: 2 is out of range 0..1 (line 7)',
      'links[0].cut[3].rfkill: needs type:, index: or name: (rfkill list shows them): which switch to block (line 8)',
      'links[0].cut[4].rfkill: needs type:, index: or name: (rfkill list shows them): which switch to block (line 9)',
      'links[0].cut[5].rfkill.type: "wifi" is not one of all, wlan, bluetooth, uwb, wimax, wwan, gps, fm, nfc (line 10)',
      'links[0].cut[6].netdev.interface: "this-name-is-too-long" is 21 bytes; an interface name has at most 15 (IFNAMSIZ) (line 11)',
      'links[0].cut[7]: has 2 actions (gpio, netdev); write each as its own list item, in the order they should run (line 12)',
      'links[0].cut[8].reboot: unknown key (known keys here: timeout_ms, gpio, rfkill, netdev, radio_off) (line 13)',
      'links[0].cut[8]: needs one action: gpio, rfkill, netdev, radio_off (line 13)',
      'links[0].cut[9].radio_off: takes no settings: write "radio_off: {}", got "yes" (line 14)',
      'links[0].cut[10].timeout_ms: 0 is out of range 1..60000 (line 16)',
      'links[0].cut[11]: must be a mapping with one action (gpio, rfkill, netdev, radio_off), e.g. {gpio: {chip: gpiochip0, line: lora-power, value: 0}}, got 7 (line 17)',
    ],
  )
  t.strictSame(problems('links:\n  - name: e\n    ethernet: { interface: eth0 }\n    cut: [ { radio_off: {} } ]\n'), [
    'links[0].cut[0]: radio_off switches a LoRa radio off through its firmware; links[0] (e) uses the ethernet driver (line 4)',
  ])
  t.strictSame(problems('links:\n  - name: e\n    ethernet: { interface: eth0 }\n    cut: { netdev: eth0 }\n'), ['links[0].cut: must be a list, got a mapping (line 4)'])
})

t.test('any cut list: ConfigFileError or a normalised list whose items each have one known action', async (t) => {
  const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 70_000 }), fc.boolean(), fc.constant(null))
  const item = fc.dictionary(fc.constantFrom(...CUT_ACTION_KINDS, 'timeout_ms', 'chip', 'bogus'), fc.oneof(scalar, fc.dictionary(fc.constantFrom('chip', 'line', 'value', 'type', 'index', 'name', 'interface'), scalar, { maxKeys: 4 })), { maxKeys: 3 })
  fc.assert(
    fc.property(fc.array(fc.oneof(item, scalar), { maxLength: 5 }), (cut) => {
      const text = JSON.stringify({ links: [{ name: 'lora0', lora: { port: '/dev/ttyACM0' }, cut }] })
      try {
        const cfg = parseConfig(text, FILE)
        const actions = cfg.links[0]!.cut.actions
        if (actions.length !== cut.length) return false
        return actions.every((a) => CUT_ACTION_KINDS.filter((k) => k in a).length === 1 && a.timeoutMs >= 1 && a.timeoutMs <= 60_000)
      } catch (err) {
        return err instanceof ConfigFileError && err.problems.every((p) => p.path.startsWith('links[0].cut') && p.line !== null)
      }
    }),
    { numRuns: 800 },
  )
})
