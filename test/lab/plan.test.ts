/**
 * What a lab run builds, before it builds it: names within the kernel's limits, addresses,
 * PTYs, emulator configs, and gateway configs that the gateway's own config loader accepts.
 */
import t from 'tap'
import fc from 'fast-check'
import { parse } from 'yaml'
import { parseConfig } from '../../appliance/config/load.js'
import { parseEmulatorConfig } from '../../firmware-bridge/emulator/main.js'
import { buildPlan, defaultPrefix, ifName, LAB_NAME, MAX_IFNAME, netemArgs, networkCommands, PREFIX } from '../../appliance/lab/plan.js'
import { loadTopology, parseTopology, resolveTopology } from '../../appliance/lab/topology.js'

const RUN = '/tmp/kairo-lab-kl42-abcdef'

t.test('line5-mixed: namespaces, veths, PTYs, emulators, gateway configs', async (t) => {
  const topo = await loadTopology(resolveTopology('line5-mixed')!)
  const plan = buildPlan(topo, { prefix: 'kl42', runDir: RUN })
  t.same(
    plan.namespaces.map((n) => n.ns),
    ['kl42-g1', 'kl42-g2', 'kl42-g3', 'kl42-g4', 'kl42-g5'],
  )
  t.same(
    plan.veths.map((v) => [v.segment, v.kind, v.a.ifname, v.a.address, v.a.ns, v.b.ifname, v.b.address, v.b.ns]),
    [
      ['eth12', 'ethernet', 'kl42-s0a', '10.77.0.1', 'kl42-g1', 'kl42-s0b', '10.77.0.2', 'kl42-g2'],
      ['udp34', 'udp', 'kl42-s2a', '10.77.1.1', 'kl42-g3', 'kl42-s2b', '10.77.1.2', 'kl42-g4'],
    ],
  )
  t.same(
    plan.ptys.map((p) => [p.segment, p.node, p.host]),
    [
      ['lora23', 'g2', `${RUN}/pty/lora23-g2-host`],
      ['lora23', 'g3', `${RUN}/pty/lora23-g3-host`],
      ['lora45', 'g4', `${RUN}/pty/lora45-g4-host`],
      ['lora45', 'g5', `${RUN}/pty/lora45-g5-host`],
    ],
  )
  t.equal(plan.emulators.length, 2, 'one emulated medium per lora segment: g2/g3 never hear g4/g5')
  for (const e of plan.emulators) {
    const cfg = parseEmulatorConfig(e.config)
    t.equal(cfg.region, 'LAB')
    t.equal(cfg.radios.length, 2)
    t.match(cfg.radios[0]!.config, { spreadingFactor: 7, bandwidthHz: 500_000, frequencyHz: 869_525_000 })
    t.equal(cfg.links, undefined, 'no loss configured: every radio of the segment hears the other')
  }
  t.equal(plan.emulatorSocket, `${RUN}/emulator.sock`)

  const g = Object.fromEntries(plan.gateways.map((x) => [x.node, x]))
  t.equal(g.g1!.controlSocket, `${RUN}/g1/run/control.sock`)
  t.same(g.g1!.config.links, [{ name: 'eth12', ethernet: { interface: 'kl42-s0a' } }])
  t.same(
    g.g2!.config.links.map((l) => l.name),
    ['eth12', 'lora23'],
  )
  t.same(g.g2!.config.links[1], {
    name: 'lora23',
    lora: { port: `${RUN}/pty/lora23-g2-host`, backend: 'firmware-bridge', region: 'LAB', frequency_mhz: 869.525, spreading_factor: 7, bandwidth_khz: 500, coding_rate: 5, tx_power_dbm: 14, time_scale: 1 },
  })
  t.same(g.g3!.config.links[1], { name: 'udp34', udp: { host: '10.77.1.1', port: 47800, interface: 'kl42-s2a', group: '239.77.71.1', discovery: true } })
  t.same(g.g4!.config.links[0], { name: 'udp34', udp: { host: '10.77.1.2', port: 47800, interface: 'kl42-s2b', group: '239.77.71.1', discovery: true } })
  for (const x of plan.gateways) {
    const parsed = parse(x.yaml) as Record<string, unknown>
    t.same(parsed, x.config, `${x.node}: the YAML says what the config object says`)
    t.match(x.yaml, /^# written by kairo-gw lab run \(topology line5-mixed, run kl42\)\n/)
    t.same(x.config.mesh, { announce_interval_s: 5, hop_limit: 16 })
    t.equal(x.config.state_dir, `${RUN}/${x.node}/state`)
  }
})

t.test('gateway configs pass the gateway config loader', async (t) => {
  for (const name of ['line4-wired', 'line5-mixed', 'pair-udp']) {
    const topo = await loadTopology(resolveTopology(name)!)
    const plan = buildPlan(topo, { prefix: 'kl42', runDir: RUN })
    for (const g of plan.gateways) {
      const cfg = parseConfig(g.yaml, g.configPath)
      t.equal(cfg.links.length, g.config.links.length, `${name}/${g.node}: valid, with its ${g.config.links.length} links`)
    }
  }
})

t.test('udp without discovery lists the other end; raw_ip its peer and broadcast; netem', async (t) => {
  const topo = parseTopology(
    `nodes: [a, b, c]
segments:
  - {name: u, kind: udp, nodes: [a, b], options: {discovery: false, port: 5000, netem: {delay_ms: 20, loss_pct: 5}}}
  - {name: r, kind: raw_ip, nodes: [b, c]}
  - {name: air, kind: lora, nodes: [a, b, c], options: {loss: 0.25, time_scale: 0.5}}
`,
    't.yaml',
  )
  const plan = buildPlan(topo, { prefix: 'kl7', runDir: RUN })
  const links = Object.fromEntries(plan.gateways.map((g) => [g.node, g.config.links]))
  t.same(links.a![0], { name: 'u', udp: { host: '10.77.0.1', port: 5000, interface: 'kl7-s0a', group: '239.77.71.1', discovery: false, peers: ['10.77.0.2:5000'] } })
  t.same(links.c![0], { name: 'r', raw_ip: { interface: 'kl7-s1b', address: '10.77.1.2', peers: ['10.77.1.1'], broadcast: '10.77.1.255' } })
  t.same(netemArgs('kl7-s0a', plan.veths[0]!.netem), ['qdisc', 'replace', 'dev', 'kl7-s0a', 'root', 'netem', 'delay', '20ms', 'loss', '5%'])
  t.same(netemArgs('kl7-s0a', plan.veths[0]!.netem, true), ['qdisc', 'replace', 'dev', 'kl7-s0a', 'root', 'netem', 'delay', '20ms', 'loss', '100%'], 'a partition keeps the delay and loses everything')
  t.equal(netemArgs('kl7-s1a', plan.veths[1]!.netem), undefined)
  const air = plan.emulators[0]!
  t.equal(air.config.timeScale, 0.5)
  t.equal(air.config.links!.length, 6, 'loss: every ordered pair of the three radios')
  t.ok(air.config.links!.every((l) => l.loss === 0.25))
  t.match(links.a![1], { lora: { time_scale: 0.5 } }, 'the gateway is told the emulator time scale')
  for (const g of plan.gateways) t.doesNotThrow(() => parseConfig(g.yaml, g.configPath), `${g.node}: the config loader takes it`)
  const cmds = networkCommands(plan).map((c) => c.join(' '))
  t.same(cmds.slice(0, 2), ['netns add kl7-a', '-n kl7-a link set lo up'])
  t.ok(cmds.includes('link add kl7-s0a type veth peer name kl7-s0b'))
  t.ok(cmds.includes('link set kl7-s0b netns kl7-b'))
  t.ok(cmds.includes('-n kl7-b addr add 10.77.0.2/24 broadcast 10.77.0.255 dev kl7-s0b'))
  t.ok(cmds.indexOf('link set kl7-s0a netns kl7-a') > cmds.indexOf('netns add kl7-a'), 'namespaces first')
})

t.test('names: prefixes, interface length limit, the clean pattern', async (t) => {
  t.equal(defaultPrefix(1234567), 'kl4567')
  t.equal(defaultPrefix(7), 'kl7')
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 0, max: 98 }), fc.constantFrom('a' as const, 'b' as const), (pid, seg, end) => {
      const p = defaultPrefix(pid)
      const n = ifName(p, seg, end)
      return PREFIX.test(p) && n.length <= MAX_IFNAME && LAB_NAME.exec(n)?.[1] === p
    }),
  )
  t.throws(() => buildPlan(parseTopology('nodes: [a, b]\nsegments: [{name: s, kind: udp, nodes: [a, b]}]\n'), { prefix: 'lab1', runDir: RUN }), TypeError)
  t.notOk(LAB_NAME.test('kt-exp-1-a'), 'other people\'s namespaces do not match')
  t.notOk(LAB_NAME.test('klx-a'))
})
