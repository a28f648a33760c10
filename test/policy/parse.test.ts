/**
 * .klp-policy files: the example in docs/ parses to the policy it describes (YAML, and the same
 * as JSON), defaults, every error form with its exact message, key path and line, reading files,
 * and formatPolicy giving back a file that parses to the same policy.
 */
import t from 'tap'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigFileError, formatProblem } from '../../appliance/config/errors.js'
import { ConfigRejectedError, KairoError } from '../../appliance/core/errors.js'
import { PacketType } from '../../appliance/core/wire/constants.js'
import { MAX_POLICY_BYTES, PolicyError, VIOLATIONS, formatPolicy, jsonSyntaxError, loadPolicy, parsePolicy, type Policy, type PolicyProblem } from '../../appliance/policy/index.js'

const FILE = 'p.klp-policy'
const EXAMPLE_FILE = new URL('../../docs/examples/field-relay.klp-policy', import.meta.url).pathname
const EXAMPLE = readFileSync(EXAMPLE_FILE, 'utf8')

function problemsOf(text: string, file = FILE): PolicyProblem[] {
  try {
    parsePolicy(text, file)
  } catch (err) {
    if (err instanceof PolicyError) return [...err.problems]
    throw err
  }
  throw new Error(`accepted: ${JSON.stringify(text.slice(0, 100))}`)
}

const drop = { blockPeerMs: null, disconnectLink: false }
const ID = (n: number) => n.toString(16).padStart(32, '0')

