// Prints the hex-example section of docs/firmware-bridge.md, computed by the real codec
// (firmware-bridge/vectors.ts); with --write, replaces the section between the
// vectors:begin/end markers in docs/firmware-bridge.md.
//   node --import=tsx scripts/firmware-bridge-vectors.ts [--write]
import { readFileSync, writeFileSync } from 'node:fs'
import { renderVectors } from '../appliance/core/vectors.js'
import { computeVectors } from '../firmware-bridge/vectors.js'

const text = renderVectors(computeVectors())
if (process.argv.includes('--write')) {
  const path = new URL('../docs/firmware-bridge.md', import.meta.url)
  const doc = readFileSync(path, 'utf8')
  const re = /(<!-- vectors:begin[^\n]*-->\n)[\s\S]*?(<!-- vectors:end -->)/
  if (!re.test(doc)) throw new Error('docs/firmware-bridge.md has no vectors:begin / vectors:end markers')
  writeFileSync(path, doc.replace(re, (_m, a: string, b: string) => `${a}\n${text}\n${b}`))
  process.stderr.write('docs/firmware-bridge.md: vectors updated\n')
} else process.stdout.write(text)
