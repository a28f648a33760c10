/**
 * `kairo-gw lab` without root: topologies, plan, and the usage errors of run and clean (exit 2
 * before anything is touched); a bad topology file is refused naming its field and line (exit 1).
 */
import t from 'tap'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../lib/pty.js'
import { exitCode, runLabCli } from './lib.js'

t.test('lab topologies lists the shipped ones', async (t) => {
  const r = await runLabCli(['topologies', '--json'])
  exitCode(t, r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { topologies: Array<{ name: string; gateways: number; segments: string[] }> }
  t.same(
    out.topologies.map((x) => [x.name, x.gateways]),
    [
      ['line4-wired', 4],
      ['line5-mixed', 5],
      ['pair-udp', 2],
    ],
  )
  t.same(out.topologies[1]!.segments, ['eth12:ethernet', 'lora23:lora', 'udp34:udp', 'lora45:lora'])
})

t.test('lab plan shows names, addresses and every gateway config', async (t) => {
  const r = await runLabCli(['plan', '--topology', 'line5-mixed', '--prefix', 'kl77'])
  exitCode(t, r.code, 0, r.stderr)
  t.match(r.stdout, /namespaces\s+kl77-g1, kl77-g2, kl77-g3, kl77-g4, kl77-g5/)
  t.match(r.stdout, /udp\s+udp34: g3 kl77-s2a 10\.77\.1\.1\/24 <-> g4 kl77-s2b 10\.77\.1\.2\/24/)
  t.match(r.stdout, /lora\s+lora45: g4, g5 on one emulated medium \(SF7, 500 kHz, LAB\)/)
  t.match(r.stdout, /# g3: \/tmp\/kairo-lab-kl77-XXXXXX\/g3\/config\.yaml\n/)
  const json = await runLabCli(['plan', '--topology', 'pair-udp', '--json'])
  t.match(JSON.parse(json.stdout), { gateways: [{ node: 'a', config: { links: [{ name: 'udp0', udp: { host: '10.77.0.1' } }] } }, { node: 'b' }] })
})

t.test('usage errors exit 2 before anything is built; a bad file exits 1 naming the field', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['run', '--topology', 'no-such-lab'], /--topology "no-such-lab": no such file, and not a shipped topology \(line4-wired, line5-mixed, pair-udp\)/],
    [['run', '--topology', 'pair-udp', '--partition', 'eth9'], /--partition eth9: pair-udp has no such segment \(udp0\)/],
    [['run', '--topology', 'pair-udp', '--kill', 'z'], /--kill z: pair-udp has no such gateway \(a, b\)/],
    [['run', '--topology', 'pair-udp', '--partition-method', 'unplug'], /--partition-method "unplug": use link-down or netem/],
    [['run', '--topology', 'pair-udp', '--prefix', 'lab1'], /--prefix "lab1": kl followed by 1-4 digits/],
    [['run', '--topology', 'pair-udp', '--messages', '-1'], /--messages/],
    [['run', '--topology', 'pair-udp', '--timeout', '0'], /--timeout/],
    [['clean', '--prefix', 'x1'], /--prefix "x1"/],
  ]
  for (const [args, re] of cases) {
    const r = await runLabCli(args)
    exitCode(t, r.code, 2, r.stderr)
    t.match(r.stderr, re, args.join(' '))
  }
  const dir = await tempDir(t, 'kairo-lab-cli-')
  const f = join(dir, 'bad.yaml')
  await fsp.writeFile(f, 'nodes: [a, b]\nsegments:\n  - {name: s, kind: lora, nodes: [a, b], options: {spreading_factor: 13}}\n')
  const bad = await runLabCli(['run', '--topology', f, '--json'])
  exitCode(t, bad.code, 1, bad.stderr)
  t.match(JSON.parse(bad.stdout), { ok: false, error: { code: 'ECONFIG', message: `${f}: segments[0].options.spreading_factor: 13 is not a spreading factor (5..12) (line 3)` } })
})
