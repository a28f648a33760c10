#!/usr/bin/env node
// Boots the virtual-hardware rig once, for a human:
//
//   node scripts/vhw/run.mjs test/vhw/guest/gpio.ts        a guest script (repo-relative)
//   node scripts/vhw/run.mjs -- 'modprobe gpio-sim; ls /sys/kernel/config'   a shell command
//   node scripts/vhw/run.mjs --fetch [--refresh]           fetch (or re-resolve) the sid kernel only
//
// Options: --env K=V (repeatable), --timeout SECONDS (default 300), --keep (keep the results
// directory), --quiet (no console, only the result). The console streams to stdout, progress to
// stderr; the exit status is the guest script's (2 when the rig itself failed).
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { REPO_ROOT, VhwError, bootVm, ensureInitramfs, ensureKernel, vhwProblems } from './index.mjs'

function usage(msg) {
  if (msg) process.stderr.write(`vhw: ${msg}\n`)
  process.stderr.write('usage: node scripts/vhw/run.mjs [--env K=V]... [--timeout S] [--keep] [--quiet] (SCRIPT | -- COMMAND... | --fetch [--refresh])\n')
  process.exit(2)
}

const argv = process.argv.slice(2)
const env = {}
let timeoutMs = 300_000
let keep = false
let quiet = false
let fetchOnly = false
let refresh = false
let rest = []
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (a === '--') {
    rest = ['--', ...argv.slice(i + 1)]
    break
  } else if (a === '--env') {
    const kv = argv[++i] ?? usage('--env needs K=V')
    const eq = kv.indexOf('=')
    if (eq <= 0) usage(`--env ${kv}: expected K=V`)
    env[kv.slice(0, eq)] = kv.slice(eq + 1)
  } else if (a === '--timeout') {
    const s = Number(argv[++i])
    if (!(s > 0)) usage('--timeout needs a positive number of seconds')
    timeoutMs = s * 1000
  } else if (a === '--keep') keep = true
  else if (a === '--quiet') quiet = true
  else if (a === '--fetch') fetchOnly = true
  else if (a === '--refresh') refresh = true
  else if (a === '-h' || a === '--help') usage()
  else if (a.startsWith('-')) usage(`unknown option ${a}`)
  else {
    rest = argv.slice(i)
    break
  }
}

const progress = (line) => process.stderr.write(`${line}\n`)
const problems = vhwProblems()
if (problems.length > 0) {
  progress(`vhw: this host cannot run the rig; missing:\n  ${problems.join('\n  ')}`)
  process.exit(2)
}

try {
  if (fetchOnly) {
    const k = await ensureKernel({ refresh, progress })
    ensureInitramfs(k, { progress })
    progress(`vhw: kernel ${k.abi} ready (${k.meta.packages.map((p) => `${p.name} ${p.version}`).join(', ')})`)
    process.exit(0)
  }
  if (refresh) await ensureKernel({ refresh, progress })
  let opts
  if (rest[0] === '--') {
    if (rest.length < 2) usage('-- needs a command')
    opts = { command: rest.slice(1).join(' ') }
  } else if (rest.length === 1 && existsSync(resolve(rest[0]))) {
    // Relative to where the human stands; the guest wants it relative to the repo.
    opts = { script: resolve(rest[0]).slice(REPO_ROOT.length + 1) }
    if (!resolve(rest[0]).startsWith(`${REPO_ROOT}/`)) usage(`${rest[0]} is not inside the repo ${REPO_ROOT}`)
  } else if (rest.length >= 1) {
    // Not a file: a shell command given without --.
    opts = { command: rest.join(' ') }
  } else usage('nothing to run')
  const r = await bootVm({
    ...opts,
    env,
    timeoutMs,
    progress,
    onConsole: quiet ? undefined : (s) => process.stdout.write(s),
    interactive: process.stdin.isTTY === true,
  })
  const files = readdirSync(r.dir).filter((f) => !['job.env', 'command.sh', 'exit-code'].includes(f))
  if (keep || files.length > 0) progress(`vhw: results in ${r.dir}${files.length > 0 ? `: ${files.join(' ')}` : ''}`)
  if (!keep && files.length === 0) rmSync(r.dir, { recursive: true, force: true })
  process.exit(r.code)
} catch (err) {
  progress(err instanceof VhwError ? err.message : `vhw: ${err.stack ?? err}`)
  process.exit(2)
}
