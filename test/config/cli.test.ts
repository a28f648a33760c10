/**
 * `kairo-gw config check`: the command on a commander program the test builds itself (the lead
 * registers it in program.ts), output captured through commander's output configuration; and,
 * once program.ts has it, the real binary.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError } from 'commander'
import { registerConfig } from '../../appliance/cli/commands/config.js'
import { EXAMPLE_CONFIG } from '../../appliance/config/example.js'
import { parseConfig } from '../../appliance/config/load.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The command as main() runs it: exit code from process.exitCode, or commander's (usage: 2). */
async function cli(args: string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const program = new Command('kairo-gw')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) })
  registerConfig(program)
  const before = process.exitCode
  process.exitCode = undefined
  try {
    await program.parseAsync(['node', 'kairo-gw', ...args])
    return { code: Number(process.exitCode ?? 0), stdout, stderr }
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode === 0 ? 0 : 2, stdout, stderr }
    throw err
  } finally {
    process.exitCode = before
  }
}

function bin(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

const dir = mkdtempSync(join(tmpdir(), 'kairo-config-cli-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const good = join(dir, 'good.yaml')
writeFileSync(good, EXAMPLE_CONFIG)
const bad = join(dir, 'bad.yaml')
writeFileSync(
  bad,
  `links:
  - name: udp0
    udp: { port: 70000 }
  - name: udp0
    lora:
      port: /dev/ttyACM0
      spreading_factor: 13
logging: { level: trace }
`,
)
const BAD_LINES = [
  `links[0].udp.port: 70000 is out of range 0..65535 (${bad}:3)`,
  `links[1].name: "udp0" is already the name of links[0] (${bad}:4)`,
  `links[1].lora.spreading_factor: 13 is out of range 5..12 (${bad}:7)`,
  `logging.level: "trace" is not one of debug, info, warn (${bad}:8)`,
]

t.test('a good file: one line naming the links, exit 0', async (t) => {
  const r = await cli(['config', 'check', good])
  t.strictSame(r, { code: 0, stdout: `${good}: ok (4 links: udp0 udp, eth0 ethernet, rip0 raw_ip, lora0 lora)\n`, stderr: '' })
  const one = join(dir, 'one.yaml')
  writeFileSync(one, 'links: [{name: u, udp: {}, enabled: false}]\n')
  t.equal((await cli(['config', 'check', one])).stdout, `${one}: ok (1 link: u udp (disabled))\n`)
})

t.test('a bad file: every problem on stderr, one per line, exit 1', async (t) => {
  const r = await cli(['config', 'check', bad])
  t.strictSame(r, { code: 1, stdout: '', stderr: BAD_LINES.map((l) => l + '\n').join('') })
  const missing = join(dir, 'nope.yaml')
  t.strictSame(await cli(['config', 'check', missing]), { code: 1, stdout: '', stderr: `${missing}: cannot read: no such file (ENOENT)\n` })
  const syntax = join(dir, 'syntax.yaml')
  writeFileSync(syntax, 'links:\n\t- x\n')
  t.strictSame(await cli(['config', 'check', syntax]), { code: 1, stdout: '', stderr: `${syntax}:2: YAML: Tabs are not allowed as indentation\n` })
})

t.test('--json: {ok, file, problems} and the normalised config when ok', async (t) => {
  const ok = await cli(['config', 'check', good, '--json'])
  t.equal(ok.code, 0)
  t.strictSame(JSON.parse(ok.stdout), { ok: true, file: good, problems: [], config: JSON.parse(JSON.stringify(parseConfig(EXAMPLE_CONFIG, good))) })
  const no = await cli(['config', 'check', '--json', bad])
  t.equal(no.code, 1)
  const out = JSON.parse(no.stdout) as { ok: boolean; file: string; problems: Array<{ path: string; message: string; line: number; file: string }> }
  t.strictSame(out, {
    ok: false,
    file: bad,
    problems: [
      { path: 'links[0].udp.port', message: '70000 is out of range 0..65535', line: 3, file: bad },
      { path: 'links[1].name', message: '"udp0" is already the name of links[0]', line: 4, file: bad },
      { path: 'links[1].lora.spreading_factor', message: '13 is out of range 5..12', line: 7, file: bad },
      { path: 'logging.level', message: '"trace" is not one of debug, info, warn', line: 8, file: bad },
    ],
  })
  t.equal(no.stdout.split('\n').length, 2, 'one JSON line')
  t.equal(no.stderr, BAD_LINES.map((l) => l + '\n').join(''), 'the problems on stderr too')
})

t.test('--help teaches the format: a complete annotated example that is itself valid', async (t) => {
  const r = await cli(['config', 'check', '--help'])
  t.equal(r.code, 0)
  t.match(r.stdout, /Usage: kairo-gw config check \[options\] <file>/)
  t.match(r.stdout, /Exit 0 when the file is good, 1 when it has problems, 2 for a bad command line/)
  t.match(r.stdout, /links\[2\]\.lora\.spreading_factor: 13 is out of range 5\.\.12 \(bad\.yaml:31\)/)
  // The example, as printed (indented by two), is the file format: cut it out and check it.
  const start = r.stdout.indexOf('  # /etc/kairo-gw/config.yaml')
  t.ok(start > 0, 'the example is in the help')
  const example = r.stdout
    .slice(start)
    .split('\n')
    .map((l) => l.slice(2))
    .join('\n')
  const cfg = parseConfig(example, 'help.yaml')
  t.strictSame(
    cfg.links.map((l) => l.driver),
    ['udp', 'ethernet', 'raw_ip', 'lora'],
  )
  for (const key of ['state_dir', 'runtime_dir', 'budget_bytes_per_s', 'frequency_mhz', 'bandwidth_khz', 'time_scale', 'announce_interval_s', 'hop_limit', 'max_messages', 'max_bytes', 'ttl_s', 'level']) {
    t.match(example, new RegExp(`^\\s*(- )?${key}:`, 'm'), `${key} is shown`)
  }
  const group = await cli(['config', '--help'])
  t.match(group.stdout, /check \[options\] <file>/)
})

t.test('usage errors are commander errors (exit 2 from main)', async (t) => {
  const none = await cli(['config', 'check'])
  t.equal(none.code, 2)
  t.match(none.stderr, /missing required argument 'file'/)
  const opt = await cli(['config', 'check', good, '--yaml'])
  t.equal(opt.code, 2)
  t.match(opt.stderr, /unknown option '--yaml'/)
})

const registered = /^\s+config\b/m.test((await bin(['--help'])).stdout)

t.test('through the kairo-gw binary', { skip: registered ? false : '`kairo-gw config` is not registered in appliance/cli/program.ts yet' }, async (t) => {
  const ok = await bin(['config', 'check', good])
  t.equal(ok.code, 0, ok.stderr)
  t.equal(ok.stdout, `${good}: ok (4 links: udp0 udp, eth0 ethernet, rip0 raw_ip, lora0 lora)\n`)
  const no = await bin(['config', 'check', bad])
  t.equal(no.code, 1, 'exit 1 for a file with problems')
  t.equal(no.stderr, BAD_LINES.map((l) => l + '\n').join(''))
  const usage = await bin(['config', 'check'])
  t.equal(usage.code, 2)
})
