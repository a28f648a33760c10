// Prints the test-vector section of docs/protocol.md, computed by the real code; with --write,
// replaces the section between the vectors:begin/end markers in docs/protocol.md.
//   node --import=tsx scripts/protocol-vectors.ts [--write]
import { readFileSync, writeFileSync } from 'node:fs'
import { computeVectors, renderVectors } from '../appliance/core/vectors.js'

const text = renderVectors(computeVectors())
if (process.argv.includes('--write')) {
  const path = new URL('../docs/protocol.md', import.meta.url)
  const doc = readFileSync(path, 'utf8')
  const re = /(<!-- vectors:begin[^\n]*-->\n)[\s\S]*?(<!-- vectors:end -->)/
  if (!re.test(doc)) throw new Error('docs/protocol.md has no vectors:begin / vectors:end markers')
  writeFileSync(path, doc.replace(re, (_m, a: string, b: string) => `${a}\n${text}\n${b}`))
  process.stderr.write('docs/protocol.md: vectors updated\n')
} else process.stdout.write(text)