/** Every error form: the text, and the problems it gives, formatted (FILE is the file's name). */
const ERRORS: Array<[string, string, string[]]> = [
  ["empty", "", [
    "FILE:1: the file is empty; a policy needs at least version: 1",
  ]],
  ["comments only", "# nothing\n", [
    "FILE:1: the file is empty; a policy needs at least version: 1",
  ]],
  ["top level list", "- version: 1\n", [
    "FILE:1: the top level must be a mapping of keys (version, name, description, types, peers, quotas, actions), got a list",
  ]],
  ["top level scalar", "hello\n", [
    "FILE:1: the top level must be a mapping of keys (version, name, description, types, peers, quotas, actions), got \"hello\"",
  ]],
  ["yaml syntax", "version: 1\ntypes:\n  agent: [TASK_REQUEST\n", [
    "FILE:4: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
  ]],
  ["json syntax", "{\"version\": 1,\n \"name\": }\n", [
    "FILE:2: JSON: expected a value (text in double quotes, a number, true, false, null, { or [), found \"}\\n\"",
  ]],
  ["two documents", "version: 1\n---\nversion: 1\n", [
    "FILE:2: YAML: the file holds more than one document (a --- line); a policy file is one document",
  ]],
  ["duplicate key", "version: 1\nname: a\nname: b\n", [
    "FILE:3: YAML: the key \"name\" appears twice in the same mapping",
  ]],
  ["json duplicate key", "{\"version\": 1, \"version\": 1}", [
    "FILE:1: JSON: the key \"version\" appears twice in the same mapping",
  ]],
  ["missing version", "name: x\n", [
    "version: is required (version: 1) (FILE:1)",
  ]],
  ["version 2", "version: 2\n", [
    "version: 2 is newer than this gateway reads (version 1); update kairo-gw (FILE:1)",
  ]],
  ["version text", "version: \"1\"\n", [
    "version: must be 1, got \"1\" (FILE:1)",
  ]],
  ["unknown top key", "version: 1\nquota: []\n", [
    "quota: unknown key (did you mean \"quotas\"?) (FILE:2)",
  ]],
  ["unknown top key no hint", "version: 1\nzzzzzz: 1\n", [
    "zzzzzz: unknown key (known keys here: version, name, description, types, peers, quotas, actions) (FILE:2)",
  ]],
  ["non-scalar key", "version: 1\n? [a]\n: 1\n", [
    "FILE:2: keys must be plain names, got a list as a key",
  ]],
  ["merge key", "version: 1\nx-base: &b {agent: [TASK_REQUEST]}\ntypes:\n  <<: *b\n", [
    "types[\"<<\"]: merge keys (<<) are not supported in a policy file; write the keys out (anchors and *aliases work for values) (FILE:4)",
  ]],
  ["alias without anchor", "version: 1\nname: *nope\n", [
    "name: *nope names no anchor: &nope must come before it (FILE:2)",
  ]],
  ["name number", "version: 1\nname: 12\n", [
    "name: must be text, got 12 (quote it if it is meant as text: \"12\") (FILE:2)",
  ]],
  ["name empty", "version: 1\nname: \"\"\n", [
    "name: must not be empty (FILE:2)",
  ]],
  ["name pattern", "version: 1\nname: \"-bad name\"\n", [
    "name: \"-bad name\" is not a policy name: 1 to 64 of A-Z a-z 0-9 _ . - (starting with a letter or digit) (FILE:2)",
  ]],
  ["description control", "version: 1\ndescription: \"a\\u0007b\"\n", [
    "description: must not contain control characters (FILE:2)",
  ]],
  ["description long", "version: 1\ndescription: " + "x".repeat(1001) + "\n", [
    "description: is 1001 characters; at most 1000 (FILE:2)",
  ]],
  ["types not mapping", "version: 1\ntypes: [TASK_REQUEST]\n", [
    "types: must be a mapping (agent, control), got a list (FILE:2)",
  ]],
  ["types.agent not list", "version: 1\ntypes:\n  agent: TASK_REQUEST\n", [
    "types.agent: must be a list, got \"TASK_REQUEST\" (FILE:3)",
  ]],
  ["types.agent item number", "version: 1\ntypes:\n  agent: [16]\n", [
    "types.agent[0]: must be text, got 16 (FILE:3)",
  ]],
  ["types.agent unknown", "version: 1\ntypes:\n  agent: [TASK_REQEST]\n", [
    "types.agent[0]: \"TASK_REQEST\" is not a message type (TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC) (did you mean \"TASK_REQUEST\"?) (FILE:3)",
  ]],
  ["types.agent control type", "version: 1\ntypes:\n  agent: [HANDSHAKE]\n", [
    "types.agent[0]: HANDSHAKE is a control type: list it under types.control (FILE:3)",
  ]],
  ["types.control agent type", "version: 1\ntypes:\n  control: [task-request]\n", [
    "types.control[0]: TASK_REQUEST is an agent type: list it under types.agent (FILE:3)",
  ]],
  ["types duplicate", "version: 1\ntypes:\n  agent: [TASK_REQUEST, task_request]\n", [
    "types.agent[1]: \"task_request\" is already listed as types.agent[0] (FILE:3)",
  ]],
  ["peers not mapping", "version: 1\npeers: []\n", [
    "peers: must be a mapping (allow, block, min_trust), got a list (FILE:2)",
  ]],
  ["peers.allow bad id", "version: 1\npeers:\n  allow: [gw-tokyo-1]\n", [
    "peers.allow[0]: \"gw-tokyo-1\" is not a node ID (32 hex digits, as kairo-gw peers shows them); peers are named by node ID because a name is only what a peer claims (FILE:3)",
  ]],
  ["peers.allow empty", "version: 1\npeers:\n  allow: []\n", [
    "peers.allow: is an empty list, which would refuse every peer; leave allow out to allow any peer (FILE:3)",
  ]],
  ["peers.block duplicate", "version: 1\npeers:\n  block:\n    - 00112233445566778899aabbccddeeff\n    - 00112233445566778899AABBCCDDEEFF\n", [
    "peers.block[1]: \"00112233445566778899AABBCCDDEEFF\" is already listed as peers.block[0] (FILE:5)",
  ]],
  ["peers both", "version: 1\npeers:\n  allow: [00112233445566778899aabbccddeeff]\n  block: [00112233445566778899aabbccddeeff]\n", [
    "peers.block: 00112233445566778899aabbccddeeff is also in peers.allow; a peer is either allowed or blocked (FILE:4)",
  ]],
  ["peers.min_trust", "version: 1\npeers:\n  min_trust: TOFU\n", [
    "peers.min_trust: \"TOFU\" is not one of unknown, tofu, allowlisted (did you mean \"tofu\"?) (FILE:3)",
  ]],
  ["peers.min_trust number", "version: 1\npeers:\n  min_trust: 1\n", [
    "peers.min_trust: must be one of unknown, tofu, allowlisted, got 1 (FILE:3)",
  ]],
  ["quotas not list", "version: 1\nquotas: {per: peer}\n", [
    "quotas: must be a list, got a mapping (FILE:2)",
  ]],
  ["quota not mapping", "version: 1\nquotas:\n  - peer\n", [
    "quotas[0]: must be a mapping (name, per, window_s, messages, bytes, types, action), got \"peer\" (FILE:3)",
  ]],
  ["quota empty mapping", "version: 1\nquotas:\n  - {}\n", [
    "quotas[0].per: is required (one of peer, type, peer_type) (FILE:3)",
    "quotas[0].window_s: is required (FILE:3)",
    "quotas[0]: needs messages:, bytes: or both (the limits per window) (FILE:3)",
  ]],
  ["quota missing per/window", "version: 1\nquotas:\n  - name: q\n    messages: 5\n", [
    "quotas[0].per: is required (one of peer, type, peer_type) (FILE:3)",
    "quotas[0].window_s: is required (FILE:3)",
  ]],
  ["quota no limits", "version: 1\nquotas:\n  - per: peer\n    window_s: 60\n", [
    "quotas[0]: needs messages:, bytes: or both (the limits per window) (FILE:3)",
  ]],
  ["quota per", "version: 1\nquotas:\n  - per: link\n    window_s: 60\n    messages: 1\n", [
    "quotas[0].per: \"link\" is not one of peer, type, peer_type (FILE:3)",
  ]],
  ["quota window 0", "version: 1\nquotas:\n  - per: peer\n    window_s: 0\n    messages: 1\n", [
    "quotas[0].window_s: 0 is out of range: more than 0, at most 86400 (FILE:4)",
  ]],
  ["quota window text", "version: 1\nquotas:\n  - per: peer\n    window_s: 1m\n    messages: 1\n", [
    "quotas[0].window_s: must be a number, got \"1m\" (FILE:4)",
  ]],
  ["quota window big", "version: 1\nquotas:\n  - per: peer\n    window_s: 86401\n    messages: 1\n", [
    "quotas[0].window_s: 86401 is out of range: more than 0, at most 86400 (FILE:4)",
  ]],
  ["quota messages 0", "version: 1\nquotas:\n  - per: peer\n    window_s: 60\n    messages: 0\n", [
    "quotas[0].messages: 0 is out of range 1..1000000000 (FILE:5)",
  ]],
  ["quota messages fraction", "version: 1\nquotas:\n  - per: peer\n    window_s: 60\n    messages: 1.5\n", [
    "quotas[0].messages: must be a whole number, got 1.5 (FILE:5)",
  ]],
  ["quota bytes text", "version: 1\nquotas:\n  - per: peer\n    window_s: 60\n    bytes: 8KiB\n", [
    "quotas[0].bytes: must be a whole number, got \"8KiB\" (FILE:5)",
  ]],
  ["quota types empty", "version: 1\nquotas:\n  - per: type\n    window_s: 60\n    messages: 1\n    types: []\n", [
    "quotas[0].types: is an empty list: the quota would count nothing; leave types out to count every agent type (FILE:6)",
  ]],
  ["quota types unknown", "version: 1\nquotas:\n  - per: type\n    window_s: 60\n    messages: 1\n    types: [PING]\n", [
    "quotas[0].types[0]: \"PING\" is not a message type (HANDSHAKE, ANNOUNCE, ACK, KEEPALIVE, CLOSE, TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC) (FILE:6)",
  ]],
  ["quota name duplicate", "version: 1\nquotas:\n  - {name: q, per: peer, window_s: 1, messages: 1}\n  - {name: q, per: type, window_s: 1, messages: 1}\n", [
    "quotas[1].name: \"q\" is already the name of quotas[0] (FILE:4)",
  ]],
  ["quota name pattern", "version: 1\nquotas:\n  - {name: \"my quota\", per: peer, window_s: 1, messages: 1}\n", [
    "quotas[0].name: \"my quota\" is not a rule name: 1 to 64 of A-Z a-z 0-9 _ . - (starting with a letter or digit) (FILE:3)",
  ]],
  ["quota typo key", "version: 1\nquotas:\n  - {per: peer, window: 1, messages: 1}\n", [
    "quotas[0].window: unknown key (did you mean \"window_s\"?) (FILE:3)",
    "quotas[0].window_s: is required (FILE:3)",
  ]],
  ["too many quotas", "version: 1\nquotas:\n" + "  - {per: peer, window_s: 1, messages: 1}\n".repeat(65), [
    "quotas: has 65 entries; at most 64 (FILE:3)",
  ]],
  ["actions not mapping", "version: 1\nactions: drop\n", [
    "actions: must be a mapping (peer_temporarily_blocked, peer_blocked, peer_not_allowed, trust_below_minimum, type_not_allowed, quota_messages, quota_bytes), got \"drop\" (FILE:2)",
  ]],
  ["actions unknown violation", "version: 1\nactions:\n  quota: drop\n", [
    "actions.quota: unknown key (did you mean \"quota_messages\"?) (FILE:3)",
  ]],
  ["action word", "version: 1\nactions:\n  peer_blocked: kill\n", [
    "actions.peer_blocked: \"kill\" is not an action (drop, disconnect_link, {block_peer: {for_s: N}} or a list of them) (FILE:3)",
  ]],
  ["action block_peer bare", "version: 1\nactions:\n  peer_blocked: block_peer\n", [
    "actions.peer_blocked: block_peer needs a time: {block_peer: {for_s: 600}} (FILE:3)",
  ]],
  ["action empty list", "version: 1\nactions:\n  peer_blocked: []\n", [
    "actions.peer_blocked: is an empty list; write drop (a violation always drops the packet) (FILE:3)",
  ]],
  ["action empty mapping", "version: 1\nactions:\n  peer_blocked: {}\n", [
    "actions.peer_blocked: is an empty mapping; an action is drop, disconnect_link, {block_peer: {for_s: N}} or a list of them (FILE:3)",
  ]],
  ["action number", "version: 1\nactions:\n  peer_blocked: 600\n", [
    "actions.peer_blocked: must be drop, disconnect_link, {block_peer: {for_s: N}} or a list of them, got 600 (FILE:3)",
  ]],
  ["action repeated", "version: 1\nactions:\n  peer_blocked: [disconnect_link, disconnect_link]\n", [
    "actions.peer_blocked[1]: disconnect_link is already in this action (FILE:3)",
  ]],
  ["action two blocks", "version: 1\nactions:\n  peer_blocked: [{block_peer: {for_s: 1}}, {block_peer: {for_s: 2}}]\n", [
    "actions.peer_blocked[1]: block_peer is already in this action (FILE:3)",
  ]],
  ["action too many", "version: 1\nactions:\n  peer_blocked: [drop, drop, drop, drop, drop, drop, drop, drop, drop]\n", [
    "actions.peer_blocked: has 9 entries; an action has at most 3 (drop, disconnect_link, block_peer) (FILE:3)",
  ]],
  ["action words as keys", "version: 1\nactions:\n  peer_blocked: {block_peer: {for_s: 60}, disconnect_link: true}\n", [
    "actions.peer_blocked.disconnect_link: disconnect_link is a word, not a key: write several actions as a list, e.g. [{block_peer: {for_s: 600}}, disconnect_link] (FILE:3)",
  ]],
  ["action block_peer number", "version: 1\nactions:\n  peer_blocked: {block_peer: 600}\n", [
    "actions.peer_blocked.block_peer: must be a mapping (for_s), got 600 (FILE:3)",
  ]],
  ["action block_peer empty", "version: 1\nactions:\n  peer_blocked:\n    block_peer:\n", [
    "actions.peer_blocked.block_peer.for_s: is required (FILE:4)",
  ]],
  ["action for_s 0", "version: 1\nactions:\n  peer_blocked: {block_peer: {for_s: 0}}\n", [
    "actions.peer_blocked.block_peer.for_s: 0 is out of range: more than 0, at most 2592000 (FILE:3)",
  ]],
  ["action for_s typo", "version: 1\nactions:\n  peer_blocked: {block_peer: {for: 60}}\n", [
    "actions.peer_blocked.block_peer.for: unknown key (did you mean \"for_s\"?) (FILE:3)",
    "actions.peer_blocked.block_peer.for_s: is required (FILE:3)",
  ]],
  ["action blocked again", "version: 1\nactions:\n  peer_temporarily_blocked: {block_peer: {for_s: 60}}\n", [
    "actions.peer_temporarily_blocked.block_peer: a packet from a peer that is blocked already cannot block it again (the block would never end while it sends); use drop or disconnect_link (FILE:3)",
  ]],
  ["action in quota", "version: 1\nquotas:\n  - per: peer\n    window_s: 60\n    messages: 5\n    action: [disconnect]\n", [
    "quotas[0].action[0]: \"disconnect\" is not an action (drop, disconnect_link, {block_peer: {for_s: N}} or a list of them) (did you mean \"disconnect_link\"?) (FILE:6)",
  ]],
  ["several", "version: 1\nname: a b\ntypes:\n  agent: [X]\npeers:\n  min_trust: high\n", [
    "name: \"a b\" is not a policy name: 1 to 64 of A-Z a-z 0-9 _ . - (starting with a letter or digit) (FILE:2)",
    "types.agent[0]: \"X\" is not a message type (TASK_REQUEST, AGENT_MIGRATION, REPUTATION_DELTA, BROADCAST_ANNOUNCE, VECTOR_SYNC) (FILE:4)",
    "peers.min_trust: \"high\" is not one of unknown, tofu, allowlisted (FILE:6)",
  ]],
]

