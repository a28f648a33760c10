import { readFileSync } from 'node:fs'

/** The version in the checkout's package.json (from the sources, or from the build in dist/). */
export function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'kairo-gw' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // try the next
    }
  }
  return '0.0.0'
}
