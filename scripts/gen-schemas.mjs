#!/usr/bin/env node
// Generates TypeScript from schemas/*.fbs with flatc into appliance/generated/ (never edited by
// hand, not committed). flatc 2.0.8 emits extensionless relative imports, which Node's ESM
// resolver refuses, so each relative import is rewritten to end in ".js".
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const schemaDir = join(root, 'schemas')
const outDir = join(root, 'appliance', 'generated')
const stamp = join(outDir, '.stamp')

const schemas = readdirSync(schemaDir).filter((f) => f.endsWith('.fbs')).map((f) => join(schemaDir, f))
const newest = Math.max(statSync(fileURLToPath(import.meta.url)).mtimeMs, ...schemas.map((f) => statSync(f).mtimeMs))
if (existsSync(stamp) && statSync(stamp).mtimeMs >= newest) process.exit(0)

rmSync(outDir, { recursive: true, force: true })
mkdirSync(outDir, { recursive: true })
execFileSync('flatc', ['--ts', '--gen-object-api', '-o', outDir, ...schemas], { stdio: 'inherit' })

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p)
    else if (p.endsWith('.ts')) {
      const src = readFileSync(p, 'utf8')
      const fixed = src.replace(/(from\s+'|import\s*\(\s*')(\.{1,2}\/[^']+?)(?<!\.js)'/g, "$1$2.js'")
      writeFileSync(p, '// @ts-nocheck\n' + fixed)
    }
  }
}
walk(outDir)
writeFileSync(stamp, new Date().toISOString() + '\n')
process.stderr.write(`gen-schemas: ${schemas.length} schema(s) → appliance/generated/\n`)
