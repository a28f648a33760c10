/** Shared parts of the VoV log tests: temp dirs, identities, a clock the test drives, file edits. */
import type { Test } from 'tap'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Identity } from '../../appliance/core/identity.js'
import { VovLog, type VovLogOptions } from '../../appliance/vov/index.js'

export const T0 = Date.parse('2025-03-01T00:00:00.000Z')

export function tempDir(t: Test, prefix = 'kv-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function identity(n = 1): Identity {
  return Identity.fromSeed(Buffer.alloc(32, n))
}

/** A clock at T0 that the test moves. */
export function clock(start = T0): { now: () => number; t: number; advance(ms: number): void } {
  const c = {
    t: start,
    now: () => c.t,
    advance(ms: number) {
      c.t += ms
    },
  }
  return c
}

/** A log with `n` link_up events a second apart, closed; returns its dir and files. */
export async function writeLog(dir: string, n: number, opts: Partial<VovLogOptions> & { id?: Identity; clock?: ReturnType<typeof clock> } = {}): Promise<string[]> {
  const c = opts.clock ?? clock()
  const log = await VovLog.open({ dir, identity: opts.id ?? identity(), now: c.now, ...opts })
  for (let i = 0; i < n; i++) {
    c.advance(1000)
    log.append('link_up', { link: `udp${i}`, kind: 'udp', n: i })
  }
  await log.close()
  return logFiles(dir)
}

/** The vov-*.jsonl files of a directory, by name. */
export function logFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => /^vov-.*\.jsonl$/.test(n))
    .sort()
    .map((n) => join(dir, n))
}

/** The file's lines (without the final empty string after the last newline). */
export function readLines(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}

export function writeLines(file: string, lines: string[]): void {
  writeFileSync(file, lines.map((l) => l + '\n').join(''))
}

/** Edits line `n` (1-based) of a file. */
export function editLine(file: string, n: number, edit: (line: string) => string): void {
  const lines = readLines(file)
  lines[n - 1] = edit(lines[n - 1]!)
  writeLines(file, lines)
}