t.test('every error form: its message, key path and line, and the file', async (t) => {
  for (const [name, text, expected] of ERRORS) {
    const problems = problemsOf(text)
    t.strictSame(problems.map(formatProblem), expected.map((l) => l.replace('FILE', FILE)), name)
    for (const p of problems) {
      t.equal(p.file, FILE, `${name}: names the file`)
      t.ok(Number.isInteger(p.line) && p.line! >= 1 && p.line! <= text.split('\n').length, `${name}: line ${p.line} is in the file`)
    }
  }
})

t.test('the docs example is the policy it describes', async (t) => {
  const p = parsePolicy(EXAMPLE, '/etc/kairo-gw/field-relay.klp-policy')
  const expected: Omit<Policy, 'sha256'> = {
    file: '/etc/kairo-gw/field-relay.klp-policy',
    name: 'field-relay',
    description: 'Mast relay, north valley. Team gateways only; tasks and reputation, no migrations.',
    types: {
      agent: [PacketType.TaskRequest, PacketType.ReputationDelta, PacketType.BroadcastAnnounce],
      control: [PacketType.Handshake, PacketType.Announce, PacketType.Ack, PacketType.Keepalive, PacketType.Close],
    },
    peers: {
      allow: ['6f1c2a9e0b7d4c3e8a5f1b2c3d4e5f60', '0a1b2c3d4e5f60718293a4b5c6d7e8f9', 'c0ffee00c0ffee00c0ffee00c0ffee00'],
      block: ['deadbeefdeadbeefdeadbeefdeadbeef'],
      minTrust: 'tofu',
    },
    quotas: [
      { name: 'tasks-per-peer', per: 'peer_type', windowMs: 60_000, messages: 30, bytes: null, types: [PacketType.TaskRequest], action: null },
      { name: 'bytes-per-peer', per: 'peer', windowMs: 60_000, messages: null, bytes: 8192, types: null, action: { blockPeerMs: 600_000, disconnectLink: false } },
      { name: 'handshake-storm', per: 'peer', windowMs: 10_000, messages: 20, bytes: null, types: [PacketType.Handshake], action: { blockPeerMs: 3_600_000, disconnectLink: true } },
    ],
    actions: {
      peer_temporarily_blocked: drop,
      peer_blocked: drop,
      peer_not_allowed: drop,
      trust_below_minimum: drop,
      type_not_allowed: drop,
      quota_messages: { blockPeerMs: 300_000, disconnectLink: false },
      quota_bytes: drop,
    },
  }
  const { sha256, ...rest } = p
  t.strictSame(rest, expected)
  t.match(sha256, /^[0-9a-f]{64}$/)
  t.equal(loadPolicy(EXAMPLE_FILE).sha256, sha256, 'the hash is of the text')
  t.not(parsePolicy(EXAMPLE + '\n# changed\n', 'x').sha256, sha256, 'another text, another hash')

  // The same document written as JSON is the same policy.
  const json = JSON.stringify(parseYaml(EXAMPLE), null, 2)
  const pj = parsePolicy(json, '/etc/kairo-gw/field-relay.klp-policy')
  t.strictSame({ ...pj, sha256: '' }, { ...p, sha256: '' })
})

