/**
 * Benchmark harness primitives: the timing loop, the result and suite types, and the helper that
 * builds the C reference programs under bench/c/.
 *
 * The machines this runs on (CI runners, Raspberry Pis, developer laptops) are noisy, so absolute
 * numbers are only indicative: compare implementations by the ratios (`vs`) computed within one
 * run.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The bench/ directory. */
export const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
/** Where compiled C reference programs go (git-ignored). */
export const BUILD_DIR = join(BENCH_DIR, '.build')

/** One measured quantity. `vs` holds ratios value / other value (name → ratio). */
export type BenchResult = { id: string; value: number; unit: string; vs: Record<string, number> }

export interface BenchContext {
  /**
   * Values shared between suites (id → value), so later suites can compute ratios against earlier
   * ones. The runner also adds every result of every suite under its own id once the suite ends.
   * Anchors are missing when an earlier suite was filtered out; use `ratios()` to skip them.
   */
  anchors: Map<string, number>
  /** Writes one progress line to stderr. */
  progress(msg: string): void
}

export type Suite = { name: string; run(ctx: BenchContext): Promise<BenchResult[]> }

export interface MeasureOptions {
  /** Minimum duration of each timed round, ms (default 300; env BENCH_MIN_MS overrides the default). */
  minMs?: number
  /** Number of timed rounds; the median is reported (default 5). */
  rounds?: number
  /** Calls of `fn` between two clock reads; by default sized during warm-up to ~1 ms per batch. */
  batch?: number
}

export interface MeasureStats {
  /** Median ops/s over the rounds. */
  median: number
  /** ops/s of each round, in the order they ran. */
  rounds: number[]
  batch: number
}

/** The default round length: 300 ms, or BENCH_MIN_MS for quick runs while developing. */
export function defaultMinMs(): number {
  const env = Number(process.env['BENCH_MIN_MS'])
  return Number.isFinite(env) && env > 0 ? env : 300
}

function nowNs(): bigint {
  return process.hrtime.bigint()
}

/** Runs `fn` in batches of `batch` until `ms` have passed; returns ops/s. */
function runFor(fn: () => unknown, batch: number, ms: number): number {
  const limit = BigInt(Math.round(ms * 1e6))
  const t0 = nowNs()
  let ops = 0
  let elapsed: bigint
  do {
    for (let i = 0; i < batch; i++) fn()
    ops += batch
    elapsed = nowNs() - t0
  } while (elapsed < limit)
  return ops / (Number(elapsed) / 1e9)
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of nothing')
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * Something measured in timed rounds: `warmup` once, then `round` repeatedly; both run for at
 * least `ms` and return ops/s. JS functions become contenders with `jsContender`; an external
 * program (bench/c/aead.c --serve) can be one too, so it is timed in the same rounds as the JS.
 */
export interface Contender {
  name: string
  warmup(ms: number): number | Promise<number>
  round(ms: number): number | Promise<number>
}

/** Warm-up length for a given round length: a third of a round, at least 50 ms. */
export function warmupMs(minMs: number): number {
  return Math.max(50, minMs / 3)
}

/**
 * A synchronous `fn` (one operation per call) as a contender. The warm-up runs in batches of one,
 * so that slow operations still stop on time, and lets the JIT settle; unless `batch` is given it
 * then sizes the batch (calls between two clock reads) to about 1 ms.
 */
export function jsContender(name: string, fn: () => unknown, batch?: number) {
  let b = batch ?? 1
  return {
    name,
    warmup(ms: number): number {
      const rate = runFor(fn, 1, ms)
      if (batch === undefined) b = Math.max(1, Math.floor(rate / 1000))
      return rate
    },
    round(ms: number): number {
      return runFor(fn, b, ms)
    },
    get batch(): number {
      return b
    },
  } satisfies Contender & { batch: number }
}

function options(name: string, opts: MeasureOptions): { minMs: number; rounds: number } {
  const minMs = opts.minMs ?? defaultMinMs()
  const rounds = opts.rounds ?? 5
  if (!(minMs > 0) || !Number.isInteger(rounds) || rounds < 1) throw new RangeError(`${name}: bad measure options`)
  return { minMs, rounds }
}

function prefixed(name: string, err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err)
  return new Error(`${name}: ${msg}`, { cause: err })
}

/**
 * Times `fn` (synchronous, called in a tight loop) and returns the median ops/s of `rounds`
 * rounds of at least `minMs` each, after a warm-up (see `jsContender`). `fn` should do exactly
 * one operation and be allocation-free where the code under test allows it. Exceptions from `fn`
 * propagate, prefixed with `name`.
 */
export function measureStats(name: string, fn: () => unknown, opts: MeasureOptions = {}): MeasureStats {
  const { minMs, rounds } = options(name, opts)
  const c = jsContender(name, fn, opts.batch)
  try {
    c.warmup(warmupMs(minMs))
    const results: number[] = []
    for (let r = 0; r < rounds; r++) results.push(c.round(minMs))
    return { median: median(results), rounds: results, batch: c.batch }
  } catch (err) {
    throw prefixed(name, err)
  }
}

