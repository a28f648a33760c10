/**
 * `kairo-gw pcap inspect` as the real binary (appliance/bin/kairo-gw.mjs) in child processes: a
 * generated capture summarised (table and --json agree with the in-process report), bad files
 * exit 1 with exactly one stderr line naming the file (no stack trace; --json also prints the
 * error object on stdout), the command is listed in `kairo-gw pcap --help`, and a reader that
 * goes away (`| head`) ends --packets quietly.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inspectCapture, type InspectReport } from '../../appliance/cli/commands/pcap-inspect.js'
import { generateCapture } from '../../pcap/generate.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'appliance', 'bin', 'kairo-gw.mjs')
const dir = mkdtempSync(join(tmpdir(), 'kairo-inspect-cli-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function bin(args: string[], opts: { firstLineThenClose?: boolean } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (opts.firstLineThenClose && stdout.includes('\n')) p.stdout.destroy()
    })
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const capture = join(dir, 'sample.pcapng')
writeFileSync(capture, generateCapture({ count: 300, seed: 'cli' }).bytes)

t.test('a generated capture: exit 0, the summary, --json equal to the in-process report', async (t) => {
  const r = await bin(['pcap', 'inspect', capture])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '')
  t.match(r.stdout, new RegExp(`^${capture.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: pcapng, 1 section, 4 interfaces, 300 packets `))
  t.match(r.stdout, /\nmalformed: 0\n$/)
  const j = await bin(['pcap', 'inspect', capture, '--json'])
  t.equal(j.code, 0)
  t.same(JSON.parse(j.stdout) as InspectReport, JSON.parse(JSON.stringify(await inspectCapture(capture))))
})

t.test('bad files: exit 1, one line on stderr naming the file, no stack trace', async (t) => {
  const good = generateCapture({ count: 20, seed: 'cli' }).bytes
  const cases: [string, Buffer | null, RegExp][] = [
    ['cut.pcapng', good.subarray(0, good.length - 3), /^kairo-gw: \S+cut\.pcapng: block at offset \d+ \([A-Za-z ]+\) claims \d+ bytes but only \d+ remain: the file is truncated\n$/],
    ['elf.bin', Buffer.from('7f454c4602010100', 'hex'), /^kairo-gw: \S+elf\.bin: is not a pcapng or pcap file: starts with 7f 45 4c 46\n$/],
    ['missing.pcapng', null, /^kairo-gw: \S+missing\.pcapng: no such file or directory\n$/],
  ]
  for (const [name, bytes, want] of cases) {
    const path = join(dir, name)
    if (bytes !== null) writeFileSync(path, bytes)
    const r = await bin(['pcap', 'inspect', path])
    t.equal(r.code, 1, `${name}: exit 1`)
    t.match(r.stderr, want, `${name}: one line naming the file`)
    t.equal(r.stdout, '')
    const j = await bin(['pcap', 'inspect', path, '--json'])
    t.equal(j.code, 1)
    t.match(JSON.parse(j.stdout), { ok: false, exit_code: 1, error: { name: 'CliError' } }, `${name} --json: the error object on stdout`)
    t.match(j.stderr, want)
  }
  const dirRun = await bin(['pcap', 'inspect', dir])
  t.equal(dirRun.code, 1)
  t.equal(dirRun.stderr, `kairo-gw: ${dir}: is a directory, not a capture file\n`)
})

t.test('kairo-gw pcap --help lists inspect; a closed pipe ends --packets quietly', async (t) => {
  const h = await bin(['pcap', '--help'])
  t.equal(h.code, 0)
  t.match(h.stdout, /\n {2}inspect \[options\] <file> +what a capture file holds/)
  // 5000 packets: far more lines than one write, so the writes after the close fail with EPIPE.
  const big = join(dir, 'big.pcapng')
  writeFileSync(big, generateCapture({ count: 5000, seed: 'cli', manifest: false }).bytes)
  const r = await bin(['pcap', 'inspect', big, '--packets'], { firstLineThenClose: true })
  t.match(r.stdout, /^ +NO +TIME +INTERFACE +DIR +LEN +SUMMARY\n/)
  t.equal(r.stderr, '', 'no EPIPE stack trace')
  t.equal(r.code, 0)
})
