/**
 * Lab topology files: the shipped ones parse, bad ones are refused naming the file, the field
 * and the line, and (fast-check) any input either parses into a consistent topology or is
 * refused with a ConfigRejectedError naming the file, never anything else.
 */
import t from 'tap'
import fc from 'fast-check'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { ConfigRejectedError } from '../../appliance/core/errors.js'
import { components, DEFAULT_LORA, loadTopology, MESSAGE_TYPES, parseTopology, resolveTopology, SEGMENT_KINDS, shippedTopologies, trafficPlan, VETH_KINDS, type Topology } from '../../appliance/lab/topology.js'
import { tempDir } from '../lib/pty.js'

t.test('the shipped topologies parse', async (t) => {
  t.same(shippedTopologies(), ['line4-wired', 'line5-mixed', 'pair-udp'])
  const line = await loadTopology(resolveTopology('line5-mixed')!)
  t.same(
    line.nodes.map((n) => n.name),
    ['g1', 'g2', 'g3', 'g4', 'g5'],
  )
  t.same(
    line.segments.map((s) => [s.name, s.kind, s.nodes]),
    [
      ['eth12', 'ethernet', ['g1', 'g2']],
      ['lora23', 'lora', ['g2', 'g3']],
      ['udp34', 'udp', ['g3', 'g4']],
      ['lora45', 'lora', ['g4', 'g5']],
    ],
  )
  const lora = line.segments[1]!
  t.equal(lora.kind, 'lora')
  if (lora.kind === 'lora') t.match(lora.options, { backend: 'firmware-bridge', region: 'LAB', spreading_factor: 7, bandwidth_khz: 500 })
  t.same(line.traffic.pairs, [
    { from: 'g1', to: 'g5' },
    { from: 'g5', to: 'g1' },
  ])
  t.equal(line.mesh.announce_interval_s, 5)
  const pair = await loadTopology(resolveTopology('pair-udp')!)
  t.same(pair.traffic.pairs, [
    { from: 'a', to: 'b' },
    { from: 'b', to: 'a' },
  ], 'default traffic: first <-> last')
  t.equal(resolveTopology('no-such-topology'), undefined)
})

t.test('defaults: lora options, udp options, traffic, mesh', async (t) => {
  const topo = parseTopology('nodes: [x, y, z]\nsegments:\n  - {name: r, kind: lora, nodes: [x, y, z]}\n', 'mini.yaml')
  t.same(topo.nodes, [{ name: 'x' }, { name: 'y' }, { name: 'z' }], 'a node may be a bare name')
  t.same(topo.segments[0]!.options, DEFAULT_LORA)
  t.same(topo.traffic, { pairs: [{ from: 'x', to: 'z' }, { from: 'z', to: 'x' }], size: 64, type: 'TASK_REQUEST' })
  t.same(topo.mesh, { announce_interval_s: 1, hop_limit: 16 })
  t.equal(topo.name, 'mini')
  t.same(trafficPlan(topo.traffic.pairs, 3), [{ from: 'x', to: 'z' }, { from: 'z', to: 'x' }, { from: 'x', to: 'z' }])
})