t.test('a minimal policy: version only, everything allowed, every action drop', async (t) => {
  const p = parsePolicy('version: 1\n', '/etc/kairo-gw/mast-3.klp-policy')
  t.strictSame(p, {
    file: '/etc/kairo-gw/mast-3.klp-policy',
    name: 'mast-3',
    sha256: p.sha256,
    description: null,
    types: { agent: null, control: null },
    peers: { allow: null, block: [], minTrust: 'unknown' },
    quotas: [],
    actions: Object.fromEntries(VIOLATIONS.map((v) => [v, drop])),
  })
  t.equal(parsePolicy('version: 1', 'a/b/strange name!.yaml').name, 'strange-name-')
  t.equal(parsePolicy('version: 1', '.klp-policy').name, 'policy')
  t.equal(parsePolicy('\uFEFFversion: 1', FILE).name, 'p', 'a byte order mark is skipped')
  t.equal(parsePolicy('{"version": 1}', FILE).name, 'p', 'JSON')
})

t.test('forms: names in any case, actions as a word, a mapping or a list, aliases, x- keys, a quota without a name', async (t) => {
  const p = parsePolicy(
    `version: 1
x-team: &team [${ID(1)}, ${ID(0xabc).toUpperCase()}, 1234e${'5'.repeat(27)}]
x-harsh: &harsh [{block_peer: {for_s: 0.5}}, disconnect_link, drop]
types:
  agent: [task-request, Vector_Sync]
  control: []
peers:
  allow: *team
quotas:
  - per: type
    window_s: 0.25
    bytes: 100
    types: [ANNOUNCE, TASK_REQUEST]
    action: *harsh
actions:
  peer_not_allowed: disconnect_link
  quota_bytes: {block_peer: {for_s: 60}}
  type_not_allowed: [drop]
`,
    FILE,
  )
  t.strictSame(p.types, { agent: [PacketType.TaskRequest, PacketType.VectorSync], control: [] })
  t.strictSame(p.peers.allow, [ID(1), ID(0xabc), '1234e' + '5'.repeat(27)], 'node IDs as written (no quotes needed where YAML sees a number), lower-cased')
  t.strictSame(p.quotas, [{ name: 'quotas[0]', per: 'type', windowMs: 250, messages: null, bytes: 100, types: [PacketType.Announce, PacketType.TaskRequest], action: { blockPeerMs: 500, disconnectLink: true } }])
  t.strictSame(p.actions.peer_not_allowed, { blockPeerMs: null, disconnectLink: true })
  t.strictSame(p.actions.quota_bytes, { blockPeerMs: 60_000, disconnectLink: false })
  t.strictSame(p.actions.type_not_allowed, drop)
})

