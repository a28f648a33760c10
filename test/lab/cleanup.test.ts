/**
 * `kairo-gw lab run` leaves nothing behind, however it ends: success, a report that fails, a
 * timeout, SIGINT during setup, SIGINT or SIGTERM while running, a second Ctrl-C (forced), and
 * SIGKILL of the lab itself followed by `kairo-gw lab clean --prefix`. --keep leaves the lab up
 * and `lab clean` removes it.
 *
 * The gateways here are the stand-in (test/lab/stand-in-gateway.ts): these tests are about the
 * lab's own machinery (namespaces, veth, socat, the emulator host, processes, signals), so they
 * run in seconds and do not depend on the mesh. test/lab/e2e.test.ts runs the real daemon.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { ControlClient } from '../../appliance/control/client.js'
import { labRunning } from '../../appliance/lab/clean.js'
import { alive } from '../../appliance/lab/sys.js'
import { exitCode, freePrefix, leftovers, requireLabParts, runLabCli, settledLeftovers, STAND_IN, startLab } from './lib.js'

const standIn = { KAIRO_LAB_GATEWAY_BIN: STAND_IN }
const stuck = { ...standIn, KAIRO_STANDIN_ROUTES: 'none' } // never converges: the run stays "mid-run"

t.test('a run that succeeds removes everything; the report counts', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  const r = await runLabCli(['run', '--topology', 'line5-mixed', '--messages', '6', '--prefix', prefix, '--json'], standIn)
  exitCode(t, r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout) as { ok: boolean; prefix: string; messages: Record<string, number>; gateways: unknown[]; links: Record<string, unknown> }
  t.equal(report.ok, true)
  t.equal(report.prefix, prefix)
  t.same(report.messages, { sent: 6, delivered: 6, duplicates: 0, duplicate_copies: 0, lost: 0, refused: 0, misdelivered: 0 })
  t.equal(report.gateways.length, 5)
  t.same(Object.keys(report.links).sort(), ['g1/eth12', 'g2/eth12', 'g2/lora23', 'g3/lora23', 'g3/udp34', 'g4/lora45', 'g4/udp34', 'g5/lora45'])
  t.match(r.stderr, /LoRa emulator: lora23 \(g2, g3\); lora45 \(g4, g5\)/)
  t.same(await settledLeftovers(prefix), [])
})

t.test('a report that fails (duplicates, a lost message) exits 1 and still cleans up, keeping the logs', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  const r = await runLabCli(['run', '--topology', 'pair-udp', '--messages', '4', '--prefix', prefix, '--timeout', '3'], { ...standIn, KAIRO_STANDIN_DUPLICATE: '1', KAIRO_STANDIN_DROP: '2' })
  exitCode(t, r.code, 1, r.stderr)
  t.match(r.stdout, /messages\s+4 sent, 3 delivered, 1 lost, 3 duplicated/)
  t.match(r.stdout, /result\s+FAILED: 1 of 4 messages lost; 3 messages delivered more than once/)
  t.match(r.stderr, /logs kept in \/\S+kairo-lab-kl\d+-/)
  t.same(await settledLeftovers(prefix, 5000, { ignoreRunDirs: true }), [], 'no namespace, interface or process left')
  const c = await runLabCli(['clean', '--prefix', prefix, '--json'])
  exitCode(t, c.code, 0, c.stderr)
  t.match(JSON.parse(c.stdout), { ok: true, run_dirs: [/kairo-lab-kl/] })
  t.same(await leftovers(prefix), [])
})

t.test('a wait that times out exits 3 naming what is missing, and cleans up', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  const r = await runLabCli(['run', '--topology', 'pair-udp', '--messages', '2', '--prefix', prefix, '--timeout', '2', '--json'], stuck)
  exitCode(t, r.code, 3, r.stderr)
  t.match(JSON.parse(r.stdout), { ok: false, error: { message: /routes did not converge within 2 s: a has no route to b; b has no route to a/ } })
  t.same(await settledLeftovers(prefix, 5000, { ignoreRunDirs: true }), [])
  await runLabCli(['clean', '--prefix', prefix])
})

for (const [when, wait] of [
  ['during setup (socat and the emulator starting)', /socat PTY pairs for/],
  ['while waiting for the gateways', /starting 5 gateways/],
  ['mid-run (gateways up, routes awaited)', /gateway g\d ready[\s\S]*gateway g\d ready[\s\S]*gateway g\d ready[\s\S]*gateway g\d ready[\s\S]*gateway g\d ready/],
] as const) {
  t.test(`SIGINT ${when}: exit 130, nothing left`, async (t) => {
    if (!requireLabParts(t)) return
    const prefix = await freePrefix()
    const lab = await startLab(['run', '--topology', 'line5-mixed', '--messages', '4', '--prefix', prefix, '--timeout', '60'], stuck)
    t.teardown(() => runLabCli(['clean', '--prefix', prefix, '--force']))
    await lab.waitFor(wait)
    lab.child.kill('SIGINT')
    const { code } = await lab.exit
    exitCode(t, code, 130, lab.stderr())
    t.match(lab.stderr(), /SIGINT: stopping and removing the lab/)
    t.match(lab.stderr(), /interrupted by SIGINT; the lab was removed/)
    t.same(await settledLeftovers(prefix), [], 'no namespace, interface, process or run dir of the prefix')
  })
}

t.test('SIGTERM mid-run: exit 143, nothing left', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  const lab = await startLab(['run', '--topology', 'pair-udp', '--prefix', prefix], stuck)
  t.teardown(() => runLabCli(['clean', '--prefix', prefix, '--force']))
  await lab.waitFor(/gateway \w+ ready[\s\S]*gateway \w+ ready/)
  lab.child.kill('SIGTERM')
  exitCode(t, (await lab.exit).code, 143, lab.stderr())
  t.same(await settledLeftovers(prefix), [])
})

t.test('a second Ctrl-C forces: SIGKILL and delete, nothing left', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  const lab = await startLab(['run', '--topology', 'line5-mixed', '--prefix', prefix], stuck)
  t.teardown(() => runLabCli(['clean', '--prefix', prefix, '--force']))
  await lab.waitFor(/gateway \w+ ready/)
  lab.child.kill('SIGINT')
  await lab.waitFor(/SIGINT: stopping/)
  lab.child.kill('SIGINT')
  const { code } = await lab.exit
  exitCode(t, code, 130, lab.stderr())
  t.match(lab.stderr(), /SIGINT again: killing everything of kl\d+ now/)
  t.same(await settledLeftovers(prefix), [])
})

t.test('the lab SIGKILLed mid-run leaves everything; lab clean --prefix removes it', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  const lab = await startLab(['run', '--topology', 'line5-mixed', '--prefix', prefix], stuck)
  t.teardown(() => runLabCli(['clean', '--prefix', prefix, '--force']))
  await lab.waitFor(/gateway \w+ ready[\s\S]*gateway \w+ ready[\s\S]*gateway \w+ ready[\s\S]*gateway \w+ ready[\s\S]*gateway \w+ ready/)
  lab.child.kill('SIGKILL')
  await lab.exit
  const left = await leftovers(prefix)
  t.ok(left.some((l) => l.startsWith('namespace')), 'namespaces left')
  t.ok(left.some((l) => l.startsWith('process') && l.includes('socat')), 'socat left')
  t.ok(left.some((l) => l.startsWith('process') && l.includes('emulator-host')), 'emulator host left')
  t.ok(left.filter((l) => l.startsWith('process') && l.includes('--config')).length >= 5, 'gateways left')
  const c = await runLabCli(['clean', '--prefix', prefix, '--json'])
  exitCode(t, c.code, 0, c.stderr)
  const report = JSON.parse(c.stdout) as { prefixes: string[]; namespaces: string[]; processes: unknown[] }
  t.same(report.prefixes, [prefix])
  t.equal(report.namespaces.length, 5)
  t.ok(report.processes.length >= 10, `${report.processes.length} processes (5 gateways, 4 socat, the emulator host)`)
  t.same(await settledLeftovers(prefix), [])
})

t.test('--keep leaves the lab up and says how to reach it; lab clean removes it', async (t) => {
  if (!requireLabParts(t)) return
  const prefix = await freePrefix()
  t.teardown(() => runLabCli(['clean', '--prefix', prefix, '--force']))
  const r = await runLabCli(['run', '--topology', 'pair-udp', '--messages', '2', '--prefix', prefix, '--keep', '--json'], standIn)
  exitCode(t, r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout) as { ok: boolean; kept: { prefix: string; clean: string; gateways: Array<{ name: string; pid: number; control_socket: string }> } }
  t.equal(report.ok, true)
  t.equal(report.kept.clean, `kairo-gw lab clean --prefix ${prefix}`)
  t.match(r.stderr, /kept: lab kl\d+ is still up/)
  t.match(r.stderr, /socat - UNIX-CONNECT:\S+control\.sock/)
  for (const g of report.kept.gateways) {
    t.ok(alive(g.pid), `${g.name} still runs`)
    const c = await ControlClient.connect(g.control_socket, { timeoutMs: 3000 })
    const st = await c.call<{ name: string }>('status')
    t.equal(st.name, g.name, `${g.name} answers on ${g.control_socket}`)
    await c.close()
  }
  t.ok((await leftovers(prefix)).some((l) => l.startsWith('namespace')))
  // (Not a plain `lab clean` here: on a shared machine that would also take other people's kept labs.)
  const c = await runLabCli(['clean', '--prefix', prefix])
  exitCode(t, c.code, 0, c.stderr)
  t.match(c.stdout, new RegExp(`cleaned ${prefix}`))
  t.same(await settledLeftovers(prefix), [])
  for (const g of report.kept.gateways) t.notOk(existsSync(g.control_socket))
})

t.test('labRunning: a live lab process holds its run; a gone or kept one does not', async (t) => {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', 'lab'], { stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  const base = { prefix: 'kl1', started_at: '', topology: 'x', run_dir: '/tmp/x' }
  t.equal(labRunning({ ...base, lab_pid: child.pid! }), true)
  t.equal(labRunning({ ...base, lab_pid: child.pid!, kept: true }), false, 'kept: its lab process is not needed')
  t.equal(labRunning({ ...base, lab_pid: process.pid }), false, 'the cleaning process itself')
  t.equal(labRunning(undefined), false, 'no manifest')
  const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' })
  await new Promise((r) => dead.once('exit', r))
  t.equal(labRunning({ ...base, lab_pid: dead.pid! }), false)
})