const BAD: Array<[string, string, RegExp]> = [
  ['just a string', '(root)', /a topology is a mapping/],
  ['nodes: [a, b]\n', 'segments', /is required/],
  ['segments: []\n', 'nodes', /is required/],
  ['nodes: [a]\nsegments: [{name: s, kind: udp, nodes: [a, a]}]\n', 'nodes', /at least 2 gateways/],
  ['nodes: [a, b]\nsegments:\n  - name: s\n    kind: wifi\n    nodes: [a, b]\n', 'segments[0].kind', /"wifi" is not one of ethernet, udp, raw_ip, lora \(line 4\)/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: udp, nodes: [a, c]}\n', 'segments[0].nodes[1]', /"c" is not one of the nodes/],
  ['nodes: [a, b, c]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b, c]}\n', 'segments[0].nodes', /exactly 2 gateways, got 3/],
  ['nodes: [a, b, c]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b]}\n', 'nodes[2].name', /"c" is on no segment/],
  ['nodes: [a, b, c, d]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b]}\n  - {name: t, kind: udp, nodes: [c, d]}\n', 'segments', /no path between a and d/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b]}\n  - {name: s, kind: lora, nodes: [a, b]}\n', 'segments[1].name', /"s" is used twice/],
  ['nodes: [a, b]\nsegments:\n  - {name: Bad Name, kind: udp, nodes: [a, b]}\n', 'segments[0].name', /not a segment name/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b], options: {port: 70000}}\n', 'segments[0].options.port', /70000 is not a UDP port/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b], options: {group: 10.0.0.1}}\n', 'segments[0].options.group', /not an IPv4 multicast group/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: lora, nodes: [a, b], options: {spreading_factor: 13}}\n', 'segments[0].options.spreading_factor', /13 is not a spreading factor \(5\.\.12\)/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: lora, nodes: [a, b], options: {bandwidth_khz: 300}}\n', 'segments[0].options.bandwidth_khz', /300 is not one of .*500 kHz/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: lora, nodes: [a, b], options: {region: EU868, frequency_mhz: 915}}\n', 'segments[0].options.frequency_mhz', /outside EU868/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: lora, nodes: [a, b], options: {region: MARS}}\n', 'segments[0].options.region', /"MARS" is not one of EU868/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: lora, nodes: [a, b], options: {sf: 7}}\n', 'segments[0].options.sf', /unknown field/],
  ['nodes: [a, b]\nsegments:\n  - {name: s, kind: ethernet, nodes: [a, b], options: {netem: {loss_pct: 150}}}\n', 'segments[0].options.netem.loss_pct', /150 is not a loss percentage/],
  ['nodes: [a, b]\nsegments: [{name: s, kind: udp, nodes: [a, b]}]\ntraffic: {pairs: [{from: a, to: a}]}\n', 'traffic.pairs[0]', /from and to are both "a"/],
  ['nodes: [a, b]\nsegments: [{name: s, kind: udp, nodes: [a, b]}]\ntraffic: {type: PING}\n', 'traffic.type', /"PING" is not one of TASK_REQUEST/],
  ['nodes: [a, b]\nsegments: [{name: s, kind: udp, nodes: [a, b]}]\nmesh: {announce_interval_s: 0}\n', 'mesh.announce_interval_s', /0 is not an announce interval/],
  ['nodes: [a, b]\nsegments: [{name: s, kind: udp, nodes: [a, b]}]\nextra: 1\n', 'extra', /unknown field \(expected name, description/],
  ['nodes: [a, b]\nnodes: [c]\n', '(root)', /not valid YAML: .*(unique|duplicate)/i],
  ['nodes: [a, b\n', '(root)', /not valid YAML/],
]

t.test('bad topologies are refused naming the file, the field and the line', async (t) => {
  for (const [text, field, message] of BAD) {
    try {
      parseTopology(text, '/labs/bad.yaml')
      t.fail(`accepted: ${JSON.stringify(text)}`)
    } catch (e) {
      t.type(e, ConfigRejectedError, text)
      const err = e as ConfigRejectedError
      t.equal(err.field, field, `field of ${JSON.stringify(text)}`)
      t.match(err.message, /^\/labs\/bad\.yaml: /, 'names the file')
      t.match(err.message, message, err.message)
    }
  }
})

t.test('loadTopology: a missing file names it', async (t) => {
  const dir = await tempDir(t, 'kairo-lab-test-')
  await t.rejects(loadTopology(join(dir, 'nope.yaml')), { field: '(file)', message: /nope\.yaml: cannot read the topology/ })
  const f = join(dir, 'x.yaml')
  await fsp.writeFile(f, 'nodes: [a, b]\nsegments:\n  - {name: s, kind: udp, nodes: [a, b], options: {port: -1}}\n')
  await t.rejects(loadTopology(f), { message: `${f}: segments[0].options.port: -1 is not a UDP port (1..65535) (line 3)` })
})

