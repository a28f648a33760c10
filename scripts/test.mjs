#!/usr/bin/env node
// Runs the whole suite with tap and ends with one plain line, "N passed, N failed, N skipped",
// counted from tap's own summary. Extra arguments are passed to tap (e.g. a single test file).
// With KAIRO_REQUIRE_ALL=1 (as in CI), a test that would skip for a missing real part fails.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const tapBin = join(root, 'node_modules', '.bin', 'tap')
const files = args.length > 0 ? args : ['test/**/*.test.ts']
const child = spawn(tapBin, ['--reporter=tap', ...files], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })

let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4096)
})
child.on('close', (code, signal) => {
  const m = /#\s*\{([^}]*)\}\s*\n#\s*time=/.exec(tail) ?? /#\s*\{([^}]*total[^}]*)\}/.exec(tail)
  const counts = { pass: 0, fail: 0, skip: 0, todo: 0 }
  if (m) {
    for (const part of m[1].split(',')) {
      const [k, v] = part.split(':').map((s) => s.trim())
      if (k in counts) counts[k] = Number(v)
    }
  }
  const failed = counts.fail + (code !== 0 && counts.fail === 0 ? 1 : 0)
  process.stdout.write(`\n${counts.pass} passed, ${failed} failed, ${counts.skip + counts.todo} skipped\n`)
  process.exit(code ?? (signal ? 1 : 0))
})
