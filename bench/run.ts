/**
 * Runs the benchmark suites, prints a table to stdout and writes bench/results.json.
 *
 *   npm run bench                 all suites
 *   npm run bench -- aead         only suites whose name contains "aead"
 *   BENCH_MIN_MS=50 npm run bench quick, less stable numbers (default 300 ms per round)
 *
 * Progress goes to stderr. Suites run in the order listed below, one at a time, sharing
 * `ctx.anchors` so that later suites can report ratios against earlier results. Timings are
 * noisy: read the ratios, which are computed within one run.
 *
 * results.json holds the results of the last run in which every selected suite succeeded (a
 * filtered run writes only its own suites' results); a failed run leaves it unchanged.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { BENCH_DIR, formatRatio, formatValue, type BenchContext, type BenchResult, type Suite } from './lib.js'
import { suite as aead } from './suites/aead.js'
import { suite as sign } from './suites/sign.js'

/** The suites, in order. `{ optional }` names a module (relative to bench/) loaded only if it exists. */
const SUITES: (Suite | { optional: string })[] = [aead, sign, { optional: 'suites/packet.ts' }, { optional: 'suites/lora.ts' }, { optional: 'suites/mesh.ts' }, { optional: 'suites/vov.ts' }, { optional: 'suites/appliance.ts' }, { optional: 'suites/pcap.ts' }, { optional: 'suites/disconnect.ts' }]

function isSuite(x: unknown): x is Suite {
  const s = x as Partial<Suite> | null
  return typeof s === 'object' && s !== null && typeof s.name === 'string' && typeof s.run === 'function'
}

async function loadSuites(): Promise<Suite[]> {
  const out: Suite[] = []
  for (const entry of SUITES) {
    if (!('optional' in entry)) {
      out.push(entry)
      continue
    }
    const file = join(BENCH_DIR, entry.optional)
    if (!existsSync(file)) continue
    const mod = (await import(pathToFileURL(file).href)) as { suite?: unknown }
    if (!isSuite(mod.suite)) throw new Error(`bench/${entry.optional} must export \`suite: Suite\``)
    out.push(mod.suite)
  }
  return out
}

function checkResults(suite: Suite, results: unknown, seen: Set<string>): BenchResult[] {
  if (!Array.isArray(results)) throw new Error(`suite ${suite.name} returned no result list`)
  for (const r of results as BenchResult[]) {
    if (typeof r.id !== 'string' || r.id === '') throw new Error(`suite ${suite.name} returned a result without id`)
    if (seen.has(r.id)) throw new Error(`suite ${suite.name}: duplicate result id ${r.id}`)
    if (!Number.isFinite(r.value)) throw new Error(`suite ${suite.name}: ${r.id} has value ${r.value}`)
    seen.add(r.id)
  }
  return results as BenchResult[]
}

function table(groups: { suite: string; results: BenchResult[] }[]): string {
  const cells = (r: BenchResult): string[] => [
    r.id,
    formatValue(r.value, r.unit),
    Object.entries(r.vs)
      .map(([k, v]) => `${k}=${formatRatio(v)}`)
      .join(' '),
  ]
  const blocks = groups.filter((g) => g.results.length > 0).map((g) => g.results.map(cells))
  const header = ['id', 'value', 'vs']
  const w = header.map((h, i) => Math.max(h.length, ...blocks.flat().map((row) => row[i]!.length)))
  const line = (row: string[]) =>
    row
      .map((c, i) => (i === 1 ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd()
  const out = [line(header), line(w.map((n) => '-'.repeat(n)))]
  blocks.forEach((rows, i) => {
    if (i > 0) out.push('')
    for (const row of rows) out.push(line(row))
  })
  return out.join('\n')
}

async function main(): Promise<number> {
  const filter = process.argv[2]
  const started = performance.now()
  const all = await loadSuites()
  const suites = filter ? all.filter((s) => s.name.includes(filter)) : all
  if (suites.length === 0) {
    process.stderr.write(`bench: no suite name contains "${filter}" (suites: ${all.map((s) => s.name).join(', ')})\n`)
    return 2
  }

  const ctx: BenchContext = {
    anchors: new Map(),
    progress: (msg) => void process.stderr.write(`${msg}\n`),
  }
  const groups: { suite: string; results: BenchResult[] }[] = []
  const seen = new Set<string>()
  let failed = 0
  for (const suite of suites) {
    const t0 = performance.now()
    try {
      const results = checkResults(suite, await suite.run(ctx), seen)
      for (const r of results) ctx.anchors.set(r.id, r.value)
      groups.push({ suite: suite.name, results })
      ctx.progress(`${suite.name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    } catch (err) {
      failed++
      const msg = err instanceof Error ? err.message : String(err)
      process.stderr.write(`bench: suite ${suite.name} FAILED: ${msg}\n`)
    }
  }

  const results = groups.flatMap((g) => g.results)
  if (results.length > 0) process.stdout.write(`${table(groups)}\n`)
  const cpuList = cpus()
  const report = {
    results: results.map(({ id, value, unit, vs }) => ({ id, value, unit, vs })),
    meta: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      cpus: { count: cpuList.length, model: cpuList[0]?.model.trim() ?? 'unknown' },
      date: new Date().toISOString(),
    },
  }
  const took = `${((performance.now() - started) / 1000).toFixed(1)} s`
  if (failed > 0) {
    // Keep the previous results.json rather than replacing it with an incomplete one.
    process.stderr.write(`bench: ${failed} suite(s) failed after ${took}; bench/results.json left unchanged\n`)
    return 1
  }
  writeFileSync(join(BENCH_DIR, 'results.json'), `${JSON.stringify(report, null, 2)}\n`)
  process.stderr.write(`bench: wrote bench/results.json (${results.length} results) in ${took}\n`)
  return 0
}

process.exitCode = await main()