t.test('several problems in one report, in file order; the error is a ConfigFileError', async (t) => {
  let err: unknown
  try {
    parsePolicy('version: 1\npeers:\n  min_trust: high\nname: a b\nquotas: 3\n', FILE)
  } catch (e) {
    err = e
  }
  t.ok(err instanceof PolicyError && err instanceof ConfigFileError && err instanceof ConfigRejectedError && err instanceof KairoError)
  const e = err as PolicyError
  t.equal(e.code, 'ECONFIG')
  t.equal(e.file, FILE)
  t.equal(e.field, 'peers.min_trust', 'field: the first problem')
  t.equal(e.message, e.problems.map(formatProblem).join('\n'))
  t.strictSame(
    e.problems.map((p) => [p.path, p.line]),
    [
      ['peers.min_trust', 3],
      ['name', 4],
      ['quotas', 5],
    ],
  )
})

t.test('a file with many mistakes lists the first 100 and counts the rest', async (t) => {
  const text = 'version: 1\npeers:\n  block:\n' + Array.from({ length: 150 }, (_, i) => `    - gw-${i}\n`).join('')
  const problems = problemsOf(text)
  t.equal(problems.length, 101)
  t.equal(problems[99]!.path, 'peers.block[99]')
  t.strictSame(problems[100], { path: '', message: '50 more problems from here on are not listed', line: 104, file: FILE })
})