/** Median ops/s of `fn`; see `measureStats`. */
export function measure(name: string, fn: () => unknown, opts: MeasureOptions = {}): number {
  return measureStats(name, fn, opts).median
}

/**
 * Measures several contenders doing the same job with their rounds interleaved: round r times
 * every contender once, in an order rotated each round, so that load from other processes on a
 * noisy machine lands on all of them alike instead of on whichever ran during the disturbance.
 * Returns the median ops/s per contender name (in `contenders` order). `opts.batch` is ignored.
 */
export async function measureInterleaved(contenders: readonly Contender[], opts: MeasureOptions = {}): Promise<Map<string, number>> {
  const { minMs, rounds } = options(contenders.map((c) => c.name).join('/'), opts)
  const results = contenders.map(() => [] as number[])
  const step = async (i: number, what: 'warmup' | 'round') => {
    const c = contenders[i]!
    try {
      return await (what === 'warmup' ? c.warmup(warmupMs(minMs)) : c.round(minMs))
    } catch (err) {
      throw prefixed(c.name, err)
    }
  }
  for (let i = 0; i < contenders.length; i++) await step(i, 'warmup')
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (k + r) % contenders.length
      results[i]!.push(await step(i, 'round'))
    }
  }
  return new Map(contenders.map((c, i) => [c.name, median(results[i]!)]))
}

/**
 * Ratios of `value` to the anchors named in `against` (label → anchor id), skipping anchors that
 * are absent (their suite did not run) or zero.
 */
export function ratios(ctx: BenchContext, value: number, against: Record<string, string>): Record<string, number> {
  const vs: Record<string, number> = {}
  for (const [label, id] of Object.entries(against)) {
    const base = ctx.anchors.get(id)
    if (base !== undefined && base > 0) vs[label] = value / base
  }
  return vs
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs
  } catch {
    return 0
  }
}

function errText(err: unknown, tool: string): string {
  const e = err as { code?: string; stderr?: Buffer | string; message?: string }
  if (e.code === 'ENOENT') return `${tool} is not installed (Debian package ${tool})`
  const stderr = e.stderr?.toString().trim()
  return stderr || e.message || String(err)
}

/**
 * Compiles bench/c/<name>.c against `pkgs` (pkg-config names) into bench/.build/<name>, unless
 * the binary is at least as new as the source. Returns the binary's path. Throws an error naming
 * the Debian packages to install when the toolchain or a library is missing.
 */
export function buildC(name: string, pkgs: { pkgConfig: string; debian: string }[], progress?: (msg: string) => void): string {
  const src = join(BENCH_DIR, 'c', `${name}.c`)
  const bin = join(BUILD_DIR, name)
  const srcTime = mtimeMs(src)
  if (srcTime === 0) throw new Error(`missing C source ${relative(process.cwd(), src)}`)
  if (mtimeMs(bin) >= srcTime) return bin

  const debs = ['gcc', 'pkg-config', ...pkgs.map((p) => p.debian)]
  const hint = `install the Debian packages ${debs.join(', ')} (sudo apt-get install -y ${debs.join(' ')}, or run \`node scripts/setup.mjs bench\` as root)`
  let flags: string[]
  try {
    const out = execFileSync('pkg-config', ['--cflags', '--libs', ...pkgs.map((p) => p.pkgConfig)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    flags = out.trim().split(/\s+/).filter(Boolean)
  } catch (err) {
    const missing = pkgs.map((p) => `${p.debian} (pkg-config ${p.pkgConfig})`).join(', ')
    const why = (err as { code?: string }).code === 'ENOENT' ? errText(err, 'pkg-config') : `pkg-config found no ${missing}: ${errText(err, 'pkg-config')}`
    throw new Error(`cannot build bench/c/${name}.c: ${why}\n  → ${hint}`)
  }

  progress?.(`compiling bench/c/${name}.c → bench/.build/${name}…`)
  mkdirSync(BUILD_DIR, { recursive: true })
  // Build to a private name and rename, so a concurrent or interrupted run never sees half a binary.
  const tmp = `${bin}.${process.pid}.tmp`
  try {
    execFileSync('gcc', ['-O2', '-o', tmp, src, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
    renameSync(tmp, bin)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw new Error(`cannot build bench/c/${name}.c with gcc: ${errText(err, 'gcc')}\n  → ${hint}`)
  }
  return bin
}

/** Ops/s for display: 1 234 567 → "1,234,567". */
export function formatValue(value: number, unit: string): string {
  const v = Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3)
  return `${v} ${unit}`
}

/** A ratio for display: 0.62, 1.05, 14.3, 215, 0.043. */
export function formatRatio(r: number): string {
  const a = Math.abs(r)
  if (a >= 100) return r.toFixed(0)
  if (a >= 10) return r.toFixed(1)
  if (a >= 0.1 || a === 0) return r.toFixed(2)
  return r.toPrecision(2)
}
