/**
 * The CLI's rendering of gateway answers (table.ts and the commands' render functions): any
 * answer the socket may carry renders without throwing and without a control character reaching
 * the terminal (fast-check); tables line up; durations and sizes read as a person would write
 * them; the socket path the CLI picks.
 */
import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { controlSocketPath } from '../../appliance/cli/control.js'
import { cell, formatBytes, formatDuration, formatMs, formatTime, renderTable, width } from '../../appliance/cli/table.js'
import { renderLinks } from '../../appliance/cli/commands/links.js'
import { renderKeys } from '../../appliance/cli/commands/keys.js'
import { renderPeers } from '../../appliance/cli/commands/peers.js'
import { renderNeighbours, renderRoutes } from '../../appliance/cli/commands/routes.js'
import { renderStatus } from '../../appliance/cli/commands/status.js'

// Anything but '\n' in C0, DEL, C1, U+2028/9.
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/

/** JSON-ish values shaped like the gateway's answers, with the right keys often present. */
const key = fc.constantFrom('name', 'kind', 'state', 'mtu', 'stats', 'framesIn', 'bytesOut', 'dropped', 'errors', 'last_error', 'disconnected', 'at', 'by', 'reason', 'uid', 'node_id', 'links', 'routes', 'dst', 'hops', 'cost', 'age_ms', 'uptime_s', 'store', 'outbox', 'vov', 'log_key', 'key_id', 'first_seen', 'peers', 'etx', 'x')
const answer = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'binary' }),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 6 }),
  ),
})).value

t.test('any answer renders: no throw, no control character but newlines', async (t) => {
  const renderers: Array<[string, (v: unknown) => string]> = [
    ['status', renderStatus],
    ['links', (v) => renderLinks(Array.isArray(v) ? v : [v], true)],
    ['routes', (v) => renderRoutes(Array.isArray(v) ? v : [v])],
    ['neighbours', (v) => renderNeighbours(Array.isArray(v) ? v : [v])],
    ['peers', (v) => renderPeers(Array.isArray(v) ? v : [v])],
    ['keys', renderKeys],
  ]
  for (const [name, render] of renderers) {
    fc.assert(
      fc.property(answer, (v) => {
        const out = render(v)
        return typeof out === 'string' && !CONTROL.test(out) && out.endsWith('\n')
      }),
      { numRuns: 400 },
    )
    t.pass(`${name}: any answer`)
  }
})

t.test('tables line up, whatever the cells', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.array(fc.string({ unit: 'grapheme', maxLength: 12 }), { minLength: n, maxLength: n }), { minLength: 1, maxLength: 6 }))), ([n, rows]) => {
      const cols = Array.from({ length: n }, (_, i) => ({ header: `H${i}`, ...(i % 2 === 1 ? { align: 'right' as const } : {}) }))
      const lines = renderTable(cols, rows).split('\n')
      if (lines.pop() !== '') return false
      if (lines.length !== rows.length + 1) return false
      // Every line is as wide as the widest, but for trailing spaces trimmed from the last column.
      const full = cols.map((c, i) => Math.max(width(c.header), ...rows.map((r) => width(cell(r[i]))))).reduce((a, b) => a + b, 0) + 2 * (n - 1)
      return lines.every((l) => width(l) <= full) && lines.some((l) => width(l) === full || cols[n - 1]!.align !== 'right')
    }),
  )
  const out = renderTable([{ header: 'NAME' }, { header: 'N', align: 'right' }], [['a', 1], ['long-name', 1234]])
  t.equal(out, 'NAME          N\na             1\nlong-name  1234\n')
  t.equal(renderTable([{ header: 'X' }], [], '(nothing)'), '(nothing)\n')
  t.equal(cell(null), '-')
  t.equal(cell(''), '-')
  t.equal(cell('a\u001b[2Jb\nc'), 'a\\u001b[2Jb\\nc')
  t.equal(width('漢字ab'), 6, 'wide characters count twice')
})

t.test('durations, sizes and times as people write them', async (t) => {
  t.equal(formatDuration(0), '0s')
  t.equal(formatDuration(59.9), '59s')
  t.equal(formatDuration(61), '1m 1s')
  t.equal(formatDuration(3600), '1h 0m 0s')
  t.equal(formatDuration(93_784), '1d 2h 3m 4s')
  t.equal(formatDuration('x'), '-')
  t.equal(formatDuration(-1), '-')
  t.equal(formatMs(850), '850 ms')
  t.equal(formatMs(12_340), '12.3 s')
  t.equal(formatMs(250_000), '4m 10s')
  t.equal(formatBytes(1000), '1000 B')
  t.equal(formatBytes(1536), '1.5 KiB')
  t.equal(formatBytes(50 * 1024 * 1024), '50 MiB')
  t.equal(formatTime('2025-06-01T10:03:11.123Z'), '2025-06-01T10:03:11Z')
  t.equal(formatTime(0), '1970-01-01T00:00:00Z')
  t.equal(formatTime(undefined), '-')
})

t.test('the socket the CLI picks', async (t) => {
  const saved = { rt: process.env.KAIRO_RUNTIME_DIR, st: process.env.KAIRO_STATE_DIR }
  t.teardown(() => {
    for (const [k, v] of [['KAIRO_RUNTIME_DIR', saved.rt], ['KAIRO_STATE_DIR', saved.st]] as const) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
  delete process.env.KAIRO_RUNTIME_DIR
  delete process.env.KAIRO_STATE_DIR
  t.equal(controlSocketPath({ socket: 'rel.sock' }), join(process.cwd(), 'rel.sock'), '--socket, made absolute')
  t.equal(controlSocketPath({ runtimeDir: '/r', stateDir: '/s' }), '/r/control.sock', '--runtime-dir')
  process.env.KAIRO_RUNTIME_DIR = '/env-run'
  t.equal(controlSocketPath({ stateDir: '/s' }), '/env-run/control.sock', '$KAIRO_RUNTIME_DIR')
  delete process.env.KAIRO_RUNTIME_DIR
  t.equal(controlSocketPath({ stateDir: '/s' }), '/s/run/control.sock', '--state-dir: the dev layout')
})