t.test('JSON is strict JSON: where it goes wrong, by line', async (t) => {
  const cases: Array<[string, string]> = [
    ['{version: 1}', 'p.klp-policy:1: JSON: expected a property name in double quotes, found "version: 1}"'],
    ['{"version": 1,\n}', 'p.klp-policy:2: JSON: expected a property name in double quotes, found "}"'],
    ['{"version": 1}\n{"version": 1}', 'p.klp-policy:2: JSON: text after the end of the JSON value: "{\\"version\\": "'],
    ['{"version": 1\n', 'p.klp-policy:2: JSON: the file ends where , or } should be'],
    ['{"version": 1 "name": "x"}', 'p.klp-policy:1: JSON: expected , or } after a value, found "\\"name\\": \\"x\\"}"'],
    ['{"version" 1}', 'p.klp-policy:1: JSON: expected : after the property name, found "1}"'],
    ['{"name": "a\tb", "version": 1}', 'p.klp-policy:1: JSON: a control character inside a string (write it as \\n, \\t or \\u00XX)'],
    ['{"name": "a\\xb", "version": 1}', 'p.klp-policy:1: JSON: \\x is not an escape JSON has'],
    ['{"name": "a\\u12", "version": 1}', 'p.klp-policy:1: JSON: a \\u escape needs 4 hex digits'],
    ['[1, 2', 'p.klp-policy:1: JSON: the file ends where , or ] should be'],
    ['{"name": "abc', 'p.klp-policy:1: JSON: the file ends where the closing " of a string should be'],
    ['{"version": 01}', 'p.klp-policy:1: JSON: expected , or } after a value, found "1}"'],
  ]
  for (const [text, line] of cases) t.strictSame(problemsOf(text).map(formatProblem), [line], text)
  // What strict JSON accepts, the checker accepts.
  for (const ok of ['{}', '[]', '{"a": [1, -2.5e+3, true, false, null, "x\\n\\u00e9\\/"]}', ' \n{"a":{"b":[[]]}}\n ', '"s"', '0']) t.equal(jsonSyntaxError(ok), null, ok)
  t.equal(jsonSyntaxError('['.repeat(100_000))?.message, 'the file ends where a value should be', 'any depth, no recursion')
})

