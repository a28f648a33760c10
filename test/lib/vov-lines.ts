/** The entries of a gateway's VoV audit log as written so far (test helper; no verification). */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface VovLine {
  seq: number
  type: string
  data: Record<string, unknown>
}

export function vovEntries(stateDir: string): VovLine[] {
  const dir = join(stateDir, 'vov')
  const out: VovLine[] = []
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort()) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        out.push(JSON.parse(line) as VovLine)
      } catch {
        // the daemon is writing this line now
      }
    }
  }
  return out
}