const name = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/)

/** Valid topology objects: a spanning tree of segments plus optional extras. */
const validTopology = fc
  .uniqueArray(name, { minLength: 2, maxLength: 8 })
  .chain((nodes) =>
    fc.record({
      nodes: fc.constant(nodes),
      tree: fc.tuple(...nodes.slice(1).map((_, i) => fc.tuple(fc.nat(i), fc.constantFrom(...SEGMENT_KINDS)))),
      extraLora: fc.subarray(nodes, { minLength: 0 }),
      size: fc.option(fc.integer({ min: 1, max: 4096 }), { nil: undefined }),
      type: fc.option(fc.constantFrom(...MESSAGE_TYPES), { nil: undefined }),
    }),
  )
  .map(({ nodes, tree, extraLora, size, type }) => {
    const segments: Array<Record<string, unknown>> = tree.map(([parent, kind], i) => ({ name: `s${i}`, kind, nodes: [nodes[parent]!, nodes[i + 1]!] }))
    if (extraLora.length >= 2) segments.push({ name: 'air', kind: 'lora', nodes: extraLora, options: { spreading_factor: 9, loss: 0.1 } })
    const traffic: Record<string, unknown> = {}
    if (size !== undefined) traffic.size = size
    if (type !== undefined) traffic.type = type
    return { nodes: nodes.map((n) => ({ name: n })), segments, ...(Object.keys(traffic).length > 0 && { traffic }) }
  })

t.test('property: every generated valid topology parses, from YAML and from JSON, into what it says', async (t) => {
  fc.assert(
    fc.property(validTopology, (raw) => {
      for (const text of [stringify(raw), JSON.stringify(raw)]) {
        const topo: Topology = parseTopology(text, 'gen.yaml')
        if (topo.nodes.length !== raw.nodes.length) return false
        if (topo.segments.length !== raw.segments.length) return false
        for (const s of topo.segments) if (VETH_KINDS.has(s.kind) !== (s.nodes.length === 2 && s.kind !== 'lora')) return false
        const comp = components(
          topo.nodes.map((n) => n.name),
          topo.segments,
        )
        if (new Set(comp.values()).size !== 1) return false
        if ((raw.traffic?.size ?? 64) !== topo.traffic.size) return false
      }
      return true
    }),
    { numRuns: 300 },
  )
})

t.test('property: any input parses or is refused with a ConfigRejectedError naming the file', async (t) => {
  const check = (text: string) => {
    try {
      parseTopology(text, 'fuzz.yaml')
    } catch (e) {
      if (!(e instanceof ConfigRejectedError)) throw e
      if (!e.message.startsWith('fuzz.yaml: ')) throw new Error(`message does not name the file: ${e.message}`)
      if (typeof e.field !== 'string' || e.field === '') throw new Error('no field')
    }
  }
  fc.assert(fc.property(fc.string({ maxLength: 300 }), check), { numRuns: 500 })
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => check(JSON.stringify(v))), { numRuns: 500 })
  // Near-valid input: a valid topology with one field replaced by anything.
  fc.assert(
    fc.property(validTopology, fc.jsonValue({ maxDepth: 2 }), fc.nat(), (raw, junk, pick) => {
      const paths: Array<(o: Record<string, unknown>) => void> = [
        (o) => ((o.segments as Array<Record<string, unknown>>)[0]!.kind = junk),
        (o) => ((o.segments as Array<Record<string, unknown>>)[0]!.nodes = junk),
        (o) => ((o.segments as Array<Record<string, unknown>>)[0]!.options = junk),
        (o) => ((o.nodes as Array<Record<string, unknown>>)[0]!.name = junk),
        (o) => (o.traffic = junk),
        (o) => (o.mesh = junk),
        (o) => (o.segments = junk),
      ]
      const o = JSON.parse(JSON.stringify(raw)) as Record<string, unknown>
      paths[pick % paths.length]!(o)
      check(stringify(o))
    }),
    { numRuns: 500 },
  )
})