t.test('deep nesting in YAML is a problem, not a crash', async (t) => {
  const problems = problemsOf('version: 1\nname: ' + '['.repeat(50_000) + ']'.repeat(50_000) + '\n')
  t.ok(problems.some((p) => p.message === 'YAML: the file nests too deeply (lists or mappings inside each other)' && p.line === 2))
})

t.test('loadPolicy: reads and parses; unreadable, huge or binary files are PolicyErrors naming the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kairo-policy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const good = join(dir, 'good.klp-policy')
  writeFileSync(good, 'version: 1\nname: good\n')
  t.equal(loadPolicy(good).name, 'good')
  t.equal(loadPolicy(good).file, good)

  const errorOf = (file: string) => {
    try {
      loadPolicy(file)
    } catch (err) {
      if (err instanceof PolicyError) return err.problems.map(formatProblem)
      throw err
    }
    throw new Error('loaded')
  }
  const missing = join(dir, 'missing.klp-policy')
  t.strictSame(errorOf(missing), [`${missing}: cannot read: no such file (ENOENT)`])
  const sub = join(dir, 'sub')
  mkdirSync(sub)
  t.strictSame(errorOf(sub), [`${sub}: cannot read: it is a directory (EISDIR)`])
  const big = join(dir, 'big.klp-policy')
  writeFileSync(big, 'version: 1\n' + '#'.repeat(MAX_POLICY_BYTES))
  t.strictSame(errorOf(big), [`${big}: is larger than ${MAX_POLICY_BYTES} bytes; is it really a policy file?`])
  const binary = join(dir, 'binary.klp-policy')
  writeFileSync(binary, Buffer.from([0x76, 0x65, 0x72, 0xff, 0xfe, 0x0a]))
  t.strictSame(errorOf(binary), [`${binary}: is not UTF-8 text; is it really a policy file?`])
  const bad = join(dir, 'bad.klp-policy')
  writeFileSync(bad, 'version: 1\npeers:\n  min_trust: maybe\n')
  t.strictSame(errorOf(bad), [`peers.min_trust: "maybe" is not one of unknown, tofu, allowlisted (${bad}:3)`])
  if (process.getuid?.() !== 0) {
    const secret = join(dir, 'secret.klp-policy')
    writeFileSync(secret, 'version: 1\n', { mode: 0o000 })
    t.strictSame(errorOf(secret), [`${secret}: cannot read: permission denied (EACCES)`])
  }
})

t.test('formatPolicy writes a file that parses to the same policy', async (t) => {
  for (const text of [EXAMPLE, 'version: 1\n', 'version: 1\ntypes: {agent: [], control: [ACK]}\nquotas:\n  - {per: peer, window_s: 0.001, messages: 1, action: [disconnect_link]}\n']) {
    const p = parsePolicy(text, FILE)
    const again = parsePolicy(formatPolicy(p), FILE)
    t.strictSame({ ...again, sha256: '' }, { ...p, sha256: '' })
  }
})
